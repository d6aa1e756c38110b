"""Scheduled jobs of the cage: release voucher holds that ran out, expire vouchers that are due."""
from __future__ import annotations

import logging

from cashier import vouchers
from server.host import Host

log = logging.getLogger("floorhost.cashier.jobs")


def release_holds(host: Host) -> int:
    with host.db.begin() as s:
        released = vouchers.release_holds(s, vouchers.policy_for(host), host.now(), host.settings.voucher_hold_seconds)
    for vn in released:
        log.warning("voucher %s: hold expired without commit or abort; back to issued", vn)
    return len(released)


def expire_vouchers(host: Host) -> int:
    with host.db.begin() as s:
        expired = vouchers.expire_due(s, vouchers.policy_for(host), host.now())
    if expired:
        log.info("%d voucher(s) expired", len(expired))
    return len(expired)
