"""Fuzzing the decoder: whatever the bytes, ``decode_up`` (and
``decode_status``) return a message or raise EnvelopeError, never anything
else, and every message they accept keeps the invariants the host relies on.

Two sources: ``random`` with a fixed seed mutating the golden envelopes
(structure, types, numbers, strings, bytes), and hypothesis generating
arbitrary JSON, envelope-shaped JSON and raw bytes."""

import dataclasses
import json
import random
import re
import unicodedata
from datetime import timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.mqtt import (
    BODY_TYPES, CMD_RESULTS, CONFIG_STATES, CREDIT_TYPES, EVENT_CODES, HANDPAY_KINDS, METER_NAMES,
    REPLY_TYPES, UP_TYPES, EnvelopeError, Event, GameEnd, Handpay, Hello, Limits, Meters, Status,
    Up, VoucherIssue, VoucherRedeemCommit, decode_status, decode_up, encode_up,
)

from .vectors import GOLDEN

LIMITS = Limits()
EGM_ID = "EGM-0417"
SEED = 20261123
N_RANDOM = 32_000
N_HYPOTHESIS = 600  # per hypothesis test; three of them

# Reasons are short and never carry terminal-chosen text that could forge a log line.
REASON_RE = re.compile(
    r"(not_bytes|bad_topic|oversize|empty|not_utf8|not_json|duplicate_key|too_deep|not_object"
    r"|bad_version|unknown_type"
    r"|(missing_field|bad_type|bad_value|too_long|unknown_field|too_deep|negative_amount"
    r"|zero_amount|over_limit):[A-Za-z0-9_.?\[\]-]{1,200})"
)
BAD_TEXT = {"Cc", "Cs", "Cf", "Zl", "Zp"}
DIGITS18 = re.compile(r"[0-9]{18}")
SHA = re.compile(r"[0-9a-f]{64}")


# ---------------------------------------------------------------- invariants

def _check_amount(value, positive=False):
    assert type(value) is int
    assert (1 if positive else 0) <= value <= LIMITS.max_amount_cents


def _check_text(value, max_len=256):
    assert isinstance(value, str) and 1 <= len(value) <= max_len
    assert not any(unicodedata.category(ch) in BAD_TEXT for ch in value)


def _check_detail(detail):
    stack = [detail]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                assert "\x00" not in key
                key.encode("utf-8")
                if key.endswith("_cents"):
                    _check_amount(item)
                stack.append(item)
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str):
            assert "\x00" not in value
            value.encode("utf-8")
        else:
            assert value is None or isinstance(value, (bool, int, float))


