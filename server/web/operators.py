"""API: tokens, operators and the audit log."""
from __future__ import annotations

from sqlalchemy import select

from server import audit, auth
from server.models import AuditEntry
from server.web.api import ApiError, Call, allow_expired_password, endpoint, host, int_arg

USERNAME = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_.@-]+$"}

TOKEN_SCHEMA = {"type": "object", "required": ["username", "password"], "additionalProperties": True,
                "properties": {"username": {"type": "string", "maxLength": 64}, "password": {"type": "string", "maxLength": 1024}}}


@endpoint("/auth/token", ("POST",), public=True, schema=TOKEN_SCHEMA,
          response={"type": "object", "properties": {"token": {"type": "string"}, "role": {"type": "string"},
                                                     "expires_at": {"type": "string"}}})
def token(call: Call):
    """Exchange a username and password for a bearer token."""
    h = call.host
    now = h.now()
    try:
        result = auth.authenticate(call.session, h.settings, call.body["username"], call.body["password"], now)
    except auth.AuthError as exc:
        # Returned, not raised: the failure count must be committed with the refusal.
        return {"error": {"code": exc.code, "message": exc.message}}, exc.status
    tok, expires = auth.issue_token(call.session, h.settings, result.operator_id, now)
    return {"token": tok, "role": result.role, "expires_at": expires.isoformat().replace("+00:00", "Z"),
            "password_expired": result.password_expired}


@endpoint("/operators", permission="operators.manage")
def list_operators(call: Call):
    """List operators."""
    from server.models import Operator

    ops = call.session.execute(select(Operator).order_by(Operator.username)).scalars()
    return [auth.operator_dict(o) for o in ops]


@endpoint("/operators", ("POST",), permission="operators.manage", status=201, schema={
    "type": "object", "required": ["username", "role", "password"],
    "properties": {"username": USERNAME, "role": {"type": "string", "enum": list(auth.ROLES)},
                   "password": {"type": "string", "maxLength": 1024}}})
def create_operator(call: Call):
    """Create an operator account."""
    op = auth.create_operator(call.session, call.host.settings, call.actor, call.body["username"],
                              call.body["role"], call.body["password"], call.host.now())
    return auth.operator_dict(op)


@endpoint("/operators/<username>/disable", ("POST",), permission="operators.manage")
def disable_operator(call: Call, username: str):
    """Disable an operator account (accounts are never deleted)."""
    return auth.operator_dict(auth.disable_operator(call.session, call.actor, username, call.host.now()))


@allow_expired_password
@endpoint("/operators/<username>/password", ("POST",), schema={
    "type": "object", "required": ["password"], "properties": {"password": {"type": "string", "maxLength": 1024}}})
def set_password(call: Call, username: str):
    """Set a password: an admin for anyone, an operator for their own account."""
    if not (auth.allowed(call.principal.role, "operators.manage") or call.principal.username == username):
        raise ApiError("only an admin may set another operator's password", code="forbidden", status=403)
    return auth.operator_dict(auth.set_password(call.session, call.host.settings, call.actor, username,
                                                call.body["password"], call.host.now()))


@endpoint("/audit", permission="audit.read", query={"since": "RFC 3339 instant, inclusive", "actor": "username",
                                                    "after_id": "id, exclusive", "limit": "default 100, at most 1000"})
def list_audit(call: Call):
    """Read the audit log, oldest first."""
    from server.web.params import parse_instant

    q = select(AuditEntry).order_by(AuditEntry.id)
    if "since" in call.args:
        q = q.where(AuditEntry.at >= parse_instant(call.args["since"], "since"))
    if "actor" in call.args:
        q = q.where(AuditEntry.actor == call.args["actor"])
    if "after_id" in call.args:
        q = q.where(AuditEntry.id > int_arg(call, "after_id", 0, 0, 2**62))
    q = q.limit(int_arg(call, "limit", 100, 1, 1000))
    return [audit.to_dict(e) for e in call.session.execute(q).scalars()]
