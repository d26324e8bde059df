"""The words of the wire contract, as enums: what a result, a reconcile or an outbox event
can be. Each value is the exact string that travels in JSON, so `StrEnum` members compare
equal to (and serialise as) the strings both sides already exchange.
"""

from __future__ import annotations

from enum import StrEnum


class ResultStatus(StrEnum):
    """The server's verdict on one pushed event."""

    APPLIED = "applied"
    STALE = "skipped_stale"  # an older edit than the one stored: last writer wins
    REJECTED = "rejected"  # bad input or a refused change; nothing applied


class Resolution(StrEnum):
    """How a conflict was resolved (`conflicts[].resolution`, the seed's word)."""

    STALE = "skipped_stale"
    REJECTED = "rejected"


class LocalWriteStatus(StrEnum):
    """The agent's answer to one write of the POS on its loopback API."""

    ACCEPTED = "accepted"  # committed locally with its outbox event
    DUPLICATE = "duplicate"  # this eventId was written before: nothing changed
    REJECTED = "rejected"


class DivergenceStrategy(StrEnum):
    """What a reconcile does about a difference (the seed's `divergenceStrategy`)."""

    NONE = "none"
    REFRESH_MISMATCHED = "refresh_mismatched"
    FULL_RESYNC = "full_resync"


class ReconcileStatus(StrEnum):
    """The outcome of one reconcile. The server answers the first three; the agent's own log
    adds what it did about it."""

    CONSISTENT = "consistent"
    DIVERGENT = "divergent"
    RETRY = "retry"  # the server moved during the comparison: a difference proves nothing
    REPAIRED = "repaired"  # agent: divergent, then consistent after the repair
    ERROR = "error"  # agent: the comparison could not be made (server unreachable, ...)


class OutboxState(StrEnum):
    """Where a local write's event stands in the agent's outbox."""

    PENDING = "pending"  # not yet acknowledged by the server
    SENT = "sent"  # acknowledged; kept a while to answer a POS retry "duplicate"
    DEAD = "dead"  # refused by the server; waits for the manager to retry or discard


def choices(enum: type[StrEnum]) -> str:
    """`none, refresh_mismatched, full_resync`: the values, for error messages."""
    return ", ".join(member.value for member in enum)
