"""Player cards end to end through the real broker and the MQTT gateway with a raw terminal:
card.in → card.reply ok with points, game.end accrues in the same batches, card.out closes and credits;
excluded and unknown cards; a redelivered card.in gets the same reply; the last will ends a session."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from players.models import RatedSession, SessionDay
from server.models import Alert
from tests.players.helpers import MANAGER, enrol
from tests.support.terminal import RawTerminal, eventually, settle

pytestmark = pytest.mark.slow

GAME = {"game": {"theme": "Reels", "paytable_id": "PT-1"}, "denom_cents": 1, "wager_cents": 100, "win_cents": 0,
        "credits_after_cents": 1_000}


@pytest.fixture
def term(api, gateway, broker, host):
    r = api.as_("slot_tech").post("/terminals", json={"egm_id": "EGM1", "protocol": "mqtt", "location": {}})
    assert r.status_code == 201
    t = RawTerminal(broker, "EGM1", r.get_json()["mqtt"]["password"], root=host.settings.topic_root)
    yield t
    t.close()


def sessions_of(host, player_id):
    with host.db.read() as s:
        return list(s.execute(select(RatedSession).where(RatedSession.player_id == player_id)
                              .order_by(RatedSession.id)).scalars())


def test_card_in_play_card_out_through_the_gateway(term, gateway, host, api):
    pid = enrol(host, "C-1", "Ada", "Lovelace")
    api.as_("manager").post(f"/players/{pid}/points", json={"delta": 40, "reason": "welcome"})
    seq = term.send("card.in", {"card_id": "C-1"})
    reply = term.reply(seq)
    assert reply["type"] == "card.reply"
    assert reply["body"] == {"status": "ok", "player": {"display_name": "Ada L.", "tier": "Bronze", "points": 40}}
    # 30 games of $1 arrive back to back (the gateway batches them) and card.out right behind them.
    for i in range(30):
        term.send("game.end", {**GAME, "win_cents": 50 if i % 3 == 0 else 0})
    term.send("card.out", {"card_id": "C-1"})
    settle(gateway)
    [rs] = eventually(lambda: [r for r in sessions_of(host, pid) if r.ended_at is not None])
    assert (rs.egm_id, rs.end_reason, rs.points_credited) == ("EGM1", "card_out", 30)
    with host.db.read() as s:
        games, coin_in, coin_out = s.execute(select(func.sum(SessionDay.games), func.sum(SessionDay.coin_in_cents),
                                                    func.sum(SessionDay.coin_out_cents))
                                             .where(SessionDay.session_id == rs.id)).one()
    assert (games, coin_in, coin_out) == (30, 3_000, 500)
    profile = api.as_("cashier").get(f"/players/{pid}").get_json()
    assert profile["points"] == 70
    assert profile["sessions"][0]["games"] == 30 and profile["sessions"][0]["avg_bet_cents"] == 100
    # Uncarded now: more games earn nothing.
    term.send("game.end", GAME)
    settle(gateway)
    with host.db.read() as s:
        assert s.execute(select(func.sum(SessionDay.games))).scalar_one() == 30
    # The same card.in seq again (a QoS 1 redelivery) gets the first reply and opens nothing.
    term.send("card.in", {"card_id": "C-1"}, seq=seq)
    assert term.reply(seq)["body"]["player"]["points"] == 40
    assert len(sessions_of(host, pid)) == 1


def test_unknown_and_excluded_cards_through_the_gateway(term, host, gateway):
    pid = enrol(host, "C-X", "Ex", "Cluded")
    from players import accounts

    with host.db.begin() as s:
        accounts.exclude(s, host.clock, MANAGER, pid, until=None, permanent=True, reason="ban", kind="ban",
                         now=host.now())
    assert term.request("card.in", {"card_id": "NOPE"})["body"] == {"status": "unknown", "player": None}
    assert term.request("card.in", {"card_id": "C-X"})["body"] == {"status": "excluded", "player": None}
    term.send("game.end", GAME)
    settle(gateway)
    assert sessions_of(host, pid) == []
    with host.db.read() as s:
        [alert] = s.execute(select(Alert).where(Alert.kind == "excluded_player")).scalars()
        assert (alert.egm_id, alert.player_id) == ("EGM1", pid)
    # A card.in without a card_id is refused with an error reply, never a crash.
    bad = term.request("card.in", {})
    assert bad["body"]["result"] == "error"


def test_last_will_closes_the_session(term, host, gateway):
    pid = enrol(host, "C-1")
    assert term.request("card.in", {"card_id": "C-1"})["body"]["status"] == "ok"
    term.send("game.end", {**GAME, "wager_cents": 500})
    settle(gateway)
    term.status("offline")
    [rs] = eventually(lambda: [r for r in sessions_of(host, pid) if r.ended_at is not None])
    assert (rs.end_reason, rs.points_credited) == ("offline", 5)
