"""Concurrent writers and readers on one database: invariants 2, 3 and 5 under load.

Each writer thread has its own SyncService and connection pool, like separate server
processes over one database. Full size on PostgreSQL; a smaller run on a SQLite file
(not `:memory:`, which is a different database in every thread).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest

from tests.server.conftest import live_by_id, push, push_batch, push_one

JOIN_TIMEOUT = 60  # seconds; a hung thread fails the test instead of hanging the suite


def is_pg(url: str) -> bool:
    return url.startswith("postgresql")


def run_threads(workers: list[Callable[[], Any]]) -> list[Any]:
    """Run the callables at once; return their results, or raise the first error."""
    with ThreadPoolExecutor(max_workers=len(workers)) as pool:
        futures = [pool.submit(w) for w in workers]
        return [f.result(timeout=JOIN_TIMEOUT) for f in futures]


def test_a_concurrent_puller_sees_every_change_once_in_order(database_url, service_factory):
    pushers, pushes = (6, 40) if is_pg(database_url) else (3, 20)
    writers = [service_factory(database_url) for _ in range(pushers)]
    feed_reader = service_factory(database_url)
    table_reader = service_factory(database_url)
    finished = threading.Event()
    remaining = [pushers]
    lock = threading.Lock()

    def pusher(n: int) -> None:
        svc = writers[n]
        try:
            for i in range(pushes):
                key = f"w{n}-{i}"
                if i % 3 == 0:
                    push(
                        svc,
                        "products",
                        {"id": f"{key}-a", "name": key},
                        {"id": f"{key}-b"},
                        machine=f"caixa-{n}",
                    )
                elif i % 3 == 1:  # a sale: rows in several tables, one transaction
                    push_batch(
                        svc,
                        ("orders", {"id": key, "total": "1.00"}),
                        ("order_items", {"id": f"{key}-1", "order_id": key, "price": "1.00"}),
                        ("supplies", {"id": key, "stock": "0.5"}),
                        machine=f"caixa-{n}",
                    )
                else:
                    push_batch(
                        svc,
                        ("order_items", {"id": f"{key}-x", "order_id": key}),
                        ("products", {"id": key, "price": "2.00"}),
                        machine=f"caixa-{n}",
                    )
        finally:
            with lock:
                remaining[0] -= 1
                if remaining[0] == 0:
                    finished.set()

    def read_feed() -> tuple[list[tuple[int, str, str]], int]:
        """One cursor over every table, as the agent reads: GET /api/sync/changes."""
        seen: list[tuple[int, str, str]] = []
        cursor = 0
        for _ in range(1_000_000):
            done = finished.is_set()  # read before the page: a page begun after the end sees it all
            page = feed_reader.changes(cursor, 7, machine_id="leitor")
            seen += [(c["seq"], c["table"], c["record"]["id"]) for c in page["changes"]]
            assert page["cursor"] >= cursor
            cursor = page["cursor"]
            if done and not page["hasMore"]:
                return seen, cursor
        raise AssertionError("the feed reader never caught up")

    def read_table() -> list[str]:
        """One table with its own cursor, as the seed's clients read: GET /api/sync/products."""
        seen: list[str] = []
        cursor = 0
        for _ in range(1_000_000):
            done = finished.is_set()
            page = table_reader.pull("products", cursor, 5)
            seen += [r["id"] for r in page["synced"]]
            cursor = page["cursor"]
            if done and not page["hasMore"]:
                return seen
        raise AssertionError("the table reader never caught up")

    results = run_threads(
        [read_feed, read_table, *[(lambda n=n: pusher(n)) for n in range(pushers)]]
    )
    (seen, cursor), products_seen = results[0], results[1]

    head = feed_reader.head()
    assert cursor == head
    # Every write created a new row, so no change was superseded: the reader must have seen
    # every sequence number exactly once, in order, with nothing skipped.
    assert [s for s, _, _ in seen] == list(range(1, head + 1))
    final = {
        (name, r["id"])
        for name in ("products", "orders", "order_items", "supplies")
        for r in feed_reader.list_live(name)
    }
    assert {(t, i) for _, t, i in seen} == final
    assert len(final) == head == pushers * sum(2 if i % 3 != 1 else 3 for i in range(pushes))
    assert products_seen == [i for _, t, i in seen if t == "products"]


