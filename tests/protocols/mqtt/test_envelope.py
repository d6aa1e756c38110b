"""The envelope codec against the contract: golden vectors per type, every
rejection reason, round trips, timestamps, status and down messages."""

import json
from datetime import datetime, timedelta, timezone

import pytest

from protocols.mqtt import (
    REPLY_TYPES, UP_TYPES, CmdAck, ConfigRef, ConfigStatus, EnvelopeError, Event, GameEnd,
    Handpay, Limits, Status, Up, VoucherIssue, decode_status, decode_up, encode_down, encode_up,
    format_ts, parse_ts,
)
from protocols.mqtt import messages

from .vectors import GOLDEN, SHA_A, SHA_B, TS

UTC = timezone.utc


def doc_of(type_):
    return json.loads(GOLDEN[type_][0])


def payload(doc):
    return json.dumps(doc).encode()


def reject(doc_or_bytes, limits=Limits(), egm_id="EGM1"):
    data = doc_or_bytes if isinstance(doc_or_bytes, bytes) else payload(doc_or_bytes)
    with pytest.raises(EnvelopeError) as info:
        decode_up(egm_id, data, limits)
    return info.value


# ---------------------------------------------------------------- golden

def test_golden_covers_every_terminal_to_host_type():
    assert set(GOLDEN) == UP_TYPES == set(messages.BODY_TYPES)


@pytest.mark.parametrize("type_", sorted(GOLDEN))
def test_golden(type_):
    data, body = GOLDEN[type_]
    up = decode_up("EGM1", data)
    assert up == Up(egm_id="EGM1", seq=1042, ts=TS, type=type_, body=body)
    assert up.reply_type == REPLY_TYPES.get(type_)


def test_reply_types_of_the_contract():
    assert REPLY_TYPES == {
        "hello": "hello.reply", "card.in": "card.reply", "voucher.issue": "voucher.issue.reply",
        "voucher.redeem": "voucher.redeem.reply", "handpay": "handpay.reply",
    }


def test_compact_payload_and_unknown_envelope_keys_are_accepted():
    data = (b'{"v":1,"seq":7,"ts":"2026-11-23T04:12:09Z","type":"handpay","trace":"x",'
            b'"qos":{"a":1},"body":{"amount_cents":1,"kind":"cancelled_credit","extra":[1]}}')
    up = decode_up("EGM-7_b", data)
    assert up == Up("EGM-7_b", 7, datetime(2026, 11, 23, 4, 12, 9, tzinfo=UTC), "handpay",
                    Handpay(1, "cancelled_credit"))


def test_hello_without_config_and_upper_case_sha():
    doc = doc_of("hello")
    doc["body"]["config"] = {"deployment_id": None, "sha256": None}
    doc["body"]["software"]["sha256"] = SHA_A.upper()
    up = decode_up("EGM1", payload(doc))
    assert up.body.config == ConfigRef(None, None)
    assert up.body.software.sha256 == SHA_A


def test_hello_string_deployment_id():
    doc = doc_of("hello")
    doc["body"]["config"]["deployment_id"] = "dep-12"
    assert decode_up("EGM1", payload(doc)).body.config.deployment_id == "dep-12"


def test_event_unknown_code_is_kept_and_flagged():
    doc = doc_of("event")
    doc["body"] = {"code": "vendor.x_reel_motor", "detail": {"reel": 3}}
    up = decode_up("EGM1", payload(doc))
    assert up.body == Event("vendor.x_reel_motor", {"reel": 3}, known=False)


def test_event_without_detail_has_empty_detail():
    doc = doc_of("event")
    doc["body"] = {"code": "door.main.open"}
    assert decode_up("EGM1", payload(doc)).body == Event("door.main.open", {}, True)


def test_tilt_with_reason_and_free_detail():
    doc = doc_of("event")
    doc["body"] = {"code": "tilt", "detail": {"reason": "reel 2 jammed", "temp_c": 41.5,
                                              "nested": {"refund_cents": 0, "list": ["a", None]}}}
    up = decode_up("EGM1", payload(doc))
    assert up.body.known and up.body.detail["reason"] == "reel 2 jammed"


