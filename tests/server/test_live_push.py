"""A push on the live socket (server/api/live_push.py), against real server processes on both
backends: answered on the same socket with exactly what `POST /api/sync/batch` answers the
same body, errors included, after the same checks (key, machine, shop, body size), counted
in the same metrics, idempotent by eventId like any push."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.server.test_cli_keys import keys_cli

# What our agents send on every request and their socket.
DEFAULT_SHOP = {"x-tenant-id": "default"}


def ws_url(server, query: str = "?machineId=caixa-1") -> str:
    return server.url.replace("http://", "ws://") + "/api/sync/ws" + query


def recv_json(ws: ClientConnection, timeout: float = 10.0) -> dict:
    return json.loads(ws.recv(timeout=timeout))


def socket_push(ws: ClientConnection, ident: object, body: dict) -> dict:
    """Send a push; its `pushed` reply (notices of commits before it are skipped)."""
    ws.send(json.dumps({"type": "push", "id": ident, **body}))
    while True:
        message = recv_json(ws)
        if message["type"] == "pushed":
            assert message["id"] == ident, message
            return message
        assert message["type"] == "changes", message


def http_push(server, body: dict, key: str | None = None) -> httpx.Response:
    """`POST /api/sync/batch` naming the default shop, as a socket with no shop does."""
    with server.client(key) as c:
        return c.post("/api/sync/batch", json=body, headers=DEFAULT_SHOP)


def event(table: str, record: dict, event_id: str | None = None) -> dict:
    return {"eventId": event_id or str(uuid.uuid4()), "table": table, "record": record}


def push_counts(server) -> dict[str, float]:
    """`pdvsync_push_seconds_count` by route: how many pushes each way has answered."""
    text = httpx.get(server.url + "/metrics", timeout=10).text
    counts = {}
    for line in text.splitlines():
        if line.startswith("pdvsync_push_seconds_count{"):
            route = line.split('route="', 1)[1].split('"', 1)[0]
            counts[route] = float(line.rsplit(" ", 1)[1])
    return counts


def test_the_hello_says_the_socket_takes_pushes_for_its_database(live_server):
    with connect(ws_url(live_server), open_timeout=10) as ws:
        hello = recv_json(ws)
    with live_server.client() as c:
        database = c.get("/health").headers["x-pdvsync-database"]
    assert hello["push"] is True and hello["database"] == database.lower()


def test_a_push_on_the_socket_is_answered_as_http_and_applies_once(live_server):
    seed = [event("products", {"id": "pao", "name": "Pão", "stock_quantity": 10})]
    assert http_push(live_server, {"machineId": "caixa-1", "events": seed}).status_code == 200
    sale = [
        event("orders", {"id": "o1", "total": "7.50", "status": "Pago"}),
        event("products", {"id": "pao", "_op": "increment", "stock_quantity": -3}),
    ]
    body = {"machineId": "caixa-1", "cursor": 1, "events": sale}
    before = push_counts(live_server)
    with connect(ws_url(live_server), open_timeout=10) as ws:
        assert recv_json(ws)["type"] == "hello"
        first = socket_push(ws, 1, body)
        again = socket_push(ws, "retry-1", body)  # a re-send after a lost reply
    assert first["status"] == 200 and again["status"] == 200
    reply = first["body"]
    assert set(reply) == {"success", "results", "conflicts", "cursor", "timestamp", "changes"}
    assert reply["success"] is True and reply["cursor"] == 3 and reply["conflicts"] == []
    assert [r["status"] for r in reply["results"]] == ["applied", "applied"]
    with live_server.client() as c:
        feed = c.get("/api/sync/changes", params={"since": 1, "machineId": "caixa-1"}).json()
        stock = c.get("/api/products/pao").json()["record"]["stock_quantity"]
    assert reply["changes"] == {k: feed[k] for k in ("changes", "cursor", "hasMore")}
    # The repeat replays the receipts: same results, nothing applied twice.
    assert [{k: v for k, v in r.items() if k != "duplicate"} for r in again["body"]["results"]] == [
        {k: v for k, v in r.items() if k != "duplicate"} for r in reply["results"]
    ]
    assert stock == 7 and again["body"]["cursor"] == 3
    # HTTP answered the seed only; the socket answered both of its pushes.
    after = push_counts(live_server)
    assert after.get("/api/sync/batch", 0) == before.get("/api/sync/batch", 0)
    assert after["/api/sync/ws"] == before.get("/api/sync/ws", 0) + 2


def test_the_pusher_is_not_told_of_the_commit_its_reply_carries(live_server):
    """A push that pulls after its cursor gets the commit's changes in its reply: a notice
    to its own socket would only cost the other PDVs' notices a message's time. A push
    without a cursor gets no changes back, so its socket is told as any other."""
    with (
        connect(ws_url(live_server, "?machineId=caixa-1"), open_timeout=10) as a,
        connect(ws_url(live_server, "?machineId=caixa-2"), open_timeout=10) as b,
    ):
        head = recv_json(a)["cursor"]
        assert recv_json(b)["type"] == "hello"
        body = {
            "machineId": "caixa-1",
            "cursor": head,
            "events": [event("products", {"id": "sonho", "name": "Sonho"})],
        }
        a.send(json.dumps({"type": "push", "id": 1, **body}))
        before_reply = []
        while (message := recv_json(a))["type"] != "pushed":
            before_reply.append(message)
        reply = message
        first = reply["body"]["cursor"]
        assert before_reply == []  # its own commit: no notice, before the reply or after
        assert reply["status"] == 200 and reply["body"]["changes"]["cursor"] == first
        notice = recv_json(b)
        assert notice["type"] == "changes" and notice["cursor"] == first
        time.sleep(0.3)  # a notice to `a` would be on its way by now
        r = http_push(
            live_server, {"machineId": "caixa-1", "events": [event("products", {"id": "broa"})]}
        )
        assert r.status_code == 200 and "changes" not in r.json()
        second = r.json()["cursor"]
        # The first message `a` gets after its reply is the second commit's notice, alone.
        got = recv_json(a)
        assert got["type"] == "changes" and got["cursor"] == second, got
        if "changes" in got:  # SQLite's carry a small commit's changes, PostgreSQL's do not
            assert [c["record"]["id"] for c in got["changes"]] == ["broa"]
        assert recv_json(b)["cursor"] == second


BAD_BODIES = {
    "invalid event (422, named)": {
        "machineId": "caixa-1",
        "events": [
            event("products", {"id": "ok", "name": "ok"}, "good-1"),
            event("products", {"id": "p6", "price": "muito caro"}, "bad-1"),
        ],
    },
    "unknown table (422)": {"events": [event("nope", {"id": "x"}, "bad-2")]},
    "events not a list (422)": {"events": 3},
    "bad cursor (400)": {"cursor": -1, "events": []},
    "record of another shop (400)": {
        "events": [event("products", {"id": "x", "name": "x", "tenantId": "outra"}, "bad-3")]
    },
    "body names another shop (400)": {"tenantId": "outra", "events": []},
    "body names an invalid shop (400)": {"tenantId": "bad shop!", "events": []},
    "cursor ahead of the head (409)": {"cursor": 999, "events": []},
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_a_refused_push_gets_the_status_and_body_http_gives(live_server, case):
    body = BAD_BODIES[case]
    http = http_push(live_server, body)
    with connect(ws_url(live_server), additional_headers=DEFAULT_SHOP, open_timeout=10) as ws:
        assert recv_json(ws)["type"] == "hello"
        answer = socket_push(ws, 7, body)
    assert http.status_code >= 400
    assert (answer["status"], answer["body"]) == (http.status_code, http.json())
    with live_server.client() as c:
        assert c.get("/api/sync/changes", params={"since": 0}).json()["changes"] == []


def test_a_socket_that_names_no_shop_pushes_for_the_default_shop_only(live_server):
    body = {"tenantId": "outra", "events": [event("products", {"id": "x", "name": "x"})]}
    with connect(ws_url(live_server), open_timeout=10) as ws:
        assert recv_json(ws)["type"] == "hello"
        answer = socket_push(ws, 1, body)
    assert answer["status"] == 400 and answer["body"]["code"] == "tenant_mismatch"


def test_a_push_over_the_body_limit_is_413_as_over_http(server_factory, database_url):
    server = server_factory(database_url=database_url, env={"MAX_BODY_BYTES": "2000"})
    body = {"events": [event("products", {"id": f"p{i}", "name": "x" * 60}) for i in range(20)]}
    http = http_push(server, body)
    with connect(ws_url(server), open_timeout=10) as ws:
        assert recv_json(ws)["type"] == "hello"
        answer = socket_push(ws, 1, body)
        # The socket survives it: a push within the limit goes through.
        small = socket_push(ws, 2, {"events": body["events"][:2]})
    assert http.status_code == 413
    assert (answer["status"], answer["body"]) == (413, http.json())
    assert small["status"] == 200 and small["body"]["cursor"] == 2


def test_a_machine_key_pushes_only_as_its_machine_and_not_once_revoked(
    server_factory, database_url
):
    server = server_factory(database_url=database_url)
    key = keys_cli(server, "issue", "--machine", "caixa-9").stdout.strip().splitlines()[-1]
    keys_cli(server, "issue", "--machine", "caixa-8")  # keys stay required after the revocation
    listed = json.loads(keys_cli(server, "list", "--json").stdout)
    key_id = next(k["id"] for k in listed if "caixa-9" in json.dumps(k))
    spoof = {"machineId": "caixa-1", "events": [event("products", {"id": "s", "name": "s"})]}
    own = {"machineId": "caixa-9", "events": [event("products", {"id": "k", "name": "k"})]}
    with connect(
        ws_url(server, "?machineId=caixa-9"), additional_headers={"x-api-key": key}, open_timeout=10
    ) as ws:
        assert recv_json(ws)["type"] == "hello"
        answer = socket_push(ws, 1, spoof)
        http = http_push(server, spoof, key)
        assert (answer["status"], answer["body"]) == (403, http.json())
        assert socket_push(ws, 2, own)["status"] == 200

        assert keys_cli(server, "revoke", str(key_id)).returncode == 0
        # Each push checks the key (its cache lasts 3 s), before the socket's own recheck
        # (every 5 s) closes the socket.
        refused = None
        deadline = time.monotonic() + 20
        try:
            for n in range(3, 1000):
                late = {"machineId": "caixa-9", "events": [event("products", {"id": f"r{n}"})]}
                answer = socket_push(ws, n, late)
                if answer["status"] != 200:
                    refused = answer
                    break
                assert time.monotonic() < deadline, "the revoked key kept pushing"
                time.sleep(0.2)
        except ConnectionClosed as closed:  # the recheck came first (a slow machine)
            assert closed.rcvd is not None and closed.rcvd.code == 4401
    http = http_push(server, own, key)
    assert http.status_code == 401
    if refused is not None:
        assert (refused["status"], refused["body"]) == (401, http.json())


def test_other_messages_are_still_ignored_and_pings_answered(live_server):
    with connect(ws_url(live_server), open_timeout=10) as ws:
        assert recv_json(ws)["type"] == "hello"
        ws.send("not json")
        ws.send(json.dumps({"type": "something else", "id": 1}))
        ws.send("ping")
        assert recv_json(ws) == {"type": "pong"}


@pytest.mark.postgres
def test_a_push_while_the_database_is_down_is_503_as_over_http(server_factory, own_pg_cluster):
    cluster = own_pg_cluster
    server = server_factory(database_url=cluster.createdb("down"))
    body = {"events": [event("products", {"id": "p", "name": "x"})]}
    with connect(ws_url(server), additional_headers=DEFAULT_SHOP, open_timeout=10) as ws:
        assert recv_json(ws)["type"] == "hello"
        assert socket_push(ws, 1, body)["status"] == 200
        cluster.stop()
        # The first push after the loss meets a pooled connection the database dropped
        # (it was a 500 over HTTP until server/pushdb.py stopped rolling back there).
        http = http_push(server, {"events": [event("products", {"id": "q"})]})
        answer = socket_push(ws, 2, {"events": [event("products", {"id": "q"})]})
        assert http.status_code == 503 and http.json()["code"] == "database_unavailable"
        assert (answer["status"], answer["body"]) == (503, http.json())
        ws.send("ping")  # the socket is still there
        assert recv_json(ws) == {"type": "pong"}
    assert not any("Traceback" in line for line in server.output)
