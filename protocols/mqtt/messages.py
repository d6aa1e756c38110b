"""Typed bodies of the terminal -> host messages of terminal-mqtt.md, one
frozen dataclass per type, and the parser of each, driven by one table
(``PARSERS``). A parser takes the decoded JSON object of ``body`` and either
returns the typed body or raises ``BodyError`` with a machine-readable reason.
Every body also knows its own wire form (``to_body()``), for simulators."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from .envelope import Limits

# Longest free text (names, versions, reasons) and longest identifier we store.
MAX_TEXT = 256
MAX_ID = 64
MAX_DENOMS = 64
# Free-form event detail may nest, but not without bound.
MAX_DETAIL_DEPTH = 8

METER_NAMES = (
    "coin_in_cents",
    "coin_out_cents",
    "jackpot_cents",
    "handpay_cancelled_credits_cents",
    "bills_in_cents",
    "voucher_in_cents",
    "voucher_out_cents",
    "current_credits_cents",
    "games_played",
    "games_won",
    "door_open_count",
)

EVENT_CODES = frozenset({
    "door.main.open", "door.main.closed",
    "door.cashbox.open", "door.cashbox.closed",
    "door.logic.open", "door.logic.closed",
    "cashbox.removed", "cashbox.installed",
    "power.on", "power.off",
    "tilt", "ram.clear",
    "bill.accepted", "bill.rejected", "bill.jam", "stacker.full",
    "printer.fault", "printer.paper_low", "battery.low",
    "handpay.reset", "game.disabled", "game.enabled",
    "software.auth_failed",
})

CREDIT_TYPES = frozenset({"cashable", "promo"})
HANDPAY_KINDS = frozenset({"jackpot", "cancelled_credit"})
CONFIG_STATES = frozenset({"received", "verified", "installed", "rejected", "deferred"})
CMD_RESULTS = frozenset({"ok", "refused"})

VALIDATION_NUMBER_RE = re.compile(r"[0-9]{18}")
SHA256_RE = re.compile(r"[0-9a-fA-F]{64}")
# Unknown codes are stored raw, so they must at least look like a code.
EVENT_CODE_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
# A key or meter name is echoed in a reason only when it cannot smuggle junk into a log line.
_SAFE_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")

# Control, surrogate, format (bidi overrides, zero-width) and line/paragraph separators.
_BAD_TEXT_CATEGORIES = frozenset({"Cc", "Cs", "Cf", "Zl", "Zp"})


class BodyError(ValueError):
    """A field of the message is missing, of the wrong type or not allowed."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------- field readers

def safe_name(name: str) -> str:
    """``name`` if it is fit to appear in a reason, else ``"?"``."""
    return name if isinstance(name, str) and _SAFE_NAME_RE.fullmatch(name) else "?"


def _get(obj: dict, key: str, path: str) -> Any:
    if key not in obj:
        raise BodyError(f"missing_field:{path}.{key}")
    return obj[key]


def _is_int(value: Any) -> bool:
    # bool is an int to Python, never to the contract.
    return type(value) is int


def read_amount(value: Any, path: str, limits: Limits, *, positive: bool = False) -> int:
    """Money: an int of cents, not negative, within the configured limit."""
    if not _is_int(value):
        raise BodyError(f"bad_type:{path}")
    if value < 0:
        raise BodyError(f"negative_amount:{path}")
    if value > limits.max_amount_cents:
        raise BodyError(f"over_limit:{path}")
    if positive and value == 0:
        raise BodyError(f"zero_amount:{path}")
    return value


def read_text(value: Any, path: str, max_len: int = MAX_TEXT) -> str:
    """A non-empty string of printable characters, at most ``max_len`` long."""
    if not isinstance(value, str):
        raise BodyError(f"bad_type:{path}")
    if not value:
        raise BodyError(f"bad_value:{path}")
    if len(value) > max_len:
        raise BodyError(f"too_long:{path}")
    if not value.isprintable() and any(
        unicodedata.category(ch) in _BAD_TEXT_CATEGORIES for ch in value
    ):
        raise BodyError(f"bad_value:{path}")
    return value


