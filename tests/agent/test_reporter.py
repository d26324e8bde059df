"""The agent's reports (agent/sync/report.py) and the panel's commands on it
(agent/sync/commands.py), against the real server app in process: what a report carries,
when it is sent, and a command run once with its result reported back."""

from __future__ import annotations

import asyncio
import json
import socket

import httpx
import pytest

from agent.sync import commands as commands_module
from agent.sync import report as report_module
from protocol.version import __version__
from tests.agent.test_engine_inprocess import InProcessEngine, Shop, Transport, run, write


def card(shop: Shop, machine: str) -> dict:
    cards = {c["machineId"]: c for c in shop.service.pdv_snapshot(shop.service.clock())}
    return cards[machine]


async def until(predicate, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_a_report_carries_what_only_the_pdv_knows(tmp_path):
    async def scenario(shop: Shop) -> None:
        a = shop.agent("caixa-1")
        await a._sync_cycle()
        await a._reconcile("none")
        write(a, "products", {"id": "p1", "name": "Pão"})  # pending, not pushed
        body = a.reporter.build()
        status = a.status()
        assert body == {
            **body,
            "machineId": "caixa-1",
            "tenantId": "default",
            "state": "waiting",
            "label": "Aguardando",
            "pending": 1,
            "deadLetters": 0,
            "live": False,
            "cursor": status["cursor"],
            "clockOffsetMs": status["clockOffsetMs"],
            "lastSuccessAt": status["lastSuccessAt"],
            "version": __version__,
            "hostname": socket.gethostname(),
            "commandResults": [],
        }
        assert body["oldestPendingAgeMs"] is not None
        last = body["lastReconcile"]
        assert last["status"] == "consistent" and last["strategy"] == "none"
        assert last["isConsistent"] is True and last["commandId"] is None
        assert isinstance(last["at"], int) and last["serverLogId"] is not None
        # The server keeps it as the machine's card.
        assert await a.reporter.send() == report_module.REPORT_EVERY_MS
        kept = card(shop, "caixa-1")
        assert kept["pending"] == 1 and kept["state"] == "waiting"
        assert kept["lastReconcile"]["status"] == "consistent"
        assert kept["hostname"] == socket.gethostname() and kept["version"] == __version__

    run(tmp_path, scenario)


def test_a_panel_command_runs_once_and_its_result_reaches_the_card(tmp_path):
    async def scenario(shop: Shop) -> None:
        a = shop.agent("caixa-1")
        await a._sync_cycle()
        runner = asyncio.create_task(a.commands.run())
        try:
            await a.reporter.send()
            (command_id,) = shop.service.request_reconcile("caixa-1", "full_resync", "ana")
            # The reply brings it; the runner reconciles with the panel's strategy.
            await a.reporter.send()
            await until(lambda: a.commands.results())
            assert a.commands.results() == [
                {"id": command_id, "status": "consistent", "detail": None}
            ]
            assert a.reporter.build()["lastReconcile"]["commandId"] == command_id
            await a.reporter.send()
            result = card(shop, "caixa-1")["lastCommand"]
            assert result["id"] == command_id and result["result"]["status"] == "consistent"
            assert result["result"]["reconcile"]["strategy"] == "full_resync"
            assert a.commands.results() == []  # reported: not sent again
            # The same id again (the socket, a late reply): not run twice.
            logged = len(a.store.reconcile_history(50))
            a.commands.receive({"type": "command", "id": command_id, "kind": "reconcile"})
            await asyncio.sleep(0.1)
            assert len(a.store.reconcile_history(50)) == logged
            # ...but its result goes again, in case the server missed it.
            assert [r["id"] for r in a.commands.results()] == [command_id]
        finally:
            runner.cancel()

    run(tmp_path, scenario)


def test_the_ids_run_outlive_a_restart_and_an_interrupted_one_is_not_run_again(tmp_path):
    async def scenario(shop: Shop) -> None:
        a = shop.agent("caixa-1")
        running = {"id": "c-1", "status": "running", "detail": None, "logId": None}
        a.store.set_state(commands_module.STATE_KEY, json.dumps([{**running, "reported": False}]))
        again = InProcessEngine(a.store, a.config, transport=Transport(shop.app))
        shop.engines.append(again)
        assert again.commands.results() == [
            {"id": "c-1", "status": "interrupted", "detail": "the PDV stopped while running it"}
        ]
        runner = asyncio.create_task(again.commands.run())
        try:
            again.commands.receive({"id": "c-1", "kind": "reconcile", "strategy": "none"})
            await asyncio.sleep(0.1)
            assert again.store.reconcile_history(10) == []  # never run
        finally:
            runner.cancel()

    run(tmp_path, scenario)


def test_an_unknown_kind_is_answered_not_run_and_garbage_is_ignored(tmp_path):
    async def scenario(shop: Shop) -> None:
        a = shop.agent("caixa-1")
        runner = asyncio.create_task(a.commands.run())
        try:
            a.commands.receive({"id": "c-9", "kind": "reboot", "strategy": "none"})
            a.commands.receive({"id": "", "kind": "reconcile"})  # not a command: ignored
            a.commands.receive("reconcile")
            await until(lambda: a.commands.results())
            assert a.commands.results() == [
                {"id": "c-9", "status": "unsupported", "detail": "unknown command kind 'reboot'"}
            ]
        finally:
            runner.cancel()

    run(tmp_path, scenario)


def test_a_command_on_the_live_socket_goes_to_the_runner(tmp_path):
    async def scenario(shop: Shop) -> None:
        a = shop.agent("caixa-1")
        heard: list[dict] = []
        a.live.on_command = heard.append
        message = {"type": "command", "id": "c-1", "kind": "reconcile", "strategy": "none"}
        await a.live._notice(json.dumps(message))
        assert heard == [message]

    run(tmp_path, scenario)


class Counting(Transport):
    """The app's transport, counting reports (and refusing them while `gone`: 404)."""

    def __init__(self, app) -> None:
        super().__init__(app)
        self.reports: list[dict] = []
        self.gone = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/sync/report":
            if self.gone:
                return httpx.Response(404, json={"success": False, "error": "Not Found"})
            self.reports.append(json.loads(request.content))
        return await super().handle_async_request(request)


def counting_agent(shop: Shop, name: str) -> tuple[InProcessEngine, Counting]:
    agent = shop.agent(name)
    transport = Counting(shop.app)
    again = InProcessEngine(agent.store, agent.config, transport=transport)
    shop.engines.append(again)
    return again, transport


def test_reports_go_at_start_on_a_change_debounced_and_on_schedule(tmp_path, monkeypatch):
    monkeypatch.setattr(report_module, "DEBOUNCE_S", 0.2)
    monkeypatch.setattr(report_module, "REPORT_EVERY_MS", 1_500)

    async def scenario(shop: Shop) -> None:
        a, transport = counting_agent(shop, "caixa-1")
        task = asyncio.create_task(a.reporter.run())
        try:
            await until(lambda: len(transport.reports) == 1)  # at start
            # Three changes together (pending 1, 2, 3): one report, about DEBOUNCE_S later.
            for n in range(3):
                write(a, "products", {"id": f"p{n}"})
            await until(lambda: len(transport.reports) == 2, timeout=1.0)
            assert transport.reports[-1]["pending"] == 3
            await asyncio.sleep(0.3)
            assert len(transport.reports) == 2
            # Nothing changes: the next one on schedule.
            await until(lambda: len(transport.reports) == 3, timeout=3.0)
            # A status update that changes nothing reported does not send one.
            a.context.board.update(live=False)
            await asyncio.sleep(0.4)
            assert len(transport.reports) == 3
        finally:
            task.cancel()

    run(tmp_path, scenario)


def test_a_server_without_reports_is_asked_again_only_much_later(tmp_path):
    async def scenario(shop: Shop) -> None:
        a, transport = counting_agent(shop, "caixa-1")
        transport.gone = True
        assert await a.reporter.send() == report_module.OLD_SERVER_RETRY_MS
        transport.gone, transport.down = False, True
        assert await a.reporter.send() == report_module.REPORT_EVERY_MS  # offline: as usual
        assert a.reporter.sent == 0

    run(tmp_path, scenario)


@pytest.mark.parametrize("strategy", ["client", "a-future-one"])
def test_a_front_ends_own_comparison_is_reported_too(tmp_path, strategy):
    """The local log also keeps a front end's comparison (strategy "client"): the server
    takes words it does not know rather than lose the report."""

    async def scenario(shop: Shop) -> None:
        a = shop.agent("caixa-1")
        a.store.log_reconcile({"created_at": a.now(), "status": "consistent", "strategy": strategy})
        assert a.reporter.build()["lastReconcile"]["strategy"] == strategy
        await a.reporter.send()
        assert a.reporter.sent == 1
        assert card(shop, "caixa-1")["lastReconcile"]["strategy"] == strategy

    run(tmp_path, scenario)
