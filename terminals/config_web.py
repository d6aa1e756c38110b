"""Game configuration: the /api/v1 routes of http-api.md (packages, public key, deployments) and the pages
(catalog, package detail, deployment wizard, live progress). Thin: every rule is in the services."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from server import auth
from server.errors import DomainError
from server.web.api import Call, endpoint, host, json_response
from server.web.pages import page
from server.web.params import parse_instant
from terminals import deploy_steps, deployments, packages, registry

config_pages = Blueprint("config", __name__, template_folder="../server/templates")

GAME = {
    "type": "object", "required": list(packages.GAME_KEYS), "additionalProperties": False,
    "properties": {
        "theme": {"type": "string", "minLength": 1, "maxLength": 128},
        "paytable_id": {"type": "string", "minLength": 1, "maxLength": 64},
        "rtp_bp": {"type": "integer", "minimum": 0, "maximum": 10000},
        "denoms_cents": {"type": "array", "minItems": 1, "maxItems": 32,
                         "items": {"type": "integer", "minimum": 1, "maximum": 10_000_000}},
        "max_bet_cents": {"type": "integer", "minimum": 1, "maximum": 100_000_000},
    },
}
PACKAGE_SCHEMA = {
    "type": "object", "required": ["name", "version", "games"], "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 128},
        "version": {"type": "string", "minLength": 1, "maxLength": 64},
        "games": {"type": "array", "minItems": 1, "maxItems": 64, "items": GAME},
        "settings": {"type": "object", "maxProperties": 200},
    },
}
SELECTOR = {"oneOf": [
    {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$"},
    {"type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": False,
     "properties": {k: {"type": "string", "minLength": 1, "maxLength": 128} for k in deployments.SELECTOR_KEYS}},
]}
DEPLOYMENT_SCHEMA = {
    "type": "object", "required": ["package_id", "terminals", "apply"], "additionalProperties": False,
    "properties": {
        "package_id": {"type": "integer", "minimum": 1},
        "terminals": {"type": "array", "minItems": 1, "maxItems": 10_000, "items": SELECTOR},
        "apply": {"type": "string", "enum": list(deployments.APPLY)},
        "start_at": {"type": "string", "maxLength": 40},
        "deadline_s": {"type": "integer", "minimum": 10, "maximum": 7 * 86400},
    },
}


def _limits(h) -> packages.Limits:
    return packages.Limits(h.settings.rtp_min_bp, h.settings.rtp_max_bp)


@endpoint("/config-packages", permission="terminals.read")
def list_packages(call: Call):
    """The catalog: every stored package, newest first (without the package document)."""
    return [packages.to_dict(p, full=False) for p in packages.list_all(call.session)]


@endpoint("/config-packages", ("POST",), permission="packages.create", schema=PACKAGE_SCHEMA, status=201)
def create_package(call: Call):
    """Store an immutable, signed package; an RTP outside the jurisdiction's limits is refused (422)."""
    b = call.body
    p = packages.create(call.session, call.actor, call.host.signer, _limits(call.host), b["name"], b["version"],
                        b["games"], b.get("settings") or {}, call.host.now())
    return {"id": p.id, "sha256": p.sha256, "signature": p.signature}


@endpoint("/config-packages/public-key", permission="terminals.read")
def public_key(call: Call):
    """The host's Ed25519 public key that verifies package signatures."""
    return {"algorithm": "ed25519", "public_key": call.host.signer.public_key_b64}


@endpoint("/config-packages/<int:package_id>", permission="terminals.read")
def get_package(call: Call, package_id: int):
    """One package with its sha256, signature and the document exactly as it is pushed."""
    p = packages.get(call.session, package_id)
    return {"id": p.id, "sha256": p.sha256, "signature": p.signature, "package": packages.document(p)}


def _start_at(raw):
    return parse_instant(raw, "start_at") if raw else None


@endpoint("/deployments", ("POST",), permission="deployments.manage", schema=DEPLOYMENT_SCHEMA, status=201)
def create_deployment(call: Call):
    """Deploy a package to terminals (ids, banks, zones, models), idle or now, optionally at start_at."""
    b = call.body
    d = deployments.create(call.session, call.actor, b["package_id"], b["terminals"], b["apply"], call.host.now(),
                           start_at=_start_at(b.get("start_at")),
                           deadline_s=b.get("deadline_s", deployments.DEFAULT_DEADLINE_S))
    h = call.host
    call.after_commit.append(lambda: deploy_steps.pump(h))
    return {"id": d.id}


@endpoint("/deployments", permission="terminals.read")
def list_deployments(call: Call):
    """Recent deployments, newest first, with per-state counts."""
    return [deployments.to_dict(call.session, d) for d in deployments.list_all(call.session, 100)]


@endpoint("/deployments/<int:deployment_id>", permission="terminals.read")
def get_deployment(call: Call, deployment_id: int):
    """A deployment and each terminal's state, time and reason."""
    return deployments.to_dict(call.session, deployments.get(call.session, deployment_id))


