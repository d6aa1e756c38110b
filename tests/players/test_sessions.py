"""Rated sessions (issue #5): card-in opens, game.end accrues, card-out / card-in elsewhere / another card /
offline closes and credits points; uncarded play stays uncarded; the gaming-day boundary splits a session;
excluded, blocked and unknown cards; jackpot flags; one card racing at two terminals on separate sessions."""
from __future__ import annotations

import datetime as dt
import threading

from sqlalchemy import func, select

from cashier import handpays
from players import accounts, rules, sessions
from players.models import CardPresentation, PointTransaction, RatedSession, SessionDay
from server.models import Alert
from terminals import registry
from tests.players.helpers import MANAGER, add_terminal, card_in, card_out, enrol, game, local


def session_rows(host, player_id: int) -> list[RatedSession]:
    with host.db.read() as s:
        return list(s.execute(select(RatedSession).where(RatedSession.player_id == player_id)
                              .order_by(RatedSession.id)).scalars())


def days(host, session_id: int) -> dict[dt.date, SessionDay]:
    with host.db.read() as s:
        return {d.gaming_day: d for d in s.execute(select(SessionDay).where(SessionDay.session_id == session_id))
                .scalars()}


def balance(host, player_id: int) -> int:
    with host.db.read() as s:
        return accounts.get(s, player_id).points


def test_card_in_games_card_out_accrue_and_credit_points(host):
    pid = enrol(host)
    t0 = local(2026, 11, 20, 14, 0)
    r = card_in(host, "EGM1", "C-1", t0)
    assert r.status == "ok"
    assert r.reply() == {"status": "ok", "player": {"display_name": "Ada L.", "tier": "Bronze", "points": 0}}
    # $2.50, $2.50 and $1.00 bets: 600 cents of coin-in at the default 100 cents per point → 6 points.
    assert game(host, "EGM1", t0 + dt.timedelta(minutes=1), 250, 0)
    assert game(host, "EGM1", t0 + dt.timedelta(minutes=2), 250, 1_000)
    assert game(host, "EGM1", t0 + dt.timedelta(minutes=3), 100, 0)
    assert card_out(host, "EGM1", "C-1", t0 + dt.timedelta(minutes=30)) == 6
    [rs] = session_rows(host, pid)
    assert (rs.end_reason, rs.points_credited) == ("card_out", 6)
    [d] = days(host, rs.id).values()
    assert (d.games, d.coin_in_cents, d.coin_out_cents, d.seconds_played, d.points) == (3, 600, 1_000, 1_800, 6)
    # Theo: 600 cents × the default 800 bp house edge = 48 cents.
    assert d.theo_units // 10_000 == 48
    assert balance(host, pid) == 6
    with host.db.read() as s:
        [tx] = s.execute(select(PointTransaction).where(PointTransaction.player_id == pid)).scalars()
        assert (tx.kind, tx.delta, tx.balance_before, tx.balance_after, tx.session_id) == ("earned", 6, 0, 6, rs.id)
    # The next card-in shows the credited points on the terminal.
    assert card_in(host, "EGM1", "C-1", t0 + dt.timedelta(hours=1)).player["points"] == 6


def test_uncarded_play_stays_uncarded(host):
    pid = enrol(host)
    t0 = local(2026, 11, 20, 14, 0)
    assert game(host, "EGM1", t0, 500) is False  # nobody carded in
    card_in(host, "EGM1", "C-1", t0 + dt.timedelta(minutes=1))
    card_out(host, "EGM1", "C-1", t0 + dt.timedelta(minutes=2))
    assert game(host, "EGM1", t0 + dt.timedelta(minutes=3), 500) is False  # after card-out: uncarded again
    [rs] = session_rows(host, pid)
    assert all(d.games == 0 for d in days(host, rs.id).values())
    assert balance(host, pid) == 0


