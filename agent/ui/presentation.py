"""Pure mapping from the engine's status to what the tray shows: icon, title, tooltip lines.

Tested without icons or a screen. Windows cuts tray tooltips at 127 characters, so the
tooltip keeps the essentials; the details window has the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol import parse_ms

from .i18n import tr

ICONS_DIR = Path(__file__).resolve().parent / "icons"
STATES = ("waiting", "syncing", "synced", "divergent", "offline")
TOOLTIP_LIMIT = 127


def state_label(state: str) -> str:
    return {
        "waiting": tr("Aguardando"),
        "syncing": tr("Sincronizando"),
        "synced": tr("Sincronizado"),
        "divergent": tr("Com Divergência"),
        "offline": tr("Offline/Erro"),
    }[state]


def icon_path(state: str) -> Path:
    return ICONS_DIR / f"{state}.svg"


def relative_time(then_ms: int | None, now_ms: int) -> str:
    """'agora', 'há 40 s', 'há 2 min', 'há 3 h', 'há 2 dias' (or 'nunca')."""
    if then_ms is None:
        return tr("nunca")
    seconds = max(0, (now_ms - then_ms) // 1000)
    if seconds < 5:
        return tr("agora")
    if seconds < 60:
        return tr("há {n} s").format(n=seconds)
    if seconds < 3600:
        return tr("há {n} min").format(n=seconds // 60)
    if seconds < 86400:
        return tr("há {n} h").format(n=seconds // 3600)
    days = seconds // 86400
    return tr("há 1 dia") if days == 1 else tr("há {n} dias").format(n=days)


@dataclass(frozen=True)
class Presentation:
    state: str
    title: str  # "PDV Sync — Sincronizado"
    icon: Path
    lines: tuple[str, ...]  # why: pending, last sync, last error, server

    @property
    def tooltip(self) -> str:
        text = "\n".join((self.title, *self.lines))
        return text if len(text) <= TOOLTIP_LIMIT else text[: TOOLTIP_LIMIT - 1] + "…"


def _ms(iso: str | None) -> int | None:
    return parse_ms(iso) if iso else None


def present(status: dict[str, Any], now_ms: int) -> Presentation:
    state = status.get("state", "waiting")
    lines: list[str] = []
    pending = int(status.get("pending") or 0)
    if pending:
        age = status.get("oldestPendingAgeMs")
        oldest = relative_time(now_ms - age, now_ms) if age is not None else ""
        if pending == 1:
            lines.append(tr("1 venda/alteração pendente ({age})").format(age=oldest))
        else:
            lines.append(tr("{n} alterações pendentes, a mais antiga {age}").format(n=pending, age=oldest))
    dead = int(status.get("deadLetters") or 0)
    if dead:
        lines.append(tr("{n} recusada(s) pelo servidor — ver Detalhes").format(n=dead))
    if state == "divergent":
        lines.append(tr("Dados diferentes do servidor — ver Detalhes"))
    if state == "offline" and status.get("lastError"):
        lines.append(tr("Erro: {e}").format(e=status["lastError"]))
    lines.append(tr("Última sincronização: {t}").format(t=relative_time(_ms(status.get("lastSuccessAt")), now_ms)))
    if status.get("server"):
        lines.append(tr("Servidor: {s}").format(s=status["server"]))
    return Presentation(state, f"PDV Sync — {state_label(state)}", icon_path(state), tuple(lines))


def menu_status_line(p: Presentation) -> str:
    """The first, disabled line of the menu: the state and its first reason."""
    return p.title if not p.lines else f"{p.title} · {p.lines[0]}"