def test_event_codes_of_the_spec():
    assert len(messages.EVENT_CODES) == 23
    assert {"door.main.open", "bill.accepted", "software.auth_failed", "tilt"} <= messages.EVENT_CODES


def test_game_end_int_paytable_and_zero_wager():
    doc = doc_of("game.end")
    doc["body"]["game"]["paytable_id"] = 96
    doc["body"]["wager_cents"] = 0
    assert decode_up("EGM1", payload(doc)).body == GameEnd("Dragon Gold", 96, 1, 0, 120, 4370)


def test_optional_reasons():
    doc = doc_of("cmd.ack")
    doc["body"] = {"id": "h-1", "result": "ok"}
    assert decode_up("EGM1", payload(doc)).body == CmdAck("h-1", "ok", None)
    doc["body"]["reason"] = None
    assert decode_up("EGM1", payload(doc)).body == CmdAck("h-1", "ok", None)
    doc = doc_of("config.status")
    doc["body"].update(state="rejected", reason="signature does not verify", deployment_id="d-9")
    assert decode_up("EGM1", payload(doc)).body == ConfigStatus(
        "d-9", "rejected", SHA_B, "signature does not verify")


def test_promo_voucher_and_amount_at_the_limit():
    doc = doc_of("voucher.issue")
    doc["body"] = {"amount_cents": 100_000_000, "credit_type": "promo"}
    assert decode_up("EGM1", payload(doc)).body == VoucherIssue(100_000_000, "promo")


def test_seq_at_the_limits():
    for seq in (1, 2**53 - 1):
        doc = doc_of("card.in")
        doc["seq"] = seq
        assert decode_up("EGM1", payload(doc)).seq == seq


def test_lifetime_meters_are_not_bound_by_the_transaction_limit():
    doc = doc_of("meters")
    doc["body"]["meters"]["coin_in_cents"] = 2**53 - 1
    assert decode_up("EGM1", payload(doc)).body.meters["coin_in_cents"] == 2**53 - 1


def test_non_ascii_text_is_accepted():
    doc = doc_of("hello")
    doc["body"]["manufacturer"] = "Novomatic Österreich — ゲーム"
    raw = json.dumps(doc, ensure_ascii=False).encode("utf-8")
    assert decode_up("EGM1", raw).body.manufacturer == "Novomatic Österreich — ゲーム"


def test_bytes_like_payloads():
    data = GOLDEN["card.in"][0]
    assert decode_up("EGM1", bytearray(data)) == decode_up("EGM1", memoryview(data))


# ---------------------------------------------------------------- rejections

def _set(path, value):
    def mutate(doc):
        *parents, last = path
        target = doc
        for key in parents:
            target = target[key]
        target[last] = value
    return mutate


def _delete(path):
    def mutate(doc):
        *parents, last = path
        target = doc
        for key in parents:
            target = target[key]
        del target[last]
    return mutate


def _deep(depth):
    value = {}
    for _ in range(depth):
        value = {"a": value}
    return value


