"""Prometheus metrics of one host, in a registry of its own (tests build many apps in one process)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.terminal_messages = Counter(
            "floorhost_terminal_messages", "Terminal up messages by outcome (applied counted after commit)",
            ["result"], registry=self.registry)
        self.rejects = Counter(
            "floorhost_terminal_rejects", "Rejected terminal input by protocol and reason",
            ["protocol", "reason"], registry=self.registry)
        self.batch_seconds = Histogram(
            "floorhost_gateway_batch_seconds", "Time to apply and commit one gateway batch",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5), registry=self.registry)
        self.apply_latency = Histogram(
            "floorhost_gateway_apply_latency_seconds", "From receipt of a message to its commit",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5), registry=self.registry)
        self.queue_depth = Gauge("floorhost_gateway_queue_depth", "Messages waiting for a gateway worker",
                                 registry=self.registry)
        self.batch_size = Histogram("floorhost_gateway_batch_size", "Messages per committed batch",
                                    buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2500), registry=self.registry)
        self.db_retries = Counter("floorhost_gateway_db_retries", "Batches retried because the database was away",
                                  registry=self.registry)
        self.serial_errors = Counter("floorhost_serial_errors", "SAS line errors by kind", ["line", "kind"],
                                     registry=self.registry)
        self.modbus_errors = Counter("floorhost_modbus_errors", "Modbus poll errors by kind", ["kind"],
                                     registry=self.registry)
        self.http_bad_input = Counter("floorhost_http_bad_input", "HTTP requests refused for bad input",
                                      ["code"], registry=self.registry)

    def value(self, name: str, **labels: str) -> float:
        """Reads one sample (tests and /healthz); 0 when the series does not exist yet."""
        v = self.registry.get_sample_value(name, labels)
        return v or 0.0

    def render(self) -> bytes:
        return generate_latest(self.registry)
