"""The panel's page and actions against a real server process (both backends): a manager
logged in through the login route sees the shop's PDVs as they reported, escaped; each
shop's manager sees and acts on that shop only; every action needs the session's CSRF
token and acts (a reconcile command stored and handed to the PDV, a PDV forgotten, a key
issued once and revoked)."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
import pytest

from tests.server.test_panel_auth import PASSWORD, add_admin, login

XSS = "<img src=x onerror=alert(1)>"
QUOTED = 'Pão "francês" d\'Ouro <b>'


class Manager:
    """A logged-in browser of the panel: its cookie jar and the session's CSRF token."""

    def __init__(self, server, username: str = "gerente") -> None:
        self.client = httpx.Client(base_url=server.url, timeout=30)
        answer = login(self.client, username, PASSWORD)
        assert answer.status_code == 303, answer.text
        self.csrf = self.client.get("/painel/sessao").json()["csrfToken"]

    def page(self, shop: str | None = None) -> httpx.Response:
        return self.client.get("/painel", params={"loja": shop} if shop else None)

    def state(self, shop: str | None = None) -> dict[str, Any]:
        answer = self.client.get("/painel/estado", params={"loja": shop} if shop else None)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def card(self, machine: str, shop: str | None = None) -> dict[str, Any] | None:
        return next((c for c in self.state(shop)["cards"] if c["id"] == machine), None)

    def act(
        self, path: str, *, json_answer: bool = True, csrf: str | None = "", **form: str
    ) -> httpx.Response:
        """POST a panel action as the page's script does (JSON), or as a plain form."""
        headers = {"Accept": "application/json"} if json_answer else {}
        data = dict(form)
        if csrf is not None:
            data["csrf"] = csrf or self.csrf
        return self.client.post(path, data=data, headers=headers, follow_redirects=False)

    def close(self) -> None:
        self.client.close()