B = "body"
# (type, mutation, reason): each must be rejected with that reason, seq 1042 and the type known.
FIELD_REJECTIONS = [
    ("card.in", _delete(["v"]), "missing_field:v"),
    ("card.in", _set(["v"], 2), "bad_version"),
    ("card.in", _set(["v"], "1"), "bad_version"),
    ("card.in", _set(["v"], 1.0), "bad_version"),
    ("card.in", _set(["v"], True), "bad_version"),
    ("card.in", _delete(["ts"]), "missing_field:ts"),
    ("card.in", _set(["ts"], 1764000000), "bad_type:ts"),
    ("card.in", _set(["ts"], "2026-11-23 04:12:09Z"), "bad_value:ts"),
    ("card.in", _set(["ts"], "2026-11-23T04:12:09"), "bad_value:ts"),
    ("card.in", _set(["ts"], "2026-02-30T04:12:09Z"), "bad_value:ts"),
    ("card.in", _delete(["body"]), "missing_field:body"),
    ("card.in", _set(["body"], ["card_id"]), "bad_type:body"),
    ("card.in", _set(["body"], None), "bad_type:body"),
    ("card.in", _delete([B, "card_id"]), "missing_field:body.card_id"),
    ("card.in", _set([B, "card_id"], ""), "bad_value:body.card_id"),
    ("card.in", _set([B, "card_id"], 12345), "bad_type:body.card_id"),
    ("card.in", _set([B, "card_id"], "x" * 65), "too_long:body.card_id"),
    ("card.out", _set([B, "card_id"], "PC-1\nFAKE LOG LINE"), "bad_value:body.card_id"),
    ("card.out", _set([B, "card_id"], "PC-1\u202e"), "bad_value:body.card_id"),
    ("voucher.issue", _delete([B, "amount_cents"]), "missing_field:body.amount_cents"),
    ("voucher.issue", _set([B, "amount_cents"], 5.0), "bad_type:body.amount_cents"),
    ("voucher.issue", _set([B, "amount_cents"], 12.5), "bad_type:body.amount_cents"),
    ("voucher.issue", _set([B, "amount_cents"], "500"), "bad_type:body.amount_cents"),
    ("voucher.issue", _set([B, "amount_cents"], True), "bad_type:body.amount_cents"),
    ("voucher.issue", _set([B, "amount_cents"], None), "bad_type:body.amount_cents"),
    ("voucher.issue", _set([B, "amount_cents"], -1), "negative_amount:body.amount_cents"),
    ("voucher.issue", _set([B, "amount_cents"], 0), "zero_amount:body.amount_cents"),
    ("voucher.issue", _set([B, "amount_cents"], 100_000_001), "over_limit:body.amount_cents"),
    ("voucher.issue", _set([B, "amount_cents"], 10**40), "over_limit:body.amount_cents"),
    ("voucher.issue", _set([B, "credit_type"], "restricted"), "bad_value:body.credit_type"),
    ("voucher.issue", _set([B, "credit_type"], 1), "bad_type:body.credit_type"),
    ("voucher.issue", _delete([B, "credit_type"]), "missing_field:body.credit_type"),
    ("handpay", _set([B, "amount_cents"], 0), "zero_amount:body.amount_cents"),
    ("handpay", _set([B, "amount_cents"], -5), "negative_amount:body.amount_cents"),
    ("handpay", _set([B, "kind"], "progressive"), "bad_value:body.kind"),
    ("voucher.redeem", _set([B, "validation_number"], 1234567890123456),
     "bad_type:body.validation_number"),
    ("voucher.redeem", _set([B, "validation_number"], "12345678901234567"),
     "bad_value:body.validation_number"),
    ("voucher.redeem", _set([B, "validation_number"], "1234567890123456789"),
     "bad_value:body.validation_number"),
    ("voucher.redeem", _set([B, "validation_number"], "00123456789012345a"),
     "bad_value:body.validation_number"),
    ("voucher.redeem", _set([B, "validation_number"], "١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦٧٨"),
     "bad_value:body.validation_number"),
    ("voucher.printed", _delete([B, "validation_number"]), "missing_field:body.validation_number"),
    ("voucher.print_failed", _set([B, "validation_number"], None),
     "bad_type:body.validation_number"),
    ("voucher.redeem.commit", _set([B, "amount_cents"], 0), "zero_amount:body.amount_cents"),
    ("voucher.redeem.commit", _set([B, "amount_cents"], 1e3), "bad_type:body.amount_cents"),
    ("voucher.redeem.abort", _set([B, "reason"], ""), "bad_value:body.reason"),
    ("voucher.redeem.abort", _set([B, "reason"], "r" * 257), "too_long:body.reason"),
    ("hello", _delete([B, "software"]), "missing_field:body.software"),
    ("hello", _set([B, "software"], "vortex-os"), "bad_type:body.software"),
    ("hello", _delete([B, "software", "version"]), "missing_field:body.software.version"),
    ("hello", _set([B, "software", "sha256"], "abc"), "bad_value:body.software.sha256"),
    ("hello", _set([B, "software", "sha256"], "g" * 64), "bad_value:body.software.sha256"),
    ("hello", _set([B, "denoms_cents"], []), "bad_value:body.denoms_cents"),
    ("hello", _set([B, "denoms_cents"], 25), "bad_type:body.denoms_cents"),
    ("hello", _set([B, "denoms_cents"], [1, 0]), "zero_amount:body.denoms_cents[1]"),
    ("hello", _set([B, "denoms_cents"], [1, 2.5]), "bad_type:body.denoms_cents[1]"),
    ("hello", _set([B, "denoms_cents"], list(range(1, 66))), "too_long:body.denoms_cents"),
    ("hello", _delete([B, "config"]), "missing_field:body.config"),
    ("hello", _set([B, "config"], None), "bad_type:body.config"),
    ("hello", _delete([B, "config", "sha256"]), "missing_field:body.config.sha256"),
    ("hello", _set([B, "config", "deployment_id"], 0), "bad_value:body.config.deployment_id"),
    ("hello", _set([B, "config", "deployment_id"], 1.5), "bad_type:body.config.deployment_id"),
    ("hello", _set([B, "manufacturer"], "m" * 257), "too_long:body.manufacturer"),
    ("hello", _set([B, "serial"], "VX\x00"), "bad_value:body.serial"),
    ("meters", _delete([B, "meters", "games_won"]), "missing_field:body.meters.games_won"),
    ("meters", _set([B, "meters", "coin_out_cents"], -1), "negative_amount:body.meters.coin_out_cents"),
    ("meters", _set([B, "meters", "games_played"], -1), "bad_value:body.meters.games_played"),
    ("meters", _set([B, "meters", "door_open_count"], 1.0), "bad_type:body.meters.door_open_count"),
    ("meters", _set([B, "meters", "coin_in_cents"], 2**53), "over_limit:body.meters.coin_in_cents"),
    ("meters", _set([B, "meters", "coin_in"], 5), "unknown_field:body.meters.coin_in"),
    ("meters", _set([B, "meters", "bad\nname"], 5), "unknown_field:body.meters.?"),
    ("meters", _set([B, "meters"], [1, 2]), "bad_type:body.meters"),
    ("game.end", _delete([B, "game"]), "missing_field:body.game"),
    ("game.end", _delete([B, "game", "theme"]), "missing_field:body.game.theme"),
    ("game.end", _set([B, "game", "paytable_id"], -1), "bad_value:body.game.paytable_id"),
    ("game.end", _set([B, "game", "paytable_id"], None), "bad_type:body.game.paytable_id"),
    ("game.end", _set([B, "denom_cents"], 0), "zero_amount:body.denom_cents"),
    ("game.end", _set([B, "wager_cents"], -50), "negative_amount:body.wager_cents"),
    ("game.end", _set([B, "win_cents"], 100_000_001), "over_limit:body.win_cents"),
    ("game.end", _delete([B, "credits_after_cents"]), "missing_field:body.credits_after_cents"),
    ("event", _delete([B, "code"]), "missing_field:body.code"),
    ("event", _set([B, "code"], 7), "bad_type:body.code"),
    ("event", _set([B, "code"], ""), "bad_value:body.code"),
    ("event", _set([B, "code"], "door open"), "bad_value:body.code"),
    ("event", _set([B, "code"], "c" * 65), "too_long:body.code"),
    ("event", _set([B, "detail"], None), "bad_type:body.detail"),
    ("event", _set([B, "detail"], []), "bad_type:body.detail"),
    ("event", _delete([B, "detail", "amount_cents"]), "missing_field:body.detail.amount_cents"),
    ("event", _set([B, "detail", "amount_cents"], -2000), "negative_amount:body.detail.amount_cents"),
    ("event", _set([B, "detail", "amount_cents"], 0), "zero_amount:body.detail.amount_cents"),
    ("event", _set([B, "detail", "amount_cents"], 20.0), "bad_type:body.detail.amount_cents"),
    ("event", _set([B, "detail"], {"amount_cents": 5, "x": {"refund_cents": -1}}),
     "negative_amount:body.detail.x.refund_cents"),
    ("event", _set([B, "detail"], {"amount_cents": 5, "x": [{"fee_cents": "1"}]}),
     "bad_type:body.detail.x[0].fee_cents"),
    ("event", _set([B, "detail"], {"amount_cents": 5, "note": "a\x00b"}), "bad_value:body.detail.note"),
    ("event", _set([B, "detail"], {"amount_cents": 5, "note": "\ud800"}), "bad_value:body.detail.note"),
    ("event", _set([B, "detail"], {"amount_cents": 5, "x": _deep(8)}), "too_deep:body.detail"),
    ("event", _set([B], {"code": "tilt", "detail": {}}), "missing_field:body.detail.reason"),
    ("event", _set([B], {"code": "tilt", "detail": {"reason": 3}}), "bad_type:body.detail.reason"),
    ("config.status", _set([B, "state"], "done"), "bad_value:body.state"),
    ("config.status", _delete([B, "sha256"]), "missing_field:body.sha256"),
    ("config.status", _set([B, "sha256"], None), "bad_type:body.sha256"),
    ("config.status", _set([B, "deployment_id"], None), "bad_type:body.deployment_id"),
    ("config.status", _set([B, "deployment_id"], True), "bad_type:body.deployment_id"),
    ("config.status", _set([B, "reason"], 5), "bad_type:body.reason"),
    ("cmd.ack", _set([B, "result"], "OK"), "bad_value:body.result"),
    ("cmd.ack", _delete([B, "id"]), "missing_field:body.id"),
    ("cmd.ack", _set([B, "id"], "i" * 65), "too_long:body.id"),
]


