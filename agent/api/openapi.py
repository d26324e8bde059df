"""The loopback API's contract as OpenAPI shows it: each route's request body, its success
body and the error statuses it really answers. Route decorators take `**doc.<route>()`.

The records and envelopes are the protocol's (`protocol/jsonschema.py`, shared with the
server); what only the agent answers (its write results, status, outbox) is described here.
Every route may answer 403: the loopback guard (agent/loopback.py) refuses a foreign `Host`
or `Origin` before any route runs, and a data route refuses a front end naming another shop
(agent/api/shop.py; 400 for a shop id that is not one). A route that reads or writes the
store may answer 503 when the local database cannot be used (disk full, file gone).
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from protocol import jsonschema as js
from protocol.jsonschema import seed as seed_js
from protocol.schema import TABLES, Table
from protocol.vocabulary import DivergenceStrategy, LocalWriteStatus, OutboxState, ReconcileStatus
from webapi import error_responses

from .shop import agent_shop, document_shop

Doc = dict[str, Any]
Schema = dict[str, Any]

_GUARD = 403
_STORE = 503
# A data route: the shop named is not a shop id (400; another shop's is 403, the guard's).
_SHOP = 400
# A route that takes a JSON body: bad JSON or a vanished body (400), an envelope or record
# refused (422), a body or an event count over the limit (413).
_BODY = (400, 413, 422)
# A write: an increment of a record that does not exist (404), and the store.
_WRITE = (*_BODY, 404, _STORE)


def _doc(answer: Schema, *statuses: int, body: Schema | None = None, summary: str = "") -> Doc:
    doc: Doc = {
        "summary": summary,
        "responses": {
            200: js.json_content(answer),
            **error_responses(*sorted({_GUARD, *statuses})),
        },
    }
    if body is not None:
        doc["openapi_extra"] = {"requestBody": body}
    return doc


def _enum(values: type[Any]) -> Schema:
    return {"type": "string", "enum": [v.value for v in values]}


def _array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


# -- what only the agent answers ------------------------------------------------------------


def _write_result() -> Schema:
    """One event of a write: committed locally (`accepted`), written before (`duplicate`,
    with the `state` of the first write's event) or refused (`rejected`: `reason`, `error`)."""
    return {
        "type": "object",
        "properties": {
            "eventId": {"type": ["string", "null"]},
            "id": {"type": ["string", "null"]},
            "table": {"type": ["string", "null"]},
            "status": _enum(LocalWriteStatus),
            "state": _enum(OutboxState),
            "reason": {"type": "string"},
            "error": {"type": "string"},
        },
        "required": ["eventId", "id", "table", "status"],
    }


def _conflict() -> Schema:
    """A refused event of a table push, in the seed's words (`resolution: rejected`)."""
    schema = _write_result()
    del schema["properties"]["status"]
    schema["properties"]["resolution"] = {"const": LocalWriteStatus.REJECTED.value}
    schema["required"] = ["eventId", "id", "table", "resolution"]
    return schema


def _record(table: Table) -> Schema:
    """A record the POS reads: always a live one (the views hold no tombstones)."""
    return js.wire_record_schema(table, tombstone=False)


def _outbox_event() -> Schema:
    return {
        "type": "object",
        "properties": {
            "eventId": {"type": "string"},
            "table": {"type": "string"},
            "id": {"type": "string"},
            "op": {"type": "string"},
            "createdAt": js.iso_schema(nullable=True),
            "attempts": {"type": "integer"},
            "lastError": {"type": ["string", "null"]},
        },
        "required": ["eventId", "table", "id", "op", "createdAt", "attempts", "lastError"],
    }


def _status() -> Schema:
    """The sync status (the tray and `pdvsync-agent status` read it; more fields may come)."""
    return js.success_schema(
        {
            "state": {"type": "string"},
            "pending": {"type": "integer", "minimum": 0},
            "deadLetters": {"type": "integer", "minimum": 0},
            "online": {"type": ["boolean", "null"]},
            "cursor": {"type": "integer", "minimum": 0},
            "machineId": {"type": "string"},
            "lastError": {"type": ["string", "null"]},
            "lastSuccessAt": js.iso_schema(nullable=True),
        }
    )


# -- the routes -----------------------------------------------------------------------------


def health() -> Doc:
    answer = {
        "type": "object",
        "properties": {
            "status": {"const": "ok"},
            "role": {"const": "agent"},
            "machineId": {"type": "string"},
        },
        "required": ["status", "role", "machineId"],
    }
    return _doc(answer, summary="The agent is up, and which machine it is")


def status() -> Doc:
    return _doc(_status(), summary="The sync status")


def sync_now() -> Doc:
    # 503: the cycle did not finish within its 30 s (it goes on in the background).
    return _doc(_status(), 503, summary="Push and pull now; the status after it")


def _force_reconcile_answer() -> Schema:
    return js.success_schema(
        {
            "status": _enum(ReconcileStatus),
            "isConsistent": {"type": "boolean"},
            "strategy": _enum(DivergenceStrategy),
            "mismatches": _array({"type": "object"}),
            "error": {"type": ["string", "null"]},
        },
        required=["status", "isConsistent"],
    )


def _client_reconcile_answer() -> Schema:
    """The seed's answer, the local store in the server's place (agent/store/summary.py)."""
    return js.success_schema(
        {
            "isConsistent": {"type": "boolean"},
            "status": {"enum": [ReconcileStatus.CONSISTENT.value, ReconcileStatus.DIVERGENT.value]},
            "mismatches": _array(js.mismatch_schema()),
            "serverSummary": _array(js.server_summary_schema()),
            "tenantId": seed_js.tenant_schema(),
            "timestamp": js.iso_schema(),
        }
    )


def reconcile() -> Doc:
    force = {
        "title": "force",
        "type": "object",
        "properties": {"strategy": _enum(DivergenceStrategy)},
        "not": {"required": ["clientSummary"]},
    }
    body = js.request_body(
        {"anyOf": [force, seed_js.seed_reconcile_schema()]},
        "Optional. With `clientSummary` (the seed's client): compare the front end's summary "
        "with this PDV's store. Without: reconcile with the server now (`strategy` overrides "
        "the configured divergence strategy)",
    )
    body["required"] = False
    return _doc(
        {"anyOf": [_force_reconcile_answer(), _client_reconcile_answer()]},
        _SHOP,
        413,
        422,
        _STORE,
        body=body,
        summary="Reconcile: a front end's summary with this store, or this store with the server",
    )


def reconcile_history() -> Doc:
    entry = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "created_at": js.iso_schema(nullable=True),
            "status": _enum(ReconcileStatus),
            "is_consistent": {"type": "boolean"},
            # "client": a front end's summary compared with this store (no repair).
            "strategy": {"enum": [*(v.value for v in DivergenceStrategy), "client"]},
            "mismatches": {"type": "array"},
            "repair": {},
            "server_log_id": {"type": ["integer", "null"]},
            "error": {"type": ["string", "null"]},
        },
        "required": ["id", "created_at", "status", "is_consistent", "strategy"],
    }
    answer = js.success_schema({"data": _array(entry)})
    return _doc(answer, 422, _STORE, summary="This machine's last reconciles (newest first)")


