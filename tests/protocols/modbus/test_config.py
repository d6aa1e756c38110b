"""Config packages as register writes, and the host's other holding-register writes."""

import copy

import pytest

from protocols.modbus import (
    ConfigNotMappable,
    MapError,
    clock_write,
    config_writes,
    decode_config_ids,
    enable_write,
    handpay_reset_write,
)

PACKAGE = {
    "name": "floor-a",
    "version": "3",
    "games": [
        {
            "theme": "Lucky Sevens",
            "paytable_id": "4021",
            "rtp_bp": 9250,
            "denoms_cents": [25, 5, 100],
            "max_bet_cents": 100_000,
        },
        {"theme": "Other", "paytable_id": "X9", "rtp_bp": 9000, "denoms_cents": [1], "max_bet_cents": 1},
    ],
    "settings": {"volume": 3},
}


def package_with(**game):
    package = copy.deepcopy(PACKAGE)
    package["games"][0].update(game)
    return package


def test_first_game_then_deployment_id_last_as_its_own_write():
    writes = config_writes(PACKAGE, 0x0001_0002)
    assert writes == [
        (110, [5, 0x0001, 0x86A0, 4021, 9250]),
        (120, [0x0001, 0x0002]),
    ]


def test_smallest_denomination_is_written():
    assert config_writes(package_with(denoms_cents=[100, 2, 50]), 1)[0][1][0] == 2


@pytest.mark.parametrize(
    ("package", "reason"),
    [
        (package_with(paytable_id="A17"), "not all digits"),
        (package_with(paytable_id="12a"), "not all digits"),
        (package_with(paytable_id=""), "not all digits"),
        (package_with(paytable_id="²"), "not all digits"),
        (package_with(paytable_id=17), "not all digits"),
        (package_with(paytable_id="65536"), "over 65535"),
        ({**PACKAGE, "games": []}, "no games"),
        ({"name": "x", "version": "1", "settings": {}}, "no games"),
        (package_with(denoms_cents=[]), "no integer denominations"),
        (package_with(denoms_cents=[70_000]), "does not fit one register"),
        (package_with(max_bet_cents=2**32), "does not fit 32 bits"),
        (package_with(max_bet_cents=True), "does not fit 32 bits"),
        (package_with(rtp_bp=70_000), "does not fit one register"),
    ],
)
def test_unmappable_packages_are_refused_with_a_reason(package, reason):
    with pytest.raises(ConfigNotMappable, match=reason):
        config_writes(package, 1)


def test_paytable_at_the_limit_maps():
    assert config_writes(package_with(paytable_id="65535"), 1)[0][1][3] == 65535
    assert config_writes(package_with(paytable_id="007"), 1)[0][1][3] == 7


def test_deployment_id_must_fit_32_bits():
    with pytest.raises(MapError):
        config_writes(PACKAGE, 2**32)


def test_other_host_writes():
    assert enable_write(True) == (100, [1])
    assert enable_write(False) == (100, [0])
    assert clock_write(1_700_000_000) == (101, [0x6553, 0xF100])
    assert handpay_reset_write() == (130, [1])


def test_decode_config_ids():
    assert decode_config_ids([0, 7, 0, 6]) == (7, 6)
    with pytest.raises(MapError):
        decode_config_ids([0, 7])
