"""A PDV whose clock is an hour off neither always wins nor always loses (invariant 4)."""

from __future__ import annotations

import time

from protocol import parse_ms

from .conftest import converged, describe, differences, new_id, push, server_rows, wait_until

HOUR = 3_600_000


def test_later_real_edit_wins_whatever_the_skewed_clocks(servers, server, agent_factory):
    fast = agent_factory(server, "caixa-adiantada", skew_ms=HOUR)
    slow = agent_factory(server, "caixa-atrasada", skew_ms=-HOUR)
    agents = [fast, slow]
    wait_until(
        lambda: (
            abs(fast.status()["clockOffsetMs"] + HOUR) < 2000
            and abs(slow.status()["clockOffsetMs"] - HOUR) < 2000
        ),
        message=lambda: describe(agents),
    )
    pid = new_id("bolo-")
    push(fast, "products", {"id": pid, "name": "v0", "stock_quantity": 10})
    wait_until(lambda: converged(agents, server), message=lambda: differences(agents, server))

    def name_everywhere(expected: str) -> None:
        wait_until(
            lambda: converged(agents, server),
            timeout=30,
            message=lambda: differences(agents, server),
        )
        assert server_rows(server, "products")[pid]["name"] == expected
        for a in agents:
            assert a.rows("products")[pid]["name"] == expected

    # 1. Online, each edit reaches the server right away: the later one wins, whichever
    #    clock is wrong which way (uncorrected, the slow clock's edits would always lose).
    for n, writer in enumerate([fast, slow, fast, slow], start=1):
        push(writer, "products", {"id": pid, "name": f"online {n} by {writer.machine_id}"})
        name_everywhere(f"online {n} by {writer.machine_id}")

    # 2. The older edit reaches the server last (its agent was off while the server came
    #    back): it must lose, from either machine (uncorrected, the fast clock's edit would
    #    win: an hour ahead, clamped by the server to the time it arrives).
    for first, second in ((fast, slow), (slow, fast)):
        server.kill()
        push(first, "products", {"id": pid, "name": f"older by {first.machine_id}"})
        first.stop()  # its edit waits in its outbox
        time.sleep(0.3)  # clearly later in real time
        push(second, "products", {"id": pid, "name": f"newer by {second.machine_id}"})
        server = servers.restart(server)
        wait_until(
            lambda second=second: second.status()["pending"] == 0,
            timeout=30,
            message=lambda: describe(agents),
        )
        first.restart()
        wait_until(
            lambda first=first: first.status()["pending"] == 0,
            timeout=30,
            message=lambda: describe(agents),
        )
        name_everywhere(f"newer by {second.machine_id}")

    # Timestamps are on the server's clock, not an hour off either way.
    stamp = parse_ms(server_rows(server, "products")[pid]["updatedAt"])
    assert abs(stamp - time.time() * 1000) < 60_000
    assert abs(fast.status()["clockOffsetMs"] + HOUR) < 2000
    assert abs(slow.status()["clockOffsetMs"] - HOUR) < 2000
