"""Agent configuration: command-line flags win over the environment, which wins over the
config file in the platform config folder. Variable names are the seed's client ones, with
or without the `NEXT_PUBLIC_` prefix."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import platformdirs

from protocol import ProtocolError
from protocol.tenancy import TENANT_MAX_LENGTH, parse_tenant

from .loopback import parse_origins
from .sync.settings import ENGINE_ONLY, STRATEGIES, SyncSettings

APP = "pdvsync"
# A setting's type as validation names it: the strategy is text in files and variables.
_KINDS = {"DivergenceStrategy": "str"}


class ConfigError(ValueError):
    """A setting is unusable; the message names it and says why (shown next to the field)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP, appauthor=False))


def default_config_file() -> Path:
    return Path(platformdirs.user_config_dir(APP, appauthor=False)) / "agent.json"


def default_log_dir() -> Path:
    return Path(platformdirs.user_log_dir(APP, appauthor=False))


@dataclass(frozen=True)
class AgentConfig(SyncSettings):
    """The sync settings (agent/sync/settings.py, given to the engine as they are) and what
    only the agent process needs."""

    data_dir: Path | None = None
    log_dir: Path | None = None
    local_port: int = 4000
    manager_pin_hash: str | None = None
    start_with_os: bool = True
    # Web origins, besides pages served by this PC, allowed to use the loopback API
    # (comma-separated, e.g. "http://192.168.1.50:3000"): see agent/loopback.py.
    cors_origins: str = ""

    def resolved_data_dir(self) -> Path:
        return Path(self.data_dir) if self.data_dir else default_data_dir()

    def resolved_log_dir(self) -> Path:
        return Path(self.log_dir) if self.log_dir else default_log_dir()

    def validate(self) -> AgentConfig:
        # Types first: a config file edited by hand can hold "5000" or null where a number
        # belongs, and that must be a ConfigError naming the field, not a TypeError.
        for f in fields(self):
            value = getattr(self, f.name)
            kind = _KINDS.get(str(f.type), str(f.type))
            if value is None and "None" in kind:
                continue
            if kind.startswith("bool"):
                ok = isinstance(value, bool)
            elif kind.startswith("int"):
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif kind.startswith("Path"):
                ok = isinstance(value, (str, Path))
            else:
                ok = isinstance(value, str)
            if not ok:
                raise ConfigError(
                    f.name, f"expected {kind.split(' ')[0]}, got {type(value).__name__}"
                )
        parsed = urlparse(self.server_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigError("server_url", "use http://IP:PORT, e.g. http://192.168.1.100:3001")
        if self.machine_id is not None:
            mid = self.machine_id  # not stripped: " pdv-1" would be a different machine
            if not mid or len(mid) > 64 or any(c.isspace() or ord(c) < 32 for c in mid):
                raise ConfigError("machine_id", "1 to 64 characters, no spaces")
        if self.tenant_id is not None:
            _check_tenant(self.tenant_id)
        if not 1 <= self.local_port <= 65535:
            raise ConfigError("local_port", "a port from 1 to 65535")
        for name in (
            "interval_ms",
            "retry_base_delay_ms",
            "retry_max_delay_ms",
            "reconcile_interval_ms",
        ):
            if getattr(self, name) < 100:
                raise ConfigError(name, "at least 100 ms")
        if not 0 <= self.retry_attempts <= 100:
            raise ConfigError("retry_attempts", "from 0 to 100")
        if self.divergence_strategy not in STRATEGIES:
            raise ConfigError("divergence_strategy", f"one of {', '.join(STRATEGIES)}")
        try:
            parse_origins(self.cors_origins)
        except ValueError as exc:
            raise ConfigError("cors_origins", str(exc)) from None
        return self

    def to_file_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ENGINE_ONLY}
        for k in ("data_dir", "log_dir"):
            out[k] = str(out[k]) if out[k] else None
        return out


def _check_tenant(value: str) -> None:
    """A shop id exactly as the server takes it (protocol/tenancy.py): not trimmed here, as a
    machine id is not, so what the file says is what the server gets."""
    try:
        ok = parse_tenant(value, "tenant_id") == value
    except ProtocolError:
        ok = False
    if not ok:
        raise ConfigError(
            "tenant_id",
            f"1 to {TENANT_MAX_LENGTH} letters, digits, '.', '_' or '-' (got {value[:40]!r})",
        )


# Environment variable -> (field, parser). Each also accepted with NEXT_PUBLIC_ in front.
def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on", "sim"):
        return True
    if value in ("0", "false", "no", "off", "nao", "não"):
        return False
    raise ValueError(f"'{text}' is not true/false")


