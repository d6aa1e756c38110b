from protocols.sas.crc import append_crc, check_crc, crc16


def test_check_value():
    assert crc16(b"123456789") == 0x2189


def test_spec_example_low_byte_first():
    assert append_crc(bytes([0x01, 0x01])) == bytes([0x01, 0x01, 0x51, 0x08])


def test_empty_and_seed_continuation():
    assert crc16(b"") == 0
    assert crc16(b"6789", seed=crc16(b"12345")) == 0x2189


def test_check_crc():
    assert check_crc(bytes([0x01, 0x01, 0x51, 0x08]))
    assert not check_crc(bytes([0x01, 0x01, 0x08, 0x51]))
    assert not check_crc(bytes([0x01, 0x02, 0x51, 0x08]))
    assert not check_crc(b"\x01\x01")
