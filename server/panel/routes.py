"""The panel's pages and actions under /painel (login required)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from .rendering import render

router = APIRouter(prefix="/painel", include_in_schema=False)


@router.get("", response_class=HTMLResponse)
def panel_page(request: Request) -> HTMLResponse:
    return render(request, "base.html")
