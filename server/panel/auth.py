"""The panel's login on the web: who is logged in (`current_admin`), CSRF (`require_csrf`,
`csrf_token_for`), the login and logout routes (`auth_router`) and the security headers of
every /painel answer (`PanelSecurityHeaders`); `install_auth(app)` mounts the last two.

The panel reads only its own cookie: a machine key, `API_SECRET_KEY` or any other header
never opens it. A POST needs the session's CSRF token (form field `csrf` or header
`X-CSRF-Token`) and, when the browser names one, an Origin of this very server. Passwords
and tokens are never logged; a failed login logs the address only (a password typed into
the username field must not reach the log either).
"""

from __future__ import annotations

import hmac
import logging
import math
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from fastapi import APIRouter, Depends, FastAPI, Form, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from protocol import ProtocolError

from .accounts import Accounts, Admin
from .ratelimit import LoginLimiter, address_key, user_key
from .rendering import render
from .sessions import Session, SessionPolicy, Sessions, hash_token

log = logging.getLogger(__name__)

PANEL_PATH = "/painel"
LOGIN_PATH = "/painel/entrar"
LOGOUT_PATH = "/painel/sair"
SESSION_PATH = "/painel/sessao"
COOKIE = "pdvsync_painel"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
_STATIC_PREFIX = "/painel/static/"

# Every /painel answer: no inline script or style, no framing, no referrer to elsewhere.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    ),
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "x-content-type-options": "nosniff",
    "cross-origin-opener-policy": "same-origin",
}

WRONG_LOGIN = "Usuário ou senha incorretos."
_UNKNOWN = object()  # the request's session was not looked up yet


class PanelAuth:
    """What the login needs, one per app: the accounts, the sessions, the rate limit."""

    def __init__(self, accounts: Accounts, sessions: Sessions, limiter: LoginLimiter) -> None:
        self.accounts = accounts
        self.sessions = sessions
        self.limiter = limiter


def auth_of(request: Request) -> PanelAuth:
    """The app's PanelAuth, made on first use from its state (server.app.ServerState)."""
    auth = getattr(request.app.state, "panel_auth", None)
    if auth is None:
        state = request.app.state.sync
        settings = state.settings
        policy = SessionPolicy.from_seconds(
            settings.panel_session_max_age_seconds, settings.panel_session_idle_seconds
        )
        auth = PanelAuth(
            Accounts(state.models), Sessions(state.models, policy), LoginLimiter(state.models)
        )
        request.app.state.panel_auth = auth
    return auth


# -- who is logged in ------------------------------------------------------------------


def _session(request: Request) -> Session | None:
    """The request's live session (looked up once per request), or None."""
    session: Session | None | object = getattr(request.state, "panel_session", _UNKNOWN)
    if session is _UNKNOWN:
        session = auth_of(request).sessions.resolve(request.cookies.get(COOKIE))
        request.state.panel_session = session
    return session if isinstance(session, Session) else None


def _wants_page(request: Request) -> bool:
    """A browser navigating to a page (redirected to the login) rather than a script's
    fetch or an event stream (told 401)."""
    if request.method not in ("GET", "HEAD"):
        return False
    if request.headers.get("sec-fetch-mode") == "navigate":
        return True
    accept = request.headers.get("accept", "")
    return "text/html" in accept and not request.headers.get("x-requested-with")


def login_url(next_path: str | None = None) -> str:
    target = safe_next(next_path)
    return LOGIN_PATH if target == PANEL_PATH else f"{LOGIN_PATH}?next={quote(target, safe='/')}"


def current_admin(request: Request) -> Admin:
    """FastAPI dependency: the logged-in manager. Without a live session a page request is
    sent to the login page (303, coming back here after), anything else gets 401 JSON."""
    session = _session(request)
    if session is not None:
        return session.admin
    if _wants_page(request):
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise HTTPException(303, "entre para continuar", headers={"Location": login_url(here)})
    raise ProtocolError(
        "login_required", "Sessão ausente ou expirada: entre de novo no painel.", status=401
    )


