"""Operator pages: login with a session cookie (CSRF-protected forms), password change, the floor.

Every page checks the same role table as the API (server.auth.PERMISSIONS).
"""
from __future__ import annotations

import functools

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for

from server import auth
from server.errors import DomainError
from server.models import Operator
from server.web.api import host, json_response

pages = Blueprint("pages", __name__, template_folder="../templates", static_folder="../static",
                  static_url_path="/static")


def current_principal() -> auth.Principal | None:
    op_id = session.get("operator_id")
    if op_id is None:
        return None
    h = host()
    with h.db.read() as s:
        op = s.get(Operator, op_id)
        try:
            return auth.principal_for_operator(op, h.now())
        except auth.AuthError:
            session.clear()
            return None


def page(permission: str | None = None, *, json: bool = False):
    """Requires a logged-in operator allowed `permission`; passes the principal as `me`."""

    def deco(fn):
        @functools.wraps(fn)
        def view(*args, **kwargs):
            me = current_principal()
            if me is None:
                if json:
                    return json_response({"error": {"code": "unauthorized", "message": "log in"}}, 401)
                return redirect(url_for("pages.login", next=request.full_path))
            if me.password_expired and fn.__name__ != "password":
                return redirect(url_for("pages.password"))
            if permission and not auth.allowed(me.role, permission):
                if json:
                    return json_response({"error": {"code": "forbidden", "message": "not for your role"}}, 403)
                abort(403)
            try:
                return fn(*args, me=me, **kwargs)
            except DomainError as exc:
                if json or exc.status != 404:
                    raise
                # An id in the path that names nothing: the service said so; the page shows it.
                message = exc.message[:1].upper() + exc.message[1:] + "."
                return render_template("error.html", me=me, message=message), 404

        return view

    return deco


@pages.app_context_processor
def _inject():
    h = host()
    return {"property_name": h.settings.property_name, "allowed": auth.allowed}


@pages.route("/login", methods=["GET", "POST"])
def login():
    error = None
    status = 200
    if request.method == "POST":
        h = host()
        username = request.form.get("username", "")[:64]
        with h.db.begin() as s:
            try:
                result = auth.authenticate(s, h.settings, username, request.form.get("password", "")[:1024],
                                           h.now(), request.remote_addr)
            except auth.AuthError as exc:
                result = None
                error, status = exc.message, exc.status
        if result is not None:
            session.clear()
            session["operator_id"] = result.operator_id
            target = request.args.get("next") or ""
            # Only local paths: an open redirect would make the login page a phishing tool.
            if not target.startswith("/") or target.startswith("//"):
                target = url_for("pages.home")
            return redirect(target)
    return render_template("login.html", error=error), status


@pages.post("/logout")
def logout():
    session.clear()
    return redirect(url_for("pages.login"))


@pages.route("/password", methods=["GET", "POST"])
@page()
def password(me: auth.Principal):
    error = None
    if request.method == "POST":
        h = host()
        new = request.form.get("password", "")
        if new != request.form.get("confirm", ""):
            error = "The two passwords differ."
        else:
            with h.db.begin() as s:
                op = s.get(Operator, me.operator_id)
                if not auth.check_password(op.password_hash, request.form.get("current", "")):
                    error = "The current password is wrong."
                else:
                    try:
                        auth.set_password(s, h.settings, me.actor, me.username, new, h.now())
                    except auth.OperatorError as exc:
                        error = exc.message
            if error is None:
                flash("Password changed.")
                return redirect(url_for("pages.home"))
    return render_template("password.html", me=me, error=error)


@pages.get("/")
@page()
def home(me: auth.Principal):
    return redirect(url_for("floor.floor_page"))
