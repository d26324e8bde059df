"""The panel on a phone (390 px: one column, no horizontal scroll) and on a desktop (a grid),
and names typed by people shown as text: a machine id and a host name with HTML in them
never become markup or script."""

from __future__ import annotations

import uuid

import httpx

from tests.agent_e2e.conftest import wait_until

from .shop import DESKTOP, MANAGER, PASSWORD, PHONE, add_manager

XSS_ID = "<img src=x onerror=alert(1)>"
XSS_HOST = '<script>alert("host")</script>'
QUOTED_NAME = 'Pão "de" <b>queijo</b> & café'
IDS = ["caixa-1", "caixa-2"]

_LEFTS = """
(ids) => ids.map((id) => {
  const leaf = [...document.querySelectorAll('body *')].find((e) => e.textContent.trim() === id);
  return leaf ? Math.round(leaf.getBoundingClientRect().left) : null;
})
"""


def _strange_pdv(server_url: str) -> None:
    """A PDV whose machine id and host name carry HTML: one sale pushed straight to the
    server with that id, then a report in its name (both as any client could send)."""
    with httpx.Client(base_url=server_url, timeout=10) as client:
        pushed = client.post(
            "/api/sync/batch",
            json={
                "machineId": XSS_ID,
                "events": [
                    {
                        "eventId": str(uuid.uuid4()),
                        "table": "products",
                        "record": {"id": "p-xss", "name": QUOTED_NAME, "price": "1.00"},
                    }
                ],
            },
        )
        assert pushed.status_code == 200, pushed.text
        reported = client.post(
            "/api/sync/report",
            json={
                "machineId": XSS_ID,
                "state": "synced",
                "label": "Sincronizado",
                "pending": 0,
                "oldestPendingAgeMs": None,
                "deadLetters": 0,
                "live": False,
                "lastError": None,
                "lastErrorCode": None,
                "lastSuccessAt": None,
                "clockOffsetMs": 0,
                "cursor": 1,
                "version": "0.0.0",
                "hostname": XSS_HOST,
                "lastReconcile": None,
            },
        )
        assert reported.status_code == 200, reported.text


def test_the_panel_fits_a_phone_and_shows_typed_names_as_text(shop, new_page):
    server = shop.start_server()
    add_manager(server)
    shop.start_agents(["caixa-1", "caixa-2"])
    _strange_pdv(server.url)

    for viewport in (PHONE, DESKTOP):
        panel = new_page(server.url, viewport=viewport)
        panel.login(MANAGER, PASSWORD)
        for machine in IDS:
            panel.wait_state(machine, "Sincronizado", 45)
        # Its id and host name shown as the very characters typed, not interpreted.
        panel.wait_field(XSS_ID, "hostname", lambda t: t == XSS_HOST, 30, "its host name")
        assert panel.field(XSS_ID, "machineId") == XSS_ID
        page = panel.page
        assert page.locator('img[src="x"]').count() == 0, "a machine id became an <img>"
        assert page.evaluate("() => document.querySelectorAll('script:not([src])').length") == 0
        assert panel.dialogs == [], f"script from a name ran: {panel.dialogs}"

        overflow = panel.horizontal_overflow()
        assert overflow <= 0, f"{viewport['width']} px wide: {overflow} px of horizontal scroll"
        lefts = wait_until(lambda p=page: all(p.evaluate(_LEFTS, IDS)) and p.evaluate(_LEFTS, IDS))
        if viewport is PHONE:
            assert lefts[0] == lefts[1], f"a phone shows one column of cards: {lefts}"
        else:
            assert lefts[0] != lefts[1], f"a desktop shows the cards side by side: {lefts}"