def still_logged_in(request: Request) -> bool:
    """Whether the request's session is still alive now, looked up afresh: a long-lived
    answer (the live event stream) calls it now and then and ends when it is False — after
    a logout, `admin passwd` or `admin remove`, or the session's expiry. Watching does not
    count as activity: it does not restart the idle clock."""
    token = request.cookies.get(COOKIE)
    return auth_of(request).sessions.resolve(token, touch=False) is not None


# -- CSRF ------------------------------------------------------------------------------


def _forbidden(message: str) -> ProtocolError:
    return ProtocolError("csrf_failed", message, status=403)


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def same_origin(origin: str, host: str | None) -> bool:
    """Whether a browser's Origin names this server, as the request's Host names it (the
    Host header omits the port the Origin's scheme implies)."""
    try:
        o = urlsplit(origin)
        h = urlsplit("//" + (host or ""))
        if o.scheme not in ("http", "https") or not o.hostname or not h.hostname:
            return False
        o_port = o.port or _default_port(o.scheme)
        h_port = h.port or _default_port(o.scheme)
    except ValueError:  # a port that is not a number
        return False
    return o.hostname == h.hostname and o_port == h_port


def check_origin(request: Request) -> None:
    """403 when the browser says the request comes from another site."""
    origin = request.headers.get("origin")
    if origin is not None and not same_origin(origin, request.headers.get("host")):
        raise _forbidden("Pedido de outra origem recusado.")
    if origin is None and request.headers.get("sec-fetch-site") == "cross-site":
        raise _forbidden("Pedido de outra origem recusado.")


async def _presented_token(request: Request) -> str | None:
    header = request.headers.get(CSRF_HEADER)
    if header is not None:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        value = (await request.form()).get(CSRF_FIELD)  # cached: the route reads it again
        return value if isinstance(value, str) else None
    return None


async def _check_csrf(request: Request, session: Session) -> None:
    check_origin(request)
    presented = await _presented_token(request)
    if not presented:
        raise _forbidden("Falta o código de segurança (CSRF): recarregue a página.")
    if not hmac.compare_digest(presented.encode("utf-8"), session.csrf_token.encode("utf-8")):
        raise _forbidden("Código de segurança (CSRF) inválido: recarregue a página.")


async def require_csrf(request: Request, admin: Admin = Depends(current_admin)) -> Admin:
    """FastAPI dependency of every POST: the logged-in manager, after the CSRF checks
    (401 without a session; 403 with a missing or wrong token, or a foreign Origin)."""
    session = _session(request)  # already looked up by current_admin
    assert session is not None
    await _check_csrf(request, session)
    return admin


def csrf_token_for(request: Request) -> str:
    """The CSRF token of the request's session, for a template (hidden field `csrf`, or a
    meta tag the JS sends back as `X-CSRF-Token`); '' without a session."""
    session = _session(request)
    return session.csrf_token if session is not None else ""


# -- login and logout ------------------------------------------------------------------


def safe_next(value: str | None) -> str:
    """Where to go after the login: a path of this panel, else the panel itself. Never
    another site (`//evil`, `https://evil`, `/\\evil`) nor a path that climbs out."""
    if not value or len(value) > 2000 or any(ord(c) < 32 or c in "\\\x7f" for c in value):
        return PANEL_PATH
    try:
        parts = urlsplit(value)
    except ValueError:
        return PANEL_PATH
    path = parts.path
    if parts.scheme or parts.netloc or not path.startswith("/"):
        return PANEL_PATH
    if path != PANEL_PATH and not path.startswith(PANEL_PATH + "/"):
        return PANEL_PATH
    decoded = unquote(path)
    if "//" in decoded or "\\" in decoded or any(s in (".", "..") for s in decoded.split("/")):
        return PANEL_PATH
    if path in (LOGIN_PATH, LOGOUT_PATH):
        return PANEL_PATH
    return path + (f"?{parts.query}" if parts.query else "")


