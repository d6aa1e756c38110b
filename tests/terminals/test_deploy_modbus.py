"""Deployments to Modbus devices: the emulator over loopback TCP; meters read first, idle checked,
110-114 then 120 written, `installed` when 122 follows, `failed` at the deadline, `rejected` when unmappable."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import delete, select

from terminals import deploy_steps, deployments, software
from terminals.models import MeterSnapshot
from tests.terminals.test_modbus_host import Floor, online, wait_until

GAME = {"theme": "Sevens", "paytable_id": "42", "rtp_bp": 9250, "denoms_cents": [5, 1], "max_bet_cents": 250}


@pytest.fixture
def floor(host):
    f = Floor(host)
    yield f
    f.stop()
    ex = host.components.get("deploy_executor")
    if ex is not None:
        ex.shutdown(wait=True)


def package(api, version, **game):
    r = api.as_("slot_tech").post("/config-packages", json={"name": "mb", "version": version,
                                                            "games": [{**GAME, **game}]})
    assert r.status_code == 201, r.get_json()
    return r.get_json()["id"]


def targets(api, dep):
    return {t["egm_id"]: (t["state"], t.get("reason"))
            for t in api.as_("manager").get(f"/deployments/{dep}").get_json()["terminals"]}


def settle(host, api, dep, want, timeout=10.0):
    def check():
        deploy_steps.pump(host)
        got = targets(api, dep)
        return got if {k: v[0] for k, v in got.items()} == want else None
    return wait_until(check, timeout, f"targets {want}")


def test_modbus_push_installs_fails_at_deadline_and_rejects_what_it_cannot_map(floor, api, host, monkeypatch):
    monkeypatch.setattr(deployments, "MODBUS_APPLY_S", 1.0)
    good = floor.add("MB1")
    stuck = floor.add("MB2")
    floor.start()
    online(floor, "MB1")
    online(floor, "MB2")
    stuck.set_bad_mode("stuck_config")
    pid = package(api, "1")
    r = api.as_("manager").post("/deployments", json={"package_id": pid, "terminals": ["MB1", "MB2"], "apply": "idle"})
    dep = r.get_json()["id"]
    got = settle(host, api, dep, {"MB1": "installed", "MB2": "failed"})
    assert good.config_in_force == dep
    assert good.game_in_force == {"denom_cents": 1, "max_bet_cents": 250, "paytable": 42, "rtp_bp": 9250}
    assert f"not {dep}" in got["MB2"][1]
    assert stuck.config_in_force == 0
    with host.db.read() as s:
        t = s.execute(select(deployments.Terminal).where(deployments.Terminal.egm_id == "MB1")).scalar_one()
        assert t.reported_config["deployment_id"] == dep and t.expected_deployment_id == dep
        # Meters first: a snapshot was recorded at or after the push was decided.
        x = s.execute(select(deployments.DeploymentTarget).where(
            deployments.DeploymentTarget.egm_id == "MB1")).scalar_one()
        last = s.execute(select(MeterSnapshot.host_ts).where(MeterSnapshot.egm_id == "MB1")
                         .order_by(MeterSnapshot.id.desc()).limit(1)).scalar_one()
        assert last >= x.sent_at

    bad = package(api, "2", paytable_id="PT-9")
    dep2 = api.as_("manager").post("/deployments", json={"package_id": bad, "terminals": ["MB1"],
                                                         "apply": "now"}).get_json()["id"]
    got = settle(host, api, dep2, {"MB1": "rejected"})
    assert "paytable_id" in got["MB1"][1]
    assert good.config_in_force == dep


def test_modbus_waits_for_idle(floor, api, host):
    dev = floor.add("MB1")
    floor.start()
    online(floor, "MB1")
    dev.open_door("main")
    wait_until(lambda: floor.terminal("MB1").door_open, 5, "door seen")
    dep = api.as_("manager").post("/deployments", json={"package_id": package(api, "1"), "terminals": ["MB1"],
                                                        "apply": "idle"}).get_json()["id"]
    settle(host, api, dep, {"MB1": "pending"})
    wait_until(lambda: targets(api, dep)["MB1"][1] == "waiting for idle: door_open", 5, "waiting reason")
    assert dev.config_in_force == 0
    dev.close_door("main")
    settle(host, api, dep, {"MB1": "installed"})
    assert dev.config_in_force == dep


def test_software_verify_reads_the_hash_again(floor, api, host):
    floor.add("MB1")
    floor.start()
    online(floor, "MB1")
    assert floor.terminal("MB1").enabled
    with host.db.begin() as s:  # the build is withdrawn from the approved list
        s.execute(delete(software.ApprovedSoftware))
    time.sleep(0.8)  # ordinary polls see the same hash and do not check it again
    assert floor.terminal("MB1").enabled
    out, result = floor.send("MB1", "software.verify")
    assert result == ("ok", None)
    assert floor.command(out).status == "ok"
    t = floor.terminal("MB1")
    assert (t.enabled, t.disabled_reason) == (False, "software_unapproved")
    assert len(floor.alerts("software_unapproved")) == 1
