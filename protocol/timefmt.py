"""Timestamps on the wire: UTC ISO 8601 with milliseconds out, ISO or epoch-ms in."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache

from .errors import ProtocolError

# Earliest and latest instants accepted from clients: anything outside is a bug, not a date.
_MIN_MS = 946_684_800_000  # 2000-01-01
_MAX_MS = 4_102_444_800_000  # 2100-01-01


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def to_iso(ms: int | None) -> str | None:
    """Epoch milliseconds -> '2026-02-11T18:00:00.000Z' (the seed's format)."""
    if ms is None:
        return None
    return _iso_second(ms // 1000) + f"{ms % 1000:03d}Z"


@lru_cache(maxsize=8192)
def _iso_second(seconds: int) -> str:
    """'2026-02-11T18:00:00.' of a whole second. Every record read or sent out formats two
    or three timestamps, and they cluster in time: formatting a second once saves a
    datetime and a strftime per timestamp."""
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.")


def parse_ms(value: object, field: str = "timestamp") -> int:
    """Accept epoch milliseconds (int) or an ISO 8601 string; naive ISO means UTC."""
    if isinstance(value, bool):
        raise ProtocolError("invalid_timestamp", f"{field}: expected a timestamp, got a boolean")
    if isinstance(value, int):
        ms = value
    elif isinstance(value, (float, Decimal)) and _is_integral(value):
        ms = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise ProtocolError(
                "invalid_timestamp", f"{field}: '{value[:40]}' is not an ISO 8601 date"
            ) from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        ms = (int(dt.timestamp()) * 1000) + dt.microsecond // 1000
    else:
        raise ProtocolError(
            "invalid_timestamp", f"{field}: expected an ISO 8601 string or epoch milliseconds"
        )
    if not _MIN_MS <= ms <= _MAX_MS:
        raise ProtocolError("invalid_timestamp", f"{field}: {value!r} is out of range")
    return ms


def _is_integral(value: float | Decimal) -> bool:
    try:
        # Bound first: int(1e999999999) never ends.
        return -_MAX_MS <= value <= _MAX_MS and value == int(value)
    except (OverflowError, ValueError, ArithmeticError):
        return False