def test_card_in_elsewhere_closes_the_first_and_another_card_replaces(host):
    a = enrol(host, "C-A", "Ann", "Able")
    b = enrol(host, "C-B", "Bob", "Baker")
    t0 = local(2026, 11, 20, 14, 0)
    card_in(host, "EGM1", "C-A", t0)
    game(host, "EGM1", t0 + dt.timedelta(minutes=1), 300)
    card_in(host, "EGM2", "C-A", t0 + dt.timedelta(minutes=5))  # the same card at another terminal
    first, second = session_rows(host, a)
    assert (first.egm_id, first.end_reason, first.points_credited) == ("EGM1", "card_in_elsewhere", 3)
    assert (second.egm_id, second.ended_at) == ("EGM2", None)
    # Bob's card at EGM2 ends Ann's session there.
    card_in(host, "EGM2", "C-B", t0 + dt.timedelta(minutes=6))
    assert session_rows(host, a)[1].end_reason == "replaced"
    assert session_rows(host, b)[0].ended_at is None
    # Ann's card-out at EGM2 is not Bob's session: it stays open.
    assert card_out(host, "EGM2", "C-A", t0 + dt.timedelta(minutes=7)) is None
    assert session_rows(host, b)[0].ended_at is None
    # The same card again at the same terminal keeps the session.
    card_in(host, "EGM2", "C-B", t0 + dt.timedelta(minutes=8))
    assert len(session_rows(host, b)) == 1


def test_terminal_offline_closes_its_session(host):
    pid = enrol(host)
    add_terminal(host, "EGM1")
    t0 = local(2026, 11, 20, 14, 0)
    card_in(host, "EGM1", "C-1", t0)
    game(host, "EGM1", t0 + dt.timedelta(minutes=1), 1_000)
    with host.db.begin() as s:
        t = registry.get(s, "EGM1")
        assert registry.went_offline(s, host.clock, t, t0 + dt.timedelta(minutes=10), "heartbeat", "mqtt")
    [rs] = session_rows(host, pid)
    assert (rs.end_reason, rs.points_credited, rs.ended_at) == ("offline", 10, t0 + dt.timedelta(minutes=10))
    assert balance(host, pid) == 10


def test_session_across_the_gaming_day_boundary_is_split(host):
    pid = enrol(host)
    # Gaming day starts 06:00 local: 05:30 → 06:30 is 30 minutes of 19 Nov's day and 30 of 20 Nov's.
    t0 = local(2026, 11, 20, 5, 30)
    card_in(host, "EGM1", "C-1", t0)
    game(host, "EGM1", local(2026, 11, 20, 5, 45), 250)
    game(host, "EGM1", local(2026, 11, 20, 5, 59, 59), 250)
    game(host, "EGM1", local(2026, 11, 20, 6, 0), 1_000, 200)
    card_out(host, "EGM1", "C-1", local(2026, 11, 20, 6, 30))
    [rs] = session_rows(host, pid)
    d = days(host, rs.id)
    before, after = d[dt.date(2026, 11, 19)], d[dt.date(2026, 11, 20)]
    assert (before.games, before.coin_in_cents, before.seconds_played, before.points) == (2, 500, 1_800, 5)
    assert (after.games, after.coin_in_cents, after.coin_out_cents, after.seconds_played, after.points) == \
        (1, 1_000, 200, 1_800, 10)
    assert rs.points_credited == 15 and balance(host, pid) == 15


def test_earning_rules_by_paytable_and_theme_and_house_edge(host):
    pid = enrol(host)
    with host.db.begin() as s:
        rules.replace(s, MANAGER, {**rules.DEFAULT_RULES, "cents_per_point": 200, "themes": {"Dragons": 50},
                                   "paytables": {"VP-9/6": 1_000},
                                   "house_edge_bp": {"default": 500, "paytables": {"VP-9/6": 150}}}, host.now())
        assert sessions.house_edge_bp(s, "VP-9/6") == 150 and sessions.house_edge_bp(s, "other") == 500
    t0 = local(2026, 11, 20, 14, 0)
    card_in(host, "EGM1", "C-1", t0)
    game(host, "EGM1", t0, 1_000, theme="Reels", paytable="PT-1")    # 1000 / 200 → 5 points, theo 50
    game(host, "EGM1", t0, 1_000, theme="Dragons", paytable="PT-2")  # 1000 / 50 → 20 points, theo 50
    game(host, "EGM1", t0, 1_000, theme="Dragons", paytable="VP-9/6")  # paytable beats theme: 1 point, theo 15
    card_out(host, "EGM1", "C-1", t0 + dt.timedelta(minutes=1))
    [rs] = session_rows(host, pid)
    [d] = days(host, rs.id).values()
    assert d.points == 26 and d.theo_units // 10_000 == 115