def check_up(up: Up) -> None:
    """What the gateway and the services may take for granted of an accepted message."""
    assert isinstance(up, Up) and up.egm_id == EGM_ID
    assert type(up.seq) is int and 1 <= up.seq <= LIMITS.max_seq
    assert up.ts.tzinfo is timezone.utc
    assert up.type in UP_TYPES and isinstance(up.body, BODY_TYPES[up.type])
    assert up.reply_type == REPLY_TYPES.get(up.type)
    body = up.body
    for f in dataclasses.fields(body):
        value = getattr(body, f.name)
        if f.name.endswith("_cents") and isinstance(value, int):
            _check_amount(value, positive=f.name == "denom_cents")
        if f.name == "validation_number":
            assert DIGITS18.fullmatch(value)
        if f.name == "sha256":
            assert SHA.fullmatch(value)
        if f.name in ("card_id", "id"):
            _check_text(value, 64)
        if f.name == "reason" and value is not None:
            _check_text(value)
    if isinstance(body, Hello):
        for value in (body.manufacturer, body.model, body.serial, body.software.name,
                      body.software.version):
            _check_text(value)
        assert SHA.fullmatch(body.software.sha256)
        assert body.config.sha256 is None or SHA.fullmatch(body.config.sha256)
        assert isinstance(body.denoms_cents, tuple) and 1 <= len(body.denoms_cents) <= 64
        for denom in body.denoms_cents:
            _check_amount(denom, positive=True)
    elif isinstance(body, Meters):
        assert tuple(body.meters) == METER_NAMES
        for value in body.meters.values():
            assert type(value) is int and 0 <= value <= LIMITS.max_meter_value
    elif isinstance(body, GameEnd):
        _check_text(body.theme)
        assert isinstance(body.paytable_id, (str, int)) and not isinstance(body.paytable_id, bool)
    elif isinstance(body, Event):
        assert body.known == (body.code in EVENT_CODES)
        assert re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", body.code)
        assert isinstance(body.detail, dict)
        _check_detail(body.detail)
        if body.code == "bill.accepted":
            _check_amount(body.detail["amount_cents"], positive=True)
        if body.code == "tilt":
            _check_text(body.detail["reason"])
    elif isinstance(body, (VoucherIssue, Handpay, VoucherRedeemCommit)):
        _check_amount(body.amount_cents, positive=True)
    for f, choices in (("credit_type", CREDIT_TYPES), ("kind", HANDPAY_KINDS),
                       ("state", CONFIG_STATES), ("result", CMD_RESULTS)):
        if hasattr(body, f):
            assert getattr(body, f) in choices
    # What was accepted is exactly what its wire form says, down to the millisecond.
    again = decode_up(EGM_ID, encode_up(up.seq, up.type, body.to_body(), up.ts), LIMITS)
    to_ms = up.ts.replace(microsecond=up.ts.microsecond // 1000 * 1000)
    assert again == dataclasses.replace(up, ts=to_ms)


def check_error(err: EnvelopeError) -> None:
    assert err.reason != "internal_error", repr(err.__cause__)
    assert REASON_RE.fullmatch(err.reason), err.reason
    assert err.seq is None or (type(err.seq) is int and 1 <= err.seq <= LIMITS.max_seq)
    assert err.type is None or err.type in UP_TYPES


def throw(data, stats=None) -> str:
    """Feed one payload to both decoders; fail on anything but a message or EnvelopeError.
    Returns what decode_up made of it: "accepted" or "rejected"."""
    outcome = "accepted"
    try:
        up = decode_up(EGM_ID, data, LIMITS)
    except EnvelopeError as err:
        outcome = "rejected"
        check_error(err)
        if stats is not None:
            family = err.reason.split(":")[0]
            stats["rejected"][family] = stats["rejected"].get(family, 0) + 1
    except Exception as exc:  # the very thing under test
        pytest.fail(f"decode_up raised {exc!r} on {data[:300]!r}")
    else:
        check_up(up)
        if stats is not None:
            stats["accepted"][up.type] = stats["accepted"].get(up.type, 0) + 1
    try:
        status = decode_status(data, LIMITS)
    except EnvelopeError as err:
        assert err.reason != "internal_error", repr(err.__cause__)
    except Exception as exc:
        pytest.fail(f"decode_status raised {exc!r} on {data[:300]!r}")
    else:
        assert isinstance(status, Status) and status.state in ("online", "offline")
    return outcome


# ---------------------------------------------------------------- random mutation

SEEDS = [json.loads(data) for data, _ in GOLDEN.values()] + [
    {"v": 1, "seq": 9, "ts": "2026-11-23T04:12:09+02:00", "type": "event",
     "body": {"code": "tilt", "detail": {"reason": "reel", "n": [1, {"fee_cents": 5}]}}},
    {"v": 1, "seq": 10, "ts": "2026-11-23T04:12:09Z", "type": "event",
     "body": {"code": "vendor.custom", "detail": {"note": "cashbox", "meta": {"who": "tech 7"}}}},
    {"v": 1, "seq": 11, "ts": "2026-11-23T04:12:09.5Z", "type": "cmd.ack",
     "body": {"id": "h-1", "result": "ok"}},
    {"v": 1, "seq": 12, "ts": "2026-11-23T04:12:09Z", "type": "hello",
     "body": {**json.loads(GOLDEN["hello"][0])["body"],
              "config": {"deployment_id": None, "sha256": None}}},
]

EDGE_INTS = [0, 1, -1, 2, 17, 99, 100_000_000, 100_000_001, 2**31, 2**53 - 1, 2**53, 2**63,
             -2**63, 10**30, 10**400]
JUNK_STRINGS = ["", "x", "x" * 65, "x" * 257, "a\x00b", "\ud800", "\u202eevil", "line\nbreak",
                "١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦٧٨", "123456789012345678", "0" * 18, "A" * 64, "f" * 64,
                "cashable", "promo", "jackpot", "online", "ok", "tilt", "bill.accepted",
                "2026-11-23T04:12:09Z", "🎰", "null", "1e5", "NaN"]
ODD_CHARS = ["\x00", "\n", "\u2028", "\ud800", "é", "\x7f"]


def junk(rng: random.Random, depth: int = 0):
    pick = rng.randrange(12)
    if pick == 0:
        return None
    if pick == 1:
        return rng.choice([True, False])
    if pick in (2, 3):
        return rng.choice(EDGE_INTS)
    if pick == 4:
        return rng.choice([5.0, -0.0, 0.5, 1e308, -1e-300, float("nan"), float("inf"), 12.5])
    if pick in (5, 6):
        return rng.choice(JUNK_STRINGS)
    if pick == 7:
        return "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(20)))
    if pick == 8 and depth < 4:
        return [junk(rng, depth + 1) for _ in range(rng.randrange(4))]
    if pick == 9 and depth < 4:
        return {rng.choice(["amount_cents", "a", "", "seq", "v", "x_cents", "reason", "body"]):
                junk(rng, depth + 1) for _ in range(rng.randrange(4))}
    if pick == 10:
        deep = rng.choice([0, "x", []])
        for _ in range(rng.randrange(5, 20)):
            deep = rng.choice([[deep], {"a": deep}, {"x_cents": deep}])
        return deep
    return rng.randrange(-10**6, 10**6)


def nodes(doc):
    """Every (container, key) pair of a document."""
    found, stack = [], [doc]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            keys = value.keys()
        elif isinstance(value, list):
            keys = range(len(value))
        else:
            keys = ()
        for key in keys:
            found.append((value, key))
            stack.append(value[key])
    return found


def swap_type(value, rng):
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        as_float = float(value) if abs(value) < 2**1000 else 1e300
        return rng.choice([str(value), as_float, [value], value != 0, {"value": value}])
    if isinstance(value, float):
        return int(value) if value == value and abs(value) < 1e300 else str(value)
    if isinstance(value, str):
        return rng.choice([len(value), int(value) if value.isdigit() else None, [value], value.upper(),
                           value[: rng.randrange(len(value) + 1)], value + rng.choice(JUNK_STRINGS)])
    if isinstance(value, list):
        return {str(i): item for i, item in enumerate(value)}
    if isinstance(value, dict):
        return list(value.values())
    return {}


def mutate_doc(rng: random.Random, doc: dict) -> None:
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        op = rng.randrange(9)
        spots = nodes(doc)
        if op == 0 and spots:
            container, key = rng.choice(spots)
            if isinstance(container, dict):
                del container[key]
            else:
                container.pop(key)
        elif op == 1 and spots:
            container, key = rng.choice(spots)
            container[key] = junk(rng)
        elif op == 2 and spots:
            container, key = rng.choice(spots)
            container[key] = swap_type(container[key], rng)
        elif op == 3:
            dicts = [doc] + [c[k] for c, k in spots if isinstance(c[k], dict)]
            key = rng.choice(["extra", "amount_cents", "reason", "v", "detail", "zz_cents"])
            rng.choice(dicts)[key] = junk(rng)
        elif op == 4:
            doc["type"] = rng.choice(sorted(UP_TYPES) + ["cmd", "hello.reply", "", "Hello", "x" * 100])
        elif op == 5:
            ints = [(c, k) for c, k in spots if type(c[k]) is int]
            if ints:
                container, key = rng.choice(ints)
                value = container[key]
                container[key] = rng.choice([value + 1, value - 1, -value,
                                             value * 10**rng.randrange(1, 30), rng.choice(EDGE_INTS)])
        elif op == 6:
            strs = [(c, k) for c, k in spots if isinstance(c[k], str)]
            if strs:
                container, key = rng.choice(strs)
                value = container[key]
                cut = rng.randrange(len(value) + 1)
                container[key] = rng.choice([value[:cut], value + "x" * rng.choice([1, 60, 300]),
                                             value[:cut] + rng.choice(ODD_CHARS) + value[cut:],
                                             value.upper(), rng.choice(JUNK_STRINGS)])
        elif op == 7:
            doc["body"] = json.loads(rng.choice(list(GOLDEN.values()))[0])["body"]
        elif op == 8 and spots:
            container, key = rng.choice(spots)
            container[key] = junk(rng)  # a second helping of junk, often nested
            if rng.random() < 0.3:
                doc["seq"] = rng.choice(EDGE_INTS + [True, "5", 5.5])


def serialize(rng: random.Random, doc) -> bytes:
    ascii_only = rng.random() < 0.5
    try:
        separators = rng.choice([(",", ":"), (", ", ": ")])
        text = json.dumps(doc, ensure_ascii=ascii_only, separators=separators)
    except (ValueError, RecursionError):
        text = json.dumps({"v": 1})
    # surrogatepass writes lone surrogates as the invalid UTF-8 a broken terminal would send.
    return text.encode("utf-8", "surrogatepass")


NON_UTF8 = [b"\xff", b"\xfe", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80", b"\xc3",
            b"\xe2\x82"]


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    for _ in range(rng.choice([1, 1, 2, 4])):
        n = len(data)
        op = rng.randrange(11)
        i = rng.randrange(n + 1)
        if op == 0 and n:
            i = min(i, n - 1)
            data = data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1:]
        elif op == 1 and n:
            i = min(i, n - 1)
            data = data[:i] + bytes([rng.randrange(256)]) + data[i + 1:]
        elif op == 2:
            data = data[:i] + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9))) + data[i:]
        elif op == 3:
            data = data[:i] + data[i + rng.randrange(1, 20):]
        elif op == 4:
            data = data[:i]
        elif op == 5:
            j = rng.randrange(i, n + 1)
            data = data[:j] + data[i:j] + data[j:]
        elif op == 6:
            data = data.replace(b'{"v"', b'{"v":1,"v"', 1)
            data = data.replace(b'"amount_cents"', b'"amount_cents":1,"amount_cents"', 1)
        elif op == 7:
            data = rng.choice([b"\xef\xbb\xbf", b" \n\t", b"[", b"{}"]) + data
        elif op == 8:
            data = data[:i] + rng.choice(NON_UTF8) + data[i:]
        elif op == 9:
            numbers = [b"9" * rng.randrange(1, 5000), b"1e999", b"-0", b"NaN", b"1.0"]
            data = re.sub(rb"\d+", lambda m: rng.choice(numbers + [m.group()]), data,
                          count=rng.randrange(1, 4))
        else:
            data = data + rng.choice([b"}", b"]", b",", b"\x00", b"garbage", b" " * 70000])
    return data


