"""Agent configuration: flags > environment > config file > defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.config import AgentConfig, ConfigError, from_env, load, save


@pytest.fixture(autouse=True)
def no_real_config_folders(tmp_path, monkeypatch):
    """Platform config folders (user and machine-wide) point into tmp: nothing real is read."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-home"))
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "xdg-site"))


def write(path: Path, data) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_defaults_without_file_or_environment(tmp_path):
    config = load({}, environ={}, config_file=tmp_path / "missing.json")
    assert config == AgentConfig()
    assert config.server_url == "http://127.0.0.1:3001" and config.local_port == 4000
    assert (config.interval_ms, config.retry_attempts, config.divergence_strategy) == (
        5000,
        3,
        "refresh_mismatched",
    )


def test_flags_win_over_environment_over_file_over_defaults(tmp_path):
    file = write(
        tmp_path / "agent.json",
        {
            "server_url": "http://10.0.0.1:3001",
            "machine_id": "from-file",
            "interval_ms": 7000,
            "retry_attempts": 5,
            "auto_reconcile": False,
        },
    )
    env = {
        "SYNC_SERVER": "http://10.0.0.2:3001",
        "SYNC_MACHINE_ID": "from-env",
        "SYNC_INTERVAL_MS": "8000",
    }
    flags = {"server_url": "http://10.0.0.3:3001", "machine_id": None, "local_port": None}
    config = load(flags, environ=env, config_file=file)
    assert config.server_url == "http://10.0.0.3:3001"  # flag
    assert config.machine_id == "from-env"  # a flag left unset does not hide the environment
    assert config.interval_ms == 8000  # environment over file
    assert config.retry_attempts == 5 and config.auto_reconcile is False  # file over defaults
    assert config.local_port == 4000  # default


def test_next_public_prefix_is_accepted_and_the_plain_name_wins():
    env = {
        "NEXT_PUBLIC_SYNC_SERVER": "http://192.168.1.100:3001",
        "NEXT_PUBLIC_SYNC_AUTO": "false",
        "NEXT_PUBLIC_SYNC_INTERVAL_MS": "10000",
        "NEXT_PUBLIC_SYNC_RETRY_ATTEMPTS": "4",
        "NEXT_PUBLIC_SYNC_RETRY_BASE_DELAY_MS": "250",
        "NEXT_PUBLIC_SYNC_RETRY_MAX_DELAY_MS": "9000",
        "NEXT_PUBLIC_SYNC_AUTO_RECONCILE": "true",
        "NEXT_PUBLIC_SYNC_RECONCILE_INTERVAL_MS": "120000",
        "NEXT_PUBLIC_SYNC_DIVERGENCE_STRATEGY": "full_resync",
        "SYNC_INTERVAL_MS": "6000",
    }
    assert from_env(env) == {
        "server_url": "http://192.168.1.100:3001",
        "auto_sync": False,
        "interval_ms": 6000,
        "retry_attempts": 4,
        "retry_base_delay_ms": 250,
        "retry_max_delay_ms": 9000,
        "auto_reconcile": True,
        "reconcile_interval_ms": 120000,
        "divergence_strategy": "full_resync",
    }
    config = load({}, environ=env, config_file=Path("/nonexistent/agent.json"))
    assert config.auto_sync is False and config.interval_ms == 6000


def test_blank_environment_values_are_ignored(tmp_path):
    assert from_env({"SYNC_SERVER": "  ", "SYNC_INTERVAL_MS": ""}) == {}


@pytest.mark.parametrize(
    "env,field",
    [
        ({"SYNC_INTERVAL_MS": "cinco"}, "interval_ms"),
        ({"SYNC_AUTO": "talvez"}, "auto_sync"),
        ({"NEXT_PUBLIC_SYNC_AUTO_RECONCILE": "2"}, "auto_reconcile"),
        ({"SYNC_LOCAL_PORT": "70000"}, "local_port"),
        ({"SYNC_INTERVAL_MS": "10"}, "interval_ms"),
        ({"SYNC_RETRY_ATTEMPTS": "-1"}, "retry_attempts"),
        ({"SYNC_DIVERGENCE_STRATEGY": "merge"}, "divergence_strategy"),
        ({"SYNC_SERVER": "192.168.1.100:3001"}, "server_url"),
        ({"SYNC_SERVER": "ftp://host"}, "server_url"),
        ({"SYNC_MACHINE_ID": "caixa 1"}, "machine_id"),
    ],
)
def test_bad_environment_values_name_the_field(env, field, tmp_path):
    with pytest.raises(ConfigError) as info:
        load({}, environ=env, config_file=tmp_path / "none.json")
    assert info.value.field == field
    assert str(info.value).startswith(field + ":")


