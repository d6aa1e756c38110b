"""Operations endpoints: /healthz, /metrics (Prometheus) and the generated OpenAPI document."""
from __future__ import annotations

import ipaddress
import re

from flask import Blueprint, Response, request
from sqlalchemy import text

from server.web.api import ROUTES, host, json_response

ops = Blueprint("ops", __name__)


@ops.get("/healthz")
def healthz():
    h = host()
    try:
        with h.db.read() as s:
            s.execute(text("SELECT 1"))
        db = "ok"
    except Exception as exc:  # health must answer even when the database does not
        db = f"error: {exc.__class__.__name__}"
    gateway = h.components.get("gateway")
    mqtt = {"url": h.broker_url or h.settings.mqtt_url,
            "connected": bool(gateway and getattr(gateway, "connected", False))}
    lines = {name: poller.health() for name, poller in h.components.get("sas_lines", {}).items()} \
        if h.components.get("sas_lines") else {}
    status = "ok" if db == "ok" else "degraded"
    return json_response({"status": status, "db": db, "mqtt": mqtt, "lines": lines}, 200 if db == "ok" else 503)


@ops.get("/metrics")
def metrics():
    h = host()
    remote = request.remote_addr or ""
    try:
        addr = ipaddress.ip_address(remote)
        allowed = any(addr in ipaddress.ip_network(n) for n in h.settings.metrics_networks)
    except ValueError:
        allowed = False
    if not allowed:
        return json_response({"error": {"code": "forbidden", "message": "metrics are served to configured networks only"}}, 403)
    return Response(h.metrics.render(), mimetype="text/plain; version=0.0.4")


_PARAM = re.compile(r"<(?:[a-z]+:)?([a-zA-Z_]+)>")


def openapi_document() -> dict:
    paths: dict[str, dict] = {}
    for r in ROUTES:
        path = "/api/v1" + _PARAM.sub(r"{\1}", r["rule"])
        item = paths.setdefault(path, {})
        params = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                  for p in _PARAM.findall(r["rule"])]
        params += [{"name": q, "in": "query", "required": False, "schema": {"type": "string"}, "description": d}
                   for q, d in r["query"].items()]
        for method in r["methods"]:
            op = {
                "summary": r["summary"],
                "parameters": params,
                "responses": {str(r["status"]): {"description": "success",
                                                 **({"content": {"application/json": {"schema": r["response"]}}}
                                                    if r["response"] else {})},
                              "400": {"description": "input does not fit the schema"},
                              "401": {"description": "no or bad token"},
                              "403": {"description": "role may not do this"}},
            }
            if r["public"]:
                op["security"] = []
            if r["permission"]:
                op["x-permission"] = r["permission"]
            if r["schema"] is not None:
                op["requestBody"] = {"required": True, "content": {"application/json": {"schema": r["schema"]}}}
            if r["idempotent"]:
                op["parameters"] = params + [{"name": "Idempotency-Key", "in": "header", "required": False,
                                              "schema": {"type": "string"}}]
            item[method.lower()] = op
    return {
        "openapi": "3.1.0",  # 3.1: request schemas are plain JSON Schema 2020-12, as validated
        "info": {"title": "Floorhost API", "version": "1"},
        "servers": [{"url": "/"}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": dict(sorted(paths.items())),
    }


@ops.get("/api/v1/openapi.json")
def openapi():
    return json_response(openapi_document())