@pytest.mark.parametrize("type_, mutate, reason", FIELD_REJECTIONS,
                         ids=[f"{t}-{r}" for t, _, r in FIELD_REJECTIONS])
def test_field_rejection(type_, mutate, reason):
    doc = doc_of(type_)
    mutate(doc)
    err = reject(doc)
    assert (err.reason, err.seq, err.type) == (reason, 1042, type_)
    assert err.reply_type == REPLY_TYPES.get(type_)
    assert str(err) == reason


@pytest.mark.parametrize("seq, reason", [
    (True, "bad_type:seq"), ("1042", "bad_type:seq"), (1042.0, "bad_type:seq"), (None, "bad_type:seq"),
    (0, "bad_value:seq"), (-1, "bad_value:seq"), (2**53, "bad_value:seq"),
])
def test_bad_seq_is_rejected_without_a_seq_to_answer(seq, reason):
    doc = doc_of("voucher.redeem")
    doc["seq"] = seq
    err = reject(doc)
    assert (err.reason, err.seq, err.type) == (reason, None, "voucher.redeem")


def test_missing_seq():
    doc = doc_of("voucher.redeem")
    del doc["seq"]
    assert reject(doc).reason == "missing_field:seq"


@pytest.mark.parametrize("type_", ["cmd", "config.push", "hello.reply", "HELLO", "", "x" * 1000])
def test_unknown_type(type_):
    doc = doc_of("card.in")
    doc["type"] = type_
    err = reject(doc)
    assert (err.reason, err.seq, err.type, err.reply_type) == ("unknown_type", 1042, None, None)


