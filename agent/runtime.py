"""Composition root of the agent: config -> store -> engine -> loopback API.

Used by the command line (headless), by the tray (issue 4) and by `agent.embed.SyncClient`.
"""

from __future__ import annotations

import logging
import logging.handlers
import threading
from dataclasses import replace
from pathlib import Path

import uvicorn

from .api import create_local_app
from .config import AgentConfig, generated_machine_id
from .instance import InstanceLock
from .loopback import LoopbackGuard, parse_origins
from .loopback_server import LoopbackServer
from .memory import TrimAfterWork
from .secrets import get_api_key
from .store.store import Store
from .sync.engine import Engine

log = logging.getLogger(__name__)


def configure_logging(log_dir: Path, *, verbose: bool = False, console: bool = True) -> Path:
    """A rotating log file in the platform log folder (and the console when there is one)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / "agent.log"
    handlers: list[logging.Handler] = [
        logging.handlers.RotatingFileHandler(
            path, maxBytes=2_000_000, backupCount=5, encoding="utf-8"
        )
    ]
    if console:
        handlers.append(logging.StreamHandler())
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    for noisy in ("peewee", "httpx", "httpcore", "websockets", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return path


class AgentRuntime:
    def __init__(
        self,
        config: AgentConfig,
        *,
        api_key: str | None = None,
        clock_skew_ms: int | None = None,
    ) -> None:
        self.data_dir = config.resolved_data_dir()
        self.lock = InstanceLock(self.data_dir).acquire()
        try:
            self.store = Store(self.data_dir / "agent.db")
        except Exception:
            self.lock.release()
            raise
        machine_id = config.machine_id or self.store.get_state("machine_id")
        if not machine_id:
            machine_id = generated_machine_id()
        self.store.set_state("machine_id", machine_id)
        # The engine takes the agent's settings as they are (AgentConfig is SyncSettings).
        key = api_key if api_key is not None else get_api_key()
        self.config = replace(config, machine_id=machine_id, api_key=key)
        if clock_skew_ms is not None:  # test hook (see agent/cli.py)
            self.config = replace(self.config, clock_skew_ms=clock_skew_ms)
        self.engine = Engine(self.store, self.config)
        # What a burst of sync work freed goes back to the OS once it is over (issue 12).
        self.trim = TrimAfterWork()
        self.engine.add_listener(self.trim.on_status)
        self.engine.add_heartbeat(self.trim.on_heartbeat)
        self._server: uvicorn.Server | None = None
        self._server_thread: threading.Thread | None = None

    def start(self, *, serve_api: bool = True) -> None:
        self.engine.start()
        if serve_api:
            app = LoopbackGuard(
                create_local_app(self.store, self.engine),
                extra_origins=parse_origins(self.config.cors_origins),
            )
            config = uvicorn.Config(
                app,
                host="127.0.0.1",
                port=self.config.local_port,
                log_level="warning",
                access_log=False,
                lifespan="off",
                # Nothing stands in front of the loopback: no X-Forwarded-* to honour.
                proxy_headers=False,
            )
            self._server = LoopbackServer(config)  # uvicorn, without its idle tick
            # The caller owns signals (uvicorn's stubs do not declare this hook).
            self._server.install_signal_handlers = lambda: None  # type: ignore[attr-defined]
            self._server_thread = threading.Thread(
                target=self._serve_api, name="loopback-api", daemon=True
            )
            self._server_thread.start()
            for _ in range(200):
                if self._server.started or not self._server_thread.is_alive():
                    break
                threading.Event().wait(0.025)
            if not self._server.started:
                self.stop()
                raise OSError(
                    f"could not listen on 127.0.0.1:{self.config.local_port} (port in use?)"
                )
            log.info("loopback API on http://127.0.0.1:%s", self.bound_port)

    def _serve_api(self) -> None:
        # uvicorn ends with SystemExit when it cannot bind; start() reports that instead.
        try:
            assert self._server is not None
            self._server.run()
        except SystemExit:
            pass

    @property
    def bound_port(self) -> int:
        if self._server and self._server.servers:
            for server in self._server.servers:
                for sock in server.sockets:
                    return sock.getsockname()[1]
        return self.config.local_port

    def stop(self) -> None:
        """Stop taking writes, finish the current push, close everything."""
        # Front ends waiting on `GET /api/sync/watch` are answered now: the server's shutdown
        # waits for every request in flight.
        self.store.changes.close()
        if self._server is not None:
            self._server.should_exit = True
            if self._server_thread:
                self._server_thread.join(10)
        self.engine.stop()
        self.store.close()
        self.lock.release()
