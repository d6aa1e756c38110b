"""Starts and stops what `floorhost serve` runs besides the web: broker (embedded), gateway, SAS lines,
Modbus poller, scheduler."""
from __future__ import annotations

import logging

from server.host import Host

log = logging.getLogger("floorhost.runtime")


class Runtime:
    def __init__(self, host: Host, *, gateway: bool = True, scheduler: bool | None = None, sas: bool = True,
                 modbus: bool = True):
        self.host = host
        self.want_gateway = gateway
        self.want_sas = sas
        self.want_modbus = modbus
        self.sas = None
        self.modbus = None
        self.want_scheduler = host.settings.scheduler == "on" if scheduler is None else scheduler
        self.broker = None
        self.gateway = None
        self.scheduler = None

    def start(self) -> None:
        h = self.host
        h.components.setdefault("routes", {})
        if self.want_gateway:
            url = h.settings.mqtt_url
            if url == "embedded":
                from server.broker import EmbeddedBroker

                self.broker = EmbeddedBroker(h.settings.mqtt_embedded_port,
                                             log_path=str(h.settings.instance_path / "broker.log"))
                self.broker.start()
                url = self.broker.url
            h.broker_url = url
            from terminals.gateway import MqttGateway

            self.gateway = MqttGateway(h, url)
            self.gateway.start()
            h.components["gateway"] = self.gateway
            h.components["routes"]["mqtt"] = self.gateway
        if self.want_sas:
            # Always running (a thread per line, none without SAS terminals), so a registration
            # through the API only needs reload() to bring a new line up.
            from terminals.sas_host import SasHost

            self.sas = SasHost(h)
            try:
                self.sas.start()
            except Exception:
                log.exception("SAS lines did not start")
        if self.want_modbus:
            # One asyncio loop for every Modbus device; idle when none is registered (reload() adds them).
            from terminals.modbus_host import ModbusHost

            self.modbus = ModbusHost(h)
            self.modbus.start()
            h.components["modbus"] = self.modbus
            h.components["routes"]["modbus"] = self.modbus
        if self.want_scheduler:
            from server.scheduler import Scheduler

            self.scheduler = Scheduler(h)
            self.scheduler.start()

    def stop(self) -> None:
        if self.scheduler:
            self.scheduler.stop()
        if self.modbus:
            self.modbus.stop()
        if self.sas:
            self.sas.stop()
        if self.gateway:
            self.gateway.stop()
        if self.broker:
            self.broker.stop()
