"""Pure codec of the floor terminal protocol over MQTT (terminal-mqtt.md):
topics, the envelope, typed message bodies and canonical JSON."""

from .canonical import canonical_json, sha256_hex
from .envelope import (
    REPLY_TYPES,
    EnvelopeError,
    Limits,
    Status,
    Up,
    decode_status,
    decode_up,
    encode_down,
    encode_up,
    format_ts,
    parse_ts,
)
from .messages import (
    BODY_TYPES,
    CMD_RESULTS,
    CONFIG_STATES,
    CREDIT_TYPES,
    EVENT_CODES,
    HANDPAY_KINDS,
    METER_NAMES,
    UP_TYPES,
    Body,
    CardIn,
    CardOut,
    CmdAck,
    ConfigRef,
    ConfigStatus,
    Event,
    GameEnd,
    Handpay,
    Hello,
    Meters,
    Software,
    VoucherIssue,
    VoucherPrinted,
    VoucherPrintFailed,
    VoucherRedeem,
    VoucherRedeemAbort,
    VoucherRedeemCommit,
)
from .topics import (
    DEFAULT_ROOT,
    EGM_ID_RE,
    down_topic,
    parse_topic,
    status_topic,
    subscriptions,
    up_topic,
)

__all__ = [
    "BODY_TYPES", "CMD_RESULTS", "CONFIG_STATES", "CREDIT_TYPES", "DEFAULT_ROOT", "EGM_ID_RE",
    "EVENT_CODES", "HANDPAY_KINDS", "METER_NAMES", "REPLY_TYPES", "UP_TYPES",
    "Body", "CardIn", "CardOut", "CmdAck", "ConfigRef", "ConfigStatus", "EnvelopeError", "Event",
    "GameEnd", "Handpay", "Hello", "Limits", "Meters", "Software", "Status", "Up",
    "VoucherIssue", "VoucherPrintFailed", "VoucherPrinted", "VoucherRedeem",
    "VoucherRedeemAbort", "VoucherRedeemCommit",
    "canonical_json", "decode_status", "decode_up", "down_topic", "encode_down", "encode_up",
    "format_ts", "parse_topic", "parse_ts", "sha256_hex", "status_topic", "subscriptions",
    "up_topic",
]
