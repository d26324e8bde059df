"""The issue's "Done when", in a real browser: a real server, three real agents, a manager
created with `pdvsync-server admin add`, and the panel watched live (never reloaded).

1. log in; 2. three PDVs Sincronizado; 3. one agent terminated -> its card Offline/Erro within
60 s, and an alert names it; 4. another sells while the server refuses its pushes (429 from
the test proxy) -> Aguardando with its pending count; 5. a reconcile forced from the page ->
its result on the PDV's card.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.agent_e2e.conftest import sale, wait_until
from tests.ui.scenario import plant_divergence, sell_product

from .shop import MANAGER, PASSWORD, add_manager

OFFLINE_WITHIN_S = 60  # the bound, from the process's end to the card
# The offline alert's threshold, in (fractional) minutes: reachable within the test.
OFFLINE_ALERT_MINUTES = "0.25"

# A finished reconcile in the panel's words (ReconcileStatus: consistente, reparada, ...).
RESULT = re.compile(r"consistente|reparada|divergente")


@pytest.mark.timeout(480)
def test_a_manager_watches_three_pdvs_live_and_acts_on_them(shop, new_page):
    server = shop.start_server(env={"PANEL_OFFLINE_ALERT_MINUTES": OFFLINE_ALERT_MINUTES})
    add_manager(server)
    proxy = shop.proxy()
    caixa1, caixa2, caixa3 = shop.start_agents(
        ["caixa-1", "caixa-2", "caixa-3"], via={"caixa-2": proxy.url}
    )
    product = sell_product(caixa1.port, "Pão francês", price="0.75")
    for agent in (caixa1, caixa2, caixa3):
        wait_until(
            lambda a=agent: a.status()["state"] == "synced" and a.rows("products"),
            timeout=60,
            message=lambda: f"agents did not sync\n{shop.logs()}",
        )

    # 1. Log in with the account the CLI created.
    panel = new_page(server.url)
    panel.login(MANAGER, PASSWORD)
    panel.arm_no_reload()

    # 2. Three PDVs, Sincronizado.
    for agent in (caixa1, caixa2, caixa3):
        panel.wait_state(agent.machine_id, "Sincronizado", 45)

    # 3. One PDV stops: Offline/Erro within 60 s, and the offline alert names it.
    stopped_at = time.monotonic()
    caixa3.proc.terminate()  # type: ignore[union-attr]
    caixa3.proc.wait(15)  # type: ignore[union-attr]
    panel.wait_state("caixa-3", "Offline/Erro", OFFLINE_WITHIN_S)
    took = time.monotonic() - stopped_at
    assert took <= OFFLINE_WITHIN_S, f"Offline/Erro after {took:.0f} s"
    panel.wait_alert(lambda t: "caixa-3" in t, 60, "naming caixa-3 (offline)")

    # 4. The server refuses caixa-2's pushes (429): it sells on, Aguardando with the count.
    proxy.refusing = True
    sale(caixa2, "pedido-429-a", [(product, 1)])
    sale(caixa2, "pedido-429-b", [(product, 2)])
    wait_until(lambda: proxy.refused >= 1, 30, message="caixa-2 never pushed to the proxy")
    status = wait_until(
        lambda: (s := caixa2.status())["state"] == "waiting" and s["pending"] > 0 and s,
        timeout=30,
        message=lambda: f"caixa-2 is not Aguardando behind a 429: {caixa2.status()}",
    )
    pending = status["pending"]
    panel.wait_state("caixa-2", "Aguardando", 45)
    panel.wait_field(
        "caixa-2",
        "pending",
        lambda t: re.match(rf"{pending}\b", t) is not None,
        30,
        f"{pending} pending",
    )

    # 5. A reconcile forced from the page: its result appears on caixa-1's card.
    # A row only caixa-1 has: the reconcile (default strategy: fix the tables that differ)
    # finds products different and repairs them.
    plant_divergence(caixa1.data_dir)
    assert panel.field("caixa-1", "reconcile") == "nunca"
    panel.click_in_card("caixa-1", r"^Forçar reconciliação$")
    panel.confirm_if_asked()
    done = panel.wait_field(
        "caixa-1",
        "commandResult",
        lambda t: RESULT.search(t) is not None,
        90,
        "the forced reconcile's result",
    )
    assert "reparada" in done, done
    assert "reparada" in (panel.field("caixa-1", "reconcile") or "")
    assert "Produtos" in (panel.field("caixa-1", "mismatches") or "")
    reconcile = caixa1.status()["lastReconcile"]
    assert reconcile is not None and reconcile["status"] == "repaired", reconcile

    # The page did all this live: no reload, no navigation.
    panel.assert_not_reloaded()
    assert panel.dialogs == [] or all(d.startswith("confirm") for d in panel.dialogs)
