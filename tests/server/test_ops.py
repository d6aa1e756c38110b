"""/healthz, /metrics and the generated OpenAPI document."""
import re

from openapi_spec_validator import validate


def test_healthz_no_auth(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    body = r.get_json()
    assert body["status"] == "ok" and body["db"] == "ok" and "mqtt" in body and "lines" in body


def test_metrics_prometheus_text_from_loopback_only(client):
    r = client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert r.status_code == 200 and r.mimetype == "text/plain"
    assert b"floorhost_gateway_batch_seconds" in r.data
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code == 403


def test_openapi_lists_every_contract_path_and_is_valid(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    validate(doc)
    paths = set(doc["paths"])
    for p in ["/auth/token", "/terminals", "/terminals/{egm_id}", "/terminals/{egm_id}/commands",
              "/terminals/{egm_id}/commands/{command_id}", "/terminals/{egm_id}/events", "/alerts",
              "/alerts/{alert_id}/ack", "/software", "/operators", "/operators/{username}/disable",
              "/operators/{username}/password", "/audit"]:
        assert "/api/v1" + p in paths, p
    # Generated from the code: every registered /api/v1 rule is documented.
    from flask import current_app  # noqa: F401
    rules = {re.sub(r"<(?:[a-z]+:)?(\w+)>", r"{\1}", r.rule) for r in client.application.url_map.iter_rules()
             if r.rule.startswith("/api/v1/") and not r.rule.endswith("openapi.json")}
    assert rules <= paths


def test_unknown_api_path_is_json_404(api):
    r = api.as_("manager").get("/nope")
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "not_found"
