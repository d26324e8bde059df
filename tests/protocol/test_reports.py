"""PDV reports and commands on the wire (protocol/reports.py): what is taken, what is cut,
what is refused, and the commands' two forms."""

from __future__ import annotations

import pytest

from protocol import ProtocolError
from protocol.reports import (
    COMMAND_RESULTS_MAX,
    MISMATCHES_MAX,
    STATE_LABELS,
    TEXT_MAX,
    Command,
    CommandKind,
    parse_command,
    parse_report,
)
from protocol.vocabulary import DivergenceStrategy

FULL = {
    "machineId": "caixa-1",
    "tenantId": "loja-a",
    "state": "divergent",
    "label": "Com Divergência",
    "pending": 4,
    "oldestPendingAgeMs": 120_000,
    "deadLetters": 2,
    "live": True,
    "lastError": "server unreachable",
    "lastErrorCode": "unreachable",
    "lastSuccessAt": "2026-02-11T18:00:00.000Z",
    "clockOffsetMs": -250,
    "cursor": 42,
    "version": "1.4.0",
    "hostname": "CAIXA-01",
    "lastReconcile": {
        "at": 1_770_832_800_000,
        "status": "divergent",
        "strategy": "refresh_mismatched",
        "isConsistent": False,
        "mismatches": [{"table": "products", "reason": "count", "extra": 1}],
        "serverLogId": 7,
        "commandId": "c-1",
    },
    "commandResults": [{"id": "c-1", "status": "divergent", "detail": None}],
}


def refused(body: dict, code: str = "invalid_report") -> str:
    with pytest.raises(ProtocolError) as caught:
        parse_report(body)
    assert caught.value.code == code and caught.value.status == 422
    return caught.value.message


def test_a_full_report_is_read_and_kept_in_its_wire_form():
    report = parse_report(FULL)
    assert report.wire() == {
        "machineId": "caixa-1",
        "state": "divergent",
        "label": "Com Divergência",
        "pending": 4,
        "oldestPendingAgeMs": 120_000,
        "deadLetters": 2,
        "live": True,
        "lastError": "server unreachable",
        "lastErrorCode": "unreachable",
        "lastSuccessAt": 1_770_832_800_000,  # epoch ms
        "clockOffsetMs": -250,
        "cursor": 42,
        "version": "1.4.0",
        "hostname": "CAIXA-01",
        "lastReconcile": {
            "at": 1_770_832_800_000,
            "status": "divergent",
            "strategy": "refresh_mismatched",
            "isConsistent": False,
            "mismatches": [{"table": "products", "reason": "count"}],
            "serverLogId": 7,
            "commandId": "c-1",
        },
    }
    assert [r.wire() for r in report.command_results] == [
        {"id": "c-1", "status": "divergent", "detail": None}
    ]


def test_a_minimal_report_gets_the_defaults():
    report = parse_report({"machineId": "caixa-1", "state": "synced", "futureField": [1, 2]})
    assert (report.label, report.pending, report.dead_letters, report.cursor) == (
        STATE_LABELS["synced"],
        0,
        0,
        0,
    )
    assert report.live is False and report.last_reconcile is None
    assert report.command_results == [] and report.clock_offset_ms == 0


def test_long_texts_are_cut_and_long_lists_bounded():
    many = [{"table": f"t{i}", "reason": "r"} for i in range(MISMATCHES_MAX + 5)]
    results = [{"id": f"c{i}", "status": "consistent"} for i in range(COMMAND_RESULTS_MAX + 5)]
    report = parse_report(
        {
            **FULL,
            "lastError": "é" * 1000,
            "hostname": "h" * 999,
            "lastErrorCode": "c" * 999,
            "lastReconcile": {**FULL["lastReconcile"], "mismatches": many},
            "commandResults": results,
        }
    )
    assert report.last_error == "é" * TEXT_MAX and report.hostname == "h" * TEXT_MAX
    assert report.last_error_code is not None and len(report.last_error_code) == 64
    assert report.last_reconcile is not None
    assert len(report.last_reconcile.mismatches) == MISMATCHES_MAX
    assert len(report.command_results) == COMMAND_RESULTS_MAX


@pytest.mark.parametrize(
    "change",
    [
        {"state": "sleeping"},
        {"state": None},
        {"state": ["synced"]},
        {"pending": -1},
        {"pending": 1.5},
        {"pending": True},
        {"deadLetters": "2"},
        {"oldestPendingAgeMs": -5},
        {"cursor": 10**13},
        {"live": "true"},
        {"label": 3},
        {"clockOffsetMs": "0"},
        {"clockOffsetMs": 400 * 86_400_000 * 365},
        {"lastSuccessAt": "never"},
        {"lastReconcile": "consistent"},
        {"lastReconcile": {"status": ""}},
        {"lastReconcile": {"status": {"a": 1}}},
        {"lastReconcile": {"status": "consistent", "serverLogId": "7"}},
        {"lastReconcile": {"status": "consistent", "mismatches": ["products"]}},
        {"lastReconcile": {"status": "consistent", "isConsistent": "yes"}},
        {"commandResults": {"c-1": "done"}},
        {"commandResults": [{"status": "done"}]},
        {"commandResults": [{"id": "c-1", "status": ""}]},
    ],
)
def test_a_value_of_the_wrong_type_refuses_the_report_with_its_reason(change):
    assert refused({**FULL, **change})


def test_the_machine_and_the_body_are_checked_first():
    refused({**FULL, "machineId": None}, "missing_machine_id")
    refused({**FULL, "machineId": "x" * 200}, "invalid_machine_id")
    refused([FULL], "invalid_body")  # type: ignore[arg-type]


def test_words_this_side_does_not_know_yet_are_kept_not_refused():
    report = parse_report(
        {**FULL, "lastReconcile": {"status": "a_new_status", "strategy": "a_new_strategy"}}
    )
    assert report.last_reconcile is not None
    assert report.last_reconcile.status == "a_new_status"
    assert report.last_reconcile.strategy == "a_new_strategy"


def test_a_command_has_a_socket_form_and_a_reply_form():
    command = Command("c-1", CommandKind.RECONCILE.value, DivergenceStrategy.FULL_RESYNC)
    assert command.wire() == {"id": "c-1", "kind": "reconcile", "strategy": "full_resync"}
    assert command.message() == {"type": "command", **command.wire()}
    assert parse_command(command.message()) == command
    assert parse_command(command.wire()) == command
    # A kind this agent does not know is still a command (it answers "unsupported").
    assert parse_command({"id": "c-2", "kind": "reboot"}).kind == "reboot"
    assert parse_command({"id": "c-3", "kind": "reconcile"}).strategy is DivergenceStrategy.NONE


@pytest.mark.parametrize(
    "data",
    [
        None,
        "reconcile",
        {"kind": "reconcile"},
        {"id": "", "kind": "reconcile"},
        {"id": "x" * 65, "kind": "reconcile"},
        {"id": "c-1"},
        {"id": "c-1", "kind": 5},
        {"id": "c-1", "kind": "reconcile", "strategy": "everything"},
        {"id": "c-1", "kind": "reconcile", "strategy": ["none"]},
    ],
)
def test_what_is_not_a_command_is_refused(data):
    with pytest.raises(ProtocolError) as caught:
        parse_command(data)
    assert caught.value.code == "invalid_command"
