"""SAS validation numbers: the 18 digits printed on a ticket.

Two modes. In system validation (LP 57/58) the host picks 16 digits and sends
them with its system id (01–99); the ticket shows system id + 16 digits. In
secure-enhanced validation (LP 4C/4D) the EGM derives the number from its
3-byte machine id and a 3-byte sequence (SAS 6.03 §15.14), with system id 00;
the host computes the same number to check each record it reads.
"""

import secrets

from protocols.sas.crc import crc16

_MAX_24_BITS = 0xFFFFFF


def secure_enhanced_number(machine_id: int, sequence: int) -> str:
    """The 18-digit secure-enhanced validation number (SAS 6.03 §15.14).

    A0–A2 are the sequence number and A3–A5 the machine id, least significant
    byte first. B0 = A0, B1 = A1, B2 = A2⊕A0, B3 = A3⊕A1, B4 = A4⊕A0,
    B5 = A5⊕A1. The CRC of each pair (B0 B1, B2 B3, B4 B5) gives C0–C5 (low
    byte first). N0 = C5C4C3 and N1 = C2C1C0 as 24-bit numbers, each written
    as 8 decimal digits; the first digit of each group is or-ed with
    (sum of that group's digits mod 5) << 1. The number is "00" (system id)
    followed by the two groups.
    """
    if not 0 <= machine_id <= _MAX_24_BITS:
        raise ValueError(f"machine id must fit in 3 bytes, got {machine_id}")
    if not 0 <= sequence <= _MAX_24_BITS:
        raise ValueError(f"sequence must fit in 3 bytes, got {sequence}")
    a = sequence.to_bytes(3, "little") + machine_id.to_bytes(3, "little")
    b = bytes([a[0], a[1], a[2] ^ a[0], a[3] ^ a[1], a[4] ^ a[0], a[5] ^ a[1]])
    c = b"".join(crc16(b[i : i + 2]).to_bytes(2, "little") for i in (0, 2, 4))
    groups = (int.from_bytes(c[3:6], "little"), int.from_bytes(c[0:3], "little"))
    digits = ""
    for number in groups:
        group = [int(d) for d in f"{number:08d}"]
        # A 24-bit number's leading digit is 0 or 1, leaving room for a check value.
        group[0] |= (sum(group) % 5) << 1
        digits += "".join(str(d) for d in group)
    return "00" + digits


def matches_secure_enhanced(number: str, machine_id: int, sequence: int) -> bool:
    """Whether an EGM's reported number is the one its id and sequence give."""
    return number == secure_enhanced_number(machine_id, sequence)


def system_validation_number(system_id: int, digits: str) -> str:
    """The 18 digits of a system-validation ticket: system id (01–99) + 16 digits."""
    if not 1 <= system_id <= 99:
        raise ValueError(f"system id must be 01..99, got {system_id}")
    if len(digits) != 16 or not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"expected 16 digits, got {digits!r}")
    return f"{system_id:02d}{digits}"


def new_system_validation_number(system_id: int) -> str:
    """A fresh random system-validation number; uniqueness is the caller's check."""
    return system_validation_number(system_id, f"{secrets.randbelow(10**16):016d}")


def split_validation_number(number: str) -> tuple[int, str]:
    """(system id, 16 digits) of an 18-digit validation number."""
    if len(number) != 18 or not (number.isascii() and number.isdigit()):
        raise ValueError(f"a validation number has 18 digits, got {number!r}")
    return int(number[:2]), number[2:]
