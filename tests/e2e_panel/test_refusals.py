"""What the panel refuses, seen from a real browser against a real server: a wrong password
(a message on the page), an action without its CSRF token or from a foreign page (403), an
expired session (back to the login page), and machine keys or API_SECRET_KEY (they never
open the panel)."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from .shop import MANAGER, PASSWORD, add_manager, run_cli

SECRET = "segredo-da-loja-0123456789abcdef"
WRONG = re.compile(r"usuário ou senha incorretos", re.I)

# The POST forms of the panel page: action, and the fields a browser would send.
_FORMS = """
() => [...document.querySelectorAll('form')]
  .filter((f) => (f.getAttribute('method') || '').toLowerCase() === 'post')
  .map((f) => ({
    action: f.action,
    fields: Object.fromEntries([...new FormData(f).entries()].map(([k, v]) => [k, String(v)])),
  }))
"""


def _reconcile_form(panel) -> dict:
    forms = panel.page.evaluate(_FORMS)
    found = [f for f in forms if "reconcil" in f["action"]]
    assert found, f"no reconcile form on the panel; POST forms: {forms}"
    assert "csrf" in found[0]["fields"], f"the form carries no csrf field: {found[0]}"
    return found[0]


def test_a_wrong_password_is_told_on_the_page_and_changes_nothing(shop, new_page):
    server = shop.start_server()
    add_manager(server)
    panel = new_page(server.url)
    panel.page.goto("/painel")
    assert "/painel/entrar" in panel.page.url

    panel.login_form(MANAGER, "senha-errada-123")
    assert "/painel/entrar" in panel.page.url, panel.page.url
    assert WRONG.search(panel.page.inner_text("body"))
    assert not any(c["name"] == "pdvsync_painel" for c in panel.page.context.cookies())

    # An unknown user gets the same answer (nothing says which accounts exist).
    panel.login_form("ninguem", PASSWORD)
    assert WRONG.search(panel.page.inner_text("body"))

    panel.login_form(MANAGER, PASSWORD)
    assert re.search(r"/painel/?$", panel.page.url), panel.page.url


def test_an_action_without_the_csrf_token_or_from_another_site_is_refused(shop, new_page):
    server = shop.start_server()
    add_manager(server)
    (caixa1,) = shop.start_agents(["caixa-1"])
    panel = new_page(server.url)
    panel.login(MANAGER, PASSWORD)
    panel.wait_state("caixa-1", "Sincronizado", 45)
    form = _reconcile_form(panel)
    request = panel.page.request  # the browser context's cookies: the session goes along

    without = {k: v for k, v in form["fields"].items() if k != "csrf"}
    refused = request.post(form["action"], form=without, max_redirects=0)
    assert refused.status == 403, (refused.status, refused.text()[:300])
    wrong = request.post(form["action"], form={**without, "csrf": "x" * 43}, max_redirects=0)
    assert wrong.status == 403, (wrong.status, wrong.text()[:300])
    foreign = request.post(
        form["action"],
        form=form["fields"],
        headers={"Origin": "http://evil.example"},
        max_redirects=0,
    )
    assert foreign.status == 403, (foreign.status, foreign.text()[:300])
    time.sleep(2)
    assert caixa1.status()["lastReconcile"] is None, "a refused action reached the PDV"

    # The same form with its token from this page works: the refusals were the token's.
    accepted = request.post(form["action"], form=form["fields"], max_redirects=0)
    assert accepted.status in (200, 303), (accepted.status, accepted.text()[:300])


def test_an_expired_session_is_sent_back_to_the_login_page(shop, new_page):
    server = shop.start_server(env={"PANEL_SESSION_MAX_AGE_SECONDS": "4"})
    add_manager(server)
    panel = new_page(server.url)
    panel.login(MANAGER, PASSWORD)
    cookie = next(c for c in panel.page.context.cookies() if c["name"] == "pdvsync_painel")
    time.sleep(5)

    panel.page.reload()
    assert "/painel/entrar" in panel.page.url, panel.page.url
    # Not only the browser forgetting the cookie: the server no longer takes it either.
    with httpx.Client(base_url=server.url, follow_redirects=False, timeout=10) as client:
        r = client.get("/painel", headers={"cookie": f"pdvsync_painel={cookie['value']}"})
    assert r.status_code in (302, 303, 401), r.status_code
    assert r.status_code == 401 or "/painel/entrar" in r.headers["location"]


@pytest.mark.parametrize("which", ["machine key", "API_SECRET_KEY"])
def test_machine_keys_and_the_api_secret_do_not_open_the_panel(shop, new_page, which):
    server = shop.start_server(env={"API_SECRET_KEY": SECRET})
    add_manager(server)
    issued = run_cli(server, "keys", "issue", "--machine", "caixa-1")
    assert issued.returncode == 0, issued.stderr
    key = SECRET if which == "API_SECRET_KEY" else issued.stdout.strip().splitlines()[-1]

    with httpx.Client(base_url=server.url, follow_redirects=False, timeout=10) as client:
        # The key itself is good: the sync API takes it.
        assert client.get("/api/stats", headers={"x-api-key": key}).status_code == 200
        for headers in ({"x-api-key": key}, {"authorization": f"Bearer {key}"}):
            page = client.get("/painel", headers=headers)
            assert page.status_code in (302, 303, 401), (headers, page.status_code)
            if page.status_code != 401:
                assert "/painel/entrar" in page.headers["location"]
            events = client.get("/painel/eventos", headers=headers)
            assert events.status_code in (302, 303, 401, 403), (headers, events.status_code)

    # A browser that sends the key on every request still lands on the login page.
    panel = new_page(server.url, extra_http_headers={"x-api-key": key})
    panel.page.goto("/painel")
    assert "/painel/entrar" in panel.page.url, panel.page.url
