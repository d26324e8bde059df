"""FastAPI glue shared by the two HTTP apps, the sync server and the agent's loopback API:
the wire JSON response, the body reader and the error handlers, so both answer every bad
input with the same `{success: false, error, code}` 4xx.

Layering: `server → webapi → protocol` and `agent (composition root) → webapi → protocol`.
The agent's store and sync layers never import it; it never imports either app.
"""

from .errors import ERROR_STATUSES, error_answer, error_responses, install_error_handlers
from .responses import WireResponse, json_body, ok, ok_items

__all__ = [
    "ERROR_STATUSES",
    "WireResponse",
    "error_answer",
    "error_responses",
    "install_error_handlers",
    "json_body",
    "ok",
    "ok_items",
]
