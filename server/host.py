"""What one running host holds: settings, database, gaming-day clock, metrics, and the way out to terminals.

Built once by the app factory (or the CLI) and handed to whoever needs it;
services take its parts as arguments and never reach for a global.
"""
from __future__ import annotations

import datetime as dt
import logging
import secrets
from pathlib import Path
from typing import Callable, Protocol

from server.config import Settings
from server.db import Database, utcnow
from server.gamingday import GamingDayClock
from server.metrics import Metrics

log = logging.getLogger("floorhost")


class Outbox(Protocol):
    """The way out to terminals: the gateway implements it; None when this process runs no gateway."""

    def send(self, egm_id: str, type: str, body: dict, msg_id: str | None = None, re: int | None = None) -> str: ...

    def is_online(self, egm_id: str) -> bool: ...


class Host:
    def __init__(self, settings: Settings, *, now: Callable[[], dt.datetime] = utcnow):
        self.settings = settings
        self.now = now
        Path(settings.instance).mkdir(parents=True, exist_ok=True)
        self.db = Database(settings.database_url)
        self.clock = GamingDayClock(settings.zone, settings.gaming_day_start_time)
        self.metrics = Metrics()
        self.outbox: Outbox | None = None
        self.broker_url: str | None = None
        self.components: dict[str, object] = {}
        self._signer = None

    @property
    def signer(self):
        """The config-signing key, created in the instance folder on first use."""
        if self._signer is None:
            from server.signing import Signer

            self._signer = Signer.load_or_create(self.settings.instance)
        return self._signer

    def gaming_day(self, instant: dt.datetime | None = None) -> dt.date:
        return self.clock.day_of(instant or self.now())

    def secret_key(self) -> str:
        """The session-signing key: from settings, else generated once and kept in the instance folder."""
        if self.settings.secret_key:
            return self.settings.secret_key
        path = Path(self.settings.instance) / "secret_key"
        if not path.exists():
            path.write_text(secrets.token_hex(32))
            path.chmod(0o600)
        return path.read_text().strip()

    def close(self) -> None:
        self.db.dispose()
