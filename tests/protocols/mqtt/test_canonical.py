"""Canonical JSON: the exact bytes config packages are hashed and signed over."""

import hashlib

import pytest

from protocols.mqtt import canonical_json, sha256_hex

PACKAGE = {
    "version": "1.2",
    "name": "Ñandú €",
    "games": [{"theme": "Dragon Gold", "rtp_bp": 9600, "denoms_cents": [1, 5], "enabled": True}],
    "settings": {"z": None, "a": {"quote": "say \"hi\"\n", "y": -5, "b": False}},
}

EXPECTED = (
    b'{"games":[{"denoms_cents":[1,5],"enabled":true,"rtp_bp":9600,"theme":"Dragon Gold"}],'
    b'"name":"\xc3\x91and\xc3\xba \xe2\x82\xac",'
    b'"settings":{"a":{"b":false,"quote":"say \\"hi\\"\\n","y":-5},"z":null},'
    b'"version":"1.2"}'
)


def test_exact_bytes():
    assert canonical_json(PACKAGE) == EXPECTED


def test_sha256_is_of_the_exact_bytes():
    assert sha256_hex(PACKAGE) == hashlib.sha256(EXPECTED).hexdigest()
    assert sha256_hex({}) == hashlib.sha256(b"{}").hexdigest()


def test_key_order_of_the_input_does_not_matter():
    reordered = {"settings": {"a": {"y": -5, "b": False, "quote": "say \"hi\"\n"}, "z": None},
                 "games": PACKAGE["games"], "version": "1.2", "name": "Ñandú €"}
    assert canonical_json(reordered) == EXPECTED


def test_scalars_and_astral_characters():
    assert canonical_json("🎰") == "\"🎰\"".encode("utf-8")
    assert canonical_json([True, None, 0, -1, 2**63]) == b"[true,null,0,-1,9223372036854775808]"


@pytest.mark.parametrize("value", [
    1.5, 5.0, {"rtp": 96.5}, [1, [2, [0.0]]], {"a": float("nan")}, {1: "int key"},
    (1, 2), {"s": {1, 2}}, {"b": b"bytes"}, {"s": "\ud800"}, object(),
])
def test_refuses_what_is_not_in_a_package(value):
    with pytest.raises(ValueError):
        canonical_json(value)
    with pytest.raises(ValueError):
        sha256_hex(value)


def test_refuses_cycles_and_absurd_depth():
    cyclic = {}
    cyclic["self"] = cyclic
    with pytest.raises(ValueError):
        canonical_json(cyclic)
    deep = []
    for _ in range(200):
        deep = [deep]
    with pytest.raises(ValueError):
        canonical_json(deep)
