"""A raw test terminal: publishes hand-made envelopes and waits for replies, to drive the gateway exactly."""
from __future__ import annotations

import json
import time

from protocols.mqtt import encode_up
from tests.support.brokers import MqttTestClient

ROOT = "sbg/v1"

HELLO = {"manufacturer": "Acme", "model": "Reel 5", "serial": "SN-1", "denoms_cents": [1, 5, 25],
         "software": {"name": "reels", "version": "1.0", "sha256": "ab" * 32},
         "config": {"deployment_id": None, "sha256": None}}

METERS = {"coin_in_cents": 0, "coin_out_cents": 0, "jackpot_cents": 0, "handpay_cancelled_credits_cents": 0,
          "bills_in_cents": 0, "voucher_in_cents": 0, "voucher_out_cents": 0, "current_credits_cents": 0,
          "games_played": 0, "games_won": 0, "door_open_count": 0}


class RawTerminal:
    def __init__(self, broker, egm_id: str, password: str | None = None, root: str = ROOT):
        self.egm_id = egm_id
        self.root = root
        self.seq = 0
        self.mqtt = MqttTestClient(broker.port, f"egm-{egm_id}", username=egm_id, password=password,
                                   will=(f"{root}/egm/{egm_id}/status", b'{"state":"offline"}', 1, True))
        self.mqtt.connect()
        self.mqtt.subscribe(f"{self.root}/egm/{egm_id}/down")
        self.inbox: list[dict] = []

    def send(self, type_: str, body: dict, seq: int | None = None) -> int:
        if seq is None:
            self.seq += 1
            seq = self.seq
        self.mqtt.publish(f"{self.root}/egm/{self.egm_id}/up", encode_up(seq, type_, body))
        return seq

    def raw(self, payload: bytes, topic: str | None = None) -> None:
        self.mqtt.publish(topic or f"{self.root}/egm/{self.egm_id}/up", payload)

    def status(self, state: str) -> None:
        self.mqtt.publish(f"{self.root}/egm/{self.egm_id}/status", json.dumps({"state": state}).encode(), retain=True)

    def wait(self, pred, timeout: float = 10.0) -> dict:
        """The first down message (already received or arriving) that satisfies pred."""
        deadline = time.monotonic() + timeout
        while True:
            for m in self.inbox:
                if pred(m):
                    self.inbox.remove(m)
                    return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching down message within {timeout}s; got {self.inbox}")
            msg = self.mqtt.get(timeout=min(left, 0.5))
            if msg is not None:
                self.inbox.append(json.loads(msg.payload))

    def reply(self, seq: int, timeout: float = 10.0) -> dict:
        return self.wait(lambda m: m.get("re") == seq, timeout)

    def request(self, type_: str, body: dict, timeout: float = 10.0) -> dict:
        return self.reply(self.send(type_, body), timeout)

    def close(self) -> None:
        self.mqtt.close()


def settle(gateway, timeout: float = 10.0) -> None:
    """Waits until the gateway has applied everything it received (queues empty twice in a row)."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline:
        quiet = quiet + 1 if gateway.idle() else 0
        if quiet >= 3:
            return
        time.sleep(0.05)
    raise AssertionError("gateway did not settle")


def eventually(fn, timeout: float = 10.0, interval: float = 0.05):
    """Polls fn until it returns something truthy; returns that, or fails with the last value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value {last!r})")