@endpoint("/deployments/<int:deployment_id>/cancel", ("POST",), permission="deployments.manage")
def cancel_deployment(call: Call, deployment_id: int):
    """Cancel what is not yet installed."""
    d = deployments.cancel(call.session, call.actor, deployment_id, call.host.now())
    return deployments.to_dict(call.session, d)


# ---- pages ------------------------------------------------------------------------------------

@config_pages.get("/config")
@page("terminals.read")
def catalog_page(me):
    h = host()
    with h.db.read() as s:
        rows = [packages.to_dict(p) for p in packages.list_all(s)]
        recent = [deployments.to_dict(s, d) for d in deployments.list_all(s, 20)]
    return render_template("config_catalog.html", me=me, packages=rows, deployments=recent,
                           limits=_limits(h), can_create=auth.allowed(me.role, "packages.create"),
                           can_deploy=auth.allowed(me.role, "deployments.manage"))


@config_pages.post("/config/packages")
@page("packages.create")
def create_package_page(me):
    """The catalog form: one game per package from the page (the API takes many)."""
    h = host()
    f = request.form
    try:
        game = {"theme": f.get("theme", ""), "paytable_id": f.get("paytable_id", ""),
                "rtp_bp": int(f.get("rtp_bp") or -1),
                "denoms_cents": [int(x) for x in f.get("denoms_cents", "").replace(" ", "").split(",") if x],
                "max_bet_cents": int(f.get("max_bet_cents") or 0)}
    except ValueError:
        flash("RTP, denominations and max bet must be whole numbers.")
        return redirect(url_for("config.catalog_page"))
    try:
        with h.db.begin() as s:
            p = packages.create(s, me.actor, h.signer, _limits(h), f.get("name", ""), f.get("version", ""), [game],
                                {}, h.now())
            pid = p.id
    except DomainError as exc:
        flash(f"Not stored: {exc.message}")
        return redirect(url_for("config.catalog_page"))
    flash(f"Package {pid} stored and signed.")
    return redirect(url_for("config.package_page", package_id=pid))


@config_pages.get("/config/packages/<int:package_id>")
@page("terminals.read")
def package_page(me, package_id: int):
    h = host()
    with h.db.read() as s:
        p = packages.to_dict(packages.get(s, package_id))
        terminals = [{"egm_id": t.egm_id, "protocol": t.protocol, "state": t.state, "model": t.model,
                      "bank": (t.location or {}).get("bank"), "zone": (t.location or {}).get("zone")}
                     for t in registry.list_all(s)]
    return render_template("config_package.html", me=me, p=p, terminals=terminals,
                           public_key=h.signer.public_key_b64,
                           can_deploy=auth.allowed(me.role, "deployments.manage"))


@config_pages.post("/config/deployments")
@page("deployments.manage")
def create_deployment_page(me):
    """The wizard's last step: the chosen package, terminals (ids, banks, zones, models), apply, start."""
    h = host()
    f = request.form
    selectors: list = list(f.getlist("egm_id"))
    for key in ("bank", "zone", "model"):
        selectors += [{key: v} for v in f.getlist(key) if v]
    try:
        package_id = int(f.get("package_id", ""))
        start_at = parse_instant(f["start_at"], "start_at") if f.get("start_at") else None
        with h.db.begin() as s:
            d = deployments.create(s, me.actor, package_id, selectors, f.get("apply", "idle"), h.now(),
                                   start_at=start_at)
            did = d.id
    except (DomainError, ValueError) as exc:
        flash(f"Not deployed: {getattr(exc, 'message', 'bad input')}")
        return redirect(request.referrer or url_for("config.catalog_page"))
    deploy_steps.pump(h)
    return redirect(url_for("config.deployment_page", deployment_id=did))


@config_pages.get("/config/deployments/<int:deployment_id>")
@page("terminals.read")
def deployment_page(me, deployment_id: int):
    h = host()
    with h.db.read() as s:
        d = deployments.to_dict(s, deployments.get(s, deployment_id))
    return render_template("config_deployment.html", me=me, d=d,
                           can_deploy=auth.allowed(me.role, "deployments.manage"))


@config_pages.get("/config/deployments/<int:deployment_id>/data.json")
@page("terminals.read", json=True)
def deployment_data(me, deployment_id: int):
    h = host()
    with h.db.read() as s:
        try:
            return json_response(deployments.to_dict(s, deployments.get(s, deployment_id)))
        except DomainError as exc:
            return json_response({"error": {"code": exc.code, "message": exc.message}}, exc.status)


@config_pages.post("/config/deployments/<int:deployment_id>/cancel")
@page("deployments.manage")
def cancel_deployment_page(me, deployment_id: int):
    h = host()
    try:
        with h.db.begin() as s:
            deployments.cancel(s, me.actor, deployment_id, h.now())
        flash(f"Deployment {deployment_id} cancelled.")
    except DomainError as exc:
        flash(f"Not cancelled: {exc.message}")
    return redirect(url_for("config.deployment_page", deployment_id=deployment_id))



