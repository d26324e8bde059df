"""The installer's API-key handover (agent.handoff): never in clear, and on Windows taken
into the Credential Manager once, even when the sealed copy cannot be deleted. DPAPI is
Windows-only, so the Windows path runs here with a stand-in for it."""

from __future__ import annotations

import types

import keyring
import keyring.backends.null
import pytest

from agent import handoff
from agent.secrets import SERVICE, USERNAME, SecretStoreError
from tests.memkeyring import MemoryKeyring


@pytest.fixture
def use_keyring():
    previous = keyring.get_keyring()

    def use(backend):
        keyring.set_keyring(backend)
        return backend

    yield use
    keyring.set_keyring(previous)


@pytest.mark.skipif(
    handoff.sys.platform == "win32",
    reason="checks what happens off Windows (no DPAPI); on Windows the sealed-key tests cover it",
)
def test_take_staged_key_does_nothing_off_windows(tmp_path):
    (tmp_path / "api-key.sealed").write_bytes(b"sealed")
    assert handoff.take_staged_key(tmp_path, marker=tmp_path / "taken") is False
    assert (tmp_path / "api-key.sealed").exists()


@pytest.mark.skipif(
    handoff.sys.platform == "win32",
    reason="checks what happens off Windows (no DPAPI); on Windows the sealed-key tests cover it",
)
def test_stage_key_with_no_usable_keyring_refuses_and_writes_nothing(tmp_path, use_keyring):
    use_keyring(keyring.backends.null.Keyring())
    with pytest.raises(SecretStoreError, match="SYNC_API_KEY"):
        handoff.stage_key("chave-secreta", folder=tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def windows(monkeypatch):
    """handoff as on Windows: its own `sys.platform`, and a reversible stand-in for DPAPI."""
    monkeypatch.setattr(handoff, "sys", types.SimpleNamespace(platform="win32"))

    def fake_dpapi(data: bytes, *, protect: bool) -> bytes:
        return (b"SEALED:" + data[::-1]) if protect else data.removeprefix(b"SEALED:")[::-1]

    monkeypatch.setattr(handoff, "_dpapi", fake_dpapi)


def test_a_sealed_key_is_taken_once_even_when_it_cannot_be_deleted(
    tmp_path, windows, use_keyring, monkeypatch
):
    ring = use_keyring(MemoryKeyring())
    site, marker = tmp_path / "site", tmp_path / "user" / "taken"
    handoff.stage_key("chave-do-instalador", folder=site)
    assert b"chave-do-instalador" not in (site / "api-key.sealed").read_bytes()

    # The file belongs to the administrator who ran the installer: the cashier cannot delete it.
    def no_permission(self, *a, **kw):
        raise PermissionError("access denied")

    monkeypatch.setattr(handoff.Path, "unlink", no_permission)
    assert handoff.take_staged_key(site, marker=marker) is True
    assert ring.passwords[(SERVICE, USERNAME)] == "chave-do-instalador"
    assert b"chave" not in marker.read_bytes()

    ring.passwords[(SERVICE, USERNAME)] = "chave-trocada-depois"  # changed in the tray later
    assert handoff.take_staged_key(site, marker=marker) is False
    assert ring.passwords[(SERVICE, USERNAME)] == "chave-trocada-depois"

    handoff.stage_key("chave-nova", folder=site)  # a reinstall with a new key is taken again
    assert handoff.take_staged_key(site, marker=marker) is True
    assert ring.passwords[(SERVICE, USERNAME)] == "chave-nova"


def test_a_sealed_key_is_deleted_once_taken_when_allowed(tmp_path, windows, use_keyring):
    ring = use_keyring(MemoryKeyring())
    handoff.stage_key("chave", folder=tmp_path)
    assert handoff.take_staged_key(tmp_path, marker=tmp_path / "taken") is True
    assert ring.passwords[(SERVICE, USERNAME)] == "chave"
    assert not (tmp_path / "api-key.sealed").exists() and not (tmp_path / "taken").exists()
