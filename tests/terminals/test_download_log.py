"""The download log for the `config-changes` report (rules.md 26): one row per (deployment, terminal),
deployments chosen by the gaming day they were created in."""
from __future__ import annotations

import datetime as dt

from server.audit import SYSTEM, Actor
from terminals import deployments, packages, registry

MANAGER = Actor("mgr7", "manager")
KEYS = {"gaming_day", "deployment_id", "package_id", "package_name", "package_version", "sha256", "operator",
        "apply", "egm_id", "state", "started_at", "ended_at", "reason"}


def test_download_log_rows_by_gaming_day(host):
    zone = host.clock.zone  # America/Los_Angeles, day starts 06:00 local
    day = dt.date(2026, 3, 10)
    local = lambda d, h, m=0: dt.datetime(d.year, d.month, d.day, h, m, tzinfo=zone).astimezone(dt.timezone.utc)  # noqa: E731
    with host.db.begin() as s:
        for egm in ("E1", "E2"):
            registry.register(s, SYSTEM, egm, "mqtt", {"bank": "A"}, {}, local(day, 1))
        pkg = packages.create(s, MANAGER, host.signer, packages.Limits(7500, 9900), "floor-a", "3.1",
                              [{"theme": "T", "paytable_id": "7", "rtp_bp": 9000, "denoms_cents": [1],
                                "max_bet_cents": 100}], {}, local(day, 1))
        before = deployments.create(s, MANAGER, pkg.id, ["E1"], "idle", local(day, 5, 59)).id  # still day-1
        first = deployments.create(s, MANAGER, pkg.id, [{"bank": "A"}], "now", local(day, 6, 0)).id
        deployments.on_status(s, registry.get(s, "E1"), first, "installed", pkg.sha256, None, local(day, 6, 5))
        deployments.on_status(s, registry.get(s, "E2"), first, "rejected", pkg.sha256, "bad_signature",
                              local(day, 6, 6))
        last = deployments.create(s, MANAGER, pkg.id, ["E2"], "idle", local(day + dt.timedelta(days=1), 23)).id
        after = deployments.create(s, MANAGER, pkg.id, ["E1"], "idle", local(day + dt.timedelta(days=2), 7)).id
    with host.db.read() as s:
        rows = deployments.download_log(s, host.clock, day, day + dt.timedelta(days=1))
    assert all(set(r) == KEYS for r in rows)
    assert [(r["deployment_id"], r["egm_id"]) for r in rows] == [(first, "E1"), (first, "E2"), (last, "E2")]
    e1, e2, later = rows
    assert e1 == {
        "gaming_day": "2026-03-10", "deployment_id": first, "package_id": pkg.id, "package_name": "floor-a",
        "package_version": "3.1", "sha256": pkg.sha256, "operator": "mgr7", "apply": "now", "egm_id": "E1",
        "state": "installed", "started_at": "2026-03-10T13:00:00Z", "ended_at": "2026-03-10T13:05:00Z",
        "reason": None,
    }
    assert (e2["state"], e2["reason"], e2["ended_at"]) == ("rejected", "bad_signature", "2026-03-10T13:06:00Z")
    assert later["gaming_day"] == "2026-03-11" and later["ended_at"] is None
    assert before not in {r["deployment_id"] for r in rows} and after not in {r["deployment_id"] for r in rows}
    with host.db.read() as s:
        prev = deployments.download_log(s, host.clock, day - dt.timedelta(days=1), day - dt.timedelta(days=1))
    assert [(r["deployment_id"], r["gaming_day"]) for r in prev] == [(before, "2026-03-09")]
