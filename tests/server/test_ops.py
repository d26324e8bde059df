"""Operations commands through the real entry point (`python -m server ...` in a subprocess):
backup and restore on SQLite and PostgreSQL, smoke and reliability against real server
processes, and migrate."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sqlite3
import stat
import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from server.backup import RESTORE_GAP, default_backup_path, sniff
from tests.serverproc import ROOT

KEY = "ops-test-key-0123456789abcdef"
BACKUP_NAME = re.compile(r"^pdvsync-(\d{8}-\d{6})(-\d+)?\.(db|sql)$")


# -- helpers ---------------------------------------------------------------------------------


def cli(
    *args: str,
    cwd: Path,
    database_url: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess:
    """`python -m server --env-file '' <args>` with DATABASE_URL / DATA_DIR, cwd a tmp dir."""
    e = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "API_SECRET_KEY", "DATA_DIR", "PG_BINDIR", "HOST", "PORT")
    }
    e.update(PYTHONPATH=str(ROOT), PYTHONIOENCODING="utf-8", DATA_DIR=str(cwd / "data"))
    if database_url:
        e["DATABASE_URL"] = database_url
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "server", "--env-file", "", *args],
        cwd=cwd,
        env=e,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """The CLI failed with a single clear line on stderr, not a traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def _push(client, table: str, *records: dict) -> dict:
    r = client.post(
        f"/api/sync/{table}",
        json={
            "machineId": "pdv-caixa-1",
            "localUpdates": [{"eventId": str(uuid.uuid4()), "record": rec} for rec in records],
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["status"] for x in body["results"]] == ["applied"] * len(records), body
    return body


def populate(client, tag: str = "") -> None:
    """A morning at the bakery: products, a supply, a sale (atomic batch), a delete, a reconcile."""
    _push(
        client,
        "products",
        {
            "id": f"bolo{tag}",
            "name": "Bolo de cenoura",
            "price": "35.90",
            "category": "Bolos",
            "stock_quantity": 10,
            "createdAt": "2026-02-11T08:00:00.000Z",
        },
        {
            "id": f"pao{tag}",
            "name": "Pão de queijo",
            "price": 0.75,
            "category": "Salgados",
            "stock_quantity": 200,
            "description": "com 'aspas'; DROP TABLE products;--",
        },
    )
    _push(
        client,
        "supplies",
        {
            "id": f"farinha{tag}",
            "name": "Farinha de trigo",
            "stock": "12.500",
            "unit": "kg",
            "costPerUnit": "4.3900",
        },
    )
    r = client.post(
        "/api/sync/batch",
        json={
            "machineId": "pdv-caixa-1",
            "events": [
                {
                    "eventId": str(uuid.uuid4()),
                    "table": "orders",
                    "record": {
                        "id": f"pedido{tag}",
                        "customerName": "Maria",
                        "total": "71.80",
                        "createdAt": "2026-02-11T09:30:00.000Z",
                    },
                },
                {
                    "eventId": str(uuid.uuid4()),
                    "table": "order_items",
                    "record": {
                        "id": f"item{tag}",
                        "order_id": f"pedido{tag}",
                        "product_id": f"bolo{tag}",
                        "quantity": "2",
                        "price": "35.90",
                    },
                },
                {
                    "eventId": str(uuid.uuid4()),
                    "table": "products",
                    "record": {"id": f"bolo{tag}", "_op": "increment", "stock_quantity": -2},
                },
            ],
        },
    )
    assert r.status_code == 200, r.text
    _push(client, "products", {"id": f"pao{tag}", "_op": "delete"})
    r = client.post(
        "/api/sync/reconcile",
        json={"machineId": "pdv-caixa-1", "clientSummary": {"products": {"count": 1}}},
    )
    assert r.status_code == 200, r.text


def snapshot(client) -> dict:
    """Everything a PDV can see: the full change log, summaries, lists and history."""
    changes = client.get("/api/sync/changes", params={"since": 0, "limit": 5000}).json()
    assert changes["hasMore"] is False
    summary = client.get("/api/sync/reconcile").json()
    history = client.get("/api/sync/reconcile/history").json()["data"]
    return {
        "changes": changes["changes"],
        "cursor": changes["cursor"],
        "summary": summary["serverSummary"],
        "summaryCursor": summary["cursor"],
        "products": client.get("/api/products").json()["products"],
        "orders": client.get("/api/orders").json()["orders"],
        "supplies": client.get("/api/supplies").json()["supplies"],
        "history": [
            {k: e[k] for k in ("id", "machine_id", "status", "created_at")} for e in history
        ],
    }


def is_postgres(url: str | None) -> bool:
    return bool(url) and url.startswith("postgresql")


def wipe(url: str) -> None:
    """Lose the database: the SQLite file goes, the PostgreSQL schema is emptied."""
    if is_postgres(url):
        import psycopg

        with psycopg.connect(url, autocommit=True) as con:
            con.execute("DROP SCHEMA public CASCADE")
            con.execute("CREATE SCHEMA public")
    else:
        path = Path(url[len("sqlite:///") :])
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def product_ids(url: str) -> set[str]:
    if is_postgres(url):
        import psycopg

        with psycopg.connect(url) as con:
            return {r[0] for r in con.execute("SELECT id FROM products")}
    with contextlib.closing(sqlite3.connect(url[len("sqlite:///") :])) as con:
        return {r[0] for r in con.execute("SELECT id FROM products")}


def assert_restored(after: dict, before: dict) -> None:
    """The backup's data, whole; the sequence jumped over the restore gap, so cursors handed
    out before the restore are told to resync."""
    moved = {"cursor", "summaryCursor"}
    assert {k: v for k, v in after.items() if k not in moved} == {
        k: v for k, v in before.items() if k not in moved
    }
    assert after["cursor"] >= before["cursor"] + RESTORE_GAP
    assert after["summaryCursor"] == after["cursor"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def marks(output: str) -> tuple[int, int]:
    return output.count("✓"), output.count("✗")


# -- backup and restore ------------------------------------------------------------------------


def test_backup_wipe_restore_round_trip(server_factory, database_url, tmp_path):
    server = server_factory(database_url=database_url)
    with server.client() as c:
        populate(c)
        before = snapshot(c)
        identity = c.get("/health").headers["x-pdvsync-database"]
    server.stop()

    work = tmp_path / "ops"
    work.mkdir()
    r = cli("backup", cwd=work, database_url=database_url)
    assert r.returncode == 0, r.stderr
    files = list((work / "backups").iterdir())
    assert len(files) == 1
    m = BACKUP_NAME.match(files[0].name)
    assert m, files[0].name
    assert m.group(3) == ("sql" if is_postgres(database_url) else "db")
    assert f"Backup written to {Path('backups') / files[0].name}" in r.stdout
    assert sniff(files[0]) == ("sql" if is_postgres(database_url) else "sqlite")

    wipe(database_url)
    r = cli(
        "migrate", cwd=work, database_url=database_url
    )  # an empty schema: restore needs no --force
    assert r.returncode == 0, r.stderr
    r = cli(
        "restore", "--file", str(files[0].relative_to(work)), cwd=work, database_url=database_url
    )
    assert r.returncode == 0, r.stderr
    assert "Restored" in r.stdout

    server = server_factory(database_url=database_url)
    with server.client() as c:
        assert_restored(snapshot(c), before)
        # The restored database is the same shop's: agents keep syncing with it.
        assert c.get("/health").headers["x-pdvsync-database"] == identity
        # A cursor from before the restore (past the backup's head) must resync; one within
        # the backup continues.
        r = c.get("/api/sync/changes", params={"since": before["cursor"] + 1})
        assert r.status_code == 409 and r.json()["resyncRequired"] is True
        assert c.get("/api/sync/changes", params={"since": before["cursor"]}).status_code == 200
        # The cursor a full resync ends on (the new head) is one the server continues from.
        resync = c.get("/api/sync/changes", params={"since": 0, "limit": 5000}).json()
        assert resync["hasMore"] is False
        r = c.get("/api/sync/changes", params={"since": resync["cursor"], "machineId": "caixa-2"})
        assert r.status_code == 200 and r.json()["changes"] == []
        # The sequence and the id counters continue after the restored ones: no cursor is reused.
        body = _push(c, "products", {"id": "depois", "name": "Sonho", "price": "6.50"})
        assert body["results"][0]["seq"] > before["cursor"]
        r = c.post(
            "/api/sync/reconcile",
            json={"machineId": "pdv-caixa-2", "clientSummary": {"orders": {"count": 1}}},
        )
        assert r.status_code == 200, r.text
        assert r.json()["id"] > max(e["id"] for e in before["history"])


def test_restore_into_a_new_database(server_factory, database_url, tmp_path, request):
    """Moving the server: restore the backup on another machine's empty database."""
    server = server_factory(database_url=database_url)
    with server.client() as c:
        populate(c)
        before = snapshot(c)
    server.stop()
    work = tmp_path / "ops"
    work.mkdir()
    target = (
        request.getfixturevalue("pg_cluster").createdb(f"moved{os.getpid()}_{uuid.uuid4().hex[:6]}")
        if is_postgres(database_url)
        else f"sqlite:///{tmp_path / 'elsewhere' / 'moved.db'}"
    )
    suffix = ".sql" if is_postgres(database_url) else ".db"
    r = cli("backup", "--file", f"copy{suffix}", cwd=work, database_url=database_url)
    assert r.returncode == 0, r.stderr
    r = cli("restore", "--file", f"copy{suffix}", cwd=work, database_url=target)
    assert r.returncode == 0, r.stderr
    with server_factory(database_url=target).client() as c:
        assert_restored(snapshot(c), before)


def test_restore_refuses_a_database_with_data_unless_forced(server_factory, database_url, tmp_path):
    server = server_factory(database_url=database_url)
    work = tmp_path / "ops"
    work.mkdir()
    with server.client() as c:
        populate(c)
        before = snapshot(c)
        # Online: the server keeps running while the backup is taken.
        r = cli("backup", cwd=work, database_url=database_url)
        assert r.returncode == 0, r.stderr
        _push(c, "products", {"id": "after-backup", "name": "Croissant", "price": "7.00"})
    server.stop()
    backup_file = next((work / "backups").iterdir())

    r = cli("restore", "--file", str(backup_file), cwd=work, database_url=database_url)
    line = one_line_error(r)
    assert "already has synchronised data" in line and "--force" in line, line
    assert "after-backup" in product_ids(database_url)  # nothing was touched

    r = cli("restore", "--file", str(backup_file), "--force", cwd=work, database_url=database_url)
    assert r.returncode == 0, r.stderr
    assert "after-backup" not in product_ids(database_url)
    with server_factory(database_url=database_url).client() as c:
        assert_restored(snapshot(c), before)


@pytest.mark.postgres
def test_postgres_custom_format_dump(server_factory, pg_url, tmp_path):
    server = server_factory(database_url=pg_url)
    with server.client() as c:
        populate(c)
        before = snapshot(c)
    server.stop()
    work = tmp_path / "ops"
    work.mkdir()
    r = cli("backup", "--file", "nightly.dump", cwd=work, database_url=pg_url)
    assert r.returncode == 0, r.stderr
    assert sniff(work / "nightly.dump") == "custom"
    wipe(pg_url)
    r = cli("restore", "--file", "nightly.dump", cwd=work, database_url=pg_url)
    assert r.returncode == 0, r.stderr
    with server_factory(database_url=pg_url).client() as c:
        assert_restored(snapshot(c), before)


def test_default_backup_names_are_timestamped(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'server.db'}"
    work = tmp_path / "ops"
    work.mkdir()
    assert cli("migrate", cwd=work, database_url=url).returncode == 0
    started = datetime.now().replace(microsecond=0)
    names = []
    for _ in range(2):
        r = cli("backup", cwd=work, database_url=url)
        assert r.returncode == 0, r.stderr
        names.append(Path(r.stdout.strip().rsplit(" ", 1)[-1]).name)
    assert names[0] != names[1]
    assert sorted(p.name for p in (work / "backups").iterdir()) == sorted(names)
    for name in names:
        m = BACKUP_NAME.match(name)
        assert m and m.group(3) == "db", name
        stamp = datetime.strptime(m.group(1), "%Y%m%d-%H%M%S")
        assert started - timedelta(seconds=1) <= stamp <= datetime.now()

    # Within one second the second backup gets a suffix instead of replacing the first.
    monkeypatch.chdir(tmp_path)
    at = datetime(2026, 2, 11, 18, 0, 5)
    first = default_backup_path("postgresql", at)
    assert first == Path("backups/pdvsync-20260211-180005.sql")
    first.parent.mkdir()
    first.write_text("x")
    assert default_backup_path("postgresql", at) == Path("backups/pdvsync-20260211-180005-2.sql")
    assert default_backup_path("sqlite", at) == Path("backups/pdvsync-20260211-180005.db")


def test_bad_backup_files_give_a_clear_error(database_url, tmp_path):
    work = tmp_path / "ops"
    work.mkdir()
    assert cli("migrate", cwd=work, database_url=database_url).returncode == 0

    line = one_line_error(
        cli("restore", "--file", "missing.sql", cwd=work, database_url=database_url)
    )
    assert "no such file" in line

    (work / "notes.txt").write_text("lista de compras: farinha, ovos\n")
    line = one_line_error(
        cli("restore", "--file", "notes.txt", "--force", cwd=work, database_url=database_url)
    )
    assert "not a" in line and ("SQLite" in line or "PDV Sync backup" in line), line

    other = work / "other.db"
    with contextlib.closing(sqlite3.connect(other)) as con:
        con.execute("CREATE TABLE receitas (nome TEXT)")
        con.commit()
    line = one_line_error(
        cli("restore", "--file", "other.db", "--force", cwd=work, database_url=database_url)
    )
    if is_postgres(database_url):
        assert "SQLite backup; this server uses PostgreSQL" in line, line
    else:
        assert "not a PDV Sync backup (no schema_version table)" in line, line

    (work / "dump.sql").write_text(
        "--\n-- PostgreSQL database dump\n--\nCREATE TABLE public.x (y int);\n"
    )
    line = one_line_error(
        cli("restore", "--file", "dump.sql", "--force", cwd=work, database_url=database_url)
    )
    if not is_postgres(database_url):
        assert "PostgreSQL SQL dump; this server uses SQLite" in line, line
    else:
        assert "not a PDV Sync backup" in line, line


def test_damaged_sqlite_backup_is_refused_and_the_database_kept(server_factory, tmp_path):
    url = f"sqlite:///{tmp_path / 'server.db'}"
    server = server_factory(database_url=url)
    with server.client() as c:
        populate(c)
    server.stop()
    work = tmp_path / "ops"
    work.mkdir()
    assert cli("backup", "--file", "good.db", cwd=work, database_url=url).returncode == 0
    data = (work / "good.db").read_bytes()
    (work / "damaged.db").write_bytes(data[:4096] + b"\xff" * (len(data) - 4096))
    line = one_line_error(
        cli("restore", "--file", "damaged.db", "--force", cwd=work, database_url=url)
    )
    assert "damaged.db" in line and ("damaged" in line or "unreadable" in line), line
    assert "bolo" in product_ids(url)


@pytest.mark.postgres
def test_postgres_failed_restore_changes_nothing(server_factory, pg_url, tmp_path):
    """Drop, load and check run in one transaction: a broken or foreign dump rolls back."""
    server = server_factory(database_url=pg_url)
    with server.client() as c:
        populate(c)
    server.stop()
    work = tmp_path / "ops"
    work.mkdir()
    assert cli("backup", "--file", "good.sql", cwd=work, database_url=pg_url).returncode == 0
    good = (work / "good.sql").read_text()
    cut = good.index("CREATE TABLE public.products")
    (work / "broken.sql").write_text(good[:cut] + "THIS IS NOT SQL;\n" + good[cut:])
    line = one_line_error(
        cli("restore", "--file", "broken.sql", "--force", cwd=work, database_url=pg_url)
    )
    assert "nothing was changed" in line and "syntax error" in line, line
    assert product_ids(pg_url) == {"bolo", "pao"}

    (work / "foreign.sql").write_text(
        "--\n-- PostgreSQL database dump\n--\nCREATE TABLE public.receitas (nome text);\n"
    )
    line = one_line_error(
        cli("restore", "--file", "foreign.sql", "--force", cwd=work, database_url=pg_url)
    )
    assert "not a PDV Sync backup" in line, line
    assert product_ids(pg_url) == {"bolo", "pao"}

    assert cli("backup", "--file", "good.dump", cwd=work, database_url=pg_url).returncode == 0
    (work / "cut.dump").write_bytes((work / "good.dump").read_bytes()[:600])
    line = one_line_error(
        cli("restore", "--file", "cut.dump", "--force", cwd=work, database_url=pg_url)
    )
    assert "pg_restore cannot read it" in line, line
    assert product_ids(pg_url) == {"bolo", "pao"}


@pytest.mark.postgres
def test_postgres_password_goes_through_the_environment_only(pg_cluster, pg_url, tmp_path):
    """PG_BINDIR selects the tools; the password reaches them as PGPASSWORD, never as an argument."""
    secret = "S3gredo-da-padaria"
    url = pg_url.replace("postgres@", f"postgres:{secret}@")  # the test cluster trusts loopback
    tools = tmp_path / "pgbin"
    tools.mkdir()
    log = tmp_path / "calls.log"
    for name in ("pg_dump", "psql", "pg_restore"):
        script = tools / name
        script.write_text(
            "#!/bin/sh\n"
            f'echo "{name} ARGS: $*" >> "{log}"\n'
            f'echo "{name} PGPASSWORD=$PGPASSWORD" >> "{log}"\n'
            f'exec "{pg_cluster.bindir / name}" "$@"\n'
        )
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    work = tmp_path / "ops"
    work.mkdir()
    env = {"PG_BINDIR": str(tools)}
    assert cli("migrate", cwd=work, database_url=url).returncode == 0
    results = [
        cli("backup", "--file", "a.sql", cwd=work, database_url=url, env=env),
        cli("backup", "--file", "a.dump", cwd=work, database_url=url, env=env),
        cli("restore", "--file", "a.sql", cwd=work, database_url=url, env=env),
        cli("restore", "--file", "a.dump", cwd=work, database_url=url, env=env),
    ]
    for r in results:
        assert r.returncode == 0, r.stderr
        assert secret not in r.stdout + r.stderr
    calls = log.read_text().splitlines()
    args = [ln for ln in calls if " ARGS: " in ln]
    assert {ln.split(" ", 1)[0] for ln in args} == {"pg_dump", "psql", "pg_restore"}
    assert not any(secret in ln for ln in args)
    assert all(ln.endswith(f"PGPASSWORD={secret}") for ln in calls if "PGPASSWORD" in ln)
    assert "--no-owner" in args[0] and "--no-privileges" in args[0]
    psql_args = next(ln for ln in args if ln.startswith("psql"))
    assert "ON_ERROR_STOP=1" in psql_args and "--single-transaction" in psql_args

    line = one_line_error(
        cli("backup", cwd=work, database_url=url, env={"PG_BINDIR": str(tmp_path)})
    )
    assert f"pg_dump not found in PG_BINDIR={tmp_path}" in line
    assert not (work / "backups").exists() or not any((work / "backups").iterdir())


def test_backup_errors_are_one_line(tmp_path):
    work = tmp_path / "ops"
    work.mkdir()
    # No database yet: nothing to back up, and no empty file created by trying.
    line = one_line_error(cli("backup", cwd=work))
    assert "no database at" in line
    assert not (work / "data" / "pdvsync.db").exists()
    line = one_line_error(
        cli("backup", cwd=work, database_url=f"postgresql://u:pw@127.0.0.1:{free_port()}/x")
    )
    assert "Connection refused" in line and "pw" not in line.replace("pg_dump", ""), line
    line = one_line_error(cli("restore", "--file", "x.sql", cwd=work, database_url="mysql://x/y"))
    assert "unsupported scheme" in line


# -- smoke and reliability -----------------------------------------------------------------------


def test_smoke_and_reliability_pass_on_a_real_server(live_server, tmp_path):
    with live_server.client() as c:
        populate(c)
        before = snapshot(c)
    r = cli("smoke", "--url", live_server.url, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert marks(r.stdout) == (4, 0), r.stdout
    for name in ("health", "reconcile summary", "reconcile", "reconcile history"):
        assert f"✓ {name}:" in r.stdout
    machine = re.search(r"(smoke-[0-9a-f]+)", r.stdout).group(1)
    with live_server.client() as c:
        history = c.get("/api/sync/reconcile/history", params={"machineId": machine}).json()
        assert history["count"] == 1

    for _ in range(2):  # repeatable: every run uses its own records
        r = cli("reliability", "--url", live_server.url, cwd=tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr
        assert marks(r.stdout) == (5, 0), r.stdout
        for name in ("idempotency", "stale conflict", "tombstone", "cleanup"):
            assert f"✓ {name}:" in r.stdout

    with live_server.client() as c:
        after = snapshot(c)
        # The shop's own data is untouched and the test products are gone (tombstones remain).
        assert after["products"] == before["products"]
        assert after["orders"] == before["orders"] and after["supplies"] == before["supplies"]
        mine = [
            ch["record"] for ch in after["changes"] if ch["record"]["id"].startswith("reliability-")
        ]
        assert len(mine) == 6 and all(
            rec == {"id": rec["id"], "_deleted": True, "updatedAt": rec["updatedAt"]}
            for rec in mine
        )
        machines = [m["machineId"] for m in c.get("/api/stats").json()["machines"]]
        assert not any(m.startswith("reliability") for m in machines)


def test_checks_fail_against_a_stopped_server(server_factory, tmp_path):
    server = server_factory(database_url=f"sqlite:///{tmp_path / 'server.db'}")
    url = server.url
    server.stop()
    for command in ("smoke", "reliability"):
        r = cli(command, "--url", url, cwd=tmp_path, timeout=60)
        assert r.returncode != 0
        assert "Traceback" not in r.stderr
        assert "cannot connect" in r.stdout and "connection refused" in r.stdout, r.stdout
        assert marks(r.stdout) == (0, 1), r.stdout


def test_checks_with_api_key(server_factory, database_url, tmp_path):
    server = server_factory(database_url=database_url, env={"API_SECRET_KEY": KEY})
    for command, passing in (("smoke", 4), ("reliability", 5)):
        r = cli(command, "--url", server.url, "--api-key", "wrong-key", cwd=tmp_path)
        assert r.returncode != 0
        assert "401 unauthorized" in r.stdout and "wrong x-api-key" in r.stdout, r.stdout
        assert KEY not in r.stdout
        r = cli(command, "--url", server.url, cwd=tmp_path)
        assert r.returncode != 0
        assert "requires x-api-key" in r.stdout, r.stdout
        r = cli(command, "--url", server.url, "--api-key", KEY, cwd=tmp_path)
        assert r.returncode == 0, r.stdout
        assert marks(r.stdout) == (passing, 0), r.stdout
        # Without --api-key the server's own API_SECRET_KEY (environment or .env) is sent.
        r = cli(command, "--url", server.url, cwd=tmp_path, env={"API_SECRET_KEY": KEY})
        assert r.returncode == 0, r.stdout


# -- migrate -------------------------------------------------------------------------------------


def test_migrate_cli(server_factory, database_url, tmp_path):
    work = tmp_path / "ops"
    work.mkdir()
    r = cli("migrate", cwd=work, database_url=database_url)
    assert r.returncode == 0, r.stderr
    assert "schema v0 -> v4 (applied 1, 2, 3, 4)" in r.stdout
    r = cli("migrate", cwd=work, database_url=database_url)
    assert r.returncode == 0, r.stderr
    assert "schema v4 (up to date)" in r.stdout

    server = server_factory(database_url=database_url)
    with server.client() as c:
        populate(c)
        before = snapshot(c)
    server.stop()
    r = cli("migrate", cwd=work, database_url=database_url)
    assert r.returncode == 0 and "up to date" in r.stdout, r.stderr
    with server_factory(database_url=database_url).client() as c:
        assert snapshot(c) == before


def test_migrate_cli_errors(tmp_path):
    url = f"sqlite:///{tmp_path / 'server.db'}"
    assert cli("migrate", cwd=tmp_path, database_url=url).returncode == 0
    with contextlib.closing(sqlite3.connect(tmp_path / "server.db")) as con:
        con.execute("INSERT INTO schema_version VALUES (999, 'from the future', 0)")
        con.commit()
    line = one_line_error(cli("migrate", cwd=tmp_path, database_url=url))
    assert "newer than this server" in line
    line = one_line_error(
        cli("migrate", cwd=tmp_path, database_url=f"postgresql://u:pw@127.0.0.1:{free_port()}/x")
    )
    assert line.startswith("Migrate failed") and "Connection refused" in line, line
    line = one_line_error(cli("migrate", cwd=tmp_path, database_url="mysql://x/y"))
    assert "unsupported scheme" in line


def test_sniff(tmp_path):
    cases = {
        "a.db": b"SQLite format 3\x00" + b"\x00" * 100,
        "a.dump": b"PGDMP\x01\x0e\x00",
        "a.sql": b"--\n-- PostgreSQL database dump\n--\n",
        "a.sql.gz": b"\x1f\x8b\x08\x00",
        "a.txt": b"hello",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    assert [sniff(tmp_path / n) for n in cases] == ["sqlite", "custom", "sql", "gzip", "unknown"]


def test_a_backup_from_before_database_identities_keeps_the_shops_identity(
    server_factory, tmp_path, monkeypatch
):
    """A backup taken by a release without identities, restored after the upgrade, is the
    same shop's data: it takes the replaced database's identity (PDVs resync, not stop)."""
    import peewee as pw

    from server import migrations

    old = tmp_path / "v1-backup.db"
    db = pw.SqliteDatabase(str(old))
    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:1])
    monkeypatch.setattr(migrations, "LATEST", 1)
    migrations.migrate(db)
    with db.connection_context():  # a row as the v1 server stored it
        db.execute_sql(
            "INSERT INTO products (id, name, updated_at, lww_at, deleted, seq, digest, bucket) "
            "VALUES ('antigo', 'Pão antigo', 1, 1, 0, 1, 0, 0)"
        )
        db.execute_sql("UPDATE sync_state SET value = 1 WHERE key = 'seq'")
    db.close()
    monkeypatch.undo()

    url = f"sqlite:///{tmp_path / 'shop.db'}"
    server = server_factory(database_url=url)
    with server.client() as c:
        identity = c.get("/health").headers["x-pdvsync-database"]
        _push(c, "products", {"id": "novo", "name": "Sonho"})
    server.stop()
    work = tmp_path / "ops"
    work.mkdir()
    r = cli("restore", "--file", str(old), "--force", cwd=work, database_url=url)
    assert r.returncode == 0, r.stderr
    with server_factory(database_url=url).client() as c:
        assert c.get("/health").headers["x-pdvsync-database"] == identity
        assert {p["id"] for p in c.get("/api/products").json()["products"]} == {"antigo"}
