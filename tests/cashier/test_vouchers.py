"""Vouchers: the five states, every transition recorded, cage and terminal paths, expiry and reinstatement."""
import datetime as dt

import pytest
from sqlalchemy import select

from cashier import vouchers
from cashier.models import DrawerTransaction, Voucher, VoucherTransition
from server.audit import Actor
from server.models import AuditEntry

CASHIER = Actor("cash1", "cashier")


@pytest.fixture
def policy(host):
    return vouchers.policy_for(host)


def issue(host, policy, amount=2_500, by="EGM1", source="terminal", now=None):
    with host.db.begin() as s:
        return vouchers.issue(s, policy, amount_cents=amount, credit_type="cashable", issued_by=by, source=source,
                              now=now or host.now()).validation_number


def status(host, vn):
    with host.db.read() as s:
        return s.execute(select(Voucher.status).where(Voucher.validation_number == vn)).scalar_one()


def test_validation_numbers_are_18_digits_unique_and_not_sequential(host, policy):
    numbers = [issue(host, policy) for _ in range(50)]
    assert all(len(n) == 18 and n.isdigit() and n.startswith("01") for n in numbers)
    assert len(set(numbers)) == 50
    ints = sorted(int(n) for n in numbers)
    assert len({b - a for a, b in zip(ints, ints[1:])}) > 40  # no fixed step between them


def test_terminal_redeem_hold_commit(host, policy):
    vn = issue(host, policy)
    with host.db.begin() as s:
        v = vouchers.redeem_at_terminal(s, policy, "EGM2", vn, host.now())
        assert (v.status, v.held_by, v.amount_cents) == ("pending", "EGM2", 2_500)
    with host.db.begin() as s:
        with pytest.raises(vouchers.VoucherNotPayable) as e:
            vouchers.redeem_at_terminal(s, policy, "EGM3", vn, host.now())
        assert e.value.reason == "pending"
    with host.db.begin() as s:
        vouchers.commit_redemption(s, policy, "EGM2", vn, 2_500, host.now())
    assert status(host, vn) == "redeemed"
    with host.db.read() as s:
        steps = s.execute(select(VoucherTransition.from_status, VoucherTransition.to_status, VoucherTransition.actor)
                          .where(VoucherTransition.validation_number == vn).order_by(VoucherTransition.id)).all()
    assert steps == [(None, "issued", "EGM1"), ("issued", "pending", "EGM2"), ("pending", "redeemed", "EGM2")]
    with host.db.begin() as s:
        with pytest.raises(vouchers.VoucherNotPayable) as e:
            vouchers.redeem_at_terminal(s, policy, "EGM3", vn, host.now())
        assert e.value.reason == "redeemed"


def test_abort_returns_to_issued_and_hold_times_out(host, policy):
    vn = issue(host, policy)
    with host.db.begin() as s:
        vouchers.redeem_at_terminal(s, policy, "EGM2", vn, host.now())
    with host.db.begin() as s:
        assert vouchers.abort_redemption(s, policy, "EGM2", vn, "ticket returned", host.now())
    assert status(host, vn) == "issued"
    with host.db.begin() as s:
        vouchers.redeem_at_terminal(s, policy, "EGM2", vn, host.now())
    later = host.now() + dt.timedelta(seconds=16)
    with host.db.begin() as s:
        assert vouchers.release_holds(s, policy, later, 15) == [vn]
    assert status(host, vn) == "issued"


def test_unknown_and_voided_and_over_limit(host, policy):
    with host.db.begin() as s:
        with pytest.raises(vouchers.VoucherNotPayable) as e:
            vouchers.redeem_at_terminal(s, policy, "EGM2", "019999999999999999", host.now())
    assert e.value.reason == "not_found"
    vn = issue(host, policy)
    with host.db.begin() as s:
        vouchers.void(s, policy, Actor("boss", "manager"), vn, "torn", host.now())
    with host.db.begin() as s:
        with pytest.raises(vouchers.VoucherNotPayable) as e:
            vouchers.redeem_at_terminal(s, policy, "EGM2", vn, host.now())
    assert e.value.reason == "voided"
    with host.db.begin() as s:
        with pytest.raises(Exception) as e:
            vouchers.issue(s, policy, amount_cents=policy.max_cents + 1, credit_type="cashable", issued_by="EGM1",
                           source="terminal", now=host.now())
    assert e.value.code == "over_limit"


def test_expiry_blocks_everywhere_until_reinstated(host, policy, api):
    old = host.now() - dt.timedelta(days=181)
    vn = issue(host, policy, now=old)
    with host.db.begin() as s:
        with pytest.raises(vouchers.VoucherNotPayable) as e:
            vouchers.redeem_at_terminal(s, policy, "EGM2", vn, host.now())
    assert e.value.reason == "expired" and status(host, vn) == "expired"
    cage = api.as_("cashier")
    assert cage.post("/drawers", json={"opening_cents": 100_000}).status_code == 201
    r = cage.post(f"/vouchers/{vn}/redeem")
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "voucher_expired"
    assert cage.post(f"/vouchers/{vn}/reinstate", json={"reason": "guest was ill"}).status_code == 403
    r = api.as_("manager").post(f"/vouchers/{vn}/reinstate", json={"reason": "guest was ill"})
    assert r.status_code == 200 and r.get_json()["status"] == "issued"
    r = cage.post(f"/vouchers/{vn}/redeem")
    assert r.status_code == 200 and r.get_json()["amount_cents"] == 2_500
    with host.db.read() as s:
        actions = s.execute(select(AuditEntry.action).where(AuditEntry.target == f"voucher:{vn}")).scalars().all()
    assert actions == ["voucher.reinstate", "voucher.redeem"]