@pytest.mark.parametrize(
    "data,field",
    [
        ({"interval_ms": "5000"}, "interval_ms"),  # hand-edited file: a number as text
        ({"local_port": 4000.5}, "local_port"),
        ({"auto_sync": "yes"}, "auto_sync"),
        ({"retry_attempts": True}, "retry_attempts"),
        ({"server_url": 3001}, "server_url"),
        ({"machine_id": " pdv-1"}, "machine_id"),
        ({"machine_id": "x" * 65}, "machine_id"),
        ({"reconcile_interval_ms": 50}, "reconcile_interval_ms"),
    ],
)
def test_bad_file_values_name_the_field(data, field, tmp_path):
    with pytest.raises(ConfigError) as info:
        load({}, environ={}, config_file=write(tmp_path / "agent.json", data))
    assert info.value.field == field


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", "null"])
def test_an_unreadable_file_is_a_config_error(text, tmp_path):
    path = tmp_path / "agent.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load({}, environ={}, config_file=path)
    assert info.value.field == "config_file"


def test_unknown_keys_in_the_file_are_ignored(tmp_path):
    config = load(
        {},
        environ={},
        config_file=write(tmp_path / "a.json", {"theme": "dark", "local_port": 4100}),
    )
    assert config.local_port == 4100


def test_save_round_trip(tmp_path):
    config = AgentConfig(
        server_url="http://192.168.1.100:3001",
        machine_id="caixa-1",
        data_dir=tmp_path / "data",
        log_dir=tmp_path / "logs",
        local_port=4010,
        auto_sync=False,
        interval_ms=3000,
        retry_attempts=7,
        retry_base_delay_ms=200,
        retry_max_delay_ms=8000,
        auto_reconcile=False,
        reconcile_interval_ms=300000,
        divergence_strategy="none",
        manager_pin_hash="pbkdf2$abc",
        start_with_os=False,
    ).validate()
    path = save(config, tmp_path / "cfg" / "agent.json")
    assert path == tmp_path / "cfg" / "agent.json"
    assert [p.name for p in path.parent.iterdir()] == ["agent.json"]  # no temp file left behind
    assert load({}, environ={}, config_file=path) == config
    assert json.loads(path.read_text(encoding="utf-8"))["data_dir"] == str(tmp_path / "data")
    # Saving again replaces the file.
    save(AgentConfig(), path)
    assert load({}, environ={}, config_file=path) == AgentConfig()


def test_the_sync_settings_are_shared_with_the_engine_and_its_own_knobs_stay_out_of_files(
    tmp_path,
):
    """AgentConfig is the engine's SyncSettings (nothing copied between them); the key and
    the engine-only knobs are never written to, nor read from, a settings file."""
    from agent.sync.settings import SyncSettings
    from protocol.vocabulary import DivergenceStrategy

    config = AgentConfig(
        machine_id="caixa-1", api_key="secret-key", push_batch=7, divergence_strategy="none"
    ).validate()
    assert isinstance(config, SyncSettings)
    assert config.divergence_strategy is DivergenceStrategy.NONE
    assert "secret-key" not in repr(config)
    data = config.to_file_dict()
    assert not {"api_key", "push_batch", "clock_skew_ms"} & set(data)
    path = save(config, tmp_path / "agent.json")
    assert json.loads(path.read_text(encoding="utf-8"))["divergence_strategy"] == "none"
    planted = write(tmp_path / "b.json", {"api_key": "from-file", "push_batch": 1})
    loaded = load({}, environ={}, config_file=planted)
    assert (loaded.api_key, loaded.push_batch) == (None, 500)


