"""`GET /metrics` of a real server process, parsed with prometheus_client's own parser: events
per shop, table and result, push and pull latency by route, live sockets, each PDV's last
report (bounded), and who may read it."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import peewee as pw
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

from server.db import connect_database
from server.hub import LiveHub
from server.metrics.pdvs import Pdv, PdvCollector, bounded
from server.settings import Settings, SettingsError
from tests.server.test_cli_keys import keys_cli
from tests.serverproc import ServerProcess

KEY = "chave-do-servidor-de-teste"
README = Path(__file__).resolve().parents[2] / "README.md"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(server: ServerProcess, **headers: str) -> httpx.Response:
    return httpx.get(server.url + "/metrics", headers=headers, timeout=10)


def samples(server: ServerProcess) -> Samples:
    """Every sample of a scrape, by (name, labels); the text must parse."""
    r = scrape(server)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


def series(found: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in found.items() if n == name}


def api(server: ServerProcess, tenant: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"x-api-key": KEY, "x-tenant-id": tenant}, timeout=10
    )


def eid() -> str:
    return str(uuid.uuid4())


@contextmanager
def database(server: ServerProcess) -> Iterator[Any]:
    """The server's own database, to age or place PDV reports in time."""
    db, _ = connect_database(server.database_url, server.data_dir)
    try:
        with db.connection_context():
            yield db
    finally:
        db.close_all()


def put_report(
    db: Any,
    tenant: str,
    machine: str,
    *,
    received_at: int,
    pending: int = 0,
    oldest_ms: int | None = None,
    dead_letters: int = 0,
    clock_offset_ms: int = 0,
    cursor: int = 0,
) -> None:
    """A PDV's last report, as pdv_reports keeps it (migration 4), written straight into
    the table with the time it was received (the route stamps the server's clock)."""
    p = db.param
    db.execute_sql(
        "INSERT INTO pdv_reports (tenant_id, machine_id, received_at, report, state, pending, "
        "oldest_pending_age_ms, dead_letters, clock_offset_ms, cursor, version, hostname) "
        f"VALUES ({', '.join([p] * 12)})",
        (
            tenant,
            machine,
            received_at,
            json.dumps({"machineId": machine}),
            "waiting" if pending else "synced",
            pending,
            oldest_ms,
            dead_letters,
            clock_offset_ms,
            cursor,
            "1.0.0",
            f"pc-{machine}",
        ),
    )


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# -- the series and their values ----------------------------------------------------------------


