"""The MQTT envelope of terminal-mqtt.md: decode what a terminal publishes
(``up`` and ``status`` payloads) into typed messages, and encode what the host
sends (``down``). Pure: bytes and dicts in, typed values out.

``decode_up`` and ``decode_status`` raise ``EnvelopeError`` and nothing else,
whatever the bytes; its ``reason`` is short and machine-readable:

- ``not_bytes``, ``bad_topic`` (the egm_id), ``oversize``, ``empty``,
  ``not_utf8``, ``not_json``, ``duplicate_key``, ``too_deep``, ``not_object``
- ``bad_version``, ``unknown_type``
- ``missing_field:<path>``, ``bad_type:<path>``, ``bad_value:<path>``,
  ``too_long:<path>``, ``unknown_field:<path>``, ``too_deep:<path>``
- money: ``negative_amount:<path>``, ``zero_amount:<path>``, ``over_limit:<path>``
- ``internal_error``: a bug of this codec, caught so it costs one message

where ``<path>`` names the field, e.g. ``seq``, ``ts``, ``body.amount_cents``,
``body.meters.coin_in_cents``, ``body.denoms_cents[2]``.
"""

from __future__ import annotations

import builtins
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from .canonical import check_plain
from .messages import PARSERS, UP_TYPES, Body, BodyError
from .topics import EGM_ID_RE

REPLY_TYPES = {
    "hello": "hello.reply",
    "card.in": "card.reply",
    "voucher.issue": "voucher.issue.reply",
    "voucher.redeem": "voucher.redeem.reply",
    "handpay": "handpay.reply",
}

MAX_SEQ = 2**53 - 1
# Envelope (1) > body (2) > detail (3) > 8 levels of detail: anything deeper is junk.
MAX_DEPTH = 12
STATUS_STATES = frozenset({"online", "offline"})


@dataclass(frozen=True)
class Limits:
    """What the host accepts of a terminal; built once from the settings."""

    max_payload_bytes: int = 65536
    # Any *_cents amount of a message above this is rejected.
    max_amount_cents: int = 100_000_000
    max_seq: int = MAX_SEQ
    # Lifetime meters grow past any transaction limit; this only keeps them exact in JSON.
    max_meter_value: int = MAX_SEQ


@dataclass(frozen=True)
class Up:
    """One terminal -> host message, validated."""

    egm_id: str
    seq: int
    ts: datetime
    type: str
    body: Body

    @property
    def reply_type(self) -> str | None:
        return REPLY_TYPES.get(self.type)


@dataclass(frozen=True)
class Status:
    """A terminal's retained status: ``online`` on connect, ``offline`` as its last will."""

    state: str
    ts: datetime | None = None


