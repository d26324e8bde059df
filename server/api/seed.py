"""The seed's front-end helpers: the bootstrap that fills an empty table with a front end's
records (`POST /api/sync/bootstrap/{table}`), and the diagnostics of what each table holds
(`GET /api/sync/diagnostics`). Both act for the shop the request names."""

from __future__ import annotations

from typing import Any

from fastapi import Depends
from fastapi.responses import Response

from protocol import now_ms, to_iso
from protocol.jsonschema import seed as seed_js
from protocol.messages import parse_bootstrap
from webapi import json_body, ok

from ..service import SyncService
from .deps import protected_router
from .openapi import PROTECTED, WITH_BODY, documented
from .push import TablePath, conflict
from .shops import body_shop_service, own_records, shop_service

router = protected_router()


@router.post(
    "/sync/bootstrap/{table}",
    **documented(
        seed_js.bootstrap_answer_schema(),
        *PROTECTED,
        *WITH_BODY,
        404,
        body=seed_js.bootstrap_schema(),
        summary="Fill an empty table once with a front end's records (one machine at a time)",
    ),
)
def bootstrap(
    table: str = TablePath,
    body: Any = Depends(json_body),
    service: SyncService = Depends(body_shop_service),
) -> Response:
    request = parse_bootstrap(table, body)
    own_records(request.items, service.tenant)
    result = service.bootstrap(table, request.machine_id, request.items)
    answer: dict[str, Any] = {k: v for k, v in result.items() if k != "conflicts"}
    if "conflicts" in result:  # as every push answer lists them: with their `resolution`
        answer["conflicts"] = [conflict(r) for r in result["conflicts"]]
    return ok(**answer, timestamp=to_iso(now_ms()))


@router.get(
    "/sync/diagnostics",
    **documented(
        seed_js.diagnostics_answer_schema(),
        *PROTECTED,
        summary="Per table: live rows, the newest edit, rows lacking each expected field",
    ),
)
def diagnostics(service: SyncService = Depends(shop_service)) -> Response:
    return ok(
        tenantId=service.tenant,
        diagnostics=service.diagnostics(),
        timestamp=to_iso(now_ms()),
    )
