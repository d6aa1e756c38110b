"""Number encodings of SAS fields: packed BCD (most significant byte first)
and binary (least significant byte first), both of fixed width.
"""


class BcdError(ValueError):
    """A value that does not fit its BCD field, or bytes that are not BCD."""


def encode_bcd(value: int, width: int) -> bytes:
    """`value` as `width` bytes of packed BCD, most significant byte first."""
    if value < 0:
        raise BcdError(f"BCD cannot hold a negative value ({value})")
    digits = str(value)
    if len(digits) > 2 * width:
        raise BcdError(f"{value} does not fit in {width} BCD bytes")
    return bytes.fromhex(digits.rjust(2 * width, "0"))


def decode_digits(data: bytes) -> str:
    """The decimal digits of packed BCD `data`, leading zeros kept."""
    for index, byte in enumerate(data):
        if byte >> 4 > 9 or byte & 0x0F > 9:
            raise BcdError(f"byte {index} (0x{byte:02X}) of {bytes(data).hex(' ')} is not BCD")
    return bytes(data).hex()


def encode_digits(digits: str, width: int) -> bytes:
    """A string of exactly 2 × `width` decimal digits as packed BCD."""
    if len(digits) != 2 * width or not (digits.isascii() and digits.isdigit()):
        raise BcdError(f"expected {2 * width} decimal digits, got {digits!r}")
    return bytes.fromhex(digits)


def decode_bcd(data: bytes) -> int:
    """The number held in packed BCD `data`."""
    return int(decode_digits(data) or "0")


def encode_le(value: int, width: int) -> bytes:
    """`value` as `width` binary bytes, least significant byte first."""
    if value < 0 or value >= 1 << (8 * width):
        raise ValueError(f"{value} does not fit in {width} binary bytes")
    return value.to_bytes(width, "little")


def decode_le(data: bytes) -> int:
    """The number held in binary `data`, least significant byte first."""
    return int.from_bytes(data, "little")