def report(server, machine: str, shop: str | None = None, key: str | None = None, **facts: Any):
    """A PDV's report, as the agent sends it; its answer (the PDV's commands)."""
    body: dict[str, Any] = {
        "machineId": machine,
        "state": "synced",
        "pending": 0,
        "deadLetters": 0,
        "live": True,
        "clockOffsetMs": 0,
        "cursor": 0,
        "version": "9.9.9",
        "hostname": f"{machine}-pc",
        **facts,
    }
    headers = {"x-tenant-id": shop} if shop else {}
    if key:
        headers["x-api-key"] = key
    answer = httpx.post(server.url + "/api/sync/report", json=body, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.fixture
def server(server_factory, database_url):
    s = server_factory(database_url=database_url)
    add_admin(s, "gerente")  # the default shop's manager
    add_admin(s, "gerente-b", tenant="loja-b")
    add_admin(s, "dono", tenant=None)  # every shop
    return s


@pytest.fixture
def manager(server):
    m = Manager(server)
    yield m
    m.close()


# -- the page ------------------------------------------------------------------------------


def test_the_page_shows_each_pdv_as_it_reported(server, manager):
    report(server, "caixa-1")
    report(server, "caixa-2", state="waiting", pending=4, oldestPendingAgeMs=60_000)
    page = manager.page()
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    text = page.text
    assert 'data-machine-id="caixa-1"' in text and 'data-machine-id="caixa-2"' in text
    assert "Sincronizado" in text and "Aguardando" in text
    assert "4 — a mais antiga há 1 min" in text
    assert "/painel/static/icons/synced.svg" in text and "/painel/static/icons/waiting.svg" in text
    assert '<script src="/painel/static/panel.js' in text
    assert "<script>" not in text  # no inline script: the CSP forbids it
    assert "Loja padrão" in text
    # The same, as JSON (what the live stream sends).
    cards = {c["id"]: c for c in manager.state()["cards"]}
    assert cards["caixa-2"]["state"] == "waiting"
    assert cards["caixa-2"]["fields"]["hostname"] == "caixa-2-pc"
    # The assets are served by the server itself.
    for asset in ("panel.js", "panel.css", "icons/offline.svg", "icons/divergent.svg"):
        assert manager.client.get(f"/painel/static/{asset}").status_code == 200


def test_alerts_name_the_pdv(server, manager):
    report(server, "caixa-1", state="divergent", deadLetters=2)
    report(server, "caixa-2", clockOffsetMs=-300_000)
    alerts = manager.state()["alerts"]
    assert [a["kind"] for a in alerts] == ["refused", "clock"]
    assert "«caixa-1»" in alerts[0]["text"] and "«caixa-2»" in alerts[1]["text"]
    text = html.unescape(manager.page().text)
    assert "O relógio do PDV «caixa-2» está 5 min adiantado em relação ao servidor." in text


def test_everything_users_typed_is_escaped(server, manager):
    report(
        server,
        XSS,
        state="offline",
        hostname=QUOTED,
        version='"><script>alert(2)</script>',
        lastError=f"produto {QUOTED} recusado",
        # A code the panel has no words for: the PDV's own detail is what it shows.
        lastErrorCode="a_newer_code",
    )
    text = manager.page().text
    assert XSS not in text and "<script>alert(2)" not in text and "<b>" not in text
    assert html.escape(XSS) in text  # shown as text, in the card and its attributes
    assert f'data-machine-id="{html.escape(XSS, quote=True)}"' in text
    shown = re.search(r'data-f="hostname"[^>]*>([^<]*)<', text)
    assert shown and html.unescape(shown.group(1)) == QUOTED
    shown = re.search(r'data-f="error"[^>]*>([^<]*)<', text)
    assert shown and QUOTED in html.unescape(shown.group(1))
    # The JSON keeps the text as it is: the page's script writes it with textContent.
    assert manager.card(XSS)["fields"]["hostname"] == QUOTED


def test_login_required_and_keys_never_open_the_panel(server):
    anonymous = httpx.Client(base_url=server.url, timeout=30)
    page = anonymous.get("/painel", headers={"accept": "text/html"}, follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"].startswith("/painel/entrar")
    assert anonymous.get("/painel/estado").status_code == 401
    assert anonymous.get("/painel/eventos").status_code == 401
    answer = anonymous.post("/painel/reconciliar", data={"maquina": ""})
    assert answer.status_code in (401, 403)
    anonymous.close()


# -- shops ---------------------------------------------------------------------------------


def test_a_shops_manager_sees_and_acts_on_that_shop_only(server):
    report(server, "caixa-a")
    report(server, "caixa-b", shop="loja-b")
    b = Manager(server, "gerente-b")
    try:
        assert [c["id"] for c in b.state()["cards"]] == ["caixa-b"]
        page = b.page()
        assert "Loja loja-b" in page.text and "caixa-a" not in page.text
        assert b.page("default").status_code == 403
        assert b.client.get("/painel/estado", params={"loja": "default"}).status_code == 403
        assert b.client.get("/painel/eventos", params={"loja": "default"}).status_code == 403
        refused = b.act("/painel/reconciliar", maquina="caixa-a", loja="default")
        assert refused.status_code == 403
        refused = b.act("/painel/esquecer", maquina="caixa-a", loja="default")
        assert refused.status_code == 403
        refused = b.act("/painel/chaves/emitir", maquina="caixa-a", loja="default")
        assert refused.status_code == 403
    finally:
        b.close()
    owner = Manager(server, "dono")
    try:
        page = owner.page()
        assert 'name="loja"' in page.text  # the shop selector
        assert re.search(r'<option value="loja-b"[^>]*>Loja loja-b</option>', page.text)
        assert [c["id"] for c in owner.state()["cards"]] == ["caixa-a"]
        assert [c["id"] for c in owner.state("loja-b")["cards"]] == ["caixa-b"]
        assert owner.page("no such shop!").status_code == 400
    finally:
        owner.close()


# -- actions -------------------------------------------------------------------------------


def test_actions_need_the_csrf_token(server, manager):
    report(server, "caixa-1")
    for path, form in (
        ("/painel/reconciliar", {"maquina": "caixa-1"}),
        ("/painel/esquecer", {"maquina": "caixa-1"}),
        ("/painel/chaves/emitir", {"maquina": "caixa-1"}),
        ("/painel/chaves/revogar", {"chave": "1"}),
    ):
        missing = manager.act(path, csrf=None, **form)
        assert missing.status_code == 403, (path, missing.text)
        wrong = manager.act(path, csrf="x" * 43, **form)
        assert wrong.status_code == 403, (path, wrong.text)
    card = manager.card("caixa-1")
    assert card is not None and card["fields"]["command"] == ""  # nothing happened
    assert manager.state()["keys"] == []


def test_force_reconcile_reaches_the_pdv_and_its_result_the_card(server, manager):
    report(server, "caixa-1")
    report(server, "caixa-2")
    answer = manager.act("/painel/reconciliar", maquina="caixa-1", estrategia="full_resync")
    assert answer.status_code == 200, answer.text
    ids = answer.json()["commands"]
    assert len(ids) == 1
    card = manager.card("caixa-1")
    assert card["fields"]["command"].startswith("Reconciliação solicitada")
    assert "ressincronização completa" in card["fields"]["command"]
    # The PDV gets it in its next report's answer (it has no live socket here)...
    commands = report(server, "caixa-1")["commands"]
    assert commands == [{"id": ids[0], "kind": "reconcile", "strategy": "full_resync"}]
    assert "entregue ao PDV" in manager.card("caixa-1")["fields"]["command"]
    # ... runs it and says how it went: the card shows the result.
    report(
        server,
        "caixa-1",
        lastReconcile={
            "at": 1_900_000_000_000,
            "status": "repaired",
            "strategy": "full_resync",
            "isConsistent": True,
            "mismatches": [],
            "commandId": ids[0],
        },
        commandResults=[{"id": ids[0], "status": "repaired"}],
    )
    card = manager.card("caixa-1")
    assert card["fields"]["command"] == ""
    assert "concluída" in card["fields"]["commandResult"]
    assert "reparada" in card["fields"]["commandResult"]
    # Every PDV of the shop at once; a plain form POST is sent back to the page.
    everyone = manager.act("/painel/reconciliar", json_answer=False, estrategia="none")
    assert everyone.status_code == 303 and everyone.headers["location"] == "/painel"
    for machine in ("caixa-1", "caixa-2"):
        assert "só comparar" in manager.card(machine)["fields"]["command"]
    bad = manager.act("/painel/reconciliar", maquina="caixa-1", estrategia="tudo")
    assert bad.status_code in (400, 422)
    unknown = manager.act("/painel/reconciliar", maquina="caixa-9")
    assert unknown.status_code == 404


def test_forget_a_pdv(server, manager):
    report(server, "caixa-1")
    report(server, "caixa-velho")
    answer = manager.act("/painel/esquecer", maquina="caixa-velho")
    assert answer.status_code == 200, answer.text
    assert [c["id"] for c in manager.state()["cards"]] == ["caixa-1"]
    assert manager.act("/painel/esquecer", maquina="caixa-velho").status_code == 404
    assert manager.act("/painel/esquecer", maquina="").status_code == 400


def test_a_key_is_shown_once_and_can_be_revoked(server, manager):
    report(server, "caixa-1")
    answer = manager.act("/painel/chaves/emitir", maquina="caixa-1")
    assert answer.status_code == 200, answer.text
    issued = answer.json()
    key = issued["key"]
    assert key.startswith("pdv_") and issued["machineId"] == "caixa-1"
    assert answer.headers["cache-control"] == "no-store"
    # Never again: not in the page, not in the snapshot.
    assert key not in manager.page().text
    state = manager.state()
    assert key not in str(state)
    assert [(k["id"], k["machineId"], k["active"]) for k in state["keys"]] == [
        (issued["id"], "caixa-1", True)
    ]
    # The key works for its PDV (keys are now required from every PDV)...
    assert report(server, "caixa-1", key=key)["success"] is True
    refused = httpx.post(
        server.url + "/api/sync/report", json={"machineId": "caixa-1", "state": "synced"}
    )
    assert refused.status_code == 401
    # ... and never opens the panel.
    panel = httpx.get(server.url + "/painel/estado", headers={"x-api-key": key})
    assert panel.status_code == 401
    # Another shop's manager cannot revoke it.
    b = Manager(server, "gerente-b")
    try:
        assert b.act("/painel/chaves/revogar", chave=str(issued["id"])).status_code == 404
    finally:
        b.close()
    revoked = manager.act("/painel/chaves/revogar", chave=str(issued["id"]))
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    assert [k["active"] for k in manager.state()["keys"]] == [False]
    assert manager.act("/painel/chaves/revogar", chave="abc").status_code == 400
    # A plain form POST gets the key on a page of its own, once.
    shown = manager.act("/painel/chaves/emitir", json_answer=False, maquina=XSS)
    assert shown.status_code == 200
    assert shown.headers["cache-control"] == "no-store"
    assert re.search(r'<code class="secret">pdv_[A-Za-z0-9_-]+</code>', shown.text)
    assert XSS not in shown.text and html.escape(XSS) in shown.text
