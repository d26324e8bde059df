"""What the POS reads on the loopback API, from the local views (`shadow + pending writes`),
so the POS sees its own writes while offline: the collections as the server serves them,
and the seed's read of a table by its client's `lastSync` (`GET /api/sync/{table}`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from protocol import ProtocolError, parse_ms, to_iso
from protocol.messages import parse_last_sync, table_named
from protocol.records import parse_id
from protocol.schema import Table
from webapi import ok, ok_items

from ..store.store import Store
from . import openapi as doc
from .deps import EngineDep, StoreDep
from .shop import ShopDep
from .watch import AfterQuery, WaitersDep, WaitQuery, changed_after

COLLECTIONS = ("products", "orders", "order_items", "supplies", "technical_sheets")

router = APIRouter()


@router.get("/api/sync/{table}", **doc.since_read())
def since(
    table: Annotated[str, Path(json_schema_extra=doc.table_param())],
    store: StoreDep,
    engine: EngineDep,
    _shop: ShopDep,
    lastSync: str | None = Query(
        None,
        description="when the front end last read (its own clock, ISO 8601 or epoch ms); "
        "every row and deletion changed at or after it (minus a safety margin) is returned, "
        "duplicates included. None: every row",
    ),
) -> Response:
    name = table_named(table).name
    last_sync = parse_last_sync(_query_instant(lastSync))
    if last_sync is None:  # every row: kept serialised (agent/store/listcache.py)
        rows = store.since_all(name)
        return ok_items("data", rows.items_json, count=rows.count, timestamp=to_iso(engine.now()))
    data = store.since(name, last_sync)
    return ok(data=data, count=len(data), timestamp=to_iso(engine.now()))


def _query_instant(text: str | None) -> str | int | None:
    """A timestamp from a query, where everything is text: digits alone are epoch
    milliseconds (a bounded number of them; longer is out of range, refused as text)."""
    if text is not None and text.isascii() and text.isdigit() and len(text) <= 16:
        return int(text)
    return text


@router.get("/api/products", **doc.listing("products"))
def products(store: StoreDep, _shop: ShopDep) -> Response:
    return ok_items("products", store.listing("products").items_json)


@router.get("/api/supplies", **doc.listing("supplies"))
def supplies(store: StoreDep, _shop: ShopDep) -> Response:
    return ok_items("supplies", store.listing("supplies").items_json)


@router.get("/api/technical_sheets", **doc.listing("technical_sheets"))
def technical_sheets(store: StoreDep, _shop: ShopDep) -> Response:
    return ok_items("technical_sheets", store.listing("technical_sheets").items_json)


@router.get("/api/order_items", **doc.listing("order_items"))
def order_items(store: StoreDep, _shop: ShopDep, order_id: str | None = None) -> Response:
    return ok_items("order_items", store.listing("order_items", order_id=order_id).items_json)


@router.get("/api/orders", **doc.listing("orders", 400, 422))
def orders(
    store: StoreDep, _shop: ShopDep, start_date: str | None = None, end_date: str | None = None
) -> Response:
    lo, hi = day_range(start_date, end_date)
    found = store.listing("orders", created_from=lo, created_to=hi)
    return ok_items("orders", found.items_json, total=found.count)


def must_exist(store: Store, table: Table, collection: str, row_id: str) -> None:
    """404 unless the record is in the POS's view (422 when `row_id` is no valid id)."""
    if store.get(table.name, parse_id(row_id)) is None:
        raise ProtocolError("not_found", f"{collection}/{row_id[:60]} not found", status=404)


def _get_route(collection: str) -> None:
    table = table_named(collection)

    @router.get(f"/api/{collection}/{{row_id}}", **doc.get_one(table))
    async def get_one(
        row_id: str,
        store: StoreDep,
        _shop: ShopDep,
        waiters: WaitersDep,
        after: AfterQuery = None,
        wait: WaitQuery = None,
    ) -> Response:
        # On the event loop: one indexed read (WAL: never waits for a writer), cheaper than
        # the hop to a worker thread and back that a POS polling a record paid every time.
        # With `after`/`wait` (the long-poll of watch.py on this read): read once the store
        # changed after `after`, answered with the token taken before the read.
        token = None
        if after is not None or wait is not None:
            await changed_after(waiters, after, wait)
            token = waiters.feed.token
        record = store.get(table.name, parse_id(row_id))
        if record is None:
            raise ProtocolError("not_found", f"{collection}/{row_id[:60]} not found", status=404)
        return ok(record=record) if token is None else ok(record=record, token=token)


for _collection in COLLECTIONS:
    _get_route(_collection)


def day_range(start: str | None, end: str | None) -> tuple[int | None, int | None]:
    """`start_date`/`end_date` (a day, or a timestamp) as inclusive epoch-ms bounds."""

    def bound(text: str | None, suffix: str, name: str) -> int | None:
        if not text:
            return None
        text = text.strip()
        return parse_ms(text + suffix if len(text) == 10 else text, name)

    lo = bound(start, "T00:00:00Z", "start_date")
    hi = bound(end, "T23:59:59.999Z", "end_date")
    if lo is not None and hi is not None and lo > hi:
        raise ProtocolError("invalid_date_range", "start_date is after end_date", status=400)
    return lo, hi