def test_type_missing_or_not_a_string():
    doc = doc_of("card.in")
    doc["type"] = ["card.in"]
    assert reject(doc).reason == "bad_type:type"
    del doc["type"]
    assert reject(doc).reason == "missing_field:type"


def test_errors_of_a_message_with_a_reply_carry_what_the_reply_needs():
    doc = doc_of("voucher.redeem")
    doc["v"] = 2
    err = reject(doc)
    assert (err.reason, err.seq, err.reply_type) == ("bad_version", 1042, "voucher.redeem.reply")


@pytest.mark.parametrize("data, reason", [
    (b"", "empty"),
    (b"\xff\xfe{}", "not_utf8"),
    (b'{"v":1,"type":"card.in","body":{"card_id":"\xc3\x28"}}', "not_utf8"),
    (b'{"v":1,"ts":"\xed\xa0\x80"}', "not_utf8"),
    (b"\xef\xbb\xbf" + GOLDEN["card.in"][0], "not_json"),
    (b"hello", "not_json"),
    (GOLDEN["card.in"][0][:-1], "not_json"),
    (b'{"v":1,}', "not_json"),
    (b'{"v":NaN}', "not_json"),
    (b'{"v":Infinity}', "not_json"),
    (b'{"v":1e999}', "not_json"),
    (b'{"v":' + b"9" * 5000 + b"}", "not_json"),
    (b'{"v":1,"v":1}', "duplicate_key"),
    (b'{"v":1,"body":{"amount_cents":1,"amount_cents":100000}}', "duplicate_key"),
    (b"[" * 50000 + b"]" * 50000, "oversize"),
    (b"[" * 30000 + b"]" * 30000, "too_deep"),
    (b'{"a":' * 13 + b"1" + b"}" * 13, "too_deep"),
    (b"[1, 2]", "not_object"),
    (b'"card.in"', "not_object"),
    (b"null", "not_object"),
    (b"42", "not_object"),
])
def test_payload_rejection(data, reason):
    err = reject(data)
    assert (err.reason, err.seq, err.type) == (reason, None, None)


