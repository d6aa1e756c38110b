"""The gateway's lane: requests a terminal waits on go first, with their terminal's earlier messages, and a bulk
batch cut short for them leaves nothing out, applies nothing twice and opens no false sequence gap."""
import time

from sqlalchemy import func, select

from protocols.mqtt import encode_up
from server.models import Alert
from terminals.gateway import Inbound, MqttGateway, _Lane, is_urgent
from terminals.models import Event, TerminalMessage
from tests.support.terminal import METERS

GAME = {"game": {"theme": "Gems", "paytable_id": "PT1"}, "denom_cents": 1, "wager_cents": 50, "win_cents": 0,
        "credits_after_cents": 950}


def inbound(root: str, egm_id: str, seq: int, type_: str, body: dict) -> Inbound:
    topic = f"{root}/egm/{egm_id}/up"
    payload = encode_up(seq, type_, body)
    return Inbound(topic, payload, seq, 1, time.monotonic(), 0, egm_id, is_urgent(topic, payload))


def test_urgent_types_are_spotted_in_the_raw_payload_and_only_on_up_topics():
    assert is_urgent("r/egm/A/up", encode_up(1, "voucher.redeem", {"validation_number": "1" * 18}))
    assert is_urgent("r/egm/A/up", encode_up(1, "voucher.issue", {"amount_cents": 5, "credit_type": "cashable"}))
    assert is_urgent("r/egm/A/up", encode_up(1, "handpay", {"amount_cents": 5, "kind": "jackpot"}))
    assert is_urgent("r/egm/A/up", encode_up(1, "card.in", {"card_id": "C1"}))
    assert not is_urgent("r/egm/A/up", encode_up(1, "voucher.redeem.commit",
                                                  {"validation_number": "1" * 18, "amount_cents": 5}))
    assert not is_urgent("r/egm/A/up", encode_up(1, "game.end", GAME))
    assert not is_urgent("r/egm/A/status", b'{"type":"voucher.redeem"}')


def test_lane_takes_a_request_with_its_terminals_earlier_messages_and_keeps_the_rest_in_order():
    lane = _Lane()
    items = [inbound("r", "A", 1, "game.end", GAME), inbound("r", "B", 1, "game.end", GAME),
             inbound("r", "A", 2, "meters", {"meters": METERS}), inbound("r", "C", 1, "game.end", GAME),
             inbound("r", "A", 3, "voucher.redeem", {"validation_number": "1" * 18}),
             inbound("r", "B", 2, "game.end", GAME)]
    for it in items:
        lane.put(it)
    first = lane.take(1000, 0.0)
    assert [(i.egm_id, i.mid) for i in first] == [("A", 1), ("A", 2), ("A", 3)]
    assert lane.urgent == 0
    rest = lane.take(1000, 0.0)
    assert [(i.egm_id, i.mid) for i in rest] == [("B", 1), ("C", 1), ("B", 2)]
    lane.done(len(first) + len(rest))
    assert lane.unfinished == 0


def test_lane_put_back_goes_to_the_front_in_order():
    lane = _Lane()
    for seq in (1, 2, 3):
        lane.put(inbound("r", "A", seq, "game.end", GAME))
    batch = lane.take(1000, 0.0)
    lane.put(inbound("r", "A", 4, "game.end", GAME))
    lane.put_back(batch[1:])
    assert [i.mid for i in lane.take(1000, 0.0)] == [2, 3, 4]


def test_a_bulk_batch_cut_for_a_request_applies_everything_once_in_order(api, host):
    tech = api.as_("slot_tech")
    for egm in ("LA1", "LA2"):
        assert tech.post("/terminals", json={"egm_id": egm, "protocol": "mqtt"}).status_code == 201
    gw = MqttGateway(host, "mqtt://127.0.0.1:1")  # never started: process() is driven directly
    root = host.settings.topic_root
    lane = _Lane()
    bulk = [inbound(root, egm, seq, "game.end", GAME) for seq in range(1, 301) for egm in ("LA1", "LA2")]
    for it in bulk:
        lane.put(it)
    batch = lane.take(1000, 0.0)
    assert len(batch) == 600
    # A ticket-in from LA2 arrives while the batch is being worked on: the worker sees it at once.
    lane.put(inbound(root, "LA2", 301, "voucher.redeem", {"validation_number": "9" * 18}))
    left = gw.process(batch, lane)
    assert 0 < len(batch) - len(left) < 600  # committed a head of the batch, left the tail
    lane.put_back(left)
    lane.done(len(batch) - len(left))
    request_batch = lane.take(1000, 0.0)
    assert request_batch[-1].mid == 301 and {i.egm_id for i in request_batch} == {"LA2"}
    assert [i.mid for i in request_batch] == sorted(i.mid for i in request_batch)
    assert gw.process(request_batch, lane) == []
    lane.done(len(request_batch))
    while lane.unfinished:
        b = lane.take(1000, 0.0)
        out = gw.process(b, lane)
        if out:
            lane.put_back(out)
        lane.done(len(b) - len(out))
    with host.db.read() as s:
        per_terminal = {e: n for e, n in s.execute(
            select(TerminalMessage.egm_id, func.count()).group_by(TerminalMessage.egm_id))}
        assert per_terminal == {"LA1": 300, "LA2": 301}
        assert s.execute(select(func.count()).select_from(TerminalMessage)
                         .where(TerminalMessage.late.is_(True))).scalar() == 0
        assert s.execute(select(func.count()).select_from(Event)
                         .where(Event.code == "comms.sequence_gap")).scalar() == 0
        assert s.execute(select(func.count()).select_from(Alert).where(Alert.kind == "sequence_gap")).scalar() == 0
        reply = s.execute(select(TerminalMessage.reply).where(TerminalMessage.egm_id == "LA2",
                                                              TerminalMessage.seq == 301)).scalar()
    assert '"not_found"' in reply  # the redeem was applied (an unknown number is refused, with its reason)
