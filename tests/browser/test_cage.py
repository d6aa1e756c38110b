"""The cashier station in a real browser: drawer, scanning and paying vouchers (never twice), issuing one
with its PDF, closing with a variance, handpays with the patron form, roles and CSRF."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from cashier import drawers, handpays, vouchers
from cashier.models import Drawer, DrawerTransaction, Handpay, Voucher, W2G
from server.audit import SYSTEM, Actor
from terminals import registry
from tests.conftest import make_operator

pytestmark = pytest.mark.browser

SCREENSHOT = Path("/tmp/cage.png")
CASHIER = "cashier_web"  # the login fixture's username for role cashier


def terminal_voucher(host, cents: int, *, egm_id: str = "EGM1", days_ago: int = 0) -> str:
    with host.db.begin() as s:
        return vouchers.issue(s, vouchers.policy_for(host), amount_cents=cents, credit_type="cashable",
                              issued_by=egm_id, source="terminal",
                              now=host.now() - dt.timedelta(days=days_ago)).validation_number


def transactions(host) -> list[tuple[str, int, str]]:
    with host.db.read() as s:
        return [tuple(r) for r in s.execute(
            select(DrawerTransaction.kind, DrawerTransaction.amount_cents, DrawerTransaction.ref)
            .join(Drawer, Drawer.id == DrawerTransaction.drawer_id).where(Drawer.cashier == CASHIER)
            .order_by(DrawerTransaction.id)).all()]


def scan(page, number: str) -> None:
    """What a barcode scanner does: types the digits into the focused field and presses Enter."""
    expect(page.locator("#scan")).to_be_focused()
    page.keyboard.type(number, delay=5)
    page.keyboard.press("Enter")


def open_cage_with_drawer(login, page, live_server, float_: str = "500.00"):
    login("cashier")
    page.goto(live_server("/cage"))
    expect(page.locator("#float")).to_be_focused()  # no drawer yet: the float is the first thing to type
    page.keyboard.type(float_)
    page.keyboard.press("Enter")
    expect(page.locator("#drawer-open")).to_be_visible()


def test_cashier_shift_open_scan_pay_once_issue_and_close(login, page, live_server, host):
    paid_vn = terminal_voucher(host, 2_550)
    racy_vn = terminal_voucher(host, 1_000)
    expired_vn = terminal_voucher(host, 7_500, days_ago=181)

    open_cage_with_drawer(login, page, live_server, "1,500.00")
    expect(page.locator("#d-float")).to_have_text("$1,500.00")
    expect(page.locator("#d-expected")).to_have_text("$1,500.00")
    expect(page.locator("#scan")).to_be_focused()
    with host.db.read() as s:
        assert drawers.current(s, CASHIER).opening_cents == 150_000

    # Scan → the voucher; Enter → paid, the expected balance drops by its amount.
    scan(page, paid_vn)
    expect(page.locator("#v-amount")).to_have_text("$25.50")
    expect(page.locator("#v-state")).to_have_text("payable")
    expect(page.locator("#v-issued")).to_contain_text("by terminal EGM1")
    page.keyboard.press("Enter")
    expect(page.locator("#v-msg")).to_contain_text("Paid $25.50")
    expect(page.locator("#d-expected")).to_have_text("$1,474.50")
    expect(page.locator("#v-state")).to_have_text("redeemed")
    assert transactions(host) == [("voucher_redeem", -2_550, paid_vn)]

    # The same ticket again: shown as redeemed, and Enter pays nothing.
    scan(page, paid_vn)
    expect(page.locator("#v-state")).to_have_text("redeemed")
    expect(page.locator("#v-msg")).to_contain_text("Already redeemed")
    expect(page.locator("#v-pay")).to_be_disabled()
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    page.wait_for_timeout(300)
    assert transactions(host) == [("voucher_redeem", -2_550, paid_vn)]
    expect(page.locator("#d-expected")).to_have_text("$1,474.50")

    # A double Enter after the lookup pays once; two payment POSTs racing each other pay once too.
    scan(page, racy_vn)
    expect(page.locator("#v-state")).to_have_text("payable")
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    expect(page.locator("#v-msg")).to_contain_text("Paid $10.00")
    race = terminal_voucher(host, 300)
    statuses = page.evaluate("""async vn => {
        const token = document.querySelector("meta[name=csrf-token]").content;
        const post = () => fetch(`/cage/vouchers/${vn}/pay`, {method: "POST", credentials: "same-origin",
            headers: {"X-CSRFToken": token, "Content-Type": "application/json"}, body: "{}"})
            .then(async r => [r.status, (await r.json()).error?.code || "ok"]);
        return Promise.all([post(), post()]);
    }""", race)
    assert sorted(statuses) == [[200, "ok"], [409, "voucher_redeemed"]]
    assert transactions(host) == [("voucher_redeem", -2_550, paid_vn), ("voucher_redeem", -1_000, racy_vn),
                                  ("voucher_redeem", -300, race)]

    # Expired: shown as expired, not payable, Enter pays nothing.
    page.keyboard.press("Escape")
    scan(page, expired_vn)
    expect(page.locator("#v-state")).to_have_text("expired")
    expect(page.locator("#v-msg")).to_contain_text("manager must reinstate")
    expect(page.locator("#v-pay")).to_be_disabled()
    page.keyboard.press("Enter")
    page.wait_for_timeout(300)
    assert len(transactions(host)) == 3

    # Not a voucher of ours.
    page.keyboard.press("Escape")
    scan(page, "019999999999999999")
    expect(page.locator("#v-msg")).to_have_text("No voucher 01-9999-9999-9999-9999.")

    # Issue a cage voucher (F3), then open its printable PDF.
    page.keyboard.press("F3")
    expect(page.locator("#issue-amount")).to_be_focused()
    page.keyboard.type("40.00")
    page.keyboard.press("Enter")
    expect(page.locator("#issued")).to_be_visible()
    issued_vn = page.locator("#i-number").get_attribute("data-number")
    assert len(issued_vn) == 18 and issued_vn.isdigit()
    expect(page.locator("#i-number")).to_have_text("-".join(
        (issued_vn[:2], issued_vn[2:6], issued_vn[6:10], issued_vn[10:14], issued_vn[14:])))
    expect(page.locator("#d-expected")).to_have_text("$1,501.50")  # 1,500 − 25.50 − 10 − 3 + 40
    with host.db.read() as s:
        v = vouchers.get(s, issued_vn)
        assert (v.amount_cents, v.issued_by, v.issued_source, v.status) == (4_000, CASHIER, "cage", "issued")
    pdf = page.request.get(page.locator("#i-pdf").evaluate("a => a.href"))
    assert pdf.status == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.body().startswith(b"%PDF-")

    # What a cashier sees mid-shift: a scanned, payable voucher beside the drawer.
    shown_vn = terminal_voucher(host, 12_345, egm_id="EGM4")
    page.keyboard.press("Escape")
    scan(page, shown_vn)
    expect(page.locator("#v-state")).to_have_text("payable")
    expect(page.locator("#v-pay")).to_have_text("Pay $123.45 (Enter)")
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    page.keyboard.press("Escape")
    expect(page.locator("#voucher")).to_be_hidden()

    # Close with a count: expected, counted and variance are shown and stored.
    page.keyboard.press("F8")
    expect(page.locator("#counted")).to_be_focused()
    page.keyboard.type("1,500.00")
    page.keyboard.press("Enter")
    expect(page.locator("#closed")).to_be_visible()
    expect(page.locator("#c-expected")).to_have_text("$1,501.50")
    expect(page.locator("#c-counted")).to_have_text("$1,500.00")
    expect(page.locator("#c-variance")).to_have_text("-$1.50")
    expect(page.locator("#open-form")).to_be_visible()
    with host.db.read() as s:
        d = s.execute(select(Drawer).where(Drawer.cashier == CASHIER)).scalar_one()
        assert (d.status, d.expected_cents, d.counted_cents, d.variance_cents) == ("closed", 150_150, 150_000, -150)


def test_bad_amounts_and_no_drawer_are_refused_with_a_message(login, page, live_server, host):
    vn = terminal_voucher(host, 2_000)
    login("cashier")
    page.goto(live_server("/cage"))
    expect(page.locator("#float")).to_be_focused()
    page.keyboard.type("12.345")
    page.keyboard.press("Enter")
    expect(page.locator("#d-msg")).to_have_text("enter an amount in dollars and cents, like 125.00")
    with host.db.read() as s:
        assert drawers.current(s, CASHIER) is None
    # Without a drawer a voucher can be looked up but not paid.
    page.keyboard.press("F2")
    scan(page, vn)
    expect(page.locator("#v-state")).to_have_text("payable")
    page.keyboard.press("Enter")
    expect(page.locator("#v-msg")).to_have_text("Open a drawer first.")
    with host.db.read() as s:
        assert vouchers.get(s, vn).status == "issued"


def test_pay_a_handpay_with_the_patron_form_and_a_second_signer(login, page, live_server, host):
    with host.db.begin() as s:
        registry.register(s, SYSTEM, "EGM9", "mqtt", {}, {}, host.now())
    with host.db.begin() as s:
        big = handpays.create(s, host.clock, host.settings, egm_id="EGM9", amount_cents=650_000, kind="jackpot",
                              now=host.now())
        big_id, big_slip = big.id, big.slip_number
        small = handpays.create(s, host.clock, host.settings, egm_id="EGM9", amount_cents=35_000,
                                kind="cancelled_credit", now=host.now())
        small_id, small_slip = small.id, small.slip_number
    make_operator(host, "mgr_sign", "manager")

    open_cage_with_drawer(login, page, live_server, "10,000.00")
    row = page.locator(f"#hp-table tr[data-id='{big_id}']")
    expect(row.locator("td").nth(2)).to_have_text("$6,500.00")
    expect(row.locator("td").nth(4)).to_have_text("required")
    page.keyboard.press("F4")
    expect(row.locator("button.pay")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#hp-needs")).to_have_text("Needs the patron's identity (W-2G) and a second signer.")
    expect(page.locator("#hp-first")).to_be_focused()

    # Without the identity the service refuses and nothing moves.
    page.click("#hp-submit")
    expect(page.locator("#hp-msg")).to_contain_text("patron")
    page.fill("#hp-first", "Ada")
    page.fill("#hp-last", "Lovelace")
    page.fill("#hp-birth", "1985-12-10")
    page.select_option("#hp-idtype", "Passport")
    page.fill("#hp-idnum", "P1234567")
    page.fill("#hp-addr", "1 Main St, Reno NV")
    page.fill("#hp-su", "mgr_sign")
    page.fill("#hp-sp", "wrong password!")
    page.keyboard.press("Enter")
    expect(page.locator("#hp-msg")).to_contain_text("second signer")
    assert transactions(host) == []
    page.fill("#hp-sp", "correct horse battery")
    page.screenshot(path=str(SCREENSHOT.with_name("cage-handpay.png")), full_page=True)
    page.keyboard.press("Enter")

    expect(page.locator("#d-msg")).to_contain_text(f"Handpay slip {big_slip} paid: $6,500.00 · W-2G recorded")
    expect(page.locator("#d-expected")).to_have_text("$3,500.00")
    expect(row).to_have_count(0)
    assert transactions(host) == [("handpay_pay", -650_000, f"handpay:{big_slip}")]

    # Below every threshold: no form to fill, one click pays it.
    small_row = page.locator(f"#hp-table tr[data-id='{small_id}']")
    small_row.locator("button.pay").click()
    expect(page.locator("#hp-needs")).to_have_text("No patron form or second signer needed.")
    expect(page.locator("#hp-signer")).to_be_hidden()
    page.keyboard.press("Enter")
    expect(page.locator("#d-msg")).to_have_text(f"Handpay slip {small_slip} paid: $350.00.")
    expect(page.locator("#d-expected")).to_have_text("$3,150.00")
    expect(page.locator("#hp-table tbody")).to_have_text("No pending handpays.")
    with host.db.read() as s:
        h = s.get(Handpay, big_id)
        assert (h.status, h.paid_by, h.second_signer) == ("paid", CASHIER, "mgr_sign")
        w2g = s.execute(select(W2G).where(W2G.handpay_id == big_id)).scalar_one()
        assert (w2g.last_name, w2g.id_type, w2g.id_number) == ("Lovelace", "Passport", "P1234567")
    slip = page.request.get(live_server(f"/cage/handpays/{big_id}.pdf"))
    assert slip.status == 200 and slip.headers["content-type"] == "application/pdf"
    assert slip.body().startswith(b"%PDF-")


def test_slot_tech_is_refused_the_cage(login, page, live_server, host):
    vn = terminal_voucher(host, 100)
    login("slot_tech")
    assert page.locator("header nav a", has_text="Cage").count() == 0
    assert page.goto(live_server("/cage")).status == 403
    assert page.request.get(live_server("/cage/state.json")).status == 403
    assert page.request.get(live_server(f"/cage/vouchers/{vn}")).status == 403
    assert page.request.get(live_server(f"/cage/vouchers/{vn}.pdf")).status == 403


def test_cage_posts_without_the_csrf_token_are_refused(login, page, live_server, host):
    vn = terminal_voucher(host, 100)
    login("cashier")
    expect(page.locator("header nav a", has_text="Cage")).to_be_visible()
    page.goto(live_server("/cage"))
    with host.db.begin() as s:
        drawers.open_drawer(s, host.clock, Actor(CASHIER, "cashier"), 10_000, host.now())
    statuses = page.evaluate("""async vn => {
        const post = (url, body) => fetch(url, {method: "POST", credentials: "same-origin",
            headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)}).then(r => r.status);
        return [await post(`/cage/vouchers/${vn}/pay`, {}), await post("/cage/vouchers", {amount: "5.00",
                credit_type: "cashable"}), await post("/cage/drawer", {opening: "1.00"})];
    }""", vn)
    assert statuses == [400, 400, 400]
    with host.db.read() as s:
        assert vouchers.get(s, vn).status == "issued"
        assert s.execute(select(Voucher).where(Voucher.issued_source == "cage")).first() is None
    assert transactions(host) == []
