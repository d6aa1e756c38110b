"""Floorhost's host: app factory, configuration, database, auth, audit, scheduler and CLI.

Kept import-light on purpose: domain packages import server.db and server.audit
without pulling in Flask; the factory imports the web stack only when called.
"""


def create_app(config=None):
    """Builds the Flask app; `config` is a dict of settings that win over file and environment."""
    from server.app import build_app

    return build_app(config)
