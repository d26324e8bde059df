"""The Windows version resource of the executables: built from protocol/version.py, it must
survive PyInstaller's own binary and text forms (what is written into the .exe on Windows;
writing it needs Windows' resource API, so the .exe itself is checked by the Windows workflow)."""

from __future__ import annotations

import sys
from pathlib import Path

import PyInstaller.compat
import pytest

from protocol.version import __version__

# PyInstaller's version-resource classes are plain Python, but their module imports
# `win32api` (used only to read/write a resource in an .exe, on Windows): absent here.
if not hasattr(PyInstaller.compat, "win32api"):
    PyInstaller.compat.win32api = None
from PyInstaller.utils.win32.versioninfo import VSVersionInfo, load_version_info_from_text_file  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "installer"))
from versioninfo import numeric_version, version_info  # noqa: E402


def strings_of(info: VSVersionInfo) -> dict[str, str]:
    table = info.kids[0].kids[0]
    return {s.name: s.val for s in table.kids}


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("0.1.0", (0, 1, 0, 0)),
        ("1.2.3.4", (1, 2, 3, 4)),
        ("2.0", (2, 0, 0, 0)),
        ("1.4.0rc2", (1, 4, 0, 0)),
    ],
)
def test_numeric_version_has_four_numbers(text, numbers):
    assert numeric_version(text) == numbers


@pytest.mark.parametrize("text", ["beta", "70000.1"])
def test_numeric_version_refuses_what_windows_cannot_hold(text):
    with pytest.raises(ValueError):
        numeric_version(text)


def test_the_resource_carries_the_package_version_and_names():
    # (Its binary form uses the platform's C long: only meaningful on Windows.)
    parsed = version_info(__version__, exe_name="pdvsync-agent", description="agente")
    assert isinstance(parsed, VSVersionInfo)
    major, minor, patch, build = numeric_version(__version__)
    assert (parsed.ffi.fileVersionMS, parsed.ffi.fileVersionLS) == (
        (major << 16) | minor,
        (patch << 16) | build,
    )
    assert parsed.ffi.productVersionMS == parsed.ffi.fileVersionMS
    assert parsed.kids[0].kids[0].name == "041604B0"  # pt-BR, Unicode
    assert strings_of(parsed) == {
        "CompanyName": "PDV Sync",
        "FileDescription": "agente",
        "FileVersion": __version__,
        "InternalName": "pdvsync-agent",
        "LegalCopyright": "© PDV Sync",
        "OriginalFilename": "pdvsync-agent.exe",
        "ProductName": "PDV Sync",
        "ProductVersion": __version__,
    }


def test_the_resource_round_trips_through_the_text_form(tmp_path):
    info = version_info(
        "3.4.5", exe_name="pdvsync-agent-cli", description="linha de comando — ação"
    )
    path = tmp_path / "version.txt"
    path.write_text(str(info), encoding="utf-8")
    loaded = load_version_info_from_text_file(str(path))
    assert loaded.toRaw() == info.toRaw()
    assert strings_of(loaded)["FileDescription"] == "linha de comando — ação"


def test_the_spec_gives_both_executables_the_resource():
    spec = (Path(__file__).resolve().parents[2] / "installer" / "pdvsync-agent.spec").read_text(
        encoding="utf-8"
    )
    assert spec.count("version=_version(") == 2
