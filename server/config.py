"""The host's one settings object: a TOML file, overridden by FLOORHOST_* variables.

cli.md is the contract: keys are the variable names without FLOORHOST_, in lower
case, at the top level of the file. Settings are read once, at start-up, and
passed down; nothing deeper in the code reads the environment.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import json
import os
import tomllib
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

ENV_PREFIX = "FLOORHOST_"


class ConfigError(Exception):
    """A configuration value that cannot be used; str() is the one line to print."""

    def __init__(self, key: str, problem: str):
        self.key = key
        self.problem = problem
        super().__init__(f"configuration error: {key}: {problem}")


def _local_zone_name() -> str:
    # The machine's zone: TZ if set, else /etc/timezone or the /etc/localtime link.
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz:
        return tz
    try:
        name = Path("/etc/timezone").read_text().strip()
        if name:
            return name
    except OSError:
        pass
    try:
        target = os.readlink("/etc/localtime")
        return target.split("zoneinfo/", 1)[1]
    except (OSError, IndexError):
        return "UTC"


@dataclass(frozen=True)
class Settings:
    instance: str = "./instance"
    database_url: str = ""
    mqtt_url: str = "embedded"
    mqtt_embedded_port: int = 1883
    timezone: str = ""
    gaming_day_start: str = "06:00"
    voucher_expiry_days: int = 180
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    topic_root: str = "sbg/v1"
    scheduler: str = "on"

    # Beyond the contract's minimum: operational knobs, all with safe defaults.
    property_name: str = "Floorhost Casino"
    secret_key: str = ""
    http_threads: int = 16
    metrics_networks: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    token_ttl_minutes: int = 720
    login_max_failures: int = 5
    login_window_minutes: int = 15
    lockout_minutes: int = 15
    password_max_age_days: int = 90
    password_min_length: int = 10
    voucher_hold_seconds: int = 15
    voucher_max_cents: int = 10_000_000
    message_max_bytes: int = 65536
    terminal_heartbeat_seconds: int = 60
    command_timeout_seconds: int = 60
    gateway_batch_max: int = 1000
    gateway_batch_wait_ms: int = 5
    gateway_workers: int = 1
    rtp_min_bp: int = 7500
    rtp_max_bp: int = 9900
    tax_thresholds: tuple[tuple[str, int], ...] = (("1900-01-01", 120_000), ("2026-01-01", 200_000))
    second_signer_cents: int = 500_000
    mtl_threshold_cents: int = 300_000
    ctr_threshold_cents: int = 1_000_000
    minimum_age: int = 21
    sas_system_id: int = 1
    log_level: str = "INFO"

    # ---- derived values -------------------------------------------------
    @property
    def instance_path(self) -> Path:
        return Path(self.instance).resolve()

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    @property
    def gaming_day_start_time(self) -> dt.time:
        return dt.time.fromisoformat(self.gaming_day_start)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def tax_threshold_cents(self, day: dt.date) -> int:
        """The handpay tax threshold in force on a given date (rules.md 14)."""
        amount = self.tax_thresholds[0][1]
        for start, cents in sorted(self.tax_thresholds):
            if dt.date.fromisoformat(start) <= day:
                amount = cents
        return amount

    def public_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("secret_key", None)
        return d


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Turns a file or environment value into the field's type, or raises ConfigError."""
    env_name = ENV_PREFIX + key.upper()
    from_env = isinstance(value, str) and not isinstance(default, str)
    try:
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if isinstance(default, int):
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, int):
                return value
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                return int(value)
            raise ValueError
        if isinstance(default, tuple):
            if from_env:
                value = json.loads(value) if value.strip().startswith("[") else [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, (list, tuple)):
                raise ValueError
            return tuple(tuple(v) if isinstance(v, list) else v for v in value)
        if not isinstance(value, str):
            raise ValueError
        return value
    except (ValueError, json.JSONDecodeError):
        kind = type(default).__name__ if not isinstance(default, tuple) else "list"
        raise ConfigError(env_name if from_env else key, f"expected {kind}, got {value!r}") from None


