"""Cost of the player club on the gateway's game.end apply step (docs/players.md).

One bulk transaction of 1,000 game.end over 500 terminals, 50 of them carded, applied as the gateway
does (play.record_game, then the players hook), against the same batch without the hook; median of 7
after 2 warm-ups, in a fresh SQLite instance under /tmp. Run: PYTHONPATH=. python -m scripts.bench.players_accrual
"""
import statistics
import tempfile
import time
from server.config import load_settings
from server.host import Host
from server import migrate
from server.db import bulk
from server.audit import SYSTEM
from terminals import play, registry
from players import sessions, accounts
from tests.players.helpers import CLERK
d = tempfile.mkdtemp(prefix="fh-players-bench-")
h = Host(load_settings({"instance": d, "scheduler": "off", "timezone": "UTC"}, environ={}))
migrate.upgrade(h.db)
N_T = 500
with h.db.begin() as s:
    for i in range(N_T):
        registry.register(s, SYSTEM, f"E{i}", "mqtt", {}, {}, h.now())
    for i in range(50):
        accounts.enrol(s, h.settings, CLERK, card_id=f"C{i}", first_name="A", last_name="B", birth_date="1980-01-01", now=h.now())
with h.db.begin() as s:
    for i in range(50):
        sessions.card_in(s, h.clock, f"E{i*10}", f"C{i}", h.now())
from sqlalchemy import select
from terminals.models import Terminal
def batch(hook):
    now = h.now()
    t0 = time.perf_counter()
    with h.db.begin() as s, s.no_autoflush, bulk(s):
        ts = {t.egm_id: t for t in s.execute(select(Terminal)).scalars()}
        for k in range(1000):
            e = f"E{k % N_T}"
            play.record_game(s, h.clock, ts[e], now, theme="R", paytable_id="P", denom_cents=1, wager_cents=100, win_cents=0, credits_after_cents=5)
            if hook:
                sessions.accrue_game(s, h.clock, e, now, theme="R", paytable_id="P", wager_cents=100, win_cents=0)
    return time.perf_counter() - t0
for _ in range(2): batch(False); batch(True)
a = [batch(False) for _ in range(7)]; b = [batch(True) for _ in range(7)]
print(f"1000 game.end batch over {N_T} terminals, 50 carded: without players {statistics.median(a)*1000:.1f} ms, with {statistics.median(b)*1000:.1f} ms, ratio {statistics.median(b)/statistics.median(a):.2f}")
