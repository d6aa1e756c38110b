"""How a push reaches a terminal, per protocol, and the pass that drives deployments (`pump`).

A DeploymentStep gets a committed `Send` and delivers it; what the terminal answers comes back
through the services in terminals.deployments:

- mqtt: publishes `config.push`; the terminal's `config.status` messages advance its target
  (gateway handler in terminals.config_terminal).
- modbus: reads the device (meters first), checks idle, writes 110-114 then 120 and waits for 122
  (ModbusHost.apply_config_sync); `installed`, `rejected` (cannot be mapped) or `failed` (deadline).
- sas: SAS cannot download a configuration; the step verifies it: the EGM's paytable (LP 1F) must be
  the package's first game's and its ROM signature (LP 21) must be on the approved list, else `rejected`.
"""
from __future__ import annotations

import concurrent.futures
import logging
from typing import Protocol

from server.host import Host
from terminals import deployments, software
from terminals.deployments import Send
from terminals.models import Terminal

log = logging.getLogger("floorhost.deployments")


class DeploymentStep(Protocol):
    protocol: str

    def start(self, host: Host, send: Send) -> None:
        """Deliver one committed push; never raises for a terminal's failure (it is recorded)."""


def _record(host: Host, send: Send, state: str, reason: str | None) -> None:
    with host.db.begin() as s:
        deployments.record_outcome(s, send.deployment_id, send.egm_id, state, reason, host.now())
    log.info("egm=%s deployment %s: %s%s", send.egm_id, send.deployment_id, state, f" ({reason})" if reason else "")


class MqttStep:
    protocol = "mqtt"

    def start(self, host: Host, send: Send) -> None:
        gw = host.components.get("routes", {}).get("mqtt")
        if gw is None:
            _record(host, send, "pending", "no MQTT gateway runs in this process")
            return
        gw.send(send.egm_id, "config.push", send.body)


def _executor(host: Host) -> concurrent.futures.ThreadPoolExecutor:
    ex = host.components.get("deploy_executor")
    if ex is None:
        ex = host.components.setdefault("deploy_executor",
                                        concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="deploy"))
    return ex  # type: ignore[return-value]


class ModbusStep:
    protocol = "modbus"

    def start(self, host: Host, send: Send) -> None:
        _executor(host).submit(self.run, host, send)

    def run(self, host: Host, send: Send) -> tuple[str, str | None]:
        try:
            outcome = self._run(host, send)
        except Exception as exc:  # the target must not stay `sent` because of a bug here
            log.exception("egm=%s deployment %s: modbus step failed", send.egm_id, send.deployment_id)
            outcome = ("failed", f"internal error: {exc.__class__.__name__}")
        _record(host, send, *outcome)
        return outcome

    @staticmethod
    def _run(host: Host, send: Send) -> tuple[str, str | None]:
        mb = host.components.get("modbus")
        if mb is None:
            return ("pending", "no Modbus poller runs in this process")
        # Meters first (rules.md 25): a poll records the meters and the device's idle flags.
        if not mb.poll_sync(send.egm_id):
            return ("pending", "device did not answer the poll before the push")
        if send.apply == "idle":
            with host.db.read() as s:
                t = s.query(Terminal).filter_by(egm_id=send.egm_id).one()
                busy = deployments.not_idle_reason(t)
            if busy:
                return ("pending", f"waiting for idle: {busy}")
        return mb.apply_config_sync(send.egm_id, send.body["package"], send.deployment_id, send.deadline_s)


class SasStep:
    protocol = "sas"

    def start(self, host: Host, send: Send) -> None:
        _record(host, send, *self.verify(host, send))

    @staticmethod
    def verify(host: Host, send: Send) -> tuple[str, str | None]:
        game = send.body["package"]["games"][0]
        with host.db.read() as s:
            t = s.query(Terminal).filter_by(egm_id=send.egm_id).one()
            info = (t.reported_config or {}).get("sas_machine_info")
            sha = (t.software or {}).get("sha256")
            approved = software.is_approved(s, sha)
        if not info:
            return ("pending", "no LP 1F reading of this EGM yet")
        paytable = str(info.get("paytable_id", "")).strip()
        if paytable != game["paytable_id"]:
            return ("rejected", f"EGM paytable {paytable!r} is not the package's {game['paytable_id']!r}; "
                                "SAS cannot download a configuration: set it at the EGM")
        if not approved:
            return ("rejected", "ROM signature (LP 21) is not on the approved-software list")
        return ("installed", "verified: LP 1F paytable and LP 21 ROM signature")


# Steps by protocol: one per protocol of the registry.
STEPS: dict[str, DeploymentStep] = {s.protocol: s for s in (MqttStep(), ModbusStep(), SasStep())}


def deliver(host: Host, acts: deployments.Actions) -> None:
    """After the commit: meters requests through the protocol routes, pushes through the steps."""
    routes = host.components.get("routes", {})
    for out in acts.commands:
        route = routes.get(out.protocol)
        if route is None:
            continue
        try:
            route.deliver_command(out)
        except Exception:
            log.exception("egm=%s meters request before a push could not be sent", out.egm_id)
    for send in acts.sends:
        try:
            STEPS[send.protocol].start(host, send)
        except Exception:
            log.exception("egm=%s deployment %s: push could not be sent", send.egm_id, send.deployment_id)


def pump(host: Host) -> int:
    """One pass of every open deployment (the scheduler job; also right after a deployment is created)."""
    with host.db.begin() as s:
        acts = deployments.tick(s, host.now())
    deliver(host, acts)
    return len(acts.sends)
