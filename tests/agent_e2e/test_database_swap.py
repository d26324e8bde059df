"""The server comes back on another database (a lost .env falling back to an empty SQLite
file, a replaced server PC): the PDVs must not follow it — no wiped mirror, no sales pushed
into it — and must say so, until the server is back on the shop's database or a manager
accepts the new one (Forçar reconciliação)."""

from __future__ import annotations

from pathlib import Path

from tests.agent_e2e.conftest import converged, differences, push, sale, server_rows, wait_until
from tests.serverproc import ServerProcess


def start_on(
    tmp_path: Path, name: str, database_url: str, port: int, started: list
) -> ServerProcess:
    last = None
    for _ in range(20):  # the previous server's socket may linger a moment
        proc = ServerProcess(tmp_path / name, database_url=database_url, port=port)
        try:
            started.append(proc.start())
            return proc
        except RuntimeError as exc:
            last = exc
            import time

            time.sleep(0.25)
    raise AssertionError(f"server did not start on port {port}: {last}")


def database_changed(agent) -> bool:
    s = agent.status()
    return s["state"] == "offline" and s.get("lastErrorCode") == "database_changed"


def test_pdvs_stop_instead_of_following_a_server_on_another_database(
    servers, agent_factory, tmp_path
):
    shop_db, empty_db = f"sqlite:///{tmp_path / 'shop.db'}", f"sqlite:///{tmp_path / 'empty.db'}"
    shop = servers.start(shop_db)
    a, b = agent_factory(shop, "caixa-1"), agent_factory(shop, "caixa-2")
    push(a, "products", {"id": "pao", "name": "Pão", "price": "0.75", "stock_quantity": 10})
    sale(a, "o1", [("pao", 1)])
    wait_until(lambda: converged([a, b], shop), message=lambda: differences([a, b], shop))

    # The server restarts on an empty database, same address.
    port = shop.port
    shop.kill()
    wrong = start_on(tmp_path, "wrong", empty_db, port, servers.started)
    sale(a, "o2", [("pao", 1)])  # the PDV keeps selling
    wait_until(
        lambda: database_changed(a) and database_changed(b),
        timeout=30,
        message=lambda: f"{a.status()}\n{b.status()}",
    )
    for agent in (a, b):  # nothing forgotten
        assert "o1" in agent.rows("orders") and "pao" in agent.rows("products")
    assert a.rows("products")["pao"]["stock_quantity"] == 8 and "o2" in a.rows("orders")
    assert a.status()["pending"] == 3  # the sale waits on this PDV
    assert server_rows(wrong, "orders") == {} and server_rows(wrong, "products") == {}

    # Back on the shop's database: everything resumes, nothing lost, stock exact.
    wrong.kill()
    shop = start_on(tmp_path, "shop-again", shop_db, port, servers.started)
    wait_until(
        lambda: converged([a, b], shop), timeout=40, message=lambda: differences([a, b], shop)
    )
    assert set(server_rows(shop, "orders")) == {"o1", "o2"}
    assert server_rows(shop, "products")["pao"]["stock_quantity"] == 8
    assert a.status()["state"] == "synced" and b.status()["state"] == "synced"


def test_a_manager_can_accept_the_new_database(servers, agent_factory, tmp_path):
    old_db, new_db = f"sqlite:///{tmp_path / 'old.db'}", f"sqlite:///{tmp_path / 'new.db'}"
    old = servers.start(old_db)
    a = agent_factory(old, "caixa-1")
    push(a, "products", {"id": "bolo", "name": "Bolo"})
    wait_until(lambda: converged([a], old), message=lambda: differences([a], old))

    port = old.port
    old.kill()
    new = start_on(tmp_path, "new", new_db, port, servers.started)
    push(a, "products", {"id": "sonho", "name": "Sonho"})  # made while stopped
    wait_until(lambda: database_changed(a), timeout=30, message=lambda: str(a.status()))
    assert server_rows(new, "products") == {}

    report = a.post("/api/sync/reconcile", {"strategy": "full_resync"})
    assert report.get("status") in ("consistent", "repaired"), report
    wait_until(lambda: converged([a], new), timeout=30, message=lambda: differences([a], new))
    assert set(server_rows(new, "products")) == {"sonho"}  # its pending sale went to the new one
    assert set(a.rows("products")) == {"sonho"}  # and it now mirrors the new database
    assert a.status()["state"] == "synced"

    # From now on the new database is this PDV's: the old one is the stranger.
    new.kill()
    start_on(tmp_path, "old-again", old_db, port, servers.started)
    wait_until(lambda: database_changed(a), timeout=30, message=lambda: str(a.status()))


