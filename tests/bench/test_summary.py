"""The summary table of `make bench` renders from results of every kind, good, bad, failed
or skipped, and is appended to the history file. Fake results only: nothing is measured."""

from __future__ import annotations

import datetime as dt

from bench import summary as sm
from bench.idle_bench import IdleStats
from bench.netloss_bench import LossTrial
from bench.reads_bench import ReadStats
from bench.server_bench import Row


def agent_results(pouch_skipped: bool = False) -> dict:
    pouch = (
        {"skipped": "node is not installed"}
        if pouch_skipped
        else {"throughput": {"docsPerSecond": 2000.0}, "latency": {"p50": 9.0, "p99": 20.0}}
    )
    return {
        "pdvsync": {
            "docs": 10_000,
            "throughput": {
                "docsPerSecond": 7000.0,
                "complete": True,
                "cpuMicrosPerDoc": {"a": 300.0, "server": 150.0, "b": 1200.0},
            },
            "latency": {"p50": 4.0, "p99": 25.0},
        },
        "pouchdb": pouch,
    }


def all_lines() -> list[sm.Line]:
    ingest = Row("postgresql", 100, 1, 20_000, 4.0, 1.0, server_cpu=2.0, pg_cpu=1.0)
    reads = [ReadStats("server (sqlite)", 10_000, 300.0, 40.0, 45.0, 20.0, 3_000_000)]
    trials = [LossTrial(12.0, 10.0, None, 60.0), LossTrial(14.5, 11.0, 40.0, 60.0)]
    idle = [
        IdleStats("headless", 30.0, 0.1, 60.0, 12.0, 1.0, 7),
        IdleStats("tray", 30.0, 0.2, 95.0, 20.0, 3.0, 9),
    ]
    return [
        sm.ingest_line([ingest], {}, None),
        *sm.agent_lines(agent_results(), None),
        *sm.reads_lines(reads, {"server (postgresql)": "no PostgreSQL binaries"}, 10_000),
        *sm.idle_lines(idle, None, None),
        *sm.loss_lines(trials, None),
    ]


def meta() -> sm.Meta:
    return sm.Meta(
        started=dt.datetime(2026, 12, 4, 17, 0, tzinfo=dt.UTC),
        seconds=600.0,
        load_before=(1.0, 0.5, 0.25),
        load_after=(2.0, 1.5, 1.25),
        commit="abc1234",
        notes=["a note"],
    )


def test_every_line_of_the_issue_is_in_the_table_with_its_verdict():
    text = sm.render(all_lines(), meta())
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0] == "| work | measured | anchor | ratio | aim | met? |"
    by_work = {r.split(" | ")[0][2:]: r for r in rows[1:]}
    assert len(by_work) == 10
    ingest = by_work["server ingest, batches of 100 over HTTP, PostgreSQL"]
    assert "25.0%" in ingest and ingest.endswith("| **NO** |")  # 5,000/s vs 20,000/s
    assert by_work["10,000 products from A's loopback to B, end to end"].endswith(
        "| 3.50× | ≥ 3× (stretch 5×) | yes |"
    )
    assert (
        "(CPU µs/doc: a 300, server 150, b 1,200)"
        in by_work["10,000 products from A's loopback to B, end to end"]
    )
    assert by_work["one update A → B while live, p50"].endswith("| yes |")
    assert by_work["one update A → B while live, p99"].endswith("| **NO** |")  # 25 vs 20
    sqlite = by_work["GET /api/products of 10,000 rows, server (sqlite)"]
    assert "0.80×" in sqlite and sqlite.endswith("| yes |")
    pg = by_work["GET /api/products of 10,000 rows, server (postgresql)"]
    assert "not measured: no PostgreSQL binaries" in pg and pg.endswith("| **NO** |")
    loss = by_work["silent network loss → badge Offline"]
    assert "14.5 s worst of 2" in loss and loss.endswith("| yes |")
    assert "server > 60 s" in by_work["silent network loss → each end drops the socket"]
    assert by_work["idle headless agent: wake-ups"].endswith("| yes |")
    assert by_work["idle agent with the tray: RSS"].endswith("| **NO** |")  # 95 MB
    assert "5 of 9 aims met." in text  # the socket line is for information
    assert "before 1.00 / 0.50 / 0.25, after 2.00 / 1.50 / 1.25" in text
    assert "2026-12-04 17:00 UTC" in text and "abc1234" in text and "- a note" in text


