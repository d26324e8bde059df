"""The panel's HTML: one Jinja2 environment per app (autoescaped), and `render()` for routes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from protocol.version import __version__

PANEL_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = PANEL_DIR / "templates"
STATIC_DIR = PANEL_DIR / "static"
STATIC_PREFIX = "/painel/static"


def static_url(name: str) -> str:
    """The URL of a static file; the version makes browsers fetch it again after an upgrade."""
    return f"{STATIC_PREFIX}/{name}?v={__version__}"


def build_environment() -> jinja2.Environment:
    """Autoescape everywhere (every template is HTML): whatever a user typed — a machine id,
    a host name, an error text — is shown as text, never as markup."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["static_url"] = static_url
    env.globals["version"] = __version__
    return env


def environment_of(request: Request) -> jinja2.Environment:
    return request.app.state.panel_templates


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """A page from `template` (under server/panel/templates/), `request` in its context.
    Pages are never cached: they show live data, CSRF tokens and, once, a new key."""
    html = (
        environment_of(request)
        .get_template(template)
        .render({"request": request, **(context or {})})
    )
    return HTMLResponse(
        html,
        status_code=status_code,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )
