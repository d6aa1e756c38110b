"""Game configuration pages in a real browser: catalog with the new-package form, package detail (games,
sha256, signature), the deployment wizard and its live progress; roles decide what is offered."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from server.audit import SYSTEM
from terminals import deployments, registry
from terminals.config_models import DeploymentTarget

pytestmark = pytest.mark.browser


def register(host, egm_id, bank, model="M1"):
    with host.db.begin() as s:
        t = registry.register(s, SYSTEM, egm_id, "mqtt", {"bank": bank, "zone": "north"}, {}, host.now()).terminal
        t.model = model


def test_slot_tech_stores_a_package_and_sees_its_hash_and_signature(login, page, live_server, host):
    page = login("slot_tech")
    page.goto(live_server("/config"))
    expect(page.locator("#catalog")).to_contain_text("No packages yet.")
    expect(page.locator("#wizard")).to_have_count(0)
    page.fill("#pkg-name", "floor-a")
    page.fill("#pkg-version", "1.0")
    page.fill("#pkg-theme", "Lucky Sevens")
    page.fill("#pkg-paytable", "42")
    page.fill("#pkg-rtp", "9950")  # above the limit
    page.fill("#pkg-denoms", "1, 5, 25")
    page.fill("#pkg-maxbet", "500")
    with page.expect_navigation():
        page.click("#new-package button[type=submit]")
    expect(page.locator(".flash")).to_contain_text("outside the jurisdiction's limits")
    page.fill("#pkg-name", "floor-a")
    page.fill("#pkg-version", "1.0")
    page.fill("#pkg-theme", "Lucky Sevens")
    page.fill("#pkg-paytable", "42")
    page.fill("#pkg-rtp", "9250")
    page.fill("#pkg-denoms", "1, 5, 25")
    page.fill("#pkg-maxbet", "500")
    with page.expect_navigation():
        page.click("#new-package button[type=submit]")
    expect(page.locator("#pkg-title")).to_have_text("floor-a 1.0")
    with host.db.read() as s:
        from terminals import packages
        p = packages.list_all(s)[0]
        sha, sig = p.sha256, p.signature
    expect(page.locator("#pkg-sha256")).to_have_text(sha)
    expect(page.locator("#pkg-signature")).to_have_text(sig)
    expect(page.locator("#pkg-public-key")).to_have_text(host.signer.public_key_b64)
    expect(page.locator("#pkg-games")).to_contain_text("Lucky Sevens")
    expect(page.locator("#pkg-games")).to_contain_text("92.50 %")
    expect(page.locator("#pkg-games")).to_contain_text("1, 5, 25¢")
    expect(page.locator("#wizard")).to_have_count(0)  # a slot tech cannot deploy
    with host.db.read() as s:
        stored = [(p.name, p.version, p.created_by) for p in packages.list_all(s)]
    assert stored == [("floor-a", "1.0", "slot_tech_web")]  # the refused RTP stored nothing


def test_manager_deploys_with_the_wizard_and_watches_progress_live(login, page, live_server, host, api):
    register(host, "EGM1", "A")
    register(host, "EGM2", "A")
    register(host, "EGM3", "B")
    r = api.as_("slot_tech").post("/config-packages", json={
        "name": "floor-b", "version": "2", "games": [{"theme": "Reels", "paytable_id": "9", "rtp_bp": 9000,
                                                      "denoms_cents": [1], "max_bet_cents": 100}]})
    pid = r.get_json()["id"]
    page = login("manager")
    page.goto(live_server(f"/config/packages/{pid}"))
    page.check("#pick-EGM3")
    page.fill("#pick-bank", "A")
    page.select_option("#apply", "now")
    with page.expect_navigation():
        page.click("#deploy")
    assert "/config/deployments/" in page.url
    dep = int(page.url.rsplit("/", 1)[1])
    rows = page.locator("#progress tr[data-egm]")
    expect(rows).to_have_count(3)
    expect(page.locator("#progress tr[data-egm='EGM1'] td.state")).to_have_text("pending")
    expect(page.locator("#dep-status")).to_have_text("active")

    # A terminal reports: the page follows without a reload.
    page.evaluate("window.__noReload = 'still here'")
    with host.db.begin() as s:
        pkg_sha = s.get(deployments.ConfigPackage, pid).sha256
        x = s.query(DeploymentTarget).filter_by(deployment_id=dep, egm_id="EGM1").one()
        x.state = "sent"
        deployments.on_status(s, registry.get(s, "EGM1"), dep, "installed", pkg_sha, None, host.now())
    expect(page.locator("#progress tr[data-egm='EGM1'] td.state")).to_have_text("installed", timeout=6000)
    expect(page.locator("#dep-counts [data-state='installed'] b")).to_have_text("1")
    assert page.evaluate("window.__noReload") == "still here"

    with page.expect_navigation():
        page.click("#cancel button")
    expect(page.locator(".flash")).to_contain_text(f"Deployment {dep} cancelled.")
    expect(page.locator("#progress tr[data-egm='EGM3'] td.state")).to_have_text("cancelled")
    expect(page.locator("#progress tr[data-egm='EGM1'] td.state")).to_have_text("installed")
    page.goto(live_server("/config"))
    expect(page.locator("#deployments")).to_contain_text("floor-b 2")


def test_cashier_reads_but_cannot_post(login, page, live_server, host, api):
    page = login("cashier")
    page.goto(live_server("/config"))
    expect(page.locator("#catalog")).to_be_visible()
    expect(page.locator("#new-package")).to_have_count(0)
    assert page.locator("#new-package, #wizard").count() == 0
    # What the page does not offer, the API refuses too, and nothing is stored.
    r = api.as_("cashier").post("/config-packages", json={
        "name": "x", "version": "1", "games": [{"theme": "T", "paytable_id": "1", "rtp_bp": 9000,
                                                "denoms_cents": [1], "max_bet_cents": 100}]})
    assert r.status_code == 403
    with host.db.read() as s:
        from terminals import packages
        assert packages.list_all(s) == []


def test_a_package_or_deployment_that_does_not_exist_is_a_404_page(login, page, live_server):
    page = login("auditor")
    for path, text in (("/config/packages/999", "No config package 999."),
                       ("/config/deployments/998", "No deployment 998.")):
        response = page.goto(live_server(path))
        assert response.status == 404
        assert text in page.locator("body").inner_text()
