"""A small HTTP/1.1 proxy on 127.0.0.1 that answers 429 to a PDV's pushes while `refusing`
and forwards everything else (pulls, reports, reconcile, the live WebSocket) to the server.

A PDV pushes on its live WebSocket when the server takes pushes there, and a proxy that only
pipes bytes cannot answer one message of a socket. So while refusing, the proxy also drops
the live sockets it pipes and answers 503 to a new one: the PDV polls, and its pushes come
over HTTP, where they get the 429.

It stands for "the server refuses this PDV's sales for now" in the panel's browser scenario
and screenshots: the PDV keeps reporting through it, so the panel can show it Aguardando with
its pending count. Raw asyncio streams in a thread of its own; every read is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from urllib.parse import urlsplit

from protocol.schema import TABLES
from tests.loopproxy import LoopProxy

HEAD_LIMIT = 64 * 1024
IO_TIMEOUT = 60.0  # a pull or a reconcile may take a while; a live socket is piped unbounded

# The routes a PDV pushes its events to (the agent uses the batch; the rest for completeness).
PUSH_PATHS = frozenset({"/api/sync", "/api/sync/batch", *(f"/api/sync/{t}" for t in TABLES)})


def is_push(method: str, target: str) -> bool:
    path = urlsplit(target).path.rstrip("/") or "/"
    return method == "POST" and (path in PUSH_PATHS or path.startswith("/api/sync/bootstrap/"))


class _Closed(Exception):
    pass


class ThrottleProxy(LoopProxy):
    """`start()` listens on a free port (`url`); `refusing = True` turns the 429s on, `close()`
    ends it. `refused` counts the pushes answered 429, `forwarded` the requests passed on."""

    def __init__(self, upstream: str, retry_after_s: int = 1) -> None:
        super().__init__()
        target = urlsplit(upstream)
        self.upstream_host = target.hostname or "127.0.0.1"
        self.upstream_port = target.port or 80
        self.retry_after_s = retry_after_s
        self._refusing = False
        self.refused = 0
        self.forwarded = 0
        self.sockets_refused = 0  # live socket upgrades answered 503 while refusing
        # The client connections of the live sockets being piped (owned by the loop).
        self._piped: set[asyncio.StreamWriter] = set()

    @property
    def refusing(self) -> bool:
        return self._refusing

    @refusing.setter
    def refusing(self, value: bool) -> None:
        self._refusing = value
        if value and self._thread.is_alive():
            # Drop the live sockets piped now (their pushes would pass untouched).
            asyncio.run_coroutine_threadsafe(self._drop_sockets(), self._loop).result(10)

    async def _drop_sockets(self) -> None:
        for writer in list(self._piped):
            with contextlib.suppress(Exception):
                writer.transport.abort()

    def start(self) -> ThrottleProxy:
        self._listen(self._serve, limit=HEAD_LIMIT)
        return self

    # -- one client connection: requests one after the other (keep-alive) ------------------

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await _read_head(client_r)
                if head is None:
                    return
                method, target, headers = _parse_request(head)
                body = await _read_body(client_r, headers, None)
                if self.refusing and is_push(method, target):
                    self.refused += 1
                    client_w.write(self._refusal())
                    await client_w.drain()
                    continue
                if self.refusing and headers.get("upgrade", "").lower() == "websocket":
                    self.sockets_refused += 1
                    client_w.write(self._refusal(503, "Service Unavailable"))
                    await client_w.drain()
                    return
                self.forwarded += 1
                if not await self._forward(head + body, method, client_r, client_w):
                    return
        except (_Closed, OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            with contextlib.suppress(Exception):
                client_w.close()

    async def _forward(
        self,
        request: bytes,
        method: str,
        client_r: asyncio.StreamReader,
        client_w: asyncio.StreamWriter,
    ) -> bool:
        """One request on a fresh server connection (a kept one may have been closed by the
        server's keep-alive timeout meanwhile); whether the client connection may go on."""
        up_r, up_w = await asyncio.wait_for(
            asyncio.open_connection(self.upstream_host, self.upstream_port, limit=HEAD_LIMIT),
            IO_TIMEOUT,
        )
        try:
            up_w.write(request)
            await up_w.drain()
            answer = await _read_head(up_r)
            if answer is None:
                return False
            status, headers = _parse_response(answer)
            client_w.write(answer)
            if status == 101:  # a WebSocket: from now on, bytes both ways
                await client_w.drain()
                self._piped.add(client_w)
                try:
                    await _pipe_both(client_r, client_w, up_r, up_w)
                finally:
                    self._piped.discard(client_w)
                return False
            no_body = method == "HEAD" or status in (204, 304) or 100 <= status < 200
            framed = (
                no_body
                or "content-length" in headers
                or "chunked" in headers.get("transfer-encoding", "")
            )
            if not no_body:
                client_w.write(await _read_body(up_r, headers, status))
            await client_w.drain()
            # A body that ended with the server's connection ends the client's too.
            return framed and "close" not in headers.get("connection", "").lower()
        finally:
            with contextlib.suppress(Exception):
                up_w.close()

    def _refusal(self, status: int = 429, reason: str = "Too Many Requests") -> bytes:
        body = json.dumps(
            {"success": False, "error": "server busy, try again later", "code": "server_busy"}
        ).encode()
        return (
            f"HTTP/1.1 {status} {reason}\r\n".encode()
            + f"Retry-After: {self.retry_after_s}\r\n".encode()
            + b"Content-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )


async def _read_head(reader: asyncio.StreamReader) -> bytes | None:
    """The request or status line and headers, raw; None at a clean end of the connection."""
    try:
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IO_TIMEOUT)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise _Closed() from exc
        return None


def _headers(lines: list[bytes]) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in lines:
        name, _, value = line.decode("latin-1").partition(":")
        found[name.strip().lower()] = value.strip()
    return found


def _parse_request(head: bytes) -> tuple[str, str, dict[str, str]]:
    first, *rest = head[:-4].split(b"\r\n")
    method, target, _version = first.decode("latin-1").split(" ", 2)
    return method, target, _headers(rest)


def _parse_response(head: bytes) -> tuple[int, dict[str, str]]:
    first, *rest = head[:-4].split(b"\r\n")
    return int(first.split(b" ", 2)[1]), _headers(rest)


async def _read_body(
    reader: asyncio.StreamReader, headers: dict[str, str], status: int | None
) -> bytes:
    """The message body exactly as framed (chunks kept as chunks): it is passed on as is."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raw = bytearray()
        while True:
            size_line = await asyncio.wait_for(reader.readuntil(b"\r\n"), IO_TIMEOUT)
            raw += size_line
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while True:  # trailers, up to the empty line
                    line = await asyncio.wait_for(reader.readuntil(b"\r\n"), IO_TIMEOUT)
                    raw += line
                    if line == b"\r\n":
                        return bytes(raw)
            raw += await asyncio.wait_for(reader.readexactly(size + 2), IO_TIMEOUT)
    if "content-length" in headers:
        length = int(headers["content-length"])
        return await asyncio.wait_for(reader.readexactly(length), IO_TIMEOUT) if length else b""
    if status is None:  # a request without a length has no body
        return b""
    return await asyncio.wait_for(reader.read(), IO_TIMEOUT)  # until the server closes


async def _pipe_both(
    client_r: asyncio.StreamReader,
    client_w: asyncio.StreamWriter,
    up_r: asyncio.StreamReader,
    up_w: asyncio.StreamWriter,
) -> None:
    async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        with contextlib.suppress(Exception):
            dst.close()

    await asyncio.gather(pipe(client_r, up_w), pipe(up_r, client_w))
