"""Player club pages in a real browser: a cashier searches and opens a profile (sessions, points, tier,
exclusion status); a manager adjusts points and excludes through CSRF-protected forms; roles; the cage's
handpay list shows the excluded-player flag."""
from __future__ import annotations

import datetime as dt

import pytest
from playwright.sync_api import expect

from cashier import handpays
from players import accounts
from players.models import Player
from server.audit import SYSTEM
from terminals import registry
from tests.players.helpers import MANAGER, card_in, card_out, enrol, game

pytestmark = pytest.mark.browser


def test_cashier_searches_and_reads_a_profile(login, page, live_server, host):
    pid = enrol(host, "C-77", "Grace", "Hopper", "1960-12-09")
    enrol(host, "C-78", "Alan", "Turing")
    t0 = host.now() - dt.timedelta(minutes=30)
    card_in(host, "EGM4", "C-77", t0)
    for _ in range(4):
        game(host, "EGM4", t0 + dt.timedelta(minutes=1), 500, 100)
    card_out(host, "EGM4", "C-77", t0 + dt.timedelta(minutes=20))

    login("cashier")
    page.goto(live_server("/players"))
    expect(page.locator("nav a", has_text="Players")).to_be_visible()
    page.fill("#q", "hopp")
    page.keyboard.press("Enter")
    rows = page.locator("#results tr[data-id]")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Hopper, Grace")
    expect(rows.first.locator(".status")).to_have_text("active")
    # The card number finds the player too.
    page.fill("#q", "C-78")
    page.keyboard.press("Enter")
    expect(page.locator("#results tr[data-id]")).to_have_count(1)
    expect(page.locator("#results")).to_contain_text("Turing, Alan")
    page.fill("#q", "zzz")
    page.keyboard.press("Enter")
    expect(page.locator("#none")).to_be_visible()

    page.goto(live_server(f"/players/{pid}"))
    expect(page.locator("#player-name")).to_contain_text("Grace Hopper")
    expect(page.locator("#p-points")).to_have_text("20")
    expect(page.locator("#p-tier")).to_have_text("Bronze")
    expect(page.locator("#p-status")).to_have_text("active")
    row = page.locator("#sessions tr[data-id]")
    expect(row).to_have_count(1)
    expect(row.first).to_contain_text("EGM4")
    expect(row.first).to_contain_text("$20.00")   # coin-in
    expect(row.first).to_contain_text("$5.00")    # average bet
    expect(row.first).to_contain_text("0:20")     # time played
    expect(row.first).to_contain_text("card out")
    # A cashier sees no manager forms, and posting one anyway is refused.
    expect(page.locator("#adjust")).to_have_count(0)
    status = page.evaluate(f"""async () => (await fetch("/players/{pid}/points", {{method: "POST",
        credentials: "same-origin", body: new URLSearchParams({{delta: "5", reason: "x"}})}})).status""")
    assert status in (400, 403)  # no CSRF token (400) and not a manager (403): either way nothing moves
    with host.db.read() as s:
        assert s.get(Player, pid).points == 20


def test_manager_adjusts_points_and_excludes(login, page, live_server, host):
    pid = enrol(host, "C-90", "Edsger", "Dijkstra")
    login("manager")
    page.goto(live_server(f"/players/{pid}"))
    page.fill("#adj-delta", "150")
    page.fill("#adj-reason", "birthday")
    with page.expect_navigation():
        page.click("#adjust button[type=submit]")
    expect(page.locator(".flash")).to_contain_text("Points adjusted by 150")
    expect(page.locator("#p-points")).to_have_text("150")
    expect(page.locator("#points")).to_contain_text("birthday")
    # Below zero is refused, and said so.
    page.fill("#adj-delta", "-500")
    page.fill("#adj-reason", "oops")
    with page.expect_navigation():
        page.click("#adjust button[type=submit]")
    expect(page.locator(".flash")).to_contain_text("Refused")
    expect(page.locator("#p-points")).to_have_text("150")

    page.check("#ex-permanent")
    page.fill("#ex-reason", "asked at the desk")
    with page.expect_navigation():
        page.click("#exclude button[type=submit]")
    expect(page.locator("#excluded")).to_contain_text("EXCLUDED (self), permanently")
    expect(page.locator("#p-status")).to_have_text("excluded")
    page.goto(live_server("/players?q=dijkstra"))
    expect(page.locator("#results .status")).to_have_text("EXCLUDED")
    assert card_in(host, "EGM1", "C-90", host.now()).status == "excluded"


def test_roles_and_the_cage_flag(login, page, live_server, host):
    pid = enrol(host, "C-13", "Ex", "Cluded")
    with host.db.begin() as s:
        registry.register(s, SYSTEM, "EGM5", "mqtt", {}, {}, host.now())
        accounts.exclude(s, host.clock, MANAGER, pid, until=None, permanent=True, reason="ban", kind="ban",
                         now=host.now())
    card_in(host, "EGM5", "C-13", host.now())
    with host.db.begin() as s:
        hp = handpays.create(s, host.clock, host.settings, egm_id="EGM5", amount_cents=150_000, kind="jackpot",
                             now=host.now())
        hp_id = hp.id
    login("cashier")
    page.goto(live_server("/cage"))
    page.keyboard.type("500.00")
    page.keyboard.press("Enter")
    row = page.locator(f"#hp-table tr[data-id='{hp_id}']")
    expect(row.locator(".flagged")).to_contain_text("excluded player")

    # An attendant may not read players: no link, and the page is refused.
    page.context.clear_cookies()
    login("attendant")
    expect(page.locator("nav a", has_text="Players")).to_have_count(0)
    resp = page.goto(live_server(f"/players/{pid}"))
    assert resp.status == 403
