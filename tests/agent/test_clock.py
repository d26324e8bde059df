"""Clock offset to the server from request round trips (no real waiting: explicit instants)."""

from __future__ import annotations

from agent.sync import clock as clock_module
from agent.sync.clock import ClockOffset

HOUR = 3_600_000


def test_offset_comes_from_the_sample_with_the_shortest_round_trip():
    clock = ClockOffset()
    assert clock.offset_ms == 0
    # (sent, received, server time): the true offset is +1000 ms; slow trips mislead.
    clock.observe(10_000, 10_800, 11_700)  # rtt 800, offset 1300
    assert clock.offset_ms == 1300
    clock.observe(20_000, 20_020, 21_012)  # rtt 20, offset 1002
    clock.observe(30_000, 30_400, 30_900)  # rtt 400, offset 700
    assert clock.offset_ms == 1002
    clock.observe(40_000, 40_004, 41_001)  # rtt 4, offset 999
    assert clock.offset_ms == 999


def test_old_samples_leave_the_window():
    clock = ClockOffset(window=2)
    clock.observe(0 + 1_000_000, 2 + 1_000_000, 5_000 + 1_000_001)  # rtt 2, offset 5000
    clock.observe(2_000_000, 2_000_100, 2_000_050)  # rtt 100, offset 0
    assert clock.offset_ms == 5000
    clock.observe(3_000_000, 3_000_050, 3_000_025)  # rtt 50, offset 0; the rtt-2 sample is gone
    assert clock.offset_ms == 0


def test_initial_offset_is_used_until_the_first_sample(monkeypatch):
    monkeypatch.setattr(clock_module, "local_ms", lambda: 1_750_000_000_000)
    clock = ClockOffset(initial_ms=1234)
    assert clock.offset_ms == 1234
    assert clock.server_now() == 1_750_000_000_000 + 1234


def test_an_hour_of_skew_is_corrected_to_within_the_round_trip(monkeypatch):
    true_now = 1_750_000_000_000
    monkeypatch.setattr(
        clock_module, "local_ms", lambda: true_now + 5000
    )  # the machine's own clock
    for skew in (-HOUR, HOUR):
        clock = ClockOffset(skew_ms=skew)
        assert clock.local_now() == true_now + 5000 + skew
        # Simulated exchanges: the server stamps its (true) time half-way through the trip.
        for sent_true, rtt in ((true_now, 300), (true_now + 1000, 40), (true_now + 2000, 120)):
            server_ms = sent_true + rtt // 2
            clock.observe(sent_true + skew, sent_true + rtt + skew, server_ms)
        assert abs(clock.offset_ms + skew) <= 40  # within the best round trip
        # The corrected clock of a machine an hour off tells the server's time.
        assert abs(clock.server_now() - (true_now + 5000)) <= 40


def test_negative_round_trip_is_treated_as_zero():
    clock = ClockOffset()
    clock.observe(1000, 990, 5000)  # the local clock stepped back during the request
    assert clock.offset_ms == 5000 - 995