def test_random_mutations():
    rng = random.Random(SEED)
    stats = {"accepted": {}, "rejected": {}}
    for n in range(N_RANDOM):
        if n % 50 == 0:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(200)))
        else:
            doc = json.loads(json.dumps(rng.choice(SEEDS)))
            if rng.random() < 0.85:
                mutate_doc(rng, doc)
            data = serialize(rng, doc)
            if rng.random() < 0.3:
                data = mutate_bytes(rng, data)
        throw(data, stats)
    accepted = sum(stats["accepted"].values())
    # The fuzz must reach both sides: many accepted messages of every type, and many kinds of rejection.
    assert accepted > N_RANDOM // 10
    assert set(stats["accepted"]) == UP_TYPES
    assert len(stats["rejected"]) >= 15, stats["rejected"]


# ---------------------------------------------------------------- hypothesis

FUZZ_SETTINGS = settings(max_examples=N_HYPOTHESIS, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(HealthCheck))

# Any code point, lone surrogates and controls included: JSON \u escapes can carry them all.
any_text = st.text(st.characters(exclude_categories=()), max_size=40)
json_scalars = (st.none() | st.booleans() | st.integers() | st.integers(-10, 10**9)
                | st.floats(allow_nan=True, allow_infinity=True) | any_text
                | st.sampled_from(JUNK_STRINGS))
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(
        any_text | st.sampled_from(["amount_cents", "x_cents", "reason"]), children, max_size=5),
    max_leaves=12,
)


