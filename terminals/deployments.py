"""Deployments: one signed package to a set of terminals, each terminal's progress, and the download log.

```
create ─▶ scheduled ──start_at──▶ active: every target's expected config is recorded
pending ──online, idle (apply idle), meters read first──▶ sent ──config.status──▶ received ▶ verified
        ▶ installed | rejected | deferred (the terminal holds it and installs when idle)
no answer, past the deadline ─▶ failed;  cancel ─▶ cancelled (what is not yet installed)
```

The services only write and say what to send (`Actions`); `pump(host)` (the scheduler job, and
the API right after a deployment is created) sends it after the commit, through the protocol's
DeploymentStep (terminals.deploy_steps). A `hello` whose config differs from the expected one puts
the terminal's target back to `pending` (HELLO_HOOKS); a `meters` message that answers the host's
meters request releases the push at once (METERS_HOOKS).
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server import audit
from server.audit import Actor
from server.db import iso_z as _iso
from server.errors import Conflict, InvalidInput, NotFound, RuleViolation
from server.gamingday import GamingDayClock
from terminals import commands, packages, registry
from terminals.commands import Outgoing
from terminals.config_models import FINAL_STATES, ConfigPackage, Deployment, DeploymentTarget
from terminals.models import MeterSnapshot, Terminal

log = logging.getLogger("floorhost.deployments")

APPLY = ("idle", "now")
DEFAULT_DEADLINE_S = 3600
# How long a terminal may stay silent after a push before it is sent again, and how often.
SENT_TIMEOUT_S = 60
MAX_ATTEMPTS = 5
# A meters request the terminal did not answer is asked again after this long.
METERS_RETRY_S = 15
# How long the Modbus step may wait for register 122 (bounded by the deployment's deadline too).
MODBUS_APPLY_S = 30.0
SELECTOR_KEYS = ("egm_id", "bank", "zone", "model")



@dataclass(frozen=True)
class Send:
    """One push for a protocol step to deliver after the commit."""

    deployment_id: int
    egm_id: str
    protocol: str
    apply: str
    body: dict  # the config.push body (package, sha256, signature)
    deadline_s: float


@dataclass
class Actions:
    commands: list[Outgoing] = field(default_factory=list)  # meters requests before a push
    sends: list[Send] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.commands or self.sends)


# ---- targets ---------------------------------------------------------------------------------

def resolve_targets(session: Session, selectors: list) -> list[Terminal]:
    """Terminals named by id, bank, zone or model (bank and zone are keys of the terminal's location)."""
    if not isinstance(selectors, list) or not selectors:
        raise InvalidInput("terminals must name at least one terminal, bank, zone or model", code="invalid_input",
                           field="terminals")
    every = registry.list_all(session)
    chosen: dict[str, Terminal] = {}
    for i, sel in enumerate(selectors):
        where = f"terminals.{i}"
        if isinstance(sel, str):
            sel = {"egm_id": sel}
        if not isinstance(sel, dict) or len(sel) != 1 or next(iter(sel)) not in SELECTOR_KEYS \
                or not isinstance(next(iter(sel.values())), str):
            raise InvalidInput(f"{where} must be an egm_id or one of {{egm_id|bank|zone|model: string}}",
                               code="invalid_input", field=where)
        key, value = next(iter(sel.items()))
        if key == "egm_id":
            found = [t for t in every if t.egm_id == value]
            if not found:
                raise NotFound(f"no terminal {value}", code="terminal_not_found", field=where)
        elif key == "model":
            found = [t for t in every if t.model == value]
        else:
            found = [t for t in every if str((t.location or {}).get(key)) == value]
        if not found:
            raise RuleViolation(f"no terminal has {key} {value}", code="no_terminals", field=where)
        for t in found:
            chosen[t.egm_id] = t
    return sorted(chosen.values(), key=lambda t: t.egm_id)


def not_idle_reason(t: Terminal) -> str | None:
    """Why a terminal is not idle (rules.md 25), or None when it is."""
    if t.current_credits_cents:
        return "credits_on_meter"
    if t.game_in_progress:
        return "game_in_progress"
    if t.handpay_pending:
        return "handpay_pending"
    if t.door_open:
        return "door_open"
    return None


# ---- create, cancel ---------------------------------------------------------------------------

def create(session: Session, actor: Actor, package_id: int, selectors: list, apply: str, now: dt.datetime, *,
           start_at: dt.datetime | None = None, deadline_s: int = DEFAULT_DEADLINE_S) -> Deployment:
    pkg = packages.get(session, package_id)
    if apply not in APPLY:
        raise InvalidInput("apply must be idle or now", code="invalid_input", field="apply")
    terminals = resolve_targets(session, selectors)
    start = start_at if start_at is not None and start_at > now else now
    d = Deployment(package_id=pkg.id, apply=apply, selectors=selectors, start_at=start,
                   deadline_at=start + dt.timedelta(seconds=deadline_s), status="scheduled",
                   created_by=actor.username, created_at=now)
    session.add(d)
    session.flush()
    session.add_all([DeploymentTarget(deployment_id=d.id, egm_id=t.egm_id, protocol=t.protocol, state="pending",
                                      updated_at=now) for t in terminals])
    session.flush()
    audit.append(session, actor, "deployment.create", f"deployment:{d.id}", None,
                 {"id": d.id, "package_id": pkg.id, "sha256": pkg.sha256, "apply": apply, "start_at": _iso(start),
                  "deadline_at": _iso(d.deadline_at), "terminals": [t.egm_id for t in terminals]}, at=now)
    if start <= now:
        _activate(session, d, now)
    return d


def _activate(session: Session, d: Deployment, now: dt.datetime) -> None:
    """Starts a deployment: records each terminal's expected config; an older open deployment is superseded."""
    d.status = "active"
    pkg = session.get(ConfigPackage, d.package_id)
    targets = _targets(session, d.id)
    by_egm = {t.egm_id: t for t in session.execute(
        select(Terminal).where(Terminal.egm_id.in_([x.egm_id for x in targets]))).scalars()}
    older = session.execute(
        select(DeploymentTarget).where(DeploymentTarget.egm_id.in_(list(by_egm)),
                                       DeploymentTarget.deployment_id != d.id,
                                       DeploymentTarget.state.not_in(FINAL_STATES))).scalars()
    for o in older:
        _set(o, "cancelled", now, f"superseded by deployment {d.id}")
    for x in targets:
        t = by_egm.get(x.egm_id)
        if t is None or x.state in FINAL_STATES:
            continue
        x.previous_deployment_id, x.previous_sha256 = t.expected_deployment_id, t.expected_sha256
        t.expected_deployment_id, t.expected_sha256 = d.id, pkg.sha256
    log.info("deployment %s active: package %s (%s) to %d terminal(s)", d.id, pkg.id, pkg.sha256[:12], len(targets))


def cancel(session: Session, actor: Actor, deployment_id: int, now: dt.datetime) -> Deployment:
    d = get(session, deployment_id)
    if d.status in ("done", "cancelled"):
        raise Conflict(f"deployment {d.id} is {d.status}", code="deployment_finished")
    before = {"status": d.status}
    n = 0
    for x in _targets(session, d.id):
        if x.state not in FINAL_STATES:
            _set(x, "cancelled", now, f"cancelled by {actor.username}")
            _restore_expected(session, x)
            n += 1
    d.status, d.ended_at = "cancelled", now
    audit.append(session, actor, "deployment.cancel", f"deployment:{d.id}", before,
                 {"status": "cancelled", "targets_cancelled": n}, at=now)
    return d


def _restore_expected(session: Session, x: DeploymentTarget) -> None:
    """A target that will not install gives the terminal back its previous expected config."""
    t = session.execute(select(Terminal).where(Terminal.egm_id == x.egm_id)).scalar_one_or_none()
    if t is not None and t.expected_deployment_id == x.deployment_id:
        t.expected_deployment_id, t.expected_sha256 = x.previous_deployment_id, x.previous_sha256


def _set(x: DeploymentTarget, state: str, now: dt.datetime, reason: str | None = None) -> None:
    x.state, x.updated_at, x.reason = state, now, reason
    if state in FINAL_STATES:
        x.ended_at = now
    else:
        x.ended_at = None


def _targets(session: Session, deployment_id: int) -> list[DeploymentTarget]:
    return list(session.execute(select(DeploymentTarget).where(DeploymentTarget.deployment_id == deployment_id)
                                .order_by(DeploymentTarget.egm_id)).scalars())


def get(session: Session, deployment_id: int) -> Deployment:
    d = session.get(Deployment, deployment_id)
    if d is None:
        raise NotFound(f"no deployment {deployment_id}", code="deployment_not_found")
    return d


# ---- driving: the scheduler job's pass ----------------------------------------------------------

def tick(session: Session, now: dt.datetime) -> Actions:
    """One pass over open deployments: start what is due, fail what is late, send what may go."""
    acts = Actions()
    for d in session.execute(select(Deployment).where(Deployment.status == "scheduled",
                                                      Deployment.start_at <= now)).scalars():
        _activate(session, d, now)
    active = {d.id: d for d in session.execute(select(Deployment).where(Deployment.status == "active")).scalars()}
    if not active:
        return acts
    open_targets = list(session.execute(
        select(DeploymentTarget).where(DeploymentTarget.deployment_id.in_(list(active)),
                                       DeploymentTarget.state.not_in(FINAL_STATES))
        .order_by(DeploymentTarget.id).with_for_update()).scalars())
    egm_ids = sorted({x.egm_id for x in open_targets})
    terms = {t.egm_id: t for t in session.execute(select(Terminal).where(Terminal.egm_id.in_(egm_ids))).scalars()}
    last_meters = dict(session.execute(
        select(MeterSnapshot.egm_id, func.max(MeterSnapshot.host_ts)).where(MeterSnapshot.egm_id.in_(egm_ids))
        .group_by(MeterSnapshot.egm_id)).all()) if egm_ids else {}
    pkgs: dict[int, ConfigPackage] = {}
    for x in open_targets:
        d = active[x.deployment_id]
        t = terms.get(x.egm_id)
        if now >= d.deadline_at:
            _set(x, "failed", now, f"deadline passed in state {x.state}" + (f" ({x.reason})" if x.reason else ""))
            if t is not None:
                _restore_expected(session, x)
            continue
        if t is None:
            continue
        if x.state == "sent" and x.sent_at and (now - x.sent_at).total_seconds() > SENT_TIMEOUT_S:
            if x.attempts >= MAX_ATTEMPTS:
                _set(x, "failed", now, f"no answer after {x.attempts} pushes")
                _restore_expected(session, x)
                continue
            _set(x, "pending", now, "no answer to the push; sending again")
            x.meters_requested_at = None
        if x.state != "pending":
            continue
        if t.comms != "online":
            x.reason = "offline"
            continue
        busy = not_idle_reason(t) if d.apply == "idle" else None
        pkg = pkgs.get(d.package_id) or pkgs.setdefault(d.package_id, session.get(ConfigPackage, d.package_id))
        if x.protocol == "mqtt":
            got = last_meters.get(x.egm_id)
            if x.meters_requested_at is not None and got is not None and got >= x.meters_requested_at and not busy:
                acts.sends.append(_mark_sent(x, d, pkg, now))
                continue
            if busy:
                x.reason = f"waiting for idle: {busy}"
            if x.meters_requested_at is None or (now - x.meters_requested_at).total_seconds() >= METERS_RETRY_S:
                # Meters first (rules.md 25); the push follows when they come (on_meters below).
                x.meters_requested_at = now
                acts.commands.append(commands.send(session, None, t, "meters.request", {"reason": f"deployment {d.id}"},
                                                   now))
        else:
            # Modbus and SAS steps read the meters themselves before they write (deploy_steps).
            if busy:
                x.reason = f"waiting for idle: {busy}"
                continue
            acts.sends.append(_mark_sent(x, d, pkg, now))
    _finish_done(session, active.values(), now)
    return acts


def _mark_sent(x: DeploymentTarget, d: Deployment, pkg: ConfigPackage, now: dt.datetime) -> Send:
    x.attempts += 1
    x.sent_at = now
    _set(x, "sent", now)
    remaining = (d.deadline_at - now).total_seconds()
    return Send(d.id, x.egm_id, x.protocol, d.apply, packages.push_body(pkg, d.id, d.apply),
                max(1.0, min(MODBUS_APPLY_S, remaining)))


def _finish_done(session: Session, deployments, now: dt.datetime) -> None:
    session.flush()  # the gateway's batch runs without autoflush; the count must see this batch's changes
    for d in deployments:
        if d.status != "active":
            continue
        left = session.execute(select(func.count()).select_from(DeploymentTarget).where(
            DeploymentTarget.deployment_id == d.id, DeploymentTarget.state.not_in(FINAL_STATES))).scalar_one()
        if left == 0:
            d.status, d.ended_at = "done", now
            log.info("deployment %s done", d.id)


# ---- what terminals say --------------------------------------------------------------------------

def _expected_target(session: Session, t: Terminal) -> DeploymentTarget | None:
    if t.expected_deployment_id is None:
        return None
    return session.execute(select(DeploymentTarget).where(DeploymentTarget.deployment_id == t.expected_deployment_id,
                                                          DeploymentTarget.egm_id == t.egm_id)).scalar_one_or_none()


def config_differs(t: Terminal) -> bool:
    return bool(t.expected_sha256) and (t.reported_config or {}).get("sha256") != t.expected_sha256


def on_hello(session: Session, t: Terminal, now: dt.datetime) -> bool:
    """A terminal said hello with its config: a wrong one gets the push again. True when re-queued."""
    if not config_differs(t):
        return False
    x = _expected_target(session, t)
    if x is None:
        return False
    d = session.get(Deployment, x.deployment_id)
    if d is None or d.status not in ("active", "done") or x.state in ("rejected", "failed", "cancelled"):
        return False
    reported = (t.reported_config or {}).get("sha256")
    _set(x, "pending", now, f"hello reported config {reported[:12] if reported else None}; sending again")
    x.meters_requested_at = None
    if d.status == "done":
        d.status, d.ended_at = "active", None
    log.info("egm=%s deployment %s: hello with another config; queued again", t.egm_id, d.id)
    return True


def on_meters(session: Session, t: Terminal, now: dt.datetime) -> Send | None:
    """Meters came in: a target waiting for them is pushed now, in this transaction's after-commit."""
    if not config_differs(t):
        return None  # the common case costs no query
    x = _expected_target(session, t)
    if x is None or x.state != "pending" or x.meters_requested_at is None or t.comms != "online":
        return None
    d = session.get(Deployment, x.deployment_id)
    if d is None or d.status != "active" or now >= d.deadline_at:
        return None
    if d.apply == "idle":
        busy = not_idle_reason(t)
        if busy:
            x.reason = f"waiting for idle: {busy}"
            return None
    return _mark_sent(x, d, session.get(ConfigPackage, d.package_id), now)


def on_status(session: Session, t: Terminal, deployment_id, state: str, sha256: str, reason: str | None,
              now: dt.datetime) -> DeploymentTarget | None:
    """A `config.status` from a terminal advances its target; a stale or foreign one is ignored (None)."""
    if not isinstance(deployment_id, int):
        log.warning("egm=%s config.status for deployment %r: not one of ours", t.egm_id, deployment_id)
        return None
    x = session.execute(select(DeploymentTarget).where(DeploymentTarget.deployment_id == deployment_id,
                                                       DeploymentTarget.egm_id == t.egm_id)
                        .with_for_update()).scalar_one_or_none()
    if x is None:
        log.warning("egm=%s config.status for deployment %s it is not part of", t.egm_id, deployment_id)
        return None
    d = session.get(Deployment, deployment_id)
    pkg = session.get(ConfigPackage, d.package_id)
    if sha256.lower() != pkg.sha256:
        log.warning("egm=%s config.status %s for deployment %s names sha256 %s, not %s", t.egm_id, state,
                    deployment_id, sha256, pkg.sha256)
        return None
    if state == "installed":
        if x.state != "installed":
            was = x.state
            _set(x, "installed", now, None if was != "cancelled" else "installed after it was cancelled")
        t.reported_config = {"deployment_id": deployment_id, "sha256": pkg.sha256}
        _finish_done(session, [d], now)
        return x
    if x.state in FINAL_STATES:
        return x  # a late step of a target already ended changes nothing
    if state == "rejected":
        _set(x, "rejected", now, reason or "rejected by the terminal")
        _restore_expected(session, x)
        _finish_done(session, [d], now)
    else:  # received / verified / deferred
        _set(x, state, now, reason)
    return x


def record_outcome(session: Session, deployment_id: int, egm_id: str, state: str, reason: str | None,
                   now: dt.datetime) -> DeploymentTarget | None:
    """The result of a Modbus or SAS step (installed / rejected / failed, or back to pending)."""
    x = session.execute(select(DeploymentTarget).where(DeploymentTarget.deployment_id == deployment_id,
                                                       DeploymentTarget.egm_id == egm_id)).scalar_one_or_none()
    if x is None or x.state in FINAL_STATES:
        return x
    d = session.get(Deployment, deployment_id)
    _set(x, state, now, reason)
    if state == "installed":
        t = session.execute(select(Terminal).where(Terminal.egm_id == egm_id)).scalar_one()
        t.reported_config = {**(t.reported_config or {}), "deployment_id": deployment_id,
                             "sha256": session.get(ConfigPackage, d.package_id).sha256}
    elif state in FINAL_STATES:
        _restore_expected(session, x)
    _finish_done(session, [d], now)
    return x


# ---- reading -------------------------------------------------------------------------------------

def to_dict(session: Session, d: Deployment) -> dict:
    pkg = session.get(ConfigPackage, d.package_id)
    rows = []
    for x in _targets(session, d.id):
        r = {"egm_id": x.egm_id, "state": x.state, "updated_at": _iso(x.updated_at)}
        if x.reason:
            r["reason"] = x.reason
        r.update({"protocol": x.protocol, "attempts": x.attempts, "sent_at": _iso(x.sent_at),
                  "ended_at": _iso(x.ended_at)})
        rows.append(r)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    return {"id": d.id, "package_id": d.package_id, "terminals": rows,
            "package": {"name": pkg.name, "version": pkg.version, "sha256": pkg.sha256},
            "apply": d.apply, "status": d.status, "start_at": _iso(d.start_at), "deadline_at": _iso(d.deadline_at),
            "created_by": d.created_by, "created_at": _iso(d.created_at), "ended_at": _iso(d.ended_at),
            "counts": counts}


def list_all(session: Session, limit: int = 200) -> list[Deployment]:
    return list(session.execute(select(Deployment).order_by(Deployment.id.desc()).limit(limit)).scalars())


def download_log(session: Session, clock: GamingDayClock, start: dt.date, end: dt.date) -> list[dict]:
    """The download log (rules.md 26) for the `config-changes` report: one row per (deployment, terminal)
    of the deployments created in gaming days start..end inclusive, oldest first."""
    begin, _ = clock.bounds(start)
    _, stop = clock.bounds(end)
    q = (select(Deployment, DeploymentTarget, ConfigPackage)
         .join(DeploymentTarget, DeploymentTarget.deployment_id == Deployment.id)
         .join(ConfigPackage, ConfigPackage.id == Deployment.package_id)
         .where(Deployment.created_at >= begin, Deployment.created_at < stop)
         .order_by(Deployment.id, DeploymentTarget.egm_id))
    rows = []
    for d, x, p in session.execute(q).all():
        rows.append({
            "gaming_day": clock.day_of(d.created_at).isoformat(),
            "deployment_id": d.id, "package_id": p.id, "package_name": p.name, "package_version": p.version,
            "sha256": p.sha256, "operator": d.created_by, "apply": d.apply, "egm_id": x.egm_id, "state": x.state,
            "started_at": _iso(d.start_at), "ended_at": _iso(x.ended_at), "reason": x.reason,
        })
    return rows