def test_cors_origins_are_validated_and_named_in_the_error():
    from agent.loopback import parse_origins

    assert parse_origins(" http://192.168.1.50:3000, https://Caixa.local ,null") == (
        "http://192.168.1.50:3000",
        "https://caixa.local",
        "null",
    )
    ok = load(
        {},
        environ={"SYNC_CORS_ORIGINS": "http://192.168.1.50:3000"},
        config_file=Path("/nonexistent.json"),
        site_file=Path("/nonexistent-site.json"),
    )
    assert ok.cors_origins == "http://192.168.1.50:3000"
    for bad in ("192.168.1.50:3000", "ftp://x", "http://x/pos", "http://x?a=1"):
        with pytest.raises(ConfigError) as err:
            load(
                {},
                environ={"NEXT_PUBLIC_SYNC_CORS_ORIGINS": bad},
                config_file=Path("/nonexistent.json"),
                site_file=Path("/nonexistent-site.json"),
            )
        assert err.value.field == "cors_origins"


# -- the shop (tenant) -----------------------------------------------------------------------


def test_the_shop_is_the_default_one_unless_set():
    config = load({}, environ={}, config_file=Path("/nonexistent.json"), site_file=Path("/no.json"))
    assert config.tenant_id is None and config.tenant == "default"
    assert AgentConfig(tenant_id="loja-1").validate().tenant == "loja-1"
    assert AgentConfig(tenant_id="").validate().tenant_id is None  # an emptied field


def test_the_shop_follows_flags_over_environment_over_user_file_over_machine_file(tmp_path):
    site = write(tmp_path / "site.json", {"tenant_id": "loja-site"})
    user = write(tmp_path / "user.json", {"tenant_id": "loja-user"})
    env = {"SYNC_TENANT_ID": "loja-env"}

    def shop(flags, environ, config_file) -> str | None:
        return load(flags, environ=environ, config_file=config_file, site_file=site).tenant_id

    assert shop({}, {}, tmp_path / "none.json") == "loja-site"
    assert shop({}, {}, user) == "loja-user"
    assert shop({}, env, user) == "loja-env"
    assert shop({"tenant_id": None}, env, user) == "loja-env"  # a flag left unset
    assert shop({"tenant_id": "loja-flag"}, env, user) == "loja-flag"
    # The seed's prefix, and the plain name winning over it.
    assert from_env({"NEXT_PUBLIC_SYNC_TENANT_ID": "loja-seed"}) == {"tenant_id": "loja-seed"}
    both = {"NEXT_PUBLIC_SYNC_TENANT_ID": "loja-seed", "SYNC_TENANT_ID": "loja-env"}
    assert from_env(both) == {"tenant_id": "loja-env"}
    # A null in a file is no setting: the layer below stays.
    assert shop({}, {}, write(tmp_path / "null.json", {"tenant_id": None})) == "loja-site"


@pytest.mark.parametrize(
    "value",
    [" loja-1", "loja 1", "loja/1", "lója", "x" * 65, "   ", "loja-1\n", 7, ["loja"]],
)
def test_a_bad_shop_is_a_config_error_naming_the_field(value, tmp_path):
    with pytest.raises(ConfigError) as info:
        load({}, environ={}, config_file=write(tmp_path / "agent.json", {"tenant_id": value}))
    assert info.value.field == "tenant_id"
    assert str(info.value).startswith("tenant_id:")


@pytest.mark.parametrize("value", ["loja 1", "ç", "x" * 65])
def test_a_bad_shop_in_the_environment_names_the_field(value, tmp_path):
    with pytest.raises(ConfigError) as info:
        load({}, environ={"SYNC_TENANT_ID": value}, config_file=tmp_path / "none.json")
    assert info.value.field == "tenant_id"


@pytest.mark.parametrize("value", ["a", "loja-1", "Loja_2.centro", "x" * 64, "default"])
def test_valid_shops_are_kept_exactly(value):
    assert AgentConfig(tenant_id=value).validate().tenant_id == value


def test_the_shop_is_saved_with_the_other_settings(tmp_path):
    config = AgentConfig(machine_id="caixa-1", tenant_id="loja-9").validate()
    path = save(config, tmp_path / "agent.json")
    assert json.loads(path.read_text(encoding="utf-8"))["tenant_id"] == "loja-9"
    assert load({}, environ={}, config_file=path).tenant_id == "loja-9"
