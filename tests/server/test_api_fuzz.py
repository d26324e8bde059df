"""A schema-driven fuzz of the server's HTTP API: schemathesis reads a REAL server's own
/openapi.json (a process on 127.0.0.1, both backends) and sends every operation data that
fits its schema and data that does not. Nothing may answer 5xx or a status the operation
does not document, and every answer must match its documented body.

Derandomized and bounded, so a failure reproduces and a run takes seconds per backend
(FUZZ_EXAMPLES=100 for a deeper run by hand).
"""

from __future__ import annotations

import os
from collections import Counter

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis")

import requests  # noqa: E402 - installed with schemathesis
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from protocol.headers import DATABASE_HEADER  # noqa: E402

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Examples per operation and mode.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))
KNOWN = "known-1"


def test_the_api_answers_only_what_it_documents(server_factory, database_url):
    server = server_factory(database_url=database_url)
    # A known record in every table: the record routes also get a pass on it, so they are
    # fuzzed past their 404 (reads, updates, deletes of a record that exists).
    with httpx.Client(base_url=server.url, timeout=10) as c:
        for table in ("products", "orders", "order_items", "supplies", "technical_sheets"):
            body = {"localUpdates": [{"eventId": f"seed-{table}", "record": {"id": KNOWN}}]}
            r = c.post(f"/api/sync/{table}", json=body)
            assert r.status_code == 200
    # The database identity header, when generated, is random: every request would stop at
    # its 409 before the route runs. Sent right, the routes themselves get fuzzed.
    identity = {DATABASE_HEADER: r.headers[DATABASE_HEADER]}
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    schema.config.update(base_url=server.url)
    operations = [result.ok() for result in schema.get_all_operations()]
    session = requests.Session()
    failures: list[str] = []
    seen: Counter[str] = Counter()
    statuses: Counter[int] = Counter()

    def fuzz(operation, mode: GenerationMode, **fixed) -> None:
        @given(case=operation.as_strategy(generation_mode=mode, headers=identity, **fixed))
        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case) -> None:
            response = case.call(session=session, timeout=30)
            seen[case.operation.label] += 1
            statuses[response.status_code] += 1
            case.validate_response(response, checks=CHECKS)

        try:
            run()
        except Unsatisfiable:
            # Negative data for an operation whose only inputs are strings of the path or
            # headers: there is nothing invalid to send.
            assert mode is GenerationMode.NEGATIVE, operation.label
        except Exception as exc:  # every failing operation is reported, not just the first
            failures.append(f"{operation.label} ({mode.value} {fixed}): {exc}"[:3000])

    for operation in operations:
        modes = [GenerationMode.POSITIVE]
        if list(operation.query) or list(operation.body):
            modes.append(GenerationMode.NEGATIVE)  # else unsatisfiable (see above), and slow
        for mode in modes:
            fuzz(operation, mode)
        if "{row_id}" in operation.path:
            fuzz(operation, GenerationMode.POSITIVE, path_parameters={"row_id": KNOWN})
    session.close()
    assert not failures, "\n\n".join(failures)
    # Every operation was called, and the fuzz got past validation as well as into it.
    assert set(seen) == {op.label for op in operations}
    assert statuses[200] > 100 and statuses[422] > 50, statuses
    assert server.proc is not None and server.proc.poll() is None  # still serving
