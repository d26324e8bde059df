"""A schema-driven fuzz of a REAL agent's loopback API: schemathesis reads the agent's own
/openapi.json and sends every operation data that fits its schema and data that does not.
Nothing may answer 5xx or a status the operation does not document, and every answer must
match its documented body. Derandomized and bounded, so a failure reproduces and the run
stays well under a minute (about 30 s; FUZZ_EXAMPLES=100 for a deeper run by hand).

No operation is excluded: even `full_resync` and "sync now" leave the agent serving."""

from __future__ import annotations

import os
from collections import Counter

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from protocol.schema import TABLES
from tests.agent_e2e.conftest import push, wait_until

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Examples per operation and mode (45 operations, positive and negative data).
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12"))
KNOWN = "known-1"


def test_the_loopback_api_answers_only_what_it_documents(server, agent_factory):
    agent = agent_factory(server, "caixa-1")
    # A known record in every table: the record routes also get a pass on it, so they are
    # fuzzed past their 404 (reads, patches, deletes of a record that exists).
    for table in TABLES:
        push(agent, table, {"id": KNOWN})
    wait_until(lambda: agent.status()["pending"] == 0)
    schema = schemathesis.openapi.from_url(f"{agent.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 45, [op.label for op in operations]
    session = requests.Session()
    failures: list[str] = []
    seen: Counter[str] = Counter()
    statuses: Counter[int] = Counter()

    def fuzz(operation, mode: GenerationMode, **fixed) -> None:
        @given(case=operation.as_strategy(generation_mode=mode, **fixed))
        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case) -> None:
            response = case.call_and_validate(session=session, checks=CHECKS, timeout=60)
            seen[case.operation.label] += 1
            statuses[response.status_code] += 1

        try:
            run()
        except Unsatisfiable:
            # Negative data for an operation that takes anything (no parameter, or a free
            # string in the path): there is nothing invalid to send.
            assert mode is GenerationMode.NEGATIVE, operation.label
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collect them all
            failures.append(f"{operation.label} ({mode.value} {fixed}): {exc}"[:3000])

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz(operation, mode)
        if "{row_id}" in operation.path:
            fuzz(operation, GenerationMode.POSITIVE, path_parameters={"row_id": KNOWN})
    session.close()
    assert not failures, "\n\n".join(failures)
    # Every operation was called, and the fuzz got past validation as well as into it.
    assert set(seen) == {op.label for op in operations}
    assert statuses[200] > 100 and statuses[422] > 100, statuses
    assert agent.alive
