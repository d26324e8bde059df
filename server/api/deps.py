"""What the routes depend on: the running state (`app.state.sync`), the key check and the
binding of a machine key to its machine."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from protocol import ProtocolError

from ..service import SyncService

if TYPE_CHECKING:  # server.app imports this package: the type only
    from ..app import ServerState


def state_of(request: Request) -> ServerState:
    """The running app's state (server.app.ServerState)."""
    return request.app.state.sync


def service_of(request: Request) -> SyncService:
    return state_of(request).service


async def require_key(request: Request) -> None:
    """401 unless the request carries a valid key (any key passes when none is configured).
    On the event loop when the key store's short cache answers (no thread hop on every
    request); a key not in it is read from the database in a worker thread."""
    keys, presented = state_of(request).keys, request.headers.get("x-api-key")
    known, principal = keys.verify_cached(presented)
    if not known:
        principal = await run_in_threadpool(keys.verify, presented)
    if principal is None:
        raise ProtocolError("unauthorized", "missing or invalid x-api-key", status=401)
    request.state.principal = principal


async def machine_binding(request: Request) -> None:
    """A machine key speaks only for its machine: its stats, cursor and tombstone
    collection are that machine's, so it may not push or pull as another one."""
    principal = getattr(request.state, "principal", None)
    if principal is None or principal.kind != "machine":
        return
    claimed = {request.query_params.get("machineId")}
    if request.method in ("POST", "PUT", "PATCH"):
        try:  # the route parses (and reports) the body itself; only machineId matters here
            body = json.loads(await request.body() or b"null")
        except ValueError:
            body = None
        if isinstance(body, dict):
            claimed.add(body.get("machineId"))
    claimed -= {None, ""}
    if any(str(c) != principal.machine_id for c in claimed):
        raise ProtocolError(
            "machine_key_mismatch",
            f"this key belongs to machine {principal.machine_id}; machineId must match",
            status=403,
        )


def protected_router() -> APIRouter:
    """A router under /api whose every route needs the key and honours the machine binding."""
    return APIRouter(prefix="/api", dependencies=[Depends(require_key), Depends(machine_binding)])
