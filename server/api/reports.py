"""`POST /api/sync/report`: a PDV tells the server about itself (protocol/reports.py); the
answer lists its commands not finished yet, so a PDV without a live socket still gets them.
Machine-authenticated like every /api route (a machine key reports only for its machine),
per shop."""

from __future__ import annotations

from typing import Any

from fastapi import Depends
from fastapi.responses import Response

from protocol import now_ms, to_iso
from protocol.jsonschema import reports as reports_js
from protocol.jsonschema import seed as seed_js
from protocol.reports import parse_report
from webapi import json_body, ok

from ..service import SyncService
from .deps import protected_router
from .openapi import PROTECTED, WITH_BODY, documented
from .shops import body_shop_service

router = protected_router()


@router.post(
    "/sync/report",
    **documented(
        reports_js.report_answer_schema(),
        *PROTECTED,
        *WITH_BODY,
        body=seed_js.with_tenant(reports_js.report_schema()),
        summary="A PDV's report (state, outbox, reconcile, clock); answers its commands",
    ),
)
def report(
    body: Any = Depends(json_body), service: SyncService = Depends(body_shop_service)
) -> Response:
    commands = service.record_report(parse_report(body))
    return ok(commands=[c.wire() for c in commands], timestamp=to_iso(now_ms()))
