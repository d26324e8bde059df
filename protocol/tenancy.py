"""Shops (tenants): one server keeps several shops' data apart. Which shop a request is for.

The original server's rule: `tenantId` in the body, else `tenantId` in the query, else the
`x-tenant-id` header. Here the places must agree when several name one (a front end whose
header says one shop and whose body says another is a bug to report, not to guess at), and
a request naming none is for the default shop, so databases and PDVs from before tenants
keep working unchanged.
"""

from __future__ import annotations

import re

from .errors import ProtocolError

DEFAULT_TENANT = "default"
TENANT_HEADER = "x-tenant-id"
TENANT_MAX_LENGTH = 64
_VALID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def parse_tenant(value: object, where: str = "tenantId") -> str | None:
    """A tenant id as given (None when absent), or 400 `invalid_tenant`: an empty one too
    (a front end configured with an empty shop is a mistake to report, not the default
    shop to write into). Surrounding blanks are ignored, as the original server did."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProtocolError(
            "invalid_tenant", f"{where}: expected the shop's id as text", status=400
        )
    text = value.strip()
    if not _VALID.fullmatch(text):
        raise ProtocolError(
            "invalid_tenant",
            f"{where}: 1 to {TENANT_MAX_LENGTH} letters, digits, '.', '_' or '-' "
            f"(got {text[:40]!r})",
            status=400,
        )
    return text


def resolve_tenant(body: object = None, query: object = None, header: object = None) -> str:
    """The shop of a request from its body's, query's and header's `tenantId` (any may be
    None); the default shop when none names one."""
    named = {
        where: tenant
        for where, raw in (("body", body), ("query", query), (TENANT_HEADER, header))
        if (tenant := parse_tenant(raw, "tenantId" if where != TENANT_HEADER else where))
    }
    if len(set(named.values())) > 1:
        places = ", ".join(f"{where}={tenant}" for where, tenant in named.items())
        raise ProtocolError(
            "tenant_mismatch", f"the request names more than one shop ({places})", status=400
        )
    return next(iter(named.values()), DEFAULT_TENANT)


def check_record_tenant(record_tenant: str | None, tenant: str) -> None:
    """A record that names its shop (`tenantId` inside it) must name the request's."""
    if record_tenant is not None and parse_tenant(record_tenant) not in (None, tenant):
        raise ProtocolError(
            "tenant_mismatch",
            f"a record of shop {record_tenant[:64]!r} in a request for shop {tenant!r}",
            status=400,
        )
