"""The agent commands the installer and uninstaller run (`configure`, `pending`, `quit`) and
the bundle's `--self-test`, as real `python -m agent` processes with every user folder in
tmp_path and the null keyring (no OS secret store is reachable here)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from agent.config import AgentConfig, load, save
from agent.store.store import Store
from protocol import TABLES, parse_change
from tests.installer._agentcli import run_agent

SERVER = "http://127.0.0.1:3001"
T0 = 1_750_000_000_000


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


# -- configure ---------------------------------------------------------------------------


def test_configure_writes_a_site_file_that_load_reads_back(tmp_path):
    site = tmp_path / "site" / "agent.json"
    r = run_agent(
        tmp_path, "configure", "--server", SERVER, "--machine-id", "caixa-2", "--file", str(site)
    )
    assert r.returncode == 0, r.stderr
    assert str(site) in r.stdout
    data = json.loads(site.read_text(encoding="utf-8"))
    assert data == {
        "server_url": SERVER,
        "machine_id": "caixa-2",
    }  # only what was set: defaults stay defaults
    config = load({}, environ={}, config_file=tmp_path / "missing.json", site_file=site)
    assert (config.server_url, config.machine_id, config.start_with_os) == (SERVER, "caixa-2", True)


def test_configure_respects_start_with_os_false(tmp_path):
    site = tmp_path / "agent.json"
    r = run_agent(
        tmp_path,
        "configure",
        "--server",
        SERVER,
        "--machine-id",
        "caixa-3",
        "--start-with-os",
        "false",
        "--file",
        str(site),
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(site.read_text(encoding="utf-8"))["start_with_os"] is False
    assert (
        load({}, environ={}, config_file=tmp_path / "missing.json", site_file=site).start_with_os
        is False
    )


def test_configure_on_upgrade_keeps_every_other_machine_setting(tmp_path):
    site = tmp_path / "agent.json"
    site.write_text(
        json.dumps(
            {
                "server_url": "http://10.0.0.9:3001",
                "machine_id": "caixa-old",
                "local_port": 4100,
                "interval_ms": 2000,
                "start_with_os": False,
                "a_newer_setting": {"x": 1},
            }
        ),
        encoding="utf-8",
    )
    r = run_agent(
        tmp_path, "configure", "--server", SERVER, "--machine-id", "caixa-2", "--file", str(site)
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(site.read_text(encoding="utf-8")) == {
        "server_url": SERVER,
        "machine_id": "caixa-2",
        "local_port": 4100,
        "interval_ms": 2000,
        "start_with_os": False,
        "a_newer_setting": {"x": 1},
    }
    r = run_agent(
        tmp_path,
        "configure",
        "--server",
        SERVER,
        "--machine-id",
        "caixa-2",
        "--start-with-os",
        "1",
        "--file",
        str(site),
    )
    assert r.returncode == 0, r.stderr
    config = load({}, environ={}, config_file=tmp_path / "missing.json", site_file=site)
    assert (config.start_with_os, config.local_port, config.interval_ms) == (True, 4100, 2000)


def test_configure_sets_an_unreadable_machine_file_aside_and_says_so(tmp_path):
    site = tmp_path / "agent.json"
    site.write_text('{"server_url": "http://10.0.0.9:3001", ', encoding="utf-8")  # cut short
    r = run_agent(
        tmp_path, "configure", "--server", SERVER, "--machine-id", "caixa-2", "--file", str(site)
    )
    assert r.returncode == 0, r.stderr
    assert "Aviso" in r.stdout and "agent.json.bad" in r.stdout
    assert json.loads(site.read_text(encoding="utf-8")) == {
        "server_url": SERVER,
        "machine_id": "caixa-2",
    }
    assert (tmp_path / "agent.json.bad").read_text(encoding="utf-8").startswith('{"server_url"')


def test_configure_refuses_an_invalid_hand_edited_value_and_changes_nothing(tmp_path):
    site = tmp_path / "agent.json"
    before = json.dumps({"server_url": SERVER, "machine_id": "caixa-1", "local_port": "quatro mil"})
    site.write_text(before, encoding="utf-8")
    r = run_agent(
        tmp_path, "configure", "--server", SERVER, "--machine-id", "caixa-2", "--file", str(site)
    )
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "local_port" in r.stderr and str(site) in r.stderr and "Traceback" not in r.stderr
    assert site.read_text(encoding="utf-8") == before


@pytest.mark.parametrize(
    ("server", "machine_id", "field"),
    [
        ("192.168.1.100:3001", "caixa-1", "server_url"),
        ("ftp://192.168.1.100", "caixa-1", "server_url"),
        ("http://", "caixa-1", "server_url"),
        (SERVER, "caixa 1", "machine_id"),
        (SERVER, "", "machine_id"),
    ],
)
def test_configure_refuses_bad_values_and_writes_nothing(tmp_path, server, machine_id, field):
    site = tmp_path / "site" / "agent.json"
    r = run_agent(
        tmp_path, "configure", "--server", server, "--machine-id", machine_id, "--file", str(site)
    )
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Configuração inválida" in r.stderr and field in r.stderr
    assert "Traceback" not in r.stderr
    assert not site.exists() and not site.parent.exists()


def configure(tmp_path, site: Path, *extra: str):
    return run_agent(
        tmp_path,
        "configure",
        "--server",
        SERVER,
        "--machine-id",
        "caixa-2",
        *extra,
        "--file",
        str(site),
    )


def test_configure_sets_the_shop_and_keeps_it_on_an_upgrade_that_names_none(tmp_path):
    site = tmp_path / "agent.json"
    site.write_text(json.dumps({"local_port": 4100, "machine_id": "caixa-old"}), encoding="utf-8")
    r = configure(tmp_path, site, "--tenant", "loja-centro")
    assert r.returncode == 0, r.stderr
    assert json.loads(site.read_text(encoding="utf-8")) == {
        "local_port": 4100,
        "machine_id": "caixa-2",
        "server_url": SERVER,
        "tenant_id": "loja-centro",
    }
    config = load({}, environ={}, config_file=tmp_path / "missing.json", site_file=site)
    assert (config.tenant_id, config.tenant, config.local_port) == (
        "loja-centro",
        "loja-centro",
        4100,
    )
    # Run without --tenant (an older installer, a script): the shop in the file stays.
    r = configure(tmp_path, site)
    assert r.returncode == 0, r.stderr
    assert json.loads(site.read_text(encoding="utf-8"))["tenant_id"] == "loja-centro"
    # The installer's field left blank: the default shop, and no earlier shop lingers.
    r = configure(tmp_path, site, "--tenant", "")
    assert r.returncode == 0, r.stderr
    assert json.loads(site.read_text(encoding="utf-8"))["tenant_id"] is None
    config = load({}, environ={}, config_file=tmp_path / "missing.json", site_file=site)
    assert (config.tenant_id, config.tenant, config.local_port) == (None, "default", 4100)


@pytest.mark.parametrize("tenant", ["loja 1", "lója", " loja", "x" * 65])
def test_configure_refuses_a_bad_shop_and_changes_nothing(tmp_path, tenant):
    site = tmp_path / "agent.json"
    before = json.dumps({"server_url": SERVER, "machine_id": "caixa-1", "tenant_id": "loja-1"})
    site.write_text(before, encoding="utf-8")
    r = configure(tmp_path, site, "--tenant", tenant)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Configuração inválida" in r.stderr and "tenant_id" in r.stderr
    assert "Traceback" not in r.stderr
    assert site.read_text(encoding="utf-8") == before


def test_configure_refuses_a_bad_start_with_os_value(tmp_path):
    site = tmp_path / "agent.json"
    r = run_agent(
        tmp_path,
        "configure",
        "--server",
        SERVER,
        "--machine-id",
        "caixa-1",
        "--start-with-os",
        "talvez",
        "--file",
        str(site),
    )
    assert r.returncode == 2 and "Configuração inválida" in r.stderr
    assert not site.exists()


def test_configure_never_writes_the_api_key_in_clear_when_no_keyring_works(tmp_path):
    key = "chave-secreta-" + uuid.uuid4().hex
    site = tmp_path / "site" / "agent.json"
    r = run_agent(
        tmp_path,
        "configure",
        "--server",
        SERVER,
        "--machine-id",
        "caixa-1",
        "--file",
        str(site),
        "--api-key-env",
        "PDVSYNC_TEST_KEY",
        PDVSYNC_TEST_KEY=key,
    )
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Não foi possível guardar a chave de API" in r.stderr
    assert "SYNC_API_KEY" in r.stderr  # says what to do instead
    assert not site.exists()  # the key goes first: no PDV is left configured without its key
    assert key not in r.stdout and key not in r.stderr
    for path in files_under(tmp_path):
        assert key.encode() not in path.read_bytes(), f"the API key leaked into {path}"


@pytest.mark.parametrize("value", [None, "", "   "])
def test_configure_without_a_key_does_no_key_handling(tmp_path, value):
    site = tmp_path / "agent.json"
    extra = {} if value is None else {"PDVSYNC_TEST_KEY": value}
    r = run_agent(
        tmp_path,
        "configure",
        "--server",
        SERVER,
        "--machine-id",
        "caixa-1",
        "--file",
        str(site),
        "--api-key-env",
        "PDVSYNC_TEST_KEY",
        **extra,
    )
    assert r.returncode == 0, r.stderr  # the null keyring would refuse a key: none was tried
    assert "Chave" not in r.stdout and r.stderr == ""
    assert site.exists()


# -- precedence with the installer's site file (in process) -------------------------------


def test_site_file_is_the_lowest_layer_of_the_configuration(tmp_path):
    site = save(
        AgentConfig(
            server_url="http://10.0.0.1:3001",
            machine_id="site-pdv",
            local_port=4100,
            start_with_os=False,
        ),
        tmp_path / "site.json",
    )
    user = tmp_path / "user.json"
    missing = tmp_path / "missing.json"

    only_site = load({}, environ={}, config_file=missing, site_file=site)
    assert (
        only_site.server_url,
        only_site.machine_id,
        only_site.local_port,
        only_site.start_with_os,
    ) == ("http://10.0.0.1:3001", "site-pdv", 4100, False)

    user.write_text(
        json.dumps({"server_url": "http://10.0.0.2:3001", "machine_id": "user-pdv"}),
        encoding="utf-8",
    )
    with_user = load({}, environ={}, config_file=user, site_file=site)
    assert (with_user.server_url, with_user.machine_id) == ("http://10.0.0.2:3001", "user-pdv")
    assert with_user.local_port == 4100  # not in the user file: the site file still counts

    env = {"SYNC_SERVER": "http://10.0.0.3:3001", "NEXT_PUBLIC_SYNC_LOCAL_PORT": "4200"}
    with_env = load({}, environ=env, config_file=user, site_file=site)
    assert (with_env.server_url, with_env.machine_id, with_env.local_port) == (
        "http://10.0.0.3:3001",
        "user-pdv",
        4200,
    )

    flags = {"server_url": "http://10.0.0.4:3001", "machine_id": "flag-pdv", "local_port": None}
    with_flags = load(flags, environ=env, config_file=user, site_file=site)
    assert (with_flags.server_url, with_flags.machine_id, with_flags.local_port) == (
        "http://10.0.0.4:3001",
        "flag-pdv",
        4200,
    )


# -- pending (the uninstaller's warning) -------------------------------------------------


def test_pending_is_zero_for_a_missing_store_and_creates_nothing(tmp_path):
    data = tmp_path / "never-used"
    r = run_agent(tmp_path, "pending", "--data-dir", str(data))
    assert (r.returncode, r.stdout.strip()) == (0, "0"), r.stderr
    assert not data.exists()


def test_pending_counts_the_outbox_and_the_dead_letters(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    store = Store(data / "agent.db")
    try:
        ids = [str(uuid.uuid4()) for _ in range(3)]
        store.write(
            [
                (
                    ids[i],
                    parse_change(TABLES["products"], {"id": str(uuid.uuid4()), "name": f"Pão {i}"}),
                )
                for i in range(3)
            ],
            T0,
        )
    finally:
        store.close()
    r = run_agent(tmp_path, "pending", "--data-dir", str(data))
    assert (r.returncode, r.stdout.strip()) == (0, "3"), r.stderr

    store = Store(data / "agent.db")
    try:  # one refused by the server: a dead letter still is a change not on the server
        store.acknowledge(
            [{"eventId": ids[0], "status": "rejected", "reason": "invalid_field"}], T0 + 1
        )
        assert store.pending_count() == 2 and len(store.dead_letters()) == 1
    finally:
        store.close()
    r = run_agent(tmp_path, "pending", "--data-dir", str(data))
    assert (r.returncode, r.stdout.strip()) == (0, "3"), r.stderr


def test_pending_reads_without_writing_even_while_the_agent_holds_the_store(tmp_path):
    data = tmp_path / "data"
    store = Store(data / "agent.db")  # open, as a running agent keeps it
    try:
        store.write(
            [(str(uuid.uuid4()), parse_change(TABLES["products"], {"id": "p1", "name": "Pão"}))], T0
        )
        # (the -shm index is shared memory every WAL reader marks: not data)
        before = {p.name: p.read_bytes() for p in data.iterdir() if not p.name.endswith("-shm")}
        r = run_agent(tmp_path, "pending", "--data-dir", str(data))
        assert (r.returncode, r.stdout.strip()) == (0, "1"), r.stderr
        assert {
            p.name: p.read_bytes() for p in data.iterdir() if not p.name.endswith("-shm")
        } == before
    finally:
        store.close()


def test_pending_says_when_it_cannot_tell(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "agent.db").write_bytes(b"this is not a database" * 100)
    r = run_agent(tmp_path, "pending", "--data-dir", str(data))
    assert r.returncode == 1 and r.stdout == ""
    assert "Não foi possível ler o banco local" in r.stderr and "Traceback" not in r.stderr


# -- the bundle's smoke test and quit ----------------------------------------------------


def test_self_test_prints_one_ok_line(tmp_path):
    r = run_agent(tmp_path, "--self-test", timeout=60)
    assert r.returncode == 0, (r.stdout, r.stderr)
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1, r.stdout
    assert lines[0].startswith("PDV Sync") and "self-test OK" in lines[0]
    assert not (
        tmp_path / "home" / ".local" / "share" / "pdvsync"
    ).exists()  # the store was temporary


def test_quit_without_a_running_tray_fails_quickly(tmp_path):
    # A user name (and TMPDIR) of its own: never the developer's own tray.
    user = "pdvsync-test-" + uuid.uuid4().hex[:8]
    r = run_agent(
        tmp_path, "quit", timeout=20, USER=user, LOGNAME=user, USERNAME=user
    )  # a hang raises
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr


def test_configure_reports_a_folder_it_cannot_write(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("", encoding="utf-8")
    r = run_agent(
        tmp_path,
        "configure",
        "--server",
        SERVER,
        "--machine-id",
        "caixa-1",
        "--file",
        str(blocker / "agent.json"),
    )
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Não foi possível gravar a configuração" in r.stderr and "Traceback" not in r.stderr
