"""Cashier drawers: open with a float, every pay-out and pay-in recorded, close with a count and its variance."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from server import audit
from server.audit import Actor
from server.db import iso_z as _iso
from server.errors import Conflict, NotFound
from server.gamingday import GamingDayClock
from cashier.models import Drawer, DrawerTransaction



def to_dict(d: Drawer, expected: int | None = None) -> dict:
    out = {"id": d.id, "cashier": d.cashier, "status": d.status, "opened_at": _iso(d.opened_at),
           "opening_cents": d.opening_cents, "gaming_day": d.gaming_day.isoformat()}
    if expected is not None:
        out["expected_cents"] = expected
    if d.status == "closed":
        out.update(closed_at=_iso(d.closed_at), expected_cents=d.expected_cents, counted_cents=d.counted_cents,
                   variance_cents=d.variance_cents)
    return out


def open_drawer(session: Session, clock: GamingDayClock, actor: Actor, opening_cents: int, now: dt.datetime) -> Drawer:
    if current(session, actor.username) is not None:
        raise Conflict("this cashier already has an open drawer", code="drawer_already_open")
    d = Drawer(cashier=actor.username, status="open", opened_at=now, gaming_day=clock.day_of(now),
               opening_cents=opening_cents)
    session.add(d)
    session.flush()
    audit.append(session, actor, "drawer.open", f"drawer:{d.id}", None, to_dict(d), at=now)
    return d


def current(session: Session, cashier: str) -> Drawer | None:
    return session.execute(select(Drawer).where(Drawer.cashier == cashier, Drawer.status == "open")
                           .order_by(Drawer.id.desc()).limit(1)).scalar_one_or_none()


def require_open(session: Session, cashier: str) -> Drawer:
    d = current(session, cashier)
    if d is None:
        raise Conflict("open a drawer first", code="drawer_not_open")
    return d


def expected_cents(session: Session, drawer: Drawer) -> int:
    moved = session.execute(select(func.coalesce(func.sum(DrawerTransaction.amount_cents), 0))
                            .where(DrawerTransaction.drawer_id == drawer.id)).scalar_one()
    return drawer.opening_cents + int(moved)


def record(session: Session, drawer: Drawer, kind: str, amount_cents: int, ref: str, now: dt.datetime) -> None:
    """Money into (+) or out of (−) the drawer."""
    session.add(DrawerTransaction(drawer_id=drawer.id, kind=kind, amount_cents=amount_cents, ref=ref, at=now))


def close_drawer(session: Session, actor: Actor, drawer_id: int, counted_cents: int, now: dt.datetime) -> Drawer:
    d = session.get(Drawer, drawer_id)
    if d is None or d.cashier != actor.username:
        raise NotFound(f"no drawer {drawer_id} of yours", code="drawer_not_found")
    expected = expected_cents(session, d)
    res = session.execute(update(Drawer).where(Drawer.id == drawer_id, Drawer.status == "open")
                          .values(status="closed", closed_at=now, expected_cents=expected, counted_cents=counted_cents,
                                  variance_cents=counted_cents - expected))
    if res.rowcount != 1:
        raise Conflict("this drawer is already closed", code="drawer_closed")
    session.refresh(d)
    audit.append(session, actor, "drawer.close", f"drawer:{d.id}", {"status": "open"}, to_dict(d), at=now)
    return d
