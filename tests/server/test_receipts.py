"""A receipt's stored text (`push.receipt_text`) is `dumps(result)` to the byte, whatever the
result: the plain `applied` ones are put together by hand, the others encoded."""

from __future__ import annotations

from protocol import dumps
from protocol.vocabulary import Resolution, ResultStatus
from server.push import PushResult, receipt_text

IDS = ["p1", "pão-ç", 'a"b\\c', "\u2603 snow", "tab\tand\u00e9", "x" * 128]


def test_a_receipt_is_its_result_encoded() -> None:
    results: list[PushResult] = []
    for i, record_id in enumerate(IDS):
        results.append(
            {
                "id": record_id,
                "table": "products",
                "status": ResultStatus.APPLIED,
                "eventId": f"ev-{record_id}",
                "seq": i + 1,
            }
        )
        results.append(
            {
                "id": record_id,
                "table": "supplies",
                "status": ResultStatus.APPLIED,
                "warning": "unknown_record",
                "eventId": "e",
                "seq": 10**12 + i,
            }
        )
        results.append(
            {
                "id": record_id,
                "table": "orders",
                "status": ResultStatus.STALE,
                "resolution": Resolution.STALE,
                "serverUpdatedAt": "2030-01-01T00:00:00.000Z",
                "clientUpdatedAt": "2029-01-01T00:00:00.000Z",
                "eventId": record_id,
            }
        )
    for result in results:
        assert receipt_text(result) == dumps(result)