def test_an_agent_upgraded_without_an_identity_does_not_adopt_an_empty_server(
    servers, agent_factory, tmp_path
):
    """An agent from before database identities has a cursor but no identity: if the first
    server it meets after the upgrade is on an empty database, it must not adopt it."""
    import sqlite3

    shop_db, empty_db = f"sqlite:///{tmp_path / 'shop.db'}", f"sqlite:///{tmp_path / 'empty.db'}"
    shop = servers.start(shop_db)
    a = agent_factory(shop, "caixa-1")
    push(a, "products", {"id": "pao", "name": "Pão", "price": "0.75", "stock_quantity": 10})
    sale(a, "o1", [("pao", 1)])
    wait_until(lambda: converged([a], shop), message=lambda: differences([a], shop))
    a.stop()
    with sqlite3.connect(a.data_dir / "agent.db") as db:  # as the previous version left it
        db.execute("DELETE FROM sync_state WHERE key = 'server_database'")
    db.close()

    port = shop.port
    shop.kill()
    start_on(tmp_path, "wrong", empty_db, port, servers.started)
    a.restart()
    sale(a, "o2", [("pao", 1)])
    wait_until(lambda: database_changed(a), timeout=30, message=lambda: str(a.status()))
    assert (
        set(a.rows("orders")) == {"o1", "o2"} and a.rows("products")["pao"]["stock_quantity"] == 8
    )


def test_pdvs_resync_after_a_restore_and_keep_their_offline_sales(servers, agent_factory, tmp_path):
    """The server is restored from its own backup while both PDVs sold offline: each is told
    to resync (its cursor predates the restore, whichever pushes first), every offline sale
    arrives once, stock exact, and no PDV keeps showing what the restore undid."""
    from tests.server.test_ops import cli

    shop_db = f"sqlite:///{tmp_path / 'shop.db'}"
    shop = servers.start(shop_db)
    a, b = agent_factory(shop, "caixa-1"), agent_factory(shop, "caixa-2")
    push(a, "products", {"id": "pao", "name": "Pão", "price": "0.75", "stock_quantity": 100})
    for n in range(3):
        sale(a, f"base-{n}", [("pao", 1)])
    wait_until(lambda: converged([a, b], shop), message=lambda: differences([a, b], shop))
    work = tmp_path / "ops"
    work.mkdir()
    assert cli("backup", "--file", "shop-backup.db", cwd=work, database_url=shop_db).returncode == 0
    # Sales after the backup: the restore takes the server back before them (that is what a
    # restore to an older backup does), so the PDVs' cursors are now ahead of it.
    sale(b, "after-backup", [("pao", 1)])
    wait_until(lambda: converged([a, b], shop), message=lambda: differences([a, b], shop))

    port = shop.port
    shop.kill()
    for agent, prefix in ((a, "a-off"), (b, "b-off")):
        for n in range(2):
            sale(agent, f"{prefix}-{n}", [("pao", 1)])
    r = cli("restore", "--file", "shop-backup.db", "--force", cwd=work, database_url=shop_db)
    assert r.returncode == 0, r.stderr
    shop = start_on(tmp_path, "restored", shop_db, port, servers.started)

    wait_until(
        lambda: converged([a, b], shop), timeout=60, message=lambda: differences([a, b], shop)
    )
    orders = set(server_rows(shop, "orders"))
    assert orders == {f"base-{n}" for n in range(3)} | {
        f"{p}-{n}" for p in ("a-off", "b-off") for n in range(2)
    }
    assert server_rows(shop, "products")["pao"]["stock_quantity"] == 100 - 7
    assert a.status()["state"] == "synced" and b.status()["state"] == "synced"
