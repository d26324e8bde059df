"""The agent's HTTP client for the sync server: one method per server route it uses.

Errors are classified for the engine (agent/sync/errors.py): `Unreachable` (network,
timeouts, 5xx: retry later), `Throttled` (429: the server is there and says "not now";
its Retry-After is honoured, within bounds), `AuthRefused` (401/403, and a refused shop: retrying will not
help until the key or the settings change), `ResyncRequired` (409), `Rejected` (other 4xx:
the request itself is wrong), each with its `SyncError` code and an English detail.

Every request names this PDV's shop (`x-tenant-id`), and none is sent while the store holds
another shop's data (`TenantChanged`, see `check_tenant`).
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from protocol import ProtocolError, loads, parse_ms
from protocol.headers import DATABASE_HEADER
from protocol.records import dumps, dumps_with
from protocol.tenancy import DEFAULT_TENANT, TENANT_HEADER

from .clock import ClockOffset
from .errors import (
    AuthRefused,
    DatabaseChanged,
    Rejected,
    ResyncRequired,
    ServerError,
    SyncError,
    TenantChanged,
    Throttled,
    Unreachable,
)
from .socketpush import PushChannel

__all__ = [
    "AuthRefused",
    "DatabaseChanged",
    "Rejected",
    "ResyncRequired",
    "ServerClient",
    "ServerError",
    "TenantChanged",
    "Throttled",
    "Unreachable",
]


_CHANGED_DETAIL = (
    "the server came back with another database; syncing is suspended and the sales stay on "
    "this PDV (if the change was intended: force a reconcile)"
)
_OTHER_MACHINE_DETAIL = "the API key belongs to another PDV; use the key issued for this PDV's name"
# The server's error codes about shops (server/api/shops.py, protocol/tenancy.py).
_SHOP_REFUSED = ("invalid_tenant", "tenant_mismatch")
# A 429's wait: its Retry-After within these bounds (ms), this one without it. Capped: a
# server (or a proxy) saying "in an hour" must not keep a shop's sales away that long.
RETRY_AFTER_MIN_MS = 1_000
RETRY_AFTER_MAX_MS = 60_000
RETRY_AFTER_DEFAULT_MS = 5_000
# Pushes larger than this go over HTTP even while the live socket is up: a message that
# big would hold back the notices behind it, and the server's WebSocket message size limit
# is not the body limit it answers 413 for.
SOCKET_PUSH_MAX_CHARS = 1_000_000


def _tls_for(base_url: str) -> ssl.SSLContext | bool:
    """httpx's default (the CA bundle, verified) for an https server. An http server (a
    shop's LAN) needs no TLS: a context that trusts no one, so nothing could be sent over
    TLS unverified, and the CA bundle is not parsed into memory (~1.2 MB, issue 12)."""
    if base_url.lower().startswith("https:"):
        return True
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies certificates and host names


class ServerClient:
    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        clock: ClockOffset,
        *,
        timeout: float = 15.0,
        transport: httpx.AsyncBaseTransport | None = None,
        database: str | None = None,
        on_database: Callable[[str], None] | None = None,
        tenant: str = DEFAULT_TENANT,
        synced_tenant: str | None = None,
        on_tenant: Callable[[str], None] | None = None,
    ) -> None:
        """`tenant`: the shop this PDV syncs with; `synced_tenant`: the shop whose data the
        store holds (None until the first answer), told to `on_tenant` when first set."""
        self.base_url = base_url.rstrip("/")
        self.tenant = tenant
        self.synced_tenant = synced_tenant
        self._on_tenant = on_tenant
        # The server database this agent syncs with (None until the first answer names it),
        # and the other one a server answered from, while that lasts.
        self.database = database
        self.other_database: str | None = None
        self._last_seen: str | None = None
        self._on_database = on_database
        headers = {"content-type": "application/json", TENANT_HEADER: tenant}
        if api_key:
            headers["x-api-key"] = api_key
        self.clock = clock
        self.timeout = timeout
        # The live socket's pushes while it is up and takes them (set by live.py).
        self.push_channel: PushChannel | None = None
        self._socket_push_failed = False  # the last push on the socket got no answer
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=5.0),
            transport=transport,
            verify=_tls_for(self.base_url),
        )

    def refuse_database(self) -> DatabaseChanged:
        """Do not adopt the database the server answers from (see the engine's
        `_confirm_server_database`); a manager may still accept it."""
        self.other_database = self._last_seen or "?"
        return DatabaseChanged(_CHANGED_DETAIL)

    def accept_other_database(self) -> bool:
        """A manager confirmed the server's new database: sync with it from now on (the
        engine then resyncs in full). False when there is no other database to accept."""
        if self.other_database is None:
            return False
        self.database, self.other_database = None, None
        return True

    def check_tenant(self) -> None:
        """Raise `TenantChanged` when the store holds another shop's data than the one
        configured: nothing of one shop may reach the other, either way."""
        if self.synced_tenant is not None and self.synced_tenant != self.tenant:
            raise TenantChanged(self.synced_tenant, self.tenant)

    def confirm_tenant(self) -> None:
        """The server answered for our shop: from now on the store holds that shop's data
        (remembered before anything the answer carries is stored)."""
        if self.synced_tenant is None:
            self.synced_tenant = self.tenant
            if self._on_tenant is not None:
                self._on_tenant(self.tenant)

    def _note_database(self, response: httpx.Response, *, adopt: bool = True) -> None:
        seen = response.headers.get(DATABASE_HEADER)
        self._last_seen = seen.lower() if seen else self._last_seen
        if seen and self.database is None and response.status_code != 409 and adopt:
            self.database = seen.lower()
            if self._on_database is not None:
                self._on_database(self.database)
        elif seen and seen.lower() == self.database:
            self.other_database = None

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        raw: bytes | None = None,
        params: dict | None = None,
        shop: bool = True,
        adopt: bool = True,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """`shop`: the route answers for a shop (all but the health check), so a success
        confirms ours. `adopt`: the answer's database identity may become ours (only the
        sync's own requests: the engine confirms an identity before adopting it).
        `timeout`: seconds for this request instead of the client's (a quick probe).
        `raw`: the body's JSON bytes, already encoded (instead of `body`)."""
        self.check_tenant()
        content = raw if raw is not None or body is None else dumps(body).encode()
        sent = self.clock.local_now()
        try:
            response = await self._http.request(
                method,
                path,
                params=params,
                content=content,
                headers={DATABASE_HEADER: self.database} if self.database else None,
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else httpx.Timeout(timeout),
            )
        except httpx.HTTPError as exc:
            raise _network_failure(exc) from exc
        self._note_database(response, adopt=adopt)
        received = self.clock.local_now()
        try:
            data = loads(response.content) if response.content else {}
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        self._raise_for(response.status_code, data, response.headers.get("retry-after"))
        if shop:
            self.confirm_tenant()
        self._observe_clock(data, sent, received)
        return data

    def _raise_for(self, status: int, data: dict[str, Any], retry_after: str | None) -> None:
        """An answer's status and JSON body (HTTP, or a push's reply on the live socket) as
        the exception the engine acts on; nothing for a success."""
        code = data.get("code")
        if status == 401:
            raise AuthRefused(str(data.get("error") or "API key refused"))
        if status == 403 and code == "machine_key_mismatch":
            raise AuthRefused(_OTHER_MACHINE_DETAIL, SyncError.KEY_OF_OTHER_MACHINE)
        if status == 403 and code == "tenant_forbidden":
            raise AuthRefused(
                str(data.get("error") or "the API key belongs to another shop"),
                SyncError.TENANT_FORBIDDEN,
            )
        if status == 400 and code in _SHOP_REFUSED:
            # Our shop id is checked before it is sent: the server's rule differs, or a
            # record names another shop. Retrying the same will not help.
            raise AuthRefused(
                str(data.get("error") or f"shop {self.tenant!r} refused"),
                SyncError.TENANT_REFUSED,
            )
        if status == 409 and code == "database_changed":
            self.other_database = str(data.get("database") or "?")
            raise DatabaseChanged(_CHANGED_DETAIL)
        if status == 409 and data.get("resyncRequired"):
            raise ResyncRequired(str(data.get("error") or "resync required"))
        if status == 429:
            raise Throttled(
                str(data.get("error") or "HTTP 429 (too many requests)"),
                retry_after_ms(retry_after, self.clock.server_now()),
            )
        if status >= 500 or status == 408:
            raise Unreachable(
                str(data.get("error") or f"HTTP {status}"), SyncError.SERVER_UNAVAILABLE
            )
        if status >= 400:
            raise Rejected(status, data)

    def _observe_clock(self, data: dict[str, Any], sent: int, received: int) -> None:
        stamp = data.get("timestamp")
        if stamp:
            with contextlib.suppress(ProtocolError):
                self.clock.observe(sent, received, parse_ms(stamp))

    async def health(self, timeout: float | None = None) -> dict[str, Any]:
        """`timeout`: seconds in all phases (the live socket's probe after a silent loss)."""
        return await self._call("GET", "/health", shop=False, timeout=timeout)

    async def push(self, machine_id: str, events: list[str], cursor: int) -> dict[str, Any]:
        """Atomic batch push of events given as JSON text (`OutboxEvent.wire_json`), put
        together as they are; the reply also carries the changes after `cursor`. On the
        live socket when it takes pushes (socketpush.py), else `POST /api/sync/batch`: the
        same body, the same answer, the same exceptions."""
        fields = {"machineId": machine_id, "cursor": cursor}
        events_json = f"[{','.join(events)}]"
        channel = self.push_channel
        if (
            channel is not None
            and channel.serves(self.database)
            and not self._socket_push_failed
            and len(events_json) <= SOCKET_PUSH_MAX_CHARS
        ):
            return await self._push_on_socket(channel, fields, events_json)
        body = dumps_with(fields, events=events_json)
        data = await self._call("POST", "/api/sync/batch", raw=body.encode())
        self._socket_push_failed = False
        return data

    async def _push_on_socket(
        self, channel: PushChannel, fields: dict[str, Any], events_json: str
    ) -> dict[str, Any]:
        self.check_tenant()
        sent = self.clock.local_now()
        try:
            status, data = await channel.push(fields, events_json, self.timeout)
        except Unreachable:
            # No answer: the next push goes over HTTP, so a socket that cannot carry a
            # push (or its reply) never keeps the outbox from draining.
            self._socket_push_failed = True
            raise
        received = self.clock.local_now()
        self._raise_for(status, data, None)
        self.confirm_tenant()
        self._observe_clock(data, sent, received)
        return data

    async def report(self, body: dict[str, Any]) -> dict[str, Any]:
        """`POST /api/sync/report` (protocol/reports.py); the answer lists our commands."""
        return await self._call("POST", "/api/sync/report", body=body, adopt=False)

    async def changes(self, machine_id: str, since: int, limit: int = 500) -> dict[str, Any]:
        return await self._call(
            "GET",
            "/api/sync/changes",
            params={"since": since, "limit": limit, "machineId": machine_id},
        )

    async def reconcile(
        self, machine_id: str, summary: dict[str, Any], cursor: int
    ) -> dict[str, Any]:
        return await self._call(
            "POST",
            "/api/sync/reconcile",
            body={"machineId": machine_id, "clientSummary": summary, "cursor": cursor},
        )

    async def reconcile_history(self, machine_id: str, limit: int = 50) -> dict[str, Any]:
        return await self._call(
            "GET", "/api/sync/reconcile/history", params={"machineId": machine_id, "limit": limit}
        )

    async def buckets(self, table: str) -> dict[str, Any]:
        return await self._call("GET", "/api/sync/reconcile/buckets", params={"table": table})

    async def bucket_rows(self, table: str, buckets: list[int]) -> dict[str, Any]:
        return await self._call(
            "GET",
            "/api/sync/reconcile/rows",
            params={"table": table, "buckets": ",".join(map(str, buckets))},
        )


def retry_after_ms(value: str | None, now_ms: int) -> int:
    """A Retry-After header (seconds, or an HTTP date compared with `now_ms`, the server's
    time) as the ms to wait, within bounds."""
    wait = RETRY_AFTER_DEFAULT_MS
    text = (value or "").strip()
    if text:
        try:
            if text.replace(".", "", 1).isdigit():
                wait = int(float(text) * 1000)
            else:
                wait = int(parsedate_to_datetime(text).timestamp() * 1000) - now_ms
        except (ValueError, TypeError, OverflowError, IndexError):
            wait = RETRY_AFTER_DEFAULT_MS
    return max(RETRY_AFTER_MIN_MS, min(RETRY_AFTER_MAX_MS, wait))


def _network_failure(exc: httpx.HTTPError) -> Unreachable:
    """A network error, classified (the UI words it for the manager)."""
    if isinstance(exc, httpx.ConnectError):
        return Unreachable("server unreachable (connection refused or network unavailable)")
    if isinstance(exc, httpx.TimeoutException):
        return Unreachable("the server did not answer in time", SyncError.TIMEOUT)
    text = str(exc)
    name = type(exc).__name__
    return Unreachable(f"{name}: {text}" if text else name, SyncError.NETWORK)
