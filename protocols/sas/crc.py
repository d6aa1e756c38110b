"""CRC-16/KERMIT as SAS uses it on every long poll and long-poll reply.

Polynomial 0x1021 reflected (0x8408), initial value 0, no final xor; the two
CRC bytes follow the message low byte first.
"""


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _make_table()


def crc16(data: bytes, seed: int = 0) -> int:
    """CRC of `data`; `seed` continues a CRC computed over earlier bytes."""
    crc = seed
    for byte in data:
        crc = (crc >> 8) ^ _TABLE[(crc ^ byte) & 0xFF]
    return crc


def append_crc(data: bytes) -> bytes:
    """`data` followed by its CRC, low byte first."""
    return bytes(data) + crc16(data).to_bytes(2, "little")


def check_crc(frame: bytes) -> bool:
    """True when the last two bytes of `frame` are the CRC of the rest."""
    if len(frame) < 3:
        return False
    return crc16(frame[:-2]) == int.from_bytes(frame[-2:], "little")
