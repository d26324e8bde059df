"""`GET /metrics`: the app's registry in Prometheus text format (OpenMetrics when the
scraper asks for it), for an allowed address or `API_SECRET_KEY` only. Not under /api and
not in the OpenAPI document: it is for the shop's monitoring, not for PDVs."""

from __future__ import annotations

import hmac
import ipaddress

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client.exposition import choose_encoder

from protocol import ProtocolError

from .registry import metrics_of
from .settings import IpNetwork

router = APIRouter()


def presented_key(request: Request) -> str | None:
    """`Authorization: Bearer KEY` (what Prometheus sends) or `x-api-key: KEY`."""
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key") or None


def address_allowed(host: str | None, allow: tuple[IpNetwork, ...]) -> bool:
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # not an IP address (a test client's "testclient", a Unix socket)
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # a dual-stack socket's IPv4 client
    return any(address in network for network in allow)


def check_access(request: Request, allow: tuple[IpNetwork, ...], secret: str | None) -> None:
    """403 unless the request comes from `allow` or carries `secret` (API_SECRET_KEY). A
    machine key is not enough: a PDV has no business reading every shop's figures."""
    key = presented_key(request)
    if secret and key and hmac.compare_digest(key.encode("utf-8"), secret.encode("utf-8")):
        return
    if address_allowed(request.client.host if request.client else None, allow):
        return
    raise ProtocolError(
        "forbidden",
        "/metrics: only from an address in METRICS_ALLOW, or with API_SECRET_KEY "
        "(Authorization: Bearer or x-api-key)",
        status=403,
    )


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    # A plain function: FastAPI runs it in a worker thread, where the scrape-time collector
    # may wait for the database without holding up the event loop.
    settings = request.app.state.sync.settings
    check_access(request, settings.metrics.allow, settings.api_secret_key)
    encoder, content_type = choose_encoder(request.headers.get("accept") or "")
    return Response(encoder(metrics_of(request).registry), headers={"content-type": content_type})
