"""sign/verify (gateway/identity/signing.py), shared by outbound notifications and inbound triggers."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.identity.signing import sign, verify

SECRET = "whsec-test"
BODY = b'{"id":"n1","topic":"emergency.activated"}'
T = 1_736_150_400


def test_header_format_matches_the_documented_mac():
    header = sign(SECRET, BODY, T)
    mac = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={T},v1={mac}"
    assert verify(SECRET, BODY, header, now=T)
    assert verify(SECRET.encode(), BODY, header, now=T + 299)
    assert verify(SECRET, BODY, header, now=datetime.fromtimestamp(T + 10, UTC))


def test_rejects_wrong_secret():
    assert not verify("other", BODY, sign(SECRET, BODY, T), now=T)


def test_rejects_tampered_body():
    assert not verify(SECRET, BODY.replace(b"activated", b"cancelled"), sign(SECRET, BODY, T), now=T)
    assert not verify(SECRET, BODY + b" ", sign(SECRET, BODY, T), now=T)


def test_rejects_old_and_future_timestamps():
    header = sign(SECRET, BODY, T)
    assert not verify(SECRET, BODY, header, now=T + 301)
    assert not verify(SECRET, BODY, header, now=T - 301)
    assert verify(SECRET, BODY, header, now=T + 60, tolerance=60)
    assert not verify(SECRET, BODY, header, now=T + 61, tolerance=60)


def test_rejects_a_replayed_signature_with_a_fresh_timestamp():
    mac = sign(SECRET, BODY, T).split("v1=")[1]
    assert not verify(SECRET, BODY, f"t={T + 1000},v1={mac}", now=T + 1000)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        "t=,v1=",
        f"t={T}",
        "v1=" + "0" * 64,
        f"t={T},v1=abc",
        f"t=abc,v1={'0' * 64}",
        f"t={T},t={T},v1={'0' * 64}",
        f"t=-{T},v1={'0' * 64}",
        f"t={T};v1={'0' * 64}",
        f"t={T},v1",
        f"t={T},v1={'ü' * 64}",
        f"t={'٣' * 10},v1={'0' * 64}",
        "t=1," + "v1=" + "0" * 64 * 100,
    ],
)
def test_rejects_malformed_headers(header):
    assert not verify(SECRET, BODY, header, now=T)


def test_accepts_any_matching_v1_for_secret_rotation_and_ignores_other_schemes():
    good = sign(SECRET, BODY, T).split("v1=")[1]
    assert verify(SECRET, BODY, f"t={T},v0=whatever,v1={'0' * 64},v1={good}", now=T)
    assert verify(SECRET, BODY, f"t={T},v1={good.upper()}", now=T)


def test_empty_secret_is_refused():
    with pytest.raises(ValueError):
        sign("", BODY, T)
    assert not verify("", BODY, f"t={T},v1={'0' * 64}", now=T)


@given(st.text(max_size=200), st.binary(max_size=200))
def test_verify_never_raises(header, body):
    assert verify(SECRET, body, header, now=T) in (True, False)