def outbox() -> Doc:
    answer = js.success_schema(
        {"pending": _array(_outbox_event()), "dead": _array(_outbox_event())}
    )
    return _doc(answer, _STORE, summary="Events not yet sent, and dead letters")


def dead_letter(action: str) -> Doc:
    return _doc(js.success_schema({}), 404, _STORE, summary=f"{action.capitalize()} a dead letter")


def batch_push() -> Doc:
    answer = js.success_schema(
        {
            "results": _array(_write_result()),
            "conflicts": _array(_write_result()),
            "timestamp": js.iso_schema(),
        }
    )
    return _doc(
        answer,
        *_WRITE,
        body=js.request_body(seed_js.with_tenant(js.batch_push_schema())),
        summary="Write events of several tables, all or nothing (a sale)",
    )


def single_push() -> Doc:
    one = js.success_schema(
        {
            "synced_at": js.iso_schema(),
            "event_id": {"type": "string"},
            "status": _enum(LocalWriteStatus),
            "result": _write_result(),
        }
    )
    many = js.success_schema(
        {
            "synced_at": js.iso_schema(),
            "event_ids": _array({"type": "string"}),
            "synced": {"type": "integer"},
            "results": _array(_write_result()),
        }
    )
    return _doc(
        {"anyOf": [one, many]},
        *_WRITE,
        body=js.request_body(seed_js.with_tenant(js.single_event_schema())),
        summary="The seed's single event (`data` one record, or a list written all or nothing)",
    )


def table_push() -> Doc:
    written = {
        "conflicts": _array(_conflict()),
        "results": _array(_write_result()),
        "timestamp": js.iso_schema(),
    }
    # With `cursor`: the rows written, as a page. Without (the seed's client): the table's
    # rows by `lastSync` (every live row when it has none), deletions included.
    paged = js.success_schema({**js.table_page_properties(), **written})
    seed = js.success_schema(
        {"synced": _array(js.any_wire_record_schema()), **written},
    )
    return _doc(
        {"anyOf": [paged, seed]},
        *_WRITE,
        body=js.request_body(seed_js.table_sync_schema()),
        summary="Write events of one table; invalid ones are reported, the others stored",
    )


