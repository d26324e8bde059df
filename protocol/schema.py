"""The four synchronised tables, described once for the server and the agent.

Field names are the wire names the original front end uses (`imageUrlId`, `stock_quantity`,
`costPerUnit`, ...). Every table also carries `updatedAt`, the server-clock time of the
record's last change, which the conflict rule and the reconcile summary rely on.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from functools import cached_property


class Kind(str, Enum):
    TEXT = "text"
    DECIMAL = "decimal"  # exact: Decimal in memory, NUMERIC/TEXT in storage, never a float
    INTEGER = "integer"
    TIMESTAMP = "timestamp"  # epoch milliseconds in memory and storage, ISO 8601 on the wire


@dataclass(frozen=True)
class Field:
    name: str
    kind: Kind
    max_length: int = 0  # TEXT only
    scale: int = 0  # DECIMAL only: digits after the point
    default: int | str | None = None
    counter: bool = False  # may change through commutative `increment` events
    # Bounds on a written value (not on an increment's delta, not on rows read back):
    # a price, total or cost below zero, or a quantity of zero or less, is bad input.
    non_negative: bool = False
    positive: bool = False


@dataclass(frozen=True)
class Table:
    name: str
    fields: tuple[Field, ...]
    entity: str  # singular name used by the seed's event types: product_updated, ...

    # Computed once per table: validation reads them for every key of every pushed record.
    @cached_property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @cached_property
    def _by_name(self) -> dict[str, Field]:
        return {f.name: f for f in self.fields}

    @property
    def counters(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.counter)

    def field(self, name: str) -> Field:
        return self._by_name[name]


# Largest number of significant digits a DECIMAL may carry: 15 keeps every value exactly
# representable as a JSON number that JavaScript clients read back without rounding.
DECIMAL_DIGITS = 15
ID_MAX_LENGTH = 128

PRODUCTS = Table(
    "products",
    (
        Field("name", Kind.TEXT, max_length=200),
        Field("description", Kind.TEXT, max_length=4000),
        Field("price", Kind.DECIMAL, scale=2, non_negative=True),
        Field("category", Kind.TEXT, max_length=100),
        Field("imageUrlId", Kind.TEXT, max_length=1000),
        Field("stock_quantity", Kind.INTEGER, default=0, counter=True),
        Field("createdAt", Kind.TIMESTAMP),
    ),
    entity="product",
)

ORDERS = Table(
    "orders",
    (
        Field("customerName", Kind.TEXT, max_length=200),
        Field("total", Kind.DECIMAL, scale=2, non_negative=True),
        Field("status", Kind.TEXT, max_length=50, default="Pendente"),
        Field("createdAt", Kind.TIMESTAMP),
    ),
    entity="order",
)

ORDER_ITEMS = Table(
    "order_items",
    (
        Field("order_id", Kind.TEXT, max_length=ID_MAX_LENGTH),
        Field("product_id", Kind.TEXT, max_length=ID_MAX_LENGTH),
        Field("quantity", Kind.DECIMAL, scale=3, positive=True),
        Field("price", Kind.DECIMAL, scale=2, non_negative=True),
        Field("createdAt", Kind.TIMESTAMP),
    ),
    entity="order_item",
)

SUPPLIES = Table(
    "supplies",
    (
        Field("name", Kind.TEXT, max_length=200),
        # Stock may go below zero: a PDV sells what the shelf has even if the count says 0.
        Field("stock", Kind.DECIMAL, scale=3, default=0, counter=True),
        Field("unit", Kind.TEXT, max_length=20),
        Field("costPerUnit", Kind.DECIMAL, scale=4, non_negative=True),
        Field("createdAt", Kind.TIMESTAMP),
    ),
    entity="supply",
)

TABLES: dict[str, Table] = {t.name: t for t in (PRODUCTS, ORDERS, ORDER_ITEMS, SUPPLIES)}
TABLE_NAMES: tuple[str, ...] = tuple(TABLES)

# The seed's single-event route names entity and operation in one word: `product_updated`.
ENTITIES: dict[str, Table] = {t.entity: t for t in TABLES.values()}
