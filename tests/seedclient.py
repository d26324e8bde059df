"""A client with the same wire behaviour as the seed's front-end sync client, for tests.

The shop's POS front end runs the seed's `SyncClient` (the original project's browser
client), pointed at the shop's server or at the PDV's own agent. This class says on the
wire exactly what that client says, written here from its described behaviour (never from
its code), so tests can run "the seed's client, unchanged" against real processes:

- every request carries `Content-Type: application/json`, `x-api-key` when a key is set and
  `x-tenant-id` when a shop is set;
- `fetch(table)`: `GET /api/sync/{table}?lastSync=<ISO>&tenantId=<shop>` (each omitted when
  unset); needs `success === true`, materialises `data` by id (`_deleted: true` removes the
  id), then sets that table's lastSync to ITS OWN clock (`clock`, injectable so a test can
  put it an hour off);
- `sync(table, updates)`: `POST /api/sync/{table}` with `{table, lastSync?, machineId,
  tenantId?, localUpdates: [{eventId, record}]}` (bare records get an eventId: their own
  `eventId` or a new UUID); needs `success === true`, materialises `synced`, then lastSync =
  own clock;
- `reconcile_now()`: `POST /api/sync/reconcile` with `{machineId, tenantId?, clientSummary}`
  from `get_client_summary`; needs `success === true`, a boolean `isConsistent`, arrays
  `mismatches` and `serverSummary`. Auto-bootstrap: for a mismatch with `client` and
  `server` objects, `server.count == 0`, `client.count > 0` and the reason exactly
  `count_mismatch` or `count_and_latest_updatedAt_mismatch`, it posts the front end's whole
  table (`get_table_data`) to `/api/sync/bootstrap/{table}`; if any table was bootstrapped
  it reconciles once more. A result still inconsistent is handled by the divergence
  strategy: `none`; `full_resync` (forget every lastSync and cache, fetch every table);
  `refresh_mismatched` (forget and fetch the mismatched tables). Failures of those fetches
  and of each bootstrap are swallowed, as the seed logs and goes on;
- retries 408, 425, 429, 5xx and network errors with exponential backoff
  (`retry_base_delay_ms * 2^attempt`, capped); any other non-2xx is an error at once. (The
  seed's loop happens to re-send after every failure; an answer our servers refuse changes
  nothing, so repeating it would only slow the tests down.) An empty 2xx body reads as `{}`,
  which then fails the `success === true` check, like the seed.

The timers of the seed (auto-sync, auto-reconcile) are left out: tests call the same
operations explicitly.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

Record = dict[str, Any]
ClientSummary = dict[str, dict[str, Any]]
Clock = Callable[[], datetime]

RETRYABLE = frozenset({408, 425, 429})
BOOTSTRAP_REASONS = frozenset({"count_mismatch", "count_and_latest_updatedAt_mismatch"})
# What the seed fetches on a full resync, in its order.
FULL_RESYNC_TABLES = ("products", "orders", "supplies", "order_items", "technical_sheets")


def utc_now() -> datetime:
    return datetime.now(UTC)


def skewed(offset: timedelta) -> Clock:
    """A client clock `offset` away from the real one (positive: ahead)."""
    return lambda: datetime.now(UTC) + offset


def iso(moment: datetime) -> str:
    """JavaScript's `Date.toISOString()`: UTC, milliseconds, a `Z`."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class SeedClientError(Exception):
    """What the seed's client throws: an HTTP error, an invalid answer, or `success` not true."""

    def __init__(self, operation: str, message: str, status: int | None = None, body: Any = None):
        super().__init__(f"{operation}: {message}")
        self.operation = operation
        self.status = status
        self.body = body

    @property
    def code(self) -> str | None:
        return self.body.get("code") if isinstance(self.body, dict) else None


