"""The `floorhost` command (cli.md): init, serve, demo, sim, user, audit, mqtt-config, report, gaming-day.

Exit codes: 0 success, 1 a check failed, 2 bad usage or configuration. A bad
configuration prints one line on stderr; no command prints a traceback for bad input.
"""
from __future__ import annotations

import functools
import signal
import sys

import click

from server.config import ConfigError, load_settings
from server.errors import DomainError


def _fail(message: str, code: int = 2) -> None:
    click.echo(message, err=True)
    sys.exit(code)


def _host(**overrides):
    from server.host import Host

    return Host(load_settings({k: v for k, v in overrides.items() if v is not None}))


def command_errors(fn):
    """Turns configuration and domain errors into one line on stderr and the contract's exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            _fail(str(exc), 2)
        except DomainError as exc:
            _fail(f"error: {exc.message}", 2 if exc.status in (400, 422) else 1)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli():
    """Floorhost: the on-prem server that runs a slot floor."""


@cli.command()
@click.option("--admin-user", help="Create this admin operator if it does not exist.")
@click.option("--admin-password-stdin", is_flag=True, help="Read the admin's password from standard input.")
@command_errors
def init(admin_user, admin_password_stdin):
    """Create or upgrade the database and the first admin (idempotent)."""
    from server import auth, migrate
    from server.audit import SYSTEM

    h = _host()
    migrate.upgrade(h.db)
    h.signer  # creates the config-signing key in the instance folder
    click.echo(f"database ready: {h.db.engine.url.render_as_string(hide_password=True)}")
    if admin_user:
        with h.db.begin() as s:
            from sqlalchemy import select

            from server.models import Operator

            if s.execute(select(Operator.id).where(Operator.username == admin_user)).first():
                click.echo(f"admin {admin_user} already exists")
                return
            if admin_password_stdin:
                password = sys.stdin.readline().rstrip("\n")
            else:
                import secrets

                password = secrets.token_urlsafe(12)
                click.echo(f"admin password: {password}")
            auth.create_operator(s, h.settings, SYSTEM, admin_user, "admin", password, h.now())
        click.echo(f"admin {admin_user} created")


@cli.command()
@click.option("--host", "http_host", help="Address to listen on (FLOORHOST_HTTP_HOST).")
@click.option("--port", "http_port", type=int, help="Port to listen on (FLOORHOST_HTTP_PORT).")
@command_errors
def serve(http_host, http_port):
    """Run the host: web + API under waitress, the terminal gateway, the scheduler."""
    from server import migrate
    from server.app import build_app
    from server.runtime import Runtime

    h = _host(http_host=http_host, http_port=http_port)
    migrate.upgrade(h.db)
    app = build_app(host=h)
    runtime = Runtime(h)
    try:
        runtime.start()
    except Exception as exc:
        runtime.stop()
        _fail(f"error: cannot start: {exc}", 1)
    try:
        _serve_http(app, h.settings.http_host, h.settings.http_port, h.settings.http_threads)
    finally:
        runtime.stop()


def _serve_http(app, host: str, port: int, threads: int) -> None:
    from waitress.server import create_server

    from waitress import wasyncore

    server = create_server(app, host=host, port=port, threads=threads, ident="floorhost")

    def _on_signal(_sig, _frame):
        # Close every channel from inside waitress's own loop (the trigger wakes it): its loop then ends
        # by itself, where closing sockets under a running select() would fail with EBADF.
        server.task_dispatcher.shutdown(timeout=5)
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    click.echo(f"floorhost listening on http://{host}:{server.effective_port}/", err=True)
    server.run()


@cli.command()
@click.option("--terminals", "n_mqtt", default=12, show_default=True, help="MQTT terminals to simulate.")
@click.option("--port", "http_port", type=int, default=None, help="HTTP port (default 8080, or a free one).")
@click.option("--duration", type=float, default=None, help="Stop after this many seconds (default: run until Ctrl-C).")
@click.option("--instance", type=click.Path(), default=None, help="Instance folder (default: a fresh temporary one).")
@command_errors
def demo(n_mqtt, http_port, duration, instance):
    """A fresh instance, the host, an MQTT broker and a simulated floor playing."""
    from server.demo import run_demo

    sys.exit(run_demo(n_mqtt=n_mqtt, http_port=http_port, duration=duration, instance=instance))


@cli.command()
@click.option("--terminals", default=10, show_default=True, help="Number of simulated terminals.")
@click.option("--rate", default=5.0, show_default=True, help="Messages per second over the whole floor.")
@click.option("--broker", default=None, help="mqtt://host:port (default: the configured broker).")
@click.option("--prefix", default="SIM", show_default=True, help="egm_id prefix: SIM0001, SIM0002 …")
@click.option("--duration", type=float, default=None, help="Seconds to run (default: until Ctrl-C).")
@click.option("--credentials", type=click.Path(exists=True, dir_okay=False),
              help="JSON file {egm_id: password} for a broker with per-terminal passwords.")
@command_errors
def sim(terminals, rate, broker, prefix, duration, credentials):
    """The MQTT terminal simulator and load generator, against any broker."""
    import json

    from terminals.simulators.floor import run_sim

    if broker is None:
        settings = load_settings()
        broker = settings.mqtt_url if settings.mqtt_url != "embedded" else f"mqtt://127.0.0.1:{settings.mqtt_embedded_port}"
    creds = json.loads(open(credentials).read()) if credentials else None
    sys.exit(run_sim(terminals=terminals, rate=rate, broker_url=broker, prefix=prefix, duration=duration,
                     credentials=creds))


@cli.group()
def user():
    """Operators: add, disable."""


@user.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(["cashier", "attendant", "slot_tech", "manager",
                                                          "auditor", "admin"]))
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@command_errors
def user_add(name, role, password_stdin):
    """Create an operator."""
    from server import auth
    from server.audit import Actor

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    h = _host()
    with h.db.begin() as s:
        auth.create_operator(s, h.settings, Actor("cli", "admin"), name, role, password, h.now())
    click.echo(f"operator {name} ({role}) created")


@user.command("disable")
@click.argument("name")
@command_errors
def user_disable(name):
    """Disable an operator (accounts are never deleted)."""
    from server import auth
    from server.audit import Actor

    h = _host()
    with h.db.begin() as s:
        auth.disable_operator(s, Actor("cli", "admin"), name, h.now())
    click.echo(f"operator {name} disabled")


@cli.group()
def audit():
    """The hash-chained audit log."""


@audit.command("verify")
@command_errors
def audit_verify():
    """Walk the audit chain; exit 1 naming the first broken entry."""
    from server import audit as audit_log

    h = _host()
    with h.db.read() as s:
        result = audit_log.verify(s)
    if not result.ok:
        click.echo(f"audit chain BROKEN at entry {result.broken_id}: {result.problem} "
                   f"({result.checked} entries before it are intact)", err=True)
        sys.exit(1)
    for check in AUDIT_CHECKS:
        problem = check(h)
        if problem:
            click.echo(problem, err=True)
            sys.exit(1)
    click.echo(f"audit chain intact: {result.checked} entries")


# Further integrity checks run by `audit verify` (the report archive adds one); each returns a problem or None.
def _report_archive_check(h):
    from reports.closing import cli_check

    return cli_check(h)


AUDIT_CHECKS: list = [_report_archive_check]


@cli.command("mqtt-config")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Directory to write to.")
@click.option("--port", default=1883, show_default=True, help="Listener port in the generated config.")
@click.option("--listen", default="0.0.0.0", show_default=True, help="Listener address.")
@command_errors
def mqtt_config(out_dir, port, listen):
    """Write a Mosquitto config, password file and ACL for the registered terminals."""
    from server.mqtt_config import TerminalCredential, write_mosquitto_config
    from terminals.models import Terminal
    from sqlalchemy import select

    h = _host()
    host_user, host_hash = host_broker_credential(h)
    with h.db.read() as s:
        creds = [TerminalCredential(egm_id, pw) for egm_id, pw in s.execute(
            select(Terminal.egm_id, Terminal.mqtt_password_hash)
            .where(Terminal.protocol == "mqtt", Terminal.mqtt_password_hash.is_not(None))).all()]
    paths = write_mosquitto_config(out_dir, creds, host_user, host_hash, listener_host=listen, port=port,
                                   topic_root=h.settings.topic_root)
    click.echo(f"wrote {', '.join(str(p) for p in paths.values())} for {len(creds)} terminals")
    click.echo(f"the host connects as {host_user!r}: set FLOORHOST_MQTT_URL=mqtt://{host_user}:<password>@<broker>:{port}"
               f" with the password in {h.settings.instance_path / 'mqtt_host_password'}")


def host_broker_credential(h) -> tuple[str, str]:
    """The host's own broker account: created once, its password kept in the instance folder."""
    import secrets

    from server.mqtt_config import mosquitto_password_hash

    path = h.settings.instance_path / "mqtt_host_password"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return "floorhost-host", mosquitto_password_hash(path.read_text().strip())


