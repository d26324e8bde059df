"""What the agent process holds in memory while idle (issue 12: RSS ≤ 80 MB with the tray).

Three things, each measured on an idle tray agent synced with 10,000 products (VmRSS):

- `keep_out_unused()`: third-party packages import some modules only when they happen to be
  installed — peewee imports psycopg (PostgreSQL), httpx its command line (rich, pygments),
  uvicorn uvloop and its auto-reloader (watchfiles), FastAPI `pydantic.v1`. The agent uses
  none of them, and the installer's bundle leaves them out (`excluded` in
  installer/pdvsync-agent.spec, kept in step by a test). In a development venv, which has
  them for the server and the dev tools, they cost the agent ~17 MB. Marked absent before
  anything imports them, each package takes its own "not installed" path, as in the bundle.
- `limit_malloc_arenas()`: glibc gives each thread that allocates its own malloc arena
  (up to 8 per core) and keeps what an arena once held; two arenas are plenty for an agent
  whose threads mostly sleep. It must run before the threads start: it is called first
  thing at start-up (mallopt, so no environment variable and no re-exec is needed, in the
  development venv and in the bundle alike).
- `release_freed()` after a burst of work (`TrimAfterWork`): the memory a sync freed goes
  back to the OS instead of staying in the process's heaps (~4 MB after the first sync).

glibc only: on Windows (the PDVs) and macOS these are no-ops; Windows' heap returns freed
memory by itself.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
import time
from collections.abc import Callable
from typing import Any

# Never used by the agent; imported by its dependencies only when present. Each must be an
# optional import there (caught ImportError), which the bundle relies on too.
UNUSED_MODULES = (
    "psycopg",  # peewee's PostgreSQL support
    "psycopg_binary",
    "rich",  # httpx's command line (`httpx` the program)
    "pygments",
    "uvloop",  # uvicorn's loop "auto"; asyncio's own serves the loopback API
    "watchfiles",  # uvicorn's --reload
    "pydantic.v1",  # FastAPI's check for pydantic v1 models
)

_M_ARENA_MAX = -8  # mallopt parameter (malloc.h)


def keep_out_unused(names: tuple[str, ...] = UNUSED_MODULES) -> list[str]:
    """Make `names` unimportable in this process (those not imported yet); the ones done.

    For the agent's own process only (its entry points): a test process that also runs the
    server must keep psycopg."""
    done = []
    for name in names:
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]  # import raises ImportError
            done.append(name)
    return done


@functools.cache
def _glibc() -> Any | None:
    """The C library, loaded once: `ctypes.util.find_library` runs `ldconfig -p` in a child
    process, which cost the engine's thread milliseconds on every trim when done per call."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")  # glibc's soname
    except OSError:  # not glibc: find it the slow way, once
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so")
        except OSError:
            return None
    # musl has neither function: nothing to do there.
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """At most `arenas` malloc arenas for the whole process. Before any thread starts."""
    libc = _glibc()
    return bool(libc is not None and libc.mallopt(_M_ARENA_MAX, arenas) == 1)


def release_freed() -> bool:
    """Give the free memory of malloc's heaps back to the OS (`malloc_trim(0)`)."""
    libc = _glibc()
    return bool(libc is not None and libc.malloc_trim(0))


class TrimAfterWork:
    """Release what a burst of sync work freed, once the work has been quiet for a while.

    `on_status` (an engine status listener) notes the end of a burst (the status no longer
    says `syncingSince`); the trim itself waits for an engine heartbeat (`on_heartbeat`:
    every keep-alive ping answered, every turn of its loop) at least `quiet_s` after that
    end, when the burst's last objects are gone too. A shop selling steadily is not trimmed
    between two sales (the heap would only grow back, page by page); the trim comes with the
    first keep-alive ping of the lull. Both run on the engine's thread, once per lull: no
    timer and no wake-up of their own."""

    def __init__(self, quiet_s: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.quiet_s = quiet_s
        self._clock = clock
        self._busy = False
        self._due = True  # start-up is a burst of its own
        self._ended_at = clock()
        self.trims = 0

    def on_status(self, status: dict[str, Any]) -> None:
        busy = bool(status.get("syncingSince"))
        if self._busy and not busy:
            self._due = True
            self._ended_at = self._clock()
        self._busy = busy

    def on_heartbeat(self) -> None:
        if self._due and not self._busy and self._clock() - self._ended_at >= self.quiet_s:
            self._due = False
            if release_freed():
                self.trims += 1


def lean_process() -> None:
    """First thing in the agent's own process (`python -m agent`, the bundle's entry)."""
    keep_out_unused()
    limit_malloc_arenas()
