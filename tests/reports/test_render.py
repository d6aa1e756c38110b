"""The shared renderers on one document: PDF header on every page (read back with poppler and rendered to
pixels), money and percentages at the edge, CSV quoting, deterministic bytes."""
from __future__ import annotations

import shutil
import subprocess
import zoneinfo

import pytest

from reports.core import Column, Document, ratio_bp
from reports.render import fmt_value, render, to_csv, to_html, to_pdf

LA = zoneinfo.ZoneInfo("America/Los_Angeles")


def doc(rows: int = 300) -> Document:
    return Document(report="win", title="Win and hold", property="Test Casino",
                    period={"gaming_day": "2026-03-10", "from": "2026-03-10T13:00:00Z", "to": "2026-03-11T13:00:00Z"},
                    software_version="0.1.0", generated_at="2026-03-11T14:00:00Z",
                    columns=[Column("key", "Terminal"), Column("coin_in_cents", "Coin in", "cents"),
                             Column("hold_bp", "Hold", "bp"), Column("note", "Note")],
                    rows=[{"key": f"EGM{i:04d}", "coin_in_cents": 123_456 * i, "hold_bp": 714 - i,
                           "note": 'quote " and, comma'} for i in range(rows)],
                    totals={"coin_in_cents": 1, "hold_bp": -5})


def tool(name):
    exe = shutil.which(name)
    if exe is None:
        pytest.skip(f"{name} not installed (Debian package poppler-utils)")
    return exe


def test_pdf_prints_the_header_on_every_page(tmp_path):
    pdf = to_pdf(doc(), LA)
    (tmp_path / "r.pdf").write_bytes(pdf)
    info = subprocess.run([tool("pdfinfo"), str(tmp_path / "r.pdf")], capture_output=True, text=True, check=True)
    pages = int(next(ln.split()[-1] for ln in info.stdout.splitlines() if ln.startswith("Pages:")))
    assert pages >= 5  # 300 rows do not fit one page
    for n in range(1, pages + 1):
        text = subprocess.run([tool("pdftotext"), "-layout", "-f", str(n), "-l", str(n), str(tmp_path / "r.pdf"), "-"],
                              capture_output=True, text=True, check=True).stdout
        head = text.strip().splitlines()[:3]
        assert "Win and hold - Test Casino" in head[0], (n, head)
        assert "gaming day 2026-03-10" in head[1] and "software 0.1.0" in head[1]
        assert "generated 2026-03-11T14:00:00Z" in head[1]
        assert f"page {n}/{pages}" in text
        if "EGM0" in text:  # column heads repeat on every page with rows (the last may hold only the totals)
            assert "Terminal" in text and "Coin in" in text
    first = subprocess.run([tool("pdftotext"), "-layout", "-f", "1", "-l", "1", str(tmp_path / "r.pdf"), "-"],
                           capture_output=True, text=True, check=True).stdout
    assert "$1,234.56" in first and "7.13 %" in first  # EGM0010: 10 × $1,234.56; EGM0001: 713 bp


def test_pdf_page_renders_to_pixels(tmp_path):
    from PIL import Image

    (tmp_path / "r.pdf").write_bytes(to_pdf(doc(20), LA))
    subprocess.run([tool("pdftoppm"), "-png", "-r", "72", "-singlefile", "-f", "1", "-l", "1",
                    str(tmp_path / "r.pdf"), str(tmp_path / "r")], check=True, timeout=30)
    img = Image.open(tmp_path / "r.png").convert("L")
    assert img.size[0] == 842 and img.size[1] in (595, 596)  # A4 landscape at 72 dpi (297 × 210 mm)
    w, h = img.size
    band = img.crop((0, 0, w, int(h * 0.08)))  # the header band is printed
    assert sum(band.histogram()[:128]) > 200
    dark = sum(img.histogram()[:128]) / (w * h)
    assert 0.005 < dark < 0.3


def test_same_document_same_bytes_in_every_format():
    for fmt in ("json", "csv", "html", "pdf"):
        assert render(doc(30), fmt, LA) == render(doc(30), fmt, LA), fmt


def test_csv_quotes_and_keeps_raw_values():
    text = to_csv(doc(2), LA).decode()
    lines = text.split("\r\n")
    assert lines[8] == "key,coin_in_cents,hold_bp,note"
    assert lines[10] == 'EGM0001,123456,713,"quote "" and, comma"'


def test_html_escapes_and_formats():
    d = doc(1)
    d.rows[0]["note"] = "<script>alert(1)</script>"
    out = to_html(d, LA).decode()
    assert "<script>alert" not in out and "&lt;script&gt;" in out
    assert "-0.05 %" in out and "$0.01" in out
    assert "2026-03-10 06:00:00 to 2026-03-11 06:00:00 (America/Los_Angeles)" in out


@pytest.mark.parametrize("num, den, bp", [(25_000, 350_000, 714), (1, 3, 3333), (2, 3, 6667), (-1, 8, -1250),
                                          (-1, 3, -3333), (5, 0, 0), (1, 20_000, 1), (1, 20_001, 0)])
def test_ratio_bp_rounds_half_away_from_zero(num, den, bp):
    assert ratio_bp(num, den) == bp


def test_fmt_value_edges():
    assert fmt_value("cents", -150, LA) == "-$1.50"
    assert fmt_value("bp", 5, LA) == "0.05 %"
    assert fmt_value("instant", "2026-03-10T13:00:00Z", LA) == "2026-03-10 06:00:00"
    assert fmt_value("int", None, LA) == ""
