"""players.reports.player_ratings: one row per (gaming day, player) with the keys the reports engineer
relies on; sessions across the gaming-day boundary split; open sessions count time up to now."""
from __future__ import annotations

import datetime as dt

from players.reports import player_ratings
from tests.players.helpers import card_in, card_out, enrol, game, local

KEYS = {"gaming_day", "player_id", "card_id", "player_name", "sessions", "games", "coin_in_cents", "coin_out_cents",
        "actual_win_cents", "theo_win_cents", "points", "seconds_played", "avg_bet_cents"}


def test_player_ratings_per_gaming_day(host):
    ann = enrol(host, "C-A", "Ann", "Able")
    bob = enrol(host, "C-B", "Bob", "Baker")
    # Ann: 05:00–06:30 local on 20 Nov (day boundary 06:00): 60 min on the 19th, 30 on the 20th.
    card_in(host, "EGM1", "C-A", local(2026, 11, 20, 5, 0))
    game(host, "EGM1", local(2026, 11, 20, 5, 10), 500, 0)
    game(host, "EGM1", local(2026, 11, 20, 5, 20), 1_500, 3_000)
    game(host, "EGM1", local(2026, 11, 20, 6, 10), 2_000, 100)
    card_out(host, "EGM1", "C-A", local(2026, 11, 20, 6, 30))
    # Ann again later on the 20th at another terminal, and Bob once.
    card_in(host, "EGM2", "C-A", local(2026, 11, 20, 20, 0))
    game(host, "EGM2", local(2026, 11, 20, 20, 5), 1_000, 0)
    card_out(host, "EGM2", "C-A", local(2026, 11, 20, 20, 15))
    card_in(host, "EGM3", "C-B", local(2026, 11, 20, 12, 0))
    game(host, "EGM3", local(2026, 11, 20, 12, 1), 333, 0)
    card_out(host, "EGM3", "C-B", local(2026, 11, 20, 12, 2))

    with host.db.read() as s:
        rows = player_ratings(s, host.clock, dt.date(2026, 11, 19), dt.date(2026, 11, 20))
    assert all(set(r) == KEYS for r in rows)
    by = {(r["gaming_day"], r["player_id"]): r for r in rows}
    assert sorted(by) == [("2026-11-19", ann), ("2026-11-20", ann), ("2026-11-20", bob)]
    a19, a20, b20 = by[("2026-11-19", ann)], by[("2026-11-20", ann)], by[("2026-11-20", bob)]
    assert a19 == {"gaming_day": "2026-11-19", "player_id": ann, "card_id": "C-A", "player_name": "Ann Able",
                   "sessions": 1, "games": 2, "coin_in_cents": 2_000, "coin_out_cents": 3_000,
                   "actual_win_cents": -1_000, "theo_win_cents": 160, "points": 20, "seconds_played": 3_600,
                   "avg_bet_cents": 1_000}
    assert a20 == {"gaming_day": "2026-11-20", "player_id": ann, "card_id": "C-A", "player_name": "Ann Able",
                   "sessions": 2, "games": 2, "coin_in_cents": 3_000, "coin_out_cents": 100,
                   "actual_win_cents": 2_900, "theo_win_cents": 240, "points": 30, "seconds_played": 1_800 + 900,
                   "avg_bet_cents": 1_500}
    assert (b20["games"], b20["coin_in_cents"], b20["points"], b20["theo_win_cents"], b20["seconds_played"]) == \
        (1, 333, 3, 26, 120)
    with host.db.read() as s:
        assert [r["gaming_day"] for r in player_ratings(s, host.clock, dt.date(2026, 11, 20),
                                                        dt.date(2026, 11, 20))] == ["2026-11-20", "2026-11-20"]
        assert player_ratings(s, host.clock, dt.date(2026, 11, 21), dt.date(2026, 11, 30)) == []


def test_open_session_counts_time_so_far_and_points_earned(host):
    pid = enrol(host)
    start = local(2026, 11, 20, 10, 0)
    card_in(host, "EGM1", "C-1", start)
    game(host, "EGM1", start + dt.timedelta(minutes=1), 250)
    with host.db.read() as s:
        [r] = player_ratings(s, host.clock, dt.date(2026, 11, 20), dt.date(2026, 11, 20),
                             now=start + dt.timedelta(minutes=20))
    assert (r["player_id"], r["seconds_played"], r["points"], r["games"]) == (pid, 1_200, 2, 1)
