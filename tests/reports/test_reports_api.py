"""The reports over the API: names, header, the four formats, exact figures of a known day, roles, bad input."""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json

import pytest

from reports import core
from tests.reports.seed import DAY, seed_day

NAMES = ["meters", "win", "voucher-liability", "voucher-activity", "handpays", "aml", "events", "config-changes",
         "cashier", "player-ratings", "terminal-availability"]


@pytest.fixture
def day(host):
    seed_day(host)
    return DAY.isoformat()


def get(api, name, role="manager", **params):
    q = "&".join(f"{k}={v}" for k, v in params.items())
    return api.as_(role).get(f"/reports/{name}?{q}")


def test_list_names_every_contract_report(api):
    r = api.as_("auditor").get("/reports")
    assert r.status_code == 200
    names = [x["name"] for x in r.get_json()]
    assert set(NAMES) <= set(names)
    assert all(x["title"] and "gaming_day" in x["parameters"] for x in r.get_json())


def test_win_totals_and_rows_to_the_cent(api, day):
    body = get(api, "win", gaming_day=day).get_json()
    assert body["report"] == "win" and body["property"] == "Test Casino"
    assert body["period"] == {"gaming_day": day, "from": "2026-03-10T13:00:00Z", "to": "2026-03-11T13:00:00Z"}
    assert body["software_version"] and body["generated_at"].endswith("Z")
    # Totals keys exactly as http-api.md lists them; 350,000 − 275,000 − 50,000 = 25,000; 25,000/350,000 = 7.14 %.
    assert body["totals"] == {"coin_in_cents": 350_000, "coin_out_cents": 275_000, "jackpot_cents": 50_000,
                              "net_win_cents": 25_000, "hold_bp": 714, "theoretical_hold_bp": 1000}
    rows = {(r["scope"], r["key"], r["period"]): r for r in body["rows"]}
    assert rows[("terminal", "EGM1", "day")]["net_win_cents"] == 20_000
    assert rows[("terminal", "EGM1", "day")]["hold_bp"] == 800
    assert rows[("terminal", "EGM2", "day")]["hold_bp"] == 500
    assert rows[("bank", "A", "day")]["coin_in_cents"] == 250_000
    assert rows[("bank", "B", "mtd")]["coin_in_cents"] == 100_000
    assert rows[("total", "all", "ytd")]["net_win_cents"] == 25_000
    # Per denomination from game.end play: 10 × $1.00 at 1¢, 4 × $5.00 at 5¢.
    assert rows[("denomination", "1", "day")]["coin_in_cents"] == 1000
    assert rows[("denomination", "5", "day")]["coin_in_cents"] == 2000
    assert [c["key"] for c in body["columns"]][:3] == ["scope", "key", "period"]


def test_theoretical_hold_weights_each_paytable_by_its_play(api, day, monkeypatch):
    from reports import win

    monkeypatch.setattr(win, "paytable_rtp_bp", lambda s, ids: {"PT95": 9500, "PT88": 8800})
    body = get(api, "win", gaming_day=day).get_json()
    # (1,000 × 5 % + 2,000 × 12 %) / 3,000 = 9.67 %; theoretical win 50 + 240 = 290 cents.
    assert body["totals"]["theoretical_hold_bp"] == 967
    total = next(r for r in body["rows"] if r["scope"] == "total" and r["period"] == "day")
    assert total["theoretical_win_cents"] == 290


def test_unknown_paytable_gets_the_documented_default(host):
    from reports.win import DEFAULT_RTP_BP, paytable_rtp_bp

    with host.db.read() as s:
        assert paytable_rtp_bp(s, ["nope", 7]) == {"nope": DEFAULT_RTP_BP, "7": DEFAULT_RTP_BP}


def test_meters_report_opening_closing_delta(api, day):
    body = get(api, "meters", gaming_day=day).get_json()
    rows = {(r["egm_id"], r["meter"]): r for r in body["rows"]}
    assert rows[("EGM1", "coin_in_cents")] | {} == {"egm_id": "EGM1", "meter": "coin_in_cents", "opening": 1_000_000,
                                                   "closing": 1_250_000, "delta": 250_000, "snapshots": 2,
                                                   "ram_clears": 0}
    assert body["totals"]["coin_in_cents"] == 350_000 and body["totals"]["terminals"] == 2
    assert body["totals"]["voucher_out_cents"] == 70_000


