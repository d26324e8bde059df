"""The one error type of the wire contract: a stable code and a human message."""

from __future__ import annotations

from typing import Any


def error_body(code: str, message: str, **details: Any) -> dict[str, Any]:
    """The one error shape of both HTTP apps: `{success: false, error, code, ...details}`."""
    return {"success": False, "error": message, "code": code, **details}


class ProtocolError(Exception):
    """Bad input, reported to the other side as `{success: false, error, code, ...}`.

    `status` is the HTTP status both apps answer with.
    """

    def __init__(self, code: str, message: str, *, status: int = 422, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.details = details

    def to_json(self) -> dict[str, Any]:
        return error_body(self.code, self.message, **self.details)