def _read_optional_text(obj: dict, key: str, path: str) -> str | None:
    # An optional field may be absent or null; both mean "not given".
    value = obj.get(key)
    return None if value is None else read_text(value, f"{path}.{key}")


def _read_choice(value: Any, path: str, choices: frozenset[str]) -> str:
    if not isinstance(value, str):
        raise BodyError(f"bad_type:{path}")
    if value not in choices:
        raise BodyError(f"bad_value:{path}")
    return value


def _read_object(value: Any, path: str) -> dict:
    if not isinstance(value, dict):
        raise BodyError(f"bad_type:{path}")
    return value


def read_validation_number(value: Any, path: str) -> str:
    """Exactly 18 ASCII digits, as a string (an int would lose leading zeros)."""
    if not isinstance(value, str):
        raise BodyError(f"bad_type:{path}")
    if not VALIDATION_NUMBER_RE.fullmatch(value):
        raise BodyError(f"bad_value:{path}")
    return value


def read_sha256(value: Any, path: str) -> str:
    """64 hex digits, returned lower-case so it compares with hexdigest()."""
    if not isinstance(value, str):
        raise BodyError(f"bad_type:{path}")
    if not SHA256_RE.fullmatch(value):
        raise BodyError(f"bad_value:{path}")
    return value.lower()


def read_deployment_id(value: Any, path: str) -> int | str:
    """The host's deployment id, echoed back: a positive int or a short string."""
    if _is_int(value):
        if not 1 <= value <= 2**53 - 1:
            raise BodyError(f"bad_value:{path}")
        return value
    if isinstance(value, str):
        return read_text(value, path, MAX_ID)
    raise BodyError(f"bad_type:{path}")


def _check_detail(detail: dict, limits: Limits) -> None:
    """Free-form event detail: storable strings, bounded depth, and any
    ``*_cents`` key, at whatever depth, is money like everywhere else."""
    stack: list[tuple[Any, str, int]] = [(detail, "body.detail", 1)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, dict):
            if depth > MAX_DETAIL_DEPTH:
                raise BodyError("too_deep:body.detail")
            for key, item in value.items():
                item_path = f"{path}.{safe_name(key)}"
                _check_stored_string(key, item_path)
                if key.endswith("_cents"):
                    read_amount(item, item_path, limits)
                stack.append((item, item_path, depth + 1))
        elif isinstance(value, list):
            if depth > MAX_DETAIL_DEPTH:
                raise BodyError("too_deep:body.detail")
            stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value))
        elif isinstance(value, str):
            _check_stored_string(value, path)


