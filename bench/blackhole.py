"""A TCP proxy on 127.0.0.1 that can go silent: the fault of a silent network loss.

`BlackholeProxy(target_port).start()` listens on a free port of 127.0.0.1 and forwards every
connection to the target, both ways. `blackhole()` makes the network vanish without a word:
from then on nothing is forwarded in either direction and nothing is closed. Each socket's
reading is paused (the kernel buffers fill and the peers' windows close, as when packets are
dropped: no FIN, no RST), bytes already read are discarded, and a connection accepted later
is held open and never connected upstream. `restore()` ends the silence the way a network
that comes back after a long loss does for connections that timed out: every held
connection is aborted, and new ones are forwarded again.

The proxy runs its own asyncio loop in a daemon thread, so a synchronous benchmark can drive
it. `pairs()` says which client port talks to which upstream port (and which connection is a
WebSocket upgrade), so the benchmark can watch each end's socket state in /proc/net/tcp.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

HOST = "127.0.0.1"  # the only address the proxy listens on and connects to
CHUNK = 65536


@dataclass
class Pair:
    """One proxied connection: the client's own port and the proxy's port towards the target."""

    client_port: int
    upstream_port: int = 0
    websocket: bool = False  # the client's first bytes asked for a WebSocket upgrade
    opened_at: float = field(default_factory=time.monotonic)
    forwarded: int = 0  # bytes forwarded, both ways
    dropped: int = 0  # bytes read but discarded because the network was down


class BlackholeProxy:
    def __init__(self, target_port: int, target_host: str = HOST) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._silent = False
        self._pairs: list[Pair] = []
        # The writer of every live or held connection's socket, for pause_reading and abort.
        # Held here on purpose: a StreamWriter that is garbage-collected closes its socket.
        self._writers: list[asyncio.StreamWriter] = []
        self._lock = threading.Lock()

    # -- control, from any thread ----------------------------------------------------------

    def start(self) -> int:
        """Listen on a free port of 127.0.0.1 and return it."""
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._accept, HOST, 0)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()
            # Stopped: end the pumps still waiting, then close the loop and its sockets.
            tasks = asyncio.all_tasks(self._loop)
            for task in tasks:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            # The closed transports close their sockets on the next turns of the loop.
            self._loop.run_until_complete(asyncio.sleep(0.05))
            self._loop.close()

        self._thread = threading.Thread(target=run, name="blackhole-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the proxy did not start")
        return self.port

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def silent(self) -> bool:
        return self._silent

    def blackhole(self) -> float:
        """Stop forwarding, both ways, on every connection; close nothing. Returns the
        monotonic time at which the silence started."""
        self._call(self._go_silent)
        return time.monotonic()

    def restore(self) -> None:
        """Abort every connection (they timed out during the loss) and forward new ones."""
        self._call(self._come_back)

    def pairs(self) -> list[Pair]:
        with self._lock:
            return list(self._pairs)

    def stop(self) -> None:
        if self._loop is None:
            return
        with contextlib.suppress(RuntimeError):
            self._call(self._close_all)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        self._loop = None

    def _call(self, fn: Callable[[], None]) -> None:
        """Run `fn` on the proxy's loop and wait for it."""
        assert self._loop is not None

        async def wrapper() -> None:
            fn()

        asyncio.run_coroutine_threadsafe(wrapper(), self._loop).result(10)

    # -- on the proxy's loop ---------------------------------------------------------------

    def _go_silent(self) -> None:
        self._silent = True
        for w in self._writers:
            _pause(w)

    def _come_back(self) -> None:
        self._abort_all()
        self._silent = False

    def _abort_all(self) -> None:
        for w in self._writers:
            w.transport.abort()
        self._writers.clear()

    def _close_all(self) -> None:
        if self._server is not None:
            self._server.close()
        self._abort_all()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client_port = writer.get_extra_info("peername")[1]
        pair = Pair(client_port)
        with self._lock:
            self._pairs.append(pair)
        self._writers.append(writer)
        if self._silent:  # accepted by the kernel, then nothing: a connect into the void
            _pause(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        pair.upstream_port = up_writer.get_extra_info("sockname")[1]
        self._writers.append(up_writer)
        if self._silent:  # went silent while connecting
            _pause(writer)
            _pause(up_writer)
            return
        await asyncio.gather(
            self._pump(reader, up_writer, pair, first=True),
            self._pump(up_reader, writer, pair, first=False),
        )
        if not self._silent:  # both ways ended: done with this pair
            for w in (writer, up_writer):
                w.close()
                with contextlib.suppress(ValueError):
                    self._writers.remove(w)

    async def _pump(
        self,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        pair: Pair,
        *,
        first: bool,
    ) -> None:
        """Copy `src` to `dst` until EOF; while silent, read nothing more and write nothing."""
        try:
            while True:
                data = await src.read(CHUNK)
                if self._silent:
                    pair.dropped += len(data)
                    return  # the transport's reading is paused: nothing more comes in
                if not data:
                    if dst.can_write_eof():
                        dst.write_eof()
                    return
                if first and b"upgrade: websocket" in data.lower():
                    pair.websocket = True
                first = False
                pair.forwarded += len(data)
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            if not self._silent:
                dst.transport.abort()


def _pause(writer: asyncio.StreamWriter) -> None:
    """Stop reading this socket: what arrives stays in the kernel, whose window closes."""
    transport = writer.transport
    if isinstance(transport, asyncio.ReadTransport) and not transport.is_closing():
        with contextlib.suppress(RuntimeError):
            transport.pause_reading()
