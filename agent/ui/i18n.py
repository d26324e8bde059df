"""Translation hook: every text a cashier or manager reads goes through `tr()`.

Source strings are Brazilian Portuguese, the product's language; Qt translators can be
installed on the application for other languages.
"""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication


def tr(text: str) -> str:
    return QCoreApplication.translate("PDVSync", text)
