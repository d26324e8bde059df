"""The layering the design promises, checked on the source: the UI never imports the store,
and nothing below the UI imports Qt."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    """Absolute names of every module a file imports (relative imports resolved)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def sources(*folders: str) -> list[Path]:
    files = [p for folder in folders for p in sorted((ROOT / folder).rglob("*.py"))]
    assert files, folders
    return files


def test_relative_imports_are_resolved():
    found = imported_modules(ROOT / "agent" / "ui" / "tray.py")
    assert "agent.ui.bridge" in found and "agent.sync.monitor" in found


def test_the_ui_never_imports_the_store():
    offenders = {
        str(p.relative_to(ROOT)): sorted(
            m for m in imported_modules(p) if m == "agent.store" or m.startswith("agent.store.")
        )
        for p in sources("agent/ui")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_nothing_below_the_ui_imports_qt():
    offenders = {
        str(p.relative_to(ROOT)): sorted(
            m
            for m in imported_modules(p)
            if m.split(".")[0] in ("PySide6", "PyQt5", "PyQt6", "shiboken6")
        )
        for p in sources("agent/store", "agent/sync", "protocol")
    }
    assert {k: v for k, v in offenders.items() if v} == {}
