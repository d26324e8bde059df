#!/usr/bin/env python3
"""`make screenshots`: the real tray app under Xvfb, in a `trayer` panel, against a real local
server, driven into each state; PNGs of the badges (with their tooltips), the open menu, the
details window, the settings dialog and a forced reconcile go to docs/screenshots/; then the
manager's panel in chromium at desktop and phone width (scripts/panel_screenshots.py).
`--only tray` or `--only panel` makes one of the two sets.

Installs nothing: when a tool is missing it says which `apt-get install` line to run.
Everything listens on 127.0.0.1 only; every wait is bounded.
"""

from __future__ import annotations

import argparse
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

OUT = ROOT / "docs" / "screenshots"
SCREEN_W, SCREEN_H = 800, 600
PANEL_W, PANEL_H = 200, 32
MAX_BYTES = 100_000
TOOLS = {  # command -> Debian package
    "Xvfb": "xvfb", "trayer": "trayer", "import": "imagemagick",
    "convert": "imagemagick", "xdotool": "xdotool", "xwininfo": "x11-utils",
}
PACKAGES = ["xvfb", "xauth", "trayer", "imagemagick", "xdotool", "x11-utils", "fonts-dejavu-core",
            "libxcb-icccm4", "libxcb-keysyms1", "libxcb-cursor0", "libxkbcommon-x11-0"]


# -- prerequisites ----------------------------------------------------------------------------


def _package_of(soname: str) -> str:
    """libxcb-icccm.so.4 -> libxcb-icccm4; libxkbcommon-x11.so.0 -> libxkbcommon-x11-0."""
    m = re.match(r"(lib[\w+-]+?)\.so\.(\d+)", soname)
    if not m:
        return soname
    name, major = m.group(1).lower(), m.group(2)
    return f"{name}{'-' if name[-1].isdigit() else ''}{major}"


def missing_prerequisites() -> list[str]:
    """Debian packages to install (empty when everything is there)."""
    missing = {pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None}
    try:
        import PySide6
    except ImportError:
        print("PySide6 is missing from this Python: run `make install` first.", file=sys.stderr)
        sys.exit(2)
    qt = Path(PySide6.__file__).parent / "Qt"
    for lib in (qt / "plugins" / "platforms" / "libqxcb.so", *sorted((qt / "lib").glob("libQt6XcbQpa.so*"))[:1]):
        if not lib.exists() or shutil.which("ldd") is None:
            continue
        out = subprocess.run(["ldd", str(lib)], capture_output=True, text=True).stdout
        missing.update(_package_of(line.split()[0]) for line in out.splitlines() if "not found" in line)
    fonts = subprocess.run(["fc-list"], capture_output=True, text=True).stdout if shutil.which("fc-list") else ""
    if not fonts.strip():
        missing.add("fonts-dejavu-core")
    return sorted(missing)


# -- small process helpers --------------------------------------------------------------------


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, step: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(step)


