"""The general-poll exception codes of SAS and what the host does with each.

An EGM answers a general poll with one exception-code byte. This table names
the code, the floor event the host records for it (the event codes of
terminal-mqtt.md, so SAS and MQTT terminals land in the same tables), whether
it raises an alert, and the long poll the host sends next to learn more.

Decisions where the SAS host contract is loose:
- 31–3A (CMOS RAM / EEPROM / EPROM errors, memory reset) and 7A (soft meters
  reset) map to `ram.clear` with the specific error as detail reason, and
  alert: to the floor they all mean the EGM's memory can no longer be trusted.
- 3B (low backup battery) maps to `battery.low`, with an alert.
- 15/16 (card cage) map to the logic door; coin, hopper and reel tilts map to
  `tilt` with their own reason; bill faults to `bill.rejected`/`bill.jam`.
- 4F (bill of another denomination) has no amount here: the host reads it from
  the bill meters.
"""

from dataclasses import dataclass

NO_ACTIVITY = 0x00


@dataclass(frozen=True)
class ExceptionInfo:
    code: int
    name: str
    # Event code of terminal-mqtt.md, or None when the host records no event.
    event: str | None = None
    # Detail `reason` of the event (tilts, memory errors).
    reason: str | None = None
    alert: bool = False
    # The long poll the host sends next to act on the exception.
    long_poll: int | None = None
    # Bills: the amount accepted; None for 4F (from the bill meters).
    amount_cents: int | None = None

    @property
    def known(self) -> bool:
        return self.name != "unknown"


def _tilt(code: int, reason: str) -> ExceptionInfo:
    return ExceptionInfo(code, reason, event="tilt", reason=reason)


def _memory(code: int, reason: str) -> ExceptionInfo:
    return ExceptionInfo(code, reason, event="ram.clear", reason=reason, alert=True)


def _bill(code: int, cents: int | None) -> ExceptionInfo:
    return ExceptionInfo(code, "bill_accepted", event="bill.accepted", amount_cents=cents)


# Bill-accepted exceptions (47–50) and the value of the bill; 4F is "another
# denomination", whose amount the host takes from the bill meters.
BILL_CENTS: dict[int, int | None] = {
    0x47: 100,
    0x48: 500,
    0x49: 1000,
    0x4A: 2000,
    0x4B: 5000,
    0x4C: 10000,
    0x4D: 200,
    0x4E: 50000,
    0x4F: None,
    0x50: 20000,
}

