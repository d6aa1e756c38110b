"""The printable voucher and handpay slip: money in figures and words, local times, and a barcode that
decodes back to the validation number — read from the PDF's own drawing commands, and, where
poppler's pdftoppm is installed, from the rendered page."""
from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
import zlib
import zoneinfo

import pytest

from cashier import printing
from cashier.models import Handpay, Voucher

LA = zoneinfo.ZoneInfo("America/Los_Angeles")
HEAD = printing.Letterhead("Test Casino", LA)
ISSUED = dt.datetime(2025, 11, 23, 22, 15, 3, tzinfo=dt.timezone.utc)  # 14:15:03 PST
VN = "012345678901234567"

I2OF5 = {"nnwwn": "0", "wnnnw": "1", "nwnnw": "2", "wwnnn": "3", "nnwnw": "4",
         "wnwnn": "5", "nwwnn": "6", "nnnww": "7", "wnnwn": "8", "nwnwn": "9"}


def voucher(**kw) -> Voucher:
    values = dict(validation_number=VN, amount_cents=123_456, credit_type="cashable", status="issued",
                  issued_at=ISSUED, issued_by="EGM12", issued_source="terminal",
                  expires_at=ISSUED + dt.timedelta(days=180))
    return Voucher(**(values | kw))


def handpay(**kw) -> Handpay:
    values = dict(slip_number=42, egm_id="EGM7", amount_cents=650_000, kind="jackpot", status="pending",
                  created_at=ISSUED, gaming_day=dt.date(2025, 11, 23), tax_form_required=True)
    return Handpay(**(values | kw))


def content(pdf: bytes) -> str:
    """The page's drawing commands: fpdf2 deflates them; the core fonts keep text as (literal) Tj."""
    streams = re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S)
    out = []
    for raw in streams:
        try:
            out.append(zlib.decompress(raw).decode("latin-1"))
        except zlib.error:
            out.append(raw.decode("latin-1"))
    return "\n".join(out)


def texts(pdf: bytes) -> list[str]:
    return [m.replace(r"\(", "(").replace(r"\)", ")").replace("\\\\", "\\")
            for m in re.findall(r"\((.*?)(?<!\\)\) Tj", content(pdf))]


def decode_i2of5(widths: list[float]) -> str:
    """Bars and spaces alternating, starting with a bar → the digits, checking start and stop patterns."""
    cut = (min(widths) + max(widths)) / 2
    nw = "".join("w" if w > cut else "n" for w in widths)
    assert nw[:4] == "nnnn", f"bad start pattern {nw[:4]}"
    assert nw[-3:] == "wnn", f"bad stop pattern {nw[-3:]}"
    body = nw[4:-3]
    assert len(body) % 10 == 0, len(body)
    digits = []
    for i in range(0, len(body), 10):
        pair = body[i:i + 10]
        digits += [I2OF5[pair[0::2]], I2OF5[pair[1::2]]]
    return "".join(digits)


def barcode_from_pdf(pdf: bytes) -> str:
    height = f"-{printing.BAR_HEIGHT * 72 / 25.4:.2f}"
    rects = sorted((float(x), float(w)) for x, w in re.findall(
        rf"([\d.]+) [\d.]+ ([\d.]+) {re.escape(height)} re f", content(pdf)))
    assert len(rects) == 49, len(rects)  # 2 start + 45 data + 2 stop bars for 18 digits
    widths = []
    for (x, w), nxt in zip(rects, rects[1:] + [None]):
        widths.append(w)
        if nxt is not None:
            widths.append(nxt[0] - (x + w))
    return decode_i2of5(widths)


def test_money_figures_words_and_groups():
    assert printing.money(0) == "$0.00"
    assert printing.money(5) == "$0.05"
    assert printing.money(123_456) == "$1,234.56"
    assert printing.money(-500) == "-$5.00"
    assert printing.money(10**13 + 1) == "$100,000,000,000.01"
    assert printing.money_words(123_456) == "One thousand two hundred thirty-four dollars and 56/100"
    assert printing.money_words(100) == "One dollar and 00/100"
    assert printing.money_words(7) == "Zero dollars and 07/100"
    assert printing.money_words(200_000_000) == "Two million dollars and 00/100"
    assert printing.money_words(1_011_900) == "Ten thousand one hundred nineteen dollars and 00/100"
    assert printing.validation_groups(VN) == "01-2345-6789-0123-4567"


