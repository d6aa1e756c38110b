"""Config packages over the API: canonical sha256, Ed25519 signature, RTP limits, immutability, roles, audit."""
from __future__ import annotations

import base64
import hashlib
import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select

from server.audit import AuditEntry
from terminals.simulators.mqtt_terminal import canonical_sha256

GAME = {"theme": "Lucky Sevens", "paytable_id": "42", "rtp_bp": 9250, "denoms_cents": [1, 5, 25],
        "max_bet_cents": 500}
PACKAGE = {"name": "floor-a", "version": "1.0", "games": [GAME], "settings": {"autoplay": False, "lang": "ünï"}}


def test_package_is_stored_hashed_and_signed_verifiably(api, host):
    r = api.as_("slot_tech").post("/config-packages", json=PACKAGE)
    assert r.status_code == 201, r.get_json()
    out = r.get_json()
    assert set(out) == {"id", "sha256", "signature"}
    canonical = json.dumps(PACKAGE, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert out["sha256"] == hashlib.sha256(canonical).hexdigest()

    got = api.as_("cashier").get(f"/config-packages/{out['id']}").get_json()  # read for every role
    assert got == {"id": out["id"], "sha256": out["sha256"], "signature": out["signature"], "package": PACKAGE}
    # The terminal's own check, from the published key only.
    key = api.as_("auditor").get("/config-packages/public-key").get_json()
    assert key["algorithm"] == "ed25519"
    pub = Ed25519PublicKey.from_public_bytes(base64.b64decode(key["public_key"]))
    assert canonical_sha256(got["package"]).hex() == out["sha256"]
    pub.verify(base64.b64decode(out["signature"]), bytes.fromhex(out["sha256"]))  # raises if wrong
    assert key["public_key"] == host.signer.public_key_b64

    with host.db.read() as s:
        entry = s.execute(select(AuditEntry).where(AuditEntry.action == "config_package.create")).scalar_one()
        assert entry.actor == "slot_tech1" and out["sha256"] in entry.after


def test_rtp_limits_are_inclusive_and_outside_is_422(api):
    st = api.as_("slot_tech")
    for i, rtp in enumerate((7500, 9900)):
        r = st.post("/config-packages", json={**PACKAGE, "version": f"edge{i}", "games": [{**GAME, "rtp_bp": rtp}]})
        assert r.status_code == 201, (rtp, r.get_json())
    for rtp in (7499, 9901):
        r = st.post("/config-packages", json={**PACKAGE, "version": f"bad{rtp}",
                                              "games": [GAME, {**GAME, "rtp_bp": rtp}]})
        assert r.status_code == 422
        assert r.get_json()["error"]["code"] == "rtp_out_of_limits"
        assert r.get_json()["error"]["field"] == "games.1.rtp_bp"



def test_packages_are_immutable(api):
    st = api.as_("slot_tech")
    first = st.post("/config-packages", json=PACKAGE).get_json()
    again = st.post("/config-packages", json=PACKAGE)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "package_exists"
    other = st.post("/config-packages", json={**PACKAGE, "settings": {"autoplay": True}})
    assert other.status_code == 409 and other.get_json()["error"]["code"] == "package_version_exists"
    # No route changes a package.
    assert st.put(f"/config-packages/{first['id']}", json=PACKAGE).status_code == 405


def test_bad_input_is_400_never_500(api):
    st = api.as_("slot_tech")
    cases = [
        {**PACKAGE, "games": []},
        {**PACKAGE, "games": [{**GAME, "rtp_bp": 92.5}]},
        {**PACKAGE, "games": [{**GAME, "denoms_cents": []}]},
        {**PACKAGE, "games": [{**GAME, "denoms_cents": [5, 5]}]},
        {**PACKAGE, "settings": {"ratio": 0.5}},  # floats have no canonical JSON
        {**PACKAGE, "extra": 1},
        {"name": "x"},
    ]
    for body in cases:
        r = st.post("/config-packages", json=body)
        assert r.status_code == 400, (body, r.get_json())
        assert r.get_json()["error"]["code"] == "invalid_input"
    assert st.get("/config-packages/999").status_code == 404
    assert st.get("/config-packages/999").get_json()["error"]["code"] == "package_not_found"


def test_roles(api):
    for role in ("cashier", "attendant", "manager", "auditor"):
        assert api.as_(role).post("/config-packages", json=PACKAGE).status_code == 403, role
    assert api.as_("admin").post("/config-packages", json=PACKAGE).status_code == 201
    listing = api.as_("cashier").get("/config-packages").get_json()
    assert [p["name"] for p in listing] == ["floor-a"]



def test_the_jurisdictions_configured_limits_apply(settings_overrides):
    from server.app import build_app
    from server.config import load_settings
    from server.host import Host
    from tests.conftest import Api

    h = Host(load_settings({**settings_overrides, "rtp_min_bp": 8800, "rtp_max_bp": 9000}, environ={}))
    try:
        st = Api(build_app(host=h).test_client(), h).as_("slot_tech")
        assert st.post("/config-packages", json={**PACKAGE, "games": [{**GAME, "rtp_bp": 9250}]}).status_code == 422
        assert st.post("/config-packages", json={**PACKAGE, "games": [{**GAME, "rtp_bp": 8800}]}).status_code == 201
    finally:
        h.close()
