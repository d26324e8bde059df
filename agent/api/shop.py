"""The one shop (tenant) the loopback API serves: the agent's own (its `tenant_id` setting;
the default shop when none is set). A front end naming another shop (the `tenantId` query,
the `x-tenant-id` header, the body's `tenantId`, or a record's own `tenantId`) is refused
with 403 `tenant_mismatch` before anything is stored: its data belongs on another PDV. A
shop id that is not one (empty, too long, odd characters) is 400 `invalid_tenant`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import Depends, Header, Query

from protocol import ProtocolError
from protocol.messages import PushItem
from protocol.records import Change
from protocol.tenancy import DEFAULT_TENANT, TENANT_HEADER, TENANT_MAX_LENGTH, parse_tenant

from ..sync.engine import Engine
from .deps import EngineDep

# What the OpenAPI document says a shop id is (the parser, protocol.tenancy, is the judge).
TENANT_PATTERN = f"^[A-Za-z0-9._-]{{1,{TENANT_MAX_LENGTH}}}$"


def agent_shop(engine: Engine) -> str:
    """The shop this agent syncs with."""
    config = getattr(engine, "config", None)
    return getattr(config, "tenant_id", None) or DEFAULT_TENANT


def own(engine: Engine, named: object, where: str = "tenantId") -> str:
    """The agent's shop, after checking what a request names (None: nothing named)."""
    mine = agent_shop(engine)
    tenant = parse_tenant(named, where)
    if tenant is not None and tenant != mine:
        raise ProtocolError(
            "tenant_mismatch",
            f"this PDV serves shop {mine!r}; the request is for shop {tenant!r} "
            "(nothing was stored)",
            status=403,
        )
    return mine


def own_body(engine: Engine, body: Any) -> None:
    """A JSON body's `tenantId`, if it has one, must be the agent's shop."""
    if isinstance(body, dict):
        own(engine, body.get("tenantId"))


def own_changes(engine: Engine, changes: Iterable[Change | None]) -> None:
    """Each record's own `tenantId`, if it names one, must be the agent's shop."""
    for change in changes:
        if change is not None:
            own(engine, change.tenant, "record tenantId")


def own_items(engine: Engine, body: Any, items: Iterable[PushItem]) -> None:
    """A write's body and every record in it: all the agent's shop, or nothing is stored."""
    own_body(engine, body)
    own_changes(engine, (i.change for i in items))


async def _request_shop(
    engine: EngineDep,
    tenantId: str | None = Query(
        None,
        description="the shop the front end is for: only this PDV's own is served (403)",
        json_schema_extra={"pattern": TENANT_PATTERN},
    ),
    x_tenant_id: str | None = Header(
        None,
        alias=TENANT_HEADER,
        description="the shop, as the seed's client sends it: only this PDV's own (403)",
        json_schema_extra={"pattern": TENANT_PATTERN},
    ),
) -> str:
    own(engine, x_tenant_id, TENANT_HEADER)
    return own(engine, tenantId)


# A route parameter: the agent's shop, once the query and the header named no other.
ShopDep = Annotated[str, Depends(_request_shop)]


def document_shop(document: Any, shop: str) -> None:
    """The OpenAPI document as this PDV serves it: wherever a request or an answer names a
    shop (the `tenantId` query and body property, the `x-tenant-id` header, an answer's
    `tenantId`), it can only be this PDV's own; any other is refused (403), as documented.
    Changes `document` in place."""
    one: dict[str, Any] = {"type": "string", "enum": [shop]}
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        if node.get("in") in ("query", "header") and node.get("name") in (
            "tenantId",
            TENANT_HEADER,
        ):
            node["schema"] = dict(one)
        properties = node.get("properties")
        if isinstance(properties, dict) and isinstance(properties.get("tenantId"), dict):
            nullable = {"type": "null"} in properties["tenantId"].get("anyOf", [])
            properties["tenantId"] = (
                {"anyOf": [dict(one), {"type": "null"}]} if nullable else dict(one)
            )
        stack.extend(node.values())
