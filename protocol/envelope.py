"""The JSON envelope both HTTP apps speak: how a request body is read, and the shape of every
answer, `{success: true, ...}` or `{success: false, error, code, ...}`.

Framework-free on purpose: the server and the agent's loopback API read bodies with
`decode_body` and answer errors with `error_body`, so a bad input gets the same clear 4xx
from both (the loopback API once answered 500 where the server answered 400). `send_json`
answers from raw ASGI middleware, before any framework runs.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from .errors import ProtocolError, error_body
from .records import dumps, loads

# Bodies above this are refused (413) unless an app sets its own limit (MAX_BODY_BYTES).
DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def decode_body(raw: bytes, *, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> Any:
    """A request body -> its JSON value (fractions as Decimal), or ProtocolError:
    413 above `max_bytes`; 400 when empty, malformed, nested past what the parser can
    follow, or holding a lone surrogate escape (`"\\ud800"`), which no database can store as
    UTF-8 text."""
    if len(raw) > max_bytes:
        raise ProtocolError(
            "body_too_large", f"request body larger than {max_bytes} bytes", status=413
        )
    if not raw.strip():
        raise ProtocolError("invalid_json", "request body: expected JSON, got nothing", status=400)
    try:
        body = loads(raw)
    except RecursionError:
        raise ProtocolError(
            "invalid_json", "request body: JSON nested too deeply", status=400
        ) from None
    except ValueError:  # UnicodeDecodeError included
        raise ProtocolError("invalid_json", "request body: malformed JSON", status=400) from None
    if _SURROGATE_ESCAPE.search(raw) and not _encodable(body):
        raise ProtocolError(
            "invalid_json", "request body: invalid unicode escape (lone surrogate)", status=400
        )
    return body


def _encodable(value: Any) -> bool:
    """True when every string (keys included) of a parsed JSON value is valid UTF-8 text."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def success_body(**fields: Any) -> dict[str, Any]:
    return {"success": True, **fields}


__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "decode_body",
    "encode",
    "error_body",
    "send_json",
    "success_body",
]


def encode(payload: Any) -> bytes:
    """A JSON answer's bytes; Decimals are exact JSON numbers (see `records.dumps`)."""
    return dumps(payload).encode("utf-8")


Send = Callable[[dict[str, Any]], Awaitable[None]]


async def send_json(
    send: Send,
    status: int,
    payload: dict[str, Any],
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    """A whole JSON answer from raw ASGI middleware (before any route runs)."""
    body = encode(payload)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
