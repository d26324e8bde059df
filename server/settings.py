"""Server settings from the environment and a `.env` file, as in the seed's setup guide."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from dotenv import dotenv_values

from .metrics.settings import MetricsSettings, MetricsSettingsError
from .panel.settings import PanelSettings, PanelSettingsError

DEFAULT_PORT = 3001
DEFAULT_MAX_BODY = 5 * 1024 * 1024
DEFAULT_PANEL_SESSION_MAX_AGE = 12 * 3600
DEFAULT_PANEL_SESSION_IDLE = 2 * 3600


class SettingsError(ValueError):
    """A configuration value is unusable; the message says which and why."""


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    env: str = "development"  # development | production
    cors_origins: tuple[str, ...] = ()
    api_secret_key: str | None = field(default=None, repr=False)
    data_dir: Path = Path("data")
    max_body_bytes: int = DEFAULT_MAX_BODY
    log_dir: Path | None = None
    # The panel's login session (server/panel/sessions.py): absolute and idle lifetimes.
    panel_session_max_age_seconds: int = DEFAULT_PANEL_SESSION_MAX_AGE
    panel_session_idle_seconds: int = DEFAULT_PANEL_SESSION_IDLE
    # The panel's alert thresholds (PANEL_*_ALERT_*, server/panel/settings.py).
    panel: PanelSettings = field(default_factory=PanelSettings)
    # Who may read /metrics and how many PDVs get series (METRICS_*, server/metrics/settings.py).
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    # Reverse proxies (addresses or networks) whose X-Forwarded-For / X-Forwarded-Proto are
    # believed: the client's address then is the one the proxy saw (login and API rate
    # limits, METRICS_ALLOW). Empty: the headers are ignored, the peer's address counts.
    trusted_proxies: tuple[str, ...] = ()

    @property
    def production(self) -> bool:
        return self.env == "production"

    def with_overrides(self, **changes) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def load(
        cls,
        environ: Mapping[str, str] | None = None,
        env_file: str | Path | None = ".env",
        *,
        env_file_required: bool = False,
    ) -> Settings:
        """Environment variables win over the `.env` file in the working directory.

        The default `.env` may be absent; a file the operator named (`env_file_required`) may
        not: silently running on the defaults would create an empty SQLite database instead.
        """
        values: dict[str, str] = {}
        if env_file:
            path = Path(env_file)
            if path.is_file():
                values.update({k: v for k, v in dotenv_values(path).items() if v is not None})
            elif env_file_required:
                why = "is a folder, not a file" if path.is_dir() else "does not exist"
                raise SettingsError(f"--env-file: {env_file} {why}")
        values.update(os.environ if environ is None else environ)
        return cls.from_mapping(values)

    @classmethod
    def from_mapping(cls, v: Mapping[str, str]) -> Settings:
        env = (v.get("ENV") or v.get("NODE_ENV") or "development").strip().lower()
        if env not in ("development", "production", "test"):
            raise SettingsError(f"NODE_ENV/ENV: '{env}' is not development or production")
        port_text = (v.get("PORT") or str(DEFAULT_PORT)).strip()
        try:
            port = int(port_text)
        except ValueError:
            raise SettingsError(f"PORT: '{port_text}' is not a number") from None
        if not 1 <= port <= 65535:
            # 0 would make the OS pick a port no PDV knows; 99999 would wrap around in the socket
            # layer and listen somewhere else without a word.
            raise SettingsError(f"PORT: {port} is not a port from 1 to 65535")
        max_body_text = (v.get("MAX_BODY_BYTES") or str(DEFAULT_MAX_BODY)).strip()
        try:
            max_body = int(max_body_text)
        except ValueError:
            raise SettingsError(f"MAX_BODY_BYTES: '{max_body_text}' is not a number") from None
        session_max_age = _positive_int(
            v, "PANEL_SESSION_MAX_AGE_SECONDS", DEFAULT_PANEL_SESSION_MAX_AGE
        )
        session_idle = _positive_int(v, "PANEL_SESSION_IDLE_SECONDS", DEFAULT_PANEL_SESSION_IDLE)
        origins = tuple(o.strip() for o in (v.get("CORS_ORIGINS") or "").split(",") if o.strip())
        proxies = _networks(v, "TRUSTED_PROXIES")
        database_url = (v.get("DATABASE_URL") or "").strip() or None
        if database_url:
            from .db import parse_database_url  # the one place that knows the schemes

            try:
                parse_database_url(database_url, Path("data"))
            except ValueError as exc:  # e.g. a bad scheme or port; never quotes the password
                text = str(exc)
                raise SettingsError(
                    text if text.startswith("DATABASE_URL") else f"DATABASE_URL: {text}"
                ) from None
        try:
            panel = PanelSettings.from_mapping(v)
        except PanelSettingsError as exc:
            raise SettingsError(str(exc)) from None
        try:
            metrics = MetricsSettings.from_mapping(v)
        except MetricsSettingsError as exc:
            raise SettingsError(str(exc)) from None
        return cls(
            database_url=database_url,
            host=(v.get("HOST") or "127.0.0.1").strip(),
            port=port,
            env=env,
            cors_origins=origins,
            api_secret_key=(v.get("API_SECRET_KEY") or "").strip() or None,
            data_dir=Path((v.get("DATA_DIR") or "data").strip()),
            max_body_bytes=max_body,
            log_dir=Path(v["LOG_DIR"]) if v.get("LOG_DIR") else None,
            panel_session_max_age_seconds=session_max_age,
            panel_session_idle_seconds=session_idle,
            panel=panel,
            metrics=metrics,
            trusted_proxies=proxies,
        )


def _positive_int(v: Mapping[str, str], name: str, default: int) -> int:
    """A whole number of at least 1 from `v[name]` (`default` when unset or blank)."""
    text = (v.get(name) or "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise SettingsError(f"{name}: '{text}' is not a number") from None
    if value < 1:
        raise SettingsError(f"{name}: {value} must be at least 1")
    return value


def _networks(v: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated IP addresses or networks (CIDR) from `v[name]`, each checked."""
    entries = tuple(e.strip() for e in (v.get(name) or "").split(",") if e.strip())
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise SettingsError(
                f"{name}: '{entry}' is not an IP address or network (e.g. 10.0.0.5 or 10.0.0.0/24)"
            ) from None
    return entries


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
