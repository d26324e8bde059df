"""The panel's login against a real server process: accounts, the same answer for a wrong
password and an unknown user, the rate limit (per username, per address, shared by server
processes), the cookie's flags, session expiry (absolute and idle), logout, CSRF, the
security headers, `next` never leaving the panel, and keys that never open the panel."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import httpx
import pytest

from server.db import bind_models, connect_database
from server.migrations import migrate
from server.panel import passwords
from server.panel.accounts import Accounts, Admin
from server.panel.auth import COOKIE, safe_next
from tests.server.test_cli_keys import keys_cli

PASSWORD = "segredo-do-gerente"
WRONG = "Usuário ou senha incorretos."


def add_admin(server, username: str, password: str = PASSWORD, tenant: str | None = None):
    """An account in the server's own database (the CLI is tested in test_admin_cli.py)."""
    db, _ = connect_database(server.database_url, server.data_dir)
    try:
        migrate(db)
        Accounts(bind_models(db)).add(username, password, tenant)
    finally:
        db.close_all()


def client(server, address: str = "127.0.0.1") -> httpx.Client:
    """A browser-like client from `address` (any 127.x.y.z reaches the server on Linux)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=server.url, transport=transport, timeout=30)


def login(
    c: httpx.Client,
    username: str = "gerente",
    password: str = PASSWORD,
    next_: str = "",
    forwarded_for: str | None = None,
):
    """The login form posted; `forwarded_for`: as a reverse proxy would say it (X-Forwarded-For)."""
    return c.post(
        "/painel/entrar",
        data={"usuario": username, "senha": password, "next": next_},
        headers={"x-forwarded-for": forwarded_for} if forwarded_for else None,
        follow_redirects=False,
    )


def cookie_token(response: httpx.Response) -> str:
    m = re.search(rf"{COOKIE}=([^;]*)", response.headers["set-cookie"])
    assert m, response.headers.get("set-cookie")
    return m.group(1)


def with_token(server, token: str, path: str = "/painel/sessao", **headers: str):
    """GET `path` carrying only this session cookie (no jar), plus `headers`."""
    return httpx.get(
        server.url + path,
        headers={"cookie": f"{COOKIE}={token}", **headers},
        follow_redirects=False,
        timeout=30,
    )


def error_text(html: str) -> str:
    m = re.search(r'<p class="login-error" role="alert">([^<]*)</p>', html)
    return m.group(1) if m else ""


@pytest.fixture
def server(server_factory, database_url):
    s = server_factory(database_url=database_url)
    add_admin(s, "gerente")
    return s


# -- login, logout, the cookie -----------------------------------------------------------


def test_login_opens_a_session_and_logout_ends_it(server):
    with client(server) as c:
        page = c.get("/painel/entrar")
        assert page.status_code == 200
        assert 'name="usuario"' in page.text and 'name="senha"' in page.text

        ok = login(c, "  Gerente ")  # a phone capitalises the first letter
        assert ok.status_code == 303 and ok.headers["location"] == "/painel"
        cookie = ok.headers["set-cookie"]
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/painel", "max-age=43200"} <= flags
        assert "secure" not in flags  # plain http here (see the https test below)
        token = cookie_token(ok)
        assert len(token) >= 43  # 32 random bytes

        me = c.get("/painel/sessao")
        assert me.status_code == 200
        body = me.json()
        assert body["username"] == "gerente" and body["allShops"] is True
        csrf = body["csrfToken"]

        # Logged in, the login page sends the manager on to the panel.
        assert c.get("/painel/entrar", follow_redirects=False).status_code == 303

        out = c.post("/painel/sair", headers={"x-csrf-token": csrf}, follow_redirects=False)
        assert out.status_code == 303 and out.headers["location"] == "/painel/entrar"
        assert f'{COOKIE}=""' in out.headers["set-cookie"]
    # The token itself is dead, not only forgotten by this browser.
    assert with_token(server, token).status_code == 401


def test_wrong_password_and_unknown_user_get_the_same_answer(server):
    with client(server) as c:
        wrong = login(c, "gerente", "not-the-password")
        unknown = login(c, "ninguem", PASSWORD)
        invalid = login(c, "<script>", PASSWORD)  # not even a valid name: the same
        for r in (wrong, unknown, invalid):
            assert r.status_code == 401
            assert error_text(r.text) == WRONG
            assert COOKIE not in r.headers.get("set-cookie", "")
        assert "&lt;script&gt;" in invalid.text and "<script>" not in invalid.text
        assert c.get("/painel/sessao").status_code == 401


def test_an_unknown_or_disabled_user_costs_one_scrypt_like_a_wrong_password(tmp_path, monkeypatch):
    """Same work whatever the username: timing tells nobody which accounts exist."""
    db, _ = connect_database(f"sqlite:///{tmp_path / 'a.db'}", Path(tmp_path))
    migrate(db)
    models = bind_models(db)
    accounts = Accounts(models)
    accounts.add("gerente", PASSWORD, None)
    accounts.add("antigo", PASSWORD, "loja-1")
    with db.connection_context():
        models.Admin.update(disabled=True).where(models.Admin.username == "antigo").execute()
    calls: list[int] = []
    real = passwords._scrypt
    monkeypatch.setattr(passwords, "_scrypt", lambda *a: calls.append(a[2]) or real(*a))
    for username, password in (
        ("gerente", "wrong-password"),
        ("ninguem", PASSWORD),
        ("antigo", PASSWORD),
        ("x" * 500, PASSWORD),
        ("gerente", "x" * 100_000),
    ):
        calls.clear()
        assert accounts.authenticate(username, password) is None
        assert calls == [passwords.N], username[:20]
    calls.clear()
    admin = accounts.authenticate("GERENTE", PASSWORD)
    assert admin is not None and admin.username == "gerente" and calls == [passwords.N]
    db.close_all()


def test_a_new_session_on_every_login_never_the_one_the_browser_had(server):
    with client(server) as c:
        first = cookie_token(login(c))
        # Logging in again from a browser holding a session (or a planted id) ends that one.
        second = login(c)
        assert second.status_code == 303
        assert cookie_token(second) != first
    assert with_token(server, first).status_code == 401
    with client(server) as c:
        c.cookies.set(COOKIE, "planted-by-someone-else", domain="127.0.0.1", path="/painel")
        fresh = login(c)
        assert cookie_token(fresh) != "planted-by-someone-else"


def test_the_cookie_is_secure_on_https(tmp_path):
    """A request that arrived over https (TLS at this server) gets a Secure cookie."""
    from server.app import create_app
    from server.settings import Settings

    app = create_app(Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path}/s.db"))
    state = app.state.sync
    migrate(state.db)
    Accounts(state.models).add("gerente", PASSWORD, None)

    async def run() -> str:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://panel.test") as c:
            r = await c.post(
                "/painel/entrar", data={"usuario": "gerente", "senha": PASSWORD, "next": ""}
            )
            assert r.status_code == 303
            return r.headers["set-cookie"]

    try:
        cookie = asyncio.run(run())
    finally:
        state.db.close_all()
    assert "secure" in {part.strip().lower() for part in cookie.split(";")}


# -- the rate limit ----------------------------------------------------------------------


def test_five_failures_for_a_username_make_it_wait(server):
    add_admin(server, "outro")
    with client(server) as c:
        for _ in range(5):
            assert login(c, "gerente", "wrong-password").status_code == 401
        blocked = login(c, "gerente", PASSWORD)  # even the right password now
        assert blocked.status_code == 429
        assert error_text(blocked.text) == "Muitas tentativas; tente em 15 min."
        assert 800 < int(blocked.headers["retry-after"]) <= 900
        assert COOKIE not in blocked.headers.get("set-cookie", "")
    # From another address the username still waits; another user there does not.
    with client(server, "127.0.0.2") as c:
        assert login(c, "GERENTE", PASSWORD).status_code == 429
        assert login(c, "outro", PASSWORD).status_code == 303


def test_five_failures_from_an_address_make_it_wait(server):
    with client(server, "127.0.0.3") as c:
        for i in range(5):
            assert login(c, f"guess-{i}", "whatever-123").status_code == 401
        blocked = login(c, "gerente", PASSWORD)
        assert blocked.status_code == 429 and "tente em" in error_text(blocked.text)
    with client(server, "127.0.0.1") as c:
        assert login(c, "gerente", PASSWORD).status_code == 303


def test_a_forwarded_address_counts_only_behind_a_trusted_proxy(server_factory, database_url):
    """Behind the reverse proxy the operator names (TRUSTED_PROXIES), each client is limited on
    its own address, not the proxy's; a header sent by anyone else changes nothing."""
    s = server_factory(database_url=database_url, env={"TRUSTED_PROXIES": "127.0.0.1"})
    add_admin(s, "gerente")
    with client(s, "127.0.0.1") as proxy:
        for i in range(5):
            r = login(proxy, f"guess-{i}", "whatever-123", forwarded_for="203.0.113.7")
            assert r.status_code == 401
        blocked = login(proxy, "gerente", PASSWORD, forwarded_for="203.0.113.7")
        assert blocked.status_code == 429
        # The manager, through the same proxy from another address, is not locked out.
        manager = login(proxy, "gerente", PASSWORD, forwarded_for="198.51.100.20")
        assert manager.status_code == 303
    # A peer that is not the proxy cannot hide behind a forwarded address of its own choice.
    with client(s, "127.0.0.4") as c:
        for i in range(5):
            r = login(c, f"other-{i}", "whatever-123", forwarded_for=f"192.0.2.{i + 1}")
            assert r.status_code == 401
        assert login(c, "gerente", PASSWORD).status_code == 429


