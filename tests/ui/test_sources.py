"""agent/ui/sources.py: modules imported after PySide6 leave no source text behind."""

from __future__ import annotations

import linecache
import sys
from pathlib import Path

import pytest

from agent.ui.sources import keep_no_sources


@pytest.mark.parametrize("mentions", [True, False])
def test_a_module_imported_after_qt_is_not_kept_in_linecache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mentions: bool
) -> None:
    feature = sys.modules.get("shibokensupport.feature")
    if feature is None:
        pytest.skip("this PySide6 has no __feature__ import hook: it reads no module sources")
    # A PySide6 that has the hook but asks its question elsewhere would keep the sources
    # again: fail, so that an upgrade cannot quietly undo the saving.
    assert keep_no_sources(), "shiboken's feature hook changed: agent/ui/sources.py needs a look"
    name = f"pdvsync_sources_probe_{int(mentions)}"
    path = tmp_path / f"{name}.py"
    path.write_text(("import PySide6\n" if mentions else "") + "VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        __import__(name)  # the import statement's way, which shiboken hooks
        assert str(path) not in linecache.cache
        assert feature.pyside_feature_dict.get(name) == (0 if mentions else -1)
    finally:
        sys.modules.pop(name, None)
