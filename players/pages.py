"""Player club pages: search and profile for cashiers and managers (players.read); a manager adjusts
points and excludes from the profile (players.manage). Cookie auth and CSRF-protected forms; every
action calls the same service as the API.
"""
from __future__ import annotations

import logging

from flask import Blueprint, flash, redirect, render_template, request, url_for

from players import accounts
from server import auth
from server.errors import DomainError, run_after_rollback
from server.web.api import host
from server.web.pages import page

log = logging.getLogger("floorhost.players")

players_pages = Blueprint("players_pages", __name__, template_folder="../server/templates")


def _money(cents: int) -> str:
    return f"${cents / 100:,.2f}"


def _duration(seconds: int) -> str:
    h, rest = divmod(int(seconds), 3600)
    return f"{h}:{rest // 60:02d}"


@players_pages.app_template_filter("money")
def money_filter(cents):
    return _money(int(cents or 0))


@players_pages.app_template_filter("duration")
def duration_filter(seconds):
    return _duration(seconds or 0)


@players_pages.get("/players")
@page("players.read")
def search_page(me):
    h = host()
    q = (request.args.get("q") or "").strip()[:128]
    results = []
    if q:
        with h.db.read() as s:
            found = accounts.search(s, card_id=None, q=q, limit=100)
            exact = accounts.search(s, card_id=q, limit=1)
            seen = {p.id for p in found}
            found += [p for p in exact if p.id not in seen]
            results = [accounts.profile(s, h.clock, p, h.now(), history=False) for p in found]
    return render_template("players.html", me=me, q=q, results=results)


@players_pages.get("/players/<int:player_id>")
@page("players.read")
def profile_page(me, player_id: int):
    h = host()
    with h.db.read() as s:
        p = accounts.get(s, player_id)
        prof = accounts.profile(s, h.clock, p, h.now())
    return render_template("player.html", me=me, p=prof, manage=auth.allowed(me.role, "players.manage"))


def _act(me, player_id: int, what) -> object:
    h = host()
    try:
        with h.db.begin() as s:
            what(s, h)
    except DomainError as exc:
        run_after_rollback(h.db, exc)
        flash(f"Refused: {exc.message}")
    return redirect(url_for("players_pages.profile_page", player_id=player_id))


@players_pages.post("/players/<int:player_id>/points")
@page("players.manage")
def adjust_page(me, player_id: int):
    raw, reason = request.form.get("delta", "").strip(), request.form.get("reason", "").strip()
    if not raw.lstrip("-").isdigit() or not reason:
        flash("Refused: give a whole number of points and a reason.")
        return redirect(url_for("players_pages.profile_page", player_id=player_id))

    def do(s, h):
        accounts.adjust_points(s, me.actor, player_id, int(raw), reason[:500], h.now())
        flash(f"Points adjusted by {int(raw)}.")

    return _act(me, player_id, do)


@players_pages.post("/players/<int:player_id>/exclusion")
@page("players.manage")
def exclude_page(me, player_id: int):
    until = request.form.get("until", "").strip() or None
    permanent = request.form.get("permanent") == "on"
    reason = request.form.get("reason", "").strip()
    if not reason:
        flash("Refused: a reason is required.")
        return redirect(url_for("players_pages.profile_page", player_id=player_id))

    def do(s, h):
        accounts.exclude(s, h.clock, me.actor, player_id, until=None if permanent else until, permanent=permanent,
                         reason=reason[:500], kind=request.form.get("kind", "self"), now=h.now())
        flash("Exclusion recorded.")

    return _act(me, player_id, do)
