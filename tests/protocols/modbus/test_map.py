"""The register-map tables agree with the contract and with themselves."""

from protocols.modbus import map as m


def _no_overlap(registers):
    spans = sorted((r.address, r.end) for r in registers)
    return all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:]))


def test_input_registers_fit_one_read_of_0_to_45():
    assert _no_overlap(m.INPUT_REGISTERS)
    assert all(m.INPUT_FIRST <= r.address and r.end <= m.INPUT_FIRST + m.INPUT_COUNT for r in m.INPUT_REGISTERS)
    assert m.INPUT_COUNT == 46
    assert m.INPUT["software_sha256"].address == 30 and m.INPUT["software_sha256"].size == 16


def test_holding_registers_match_the_contract():
    assert _no_overlap(m.HOLDING_REGISTERS)
    expected = {
        "play_enabled": (100, 1),
        "clock": (101, 2),
        "denom_cents": (110, 1),
        "max_bet_cents": (111, 2),
        "paytable": (113, 1),
        "rtp_bp": (114, 1),
        "config_id_applying": (120, 2),
        "config_id_in_force": (122, 2),
        "handpay_reset": (130, 1),
    }
    assert {r.name: (r.address, r.size) for r in m.HOLDING_REGISTERS} == expected
    assert m.HOLDING_FIRST + m.HOLDING_COUNT == m.HOLDING["handpay_reset"].end


def test_every_meter_is_a_32_bit_input_register():
    for name in m.METER_NAMES:
        assert m.INPUT[name].size == 2


def test_status_bits_are_bits_0_to_7_with_mqtt_codes():
    assert [b.bit for b in m.STATUS_BITS] == list(range(8))
    codes = {b.bit: (b.rising, b.falling) for b in m.STATUS_BITS}
    assert codes[0] == ("door.main.open", "door.main.closed")
    assert codes[1] == ("door.cashbox.open", "door.cashbox.closed")
    assert codes[2] == ("tilt", None)
    assert codes[6] == ("printer.fault", None)
    assert codes[7] == ("ram.clear", None)
