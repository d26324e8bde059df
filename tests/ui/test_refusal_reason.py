"""A refused event's reason reaches the details window in Portuguese."""

from __future__ import annotations

from agent.store.store import Store
from agent.ui.details import refusal_label
from protocol import TABLES, parse_change


def test_reason_code_of_a_dead_letter_is_kept_and_translated(tmp_path, qapp):
    store = Store(tmp_path / "agent.db")
    try:
        store.write(
            [("e1", parse_change(TABLES["products"], {"id": "p1", "name": "x"}))], 1_800_000_000_000
        )
        store.acknowledge(
            [
                {
                    "eventId": "e1",
                    "status": "rejected",
                    "reason": "unknown_record",
                    "error": "products/p1 does not exist",
                }
            ],
            1_800_000_000_001,
        )
        (dead,) = store.dead_letters()
        assert dead.reason == "unknown_record"
        label = refusal_label(dead.reason, dead.last_error)
        assert label.startswith("o registro não existe no servidor")
        assert refusal_label("some_new_code", "raw text") == "raw text"
        assert (
            refusal_label("part_of_refused_sale", "part of a sale the server refused")
            == "parte de uma venda recusada pelo servidor"
        )
        assert refusal_label(None, None) == "recusado pelo servidor"
    finally:
        store.close()
