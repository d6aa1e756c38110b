"""One voucher is paid at most once (rules.md 11), whatever races for it: threads, processes,
terminals over MQTT and cashiers over HTTP at the same time, many times over."""
import json
import multiprocessing
import threading
import urllib.error
import urllib.request

import pytest
from sqlalchemy import func, select

from cashier import drawers, vouchers
from cashier.models import DrawerTransaction, Voucher, VoucherTransition
from server.audit import Actor
from server.errors import DomainError
from tests.conftest import PASSWORD, make_operator
from tests.support.terminal import RawTerminal

pytestmark = pytest.mark.slow


def _issue_many(host, n, amount=1_000):
    policy = vouchers.policy_for(host)
    with host.db.begin() as s:
        return [vouchers.issue(s, policy, amount_cents=amount, credit_type="cashable", issued_by="EGM0",
                               source="terminal", now=host.now()).validation_number for _ in range(n)]


def _open_drawer(host, username):
    with host.db.begin() as s:
        return drawers.open_drawer(s, host.clock, Actor(username, "cashier"), 1_000_000, host.now()).id


def _paid_once(host, numbers):
    """Each voucher redeemed exactly once: one transition into redeemed, and money out at most once."""
    with host.db.read() as s:
        redeemed = dict(s.execute(select(VoucherTransition.validation_number, func.count())
                                  .where(VoucherTransition.to_status == "redeemed",
                                         VoucherTransition.validation_number.in_(numbers))
                                  .group_by(VoucherTransition.validation_number)).all())
        drawer_outs = dict(s.execute(select(DrawerTransaction.ref, func.count())
                                     .where(DrawerTransaction.ref.in_(numbers))
                                     .group_by(DrawerTransaction.ref)).all())
        statuses = set(s.execute(select(Voucher.status).where(Voucher.validation_number.in_(numbers))).scalars())
    return redeemed, drawer_outs, statuses


