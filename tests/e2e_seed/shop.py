"""Records as the shop's real front end writes them (the seed's tables and field names), for
the seed-client end-to-end tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.seedclient import iso


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def product(**kw: Any) -> dict[str, Any]:
    return {
        "id": uid("prod"),
        "name": "Bolo de cenoura",
        "description": "Com cobertura de chocolate",
        "price": 45.9,
        "costPrice": 18.35,
        "category": "Bolos",
        "imageUrlId": "bolo-cenoura",
        "stock_quantity": 12,
        "isActive": True,
        **kw,
    }


def order(**kw: Any) -> dict[str, Any]:
    return {
        "id": uid("ord"),
        "orderNumber": "PED-000123",
        "customerName": "Dona Maria",
        "userId": "user-42",
        "cashRegisterId": "caixa-1",
        "paymentMethod": "Pix",
        "total": 91.8,
        "totalCost": 36.7,
        "status": "Pago",
        "createdAt": iso(datetime.now(UTC) - timedelta(minutes=5)),
        **kw,
    }


def order_item(order_id: str, product_id: str, **kw: Any) -> dict[str, Any]:
    return {
        "id": uid("item"),
        "order_id": order_id,
        "product_id": product_id,
        "quantity": 2,
        "price": 45.9,
        **kw,
    }


def supply(**kw: Any) -> dict[str, Any]:
    return {
        "id": uid("sup"),
        "name": "Farinha de trigo",
        "sku": "FAR-001",
        "category": "Secos",
        "type": "ingredient",
        "stock": 25.5,
        "unit": "kg",
        "costPerUnit": 4.35,
        "purchaseFormat": "pacote",
        "packageCost": 21.75,
        "packageQuantity": 5,
        "supplier": "Moinho São Jorge",
        "lastPurchaseDate": iso(datetime.now(UTC) - timedelta(days=3)),
        "expirationDate": iso(datetime.now(UTC) + timedelta(days=120)),
        "minStock": 10,
        "isActive": True,
        **kw,
    }


def technical_sheet(**kw: Any) -> dict[str, Any]:
    return {
        "id": uid("ficha"),
        "name": "Massa de bolo de cenoura",
        "description": "Rende uma forma grande",
        "type": "base",
        "components": [
            {"supplyId": "sup-farinha", "quantity": 0.5, "unit": "kg", "name": "Farinha"},
            {"supplyId": "sup-cenoura", "quantity": 3, "unit": "un", "optional": False},
            {"technicalSheetId": "ficha-cobertura", "quantity": 1, "unit": "receita"},
        ],
        "steps": "1. Bater a cenoura com os ovos.\n2. Misturar a farinha.\n3. Assar 40 min.",
        "yield": "1 forma (20 fatias)",
        "totalCost": 23.4,
        "suggestedPrice": 45.9,
        "preparationTime": 70,
        "laborCost": 8,
        "fixedCost": 3.5,
        "isActive": True,
        **kw,
    }


def old(days: float) -> str:
    """An edit time in the past (a front end's own data, as a bootstrap carries it)."""
    return iso(datetime.now(UTC) - timedelta(days=days))
