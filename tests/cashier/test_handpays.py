"""Handpays (rules.md 14–16): slip numbers, tax threshold by date of the win, W-2G, second signer,
drawer, void, roles, and a terminal's handpay through the real broker to the reset command."""
from __future__ import annotations

import datetime as dt
import threading
import zoneinfo

import pytest
from sqlalchemy import func, select

from cashier import handpays
from cashier.models import DrawerTransaction, Handpay, W2G
from server.audit import SYSTEM
from server.models import AuditEntry
from terminals import registry
from terminals.models import Command, Terminal
from tests.conftest import PASSWORD, make_operator
from tests.support.terminal import RawTerminal, eventually

LA = zoneinfo.ZoneInfo("America/Los_Angeles")  # the test host's zone (conftest)
PATRON = {"first_name": "Ada", "last_name": "Lovelace", "birth_date": "1985-12-10", "id_type": "DL",
          "id_number": "D1234567", "address": "1 Main St, Reno NV"}


def local(*a) -> dt.datetime:
    return dt.datetime(*a, tzinfo=LA).astimezone(dt.timezone.utc)


def add_terminal(host, egm_id: str = "EGM1", online: bool = False) -> None:
    with host.db.begin() as s:
        t = registry.register(s, SYSTEM, egm_id, "mqtt", {}, {}, host.now()).terminal
        if online:
            t.comms = "online"


def new_handpay(host, amount: int, kind: str = "jackpot", now: dt.datetime | None = None,
                egm_id: str = "EGM1") -> int:
    with host.db.begin() as s:
        return handpays.create(s, host.clock, host.settings, egm_id=egm_id, amount_cents=amount, kind=kind,
                               now=now or host.now()).id


def count(host, model, *where) -> int:
    with host.db.read() as s:
        return s.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def load(host, handpay_id: int) -> Handpay:
    with host.db.read() as s:
        return s.get(Handpay, handpay_id)


@pytest.fixture
def cashier(api):
    """cashier1 with an open drawer of $50,000."""
    c = api.as_("cashier")
    assert c.post("/drawers", json={"opening_cents": 5_000_000}).status_code == 201
    return c


def test_slip_numbers_consecutive_and_unique_under_concurrency(host):
    add_terminal(host)
    n = 16
    barrier = threading.Barrier(n)
    slips, errors = [], []

    def worker():
        try:
            barrier.wait(10)
            with host.db.begin() as s:
                h = handpays.create(s, host.clock, host.settings, egm_id="EGM1", amount_cents=10_000,
                                    kind="jackpot", now=host.now())
                slips.append(h.slip_number)
        except Exception as exc:  # collected: a failure in a thread must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert sorted(slips) == list(range(1, n + 1))

    # A creation that rolls back gives its number back: no gap.
    with pytest.raises(RuntimeError):
        with host.db.begin() as s:
            handpays.create(s, host.clock, host.settings, egm_id="EGM1", amount_cents=500, kind="jackpot",
                            now=host.now())
            raise RuntimeError("cashier page crashed")
    assert load(host, new_handpay(host, 700)).slip_number == n + 1


def test_tax_threshold_by_local_date_of_the_win(host):
    add_terminal(host)
    cases = [
        (150_000, local(2025, 12, 31, 23, 30), True),   # $1,200 threshold; already 2026-01-01 in UTC
        (150_000, local(2026, 1, 1, 0, 30), False),     # $2,000 from 2026-01-01, though still gaming day 12-31
        (200_000, local(2026, 1, 2, 12, 0), True),      # exactly the threshold
        (199_999, local(2026, 1, 2, 12, 0), False),
        (120_000, local(2025, 6, 1, 12, 0), True),
        (119_999, local(2025, 6, 1, 12, 0), False),
    ]
    ids = [new_handpay(host, amount, now=now) for amount, now, _ in cases]
    assert [load(host, i).tax_form_required for i in ids] == [want for _, _, want in cases]
    assert load(host, ids[1]).gaming_day == dt.date(2025, 12, 31)


def test_patron_required_then_w2g(host, api, cashier):
    add_terminal(host)
    old = new_handpay(host, 150_000, now=local(2025, 12, 31, 23, 30))
    new = new_handpay(host, 150_000, now=local(2026, 1, 1, 0, 30))

    r = cashier.post(f"/handpays/{old}/pay", json={})
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "patron_identity_required"
    r = cashier.post(f"/handpays/{old}/pay", json={"patron": {**PATRON, "address": ""}})
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "patron.address"
    assert load(host, old).status == "pending" and count(host, W2G) == 0

    r = cashier.post(f"/handpays/{old}/pay", json={"patron": PATRON})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["status"] == "paid" and r.get_json()["paid_by"] == "cashier1"
    with host.db.read() as s:
        w = s.execute(select(W2G)).scalar_one()
        assert (w.handpay_id, w.amount_cents, w.tax_year, w.last_name, w.id_number) == \
            (old, 150_000, 2025, "Lovelace", "D1234567")

    r = cashier.post(f"/handpays/{new}/pay")  # no body at all: below the 2026 threshold
    assert r.status_code == 200, r.get_json()
    assert count(host, W2G) == 1
    assert cashier.get("/drawers/current").get_json()["expected_cents"] == 5_000_000 - 300_000
    with host.db.read() as s:
        actions = s.execute(select(AuditEntry.action).where(AuditEntry.target == f"handpay:{old}")).scalars().all()
    assert actions == ["handpay.pay"]


