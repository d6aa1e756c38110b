import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.sas.bcd import (
    BcdError,
    decode_bcd,
    decode_digits,
    decode_le,
    encode_bcd,
    encode_digits,
    encode_le,
)


def test_encode_bcd_msb_first():
    assert encode_bcd(12345678, 4) == bytes([0x12, 0x34, 0x56, 0x78])
    assert encode_bcd(2550, 5) == bytes([0x00, 0x00, 0x00, 0x25, 0x50])
    assert encode_bcd(0, 2) == b"\x00\x00"


def test_decode_bcd():
    assert decode_bcd(bytes([0x00, 0x00, 0x01, 0x00])) == 100
    assert decode_bcd(b"") == 0


def test_digits_keep_leading_zeros():
    assert decode_digits(bytes([0x00, 0x64, 0x29])) == "006429"
    assert encode_digits("006429", 3) == bytes([0x00, 0x64, 0x29])


def test_non_bcd_nibble_is_rejected_with_position():
    with pytest.raises(BcdError, match=r"byte 1 \(0x1A\)"):
        decode_bcd(bytes([0x12, 0x1A]))
    with pytest.raises(BcdError):
        decode_bcd(bytes([0xA0]))


@pytest.mark.parametrize(
    "value, width",
    [(-1, 2), (10000, 2), (100, 1)],
)
def test_value_must_fit(value, width):
    with pytest.raises(BcdError):
        encode_bcd(value, width)


@pytest.mark.parametrize("digits", ["12345", "12a456", "1234567", "١٢٣٤٥٦"])
def test_digit_strings_checked(digits):
    with pytest.raises(BcdError):
        encode_digits(digits, 3)


def test_binary_lsb_first():
    assert encode_le(0x654321, 3) == bytes([0x21, 0x43, 0x65])
    assert decode_le(bytes([0x34, 0x12])) == 0x1234
    with pytest.raises(ValueError):
        encode_le(0x10000, 2)
    with pytest.raises(ValueError):
        encode_le(-1, 2)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 8).flatmap(lambda w: st.tuples(st.just(w), st.integers(0, 10 ** (2 * w) - 1))))
def test_bcd_round_trip(width_value):
    width, value = width_value
    encoded = encode_bcd(value, width)
    assert len(encoded) == width
    assert decode_bcd(encoded) == value
