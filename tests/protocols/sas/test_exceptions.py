import pytest

from protocols.sas.exceptions import BILL_CENTS, EXCEPTIONS, describe

# Event codes the floor understands (terminal-mqtt.md).
FLOOR_EVENTS = {
    "door.main.open", "door.main.closed", "door.cashbox.open", "door.cashbox.closed",
    "door.logic.open", "door.logic.closed", "cashbox.removed", "cashbox.installed",
    "power.on", "power.off", "tilt", "ram.clear", "bill.accepted", "bill.rejected",
    "bill.jam", "stacker.full", "printer.fault", "printer.paper_low", "battery.low",
    "handpay.reset", "game.disabled", "game.enabled", "software.auth_failed",
}


@pytest.mark.parametrize(
    "code, event",
    [
        (0x11, "door.main.open"),
        (0x12, "door.main.closed"),
        (0x19, "door.cashbox.open"),
        (0x1A, "door.cashbox.closed"),
        (0x1B, "cashbox.removed"),
        (0x1C, "cashbox.installed"),
        (0x17, "power.on"),
        (0x18, "power.off"),
        (0x20, "tilt"),
        (0x28, "bill.jam"),
        (0x3B, "battery.low"),
        (0x52, "handpay.reset"),
    ],
)
def test_spec_events(code, event):
    assert EXCEPTIONS[code].event == event


def test_memory_errors_alert_as_ram_clear():
    for code in range(0x31, 0x3B):
        info = EXCEPTIONS[code]
        assert info.event == "ram.clear" and info.alert and info.reason
    assert EXCEPTIONS[0x3B].alert


@pytest.mark.parametrize(
    "code, long_poll",
    [(0x3D, 0x4D), (0x3E, 0x4D), (0x51, 0x1B), (0x57, 0x57), (0x67, 0x70), (0x68, 0x71), (0x3C, 0x1F)],
)
def test_follow_up_long_polls(code, long_poll):
    assert EXCEPTIONS[code].long_poll == long_poll


def test_bills():
    assert BILL_CENTS == {
        0x47: 100, 0x48: 500, 0x49: 1000, 0x4A: 2000, 0x4B: 5000,
        0x4C: 10000, 0x4D: 200, 0x4E: 50000, 0x4F: None, 0x50: 20000,
    }
    for code, cents in BILL_CENTS.items():
        assert EXCEPTIONS[code].event == "bill.accepted"
        assert EXCEPTIONS[code].amount_cents == cents


def test_game_start_end_and_unknown():
    assert EXCEPTIONS[0x7E].name == "game_started"
    assert EXCEPTIONS[0x7F].name == "game_ended"
    unknown = describe(0xEE)
    assert unknown.name == "unknown" and not unknown.known and unknown.code == 0xEE
    assert describe(0x00).name == "no_activity"


def test_events_are_floor_vocabulary():
    assert {info.event for info in EXCEPTIONS.values() if info.event} <= FLOOR_EVENTS