def _check_stored_string(value: str, path: str) -> None:
    # NUL and lone surrogates (legal as JSON \u escapes) cannot be stored as text or jsonb.
    if "\x00" in value:
        raise BodyError(f"bad_value:{path}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BodyError(f"bad_value:{path}") from None


# ---------------------------------------------------------------- bodies

@dataclass(frozen=True)
class Software:
    name: str
    version: str
    sha256: str


@dataclass(frozen=True)
class ConfigRef:
    deployment_id: int | str | None
    sha256: str | None


@dataclass(frozen=True)
class Hello:
    manufacturer: str
    model: str
    serial: str
    software: Software
    denoms_cents: tuple[int, ...]
    config: ConfigRef

    def to_body(self) -> dict:
        return {
            "manufacturer": self.manufacturer,
            "model": self.model,
            "serial": self.serial,
            "software": {
                "name": self.software.name,
                "version": self.software.version,
                "sha256": self.software.sha256,
            },
            "denoms_cents": list(self.denoms_cents),
            "config": {"deployment_id": self.config.deployment_id, "sha256": self.config.sha256},
        }


@dataclass(frozen=True)
class Meters:
    # Cumulative lifetime meters, keyed by the names of METER_NAMES, in that order.
    meters: dict[str, int] = field(hash=False)

    def to_body(self) -> dict:
        return {"meters": dict(self.meters)}


@dataclass(frozen=True)
class GameEnd:
    theme: str
    paytable_id: str | int
    denom_cents: int
    wager_cents: int
    win_cents: int
    credits_after_cents: int

    def to_body(self) -> dict:
        return {
            "game": {"theme": self.theme, "paytable_id": self.paytable_id},
            "denom_cents": self.denom_cents,
            "wager_cents": self.wager_cents,
            "win_cents": self.win_cents,
            "credits_after_cents": self.credits_after_cents,
        }


@dataclass(frozen=True)
class Event:
    code: str
    detail: dict[str, Any] = field(hash=False)
    # False for a code outside EVENT_CODES: stored as unknown with the raw code, and flagged.
    known: bool = True

    def to_body(self) -> dict:
        return {"code": self.code, "detail": self.detail}


@dataclass(frozen=True)
class CardIn:
    card_id: str

    def to_body(self) -> dict:
        return {"card_id": self.card_id}


@dataclass(frozen=True)
class CardOut:
    card_id: str

    def to_body(self) -> dict:
        return {"card_id": self.card_id}


@dataclass(frozen=True)
class VoucherIssue:
    amount_cents: int
    credit_type: str

    def to_body(self) -> dict:
        return {"amount_cents": self.amount_cents, "credit_type": self.credit_type}


@dataclass(frozen=True)
class VoucherPrinted:
    validation_number: str

    def to_body(self) -> dict:
        return {"validation_number": self.validation_number}


@dataclass(frozen=True)
class VoucherPrintFailed:
    validation_number: str

    def to_body(self) -> dict:
        return {"validation_number": self.validation_number}


@dataclass(frozen=True)
class VoucherRedeem:
    validation_number: str

    def to_body(self) -> dict:
        return {"validation_number": self.validation_number}


@dataclass(frozen=True)
class VoucherRedeemCommit:
    validation_number: str
    amount_cents: int

    def to_body(self) -> dict:
        return {"validation_number": self.validation_number, "amount_cents": self.amount_cents}


@dataclass(frozen=True)
class VoucherRedeemAbort:
    validation_number: str
    reason: str

    def to_body(self) -> dict:
        return {"validation_number": self.validation_number, "reason": self.reason}


@dataclass(frozen=True)
class Handpay:
    amount_cents: int
    kind: str

    def to_body(self) -> dict:
        return {"amount_cents": self.amount_cents, "kind": self.kind}


@dataclass(frozen=True)
class ConfigStatus:
    deployment_id: int | str
    state: str
    sha256: str
    reason: str | None = None

    def to_body(self) -> dict:
        body = {"deployment_id": self.deployment_id, "state": self.state, "sha256": self.sha256}
        if self.reason is not None:
            body["reason"] = self.reason
        return body


@dataclass(frozen=True)
class CmdAck:
    id: str
    result: str
    reason: str | None = None

    def to_body(self) -> dict:
        body = {"id": self.id, "result": self.result}
        if self.reason is not None:
            body["reason"] = self.reason
        return body


Body = (
    Hello | Meters | GameEnd | Event | CardIn | CardOut | VoucherIssue | VoucherPrinted
    | VoucherPrintFailed | VoucherRedeem | VoucherRedeemCommit | VoucherRedeemAbort
    | Handpay | ConfigStatus | CmdAck
)


# ---------------------------------------------------------------- parsers

def parse_hello(body: dict, limits: Limits) -> Hello:
    software = _read_object(_get(body, "software", "body"), "body.software")
    config = _read_object(_get(body, "config", "body"), "body.config")
    denoms = _get(body, "denoms_cents", "body")
    if not isinstance(denoms, list):
        raise BodyError("bad_type:body.denoms_cents")
    if not denoms:
        raise BodyError("bad_value:body.denoms_cents")
    if len(denoms) > MAX_DENOMS:
        raise BodyError("too_long:body.denoms_cents")
    deployment_id = _get(config, "deployment_id", "body.config")
    config_sha = _get(config, "sha256", "body.config")
    return Hello(
        manufacturer=read_text(_get(body, "manufacturer", "body"), "body.manufacturer"),
        model=read_text(_get(body, "model", "body"), "body.model"),
        serial=read_text(_get(body, "serial", "body"), "body.serial"),
        software=Software(
            name=read_text(_get(software, "name", "body.software"), "body.software.name"),
            version=read_text(_get(software, "version", "body.software"), "body.software.version"),
            sha256=read_sha256(_get(software, "sha256", "body.software"), "body.software.sha256"),
        ),
        denoms_cents=tuple(
            read_amount(d, f"body.denoms_cents[{i}]", limits, positive=True)
            for i, d in enumerate(denoms)
        ),
        config=ConfigRef(
            deployment_id=None if deployment_id is None
            else read_deployment_id(deployment_id, "body.config.deployment_id"),
            sha256=None if config_sha is None else read_sha256(config_sha, "body.config.sha256"),
        ),
    )


def parse_meters(body: dict, limits: Limits) -> Meters:
    meters = _read_object(_get(body, "meters", "body"), "body.meters")
    values = {}
    for name in METER_NAMES:
        path = f"body.meters.{name}"
        value = _get(meters, name, "body.meters")
        if not _is_int(value):
            raise BodyError(f"bad_type:{path}")
        if value < 0:
            money = name.endswith("_cents")
            raise BodyError(f"negative_amount:{path}" if money else f"bad_value:{path}")
        # Lifetime meters outgrow any per-transaction limit, so they have their own bound.
        if value > limits.max_meter_value:
            raise BodyError(f"over_limit:{path}")
        values[name] = value
    for name in meters:
        if name not in values:
            raise BodyError(f"unknown_field:body.meters.{safe_name(name)}")
    return Meters(meters=values)


def parse_game_end(body: dict, limits: Limits) -> GameEnd:
    game = _read_object(_get(body, "game", "body"), "body.game")
    paytable_id = _get(game, "paytable_id", "body.game")
    if _is_int(paytable_id):
        if not 0 <= paytable_id <= 2**53 - 1:
            raise BodyError("bad_value:body.game.paytable_id")
    else:
        paytable_id = read_text(paytable_id, "body.game.paytable_id", MAX_ID)
    return GameEnd(
        theme=read_text(_get(game, "theme", "body.game"), "body.game.theme"),
        paytable_id=paytable_id,
        denom_cents=read_amount(_get(body, "denom_cents", "body"), "body.denom_cents", limits,
                                positive=True),
        wager_cents=read_amount(_get(body, "wager_cents", "body"), "body.wager_cents", limits),
        win_cents=read_amount(_get(body, "win_cents", "body"), "body.win_cents", limits),
        credits_after_cents=read_amount(
            _get(body, "credits_after_cents", "body"), "body.credits_after_cents", limits
        ),
    )


def parse_event(body: dict, limits: Limits) -> Event:
    code = _get(body, "code", "body")
    if not isinstance(code, str):
        raise BodyError("bad_type:body.code")
    if len(code) > MAX_ID:
        raise BodyError("too_long:body.code")
    if not EVENT_CODE_RE.fullmatch(code):
        raise BodyError("bad_value:body.code")
    # Most events carry no detail; an absent detail is an empty one.
    detail = _read_object(body.get("detail", {}), "body.detail")
    _check_detail(detail, limits)
    if code == "tilt":
        read_text(_get(detail, "reason", "body.detail"), "body.detail.reason")
    elif code == "bill.accepted":
        read_amount(_get(detail, "amount_cents", "body.detail"), "body.detail.amount_cents",
                    limits, positive=True)
    return Event(code=code, detail=detail, known=code in EVENT_CODES)


def _parse_card(body: dict) -> str:
    return read_text(_get(body, "card_id", "body"), "body.card_id", MAX_ID)


def parse_card_in(body: dict, limits: Limits) -> CardIn:
    return CardIn(card_id=_parse_card(body))


def parse_card_out(body: dict, limits: Limits) -> CardOut:
    return CardOut(card_id=_parse_card(body))


def parse_voucher_issue(body: dict, limits: Limits) -> VoucherIssue:
    return VoucherIssue(
        amount_cents=read_amount(_get(body, "amount_cents", "body"), "body.amount_cents",
                                 limits, positive=True),
        credit_type=_read_choice(_get(body, "credit_type", "body"), "body.credit_type", CREDIT_TYPES),
    )


def _parse_number(body: dict) -> str:
    return read_validation_number(_get(body, "validation_number", "body"), "body.validation_number")


def parse_voucher_printed(body: dict, limits: Limits) -> VoucherPrinted:
    return VoucherPrinted(validation_number=_parse_number(body))


def parse_voucher_print_failed(body: dict, limits: Limits) -> VoucherPrintFailed:
    return VoucherPrintFailed(validation_number=_parse_number(body))


def parse_voucher_redeem(body: dict, limits: Limits) -> VoucherRedeem:
    return VoucherRedeem(validation_number=_parse_number(body))


def parse_voucher_redeem_commit(body: dict, limits: Limits) -> VoucherRedeemCommit:
    return VoucherRedeemCommit(
        validation_number=_parse_number(body),
        # A voucher is never issued for zero, so it is never redeemed for zero.
        amount_cents=read_amount(_get(body, "amount_cents", "body"), "body.amount_cents",
                                 limits, positive=True),
    )


def parse_voucher_redeem_abort(body: dict, limits: Limits) -> VoucherRedeemAbort:
    return VoucherRedeemAbort(
        validation_number=_parse_number(body),
        reason=read_text(_get(body, "reason", "body"), "body.reason"),
    )


def parse_handpay(body: dict, limits: Limits) -> Handpay:
    return Handpay(
        amount_cents=read_amount(_get(body, "amount_cents", "body"), "body.amount_cents",
                                 limits, positive=True),
        kind=_read_choice(_get(body, "kind", "body"), "body.kind", HANDPAY_KINDS),
    )


def parse_config_status(body: dict, limits: Limits) -> ConfigStatus:
    return ConfigStatus(
        deployment_id=read_deployment_id(_get(body, "deployment_id", "body"), "body.deployment_id"),
        state=_read_choice(_get(body, "state", "body"), "body.state", CONFIG_STATES),
        sha256=read_sha256(_get(body, "sha256", "body"), "body.sha256"),
        reason=_read_optional_text(body, "reason", "body"),
    )


def parse_cmd_ack(body: dict, limits: Limits) -> CmdAck:
    return CmdAck(
        id=read_text(_get(body, "id", "body"), "body.id", MAX_ID),
        result=_read_choice(_get(body, "result", "body"), "body.result", CMD_RESULTS),
        reason=_read_optional_text(body, "reason", "body"),
    )


# The contract's table of terminal -> host types, as code.
PARSERS: dict[str, Callable[[dict, "Limits"], Body]] = {
    "hello": parse_hello,
    "meters": parse_meters,
    "game.end": parse_game_end,
    "event": parse_event,
    "card.in": parse_card_in,
    "card.out": parse_card_out,
    "voucher.issue": parse_voucher_issue,
    "voucher.printed": parse_voucher_printed,
    "voucher.print_failed": parse_voucher_print_failed,
    "voucher.redeem": parse_voucher_redeem,
    "voucher.redeem.commit": parse_voucher_redeem_commit,
    "voucher.redeem.abort": parse_voucher_redeem_abort,
    "handpay": parse_handpay,
    "config.status": parse_config_status,
    "cmd.ack": parse_cmd_ack,
}

BODY_TYPES: dict[str, type] = {
    "hello": Hello,
    "meters": Meters,
    "game.end": GameEnd,
    "event": Event,
    "card.in": CardIn,
    "card.out": CardOut,
    "voucher.issue": VoucherIssue,
    "voucher.printed": VoucherPrinted,
    "voucher.print_failed": VoucherPrintFailed,
    "voucher.redeem": VoucherRedeem,
    "voucher.redeem.commit": VoucherRedeemCommit,
    "voucher.redeem.abort": VoucherRedeemAbort,
    "handpay": Handpay,
    "config.status": ConfigStatus,
    "cmd.ack": CmdAck,
}

UP_TYPES = frozenset(PARSERS)