def test_metrics_count_events_time_requests_and_show_each_pdv(server_factory, database_url):
    server = server_factory(database_url=database_url, env={"API_SECRET_KEY": KEY})
    first = {
        "machineId": "caixa-a1",
        "events": [
            {"eventId": eid(), "table": "products", "record": {"id": "pao", "name": "Pão"}},
            {"eventId": eid(), "table": "products", "record": {"id": "bolo", "name": "Bolo"}},
        ],
    }
    with api(server, "loja-a") as a, api(server, "loja-b") as b:
        assert a.post("/api/sync/batch", json=first).status_code == 200
        assert a.post("/api/sync/batch", json=first).status_code == 200  # a repeat: not counted
        r = a.post(
            "/api/sync/products",
            json={
                "machineId": "caixa-a1",
                "cursor": 2,
                "localUpdates": [
                    {
                        "eventId": eid(),
                        "record": {
                            "id": "pao",
                            "name": "Velho",
                            "updatedAt": "2001-01-01T00:00:00Z",
                        },
                    },
                    {"eventId": eid(), "record": {"id": "ruim", "price": "abc"}},
                ],
            },
        )
        assert r.status_code == 200, r.text
        assert sorted(c["resolution"] for c in r.json()["conflicts"]) == [
            "rejected",
            "skipped_stale",
        ]
        # A batch refused whole: its invalid events are rejected, the valid one is not counted.
        r = a.post(
            "/api/sync/batch",
            json={
                "events": [
                    {"eventId": eid(), "table": "orders", "record": {"id": "o1", "total": "5.00"}},
                    {"eventId": eid(), "table": "products", "record": {"id": "x", "price": "abc"}},
                    {"eventId": eid(), "table": "nenhuma", "record": {"id": "y"}},
                ]
            },
        )
        assert r.status_code == 422 and r.json()["code"] == "invalid_batch"
        assert a.get("/api/sync/changes", params={"since": 0}).status_code == 200
        assert a.get("/api/sync/products", params={"since": 0}).status_code == 200

        single = {"type": "order_created", "data": {"id": "b1", "total": "3.00"}, "event_id": eid()}
        assert b.post("/api/sync", json=single).status_code == 200
        r = b.post(
            "/api/sync/orders",
            json={
                "machineId": "caixa-b1",
                "cursor": 0,
                "localUpdates": [{"eventId": eid(), "record": {"id": "b2", "total": "4.00"}}],
            },
        )
        assert r.status_code == 200, r.text

    # The PDVs report as their agents do; two of loja-b's then fall silent for 10 minutes
    # (their reports aged in the database), one with a sale waiting since before that.
    reports = [
        ("loja-a", {"machineId": "caixa-a1", "state": "waiting", "pending": 3,
                    "oldestPendingAgeMs": 60_000, "deadLetters": 2, "clockOffsetMs": -1500,
                    "cursor": 1}),
        ("loja-b", {"machineId": "caixa-b2", "state": "waiting", "pending": 1,
                    "oldestPendingAgeMs": 1000}),
        ("loja-b", {"machineId": "caixa-b1", "state": "synced", "cursor": 2}),
    ]  # fmt: skip
    for tenant, body in reports:
        with api(server, tenant) as c:
            r = c.post("/api/sync/report", json={"version": "1.0.0", **body})
            assert r.status_code == 200, r.text
    with database(server) as db:
        db.execute_sql(
            "UPDATE pdv_reports SET received_at = received_at - 600000 WHERE tenant_id = 'loja-b'"
        )

    ws_url = server.url.replace("http://", "ws://") + "/api/sync/ws?machineId=caixa-b1"
    with connect(
        ws_url, additional_headers={"x-api-key": KEY, "x-tenant-id": "loja-b"}, open_timeout=10
    ) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        found = samples(server)

    events = series(found, "pdvsync_events_total")
    assert events == {
        frozenset({"tenant": "loja-a", "table": "products", "result": "applied"}.items()): 2,
        frozenset({"tenant": "loja-a", "table": "products", "result": "skipped_stale"}.items()): 1,
        frozenset({"tenant": "loja-a", "table": "products", "result": "rejected"}.items()): 2,
        frozenset({"tenant": "loja-a", "table": "_invalid", "result": "rejected"}.items()): 1,
        frozenset({"tenant": "loja-b", "table": "orders", "result": "applied"}.items()): 2,
    }

    # One observation per request, under its route's template; pulls apart from pushes.
    assert value(found, "pdvsync_push_seconds_count", route="/api/sync/batch") == 3
    assert value(found, "pdvsync_push_seconds_count", route="/api/sync/{table}") == 2
    assert value(found, "pdvsync_push_seconds_count", route="/api/sync") == 1
    assert value(found, "pdvsync_pull_seconds_count", route="/api/sync/changes") == 1
    assert value(found, "pdvsync_pull_seconds_count", route="/api/sync/{table}") == 1
    assert value(found, "pdvsync_push_seconds_bucket", route="/api/sync", le="+Inf") == 1
    assert (value(found, "pdvsync_push_seconds_sum", route="/api/sync/batch") or 0) > 0
    routes = {dict(labels)["route"] for labels in series(found, "pdvsync_push_seconds_count")}
    routes |= {dict(labels)["route"] for labels in series(found, "pdvsync_pull_seconds_count")}
    assert routes == {"/api/sync", "/api/sync/batch", "/api/sync/{table}", "/api/sync/changes"}

    assert value(found, "pdvsync_live_sockets", tenant="loja-b") == 1
    assert value(found, "pdvsync_live_sockets", tenant="loja-a") == 0
    assert value(found, "pdvsync_database_up") == 1
    assert value(found, "pdvsync_head", tenant="loja-a") == 2
    assert value(found, "pdvsync_head", tenant="loja-b") == 2

    a1 = {"tenant": "loja-a", "machine": "caixa-a1"}
    assert value(found, "pdvsync_pdv_up", **a1) == 1
    assert value(found, "pdvsync_pdv_pending", **a1) == 3
    assert 60 <= (value(found, "pdvsync_pdv_oldest_pending_seconds", **a1) or 0) < 90
    assert value(found, "pdvsync_pdv_dead_letters", **a1) == 2
    assert value(found, "pdvsync_pdv_clock_offset_seconds", **a1) == -1.5
    assert value(found, "pdvsync_pdv_lag", **a1) == 1  # head 2, its cursor 1
    b2 = {"tenant": "loja-b", "machine": "caixa-b2"}
    assert value(found, "pdvsync_pdv_up", **b2) == 0
    assert 600 <= (value(found, "pdvsync_pdv_oldest_pending_seconds", **b2) or 0) < 660
    assert value(found, "pdvsync_pdv_lag", **b2) == 2
    # Its report is old, but it pushed a moment ago: it is up.
    b1 = {"tenant": "loja-b", "machine": "caixa-b1"}
    assert value(found, "pdvsync_pdv_up", **b1) == 1
    assert value(found, "pdvsync_pdv_pending", **b1) == 0
    assert value(found, "pdvsync_pdv_oldest_pending_seconds", **b1) == 0
    assert value(found, "pdvsync_pdv_lag", **b1) == 0
    assert ("process_cpu_seconds_total", frozenset()) in found  # the process, on Linux

    # The README's table lists exactly the series the server has.
    text = README.read_text(encoding="utf-8")
    section = text[text.index("\n## Metrics (Prometheus)\n") :]
    section = section[: section.index("\n## ", 1)]
    documented = set(re.findall(r"^\| `(pdvsync_\w+)`", section, flags=re.M))
    exposed = {re.sub(r"_(bucket|count|sum)$", "", n) for n, _ in found if "_created" not in n}
    assert documented == {n for n in exposed if n.startswith("pdvsync_")}

    # The socket closed: the gauge follows.
    deadline = time.monotonic() + 10
    while value(samples(server), "pdvsync_live_sockets", tenant="loja-b") != 0:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_per_pdv_series_are_bounded(server_factory, database_url):
    """METRICS_MAX_PDVS=3: the three PDVs seen last have series of their own; the others are
    one machine="_other" per shop (counts summed, the worst wait)."""
    server = server_factory(database_url=database_url, env={"METRICS_MAX_PDVS": "3"})
    now = now_ms()
    with database(server) as db:
        for i in range(5):  # caixa-4 was seen last
            put_report(
                db, "loja-a", f"caixa-{i}", received_at=now - 1000 * (5 - i), pending=i, oldest_ms=i
            )
        put_report(db, "loja-b", "caixa-0", received_at=now - 10_000, pending=7, oldest_ms=50_000)
        # A machine id with characters the text format must escape.
        put_report(db, "loja-b", 'caixa "9"\\\n', received_at=now - 200_000, pending=1)
    found = samples(server)
    pending = {
        (dict(labels)["tenant"], dict(labels)["machine"]): v
        for labels, v in series(found, "pdvsync_pdv_pending").items()
    }
    assert pending == {
        ("loja-a", "caixa-4"): 4,
        ("loja-a", "caixa-3"): 3,
        ("loja-a", "caixa-2"): 2,
        ("loja-a", "_other"): 0 + 1,
        ("loja-b", "_other"): 7 + 1,
    }
    assert value(found, "pdvsync_pdv_up", tenant="loja-a", machine="_other") == 2
    assert value(found, "pdvsync_pdv_up", tenant="loja-b", machine="_other") == 1  # one is silent
    oldest = value(found, "pdvsync_pdv_oldest_pending_seconds", tenant="loja-b", machine="_other")
    assert oldest is not None and 60 <= oldest < 120  # 50 s when reported, 10 s ago
    for name in ("pdvsync_pdv_up", "pdvsync_pdv_lag", "pdvsync_pdv_dead_letters"):
        assert len(series(found, name)) == 5

    # Unbounded, every machine has its own series; the odd id comes back as it was written.
    server.stop()
    wide = server_factory(database_url=database_url, env={"METRICS_MAX_PDVS": "100"})
    machines = {dict(labels)["machine"] for labels in series(samples(wide), "pdvsync_pdv_pending")}
    assert 'caixa "9"\\\n' in machines and len(machines) == 6