def test_voucher_reports_keys_and_figures(api, day):
    act = get(api, "voucher-activity", gaming_day=day).get_json()
    assert act["totals"] == {"issued_count": 1, "issued_cents": 30_000, "redeemed_count": 0, "redeemed_cents": 0,
                             "voided_count": 0, "voided_cents": 0, "expired_count": 0, "expired_cents": 0}
    lia = get(api, "voucher-liability", gaming_day=day).get_json()
    assert lia["totals"] == {"opening_cents": 0, "issued_cents": 30_000, "redeemed_cents": 0, "voided_cents": 0,
                             "expired_cents": 0, "closing_cents": 30_000, "outstanding_count": 1}
    assert lia["rows"] == [{"issue_day": day, "count": 1, "amount_cents": 30_000}]


def test_handpays_events_availability_reconciliation(api, day):
    hp = get(api, "handpays", gaming_day=day).get_json()
    assert hp["totals"]["pending_cents"] == 50_000 and hp["totals"]["count"] == 1
    assert hp["rows"][0]["egm_id"] == "EGM1" and hp["rows"][0]["w2g"] is False
    ev = get(api, "events", gaming_day=day).get_json()
    codes = [r["code"] for r in ev["rows"] if r["record"] == "event"]
    assert {"bill.accepted", "handpay", "comms.offline"} <= set(codes)
    assert ev["totals"]["alert_count"] == 1  # EGM2 offline
    av = {r["egm_id"]: r for r in get(api, "terminal-availability", gaming_day=day).get_json()["rows"]}
    assert av["EGM2"]["offline_seconds"] == 3600 and av["EGM2"]["period_seconds"] == 86_400
    assert av["EGM2"]["availability_bp"] == 9583 and av["EGM1"]["availability_bp"] == 10_000
    rec = get(api, "meter-reconciliation", gaming_day=day).get_json()
    bad = [(r["egm_id"], r["item"], r["difference_cents"]) for r in rec["rows"] if r["exception"]]
    assert bad == [("EGM2", "voucher_out", 40_000)]
    ok = {(r["egm_id"], r["item"]) for r in rec["rows"] if not r["exception"]}
    assert {("EGM1", "voucher_out"), ("EGM1", "jackpot"), ("EGM1", "bills_in")} <= ok


@pytest.mark.parametrize("name", NAMES + ["meter-reconciliation"])
def test_every_report_in_every_format_carries_the_header(api, day, name):
    j = get(api, name, gaming_day=day, format="json")
    assert j.status_code == 200, j.get_json()
    body = j.get_json()
    assert set(body) == {"report", "title", "property", "period", "software_version", "generated_at", "columns",
                         "rows", "totals"}
    assert j.headers["X-Report-SHA256"] == hashlib.sha256(j.data).hexdigest()
    c = get(api, name, gaming_day=day, format="csv")
    assert c.status_code == 200 and c.mimetype == "text/csv"
    lines = c.data.decode().splitlines()
    head = [ln for ln in lines if ln.startswith("# ")]
    assert [h.split(":", 1)[0][2:] for h in head] == ["report", "title", "property", "period.gaming_day",
                                                      "period.from", "period.to", "software_version",
                                                      "generated_at"]
    assert f"# period.gaming_day: {day}" in head and "# property: Test Casino" in head
    table = list(csv.reader(io.StringIO("\n".join(lines[len(head):]))))
    assert table[0] == [col["key"] for col in body["columns"]] and len(table) == 1 + len(body["rows"])
    h = get(api, name, gaming_day=day, format="html")
    assert h.status_code == 200 and b"Test Casino" in h.data and body["title"].encode() in h.data
    p = get(api, name, gaming_day=day, format="pdf")
    assert p.status_code == 200 and p.data.startswith(b"%PDF") and p.mimetype == "application/pdf"


def test_player_ratings_per_player_and_day_to_the_cent(api, host, day):
    from tests.players.helpers import card_in, card_out, enrol, game, local

    ada = enrol(host, "C-1", "Ada", "Lovelace")
    enrol(host, "C-2", "Bob", "Byron")  # enrolled, never played: no row
    t0 = local(2026, 3, 10, 20, 0)  # inside gaming day 2026-03-10
    card_in(host, "EGM1", "C-1", t0)
    for i in range(4):
        game(host, "EGM1", t0 + dt.timedelta(minutes=i), 2_500, win=1_000 if i % 2 else 0, paytable="PT95")
    card_out(host, "EGM1", "C-1", t0 + dt.timedelta(minutes=10))
    body = get(api, "player-ratings", gaming_day=day).get_json()
    assert [(r["player_id"], r["card_id"], r["gaming_day"]) for r in body["rows"]] == [(ada, "C-1", day)]
    [row] = body["rows"]
    # 4 games of $25.00, two wins of $10.00: coin-in 10,000, coin-out 2,000, actual win 8,000, average bet 2,500.
    assert (row["sessions"], row["games"], row["coin_in_cents"], row["coin_out_cents"], row["actual_win_cents"],
            row["avg_bet_cents"], row["seconds_played"]) == (1, 4, 10_000, 2_000, 8_000, 2_500, 600)
    assert row["theo_win_cents"] == 10_000 * 800 // 10_000  # no package names PT95: the rules' default edge, 8 %
    assert body["totals"]["players"] == 1 and body["totals"]["coin_in_cents"] == 10_000
    assert get(api, "player-ratings", gaming_day="2026-03-11").get_json()["rows"] == []


