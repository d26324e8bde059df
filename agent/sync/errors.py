"""Why a sync failed, as stable codes: the sync layer records a code and an English detail,
and only the UI (agent/ui/presentation.py) turns a code into words for the manager.

The exceptions the client raises carry their code; the engine copies it to the status
(`lastErrorCode` beside `lastError`) and to reconcile reports (`errorCode` beside `error`).
Texts kept in the store (an outbox event's last error, the local reconcile log) hold both
as `"<code>: <detail>"`, which `split_failure` reads back.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any


class SyncError(StrEnum):
    UNREACHABLE = "unreachable"  # no connection: refused, no route, no network
    TIMEOUT = "timeout"  # the server did not answer in time
    NETWORK = "network"  # another network failure (connection reset, bad reply...)
    SERVER_UNAVAILABLE = "server_unavailable"  # 5xx, 408: the server cannot answer now
    SERVER_BUSY = "server_busy"  # 429: the server is there but asks us to wait (Retry-After)
    AUTH_REFUSED = "auth_refused"  # 401: retrying will not help until the key changes
    KEY_OF_OTHER_MACHINE = "key_of_other_machine"  # 403: a machine key of another PDV
    DATABASE_CHANGED = "database_changed"  # the server answers from another database
    TENANT_CHANGED = "tenant_changed"  # this store holds another shop's data than configured
    TENANT_FORBIDDEN = "tenant_forbidden"  # 403: the API key belongs to another shop
    TENANT_REFUSED = "tenant_refused"  # 400: the server refused the configured shop
    SERVER_REFUSED = "server_refused"  # the server refused a push as a whole (a 4xx)
    REQUEST_REFUSED = "request_refused"  # the server refused another request (a 4xx)
    RESYNC_REQUIRED = "resync_required"  # 409: our cursor means nothing to the server
    SERVER_MOVED = "server_moved"  # new changes during every comparison attempt
    PART_OF_REFUSED_SALE = "part_of_refused_sale"  # a dead letter because its sale was
    UNEXPECTED = "unexpected"  # a bug: logged with its traceback


class ServerError(Exception):
    """A request to the server failed; `code` says why, the message is the English detail."""

    default_code = SyncError.REQUEST_REFUSED

    def __init__(self, detail: str, code: SyncError | None = None) -> None:
        super().__init__(detail)
        self.code = code or self.default_code

    @property
    def detail(self) -> str:
        return str(self)


class Unreachable(ServerError):
    """Not answered, or answered "later": the request may be retried as it is."""

    default_code = SyncError.UNREACHABLE


class Throttled(Unreachable):
    """429: the server is there and asks us to send later (`retry_after_ms`, from its
    Retry-After, bounded). The PDV stays online; its events wait and go after that."""

    default_code = SyncError.SERVER_BUSY

    def __init__(self, detail: str, retry_after_ms: int) -> None:
        super().__init__(detail)
        self.retry_after_ms = retry_after_ms


class AuthRefused(ServerError):
    """The key was refused: retrying will not help until the key changes."""

    default_code = SyncError.AUTH_REFUSED


class ResyncRequired(ServerError):
    """The server cannot continue from our cursor: the mirror must be pulled again."""

    default_code = SyncError.RESYNC_REQUIRED


class DatabaseChanged(Unreachable):
    """The server answers from another database than the one this agent synced with: nothing
    was applied, and syncing stays stopped until a manager accepts the new database."""

    default_code = SyncError.DATABASE_CHANGED


class TenantChanged(Unreachable):
    """This PDV's store holds the data of another shop than the one configured: nothing is
    sent nor received (its sales stay in the outbox) until the manager points the PDV back
    at its shop, or sets the data folder aside to start afresh for the new one."""

    default_code = SyncError.TENANT_CHANGED

    def __init__(self, held: str, configured: str) -> None:
        super().__init__(tenant_changed_detail(held, configured))
        self.held = held
        self.configured = configured


class Rejected(ServerError):
    """Any other 4xx: the request itself is wrong; `body` is the server's error body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        error = body.get("error")
        super().__init__(str(error) if error else f"HTTP {status}")
        self.status = status
        self.body = body


# The shops of a TENANT_CHANGED failure, in its English detail: shop ids are letters, digits,
# '.', '_' and '-' (protocol/tenancy.py), so quotes delimit them unambiguously, and the UI
# reads them back from a stored text as well as from the status.
_TENANT_CHANGED = re.compile(
    r"holds the data of shop '([^']*)' but is configured for shop '([^']*)'"
)


def tenant_changed_detail(held: str, configured: str) -> str:
    return (
        f"this PDV holds the data of shop '{held}' but is configured for shop '{configured}'; "
        "syncing is stopped and the sales stay on this PDV (point it back at its shop, or set "
        "the data folder aside to start afresh)"
    )


def tenant_changed_shops(detail: str | None) -> tuple[str, str] | None:
    """(held, configured) from a `tenant_changed_detail` text; None for any other text."""
    found = _TENANT_CHANGED.search(detail or "")
    return (found.group(1), found.group(2)) if found else None


def failure_text(code: SyncError, detail: str) -> str:
    """The one text stored for a failure: `"unreachable: server unreachable (...)"`."""
    return f"{code.value}: {detail}"


def split_failure(text: str | None) -> tuple[SyncError | None, str | None]:
    """(code, detail) of a text `failure_text` made; (None, text) for any other text (the
    server's reason for a refusal, or an error stored by an older version)."""
    if text:
        head, sep, rest = text.partition(": ")
        if sep and head in _CODES:
            return SyncError(head), rest
    return None, text


_CODES = frozenset(code.value for code in SyncError)
