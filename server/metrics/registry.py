"""The metrics a server process updates as it works: events per shop, table and result, and
the time push and pull requests take; one `CollectorRegistry` per app (tests build many apps
in one process, and the library's global registry would mix them)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from fastapi import Request
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from protocol import TABLE_NAMES, ProtocolError
from protocol.vocabulary import ResultStatus

from ..push import PushResult

# A rejected event's table is whatever the client sent: any other name is counted under
# this one, so a client cannot grow the number of series.
OTHER_TABLE = "_invalid"
# Push and pull answers take milliseconds on a LAN; a slow disk or a long page, seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter(
            "pdvsync_events",
            "Events pushed to this server process, by shop, table and result "
            "(applied, skipped_stale, rejected); repeats of an event already received are not "
            "counted again.",
            ["tenant", "table", "result"],
            registry=self.registry,
        )
        self.push_seconds = Histogram(
            "pdvsync_push_seconds",
            "Time to answer a push request, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.pull_seconds = Histogram(
            "pdvsync_pull_seconds",
            "Time to answer a pull request, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        # CPU, memory, open files, start time (Linux; nothing elsewhere) and Python's version.
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    def count_events(self, tenant: str, results: Iterable[PushResult]) -> None:
        """Count one push's results (a repeated event replays its first result: not counted);
        one increment per (table, result), not per event."""
        counts: dict[tuple[object, str], int] = {}
        for result in results:
            if not result.get("duplicate"):
                key = (result.get("table"), str(result["status"]))
                counts[key] = counts.get(key, 0) + 1
        for (table, status), n in counts.items():
            self._count(tenant, table, status, n)

    def count_refused(self, tenant: str, error: ProtocolError) -> None:
        """A batch refused whole (422 invalid_batch): its invalid events were rejected."""
        if error.code == "invalid_batch":
            for result in error.details.get("invalid") or ():
                if isinstance(result, dict):
                    self._count(tenant, result.get("table"), ResultStatus.REJECTED.value)

    @contextmanager
    def counting(self, tenant: str) -> Iterator[Callable[[Iterable[PushResult]], None]]:
        """`with metrics.counting(tenant) as count: ...; count(results)` — also counts the
        events of a batch refused whole, which never reach `count`."""
        try:
            yield lambda results: self.count_events(tenant, results)
        except ProtocolError as exc:
            self.count_refused(tenant, exc)
            raise

    def _count(self, tenant: str, table: object, result: str, n: int = 1) -> None:
        name = table if isinstance(table, str) and table in TABLE_NAMES else OTHER_TABLE
        self.events.labels(tenant, name, result).inc(n)


# `count(tenant, results)`: one write's results into the events counter.
EventCounter = Callable[[str, Iterable[PushResult]], None]


def event_counter(request: Request) -> EventCounter:
    """A route dependency: the app's events counter (writes outside the sync routes use it)."""
    return metrics_of(request).count_events


def metrics_of(request: Request) -> ServerMetrics:
    """The app's metrics (`install_metrics` put them in `app.state.metrics`)."""
    return request.app.state.metrics
