"""What a restore must do after the backup's data is in: keep the replaced database's
identity, and make every cursor handed out before the restore unusable.

Cursors handed out before a restore may be past what the backup holds, or even below the
head once new changes arrive: every shop's sequence jumps over a gap (RESTORE_GAP) no change
is ever numbered in, and a cursor inside it is told to resync (server/pull.py,
check_cursor). A shop the replaced database had and the backup has not gets its gap too: its
PDVs' cursors are as stale. A backup from before database identities gets the replaced
database's identity: it is the same shop's data, and PDVs must resync with it, not stop as
for another database.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import peewee as pw

# Sequence numbers skipped after a restore.
RESTORE_GAP = 10**9


@dataclass
class Before:
    """What the replaced database held that the restore must honour: its identity, and each
    shop's sequence head (the cursors its PDVs may hold)."""

    database_id: int | None = None
    heads: dict[str, int] = field(default_factory=dict)


def state_before(db: pw.Database) -> Before:
    """The identity and sequence heads of a database of any schema version (before
    migration 0003 it has one shop, the default one)."""
    before = Before()
    if "sync_state" not in db.get_tables():
        return before
    shops = any(c.name == "tenant_id" for c in db.get_columns("sync_state"))
    shop = "tenant_id" if shops else "'default'"
    rows = db.execute_sql(
        f"SELECT {shop}, key, value FROM sync_state WHERE key IN ('seq', 'database_id')"
    ).fetchall()
    for tenant, key, value in rows:
        if key == "database_id":
            before.database_id = int(value)
        else:
            before.heads[str(tenant)] = int(value)
    return before


def has_identity(db: pw.Database) -> bool:
    """Whether a restored database (of any schema version) has its own identity."""
    if "sync_state" not in db.get_tables():
        return False
    row = db.execute_sql("SELECT 1 FROM sync_state WHERE key = 'database_id'").fetchone()
    return row is not None


def open_gaps(db: pw.Database, before: Before, *, had_identity: bool) -> None:
    """On the restored database, migrated to the latest schema: the replaced database's
    identity when the backup had none, and the gap in every shop's sequence."""
    p = db.param
    with db.atomic():
        if not had_identity and before.database_id:
            db.execute_sql(
                f"UPDATE sync_state SET value = {p} WHERE tenant_id = '' AND key = 'database_id'",
                (before.database_id,),
            )
        heads = {
            str(t): int(v)
            for t, v in db.execute_sql(
                "SELECT tenant_id, value FROM sync_state WHERE key = 'seq' AND tenant_id <> ''"
            ).fetchall()
        }
        for tenant in sorted(set(heads) | set(before.heads)):
            head = heads.get(tenant, 0)
            # The new head is the gap's upper end; every cursor of the replaced database (at
            # most its head) lies strictly inside the gap.
            high = head + max(RESTORE_GAP, before.heads.get(tenant, 0) - head + 1)
            for key, value in (
                ("seq", high),
                ("restore_gap_low", head),
                ("restore_gap_high", high),
            ):
                db.execute_sql(
                    f"DELETE FROM sync_state WHERE tenant_id = {p} AND key = {p}", (tenant, key)
                )
                db.execute_sql(
                    f"INSERT INTO sync_state (tenant_id, key, value) VALUES ({p}, {p}, {p})",
                    (tenant, key, value),
                )
