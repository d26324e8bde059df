"""The hub's notices with changes: coalesced only while contiguous and small, otherwise the
plain notice every client understands."""

from __future__ import annotations

import asyncio

from protocol import loads
from server.hub import MAX_LIVE_CHANGES, LiveHub, _Client


class FakeSocket:
    def __init__(self) -> None:
        self.sent: list[dict] = []

    async def send_text(self, text: str) -> None:
        self.sent.append(loads(text))


def change(seq: int) -> dict:
    return {
        "table": "products",
        "seq": seq,
        "record": {"id": f"p{seq}", "updatedAt": "2030-01-01T00:00:00.000Z"},
    }


def deliver(publishes) -> list[dict]:
    """Publish everything before the client's sender runs once, then let it send."""

    async def main() -> list[dict]:
        hub = LiveHub()
        ws = FakeSocket()
        client = _Client(ws, "caixa-1", "default")
        hub._shops["default"] = {client}
        for args in publishes:
            hub.publish("default", *args)
            hub.publish("another-shop", *args)  # never reaches this shop's socket
        sender = asyncio.create_task(hub._send_loop(client))
        await asyncio.sleep(0.01)
        sender.cancel()
        return ws.sent

    return asyncio.run(main())


def test_one_commit_travels_with_its_notice():
    assert deliver([(["products"], 3, 2, [change(3)])]) == [
        {"type": "changes", "tables": ["products"], "cursor": 3, "since": 2, "changes": [change(3)]}
    ]


def test_contiguous_commits_coalesce_with_all_their_changes():
    sent = deliver(
        [(["products"], 3, 2, [change(3)]), (["products"], 5, 3, [change(4), change(5)])]
    )
    assert sent == [
        {
            "type": "changes",
            "tables": ["products"],
            "cursor": 5,
            "since": 2,
            "changes": [change(3), change(4), change(5)],
        }
    ]


def test_a_gap_a_plain_notice_or_too_many_changes_make_the_notice_plain():
    plain = {"type": "changes", "tables": ["products"], "cursor": 9}
    # The second commit does not follow the first (published out of order): plain.
    assert deliver(
        [(["products"], 9, 7, [change(8), change(9)]), (["products"], 7, 6, [change(7)])]
    ) == [plain]
    # A commit too big to carry (or a PostgreSQL notice) in the queue: plain.
    assert deliver([(["products"], 3, 2, [change(3)]), (["products"], 9, 3, None)]) == [plain]
    assert deliver([(["products"], 9, 3, None), (["products"], 10, 9, [change(10)])]) == [
        {**plain, "cursor": 10}
    ]
    many = [change(i) for i in range(3, 3 + MAX_LIVE_CHANGES)]
    assert deliver(
        [(["products"], 2, 1, [change(2)]), (["products"], 2 + MAX_LIVE_CHANGES, 2, many)]
    ) == [{**plain, "cursor": 2 + MAX_LIVE_CHANGES}]
