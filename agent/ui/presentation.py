"""Pure mapping from the engine's status to what the tray shows: icon, title, tooltip lines.

Tested without icons or a screen. Windows cuts tray tooltips at 127 characters, so the
tooltip keeps the essentials; the details window has the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.sync.errors import SyncError, split_failure, tenant_changed_shops
from protocol import parse_ms
from protocol.tenancy import DEFAULT_TENANT

from .i18n import tr

if TYPE_CHECKING:
    from agent.sync.monitor import ConnectionReport

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


def _error_templates() -> dict[SyncError, str]:
    """A sync error's words per code; `{e}` is the sync layer's detail (the server's or the
    network's own words), where it says more than the code."""
    return {
        SyncError.UNREACHABLE: tr("servidor inacessível (conexão recusada ou rede indisponível)"),
        SyncError.TIMEOUT: tr("servidor não respondeu a tempo"),
        SyncError.NETWORK: tr("erro de rede ({e})"),
        SyncError.SERVER_UNAVAILABLE: tr("servidor indisponível ({e})"),
        SyncError.SERVER_BUSY: tr(
            "servidor ocupado: as vendas aguardam neste PDV e serão enviadas em seguida ({e})"
        ),
        SyncError.AUTH_REFUSED: tr("chave de API recusada: {e}"),
        SyncError.KEY_OF_OTHER_MACHINE: tr(
            "chave de API recusada: a chave de API pertence a outro PDV; use a chave emitida "
            "para este nome de PDV"
        ),
        SyncError.DATABASE_CHANGED: tr(
            "o servidor voltou com outro banco de dados; sincronização suspensa, as vendas "
            "ficam guardadas neste PDV (se a troca foi intencional: Forçar reconciliação)"
        ),
        SyncError.TENANT_CHANGED: tr(
            "este PDV tem dados de outra loja do que a configurada; sincronização parada, as "
            "vendas ficam guardadas neste PDV ({e})"
        ),
        SyncError.TENANT_FORBIDDEN: tr(
            "chave de API recusada: a chave pertence a outra loja; use a chave emitida para "
            "a loja deste PDV ({e})"
        ),
        SyncError.TENANT_REFUSED: tr("o servidor recusou a loja configurada: {e}"),
        SyncError.SERVER_REFUSED: tr("servidor recusou o envio: {e}"),
        SyncError.REQUEST_REFUSED: tr("servidor recusou o pedido: {e}"),
        SyncError.RESYNC_REQUIRED: tr("o servidor pediu uma ressincronização completa: {e}"),
        SyncError.SERVER_MOVED: tr("o servidor mudou durante a comparação; tente novamente"),
        SyncError.PART_OF_REFUSED_SALE: tr("parte de uma venda recusada pelo servidor"),
        SyncError.UNEXPECTED: tr("erro inesperado: {e}"),
    }


_ERROR_CODES = frozenset(code.value for code in SyncError)


def error_text(code: str | None, detail: str | None) -> str | None:
    """A sync error in the manager's words, from its code (`lastErrorCode`, `errorCode`) and
    English detail; without a code, from a text the sync layer stored (`"<code>: <detail>"`).
    Anything else (a server's message, an older version's text) is shown as it is."""
    if code is None:
        code, detail = split_failure(detail)
    if code is None or code not in _ERROR_CODES:
        return detail
    if code == SyncError.TENANT_CHANGED and (shops := tenant_changed_shops(detail)):
        return tr(
            "este PDV tem dados da loja {held}; configurado para a loja {configured}. "
            "Sincronização parada, as vendas ficam guardadas neste PDV: volte a configurar a "
            "loja {held}, ou separe a pasta de dados para começar do zero na loja {configured}"
        ).format(held=shops[0], configured=shops[1])
    return _error_templates()[SyncError(code)].format(e=detail or "?")


def shop_label(tenant: str | None) -> str:
    """A shop as the manager reads it: its id, the default shop named as such."""
    if not tenant:
        return tr("nenhuma ainda")
    if tenant == DEFAULT_TENANT:
        return tr("padrão ({t})").format(t=tenant)
    return tenant


def connection_text(report: ConnectionReport) -> str:
    """What the settings window's connection test found, in the manager's words."""
    outcome = report.outcome
    if outcome == "ok":
        if report.clock_offset_ms is None:
            return tr("Conexão OK, chave aceita")
        return tr("Conexão OK, chave aceita; diferença de relógio: {s:+.1f} s").format(
            s=report.clock_offset_ms / 1000
        )
    if outcome == "unreachable":
        return tr("Servidor inacessível: {e}").format(e=report.detail)
    if outcome == "key_refused":
        return tr("Servidor acessível, mas a chave de API foi recusada")
    if outcome == "http_error":
        return tr("Servidor respondeu com erro {e}").format(e=report.detail)
    return tr("O endereço não responde como um servidor PDV Sync")


def icon_path(state: str) -> Path:
    """The badge's drawing (its source)."""
    return ICONS_DIR / f"{state}.svg"


# What the tray loads: the drawing rendered at the sizes trays ask for
# (scripts/render_icons.py). A PNG needs no SVG engine in the process (issue 12).
ICON_SIZES = (16, 20, 24, 32, 48, 64)


def icon_files(state: str) -> dict[int, Path]:
    return {size: ICONS_DIR / f"{state}-{size}.png" for size in ICON_SIZES}


def relative_time(then_ms: int | None, now_ms: int, *, seconds: bool = True) -> str:
    """'agora', 'há 40 s', 'há 2 min', 'há 3 h', 'há 2 dias' (or 'nunca'). Without
    `seconds`, 'há menos de 1 min' instead of the seconds: a text that stays true for a
    minute (the tray's tooltip, refreshed only when its text changes)."""
    if then_ms is None:
        return tr("nunca")
    age = max(0, (now_ms - then_ms) // 1000)
    if age < 5:
        return tr("agora")
    if age < 60:
        return tr("há {n} s").format(n=age) if seconds else tr("há menos de 1 min")
    if age < 3600:
        return tr("há {n} min").format(n=age // 60)
    if age < 86400:
        return tr("há {n} h").format(n=age // 3600)
    days = age // 86400
    return tr("há 1 dia") if days == 1 else tr("há {n} dias").format(n=days)


def next_text_change(then_ms: int | None, now_ms: int) -> int | None:
    """ms until `relative_time(then_ms, ..., seconds=False)` says something else (None:
    never, it says 'nunca')."""
    if then_ms is None:
        return None
    age = max(0, now_ms - then_ms)
    if age < 5_000:
        return 5_000 - age
    # Then every minute for an hour, every hour for a day, every day.
    unit = 60_000 if age < 3_600_000 else 3_600_000 if age < 86_400_000 else 86_400_000
    return unit - age % unit


@dataclass(frozen=True)
class Presentation:
    state: str
    title: str  # "PDV Sync — Sincronizado"
    icon: Path
    lines: tuple[str, ...]  # why: pending, refused, divergence, last error; then last sync, server
    reasons: int = 0  # how many of `lines` are reasons (those may be shortened; the rest may not)

    @property
    def tooltip(self) -> str:
        """Title and reasons, most important first, within the limit: whole lines while they
        fit; a line that does not is shortened if there is room for its gist, else left out
        (the details window has everything)."""
        kept = [self.title]
        for n, line in enumerate(self.lines):
            room = TOOLTIP_LIMIT - len("\n".join(kept)) - 1
            if len(line) <= room:
                kept.append(line)
            elif n < self.reasons and room >= _GIST:  # a cut address or time would say nothing
                kept.append(line[: room - 1] + "…")
                break
        return "\n".join(kept)


_GIST = 24  # characters worth showing of a shortened line


def _ms(iso: str | None) -> int | None:
    return parse_ms(iso) if iso else None


def present(status: dict[str, Any], now_ms: int, *, seconds: bool = True) -> Presentation:
    """`seconds`: ages under a minute in seconds (see `relative_time`)."""
    state = status.get("state", "waiting")
    lines: list[str] = []
    pending = int(status.get("pending") or 0)
    if pending:
        age = status.get("oldestPendingAgeMs")
        oldest = relative_time(now_ms - age, now_ms, seconds=seconds) if age is not None else ""
        if pending == 1:
            lines.append(tr("1 venda/alteração pendente ({age})").format(age=oldest))
        else:
            lines.append(
                tr("{n} alterações pendentes, a mais antiga {age}").format(n=pending, age=oldest)
            )
    dead = int(status.get("deadLetters") or 0)
    if dead:
        lines.append(tr("{n} recusada(s) pelo servidor — ver Detalhes").format(n=dead))
    if state == "divergent" and status.get("reconcileDivergent", not dead):
        lines.append(tr("Dados diferentes do servidor — ver Detalhes"))
    error = error_text(status.get("lastErrorCode"), status.get("lastError"))
    if state == "offline" and error:
        lines.append(tr("Erro: {e}").format(e=error))
    reasons = len(lines)
    lines.append(
        tr("Última sincronização: {t}").format(
            t=relative_time(_ms(status.get("lastSuccessAt")), now_ms, seconds=seconds)
        )
    )
    if status.get("server"):
        lines.append(tr("Servidor: {s}").format(s=status["server"]))
    return Presentation(
        state, f"PDV Sync — {state_label(state)}", icon_path(state), tuple(lines), reasons
    )


def menu_status_line(p: Presentation) -> str:
    """The first, disabled line of the menu: the state and its first reason."""
    return p.title if not p.lines else f"{p.title} · {p.lines[0]}"


TABLE_LABELS = {
    "products": "Produtos",
    "orders": "Pedidos",
    "order_items": "Itens de pedido",
    "supplies": "Insumos",
    "technical_sheets": "Fichas técnicas",
}
OP_LABELS = {"upsert": "gravação", "increment": "ajuste de estoque", "delete": "exclusão"}
# A reconcile reason's words: the seed's reason words (issue 10) and the older
# comma-separated ones ("count_mismatch, checksum_mismatch"), a reason naming several facts
# shown as each of them.
_REASON_LABELS = {
    "count": ("quantidade de registros",),
    "latestUpdatedAt": ("última alteração",),
    "latest_updatedAt": ("última alteração",),
    "count_and_latest_updatedAt": ("quantidade de registros", "última alteração"),
    "checksum": ("conteúdo",),
    "missing_client_table": ("tabela ausente neste PDV",),
}


def table_label(name: str | None) -> str:
    return tr(TABLE_LABELS[name]) if name in TABLE_LABELS else str(name)


def op_label(op: str | None) -> str:
    return tr(OP_LABELS[op]) if op in OP_LABELS else str(op)


def mismatch_line(mismatch: dict[str, Any]) -> str:
    """'Tabela Produtos: diferem quantidade de registros, conteúdo' from the server's
    `{"table": "products", "reason": "count_mismatch", "checksumMismatch": true}` (or an
    older server's `"count_mismatch, checksum_mismatch"`)."""
    reasons: list[str] = []
    codes = [code.strip() for code in str(mismatch.get("reason") or "").split(",")]
    if mismatch.get("checksumMismatch"):
        codes.append("checksum_mismatch")
    for code in codes:
        key = code.removesuffix("_mismatch")
        words = [tr(w) for w in _REASON_LABELS[key]] if key in _REASON_LABELS else [code]
        reasons += [w for w in words if w and w not in reasons]
    return tr("Tabela {t}: diferem {r}").format(
        t=table_label(mismatch.get("table")), r=", ".join(reasons) or "?"
    )


def repair_lines(repair: dict[str, Any] | None, limit: int = 20) -> list[str]:
    """What a repair did, table by table, with the rows it fixed and removed."""
    lines: list[str] = []
    for t in (repair or {}).get("tables") or []:
        if isinstance(t, dict):
            fixed, removed = t.get("fixed", []), t.get("removed", [])
            lines.append(
                tr("Reparo em {t}: {f} corrigido(s), {r} removido(s)").format(
                    t=table_label(t.get("table")), f=len(fixed), r=len(removed)
                )
            )
            lines += [tr("  corrigido: {i}").format(i=row_id) for row_id in fixed[:limit]]
            lines += [tr("  removido: {i}").format(i=row_id) for row_id in removed[:limit]]
            if len(fixed) > limit or len(removed) > limit:
                lines.append(
                    tr("  … e mais {n}").format(
                        n=max(0, len(fixed) - limit) + max(0, len(removed) - limit)
                    )
                )
        else:  # full resync: the names of the tables downloaded again
            lines.append(tr("Ressincronização completa: {t}").format(t=table_label(t)))
    return lines