def _login_page(
    request: Request,
    next_path: str,
    *,
    error: str | None = None,
    username: str = "",
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    return render(
        request,
        "login.html",
        {"next": next_path, "error": error, "username": username, "admin": None},
        status_code=status_code,
        headers=headers,
    )


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _set_cookie(request: Request, response: Response, token: str, max_age_ms: int) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=max_age_ms // 1000,
        path=PANEL_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def _clear_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        COOKIE,
        path=PANEL_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


auth_router = APIRouter(include_in_schema=False)


@auth_router.get(LOGIN_PATH)
def login_page(request: Request, next: str = Query("")) -> Response:
    target = safe_next(next)
    if _session(request) is not None:
        return RedirectResponse(target, status_code=303)
    return _login_page(request, target)


@auth_router.post(LOGIN_PATH)
def login(
    request: Request,
    usuario: str = Form(""),
    senha: str = Form(""),
    next: str = Form(""),
) -> Response:
    check_origin(request)
    target = safe_next(next)
    auth = auth_of(request)
    address = _client_address(request)
    keys = [user_key(usuario), address_key(address)]
    shown_name = usuario.strip()[:128]
    # Checked before the password: a guesser over the limit learns nothing more.
    wait_ms = auth.limiter.wait_ms(keys)
    if wait_ms > 0:
        minutes = max(1, math.ceil(wait_ms / 60_000))
        log.warning("panel login: too many failures, refused (address %s)", address)
        return _login_page(
            request,
            target,
            error=f"Muitas tentativas; tente em {minutes} min.",
            username=shown_name,
            status_code=429,
            headers={"Retry-After": str(max(1, math.ceil(wait_ms / 1000)))},
        )
    admin = auth.accounts.authenticate(usuario, senha)
    if admin is None:
        auth.limiter.record_failure(keys)
        log.warning("panel login: wrong username or password (address %s)", address)
        return _login_page(request, target, error=WRONG_LOGIN, username=shown_name, status_code=401)
    auth.limiter.clear(user_key(usuario))
    # A new session every time: a session id the browser had before (planted by someone
    # else, or an old one) is ended, never promoted to the logged-in one.
    previous = request.cookies.get(COOKIE)
    if previous:
        auth.sessions.close(hash_token(previous))
    token, _ = auth.sessions.open(admin)
    log.info("panel login: %s (address %s)", admin.username, address)
    response = RedirectResponse(target, status_code=303)
    _set_cookie(request, response, token, auth.sessions.policy.max_age_ms)
    return response


@auth_router.post(LOGOUT_PATH)
async def logout(request: Request) -> Response:
    """End the session (a CSRF-checked POST); without a live session just go to the login."""
    session = await run_in_threadpool(_session, request)
    if session is not None:
        await _check_csrf(request, session)
        await run_in_threadpool(auth_of(request).sessions.close, session.token_hash)
        log.info("panel logout: %s", session.admin.username)
    response = RedirectResponse(LOGIN_PATH, status_code=303)
    _clear_cookie(request, response)
    return response


@auth_router.get(SESSION_PATH)
def session_info(request: Request, admin: Admin = Depends(current_admin)) -> JSONResponse:
    """Who is logged in, and the CSRF token the page's script sends (same origin only:
    another site can neither send the cookie, SameSite=Strict, nor read the answer)."""
    body: dict[str, Any] = {
        "success": True,
        "username": admin.username,
        "tenantId": admin.tenant,
        "allShops": admin.all_shops,
        "csrfToken": csrf_token_for(request),
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


# -- security headers ------------------------------------------------------------------


class PanelSecurityHeaders:
    """ASGI middleware: the security headers on every answer under /painel, and no caching
    of its pages (the static files keep their own caching)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path == PANEL_PATH or path.startswith(PANEL_PATH + "/")):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                if not path.startswith(_STATIC_PREFIX) and "cache-control" not in headers:
                    headers["cache-control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_auth(app: FastAPI) -> None:
    """Mount the login routes and the panel's security headers on `app`."""
    app.add_middleware(PanelSecurityHeaders)
    app.include_router(auth_router)
