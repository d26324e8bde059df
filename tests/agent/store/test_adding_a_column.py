"""Adding a column is one declaration in protocol/schema.py plus one migration calling
`add_view_columns`: nothing else of the agent's store is edited. Proven in a fresh Python
process whose schema declares a new field (`barcode`) and whose migrations end with the
README's migration 4; the store file was written by today's agent, when front ends already
sent `barcode` as a field nobody declared."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from agent.store.store import Store
from tests.agent.store.conftest import T0, ch, pulled, server_product

# Runs in the fresh process: declare the field, add the migration, open the store.
NEXT_RELEASE = textwrap.dedent(
    """
    import dataclasses, json, sys
    from protocol import schema
    from protocol.schema import Field, Kind

    products = schema.TABLES["products"]
    declared = dataclasses.replace(
        products, fields=(*products.fields, Field("barcode", Kind.TEXT, max_length=64))
    )
    schema.TABLES["products"] = declared          # 1. the declaration
    schema.ENTITIES["product"] = declared

    from agent.store import migrations
    from agent.store.migration_steps import add_view_columns

    def m0004_barcode(db):                        # 2. the migration
        add_view_columns(db, "products", [("barcode", "text", None)])

    migrations.MIGRATIONS.append((4, "barcode", m0004_barcode))
    migrations.LATEST = 4

    from agent.store.store import Store
    from protocol import parse_change

    s = Store(sys.argv[1])
    s.write([("e9", parse_change(declared, {"id": "p3", "barcode": "333"}))], 1_750_000_000_000)
    raw = s.db.execute_sql("SELECT id, barcode, extra FROM products ORDER BY id").fetchall()
    print(json.dumps({
        "p1": s.get("products", "p1"),
        "p2": s.get("products", "p2"),
        "p3": s.get("products", "p3"),
        "raw": raw,
        "stale_digests": s.check_digests(),
        "diagnostics": sorted(s.diagnostics()["products"]["missingByField"]),
        "since": sorted(r["id"] for r in s.since("products", None)),
    }, default=str))
    s.close()
    """
)


def test_a_declared_field_and_one_migration_are_all_the_store_needs(tmp_path):
    path = tmp_path / "agent.db"
    s = Store(path)
    # Today: `barcode` is undeclared, kept with its record (a pulled row and a local write).
    s.apply_pulled(pulled(server_product("p1", T0, barcode="111")), 1)
    s.write([("e1", ch("products", {"id": "p2", "name": "Bolo", "barcode": "222"}))], T0)
    assert s.get("products", "p2")["barcode"] == "222"
    s.close()

    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", NEXT_RELEASE, str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    # The values moved from the undeclared fields into the new column, once each.
    assert got["raw"] == [["p1", "111", None], ["p2", "222", None], ["p3", "333", None]]
    assert (got["p1"]["barcode"], got["p2"]["barcode"], got["p3"]["barcode"]) == (
        "111",
        "222",
        "333",
    )
    assert got["p2"]["name"] == "Bolo"
    assert got["stale_digests"] == 0  # the migration recomputed what it changed
    assert "barcode" not in got["diagnostics"]  # not an expected field: not counted
    assert got["since"] == ["p1", "p2", "p3"]
