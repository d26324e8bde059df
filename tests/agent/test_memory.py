"""agent/memory.py: what the agent's own process keeps out and gives back (issue 12).
No memory figure is asserted here (bench/idle_bench.py measures it)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agent import memory

ROOT = Path(__file__).resolve().parents[2]


def test_a_module_kept_out_cannot_be_imported() -> None:
    name = "pdvsync_test_never_imported"
    try:
        assert memory.keep_out_unused((name, "sys")) == [name]  # sys is imported: left alone
        with pytest.raises(ImportError):
            __import__(name)
    finally:
        sys.modules.pop(name, None)


def test_the_bundle_leaves_out_what_the_agent_keeps_out() -> None:
    spec = (ROOT / "installer" / "pdvsync-agent.spec").read_text()
    found = re.search(r"^excluded = (\[.*?^\])", spec, re.S | re.M)
    assert found, "no `excluded = [...]` in the spec"
    assert set(memory.UNUSED_MODULES) <= set(ast.literal_eval(found.group(1)))


def test_the_agent_process_runs_without_them() -> None:
    """`python -m agent`'s start: its dependencies take their 'not installed' paths."""
    code = (
        "from agent.memory import lean_process, UNUSED_MODULES; lean_process(); "
        "import agent.runtime, agent.cli, sys; "
        "print(sorted(m for m in UNUSED_MODULES if sys.modules.get(m) is not None))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"


def test_trim_after_each_burst_once_the_work_was_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    trims: list[int] = []

    def release() -> bool:
        trims.append(1)
        return True

    monkeypatch.setattr(memory, "release_freed", release)
    now = [100.0]
    trim = memory.TrimAfterWork(quiet_s=2.0, clock=lambda: now[0])
    trim.on_heartbeat()  # the start-up is a burst too, just over: not yet
    assert trims == []
    now[0] += 2.0
    trim.on_heartbeat()  # the start-up's
    assert len(trims) == 1
    trim.on_heartbeat()  # nothing happened since
    trim.on_status({"syncingSince": "2026-01-01T00:00:00.000Z"})
    now[0] += 10.0
    trim.on_heartbeat()  # still busy: not now
    assert len(trims) == 1
    trim.on_status({"syncingSince": None})
    trim.on_heartbeat()  # the burst just ended: the next sale may be a moment away
    now[0] += 1.0
    trim.on_heartbeat()
    assert len(trims) == 1
    trim.on_status({"syncingSince": "2026-01-01T00:00:01.000Z"})  # another sale
    trim.on_status({"syncingSince": None})
    now[0] += 1.5
    trim.on_heartbeat()  # 2.5 s after the first burst, 1.5 after the last: not yet
    assert len(trims) == 1
    now[0] += 0.5
    trim.on_heartbeat()  # the lull's first heartbeat
    trim.on_heartbeat()
    assert len(trims) == 2 and trim.trims == 2


def test_the_c_library_is_loaded_once_without_a_child_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`ctypes.util.find_library` runs `ldconfig -p` in a child process: on every trim it
    cost the engine's thread milliseconds, in the middle of the sync."""
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc only")
    memory._glibc.cache_clear()

    def no_children(*args: object, **kwargs: object) -> None:
        raise AssertionError("a child process was started")

    monkeypatch.setattr(subprocess, "Popen", no_children)
    try:
        first = memory._glibc()
        assert memory.release_freed() in (True, False)
        assert memory._glibc() is first
    finally:
        memory._glibc.cache_clear()


def test_release_and_arenas_are_harmless_anywhere() -> None:
    assert isinstance(memory.release_freed(), bool)
    assert isinstance(memory.limit_malloc_arenas(8), bool)  # glibc's default, 8 per core


def test_tls_stays_verified_and_an_http_server_loads_no_ca_bundle() -> None:
    """An https server: httpx's default, the CA bundle, verified. An http one (a shop's
    LAN) needs no TLS: a context that trusts no one and still verifies, never an
    unverified one."""
    import ssl

    from agent.sync.client import _tls_for

    assert _tls_for("https://sync.loja.example:3001") is True
    assert _tls_for("HTTPS://sync.loja.example") is True
    context = _tls_for("http://192.168.1.100:3001")
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] == 0
