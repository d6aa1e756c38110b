"""Golden vectors from terminal-mqtt.md: one valid up payload per terminal ->
host type, as the exact bytes a terminal would publish, with the typed
message the codec must make of it. Shared by the golden and the fuzz tests."""

from datetime import datetime, timezone

from protocols.mqtt import (
    CardIn, CardOut, CmdAck, ConfigRef, ConfigStatus, Event, GameEnd, Handpay, Hello, Meters,
    Software, VoucherIssue, VoucherPrinted, VoucherPrintFailed, VoucherRedeem,
    VoucherRedeemAbort, VoucherRedeemCommit,
)

SHA_A = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
SHA_B = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
TS = datetime(2026, 11, 23, 4, 12, 9, 120000, tzinfo=timezone.utc)

# type -> (payload bytes, expected body). seq 1042 and ts of the spec's example throughout.
GOLDEN = {
    "hello": (
        b'{"v": 1, "seq": 1042, "ts": "2026-11-23T04:12:09.120Z", "type": "hello", "body": '
        b'{"manufacturer": "Acme Gaming", "model": "Vortex 27", "serial": "VX-000417", '
        b'"software": {"name": "vortex-os", "version": "4.2.1", "sha256": "' + SHA_A.encode() + b'"}, '
        b'"denoms_cents": [1, 5, 25, 100], '
        b'"config": {"deployment_id": 12, "sha256": "' + SHA_B.encode() + b'"}}}',
        Hello("Acme Gaming", "Vortex 27", "VX-000417", Software("vortex-os", "4.2.1", SHA_A),
              (1, 5, 25, 100), ConfigRef(12, SHA_B)),
    ),
    "meters": (
        b'{"v": 1, "seq": 1042, "ts": "2026-11-23T04:12:09.120Z", "type": "meters", "body": '
        b'{"meters": {"coin_in_cents": 123456789012, "coin_out_cents": 110000000000, '
        b'"jackpot_cents": 500000, "handpay_cancelled_credits_cents": 25000, '
        b'"bills_in_cents": 9000000, "voucher_in_cents": 4000000, "voucher_out_cents": 3500000, '
        b'"current_credits_cents": 1250, "games_played": 812345, "games_won": 201000, '
        b'"door_open_count": 17}}}',
        Meters({"coin_in_cents": 123456789012, "coin_out_cents": 110000000000,
                "jackpot_cents": 500000, "handpay_cancelled_credits_cents": 25000,
                "bills_in_cents": 9000000, "voucher_in_cents": 4000000,
                "voucher_out_cents": 3500000, "current_credits_cents": 1250,
                "games_played": 812345, "games_won": 201000, "door_open_count": 17}),
    ),
    "game.end": (
        b'{"v": 1, "seq": 1042, "ts": "2026-11-23T04:12:09.120Z", "type": "game.end", "body": '
        b'{"game": {"theme": "Dragon Gold", "paytable_id": "DG-96"}, "denom_cents": 1, '
        b'"wager_cents": 50, "win_cents": 120, "credits_after_cents": 4370}}',
        GameEnd("Dragon Gold", "DG-96", 1, 50, 120, 4370),
    ),
    "event": (
        b'{"v": 1, "seq": 1042, "ts": "2026-11-23T04:12:09.120Z", "type": "event", "body": '
        b'{"code": "bill.accepted", "detail": {"amount_cents": 2000}}}',
        Event("bill.accepted", {"amount_cents": 2000}, True),
    ),
    "card.in": (
        b'{"v": 1, "seq": 1042, "ts": "2026-11-23T04:12:09.120Z", "type": "card.in", "body": '
        b'{"card_id": "PC-00012345"}}',
        CardIn("PC-00012345"),
    ),
    "card.out": (
        b'{"v": 1, "seq": 1042, "ts": "2026-11-23T04:12:09.120Z", "type": "card.out", "body": '
        b'{"card_id": "PC-00012345"}}',
        CardOut("PC-00012345"),
    ),
    "voucher.issue": (
        b'{"v": 1, "seq": 1042, "ts": "2026-11-23T04:12:09.120Z", "type": "voucher.issue", "body": '
        b'{"amount_cents": 12550, "credit_type": "cashable"}}',
        VoucherIssue(12550, "cashable"),
    ),
    "voucher.printed": (
        b'{"v": 1, "seq": 1042, "ts": "2026-11-23T04:12:09.120Z", "type": "voucher.printed", "body": '
        b'{"validation_number": "001234567890123456"}}',
        VoucherPrinted("001234567890123456"),
    ),
    "voucher.print_failed": (
        b'{"v": 1, "seq": 1042, "ts": "2026-11-23T04:12:09.120Z", "type": "voucher.print_failed", '
        b'"body": {"validation_number": "001234567890123456"}}',
        VoucherPrintFailed("001234567890123456"),
    ),
    "voucher.redeem": (
        b'{"v": 1, "seq": 1042, "ts": "2026-11-23T04:12:09.120Z", "type": "voucher.redeem", "body": '
        b'{"validation_number": "001234567890123456"}}',
        VoucherRedeem("001234567890123456"),
    ),
    "voucher.redeem.commit": (
        b'{"v": 1, "seq": 1042, "ts": "2026-11-23T04:12:09.120Z", "type": "voucher.redeem.commit", '
        b'"body": {"validation_number": "001234567890123456", "amount_cents": 12550}}',
        VoucherRedeemCommit("001234567890123456", 12550),
    ),
    "voucher.redeem.abort": (
        b'{"v": 1, "seq": 1042, "ts": "2026-11-23T04:12:09.120Z", "type": "voucher.redeem.abort", '
        b'"body": {"validation_number": "001234567890123456", "reason": "ticket returned"}}',
        VoucherRedeemAbort("001234567890123456", "ticket returned"),
    ),
    "handpay": (
        b'{"v": 1, "seq": 1042, "ts": "2026-11-23T04:12:09.120Z", "type": "handpay", "body": '
        b'{"amount_cents": 150000, "kind": "jackpot"}}',
        Handpay(150000, "jackpot"),
    ),
    "config.status": (
        b'{"v": 1, "seq": 1042, "ts": "2026-11-23T04:12:09.120Z", "type": "config.status", "body": '
        b'{"deployment_id": 12, "state": "installed", "sha256": "' + SHA_B.encode() + b'"}}',
        ConfigStatus(12, "installed", SHA_B, None),
    ),
    "cmd.ack": (
        b'{"v": 1, "seq": 1042, "ts": "2026-11-23T04:12:09.120Z", "type": "cmd.ack", "body": '
        b'{"id": "h-000187", "result": "refused", "reason": "credits on the meter"}}',
        CmdAck("h-000187", "refused", "credits on the meter"),
    ),
}
