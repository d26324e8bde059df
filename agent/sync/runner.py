"""The engine's own thread and asyncio loop: start, submit work from other threads, stop.

Neither the POS's loopback API nor the tray ever waits on the network: they hand coroutines
to this loop and get `concurrent.futures.Future`s back.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

# How long stop() lets a request in flight finish before cancelling it.
STOP_GRACE_S = 2.0
_START_WAIT_S = 10.0


class LoopRunner:
    def __init__(self, name: str) -> None:
        self.name = name
        self.thread: threading.Thread | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self.stopped = threading.Event()

    def start(
        self,
        main: Callable[[], Coroutine[Any, Any, None]],
        cleanup: Callable[[], Awaitable[None]],
    ) -> None:
        """Run `main()` on a new thread's loop; `cleanup()` runs last on that loop, after
        the requests still pending there were cancelled."""
        self.thread = threading.Thread(
            target=self._thread_main, args=(main, cleanup), name=self.name, daemon=True
        )
        self.thread.start()
        self._ready.wait(_START_WAIT_S)

    @property
    def running(self) -> bool:
        """Its loop runs (started, not stopped): what `call_soon` hands it will run."""
        loop = self.loop
        return loop is not None and loop.is_running() and not self.stopped.is_set()

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Run `callback` on the loop (from any thread); nothing when it is not running."""
        loop = self.loop
        if loop and not loop.is_closed():
            loop.call_soon_threadsafe(callback)

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        if self.loop is None or self.loop.is_closed():
            coro.close()
            raise RuntimeError("the sync engine is not running")
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self, timeout: float, wake: Callable[[], None]) -> None:
        """Wake the loop (`main` sees it must stop) and wait for the thread to end."""
        loop = self.loop
        self.call_soon(wake)
        if self.thread is None:
            return
        # Work in flight normally ends within a moment. If the server hangs, cancel what is
        # still waiting on the network: pushes are idempotent by eventId, and store changes
        # are synchronous transactions that an asyncio cancellation never interrupts.
        self.thread.join(min(timeout, STOP_GRACE_S))
        if self.thread.is_alive() and loop and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(_cancel_everything)
            self.thread.join(max(0.0, timeout - STOP_GRACE_S))
        if self.thread.is_alive():
            log.warning("the sync engine did not stop within %.0f s", timeout)

    def _thread_main(
        self,
        main: Callable[[], Coroutine[Any, Any, None]],
        cleanup: Callable[[], Awaitable[None]],
    ) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        loop.call_soon(self._ready.set)  # the loop runs: submit() works from now on
        try:
            loop.run_until_complete(main())
        except asyncio.CancelledError:
            pass  # stop() cancelled a request the server never answered
        finally:
            # Requests submitted from other threads (sync now, reconcile) end before the loop.
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            with contextlib.suppress(Exception):
                loop.run_until_complete(cleanup())
            loop.close()
            self.stopped.set()


def _cancel_everything() -> None:
    current = asyncio.current_task()
    for task in asyncio.all_tasks():
        if task is not current:
            task.cancel()
