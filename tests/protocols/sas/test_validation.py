import pytest

from protocols.sas.validation import (
    matches_secure_enhanced,
    new_system_validation_number,
    secure_enhanced_number,
    split_validation_number,
    system_validation_number,
)


def test_spec_known_value():
    assert secure_enhanced_number(0x654321, 1) == "006429188185446104"


def test_shape_and_determinism():
    numbers = {secure_enhanced_number(0x654321, seq) for seq in range(1, 200)}
    assert len(numbers) == 199
    for number in numbers:
        assert len(number) == 18 and number.isdigit() and number.startswith("00")


def test_matches():
    assert matches_secure_enhanced("006429188185446104", 0x654321, 1)
    assert not matches_secure_enhanced("006429188185446104", 0x654321, 2)


@pytest.mark.parametrize("machine_id, sequence", [(-1, 0), (0x1000000, 0), (0, 0x1000000)])
def test_three_byte_limits(machine_id, sequence):
    with pytest.raises(ValueError):
        secure_enhanced_number(machine_id, sequence)


def test_system_validation_number():
    assert system_validation_number(1, "1234567890123456") == "011234567890123456"
    assert split_validation_number("011234567890123456") == (1, "1234567890123456")
    with pytest.raises(ValueError):
        system_validation_number(0, "1234567890123456")
    with pytest.raises(ValueError):
        system_validation_number(100, "1234567890123456")
    with pytest.raises(ValueError):
        system_validation_number(1, "123")
    with pytest.raises(ValueError):
        split_validation_number("12345")


def test_new_system_validation_number():
    number = new_system_validation_number(7)
    assert len(number) == 18 and number.startswith("07") and number.isdigit()
