"""Who may talk to the agent's loopback API: programs on this PC, and web pages the shop runs
on this PC (the POS front end) — never an arbitrary web site open in the PDV's browser.

Listening on 127.0.0.1 keeps other machines out, but not the browser on this one: any page
can send a "simple" cross-site POST (text/plain, no preflight) to 127.0.0.1:4000, and a
DNS-rebinding page can even read the answers. The agent would then sync that change to the
server with its own key. So, before the API sees a request:

- `Host` must name this machine by loopback (127.0.0.1, localhost, [::1]): a rebinding page
  sends its own host name.
- A request with an `Origin` (browsers send one on every cross-site request and on every
  POST) must come from a page served by this PC (http(s)://localhost|127.0.0.1|[::1]:any port)
  or from an origin listed in `SYNC_CORS_ORIGINS`. Programs that send no `Origin` (the POS
  back end, curl, the CLI) are not browsers and are let through.
- Allowed origins get CORS headers, preflights included, so a browser front end works.

Refusals are 403 JSON in the API's envelope and change nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from protocol.envelope import send_json
from protocol.errors import error_body

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
_LOCAL_ORIGIN = r"https?://(localhost|127\.0\.0\.1|\[::1\])(:\d{1,5})?"


def parse_origins(text: str) -> tuple[str, ...]:
    """`SYNC_CORS_ORIGINS`: comma-separated `scheme://host[:port]` (or `null`). ValueError names
    the first bad entry."""
    out: list[str] = []
    for raw in (part.strip() for part in text.split(",")):
        if not raw:
            continue
        if raw == "null":
            out.append(raw)
            continue
        parts = urlsplit(raw)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
        ):
            raise ValueError(f"'{raw}' is not an origin like http://192.168.1.50:3000")
        out.append(f"{parts.scheme}://{parts.netloc}".lower())
    return tuple(out)


def _host_name(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class LoopbackGuard:
    """ASGI middleware around the loopback app (HTTP and WebSocket)."""

    def __init__(self, app: ASGIApp, extra_origins: Iterable[str] = ()) -> None:
        self.extra = {o.lower() for o in extra_origins}
        self.local = re.compile(_LOCAL_ORIGIN)
        self.app = CORSMiddleware(
            app,
            allow_origins=sorted(self.extra - {"null"}) or [],
            allow_origin_regex=_LOCAL_ORIGIN,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["*"],
            # Chrome's Private Network Access: a listed LAN page calling 127.0.0.1.
            allow_private_network=True,
            max_age=600,
        )
        self._null_allowed = "null" in self.extra

    def origin_allowed(self, origin: str) -> bool:
        origin = origin.strip().lower()
        if origin == "null":
            return self._null_allowed
        return origin in self.extra or self.local.fullmatch(origin) is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
        }
        host = headers.get("host")
        if host is not None and _host_name(host) not in LOOPBACK_HOSTS:
            await _refuse(
                scope,
                receive,
                send,
                "forbidden_host",
                "only this computer may use the agent (Host must be 127.0.0.1 or localhost)",
            )
            return
        origin = headers.get("origin")
        if origin is not None and not self.origin_allowed(origin):
            await _refuse(
                scope,
                receive,
                send,
                "forbidden_origin",
                f"web pages from {origin[:80]} may not use the agent; add the POS front end's "
                "origin to SYNC_CORS_ORIGINS",
            )
            return
        await self.app(scope, receive, send)


async def _refuse(scope: Scope, receive: Receive, send: Send, code: str, message: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 4403})
        return
    await send_json(send, 403, error_body(code, message))
