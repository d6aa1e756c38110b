"""The hash-chained audit log: append an operator's change, verify the chain.

Each entry's hash covers its own fields and the previous entry's hash, so an
edit, a deletion or an insertion anywhere breaks every later link. Appends are
serialized: SQLite's BEGIN IMMEDIATE already holds the write lock; PostgreSQL
takes a transaction-scoped advisory lock; the unique prev_hash is the backstop.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from server.db import utcnow
from server.models import AuditEntry

GENESIS = "0" * 64
_PG_LOCK_ID = 0x5A0D17  # arbitrary, fixed: the audit chain's advisory lock


@dataclass(frozen=True)
class Actor:
    """Who did it: an operator, or the host itself (`system`)."""

    username: str
    role: str


SYSTEM = Actor("system", "system")


def _dump(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)


def entry_hash(at: dt.datetime, actor: str, role: str, action: str, target: str,
               before: str | None, after: str | None, prev_hash: str) -> str:
    material = json.dumps(
        [at.astimezone(dt.timezone.utc).isoformat(timespec="microseconds"), actor, role, action, target, before, after, prev_hash],
        separators=(",", ":"), ensure_ascii=False,
    )
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def append(session: Session, actor: Actor, action: str, target: str,
           before: Any = None, after: Any = None, at: dt.datetime | None = None) -> AuditEntry:
    """Adds one entry in the caller's transaction, so it commits or rolls back with the change."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_ID})
    last = session.execute(select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)).scalar()
    prev = last or GENESIS
    at = at or utcnow()
    b, a = _dump(before), _dump(after)
    entry = AuditEntry(at=at, actor=actor.username, role=actor.role, action=action, target=str(target),
                       before=b, after=a, prev_hash=prev,
                       hash=entry_hash(at, actor.username, actor.role, action, str(target), b, a, prev))
    session.add(entry)
    session.flush()
    return entry


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    broken_id: int | None = None
    problem: str | None = None


def verify(session: Session, batch: int = 5000) -> VerifyResult:
    """Walks the chain in id order; names the first entry whose link or hash is wrong."""
    prev = GENESIS
    checked = 0
    last_id = 0
    while True:
        rows = session.execute(
            select(AuditEntry).where(AuditEntry.id > last_id).order_by(AuditEntry.id).limit(batch)
        ).scalars().all()
        if not rows:
            return VerifyResult(True, checked)
        for e in rows:
            if e.prev_hash != prev:
                return VerifyResult(False, checked, e.id, "prev_hash does not match the previous entry (entry removed, inserted or reordered)")
            expect = entry_hash(e.at, e.actor, e.role, e.action, e.target, e.before, e.after, e.prev_hash)
            if e.hash != expect:
                return VerifyResult(False, checked, e.id, "hash does not match the entry's contents (entry altered)")
            prev = e.hash
            checked += 1
            last_id = e.id
        session.expunge_all()


def to_dict(e: AuditEntry) -> dict[str, Any]:
    return {
        "id": e.id, "at": e.at.isoformat().replace("+00:00", "Z"), "actor": e.actor, "role": e.role,
        "action": e.action, "target": e.target,
        "before": json.loads(e.before) if e.before else None,
        "after": json.loads(e.after) if e.after else None,
        "hash": e.hash, "prev_hash": e.prev_hash,
    }