def test_second_signer_rules(host, api, cashier):
    add_terminal(host)
    make_operator(host, "att1", "attendant")
    make_operator(host, "mgr1", "manager")
    make_operator(host, "cashier2", "cashier")
    hp = new_handpay(host, 500_000)

    def pay(signer):
        body = {"patron": PATRON} | ({"second_signer": signer} if signer else {})
        return cashier.post(f"/handpays/{hp}/pay", json=body)

    for signer, code in [(None, "second_signer_required"),
                         ({"username": "cashier1", "password": PASSWORD}, "second_signer_invalid"),
                         ({"username": "mgr1", "password": "wrong password!"}, "second_signer_invalid"),
                         ({"username": "att1", "password": PASSWORD}, "second_signer_invalid"),
                         ({"username": "nobody", "password": PASSWORD}, "second_signer_invalid")]:
        r = pay(signer)
        assert (r.status_code, r.get_json()["error"]["code"]) == (422, code), signer
    assert load(host, hp).status == "pending"

    r = pay({"username": "mgr1", "password": PASSWORD})
    assert r.status_code == 200 and r.get_json()["second_signer"] == "mgr1"

    below = new_handpay(host, 499_999)
    r = cashier.post(f"/handpays/{below}/pay", json={"patron": PATRON})
    assert r.status_code == 200 and r.get_json()["second_signer"] is None
    other = new_handpay(host, 700_000)
    r = cashier.post(f"/handpays/{other}/pay",
                     json={"patron": PATRON, "second_signer": {"username": "cashier2", "password": PASSWORD}})
    assert r.status_code == 200 and r.get_json()["second_signer"] == "cashier2"


def test_drawer_pay_twice_and_idempotency(host, api):
    add_terminal(host)
    hp = new_handpay(host, 10_000)
    c = api.as_("cashier")
    r = c.post(f"/handpays/{hp}/pay", json={})
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "drawer_not_open"
    assert c.post("/drawers", json={"opening_cents": 100_000}).status_code == 201

    key = {"Idempotency-Key": "pay-hp-1"}
    first = c.post(f"/handpays/{hp}/pay", json={}, headers=key)
    again = c.post(f"/handpays/{hp}/pay", json={}, headers=key)
    assert first.status_code == again.status_code == 200
    assert again.get_json() == first.get_json() and again.headers.get("Idempotent-Replay") == "true"
    r = c.post(f"/handpays/{hp}/pay", json={})
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "handpay_paid"
    assert count(host, DrawerTransaction, DrawerTransaction.kind == "handpay_pay") == 1
    assert c.get("/drawers/current").get_json()["expected_cents"] == 90_000
    assert c.post("/handpays/999999/pay", json={}).status_code == 404


def test_void_keeps_slip_and_cannot_be_paid(host, api, cashier):
    add_terminal(host)
    hp = new_handpay(host, 30_000)
    slip = load(host, hp).slip_number
    mgr = api.as_("manager")
    assert mgr.post(f"/handpays/{hp}/void", json={}).status_code == 400
    r = mgr.post(f"/handpays/{hp}/void", json={"reason": "reported twice"})
    assert r.status_code == 200
    body = r.get_json()
    assert (body["status"], body["slip_number"], body["voided_by"], body["void_reason"]) == \
        ("void", slip, "manager1", "reported twice")
    r = cashier.post(f"/handpays/{hp}/pay", json={})
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "handpay_void"
    assert mgr.post(f"/handpays/{hp}/void", json={"reason": "again"}).status_code == 409
    assert [h["id"] for h in mgr.get("/handpays?status=void").get_json()] == [hp]
    assert mgr.get("/handpays?status=pending").get_json() == []
    assert load(host, new_handpay(host, 100)).slip_number == slip + 1  # the voided number is not reused
    with host.db.read() as s:
        assert s.execute(select(Terminal.handpay_pending)).scalar_one() is True  # the new one


def test_roles(host, api, cashier):
    add_terminal(host)
    hp = new_handpay(host, 10_000)
    assert api.as_("slot_tech").post(f"/handpays/{hp}/pay", json={}).status_code == 403
    assert api.as_("manager").post(f"/handpays/{hp}/pay", json={}).status_code == 403
    assert api.as_("auditor").post(f"/handpays/{hp}/pay", json={}).status_code == 403
    assert cashier.post(f"/handpays/{hp}/void", json={"reason": "x"}).status_code == 403
    assert api.as_("slot_tech").get("/handpays").status_code == 403
    assert api.as_("attendant").get(f"/handpays/{hp}").get_json()["status"] == "pending"
    assert api.as_("attendant").get("/handpays?status=bogus").status_code == 400
    assert load(host, hp).status == "pending"