def test_tier_from_points_earned_in_the_rolling_period(host):
    pid = enrol(host)
    with host.db.begin() as s:
        rules.replace(s, MANAGER, {**rules.DEFAULT_RULES, "tier_period_days": 30,
                                   "tiers": [{"name": "Blue", "min_points": 0}, {"name": "Gold", "min_points": 50}]},
                      host.now())
    old = host.now() - dt.timedelta(days=40)
    card_in(host, "EGM1", "C-1", old)
    game(host, "EGM1", old, 10_000)  # 100 points, but 40 days ago: outside the period
    card_out(host, "EGM1", "C-1", old + dt.timedelta(minutes=1))
    r = card_in(host, "EGM1", "C-1", host.now() - dt.timedelta(minutes=5))
    assert r.player == {"display_name": "Ada L.", "tier": "Blue", "points": 100}
    game(host, "EGM1", host.now() - dt.timedelta(minutes=4), 6_000)
    card_out(host, "EGM1", "C-1", host.now() - dt.timedelta(minutes=3))
    assert card_in(host, "EGM1", "C-1", host.now()).player == {"display_name": "Ada L.", "tier": "Gold",
                                                                "points": 160}


def test_unknown_blocked_and_excluded_cards(host):
    pid = enrol(host, "C-OLD")
    t0 = local(2026, 11, 20, 14, 0)
    assert card_in(host, "EGM1", "NOPE", t0).reply() == {"status": "unknown", "player": None}
    with host.db.begin() as s:
        accounts.replace_card(s, MANAGER, pid, "C-NEW", "lost", t0)
    assert card_in(host, "EGM1", "C-OLD", t0).reply() == {"status": "blocked", "player": None}
    assert card_in(host, "EGM1", "C-NEW", t0).status == "ok"
    game(host, "EGM1", t0 + dt.timedelta(minutes=1), 5_000)
    # Excluded mid-session: the session ends without points, and the card is refused from now on.
    with host.db.begin() as s:
        accounts.exclude(s, host.clock, MANAGER, pid, until=None, permanent=True, reason="self-exclusion",
                         kind="self", now=t0 + dt.timedelta(minutes=2))
    [rs] = session_rows(host, pid)
    assert (rs.end_reason, rs.points_credited) == ("excluded", 0)
    r = card_in(host, "EGM2", "C-NEW", t0 + dt.timedelta(minutes=3))
    assert r.reply() == {"status": "excluded", "player": None}
    assert game(host, "EGM2", t0 + dt.timedelta(minutes=4), 5_000) is False  # earns nothing
    assert balance(host, pid) == 0 and len(session_rows(host, pid)) == 1
    with host.db.read() as s:
        alerts = s.execute(select(Alert).where(Alert.kind == "excluded_player")).scalars().all()
        assert [(a.egm_id, a.player_id, a.status) for a in alerts] == [("EGM2", pid, "open")]
        statuses = s.execute(select(CardPresentation.card_id, CardPresentation.status)
                             .order_by(CardPresentation.id)).all()
        assert [tuple(x) for x in statuses] == [("NOPE", "unknown"), ("C-OLD", "blocked"), ("C-NEW", "ok"),
                                                ("C-NEW", "excluded")]


def test_exclusion_until_a_date_ends(host):
    pid = enrol(host)
    today = host.gaming_day()
    with host.db.begin() as s:
        accounts.exclude(s, host.clock, MANAGER, pid, until=(today + dt.timedelta(days=1)).isoformat(),
                         permanent=False, reason="cooling off", kind="self", now=host.now())
    assert card_in(host, "EGM1", "C-1", host.now()).status == "excluded"
    assert card_in(host, "EGM1", "C-1", host.now() + dt.timedelta(days=1)).status == "excluded"  # inclusive
    assert card_in(host, "EGM1", "C-1", host.now() + dt.timedelta(days=2, hours=1)).status == "ok"


def test_jackpot_after_an_excluded_card_is_flagged_and_a_carded_one_names_the_player(host):
    excluded = enrol(host, "C-X", "Ex", "Cluded")
    carded = enrol(host, "C-OK", "Carla", "Carded")
    add_terminal(host, "EGM1")
    add_terminal(host, "EGM2")
    with host.db.begin() as s:
        accounts.exclude(s, host.clock, MANAGER, excluded, until=None, permanent=True, reason="ban", kind="ban",
                         now=host.now())
    now = host.now()
    card_in(host, "EGM1", "C-X", now)
    card_in(host, "EGM2", "C-OK", now)
    with host.db.begin() as s:
        h1 = handpays.create(s, host.clock, host.settings, egm_id="EGM1", amount_cents=250_000, kind="jackpot",
                             now=now + dt.timedelta(minutes=5))
        h2 = handpays.create(s, host.clock, host.settings, egm_id="EGM2", amount_cents=250_000, kind="jackpot",
                             now=now + dt.timedelta(minutes=5))
        d1, d2 = handpays.to_dict(h1), handpays.to_dict(h2)
    assert (d1["flagged"], d1["player_id"]) == ("excluded_player", excluded)
    assert d2["player_id"] == carded and "flagged" not in d2
    # Hours later, after the window, a jackpot at EGM1 is not that patron's any more.
    with host.db.begin() as s:
        h3 = handpays.create(s, host.clock, host.settings, egm_id="EGM1", amount_cents=250_000, kind="jackpot",
                             now=now + sessions.EXCLUDED_PLAY_WINDOW + dt.timedelta(minutes=1))
        assert h3.flagged is None


