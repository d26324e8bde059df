"""Render the tray's badge icons (agent/ui/icons/<state>.svg, the sources) to the PNGs the
tray loads (agent/ui/icons/<state>-<size>.png), at the sizes trays ask for.

PNGs need no SVG engine in the agent's process: the SVG icon engine and QtSvg cost an idle
tray ~1.4 MB (issue 12). Run after changing an SVG; tests/ui/test_icons.py checks that the
PNGs are those of the SVGs.

    QT_QPA_PLATFORM=offscreen python scripts/render_icons.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.ui.presentation import ICON_SIZES, ICONS_DIR, STATES, icon_files  # noqa: E402


def render(svg: Path, size: int) -> QImage:
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(0)  # transparent
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    QSvgRenderer(str(svg)).render(painter)
    painter.end()
    return image


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    _app = QGuiApplication.instance() or QGuiApplication([])
    for state in STATES:
        for size, png in icon_files(state).items():
            if not render(ICONS_DIR / f"{state}.svg", size).save(str(png), "PNG"):
                print(f"could not write {png}", file=sys.stderr)
                return 1
    print(f"{len(STATES) * len(ICON_SIZES)} icons in {ICONS_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
