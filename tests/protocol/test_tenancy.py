"""Which shop a request is for: body, query or header, agreeing; the default shop otherwise."""

from __future__ import annotations

import pytest

from protocol import ProtocolError
from protocol.tenancy import DEFAULT_TENANT, check_record_tenant, parse_tenant, resolve_tenant


def refused(fn, *args) -> ProtocolError:
    with pytest.raises(ProtocolError) as err:
        fn(*args)
    return err.value


def test_no_tenant_is_the_default_shop():
    assert resolve_tenant() == DEFAULT_TENANT == "default"


def test_any_one_place_names_the_shop_and_places_must_agree():
    assert resolve_tenant("loja-1") == "loja-1"
    assert resolve_tenant(None, "loja-1") == "loja-1"
    assert resolve_tenant(None, None, "loja-1") == "loja-1"
    assert resolve_tenant("loja-1", "loja-1", " loja-1 ") == "loja-1"
    err = refused(resolve_tenant, "loja-1", None, "loja-2")
    assert (err.code, err.status) == ("tenant_mismatch", 400)


@pytest.mark.parametrize("bad", ["", "  ", "a b", "loja/1", "x" * 65, "ç", "a\x00", 7, ["a"]])
def test_bad_tenant_ids_are_400(bad):
    err = refused(parse_tenant, bad)
    assert (err.code, err.status) == ("invalid_tenant", 400)


def test_valid_tenant_ids():
    for good in ("a", "Loja_Centro-2", "filial.3", "x" * 64):
        assert parse_tenant(good) == good


def test_a_record_naming_its_shop_must_name_the_requests():
    check_record_tenant(None, "loja-1")
    check_record_tenant("loja-1", "loja-1")
    err = refused(check_record_tenant, "loja-2", "loja-1")
    assert (err.code, err.status) == ("tenant_mismatch", 400)
