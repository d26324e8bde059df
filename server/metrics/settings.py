"""The metrics settings (METRICS_*): who may read /metrics, and how many PDVs get series."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# This PC only: another address needs API_SECRET_KEY (or an entry in METRICS_ALLOW).
DEFAULT_ALLOW = "127.0.0.1/32,::1/128"
DEFAULT_MAX_PDVS = 500


class MetricsSettingsError(ValueError):
    """A METRICS_* value is unusable; the message names it."""


def parse_networks(text: str) -> tuple[IpNetwork, ...]:
    """Comma-separated CIDR ranges (a bare address is a /32 or /128; host bits are ignored,
    so 192.168.1.10/24 is 192.168.1.0/24). ValueError names the bad entry."""
    networks: list[IpNetwork] = []
    for part in (p.strip() for p in text.split(",")):
        if part:
            try:
                networks.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ValueError(f"'{part}' is not an address or a CIDR range") from None
    return tuple(networks)


@dataclass(frozen=True)
class MetricsSettings:
    # Addresses that may read /metrics without a key; empty: API_SECRET_KEY only.
    allow: tuple[IpNetwork, ...] = field(default_factory=lambda: parse_networks(DEFAULT_ALLOW))
    # PDVs with series of their own; the others are summed under machine="_other".
    max_pdvs: int = DEFAULT_MAX_PDVS

    @classmethod
    def from_mapping(cls, v: Mapping[str, str]) -> MetricsSettings:
        return cls(
            allow=_allow(v.get("METRICS_ALLOW")), max_pdvs=_max_pdvs(v.get("METRICS_MAX_PDVS"))
        )


def _allow(text: str | None) -> tuple[IpNetwork, ...]:
    # Unset or blank: the default, as every other setting; "none": no address at all.
    text = (text or "").strip() or DEFAULT_ALLOW
    if text.lower() == "none":
        return ()
    try:
        return parse_networks(text)
    except ValueError as exc:
        raise MetricsSettingsError(f"METRICS_ALLOW: {exc}") from None


def _max_pdvs(text: str | None) -> int:
    text = (text or "").strip()
    if not text:
        return DEFAULT_MAX_PDVS
    try:
        value = int(text)
    except ValueError:
        raise MetricsSettingsError(f"METRICS_MAX_PDVS: '{text}' is not a number") from None
    if value < 0:
        raise MetricsSettingsError(f"METRICS_MAX_PDVS: {value} is negative")
    return value
