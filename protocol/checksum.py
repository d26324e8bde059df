"""Reconcile summaries: count, latest `updatedAt` and an order-independent content checksum.

Each live row has a 64-bit digest of its canonical content (id, every field, updatedAt).
A table's checksum is the sum of its rows' digests modulo 2**64: independent of row order,
cheap to maintain, and a single changed field changes it. Rows also fall into one of
`BUCKETS` buckets by a hash of their id, so two sides can narrow a difference down to the
buckets, and then the rows, that differ.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from .schema import Kind, Table
from .timefmt import to_iso

BUCKETS = 256
_MOD = 2**64


def _canonical(kind: Kind, scale: int, value: Any) -> str:
    if value is None:
        return "~"
    if kind is Kind.DECIMAL:
        return f"{Decimal(value):.{scale}f}"
    return str(value)


def row_digest(table: Table, row: dict[str, Any]) -> int:
    """Unsigned 64-bit digest of a live row's content (Python values, timestamps in ms)."""
    parts = [str(row["id"]), str(row["updatedAt"])]
    parts += [_canonical(f.kind, f.scale, row.get(f.name)) for f in table.fields]
    h = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big")


def to_signed(digest: int) -> int:
    """Unsigned 64-bit -> signed, to fit a BIGINT column."""
    return digest - _MOD if digest >= 2**63 else digest


def bucket_of(row_id: str) -> int:
    return int.from_bytes(hashlib.sha256(row_id.encode("utf-8")).digest()[:4], "big") % BUCKETS


def combine(digests: Iterable[int]) -> str:
    """Order-independent checksum of a set of row digests (signed or unsigned)."""
    return f"{sum(digests) % _MOD:016x}"


def summarize(table: str, rows: Iterable[tuple[int, int]]) -> dict[str, Any]:
    """Summary of live rows given as `(updated_at_ms, digest)` pairs."""
    count = 0
    latest: int | None = None
    total = 0
    for updated_at, digest in rows:
        count += 1
        total += digest
        if latest is None or updated_at > latest:
            latest = updated_at
    return {
        "table": table,
        "count": count,
        "latestUpdatedAt": to_iso(latest),
        "checksum": f"{total % _MOD:016x}",
    }


def bucket_summaries(rows: Iterable[tuple[int, int]]) -> dict[int, dict[str, Any]]:
    """Per-bucket `{count, checksum}` of live rows given as `(bucket, digest)` pairs."""
    acc: dict[int, list[int]] = {}
    for bucket, digest in rows:
        entry = acc.setdefault(int(bucket), [0, 0])
        entry[0] += 1
        entry[1] += digest
    return {b: {"count": c, "checksum": f"{s % _MOD:016x}"} for b, (c, s) in sorted(acc.items())}


def compare_summaries(server: dict[str, Any], client: dict[str, Any]) -> list[str]:
    """Reasons two summaries of one table differ; empty when they agree.

    The client may omit `latestUpdatedAt` or `checksum` (the seed's clients send no checksum).
    """
    reasons = []
    if client.get("count") != server["count"]:
        reasons.append("count")
    if (
        "latestUpdatedAt" in client
        and _norm_iso(client["latestUpdatedAt"]) != server["latestUpdatedAt"]
    ):
        reasons.append("latestUpdatedAt")
    if client.get("checksum") is not None and str(client["checksum"]).lower() != server["checksum"]:
        reasons.append("checksum")
    return reasons


def _norm_iso(value: Any) -> str | None:
    from .timefmt import parse_ms

    if value is None:
        return None
    try:
        return to_iso(parse_ms(value, "latestUpdatedAt"))
    except Exception:
        return str(value)
