"""How the server's routes describe themselves in the OpenAPI document: request bodies and
answers from protocol/jsonschema.py, the error statuses each route really returns, and the
parts every route shares (the x-api-key scheme, the database identity header and its 409).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from protocol import jsonschema as js
from protocol.headers import DATABASE_HEADER
from protocol.jsonschema import seed as seed_js
from webapi import ERROR_STATUSES, error_responses

Schema = dict[str, Any]

# Every route under /api: a bad shop id or shops that disagree (400), a missing or wrong key
# (401), a machine key used for another machine or shop (403), a database that cannot be
# reached (503).
PROTECTED = (400, 401, 403, 503)
# A route that reads a JSON body: malformed (400), too large (413), invalid (422).
WITH_BODY = (400, 413, 422)


def documented(
    answer: Schema,
    *statuses: int,
    body: Schema | None = None,
    summary: str | None = None,
) -> dict[str, Any]:
    """The keyword arguments of a route decorator: its success answer (`answer`, a JSON
    Schema), the error statuses it returns, and its request body when it reads one (the
    route reads it with `webapi.json_body`, so FastAPI cannot see it by itself)."""
    kwargs: dict[str, Any] = {
        "responses": {200: js.json_content(answer), **error_responses(*sorted(set(statuses)))},
    }
    if body is not None:
        kwargs["openapi_extra"] = {"requestBody": js.request_body(body)}
    if summary is not None:
        kwargs["summary"] = summary
    return kwargs


def install_openapi(app: FastAPI) -> None:
    """`app.openapi()` as FastAPI builds it, then completed with what no single route says."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = complete(document)
        return app.openapi_schema

    setattr(app, "openapi", openapi)  # noqa: B010 - FastAPI documents this override


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """Drop FastAPI's default 422 (a shape we never send), declare the key scheme, and
    document the database identity header every route honours (server/identity.py)."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    components["securitySchemes"] = {
        "apiKey": {
            "type": "apiKey",
            "in": "header",
            "name": "x-api-key",
            "description": "API_SECRET_KEY or a machine key; required when any is configured",
        }
    }
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if _is_fastapi_validation(responses.get("422")):
                del responses["422"]
            if path.startswith("/api/"):
                # Optional: a server with no key configured takes requests without one.
                operation["security"] = [{"apiKey": []}, {}]
            operation.setdefault("parameters", []).append(_database_header())
            responses.setdefault("409", _error_response(409))
    return document


def _is_fastapi_validation(response: Schema | None) -> bool:
    if response is None:
        return False
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref", "").endswith("/HTTPValidationError"))


def _database_header() -> Schema:
    return {
        "name": DATABASE_HEADER,
        "in": "header",
        "required": False,
        "description": "the database identity this client synced with; another one is "
        "refused with 409 database_changed before the route runs",
        "schema": {"type": "string"},
    }


def _error_response(status: int) -> Schema:
    return {
        "description": ERROR_STATUSES[status],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }


# -- the answers only the server gives --------------------------------------------------------


def health_schema(*, up: bool) -> Schema:
    """`GET /health`: 200 with the database connected, 503 without."""
    properties: Schema = {
        "status": {"const": "ok" if up else "error"},
        "database": {"type": "string", "enum": ["sqlite", "postgresql"]},
        "version": {"type": "string"},
        "databaseConnected": {"const": up},
    }
    if up:
        properties["timestamp"] = js.iso_schema()
    else:
        properties["error"] = {"type": "string"}
    return {"type": "object", "properties": properties, "required": list(properties)}


def stats_schema() -> Schema:
    machine = {
        "type": "object",
        "properties": {
            "machineId": {"type": "string"},
            "firstSeen": js.iso_schema(),
            "lastSeen": js.iso_schema(),
            "cursor": {"type": "integer", "minimum": 0},
            "eventsPushed": {"type": "integer"},
        },
        "required": ["machineId", "firstSeen", "lastSeen", "cursor", "eventsPushed"],
    }
    return js.success_schema(
        {
            "tenantId": seed_js.tenant_schema(),
            "cursor": {"type": "integer"},
            "eventsProcessed": {"type": "integer"},
            "conflicts": {"type": "integer"},
            "rejected": {"type": "integer"},
            "tombstoneHorizon": {"type": "integer"},
            "machines": {"type": "array", "items": machine},
            "liveClients": {"type": "integer"},
            "liveMachines": {"type": "array", "items": {"type": ["string", "null"]}},
            "startedAt": js.iso_schema(),
            "database": {"type": "string"},
        }
    )
