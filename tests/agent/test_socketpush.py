"""The push channel on its own (agent/sync/socketpush.py): what goes out, which reply resolves
which push, and every way of getting no reply ending `Unreachable`, as a lost HTTP reply."""

from __future__ import annotations

import asyncio
import json

import pytest

from agent.sync.errors import SyncError, Unreachable
from agent.sync.socketpush import PushChannel


def channel() -> tuple[PushChannel, list[dict]]:
    sent: list[dict] = []

    async def send(text: str) -> None:
        sent.append(json.loads(text))

    return PushChannel(send, "abc"), sent


def test_the_message_is_the_batch_body_with_type_and_id_first_and_its_reply_resolves_it():
    async def main() -> None:
        ch, sent = channel()
        first = asyncio.create_task(ch.push({"machineId": "m", "cursor": 3}, '[{"a":1}]', 5))
        second = asyncio.create_task(ch.push({"machineId": "m", "cursor": 4}, "[]", 5))
        await asyncio.sleep(0)
        assert [list(m)[:2] for m in sent] == [["type", "id"], ["type", "id"]]
        assert sent[0] == {
            "type": "push",
            "id": 1,
            "machineId": "m",
            "cursor": 3,
            "events": [{"a": 1}],
        }
        assert ch.waiting == 2
        ch.answered({"type": "pushed", "id": 2, "status": 409, "body": {"resyncRequired": True}})
        ch.answered({"type": "pushed", "id": 1, "status": 200, "body": {"success": True}})
        assert await first == (200, {"success": True})
        assert await second == (409, {"resyncRequired": True})
        assert ch.waiting == 0

    asyncio.run(main())


def test_no_reply_in_time_is_a_timeout_and_a_late_reply_is_dropped():
    async def main() -> None:
        ch, _ = channel()
        with pytest.raises(Unreachable) as failed:
            await ch.push({}, "[]", 0.05)
        assert failed.value.code == SyncError.TIMEOUT and ch.waiting == 0
        ch.answered({"type": "pushed", "id": 1, "status": 200, "body": {}})  # ignored

    asyncio.run(main())


def test_a_closed_socket_fails_the_pushes_waiting_and_refuses_new_ones():
    async def main() -> None:
        ch, sent = channel()
        waiting = asyncio.create_task(ch.push({}, "[]", 5))
        await asyncio.sleep(0)
        ch.close()
        with pytest.raises(Unreachable) as failed:
            await waiting
        assert failed.value.code == SyncError.NETWORK
        with pytest.raises(Unreachable):
            await ch.push({}, "[]", 5)
        assert len(sent) == 1 and not ch.serves("abc")

    asyncio.run(main())


def test_a_malformed_reply_is_unreachable_and_only_the_hellos_database_is_served():
    async def main() -> None:
        ch, _ = channel()
        waiting = asyncio.create_task(ch.push({}, "[]", 5))
        await asyncio.sleep(0)
        ch.answered({"type": "pushed", "id": 1, "status": "200", "body": []})
        with pytest.raises(Unreachable):
            await waiting
        assert ch.serves("abc") and not ch.serves(None) and not ch.serves("other")

    asyncio.run(main())
