"""`pdvsync-agent` command line: the options of the agent are accepted before and after the
command, and one given before the command is not lost to the command's own default."""

from __future__ import annotations

import pytest

from agent.cli import build_parser


def parse(*argv: str):
    return build_parser().parse_args(list(argv))


@pytest.mark.parametrize(
    "argv",
    [
        (
            "run",
            "--headless",
            "--server",
            "http://10.0.0.1:3001",
            "--machine-id",
            "caixa-1",
            "--local-port",
            "4100",
            "--data-dir",
            "/d",
            "--log-dir",
            "/l",
            "--config",
            "/c.json",
            "--verbose",
        ),
        (
            "--headless",
            "--server",
            "http://10.0.0.1:3001",
            "--machine-id",
            "caixa-1",
            "--local-port",
            "4100",
            "--data-dir",
            "/d",
            "--log-dir",
            "/l",
            "--config",
            "/c.json",
            "--verbose",
            "run",
        ),
        (
            "--headless",
            "--server",
            "http://10.0.0.1:3001",
            "--machine-id",
            "caixa-1",
            "--local-port",
            "4100",
            "--data-dir",
            "/d",
            "--log-dir",
            "/l",
            "--config",
            "/c.json",
            "--verbose",
        ),
        (
            "--server",
            "http://10.0.0.1:3001",
            "--local-port",
            "4100",
            "--config",
            "/c.json",
            "run",
            "--headless",
            "--machine-id",
            "caixa-1",
            "--data-dir",
            "/d",
            "--log-dir",
            "/l",
            "--verbose",
        ),
    ],
)
def test_run_options_work_before_and_after_the_command(argv):
    args = parse(*argv)
    assert args.command in (None, "run")
    assert (
        args.headless,
        args.server,
        args.machine_id,
        args.local_port,
        args.data_dir,
        args.log_dir,
        args.config,
        args.verbose,
    ) == (True, "http://10.0.0.1:3001", "caixa-1", 4100, "/d", "/l", "/c.json", True)


@pytest.mark.parametrize("command", ["status", "sync", "reconcile"])
def test_the_local_port_is_kept_wherever_it_is_given(command):
    assert parse("--local-port", "4100", command).local_port == 4100
    assert parse(command, "--local-port", "4100").local_port == 4100
    assert parse(command).local_port is None


def test_pending_takes_the_data_folder_before_or_after():
    assert parse("--data-dir", "/d", "pending").data_dir == "/d"
    assert parse("pending", "--data-dir", "/e").data_dir == "/e"
    assert parse("pending").data_dir is None


def test_without_options_nothing_is_set():
    args = parse()
    assert (args.command, args.headless, args.server, args.local_port, args.verbose) == (
        None,
        False,
        None,
        None,
        False,
    )


def test_a_sync_error_in_an_answer_is_worded_for_the_manager():
    from agent.cli import _sync_error

    status = {"state": "offline", "lastErrorCode": "timeout", "lastError": "no answer in time"}
    assert _sync_error(status) == "servidor não respondeu a tempo"
    report = {"status": "error", "errorCode": "auth_refused", "error": "invalid API key"}
    assert _sync_error(report) == "chave de API recusada: invalid API key"
    assert _sync_error({"state": "synced", "lastErrorCode": None, "lastError": None}) is None
    assert _sync_error({"success": False, "error": "x", "code": "not_found"}) is None


def test_the_shop_is_a_run_option_before_or_after_the_command():
    from agent.cli import _flags

    assert parse("--tenant", "loja-1").tenant == "loja-1"
    assert parse("run", "--tenant", "loja-1").tenant == "loja-1"
    assert parse("--tenant", "loja-1", "run").tenant == "loja-1"
    assert _flags(parse("run", "--tenant", "loja-2"))["tenant_id"] == "loja-2"
    assert _flags(parse("run"))["tenant_id"] is None  # unset: the environment and files decide


def test_configure_takes_an_optional_shop():
    base = ("configure", "--server", "http://10.0.0.1:3001", "--machine-id", "caixa-1")
    assert parse(*base).tenant is None  # not given: the file's shop stays
    assert parse(*base, "--tenant", "").tenant == ""  # given empty: the default shop
    assert parse(*base, "--tenant", "loja-1").tenant == "loja-1"


@pytest.mark.parametrize(
    ("code", "detail", "expected"),
    [
        (
            "tenant_changed",
            "this PDV holds the data of shop 'loja-a' but is configured for shop 'loja-b'; ...",
            "este PDV tem dados da loja loja-a; configurado para a loja loja-b",
        ),
        ("tenant_forbidden", "this key belongs to shop 'loja-a'", "pertence a outra loja"),
        ("tenant_refused", "tenantId: 1 to 64 letters", "recusou a loja configurada"),
    ],
)
def test_shop_errors_are_worded_for_the_manager(code, detail, expected):
    from agent.cli import _sync_error

    worded = _sync_error({"state": "offline", "lastErrorCode": code, "lastError": detail})
    assert worded is not None and expected in worded, worded
