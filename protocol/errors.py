"""The one error type of the wire contract: a stable code and a human message."""

from __future__ import annotations

from typing import Any


class ProtocolError(Exception):
    """Bad input, reported to the other side as `{success: false, error, code, ...}`.

    `status` is the HTTP status the server answers with; the agent maps the same codes.
    """

    def __init__(self, code: str, message: str, *, status: int = 422, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.details = details

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"success": False, "error": self.message, "code": self.code}
        body.update(self.details)
        return body
