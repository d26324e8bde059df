"""How the operational checks (server/checks.py) run: a thin JSON client that turns every
failure into a one-line reason, one printed line per check (✓/✗, plain marks on a console
without UTF-8), and the exit code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from protocol.tenancy import TENANT_HEADER

_MARKS = {True: ("✓", "[ok]"), False: ("✗", "[FAIL]")}


class CheckFailed(Exception):
    """One check failed; the message is the short reason printed after ✗."""


class Unreachable(CheckFailed):
    """The server cannot be reached or refuses our key: later checks would fail the same way."""


def say(ok: bool, name: str, reason: str) -> None:
    mark, plain = _MARKS[ok]
    line = f"{mark} {name}: {reason}"
    try:
        print(line, flush=True)
    except UnicodeEncodeError:  # a Windows console without UTF-8
        print(f"{plain} {name}: {reason}", flush=True)


class Api:
    """A thin JSON client that turns every failure into a one-line reason."""

    def __init__(
        self, url: str, api_key: str | None, timeout: float, tenant: str | None = None
    ) -> None:
        self.url = url.rstrip("/")
        headers = {"x-api-key": api_key} if api_key else {}
        if tenant:
            headers[TENANT_HEADER] = tenant
        self.client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        self.has_key = bool(api_key)

    def close(self) -> None:
        self.client.close()

    def call(
        self, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kw: Any
    ) -> tuple[int, Any]:
        try:
            r = self.client.request(method, path, **kw)
        except httpx.ConnectError as exc:
            raise Unreachable(
                f"cannot connect to {self.url} ({_reason(exc)}): is the server running?"
            ) from None
        except httpx.TimeoutException:
            raise Unreachable(f"{self.url} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise Unreachable(f"{method} {path}: {_reason(exc)}") from None
        if r.status_code == 401:
            hint = "wrong x-api-key" if self.has_key else "the server requires x-api-key"
            raise Unreachable(
                f"401 unauthorized on {path}: {hint} (use --api-key or API_SECRET_KEY)"
            )
        try:
            body = r.json()
        except ValueError:
            body = None
        if r.status_code not in ok:
            error = body.get("error") if isinstance(body, dict) else None
            raise CheckFailed(
                f"{method} {path} answered {r.status_code}" + (f": {error}" if error else "")
            )
        if not isinstance(body, dict):
            raise CheckFailed(f"{method} {path}: the answer is not a JSON object")
        return r.status_code, body


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if "refused" in text.lower():
        return "connection refused"
    return text.splitlines()[0][:120]


def run_checks(
    url: str,
    api_key: str | None,
    checks: list[tuple[str, Callable[[], str]]],
    cleanup: Callable[[], str | None] | None = None,
) -> int:
    failed = 0
    try:
        for name, check in checks:
            try:
                say(True, name, check())
            except Unreachable as exc:
                say(False, name, str(exc))
                failed += 1
                break  # the other checks would fail the same way
            except CheckFailed as exc:
                say(False, name, str(exc))
                failed += 1
    finally:
        if cleanup is not None:
            try:
                done = cleanup()
                if done:
                    say(True, "cleanup", done)
            except CheckFailed as exc:
                say(False, "cleanup", str(exc))
                failed += 1
    print(f"{'All checks passed' if not failed else 'FAILED'} ({url})", flush=True)
    return 0 if not failed else 1


def expect(condition: bool, reason: str) -> None:
    if not condition:
        raise CheckFailed(reason)