def test_oversize_and_custom_limits():
    big = doc_of("voucher.redeem.abort")
    big["pad"] = "x" * 70000
    assert reject(big).reason == "oversize"
    small = Limits(max_payload_bytes=64, max_amount_cents=1000, max_seq=2000)
    assert reject(doc_of("card.in"), small).reason == "oversize"
    roomy = Limits(max_amount_cents=1000, max_seq=2000)
    doc = doc_of("voucher.issue")
    doc["body"]["amount_cents"] = 1001
    assert reject(doc, roomy).reason == "over_limit:body.amount_cents"
    doc["body"]["amount_cents"] = 1000
    doc["seq"] = 2001
    assert reject(doc, roomy).reason == "bad_value:seq"


@pytest.mark.parametrize("egm_id", ["", "EGM 1", "EGM1\n", "e" * 33, "EGM/1", "+", "#", None, b"EGM1"])
def test_bad_egm_id(egm_id):
    assert reject(GOLDEN["card.in"][0], egm_id=egm_id).reason == "bad_topic"


@pytest.mark.parametrize("data", ["{}", None, 42, {"v": 1}])
def test_not_bytes(data):
    with pytest.raises(EnvelopeError) as info:
        decode_up("EGM1", data)
    assert info.value.reason == "not_bytes"


def test_a_codec_bug_costs_one_message_not_the_gateway(monkeypatch):
    def broken(body, limits):
        raise KeyError("bug")
    monkeypatch.setitem(messages.PARSERS, "card.in", broken)
    err = reject(GOLDEN["card.in"][0])
    assert err.reason == "internal_error" and isinstance(err.__cause__, KeyError)


def test_envelope_error_is_a_value_error():
    err = EnvelopeError("unknown_type", seq=5, type=None)
    assert isinstance(err, ValueError) and err.reply_type is None
    assert repr(err) == "EnvelopeError('unknown_type', seq=5, type=None)"


# ---------------------------------------------------------------- round trips

