"""The live channel, `/api/sync/ws`, against real server processes (DESIGN invariant 10).

A client hears `{"type": "hello", "cursor"}` on connect and `{"type": "changes", "tables",
"cursor"}` right after each commit, from any server process on the same PostgreSQL. On
SQLite a small commit also travels in its notice: `"since"` and `"changes"`, exactly what
the changes feed returns after `since`; a client that does not know these two fields reads
the other three as before.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

KEY = "live-test-key-7f3a"


def ws_url(server, query: str = "") -> str:
    return server.url.replace("http://", "ws://") + "/api/sync/ws" + query


def recv_json(ws, timeout: float = 10.0) -> dict:
    return json.loads(ws.recv(timeout=timeout))


def push_product(server, row_id: str, api_key: str | None = None) -> int:
    with server.client(api_key) as c:
        r = c.post(
            "/api/sync/products",
            json={
                "machineId": "caixa-1",
                "localUpdates": [
                    {"eventId": str(uuid.uuid4()), "record": {"id": row_id, "name": row_id}}
                ],
            },
        )
        assert r.status_code == 200, r.text
        return r.json()["cursor"]


def feed_after(server, since: int, api_key: str | None = None) -> list[dict]:
    with server.client(api_key) as c:
        r = c.get("/api/sync/changes", params={"since": since})
        assert r.status_code == 200, r.text
        return r.json()["changes"]


def expected_notice(
    server, database_url: str, cursor: int, since: int, api_key: str | None = None
) -> dict:
    """The notice of the commit that moved the head from `since` to `cursor`."""
    note = {"type": "changes", "tables": ["products"], "cursor": cursor}
    if database_url.startswith("sqlite"):  # published by the committing process itself
        note.update(since=since, changes=feed_after(server, since, api_key))
    return note


def wait_for(predicate, timeout: float = 10.0, step: float = 0.05):
    """Poll until `predicate()` is truthy (bounded); returns its last value."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(step)
        value = predicate()
    return value


def test_hello_then_changes_right_after_a_push(live_server, database_url):
    with connect(ws_url(live_server, "?machineId=caixa-2"), open_timeout=10) as ws:
        hello = recv_json(ws)
        assert hello["type"] == "hello" and hello["cursor"] == 0
        cursor = push_product(live_server, "pao")
        note = recv_json(ws)
        # What every client reads, older agents included...
        assert {k: note[k] for k in ("type", "tables", "cursor")} == {
            "type": "changes",
            "tables": ["products"],
            "cursor": cursor,
        }
        # ...and, on SQLite, the commit itself: the feed's page after the previous head.
        assert note == expected_notice(live_server, database_url, cursor, 0)
        if database_url.startswith("sqlite"):
            [change] = note["changes"]
            assert change["seq"] == cursor and change["record"]["id"] == "pao"
        previous, cursor = cursor, push_product(live_server, "broa")
        assert recv_json(ws) == expected_notice(live_server, database_url, cursor, previous)

        # A late joiner's hello carries the current head.
        with connect(ws_url(live_server), open_timeout=10) as late:
            hello = recv_json(late)
            assert hello["type"] == "hello" and hello["cursor"] == cursor


def test_stats_count_open_websockets(live_server):
    def live_clients() -> int:
        with live_server.client() as c:
            return c.get("/api/stats").json()["liveClients"]

    assert live_clients() == 0
    with connect(ws_url(live_server, "?machineId=caixa-9"), open_timeout=10) as ws:
        assert recv_json(ws)["type"] == "hello"
        assert live_clients() == 1
        with live_server.client() as c:
            assert c.get("/api/stats").json()["liveMachines"] == ["caixa-9"]
        ws.send("ping")
        assert recv_json(ws) == {"type": "pong"}
    assert wait_for(lambda: live_clients() == 0)


@pytest.mark.postgres
def test_a_push_to_one_server_reaches_the_clients_of_another(server_factory, pg_url):
    one = server_factory(database_url=pg_url)
    two = server_factory(database_url=pg_url)
    with connect(ws_url(two), open_timeout=10) as ws:
        assert recv_json(ws)["type"] == "hello"
        cursor = push_product(one, "sonho")
        assert recv_json(ws) == {"type": "changes", "tables": ["products"], "cursor": cursor}
        # ...and the other way round, through the same channel.
        with connect(ws_url(one), open_timeout=10) as ws_one:
            assert recv_json(ws_one)["type"] == "hello"
            cursor = push_product(two, "bolo")
            assert recv_json(ws_one) == {
                "type": "changes",
                "tables": ["products"],
                "cursor": cursor,
            }
            assert recv_json(ws) == {"type": "changes", "tables": ["products"], "cursor": cursor}


def test_websocket_requires_the_key_when_one_is_configured(server_factory, tmp_path):
    server = server_factory(
        database_url=f"sqlite:///{tmp_path / 'ws.db'}", env={"API_SECRET_KEY": KEY}
    )
    for query, headers in [("", {}), ("?apiKey=wrong", {}), ("", {"x-api-key": "wrong"})]:
        with (
            connect(ws_url(server, query), additional_headers=headers, open_timeout=10) as ws,
            pytest.raises(ConnectionClosed) as closed,
        ):
            ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401

    with connect(ws_url(server), additional_headers={"x-api-key": KEY}, open_timeout=10) as ws:
        assert recv_json(ws)["type"] == "hello"
        cursor = push_product(server, "pao", api_key=KEY)
        assert recv_json(ws) == expected_notice(server, "sqlite", cursor, 0, api_key=KEY)
    with connect(ws_url(server, f"?apiKey={KEY}"), open_timeout=10) as ws:
        assert recv_json(ws)["type"] == "hello"
    assert KEY not in server.settled_output()


