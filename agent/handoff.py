"""Handing the API key from the installer to the agent without ever writing it in clear.

The installer (running elevated, maybe as another account) cannot reach the cashier's
Windows Credential Manager. It runs `pdvsync-agent-cli configure --api-key-env VAR`, which
seals the key with DPAPI (machine scope) into the machine config folder; the agent, on its
first run as the cashier, unseals it, stores it in the Credential Manager and deletes the
sealed copy. Elsewhere than Windows the key goes straight to the OS keyring.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from pathlib import Path

import platformdirs

from .secrets import SecretStoreError, set_api_key

log = logging.getLogger(__name__)
_FILE = "api-key.sealed"
_TAKEN = "api-key.sealed.taken"  # per user: digest of the sealed copy already taken


def site_dir() -> Path:
    return Path(platformdirs.site_config_dir("pdvsync", appauthor=False))


def stage_key(key: str, folder: Path | None = None) -> str:
    """Seal the key for the agent's first run. Returns where it went (for the log)."""
    if sys.platform != "win32":
        set_api_key(key)
        return "keyring"
    folder = folder or site_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / _FILE).write_bytes(_dpapi(key.encode("utf-8"), protect=True))
    return str(folder / _FILE)


def taken_marker() -> Path:
    return Path(platformdirs.user_data_dir("pdvsync", appauthor=False)) / _TAKEN


def take_staged_key(folder: Path | None = None, marker: Path | None = None) -> bool:
    """On the agent's start: move a sealed key into the Credential Manager. True if done.

    The installer writes the sealed copy as an administrator, so the cashier usually cannot
    delete it; a per-user marker (a digest of the sealed bytes, not of the key) remembers it
    was taken, or every start would put the installer's key back over one changed since.
    """
    path = (folder or site_dir()) / _FILE
    if sys.platform != "win32" or not path.exists():
        return False
    marker = marker or taken_marker()
    try:
        sealed = path.read_bytes()
        digest = hashlib.sha256(sealed).hexdigest()
        if marker.is_file() and marker.read_text(encoding="ascii").strip() == digest:
            return False
        key = _dpapi(sealed, protect=False).decode("utf-8")
        set_api_key(key)
    except (OSError, SecretStoreError, ValueError) as exc:
        log.warning("could not take the API key handed over by the installer: %s", exc)
        return False
    try:
        path.unlink()
    except OSError:
        log.info("the sealed key stays (no permission to delete it); it is DPAPI-protected")
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(digest, encoding="ascii")
        except OSError as exc:
            log.warning("could not remember that the installer's key was taken: %s", exc)
    return True


def _dpapi(data: bytes, *, protect: bool) -> bytes:  # pragma: no cover - Windows only
    if sys.platform != "win32":  # mypy then checks the rest as Windows code
        raise OSError("DPAPI exists on Windows only")
    import ctypes
    from ctypes import wintypes

    class Blob(ctypes.Structure):
        _fields_ = [("cbData", wintypes.DWORD), ("pbData", ctypes.POINTER(ctypes.c_char))]

    buffer = ctypes.create_string_buffer(data, len(data))
    blob_in = Blob(len(data), ctypes.cast(buffer, ctypes.POINTER(ctypes.c_char)))
    blob_out = Blob()
    crypt32 = ctypes.windll.crypt32
    local_machine = 0x4  # CRYPTPROTECT_LOCAL_MACHINE: any account on this PC may unseal
    if protect:
        ok = crypt32.CryptProtectData(
            ctypes.byref(blob_in),
            "PDV Sync",
            None,
            None,
            None,
            local_machine,
            ctypes.byref(blob_out),
        )
    else:
        ok = crypt32.CryptUnprotectData(
            ctypes.byref(blob_in), None, None, None, None, 0, ctypes.byref(blob_out)
        )
    if not ok:
        raise ValueError(f"DPAPI failed ({ctypes.GetLastError()})")
    try:
        return ctypes.string_at(blob_out.pbData, blob_out.cbData)
    finally:
        ctypes.windll.kernel32.LocalFree(blob_out.pbData)