def end(proc: subprocess.Popen | None, timeout: float = 10.0) -> None:
    """Stop one process we started: politely, then for good (bounded)."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@dataclass
class Rect:
    x: int
    y: int
    w: int
    h: int

    def union(self, other: Rect) -> Rect:
        x0, y0 = min(self.x, other.x), min(self.y, other.y)
        x1, y1 = max(self.x + self.w, other.x + other.w), max(self.y + self.h, other.y + other.h)
        return Rect(x0, y0, x1 - x0, y1 - y0)

    def padded(self, pad: int) -> Rect:
        x0, y0 = max(0, self.x - pad), max(0, self.y - pad)
        x1, y1 = min(SCREEN_W, self.x + self.w + pad), min(SCREEN_H, self.y + self.h + pad)
        return Rect(x0, y0, x1 - x0, y1 - y0)

    @property
    def center(self) -> tuple[int, int]:
        return self.x + self.w // 2, self.y + self.h // 2


_GEOMETRY = re.compile(r'^\s*(0x[0-9a-f]+) (?:"(.*?)"|\(has no name\)).*?\s(\d+)x(\d+)[+-]-?\d+[+-]-?\d+\s+\+(-?\d+)\+(-?\d+)\s*$')


class Display:
    """Xvfb on a display number it picks itself, with a `trayer` panel at the top right."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.xvfb: subprocess.Popen | None = None
        self.trayer: subprocess.Popen | None = None
        self.name = ""

    def start(self) -> Display:
        read, write = os.pipe()
        self.xvfb = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write), "-screen", "0", f"{SCREEN_W}x{SCREEN_H}x24", "-nolisten", "tcp", "-wr"],
            pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=open(self.work / "xvfb.log", "w"),  # noqa: SIM115
        )
        os.close(write)
        ready, _, _ = select.select([read], [], [], 15)
        number = os.read(read, 32).decode().strip() if ready else ""
        os.close(read)
        if not number.isdigit():
            raise RuntimeError("Xvfb did not start (see xvfb.log)")
        self.name = f":{number}"
        self.trayer = subprocess.Popen(
            ["trayer", "--edge", "top", "--align", "right", "--widthtype", "pixel", "--width", str(PANEL_W),
             "--height", str(PANEL_H), "--SetDockType", "true", "--expand", "true"],
            env=self.env(), stdout=subprocess.DEVNULL, stderr=open(self.work / "trayer.log", "w"),  # noqa: SIM115
        )
        wait_until(lambda: any(n == "panel" for _, n, _ in self.windows()), 15, "the trayer panel")
        return self

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "DISPLAY": self.name, **extra}

    def x(self, *args: str) -> str:
        return subprocess.run(list(args), env=self.env(), capture_output=True, text=True, timeout=30).stdout

    def windows(self, tree: bool = False) -> list[tuple[str, str, Rect]]:
        """(id, name, absolute rectangle) of the root's children (or of every window)."""
        out = self.x("xwininfo", "-root", "-tree" if tree else "-children")
        found = []
        for line in out.splitlines():
            m = _GEOMETRY.match(line)
            if m:
                wid, name, w, h, ax, ay = m.groups()
                found.append((wid, name or "", Rect(int(ax), int(ay), int(w), int(h))))
        return found

    def viewable(self, wid: str) -> bool:
        return "IsViewable" in self.x("xwininfo", "-id", wid)

    def popups(self) -> list[Rect]:
        """The app's visible top-level windows bigger than a dot (tooltip, menu, balloon)."""
        return [r for wid, name, r in self.windows()
                if name == "PDV Sync" and r.w > 10 and r.h > 10 and self.viewable(wid)]

    def tray_icon(self) -> Rect | None:
        panel_x = SCREEN_W - PANEL_W
        for wid, name, r in self.windows(tree=True):
            if name == "PDV Sync" and r.y < PANEL_H and r.x >= panel_x and r.w < 64 and self.viewable(wid):
                return r
        return None

    def capture(self, path: Path, area: Rect) -> None:
        raw = self.work / "root.png"
        subprocess.run(["import", "-window", "root", str(raw)], env=self.env(), check=True, timeout=30)
        subprocess.run(["convert", str(raw), "-crop", f"{area.w}x{area.h}+{area.x}+{area.y}", "+repage",
                        "-strip", str(path)], check=True, timeout=30)

    def stop(self) -> None:
        end(self.trayer)
        end(self.xvfb)


