"""The seed's bootstrap on the agent: a front end fills a table that is empty here, once.

The front end's records become local writes (outbox events, pushed like any other), but
each keeps its own `updatedAt` as its edit time: a bootstrap carries old data, so it must
lose to newer edits made elsewhere (a POS write is stamped on receipt instead).

Allowed only when the table is empty here AND this store has caught up with the server at
least once (`SyncState.reached_server`): an empty table before the first pull says nothing
about the server's. Answers, in the original server's words plus ours:
- `already_completed`: done before (or found not empty before);
- `server_not_empty`: the table has rows here (it is marked done: never bootstrapped later);
- `not_synced_yet`: this store never reached the server; the front end tries again later.
The checks and the writes are one transaction under the writer lock, so two front ends
never both fill a table (no `locked_by_other_machine` here).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NotRequired, TypedDict

from protocol import Change
from protocol.vocabulary import LocalWriteStatus

from .context import StoreContext
from .state import COMPLETED, SyncState
from .views import Views
from .writes import LocalWrites, WriteResult

ALREADY_COMPLETED = "already_completed"
NOT_EMPTY = "server_not_empty"
NOT_SYNCED_YET = "not_synced_yet"


class BootstrapAnswer(TypedDict):
    bootstrapped: bool
    reason: NotRequired[str]  # already_completed | server_not_empty | not_synced_yet
    processed: NotRequired[int]  # records written (repeated events are not counted again)
    results: NotRequired[list[WriteResult]]  # each record's write, in order


class Bootstraps:
    def __init__(
        self, ctx: StoreContext, state: SyncState, views: Views, writes: LocalWrites
    ) -> None:
        self._ctx = ctx
        self._state = state
        self._views = views
        self._writes = writes

    def bootstrap(
        self, table: str, items: Sequence[tuple[str, Change]], now: int
    ) -> BootstrapAnswer:
        """Fill `table` with `items` (eventId, change) if it may be; `now` stamps the records
        that carry no `updatedAt`."""
        with self._ctx.lock, self._ctx.db.atomic():
            if self._state.bootstrap_state(table) == COMPLETED:
                return BootstrapAnswer(bootstrapped=False, reason=ALREADY_COMPLETED)
            if self._views.count(table) > 0:
                self._state.set_bootstrap_state(table, COMPLETED)
                return BootstrapAnswer(bootstrapped=False, reason=NOT_EMPTY)
            if not self._state.reached_server():
                return BootstrapAnswer(bootstrapped=False, reason=NOT_SYNCED_YET)
            results = self._writes.write(items, now, atomic=False) if items else []
            self._state.set_bootstrap_state(table, COMPLETED)
        processed = sum(1 for r in results if r["status"] == LocalWriteStatus.ACCEPTED)
        return BootstrapAnswer(bootstrapped=processed > 0, processed=processed, results=results)
