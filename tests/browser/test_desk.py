"""The manager's desk in a real browser: today's figures, the server-side hold chart, the reports browser
(HTML in the page, PDF downloaded and rendered to pixels), and roles."""
from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import expect

from cashier import handpays
from server.audit import SYSTEM
from terminals import meters, registry

pytestmark = pytest.mark.browser


def seed_today(host):
    now = host.now()
    with host.db.begin() as s:
        registry.register(s, SYSTEM, "EGM1", "mqtt", {"bank": "A"}, {}, now - dt.timedelta(days=2))
        registry.register(s, SYSTEM, "EGM2", "mqtt", {"bank": "A"}, {}, now - dt.timedelta(days=2))
        registry.went_online(s, host.clock, registry.get(s, "EGM1"), now, "mqtt")
    readings = [({"coin_in_cents": 10_000, "coin_out_cents": 5_000, "jackpot_cents": 0}, 120),
                ({"coin_in_cents": 30_000, "coin_out_cents": 20_000, "jackpot_cents": 0}, 60)]
    for values, ago in readings:
        with host.db.begin() as s:
            meters.record_snapshot(s, host.clock, registry.get(s, "EGM1"), values, now - dt.timedelta(seconds=ago))
    # Yesterday: $100 in, $90 out → 10 % hold, a second point on the trend.
    yday = now - dt.timedelta(days=1)
    for values, ago in [({"coin_in_cents": 0, "coin_out_cents": 0}, 60), ({"coin_in_cents": 10_000, "coin_out_cents": 9_000}, 30)]:
        with host.db.begin() as s:
            meters.record_snapshot(s, host.clock, registry.get(s, "EGM2"), values, yday - dt.timedelta(seconds=ago))
    with host.db.begin() as s:
        handpays.create(s, host.clock, host.settings, egm_id="EGM1", amount_cents=150_000, kind="jackpot", now=now)


def test_dashboard_shows_todays_figures_and_the_hold_chart(login, page, live_server, host):
    seed_today(host)
    login("manager")
    page.goto(live_server("/desk"))
    # Today: $200 in, $150 out → $50 win, 25.00 % hold.
    expect(page.locator("#coin-in")).to_have_text("$200.00")
    expect(page.locator("#net-win")).to_have_text("$50.00")
    expect(page.locator("#hold")).to_have_text("25.00 %")
    expect(page.locator("#n-offline")).to_have_text("1")  # EGM2 never came online
    expect(page.locator("#n-handpays")).to_have_text("1")
    expect(page.locator("#n-alerts")).to_have_text("0")
    points = page.locator("#hold-chart circle.pt")
    expect(points).to_have_count(2)
    assert [points.nth(i).get_attribute("data-hold-bp") for i in range(2)] == ["1000", "2500"]
    assert points.nth(1).get_attribute("data-day") == host.gaming_day().isoformat()
    box = page.locator("#hold-chart").bounding_box()
    assert box and box["width"] > 300 and box["height"] > 100  # drawn, not collapsed
    # Later point is higher hold → smaller y on screen.
    assert float(points.nth(1).get_attribute("cy")) < float(points.nth(0).get_attribute("cy"))


def test_reports_browser_shows_html_and_downloads_a_pdf_that_renders(login, page, live_server, host, tmp_path):
    seed_today(host)
    login("auditor")
    page.goto(live_server("/desk/reports"))
    today = host.gaming_day().isoformat()
    page.select_option("#report", "win")
    page.fill("#gaming_day", today)
    page.select_option("#format", "html")
    with page.expect_navigation():
        page.click("#show")
    url = urlparse(page.url)
    assert url.path == "/desk/reports/win" and parse_qs(url.query)["gaming_day"] == [today]
    expect(page.locator("h1.report-title")).to_have_text("Win and hold")
    total = page.locator("table.report-rows tr", has=page.locator("td", has_text="total"))
    expect(total.first.locator("td").nth(3)).to_have_text("$200.00")
    expect(page.locator("table.report-totals th[data-key=hold_bp] + td")).to_have_text("25.00 %")

    # A range through the same form.
    page.goto(live_server("/desk/reports"))
    page.select_option("#report", "meters")
    page.check("#range")
    page.fill("#from", (host.gaming_day() - dt.timedelta(days=1)).isoformat())
    page.fill("#to", today)
    with page.expect_navigation():
        page.click("#show")
    expect(page.locator("dl.report-header")).to_contain_text("gaming days")
    expect(page.locator("table.report-rows")).to_contain_text("EGM2")

    r = page.request.get(live_server(f"/desk/reports/win?gaming_day={today}&format=pdf"))
    assert r.status == 200 and r.headers["content-type"] == "application/pdf"
    exe = shutil.which("pdftoppm")
    if exe is None:
        pytest.skip("pdftoppm (poppler-utils) not installed")
    from PIL import Image

    (tmp_path / "win.pdf").write_bytes(r.body())
    subprocess.run([exe, "-png", "-r", "60", "-singlefile", "-f", "1", "-l", "1", str(tmp_path / "win.pdf"),
                    str(tmp_path / "win")], check=True, timeout=30)
    img = Image.open(tmp_path / "win.png").convert("L")
    assert img.size[0] > img.size[1]  # landscape A4
    dark = sum(img.histogram()[:128]) / (img.size[0] * img.size[1])
    assert 0.005 < dark < 0.3


def test_desk_is_for_managers_and_auditors(login, page, live_server, host):
    login("cashier")
    for path in ("/desk", "/desk/reports", "/desk/reports/win"):
        assert page.goto(live_server(path)).status == 403
