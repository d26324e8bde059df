"""Which shop (tenant) a request is for, and whether its key may act for that shop.

The shop comes from the body's `tenantId`, the query's `tenantId` or the `x-tenant-id`
header (protocol/tenancy.py: they must agree; none names the default shop). A machine key
belongs to one shop: used for another it gets 403 `tenant_forbidden`; `API_SECRET_KEY`
(and a server with no key at all) acts for every shop. Routes get the sync service bound
to the shop (`SyncService.scoped`), so nothing they read or write can cross shops.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import Depends, Header, Query, Request

from protocol import ProtocolError
from protocol.messages import PushItem
from protocol.tenancy import TENANT_HEADER, TENANT_MAX_LENGTH, check_record_tenant, resolve_tenant
from webapi import json_body

from ..auth import Principal
from ..service import SyncService
from .deps import service_of

# What the OpenAPI document says a shop id is (the parser, protocol.tenancy, is the judge).
TENANT_PATTERN = f"^[A-Za-z0-9._-]{{1,{TENANT_MAX_LENGTH}}}$"

TenantQuery = Query(
    None,
    alias="tenantId",
    description="the shop this request is for (default: the default shop)",
    json_schema_extra={"pattern": TENANT_PATTERN},
)
TenantHeader = Header(
    None,
    alias=TENANT_HEADER,
    description="the shop this request is for, as the seed's client sends it",
    json_schema_extra={"pattern": TENANT_PATTERN},
)


def allowed(request: Request, tenant: str) -> str:
    """`tenant`, unless the request's key belongs to another shop (403)."""
    return key_allows(getattr(request.state, "principal", None), tenant)


def key_allows(principal: Principal | None, tenant: str) -> str:
    """`tenant`, unless `principal` (a verified key) belongs to another shop (403)."""
    key_shop = getattr(principal, "tenant", None)
    if principal is not None and principal.kind == "machine" and key_shop != tenant:
        raise ProtocolError(
            "tenant_forbidden",
            f"this key belongs to shop {key_shop!r}; it cannot act for shop {tenant!r}",
            status=403,
        )
    return tenant


# The dependencies below are `async def` although they never wait: they only read the
# request, and FastAPI runs a plain `def` dependency in a worker thread (a hop there and back
# for each, on every request).


async def query_tenant(
    request: Request,
    tenantId: str | None = TenantQuery,
    x_tenant_id: str | None = TenantHeader,
) -> str:
    """The shop of a request without a body (query and header)."""
    return allowed(request, resolve_tenant(None, tenantId, x_tenant_id))


async def body_tenant(
    request: Request,
    body: Any = Depends(json_body),
    tenantId: str | None = TenantQuery,
    x_tenant_id: str | None = TenantHeader,
) -> str:
    """The shop of a request with a JSON body (the body first, as the seed's server reads
    it; the body is parsed once, for this and for the route)."""
    named = body.get("tenantId") if isinstance(body, dict) else None
    return allowed(request, resolve_tenant(named, tenantId, x_tenant_id))


async def shop_service(request: Request, tenant: str = Depends(query_tenant)) -> SyncService:
    """The sync service of the shop a request without a body is for."""
    return service_of(request).scoped(tenant)


async def body_shop_service(request: Request, tenant: str = Depends(body_tenant)) -> SyncService:
    """The sync service of the shop a request with a JSON body is for."""
    return service_of(request).scoped(tenant)


def own_records(items: Iterable[PushItem], tenant: str) -> None:
    """400 `tenant_mismatch` when a record names another shop (`tenantId` inside it):
    checked before anything is applied, so such a request stores nothing."""
    for item in items:
        if item.change is not None:
            check_record_tenant(item.change.tenant, tenant)
