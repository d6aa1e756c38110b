"""The /api/v1 machinery: one decorator that authenticates, checks the role table, validates the
body against its JSON schema, runs the view in a transaction, replays idempotent money POSTs,
and runs after-commit actions (messages to terminals) only once the commit is done.

Views stay thin: they read `call.body`, call one service with `call.session`, and return a dict.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import jsonschema
from flask import Blueprint, Response, current_app, g, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server import auth
from server.errors import DomainError, run_after_rollback
from server.host import Host
from server.models import IdempotencyRecord

log = logging.getLogger("floorhost.api")

api = Blueprint("api", __name__, url_prefix="/api/v1")

# Every route's contract, read by the OpenAPI generator (server/web/openapi.py).
ROUTES: list[dict[str, Any]] = []

_validator_cache: dict[int, jsonschema.protocols.Validator] = {}


def host() -> Host:
    return current_app.extensions["floorhost"]


class ApiError(DomainError):
    pass


def error_response(status: int, code: str, message: str, field: str | None = None) -> Response:
    err: dict[str, Any] = {"code": code, "message": message}
    if field:
        err["field"] = field
    return json_response({"error": err}, status)


def json_response(obj: Any, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(obj, default=str), status=status, mimetype="application/json", headers=headers)


@dataclass
class Call:
    """What a view gets: who calls, the validated body, the query args, a session, after-commit hooks."""

    principal: auth.Principal | None
    body: Any
    args: dict[str, str]
    session: Session
    host: Host
    after_commit: list[Callable[[], None]] = field(default_factory=list)

    @property
    def actor(self):
        return self.principal.actor


def _bearer(h: Host) -> auth.Principal:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer ") or not header[7:].strip():
        raise auth.AuthError("unauthorized", "missing bearer token", 401)
    with h.db.read() as s:
        return auth.principal_for_token(s, header[7:].strip(), h.now())


def _validate(schema: dict, body: Any) -> None:
    v = _validator_cache.get(id(schema))
    if v is None:
        v = jsonschema.Draft202012Validator(schema)
        _validator_cache[id(schema)] = v
    errors = sorted(v.iter_errors(body), key=lambda e: (len(e.path), list(map(str, e.path))))
    if errors:
        e = errors[0]
        path = ".".join(str(p) for p in e.absolute_path)
        if e.validator == "required":
            missing = e.message.split("'")[1] if "'" in e.message else ""
            path = ".".join(filter(None, [path, missing]))
        if e.validator == "minimum" and isinstance(e.instance, int) and e.instance < 0:
            raise ApiError(f"{path or 'value'} must not be negative", code="negative_amount", status=400, field=path)
        raise ApiError(f"{path or 'body'}: {e.message}", code="invalid_input", status=400, field=path or None)


def endpoint(rule: str, methods: tuple[str, ...] = ("GET",), *, permission: str | None = None,
             schema: dict | None = None, status: int = 200, summary: str | None = None,
             idempotent: bool = False, public: bool = False, query: dict[str, str] | None = None,
             response: dict | None = None):
    """Registers a JSON view; the view is `fn(call, **path_args) -> dict | list | (obj, status)`."""

    def deco(fn: Callable[..., Any]):
        @functools.wraps(fn)
        def view(**path_args):
            h = host()
            try:
                principal = None
                if not public:
                    principal = _bearer(h)
                    if principal.password_expired and not getattr(fn, "allow_expired_password", False):
                        raise ApiError("password expired: change it first", code="password_expired", status=403)
                    if request.method != "GET" and principal.role == "auditor":
                        raise ApiError("auditors read only", code="forbidden", status=403)
                    if permission and not auth.allowed(principal.role, permission):
                        raise ApiError(f"role {principal.role} may not do this", code="forbidden", status=403)
                body = None
                if schema is not None:
                    raw = request.get_data(cache=True)
                    try:
                        body = json.loads(raw or b"null")
                    except (ValueError, UnicodeDecodeError):
                        raise ApiError("body is not valid JSON", code="invalid_json", status=400) from None
                    _validate(schema, body)
                g.principal = principal
                return _run(h, fn, principal, body, path_args)
            except DomainError as exc:
                if exc.status == 400:
                    h.metrics.http_bad_input.labels(exc.code).inc()
                run_after_rollback(h.db, exc)
                return error_response(exc.status, exc.code, exc.message, exc.field)

        view._floorhost = True  # type: ignore[attr-defined]
        endpoint_name = f"{fn.__module__.replace('.', '_')}_{fn.__name__}"
        api.add_url_rule(rule, endpoint=endpoint_name, view_func=view, methods=list(methods))
        ROUTES.append({"rule": rule, "methods": methods, "permission": permission, "schema": schema,
                       "status": status, "summary": summary or (fn.__doc__ or fn.__name__).strip().splitlines()[0],
                       "public": public, "idempotent": idempotent, "query": query or {}, "response": response})
        return fn

    def _run(h: Host, fn, principal, body, path_args):
        readonly = request.method == "GET"
        key = request.headers.get("Idempotency-Key") if idempotent else None
        after: list[Callable[[], None]] = []
        after_refusal = None
        session_cm = h.db.read() if readonly else h.db.begin()
        with session_cm as s:
            call = Call(principal, body, request.args.to_dict(), s, h, after)
            if key:
                replay = _claim_idempotency(s, principal.username, key)
                if replay is not None:
                    return replay
            try:
                if key:
                    with s.begin_nested():
                        result = fn(call, **path_args)
                else:
                    result = fn(call, **path_args)
                resp_status, resp_body = _shape(result, status)
            except DomainError as exc:
                if not key:
                    raise
                call.after_commit.clear()
                after_refusal = exc
                resp_status, resp_body = exc.status, {"error": {"code": exc.code, "message": exc.message, **({"field": exc.field} if exc.field else {})}}
            if key:
                s.execute(IdempotencyRecord.__table__.update()
                          .where(IdempotencyRecord.operator == principal.username, IdempotencyRecord.key == key)
                          .values(status=resp_status, body=json.dumps(resp_body, default=str)))
        # The transaction is committed here: only now may terminals be told.
        if after_refusal is not None:
            run_after_rollback(h.db, after_refusal)
        for action in after:
            try:
                action()
            except Exception:  # a failed publish must not turn a committed change into an error
                log.exception("after-commit action failed")
        if isinstance(resp_body, Response):  # a view that renders its own body (a report file)
            return resp_body
        return json_response(resp_body, resp_status)

    def _claim_idempotency(s: Session, username: str, key: str):
        digest = hashlib.sha256(request.method.encode() + request.path.encode() + b"\0" + request.get_data(cache=True)).hexdigest()
        existing = s.execute(select(IdempotencyRecord).where(IdempotencyRecord.operator == username,
                                                             IdempotencyRecord.key == key)).scalar_one_or_none()
        if existing is None:
            try:
                with s.begin_nested():
                    s.add(IdempotencyRecord(operator=username, key=key, request_hash=digest, status=0, body="null"))
            except IntegrityError:
                existing = s.execute(select(IdempotencyRecord).where(IdempotencyRecord.operator == username,
                                                                     IdempotencyRecord.key == key)).scalar_one()
            else:
                return None
        if existing.request_hash != digest:
            raise ApiError("this Idempotency-Key was used with a different request", code="idempotency_key_reused",
                           status=409)
        return json_response(json.loads(existing.body), existing.status, {"Idempotent-Replay": "true"})

    return deco


def _shape(result: Any, default_status: int) -> tuple[int, Any]:
    if isinstance(result, tuple):
        return result[1], result[0]
    return default_status, result


def allow_expired_password(fn):
    """Marks a view an operator with an expired password may still use (changing it)."""
    fn.allow_expired_password = True
    return fn


def int_arg(call: Call, name: str, default: int, lo: int, hi: int) -> int:
    raw = call.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(f"{name} must be an integer", code="invalid_input", status=400, field=name) from None
    if not lo <= value <= hi:
        raise ApiError(f"{name} must be between {lo} and {hi}", code="invalid_input", status=400, field=name)
    return value