def test_config_changes_lists_each_download_per_terminal(api, host, day):
    from terminals import deployments, packages
    from tests.players.helpers import MANAGER, local

    with host.db.begin() as s:
        pkg = packages.create(s, MANAGER, host.signer, packages.Limits(7500, 9900), "floor-a", "3.1",
                              [{"theme": "T", "paytable_id": "PT95", "rtp_bp": 9500, "denoms_cents": [1],
                                "max_bet_cents": 100}], {}, local(2026, 3, 10, 7, 0))
        dep = deployments.create(s, MANAGER, pkg.id, ["EGM1", "EGM2"], "idle", local(2026, 3, 10, 8, 0)).id
    body = get(api, "config-changes", gaming_day=day).get_json()
    assert [(r["deployment_id"], r["egm_id"], r["package_name"], r["package_version"], r["sha256"], r["operator"])
            for r in body["rows"]] == [(dep, "EGM1", "floor-a", "3.1", pkg.sha256, "manager1"),
                                       (dep, "EGM2", "floor-a", "3.1", pkg.sha256, "manager1")]
    assert body["totals"]["downloads"] == 2 and body["totals"]["deployments"] == 1
    csv_text = get(api, "config-changes", gaming_day=day, format="csv").data.decode()
    assert pkg.sha256 in csv_text and "floor-a" in csv_text
    # The catalog now names PT95 at 95 %: the win report's theoretical hold follows it.
    with host.db.read() as s:
        from reports.win import paytable_rtp_bp

        assert paytable_rtp_bp(s, ["PT95", "nope"])["PT95"] == 9500


def test_ranges_sum_days(api, host, day):
    body = get(api, "win", **{"from": "2026-03-09", "to": "2026-03-11"}).get_json()
    assert body["period"]["gaming_day"] is None and body["period"]["from"] == "2026-03-09T13:00:00Z"
    assert body["totals"]["coin_in_cents"] == 350_000
    assert {r["period"] for r in body["rows"]} == {"range", "mtd", "ytd"}
    lia = get(api, "voucher-liability", **{"from": "2026-03-09", "to": "2026-03-11"}).get_json()
    assert lia["totals"]["closing_cents"] == 30_000 and lia["totals"]["opening_cents"] == 0


def test_roles(api, day):
    assert get(api, "win", role="cashier", gaming_day=day).status_code == 403
    assert get(api, "win", role="slot_tech", gaming_day=day).status_code == 403
    assert get(api, "win", role="auditor", gaming_day=day).status_code == 200
    assert api.as_("cashier").get("/reports").status_code == 403


@pytest.mark.parametrize("params, status, field", [
    ({"gaming_day": "2026-13-01"}, 400, "gaming_day"),
    ({"gaming_day": "2026-03-10", "format": "xml"}, 400, "format"),
    ({"from": "2026-03-10"}, 400, "to"),
    ({"from": "2026-03-10", "to": "2026-03-01"}, 400, "to"),
    ({"from": "2025-01-01", "to": "2026-03-01"}, 400, "to"),
    ({"gaming_day": "2026-03-10", "from": "2026-03-10", "to": "2026-03-10"}, 400, "gaming_day"),
    ({"gaming_day": "2026-03-10", "version": "x"}, 400, "version"),
    ({"gaming_day": "2026-03-10", "version": "1"}, 404, "version"),
])
def test_bad_input_is_a_4xx_naming_the_field(api, params, status, field):
    r = get(api, "win", **params)
    assert r.status_code == status, r.data
    assert r.get_json()["error"]["field"] == field


def test_unknown_report_is_404(api):
    r = get(api, "nope", gaming_day="2026-03-10")
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "report_not_found"


def test_json_is_the_document_the_renderers_share(host, day):
    from reports.render import to_json

    with host.db.read() as s:
        doc = core.build(s, host.clock, host.settings, "win", core.Period(DAY, DAY), host.now())
    assert json.loads(to_json(doc))["totals"] == doc.totals
