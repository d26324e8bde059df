"""The live socket's keep-alive grid: what else is periodic wakes up with its pings."""

from __future__ import annotations

import asyncio

import pytest

from agent.sync.live import KEEPALIVE_INTERVAL_S, LiveSocket, sleep_until

STEP = KEEPALIVE_INTERVAL_S


@pytest.fixture
def live() -> LiveSocket:
    socket = LiveSocket(None)  # type: ignore[arg-type]  # aligned() needs no context
    socket._next_ping_at = 100.0  # the next ping; then every STEP
    return socket


def test_without_a_socket_nothing_moves():
    socket = LiveSocket(None)  # type: ignore[arg-type]
    assert socket.aligned(123.4, early=True) == 123.4
    assert socket.aligned(123.4, early=False) == 123.4


@pytest.mark.parametrize(
    ("when", "early", "expected"),
    [
        (100.0 + 2 * STEP, True, 100.0 + 2 * STEP),  # on a ping already
        (100.0 + 2 * STEP + 1, True, 100.0 + 2 * STEP),  # due at the latest then: before
        (100.0 + 2 * STEP + 1, False, 100.0 + 3 * STEP),  # not before then: after
        (99.0, False, 100.0),  # just before the next ping: with it
        (99.0, True, 99.0),  # the ping before it is past: unchanged
        (100.0 - 2 * STEP, False, 100.0 - 2 * STEP),  # further than one interval: unchanged
    ],
)
def test_a_time_moves_onto_a_ping_by_less_than_one_interval(live, when, early, expected):
    moved = live.aligned(when, early=early)
    assert moved == pytest.approx(expected)
    assert abs(moved - when) < STEP
    assert moved <= when if early else moved >= when


def test_sleep_until_wakes_at_that_time_of_the_loop():
    async def main() -> float:
        loop = asyncio.get_running_loop()
        when = loop.time() + 0.05
        await sleep_until(when)
        return loop.time() - when

    late = asyncio.run(main())
    assert late >= 0
