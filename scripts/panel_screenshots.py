"""The manager's panel for `make screenshots`: Debian's chromium (Playwright) on a real server
with real agents in several states, at desktop (1280 px) and phone (390 px) width, into
docs/screenshots/panel-desktop.png and panel-phone.png.

The shop: caixa-1 Sincronizado (reconciled from the panel), caixa-2 Aguardando (the server refuses its
pushes: the 429 proxy of tests/e2e_panel), caixa-3 Com Divergência (a reconcile found a row
the server lacks), caixa-4 Offline/Erro (stopped). Everything on 127.0.0.1; every wait bounded.
"""

from __future__ import annotations

import shutil
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

OUT = ROOT / "docs" / "screenshots"
NAMES = ("panel-desktop.png", "panel-phone.png")
PRODUCTS = (
    ("Pão francês", "0.75"),
    ("Sonho de creme", "6.50"),
    ("Bolo de fubá", "18.00"),
    ("Pão de queijo", "1.20"),
    ("Café coado", "4.00"),
)


def missing_prerequisites() -> list[str]:
    """Debian packages the panel's pictures need (empty when everything is there)."""
    from tests.e2e_panel.shop import chromium_binary

    missing = [] if chromium_binary() else ["chromium"]
    if shutil.which("convert") is None:  # shrinks a picture over the size limit
        missing.append("imagemagick")
    return missing


def _wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _sale(agent: Any, products: list[str], n: int) -> None:
    from tests.agent_e2e.conftest import sale

    lines = [(products[(n + k) % len(products)], 1 + (n + k) % 3) for k in range(1 + n % 2)]
    sale(agent, f"pedido-{agent.machine_id}-{n}-{uuid.uuid4().hex[:6]}", lines)


def panel_pictures(work: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    from tests.e2e_panel.panel import PanelPage
    from tests.e2e_panel.shop import (
        DESKTOP,
        MANAGER,
        PASSWORD,
        PHONE,
        Shop,
        add_manager,
        launch_browser,
        new_context,
    )
    from tests.ui.scenario import plant_divergence, sell_product

    shop = Shop(work / "panel")
    try:
        # The offline alert shows 30 s after caixa-4 stops: the picture has one.
        server = shop.start_server(env={"PANEL_OFFLINE_ALERT_MINUTES": "0.5"})
        add_manager(server)
        proxy = shop.proxy()
        caixa1, caixa2, caixa3, caixa4 = shop.start_agents(
            ["caixa-1", "caixa-2", "caixa-3", "caixa-4"], via={"caixa-2": proxy.url}
        )
        agents = [caixa1, caixa2, caixa3, caixa4]
        products = [sell_product(caixa1.port, name, price=price) for name, price in PRODUCTS]
        for n in range(12):  # a morning's sales on every PDV: the chart has bars
            _sale(agents[n % 4], products, n)
        for agent in agents:
            _wait(lambda a=agent: a.status()["state"] == "synced", 60, f"{agent.machine_id} synced")

        plant_divergence(caixa3.data_dir)
        caixa3.post("/api/sync/reconcile", {"strategy": "none"}, timeout=130)
        caixa4.stop()
        proxy.refusing = True
        for n in range(3):
            _sale(caixa2, products, 100 + n)
        _wait(lambda: caixa2.status()["pending"] > 0, 30, "caixa-2's pending sales")

        shots: list[Path] = []
        with sync_playwright() as playwright:
            browser = launch_browser(playwright)
            try:
                for name, viewport in zip(NAMES, (DESKTOP, PHONE), strict=True):
                    context = new_context(browser, server.url, viewport)
                    panel = PanelPage(context.new_page(), server.url)
                    panel.login(MANAGER, PASSWORD)
                    expected = {
                        "caixa-1": "Sincronizado",
                        "caixa-2": "Aguardando",
                        "caixa-3": "Com Divergência",
                        "caixa-4": "Offline/Erro",
                    }
                    for machine, label in expected.items():
                        panel.wait_card(machine, lambda t, w=label: w in t, 150, label)
                    panel.wait_alert(lambda t: "caixa-4" in t, 90, "caixa-4 offline")
                    if viewport is DESKTOP:  # caixa-1 reconciled from the panel, as a manager does
                        panel.click_in_card("caixa-1", r"^Forçar reconciliação$")
                        panel.wait_field(
                            "caixa-1", "commandResult", lambda t: "concluída" in t, 90, "the result"
                        )
                    panel.page.wait_for_timeout(500)  # the last re-render settles
                    path = OUT / name
                    if viewport is PHONE:  # the first screens: alerts, health, the first cards
                        height = panel.page.evaluate("() => document.body.scrollHeight")
                        clip = {
                            "x": 0,
                            "y": 0,
                            "width": PHONE["width"],
                            "height": min(height, 1800),
                        }
                        panel.page.screenshot(path=str(path), full_page=True, clip=clip)
                    else:
                        panel.page.screenshot(path=str(path), full_page=True)
                    context.close()
                    print(f"  {path.relative_to(ROOT)}  ({viewport['width']} px wide)")
                    shots.append(path)
            finally:
                browser.close()
        return shots
    finally:
        shop.close()