def test_the_same_event_pushed_concurrently_applies_once(database_url, service_factory):
    threads, rounds = (8, 15) if is_pg(database_url) else (4, 8)
    services = [service_factory(database_url) for _ in range(threads)]
    push_one(services[0], "products", {"id": "pao", "stock_quantity": 1000}, machine=None)
    barrier = threading.Barrier(threads)

    def worker(k: int) -> list[list[dict]]:
        out = []
        for r in range(rounds):
            barrier.wait(timeout=JOIN_TIMEOUT)  # line the threads up so the duplicates collide
            results, _ = push_batch(
                services[k],
                ("products", {"id": "pao", "_op": "increment", "stock_quantity": -1}, f"venda-{r}"),
                ("orders", {"id": f"o-{k}-{r}", "total": "1.00"}, f"pedido-{k}-{r}"),
                machine=f"caixa-{k}",
            )
            out.append(results)
        return out

    per_thread = run_threads([(lambda k=k: worker(k)) for k in range(threads)])
    for r in range(rounds):
        sale = [per_thread[k][r][0] for k in range(threads)]
        originals = [x for x in sale if not x.get("duplicate")]
        assert len(originals) == 1, sale
        assert all(x["status"] == "applied" and x["seq"] == originals[0]["seq"] for x in sale)
        assert all(per_thread[k][r][1]["status"] == "applied" for k in range(threads))
    svc = services[0]
    assert live_by_id(svc, "products")["pao"]["stock_quantity"] == 1000 - rounds
    assert len(svc.list_live("orders")) == threads * rounds
    assert svc.head() == 1 + rounds + threads * rounds
    assert svc.stats()["eventsProcessed"] == 1 + rounds + threads * rounds


def test_concurrent_increments_are_exact(database_url, service_factory):
    threads, each = (8, 20) if is_pg(database_url) else (4, 10)
    services = [service_factory(database_url) for _ in range(threads)]
    push_one(
        services[0], "products", {"id": "pao", "name": "Pão", "stock_quantity": 1000}, machine=None
    )
    push_one(services[0], "supplies", {"id": "farinha", "stock": "0"}, machine=None)
    barrier = threading.Barrier(threads)

    def worker(k: int) -> None:
        svc = services[k]
        barrier.wait(timeout=JOIN_TIMEOUT)
        for i in range(each):
            push_one(
                svc,
                "products",
                {"id": "pao", "_op": "increment", "stock_quantity": -1},
                machine=f"caixa-{k}",
            )
            push_one(
                svc,
                "supplies",
                {"id": "farinha", "_op": "increment", "stock": "0.001"},
                machine=f"caixa-{k}",
            )
            if (
                i % 5 == 0
            ):  # absolute edits of other fields interleave and must not clobber the counter
                push_one(
                    svc, "products", {"id": "pao", "name": f"Pão {k}-{i}"}, machine=f"caixa-{k}"
                )

    run_threads([(lambda k=k: worker(k)) for k in range(threads)])
    svc = services[0]
    assert live_by_id(svc, "products")["pao"]["stock_quantity"] == 1000 - threads * each
    assert live_by_id(svc, "supplies")["farinha"]["stock"] == Decimal("0.001") * threads * each


@pytest.mark.postgres
def test_concurrent_writers_in_one_service_share_its_pool(pg_url, service_factory):
    """Threads of one server process share one SyncService (the app's thread pool)."""
    svc = service_factory(pg_url)
    push_one(svc, "products", {"id": "pao", "stock_quantity": 0}, machine=None)

    def worker(k: int) -> None:
        for i in range(20):
            push_batch(
                svc,
                ("orders", {"id": f"o-{k}-{i}"}),
                ("products", {"id": "pao", "_op": "increment", "stock_quantity": 1}),
            )

    run_threads([(lambda k=k: worker(k)) for k in range(8)])
    assert live_by_id(svc, "products")["pao"]["stock_quantity"] == 160
    assert svc.head() == 1 + 8 * 20 * 2
    seqs = [c["seq"] for c in svc.changes(0, 5000)["changes"]]
    assert seqs == sorted(seqs) and len(seqs) == 161