def test_without_trusted_proxies_a_forwarded_address_is_ignored(server):
    with client(server, "127.0.0.5") as c:
        for i in range(5):
            r = login(c, f"guess-{i}", "whatever-123", forwarded_for=f"192.0.2.{i + 1}")
            assert r.status_code == 401
        assert login(c, "gerente", PASSWORD).status_code == 429


@pytest.mark.postgres
def test_the_rate_limit_is_shared_by_server_processes_on_one_postgresql(server_factory, pg_url):
    """Failures are rows in the database: a guesser cannot spread its tries over the server
    processes behind a load balancer, nor outwait a restart."""
    a = server_factory(database_url=pg_url)
    b = server_factory(database_url=pg_url)
    add_admin(a, "gerente")
    with client(a) as ca, client(b) as cb:
        for c in (ca, cb, ca, cb, ca):
            assert login(c, "gerente", "wrong-password").status_code == 401
        assert login(ca, "gerente", PASSWORD).status_code == 429
        assert login(cb, "gerente", PASSWORD).status_code == 429
    b.kill()
    c2 = server_factory(database_url=pg_url)  # a restarted process remembers them too
    with client(c2) as c:
        assert login(c, "gerente", PASSWORD).status_code == 429


# -- session expiry ----------------------------------------------------------------------


