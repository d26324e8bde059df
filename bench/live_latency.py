"""The agent benchmark's live latency: one rename of one product on agent A, timed until agent
B's loopback API shows it, sequentially; how B finds out is a choice (`--latency-mode`):

- `wait` (the default): B's record read as a long-poll,
  `GET /api/products/{id}?after=<token>&wait=<ms>`: answered with the record once B's store
  changed after the token; again (with the token it returned) until the new name shows.
  Event-driven, like PouchDB's changes feed in the comparison, in one request per change.
- `watch`: B's long-poll `GET /api/sync/watch?after=<token>&wait=<ms>`, then
  `GET /api/products/{id}` to check the name; again until it shows (two requests per change:
  what a front end showing several tables does).
- `poll`: B's `GET /api/products/{id}` every `--poll-ms` until it shows the new name (what
  the benchmark measured before the long-poll existed).
"""

from __future__ import annotations

import http.client
import json
import math
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

MODES = ("wait", "watch", "poll")


class LightResponse:
    """What the latency loop reads of an answer, as httpx names it."""

    def __init__(self, status: int, content: bytes) -> None:
        self.status_code = status
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class LightClient:
    """The timed requests' client: one keep-alive HTTP/1.1 connection of the standard
    library, with the calls of `httpx.Client` the loop makes (`get`, `post`).

    The figure is the system's, not the measuring tool's: httpx spends about 0.3 ms of
    Python per request on these machines (one product read on an agent's loopback: 0.85 ms
    with httpx against 0.53-0.63 ms with `http.client`, 2026-12-05), twice per update (A's
    write, B's answer), where a POS front end's `fetch` spends a fraction of that. PouchDB's
    side of the comparison writes and reads in its own process, with no HTTP client at all.
    """

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def get(self, path: str, params: dict[str, Any] | None = None) -> LightResponse:
        return self._request("GET", path + ("?" + urlencode(params) if params else ""))

    def post(
        self, path: str, content: bytes, headers: dict[str, str] | None = None
    ) -> LightResponse:
        return self._request("POST", path, content, headers or {})

    def _request(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> LightResponse:
        for attempt in (1, 2):  # once more on a fresh connection if the kept one was closed
            conn = self._conn or http.client.HTTPConnection(
                self.host, self.port, timeout=self.timeout
            )
            try:
                conn.request(method, url, body=body, headers=headers or {})
                answer = conn.getresponse()
                content = answer.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                self._conn = None
                if attempt == 2:
                    raise
                continue
            self._conn = None if answer.will_close else conn
            if answer.will_close:
                conn.close()
            return LightResponse(answer.status, content)
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> LightClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# The timed requests' client: LightClient, or httpx.Client (`--latency-client httpx`).
Client = LightClient | httpx.Client


# Waits until the name shows (or the deadline passes); True when it showed.
Until = Callable[[str, float], bool]


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest rank (the same rule as bench.js)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _name(b: Client, product_id: str) -> Any:
    return (b.get(f"/api/products/{product_id}").json().get("record") or {}).get("name")


def by_polling(b: Client, product_id: str, poll_ms: float) -> Until:
    poll = poll_ms / 1000

    def until(name: str, deadline: float) -> bool:
        next_poll = time.perf_counter()
        while True:
            if _name(b, product_id) == name:
                return True
            if time.perf_counter() > deadline:
                return False
            next_poll += poll
            delay = next_poll - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            else:
                next_poll = time.perf_counter()

    return until


def by_waiting_read(b: Client, product_id: str) -> Until:
    """B's record read that waits for a change. The token is taken once, before the first
    rename, then carried from answer to answer: a change that lands before B asks is
    answered at once, never missed."""
    token = _watch(b, {})["token"]

    def until(name: str, deadline: float) -> bool:
        nonlocal token
        while True:
            left_ms = int((deadline - time.perf_counter()) * 1000)
            if left_ms <= 0:
                return False
            params = {"after": token, "wait": min(left_ms, 30_000)}
            r = b.get(f"/api/products/{product_id}", params=params)
            if r.status_code != 200:
                raise RuntimeError(f"B's record read answered HTTP {r.status_code} {r.text[:300]}")
            answer = r.json()
            token = answer["token"]
            if answer["record"].get("name") == name:
                return True

    return until


def by_watching(b: Client, product_id: str) -> Until:
    """B's long-poll, then a read; the token carried as in `by_waiting_read`."""
    token = _watch(b, {})["token"]

    def until(name: str, deadline: float) -> bool:
        nonlocal token
        tables: list[str] | None = []  # nothing to read before B says its store changed
        while True:
            if (tables is None or "products" in tables) and _name(b, product_id) == name:
                return True
            left_ms = int((deadline - time.perf_counter()) * 1000)
            if left_ms <= 0:
                return False
            answer = _watch(b, {"after": token, "wait": min(left_ms, 30_000)})
            token, tables = answer["token"], answer["tables"]
            if not answer["changed"]:
                tables = []

    return until


def _watch(b: Client, params: dict[str, Any]) -> dict[str, Any]:
    r = b.get("/api/sync/watch", params=params)
    if r.status_code != 200:
        raise RuntimeError(f"B's /api/sync/watch answered HTTP {r.status_code} {r.text[:300]}")
    answer: dict[str, Any] = r.json()
    return answer


def measure_latency(
    rename: Callable[[str], None],
    until: Until,
    updates: int,
    budget: float,
    log: Callable[[str], None],
    per_update_timeout: float = 5.0,
) -> dict[str, Any]:
    """`updates` sequential renames (`rename(name)` on A), or as many as fit in `budget`
    seconds; each timed from before A's write until `until` sees it on B."""
    latencies: list[float] = []
    timeouts = 0
    stop_at = time.perf_counter() + budget
    for i in range(updates):
        if time.perf_counter() > stop_at:
            log(f"latency: budget of {budget:.0f} s spent after {i} updates")
            break
        name = f"Produto 0 renomeado {i}"
        t0 = time.perf_counter()
        rename(name)
        if until(name, t0 + per_update_timeout):
            latencies.append((time.perf_counter() - t0) * 1000)
        else:
            timeouts += 1
    latencies.sort()
    return {
        "count": len(latencies),
        "timeouts": timeouts,
        "mean": sum(latencies) / len(latencies) if latencies else None,
        "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95),
        "p99": percentile(latencies, 99),
        "max": latencies[-1] if latencies else None,
        "asked": updates,
    }
