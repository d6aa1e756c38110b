"""Reports and gaming days: the /api/v1 routes, and the manager's desk (dashboard + reports browser). Thin."""
from __future__ import annotations

import datetime as dt

from flask import Blueprint, Response, render_template, request

from reports import closing, core, dashboard
from server.web.api import ApiError, Call, endpoint, host
from server.web.pages import page
from server.web.params import parse_day

desk = Blueprint("desk", __name__, template_folder="../server/templates")

REPORT_QUERY = {"gaming_day": "gaming day YYYY-MM-DD (default: today's)", "from": "first gaming day of a range",
                "to": "last gaming day of a range (inclusive)", "format": "json (default) | csv | pdf | html",
                "version": "an archived version of a closed day's report (default: the latest)"}


def _version(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ApiError("version must be a positive integer", code="invalid_input", status=400, field="version")
    return int(raw)


def _serve(session, h, name: str, args: dict, default_format: str = "json") -> Response:
    period = core.parse_period(args.get("gaming_day"), args.get("from"), args.get("to"), h.gaming_day())
    fmt = args.get("format") or default_format
    r = closing.fetch(session, h.settings, h.clock, name, period, fmt, h.now(), _version(args.get("version")))
    headers = {"X-Report-SHA256": r.sha256, "X-Report-Archived": "true" if r.archived else "false"}
    if r.version:
        headers["X-Report-Version"] = str(r.version)
    if fmt in ("csv", "pdf"):
        label = period.gaming_day.isoformat() if period.gaming_day else f"{period.start}_{period.end}"
        headers["Content-Disposition"] = f'attachment; filename="{name}-{label}.{fmt}"'
    return Response(r.body, 200, content_type=r.mime, headers=headers)


@endpoint("/reports", permission="reports.read")
def list_reports(call: Call):
    """The reports this host produces, and their parameters."""
    return [{"name": d.name, "title": d.title, "parameters": d.parameters(), "description": d.description}
            for d in core.all_reports()]


@endpoint("/reports/<name>", permission="reports.read", query=REPORT_QUERY)
def get_report(call: Call, name: str):
    """One report for a gaming day or a range; a closed day's comes from the archive (X-Report-SHA256)."""
    return _serve(call.session, call.host, name, call.args)


@endpoint("/gaming-days/<day>/close", ("POST",), permission="gamingday.close")
def close_gaming_day(call: Call, day: str):
    """Close a gaming day that has ended: final meters, reconciliation, every report archived."""
    d = parse_day(day, "date")
    return closing.close_day(call.session, call.host.settings, call.host.clock, call.actor, d, call.host.now()).to_dict()


@endpoint("/gaming-days/<day>", permission="reports.read")
def get_gaming_day(call: Call, day: str):
    """A gaming day: its bounds, whether it is closed, and its archived reports."""
    return closing.day_status(call.session, call.host.clock, parse_day(day, "date"), call.host.now())


@endpoint("/gaming-days/<day>/reports/<name>/corrections", ("POST",), permission="gamingday.close", status=201,
          schema={"type": "object", "required": ["reason"], "additionalProperties": False,
                  "properties": {"reason": {"type": "string", "minLength": 3, "maxLength": 500}}})
def correct_report(call: Call, day: str, name: str):
    """Archive a corrected version of a closed day's report beside the original (never an overwrite)."""
    d = parse_day(day, "date")
    h = call.host
    return closing.correct(call.session, h.settings, h.clock, call.actor, d, name, call.body["reason"], h.now())


# ---- the manager's desk -------------------------------------------------------------------------------

@desk.get("/desk")
@page("reports.read")
def dashboard_page(me):
    h = host()
    with h.db.read() as s:
        data = dashboard.today(s, h.clock, h.now())
    from cashier.printing import money

    return render_template("desk.html", me=me, d=data, money=money, chart=dashboard.hold_chart_svg(data["trend"]))


@desk.get("/desk/reports")
@page("reports.read")
def browser_page(me):
    h = host()
    today = h.gaming_day()
    with h.db.read() as s:
        closed_days = dashboard.closed_days(s, limit=30)
    return render_template("desk_reports.html", me=me, reports=core.all_reports(), today=today.isoformat(),
                           yesterday=(today - dt.timedelta(days=1)).isoformat(), closed_days=closed_days)


@desk.get("/desk/reports/<name>")
@page("reports.read")
def view_report(me, name: str):
    h = host()
    args = {k: v for k, v in request.args.items() if v}
    if args.get("range") != "on":
        args.pop("from", None)
        args.pop("to", None)
    else:
        args.pop("gaming_day", None)
    try:
        with h.db.read() as s:
            return _serve(s, h, name, args, default_format="html")
    except core.DomainError as exc:
        return render_template("error.html", me=me, message=exc.message), exc.status
