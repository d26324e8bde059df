"""The loopback API's HTTP server: uvicorn, asleep while nobody calls it.

uvicorn's own main loop wakes ten times a second (to refresh the Date header and to see
whether it must exit): 600 of the ~680 wake-ups a minute of an idle agent (issue 12). Here
it sleeps until `should_exit` is set (from any thread), and the default headers (Date,
Server) are computed when a response asks for them, at most once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from email.utils import formatdate

import uvicorn
from uvicorn.server import ServerState


class _LazyHeaders(ServerState):
    """uvicorn's shared state, whose `default_headers` are made when read (per response),
    not by a tick."""

    def __init__(self, config: uvicorn.Config) -> None:
        self._config = config
        self._second = -1
        self._headers: list[tuple[bytes, bytes]] = []
        super().__init__()

    @property
    def default_headers(self) -> list[tuple[bytes, bytes]]:
        now = time.time()
        if int(now) != self._second:
            self._second = int(now)
            date = [(b"date", formatdate(now, usegmt=True).encode())]
            self._headers = (date if self._config.date_header else []) + list(
                self._config.encoded_headers
            )
        return self._headers

    @default_headers.setter
    def default_headers(self, value: list[tuple[bytes, bytes]]) -> None:
        pass  # uvicorn's tick would set them; they are computed when read


class LoopbackServer(uvicorn.Server):
    """`uvicorn.Server` whose main loop waits for `should_exit` instead of polling it."""

    def __init__(self, config: uvicorn.Config) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._exit: asyncio.Event | None = None
        self._should_exit = False
        super().__init__(config)
        self.server_state = _LazyHeaders(config)

    @property
    def should_exit(self) -> bool:
        return self._should_exit

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._should_exit = value
        loop, event = self._loop, self._exit
        if value and loop is not None and event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: none to wake
                loop.call_soon_threadsafe(event.set)

    async def main_loop(self) -> None:
        self._exit = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        # Set before the loop was known (the setter could not wake it): seen here.
        if not self.should_exit:
            await self._exit.wait()
