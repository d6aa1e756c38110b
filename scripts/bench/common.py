"""Shared pieces of the benchmarks in scripts/bench/ (spec/performance.md).

Brokers, the host as a subprocess, /metrics scraping and histogram quantiles,
RSS from /proc, the raw QoS 1 baseline (a paho publisher process through the
broker to a paho subscriber process) and the writer of docs/benchmarks.md.
Nothing here is product code: benchmarks only drive the host from outside.
"""
from __future__ import annotations

import datetime as dt
import json
import multiprocessing as mp
import os
import platform
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS_MD = ROOT / "docs" / "benchmarks.md"

# ---- brokers ------------------------------------------------------------------------------------

# The host acknowledges a QoS 1 message only after the batch that applied it is committed
# (paho manual_ack), so the broker's per-client in-flight window bounds how many messages
# the host can hold at once. The production config keeps 20; with 20 the host could never
# build a batch larger than 20 and would commit ~20 messages per transaction. The bench
# gives the host 2 x gateway_batch_max (1000 by default): one full batch being committed
# and the next one already arriving, so the window is never what limits ingest.
BENCH_INFLIGHT = 2000
# Messages waiting for the host (and, after a kill -9, for its persistent session) must
# never be dropped by the broker: the loss check would then blame the host.
BENCH_QUEUED = 10_000_000


def mosquitto_conf() -> str:
    return ("set_tcp_nodelay true\n"
            f"max_inflight_messages {BENCH_INFLIGHT}\n"
            f"max_queued_messages {BENCH_QUEUED}\n"
            "max_queued_bytes 0\n")


def start_broker(kind: str, workdir: Path, extra_conf: str = ""):
    """A broker on a free port: ('mosquitto'|'embedded') -> handle with .url, .port, .stop().
    extra_conf: more Mosquitto config lines (e.g. `max_connections -1` for P5)."""
    from tests.support.brokers import free_port, start_embedded, start_mosquitto

    port = free_port()
    if kind == "mosquitto":
        return start_mosquitto(port, config_dir=workdir / "mosquitto", extra_conf=mosquitto_conf() + extra_conf)
    if kind == "embedded":
        return start_embedded(port, log_path=str(workdir / "embedded-broker.log"))
    raise ValueError(f"unknown broker {kind!r}")


def broker_pid(broker) -> int | None:
    proc = getattr(broker, "_proc", None)
    return proc.pid if proc is not None else None


def raise_nofile(want: int | None = None) -> tuple[int, int]:
    """Raises this process's soft RLIMIT_NOFILE towards the hard limit (children inherit it:
    the broker, the host and the simulators each hold one descriptor per connection).
    Returns (soft, hard) after the change."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if want is None else min(max(want, soft), hard)
    if hard == resource.RLIM_INFINITY and want is None:
        target = max(soft, 1_048_576)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)


# ---- /proc --------------------------------------------------------------------------------------

def rss_mb(pid: int | None) -> float | None:
    if not pid:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of a process, in seconds (to show who used the machine's cores)."""
    if not pid:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"nproc={os.cpu_count()} {model} python={platform.python_version()}".strip()


# ---- metrics ------------------------------------------------------------------------------------

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape(base_url: str, timeout: float = 5.0) -> dict[tuple[str, tuple], float]:
    """GET /metrics -> {(name, ((label, value), ...)): value}."""
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=timeout) as r:
        text = r.read().decode()
    out: dict[tuple[str, tuple], float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        labels = tuple(sorted(_LABEL.findall(m.group(3) or "")))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def sample(metrics: dict, name: str, **labels: str) -> float:
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


def histogram_buckets(metrics: dict, name: str) -> list[tuple[float, float]]:
    """[(upper bound, cumulative count)] of a label-less histogram, sorted by bound."""
    out = []
    for (n, labels), v in metrics.items():
        if n == f"{name}_bucket":
            le = dict(labels)["le"]
            out.append((float("inf") if le == "+Inf" else float(le), v))
    return sorted(out)


def histogram_quantile(q: float, before: dict, after: dict, name: str) -> float | None:
    """The q-quantile of what a histogram observed between two scrapes (Prometheus's linear interpolation);
    inf when it lies beyond the last finite bucket."""
    b = dict(histogram_buckets(before, name))
    buckets = [(le, c - b.get(le, 0.0)) for le, c in histogram_buckets(after, name)]
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    prev_le, prev_c = 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if le == float("inf"):
                return float("inf")  # beyond the last finite bucket: only "more than prev_le" is known
            return prev_le + (le - prev_le) * ((rank - prev_c) / (c - prev_c) if c > prev_c else 1.0)
        prev_le, prev_c = le, c
    return None


# ---- the host as a subprocess -----------------------------------------------------------------

class HostProcess:
    """`python -m server.cli serve --port P` with FLOORHOST_* settings; .kill9() and .restart()."""

    def __init__(self, instance: Path, database_url: str, mqtt_url: str, port: int, log_path: Path,
                 extra_env: dict[str, str] | None = None):
        self.instance, self.database_url, self.mqtt_url, self.port = instance, database_url, mqtt_url, port
        self.log_path = log_path
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, timeout: float = 60.0) -> None:
        env = {**os.environ, "FLOORHOST_INSTANCE": str(self.instance), "FLOORHOST_DATABASE_URL": self.database_url,
               "FLOORHOST_MQTT_URL": self.mqtt_url, "FLOORHOST_SCHEDULER": "off",
               "FLOORHOST_LOG_LEVEL": "WARNING", **self.extra_env}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--port", str(self.port)],
                                         cwd=ROOT, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"host exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as r:
                    if json.loads(r.read())["mqtt"]["connected"]:
                        time.sleep(0.5)  # the SUBACK follows the CONNACK
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"host not ready after {timeout}s:\n{self.log_tail()}")

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill9()

    def log_tail(self, size: int = 3000) -> str:
        try:
            return self.log_path.read_bytes()[-size:].decode("utf-8", "replace")
        except OSError:
            return ""