def test_a_part_that_failed_or_was_skipped_still_has_its_lines():
    lines = [
        sm.ingest_line([], {"postgresql": "no binaries"}, None),
        *sm.agent_lines(None, "BenchError: agent A exited"),
        *sm.idle_lines([], None, "RuntimeError: boom"),
        *sm.loss_lines([], "BenchError: no live WebSocket"),
    ]
    assert len(lines) == 1 + 3 + 2 + 1
    assert all(x.met is False and x.measured.startswith("not measured") for x in lines)
    skipped = sm.agent_lines(agent_results(pouch_skipped=True), None)
    assert "PouchDB skipped: node is not installed" in skipped[0].anchor
    assert not skipped[0].met
    tray_skipped = sm.idle_lines(
        [IdleStats("headless", 30.0, 0.1, 60.0, 12.0, 1.0, 7)], "Xvfb is not installed", None
    )
    assert tray_skipped[1].measured == "not measured: Xvfb is not installed"


def test_a_pipe_in_a_cell_does_not_break_the_table():
    line = sm.Line("a | b", "1", "2", "3", "4", None)
    text = sm.render([line], meta())
    assert "| a \\| b | 1 | 2 | 3 | 4 | – |" in text


def test_the_summary_is_appended_to_the_history(tmp_path):
    path = tmp_path / "results" / "history.md"
    sm.append_history("### run 1\n", path)
    sm.append_history("### run 2\n", path)
    assert path.read_text(encoding="utf-8") == "### run 1\n\n### run 2\n\n"


def test_a_partial_throughput_run_is_never_met():
    results = agent_results()
    results["pdvsync"]["throughput"]["complete"] = False
    line = sm.agent_lines(results, None)[0]
    assert "partial" in line.measured and line.met is False


def test_consecutive_runs_side_by_side():
    second = all_lines()
    second[0] = sm.ingest_line([Row("postgresql", 100, 1, 100, 1.0, 0.2)], {}, None)  # 20%
    runs = [(meta(), all_lines()), (meta(), second)]
    text = sm.render_runs(runs)
    assert "| work | aim | run 1 | run 2 | met in |" in text
    ingest = next(x for x in text.splitlines() if x.startswith("| server ingest"))
    assert ingest.endswith("| 5,000 events/s · 25.0% ✗ | 100 events/s · 20.0% ✗ | 0 of 2 |")
    loss = next(x for x in text.splitlines() if x.startswith("| silent network loss → badge"))
    assert loss.endswith("| 14.5 s · 0.97× ✓ | 14.5 s · 0.97× ✓ | 2 of 2 |")
    assert "| load average (1 min) before → after | | 1.0 → 2.0 | 1.0 → 2.0 | |" in text


def test_the_latency_lines_say_how_b_saw_each_update():
    results = agent_results()
    p50, p99 = sm.agent_lines(results, None)[1:]
    assert p50.measured == "4.0 ms" and p99.measured == "25.0 ms"  # older results: no mode
    for mode, said in (
        ("wait", "(read waiting for a change)"),
        ("watch", "(long-poll, then a read)"),
        ("poll", "(polled every 2 ms)"),
    ):
        results["pdvsync"].update(latencyMode=mode, pollMs=2.0)
        p50, p99 = sm.agent_lines(results, None)[1:]
        assert p50.measured == f"4.0 ms {said}" and p99.measured == f"25.0 ms {said}"
