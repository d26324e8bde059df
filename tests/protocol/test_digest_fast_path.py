"""`row_digest` takes a shorter path for rows without undeclared fields; it must give the
digest the general rule gives (the agents and every stored digest depend on it), for any
row of any table: random values of every kind, null fields, stored forms (a boolean as 1,
a decimal as NUMERIC text)."""

from __future__ import annotations

import hashlib
import json
import random
from decimal import Decimal
from typing import Any

import pytest

from protocol import TABLES, Kind, row_digest
from protocol.extras import canonical_json


def _reference_digest(table: Any, row: dict[str, Any]) -> int:
    """The rule as it was written before the fast path (kept here as the reference)."""

    def canonical(f: Any, value: Any) -> Any:
        if f.kind is Kind.DECIMAL:
            return f"{Decimal(value):.{f.scale}f}"
        if f.kind is Kind.TEXT:
            return str(value)
        if f.kind is Kind.BOOLEAN:
            return bool(value)
        if f.kind is Kind.JSON:
            return canonical_json(value)
        return int(value)

    pairs = [[f.name, canonical(f, v)] for f in table.fields if (v := row.get(f.name)) is not None]
    extra = row.get("_extra")
    if extra:
        pairs += [[k, canonical_json(v)] for k, v in extra.items() if v is not None]
    pairs.sort()
    text = json.dumps(
        [str(row["id"]), int(row["updatedAt"]), pairs], ensure_ascii=False, separators=(",", ":")
    )
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def _value(kind: Kind, rng: random.Random) -> Any:
    if rng.random() < 0.2:
        return None
    if kind is Kind.TEXT:
        return rng.choice(
            ["", "Pão", 'a"b\\c', "ç\u00e3\u2603", "x" * 50, "\n\t\x01\x7f", "\U0001f600"]
        )
    if kind is Kind.DECIMAL:
        return rng.choice([Decimal("0"), Decimal("2.50"), Decimal("1.2345"), "3.1000", 7])
    if kind is Kind.BOOLEAN:
        return rng.choice([True, False, 1, 0])
    if kind is Kind.JSON:
        return rng.choice([[], {"b": 1, "a": [Decimal("1.5"), "x"]}, "texto", 3])
    return rng.choice([0, 5, 1_700_000_000_000, "12"])


@pytest.mark.parametrize("table_name", list(TABLES))
def test_the_fast_digest_is_the_rules_digest(table_name: str) -> None:
    table = TABLES[table_name]
    rng = random.Random(table_name)
    for i in range(300):
        row_id = rng.choice([f"r{i}", f'r"{i}\\', f"r{i}\u00e7\U0001f600"])
        row: dict[str, Any] = {"id": row_id, "updatedAt": 1_700_000_000_000 + i}
        for f in table.fields:
            row[f.name] = _value(f.kind, rng)
        if rng.random() < 0.3:
            row["_extra"] = {rng.choice(["zeta", "alpha", "name"]): rng.choice([1, "x", None])}
        assert row_digest(table, row) == _reference_digest(table, row)
