"""Gaming-day close and the immutable report archive: 409s, archived bytes and their sha256 in the header and
the audit log, corrections beside the original, the audit-verify check, the scheduled close and the CLI."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from reports import closing
from reports.models import ReportArchive
from server.models import Alert, AuditEntry
from tests.reports.seed import DAY, at, seed_day
from terminals import meters, registry

D = DAY.isoformat()


@pytest.fixture
def seeded(host):
    seed_day(host)
    return host


def close(api, day=D, role="manager"):
    return api.as_(role).post(f"/gaming-days/{day}/close")


def test_close_refuses_a_day_not_ended_and_a_second_close(api, seeded):
    today = seeded.gaming_day().isoformat()
    r = close(api, today)
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "gaming_day_not_ended"
    assert close(api, "2026-02-30").status_code == 400
    assert close(api, role="auditor").status_code == 403
    assert close(api, role="cashier").status_code == 403
    first = close(api)
    assert first.status_code == 200, first.get_json()
    again = close(api)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "gaming_day_closed"


def test_close_archives_every_report_and_raises_reconciliation_alerts(api, seeded):
    body = close(api).get_json()
    assert body["status"] == "closed" and body["meters_source"] == "last_snapshot"
    assert body["reconciliation_exceptions"] == 1
    produced = {k.split(".v1.")[0] for k in body["reports"]}
    assert body["skipped"] == []
    assert produced >= {"meters", "win", "voucher-liability", "voucher-activity", "handpays",
                        "aml", "events", "config-changes", "cashier", "player-ratings", "terminal-availability"}
    assert {k.rsplit(".", 1)[1] for k in body["reports"]} == {"json", "csv", "pdf", "html"}
    with seeded.db.read() as s:
        alerts = s.execute(select(Alert).where(Alert.kind == "meter_reconciliation")).scalars().all()
        assert [(a.egm_id, a.detail["item"]) for a in alerts] == [("EGM2", "voucher_out")]
        entry = s.execute(select(AuditEntry).where(AuditEntry.action == "gaming_day.close")).scalar_one()
        assert json.loads(entry.after)["files"] == body["reports"]
    day = api.as_("auditor").get(f"/gaming-days/{D}").get_json()
    assert day["status"] == "closed" and len(day["archive"]) == len(body["reports"])


def test_a_closed_days_report_is_the_archived_bytes_with_their_sha(api, seeded):
    live = api.as_("manager").get(f"/reports/win?gaming_day={D}&format=pdf")
    assert live.headers["X-Report-Archived"] == "false"
    files = close(api).get_json()["reports"]
    for fmt in ("json", "csv", "pdf", "html"):
        r = api.as_("auditor").get(f"/reports/win?gaming_day={D}&format={fmt}")
        assert r.status_code == 200 and r.headers["X-Report-Archived"] == "true"
        digest = hashlib.sha256(r.data).hexdigest()
        assert r.headers["X-Report-SHA256"] == digest == files[f"win.v1.{fmt}"]
        path = seeded.settings.instance_path / "reports" / D / "v1" / f"win.{fmt}"
        assert path.read_bytes() == r.data
        assert not os.access(path, os.W_OK) or os.geteuid() == 0
    # Later data for the closed day does not change what is served.
    with seeded.db.begin() as s:
        meters.record_snapshot(s, seeded.clock, registry.get(s, "EGM1"),
                               {"coin_in_cents": 1_260_000, "coin_out_cents": 1_080_000}, at(seeded, 20))
    again = api.as_("manager").get(f"/reports/win?gaming_day={D}&format=json")
    assert hashlib.sha256(again.data).hexdigest() == files["win.v1.json"]
    assert again.get_json()["totals"]["coin_in_cents"] == 350_000


def test_a_correction_is_a_new_labelled_version_beside_the_original(api, seeded):
    files = close(api).get_json()["reports"]
    with seeded.db.begin() as s:
        meters.record_snapshot(s, seeded.clock, registry.get(s, "EGM1"),
                               {"coin_in_cents": 1_260_000, "coin_out_cents": 1_080_000}, at(seeded, 20))
    bad = api.as_("manager").post(f"/gaming-days/{D}/reports/win/corrections", json={})
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "reason"
    assert api.as_("manager").post(f"/gaming-days/2026-03-01/reports/win/corrections",
                                   json={"reason": "late meters"}).status_code == 409
    r = api.as_("manager").post(f"/gaming-days/{D}/reports/win/corrections", json={"reason": "late meters"})
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["version"] == 2 and r.get_json()["label"] == "correction 1: late meters"
    latest = api.as_("manager").get(f"/reports/win?gaming_day={D}&format=json")
    assert latest.headers["X-Report-Version"] == "2"
    assert latest.get_json()["totals"]["coin_in_cents"] == 360_000
    assert b"correction 1: late meters" in api.as_("manager").get(f"/reports/win?gaming_day={D}&format=html").data
    original = api.as_("manager").get(f"/reports/win?gaming_day={D}&format=json&version=1")
    assert hashlib.sha256(original.data).hexdigest() == files["win.v1.json"]
    assert (seeded.settings.instance_path / "reports" / D / "v1" / "win.json").exists()
    assert (seeded.settings.instance_path / "reports" / D / "v2" / "win.json").exists()
    with seeded.db.read() as s:
        assert closing.verify_archive(s, seeded.settings.instance_path) is None


def test_verify_archive_finds_an_altered_file_and_an_altered_row(api, seeded):
    close(api)
    inst = seeded.settings.instance_path
    with seeded.db.read() as s:
        assert closing.verify_archive(s, inst) is None
    path = inst / "reports" / D / "v1" / "meters.csv"
    os.chmod(path, 0o644)
    original = path.read_bytes()
    path.write_bytes(original.replace(b"EGM1", b"EGM9", 1))
    with seeded.db.read() as s:
        problem = closing.verify_archive(s, inst)
    assert problem and "meters.csv" in problem and "altered" in problem
    path.write_bytes(original)
    # A row whose sha256 was rewritten to match a rewritten file still disagrees with the audit log.
    path.write_bytes(b"forged")
    with seeded.db.begin() as s:
        row = s.execute(select(ReportArchive).where(ReportArchive.path == f"reports/{D}/v1/meters.csv")).scalar_one()
        row.sha256 = hashlib.sha256(b"forged").hexdigest()
    with seeded.db.read() as s:
        problem = closing.verify_archive(s, inst)
    assert problem and "audit log" in problem


def test_scheduled_close_closes_the_day_that_ended_once(seeded):
    seeded.now = lambda: seeded.clock.bounds(DAY)[1] + dt.timedelta(minutes=5)
    assert closing.scheduled_close(seeded) is None  # within the grace period for buffered data
    seeded.now = lambda: seeded.clock.bounds(DAY)[1] + dt.timedelta(minutes=20)
    result = closing.scheduled_close(seeded)
    assert result is not None and result.gaming_day == DAY and result.closed_by == "system"
    assert closing.scheduled_close(seeded) is None
    from server.scheduler import JOBS

    assert JOBS["reports.close_gaming_day"][0] == "reports.closing:scheduled_close"


def test_cli_report_close_and_audit_verify(seeded, tmp_path):
    from server.cli import cli

    env = {"FLOORHOST_INSTANCE": seeded.settings.instance, "FLOORHOST_DATABASE_URL": seeded.settings.database_url,
           "FLOORHOST_TIMEZONE": "America/Los_Angeles", "FLOORHOST_PROPERTY_NAME": "Test Casino"}
    runner = CliRunner()
    r = runner.invoke(cli, ["report", "win", "--gaming-day", D, "--format", "json"], env=env)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout_bytes)["totals"]["net_win_cents"] == 25_000
    r = runner.invoke(cli, ["report", "nope", "--gaming-day", D], env=env)
    assert r.exit_code != 0 and "Traceback" not in r.output
    r = runner.invoke(cli, ["report", "win", "--gaming-day", "10-03-2026"], env=env)
    assert r.exit_code == 2
    r = runner.invoke(cli, ["gaming-day", "close", seeded.gaming_day().isoformat()], env=env)
    assert r.exit_code == 1 and "has not ended" in r.output
    r = runner.invoke(cli, ["gaming-day", "close", D], env=env)
    assert r.exit_code == 0 and "closed" in r.output, r.output
    out = tmp_path / "w.pdf"
    r = runner.invoke(cli, ["report", "win", "--gaming-day", D, "--format", "pdf", "--out", str(out)], env=env)
    assert r.exit_code == 0 and "(archived)" in r.output
    assert out.read_bytes() == (seeded.settings.instance_path / "reports" / D / "v1" / "win.pdf").read_bytes()
    assert runner.invoke(cli, ["audit", "verify"], env=env).exit_code == 0
    path = seeded.settings.instance_path / "reports" / D / "v1" / "win.json"
    os.chmod(path, 0o644)
    path.write_bytes(b"{}")
    r = runner.invoke(cli, ["audit", "verify"], env=env)
    assert r.exit_code == 1 and "win.json" in r.output
