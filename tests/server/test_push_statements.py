"""Ids, event ids and values that SQL text treats specially (quotes, backslashes, percent
signs, braces, commas, the word NULL) go through a push's statements (server/pushdb.py binds
some parameters itself on PostgreSQL) and come back as they were; a repeated push finds
their receipts."""

from __future__ import annotations

from protocol.messages import parse_table_push
from server.service import SyncService

AWKWARD = ["a%sb", "c%%d", "e'f", 'g"h', "i\\j", "k{l}", "m,n", "NULL", "o p", "\u00e7\u2603"]


def test_awkward_text_goes_through_a_push_and_back(service: SyncService) -> None:
    body = {
        "machineId": "caixa%s",
        "cursor": 0,
        "localUpdates": [
            {
                "eventId": f"ev%s{i}'\\",
                "record": {"id": x, "name": x + "%s'\\\"", "price": "1.5", "corFav%": "x%s{}"},
            }
            for i, x in enumerate(AWKWARD)
        ],
    }
    request = parse_table_push("products", body)
    results, head, page = service.push_and_pull("products", request.machine_id, request.items, 0)
    assert [r["status"] for r in results] == ["applied"] * len(AWKWARD)
    assert {r["id"] for r in page["synced"]} == set(AWKWARD)
    again, head_again, _ = service.push_and_pull(
        "products", request.machine_id, request.items, head
    )
    assert all(r.get("duplicate") for r in again) and head_again == head
    live = {r["id"]: r for r in service.list_live("products")}
    assert set(live) == set(AWKWARD)
    for x in AWKWARD:
        assert live[x]["name"] == x + "%s'\\\"" and live[x]["corFav%"] == "x%s{}"
