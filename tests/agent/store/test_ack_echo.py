"""An acknowledgement that brings back the rows this machine wrote (the usual case) leaves
those view rows as they are, and one that brings another version rewrites them; decimals are
stored at their field's scale, the form the server's rows come back in."""

from __future__ import annotations

from decimal import Decimal

from agent.store.models import column_name
from agent.store.store import Store
from protocol import TABLES, parse_change, to_iso

T0 = 1_750_000_000_000


def _stored(s: Store, row_id: str) -> tuple:
    return s.db.execute_sql(
        f"SELECT changed_at, price, {column_name('costPrice')}, digest_hi, digest_lo "
        "FROM products WHERE id = ?",
        (row_id,),
    ).fetchone()


def _write(s: Store, event_id: str, record: dict) -> None:
    s.write([(event_id, parse_change(TABLES["products"], record))], T0)


def test_a_default_decimal_is_stored_at_its_scale(tmp_path):
    s = Store(tmp_path / "a.db", clock=lambda: T0)
    try:
        _write(s, "e1", {"id": "p1", "name": "Pão", "price": "12.5"})
        _, price, cost, _, _ = _stored(s, "p1")
        assert (price, cost) == ("12.50", "0.00")
        assert s.get("products", "p1")["costPrice"] == Decimal("0.00")
    finally:
        s.close()


def test_the_echo_of_our_own_write_does_not_rewrite_the_view_row(tmp_path):
    now = [T0]
    s = Store(tmp_path / "a.db", clock=lambda: now[0])
    try:
        _write(s, "e1", {"id": "p1", "name": "Pão", "price": "12.5"})
        before = _stored(s, "p1")
        echo = s.get("products", "p1")  # what the server sends back: the same row
        now[0] += 60_000
        s.acknowledge(
            [{"eventId": "e1", "status": "applied", "seq": 1}],
            now[0],
            changes=[{"table": "products", "seq": 1, "record": echo}],
            cursor=1,
        )
        assert s.pending_count() == 0 and s.cursor == 1
        assert _stored(s, "p1") == before  # same values, digest and change time

        # The server's version differs (another machine's field): the view takes it, now.
        other = dict(echo, category="Padaria", updatedAt=to_iso(T0 + 1))
        s.acknowledge(
            [], now[0], changes=[{"table": "products", "seq": 2, "record": other}], cursor=2
        )
        row = s.get("products", "p1")
        assert row["category"] == "Padaria"
        changed_at, *_, hi, lo = _stored(s, "p1")
        assert changed_at == now[0] and (hi, lo) != before[3:]
    finally:
        s.close()


def test_a_pending_edit_still_shows_over_an_unchanged_echo(tmp_path):
    s = Store(tmp_path / "a.db", clock=lambda: T0)
    try:
        _write(s, "e1", {"id": "p1", "name": "Pão"})
        echo = s.get("products", "p1")
        _write(s, "e2", {"id": "p1", "name": "Pão doce"})  # not pushed yet
        s.acknowledge(
            [{"eventId": "e1", "status": "applied", "seq": 1}],
            T0,
            changes=[{"table": "products", "seq": 1, "record": echo}],
            cursor=1,
        )
        assert s.get("products", "p1")["name"] == "Pão doce"
        assert s.pending_count() == 1
    finally:
        s.close()
