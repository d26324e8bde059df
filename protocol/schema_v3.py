"""Schema version 3 (the seed's whole shop schema), frozen: what the server's migration 0003
and the agent store's migration 3 add, from one list.

Both sides must give the rows already there the same values, or their reconcile digests
disagree and every PDV reports a divergence after upgrading. Frozen: a later column goes in
a later version's list (schema_v4.py ...), never here, and never from today's declarations.
"""

from __future__ import annotations

from typing import Any

# (column name, kind, value for the rows already there) per existing table.
Column = tuple[str, str, Any]

NEW_COLUMNS: dict[str, list[Column]] = {
    "products": [("cost_price", "decimal", 0), ("is_active", "boolean", True)],
    "orders": [
        ("order_number", "text", None),
        ("user_id", "text", None),
        ("cash_register_id", "text", None),
        ("payment_method", "text", None),
        ("total_cost", "decimal", 0),
    ],
    "supplies": [
        ("sku", "text", ""),
        ("category", "text", "Geral"),
        ("type", "text", "ingredient"),
        ("purchase_format", "text", "unidade"),
        ("package_cost", "decimal", None),
        ("package_quantity", "decimal", None),
        ("supplier", "text", None),
        ("last_purchase_date", "timestamp", None),
        ("expiration_date", "timestamp", None),
        ("min_stock", "decimal", 0),
        ("is_active", "boolean", True),
    ],
}

# The new table's columns (name, kind).
TECHNICAL_SHEETS: list[tuple[str, str]] = [
    ("name", "text"),
    ("description", "text"),
    ("type", "text"),
    ("components", "json"),
    ("steps", "text"),
    ("yield", "text"),
    ("total_cost", "decimal"),
    ("suggested_price", "decimal"),
    ("preparation_time", "integer"),
    ("labor_cost", "decimal"),
    ("fixed_cost", "decimal"),
    ("is_active", "boolean"),
    ("created_at", "timestamp"),
]
