"""The panel's page and actions under /painel (a logged-in manager; every POST CSRF-checked).

- `GET /painel[?loja=]`: the page (alerts, health, cards, chart, keys) of one shop;
  `GET /painel/estado[?loja=]`: the same snapshot as JSON (what the live stream sends).
- `POST /painel/reconciliar` (maquina: one PDV or empty for all; estrategia),
  `POST /painel/esquecer` (maquina), `POST /painel/chaves/emitir` (maquina),
  `POST /painel/chaves/revogar` (chave: the key's number); each with `loja`.

The page's script asks for JSON (`Accept: application/json`); a plain form POST gets a 303
back to the page — except a new key, shown once on a page of its own. A shop's manager acts
on that shop only (403 otherwise); an all-shops admin names the shop (`loja`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from protocol import ProtocolError, now_ms
from protocol.messages import parse_machine_id
from protocol.tenancy import DEFAULT_TENANT, parse_tenant
from protocol.vocabulary import DivergenceStrategy

from .accounts import Admin
from .auth import csrf_token_for, current_admin, require_csrf
from .rendering import render
from .snapshot import build_snapshot, shops_of
from .views import CARD_FIELDS
from .wording import STRATEGY_LABELS

router = APIRouter(prefix="/painel", include_in_schema=False)


def shop_label(tenant: str) -> str:
    return "Loja padrão" if tenant == DEFAULT_TENANT else f"Loja {tenant}"


def shop_for(admin: Admin, loja: str | None) -> str:
    """The shop a request is for: a shop's manager's own (naming another is 403); for an
    all-shops admin the one named (`loja`), the default shop when none is."""
    named = parse_tenant(loja or None, "loja")
    if admin.tenant is not None:
        if named is not None and named != admin.tenant:
            raise ProtocolError(
                "shop_forbidden", "Este usuário não tem acesso a essa loja.", status=403
            )
        return admin.tenant
    return named or DEFAULT_TENANT


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def _state(request: Request) -> Any:
    return request.app.state.sync


def _service(request: Request, tenant: str) -> Any:
    return _state(request).service.scoped(tenant)


def _back(tenant: str) -> str:
    return "/painel" if tenant == DEFAULT_TENANT else f"/painel?loja={tenant}"


def _done(request: Request, tenant: str, **body: Any) -> Response:
    """The answer of an action: JSON for the page's script, else back to the page."""
    if wants_json(request):
        return JSONResponse({"success": True, **body}, headers={"Cache-Control": "no-store"})
    return RedirectResponse(_back(tenant), status_code=303)


# -- the page --------------------------------------------------------------------------


@router.get("")
def panel_page(
    request: Request, loja: str | None = Query(None), admin: Admin = Depends(current_admin)
) -> Response:
    tenant = shop_for(admin, loja)
    state = _state(request)
    snapshot = build_snapshot(state, tenant, now_ms())
    shops = sorted(set(shops_of(state)) | {tenant}) if admin.all_shops else [tenant]
    return render(
        request,
        "panel.html",
        {
            "admin": admin,
            "tenant": tenant,
            "shop_label": shop_label(tenant),
            "shops": [(s, shop_label(s)) for s in shops],
            "snapshot": snapshot,
            "csrf": csrf_token_for(request),
            "strategies": list(STRATEGY_LABELS.items()),
            "card_fields": CARD_FIELDS,
            "empty_card": _empty_card(),
        },
    )


def _empty_card() -> dict[str, Any]:
    """The card the page's script clones for a PDV that appears (a <template>)."""
    return {
        "id": "",
        "state": "waiting",
        "icon": "",
        "alert": False,
        "fields": dict.fromkeys(CARD_FIELDS, ""),
        "warn": [],
        "commandFailed": False,
    }


@router.get("/estado")
def panel_state(
    request: Request, loja: str | None = Query(None), admin: Admin = Depends(current_admin)
) -> JSONResponse:
    tenant = shop_for(admin, loja)
    snapshot = build_snapshot(_state(request), tenant, now_ms())
    return JSONResponse(snapshot, headers={"Cache-Control": "no-store"})


