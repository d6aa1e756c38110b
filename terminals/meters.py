"""Meter snapshots and their deltas (rules.md 2, 3, 6), and the per-gaming-day sums reports read.

One function for every protocol: MQTT meters, SAS LP 1C/2F and Modbus registers
all arrive here as cumulative values in the names and units of terminal-mqtt.md.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.alerts import raise_alert
from server.db import writer
from server.gamingday import GamingDayClock
from terminals.models import CUMULATIVE_METERS, MeterDay, MeterSnapshot, Terminal


@dataclass(frozen=True)
class SnapshotResult:
    series: int
    ram_clear: bool
    deltas: dict[str, int]


def _rolled_over(old: int, new: int, modulus: int) -> bool:
    # A true rollover goes from near the top to near zero; anything else backwards is a RAM clear.
    return old >= modulus * 0.9 and new <= modulus * 0.1


def record_snapshot(session: Session, clock: GamingDayClock, t: Terminal, values: dict[str, int], now: dt.datetime,
                    *, seq: int | None = None, terminal_ts: dt.datetime | None = None, source: str = "mqtt",
                    moduli: dict[str, int] | None = None) -> SnapshotResult:
    """Stores a reading; `moduli` gives each meter's rollover (SAS 10^digits, Modbus 2^32), None = never rolls."""
    w = writer(session)
    # Within a bulk transaction the previous reading may not be written yet: the writer's cache has it.
    prev = w.cache.get(("meters", t.egm_id))
    if prev is None:
        prev = session.execute(
            select(MeterSnapshot.values, MeterSnapshot.series).where(MeterSnapshot.egm_id == t.egm_id)
            .order_by(MeterSnapshot.id.desc()).limit(1)
        ).first()
    series = 1
    ram_clear = False
    deltas = {m: 0 for m in CUMULATIVE_METERS}
    if prev is not None:
        old_values, series = prev
        computed = {}
        for m in CUMULATIVE_METERS:
            if m not in values or m not in old_values:
                computed[m] = 0
                continue
            old, new = old_values[m], values[m]
            if new >= old:
                computed[m] = new - old
            elif moduli and m in moduli and _rolled_over(old, new, moduli[m]):
                computed[m] = (new - old) % moduli[m]
            else:
                ram_clear = True
                break
        if ram_clear:
            # The old series is closed; the new one starts at these values; history stays (rules.md 3).
            series += 1
            raise_alert(session, "ram_clear", f"{t.egm_id}: meters went backwards (RAM clear); new meter series {series}",
                        now, severity="critical", egm_id=t.egm_id,
                        detail={"before": old_values, "after": values, "series": series})
        else:
            deltas = computed
    day = clock.day_of(now)
    snap = dict(egm_id=t.egm_id, series=series, seq=seq, source=source, terminal_ts=terminal_ts,
                host_ts=now, gaming_day=day, values=dict(values), deltas=deltas)
    w.insert(MeterSnapshot.__table__, snap)
    w.cache[("meters", t.egm_id)] = (dict(values), series)
    w.add_sums(MeterDay.__table__, {"egm_id": t.egm_id, "gaming_day": day},
               adds={**deltas, "snapshots": 1, "ram_clears": int(ram_clear)},
               sets={"closing": dict(values)}, inserts={"opening": dict(values)})
    if "current_credits_cents" in values:
        t.current_credits_cents = values["current_credits_cents"]
    return SnapshotResult(series, ram_clear, deltas)


def last_snapshot(session: Session, egm_id: str) -> MeterSnapshot | None:
    return session.execute(select(MeterSnapshot).where(MeterSnapshot.egm_id == egm_id)
                           .order_by(MeterSnapshot.id.desc()).limit(1)).scalar_one_or_none()


def day_totals(session: Session, egm_id: str, day: dt.date) -> dict[str, int]:
    row = session.get(MeterDay, (egm_id, day))
    if row is None:
        return {m: 0 for m in CUMULATIVE_METERS}
    return {m: getattr(row, m) for m in CUMULATIVE_METERS}
