"""The tray's badge PNGs are their SVGs rendered (scripts/render_icons.py), at every size."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QSize
from PySide6.QtGui import QImage

from agent.ui.presentation import ICON_SIZES, STATES, icon_files, icon_path
from agent.ui.tray import badge_icon

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from render_icons import render  # noqa: E402


@pytest.mark.parametrize("state", STATES)
def test_each_png_is_its_svg_rendered(qapp, state: str) -> None:
    for size, png in icon_files(state).items():
        loaded = QImage(str(png)).convertToFormat(QImage.Format.Format_ARGB32)
        assert loaded.size() == QSize(size, size), png
        fresh = render(icon_path(state), size)
        # A newer Qt may antialias an edge pixel differently: the drawing must stay the same.
        differ = sum(
            1
            for y in range(size)
            for x in range(size)
            if _far(loaded.pixel(x, y), fresh.pixel(x, y))
        )
        assert differ <= size * size // 50, (
            f"{png} is not {icon_path(state).name}: run scripts/render_icons.py"
        )


@pytest.mark.parametrize("state", STATES)
def test_the_tray_icon_offers_every_size(qapp, state: str) -> None:
    icon = badge_icon(state)
    assert sorted(s.width() for s in icon.availableSizes()) == sorted(ICON_SIZES)
    assert not icon.pixmap(16, 16).isNull()


def _far(a: int, b: int) -> bool:
    return any(abs(((a >> s) & 0xFF) - ((b >> s) & 0xFF)) > 24 for s in (0, 8, 16, 24))
