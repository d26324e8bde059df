"""The panel's Portuguese words: strategies, results, tables, durations and times (the badge
states' words are protocol.reports.STATE_LABELS, which the agents report too).

The same words as the tray (agent/ui/presentation.py), which the server may not import:
a manager reads "Sincronizado" on the PDV and on the panel alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from protocol import parse_ms

STRATEGY_LABELS = {
    "none": "só comparar",
    "refresh_mismatched": "corrigir as tabelas divergentes",
    "full_resync": "ressincronização completa",
}
RECONCILE_LABELS = {
    "consistent": "consistente",
    "divergent": "divergente",
    "retry": "inconclusiva (o servidor mudou durante a comparação)",
    "repaired": "reparada",
    "error": "erro",
}
TABLE_LABELS = {
    "products": "Produtos",
    "orders": "Pedidos",
    "order_items": "Itens de pedido",
    "supplies": "Insumos",
    "technical_sheets": "Fichas técnicas",
}
REASON_LABELS = {
    "count": "quantidade de registros",
    "latestUpdatedAt": "última alteração",
    "latest_updatedAt": "última alteração",
    "count_and_latest_updatedAt": "quantidade e última alteração",
    "checksum": "conteúdo",
    "missing_client_table": "tabela ausente no PDV",
}
# The agent's error codes (agent/sync/errors.py), in the tray's words, shortened.
ERROR_LABELS = {
    "unreachable": "servidor inacessível",
    "timeout": "servidor não respondeu a tempo",
    "network": "erro de rede",
    "server_unavailable": "servidor indisponível",
    "server_busy": "servidor ocupado: as vendas aguardam no PDV",
    "auth_refused": "chave de API recusada",
    "key_of_other_machine": "a chave de API pertence a outro PDV",
    "database_changed": "o servidor voltou com outro banco de dados",
    "tenant_changed": "o PDV tem dados de outra loja",
    "tenant_forbidden": "a chave de API pertence a outra loja",
    "tenant_refused": "o servidor recusou a loja configurada",
    "server_refused": "o servidor recusou o envio",
    "request_refused": "o servidor recusou o pedido",
    "resync_required": "o servidor pediu uma ressincronização completa",
    "server_moved": "o servidor mudou durante a comparação",
    "part_of_refused_sale": "parte de uma venda recusada",
    "unexpected": "erro inesperado",
}


def ms_of(value: Any) -> int | None:
    """Epoch milliseconds from an int or an ISO 8601 text (None when absent or unreadable)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str) and value:
        try:
            return parse_ms(value)
        except (ValueError, TypeError):
            return None
    return None


def pdv_name(machine_id: str) -> str:
    return f"O PDV «{machine_id}»"


def plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def duration(ms: int) -> str:
    """'40 s', '7 min', '2 h 5 min', '3 dias'."""
    seconds = max(0, int(ms) // 1000)
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    return f"{hours // 24} dias"


def relative_time(then_ms: int | None, now_ms: int) -> str:
    """'agora', 'há 40 s', 'há 2 min', 'há 3 h', 'há 2 dias' (or 'nunca'), as the tray says."""
    if then_ms is None:
        return "nunca"
    seconds = max(0, (now_ms - then_ms) // 1000)
    if seconds < 5:
        return "agora"
    if seconds < 60:
        return f"há {seconds} s"
    if seconds < 3600:
        return f"há {seconds // 60} min"
    if seconds < 86400:
        return f"há {seconds // 3600} h"
    days = seconds // 86400
    return "há 1 dia" if days == 1 else f"há {days} dias"


def seconds_text(ms: float) -> str:
    """'1,5 s' (a Portuguese decimal comma)."""
    return f"{abs(ms) / 1000:.1f}".replace(".", ",") + " s"


def clock_text(offset_ms: Any) -> str:
    """The PDV's clock against the server's (clockOffsetMs = server - PDV)."""
    if not isinstance(offset_ms, int | float) or isinstance(offset_ms, bool):
        return "desconhecido"
    if abs(offset_ms) < 500:
        return f"certo ({seconds_text(offset_ms)} de diferença)"
    way = "atrasado" if offset_ms > 0 else "adiantado"
    if abs(offset_ms) >= 60_000:
        return f"{duration(abs(int(offset_ms)))} {way}"
    return f"{seconds_text(offset_ms)} {way}"


def table_label(name: Any) -> str:
    return TABLE_LABELS.get(str(name), str(name))


def mismatch_text(mismatch: Any) -> str:
    """'Produtos (quantidade de registros)' from `{"table": "products", "reason": ...}`."""
    if not isinstance(mismatch, dict):
        return str(mismatch)
    reasons: list[str] = []
    for code in str(mismatch.get("reason") or "").split(","):
        key = code.strip().removesuffix("_mismatch")
        if key:
            word = REASON_LABELS.get(key, key)
            if word not in reasons:
                reasons.append(word)
    table = table_label(mismatch.get("table"))
    return f"{table} ({', '.join(reasons)})" if reasons else table


def table_list(mismatches: Iterable[Any] | None) -> str:
    """The divergent tables of a reconcile, in the manager's words."""
    if not mismatches:
        return ""
    return "; ".join(mismatch_text(m) for m in mismatches)


def error_text(code: Any, detail: Any) -> str:
    """A PDV's last error in the manager's words: those of its code; the detail the PDV gave
    (often technical English) only when the code is one this side has no words for."""
    words = ERROR_LABELS.get(str(code)) if code else None
    return words or (str(detail) if detail else "")