def test_handpay_paid_to_an_excluded_patron_by_identity_is_flagged(host, api):
    pid = enrol(host, "C-X", "Ada", "Lovelace", "1985-12-10")
    add_terminal(host, "EGM1")
    with host.db.begin() as s:
        accounts.exclude(s, host.clock, MANAGER, pid, until=None, permanent=True, reason="ban", kind="ban",
                         now=host.now())
        hp = handpays.create(s, host.clock, host.settings, egm_id="EGM1", amount_cents=300_000, kind="jackpot",
                             now=host.now()).id
    cashier = api.as_("cashier")
    assert cashier.post("/drawers", json={"opening_cents": 5_000_000}).status_code == 201
    patron = {"first_name": "ada", "last_name": "LOVELACE", "birth_date": "1985-12-10", "id_type": "DL",
              "id_number": "D1", "address": "1 Main St"}
    r = cashier.post(f"/handpays/{hp}/pay", json={"patron": patron})
    assert r.status_code == 200, r.get_json()
    assert (r.get_json()["flagged"], r.get_json()["player_id"]) == ("excluded_player", pid)
    listed = {h["id"]: h for h in cashier.get("/handpays").get_json()}
    assert listed[hp]["flagged"] == "excluded_player"
    with host.db.read() as s:
        assert s.execute(select(func.count()).select_from(Alert).where(Alert.kind == "excluded_player",
                                                                        Alert.player_id == pid)).scalar_one() == 1


def test_one_card_at_two_terminals_at_once_leaves_one_open_session(host):
    """Real threads, separate sessions; on PostgreSQL the player's row lock orders them."""
    pid = enrol(host)
    rounds = 6
    for i in range(rounds):
        barrier = threading.Barrier(2)
        errors, results = [], []
        now = host.now() + dt.timedelta(seconds=i)

        def worker(egm_id):
            try:
                barrier.wait(10)
                results.append(card_in(host, egm_id, "C-1", now).status)
            except Exception as exc:  # collected: a failure in a thread must fail the test
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(e,)) for e in ("EGM1", "EGM2")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors, errors
        assert results == ["ok", "ok"]
        open_ = [r for r in session_rows(host, pid) if r.ended_at is None]
        assert len(open_) == 1, [(r.id, r.egm_id, r.ended_at) for r in session_rows(host, pid)]
    all_rows = session_rows(host, pid)
    # Each round opens one or two sessions (the card may find its own session at a terminal still open).
    assert rounds + 1 <= len(all_rows) <= 2 * rounds
    assert sum(1 for r in all_rows if r.end_reason == "card_in_elsewhere") == len(all_rows) - 1


def test_house_edge_comes_from_the_config_catalog_when_a_package_names_the_paytable(host):
    from terminals import packages

    pid = enrol(host)
    with host.db.begin() as s:
        rules.replace(s, MANAGER, {**rules.DEFAULT_RULES, "house_edge_bp": {"default": 500, "paytables": {}}},
                      host.now())
        assert sessions.house_edge_bp(s, "CAT-92") == 500  # no package names it yet: the rules' default
        packages.create(s, MANAGER, host.signer, packages.Limits(7500, 9900), "Reels", "1.0",
                        [{"theme": "Reels", "paytable_id": "CAT-92", "rtp_bp": 9200, "denoms_cents": [1],
                          "max_bet_cents": 500}], {}, host.now())
        assert sessions.house_edge_bp(s, "CAT-92") == 800
    t0 = local(2026, 11, 20, 14, 0)
    card_in(host, "EGM1", "C-1", t0)
    game(host, "EGM1", t0, 10_000, theme="Reels", paytable="CAT-92")  # theo = 10000 × 8 % = 800 cents
    card_out(host, "EGM1", "C-1", t0 + dt.timedelta(minutes=1))
    [rs] = session_rows(host, pid)
    [d] = days(host, rs.id).values()
    assert d.theo_units // 10_000 == 800
