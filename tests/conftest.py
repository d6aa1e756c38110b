"""Fixtures: `host`, `app`, `client`, `api` (token-authenticated calls), `broker`, `gateway`.

The backend is chosen by the environment so the same suite runs twice in CI:
  FLOORHOST_TEST_DB      sqlite (default) | postgresql+psycopg://user@host:port/db (an admin DB to create test DBs from)
  FLOORHOST_TEST_BROKER  embedded (default) | mosquitto
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
import threading
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from server import auth, migrate
from server.app import build_app
from server.audit import SYSTEM
from server.config import load_settings
from server.host import Host
from tests.support.brokers import free_port, mosquitto_available, start_embedded, start_mosquitto

TEST_DB = os.environ.get("FLOORHOST_TEST_DB", "sqlite")
TEST_BROKER = os.environ.get("FLOORHOST_TEST_BROKER", "embedded")
PASSWORD = "correct horse battery"


@pytest.fixture(scope="session")
def template_db(tmp_path_factory):
    """A database migrated once per session; each test gets a copy (migrating per test is slow on PostgreSQL)."""
    from server.db import Database

    if TEST_DB == "sqlite":
        path = tmp_path_factory.mktemp("template") / "template.db"
        db = Database(f"sqlite:///{path}")
        migrate.upgrade(db)
        db.dispose()  # the last connection to close checkpoints the WAL into the main file
        yield path
        return
    name = "fh_tpl_" + uuid.uuid4().hex[:10]
    admin = create_engine(TEST_DB, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    db = Database(TEST_DB.rsplit("/", 1)[0] + "/" + name)
    migrate.upgrade(db)
    db.dispose()
    yield name
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def database_url(tmp_path, template_db):
    if TEST_DB == "sqlite":
        target = tmp_path / "floorhost.db"
        shutil.copyfile(template_db, target)
        yield f"sqlite:///{target}"
        return
    name = "fh_test_" + uuid.uuid4().hex[:12]
    admin = create_engine(TEST_DB, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"'))
    try:
        yield TEST_DB.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def settings_overrides(tmp_path, database_url):
    """Settings every test host gets; a test may add to it before `host` is built."""
    return {"instance": str(tmp_path / "instance"), "database_url": database_url, "scheduler": "off",
            "timezone": "America/Los_Angeles", "property_name": "Test Casino",
            # A topic root of its own keeps one test's retained messages away from the next.
            "topic_root": f"t{uuid.uuid4().hex[:8]}/v1"}


@pytest.fixture
def host(settings_overrides):
    h = Host(load_settings(settings_overrides, environ={}))
    yield h
    h.close()


@pytest.fixture
def app(host):
    app = build_app(host=host)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app):
    return app.test_client()


def make_operator(host: Host, username: str, role: str, password: str = PASSWORD) -> None:
    with host.db.begin() as s:
        auth.create_operator(s, host.settings, SYSTEM, username, role, password, host.now())


class Api:
    """Calls /api/v1 as an operator of a given role: api.as_("cashier").post("/vouchers", json=...)."""

    def __init__(self, client, host):
        self.client = client
        self.host = host
        self.tokens: dict[str, str] = {}

    def token(self, role: str, username: str | None = None) -> str:
        username = username or f"{role}1"
        if username not in self.tokens:
            make_operator(self.host, username, role)
            r = self.client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD})
            assert r.status_code == 200, r.get_json()
            self.tokens[username] = r.get_json()["token"]
        return self.tokens[username]

    def as_(self, role: str, username: str | None = None) -> "_As":
        return _As(self.client, self.token(role, username))


class _As:
    def __init__(self, client, token):
        self.client, self.headers = client, {"Authorization": f"Bearer {token}"}

    def _call(self, method, path, headers=None, **kw):
        return getattr(self.client, method)("/api/v1" + path, headers={**self.headers, **(headers or {})}, **kw)

    def get(self, path, **kw):
        return self._call("get", path, **kw)

    def post(self, path, **kw):
        return self._call("post", path, **kw)

    def put(self, path, **kw):
        return self._call("put", path, **kw)


@pytest.fixture
def api(client, host):
    return Api(client, host)


@pytest.fixture(scope="session")
def broker():
    """One broker for the session, of the kind FLOORHOST_TEST_BROKER names."""
    if TEST_BROKER == "mosquitto":
        if not mosquitto_available():
            pytest.skip("mosquitto is not installed")
        b = start_mosquitto(free_port())
    else:
        b = start_embedded(free_port())
    yield b
    b.stop()


@pytest.fixture
def gateway(host, broker):
    """The host's MQTT gateway connected to the test broker, with a unique client id per test."""
    from terminals.gateway import MqttGateway

    gw = MqttGateway(host, broker.url, client_id=f"host-{uuid.uuid4().hex[:8]}")
    gw.start()
    assert gw.wait_connected(10), "gateway did not connect to the test broker"
    host.broker_url = broker.url
    host.components["gateway"] = gw
    host.components.setdefault("routes", {})["mqtt"] = gw
    yield gw
    gw.stop()


@pytest.fixture
def utc():
    return lambda *a: dt.datetime(*a, tzinfo=dt.timezone.utc)


class LiveServer:
    """The base URL of the running app; `live_server("/floor")` gives a full URL."""

    def __init__(self, url: str):
        self.url = url

    def __call__(self, path: str = "/") -> str:
        return self.url + path


@pytest.fixture
def live_server(app):
    """The Flask app served by waitress in a daemon thread on 127.0.0.1 and a free port."""
    from waitress import wasyncore
    from waitress.server import create_server

    server = create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, name="waitress-live", daemon=True)
    thread.start()
    try:
        yield LiveServer(f"http://127.0.0.1:{server.effective_port}")
    finally:
        # Closing only the listener leaves keep-alive channels in the map and the loop running: close them
        # all, from inside the loop thread (the trigger wakes it), so the loop ends at once.
        server.task_dispatcher.shutdown(timeout=2)
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        thread.join(5)
        if thread.is_alive():
            wasyncore.close_all(server._map)