def test_paid_at_offline_terminal_without_reset(host, api, cashier):
    add_terminal(host)  # never connected
    hp = new_handpay(host, 10_000)
    r = cashier.post(f"/handpays/{hp}/pay", json={})
    assert r.status_code == 200 and r.get_json()["reset"] == "terminal_offline"
    assert count(host, Command) == 0
    with host.db.read() as s:
        assert s.execute(select(Terminal.handpay_pending)).scalar_one() is False


@pytest.mark.slow
def test_terminal_handpay_through_broker_to_reset(api, gateway, broker, host, cashier):
    r = api.as_("slot_tech").post("/terminals", json={"egm_id": "EGM1", "protocol": "mqtt"})
    assert r.status_code == 201
    term = RawTerminal(broker, "EGM1", r.get_json()["mqtt"]["password"], root=host.settings.topic_root)
    try:
        seq = term.send("handpay", {"amount_cents": 250_000, "kind": "jackpot"})
        reply = term.reply(seq)
        assert reply["type"] == "handpay.reply"
        assert reply["body"]["result"] == "ok" and isinstance(reply["body"]["handpay_id"], int)
        hp = reply["body"]["handpay_id"]
        term.send("handpay", {"amount_cents": 250_000, "kind": "jackpot"}, seq=seq)  # QoS 1 redelivery
        assert term.reply(seq)["body"] == reply["body"]

        pending = api.as_("attendant").get("/handpays?status=pending").get_json()
        assert [(h["id"], h["amount_cents"], h["kind"], h["tax_form_required"]) for h in pending] == \
            [(hp, 250_000, "jackpot", True)]
        detail = api.as_("attendant").get("/terminals/EGM1").get_json()
        assert detail["state"] == "handpay" and [h["id"] for h in detail["open_handpays"]] == [hp]

        r = cashier.post(f"/handpays/{hp}/pay", json={"patron": PATRON})
        assert r.status_code == 200 and r.get_json()["reset"] == "sent"
        cmd = term.wait(lambda m: m["type"] == "cmd")
        assert cmd["body"]["name"] == "handpay.reset" and cmd["body"]["args"]["handpay_id"] == hp
        assert api.as_("attendant").get("/terminals/EGM1").get_json()["state"] == "online"

        term.send("cmd.ack", {"id": cmd["id"], "result": "ok"})
        eventually(lambda: load(host, hp).reset_at is not None)
        assert count(host, Handpay) == 1
    finally:
        term.close()


def test_terminal_handler_replies(host):
    """The gateway's handler: ok with the id, or result error when the service refuses (no slip taken)."""
    from protocols.mqtt import decode_up, encode_up
    from terminals.dispatch import HANDLERS, Apply, load_handlers

    add_terminal(host)
    load_handlers()
    up = decode_up("EGM1", encode_up(1, "handpay", {"amount_cents": 500, "kind": "cancelled_credit"}))
    with host.db.begin() as s:
        t = s.execute(select(Terminal)).scalar_one()
        ok = HANDLERS["handpay"](Apply(s, host, t, up, host.now()))
        ghost = HANDLERS["handpay"](Apply(s, host, Terminal(egm_id="GHOST"), up, host.now()))
    assert ok["result"] == "ok"
    h = load(host, ok["handpay_id"])
    assert (h.slip_number, h.kind, h.seq, h.status) == (1, "cancelled_credit", 1, "pending")
    assert ghost == {"result": "error", "reason": "terminal_not_found"}
    assert count(host, Handpay) == 1


def test_wrong_second_signer_passwords_lock_the_signer(host, api, cashier):
    add_terminal(host)
    hp = new_handpay(host, 600_000, now=local(2026, 6, 1, 12, 0))
    make_operator(host, "boss", "manager")
    for i in range(host.settings.login_max_failures + 1):
        r = cashier.post(f"/handpays/{hp}/pay", json={"patron": PATRON,
                                                     "second_signer": {"username": "boss", "password": f"guess{i}"}})
        assert r.status_code == 422 and r.get_json()["error"]["code"] == "second_signer_invalid"
    # Six failures lock the manager: the right password no longer signs, nor logs in.
    r = cashier.post(f"/handpays/{hp}/pay", json={"patron": PATRON,
                                                 "second_signer": {"username": "boss", "password": PASSWORD}})
    assert r.status_code == 422
    assert api.client.post("/api/v1/auth/token", json={"username": "boss", "password": PASSWORD}).status_code == 429
    assert load(host, hp).status == "pending"
