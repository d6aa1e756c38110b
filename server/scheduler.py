"""The one APScheduler of a deployment: explicit job ids, importable job functions.

Only one process may run it: `scheduler = off` for extra web-only processes,
and a lock file in the instance folder stops a second one on the same machine.
"""
from __future__ import annotations

import fcntl
import logging
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler

from server.host import Host

log = logging.getLogger("floorhost.scheduler")

# job id → (importable function "module:name", trigger kwargs). Each function takes the Host.
JOBS: dict[str, tuple[str, dict]] = {
    "terminals.heartbeat": ("terminals.jobs:heartbeat", {"trigger": "interval", "seconds": 10}),
    "terminals.command_timeouts": ("terminals.jobs:command_timeouts", {"trigger": "interval", "seconds": 30}),
    "terminals.clock_sync": ("terminals.jobs:clock_sync", {"trigger": "interval", "minutes": 30}),
    "terminals.deployments": ("terminals.deploy_steps:pump", {"trigger": "interval", "seconds": 2}),
    "cashier.release_holds": ("cashier.jobs:release_holds", {"trigger": "interval", "seconds": 5}),
    "cashier.expire_vouchers": ("cashier.jobs:expire_vouchers", {"trigger": "interval", "minutes": 10}),
    "reports.close_gaming_day": ("reports.closing:scheduled_close", {"trigger": "interval", "minutes": 5}),
}


class SchedulerLocked(RuntimeError):
    pass


class Scheduler:
    def __init__(self, host: Host):
        self.host = host
        self._lock_file = None
        self.scheduler = BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1,
                                                                           "misfire_grace_time": 60})

    def start(self) -> None:
        path = Path(self.host.settings.instance) / "scheduler.lock"
        self._lock_file = open(path, "w")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise SchedulerLocked(f"another process runs the scheduler of {self.host.settings.instance}") from None
        for job_id, (func, trigger) in JOBS.items():
            self.scheduler.add_job(func, id=job_id, args=[self.host], replace_existing=True, **trigger)
        self.scheduler.start()
        log.info("scheduler started with jobs %s", ", ".join(JOBS))

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self._lock_file:
            self._lock_file.close()
            self._lock_file = None
