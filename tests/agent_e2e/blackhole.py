"""A TCP proxy on 127.0.0.1 that can turn into a black hole: every socket stays open, and
nothing is forwarded either way (a silent network loss: packets dropped, no RST, no FIN).

While `blackhole()` holds, whatever arrives on either side (bytes, a close) is held, not
dropped, and new connections are accepted but not connected upstream; `restore()` passes
on what was held, in order — as TCP's retransmissions would when the link comes back. So a
request the agent gave up on may still reach the server afterwards, which is what the
idempotency of pushes must survive. `websocket_only=True` holds only the connections that
open a WebSocket (their first bytes ask for an upgrade): HTTP keeps working.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit

from tests.loopproxy import LoopProxy

_CHUNK = 65536


class BlackholeProxy(LoopProxy):
    def __init__(self, upstream: str) -> None:
        super().__init__()
        target = urlsplit(upstream)
        self.upstream = (target.hostname or "127.0.0.1", target.port or 80)
        self.connections = 0
        self._flowing: asyncio.Event | None = None
        self._websocket_only = False

    def start(self) -> BlackholeProxy:
        def prepare() -> None:
            self._flowing = asyncio.Event()
            self._flowing.set()

        self._listen(self._serve, prepare)
        return self

    def blackhole(self, *, websocket_only: bool = False) -> None:
        """From now on nothing passes (or only for the WebSocket connections)."""

        def hold() -> None:
            assert self._flowing is not None
            self._websocket_only = websocket_only
            self._flowing.clear()

        self._loop.call_soon_threadsafe(hold)

    def restore(self) -> None:
        """Everything held goes on, and flows again."""
        assert self._flowing is not None
        self._loop.call_soon_threadsafe(self._flowing.set)

    async def _gate(self, websocket: bool) -> None:
        """Wait while this connection is held."""
        assert self._flowing is not None
        while not self._flowing.is_set() and (websocket or not self._websocket_only):
            await self._flowing.wait()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_w: asyncio.StreamWriter | None = None
        try:
            first = await client_r.read(_CHUNK)
            websocket = b"upgrade: websocket" in first.lower()
            await self._gate(websocket)
            up_r, up_w = await asyncio.open_connection(*self.upstream)
            if first:
                up_w.write(first)
                await up_w.drain()
            await asyncio.gather(
                self._pipe(client_r, up_w, websocket), self._pipe(up_r, client_w, websocket)
            )
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for writer in (client_w, up_w):
                if writer is not None:
                    with contextlib.suppress(Exception):
                        writer.close()

    async def _pipe(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, websocket: bool
    ) -> None:
        try:
            while True:
                try:
                    data = await src.read(_CHUNK)
                except OSError:  # a reset: passed on as an end, when it may pass
                    data = b""
                await self._gate(websocket)  # held, not lost
                if not data:
                    break
                dst.write(data)
                await dst.drain()
        except OSError:
            pass
        finally:
            with contextlib.suppress(Exception):
                dst.close()
