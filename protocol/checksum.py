"""Reconcile summaries: count, latest `updatedAt` and an order-independent content checksum.

Each live row has a 64-bit digest of its canonical content (id, updatedAt, every non-null
field and undeclared field).
A table's checksum is the sum of its rows' digests modulo 2**64: independent of row order,
cheap to maintain, and a single changed field changes it. Rows also fall into one of
`BUCKETS` buckets by a hash of their id, so two sides can narrow a difference down to the
buckets, and then the rows, that differ.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from decimal import Decimal
from json.encoder import encode_basestring
from typing import Any

from .errors import ProtocolError
from .extras import canonical_json
from .schema import Field, Kind, Table
from .timefmt import parse_ms, to_iso

BUCKETS = 256
_MOD = 2**64


def _canonical(f: Field, value: Any) -> Any:
    """A field's value as the digest sees it, whatever the storage gave back (a boolean read
    from SQLite as 1, a decimal as NUMERIC(18,4) text): what the value means, not its form."""
    if f.kind is Kind.DECIMAL:
        return f"{Decimal(value):.{f.scale}f}"
    if f.kind is Kind.TEXT:
        return str(value)
    if f.kind is Kind.BOOLEAN:
        return bool(value)
    if f.kind is Kind.JSON:
        return canonical_json(value)
    return int(value)  # INTEGER, TIMESTAMP (epoch ms)


def row_digest(table: Table, row: dict[str, Any]) -> int:
    """Unsigned 64-bit digest of a live row's content (Python values, timestamps in ms).

    It covers the id, `updatedAt`, and every field and undeclared field (`_extra`) that is
    not null, as sorted `[name, value]` pairs in one JSON text (unambiguous, whatever the
    values hold). Null fields are left out, so adding a column (null in every row) changes
    no digest.
    """
    if row.get("_extra"):
        return _general_digest(table, row)
    # Without undeclared fields the pairs are the declared fields in name order (names are
    # unique, so sorting the pairs is sorting the names): the same text as the general form,
    # written piece by piece (each pair's JSON made by its field's own function) instead of
    # building the pairs and walking them with the encoder. Every pushed row is digested.
    pairs = ",".join(
        [pair(v) for name, pair in _pair_texts(table) if (v := row.get(name)) is not None]
    )
    text = f"[{_json_str(str(row['id']))},{int(row['updatedAt'])},[{pairs}]]"
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def _general_digest(table: Table, row: dict[str, Any]) -> int:
    pairs = [[f.name, _canonical(f, v)] for f in table.fields if (v := row.get(f.name)) is not None]
    extra = row.get("_extra")
    if extra:
        pairs += [[k, canonical_json(v)] for k, v in extra.items() if v is not None]
    pairs.sort()
    text = _DIGEST_JSON.encode([str(row["id"]), int(row["updatedAt"]), pairs])
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


# One encoder, built once: json.dumps with options builds a new one per call.
_DIGEST_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
# A string as that encoder writes it.
_json_str = encode_basestring

_PAIR_TEXTS: dict[int, tuple[Table, list[tuple[str, Callable[[Any], str]]]]] = {}


def _pair_texts(table: Table) -> list[tuple[str, Callable[[Any], str]]]:
    """(name, value -> the JSON text `_DIGEST_JSON` gives `[name, _canonical(f, value)]`)
    of a table's fields, sorted by name; cached per table (kept with its entry, so its id is
    never reused)."""
    found = _PAIR_TEXTS.get(id(table))
    if found is None:
        found = _PAIR_TEXTS[id(table)] = (
            table,
            [(f.name, _pair_text_of(f)) for f in sorted(table.fields, key=lambda f: f.name)],
        )
    return found[1]


def _pair_text_of(f: Field) -> Callable[[Any], str]:
    head = f"[{_json_str(f.name)},"
    if f.kind is Kind.DECIMAL:
        spec = f".{f.scale}f"  # digits, a sign and a point: nothing to escape
        return lambda value: f'{head}"{format(Decimal(value), spec)}"]'
    if f.kind is Kind.TEXT:
        return lambda value: f"{head}{_json_str(str(value))}]"
    if f.kind is Kind.BOOLEAN:
        return lambda value: f"{head}true]" if value else f"{head}false]"
    if f.kind is Kind.JSON:
        return lambda value: f"{head}{_json_str(canonical_json(value))}]"
    return lambda value: f"{head}{int(value)!r}]"


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


# The reasons of a reconcile mismatch, in the original server's words (the seed's client
# keys its automatic bootstrap on the first two), and ours for a difference only the
# checksum sees.
MISSING_CLIENT_TABLE = "missing_client_table"
COUNT_AND_LATEST = "count_and_latest_updatedAt_mismatch"
COUNT = "count_mismatch"
LATEST = "latest_updatedAt_mismatch"
CHECKSUM = "checksum_mismatch"


def mismatch_reason(
    server: dict[str, Any], client: dict[str, Any] | None
) -> tuple[str | None, bool]:
    """Why a client's summary of one table differs from the server's: (reason or None when
    they agree, whether the checksums differ).

    As the original server: a table the client did not summarise is `missing_client_table`;
    a missing `count` counts as 0. A missing `latestUpdatedAt` is not compared (null is), nor
    a missing checksum (the seed's clients send none). When count or latest differ too, the
    reason is theirs and the checksum difference is only the second value.
    """
    if client is None:
        return MISSING_CLIENT_TABLE, False
    count = client.get("count")
    count_differs = (0 if count is None else count) != server["count"]
    latest_differs = (
        "latestUpdatedAt" in client
        and _norm_iso(client["latestUpdatedAt"]) != server["latestUpdatedAt"]
    )
    checksum = client.get("checksum")
    checksum_differs = checksum is not None and str(checksum).lower() != server["checksum"]
    if count_differs and latest_differs:
        return COUNT_AND_LATEST, checksum_differs
    if count_differs:
        return COUNT, checksum_differs
    if latest_differs:
        return LATEST, checksum_differs
    return (CHECKSUM if checksum_differs else None), checksum_differs


def _norm_iso(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return to_iso(parse_ms(value, "latestUpdatedAt"))
    except ProtocolError:
        return str(value)
