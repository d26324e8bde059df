"""The API key in the OS keyring (Windows Credential Manager on the PDVs).

There is no plaintext fallback: when no keyring backend works, saving fails with a clear
message and the key must come from `SYNC_API_KEY` (automation) instead.
"""

from __future__ import annotations

import contextlib
import logging

import keyring
from keyring.errors import KeyringError, NoKeyringError

log = logging.getLogger(__name__)
SERVICE = "pdvsync"
USERNAME = "api-key"


class SecretStoreError(RuntimeError):
    pass


def _usable() -> bool:
    backend = keyring.get_keyring()
    name = type(backend).__module__ + "." + type(backend).__name__
    # keyrings.alt's plaintext file backends are never acceptable for the shop's key.
    return (
        "fail" not in name.lower()
        and "plaintext" not in name.lower()
        and "null" not in name.lower()
    )


def backend_name() -> str:
    backend = keyring.get_keyring()
    return f"{type(backend).__module__}.{type(backend).__name__}"


def get_api_key() -> str | None:
    if not _usable():
        return None
    try:
        return keyring.get_password(SERVICE, USERNAME)
    except KeyringError as exc:
        log.warning("keyring unavailable (%s)", type(exc).__name__)
        return None


def set_api_key(key: str | None) -> None:
    if not _usable():
        raise SecretStoreError(
            "nenhum cofre de senhas do sistema disponível; use a variável SYNC_API_KEY"
        )
    try:
        if key:
            keyring.set_password(SERVICE, USERNAME, key)
        else:
            with contextlib.suppress(keyring.errors.PasswordDeleteError):
                keyring.delete_password(SERVICE, USERNAME)
    except (NoKeyringError, KeyringError) as exc:
        raise SecretStoreError(
            f"não foi possível salvar a chave no cofre do sistema ({type(exc).__name__})"
        ) from exc
