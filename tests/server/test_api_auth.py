"""Tokens, roles, lockout, password expiry and account disable over /api/v1."""
import datetime as dt

from server import auth
from server.models import Operator
from tests.conftest import PASSWORD, make_operator


def test_token_then_call(api):
    r = api.as_("admin").get("/operators")
    assert r.status_code == 200
    assert [o["username"] for o in r.get_json()] == ["admin1"]


def test_wrong_password_401_and_lockout_on_sixth_failure(client, host):
    make_operator(host, "alice", "cashier")
    for i in range(5):
        r = client.post("/api/v1/auth/token", json={"username": "alice", "password": "nope"})
        assert r.status_code == 401, i
        assert r.get_json()["error"]["code"] == "bad_credentials"
    r = client.post("/api/v1/auth/token", json={"username": "alice", "password": "nope"})
    assert r.status_code == 429
    # Locked: even the right password is refused now.
    r = client.post("/api/v1/auth/token", json={"username": "alice", "password": PASSWORD})
    assert r.status_code == 429


def test_lockout_ends_after_configured_time(client, host):
    make_operator(host, "bob", "cashier")
    for _ in range(6):
        client.post("/api/v1/auth/token", json={"username": "bob", "password": "nope"})
    later = host.now() + dt.timedelta(minutes=host.settings.lockout_minutes + 1)
    host.now = lambda: later
    r = client.post("/api/v1/auth/token", json={"username": "bob", "password": PASSWORD})
    assert r.status_code == 200


def test_missing_and_bad_token_401(client):
    assert client.get("/api/v1/terminals").status_code == 401
    r = client.get("/api/v1/terminals", headers={"Authorization": "Bearer nonsense"})
    assert r.status_code == 401
    assert r.get_json()["error"]["code"] == "bad_token"


def test_expired_token_401(api, host):
    tok = api.token("manager")
    later = host.now() + dt.timedelta(minutes=host.settings.token_ttl_minutes + 1)
    host.now = lambda: later
    r = api.client.get("/api/v1/terminals", headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 401


def test_role_forbidden_403(api):
    assert api.as_("cashier").get("/operators").status_code == 403
    assert api.as_("slot_tech").get("/audit").status_code == 403
    assert api.as_("auditor").get("/audit").status_code == 200


def test_auditor_never_changes_anything(api):
    r = api.as_("auditor").post("/operators", json={"username": "x", "role": "cashier", "password": PASSWORD})
    assert r.status_code == 403
    r = api.as_("auditor").post("/terminals", json={"egm_id": "A1", "protocol": "mqtt"})
    assert r.status_code == 403


def test_disabled_account_cannot_log_in_and_its_tokens_die(api, client):
    admin = api.as_("admin")
    tok = api.token("cashier", "carol")
    assert admin.post("/operators/carol/disable").status_code == 200
    assert client.get("/api/v1/terminals", headers={"Authorization": f"Bearer {tok}"}).status_code == 401
    r = client.post("/api/v1/auth/token", json={"username": "carol", "password": PASSWORD})
    assert r.status_code == 401
    assert r.get_json()["error"]["code"] == "account_disabled"


def test_expired_password_may_only_change_password(api, client, host):
    make_operator(host, "dave", "manager")
    with host.db.begin() as s:
        op = s.query(Operator).filter_by(username="dave").one()
        op.password_expires_at = host.now() - dt.timedelta(seconds=1)
    r = client.post("/api/v1/auth/token", json={"username": "dave", "password": PASSWORD})
    assert r.status_code == 200 and r.get_json()["password_expired"] is True
    h = {"Authorization": f"Bearer {r.get_json()['token']}"}
    r2 = client.get("/api/v1/terminals", headers=h)
    assert r2.status_code == 403 and r2.get_json()["error"]["code"] == "password_expired"
    r3 = client.post("/api/v1/operators/dave/password", headers=h, json={"password": "a brand new secret"})
    assert r3.status_code == 200
    assert client.get("/api/v1/terminals", headers=h).status_code == 200


def test_operator_cannot_set_someone_elses_password(api):
    api.token("cashier", "erin")
    r = api.as_("manager").post("/operators/erin/password", json={"password": "another long one"})
    assert r.status_code == 403


def test_passwords_are_argon2_hashed(host):
    make_operator(host, "frank", "cashier")
    with host.db.read() as s:
        stored = s.query(Operator).filter_by(username="frank").one().password_hash
    assert stored.startswith("$argon2") and PASSWORD not in stored
    assert auth.check_password(stored, PASSWORD)


def test_bad_input_is_400_naming_the_field(api):
    admin = api.as_("admin")
    r = admin.post("/operators", json={"username": "x", "role": "wizard", "password": PASSWORD})
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "role"
    r = admin.post("/operators", json={"username": "x", "role": "cashier"})
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "password"
    r = admin.post("/operators", data=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    r = admin.post("/operators", json={"username": "x", "role": "cashier", "password": "short"})
    assert r.status_code == 422


def test_duplicate_operator_409(api):
    admin = api.as_("admin")
    assert admin.post("/operators", json={"username": "gina", "role": "cashier", "password": PASSWORD}).status_code == 201
    assert admin.post("/operators", json={"username": "gina", "role": "cashier", "password": PASSWORD}).status_code == 409
