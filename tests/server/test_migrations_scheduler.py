"""Alembic migrations match the models; the scheduler runs once per instance with explicit job ids."""
import importlib

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import server.models_all  # noqa: F401
from server.db import Base
from server.scheduler import JOBS, Scheduler, SchedulerLocked


def test_migrations_create_exactly_the_models(host):
    with host.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_jobs_are_importable_and_have_explicit_ids():
    for job_id, (func, trigger) in JOBS.items():
        module, name = func.split(":")
        assert callable(getattr(importlib.import_module(module), name)), job_id
        assert "trigger" in trigger


def test_one_scheduler_per_instance(host):
    first = Scheduler(host)
    first.start()
    try:
        assert {j.id for j in first.scheduler.get_jobs()} == set(JOBS)
        with pytest.raises(SchedulerLocked):
            Scheduler(host).start()
    finally:
        first.stop()
    again = Scheduler(host)
    again.start()
    again.stop()
