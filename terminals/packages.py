"""The catalog of config packages (rules.md 24): games and terminal settings, immutable, hashed and signed.

A package is the document `{"name","version","games":[…],"settings":{…}}`; its identity is the
sha256 of its canonical JSON (protocols.mqtt.canonical), signed with the host's Ed25519 key over
the 32 raw digest bytes. The canonical text is stored and pushed as is; nothing ever updates it.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from protocols.mqtt.canonical import canonical_json
from server import audit
from server.audit import Actor
from server.db import iso_z as _iso
from server.errors import Conflict, InvalidInput, NotFound, RuleViolation
from terminals.config_models import ConfigPackage

GAME_KEYS = ("theme", "paytable_id", "rtp_bp", "denoms_cents", "max_bet_cents")



@dataclass(frozen=True)
class Limits:
    """The jurisdiction's RTP limits, inclusive, in basis points."""

    rtp_min_bp: int
    rtp_max_bp: int


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def build_document(name: str, version: str, games: list, settings: dict, limits: Limits) -> dict:
    """Checks a package and returns its document; RTP outside the limits is a 422 (rules.md 24)."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("name is required", code="invalid_input", field="name")
    if not isinstance(version, str) or not version.strip():
        raise InvalidInput("version is required", code="invalid_input", field="version")
    if not isinstance(games, list) or not games:
        raise InvalidInput("a package needs at least one game", code="invalid_input", field="games")
    if not isinstance(settings, dict):
        raise InvalidInput("settings must be an object", code="invalid_input", field="settings")
    clean = []
    for i, g in enumerate(games):
        where = f"games.{i}"
        if not isinstance(g, dict):
            raise InvalidInput(f"{where} must be an object", code="invalid_input", field=where)
        if not isinstance(g.get("theme"), str) or not g["theme"]:
            raise InvalidInput(f"{where}.theme is required", code="invalid_input", field=f"{where}.theme")
        if not isinstance(g.get("paytable_id"), str) or not g["paytable_id"]:
            raise InvalidInput(f"{where}.paytable_id is required", code="invalid_input", field=f"{where}.paytable_id")
        rtp = g.get("rtp_bp")
        if not _is_int(rtp):
            raise InvalidInput(f"{where}.rtp_bp must be an integer (basis points)", code="invalid_input",
                               field=f"{where}.rtp_bp")
        if not limits.rtp_min_bp <= rtp <= limits.rtp_max_bp:
            raise RuleViolation(f"{where}.rtp_bp {rtp} is outside the jurisdiction's limits "
                                f"{limits.rtp_min_bp}-{limits.rtp_max_bp} bp", code="rtp_out_of_limits",
                                field=f"{where}.rtp_bp")
        denoms = g.get("denoms_cents")
        if not isinstance(denoms, list) or not denoms or not all(_is_int(d) and d > 0 for d in denoms) \
                or len(set(denoms)) != len(denoms):
            raise InvalidInput(f"{where}.denoms_cents must be distinct positive integers", code="invalid_input",
                               field=f"{where}.denoms_cents")
        max_bet = g.get("max_bet_cents")
        if not _is_int(max_bet) or max_bet <= 0:
            raise InvalidInput(f"{where}.max_bet_cents must be a positive integer", code="invalid_input",
                               field=f"{where}.max_bet_cents")
        clean.append({k: g[k] for k in GAME_KEYS})
    doc = {"name": name, "version": version, "games": clean, "settings": settings}
    try:
        canonical_json(doc)
    except ValueError as exc:  # floats, lone surrogates: no canonical bytes
        raise InvalidInput(f"package has no canonical JSON: {exc}", code="invalid_input", field="settings") from None
    return doc


def create(session: Session, actor: Actor, signer, limits: Limits, name: str, version: str, games: list,
           settings: dict, now: dt.datetime) -> ConfigPackage:
    doc = build_document(name, version, games, settings, limits)
    canonical = canonical_json(doc)
    sha = hashlib.sha256(canonical).hexdigest()
    existing = session.execute(select(ConfigPackage.id).where(ConfigPackage.sha256 == sha)).scalar()
    if existing is not None:
        raise Conflict(f"this package is already stored as {existing}", code="package_exists")
    if session.execute(select(ConfigPackage.id).where(ConfigPackage.name == name,
                                                      ConfigPackage.version == version)).first():
        raise Conflict(f"{name} {version} exists with other content; packages are immutable: use a new version",
                       code="package_version_exists", field="version")
    row = ConfigPackage(name=name, version=version, sha256=sha, signature=signer.sign_digest(sha),
                        canonical=canonical.decode("utf-8"), created_by=actor.username, created_at=now)
    session.add(row)
    session.flush()
    session.info.pop(_RTP_KEY, None)
    audit.append(session, actor, "config_package.create", f"config_package:{row.id}", None,
                 {"id": row.id, "name": name, "version": version, "sha256": sha}, at=now)
    return row


def get(session: Session, package_id: int) -> ConfigPackage:
    row = session.get(ConfigPackage, package_id)
    if row is None:
        raise NotFound(f"no config package {package_id}", code="package_not_found")
    return row


def list_all(session: Session) -> list[ConfigPackage]:
    return list(session.execute(select(ConfigPackage).order_by(ConfigPackage.id.desc())).scalars())


def document(p: ConfigPackage) -> dict:
    """The package exactly as it is pushed (its canonical JSON, parsed)."""
    return json.loads(p.canonical)


def push_body(p: ConfigPackage, deployment_id: int, apply: str) -> dict:
    """The body of a `config.push` (terminal-mqtt.md)."""
    return {"deployment_id": deployment_id, "package": document(p), "sha256": p.sha256, "signature": p.signature,
            "apply": apply}


def to_dict(p: ConfigPackage, *, full: bool = True) -> dict:
    d = {"id": p.id, "sha256": p.sha256, "signature": p.signature, "name": p.name, "version": p.version,
         "created_by": p.created_by, "created_at": _iso(p.created_at)}
    if full:
        d["package"] = document(p)
    return d


# paytable_id → RTP (bp) from the catalog. Packages are immutable, so the map only changes when one is
# added: it is rebuilt when the highest package id moves (one indexed query per call otherwise).
_rtp_cache: dict = {"key": None, "map": {}}
_RTP_KEY = "packages.rtp"  # the map, cached on the session; create() drops it


def paytable_rtp_bp(session: Session, paytable_ids=None) -> dict[str, int]:
    """RTP in basis points of each paytable in the catalog (the newest package that names it wins);
    paytables no package names are absent — callers choose their documented default."""
    table = session.info.get(_RTP_KEY)
    if table is None:  # once per session (a gateway batch, a request): the per-game path asks often
        from sqlalchemy import func

        key = (session.get_bind().url.render_as_string(hide_password=True),
               session.execute(select(func.max(ConfigPackage.id))).scalar())
        if _rtp_cache["key"] != key:
            rtp: dict[str, int] = {}
            for (canonical,) in session.execute(select(ConfigPackage.canonical).order_by(ConfigPackage.id.desc())):
                for game in json.loads(canonical).get("games", []):
                    rtp.setdefault(str(game["paytable_id"]), int(game["rtp_bp"]))
            _rtp_cache.update(key=key, map=rtp)
        table = session.info[_RTP_KEY] = _rtp_cache["map"]
    if paytable_ids is None:
        return dict(table)
    return {str(p): table[str(p)] for p in paytable_ids if str(p) in table}
