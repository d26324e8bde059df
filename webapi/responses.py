"""The wire JSON answer (exact Decimals) and the request body reader of both apps."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response

from protocol.envelope import DEFAULT_MAX_BODY_BYTES, decode_body, encode


class WireResponse(Response):
    """JSON with exact Decimals (see protocol.records.dumps)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return encode(content)


def ok(**body: Any) -> WireResponse:
    return WireResponse({"success": True, **body})


def ok_items(key: str, items_json: bytes, **more: Any) -> Response:
    """`ok(**{key: items, **more})` with the list's items already JSON (comma-separated,
    no brackets): the same bytes, without encoding each item again (list reads keep their
    rows serialised; see server/listcache.py)."""
    head = b'{"success":true,' + encode(key) + b":["
    tail = b"]," + encode(more)[1:] if more else b"]}"
    return Response(head + items_json + tail, media_type="application/json")


async def json_body(request: Request) -> Any:
    """FastAPI dependency: the request's JSON body, decoded by `protocol.envelope` (the app
    sets `app.state.max_body_bytes`; 5 MiB otherwise)."""
    limit = getattr(request.app.state, "max_body_bytes", DEFAULT_MAX_BODY_BYTES)
    return decode_body(await request.body(), max_bytes=limit)