def test_a_session_ends_after_the_idle_timeout(server_factory, database_url):
    s = server_factory(
        database_url=database_url,
        env={"PANEL_SESSION_IDLE_SECONDS": "2", "PANEL_SESSION_MAX_AGE_SECONDS": "600"},
    )
    add_admin(s, "gerente")
    with client(s) as c:
        token = cookie_token(login(c))
    for _ in range(4):  # used every 0.8 s: alive after 3.2 s, longer than the idle time
        time.sleep(0.8)
        assert with_token(s, token).status_code == 200
    time.sleep(2.5)
    gone = with_token(s, token)
    assert gone.status_code == 401 and gone.json()["code"] == "login_required"
    # A browser going to a page is sent to the login, and back here after it.
    page = with_token(s, token, accept="text/html")
    assert page.status_code == 303
    assert page.headers["location"] == "/painel/entrar?next=/painel/sessao"


def test_a_session_ends_after_its_absolute_age_even_when_used(server_factory, database_url):
    s = server_factory(
        database_url=database_url,
        env={"PANEL_SESSION_IDLE_SECONDS": "600", "PANEL_SESSION_MAX_AGE_SECONDS": "3"},
    )
    add_admin(s, "gerente")
    with client(s) as c:
        ok = login(c)
        assert "max-age=3" in ok.headers["set-cookie"].lower()
        token = cookie_token(ok)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        assert with_token(s, token).status_code == 200
        time.sleep(0.5)
    time.sleep(1.5)
    assert with_token(s, token).status_code == 401


