"""The panel's settings (PANEL_*): when an alert fires, read from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


class PanelSettingsError(ValueError):
    """A PANEL_* value is unusable; the message names it."""


@dataclass(frozen=True)
class PanelSettings:
    # Minutes may be fractional (0.5 = 30 s): a test reaches an alert without waiting minutes.
    offline_alert_minutes: float = 5.0
    pending_alert_minutes: float = 10.0
    clock_alert_seconds: float = 120.0

    @classmethod
    def from_mapping(cls, v: Mapping[str, str]) -> PanelSettings:
        return cls(
            offline_alert_minutes=_number(
                v, "PANEL_OFFLINE_ALERT_MINUTES", cls.offline_alert_minutes
            ),
            pending_alert_minutes=_number(
                v, "PANEL_PENDING_ALERT_MINUTES", cls.pending_alert_minutes
            ),
            clock_alert_seconds=_number(v, "PANEL_CLOCK_ALERT_SECONDS", cls.clock_alert_seconds),
        )


def _number(v: Mapping[str, str], name: str, default: float) -> float:
    text = (v.get(name) or "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise PanelSettingsError(f"{name}: '{text}' is not a number") from None
    if not 0 <= value < 1e7:  # also refuses nan and inf
        raise PanelSettingsError(f"{name}: {text} is not a number of 0 or more")
    return value
