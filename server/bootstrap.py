"""The seed's bootstrap: a front end fills this shop's empty table once, one machine at a time.

State per (shop, table) in `bootstrap_state`: `completed` answers `already_completed`; a
bootstrap in progress by another machine answers `locked_by_other_machine` while its lease
(BOOTSTRAP_LEASE_MS) lasts, so a crashed one does not lock the table forever; a table that
already has live rows is marked completed (`server_not_empty`). Otherwise the records go
through the normal push, in chunks of at most MAX_EVENTS_PER_REQUEST, the state
`in_progress` committed (and its lease renewed) between chunks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NotRequired, TypedDict

from protocol.messages import PushItem

from .context import ServiceContext
from .push import PushResult

BOOTSTRAP_LEASE_MS = 5 * 60_000


class BootstrapAnswer(TypedDict):
    """`POST /api/sync/bootstrap/{table}` (besides success and timestamp)."""

    bootstrapped: bool
    reason: NotRequired[str]  # already_completed | locked_by_other_machine | server_not_empty
    processed: NotRequired[int]  # records applied
    conflicts: NotRequired[list[PushResult]]  # results not applied (stale, rejected)


def bootstrap(
    ctx: ServiceContext, table_name: str, machine_id: str, events: Sequence[PushItem]
) -> BootstrapAnswer:
    raise NotImplementedError("bootstrap: its state table lands next")
