"""The API key lives in the OS keyring, never in a plaintext file."""

from __future__ import annotations

import keyring
import keyring.backend
import keyring.backends.fail
import pytest

from agent import secrets
from agent.secrets import SecretStoreError, backend_name, get_api_key, set_api_key

KEY = "pdv-key-7f3c9a1e5b2d4068"


@pytest.fixture
def isolated_home(tmp_path, monkeypatch):
    """HOME, XDG folders and the working directory inside tmp, to look for stray files."""
    home = tmp_path / "home"
    home.mkdir()
    for var, sub in (
        ("HOME", ""),
        ("XDG_DATA_HOME", ".local/share"),
        ("XDG_CONFIG_HOME", ".config"),
        ("XDG_CACHE_HOME", ".cache"),
        ("APPDATA", "AppData"),
        ("LOCALAPPDATA", "AppData/Local"),
    ):
        monkeypatch.setenv(var, str(home / sub))
    monkeypatch.chdir(home)
    return tmp_path


def files_containing(root, text: str) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            try:
                if text.encode() in path.read_bytes():
                    hits.append(str(path))
            except OSError:
                pass
    return hits


def test_set_and_get_with_a_working_keyring(memory_keyring, isolated_home):
    assert get_api_key() is None
    set_api_key(KEY)
    assert get_api_key() == KEY
    assert memory_keyring.passwords == {(secrets.SERVICE, secrets.USERNAME): KEY}
    set_api_key("another-key")
    assert get_api_key() == "another-key"
    set_api_key(None)  # removing the key
    assert get_api_key() is None
    set_api_key(None)  # removing twice is fine
    assert files_containing(isolated_home, KEY) == []
    assert backend_name().endswith("MemoryKeyring")


def test_without_a_keyring_get_is_none_and_set_fails_without_plaintext(isolated_home):
    keyring.set_keyring(keyring.backends.fail.Keyring())  # the headless-Linux situation
    assert get_api_key() is None
    with pytest.raises(SecretStoreError) as info:
        set_api_key(KEY)
    assert "SYNC_API_KEY" in str(info.value)
    assert KEY not in str(info.value)
    assert files_containing(isolated_home, KEY) == []


class PlaintextKeyring(keyring.backend.KeyringBackend):
    """Like keyrings.alt's file backend: works, but writes the secret in clear to disk."""

    priority = -1  # type: ignore[assignment]  # never auto-selected (see conftest)

    def __init__(self, folder) -> None:
        super().__init__()
        self.file = folder / "keyring_pass.cfg"

    def get_password(self, service, username):
        return self.file.read_text() if self.file.exists() else None

    def set_password(self, service, username, password):
        self.file.write_text(password)

    def delete_password(self, service, username):
        self.file.unlink(missing_ok=True)


def test_a_plaintext_backend_is_never_used(isolated_home):
    keyring.set_keyring(PlaintextKeyring(isolated_home / "home"))
    with pytest.raises(SecretStoreError):
        set_api_key(KEY)
    assert get_api_key() is None
    assert files_containing(isolated_home, KEY) == []


class BrokenKeyring(keyring.backend.KeyringBackend):
    """A real backend that fails at run time (locked vault, D-Bus gone...)."""

    priority = -1  # type: ignore[assignment]  # never auto-selected (see conftest)

    def get_password(self, service, username):
        raise keyring.errors.KeyringLocked("locked")

    def set_password(self, service, username, password):
        raise keyring.errors.PasswordSetError("locked")

    def delete_password(self, service, username):
        raise keyring.errors.PasswordDeleteError("locked")


def test_a_backend_failing_at_run_time_is_reported_not_raised_raw(isolated_home):
    keyring.set_keyring(BrokenKeyring())
    assert get_api_key() is None
    with pytest.raises(SecretStoreError):
        set_api_key(KEY)
    set_api_key(None)  # nothing to delete: not an error
    assert files_containing(isolated_home, KEY) == []
