"""PySide6 reads the source of every module imported after it, and Python keeps it.

Shiboken replaces `__import__`; for each new module it asks whether the module's source
mentions "PySide6" (to know where `from __feature__ import ...` may apply) with
`inspect.getsource`, which leaves the whole text of the file in `linecache` for the life of
the process: ~170 files, ~5 MB of an idle agent started from a venv (the installer's bundle
ships no sources, so nothing is read there). The same question, answered from the file's
bytes, keeps nothing. The agent uses no `__feature__`, so even a wrong answer would change
nothing; the answer stays the same anyway.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import PySide6  # noqa: F401  # shiboken's import hook and its feature module, first

_MARK = "_pdvsync_keeps_no_source"


def _uses_pyside(module: ModuleType) -> bool:
    path = getattr(module, "__file__", None)
    if not isinstance(path, str) or not path.endswith(".py"):
        return False  # what inspect.getsource gives too: no source, no PySide6
    try:
        return b"PySide6" in Path(path).read_bytes()
    except OSError:
        return False


def keep_no_sources() -> bool:
    """Answer shiboken's question without linecache; False when this PySide6 asks none."""
    feature = sys.modules.get("shibokensupport.feature")
    asks = getattr(feature, "_mod_uses_pyside", None)
    if feature is None or not callable(asks):
        return False
    if not getattr(asks, _MARK, False):
        setattr(_uses_pyside, _MARK, True)
        feature._mod_uses_pyside = _uses_pyside  # type: ignore[attr-defined]
    return True
