"""The key check on the event loop (server/api/deps.py): `KeyStore.verify_cached` answers as
`verify` does whenever that needs no database read, and says so when it would."""

from __future__ import annotations

import pytest

from server.auth import KeyStore


@pytest.mark.parametrize("master", [None, "the-shared-secret"])
def test_verify_cached_answers_as_verify_or_says_it_cannot(service, master) -> None:
    keys = KeyStore(service.m, master)
    _, key = keys.issue("caixa-1")  # the cache is emptied
    presented = [key, "pdv_wrong", None, "", "the-shared-secret"]
    if master is None:
        for p in presented:  # a machine key is active: every answer needs the keys read
            assert keys.verify_cached(p) == (False, None)
    else:  # the shared key is known without reading anything
        assert keys.verify_cached(master) == (True, keys.verify(master))
        assert keys.verify_cached(None) == (True, None)
    expected = [keys.verify(p) for p in presented]  # reads the keys: now cached
    assert [keys.verify_cached(p) for p in presented] == [(True, e) for e in expected]
    assert expected[0] is not None and expected[0].machine_id == "caixa-1"
    assert expected[1] is None and expected[2] is None


def test_without_any_key_every_request_is_open_once_cached(service) -> None:
    keys = KeyStore(service.m, None)
    assert keys.verify_cached(None) == (False, None)
    open_ = keys.verify(None)
    assert open_ is not None and open_.kind == "open"
    assert keys.verify_cached(None) == (True, open_)
    assert keys.verify_cached("anything") == (True, open_)
