"""Operators, roles and authentication — the one role table every endpoint and page checks.

Pure service code: it takes a database session and plain values and never
sees a request. The web layer (server/web/security.py) turns its answers
into HTTP.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from server import audit
from server.audit import Actor
from server.config import Settings
from server.errors import DomainError
from server.models import ApiToken, LoginFailure, Operator

ROLES = ("cashier", "attendant", "slot_tech", "manager", "auditor", "admin")

# http-api.md "Roles", one permission per row of its table. Docs: docs/roles.md.
PERMISSIONS: dict[str, frozenset[str]] = {
    "terminals.read": frozenset(ROLES),
    "terminals.register": frozenset({"slot_tech", "admin"}),
    "software.approve": frozenset({"slot_tech", "admin"}),
    "packages.create": frozenset({"slot_tech", "admin"}),
    "terminals.command": frozenset({"slot_tech", "manager"}),
    "deployments.manage": frozenset({"manager"}),
    "vouchers.read": frozenset({"cashier", "attendant", "manager", "auditor"}),
    "cage": frozenset({"cashier"}),
    "vouchers.void": frozenset({"manager"}),
    "alerts.ack": frozenset({"manager"}),
    "players.read": frozenset({"cashier", "manager", "auditor"}),
    "players.enrol": frozenset({"cashier", "manager"}),
    "players.manage": frozenset({"manager"}),
    "reports.read": frozenset({"manager", "auditor"}),
    "gamingday.close": frozenset({"manager"}),
    "audit.read": frozenset({"manager", "auditor", "admin"}),
    "operators.manage": frozenset({"admin"}),
}

_hasher = PasswordHasher()


class AuthError(DomainError):
    """Why a login or a token was refused; `status` is the HTTP status it maps to."""

    def __init__(self, code: str, message: str, status: int = 401):
        super().__init__(message, code=code, status=status)


class OperatorError(DomainError):
    def __init__(self, code: str, message: str, status: int = 409, field: str | None = None):
        super().__init__(message, code=code, status=status, field=field)


def allowed(role: str, permission: str) -> bool:
    return role in PERMISSIONS[permission]


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def _check_policy(settings: Settings, password: str) -> None:
    if len(password) < settings.password_min_length:
        raise OperatorError("password_too_short", f"passwords need at least {settings.password_min_length} characters",
                            status=422, field="password")


def operator_dict(op: Operator) -> dict:
    return {
        "username": op.username, "role": op.role, "active": op.active,
        "password_expires_at": op.password_expires_at.isoformat().replace("+00:00", "Z"),
    }


def create_operator(session: Session, settings: Settings, actor: Actor, username: str, role: str,
                    password: str, now: dt.datetime) -> Operator:
    if role not in ROLES:
        raise OperatorError("bad_role", f"role must be one of {', '.join(ROLES)}", status=400, field="role")
    _check_policy(settings, password)
    if session.execute(select(Operator.id).where(Operator.username == username)).first():
        raise OperatorError("operator_exists", f"operator {username!r} already exists")
    op = Operator(username=username, role=role, password_hash=hash_password(password), active=True,
                  password_changed_at=now,
                  password_expires_at=now + dt.timedelta(days=settings.password_max_age_days),
                  created_at=now)
    session.add(op)
    session.flush()
    audit.append(session, actor, "operator.create", f"operator:{username}", None, operator_dict(op), at=now)
    return op


def get_operator(session: Session, username: str) -> Operator:
    op = session.execute(select(Operator).where(Operator.username == username)).scalar_one_or_none()
    if op is None:
        raise OperatorError("operator_not_found", f"no operator {username!r}", status=404)
    return op


def disable_operator(session: Session, actor: Actor, username: str, now: dt.datetime) -> Operator:
    op = get_operator(session, username)
    before = operator_dict(op)
    op.active = False
    session.execute(update(ApiToken).where(ApiToken.operator_id == op.id).values(revoked=True))
    audit.append(session, actor, "operator.disable", f"operator:{username}", before, operator_dict(op), at=now)
    return op


def set_password(session: Session, settings: Settings, actor: Actor, username: str, password: str,
                 now: dt.datetime) -> Operator:
    _check_policy(settings, password)
    op = get_operator(session, username)
    before = operator_dict(op)
    op.password_hash = hash_password(password)
    op.password_changed_at = now
    # A new password is good for the full period again (rules.md 27).
    op.password_expires_at = now + dt.timedelta(days=settings.password_max_age_days)
    op.locked_until = None
    audit.append(session, actor, "operator.password", f"operator:{username}", before, operator_dict(op), at=now)
    return op


@dataclass(frozen=True)
class LoginResult:
    operator_id: int
    username: str
    role: str
    password_expired: bool


def authenticate(session: Session, settings: Settings, username: str, password: str, now: dt.datetime,
                 remote_addr: str | None = None) -> LoginResult:
    """Checks a password with lockout; the caller must commit even when this raises (failures count)."""
    op = session.execute(select(Operator).where(Operator.username == username)).scalar_one_or_none()
    if op is not None and op.locked_until is not None and op.locked_until > now:
        raise AuthError("account_locked", "too many failed logins; the account is locked for now", 429)
    if op is None or not check_password(op.password_hash, password):
        if record_failure(session, settings, username, now, remote_addr):
            raise AuthError("account_locked", "too many failed logins; the account is locked for now", 429)
        raise AuthError("bad_credentials", "wrong username or password", 401)
    if not op.active:
        raise AuthError("account_disabled", "this account is disabled", 401)
    return LoginResult(op.id, op.username, op.role, op.password_expires_at <= now)


def record_failure(session: Session, settings: Settings, username: str, now: dt.datetime,
                   remote_addr: str | None = None) -> bool:
    """Counts a failed password (a login, or a second signer at the cage); True when it locks the account."""
    session.add(LoginFailure(username=username, at=now, remote_addr=remote_addr))
    session.flush()
    since = now - dt.timedelta(minutes=settings.login_window_minutes)
    failures = session.execute(
        select(func.count()).select_from(LoginFailure)
        .where(LoginFailure.username == username, LoginFailure.at > since)
    ).scalar_one()
    op = session.execute(select(Operator).where(Operator.username == username)).scalar_one_or_none()
    if op is not None and failures > settings.login_max_failures:
        op.locked_until = now + dt.timedelta(minutes=settings.lockout_minutes)
        audit.append(session, audit.SYSTEM, "operator.lock", f"operator:{username}",
                     None, {"locked_until": op.locked_until.isoformat(), "failures": failures}, at=now)
        return True
    return False


def issue_token(session: Session, settings: Settings, operator_id: int, now: dt.datetime) -> tuple[str, dt.datetime]:
    token = secrets.token_urlsafe(32)
    expires = now + dt.timedelta(minutes=settings.token_ttl_minutes)
    session.add(ApiToken(token_hash=_token_hash(token), operator_id=operator_id, created_at=now, expires_at=expires))
    return token, expires


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Principal:
    """The operator behind a request."""

    operator_id: int
    username: str
    role: str
    password_expired: bool

    @property
    def actor(self) -> Actor:
        return Actor(self.username, self.role)


def principal_for_token(session: Session, token: str, now: dt.datetime) -> Principal:
    row = session.execute(
        select(ApiToken, Operator).join(Operator, Operator.id == ApiToken.operator_id)
        .where(ApiToken.token_hash == _token_hash(token))
    ).first()
    if row is None:
        raise AuthError("bad_token", "unknown token", 401)
    tok, op = row
    if tok.revoked or tok.expires_at <= now:
        raise AuthError("token_expired", "token expired or revoked", 401)
    return principal_for_operator(op, now)


def principal_for_operator(op: Operator | None, now: dt.datetime) -> Principal:
    if op is None or not op.active:
        raise AuthError("account_disabled", "this account is disabled", 401)
    return Principal(op.id, op.username, op.role, op.password_expires_at <= now)
