"""Printable cage documents (fpdf2): the voucher ticket and the handpay slip.

Money is integer cents everywhere else; here, at the edge, it becomes "$1,234.56" and words.
Instants are stored in UTC and printed in the property's local time.
"""
from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass

from fpdf import FPDF

from cashier.models import Handpay, Voucher

# A TITO ticket is 2.56 in × 6.3 in (65 mm × 160 mm), printed landscape.
TICKET = (65.0, 160.0)
# The barcode's wide bar, in mm; fpdf2 draws narrow = wide / 3 (0.5 mm, well above a scanner's 0.25 mm).
BAR_WIDE = 1.5
BAR_HEIGHT = 13.0
A5 = (148.0, 210.0)

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))


def money(cents: int) -> str:
    """$1,234.56 (−$5.00 for a negative amount), exact: integer arithmetic only."""
    sign = "-" if cents < 0 else ""
    dollars, rest = divmod(abs(cents), 100)
    return f"{sign}${dollars:,}.{rest:02d}"


def _words_below_1000(n: int) -> str:
    parts = []
    if n >= 100:
        parts.append(f"{_ONES[n // 100]} hundred")
        n %= 100
    if n >= 20:
        parts.append(_TENS[n // 10] + (f"-{_ONES[n % 10]}" if n % 10 else ""))
    elif n or not parts:
        parts.append(_ONES[n])
    return " ".join(parts)


def number_words(n: int) -> str:
    if n < 0:
        return "minus " + number_words(-n)
    if n < 1000:
        return _words_below_1000(n)
    for scale, name in _SCALES:
        if n >= scale:
            head, rest = divmod(n, scale)
            return f"{number_words(head)} {name}" + (f" {number_words(rest)}" if rest else "")
    raise AssertionError(n)


def money_words(cents: int) -> str:
    """'One thousand two hundred thirty-four dollars and 56/100', as on a cheque."""
    dollars, rest = divmod(abs(cents), 100)
    text = f"{number_words(dollars)} dollar{'' if dollars == 1 else 's'} and {rest:02d}/100"
    return ("minus " if cents < 0 else "") + text[0].upper() + text[1:]


def validation_groups(number: str) -> str:
    """18 digits printed as on TITO tickets: 00-0000-0000-0000-0000."""
    if len(number) != 18:
        return number
    return "-".join((number[:2], number[2:6], number[6:10], number[10:14], number[14:]))


def local(instant: dt.datetime | None, zone: zoneinfo.ZoneInfo, fmt: str = "%Y-%m-%d %H:%M:%S %Z") -> str:
    if instant is None:
        return "-"
    return instant.astimezone(zone).strftime(fmt)


@dataclass(frozen=True)
class Letterhead:
    """What every document prints at its top: the property and its time zone."""

    property_name: str
    zone: zoneinfo.ZoneInfo

    @classmethod
    def of(cls, settings) -> "Letterhead":
        return cls(settings.property_name, settings.zone)


def _pdf(orientation: str, size, title: str) -> FPDF:
    pdf = FPDF(orientation=orientation, unit="mm", format=size)
    pdf.set_auto_page_break(False)
    pdf.set_margins(6, 5, 6)
    pdf.set_title(title)
    pdf.set_creator("Floorhost")
    pdf.add_page()
    return pdf


def _latin1(text: str) -> str:
    # The core fonts are Latin-1; anything else (an operator's name) prints as '?', never an error.
    return text.encode("latin-1", "replace").decode("latin-1")


def voucher_pdf(v: Voucher, head: Letterhead) -> bytes:
    """The voucher ticket: property, kind, validation number, I2of5 barcode, amount, issue and expiry."""
    pdf = _pdf("L", TICKET, f"Voucher {v.validation_number}")
    width = pdf.w - pdf.l_margin - pdf.r_margin
    promo = v.credit_type == "promo"

    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(width, 5, _latin1(head.property_name), align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "B", 15)
    pdf.cell(width, 7, "PROMO VOUCHER" if promo else "CASHOUT VOUCHER", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Courier", "B", 13)
    pdf.cell(width, 6, validation_groups(v.validation_number), align="C", new_x="LMARGIN", new_y="NEXT")

    # The barcode, centred: 2 start modules + 18 digits of 3 wide-units + the stop pattern.
    bar_w = _i2of5_width(v.validation_number)
    top = pdf.get_y() + 1
    pdf.set_fill_color(0, 0, 0)
    pdf.interleaved2of5(v.validation_number, x=(pdf.w - bar_w) / 2, y=top, w=BAR_WIDE, h=BAR_HEIGHT)
    pdf.set_y(top + BAR_HEIGHT + 1.5)

    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(width, 7, money(v.amount_cents), align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 8)
    pdf.cell(width, 4, _latin1(money_words(v.amount_cents)), align="C", new_x="LMARGIN", new_y="NEXT")

    issuer = f"Terminal {v.issued_by}" if v.issued_source == "terminal" else f"Cashier {v.issued_by}"
    days = (v.expires_at - v.issued_at).days if v.expires_at and v.issued_at else None
    pdf.set_font("Helvetica", "", 7.5)
    half = width / 2
    pdf.cell(half, 3.6, _latin1(f"Issued {local(v.issued_at, head.zone)}  {issuer}"))
    pdf.cell(half, 3.6, f"Expires {local(v.expires_at, head.zone, '%Y-%m-%d')}", align="R",
             new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "B", 7.5)
    void_after = f"VOID AFTER {days} DAYS" if days is not None else "VOID AFTER EXPIRY"
    if promo:
        void_after += " - NON-CASHABLE, PLAY ONLY"
    pdf.cell(half, 3.6, void_after)
    if v.status != "issued":
        # A reprint of a paid or dead voucher must not look payable.
        pdf.set_text_color(200, 0, 0)
        pdf.cell(half, 3.6, f"NOT NEGOTIABLE - {v.status.upper()}", align="R")
        pdf.set_text_color(0, 0, 0)
    return bytes(pdf.output())


def _i2of5_width(number: str) -> float:
    digits = len(number) + len(number) % 2
    narrow = BAR_WIDE / 3
    return 4 * narrow + digits * (2 * BAR_WIDE + 3 * narrow) + BAR_WIDE + 3 * narrow


def handpay_pdf(h: Handpay, head: Letterhead, *, patron_name: str | None = None,
                second_signer_cents: int | None = None) -> bytes:
    """The handpay slip: number, terminal, amount, kind, time, patron, W-2G, and the signature lines."""
    pdf = _pdf("P", A5, f"Handpay slip {h.slip_number}")
    pdf.set_margins(12, 12, 12)
    pdf.set_xy(12, 12)
    width = pdf.w - 24

    pdf.set_font("Helvetica", "B", 13)
    pdf.cell(width, 7, _latin1(head.property_name), align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "B", 18)
    pdf.cell(width, 9, "HANDPAY SLIP", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(width, 7, f"Slip No. {h.slip_number:06d}", align="C", new_x="LMARGIN", new_y="NEXT")
    if h.status != "pending":
        pdf.set_font("Helvetica", "B", 11)
        if h.status == "void":
            pdf.set_text_color(200, 0, 0)
        pdf.cell(width, 6, h.status.upper(), align="C", new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0, 0, 0)
    pdf.ln(3)

    pdf.set_font("Helvetica", "B", 22)
    pdf.cell(width, 11, money(h.amount_cents), align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    pdf.cell(width, 5, _latin1(money_words(h.amount_cents)), align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)

    rows = [
        ("Terminal", h.egm_id),
        ("Kind", {"jackpot": "Jackpot", "cancelled_credit": "Cancelled credit"}.get(h.kind, h.kind)),
        ("Date / time", local(h.created_at, head.zone)),
        ("Gaming day", h.gaming_day.isoformat() if h.gaming_day else "-"),
        ("Patron", patron_name or "-"),
        ("W-2G required", "YES" if h.tax_form_required else "no"),
    ]
    if h.status == "paid":
        rows += [("Paid", f"{local(h.paid_at, head.zone)} by {h.paid_by}")]
        if h.second_signer:
            rows += [("Second signer", h.second_signer)]
    if h.status == "void":
        rows += [("Voided", f"{local(h.voided_at, head.zone)} by {h.voided_by}"), ("Reason", h.void_reason or "-")]
    label_w = 34
    for label, value in rows:
        pdf.set_font("Helvetica", "", 10)
        pdf.cell(label_w, 6.5, label)
        pdf.set_font("Helvetica", "B", 10)
        pdf.cell(width - label_w, 6.5, _latin1(str(value)), new_x="LMARGIN", new_y="NEXT")
        pdf.set_draw_color(190, 190, 190)
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.l_margin + width, pdf.get_y())

    pdf.set_draw_color(0, 0, 0)
    needs_second = second_signer_cents is not None and h.amount_cents >= second_signer_cents
    signers = ["Cashier", "Second signer" + ("" if needs_second else " (if required)")]
    if h.tax_form_required:
        signers.append("Patron")
    y = max(pdf.get_y() + 16, pdf.h - 14 - 17 * len(signers))
    for who in signers:
        pdf.line(pdf.l_margin, y, pdf.l_margin + width * 0.62, y)
        pdf.line(pdf.l_margin + width * 0.68, y, pdf.l_margin + width, y)
        pdf.set_xy(pdf.l_margin, y + 0.8)
        pdf.set_font("Helvetica", "", 8)
        pdf.cell(width * 0.68, 4, f"{who} signature")
        pdf.cell(width * 0.32, 4, "Date" if who == "Patron" else "Employee no. / date")
        y += 17
    return bytes(pdf.output())
