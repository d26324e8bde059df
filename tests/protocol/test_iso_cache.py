"""`to_iso` formats each second once (cached); it must give what formatting the whole
instant gives, for any millisecond, negative ones and second boundaries included."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from protocol.timefmt import to_iso


def _reference(ms: int) -> str:
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def test_to_iso_is_the_whole_instant_formatted() -> None:
    rng = random.Random(12)
    samples = [0, 1, 999, 1000, -1, -999, -1000, -1001, 946_684_800_000, 4_102_444_800_000]
    samples += [1_700_000_000_000 + k for k in (-1, 0, 1, 998, 999, 1000, 1001)]
    samples += [rng.randint(-(10**12), 4_102_444_800_000) for _ in range(20_000)]
    for ms in samples:
        assert to_iso(ms) == _reference(ms), ms
    assert to_iso(None) is None
