"""Deployments end to end: the API, the gateway, simulated MQTT terminals through a real broker.

The scheduler is off in tests; `until()` runs the deployments job (deploy_steps.pump) while it waits,
as the scheduler would every 2 s.
"""
from __future__ import annotations

import datetime as dt
import time

import pytest
from sqlalchemy import func, select

from server.audit import SYSTEM, AuditEntry
from server.models import Alert
from terminals import deploy_steps, deployments, registry, software
from terminals.config_models import Deployment
from terminals.models import Command, Terminal
from terminals.simulators.mqtt_terminal import SimTerminal, default_software

pytestmark = pytest.mark.slow

GAME = {"theme": "Lucky Sevens", "paytable_id": "42", "rtp_bp": 9250, "denoms_cents": [5, 25], "max_bet_cents": 500}


def until(host, pred, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        deploy_steps.pump(host)
        time.sleep(0.1)


@pytest.fixture
def floor(api, gateway, broker, host, tmp_path):
    with host.db.begin() as s:
        software.approve(s, SYSTEM, "floorhost-sim", "1.0.0", default_software()["sha256"], host.now())
    sims: dict[str, SimTerminal] = {}

    def make(egm_id: str, bank: str = "A", zone: str = "north", **kw) -> SimTerminal:
        r = api.as_("slot_tech").post("/terminals", json={"egm_id": egm_id, "protocol": "mqtt",
                                                          "location": {"bank": bank, "zone": zone}})
        assert r.status_code == 201, r.get_json()
        sim = SimTerminal(egm_id, broker.url, r.get_json()["mqtt"]["password"], state_dir=tmp_path / "nvram",
                          topic_root=host.settings.topic_root, seed=3, meters_interval=None, fsync=False,
                          print_fail_rate=0.0, **kw)
        sims[egm_id] = sim
        assert sim.wait_for(lambda: sim.connected and not sim.hello_pending, 15), f"{egm_id}: no hello.reply"
        assert api.as_("manager").post(f"/terminals/{egm_id}/commands", json={"name": "enable"}).status_code == 202
        assert sim.wait_for(lambda: sim.state["enabled"], 10), f"{egm_id}: not enabled"
        return sim

    yield make
    for sim in sims.values():
        sim.kill()


def package(api, version="1.0", **game) -> dict:
    r = api.as_("slot_tech").post("/config-packages", json={"name": "floor-a", "version": version,
                                                            "games": [{**GAME, **game}], "settings": {"volume": 3}})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def deploy(api, package_id, terminals, apply="idle", **extra) -> int:
    r = api.as_("manager").post("/deployments", json={"package_id": package_id, "terminals": terminals,
                                                      "apply": apply, **extra})
    assert r.status_code == 201, r.get_json()
    return r.get_json()["id"]


def states(api, dep_id) -> dict[str, str]:
    return {t["egm_id"]: t["state"] for t in api.as_("auditor").get(f"/deployments/{dep_id}").get_json()["terminals"]}


def terminal(host, egm_id) -> Terminal:
    with host.db.read() as s:
        return registry.get(s, egm_id)


def test_idle_terminals_read_meters_then_install_and_report_each_step(floor, api, host):
    sims = [floor("EGM1"), floor("EGM2"), floor("EGM3", bank="B")]
    pkg = package(api)
    dep = deploy(api, pkg["id"], [{"bank": "A"}, "EGM3"])
    until(host, lambda: set(states(api, dep).values()) == {"installed"}, what="all installed")
    for sim in sims:
        assert sim.state["config"] == {"deployment_id": dep, "sha256": pkg["sha256"]}
        push = sim.last_reply("config.push")["body"]
        assert push["apply"] == "idle" and push["signature"] == pkg["signature"]
        assert sim.denoms_cents == [5, 25] and sim.rtp == 0.925  # the first game is what it plays now
        t = terminal(host, sim.egm_id)
        assert (t.expected_deployment_id, t.expected_sha256) == (dep, pkg["sha256"])
        assert t.reported_config == {"deployment_id": dep, "sha256": pkg["sha256"]}
    with host.db.read() as s:
        # Meters first (rules.md 25): one meters request per terminal, before its push.
        assert s.execute(select(func.count()).select_from(Command).where(Command.name == "meters.request")) \
            .scalar_one() == 3
        assert s.get(Deployment, dep).status == "done"
        audit = s.execute(select(AuditEntry.action, AuditEntry.actor).where(
            AuditEntry.action.like("deployment.%"))).all()
        assert audit == [("deployment.create", "manager1")]
    body = api.as_("cashier").get(f"/deployments/{dep}").get_json()
    assert body["package_id"] == pkg["id"]
    row = body["terminals"][0]
    assert {"egm_id", "state", "updated_at"} <= set(row) and row["ended_at"] is not None
    # The terminal's next hello reports the config and the host expects the same.
    sims[0].disconnect()
    sims[0].reconnect()
    assert sims[0].wait_for(lambda: sims[0].connected and not sims[0].hello_pending, 10)
    assert sims[0].last_reply("hello.reply")["body"]["expected_config"] == {"deployment_id": dep,
                                                                             "sha256": pkg["sha256"]}


def test_credits_hold_the_push_and_a_busy_terminal_defers_then_installs(floor, api, host):
    rich = floor("EGM1")
    door = floor("EGM2")
    rich.insert_bill(2000)
    until(host, lambda: terminal(host, "EGM1").current_credits_cents == 2000 or rich.send_meters(), what="credits")
    # The host tracks the main door; a logic door open is the terminal's own reason to defer.
    door.open_door("logic")
    pkg = package(api)
    dep = deploy(api, pkg["id"], ["EGM1", "EGM2"])
    until(host, lambda: states(api, dep) == {"EGM1": "pending", "EGM2": "deferred"}, what="held and deferred")
    reason = {t["egm_id"]: t.get("reason") for t in api.as_("manager").get(f"/deployments/{dep}").get_json()["terminals"]}
    assert reason == {"EGM1": "waiting for idle: credits_on_meter", "EGM2": "not_idle"}
    assert rich.last_reply("config.push") is None  # never pushed to a terminal with credits
    door.close_door("logic")
    until(host, lambda: states(api, dep)["EGM2"] == "installed", what="deferred install")
    rich.cash_out()
    rich.send_meters()
    until(host, lambda: states(api, dep)["EGM1"] == "installed", what="install after cash-out")
    assert rich.state["config"]["deployment_id"] == dep


def test_apply_now_does_not_wait_for_idle(floor, api, host):
    sim = floor("EGM1")
    sim.insert_bill(500)
    assert sim.credits_cents == 500
    pkg = package(api)
    dep = deploy(api, pkg["id"], ["EGM1"], apply="now")
    until(host, lambda: states(api, dep)["EGM1"] == "installed", what="installed now")
    assert sim.credits_cents == 500


def test_rejected_by_the_terminal_restores_the_expected_config(floor, api, host):
    sim = floor("EGM1")
    first = package(api, "1.0")
    d1 = deploy(api, first["id"], ["EGM1"])
    until(host, lambda: states(api, d1)["EGM1"] == "installed")
    sim.reject_configs = True
    second = package(api, "2.0", rtp_bp=9000)
    d2 = deploy(api, second["id"], ["EGM1"])
    until(host, lambda: states(api, d2)["EGM1"] == "rejected")
    got = api.as_("manager").get(f"/deployments/{d2}").get_json()["terminals"][0]
    assert got["reason"] == "rejected_by_terminal"
    t = terminal(host, "EGM1")
    assert (t.expected_deployment_id, t.expected_sha256) == (d1, first["sha256"])
    assert sim.state["config"]["deployment_id"] == d1


def test_offline_terminal_gets_it_after_reconnect_and_a_wrong_config_at_hello_is_pushed_again(floor, api, host):
    sim = floor("EGM1")
    assert sim.disconnect()
    until(host, lambda: terminal(host, "EGM1").comms == "offline", what="offline")
    pkg = package(api)
    dep = deploy(api, pkg["id"], ["EGM1"])
    deploy_steps.pump(host)
    got = api.as_("manager").get(f"/deployments/{dep}").get_json()["terminals"][0]
    assert (got["state"], got["reason"]) == ("pending", "offline")  # the host sends only to online terminals
    sim.reconnect()
    until(host, lambda: states(api, dep)["EGM1"] == "installed", what="installed after reconnect")
    # The terminal loses its config (a RAM clear): its next hello shows it and it gets the package again.
    with sim._lock:
        sim._config = {"deployment_id": None, "sha256": None}
    sim.disconnect()
    sim.reconnect()
    until(host, lambda: sim.state["config"]["deployment_id"] == dep, what="re-installed")
    until(host, lambda: states(api, dep)["EGM1"] == "installed")
    got = api.as_("manager").get(f"/deployments/{dep}").get_json()["terminals"][0]
    assert got["attempts"] == 2


def test_scheduled_start_and_cancel(floor, api, host):
    sim = floor("EGM1")
    pkg = package(api)
    start = (host.now() + dt.timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    dep = deploy(api, pkg["id"], ["EGM1"], start_at=start)
    deploy_steps.pump(host)
    body = api.as_("manager").get(f"/deployments/{dep}").get_json()
    assert body["status"] == "scheduled" and body["terminals"][0]["state"] == "pending"
    assert terminal(host, "EGM1").expected_sha256 is None  # recorded only when it starts
    assert api.as_("slot_tech").post(f"/deployments/{dep}/cancel").status_code == 403
    r = api.as_("manager").post(f"/deployments/{dep}/cancel")
    assert r.status_code == 200
    assert r.get_json()["terminals"][0]["state"] == "cancelled"
    assert api.as_("manager").post(f"/deployments/{dep}/cancel").status_code == 409
    assert sim.last_reply("config.push") is None
    with host.db.read() as s:
        assert s.execute(select(AuditEntry).where(AuditEntry.action == "deployment.cancel")).scalar_one().actor \
            == "manager1"


def test_start_at_and_deadline_are_driven_by_the_job(host, api):
    with host.db.begin() as s:
        for egm in ("E1", "E2"):
            registry.register(s, SYSTEM, egm, "mqtt", {"bank": "Z"}, {}, host.now())
    pkg = package(api)
    now = host.now()
    with host.db.begin() as s:
        d = deployments.create(s, SYSTEM, pkg["id"], [{"bank": "Z"}], "idle", now,
                               start_at=now + dt.timedelta(minutes=5), deadline_s=60)
        dep = d.id
    with host.db.begin() as s:
        assert not deployments.tick(s, now + dt.timedelta(minutes=1))
        assert s.get(Deployment, dep).status == "scheduled"
    with host.db.begin() as s:
        deployments.tick(s, now + dt.timedelta(minutes=5, seconds=1))
        assert s.get(Deployment, dep).status == "active"
        assert registry.get(s, "E1").expected_sha256 == pkg["sha256"]
    with host.db.begin() as s:
        deployments.tick(s, now + dt.timedelta(minutes=6, seconds=1))
        d = deployments.to_dict(s, s.get(Deployment, dep))
    assert {t["state"] for t in d["terminals"]} == {"failed"}
    assert d["terminals"][0]["reason"].startswith("deadline passed in state pending")
    assert d["status"] == "done"
    with host.db.read() as s:
        assert registry.get(s, "E1").expected_sha256 is None  # a failed target gives back the old expectation


def test_bad_requests_and_roles(api, host):
    with host.db.begin() as s:
        registry.register(s, SYSTEM, "E1", "mqtt", {"bank": "A"}, {}, host.now())
    pkg = package(api)
    mgr = api.as_("manager")
    assert api.as_("slot_tech").post("/deployments", json={"package_id": pkg["id"], "terminals": ["E1"],
                                                           "apply": "idle"}).status_code == 403
    cases = [
        ({"package_id": 999, "terminals": ["E1"], "apply": "idle"}, 404, "package_not_found"),
        ({"package_id": pkg["id"], "terminals": ["NOPE"], "apply": "idle"}, 404, "terminal_not_found"),
        ({"package_id": pkg["id"], "terminals": [{"bank": "Q"}], "apply": "idle"}, 422, "no_terminals"),
        ({"package_id": pkg["id"], "terminals": [], "apply": "idle"}, 400, "invalid_input"),
        ({"package_id": pkg["id"], "terminals": [{"color": "red"}], "apply": "idle"}, 400, "invalid_input"),
        ({"package_id": pkg["id"], "terminals": ["E1"], "apply": "later"}, 400, "invalid_input"),
        ({"package_id": pkg["id"], "terminals": ["E1"], "apply": "idle", "start_at": "tomorrow"}, 400,
         "invalid_input"),
    ]
    for body, status, code in cases:
        r = mgr.post("/deployments", json=body)
        assert (r.status_code, r.get_json()["error"]["code"]) == (status, code), body
    assert api.as_("cashier").get("/deployments/999").status_code == 404


def test_software_verify_on_demand_disables_unapproved_software(floor, api, host):
    sim = floor("EGM1")
    sim.software_sha256 = "ee" * 32  # the cabinet now runs something not on the list
    r = api.as_("manager").post("/terminals/EGM1/commands", json={"name": "software.verify"})
    assert r.status_code == 202
    cid = r.get_json()["command_id"]
    until(host, lambda: api.as_("manager").get(f"/terminals/EGM1/commands/{cid}").get_json()["status"] == "ok")
    until(host, lambda: not terminal(host, "EGM1").enabled, what="disabled")
    assert terminal(host, "EGM1").disabled_reason == "software_unapproved"
    with host.db.read() as s:
        assert s.execute(select(func.count()).select_from(Alert).where(
            Alert.kind == "software_unapproved", Alert.egm_id == "EGM1")).scalar_one() == 1
    until(host, lambda: sim.last_reply("hello.reply")["body"]["enabled"] is False, what="told disabled")


def test_status_naming_another_package_or_deployment_changes_nothing(host, api):
    with host.db.begin() as s:
        registry.register(s, SYSTEM, "E1", "mqtt", {}, {}, host.now())
    pkg = package(api)
    with host.db.begin() as s:
        dep = deployments.create(s, SYSTEM, pkg["id"], ["E1"], "idle", host.now()).id
    with host.db.begin() as s:
        t = registry.get(s, "E1")
        assert deployments.on_status(s, t, dep, "installed", "00" * 32, None, host.now()) is None
        assert deployments.on_status(s, t, dep + 1, "installed", pkg["sha256"], None, host.now()) is None
        assert deployments.on_status(s, t, "dep-x", "installed", pkg["sha256"], None, host.now()) is None
        assert t.reported_config is None
    assert states(api, dep) == {"E1": "pending"}
    with host.db.begin() as s:
        t = registry.get(s, "E1")
        assert deployments.on_status(s, t, dep, "received", pkg["sha256"].upper(), None, host.now()).state \
            == "received"
    assert states(api, dep) == {"E1": "received"}
