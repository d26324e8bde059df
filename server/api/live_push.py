"""A push on the live socket: `{"type": "push", "id", ...the body of POST /api/sync/batch}`,
answered on the same socket with `{"type": "pushed", "id", "status", "body"}`, where status
and body are what the HTTP route answers (protocol/messages.py describes both messages).

It saves a PDV the HTTP request of every push while its socket is up. Nothing of the route
is repeated here: the batch itself is `push.batch_push`, errors are mapped by the app's own
`webapi.error_answer`, and the checks are the route's dependencies' (`key_principal`,
`check_machine`, `key_allows`). The one difference: a push acts for the socket's shop only
(a body naming another is 400 `tenant_mismatch`), as the socket hears that shop's notices.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from fastapi import WebSocket
from starlette.concurrency import run_in_threadpool

from protocol import ProtocolError, dumps
from protocol.envelope import decode_body
from protocol.messages import SOCKET_PUSH, SOCKET_PUSHED
from protocol.tenancy import TENANT_HEADER, resolve_tenant
from webapi import error_answer

from ..metrics.registry import ServerMetrics
from .deps import check_machine, key_principal
from .push import batch_push
from .shops import key_allows

# The label of socket pushes in the push latency histogram (`pdvsync_push_seconds`), beside
# the HTTP routes' templates.
SOCKET_ROUTE = "/api/sync/ws"
# A message too large to parse is still answered (413) when it starts as our agents write
# a push: `{"type":"push","id":...` first. Otherwise it is ignored, as any unknown message.
_PUSH_HEAD = re.compile(r'\s*\{\s*"type"\s*:\s*"push"\s*,\s*"id"\s*:\s*(\d{1,18}|"[^"\\]{0,128}")')
_ID_MAX_LENGTH = 128


class SocketPushes:
    """The pushes of one accepted socket of shop `tenant`, made with key `key`."""

    def __init__(self, ws: WebSocket, tenant: str, key: str | None) -> None:
        self.state = ws.app.state.sync  # server.app.ServerState
        self.metrics: ServerMetrics = ws.app.state.metrics
        self.max_bytes: int = ws.app.state.max_body_bytes
        self.tenant = tenant
        self.key = key
        # Where the socket named its shop: a body's `tenantId` is weighed against them as
        # a request's is against its query and header.
        self._named = (ws.query_params.get("tenantId"), ws.headers.get(TENANT_HEADER))

    async def answer(self, message: str) -> str | None:
        """The `pushed` reply to a push message; None for any other message."""
        started = time.perf_counter()
        raw = message.encode()
        try:
            body = decode_body(raw, max_bytes=self.max_bytes)
        except ProtocolError as exc:  # too large or malformed: answered if it is a push
            head = _PUSH_HEAD.match(message)
            if head is None:
                return None
            return self._reply(started, json.loads(head.group(1)), *error_answer(exc))
        if not isinstance(body, dict) or body.get("type") != SOCKET_PUSH:
            return None
        ident = body.get("id")
        if not _valid_id(ident):
            ident = None
        try:
            reply = await self._push(body)
        except Exception as exc:
            return self._reply(started, ident, *error_answer(exc, where=f"push on {SOCKET_ROUTE}"))
        return self._reply(started, ident, 200, {"success": True, **reply})

    async def _push(self, body: dict[str, Any]) -> dict[str, Any]:
        """The route's checks, in its order (key, machine, shop), then the batch itself on a
        worker thread (it blocks on the database), as the route runs."""
        principal = await key_principal(self.state.keys, self.key)
        check_machine(principal, [body.get("machineId")])
        tenant = key_allows(principal, resolve_tenant(body.get("tenantId"), *self._named))
        if tenant != self.tenant:  # a socket that names no shop is the default shop's
            raise ProtocolError(
                "tenant_mismatch",
                f"a push for shop {tenant!r} on the live socket of shop {self.tenant!r}",
                status=400,
            )
        service = self.state.service.scoped(tenant)
        return await run_in_threadpool(batch_push, service, self.metrics, body)

    def _reply(self, started: float, ident: object, status: int, body: dict[str, Any]) -> str:
        self.metrics.push_seconds.labels(SOCKET_ROUTE).observe(time.perf_counter() - started)
        return dumps({"type": SOCKET_PUSHED, "id": ident, "status": status, "body": body})


def _valid_id(ident: object) -> bool:
    """A request id is echoed back as it came: an integer, or a short string."""
    if isinstance(ident, bool):
        return False
    return isinstance(ident, int) or isinstance(ident, str) and len(ident) <= _ID_MAX_LENGTH
