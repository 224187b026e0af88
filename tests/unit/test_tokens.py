"""Signed address tokens: round trips, tampering, purposes, case, and the address helpers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dripper.tokens import (
    BOUNCE,
    REPLY,
    UNSUBSCRIBE,
    address_token,
    bounce_address,
    bounce_token,
    keyed_digest,
    reply_address,
    reply_token,
    sign,
    unsubscribe_address,
    unsubscribe_token,
    verify,
)

KEY = b"k" * 32
ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
ids_strategy = st.lists(st.integers(min_value=0, max_value=2**40), min_size=0, max_size=4)


@pytest.mark.parametrize(
    ("ids", "length"),
    [((), 16), ((1, 2), 20), ((127, 128), 21), ((2_000_000, 2_000_000), 26)],
)
def test_tokens_are_short_lowercase_base32(ids: tuple[int, ...], length: int) -> None:
    token = sign(KEY, REPLY, *ids)
    assert len(token) == length
    assert set(token) <= set(ALPHABET)
    assert verify(KEY, REPLY, token) == ids


@pytest.mark.parametrize(
    ("key", "purpose", "token_of"),
    [
        (b"other key", REPLY, lambda: sign(KEY, REPLY, 1, 2)),
        (KEY, UNSUBSCRIBE, lambda: sign(KEY, REPLY, 1, 2)),
        (KEY, REPLY, lambda: sign(KEY, REPLY, 1, 2)[:-1]),
        (KEY, REPLY, lambda: sign(KEY, REPLY, 1, 2) + "a"),
        (KEY, REPLY, lambda: ""),
        (KEY, REPLY, lambda: "not base32!"),
        (KEY, REPLY, lambda: "a" * 65),
        (KEY, REPLY, lambda: "é" * 16),
        (b"", REPLY, lambda: sign(KEY, REPLY, 1)),
    ],
)
def test_verify_refuses(key: bytes, purpose: str, token_of: object) -> None:
    assert callable(token_of)
    assert verify(key, purpose, token_of()) is None


def test_sign_refuses_bad_input() -> None:
    with pytest.raises(ValueError):
        sign(KEY, REPLY, -1)
    with pytest.raises(ValueError):
        sign(b"", REPLY, 1)
    with pytest.raises(ValueError):
        sign(KEY, "", 1)


@given(ids=ids_strategy, purpose=st.sampled_from([REPLY, UNSUBSCRIBE, "x"]))
def test_round_trip_any_case(ids: list[int], purpose: str) -> None:
    token = sign(KEY, purpose, *ids)
    assert verify(KEY, purpose, token) == tuple(ids)
    assert verify(KEY, purpose, token.upper()) == tuple(ids)


@given(ids=ids_strategy, data=st.data())
def test_any_single_character_change_fails(ids: list[int], data: st.DataObject) -> None:
    token = sign(KEY, REPLY, *ids)
    index = data.draw(st.integers(min_value=0, max_value=len(token) - 1))
    replacement = data.draw(st.sampled_from([c for c in ALPHABET if c != token[index]]))
    tampered = token[:index] + replacement + token[index + 1 :]
    assert verify(KEY, REPLY, tampered) is None


def test_addresses_carry_tokens_back() -> None:
    reply = reply_token(KEY, 7, 9)
    unsub = unsubscribe_token(KEY, 7)
    assert reply_address("course@example.com", reply) == f"course+{reply}@example.com"
    assert unsubscribe_address("course@example.com", unsub) == (f"course+unsub-{unsub}@example.com")
    assert address_token(f"course+{reply}@example.com") == (REPLY, reply)
    assert address_token(f"COURSE+UNSUB-{unsub.upper()}@EXAMPLE.COM") == (
        UNSUBSCRIBE,
        unsub.upper(),
    )
    purpose, token = address_token(f"Course+{reply.upper()}@example.com") or ("", "")
    assert verify(KEY, purpose, token) == (7, 9)
    assert address_token("course@example.com") is None
    assert address_token("nonsense") is None
    with pytest.raises(ValueError):
        reply_address("not-an-address", reply)


def test_a_return_path_names_its_delivery_and_only_under_its_purpose() -> None:
    token = bounce_token(KEY, 4242)
    address = bounce_address("course@example.com", token)
    assert address == f"course+bounce-{token}@example.com"
    assert address_token(address.upper()) == (BOUNCE, token.upper())
    assert verify(KEY, BOUNCE, token) == (4242,)
    assert verify(KEY, UNSUBSCRIBE, token) is None  # never an unsubscribe, nor a reply
    assert verify(KEY, REPLY, token) is None
    assert verify(b"other" * 8, BOUNCE, token) is None


def test_keyed_digests_depend_on_key_purpose_and_text() -> None:
    digest = keyed_digest(KEY, "message-id", "enr:1/step:a/occ:0")
    assert digest == keyed_digest(KEY, "message-id", "enr:1/step:a/occ:0")
    assert len(digest) == 26 and set(digest) <= set(ALPHABET)
    others = {
        keyed_digest(b"x" * 32, "message-id", "enr:1/step:a/occ:0"),
        keyed_digest(KEY, "other", "enr:1/step:a/occ:0"),
        keyed_digest(KEY, "message-id", "enr:1/step:b/occ:0"),
    }
    assert digest not in others and len(others) == 3
    with pytest.raises(ValueError):
        keyed_digest(b"", "message-id", "x")
