"""Reconcile tells the truth (invariant 8): it finds a divergence planted in an agent's store,
`refresh_mismatched` repairs exactly it, and concurrent writes never raise a false alarm."""

from __future__ import annotations

import sqlite3
import threading
import time

from .conftest import converged, describe, differences, new_id, push, wait_until


def plant(agent, *, rename: str, delete: str, bogus: str) -> None:
    """Change the agent's view table behind its back (the agent must be stopped)."""
    db = sqlite3.connect(agent.data_dir / "agent.db")
    try:
        with db:
            assert (
                db.execute(
                    "UPDATE products SET name = 'Adulterado' WHERE id = ?", (rename,)
                ).rowcount
                == 1
            )
            assert db.execute("DELETE FROM products WHERE id = ?", (delete,)).rowcount == 1
            db.execute(
                "INSERT INTO products (id, updated_at, name, stock_quantity) VALUES (?, ?, 'Fantasma', 7)",
                (bogus, int(time.time() * 1000)),
            )
    finally:
        db.close()


def reconcile(agent, strategy: str | None = None) -> dict:
    return agent.post("/api/sync/reconcile", {"strategy": strategy} if strategy else None)


def test_planted_divergence_is_found_and_exactly_repaired(server, agent_factory):
    a, b = agent_factory.many(server, ["caixa-1", "caixa-2"])
    ids = [new_id(f"p{n}-") for n in range(30)]
    push(
        a,
        "products",
        *(
            {"id": i, "name": f"Produto {n}", "price": "2.00", "stock_quantity": n}
            for n, i in enumerate(ids)
        ),
    )
    oid = new_id("ord-")
    push(a, "orders", {"id": oid, "customerName": "Maria", "total": "4.00"})
    wait_until(lambda: converged([a, b], server), message=lambda: differences([a, b], server))
    assert reconcile(b, "none")["status"] == "consistent"
    before = b.rows("products")

    for strategy in ("none", "refresh_mismatched"):
        b.stop()
        bogus = new_id("fantasma-")
        plant(b, rename=ids[3], delete=ids[7], bogus=bogus)
        b.restart()
        assert b.rows("products")[ids[3]]["name"] == "Adulterado"
        result = reconcile(b, strategy)
        assert result["isConsistent"] is False or strategy != "none"
        assert [m["table"] for m in result["mismatches"]] == ["products"]
        if strategy == "none":
            assert result["status"] == "divergent" and result["repair"] is None
            s = b.status()
            assert s["state"] == "divergent" and s["label"] == "Com Divergência"
            # Nothing was touched; the next run repairs.
            assert b.rows("products")[ids[3]]["name"] == "Adulterado"
            result = reconcile(b, "refresh_mismatched")
        assert result["status"] == "repaired" and result["isConsistent"] is True
        (table,) = result["repair"]["tables"]
        assert table["table"] == "products"
        assert sorted(table["fixed"]) == sorted([ids[3], ids[7]])
        assert table["removed"] == [bogus]
        assert b.rows("products") == before
        again = reconcile(b)
        assert again["status"] == "consistent" and again["mismatches"] == []
        s = b.status()
        assert s["state"] == "synced" and s["label"] == "Sincronizado"

    history = b.get("/api/sync/reconcile/history")["data"]
    assert [h["status"] for h in history[:3]] == ["consistent", "repaired", "consistent"]


def test_no_false_divergence_while_others_write(server, agent_factory):
    writers = agent_factory.many(server, ["caixa-1", "caixa-2"])
    checker = agent_factory(server, "caixa-3")
    agents = [*writers, checker]
    stock = new_id("pao-")
    push(writers[0], "products", {"id": stock, "name": "Pão", "stock_quantity": 10_000})
    wait_until(lambda: converged(agents, server), message=lambda: differences(agents, server))

    stop = threading.Event()
    errors: list[BaseException] = []
    written = [0, 0]

    def write(n: int) -> None:
        agent = writers[n]
        try:
            for i in range(400):  # bounded; stopped sooner
                if stop.is_set():
                    return
                if i % 3 == 0:
                    push(agent, "products", {"id": stock, "_op": "increment", "stock_quantity": -1})
                elif i % 3 == 1:
                    push(agent, "products", {"id": new_id(f"w{n}-"), "name": f"Novo {i}"})
                else:
                    push(
                        agent,
                        "supplies",
                        {"id": new_id(f"s{n}-"), "name": "Açúcar", "stock": "1.000"},
                    )
                written[n] += 1
                time.sleep(0.01)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    statuses = []
    try:
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and len(statuses) < 15:
            result = reconcile(checker, "none")
            statuses.append(result["status"])
            assert result["status"] in ("consistent", "retry"), result
            assert checker.status()["state"] != "divergent"
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not errors, errors
    assert all(written) and statuses
    wait_until(
        lambda: converged(agents, server), timeout=30, message=lambda: differences(agents, server)
    )
    final = reconcile(checker, "none")
    assert final["status"] == "consistent", final
    assert checker.status()["state"] == "synced", describe([checker])