@pytest.mark.parametrize("type_", sorted(GOLDEN))
def test_round_trip(type_):
    up = decode_up("EGM1", GOLDEN[type_][0])
    again = decode_up("EGM1", encode_up(up.seq, up.type, up.body.to_body(), up.ts))
    assert again == up


def test_encode_up_shape_and_default_ts():
    before = datetime.now(UTC)
    data = encode_up(3, "card.in", {"card_id": "PC-1"})
    doc = json.loads(data)
    assert list(doc) == ["v", "seq", "ts", "type", "body"]
    assert b" " not in data
    assert before - timedelta(seconds=1) <= parse_ts(doc["ts"]) <= datetime.now(UTC)


def test_encode_up_lets_a_simulator_send_bad_money():
    up_bytes = encode_up(3, "voucher.issue", {"amount_cents": 5.0, "credit_type": "cashable"}, TS)
    assert reject(up_bytes).reason == "bad_type:body.amount_cents"


@pytest.mark.parametrize("args", [
    (True, "card.in", {}), ("1", "card.in", {}), (1, "", {}), (1, None, {}), (1, "card.in", []),
    (1, "card.in", {"x": float("nan")}), (1, "card.in", {"x": object()}),
])
def test_encode_up_refuses_what_is_not_a_message(args):
    with pytest.raises(ValueError):
        encode_up(*args, ts=TS)


# ---------------------------------------------------------------- down

def test_encode_down_golden():
    data = encode_down("h-000187", "voucher.redeem.reply",
                       {"result": "authorized", "amount_cents": 2500, "credit_type": "cashable"},
                       re=1042, ts=TS)
    assert data == (b'{"v":1,"id":"h-000187","ts":"2026-11-23T04:12:09.120Z",'
                    b'"type":"voucher.redeem.reply","re":1042,'
                    b'"body":{"result":"authorized","amount_cents":2500,"credit_type":"cashable"}}')


def test_encode_down_command_has_no_re_and_keeps_utf8():
    data = encode_down("h-9", "cmd", {"name": "message", "args": {"text": "Bonne chance — ¡suerte!"}},
                       ts=datetime(2026, 1, 2, 3, 4, 5, 999999, tzinfo=UTC))
    assert data == ('{"v":1,"id":"h-9","ts":"2026-01-02T03:04:05.999Z","type":"cmd",'
                    '"body":{"name":"message","args":{"text":"Bonne chance — ¡suerte!"}}}').encode()


def test_encode_down_error_reply():
    error = {"result": "error", "reason": "bad_type:body.amount_cents"}
    data = encode_down("h-2", "handpay.reply", error, re=7, ts=TS)
    assert json.loads(data)["body"] == {"result": "error", "reason": "bad_type:body.amount_cents"}


def test_encode_down_accepts_tuples_and_default_ts():
    doc = json.loads(encode_down("h-3", "hello.reply", {"denoms": (1, 5)}))
    assert doc["body"] == {"denoms": [1, 5]}
    assert parse_ts(doc["ts"]) <= datetime.now(UTC)


@pytest.mark.parametrize("kwargs", [
    dict(msg_id="", type="cmd", body={}), dict(msg_id=5, type="cmd", body={}),
    dict(msg_id="h", type="", body={}), dict(msg_id="h", type="cmd", body=[]),
    dict(msg_id="h", type="cmd", body={"amount_cents": 5.0}),
    dict(msg_id="h", type="cmd", body={"x": {1: 2}}),
    dict(msg_id="h", type="cmd", body={}, re=0), dict(msg_id="h", type="cmd", body={}, re=True),
    dict(msg_id="h", type="cmd", body={}, re="7"),
    dict(msg_id="h", type="cmd", body={}, ts=datetime(2026, 1, 1)),
    dict(msg_id="h", type="cmd", body={"s": "\ud800"}),
])
def test_encode_down_refuses_bad_input(kwargs):
    with pytest.raises(ValueError):
        encode_down(**kwargs)


# ---------------------------------------------------------------- time