def test_expire_job_moves_due_vouchers(host, policy):
    vn_old = issue(host, policy, now=host.now() - dt.timedelta(days=200))
    vn_new = issue(host, policy)
    with host.db.begin() as s:
        assert vouchers.expire_due(s, policy, host.now()) == [vn_old]
    assert (status(host, vn_old), status(host, vn_new)) == ("expired", "issued")


def test_cage_issue_and_redeem_move_the_drawer(api, host):
    cage = api.as_("cashier")
    assert cage.post("/vouchers", json={"amount_cents": 500, "credit_type": "cashable"}).status_code == 409  # no drawer
    d = cage.post("/drawers", json={"opening_cents": 50_000}).get_json()
    assert cage.post("/drawers", json={"opening_cents": 1}).status_code == 409
    r = cage.post("/vouchers", json={"amount_cents": 12_345, "credit_type": "cashable"})
    assert r.status_code == 201
    vn = r.get_json()["validation_number"]
    got = api.as_("attendant").get(f"/vouchers/{vn}").get_json()
    assert (got["status"], got["issued_by"], got["amount_cents"]) == ("issued", "cashier1", 12_345)
    r = cage.post(f"/vouchers/{vn}/redeem")
    assert r.status_code == 200 and r.get_json() == {"amount_cents": 12_345, "validation_number": vn,
                                                     "status": "redeemed"}
    r = cage.post(f"/vouchers/{vn}/redeem")
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "voucher_redeemed"
    assert cage.get("/drawers/current").get_json()["expected_cents"] == 50_000
    r = cage.post(f"/drawers/{d['id']}/close", json={"counted_cents": 49_900})
    assert r.get_json()["variance_cents"] == -100 and r.get_json()["expected_cents"] == 50_000
    assert cage.post(f"/drawers/{d['id']}/close", json={"counted_cents": 1}).status_code == 409
    assert cage.post(f"/vouchers/{vn}/redeem").status_code == 409


def test_idempotency_key_replays_and_refuses_reuse(api, host, policy):
    cage = api.as_("cashier")
    cage.post("/drawers", json={"opening_cents": 100_000})
    vn = issue(host, policy, amount=7_000)
    h = {"Idempotency-Key": "k-1"}
    first = cage.post(f"/vouchers/{vn}/redeem", headers=h)
    again = cage.post(f"/vouchers/{vn}/redeem", headers=h)
    assert first.status_code == again.status_code == 200 and first.get_json() == again.get_json()
    with host.db.read() as s:
        paid = s.execute(select(DrawerTransaction).where(DrawerTransaction.ref == vn)).scalars().all()
    assert len(paid) == 1
    other = issue(host, policy)
    r = cage.post(f"/vouchers/{other}/redeem", headers=h)
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "idempotency_key_reused"
    # Another operator's same key is another key.
    r = api.as_("cashier", "cash2").post("/drawers", json={"opening_cents": 10})
    assert r.status_code == 201
    assert api.as_("cashier", "cash2").post(f"/vouchers/{other}/redeem", headers=h).status_code == 200


def test_money_input_errors_are_400_and_roles_403(api):
    cage = api.as_("cashier")
    cage.post("/drawers", json={"opening_cents": 100})
    r = cage.post("/vouchers", json={"amount_cents": -5, "credit_type": "cashable"})
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "amount_cents"
    r = cage.post("/vouchers", json={"amount_cents": 5, "credit_type": "chips"})
    assert r.status_code == 400
    r = cage.post("/vouchers", json={"amount_cents": 1.5, "credit_type": "cashable"})
    assert r.status_code == 400
    assert api.as_("manager").post("/vouchers", json={"amount_cents": 5, "credit_type": "cashable"}).status_code == 403
    assert cage.post("/vouchers/019999999999999999/void", json={"reason": "x"}).status_code == 403
    assert cage.get("/vouchers/019999999999999999").status_code == 404


def test_cage_aml_identity_at_thresholds(api, host, policy):
    from cashier.models import CashTransaction, MtlEntry

    cage = api.as_("cashier")
    cage.post("/drawers", json={"opening_cents": 2_000_000})
    big = issue(host, policy, amount=350_000)
    r = cage.post(f"/vouchers/{big}/redeem")
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "patron_identity_required"
    assert status(host, big) == "issued"  # refused: nothing paid
    patron = {"first_name": "Ada", "last_name": "Lovelace", "birth_date": "1985-12-10", "id_type": "DL",
              "id_number": "D123", "address": "1 Main St"}
    r = cage.post(f"/vouchers/{big}/redeem", json={"patron": patron})
    assert r.status_code == 200
    with host.db.read() as s:
        tx = s.execute(select(CashTransaction)).scalar_one()
        assert (tx.direction, tx.kind, tx.amount_cents, tx.ref) == ("out", "voucher_redeem", 350_000, big)
        assert s.execute(select(MtlEntry)).scalar_one().amount_cents == 350_000
    small = issue(host, policy, amount=5_000)
    assert cage.post(f"/vouchers/{small}/redeem").status_code == 200  # under every threshold: no identity needed
