"""What the routes depend on: the running state (`app.state.sync`), the key check and the
binding of a machine key to its machine."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from protocol import ProtocolError

from ..auth import KeyStore, Principal
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
    Answered on the event loop from the store's short cache; a worker thread reads the
    database when the cache has expired."""
    request.state.principal = await key_principal(
        state_of(request).keys, request.headers.get("x-api-key")
    )


async def key_principal(keys: KeyStore, presented: str | None) -> Principal:
    """Who `presented` is, or 401 (the live socket checks each push with it too)."""
    cached, principal = keys.verify_cached(presented)
    if not cached:
        principal = await run_in_threadpool(keys.verify, presented)
    if principal is None:
        raise ProtocolError("unauthorized", "missing or invalid x-api-key", status=401)
    return principal


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
    check_machine(principal, claimed)


def check_machine(principal: Principal | None, claimed: Iterable[object]) -> None:
    """403 `machine_key_mismatch` when a machine key claims to be another machine (the
    `machineId`s a request names: query, body)."""
    if principal is None or principal.kind != "machine":
        return
    if any(str(c) != principal.machine_id for c in set(claimed) - {None, ""}):
        raise ProtocolError(
            "machine_key_mismatch",
            f"this key belongs to machine {principal.machine_id}; machineId must match",
            status=403,
        )


def protected_router() -> APIRouter:
    """A router under /api whose every route needs the key and honours the machine binding."""
    return APIRouter(prefix="/api", dependencies=[Depends(require_key), Depends(machine_binding)])