# -- actions ---------------------------------------------------------------------------


def _strategy(text: str) -> str:
    try:
        return DivergenceStrategy(text or DivergenceStrategy.REFRESH_MISMATCHED.value).value
    except ValueError:
        raise ProtocolError(
            "invalid_strategy",
            "estrategia: none, refresh_mismatched ou full_resync",
            status=400,
        ) from None


def _machine(text: str, *, required: bool) -> str | None:
    value = text.strip() if text else ""
    if not value:
        if required:
            raise ProtocolError("missing_machine_id", "Informe o PDV (maquina).", status=400)
        return None
    return parse_machine_id(value)


@router.post("/reconciliar")
async def force_reconcile(
    request: Request,
    maquina: str = Form(""),
    estrategia: str = Form(""),
    loja: str = Form(""),
    admin: Admin = Depends(require_csrf),
) -> Response:
    """Ask one PDV (or every PDV of the shop, `maquina` empty) to reconcile: delivered at
    once over its live socket, or when it next connects or reports."""
    tenant = shop_for(admin, loja)
    machine = _machine(maquina, required=False)
    strategy = _strategy(estrategia)
    service = _service(request, tenant)
    ids = await run_in_threadpool(service.request_reconcile, machine, strategy, admin.username)
    return _done(request, tenant, commands=list(ids), strategy=strategy)


@router.post("/esquecer")
async def forget_pdv(
    request: Request,
    maquina: str = Form(""),
    loja: str = Form(""),
    admin: Admin = Depends(require_csrf),
) -> Response:
    """Forget a retired PDV (`machines forget`): its cursor, reports and commands."""
    tenant = shop_for(admin, loja)
    machine = _machine(maquina, required=True)
    service = _service(request, tenant)
    forgotten = await run_in_threadpool(service.forget_machine, machine)
    if forgotten is False:
        raise ProtocolError("unknown_machine", f"PDV desconhecido: {machine}", status=404)
    return _done(request, tenant, machineId=machine)


@router.post("/chaves/emitir")
async def issue_key(
    request: Request,
    maquina: str = Form(""),
    loja: str = Form(""),
    admin: Admin = Depends(require_csrf),
) -> Response:
    """A new key for a PDV of the shop: the only time it is ever shown."""
    tenant = shop_for(admin, loja)
    machine = _machine(maquina, required=True)
    key_id, key = await run_in_threadpool(_state(request).keys.issue, machine, tenant)
    _state(request).hub.panel_events.notify(tenant, "keys")  # other open pages list it
    if wants_json(request):
        return _done(request, tenant, id=key_id, machineId=machine, key=key)
    return render(
        request,
        "key_issued.html",
        {
            "admin": admin,
            "tenant": tenant,
            "machine": machine,
            "key_id": key_id,
            "key": key,
            "back": _back(tenant),
        },
    )


@router.post("/chaves/revogar")
async def revoke_key(
    request: Request,
    chave: str = Form(""),
    loja: str = Form(""),
    admin: Admin = Depends(require_csrf),
) -> Response:
    """Revoke a key of the shop (a key of another shop is not found here: 404)."""
    tenant = shop_for(admin, loja)
    try:
        key_id = int(chave)
    except ValueError:
        raise ProtocolError("invalid_key_id", "chave: o número da chave", status=400) from None
    keys = _state(request).keys

    def revoke() -> bool | None:
        mine = any(k["id"] == key_id and k["tenantId"] == tenant for k in keys.list())
        return keys.revoke(key_id) if mine else None

    revoked = await run_in_threadpool(revoke)
    if revoked is None:
        raise ProtocolError("unknown_key", f"Chave nº {key_id} não encontrada.", status=404)
    _state(request).hub.panel_events.notify(tenant, "keys")
    return _done(request, tenant, id=key_id, revoked=revoked)
