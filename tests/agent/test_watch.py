"""The long-poll's waiters (agent/api/watch.py) over a real store: woken from the thread that
commits, on their own event loop; nothing left registered after an answer or a timeout."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest

from agent.api.watch import Waiters
from agent.store.store import Store
from protocol import TABLES, parse_change


def write(store: Store, name: str) -> None:
    change = parse_change(TABLES["products"], {"id": "p1", "name": name})
    store.write([(str(uuid.uuid4()), change)], 1_750_000_000_000)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "agent.db")
    yield s
    s.close()


@pytest.fixture
def waiters(store):
    w = Waiters(store.changes)
    yield w
    w.unsubscribe()


def test_a_commit_in_another_thread_wakes_every_waiter_and_none_stays_registered(store, waiters):
    async def scenario() -> float:
        token = store.changes.token
        tasks = [asyncio.create_task(waiters.wait(token, 20)) for _ in range(50)]
        await asyncio.sleep(0.05)
        assert waiters.waiting() == 50
        t0 = time.monotonic()
        threading.Thread(target=write, args=(store, "Pão")).start()
        await asyncio.gather(*tasks)
        return time.monotonic() - t0

    assert asyncio.run(scenario()) < 10  # woken, not timed out (20 s)
    assert waiters.waiting() == 0


def test_a_timeout_or_a_token_already_moved_leaves_nothing_registered(store, waiters):
    async def scenario() -> None:
        token = store.changes.token
        await waiters.wait(token, 0.05)  # nothing happens
        write(store, "Pão")
        t0 = time.monotonic()
        await waiters.wait(token, 20)  # moved already: at once
        assert time.monotonic() - t0 < 10

    asyncio.run(scenario())
    assert waiters.waiting() == 0


def test_closing_the_feed_answers_its_waiters_at_once(store, waiters):
    async def park() -> None:
        task = asyncio.create_task(waiters.wait(store.changes.token, 20))
        await asyncio.sleep(0.05)
        store.changes.close()  # the agent stops: the waiter is answered at once
        await asyncio.wait_for(task, 10)

    asyncio.run(park())
    assert waiters.waiting() == 0