def summary_of(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What a front end's `getClientSummary` says of one table it holds: count and latest
    `updatedAt` (as it read them; no checksum, the seed never sends one)."""
    times = [t for r in records if (t := parse_iso(r.get("updatedAt"))) is not None]
    return {"count": len(records), "latestUpdatedAt": iso(max(times)) if times else None}


class SeedClient:
    """One front end's sync client: its lastSync per table and its materialised tables."""

    def __init__(
        self,
        server_url: str,
        machine_id: str,
        *,
        tenant_id: str | None = None,
        api_key: str | None = None,
        auto_bootstrap: bool = True,
        retry_attempts: int = 3,
        retry_base_delay_ms: int = 50,
        retry_max_delay_ms: int = 500,
        get_client_summary: Callable[[], ClientSummary] | None = None,
        get_table_data: Callable[[str], list[Record]] | None = None,
        divergence_strategy: str = "refresh_mismatched",
        clock: Clock = utc_now,
        timeout: float = 30.0,
    ) -> None:
        self.server_url = server_url.rstrip("/")
        self.machine_id = machine_id
        self.tenant_id = tenant_id
        self.api_key = api_key
        self.auto_bootstrap = auto_bootstrap
        self.retry_attempts = retry_attempts
        self.retry_base_delay_ms = retry_base_delay_ms
        self.retry_max_delay_ms = retry_max_delay_ms
        self.get_client_summary = get_client_summary
        self.get_table_data = get_table_data
        self.divergence_strategy = divergence_strategy
        self.clock = clock
        self.timeout = timeout
        self.last_sync: dict[str, str] = {}
        self.tables: dict[str, dict[str, Record]] = {}
        # What went over the wire, newest last: (operation, method, path, query, body) and
        # (operation, status, answer body). Tests read them; the seed keeps neither.
        self.requests: list[tuple[str, str, str, dict[str, str], Any]] = []
        self.answers: list[tuple[str, int, Any]] = []

    # -- the seed's public operations ---------------------------------------------------

    def fetch(self, table: str) -> list[Record]:
        params: dict[str, str] = {}
        if table in self.last_sync:
            params["lastSync"] = self.last_sync[table]
        if self.tenant_id:
            params["tenantId"] = self.tenant_id
        body = self._request("GET", f"/api/sync/{table}", f"fetch:{table}", params=params)
        self._require_success(body, f"fetch:{table}")
        incoming = body.get("data") if isinstance(body.get("data"), list) else []
        rows = self._materialise(table, incoming)
        self.last_sync[table] = iso(self.clock())
        return rows

    def sync(self, table: str, updates: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
        payload: dict[str, Any] = {"table": table}
        if table in self.last_sync:
            payload["lastSync"] = self.last_sync[table]
        payload["machineId"] = self.machine_id
        if self.tenant_id:
            payload["tenantId"] = self.tenant_id
        payload["localUpdates"] = [normalise_update(u) for u in updates]
        body = self._request("POST", f"/api/sync/{table}", f"sync:{table}", json=payload)
        self._require_success(body, f"sync:{table}")
        if isinstance(body.get("synced"), list):
            self._materialise(table, body["synced"])
        self.last_sync[table] = iso(self.clock())
        return body

    def reconcile_now(self) -> dict[str, Any]:
        if self.get_client_summary is None:
            raise SeedClientError("reconcile", "getClientSummary is not configured")
        client_summary = self.get_client_summary()
        result = self._reconcile(client_summary, "reconcile")
        if self._try_auto_bootstrap(result):
            result = self._reconcile(client_summary, "reconcile:post-bootstrap")
        if not result["isConsistent"]:
            self._handle_divergence(result)
        return result

    def bootstrap(self, table: str, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The auto-bootstrap's request on its own: the front end's whole table."""
        payload: dict[str, Any] = {"machineId": self.machine_id}
        if self.tenant_id:
            payload["tenantId"] = self.tenant_id
        payload["localUpdates"] = [normalise_update(r) for r in records]
        operation = f"bootstrap:{table}"
        body = self._request("POST", f"/api/sync/bootstrap/{table}", operation, json=payload)
        self._require_success(body, operation)
        return body

    def reset_last_sync(self, table: str | None = None) -> None:
        if table is None:
            self.last_sync.clear()
            self.tables.clear()
        else:
            self.last_sync.pop(table, None)
            self.tables.pop(table, None)

    # -- what a test reads --------------------------------------------------------------

    def rows(self, table: str) -> dict[str, Record]:
        """The client's materialised table, by id."""
        return dict(self.tables.get(table, {}))

    def answer(self, operation: str) -> Any:
        """The body of the last answer to `operation` (e.g. "fetch:products")."""
        for op, _, body in reversed(self.answers):
            if op == operation:
                return body
        raise KeyError(operation)

    def summary(self, tables: Sequence[str]) -> ClientSummary:
        """A `getClientSummary` of this client's own materialised tables."""
        return {t: summary_of(list(self.tables.get(t, {}).values())) for t in tables}

    # -- the seed's internals, as they behave on the wire -------------------------------

    def _reconcile(self, client_summary: ClientSummary, operation: str) -> dict[str, Any]:
        payload: dict[str, Any] = {"machineId": self.machine_id}
        if self.tenant_id:
            payload["tenantId"] = self.tenant_id
        payload["clientSummary"] = client_summary
        body = self._request("POST", "/api/sync/reconcile", operation, json=payload)
        if (
            body.get("success") is not True
            or not isinstance(body.get("isConsistent"), bool)
            or not isinstance(body.get("mismatches"), list)
            or not isinstance(body.get("serverSummary"), list)
        ):
            raise SeedClientError(operation, f"invalid answer: {body.get('error') or body}")
        return body

    def _try_auto_bootstrap(self, result: Mapping[str, Any]) -> bool:
        if not self.auto_bootstrap or self.get_table_data is None or result["isConsistent"]:
            return False
        done = False
        for mismatch in result["mismatches"]:
            if not isinstance(mismatch, dict):
                continue
            table, client, server = (mismatch.get(k) for k in ("table", "client", "server"))
            if not table or not isinstance(client, dict) or not isinstance(server, dict):
                continue
            if not (
                server.get("count") == 0
                and (client.get("count") or 0) > 0
                and mismatch.get("reason") in BOOTSTRAP_REASONS
            ):
                continue
            try:
                records = self.get_table_data(table)
                if not records:
                    continue
                answer = self.bootstrap(table, records)
                if answer.get("bootstrapped"):
                    done = True
            except (SeedClientError, httpx.HTTPError):
                continue  # the seed logs the failed bootstrap and goes on with the others
        return done

    def _handle_divergence(self, result: Mapping[str, Any]) -> None:
        if self.divergence_strategy == "none":
            return
        if self.divergence_strategy == "full_resync":
            self.reset_last_sync()
            for table in FULL_RESYNC_TABLES:
                self._safe_fetch(table)
            return
        tables = list(dict.fromkeys(m["table"] for m in result["mismatches"] if m.get("table")))
        for table in tables:
            self.reset_last_sync(table)
            self._safe_fetch(table)

    def _safe_fetch(self, table: str) -> None:
        # The seed logs a failed repair and goes on.
        with contextlib.suppress(SeedClientError, httpx.HTTPError):
            self.fetch(table)

    def _materialise(self, table: str, incoming: Sequence[Any]) -> list[Record]:
        state = self.tables.setdefault(table, {})
        for record in incoming:
            if not isinstance(record, dict) or not record.get("id"):
                continue
            if record.get("_deleted"):
                state.pop(record["id"], None)
                continue
            state[record["id"]] = {
                k: v for k, v in record.items() if k not in ("_deleted", "eventId")
            }
        newest_first = sorted(
            state.values(),
            key=lambda r: parse_iso(r.get("updatedAt")) or datetime.min.replace(tzinfo=UTC),
            reverse=True,
        )
        return newest_first

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["x-api-key"] = self.api_key
        if self.tenant_id:
            headers["x-tenant-id"] = self.tenant_id
        return headers

    def _request(
        self,
        method: str,
        path: str,
        operation: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
    ) -> dict[str, Any]:
        last: SeedClientError | None = None
        for attempt in range(self.retry_attempts + 1):
            self.requests.append((operation, method, path, dict(params or {}), json))
            try:
                with httpx.Client(timeout=self.timeout) as http:
                    response = http.request(
                        method,
                        self.server_url + path,
                        params=params,
                        json=json,
                        headers=self._headers(),
                    )
            except httpx.TransportError as exc:
                last = SeedClientError(operation, f"network error: {exc!r}")
            else:
                body = _json_of(response, operation)
                self.answers.append((operation, response.status_code, body))
                if 200 <= response.status_code < 300:
                    if not isinstance(body, dict):
                        raise SeedClientError(operation, "answer is not an object", 200, body)
                    return body
                detail = body.get("error") if isinstance(body, dict) else None
                last = SeedClientError(
                    operation,
                    f"HTTP {response.status_code}" + (f": {detail}" if detail else ""),
                    response.status_code,
                    body,
                )
                if not (response.status_code in RETRYABLE or response.status_code >= 500):
                    raise last
            if attempt < self.retry_attempts:
                delay = min(self.retry_base_delay_ms * 2**attempt, self.retry_max_delay_ms)
                time.sleep(delay / 1000)
        assert last is not None
        raise last

    @staticmethod
    def _require_success(body: Mapping[str, Any], operation: str) -> None:
        if body.get("success") is not True:
            raise SeedClientError(operation, str(body.get("error") or "success is not true"))


def normalise_update(update: Mapping[str, Any]) -> dict[str, Any]:
    """`{eventId, record}` as the seed sends it: an envelope as given, or a bare record with
    its own `eventId` (taken out of the record) or a new one."""
    if isinstance(update.get("record"), dict) and isinstance(update.get("eventId"), str):
        return {"eventId": update["eventId"], "record": update["record"]}
    record = dict(update)
    event_id = record.pop("eventId", None) or str(uuid.uuid4())
    return {"eventId": event_id, "record": record}


def _json_of(response: httpx.Response, operation: str) -> Any:
    raw = response.text
    if not raw:
        return {}
    try:
        return response.json()
    except ValueError:
        if 200 <= response.status_code < 300:
            raise SeedClientError(
                operation, f"invalid JSON answer: {raw[:200]}", response.status_code
            ) from None
        return {"error": raw[:200]}
