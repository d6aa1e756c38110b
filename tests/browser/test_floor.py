"""The floor page and the terminal page in a real browser: tiles, live updates by polling, meters, events, roles."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect

from server.audit import SYSTEM
from terminals import meters, registry

pytestmark = pytest.mark.browser

SCREENSHOT = Path("/tmp/floor.png")


def register(api, egm_id: str, bank: str = "A") -> None:
    r = api.as_("slot_tech").post("/terminals", json={"egm_id": egm_id, "protocol": "mqtt", "location": {"bank": bank}})
    assert r.status_code == 201, r.get_json()


def online(host, egm_id: str, *, enable: bool = True) -> None:
    with host.db.begin() as s:
        t = registry.get(s, egm_id)
        registry.went_online(s, host.clock, t, host.now(), "mqtt")
        if enable:
            registry.set_enabled(s, SYSTEM, t, True, host.now())


def event(host, egm_id: str, code: str) -> None:
    with host.db.begin() as s:
        registry.add_event(s, host.clock, registry.get(s, egm_id), code, host.now())


def snapshots(host, egm_id: str, *readings: dict[str, int]) -> None:
    """Records meter readings a second apart, ending now, so the day gets their deltas."""
    now = host.now()
    for i, values in enumerate(readings):
        with host.db.begin() as s:
            at = now - dt.timedelta(seconds=len(readings) - 1 - i)
            meters.record_snapshot(s, host.clock, registry.get(s, egm_id), values, at)


def tile(page, egm_id: str):
    return page.locator(f"#floor-grid a.tile[data-egm='{egm_id}']")


def test_floor_lists_tiles_and_updates_them_without_a_reload(login, page, api, host):
    register(api, "EGM1")
    register(api, "EGM2", bank="B")
    online(host, "EGM1")
    snapshots(host, "EGM1", {"coin_in_cents": 10_000, "games_played": 40},
              {"coin_in_cents": 12_550, "games_played": 51})

    login("manager")
    expect(tile(page, "EGM1")).to_have_attribute("data-state", "online")
    expect(tile(page, "EGM2")).to_have_attribute("data-state", "unknown")
    assert page.locator("#floor-grid a.tile").count() == 2
    expect(tile(page, "EGM1").locator(".st")).to_have_text("online")
    expect(tile(page, "EGM1").locator(".ci")).to_have_text("coin-in $25.50")  # the delta, not the lifetime meter
    expect(tile(page, "EGM2").locator(".ci")).to_have_text("coin-in $0.00")
    expect(tile(page, "EGM2")).to_have_class("tile unknown disabled")
    expect(page.locator("#coin-in")).to_have_text("$25.50")
    expect(page.locator("#n-online")).to_have_text("1")
    expect(page.locator("#n-offline")).to_have_text("1")
    expect(page.locator("#gaming-day")).to_have_text(host.gaming_day().isoformat())

    # Mark the document: a reload would lose the mark, polling keeps it.
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    page.evaluate("window.__noReload = 'still here'")

    online(host, "EGM2", enable=False)
    event(host, "EGM1", "door.main.open")
    snapshots(host, "EGM1", {"coin_in_cents": 13_000, "games_played": 55})

    expect(tile(page, "EGM1")).to_have_attribute("data-state", "door_open", timeout=6_000)
    expect(tile(page, "EGM1").locator(".st")).to_have_text("door open")
    expect(tile(page, "EGM1").locator(".ev")).to_have_text("last: door.main.open")
    expect(tile(page, "EGM2")).to_have_attribute("data-state", "online", timeout=6_000)
    expect(tile(page, "EGM1").locator(".ci")).to_have_text("coin-in $30.00")
    expect(page.locator("#n-attention")).to_have_text("1")
    assert page.evaluate("window.__noReload") == "still here"
    assert navigations == []


def test_clicking_a_tile_opens_the_terminal_page_with_meters_and_events(login, page, api, host):
    register(api, "EGM7")
    online(host, "EGM7")
    snapshots(host, "EGM7", {"coin_in_cents": 10_000, "games_played": 40},
              {"coin_in_cents": 12_550, "games_played": 51})
    event(host, "EGM7", "door.main.open")

    login("slot_tech")
    with page.expect_navigation():
        tile(page, "EGM7").click()
    assert urlparse(page.url).path == "/floor/EGM7"
    expect(page.locator("#egm-title")).to_contain_text("EGM7")
    expect(page.locator("#egm-title")).to_contain_text("door_open")

    coin_in = page.locator("#meters tr", has=page.locator("td", has_text="coin_in_cents"))
    expect(coin_in.locator("td")).to_have_text(["coin_in_cents", "125.50", "25.50"])
    played = page.locator("#meters tr", has=page.locator("td", has_text="games_played"))
    expect(played.locator("td")).to_have_text(["games_played", "51", "11"])
    # A meter the terminal never reported shows a dash, not an error page.
    jackpot = page.locator("#meters tr", has=page.locator("td", has_text="jackpot_cents"))
    expect(jackpot.locator("td").nth(1)).to_have_text("–")

    expect(page.locator("#events")).to_contain_text("door.main.open")
    assert page.locator("#events td", has_text="No events yet.").count() == 0


def test_a_cashier_sees_the_floor(login, page, api, host):
    register(api, "EGM3")
    online(host, "EGM3")
    login("cashier")
    assert urlparse(page.url).path == "/floor"
    expect(tile(page, "EGM3")).to_have_attribute("data-state", "online")
    with page.expect_navigation() as nav:
        tile(page, "EGM3").click()
    assert nav.value.status == 200
    expect(page.locator("#egm-title")).to_contain_text("EGM3")


def test_floor_screenshot_renders_a_readable_grid(login, page, api, host):
    states = {"EGM01": None, "EGM02": "door.main.open", "EGM03": "tilt", "EGM04": "offline", "EGM05": None,
              "EGM06": None, "EGM07": "unknown", "EGM08": None}
    for i, (egm_id, what) in enumerate(states.items()):
        register(api, egm_id, bank="AB"[i % 2])
        if what == "unknown":
            continue
        online(host, egm_id, enable=egm_id != "EGM05")
        if what == "offline":
            with host.db.begin() as s:
                registry.went_offline(s, host.clock, registry.get(s, egm_id), host.now(), "timeout", "mqtt")
        elif what:
            event(host, egm_id, what)
    snapshots(host, "EGM01", {"coin_in_cents": 500_000}, {"coin_in_cents": 512_345})

    login("manager")
    expect(page.locator("#floor-grid a.tile")).to_have_count(len(states))
    expect(tile(page, "EGM02")).to_have_attribute("data-state", "door_open")
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 5_000

    # Tiles sit in a grid of several columns, none overlapping, all inside the viewport's width.
    boxes = [tile(page, e).bounding_box() for e in states]
    assert len({round(b["y"]) for b in boxes}) < len(boxes), "tiles are stacked one per row"
    for i, a in enumerate(boxes):
        assert a["x"] >= 0 and a["x"] + a["width"] <= 1280
        for b in boxes[i + 1:]:
            apart = (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
                     or a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"])
            assert apart, (a, b)

    # State colours: green online, amber door open and tilt, grey offline.
    def edge(egm_id):
        return tile(page, egm_id).evaluate("e => getComputedStyle(e).borderLeftColor")

    assert edge("EGM01") == "rgb(46, 160, 67)"
    assert edge("EGM02") == edge("EGM03") == "rgb(210, 153, 34)"
    assert edge("EGM04") == "rgb(85, 85, 85)"
    expect(tile(page, "EGM05").locator(".st")).to_have_text("online")
    assert "disabled" in tile(page, "EGM05").locator(".st").evaluate(
        "e => getComputedStyle(e, '::after').content")
    expect(page.locator("#coin-in")).to_have_text("$123.45")
