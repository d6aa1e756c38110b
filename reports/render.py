"""The shared renderers: one Document → JSON, CSV, HTML or PDF bytes.

JSON and CSV carry raw values (integer cents, basis points, ISO dates); HTML and PDF format them at the
edge ($1,234.56, 12.34 %, local time). The PDF prints the header at the top of every page.
"""
from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
import zoneinfo

from fpdf import FPDF

from cashier.printing import money
from reports.core import Column, Document

MIME = {"json": "application/json", "csv": "text/csv; charset=utf-8", "pdf": "application/pdf",
        "html": "text/html; charset=utf-8"}


def render(doc: Document, fmt: str, zone: zoneinfo.ZoneInfo) -> bytes:
    return {"json": to_json, "csv": to_csv, "html": to_html, "pdf": to_pdf}[fmt](doc, zone)


def to_json(doc: Document, zone=None) -> bytes:
    return json.dumps(doc.to_dict(), ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")


def _header_lines(doc: Document) -> list[tuple[str, str]]:
    h = doc.header()
    p = h["period"]
    return [("report", h["report"]), ("title", h["title"]), ("property", h["property"]),
            ("period.gaming_day", p["gaming_day"] or ""), ("period.from", p["from"]), ("period.to", p["to"]),
            ("software_version", h["software_version"]), ("generated_at", h["generated_at"])]


def _raw(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def to_csv(doc: Document, zone=None) -> bytes:
    out = io.StringIO()
    for k, v in _header_lines(doc):
        out.write(f"# {k}: {v}\r\n")
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow([c.key for c in doc.columns])
    for row in doc.rows:
        w.writerow([_raw(row.get(c.key)) for c in doc.columns])
    return out.getvalue().encode("utf-8")


def fmt_value(col_kind: str, v, zone: zoneinfo.ZoneInfo) -> str:
    if v is None:
        return ""
    if col_kind == "cents":
        return money(int(v))
    if col_kind == "bp":
        sign = "-" if v < 0 else ""
        return f"{sign}{abs(v) // 100}.{abs(v) % 100:02d} %"
    if col_kind == "int":
        return f"{int(v):,}"
    if col_kind == "bool":
        return "yes" if v else "no"
    if col_kind == "instant" and isinstance(v, str):
        try:
            return dt.datetime.fromisoformat(v.replace("Z", "+00:00")).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")
        except ValueError:
            return v
    return str(v)


def _total_kind(key: str) -> str:
    if key.endswith("_cents"):
        return "cents"
    if key.endswith("_bp"):
        return "bp"
    return "int"


def _period_text(doc: Document, zone) -> str:
    p = doc.period
    span = f"{fmt_value('instant', p['from'], zone)} to {fmt_value('instant', p['to'], zone)} ({zone.key})"
    return f"gaming day {p['gaming_day']}, {span}" if p["gaming_day"] else f"gaming days {span}"


def to_html(doc: Document, zone: zoneinfo.ZoneInfo) -> bytes:
    e = html.escape
    right = {"int", "cents", "bp"}
    num_td = '<td class="n">'
    parts = [
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>{e(doc.title)} · {e(doc.property)}</title>",
        "<style>body{font:13px sans-serif;margin:1em}table{border-collapse:collapse}"
        "td,th{border:1px solid #bbb;padding:2px 6px}td.n{text-align:right}dt{font-weight:bold;float:left;"
        "width:11em}dd{margin-left:11em}</style></head><body>",
        f"<h1 class=\"report-title\">{e(doc.title)}</h1>",
        "<dl class=\"report-header\">",
        f"<dt>Property</dt><dd>{e(doc.property)}</dd>",
        f"<dt>Period</dt><dd>{e(_period_text(doc, zone))}</dd>",
        f"<dt>Software version</dt><dd>{e(doc.software_version)}</dd>",
        f"<dt>Generated</dt><dd>{e(doc.generated_at)}</dd>",
    ]
    if doc.label:
        parts.append(f"<dt>Version</dt><dd>{e(doc.label)}</dd>")
    parts.append("</dl>")
    parts.append(f"<table class=\"report-rows\" data-report=\"{e(doc.report)}\"><thead><tr>")
    parts += [f"<th data-key=\"{e(c.key)}\">{e(c.title)}</th>" for c in doc.columns]
    parts.append("</tr></thead><tbody>")
    for row in doc.rows:
        parts.append("<tr>" + "".join(
            (num_td if c.kind in right else "<td>") + e(fmt_value(c.kind, row.get(c.key), zone)) + "</td>"
            for c in doc.columns) + "</tr>")
    parts.append("</tbody></table>")
    if not doc.rows:
        parts.append("<p class=\"empty\">No rows for this period.</p>")
    parts.append("<h2>Totals</h2><table class=\"report-totals\">")
    for k, v in doc.totals.items():
        parts.append(f"<tr><th data-key=\"{e(k)}\">{e(k)}</th><td class=\"n\">{e(fmt_value(_total_kind(k), v, zone))}</td></tr>")
    parts.append("</table></body></html>")
    return "".join(parts).encode("utf-8")


def _latin1(text: str) -> str:
    return text.encode("latin-1", "replace").decode("latin-1")


class _ReportPdf(FPDF):
    def __init__(self, doc: Document, zone):
        super().__init__(orientation="L", unit="mm", format="A4")
        self.doc, self.zone = doc, zone
        self.set_margins(10, 10, 10)
        self.set_auto_page_break(True, 12)
        self.set_title(doc.title)
        self.set_creator("Floorhost")
        self.widths: list[float] = []

    def header(self):
        d = self.doc
        self.set_font("Helvetica", "B", 12)
        self.cell(0, 6, _latin1(f"{d.title} - {d.property}"), new_x="LMARGIN", new_y="NEXT")
        self.set_font("Helvetica", "", 8)
        line = f"{_period_text(d, self.zone)}  |  software {d.software_version}  |  generated {d.generated_at}"
        if d.label:
            line += f"  |  {d.label}"
        self.cell(0, 4, _latin1(line), new_x="LMARGIN", new_y="NEXT")
        self.ln(2)
        if self.widths:
            self._column_heads()

    def footer(self):
        self.set_y(-10)
        self.set_font("Helvetica", "", 7)
        self.cell(0, 4, f"page {self.page_no()}/{{nb}}", align="R")

    def _column_heads(self):
        self.set_font("Helvetica", "B", 7)
        for c, w in zip(self.doc.columns, self.widths):
            self.cell(w, 5, _latin1(c.title), border=1)
        self.ln(5)
        self.set_font("Helvetica", "", 7)


def _widths(doc: Document, zone, total: float) -> list[float]:
    sample = doc.rows[:200]
    need = []
    for c in doc.columns:
        longest = max([len(c.title)] + [len(fmt_value(c.kind, r.get(c.key), zone)) for r in sample])
        need.append(min(max(longest, 4), 40))
    s = sum(need)
    return [total * n / s for n in need]


def to_pdf(doc: Document, zone: zoneinfo.ZoneInfo) -> bytes:
    pdf = _ReportPdf(doc, zone)
    pdf.alias_nb_pages()
    pdf.widths = _widths(doc, zone, pdf.w - pdf.l_margin - pdf.r_margin)
    pdf.add_page()
    pdf.set_font("Helvetica", "", 7)
    for row in doc.rows:
        for c, w in zip(doc.columns, pdf.widths):
            text = _latin1(fmt_value(c.kind, row.get(c.key), zone))
            while len(text) > 3 and pdf.get_string_width(text) > w - 1:
                text = text[:-2] + "~"
            pdf.cell(w, 4.5, text, border=1, align="R" if c.kind in ("int", "cents", "bp") else "L")
        pdf.ln(4.5)
    if not doc.rows:
        pdf.cell(0, 6, "No rows for this period.", new_x="LMARGIN", new_y="NEXT")
    pdf.widths = []
    pdf.ln(3)
    pdf.set_font("Helvetica", "B", 9)
    pdf.cell(0, 6, "Totals", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 8)
    for k, v in doc.totals.items():
        pdf.cell(70, 5, _latin1(k), border=1)
        pdf.cell(50, 5, _latin1(fmt_value(_total_kind(k), v, zone)), border=1, align="R", new_x="LMARGIN", new_y="NEXT")
    # A fixed creation date keeps the bytes a function of the document (the archive hashes them).
    pdf.set_creation_date(dt.datetime.fromisoformat(doc.generated_at.replace("Z", "+00:00")))
    return bytes(pdf.output())
