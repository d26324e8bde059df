"""Reading request bodies and shaping answers, the same for the server and the agent."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from protocol import ProtocolError
from protocol.envelope import decode_body, encode, error_body, send_json


def refused(raw: bytes, **kw) -> ProtocolError:
    with pytest.raises(ProtocolError) as err:
        decode_body(raw, **kw)
    return err.value


def test_a_body_is_decoded_with_exact_decimals():
    assert decode_body(b'{"price": 0.1, "n": 3}') == {"price": Decimal("0.1"), "n": 3}


@pytest.mark.parametrize(
    "raw",
    [b"", b"   ", b"{", b"\xff\xfe", b'{"a": }', b"[" * 100_000 + b"]" * 100_000],
    ids=["empty", "blank", "truncated", "not-utf8", "bad-value", "deep"],
)
def test_bad_bodies_are_400(raw):
    err = refused(raw)
    assert err.status == 400 and err.code == "invalid_json"


def test_a_lone_surrogate_is_refused_but_a_pair_is_text():
    err = refused(b'{"name": "a\\ud800b"}')
    assert err.status == 400 and "surrogate" in err.message
    assert refused(b'{"\\udfff": 1}').status == 400  # keys too
    assert decode_body(b'{"name": "\\ud83c\\udf70"}') == {"name": "\U0001f370"}


def test_a_body_over_the_limit_is_413():
    err = refused(b'{"a": "' + b"x" * 100 + b'"}', max_bytes=50)
    assert err.status == 413 and err.code == "body_too_large"


def test_one_error_shape():
    assert error_body("bad", "why", invalid=[1]) == {
        "success": False,
        "error": "why",
        "code": "bad",
        "invalid": [1],
    }
    assert ProtocolError("bad", "why", extra=2).to_json() == error_body("bad", "why", extra=2)
    assert encode({"price": Decimal("30.10")}) == b'{"price":30.1}'


def test_send_json_answers_from_raw_asgi():
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(send_json(send, 403, error_body("forbidden_host", "no")))
    start, body = sent
    assert start["status"] == 403
    assert dict(start["headers"])[b"content-length"] == str(len(body["body"])).encode()
    assert b'"code":"forbidden_host"' in body["body"]
