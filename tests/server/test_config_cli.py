"""Settings from file and environment, and the `floorhost` command's contract (cli.md)."""
import os
import subprocess
import sys

import pytest

from server.config import ConfigError, load_settings


def run(args, env, stdin=None):
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": env.get("HOME", "/tmp")}
    return subprocess.run([sys.executable, "-m", "server.cli", *args], env={**base, **env}, input=stdin,
                          capture_output=True, text=True, timeout=120)


def test_defaults(tmp_path):
    s = load_settings(environ={"FLOORHOST_INSTANCE": str(tmp_path)})
    assert s.database_url == f"sqlite:///{tmp_path}/floorhost.db"
    assert (s.mqtt_url, s.mqtt_embedded_port, s.gaming_day_start, s.voucher_expiry_days) == ("embedded", 1883, "06:00", 180)
    assert (s.http_host, s.http_port, s.topic_root, s.scheduler) == ("127.0.0.1", 8080, "sbg/v1", "on")


def test_file_then_environment_wins(tmp_path):
    (tmp_path / "floorhost.toml").write_text('http_port = 9000\nvoucher_expiry_days = 90\ntimezone = "Europe/Vienna"\n')
    s = load_settings(environ={"FLOORHOST_INSTANCE": str(tmp_path), "FLOORHOST_HTTP_PORT": "9100"})
    assert (s.http_port, s.voucher_expiry_days, s.timezone) == (9100, 90, "Europe/Vienna")


@pytest.mark.parametrize("env, key", [
    ({"FLOORHOST_HTTP_PORT": "eighty"}, "FLOORHOST_HTTP_PORT"),
    ({"FLOORHOST_TIMEZONE": "Mars/Olympus"}, "timezone"),
    ({"FLOORHOST_GAMING_DAY_START": "25:99"}, "gaming_day_start"),
    ({"FLOORHOST_MQTT_URL": "http://x"}, "mqtt_url"),
    ({"FLOORHOST_CONFIG": "/nonexistent/floorhost.toml"}, "FLOORHOST_CONFIG"),
])
def test_bad_configuration_raises_naming_the_key(tmp_path, env, key):
    with pytest.raises(ConfigError) as e:
        load_settings(environ={"FLOORHOST_INSTANCE": str(tmp_path), **env})
    assert e.value.key == key


def test_bad_config_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("http_port = [unclosed\n")
    r = run(["audit", "verify"], {"FLOORHOST_INSTANCE": str(tmp_path), "FLOORHOST_CONFIG": str(bad)})
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "FLOORHOST_CONFIG" in r.stderr
    r = run(["serve"], {"FLOORHOST_INSTANCE": str(tmp_path), "FLOORHOST_HTTP_PORT": "nope"})
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "configuration error: FLOORHOST_HTTP_PORT: expected int, got 'nope'"]


def test_every_command_has_help(tmp_path):
    for cmd in (["init"], ["serve"], ["demo"], ["sim"], ["user", "add"], ["user", "disable"], ["audit", "verify"],
                ["mqtt-config"], ["report"], ["gaming-day", "close"]):
        r = run([*cmd, "--help"], {"FLOORHOST_INSTANCE": str(tmp_path)})
        assert r.returncode == 0 and "Usage:" in r.stdout, cmd


def test_init_is_idempotent_and_users_work(tmp_path):
    env = {"FLOORHOST_INSTANCE": str(tmp_path)}
    r = run(["init", "--admin-user", "boss", "--admin-password-stdin"], env, stdin="a long admin secret\n")
    assert r.returncode == 0, r.stderr
    r = run(["init", "--admin-user", "boss", "--admin-password-stdin"], env, stdin="a long admin secret\n")
    assert r.returncode == 0 and "already exists" in r.stdout
    r = run(["user", "add", "cash1", "--role", "cashier", "--password-stdin"], env, stdin="cashier secret 1\n")
    assert r.returncode == 0, r.stderr
    r = run(["user", "add", "cash1", "--role", "cashier", "--password-stdin"], env, stdin="cashier secret 1\n")
    assert r.returncode != 0 and "already exists" in r.stderr and "Traceback" not in r.stderr
    r = run(["user", "add", "x", "--role", "wizard", "--password-stdin"], env, stdin="whatever long\n")
    assert r.returncode == 2
    assert run(["user", "disable", "cash1"], env).returncode == 0
    r = run(["audit", "verify"], env)
    assert r.returncode == 0 and "3 entries" in r.stdout, r.stdout + r.stderr  # boss, cash1, disable


def test_mqtt_config_writes_acl_for_registered_terminals(tmp_path):
    from server import migrate
    from server.audit import SYSTEM
    from server.host import Host
    from terminals import registry

    env = {"FLOORHOST_INSTANCE": str(tmp_path)}
    h = Host(load_settings(environ=env))
    migrate.upgrade(h.db)
    with h.db.begin() as s:
        registry.register(s, SYSTEM, "EGM7", "mqtt", {}, {}, h.now())
        registry.register(s, SYSTEM, "SAS1", "sas", {}, {"port": "/dev/ttyS0", "address": 1}, h.now())
    h.close()
    out = tmp_path / "mosq"
    r = run(["mqtt-config", "--out", str(out)], env)
    assert r.returncode == 0, r.stderr
    acl = (out / "acl").read_text()
    assert "user EGM7" in acl and "sbg/v1/egm/EGM7/up" in acl and "SAS1" not in acl
    assert "max_queued_messages" in (out / "mosquitto.conf").read_text()
    assert (out / "passwd").read_text().startswith("floorhost-host:$7$") or "EGM7:$7$" in (out / "passwd").read_text()
