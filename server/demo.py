"""`floorhost demo`: a fresh instance, the host, the embedded broker and a simulated floor playing.

Everything a newcomer needs to see it work, from pip packages alone: SQLite in
a throwaway instance folder, the embedded broker, the host (web, API, gateway,
scheduler) and simulated MQTT terminals that speak the real wire through the
broker. Prints the URL and a login.
"""
from __future__ import annotations

import secrets
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path

import click


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_demo(n_mqtt: int = 12, http_port: int | None = None, duration: float | None = None,
             instance: str | None = None, n_sas: int = 4, n_modbus: int = 3) -> int:
    from waitress.server import create_server

    from server import auth, migrate
    from server.app import build_app
    from server.audit import Actor
    from server.config import load_settings
    from server.host import Host
    from server.runtime import Runtime
    from terminals import registry, software
    from terminals.simulators.floor import SimFloor
    from terminals.simulators.mqtt_terminal import default_software
    from terminals.simulators.sas_egm import SasEgm, SasLine
    from protocols.sas.long_polls import MachineInfo
    from protocols.sas.transport import StreamTransport
    from terminals.sas_host import ROM_SEED, sas_software_sha256
    from terminals.simulators.modbus_device import DEFAULT_SHA256 as MODBUS_SHA256
    from terminals.simulators.modbus_device import ModbusDevice

    inst = Path(instance or tempfile.mkdtemp(prefix="floorhost-demo-"))
    if http_port is None:
        http_port = 8080 if _port_free(8080) else _free_port()
    broker_port = 1883 if _port_free(1883) else _free_port()
    settings = load_settings({"instance": str(inst), "database_url": f"sqlite:///{inst / 'floorhost.db'}",
                              "mqtt_url": "embedded", "mqtt_embedded_port": broker_port,
                              "http_host": "127.0.0.1", "http_port": http_port, "scheduler": "on",
                              "property_name": "Floorhost Demo Casino"})
    host = Host(settings)
    migrate.upgrade(host.db)

    admin_password = secrets.token_urlsafe(9)
    demo = Actor("demo", "admin")
    sw = default_software()
    passwords: dict[str, str] = {}
    # Modbus devices: emulated on loopback TCP, each its own pymodbus server.
    modbus_devices = [ModbusDevice(unit=1, seed=100 + i) for i in range(1, n_modbus + 1)]
    modbus_ports = [d.run_in_thread() for d in modbus_devices]
    with host.db.begin() as s:
        now = host.now()
        auth.create_operator(s, settings, demo, "admin", "admin", admin_password, now)
        for role in ("cashier", "attendant", "slot_tech", "manager", "auditor"):
            auth.create_operator(s, settings, demo, role, role, admin_password, now)
        if not software.is_approved(s, sw["sha256"]):
            software.approve(s, demo, sw["name"], sw["version"], sw["sha256"], now)
        # A few club members whose cards the simulated MQTT terminals insert (players, docs/players.md).
        from players import accounts

        demo_cards = [f"DEMO{i:04d}" for i in range(1, 9)]
        names = [("Ada", "Lovelace"), ("Alan", "Turing"), ("Grace", "Hopper"), ("Edsger", "Dijkstra"),
                 ("Barbara", "Liskov"), ("Donald", "Knuth"), ("Frances", "Allen"), ("John", "Backus")]
        for card_id, (first, last) in zip(demo_cards, names):
            if not accounts.search(s, card_id=card_id):
                accounts.enrol(s, settings, demo, card_id=card_id, first_name=first, last_name=last,
                               birth_date="1970-01-01", now=now)
        for i in range(1, n_mqtt + 1):
            egm_id = f"MQ{i:03d}"
            reg = registry.register(s, demo, egm_id, "mqtt", {"bank": f"B{(i - 1) // 6 + 1}", "position": i}, {}, now)
            registry.set_enabled(s, demo, reg.terminal, True, now)
            passwords[egm_id] = reg.mqtt_password
        # A SAS line: emulated EGMs on the far side of a pty, the host polls the other side.
        if n_sas:
            sas_end, sas_path = StreamTransport.create_pty()
            sas_egms = [SasEgm(a, denom_code=(0x01, 0x04)[a % 2], seed=100 + a) for a in range(1, n_sas + 1)]
            for egm in sas_egms:
                info = MachineInfo(egm.game_id, egm.additional_id, egm.denom_code, egm.max_bet,
                                   egm.progressive_group, egm.game_options, egm.paytable, egm.base_pct)
                sha = sas_software_sha256(info, ROM_SEED, egm.rom_signature(ROM_SEED))
                if not software.is_approved(s, sha):
                    software.approve(s, demo, f"{egm.game_id}{egm.additional_id}", egm.paytable, sha, now)
                reg = registry.register(s, demo, f"SAS{egm.address:03d}", "sas", {"bank": "S1", "position": egm.address},
                                        {"port": sas_path, "address": egm.address}, now)
                registry.set_enabled(s, demo, reg.terminal, True, now)
        if modbus_devices and not software.is_approved(s, MODBUS_SHA256):
            software.approve(s, demo, "modbus-sim", "1.0", MODBUS_SHA256, now)
        for i, port in enumerate(modbus_ports, 1):
            reg = registry.register(s, demo, f"MB{i:03d}", "modbus", {"bank": "M1", "position": i},
                                    {"host": "127.0.0.1", "port": port, "unit": 1, "interval_s": 2}, now)
            registry.set_enabled(s, demo, reg.terminal, True, now)

    sas_line = SasLine(sas_end, sas_egms).start() if n_sas else None
    runtime = Runtime(host)
    runtime.start()
    for egm in sas_egms if n_sas else []:
        egm.autoplay(0.5)
    for d in modbus_devices:
        d.start_autoplay()
    app = build_app(host=host)
    server = create_server(app, host="127.0.0.1", port=http_port, threads=settings.http_threads, ident="floorhost")
    web = threading.Thread(target=server.run, name="waitress", daemon=True)
    web.start()

    floor = SimFloor(n_mqtt, host.broker_url, egm_ids=list(passwords), passwords=passwords, rate=max(2.0, n_mqtt / 2),
                     mode="play", state_dir=inst / "sim", seed=7, meters_interval=20.0,
                     terminal_options={"player_cards": demo_cards})
    floor.start()

    url = f"http://127.0.0.1:{http_port}/"
    click.echo(f"""
Floorhost demo is running.
  open      {url}
  log in    admin / {admin_password}   (also cashier, attendant, slot_tech, manager, auditor with the same password)
  broker    {host.broker_url} (embedded)
  floor     {n_mqtt} simulated MQTT terminals playing (MQ001…)
  SAS line  {n_sas} emulated SAS EGMs on {sas_path if n_sas else "-"} (SAS001…)
  Modbus    {n_modbus} emulated Modbus TCP devices playing (MB001…)
  instance  {inst}
Press Ctrl-C to stop.
""")
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    deadline = time.monotonic() + duration if duration else None
    while not stop.is_set():
        if deadline and time.monotonic() >= deadline:
            break
        stop.wait(0.5)
    click.echo("stopping the demo")
    floor.stop()
    for egm in sas_egms if n_sas else []:
        egm.stop_autoplay()
    for d in modbus_devices:
        d.stop_autoplay()
    server.close()
    runtime.stop()
    for d in modbus_devices:
        d.stop_thread()
    if sas_line is not None:
        sas_line.stop()
        sas_end.close()
    host.close()
    return 0
