"""The synchronised tables of the shop, described once for the server and the agent.

Adding a table or a column is a declaration here plus a migration on each side (see the
README, "Adding a column"); models, SQL, validation, checksums and the API documentation
all follow from it.

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
    BOOLEAN = "boolean"
    JSON = "json"  # any JSON value (a recipe's components); canonical JSON text in storage


@dataclass(frozen=True)
class Field:
    name: str
    kind: Kind
    max_length: int = 0  # TEXT: characters; JSON: bytes of its canonical text
    scale: int = 0  # DECIMAL only: digits after the point
    # A new row's value before its first patch, and what a migration adding the column
    # writes into the rows already there. JSON defaults are given as JSON text.
    default: bool | int | str | None = None
    counter: bool = False  # may change through commutative `increment` events
    # Bounds on a written value (not on an increment's delta, not on rows read back):
    # a price, total or cost below zero, or a quantity of zero or less, is bad input.
    non_negative: bool = False
    positive: bool = False
    # The shop's front end expects it filled: `GET /api/sync/diagnostics` counts the rows
    # where it is NULL or empty (the seed's diagnostics).
    expected: bool = False


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

    @property
    def expected(self) -> tuple[str, ...]:
        """The fields the diagnostics count when missing (see `Field.expected`)."""
        return tuple(f.name for f in self.fields if f.expected)

    def field(self, name: str) -> Field:
        return self._by_name[name]

    def find(self, name: str) -> Field | None:
        return self._by_name.get(name)


# Largest number of significant digits a DECIMAL may carry: 15 keeps every value exactly
# representable as a JSON number that JavaScript clients read back without rounding.
DECIMAL_DIGITS = 15
ID_MAX_LENGTH = 128

# Column lengths are generous versions of the original server's VARCHARs: they bound what one
# record may carry, they are not a display format.

PRODUCTS = Table(
    "products",
    (
        Field("name", Kind.TEXT, max_length=255, expected=True),
        Field("description", Kind.TEXT, max_length=4000),
        Field("price", Kind.DECIMAL, scale=2, non_negative=True, expected=True),
        Field("costPrice", Kind.DECIMAL, scale=2, default=0, non_negative=True, expected=True),
        Field("category", Kind.TEXT, max_length=255, expected=True),
        Field("imageUrlId", Kind.TEXT, max_length=1000),
        Field("stock_quantity", Kind.INTEGER, default=0, counter=True, expected=True),
        Field("isActive", Kind.BOOLEAN, default=True, expected=True),
        Field("createdAt", Kind.TIMESTAMP),
    ),
    entity="product",
)

ORDERS = Table(
    "orders",
    (
        Field("orderNumber", Kind.TEXT, max_length=255, expected=True),
        Field("customerName", Kind.TEXT, max_length=255, expected=True),
        Field("userId", Kind.TEXT, max_length=255),
        Field("cashRegisterId", Kind.TEXT, max_length=255),
        Field("paymentMethod", Kind.TEXT, max_length=100, expected=True),
        Field("total", Kind.DECIMAL, scale=2, non_negative=True, expected=True),
        Field("totalCost", Kind.DECIMAL, scale=2, default=0, non_negative=True),
        Field("status", Kind.TEXT, max_length=50, default="Pendente", expected=True),
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
        Field("name", Kind.TEXT, max_length=255, expected=True),
        Field("sku", Kind.TEXT, max_length=100, default=""),
        Field("category", Kind.TEXT, max_length=120, default="Geral", expected=True),
        Field("type", Kind.TEXT, max_length=20, default="ingredient", expected=True),
        # Stock may go below zero: a PDV sells what the shelf has even if the count says 0.
        Field("stock", Kind.DECIMAL, scale=3, default=0, counter=True, expected=True),
        Field("unit", Kind.TEXT, max_length=20, expected=True),
        Field("costPerUnit", Kind.DECIMAL, scale=4, non_negative=True, expected=True),
        Field("purchaseFormat", Kind.TEXT, max_length=30, default="unidade", expected=True),
        Field("packageCost", Kind.DECIMAL, scale=2, non_negative=True, expected=True),
        Field("packageQuantity", Kind.DECIMAL, scale=3, non_negative=True, expected=True),
        Field("supplier", Kind.TEXT, max_length=255),
        Field("lastPurchaseDate", Kind.TIMESTAMP),
        Field("expirationDate", Kind.TIMESTAMP),
        Field("minStock", Kind.DECIMAL, scale=3, default=0, non_negative=True, expected=True),
        Field("isActive", Kind.BOOLEAN, default=True, expected=True),
        Field("createdAt", Kind.TIMESTAMP),
    ),
    entity="supply",
)

# The bakery's recipes ("fichas técnicas"): what a product is made of and what it costs.
TECHNICAL_SHEETS = Table(
    "technical_sheets",
    (
        Field("name", Kind.TEXT, max_length=255, expected=True),
        Field("description", Kind.TEXT, max_length=4000),
        Field("type", Kind.TEXT, max_length=50, default="base"),
        # [{supplyId, quantity, unit, ...}, ...]: the front end's shape, kept as it sends it.
        Field("components", Kind.JSON, max_length=65536, default="[]", expected=True),
        Field("steps", Kind.TEXT, max_length=20000),
        Field("yield", Kind.TEXT, max_length=255),
        Field("totalCost", Kind.DECIMAL, scale=2, default=0, non_negative=True, expected=True),
        Field("suggestedPrice", Kind.DECIMAL, scale=2, default=0, non_negative=True),
        Field("preparationTime", Kind.INTEGER, non_negative=True),  # minutes
        Field("laborCost", Kind.DECIMAL, scale=2, default=0, non_negative=True),
        Field("fixedCost", Kind.DECIMAL, scale=2, default=0, non_negative=True),
        Field("isActive", Kind.BOOLEAN, default=True, expected=True),
        Field("createdAt", Kind.TIMESTAMP),
    ),
    entity="technical_sheet",
)

TABLES: dict[str, Table] = {
    t.name: t for t in (PRODUCTS, ORDERS, ORDER_ITEMS, SUPPLIES, TECHNICAL_SHEETS)
}
TABLE_NAMES: tuple[str, ...] = tuple(TABLES)

# The seed's single-event route names entity and operation in one word: `product_updated`.
ENTITIES: dict[str, Table] = {t.entity: t for t in TABLES.values()}
