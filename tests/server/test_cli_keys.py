"""`pdvsync-server keys ...` against a real running server: what issuing the first machine key
does to a keyless shop is said on stderr, and `keys list` shows no character of any key."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import httpx

from tests.serverproc import ROOT


def keys_cli(server, *args: str) -> subprocess.CompletedProcess:
    """`python -m server --env-file '' keys <args>` on the server's own database, no API_SECRET_KEY."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "API_SECRET_KEY")}
    env.update(
        {"DATA_DIR": str(server.data_dir), "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"}
    )
    if server.database_url:
        env["DATABASE_URL"] = server.database_url
    return subprocess.run(
        [sys.executable, "-m", "server", "--env-file", "", "keys", *args],
        cwd=server.data_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def wait_status(client: httpx.Client, path: str, want: int, timeout: float = 30.0) -> int:
    """GET `path` until it answers `want` or the bound passes (a key change takes up to ~3 s)."""
    deadline = time.monotonic() + timeout
    status = client.get(path).status_code
    while status != want and time.monotonic() < deadline:
        time.sleep(0.2)
        status = client.get(path).status_code
    return status


def test_the_first_machine_key_turns_keys_on_for_every_pdv_and_says_so(
    server_factory, database_url
):
    server = server_factory(database_url=database_url)  # no API_SECRET_KEY: an open server
    with server.client() as keyless:
        assert keyless.get("/api/products").status_code == 200

        issued = keys_cli(server, "issue", "--machine", "caixa-9")
        assert issued.returncode == 0, issued.stderr
        key = issued.stdout.strip().splitlines()[-1]
        assert key.startswith("pdv_")
        warning = " ".join(issued.stderr.split())
        assert "while any machine key is active" in warning
        assert (
            "requires a key from every PDV" in warning and "even without API_SECRET_KEY" in warning
        )
        assert "first active key" in warning
        assert key not in issued.stderr

        # That is what the server does: the keyless PDV is now refused, the keyed one is not.
        assert wait_status(keyless, "/api/products", 401) == 401
        with server.client(key) as keyed:
            assert keyed.get("/api/products").status_code == 200

        # A second key: the same warning, but it is not the first any more.
        second = keys_cli(server, "issue", "--machine", "caixa-8")
        assert second.returncode == 0, second.stderr
        assert "while any machine key is active" in second.stderr
        assert "first active key" not in second.stderr

        # Revoking the last active key opens the keyless server again, and says so.
        ids = [row["id"] for row in json.loads(keys_cli(server, "list", "--json").stdout)]
        assert len(ids) == 2
        first_revoke = keys_cli(server, "revoke", str(ids[0]))
        assert first_revoke.returncode == 0 and "without a key again" not in first_revoke.stderr
        last_revoke = keys_cli(server, "revoke", str(ids[1]))
        assert last_revoke.returncode == 0, last_revoke.stderr
        assert "accepts requests without a key again" in last_revoke.stderr
        assert wait_status(keyless, "/api/products", 200) == 200


def test_issuing_a_key_with_api_secret_key_set_still_warns(server_factory, tmp_path):
    server = server_factory(database_url=f"sqlite:///{tmp_path / 'k.db'}")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    env.update(
        {
            "DATA_DIR": str(server.data_dir),
            "PYTHONPATH": str(ROOT),
            "API_SECRET_KEY": "shared-7e21",
            "DATABASE_URL": server.database_url,
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "server", "--env-file", "", "keys", "issue", "--machine", "c1"],
        cwd=server.data_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "while any machine key is active" in done.stderr
    assert "first active key" not in done.stderr  # the shared key already made keys required
    assert re.fullmatch(r"pdv_[A-Za-z0-9_-]{43}", done.stdout.strip().splitlines()[-1])


def test_keys_list_shows_no_character_of_any_key(server_factory, database_url):
    server = server_factory(database_url=database_url)
    issued = [keys_cli(server, "issue", "--machine", f"caixa-{i}") for i in (1, 2)]
    keys = [done.stdout.strip().splitlines()[-1] for done in issued]
    assert keys_cli(server, "revoke", "1").returncode == 0
    for args in (("list",), ("list", "--json")):
        listed = keys_cli(server, *args)
        assert listed.returncode == 0, listed.stderr
        out = listed.stdout + listed.stderr
        assert "caixa-1" in out and "caixa-2" in out
        for key in keys:
            secret = key[len("pdv_") :]
            assert not any(secret[i : i + 6] in out for i in range(len(secret) - 5)), out
    rows = json.loads(keys_cli(server, "list", "--json").stdout)
    assert [(r["id"], r["machineId"], r["active"]) for r in rows] == [
        (1, "caixa-1", False),
        (2, "caixa-2", True),
    ]
    assert all(
        set(r) == {"id", "tenantId", "machineId", "createdAt", "revokedAt", "active"} for r in rows
    )
    assert {r["tenantId"] for r in rows} == {"default"}  # no --tenant: the default shop
    text = keys_cli(server, "list").stdout.splitlines()
    assert "caixa-1" in text[0] and "created " in text[0] and "revoked " in text[0]
    assert "caixa-2" in text[1] and text[1].endswith("active")


def test_a_key_belongs_to_one_shop_and_the_list_shows_it(server_factory, database_url):
    server = server_factory(database_url=database_url)
    issued = keys_cli(server, "issue", "--machine", "caixa-1", "--tenant", "loja-a")
    assert issued.returncode == 0, issued.stderr
    assert "machine 'caixa-1' of shop 'loja-a'" in issued.stdout
    key = issued.stdout.strip().splitlines()[-1]
    with server.client(key) as c:
        assert c.get("/api/products", headers={"x-tenant-id": "loja-a"}).status_code == 200
        assert c.get("/api/products", headers={"x-tenant-id": "loja-b"}).status_code == 403
    assert keys_cli(server, "issue", "--machine", "caixa-1").returncode == 0  # default shop
    rows = json.loads(keys_cli(server, "list", "--json").stdout)
    assert [(r["machineId"], r["tenantId"]) for r in rows] == [
        ("caixa-1", "loja-a"),
        ("caixa-1", "default"),
    ]
    text = keys_cli(server, "list").stdout.splitlines()
    assert "shop loja-a" in text[0] and "shop default" in text[1]

    # A bad shop id: one clear line, exit 2, no key issued.
    for bad in ("loja a", "x" * 65, "", "loja/a"):
        done = keys_cli(server, "issue", "--machine", "caixa-2", "--tenant", bad)
        assert done.returncode == 2, (bad, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "--tenant" in lines[0] and "Traceback" not in done.stderr
        assert not done.stdout
    assert len(json.loads(keys_cli(server, "list", "--json").stdout)) == 2
