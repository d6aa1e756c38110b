"""Topic names: building a terminal's topics and parsing received ones."""

import pytest

from protocols.mqtt import (
    EGM_ID_RE, down_topic, parse_topic, status_topic, subscriptions, up_topic,
)


def test_build():
    assert up_topic("sbg/v1", "EGM1") == "sbg/v1/egm/EGM1/up"
    assert status_topic("sbg/v1", "EGM1") == "sbg/v1/egm/EGM1/status"
    assert down_topic("casino/floor2", "a-b_C9") == "casino/floor2/egm/a-b_C9/down"
    assert down_topic("sbg/v1/", "EGM1") == "sbg/v1/egm/EGM1/down"


@pytest.mark.parametrize("egm_id", ["", "x" * 33, "EGM 1", "EGM/1", "+", "#", "EGM1\n", "ÉGM1", None])
def test_build_refuses_bad_egm_id(egm_id):
    with pytest.raises(ValueError):
        up_topic("sbg/v1", egm_id)


@pytest.mark.parametrize("root", ["", "/", "sbg/+", "sbg/#", None])
def test_build_refuses_bad_root(root):
    with pytest.raises(ValueError):
        down_topic(root, "EGM1")


def test_subscriptions():
    assert subscriptions("sbg/v1") == ["sbg/v1/egm/+/up", "sbg/v1/egm/+/status"]
    assert subscriptions("a/b/c") == ["a/b/c/egm/+/up", "a/b/c/egm/+/status"]


@pytest.mark.parametrize("topic, expected", [
    ("sbg/v1/egm/EGM1/up", ("EGM1", "up")),
    ("sbg/v1/egm/EGM1/status", ("EGM1", "status")),
    ("sbg/v1/egm/EGM1/down", ("EGM1", "down")),
    ("sbg/v1/egm/" + "Z" * 32 + "/up", ("Z" * 32, "up")),
    ("sbg/v1/egm/a_b-9/up", ("a_b-9", "up")),
])
def test_parse(topic, expected):
    assert parse_topic(topic) == expected


@pytest.mark.parametrize("topic", [
    "sbg/v2/egm/EGM1/up", "sbg/v1/egm/EGM1/up/extra", "sbg/v1/egm/EGM1", "sbg/v1/egm//up",
    "sbg/v1/egm/EGM1/UP", "sbg/v1/egm/EGM1/meters", "sbg/v1/egm/" + "Z" * 33 + "/up",
    "sbg/v1/egm/EGM 1/up", "sbg/v1/egm/+/up", "sbg/v1/egm/#", "/sbg/v1/egm/EGM1/up",
    "sbg/v1/terminal/EGM1/up", "sbg/v1/egm/EGM1\n/up", "sbg/v1/egm/EGM1/up\n", "", None, b"x",
])
def test_parse_refuses(topic):
    assert parse_topic(topic) is None


def test_parse_with_another_root():
    assert parse_topic("casino/floor2/egm/T7/up", root="casino/floor2") == ("T7", "up")
    assert parse_topic("sbg/v1/egm/T7/up", root="casino/floor2") is None


def test_egm_id_re():
    assert EGM_ID_RE.match("EGM-01_a")
    assert not EGM_ID_RE.match("EGM1\n")
    assert not EGM_ID_RE.match("ＥＧＭ")
