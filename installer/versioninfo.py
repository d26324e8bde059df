"""The Windows version resource of the bundled executables (Properties → Details in
Explorer, and what Apps & Features and support staff read), built from the one version in
protocol/version.py. Used by pdvsync-agent.spec; PyInstaller writes it on Windows only."""

from __future__ import annotations

import re

PRODUCT = "PDV Sync"
COMPANY = "PDV Sync"
LANGUAGE = 0x0416  # Portuguese (Brazil)
CODEPAGE = 1200  # UTF-16


def numeric_version(version: str) -> tuple[int, int, int, int]:
    """"1.2.3" -> (1, 2, 3, 0); "1.2.3rc1" -> (1, 2, 3, 0): Windows wants four numbers."""
    parts = [int(m.group(0)) for m in (re.match(r"\d+", p) for p in version.split(".")[:4]) if m]
    if not parts:
        raise ValueError(f"no numeric version in {version!r}")
    if any(p > 0xFFFF for p in parts):
        raise ValueError(f"{version!r}: each part must fit in 16 bits")
    return (*parts, 0, 0, 0, 0)[:4]


def version_info(version: str, *, exe_name: str, description: str):
    """A PyInstaller VSVersionInfo (imported here: its module needs pefile, which PyInstaller
    installs on Windows only)."""
    from PyInstaller.utils.win32.versioninfo import (
        FixedFileInfo,
        StringFileInfo,
        StringStruct,
        StringTable,
        VarFileInfo,
        VarStruct,
        VSVersionInfo,
    )

    numbers = numeric_version(version)
    strings = {
        "CompanyName": COMPANY,
        "FileDescription": description,
        "FileVersion": version,
        "InternalName": exe_name,
        "LegalCopyright": f"© {COMPANY}",
        "OriginalFilename": f"{exe_name}.exe",
        "ProductName": PRODUCT,
        "ProductVersion": version,
    }
    return VSVersionInfo(
        ffi=FixedFileInfo(filevers=numbers, prodvers=numbers),
        kids=[
            StringFileInfo([StringTable(f"{LANGUAGE:04X}{CODEPAGE:04X}",
                                        [StringStruct(k, v) for k, v in strings.items()])]),
            VarFileInfo([VarStruct("Translation", [LANGUAGE, CODEPAGE])]),
        ],
    )