class TrayAgent:
    """`python -m agent` (the tray app) as the cashier runs it, isolated in `work`."""

    def __init__(self, display: Display, work: Path, server_url: str, machine_id: str, **env: str) -> None:
        from tests.ui.scenario import free_port

        self.display = display
        self.work = work
        self.port = free_port()
        self.data_dir = work / machine_id
        qt_tmp = work / "qt-tmp"  # its own single-instance socket: a real tray elsewhere is not disturbed
        qt_tmp.mkdir(parents=True, exist_ok=True)
        self.env = display.env(
            QT_QPA_PLATFORM="xcb", PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring",
            TMPDIR=str(qt_tmp), XDG_CONFIG_HOME=str(work / "xdg-config"), XDG_CONFIG_DIRS=str(work / "xdg-site"),
            PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", **env,
        )
        for name in ("SYNC_API_KEY", "NEXT_PUBLIC_SYNC_API_KEY"):
            self.env.pop(name, None)
        self.args = [
            sys.executable, "-m", "agent", "--server", server_url, "--machine-id", machine_id,
            "--data-dir", str(self.data_dir), "--local-port", str(self.port),
            "--config", str(work / f"{machine_id}.json"), "--log-dir", str(work / f"{machine_id}-logs"),
        ]
        self.proc: subprocess.Popen | None = None

    def start(self) -> TrayAgent:
        self.proc = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=open(self.work / f"{self.data_dir.name}.out", "w"))  # noqa: SIM115
        wait_until(self._answers, 30, "the agent's loopback API")
        wait_until(self.display.tray_icon, 30, "the tray icon in the panel")
        return self

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"the agent exited; see {self.work / (self.data_dir.name + '.out')}")
        try:
            self.status()
            return True
        except Exception:
            return False

    def call(self, method: str, path: str, body: Any = None, timeout: float = 60) -> dict:
        import httpx

        r = httpx.request(method, f"http://127.0.0.1:{self.port}{path}", json=body, timeout=timeout)
        r.raise_for_status()
        return r.json()

    def status(self) -> dict:
        return self.call("GET", "/api/sync/status", timeout=5)

    def wait_state(self, state: str, timeout: float = 30) -> None:
        wait_until(lambda: self.status()["state"] == state, timeout, f"state {state}", step=0.2)
        time.sleep(1.2)  # the tray reads the status on its 1 s tick too

    def quit(self) -> None:
        """`pdvsync-agent quit`, as the installer does; then make sure it is gone."""
        if self.proc is None or self.proc.poll() is not None:
            return
        subprocess.run([sys.executable, "-m", "agent", "quit"], cwd=ROOT, env=self.env, timeout=30,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if self.proc is not None:
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                end(self.proc)
        wait_until(lambda: self.display.tray_icon() is None, 15, "the icon to leave the panel")


# -- the pictures --------------------------------------------------------------------------------


def _hover_icon(display: Display) -> Rect:
    icon = wait_until(display.tray_icon, 15, "the tray icon")
    display.x("xdotool", "mousemove", "300", "400")  # away first: the tooltip is shown afresh
    wait_until(lambda: not display.popups(), 15, "no popup")
    cx, cy = icon.center
    for dx in (-6, -4, -2, 0):  # a few motion events, as a real pointer makes
        display.x("xdotool", "mousemove", str(cx + dx), str(cy))
        time.sleep(0.05)
    return icon


def shoot_badge(display: Display, name: str, expect: str) -> Path:
    """The panel with the icon, and the tooltip that explains it."""
    icon = _hover_icon(display)
    tip = wait_until(lambda: (display.popups() or [None])[0], 15, "the tooltip")
    panel = Rect(SCREEN_W - PANEL_W, 0, PANEL_W, PANEL_H)
    area = panel.union(tip).union(icon).padded(6)
    path = OUT / name
    display.capture(path, area)
    print(f"  {path.relative_to(ROOT)}  ({expect})")
    return path


def shoot_menu(display: Display, name: str) -> Path:
    icon = _hover_icon(display)
    display.x("xdotool", "click", "3")  # right click: the menu (rebuilt as it opens)
    menu = wait_until(lambda: next((r for r in display.popups() if r.h > 100), None), 15, "the menu")
    time.sleep(0.3)
    area = Rect(menu.x, 0, SCREEN_W - menu.x, PANEL_H).union(menu).union(icon).padded(6)
    path = OUT / name
    display.capture(path, area)
    display.x("xdotool", "key", "Escape")
    wait_until(lambda: not any(r.h > 100 for r in display.popups()), 15, "the menu to close")
    print(f"  {path.relative_to(ROOT)}")
    return path


def tray_pictures(display: Display, work: Path) -> list[Path]:
    from tests.serverproc import ServerProcess
    from tests.ui.scenario import HangingServer, plant_divergence, sell_product

    shots: list[Path] = []
    server = ServerProcess(work / "server", database_url=f"sqlite:///{work / 'server.db'}").start()
    try:
        # Automatic sync off: the script decides when the agent talks to the server.
        agent = TrayAgent(display, work, server.url, "caixa-1", SYNC_AUTO="false", SYNC_AUTO_RECONCILE="false")
        try:
            agent.start()
            for name, price in (("Pão francês", "0.75"), ("Sonho de creme", "6.50"), ("Bolo de fubá", "18.00")):
                sell_product(agent.port, name, price=price)
            agent.call("POST", "/api/sync/now")
            agent.wait_state("synced")
            shots.append(shoot_badge(display, "tray-synced.png", "Sincronizado"))

            sell_product(agent.port, "Pão de queijo", price="1.20")
            sell_product(agent.port, "Café coado", price="4.00")
            agent.wait_state("waiting")
            shots.append(shoot_badge(display, "tray-waiting.png", "Aguardando: 2 alterações pendentes"))
            shots.append(shoot_menu(display, "menu.png"))

            agent.call("POST", "/api/sync/now")
            agent.wait_state("synced")
            plant_divergence(agent.data_dir)
            agent.call("POST", "/api/sync/reconcile", {"strategy": "none"}, timeout=130)
            agent.wait_state("divergent")
            shots.append(shoot_badge(display, "tray-divergent.png", "Com Divergência"))

            server.kill()
            agent.call("POST", "/api/sync/now")
            agent.wait_state("offline")
            shots.append(shoot_badge(display, "tray-offline.png", "Offline/Erro"))
        finally:
            agent.quit()
    finally:
        server.kill()

    # Sincronizando: a server that accepts and never answers keeps the first pull busy.
    hanging = HangingServer()
    try:
        agent = TrayAgent(display, work, hanging.url, "caixa-2", SYNC_AUTO="true", SYNC_AUTO_RECONCILE="false")
        try:
            agent.start()
            agent.wait_state("syncing")
            shots.append(shoot_badge(display, "tray-syncing.png", "Sincronizando"))
        finally:
            hanging.close()
            agent.quit()
    finally:
        hanging.close()
    return shots


def window_pictures(display: Display, work: Path) -> list[Path]:
    """Details, settings and reconcile windows: rendered by the app's own widgets under xcb
    (QWidget.grab), in a helper process that drives a real runtime against a real server."""
    from tests.serverproc import ServerProcess

    server = ServerProcess(work / "server-w", database_url=f"sqlite:///{work / 'server-w.db'}").start()
    try:
        env = display.env(QT_QPA_PLATFORM="xcb", PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring",
                          PYTHONPATH=str(ROOT), XDG_CONFIG_HOME=str(work / "xdg-config"))
        subprocess.run([sys.executable, __file__, "--render-windows", "--server", server.url, "--work", str(work)],
                       cwd=ROOT, env=env, check=True, timeout=300)
    finally:
        server.kill()
    names = ["details.png", "details-refused.png", "settings.png", "reconcile.png"]
    for name in names:
        print(f"  {(OUT / name).relative_to(ROOT)}")
    return [OUT / name for name in names]


def render_windows(server_url: str, work: Path) -> None:
    """Runs in the helper process (Qt on the Xvfb display)."""
    import logging

    from PySide6.QtCore import QCoreApplication, QEventLoop, QLibraryInfo, QLocale, QTranslator
    from PySide6.QtWidgets import QApplication

    from agent.config import AgentConfig
    from agent.runtime import AgentRuntime
    from agent.sync.monitor import SyncMonitor
    from agent.ui.tray import TrayApp
    from tests.ui.scenario import free_port, plant_divergence, plant_unknown_increment, sell_product

    logging.basicConfig(level=logging.ERROR)  # the planted divergence is expected: no warnings
    app = QApplication([])
    qt_texts = QTranslator(app)  # Qt's own buttons (Fechar, ...) in Portuguese, as the tray app does
    if qt_texts.load(QLocale("pt_BR"), "qtbase", "_", QLibraryInfo.path(QLibraryInfo.LibraryPath.TranslationsPath)):
        app.installTranslator(qt_texts)

    def pump(predicate: Callable[[], Any], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
            time.sleep(0.02)

    def save(widget, name: str) -> None:
        for _ in range(10):  # layouts and repaints settle
            QCoreApplication.processEvents()
        if not widget.grab().save(str(OUT / name)):
            raise RuntimeError(f"could not save {name}")

    config = AgentConfig(server_url=server_url, machine_id="caixa-3", data_dir=work / "caixa-3",
                         log_dir=work / "caixa-3-logs", local_port=free_port(), auto_sync=False,
                         auto_reconcile=False, divergence_strategy="refresh_mismatched")
    runtime = AgentRuntime(config, api_key=None)
    runtime.start()
    try:
        engine = runtime.engine
        for name, price in (("Pão francês", "0.75"), ("Sonho de creme", "6.50"), ("Bolo de fubá", "18.00"),
                            ("Broa de milho", "2.50")):
            sell_product(runtime, name, price=price)
        engine.sync_now()
        engine.reconcile_now()  # consistent
        plant_divergence(runtime)
        engine.reconcile_now("none")  # divergent, left as it is
        plant_unknown_increment(runtime)
        engine.sync_now()  # refused by the server: a dead letter
        sell_product(runtime, "Pão de queijo", price="1.20")  # pending
        tray = TrayApp(SyncMonitor(engine), runtime.config, log_dir=work / "caixa-3-logs")

        # Forced reconcile from the menu: progress, then what the repair did.
        tray.request_force_reconcile()
        pump(lambda: tray.reconcile_dialog.result is not None, 120, "the reconcile result")
        save(tray.reconcile_dialog, "reconcile.png")
        tray.reconcile_dialog.close()

        tray.show_details()
        window = tray.details
        window.resize(820, 560)
        pump(lambda: any(h.get("source") == "servidor" for h in window._history), 30, "the server's history")
        tabs = window.tabs
        tabs.setCurrentIndex(2)
        table = window.history_table
        row = next(r for r in range(table.rowCount())
                   if table.item(r, 1).text() == "local" and table.item(r, 2).text() == "Divergente")
        table.selectRow(row)
        save(window, "details.png")
        tabs.setCurrentIndex(1)
        window.dead_table.selectRow(0)
        window.dead_table.resizeColumnsToContents()
        save(window, "details-refused.png")
        window.close()

        tray.show_settings()
        dialog = tray.settings_dialog
        dialog.pin.editor.setText("12")
        dialog.pin_confirm.editor.setText("12")
        dialog.try_save()  # refused: the reason appears next to the PIN
        dialog.test_connection()
        pump(lambda: dialog.test_button.isEnabled(), 30, "the connection test")
        dialog.adjustSize()
        save(dialog, "settings.png")
        dialog.close()
        tray.timer.stop()
        tray.bridge.monitor.close()
    finally:
        runtime.stop()


def check_sizes(paths: list[Path]) -> None:
    for path in paths:
        size = path.stat().st_size
        for colours in ("128", "64"):
            if size <= MAX_BYTES:
                break
            # Fewer colours (a UI has few), without dithering (its noise compresses badly);
            # PNG stays lossless for what remains.
            subprocess.run(["convert", str(path), "+dither", "-colors", colours, f"PNG8:{path}"],
                           check=True, timeout=30)
            size = path.stat().st_size
        if size > MAX_BYTES:
            raise RuntimeError(f"{path.name} is {size} bytes (> {MAX_BYTES})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--render-windows", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--server", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs) for a look")
    parser.add_argument("--only", choices=("tray", "panel"), help="only the tray's or only the panel's pictures")
    args = parser.parse_args(argv)
    if args.render_windows:
        render_windows(args.server, Path(args.work))
        return 0

    import panel_screenshots

    parts = [args.only] if args.only else ["tray", "panel"]
    missing = (missing_prerequisites() if "tray" in parts else []) + (
        panel_screenshots.missing_prerequisites() if "panel" in parts else [])
    if missing:
        print("Missing tools for the screenshots. Install them with:\n", file=sys.stderr)
        sudo = "" if os.geteuid() == 0 else "sudo "
        wanted = (set(PACKAGES) if "tray" in parts else set()) | set(missing)
        print(f"  {sudo}apt-get install -y --no-install-recommends {' '.join(sorted(wanted))}\n",
              file=sys.stderr)
        print(f"(missing now: {', '.join(missing)})", file=sys.stderr)
        return 1

    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="pdvsync-shots-"))
    display = Display(work)
    shots: list[Path] = []
    try:
        if "tray" in parts:
            display.start()
            print(f"Xvfb on {display.name}, trayer panel {PANEL_W}x{PANEL_H} at the top right; work in {work}")
            shots += tray_pictures(display, work)
            shots += window_pictures(display, work)
            display.stop()
        if "panel" in parts:
            print(f"The panel in chromium; work in {work}")
            shots += panel_screenshots.panel_pictures(work)
        check_sizes(shots)
    except Exception as exc:
        print(f"screenshots failed: {exc}\n(work folder kept: {work})", file=sys.stderr)
        display.stop()
        return 1
    if args.keep:
        print(f"work folder kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{len(shots)} pictures in {OUT.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