def since_read() -> Doc:
    return _doc(
        seed_js.since_answer_schema(),
        _SHOP,
        404,
        _STORE,
        summary="The seed's read: every row as the POS sees it, or (`lastSync`, the front "
        "end's clock) the rows and deletions changed since then, minus a safety margin",
    )


def watch(max_wait_ms: int, default_wait_ms: int) -> Doc:
    """The long-poll (agent/api/watch.py). 503: the agent is stopping."""
    answer = js.success_schema(
        {
            "token": {"type": "integer", "minimum": 0, "description": "the next `after`"},
            "changed": {"type": "boolean", "description": "the store changed after `after`"},
            "tables": {
                "anyOf": [_array({"enum": list(TABLES)}), {"type": "null"}],
                "description": "the tables changed after `after`; null: not known (a token "
                "of an earlier run or too old), read everything again",
            },
        }
    )
    return _doc(
        answer,
        _SHOP,
        503,
        summary="Wait for the local store to change: at once when it changed after `after`, "
        f"else at the first change or after `wait` ms (at most {max_wait_ms}, default "
        f"{default_wait_ms}) with `changed: false`",
    )


def bootstrap() -> Doc:
    answer = copy.deepcopy(seed_js.bootstrap_answer_schema())
    # Not in the server's words: this PDV never caught up with the server yet, so an empty
    # table here says nothing about the server's (try again later).
    refused = answer["anyOf"][1]["properties"]["reason"]
    refused["enum"] = [*refused["enum"], "not_synced_yet"]
    return _doc(
        answer,
        *_WRITE,
        body=js.request_body(seed_js.bootstrap_schema()),
        summary="Fill a table that is empty here once with a front end's records (kept with "
        "their own edit times)",
    )


def diagnostics() -> Doc:
    return _doc(
        seed_js.diagnostics_answer_schema(),
        _SHOP,
        _STORE,
        summary="Per table as the POS sees it: rows, the newest edit, rows lacking each "
        "expected field",
    )


def table_param() -> dict[str, Any]:
    """`json_schema_extra` of `/api/sync/{table}`'s path parameter: the tables (another
    name is answered 404, as documented)."""
    return {"enum": list(TABLES)}


def listing(collection: str, *statuses: int) -> Doc:
    table = TABLES[collection]
    properties: Schema = {collection: _array(_record(table))}
    if collection == "orders":
        properties["total"] = {"type": "integer", "minimum": 0}
    return _doc(
        js.success_schema(properties),
        _SHOP,
        *statuses,
        _STORE,
        summary=f"All {collection} as the POS sees them (its own writes included)",
    )


def get_one(table: Table) -> Doc:
    # `token`: only with `after`/`wait` (the long-poll on this read), for the next `after`.
    token = {"type": "integer", "minimum": 0}
    answer = js.success_schema({"record": _record(table), "token": token}, required=["record"])
    summary = f"One record of {table.name} (with `after`: once the store changed after it)"
    return _doc(answer, _SHOP, 404, 422, _STORE, summary=summary)


def _record_write(table: Table) -> Schema:
    """The write's result, and the record as the POS now reads it (null once deleted)."""
    return js.success_schema(
        {"result": _write_result(), "record": {"anyOf": [_record(table), {"type": "null"}]}}
    )


def create(table: Table) -> Doc:
    return _doc(
        _record_write(table),
        *_WRITE,
        body=js.request_body(js.collection_write_schema(table)),
        summary=f"Write one record of {table.name} (a new id when none is given)",
    )


def update(table: Table) -> Doc:
    return _doc(
        _record_write(table),
        *_WRITE,
        body=js.request_body(js.collection_write_schema(table)),
        summary=f"Change one record of {table.name} (only the fields given)",
    )


def delete(table: Table) -> Doc:
    return _doc(
        _record_write(table),
        _SHOP,
        404,
        422,
        _STORE,
        summary=f"Delete one record of {table.name}",
    )


def install(app: FastAPI) -> None:
    """Serve the contract as written here. FastAPI adds a 422 "Validation Error" (its own
    body shape) to every route with a parameter; only the routes documented with a 422 can
    answer one, in the one error shape, so the others lose it. A shop named anywhere can
    only be this PDV's (`shop.document_shop`)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            for path_item in schema.get("paths", {}).values():
                for operation in path_item.values():
                    responses = operation.get("responses", {})
                    if "HTTPValidationError" in str(responses.get("422", "")):
                        del responses["422"]
            components = schema.get("components", {}).get("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                components.pop(name, None)
            document_shop(schema.get("paths", {}), agent_shop(app.state.engine))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
