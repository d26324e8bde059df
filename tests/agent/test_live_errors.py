"""The live socket outlives a bug in handling one message: the socket is dropped (polling
takes over, the badge says so) and opened again, instead of the live task ending silently
with the badge still saying live."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from unittest.mock import MagicMock

from agent.sync import live as live_module
from agent.sync.live import LiveSocket


class _FakeSocket:
    def __init__(self, messages: list[str]) -> None:
        self.messages = messages

    async def __aenter__(self) -> _FakeSocket:
        return self

    async def __aexit__(self, *exc: object) -> bool:
        return False

    def __aiter__(self):
        return self._each()

    async def _each(self):
        for message in self.messages:
            yield message


def test_a_failure_handling_a_message_drops_the_socket_and_opens_it_again(monkeypatch):
    async def main() -> tuple[int, list[bool]]:
        ctx = MagicMock()
        ctx.stopping = False
        ctx.reconnect = asyncio.Event()
        ctx.client.database = None
        ctx.settings = SimpleNamespace(server_url="http://127.0.0.1:1", api_key="k")
        ctx.tenant = "default"
        states: list[bool] = []
        ctx.board.update.side_effect = lambda live: states.append(live)
        socket = LiveSocket(ctx)
        opened = 0

        def connect(*args, **kwargs):
            nonlocal opened
            opened += 1
            if opened == 2:
                ctx.stopping = True  # the second socket is the last one
            return _FakeSocket(['{"type": "changes", "cursor": 1}'])

        async def broken(message):
            raise RuntimeError("a bug in handling a notice")

        monkeypatch.setattr(live_module, "ws_connect", connect)
        monkeypatch.setattr(live_module, "_FIRST_DELAY_S", 0.01)
        socket._notice = broken  # type: ignore[method-assign]
        await asyncio.wait_for(socket.run(), 5)
        return opened, states

    opened, states = asyncio.run(main())
    assert opened == 2
    assert states == [True, False, True, False]  # down after each failure, then up again