def test_watching_the_live_stream_is_not_activity(tmp_path):
    """`still_logged_in` (the live stream's periodic check) sees a logout or an expiry at
    once but does not restart the idle clock: a screen left open still times out."""
    from types import SimpleNamespace

    from starlette.requests import Request

    from server.panel.auth import PanelAuth, still_logged_in
    from server.panel.ratelimit import LoginLimiter
    from server.panel.sessions import SessionPolicy, Sessions

    db, _ = connect_database(f"sqlite:///{tmp_path / 'a.db'}", Path(tmp_path))
    migrate(db)
    models = bind_models(db)
    now = [1_000_000]
    clock = lambda: now[0]  # noqa: E731
    accounts = Accounts(models, clock)
    sessions = Sessions(models, SessionPolicy(max_age_ms=100_000, idle_ms=10_000), clock)
    app = SimpleNamespace(
        state=SimpleNamespace(panel_auth=PanelAuth(accounts, sessions, LoginLimiter(models)))
    )
    token, _ = sessions.open(accounts.add("gerente", PASSWORD, None))

    def request() -> Request:
        cookie = f"{COOKIE}={token}".encode()
        return Request({"type": "http", "headers": [(b"cookie", cookie)], "app": app})

    now[0] += 9_000
    assert still_logged_in(request())
    now[0] += 2_000  # 11 s since the last real request: idle, though watched all along
    assert not still_logged_in(request())
    token, session = sessions.open(accounts.get(1) or Admin(1, "gerente", None))
    assert still_logged_in(request())
    sessions.close(session.token_hash)  # a logout elsewhere
    assert not still_logged_in(request())
    db.close_all()


# -- CSRF and the security headers -------------------------------------------------------


def test_a_post_without_the_right_csrf_token_or_from_another_origin_is_refused(server):
    with client(server) as c:
        login(c)
        csrf = c.get("/painel/sessao").json()["csrfToken"]
        host = server.url.removeprefix("http://")
        refusals = [
            ({}, None),  # no token at all
            ({"x-csrf-token": "wrong"}, None),
            ({}, {"csrf": "wrong"}),
            ({"x-csrf-token": csrf[:-1]}, None),
            ({"x-csrf-token": csrf, "origin": "http://evil.example"}, None),
            ({"x-csrf-token": csrf, "origin": f"http://{host.split(':')[0]}:1"}, None),
            ({"x-csrf-token": csrf, "origin": "null"}, None),
            ({"x-csrf-token": csrf, "sec-fetch-site": "cross-site"}, None),
        ]
        for headers, form in refusals:
            r = c.post("/painel/sair", headers=headers, data=form, follow_redirects=False)
            assert r.status_code == 403, (headers, form)
            body = r.json()
            assert body["code"] == "csrf_failed"
            assert "recarregue" in body["error"] or "outra origem" in body["error"]
        assert c.get("/painel/sessao").status_code == 200  # nothing happened
        # The form field works like the header, with this server's own Origin.
        out = c.post(
            "/painel/sair",
            data={"csrf": csrf},
            headers={"origin": f"http://{host}"},
            follow_redirects=False,
        )
        assert out.status_code == 303
        assert c.get("/painel/sessao").status_code == 401


def test_a_login_posted_from_another_site_is_refused(server):
    with client(server) as c:
        r = c.post(
            "/painel/entrar",
            data={"usuario": "gerente", "senha": PASSWORD},
            headers={"origin": "http://evil.example"},
            follow_redirects=False,
        )
        assert r.status_code == 403 and COOKIE not in r.headers.get("set-cookie", "")


def test_a_post_without_a_session_is_401_json_and_a_page_without_one_goes_to_the_login(server):
    with client(server) as c:
        assert c.post("/painel/sessao").status_code == 405  # GET only
        r = c.get("/painel/sessao")
        assert r.status_code == 401 and r.json()["code"] == "login_required"
        sse = c.get("/painel/sessao", headers={"accept": "text/event-stream"})
        assert sse.status_code == 401
        nav = c.get(
            "/painel/sessao?a=1", headers={"sec-fetch-mode": "navigate"}, follow_redirects=False
        )
        assert nav.status_code == 303
        assert nav.headers["location"] == "/painel/entrar?next=/painel/sessao%3Fa%3D1"
        # Logging out without a session is harmless: back to the login page.
        out = c.post("/painel/sair", follow_redirects=False)
        assert out.status_code == 303 and out.headers["location"] == "/painel/entrar"


