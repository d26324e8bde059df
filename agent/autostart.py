"""Start the agent at logon: the per-user Run key on Windows, an XDG autostart entry elsewhere.

The installer may also have registered it for every user of the computer (HKLM Run, or a
system XDG autostart entry). Then the per-user entry is never added as well: two entries
would start it twice at each logon, and the second start opens the Details window."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"
VALUE = "PDVSync"


def launch_command() -> str:
    if getattr(sys, "frozen", False):  # the PyInstaller bundle
        return f'"{sys.executable}"'
    return f'"{sys.executable}" -m agent'


def _desktop_file() -> Path:
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "autostart" / "pdvsync-agent.desktop"


def _system_desktop_files() -> list[Path]:
    dirs = os.environ.get("XDG_CONFIG_DIRS") or "/etc/xdg"
    return [Path(d) / "autostart" / "pdvsync-agent.desktop" for d in dirs.split(os.pathsep) if d]


def machine_wide() -> bool:
    """True when the installer starts the agent for every user (only an administrator can
    change that: the settings show it checked and locked)."""
    if sys.platform == "win32":
        import winreg

        return _run_value_exists(winreg.HKEY_LOCAL_MACHINE)
    return any(p.exists() for p in _system_desktop_files())


def _run_value_exists(hive: int) -> bool:
    if sys.platform != "win32":  # Windows only (mypy checks the rest as Windows code)
        return False
    import winreg

    try:
        with winreg.OpenKey(hive, RUN_KEY) as key:
            winreg.QueryValueEx(key, VALUE)
            return True
    except OSError:
        return False


def drop_duplicate() -> bool:
    """Remove this user's entry when the machine-wide one exists. True if one was removed."""
    if machine_wide() and is_enabled():
        set_enabled(False)
        return True
    return False


def is_enabled() -> bool:
    if sys.platform == "win32":
        import winreg

        return _run_value_exists(winreg.HKEY_CURRENT_USER)
    return _desktop_file().exists()


def set_enabled(enabled: bool) -> None:
    """This user's entry. Enabling while the machine-wide entry exists removes it instead."""
    if enabled and machine_wide():
        enabled = False
    if sys.platform == "win32":
        import winreg

        with winreg.OpenKey(winreg.HKEY_CURRENT_USER, RUN_KEY, 0, winreg.KEY_SET_VALUE) as key:
            if enabled:
                winreg.SetValueEx(key, VALUE, 0, winreg.REG_SZ, launch_command())
            else:
                with contextlib.suppress(OSError):
                    winreg.DeleteValue(key, VALUE)
        return
    path = _desktop_file()
    if enabled:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            "[Desktop Entry]\nType=Application\nName=PDV Sync\n"
            f"Exec={launch_command()}\nX-GNOME-Autostart-enabled=true\n",
            encoding="utf-8",
        )
    elif path.exists():
        path.unlink()