def _validate(s: Settings) -> None:
    def bad(key: str, problem: str) -> ConfigError:
        return ConfigError(key, problem)

    try:
        zoneinfo.ZoneInfo(s.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise bad("timezone", f"unknown time zone {s.timezone!r}") from None
    try:
        dt.time.fromisoformat(s.gaming_day_start)
    except ValueError:
        raise bad("gaming_day_start", f"expected HH:MM, got {s.gaming_day_start!r}") from None
    if not (s.mqtt_url == "embedded" or s.mqtt_url.startswith(("mqtt://", "mqtts://"))):
        raise bad("mqtt_url", "expected 'embedded', mqtt://host:port or mqtts://host:port")
    if s.scheduler not in ("on", "off"):
        raise bad("scheduler", "expected 'on' or 'off'")
    for key in ("http_port", "mqtt_embedded_port"):
        if not 0 <= getattr(s, key) <= 65535:
            raise bad(key, "port out of range")
    if s.voucher_expiry_days < 1:
        raise bad("voucher_expiry_days", "must be at least 1")
    if not 1 <= s.sas_system_id <= 99:
        raise bad("sas_system_id", "must be 1..99")
    if not 0 < s.rtp_min_bp <= s.rtp_max_bp <= 10000:
        raise bad("rtp_min_bp", "expected 0 < rtp_min_bp <= rtp_max_bp <= 10000")
    for net in s.metrics_networks:
        try:
            ipaddress.ip_network(net)
        except ValueError:
            raise bad("metrics_networks", f"not a network: {net!r}") from None
    for entry in s.tax_thresholds:
        try:
            start, cents = entry
            dt.date.fromisoformat(start)
            if not isinstance(cents, int) or cents <= 0:
                raise ValueError
        except (ValueError, TypeError):
            raise bad("tax_thresholds", f"expected [[\"YYYY-MM-DD\", cents], ...], got {entry!r}") from None
    if not s.database_url.startswith(("sqlite", "postgresql")):
        raise bad("database_url", "only sqlite:// and postgresql:// URLs are supported")


def load_settings(overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Reads the config file and the environment; `overrides` (tests, create_app) win over both."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}

    instance = (overrides or {}).get("instance") or environ.get(ENV_PREFIX + "INSTANCE") or Settings.instance
    named = environ.get(ENV_PREFIX + "CONFIG")
    path = Path(named) if named else Path(instance) / "floorhost.toml"
    if named or path.exists():
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError("FLOORHOST_CONFIG", f"file not found: {path}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError("FLOORHOST_CONFIG", f"malformed TOML in {path}: {exc}") from None
        except OSError as exc:
            raise ConfigError("FLOORHOST_CONFIG", f"cannot read {path}: {exc.strerror}") from None
        for key, value in data.items():
            if key not in _FIELDS:
                raise ConfigError(key, f"unknown key in {path}")
            values[key] = _coerce(key, value, _FIELDS[key].default)

    for key, f in _FIELDS.items():
        raw = environ.get(ENV_PREFIX + key.upper())
        if raw is not None:
            values[key] = _coerce(key, raw, f.default)

    for key, value in (overrides or {}).items():
        if key not in _FIELDS:
            raise ConfigError(key, "unknown setting")
        values[key] = value if not isinstance(value, str) or isinstance(_FIELDS[key].default, str) else _coerce(key, value, _FIELDS[key].default)

    values.setdefault("instance", instance)
    values["instance"] = str(Path(values["instance"]).resolve())
    if not values.get("database_url"):
        values["database_url"] = f"sqlite:///{Path(values['instance']) / 'floorhost.db'}"
    if not values.get("timezone"):
        values["timezone"] = _local_zone_name()
    settings = Settings(**values)
    _validate(settings)
    return settings
