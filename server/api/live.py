"""`/api/sync/ws`: the live socket of one shop. After a hello with the shop's head, every
commit of that shop is announced (server/hub.py), so a client pulls only when something
changed; the panel's commands for the machine (`machineId`) come on it too, and the client
may push its batches on it (live_push.py; the hello says `"push": true`). The shop comes
from the `tenantId` query or the `x-tenant-id` header."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, WebSocket

from protocol import ProtocolError, now_ms, to_iso
from protocol.tenancy import TENANT_HEADER, resolve_tenant

from .live_push import SocketPushes

log = logging.getLogger(__name__)

# How often a live socket's key is checked again (revocations reach sockets within this
# plus the key cache's 3 s).
KEY_RECHECK_SECONDS = 5.0


def _reason(text: str) -> str:
    """A close reason: at most 123 bytes of UTF-8 on the wire."""
    return text.encode("utf-8")[:120].decode("utf-8", "ignore")


# Not a protected router: a WebSocket answers a refused key with a close code, not a 401.
router = APIRouter()


@router.websocket("/api/sync/ws")
async def live(ws: WebSocket) -> None:
    state = ws.app.state.sync
    key = ws.headers.get("x-api-key") or ws.query_params.get("apiKey") or ws.query_params.get("key")
    # Accept before refusing: a close sent before the handshake completes reaches the
    # client as a bare HTTP 403, and the agent could not tell "bad key" (4401) from
    # "database down, retry" (1013).
    try:
        principal = await asyncio.to_thread(state.keys.verify, key)
    except Exception as exc:
        log.warning("live: cannot check the key, database unavailable (%s)", type(exc).__name__)
        await ws.accept()
        await ws.close(code=1013, reason="database unavailable; retry later")
        return
    await ws.accept()
    if principal is None:
        await ws.close(code=4401, reason="missing or invalid x-api-key")
        return
    try:
        tenant = resolve_tenant(
            None, ws.query_params.get("tenantId"), ws.headers.get(TENANT_HEADER)
        )
    except ProtocolError as exc:
        await ws.close(code=4400, reason=_reason(f"{exc.code}: {exc.message}"))
        return
    machine_id = ws.query_params.get("machineId")
    if principal.kind == "machine" and machine_id and machine_id != principal.machine_id:
        await ws.close(code=4403, reason="this key belongs to another machine")
        return
    if principal.kind == "machine" and principal.tenant != tenant:
        await ws.close(code=4403, reason=_reason(f"this key belongs to shop {principal.tenant}"))
        return
    service = state.service.scoped(tenant)

    async def hello() -> dict[str, Any]:
        head = await asyncio.to_thread(service.head)
        return {
            "cursor": head,
            "tenantId": tenant,
            "timestamp": to_iso(now_ms()),
            # This socket takes pushes (live_push.py), for the database it names.
            "push": True,
            "database": state.database_id,
        }

    async def recheck_key() -> None:
        # A revoked key (or a first machine key making keys required) must not keep
        # receiving changes on a socket opened before.
        while True:
            await asyncio.sleep(KEY_RECHECK_SECONDS)
            try:
                still = await asyncio.to_thread(state.keys.verify, key)
            except Exception:  # database unavailable: the next check decides
                continue
            if still is None:
                await ws.close(code=4401, reason="the key was revoked")
                return

    async def commands() -> list[dict[str, Any]]:
        # The panel's commands this machine has not finished (an offline PDV gets them
        # when it comes back): handed over right after the hello.
        if not machine_id:
            return []
        pending = await asyncio.to_thread(service.pending_commands, machine_id)
        return [c.message() for c in pending]

    watchdog = asyncio.create_task(recheck_key()) if principal.kind != "master" else None
    try:
        pushes = SocketPushes(ws, tenant, key)
        await state.hub.serve(ws, machine_id, hello, tenant, commands, pushes.answer)
    finally:
        if watchdog is not None:
            watchdog.cancel()
