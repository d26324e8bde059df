"""How long requests take: an ASGI middleware that observes each request in the histogram of
its route's module (the push routes' in one, the pull routes' in another), labelled by the
route's template (`/api/sync/{table}`), never by the path a client typed, so the number of
series stays bounded."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from prometheus_client import Histogram


class RequestTiming:
    """ASGI middleware; `by_module`: the module of a route's endpoint -> its histogram.
    Requests of other routes, and those refused before routing, are not observed."""

    def __init__(self, app: Any, *, by_module: Mapping[str, Histogram]) -> None:
        self.app = app
        self.by_module = dict(by_module)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            # The router leaves the route it matched in the scope (Starlette, FastAPI).
            route = scope.get("route")
            endpoint = getattr(route, "endpoint", None)
            histogram = self.by_module.get(getattr(endpoint, "__module__", None) or "")
            path = getattr(route, "path", None)
            if histogram is not None and isinstance(path, str):
                histogram.labels(path).observe(time.perf_counter() - started)
