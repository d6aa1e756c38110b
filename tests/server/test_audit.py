"""The hash-chained audit log: every operator change lands there; tampering is found and named."""
import subprocess
import sys

from sqlalchemy import select, text

from server import audit
from server.models import AuditEntry
from tests.conftest import PASSWORD


def _changes(api):
    admin = api.as_("admin")
    for name in ("ann", "ben", "cat"):
        assert admin.post("/operators", json={"username": name, "role": "cashier", "password": PASSWORD}).status_code == 201
    assert admin.post("/operators/ben/disable").status_code == 200
    assert api.as_("slot_tech").post("/terminals", json={"egm_id": "E1", "protocol": "mqtt"}).status_code == 201


def test_operator_changes_are_logged_with_before_and_after(api):
    _changes(api)
    log = api.as_("auditor").get("/audit").get_json()
    actions = [e["action"] for e in log]
    assert actions.count("operator.create") >= 3 and "operator.disable" in actions and "terminal.register" in actions
    disable = next(e for e in log if e["action"] == "operator.disable")
    assert disable["actor"] == "admin1" and disable["role"] == "admin" and disable["target"] == "operator:ben"
    assert disable["before"]["active"] is True and disable["after"]["active"] is False
    for prev, cur in zip(log, log[1:]):
        assert cur["prev_hash"] == prev["hash"]
    only_admin = api.as_("auditor").get("/audit?actor=admin1").get_json()
    assert only_admin and all(e["actor"] == "admin1" for e in only_admin)


def test_verify_intact_chain(api, host):
    _changes(api)
    with host.db.read() as s:
        r = audit.verify(s)
    assert r.ok and r.checked == 7  # 2 test operators, 3 creates, 1 disable, 1 registration


def _tamper(host, sql):
    with host.db.engine.begin() as c:
        c.execute(text(sql))


def test_altered_entry_is_named(api, host):
    _changes(api)
    with host.db.read() as s:
        target = s.execute(select(AuditEntry.id).where(AuditEntry.action == "operator.disable")).scalar_one()
    _tamper(host, f"UPDATE audit_log SET after = '{{\"active\": true}}' WHERE id = {target}")
    with host.db.read() as s:
        r = audit.verify(s)
    assert not r.ok and r.broken_id == target and "altered" in r.problem


def test_deleted_entry_breaks_the_next_link(api, host):
    _changes(api)
    with host.db.read() as s:
        ids = s.execute(select(AuditEntry.id).order_by(AuditEntry.id)).scalars().all()
    _tamper(host, f"DELETE FROM audit_log WHERE id = {ids[2]}")
    with host.db.read() as s:
        r = audit.verify(s)
    assert not r.ok and r.broken_id == ids[3]


def test_cli_verify_exit_codes(api, host, tmp_path):
    _changes(api)
    env = {"FLOORHOST_INSTANCE": host.settings.instance, "FLOORHOST_DATABASE_URL": host.settings.database_url,
           "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    ok = subprocess.run([sys.executable, "-m", "server.cli", "audit", "verify"], env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "intact" in ok.stdout
    with host.db.read() as s:
        victim = s.execute(select(AuditEntry.id).order_by(AuditEntry.id.desc()).limit(1)).scalar_one()
    _tamper(host, f"UPDATE audit_log SET actor = 'mallory' WHERE id = {victim}")
    bad = subprocess.run([sys.executable, "-m", "server.cli", "audit", "verify"], env=env, capture_output=True, text=True)
    assert bad.returncode == 1
    assert f"entry {victim}" in bad.stderr and "Traceback" not in bad.stderr


def test_concurrent_appends_keep_one_chain(host):
    import threading

    from server.audit import Actor

    errors = []

    def worker(n):
        try:
            for i in range(10):
                with host.db.begin() as s:
                    audit.append(s, Actor(f"u{n}", "admin"), "test.append", f"t:{n}:{i}")
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with host.db.read() as s:
        r = audit.verify(s)
    assert r.ok and r.checked == 60