def test_voucher_pdf_prints_every_field_and_a_barcode_that_decodes_to_the_number():
    pdf = printing.voucher_pdf(voucher(), HEAD)
    assert pdf.startswith(b"%PDF-")
    t = texts(pdf)
    assert "Test Casino" in t
    assert "CASHOUT VOUCHER" in t
    assert "01-2345-6789-0123-4567" in t
    assert "$1,234.56" in t
    assert "One thousand two hundred thirty-four dollars and 56/100" in t
    assert "Issued 2025-11-23 14:15:03 PST  Terminal EGM12" in t  # property local time, not UTC
    assert "Expires 2026-05-22" in t
    assert "VOID AFTER 180 DAYS" in t
    assert not any("NOT NEGOTIABLE" in x for x in t)
    assert barcode_from_pdf(pdf) == VN


def test_promo_cage_voucher_and_a_reprint_of_a_redeemed_one():
    t = texts(printing.voucher_pdf(voucher(credit_type="promo", issued_source="cage", issued_by="cash1"), HEAD))
    assert "PROMO VOUCHER" in t and "CASHOUT VOUCHER" not in t
    assert "Issued 2025-11-23 14:15:03 PST  Cashier cash1" in t
    assert "VOID AFTER 180 DAYS - NON-CASHABLE, PLAY ONLY" in t
    assert "NOT NEGOTIABLE - REDEEMED" in texts(printing.voucher_pdf(voucher(status="redeemed"), HEAD))


def test_handpay_slip_prints_number_amount_patron_w2g_and_signature_lines():
    paid = handpay(status="paid", paid_at=ISSUED + dt.timedelta(minutes=5), paid_by="cash1", second_signer="mgr1")
    pdf = printing.handpay_pdf(paid, HEAD, patron_name="Ada Lovelace", second_signer_cents=500_000)
    assert pdf.startswith(b"%PDF-")
    t = texts(pdf)
    for expected in ["Test Casino", "HANDPAY SLIP", "Slip No. 000042", "PAID", "$6,500.00",
                     "Six thousand five hundred dollars and 00/100", "EGM7", "Jackpot", "2025-11-23 14:15:03 PST",
                     "Ada Lovelace", "YES", "2025-11-23 14:20:03 PST by cash1", "mgr1",
                     "Cashier signature", "Second signer signature", "Patron signature"]:
        assert expected in t, expected

    small = handpay(amount_cents=35_000, kind="cancelled_credit", tax_form_required=False)
    t = texts(printing.handpay_pdf(small, HEAD, second_signer_cents=500_000))
    assert "Cancelled credit" in t and "no" in t and "-" in t  # W-2G no, no patron
    assert "Second signer (if required) signature" in t
    assert "Patron signature" not in t


@pytest.fixture
def pdftoppm():
    exe = shutil.which("pdftoppm")
    if exe is None:
        pytest.skip("pdftoppm not installed (Debian package poppler-utils): the rendered-page check is skipped; "
                    "the PDF's drawing commands are still checked by the other tests")
    return exe


def render(pdftoppm, pdf: bytes, tmp_path, name: str, dpi: int = 300):
    from PIL import Image

    src = tmp_path / f"{name}.pdf"
    src.write_bytes(pdf)
    subprocess.run([pdftoppm, "-png", "-r", str(dpi), "-singlefile", "-f", "1", "-l", "1", str(src),
                    str(tmp_path / name)], check=True, timeout=30)
    return Image.open(tmp_path / f"{name}.png").convert("L")


def test_rendered_voucher_barcode_decodes_from_pixels(pdftoppm, tmp_path):
    img = render(pdftoppm, printing.voucher_pdf(voucher(), HEAD), tmp_path, "voucher")
    assert img.size == (round(160 / 25.4 * 300), round(65 / 25.4 * 300))  # a TITO ticket, landscape
    w, h = img.size
    px = img.load()
    decoded = None
    for y in range(h // 4, 3 * h // 4):
        runs, last, start = [], None, 0
        for x in range(w):
            dark = px[x, y] < 128
            if dark != last:
                if last is not None:
                    runs.append((last, x - start))
                last, start = dark, x
        # Drop the page margins (light runs at both ends): what is left alternates bar, space, ..., bar.
        inner = runs[1:] if runs and not runs[0][0] else runs
        if len([r for r in inner if r[0]]) == 49 and inner[0][0] and inner[-1][0]:
            decoded = decode_i2of5([n for _, n in inner])
            break
    assert decoded == VN


def test_rendered_handpay_slip_is_a_printed_page(pdftoppm, tmp_path):
    img = render(pdftoppm, printing.handpay_pdf(handpay(), HEAD, patron_name="Ada Lovelace"), tmp_path, "slip", 100)
    dark = sum(img.histogram()[:128])
    assert 0.005 < dark / (img.size[0] * img.size[1]) < 0.2  # text and lines, neither blank nor a black page
