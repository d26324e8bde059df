"""The package layering of docs/architecture.md, checked on the source:

    agent/ui → agent/sync → agent/store → protocol        server → webapi → protocol
    agent (composition root, loopback API) → webapi → protocol

protocol/ is framework-free; webapi/ is the FastAPI glue both HTTP apps share and imports
neither app; the agent never imports the server, nor the server the agent.
"""

from __future__ import annotations

import pytest

from tests.ui.test_layers import ROOT, imported_modules, sources

FRAMEWORKS = ("fastapi", "starlette", "pydantic", "uvicorn", "peewee", "playhouse", "httpx")
QT = ("PySide6", "PyQt5", "PyQt6", "shiboken6")


def offenders(folders: tuple[str, ...], forbidden) -> dict[str, list[str]]:
    found = {
        str(p.relative_to(ROOT)): sorted(m for m in imported_modules(p) if forbidden(m))
        for p in sources(*folders)
    }
    return {k: v for k, v in found.items() if v}


def top(module: str) -> str:
    return module.split(".")[0]


def test_protocol_imports_no_framework_and_nothing_of_ours():
    assert offenders(("protocol",), lambda m: top(m) in (*FRAMEWORKS, *QT)) == {}
    assert offenders(("protocol",), lambda m: top(m) in ("server", "agent", "webapi")) == {}


def test_webapi_imports_neither_app():
    assert offenders(("webapi",), lambda m: top(m) in ("server", "agent", *QT)) == {}


@pytest.mark.parametrize(("folder", "other"), [("server", "agent"), ("agent", "server")])
def test_the_apps_never_import_each_other(folder, other):
    assert offenders((folder,), lambda m: top(m) == other) == {}


def test_the_store_and_the_sync_layer_carry_no_http_framework():
    web = ("fastapi", "starlette", "uvicorn", "webapi")
    assert offenders(("agent/store", "agent/sync"), lambda m: top(m) in web) == {}


def test_the_store_never_imports_the_sync_layer_or_the_ui():
    assert offenders(("agent/store",), lambda m: m.startswith(("agent.sync", "agent.ui"))) == {}
