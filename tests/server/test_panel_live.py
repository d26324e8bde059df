"""The panel's live stream (`GET /painel/eventos`, Server-Sent Events) against a real server
process: a snapshot on connect and another after a report arrives, at most one every 2 s,
heartbeat comments while nothing changes, a session needed (and the stream ends with it),
and a shutdown that does not wait for open streams."""

from __future__ import annotations

import contextlib
import json
import queue
import signal
import threading
import time
from typing import Any

import httpx
import pytest

from tests.server.test_panel_auth import add_admin
from tests.server.test_panel_pages import Manager, report


class Stream:
    """An open /painel/eventos of a logged-in manager, read by a thread: `next_snapshot()`,
    `comments` (heartbeats), `ended` once the server closed it."""

    def __init__(self, manager: Manager, shop: str | None = None) -> None:
        self.events: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        self.comments: list[float] = []
        self.retry: int | None = None
        self.ended = threading.Event()
        self.status: int | None = None
        self._client = manager.client
        self._params = {"loja": shop} if shop else None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        assert self._ready.wait(30), "the stream did not answer"

    def _read(self) -> None:
        try:
            with self._client.stream(
                "GET", "/painel/eventos", params=self._params, timeout=httpx.Timeout(30, read=60)
            ) as answer:
                self.status = answer.status_code
                self.content_type = answer.headers.get("content-type", "")
                self._ready.set()
                event, data = None, []
                for line in answer.iter_lines():
                    if line.startswith(":"):
                        self.comments.append(time.monotonic())
                    elif line.startswith("retry:"):
                        self.retry = int(line.split(":", 1)[1])
                    elif line.startswith("event:"):
                        event = line.split(":", 1)[1].strip()
                    elif line.startswith("data:"):
                        data.append(line.split(":", 1)[1].strip())
                    elif line == "" and data:
                        if event == "snapshot":
                            self.events.put((time.monotonic(), json.loads("\n".join(data))))
                        event, data = None, []
        except httpx.HTTPError:
            pass
        finally:
            self._ready.set()
            self.ended.set()

    def next_snapshot(self, timeout: float = 15) -> tuple[float, dict[str, Any]]:
        return self.events.get(timeout=timeout)

    def wait_for(self, check, timeout: float = 20) -> dict[str, Any]:
        """The first snapshot from now on for which `check(snapshot)` holds."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "no such snapshot in time"
            try:
                _, snapshot = self.next_snapshot(remaining)
            except queue.Empty:
                raise AssertionError("no such snapshot in time") from None
            if check(snapshot):
                return snapshot


def card(snapshot: dict[str, Any], machine: str) -> dict[str, Any] | None:
    return next((c for c in snapshot["cards"] if c["id"] == machine), None)


@pytest.fixture
def server(server_factory, database_url):
    s = server_factory(database_url=database_url)
    add_admin(s, "gerente")
    return s


@pytest.fixture
def manager(server):
    m = Manager(server)
    yield m
    m.close()


def test_a_snapshot_on_connect_and_another_after_a_report(server, manager):
    report(server, "caixa-1")
    stream = Stream(manager)
    assert stream.status == 200 and stream.content_type.startswith("text/event-stream")
    _, first = stream.next_snapshot()
    assert stream.retry == 3000  # the browser's reconnect delay, sent first
    assert first["tenant"] == "default"
    assert card(first, "caixa-1")["fields"]["stateLabel"] == "Sincronizado"
    assert first["chart"] is not None and "health" in first and first["alerts"] == []

    report(server, "caixa-1", state="waiting", pending=3, oldestPendingAgeMs=1_000)
    changed = stream.wait_for(lambda s: card(s, "caixa-1")["fields"]["pending"].startswith("3"))
    assert card(changed, "caixa-1")["fields"]["stateLabel"] == "Aguardando"
    # A PDV that appears is sent too.
    report(server, "caixa-2")
    stream.wait_for(lambda s: card(s, "caixa-2") is not None)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_at_most_one_snapshot_every_two_seconds(server, manager):
    stream = Stream(manager)
    stream.next_snapshot()
    deadline = time.monotonic() + 7
    n = 0
    while time.monotonic() < deadline:  # a busy shop: a new fact every 100 ms
        n += 1
        report(server, "caixa-1", pending=n)
        time.sleep(0.1)
    times = []
    while True:
        try:
            times.append(stream.next_snapshot(timeout=3)[0])
        except queue.Empty:
            break
    assert len(times) >= 2
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 1.9, gaps


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.timeout(60)
def test_heartbeat_comments_while_nothing_changes(server, manager):
    stream = Stream(manager)
    last, _ = stream.next_snapshot()
    # Nothing changes in a shop without PDVs, but the chart's 24 h window moves each
    # minute: a comment comes 15 s after the last snapshot.
    seen = [last]
    while not stream.comments and time.monotonic() < last + 20:
        with contextlib.suppress(queue.Empty):
            last, _ = stream.next_snapshot(timeout=0.2)
            seen.append(last)
    assert stream.comments, "no heartbeat 20 s after the last snapshot"
    # Measured from the snapshot before it: the minute's snapshot may follow it at once.
    before = max(t for t in seen if t <= stream.comments[0])
    assert stream.comments[0] - before >= 14, (seen, stream.comments)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_stream_needs_a_session_and_ends_with_it(server, manager):
    anonymous = httpx.get(server.url + "/painel/eventos", timeout=10)
    assert anonymous.status_code == 401
    stream = Stream(manager)
    stream.next_snapshot()
    out = manager.client.post("/painel/sair", data={"csrf": manager.csrf}, follow_redirects=False)
    assert out.status_code == 303
    assert stream.ended.wait(12), "the stream outlived its session"
    assert manager.client.get("/painel/eventos").status_code == 401


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_shutdown_does_not_wait_for_open_streams(server, manager):
    stream = Stream(manager)
    stream.next_snapshot()
    assert server.proc is not None
    started = time.monotonic()
    server.proc.send_signal(signal.SIGINT)
    server.proc.wait(10)
    assert time.monotonic() - started < 5
    assert stream.ended.wait(5)