def _dump(doc, ascii_only: bool) -> bytes:
    # As \u escapes (valid JSON for any string) or as raw UTF-8 (invalid for a lone surrogate).
    return json.dumps(doc, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@FUZZ_SETTINGS
@given(json_values, st.booleans())
def test_hypothesis_arbitrary_json(value, ascii_only):
    assert throw(_dump(value, ascii_only)) in ("accepted", "rejected")


@FUZZ_SETTINGS
@given(st.data())
def test_hypothesis_envelopes(data):
    """Golden envelopes whose every field may be swapped for arbitrary JSON."""
    doc = json.loads(GOLDEN[data.draw(st.sampled_from(sorted(GOLDEN)))][0])
    doc["type"] = data.draw(st.sampled_from(sorted(UP_TYPES)) | st.just(doc["type"]), label="type")
    for container, key in nodes(doc):
        if data.draw(st.integers(0, 9), label="replace?") == 0:
            container[key] = data.draw(json_values | st.integers(-1, 2**53 + 1))
    assert throw(_dump(doc, data.draw(st.booleans(), label="ascii_only"))) in ("accepted", "rejected")


@FUZZ_SETTINGS
@given(st.binary(max_size=300))
def test_hypothesis_raw_bytes(raw):
    assert throw(raw) in ("accepted", "rejected")