# -- who may read it ---------------------------------------------------------------------------


def test_metrics_need_an_allowed_address_or_the_servers_key(server_factory, tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    # 127.0.0.1 is not in the allowed range: the test client is a foreign address.
    server = server_factory(
        database_url=url, env={"API_SECRET_KEY": KEY, "METRICS_ALLOW": "10.0.0.0/8, 192.168.1.7"}
    )
    issued = keys_cli(server, "issue", "--machine", "caixa-1")
    assert issued.returncode == 0, issued.stderr
    machine_key = issued.stdout.strip().splitlines()[-1]
    for headers in (
        {},
        {"authorization": "Bearer errada"},
        {"x-api-key": "errada"},
        {"authorization": f"Bearer {machine_key}"},
        {"x-api-key": machine_key},
        {"authorization": f"Basic {KEY}"},
    ):
        r = scrape(server, **headers)
        assert r.status_code == 403, (headers, r.text)
        assert r.json()["success"] is False and r.json()["code"] == "forbidden"
        assert "pdvsync" not in r.text
    for headers in ({"authorization": f"Bearer {KEY}"}, {"x-api-key": KEY}):
        r = scrape(server, **headers)
        assert r.status_code == 200 and "pdvsync_database_up 1.0" in r.text
    # A machine key is still good for its own routes.
    r = httpx.get(server.url + "/api/stats", headers={"x-api-key": machine_key}, timeout=10)
    assert r.status_code == 200

    # By default this PC (loopback) reads it without a key; not in the API's document.
    server.stop()
    local = server_factory(database_url=url, env={"API_SECRET_KEY": KEY})
    assert scrape(local).status_code == 200
    document = httpx.get(local.url + "/openapi.json", timeout=10).json()
    assert "/metrics" not in document["paths"]
    # Prometheus may ask for OpenMetrics.
    r = scrape(local, accept="application/openmetrics-text; version=1.0.0")
    assert r.status_code == 200 and r.headers["content-type"].startswith(
        "application/openmetrics-text"
    )
    assert r.text.rstrip().endswith("# EOF")


def test_metrics_settings():
    default = Settings.from_mapping({})
    assert [str(n) for n in default.metrics.allow] == ["127.0.0.1/32", "::1/128"]
    assert default.metrics.max_pdvs == 500
    s = Settings.from_mapping(
        {"METRICS_ALLOW": "192.168.1.10/24,10.1.2.3", "METRICS_MAX_PDVS": "0"}
    )
    assert [str(n) for n in s.metrics.allow] == ["192.168.1.0/24", "10.1.2.3/32"]
    assert s.metrics.max_pdvs == 0
    assert Settings.from_mapping({"METRICS_ALLOW": "none"}).metrics.allow == ()
    with pytest.raises(SettingsError, match="METRICS_ALLOW: 'rede-da-loja'"):
        Settings.from_mapping({"METRICS_ALLOW": "127.0.0.1/32,rede-da-loja"})
    with pytest.raises(SettingsError, match="METRICS_MAX_PDVS"):
        Settings.from_mapping({"METRICS_MAX_PDVS": "muitos"})
    with pytest.raises(SettingsError, match="METRICS_MAX_PDVS"):
        Settings.from_mapping({"METRICS_MAX_PDVS": "-1"})


# -- the collector alone ---------------------------------------------------------------------


class _Unreachable:
    """A sync service whose database does not answer."""

    def clock(self) -> int:
        return now_ms()

    @contextmanager
    def connection(self) -> Iterator[None]:
        raise pw.OperationalError("connection refused")
        yield


def test_a_database_that_does_not_answer_is_a_gauge_not_a_failed_scrape():
    collector = PdvCollector(_Unreachable(), LiveHub(), 10)  # type: ignore[arg-type]
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    found = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert found == {
        ("pdvsync_database_up", frozenset()): 0,
        ("pdvsync_live_sockets", frozenset({("tenant", "default")})): 0,
    }


def test_folding_keeps_the_most_recent_and_sums_the_rest():
    def pdv(tenant: str, machine: str, seen: int, **figures: Any) -> Pdv:
        base = dict(
            up=1, pending=0, oldest_pending_s=0.0, dead_letters=0, clock_offset_s=0.0, lag=0
        )
        return Pdv(tenant, machine, seen, **{**base, **figures})

    pdvs = [
        pdv("a", "m1", 100, pending=1, oldest_pending_s=5.0, clock_offset_s=-3.0, lag=4),
        pdv("a", "m2", 300),
        pdv("a", "m3", 200, up=0, pending=2, oldest_pending_s=9.0, clock_offset_s=2.0, lag=1),
        pdv("b", "m1", 50, dead_letters=3),
    ]
    assert [(p.tenant, p.machine) for p in bounded(pdvs, 10)] == [
        ("a", "m2"),
        ("a", "m3"),
        ("a", "m1"),
        ("b", "m1"),
    ]
    kept = bounded(pdvs, 1)
    assert [(p.tenant, p.machine) for p in kept] == [("a", "m2"), ("a", "_other"), ("b", "_other")]
    other = kept[1]
    assert (other.up, other.pending, other.oldest_pending_s, other.lag) == (1, 3, 9.0, 4)
    assert other.clock_offset_s == -3.0  # the farthest off, with its sign
    assert kept[2].dead_letters == 3
    assert [p.machine for p in bounded(pdvs, 0)] == ["_other", "_other"]


def test_collection_writes_are_counted_as_events(server_factory):
    server = server_factory(env={"API_SECRET_KEY": KEY})
    with api(server, "loja-a") as a:
        r = a.post("/api/supplies", json={"id": "farinha", "name": "Farinha", "stock": "10"})
        assert r.status_code == 200, r.text
        r = a.patch("/api/supplies/farinha", json={"costPerUnit": "abc"})
        assert r.status_code == 422, r.text
        assert a.delete("/api/supplies/farinha").status_code == 200
    events = series(samples(server), "pdvsync_events_total")
    assert events == {
        frozenset({"tenant": "loja-a", "table": "supplies", "result": "applied"}.items()): 2,
        frozenset({"tenant": "loja-a", "table": "supplies", "result": "rejected"}.items()): 1,
    }


def test_a_pdv_whose_live_socket_closed_is_down_as_on_the_panel():
    from server.metrics.pdvs import read_pdv
    from server.presence import SOCKET_GRACE_MS

    now = 1_000_000_000
    reported = now - 20_000
    row = ("loja", "caixa-1", reported, None, 0, None, 0, 0, 5)
    assert read_pdv((*row, reported - 1, None), now, {"loja": 5}).up == 1  # socket open
    closed = now - SOCKET_GRACE_MS  # closed after its last report, 10 s ago
    assert read_pdv((*row, reported - 1, closed), now, {"loja": 5}).up == 0
    assert read_pdv((*row, reported - 1, now - 1), now, {"loja": 5}).up == 1  # a blip
    assert read_pdv((*row, None, None), now, {"loja": 5}).up == 1  # never had a socket
