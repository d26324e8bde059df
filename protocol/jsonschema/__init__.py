"""JSON Schemas (2020-12, as OpenAPI 3.1 takes them) of the wire contract, derived from the
table declarations in `schema.py`: a column added there changes every schema that carries
its table's records, with no other edit.

Framework-free: both HTTP apps put these in their OpenAPI documents (request bodies through
`openapi_extra`, answers through `responses`), while their routes keep reading bodies with
`envelope.decode_body` and the parsers of `messages.py` (the precise error codes, exact
Decimals). The schemas describe what those parsers accept; the parsers stay the judges.

Every function returns a new dict, so a caller may extend it (the agent adds its own keys).

The schemas live in one module per kind (`values`, `tables`, `envelopes`, `answers`);
import them from here: `from protocol import jsonschema as js`.
"""

from __future__ import annotations

from .answers import (
    bucket_summaries_schema,
    changes_page_schema,
    conflict_schema,
    error_schema,
    json_content,
    mismatch_schema,
    push_result_schema,
    reconcile_answer_properties,
    server_summary_schema,
    success_schema,
    table_page_properties,
)
from .envelopes import (
    SINGLE_EVENT_ACTIONS,
    batch_push_schema,
    client_summary_schema,
    collection_write_schema,
    reconcile_schema,
    request_body,
    single_event_schema,
    table_push_schema,
)
from .tables import (
    any_wire_record_schema,
    record_schema,
    tombstone_schema,
    wire_record_schema,
)
from .values import (
    MAX_EPOCH_MS,
    MIN_EPOCH_MS,
    Schema,
    cursor_schema,
    event_id_schema,
    field_schema,
    id_schema,
    iso_schema,
    machine_id_schema,
    timestamp_schema,
    wire_field_schema,
)

__all__ = [
    "MAX_EPOCH_MS",
    "MIN_EPOCH_MS",
    "SINGLE_EVENT_ACTIONS",
    "Schema",
    "any_wire_record_schema",
    "batch_push_schema",
    "bucket_summaries_schema",
    "changes_page_schema",
    "client_summary_schema",
    "collection_write_schema",
    "conflict_schema",
    "cursor_schema",
    "error_schema",
    "event_id_schema",
    "field_schema",
    "id_schema",
    "iso_schema",
    "json_content",
    "machine_id_schema",
    "mismatch_schema",
    "push_result_schema",
    "reconcile_answer_properties",
    "reconcile_schema",
    "record_schema",
    "request_body",
    "server_summary_schema",
    "single_event_schema",
    "success_schema",
    "table_page_properties",
    "table_push_schema",
    "timestamp_schema",
    "tombstone_schema",
    "wire_field_schema",
    "wire_record_schema",
]