# ---- the baseline: raw QoS 1 through the broker, publisher process -> subscriber process ------

def _payload(size: int) -> bytes:
    return (b'{"v":1,"seq":1,"ts":"2026-01-01T00:00:00.000Z","type":"game.end","body":{"pad":"'
            + b"x" * max(0, size - 90) + b'"}}')


def _connect(client, host: str, port: int, timeout: float = 10.0) -> None:
    client.connect(host, port, keepalive=30)
    client.loop_start()
    deadline = time.monotonic() + timeout
    while not client.is_connected():
        if time.monotonic() > deadline:
            raise TimeoutError("no CONNACK")
        time.sleep(0.01)


def baseline_subscriber(host: str, port: int, topic: str, counter, ready, stop) -> None:
    import paho.mqtt.client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-sub-{os.getpid()}", clean_session=True)

    def on_message(_c, _u, _m):
        counter.value += 1

    c.on_message = on_message
    acked = []
    c.on_subscribe = lambda *_a: acked.append(1)
    _connect(c, host, port)
    c.subscribe(topic, qos=1)
    while not acked:
        time.sleep(0.01)
    ready.set()
    stop.wait()
    c.disconnect()
    c.loop_stop()


def baseline_publisher(host: str, port: int, topic_prefix: str, size: int, counter, stop, window: int = 1000) -> None:
    """Publishes QoS 1 as fast as PUBACKs come back, keeping at most `window` unacknowledged."""
    import paho.mqtt.client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{os.getpid()}", clean_session=True)
    c.max_inflight_messages_set(window)
    c.max_queued_messages_set(0)
    acked = [0]

    def on_publish(_c, _u, _mid, _rc, _p):
        acked[0] += 1

    c.on_publish = on_publish
    _connect(c, host, port)
    payload = _payload(size)
    topics = [f"{topic_prefix}/{i:05d}/up" for i in range(200)]
    n = 0
    while not stop.is_set():
        if n - acked[0] >= 2 * window:
            time.sleep(0.0002)
            continue
        c.publish(topics[n % 200], payload, qos=1)
        n += 1
        if n % 1000 == 0:
            counter.value = acked[0]
    counter.value = acked[0]
    c.disconnect()
    c.loop_stop()


def measure_baseline(broker, seconds: float, warmup: float = 3.0, size: int = 220) -> dict[str, Any]:
    """Raw QoS 1 msgs/s received by a paho subscriber process from a paho publisher process."""
    ctx = mp.get_context("spawn")
    received = ctx.Value("q", 0, lock=False)
    published = ctx.Value("q", 0, lock=False)
    ready, stop = ctx.Event(), ctx.Event()
    host, port = "127.0.0.1", broker.port
    topic_root = f"bench{os.getpid()}"
    sub = ctx.Process(target=baseline_subscriber, args=(host, port, f"{topic_root}/#", received, ready, stop),
                      daemon=True)
    sub.start()
    if not ready.wait(20):
        sub.kill()
        raise RuntimeError("baseline subscriber did not subscribe")
    pub = ctx.Process(target=baseline_publisher, args=(host, port, topic_root, size, published, stop), daemon=True)
    pub.start()
    time.sleep(warmup)
    c0, t0 = received.value, time.monotonic()
    time.sleep(seconds)
    c1, t1 = received.value, time.monotonic()
    stop.set()
    for p in (pub, sub):
        p.join(10)
        if p.is_alive():
            p.kill()
    return {"msgs_per_s": (c1 - c0) / (t1 - t0), "window_s": t1 - t0, "received": c1 - c0,
            "payload_bytes": len(_payload(size))}


# ---- docs/benchmarks.md ---------------------------------------------------------------------------

_HEADER = """# Benchmarks

Figures measured by `scripts/bench/` against the performance spec (P1–P7). Machines here are shared
and noisy, so each figure is a ratio against a baseline measured in the same run, with
the absolute numbers beside it. Each section is rewritten by the script that measures it;
re-run the command shown to refresh it.
"""


def write_section(key: str, body: str) -> None:
    """Replaces (or appends) the block between `<!-- bench:key -->` markers in docs/benchmarks.md."""
    start, end = f"<!-- bench:{key} -->", f"<!-- /bench:{key} -->"
    block = f"{start}\n{body.rstrip()}\n{end}\n"
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else _HEADER
    if start in text and end in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1].lstrip("\n")
        text = before + block + ("\n" + after if after else "")
    else:
        text = text.rstrip() + "\n\n" + block
    BENCHMARKS_MD.parent.mkdir(parents=True, exist_ok=True)
    BENCHMARKS_MD.write_text(text)


def stop_floor(floor, tag: str) -> None:
    """Stops a simulated floor at the end of a bench; a failure is printed, never raised (cleanup goes on)."""
    if floor is None:
        return
    try:
        floor.stop(graceful=False, timeout=20)
    except Exception as exc:  # noqa: BLE001 — the bench must still clean up
        print(f"{tag} floor stop failed: {exc!r}", flush=True)


def today() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def table_section(header: list[str], rows: list[tuple], note: str | None = None) -> str:
    """A docs/benchmarks.md section: header lines, a figure/value table, then an optional note."""
    out = [*header, "| figure | value |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)]
    if note:
        out += ["", note]
    return "\n".join(out) + "\n"