_TABLE: tuple[ExceptionInfo, ...] = (
    ExceptionInfo(0x00, "no_activity"),
    ExceptionInfo(0x11, "slot_door_opened", event="door.main.open"),
    ExceptionInfo(0x12, "slot_door_closed", event="door.main.closed"),
    ExceptionInfo(0x13, "drop_door_opened"),
    ExceptionInfo(0x14, "drop_door_closed"),
    ExceptionInfo(0x15, "card_cage_opened", event="door.logic.open"),
    ExceptionInfo(0x16, "card_cage_closed", event="door.logic.closed"),
    ExceptionInfo(0x17, "ac_power_applied", event="power.on"),
    ExceptionInfo(0x18, "ac_power_lost", event="power.off"),
    ExceptionInfo(0x19, "cashbox_door_opened", event="door.cashbox.open"),
    ExceptionInfo(0x1A, "cashbox_door_closed", event="door.cashbox.closed"),
    ExceptionInfo(0x1B, "cashbox_removed", event="cashbox.removed"),
    ExceptionInfo(0x1C, "cashbox_installed", event="cashbox.installed"),
    ExceptionInfo(0x1D, "belly_door_opened"),
    ExceptionInfo(0x1E, "belly_door_closed"),
    _tilt(0x20, "general_tilt"),
    _tilt(0x21, "coin_in_tilt"),
    _tilt(0x22, "coin_out_tilt"),
    _tilt(0x23, "hopper_empty"),
    _tilt(0x24, "extra_coin_paid"),
    _tilt(0x25, "diverter_malfunction"),
    ExceptionInfo(0x27, "cashbox_full", event="stacker.full"),
    ExceptionInfo(0x28, "bill_jam", event="bill.jam"),
    _tilt(0x29, "bill_acceptor_failure"),
    ExceptionInfo(0x2A, "reverse_bill", event="bill.rejected", reason="reverse_bill"),
    ExceptionInfo(0x2B, "bill_rejected", event="bill.rejected"),
    ExceptionInfo(0x2C, "counterfeit_bill", event="bill.rejected", reason="counterfeit_bill"),
    _tilt(0x2D, "reverse_coin_in"),
    ExceptionInfo(0x2E, "cashbox_near_full"),
    _memory(0x31, "cmos_ram_error_recovered"),
    _memory(0x32, "cmos_ram_error_not_recovered"),
    _memory(0x33, "cmos_ram_bad_device"),
    _memory(0x34, "eeprom_data_error"),
    _memory(0x35, "eeprom_bad_device"),
    _memory(0x36, "eprom_checksum_changed"),
    _memory(0x37, "eprom_bad_checksum"),
    _memory(0x38, "partitioned_eprom_checksum_changed"),
    _memory(0x39, "partitioned_eprom_bad_checksum"),
    _memory(0x3A, "memory_error_reset"),
    ExceptionInfo(0x3B, "low_backup_battery", event="battery.low", alert=True),
    # Options changed: read the machine info (LP 1F) and compare with the expected config.
    ExceptionInfo(0x3C, "operator_changed_options", long_poll=0x1F),
    ExceptionInfo(0x3D, "cashout_ticket_printed", long_poll=0x4D),
    ExceptionInfo(0x3E, "handpay_validated", long_poll=0x4D),
    ExceptionInfo(0x3F, "validation_id_not_configured", long_poll=0x4C),
    _tilt(0x40, "reel_tilt"),
    _tilt(0x41, "reel_1_tilt"),
    _tilt(0x42, "reel_2_tilt"),
    _tilt(0x43, "reel_3_tilt"),
    _tilt(0x44, "reel_4_tilt"),
    _tilt(0x45, "reel_5_tilt"),
    _tilt(0x46, "reel_disconnected"),
    *(_bill(code, cents) for code, cents in BILL_CENTS.items()),
    ExceptionInfo(0x51, "handpay_pending", long_poll=0x1B),
    ExceptionInfo(0x52, "handpay_reset", event="handpay.reset"),
    ExceptionInfo(0x53, "no_progressive_information"),
    ExceptionInfo(0x54, "progressive_win"),
    ExceptionInfo(0x55, "handpay_cancelled_by_player"),
    ExceptionInfo(0x56, "sas_progressive_level_hit"),
    ExceptionInfo(0x57, "system_validation_request", long_poll=0x57),
    ExceptionInfo(0x60, "printer_communication_error", event="printer.fault", reason="communication_error"),
    ExceptionInfo(0x61, "printer_paper_out", event="printer.fault", reason="paper_out"),
    ExceptionInfo(0x66, "cashout_button_pressed"),
    ExceptionInfo(0x67, "ticket_inserted", long_poll=0x70),
    ExceptionInfo(0x68, "ticket_transfer_complete", long_poll=0x71),
    ExceptionInfo(0x6F, "game_locked"),
    # Exceptions were lost: the host's view of the EGM may have gaps.
    ExceptionInfo(0x70, "exception_buffer_overflow", alert=True),
    ExceptionInfo(0x74, "printer_paper_low", event="printer.paper_low"),
    ExceptionInfo(0x75, "printer_power_off"),
    ExceptionInfo(0x76, "printer_power_on"),
    ExceptionInfo(0x77, "replace_printer_ribbon"),
    ExceptionInfo(0x78, "printer_carriage_jammed", event="printer.fault", reason="carriage_jammed"),
    _memory(0x7A, "soft_meters_reset"),
    ExceptionInfo(0x7B, "bill_validator_totals_reset"),
    ExceptionInfo(0x7E, "game_started"),
    ExceptionInfo(0x7F, "game_ended"),
    ExceptionInfo(0x80, "hopper_full"),
    ExceptionInfo(0x81, "hopper_level_low"),
    ExceptionInfo(0x82, "attendant_menu_entered"),
    ExceptionInfo(0x83, "attendant_menu_exited"),
    ExceptionInfo(0x84, "operator_menu_entered"),
    ExceptionInfo(0x85, "operator_menu_exited"),
    ExceptionInfo(0x86, "out_of_service"),
    ExceptionInfo(0x8C, "game_selected"),
    ExceptionInfo(0x98, "power_off_card_cage_access"),
    ExceptionInfo(0x99, "power_off_slot_door_access"),
    ExceptionInfo(0x9A, "power_off_cashbox_door_access"),
    ExceptionInfo(0x9B, "power_off_drop_door_access"),
)

EXCEPTIONS: dict[int, ExceptionInfo] = {info.code: info for info in _TABLE}


def describe(code: int) -> ExceptionInfo:
    """What exception `code` means; an `unknown` entry for codes not in the table."""
    return EXCEPTIONS.get(code) or ExceptionInfo(code, "unknown")
