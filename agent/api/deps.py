"""How the loopback routes reach the agent's store and engine: through the app's state, set
once by `create_local_app`, so the routers are plain module-level objects."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from protocol.envelope import DEFAULT_MAX_BODY_BYTES, decode_body

from ..store.store import Store
from ..sync.engine import Engine


async def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def _optional_json_body(request: Request) -> Any:
    """The body's JSON value, or None when there is no body (a bare `POST`): read by the one
    envelope, so a present but bad body is refused like anywhere else."""
    raw = await request.body()
    if not raw.strip():
        return None
    limit = getattr(request.app.state, "max_body_bytes", DEFAULT_MAX_BODY_BYTES)
    return decode_body(raw, max_bytes=limit)


StoreDep = Annotated[Store, Depends(_store)]
EngineDep = Annotated[Engine, Depends(_engine)]
OptionalBody = Annotated[Any, Depends(_optional_json_body)]