_ENV: dict[str, tuple[str, Callable[[str], Any]]] = {
    "SYNC_SERVER": ("server_url", str),
    "SYNC_MACHINE_ID": ("machine_id", str),
    "SYNC_TENANT_ID": ("tenant_id", str),
    "SYNC_DATA_DIR": ("data_dir", Path),
    "SYNC_LOCAL_PORT": ("local_port", int),
    "SYNC_AUTO": ("auto_sync", _bool),
    "SYNC_INTERVAL_MS": ("interval_ms", int),
    "SYNC_RETRY_ATTEMPTS": ("retry_attempts", int),
    "SYNC_RETRY_BASE_DELAY_MS": ("retry_base_delay_ms", int),
    "SYNC_RETRY_MAX_DELAY_MS": ("retry_max_delay_ms", int),
    "SYNC_AUTO_RECONCILE": ("auto_reconcile", _bool),
    "SYNC_RECONCILE_INTERVAL_MS": ("reconcile_interval_ms", int),
    "SYNC_DIVERGENCE_STRATEGY": ("divergence_strategy", str),
    "SYNC_CORS_ORIGINS": ("cors_origins", str),
}


def from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (field, parse) in _ENV.items():
        raw = environ.get(name)
        if raw is None:
            raw = environ.get("NEXT_PUBLIC_" + name)
        if raw is None or raw.strip() == "":
            continue
        try:
            out[field] = parse(raw.strip())
        except ValueError as exc:
            raise ConfigError(field, f"{name}: {exc}") from None
    return out


def _read_object(path: Path) -> dict[str, Any]:
    """The JSON object in a settings file; {} when there is no file."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError("config_file", f"{path}: unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError("config_file", f"{path}: expected a JSON object")
    return data


def _settings(data: Mapping[str, Any]) -> dict[str, Any]:
    """The AgentConfig fields among a file's keys (others are ignored, not refused: a file
    written by a newer version may carry settings this one does not know)."""
    known = {f.name for f in fields(AgentConfig)} - set(ENGINE_ONLY)
    out = {k: v for k, v in data.items() if k in known and v is not None}
    for k in ("data_dir", "log_dir"):
        if k in out:
            out[k] = Path(out[k])
    return out


def from_file(path: Path) -> dict[str, Any]:
    return _settings(_read_object(path))


def site_config_file() -> Path:
    """Machine-wide settings written by the installer (Program Data on Windows)."""
    return Path(platformdirs.site_config_dir(APP, appauthor=False)) / "agent.json"


def load(
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    site_file: Path | None = None,
) -> AgentConfig:
    """flags > environment > user config file > machine config file (installer) > defaults."""
    values: dict[str, Any] = {}
    values.update(from_file(site_file or site_config_file()))
    values.update(from_file(config_file or default_config_file()))
    values.update(from_env(os.environ if environ is None else environ))
    values.update({k: v for k, v in (flags or {}).items() if v is not None})
    return AgentConfig(**values).validate()


def save(config: AgentConfig, path: Path | None = None) -> Path:
    """Write the config file atomically (temp file + rename)."""
    path = path or default_config_file()
    _write_object(path, config.to_file_dict())
    return path


def update_file(path: Path, changes: Mapping[str, Any]) -> tuple[AgentConfig, str | None]:
    """Set `changes` in the settings file at `path`, keeping every other value it holds.

    What the installer uses on each install and upgrade: a setting someone put in the
    machine file by hand (a port, an interval) survives, and only what was asked is
    written, so later versions' defaults still apply to the rest. The merged settings are
    validated before anything is written. A file that cannot be read is set aside as
    `<name>.bad` (never silently lost) and replaced; the second value says so.
    """
    try:
        current, unreadable = _read_object(path), None
    except ConfigError as exc:
        current, unreadable = {}, exc
    merged = {**current, **{k: str(v) if isinstance(v, Path) else v for k, v in changes.items()}}
    config = AgentConfig(**_settings(merged)).validate()
    note = None
    if unreadable is not None:
        bad = path.with_name(path.name + ".bad")
        os.replace(path, bad)
        note = f"{unreadable.message}; kept as {bad}"
    _write_object(path, merged)
    return config, note


def _write_object(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


def generated_machine_id() -> str:
    """A stable-looking default: the computer name plus a short random suffix."""
    import socket

    host = "".join(c for c in socket.gethostname().lower() if c.isalnum() or c == "-")[:40] or "pdv"
    return f"{host}-{uuid.uuid4().hex[:6]}"