def test_every_panel_answer_carries_the_security_headers(server):
    with client(server) as c:
        for r in (c.get("/painel/entrar"), c.get("/painel/sessao"), login(c, "x", "y")):
            assert r.headers["content-security-policy"].startswith("default-src 'self'")
            assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
            assert r.headers["x-frame-options"] == "DENY"
            assert r.headers["referrer-policy"] == "same-origin"
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["cache-control"] == "no-store"
        # Not the sync API's: it is not a page.
        assert "content-security-policy" not in c.get("/health").headers


def test_passwords_and_tokens_never_reach_the_log(server):
    with client(server) as c:
        login(c, "gerente", "typed-by-mistake-" + PASSWORD)
        login(c, PASSWORD, PASSWORD)  # a password typed in the username field
        token = cookie_token(login(c))
        csrf = c.get("/painel/sessao").json()["csrfToken"]
    log = server.settled_output()
    assert "panel login: gerente" in log
    for secret in (PASSWORD, token, csrf):
        assert secret not in log


# -- where the login goes next -----------------------------------------------------------

FOREIGN = [
    "//evil.example/painel",
    "https://evil.example/painel",
    "http:/painel",
    "/\\evil.example",
    "\\\\evil.example",
    "/painel/../api/stats",
    "/painel/%2e%2e/api/stats",
    "/painel//evil.example",
    "/painelx",
    "/api/stats",
    "javascript:alert(1)",
    " //evil.example",
    "/painel\r\nSet-Cookie: x=1",
    "/painel/entrar",
]


@pytest.mark.parametrize("target", FOREIGN)
def test_next_never_leaves_the_panel(target):
    assert safe_next(target) == "/painel"


def test_next_keeps_a_path_of_the_panel(server):
    assert safe_next("/painel/?loja=loja-1") == "/painel/?loja=loja-1"
    with client(server) as c:
        assert login(c, next_="/painel?loja=loja-1").headers["location"] == "/painel?loja=loja-1"
        for target in ("//evil.example/", "https://evil.example/painel", "/\\evil.example"):
            assert login(c, next_=target).headers["location"] == "/painel"
        page = c.get("/painel/entrar", params={"next": '/painel?x="><script>'})
        assert '"><script>' not in page.text  # escaped in the hidden field


# -- what never opens the panel ----------------------------------------------------------


def test_machine_keys_and_the_api_secret_key_never_open_the_panel(server_factory, database_url):
    master = "master-key-for-the-api-only"
    s = server_factory(database_url=database_url, env={"API_SECRET_KEY": master})
    issued = keys_cli(s, "issue", "--machine", "caixa-1")
    assert issued.returncode == 0, issued.stderr
    machine_key = issued.stdout.strip().splitlines()[-1]
    with httpx.Client(base_url=s.url, timeout=30) as c:
        assert c.get("/api/stats", headers={"x-api-key": master}).status_code == 200
        for headers in (
            {"x-api-key": master},
            {"x-api-key": machine_key},
            {"authorization": f"Bearer {master}"},
            {"authorization": f"Bearer {machine_key}"},
            {"cookie": f"{COOKIE}={master}"},
            {"cookie": f"{COOKIE}={machine_key}"},
        ):
            assert c.get("/painel/sessao", headers=headers).status_code == 401
            page = c.get("/painel", headers={**headers, "accept": "text/html"})
            assert page.status_code == 303
            assert page.headers["location"].startswith("/painel/entrar")
            post = c.post("/painel/sair", headers={**headers, "x-csrf-token": "x"})
            assert post.status_code == 303  # no session: nothing to end, back to the login


def test_a_shop_manager_sees_only_that_shop():
    shop = Admin(id=1, username="loja", tenant="loja-1")
    everyone = Admin(id=2, username="dono", tenant=None)
    assert shop.can_see("loja-1") and not shop.can_see("loja-2") and not shop.all_shops
    assert everyone.can_see("loja-1") and everyone.can_see("loja-2") and everyone.all_shops
