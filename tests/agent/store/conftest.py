"""Record builders and the store fixture of the store's tests."""

from __future__ import annotations

import pytest

from agent.store.store import Store
from protocol import TABLES, parse_change, to_iso

T0 = 1_750_000_000_000  # a fixed instant: the store never reads the clock itself


def ch(table: str, record: dict):
    return parse_change(TABLES[table], record)


def server_product(row_id: str, updated_at: int, **fields) -> dict:
    """A product as the server sends it in a pull (every field, wire form)."""
    record = {
        "id": row_id,
        "name": None,
        "description": None,
        "price": None,
        "costPrice": 0,
        "category": None,
        "imageUrlId": None,
        "stock_quantity": 0,
        "isActive": True,
        "createdAt": to_iso(T0),
        "updatedAt": to_iso(updated_at),
    }
    record.update(fields)
    return record


def pulled(*records: dict, table: str = "products") -> list[dict]:
    return [{"table": table, "seq": i + 1, "record": r} for i, r in enumerate(records)]


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "agent.db")
    yield s
    s.close()
