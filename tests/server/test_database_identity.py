"""The database identity on the wire (server/identity.py): every answer names the database,
and a client that says which database it expects is refused, with nothing applied, by a
server that came back on another one (e.g. a lost .env falling back to an empty SQLite file)."""

from __future__ import annotations

import re
import uuid

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from server.identity import HEADER


def push(client, expected: str | None, record: dict):
    headers = {HEADER: expected} if expected else {}
    return client.post(
        "/api/sync/products",
        headers=headers,
        json={
            "machineId": "caixa-1",
            "localUpdates": [{"eventId": str(uuid.uuid4()), "record": record}],
        },
    )


def test_every_answer_names_the_database_and_a_mismatch_applies_nothing(live_server):
    with live_server.client() as c:
        ident = c.get("/health").headers[HEADER]
        assert re.fullmatch(r"[0-9a-f]{16}", ident)
        assert c.get("/api/products").headers[HEADER] == ident
        assert c.get("/api/nothing-here").headers[HEADER] == ident  # errors too

        other = format(int(ident, 16) ^ 1, "016x")
        r = push(c, other, {"id": "p1", "name": "Pão"})
        assert r.status_code == 409, r.text
        assert r.json()["code"] == "database_changed" and r.json()["database"] == ident
        assert r.headers[HEADER] == ident
        assert c.get("/api/products").json()["products"] == []  # nothing applied
        r = c.get("/api/sync/changes", params={"since": 0}, headers={HEADER: other})
        assert r.status_code == 409

        assert push(c, ident, {"id": "p1", "name": "Pão"}).status_code == 200
        assert push(c, ident.upper(), {"id": "p2", "name": "Sonho"}).status_code == 200
        assert (
            push(c, None, {"id": "p3", "name": "Rosca"}).status_code == 200
        )  # seed clients send none
        assert {p["id"] for p in c.get("/api/products").json()["products"]} == {"p1", "p2", "p3"}


def test_the_identity_survives_a_restart_and_differs_between_databases(server_factory, tmp_path):
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    first = server_factory(database_url=url)
    with first.client() as c:
        ident = c.get("/health").headers[HEADER]
    first.stop()
    again = server_factory(database_url=url)
    with again.client() as c:
        assert c.get("/health").headers[HEADER] == ident
    other = server_factory(database_url=f"sqlite:///{tmp_path / 'empty.db'}")
    with other.client() as c:
        assert c.get("/health").headers[HEADER] != ident


def test_the_live_socket_is_refused_on_another_database(live_server):
    with live_server.client() as c:
        ident = c.get("/health").headers[HEADER]
    url = live_server.url.replace("http://", "ws://") + "/api/sync/ws?machineId=caixa-1"
    with connect(url, additional_headers={HEADER: ident}, open_timeout=10):
        pass
    with (
        pytest.raises(InvalidStatus) as refused,
        connect(url, additional_headers={HEADER: "0" * 16}, open_timeout=10),
    ):
        pass
    assert refused.value.response.status_code == 403
