"""`GET /painel/eventos`: the panel, live, as Server-Sent Events.

A stream sends `event: snapshot` with the shop's whole snapshot (snapshot.py) when it
opens, and again whenever it differs from the last one sent: the hub says the shop changed
(a report, a command finished, a commit: `hub.panel_events`), or a few seconds passed (a
PDV that stops reporting turns Offline/Erro by the clock alone; "há 40 s" moves on). At
most one snapshot every 2 s; the chart is sent only when it changed (`"chart": null`
otherwise). A comment line every 15 s keeps proxies and the browser from closing an idle
stream. The browser's EventSource reconnects by itself (`retry:`).

Streams end when the session does (logout, expiry, `admin passwd/remove`: checked at every
look), when the server shuts down (`PanelStreams.close_all`, called before uvicorn waits for
open connections: an endless response would hold the shutdown forever) and after
`MAX_STREAM_SECONDS` in any case; the page then reconnects (or goes to the login).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from protocol import now_ms

from .accounts import Admin
from .auth import current_admin, still_logged_in
from .routes import shop_for
from .snapshot import build_snapshot

if TYPE_CHECKING:
    from ..app import ServerState
    from ..hub import PanelSubscription

MIN_INTERVAL_S = 2.0  # at most one snapshot per 2 s
RECHECK_S = 5.0  # look again this often even without a notice (the clock moves)
HEARTBEAT_S = 15.0
MAX_STREAM_SECONDS = 15 * 60  # then the browser reconnects (a fresh session check, too)
RETRY_MS = 3000

router = APIRouter(prefix="/painel", include_in_schema=False)


class PanelStreams:
    """The open event streams of one app, so a shutdown can end them."""

    def __init__(self) -> None:
        self.closing = asyncio.Event()

    def close_all(self) -> None:
        """End every stream (at shutdown); new ones end at once."""
        self.closing.set()


def streams_of(request: Request) -> PanelStreams:
    return request.app.state.panel_streams


@router.get("/eventos")
async def panel_events(
    request: Request, loja: str | None = Query(None), admin: Admin = Depends(current_admin)
) -> StreamingResponse:
    tenant = shop_for(admin, loja)
    return StreamingResponse(
        _stream(request, tenant),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _message(snapshot: dict[str, Any]) -> str:
    return "event: snapshot\ndata: " + json.dumps(snapshot, separators=(",", ":")) + "\n\n"


async def _stream(request: Request, tenant: str) -> AsyncIterator[str]:
    state: ServerState = request.app.state.sync
    streams = streams_of(request)
    started = time.monotonic()
    with state.hub.panel_events.subscribe(tenant) as changes:
        yield f"retry: {RETRY_MS}\n\n"
        last_body: str | None = None
        last_chart: Any = None
        last_sent = float("-inf")
        last_write = time.monotonic()
        while not streams.closing.is_set() and time.monotonic() - started < MAX_STREAM_SECONDS:
            snapshot: dict[str, Any] = dict(
                await asyncio.to_thread(build_snapshot, state, tenant, now_ms())
            )
            # What the manager would see differ (the build time aside).
            body = json.dumps({**snapshot, "serverNow": None}, sort_keys=True)
            if body != last_body:
                chart = snapshot["chart"]
                if chart == last_chart:
                    snapshot["chart"] = None  # unchanged: the page keeps its drawing
                last_body, last_chart = body, chart
                yield _message(snapshot)
                last_sent = last_write = time.monotonic()
            if not await asyncio.to_thread(still_logged_in, request):
                return  # logged out, expired or removed: the page's reconnect gets 401
            # Until the shop changes or it is time to look again; a comment line when
            # nothing was written for a while.
            recheck_at = time.monotonic() + RECHECK_S
            while (remaining := recheck_at - time.monotonic()) > 0:
                idle = time.monotonic() - last_write
                if idle >= HEARTBEAT_S:
                    yield ": ping\n\n"
                    last_write = time.monotonic()
                    continue
                changed = await _next_change(
                    changes, streams.closing, min(remaining, HEARTBEAT_S - idle)
                )
                if streams.closing.is_set():
                    return
                if changed:
                    break
            # Never more than one snapshot per MIN_INTERVAL_S, however busy the shop.
            pause = MIN_INTERVAL_S - (time.monotonic() - last_sent)
            if pause > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(streams.closing.wait(), pause)


async def _next_change(changes: PanelSubscription, closing: asyncio.Event, timeout: float) -> bool:
    """Whether the shop changed within `timeout` seconds (False as well when `closing`)."""
    waiter = asyncio.ensure_future(changes.wait(timeout))
    closer = asyncio.ensure_future(closing.wait())
    try:
        done, _ = await asyncio.wait({waiter, closer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        closer.cancel()
    return waiter in done and not waiter.cancelled() and bool(waiter.result())
