"""`floorhost init` then `floorhost serve` as a real process: web, API, embedded broker, gateway, scheduler."""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.support.brokers import free_port

pytestmark = pytest.mark.slow


def _get(url, headers=None, data=None):
    req = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.status, json.loads(r.read())


def test_init_then_serve(tmp_path):
    http, mqtt = free_port(), free_port()
    env = {**os.environ, "FLOORHOST_INSTANCE": str(tmp_path), "FLOORHOST_HTTP_PORT": str(http),
           "FLOORHOST_MQTT_EMBEDDED_PORT": str(mqtt), "FLOORHOST_DATABASE_URL": f"sqlite:///{tmp_path}/fh.db"}
    init = subprocess.run([sys.executable, "-m", "server.cli", "init", "--admin-user", "admin",
                           "--admin-password-stdin"], input="a long admin secret\n", env=env, capture_output=True,
                          text=True, timeout=120)
    assert init.returncode == 0, init.stderr
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{http}"
        deadline = time.monotonic() + 30
        health = None
        while time.monotonic() < deadline:
            try:
                status, health = _get(base + "/healthz")
                if health["mqtt"]["connected"]:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assert health and health["db"] == "ok" and health["mqtt"]["connected"], health
        assert health["mqtt"]["url"] == f"mqtt://127.0.0.1:{mqtt}"
        status, tok = _get(base + "/api/v1/auth/token", {"Content-Type": "application/json"},
                           json.dumps({"username": "admin", "password": "a long admin secret"}).encode())
        assert status == 200 and tok["role"] == "admin"
        status, ops = _get(base + "/api/v1/operators", {"Authorization": f"Bearer {tok['token']}"})
        assert [o["username"] for o in ops] == ["admin"]
        assert (tmp_path / "scheduler.lock").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert proc.returncode == 0, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
