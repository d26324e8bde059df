"""Lists answered from rows kept as encoded JSON (the server's and the agent's list caches):
the answer's items, and which rows the collection routes' filters keep — the seed's
`/api/orders?start_date=&end_date=` (inclusive, by `createdAt`) and
`/api/order_items?order_id=` — so both apps filter exactly as their SQL did."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Listing:
    """A list's items as JSON (comma-separated, without the brackets) and how many."""

    items_json: bytes
    count: int


class ListedRow(Protocol):
    @property
    def json(self) -> bytes: ...  # the wire record's JSON

    @property
    def created_at(self) -> int | None: ...  # orders: the day-range filter

    @property
    def order_id(self) -> str | None: ...  # order items: the order filter


def joined(rows: Sequence[ListedRow]) -> Listing:
    return Listing(b",".join(r.json for r in rows), len(rows))


def filtered(
    rows: Sequence[ListedRow],
    *,
    order_id: str | None = None,
    created_from: int | None = None,
    created_to: int | None = None,
) -> Listing:
    """The rows a filtered list route answers, in the order given."""
    if order_id is not None:
        rows = [r for r in rows if r.order_id == order_id]
    if created_from is not None or created_to is not None:
        # As SQL compares: a row without createdAt is in no range.
        lo = created_from if created_from is not None else -(2**63)
        hi = created_to if created_to is not None else 2**63
        rows = [r for r in rows if r.created_at is not None and lo <= r.created_at <= hi]
    return joined(rows)