def test_threads_terminals_and_cage_race(host):
    numbers = _issue_many(host, 25)
    policy = vouchers.policy_for(host)
    drawer_ids = {f"cage{i}": _open_drawer(host, f"cage{i}") for i in range(3)}
    wins: list[tuple[str, str]] = []
    lock = threading.Lock()

    def terminal(egm_id, vn, barrier):
        barrier.wait()
        try:
            with host.db.begin() as s:
                vouchers.redeem_at_terminal(s, policy, egm_id, vn, host.now())
        except DomainError:
            return
        with host.db.begin() as s:
            vouchers.commit_redemption(s, policy, egm_id, vn, 1_000, host.now())
        with lock:
            wins.append((vn, egm_id))

    def cashier(name, vn, barrier):
        barrier.wait()
        try:
            with host.db.begin() as s:
                vouchers.redeem_at_cage(s, policy, Actor(name, "cashier"), vn, drawer_ids[name], host.now())
        except DomainError:
            return
        with lock:
            wins.append((vn, name))

    for vn in numbers:
        barrier = threading.Barrier(7)
        threads = [threading.Thread(target=terminal, args=(f"EGM{i}", vn, barrier)) for i in range(4)]
        threads += [threading.Thread(target=cashier, args=(f"cage{i}", vn, barrier)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert sorted(vn for vn, _ in wins) == sorted(numbers)  # every voucher paid, each by exactly one racer
    redeemed, outs, statuses = _paid_once(host, numbers)
    assert set(redeemed.values()) == {1} and len(redeemed) == len(numbers)
    assert all(n == 1 for n in outs.values())
    assert statuses == {"redeemed"}
    assert len(outs) == sum(1 for _, who in wins if who.startswith("cage"))


def _process_redeemer(settings_overrides, username, numbers, out):
    from server.config import load_settings
    from server.host import Host

    h = Host(load_settings(settings_overrides, environ={}))
    policy = vouchers.policy_for(h)
    with h.db.begin() as s:
        drawer = drawers.open_drawer(s, h.clock, Actor(username, "cashier"), 0, h.now()).id
    won = []
    for vn in numbers:
        try:
            with h.db.begin() as s:
                vouchers.redeem_at_cage(s, policy, Actor(username, "cashier"), vn, drawer, h.now())
            won.append(vn)
        except DomainError:
            pass
    h.close()
    out.put((username, won))


def test_separate_processes_race(host, settings_overrides):
    numbers = _issue_many(host, 60)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    # Each process walks the same list, some in reverse, so they collide all the way.
    procs = [ctx.Process(target=_process_redeemer,
                         args=(settings_overrides, f"proc{i}", numbers if i % 2 else numbers[::-1], out))
             for i in range(4)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    won = [vn for _, vns in results for vn in vns]
    assert sorted(won) == sorted(numbers)
    redeemed, outs, statuses = _paid_once(host, numbers)
    assert set(redeemed.values()) == {1} and set(outs.values()) == {1} and statuses == {"redeemed"}


def _http_redeem(base, token, vn, results, barrier):
    req = urllib.request.Request(f"{base}/api/v1/vouchers/{vn}/redeem", data=b"", method="POST",
                                 headers={"Authorization": f"Bearer {token}"})
    barrier.wait()
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            results.append(("http", r.status, json.loads(r.read())))
    except urllib.error.HTTPError as e:
        results.append(("http", e.code, json.loads(e.read())))


def test_mqtt_terminals_and_http_cashiers_together(host, api, gateway, broker, live_server):
    numbers = _issue_many(host, 12, amount=4_200)
    slot = api.as_("slot_tech")
    terms = []
    for i in range(3):
        r = slot.post("/terminals", json={"egm_id": f"RACE{i}", "protocol": "mqtt"})
        terms.append(RawTerminal(broker, f"RACE{i}", r.get_json()["mqtt"]["password"], root=host.settings.topic_root))
    tokens = []
    for i in range(2):
        make_operator(host, f"http{i}", "cashier")
        tok = api.client.post("/api/v1/auth/token", json={"username": f"http{i}", "password": PASSWORD}).get_json()
        tokens.append(tok["token"])
        _open_drawer(host, f"http{i}")
    try:
        for vn in numbers:
            results: list = []
            barrier = threading.Barrier(len(terms) + len(tokens))

            def terminal_try(term):
                barrier.wait()
                reply = term.request("voucher.redeem", {"validation_number": vn}, timeout=20)
                results.append((term.egm_id, 200, reply["body"]))

            threads = [threading.Thread(target=terminal_try, args=(t,)) for t in terms]
            threads += [threading.Thread(target=_http_redeem, args=(live_server.url, tok, vn, results, barrier))
                        for tok in tokens]
            for t in threads:
                t.start()
            for t in threads:
                t.join(40)
            assert len(results) == len(threads)
            winners = [r for r in results if (r[0] == "http" and r[1] == 200)
                       or (r[0] != "http" and r[2].get("result") == "authorized")]
            assert len(winners) == 1, results
            who, _, body = winners[0]
            if who != "http":
                assert body == {"result": "authorized", "amount_cents": 4_200, "credit_type": "cashable"}
                term = next(t for t in terms if t.egm_id == who)
                term.send("voucher.redeem.commit", {"validation_number": vn, "amount_cents": 4_200})
            losers = [r for r in results if r is not winners[0]]
            for r in losers:
                reason = r[2]["error"]["code"] if r[0] == "http" else "voucher_" + r[2]["reason"]
                assert reason in ("voucher_pending", "voucher_redeemed"), r
        from tests.support.terminal import eventually

        eventually(lambda: _paid_once(host, numbers)[2] == {"redeemed"}, timeout=20)
        redeemed, outs, _ = _paid_once(host, numbers)
        assert set(redeemed.values()) == {1} and len(redeemed) == len(numbers)
        assert all(n == 1 for n in outs.values())
    finally:
        for t in terms:
            t.close()
