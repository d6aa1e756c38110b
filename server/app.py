"""The Flask app factory: settings → Host → blueprints. Starts no threads; `floorhost serve` does."""
from __future__ import annotations

import logging

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from server.config import load_settings
from server.host import Host

# Page blueprints of the domain packages.
PAGE_BLUEPRINTS = ("terminals.web:floor", "cashier.pages:cage", "terminals.config_web:config_pages",
                   "players.pages:players_pages", "reports.web:desk")

# Modules that register API routes on import (their @endpoint decorators).
API_MODULES = (
    "server.web.operators",
    "terminals.web",
    "terminals.config_web",
    "cashier.web",
    "cashier.handpays_web",
    "players.web",
    "reports.web",
)


def build_app(config: dict | None = None, host: Host | None = None) -> Flask:
    if host is None:
        host = Host(load_settings(config))
    settings = host.settings
    logging.basicConfig(level=getattr(logging, settings.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # Two lines per run of every job (the deployment pump runs every 2 s) would drown the log; failures still show.
    logging.getLogger("apscheduler.executors").setLevel(max(logging.WARNING, logging.getLogger().level))

    app = Flask(__name__, instance_path=settings.instance, instance_relative_config=True)
    app.config.update(
        SECRET_KEY=host.secret_key(),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        WTF_CSRF_TIME_LIMIT=None,
        MAX_CONTENT_LENGTH=1024 * 1024,
        JSON_SORT_KEYS=False,
    )
    app.extensions["floorhost"] = host

    import importlib

    for name in API_MODULES:
        importlib.import_module(name)

    from server.web.api import api, error_response
    from server.web.ops import ops
    from server.web.pages import pages

    csrf = CSRFProtect(app)
    csrf.exempt(api)  # the API authenticates with bearer tokens, not cookies: no CSRF to forge
    csrf.exempt(ops)
    app.register_blueprint(api)
    app.register_blueprint(ops)
    app.register_blueprint(pages)
    for name in PAGE_BLUEPRINTS:
        module, attr = name.split(":")
        app.register_blueprint(getattr(importlib.import_module(module), attr))

    @app.errorhandler(404)
    def _not_found(_e):
        from flask import request

        if request.path.startswith("/api/"):
            return error_response(404, "not_found", "no such resource")
        return "Not found", 404

    @app.errorhandler(405)
    def _not_allowed(_e):
        return error_response(405, "method_not_allowed", "method not allowed")

    @app.errorhandler(413)
    def _too_large(_e):
        return error_response(413, "too_large", "request body too large")

    @app.errorhandler(500)
    def _server_error(_e):
        return error_response(500, "internal_error", "internal error; it has been logged")

    return app
