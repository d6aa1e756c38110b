"""SAS EGMs: a deployment is a verification (LP 1F paytable, LP 21 ROM signature on the approved list),
and `software.verify` reads LP 1F and LP 21 again on demand."""
from __future__ import annotations

from sqlalchemy import delete

from terminals import deploy_steps, software
from terminals.simulators.sas_egm import SasEgm
from tests.terminals.test_sas_host import memory_floor, wait_for  # noqa: F401  (fixture)

GAME = {"theme": "Sevens", "rtp_bp": 9250, "denoms_cents": [1], "max_bet_cents": 500}


def package(api, version, paytable_id):
    r = api.as_("slot_tech").post("/config-packages", json={"name": "sas", "version": version,
                                                            "games": [{**GAME, "paytable_id": paytable_id}]})
    assert r.status_code == 201, r.get_json()
    return r.get_json()["id"]


def target(api, dep):
    t = api.as_("manager").get(f"/deployments/{dep}").get_json()["terminals"][0]
    return t["state"], t.get("reason")


def test_deployment_verifies_paytable_and_rom_signature(memory_floor, api, host):  # noqa: F811
    egm = SasEgm(21, seed=21)
    floor = memory_floor([egm])
    floor.wait_online()
    egm_id = floor.ids[21]
    ok = api.as_("manager").post("/deployments", json={"package_id": package(api, "1", egm.paytable),
                                                       "terminals": [egm_id], "apply": "idle"}).get_json()["id"]
    wait_for(lambda: (deploy_steps.pump(host), target(api, ok)[0] == "installed")[1], what="verified")
    assert target(api, ok)[1] == "verified: LP 1F paytable and LP 21 ROM signature"
    wrong = api.as_("manager").post("/deployments", json={"package_id": package(api, "2", "999"),
                                                          "terminals": [egm_id], "apply": "idle"}).get_json()["id"]
    wait_for(lambda: (deploy_steps.pump(host), target(api, wrong)[0] == "rejected")[1], what="rejected")
    assert "SAS cannot download" in target(api, wrong)[1]


def test_software_verify_reads_lp21_again_and_disables_unapproved(memory_floor, host):  # noqa: F811
    egm = SasEgm(22, seed=22)
    floor = memory_floor([egm])
    floor.wait_online()
    assert floor.terminal(22).enabled and egm.enabled
    with host.db.begin() as s:
        s.execute(delete(software.ApprovedSoftware))
    cid = floor.command(22, "software.verify")
    wait_for(lambda: floor.command_status(22, cid).status == "ok", what="software.verify acknowledged")
    wait_for(lambda: not floor.terminal(22).enabled, what="disabled")
    assert floor.terminal(22).disabled_reason == "software_unapproved"
    wait_for(lambda: not egm.enabled, what="LP 01 sent to the EGM")