def test_a_big_commit_is_announced_without_its_changes(live_server):
    """Over 100 rows, the notice is the plain one on every backend: clients pull."""
    with connect(ws_url(live_server), open_timeout=10) as ws:
        assert recv_json(ws)["type"] == "hello"
        with live_server.client() as c:
            r = c.post(
                "/api/sync/products",
                json={
                    "machineId": "caixa-1",
                    "localUpdates": [
                        {"eventId": str(uuid.uuid4()), "record": {"id": f"p{i}", "name": "x"}}
                        for i in range(101)
                    ],
                },
            )
            assert r.status_code == 200, r.text
        assert recv_json(ws) == {"type": "changes", "tables": ["products"], "cursor": 101}


# -- shops (tenants) -----------------------------------------------------------------------------


def push_to_shop(server, tenant: str | None, row_id: str) -> int:
    headers = {"x-tenant-id": tenant} if tenant else {}
    with server.client() as c:
        r = c.post(
            "/api/sync/products",
            headers=headers,
            json={"localUpdates": [{"eventId": str(uuid.uuid4()), "record": {"id": row_id}}]},
        )
        assert r.status_code == 200, r.text
        return r.json()["cursor"]


def assert_silent(ws, seconds: float = 1.0) -> None:
    """Nothing arrives on `ws` for a while."""
    with pytest.raises(TimeoutError):
        ws.recv(timeout=seconds)


def test_a_shops_sockets_hear_only_that_shops_commits(live_server, database_url):
    with (
        connect(ws_url(live_server, "?machineId=pdv-a&tenantId=loja-a"), open_timeout=10) as a,
        connect(
            ws_url(live_server, "?machineId=pdv-b"),
            additional_headers={"x-tenant-id": "loja-b"},
            open_timeout=10,
        ) as b,
        connect(ws_url(live_server, "?machineId=pdv-d"), open_timeout=10) as d,
    ):
        for ws, tenant in ((a, "loja-a"), (b, "loja-b"), (d, "default")):
            hello = recv_json(ws)
            assert hello["type"] == "hello" and hello["cursor"] == 0
            assert hello["tenantId"] == tenant
        with live_server.client() as c:
            assert c.get("/api/stats", params={"tenantId": "loja-a"}).json()["liveMachines"] == [
                "pdv-a"
            ]
            assert c.get("/api/stats").json()["liveMachines"] == ["pdv-d"]

        cursor = push_to_shop(live_server, "loja-a", "pao-a")
        note = recv_json(a)
        assert note["cursor"] == cursor == 1 and note["tables"] == ["products"]
        if database_url.startswith("sqlite"):  # the commit travels with it: shop A's change
            assert [ch["record"]["id"] for ch in note["changes"]] == ["pao-a"]
        assert_silent(b)
        assert_silent(d, 0.2)

        # Shop B's first notice is its own commit (its own sequence, from 1).
        assert push_to_shop(live_server, "loja-b", "pao-b") == 1
        note = recv_json(b)
        assert note["cursor"] == 1
        if database_url.startswith("sqlite"):
            assert [ch["record"]["id"] for ch in note["changes"]] == ["pao-b"]
        assert push_to_shop(live_server, None, "pao-d") == 1
        assert recv_json(d)["cursor"] == 1
        assert_silent(a, 0.5)


@pytest.mark.postgres
def test_notices_between_server_processes_keep_their_shop(server_factory, pg_url):
    one = server_factory(database_url=pg_url)
    two = server_factory(database_url=pg_url)
    with (
        connect(ws_url(two, "?tenantId=loja-a"), open_timeout=10) as a,
        connect(ws_url(two, "?tenantId=loja-b"), open_timeout=10) as b,
    ):
        assert recv_json(a)["type"] == recv_json(b)["type"] == "hello"
        cursor = push_to_shop(one, "loja-a", "sonho")
        assert recv_json(a) == {"type": "changes", "tables": ["products"], "cursor": cursor}
        assert_silent(b)
        cursor = push_to_shop(one, "loja-b", "bolo")
        assert recv_json(b) == {"type": "changes", "tables": ["products"], "cursor": cursor}
        assert_silent(a, 0.5)


def test_a_socket_for_a_bad_or_forbidden_shop_is_closed(server_factory, tmp_path):
    from tests.server.test_cli_keys import keys_cli

    server = server_factory(database_url=f"sqlite:///{tmp_path / 'ws.db'}")
    issued = keys_cli(server, "issue", "--machine", "pdv-a", "--tenant", "loja-a")
    key = issued.stdout.strip().splitlines()[-1]
    refused = [
        ("?tenantId=loja-b", {}, 4403),  # another shop's socket with this key
        ("", {}, 4403),  # no shop named: the default shop's
        ("?tenantId=loja%20a", {}, 4400),  # not a shop id
        ("?tenantId=loja-a", {"x-tenant-id": "loja-b"}, 4400),  # two shops named
    ]
    for query, headers, code in refused:
        with (
            connect(
                ws_url(server, query),
                additional_headers={"x-api-key": key, **headers},
                open_timeout=10,
            ) as ws,
            pytest.raises(ConnectionClosed) as closed,
        ):
            ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == code, query
    with connect(
        ws_url(server, "?tenantId=loja-a"), additional_headers={"x-api-key": key}, open_timeout=10
    ) as ws:
        assert recv_json(ws)["tenantId"] == "loja-a"
