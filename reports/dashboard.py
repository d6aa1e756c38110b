"""The manager's desk: today's figures and the hold trend, and the hold chart as inline SVG (no CDN)."""
from __future__ import annotations

import datetime as dt
import html

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cashier.models import Handpay
from reports.core import ratio_bp
from reports.models import GamingDayClose
from server.gamingday import GamingDayClock
from server.models import Alert
from terminals.models import MeterDay, Terminal

TREND_DAYS = 30


def today(session: Session, clock: GamingDayClock, now: dt.datetime) -> dict:
    day = clock.day_of(now)
    first = day - dt.timedelta(days=TREND_DAYS - 1)
    M = MeterDay
    per_day = {d: (int(ci), int(co), int(jp)) for d, ci, co, jp in session.execute(
        select(M.gaming_day, func.sum(M.coin_in_cents), func.sum(M.coin_out_cents), func.sum(M.jackpot_cents))
        .where(M.gaming_day >= first, M.gaming_day <= day).group_by(M.gaming_day))}
    trend = []
    for i in range(TREND_DAYS):
        d = first + dt.timedelta(days=i)
        ci, co, jp = per_day.get(d, (0, 0, 0))
        trend.append({"gaming_day": d.isoformat(), "coin_in_cents": ci, "net_win_cents": ci - co - jp,
                      "hold_bp": ratio_bp(ci - co - jp, ci)})
    terminals, offline = session.execute(
        select(func.count(), func.count().filter(Terminal.comms != "online")).select_from(Terminal)).one()
    return {
        **trend[-1],  # the trend ends today: its last point is today's coin-in, win and hold
        "terminals": terminals, "terminals_offline": offline,
        "pending_handpays": session.execute(select(func.count()).select_from(Handpay)
                                            .where(Handpay.status == "pending")).scalar_one(),
        "open_alerts": session.execute(select(func.count()).select_from(Alert)
                                       .where(Alert.status == "open")).scalar_one(),
        "trend": trend,
    }


def closed_days(session: Session, limit: int = 30) -> list[dict]:
    return [{"gaming_day": r.gaming_day.isoformat(), "closed_by": r.closed_by}
            for r in session.execute(select(GamingDayClose).order_by(GamingDayClose.gaming_day.desc())
                                     .limit(limit)).scalars()]


def hold_chart_svg(trend: list[dict], width: int = 720, height: int = 200) -> str:
    """A polyline of daily hold % (days with coin-in only), axes at 0 % and the extremes; server-side SVG."""
    pad = 36
    points = [(i, t["hold_bp"]) for i, t in enumerate(trend) if t["coin_in_cents"]]
    lo = min([0] + [v for _, v in points])
    hi = max([1000] + [v for _, v in points])
    span = hi - lo or 1
    n = max(len(trend) - 1, 1)
    x = lambda i: pad + i * (width - 2 * pad) / n  # noqa: E731
    y = lambda v: height - pad - (v - lo) * (height - 2 * pad) / span  # noqa: E731
    parts = [f'<svg id="hold-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img" aria-label="Hold % per gaming day">',
             f'<line x1="{pad}" y1="{y(0):.1f}" x2="{width - pad}" y2="{y(0):.1f}" stroke="#999"/>',
             f'<text x="2" y="{y(hi) + 4:.1f}" font-size="10">{hi / 100:.1f}%</text>',
             f'<text x="2" y="{y(0) + 4:.1f}" font-size="10">0%</text>']
    if lo < 0:
        parts.append(f'<text x="2" y="{y(lo) + 4:.1f}" font-size="10">{lo / 100:.1f}%</text>')
    if points:
        poly = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in points)
        parts.append(f'<polyline fill="none" stroke="#1565c0" stroke-width="2" points="{poly}"/>')
        for i, v in points:
            parts.append(f'<circle class="pt" cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" fill="#1565c0" '
                         f'data-day="{html.escape(trend[i]["gaming_day"])}" data-hold-bp="{v}">'
                         f'<title>{html.escape(trend[i]["gaming_day"])}: {v / 100:.2f}%</title></circle>')
    else:
        parts.append(f'<text x="{width / 2 - 60}" y="{height / 2}" font-size="12">no play in the last '
                     f'{len(trend)} days</text>')
    parts.append(f'<text x="{pad}" y="{height - 8}" font-size="10">{html.escape(trend[0]["gaming_day"])}</text>')
    parts.append(f'<text x="{width - pad - 60}" y="{height - 8}" font-size="10">'
                 f'{html.escape(trend[-1]["gaming_day"])}</text></svg>')
    return "".join(parts)