class EnvelopeError(ValueError):
    """A payload the host rejects; ``seq`` and ``type`` are filled when they
    could be read, so the gateway can log them and reply ``re=seq``."""

    def __init__(self, reason: str, seq: int | None = None, type: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.seq = seq
        self.type = type

    @property
    def reply_type(self) -> str | None:
        """When not None, the gateway replies ``{"result":"error","reason":reason}``."""
        return REPLY_TYPES.get(self.type) if self.type is not None else None

    def __repr__(self) -> str:
        return f"EnvelopeError({self.reason!r}, seq={self.seq!r}, type={self.type!r})"


# ---------------------------------------------------------------- time

_TS_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,9}))?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def parse_ts(s: str) -> datetime:
    """RFC 3339 date-time -> tz-aware UTC datetime; ValueError if it is not one.
    Other offsets are converted to UTC; fractions beyond microseconds are cut."""
    if not isinstance(s, str):
        raise ValueError("timestamp is not a string")
    m = _TS_RE.fullmatch(s)
    if m is None:
        raise ValueError(f"not an RFC 3339 timestamp: {s[:40]!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    fraction, offset = m.group(7), m.group(8)
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    if offset in ("Z", "z"):
        tz = timezone.utc
    else:
        off_h, off_m = int(offset[1:3]), int(offset[4:6])
        if off_h > 23 or off_m > 59:
            raise ValueError(f"bad UTC offset: {offset!r}")
        delta = timedelta(hours=off_h, minutes=off_m)
        tz = timezone(-delta if offset[0] == "-" else delta)
    try:
        # datetime refuses second 60: leap seconds are rejected, not guessed at.
        local = datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
        return local.astimezone(timezone.utc)
    except OverflowError as exc:
        raise ValueError(f"timestamp out of range: {s!r}") from exc


def format_ts(dt: datetime) -> str:
    """tz-aware datetime -> ``2026-11-23T04:12:09.120Z`` (UTC, milliseconds)."""
    if not isinstance(dt, datetime) or dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("format_ts needs a timezone-aware datetime")
    try:
        u = dt.astimezone(timezone.utc)
    except OverflowError as exc:
        raise ValueError("datetime out of range once in UTC") from exc
    # Milliseconds are cut, not rounded, so a time never moves into the next second.
    return (f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:"
            f"{u.second:02d}.{u.microsecond // 1000:03d}Z")


# ---------------------------------------------------------------- decoding

class _DuplicateKey(Exception):
    pass


def _object_without_duplicates(pairs: list) -> dict:
    # {"amount_cents":1,"amount_cents":999} means different things to different parsers: refuse it.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _DuplicateKey()
    return obj


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of float range")
    return value


def _depth_ok(doc) -> bool:
    stack = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = value.values()
        elif not isinstance(value, list):
            continue
        if depth > MAX_DEPTH:
            return False
        stack.extend((item, depth + 1) for item in value)
    return True


def _load(payload, limits: Limits) -> dict:
    """Bytes -> the JSON object of a payload, or EnvelopeError."""
    if isinstance(payload, (bytearray, memoryview)):
        payload = bytes(payload)
    if not isinstance(payload, bytes):
        raise EnvelopeError("not_bytes")
    if len(payload) > limits.max_payload_bytes:
        raise EnvelopeError("oversize")
    if not payload:
        raise EnvelopeError("empty")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise EnvelopeError("not_utf8") from None
    try:
        doc = json.loads(
            text,
            object_pairs_hook=_object_without_duplicates,
            parse_constant=_no_constant,
            parse_float=_finite_float,
        )
    except _DuplicateKey:
        raise EnvelopeError("duplicate_key") from None
    except RecursionError:
        raise EnvelopeError("too_deep") from None
    except ValueError:
        # JSONDecodeError, NaN/Infinity, floats beyond range, ints beyond Python's digit limit.
        raise EnvelopeError("not_json") from None
    if not _depth_ok(doc):
        raise EnvelopeError("too_deep")
    if not isinstance(doc, dict):
        raise EnvelopeError("not_object")
    return doc


def _read_seq(value, limits: Limits) -> int:
    if type(value) is not int:
        raise BodyError("bad_type:seq")
    if not 1 <= value <= limits.max_seq:
        raise BodyError("bad_value:seq")
    return value


def _read_ts(doc: dict) -> datetime:
    if "ts" not in doc:
        raise BodyError("missing_field:ts")
    if not isinstance(doc["ts"], str):
        raise BodyError("bad_type:ts")
    try:
        return parse_ts(doc["ts"])
    except ValueError:
        raise BodyError("bad_value:ts") from None


def _decode_up(egm_id: str, payload, limits: Limits) -> Up:
    if not isinstance(egm_id, str) or not EGM_ID_RE.match(egm_id):
        raise EnvelopeError("bad_topic")
    doc = _load(payload, limits)

    # Read seq and type first, whatever else is wrong, so an error can still be answered.
    seq = doc.get("seq")
    seq = seq if type(seq) is int and 1 <= seq <= limits.max_seq else None
    kind = doc.get("type")
    kind = kind if isinstance(kind, str) and kind in UP_TYPES else None

    try:
        if "v" not in doc:
            raise BodyError("missing_field:v")
        if type(doc["v"]) is not int or doc["v"] != 1:
            raise BodyError("bad_version")
        if "seq" not in doc:
            raise BodyError("missing_field:seq")
        _read_seq(doc["seq"], limits)
        ts = _read_ts(doc)
        if "type" not in doc:
            raise BodyError("missing_field:type")
        if not isinstance(doc["type"], str):
            raise BodyError("bad_type:type")
        if kind is None:
            raise BodyError("unknown_type")
        if "body" not in doc:
            raise BodyError("missing_field:body")
        if not isinstance(doc["body"], dict):
            raise BodyError("bad_type:body")
        body = PARSERS[kind](doc["body"], limits)
    except BodyError as exc:
        raise EnvelopeError(exc.reason, seq=seq, type=kind) from None
    return Up(egm_id=egm_id, seq=seq, ts=ts, type=kind, body=body)


def decode_up(egm_id: str, payload: bytes, limits: Limits = Limits()) -> Up:
    """A terminal's ``up`` payload -> ``Up``; raises EnvelopeError, never anything else."""
    try:
        return _decode_up(egm_id, payload, limits)
    except EnvelopeError:
        raise
    except Exception as exc:
        # A codec bug must cost one message, not the gateway; the fuzz tests assert it never happens.
        raise EnvelopeError("internal_error") from exc


def _decode_status(payload, limits: Limits) -> Status:
    doc = _load(payload, limits)
    if "state" not in doc:
        raise EnvelopeError("missing_field:state")
    state = doc["state"]
    if not isinstance(state, str):
        raise EnvelopeError("bad_type:state")
    if state not in STATUS_STATES:
        raise EnvelopeError("bad_value:state")
    # The last will is published without ts: absent and null both mean "not given".
    if doc.get("ts") is None:
        return Status(state=state, ts=None)
    try:
        return Status(state=state, ts=_read_ts(doc))
    except BodyError as exc:
        raise EnvelopeError(exc.reason) from None


def decode_status(payload: bytes, limits: Limits = Limits()) -> Status:
    """A terminal's retained ``status`` payload -> ``Status``; raises EnvelopeError only.
    An empty payload (a cleared retained message) is ``EnvelopeError("empty")``."""
    try:
        return _decode_status(payload, limits)
    except EnvelopeError:
        raise
    except Exception as exc:
        raise EnvelopeError("internal_error") from exc


# ---------------------------------------------------------------- encoding

def _dumps(doc: dict) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def _check_type(type: str) -> None:
    if not isinstance(type, str) or not type:
        raise ValueError("message type must be a non-empty string")


# Parameters named "type" and "re", as the contract names them, hide the builtin and
# the module inside these functions; builtins.type is spelled out where needed.
def encode_down(msg_id: str, type: str, body: dict, re: int | None = None,
                ts: datetime | None = None) -> bytes:
    """A host -> terminal message as compact UTF-8 JSON, keys in the contract's
    order; ``re`` is omitted when None. Raises ValueError on bad input,
    floats included: the host speaks integers only."""
    if not isinstance(msg_id, str) or not msg_id:
        raise ValueError("msg_id must be a non-empty string")
    _check_type(type)
    if not isinstance(body, dict):
        raise ValueError("body must be a dict")
    if re is not None and (builtins.type(re) is not int or not 1 <= re <= MAX_SEQ):
        raise ValueError("re must be a seq: an int in 1 .. 2**53-1")
    check_plain(body, tuples=True)
    doc = {"v": 1, "id": msg_id, "ts": format_ts(ts or datetime.now(timezone.utc)), "type": type}
    if re is not None:
        doc["re"] = re
    doc["body"] = body
    try:
        return _dumps(doc)
    except UnicodeEncodeError as exc:
        raise ValueError("string is not valid Unicode (lone surrogate)") from exc


def encode_up(seq: int, type: str, body: dict, ts: datetime | None = None) -> bytes:
    """A terminal -> host message, for simulators and tests. The body is not
    checked against the contract, so a simulator can also send bad money."""
    if builtins.type(seq) is not int:
        raise ValueError("seq must be an int")
    _check_type(type)
    if not isinstance(body, dict):
        raise ValueError("body must be a dict")
    check_plain(body, floats=True, tuples=True)
    doc = {"v": 1, "seq": seq, "ts": format_ts(ts or datetime.now(timezone.utc)), "type": type,
           "body": body}
    try:
        return _dumps(doc)
    except UnicodeEncodeError as exc:
        raise ValueError("string is not valid Unicode (lone surrogate)") from exc