@cli.command()
@click.argument("name")
@click.option("--gaming-day", required=True, help="YYYY-MM-DD")
@click.option("--format", "fmt", type=click.Choice(["json", "csv", "pdf", "html"]), default="json", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
@command_errors
def report(name, gaming_day, fmt, out):
    """Render a regulatory report (the same reports as the API); a closed day's comes from its archive."""
    from reports import closing, core

    h = _host()
    period = core.parse_period(gaming_day, None, None, h.gaming_day())
    with h.db.read() as s:
        r = closing.fetch(s, h.settings, h.clock, name, period, fmt, h.now())
    if out:
        with open(out, "wb") as f:
            f.write(r.body)
        click.echo(f"{name} {gaming_day} {fmt}: {len(r.body)} bytes, sha256 {r.sha256}"
                   f"{' (archived)' if r.archived else ''} -> {out}", err=True)
    else:
        sys.stdout.buffer.write(r.body)
        sys.stdout.buffer.flush()


@cli.group("gaming-day")
def gaming_day():
    """Gaming days."""


@gaming_day.command("close")
@click.argument("day")
@command_errors
def gaming_day_close(day):
    """Close a gaming day that has ended."""
    from reports import closing, core
    from server.audit import Actor

    h = _host()
    d = core.parse_period(day, None, None, h.gaming_day()).start
    with h.db.begin() as s:
        result = closing.close_day(s, h.settings, h.clock, Actor("cli", "manager"), d, h.now())
    click.echo(f"gaming day {d} closed: {len(result.files)} report files archived"
               f"{', skipped ' + ', '.join(result.skipped) if result.skipped else ''}; "
               f"{result.reconciliation_exceptions} reconciliation exceptions")


def main() -> None:
    cli(prog_name="floorhost")


if __name__ == "__main__":
    main()
