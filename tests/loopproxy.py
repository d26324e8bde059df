"""The base of the tests' TCP proxies (tests/agent_e2e/blackhole.py, tests/e2e_panel/
throttle.py): a listener on 127.0.0.1 served by an asyncio loop in a thread of its own, and
a `close()` that ends every connection before the loop stops."""

from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, Self

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class LoopProxy(ABC):
    def __init__(self) -> None:
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    @abstractmethod
    def start(self) -> Self:
        """Listen (each proxy with its own handler, through `_listen`); returns self."""

    def _listen(
        self, handler: Handler, prepare: Callable[[], None] | None = None, **options: Any
    ) -> None:
        """Start the loop and listen on a free port with `handler` (`prepare` first runs on
        the loop, for what must be created there)."""
        self._thread.start()

        async def listen() -> asyncio.Server:
            if prepare is not None:
                prepare()
            return await asyncio.start_server(handler, "127.0.0.1", 0, **options)

        self._server = asyncio.run_coroutine_threadsafe(listen(), self._loop).result(10)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def close(self) -> None:
        if not self._thread.is_alive():
            return

        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            # Let the handlers run their `finally` (closing their writers) and the transports
            # finish closing their sockets before the loop stops: otherwise the sockets are
            # left to the garbage collector, whose ResourceWarning lands in a later test.
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.sleep(0.05)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
