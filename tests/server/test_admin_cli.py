"""`pdvsync-server admin add|passwd|remove|list` as a manager's IT person runs it, against a
running server: the account opens the panel, `passwd` and `remove` end its sessions, `list`
never shows a password hash, and bad input is one line and exit 2, changing nothing."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import httpx
import pytest

from server import cli
from server.panel import commands
from tests.serverproc import ROOT

PASSWORD = "segredo-do-gerente"


def admin_cli(server, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """`python -m server --env-file '' admin <args>` on the server's own database."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "API_SECRET_KEY")}
    env.update(
        {"DATA_DIR": str(server.data_dir), "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"}
    )
    if server.database_url:
        env["DATABASE_URL"] = server.database_url
    return subprocess.run(
        [sys.executable, "-m", "server", "--env-file", "", "admin", *args],
        cwd=server.data_dir,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def login(server, username: str, password: str) -> httpx.Response:
    return httpx.post(
        server.url + "/painel/entrar",
        data={"usuario": username, "senha": password},
        follow_redirects=False,
        timeout=30,
    )


def session(server, response: httpx.Response) -> httpx.Response:
    """GET /painel/sessao with the cookie a login answer set."""
    cookie = response.headers["set-cookie"].split(";")[0]
    return httpx.get(server.url + "/painel/sessao", headers={"cookie": cookie}, timeout=30)


def test_add_list_passwd_remove_against_a_running_server(server_factory, database_url):
    server = server_factory(database_url=database_url)
    added = admin_cli(server, "add", "Gerente", "--password-stdin", stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert "gerente" in added.stdout and "every shop" in added.stdout
    assert PASSWORD not in added.stdout + added.stderr
    shop = admin_cli(
        server, "add", "caixa-chefe", "--tenant", "loja-1", "--password-stdin", stdin=PASSWORD
    )
    assert shop.returncode == 0, shop.stderr

    first = login(server, "gerente", PASSWORD)
    assert first.status_code == 303
    assert session(server, first).json()["allShops"] is True
    shop_login = login(server, "caixa-chefe", PASSWORD)
    assert session(server, shop_login).json()["tenantId"] == "loja-1"

    listed = admin_cli(server, "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("caixa-chefe") and "loja-1" in lines[0]
    assert lines[1].startswith("gerente") and "(every shop)" in lines[1]
    as_json = json.loads(admin_cli(server, "list", "--json").stdout)
    assert {row["username"]: row["sessions"] for row in as_json} == {
        "gerente": 1,
        "caixa-chefe": 1,
    }
    for text in (listed.stdout, json.dumps(as_json)):
        assert "scrypt" not in text and "$" not in text

    # passwd: the open session ends at once; the old password no longer works.
    changed = admin_cli(server, "passwd", "gerente", "--password-stdin", stdin="nova-senha-123\n")
    assert changed.returncode == 0, changed.stderr
    assert "1 open session(s) ended" in changed.stdout
    assert session(server, first).status_code == 401
    assert login(server, "gerente", PASSWORD).status_code == 401
    second = login(server, "gerente", "nova-senha-123")
    assert session(server, second).status_code == 200
    assert session(server, shop_login).status_code == 200  # another account is untouched

    # remove: its session ends, and it cannot log in any more.
    removed = admin_cli(server, "remove", "gerente")
    assert removed.returncode == 0, removed.stderr
    assert "1 open session(s) ended" in removed.stdout
    assert session(server, second).status_code == 401
    assert login(server, "gerente", "nova-senha-123").status_code == 401
    assert [r["username"] for r in json.loads(admin_cli(server, "list", "--json").stdout)] == [
        "caixa-chefe"
    ]


BAD_INPUT = [
    (["add", "gerente", "--password-stdin"], "\n", "the password is empty"),
    (["add", "gerente", "--password-stdin"], "curta12\n", "fewer than 8 characters"),
    (["add", "gerente", "--password-stdin", "--tenant", "loja 1"], PASSWORD, "--tenant"),
    (["add", "gerente", "--password-stdin", "--tenant", ""], PASSWORD, "--tenant"),
    (["add", "ge rente", "--password-stdin"], PASSWORD, "username"),
    (["add", "", "--password-stdin"], PASSWORD, "username"),
    (["add", "existente", "--password-stdin"], PASSWORD, "already exists"),
    (["add", "gerente"], PASSWORD, "--password-stdin"),  # no terminal to type it in
    (["passwd", "ninguem", "--password-stdin"], PASSWORD, "no account named 'ninguem'"),
    (["passwd", "existente", "--password-stdin"], "curta\n", "fewer than 8 characters"),
    (["remove", "ninguem"], None, "no account named 'ninguem'"),
]


def test_bad_input_is_one_line_and_exit_2_changing_nothing(server_factory):
    server = server_factory()
    assert admin_cli(server, "add", "existente", "--password-stdin", stdin=PASSWORD).returncode == 0
    for args, stdin, words in BAD_INPUT:
        r = admin_cli(server, *args, stdin=stdin)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert words in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
    rows = json.loads(admin_cli(server, "list", "--json").stdout)
    assert [row["username"] for row in rows] == ["existente"]
    assert login(server, "existente", PASSWORD).status_code == 303  # passwd changed nothing


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def in_process(tmp_path, monkeypatch):
    """`main(argv)` in this process on a fresh SQLite folder, with a fake terminal: `typed`
    is what getpass returns, one item per prompt."""
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setattr(sys, "stdin", _Terminal())
    typed: list[str] = []
    prompts: list[str] = []

    def getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        return typed.pop(0)

    monkeypatch.setattr(commands.getpass, "getpass", getpass)
    return typed, prompts


def test_the_password_is_typed_twice_at_the_terminal(in_process, capsys):
    typed, prompts = in_process
    typed += [PASSWORD, PASSWORD]
    assert cli.main(["--env-file", "", "admin", "add", "gerente"]) == 0
    assert prompts == ["Password for gerente: ", "Repeat the password: "]
    out = capsys.readouterr()
    assert PASSWORD not in out.out + out.err

    typed += ["outra-senha-1", "outra-senha-2"]
    assert cli.main(["--env-file", "", "admin", "passwd", "gerente"]) == 2
    assert "do not match" in capsys.readouterr().err

    typed += ["curta", "curta"]
    assert cli.main(["--env-file", "", "admin", "add", "outro"]) == 2
    assert "fewer than 8 characters" in capsys.readouterr().err
    assert cli.main(["--env-file", "", "admin", "list"]) == 0
    assert capsys.readouterr().out.split()[0] == "gerente"