@pytest.mark.parametrize("text, expected", [
    ("2026-11-23T04:12:09.120Z", datetime(2026, 11, 23, 4, 12, 9, 120000, tzinfo=UTC)),
    ("2026-11-23T04:12:09Z", datetime(2026, 11, 23, 4, 12, 9, tzinfo=UTC)),
    ("2026-11-23T04:12:09+00:00", datetime(2026, 11, 23, 4, 12, 9, tzinfo=UTC)),
    ("2026-11-23t04:12:09.5z", datetime(2026, 11, 23, 4, 12, 9, 500000, tzinfo=UTC)),
    ("2026-11-23T06:12:09+02:00", datetime(2026, 11, 23, 4, 12, 9, tzinfo=UTC)),
    ("2026-11-22T22:42:09-05:30", datetime(2026, 11, 23, 4, 12, 9, tzinfo=UTC)),
    ("2026-11-23T04:12:09.123456789Z", datetime(2026, 11, 23, 4, 12, 9, 123456, tzinfo=UTC)),
    ("2024-02-29T23:59:59.999Z", datetime(2024, 2, 29, 23, 59, 59, 999000, tzinfo=UTC)),
])
def test_parse_ts(text, expected):
    parsed = parse_ts(text)
    assert parsed == expected and parsed.tzinfo is UTC


@pytest.mark.parametrize("text", [
    "2026-11-23T04:12:09", "2026-11-23 04:12:09Z", "2026-11-23T04:12Z", "2026-11-23",
    "2026-11-23T24:00:00Z", "2026-11-23T04:60:00Z", "2026-11-23T04:12:60Z", "2025-02-29T00:00:00Z",
    "2026-13-01T00:00:00Z", "0000-01-01T00:00:00Z", "2026-11-23T04:12:09+24:00",
    "2026-11-23T04:12:09+01:60", "2026-11-23T04:12:09+0100", "2026-11-23T04:12:09.Z",
    "2026-11-23T04:12:09.1234567890Z", "2026-11-23T04:12:09Z\n", " 2026-11-23T04:12:09Z",
    "２０２６-11-23T04:12:09Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
    "", 1764000000, None,
])
def test_parse_ts_rejects(text):
    with pytest.raises(ValueError):
        parse_ts(text)


def test_format_ts():
    assert format_ts(datetime(2026, 11, 23, 4, 12, 9, 120999, tzinfo=UTC)) == "2026-11-23T04:12:09.120Z"
    plus2 = timezone(timedelta(hours=2))
    assert format_ts(datetime(2026, 1, 1, 1, 0, 0, tzinfo=plus2)) == "2025-12-31T23:00:00.000Z"
    assert parse_ts(format_ts(TS)) == TS
    with pytest.raises(ValueError):
        format_ts(datetime(2026, 1, 1))


# ---------------------------------------------------------------- status

def test_status_online_and_last_will():
    assert decode_status(b'{"state":"online","ts":"2026-11-23T04:12:09.120Z"}') == Status("online", TS)
    assert decode_status(b'{"state":"offline"}') == Status("offline", None)
    assert decode_status(b'{"state":"offline","ts":null,"v":1}') == Status("offline", None)


@pytest.mark.parametrize("data, reason", [
    (b"", "empty"), (b"online", "not_json"), (b"\xff", "not_utf8"), (b"[]", "not_object"),
    (b"{}", "missing_field:state"), (b'{"state":1}', "bad_type:state"),
    (b'{"state":"ONLINE"}', "bad_value:state"), (b'{"state":"online","ts":5}', "bad_type:ts"),
    (b'{"state":"online","ts":"yesterday"}', "bad_value:ts"),
    (b'{"state":"online","state":"offline"}', "duplicate_key"), (b"x" * 70000, "oversize"),
    (None, "not_bytes"),
])
def test_status_rejections(data, reason):
    with pytest.raises(EnvelopeError) as info:
        decode_status(data)
    assert info.value.reason == reason
