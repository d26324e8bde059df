"""The wire contract shared by the server and the agent: tables, records, summaries, errors."""

from .checksum import (
    BUCKETS,
    bucket_of,
    bucket_summaries,
    combine,
    mismatch_reason,
    row_digest,
    summarize,
    to_signed,
)
from .errors import ProtocolError
from .records import (
    Change,
    Op,
    default_row,
    dumps,
    from_wire,
    loads,
    parse_change,
    parse_id,
    to_wire,
)
from .schema import ENTITIES, TABLE_NAMES, TABLES, Field, Kind, Table
from .timefmt import now_ms, parse_ms, to_iso

__all__ = [
    "BUCKETS",
    "ENTITIES",
    "TABLE_NAMES",
    "TABLES",
    "Change",
    "Field",
    "Kind",
    "Op",
    "ProtocolError",
    "Table",
    "bucket_of",
    "bucket_summaries",
    "combine",
    "mismatch_reason",
    "default_row",
    "dumps",
    "from_wire",
    "loads",
    "now_ms",
    "parse_change",
    "parse_id",
    "parse_ms",
    "row_digest",
    "summarize",
    "to_iso",
    "to_signed",
    "to_wire",
]
