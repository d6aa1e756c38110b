"""MQTT topic names of the terminal protocol: build a terminal's topics and
tell which terminal and which stream a received topic belongs to."""

from __future__ import annotations

import re

DEFAULT_ROOT = "sbg/v1"

# \Z rather than $: "$" also matches before a trailing newline, and "EGM1\n" is no asset number.
EGM_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}\Z")

# The three streams of a terminal: up and status come from it, down goes to it.
KINDS = ("up", "status", "down")


def _root(root: str) -> str:
    if not isinstance(root, str) or not root.strip("/"):
        raise ValueError("topic root must be a non-empty string")
    if "+" in root or "#" in root:
        raise ValueError("topic root must not hold MQTT wildcards")
    # "sbg/v1/" and "sbg/v1" name the same root; an empty level would be a different topic.
    return root.rstrip("/")


def _topic(root: str, egm_id: str, kind: str) -> str:
    if not isinstance(egm_id, str) or not EGM_ID_RE.match(egm_id):
        raise ValueError(f"not an egm_id: {egm_id!r}")
    return f"{_root(root)}/egm/{egm_id}/{kind}"


def up_topic(root: str, egm_id: str) -> str:
    """The topic a terminal publishes its ordered message stream on."""
    return _topic(root, egm_id, "up")


def status_topic(root: str, egm_id: str) -> str:
    """The retained online/offline topic of a terminal (its last will goes here)."""
    return _topic(root, egm_id, "status")


def down_topic(root: str, egm_id: str) -> str:
    """The topic the host sends replies and commands to a terminal on."""
    return _topic(root, egm_id, "down")


def subscriptions(root: str) -> list[str]:
    """The topic filters the host subscribes to: every terminal's up and status."""
    base = _root(root)
    return [f"{base}/egm/+/up", f"{base}/egm/+/status"]


def parse_topic(topic: str, root: str = DEFAULT_ROOT) -> tuple[str, str] | None:
    """``"sbg/v1/egm/EGM1/up"`` -> ``("EGM1", "up")``; None when the topic is
    not one of a terminal's three topics under ``root``."""
    if not isinstance(topic, str):
        return None
    prefix = _root(root) + "/egm/"
    if not topic.startswith(prefix):
        return None
    levels = topic[len(prefix):].split("/")
    if len(levels) != 2:
        return None
    egm_id, kind = levels
    if kind not in KINDS or not EGM_ID_RE.match(egm_id):
        return None
    return egm_id, kind
