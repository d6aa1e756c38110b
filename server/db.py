"""Database engine, sessions and the declarative base every domain's models share.

SQLite is tuned for many writer threads on one file: WAL, synchronous=FULL,
a busy timeout, and `BEGIN IMMEDIATE` for write transactions (a deferred BEGIN
that later upgrades to a write lock fails with "database is locked" under
threads). Read-only sessions keep a deferred BEGIN so pages never queue behind
the gateway. PostgreSQL needs none of this.
"""
from __future__ import annotations

import contextlib
import datetime as dt
from typing import Iterator

from sqlalchemy import BigInteger, DateTime, Engine, MetaData, TypeDecorator, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator):
    """Stores instants as UTC and always hands back aware datetimes (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


# Money and meters: integer cents, 64-bit everywhere (SQLite's INTEGER is 64-bit already).
Cents = BigInteger


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def iso_z(t: dt.datetime | None) -> str | None:
    """An instant as the API and the wire write it: ISO 8601 in UTC with a Z (None stays None)."""
    return t.isoformat().replace("+00:00", "Z") if t else None


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def make_engine(url: str, *, pool_size: int = 20) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=pool_size,
            max_overflow=pool_size,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn, _record):
            # Let SQLAlchemy's begin listener issue BEGIN itself (pysqlite's own BEGIN is deferred).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            if conn.get_execution_options().get("floorhost_readonly"):
                conn.exec_driver_sql("BEGIN")
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


class Database:
    """Owns the engine; hands out write transactions and read sessions."""

    def __init__(self, url: str, *, pool_size: int = 20):
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size)
        self.dialect = self.engine.dialect.name
        self._write = sessionmaker(self.engine, expire_on_commit=False)
        self._read = sessionmaker(self.engine.execution_options(floorhost_readonly=True), expire_on_commit=False)

    @contextlib.contextmanager
    def begin(self) -> Iterator[Session]:
        """One write transaction: commits on success, rolls back on any exception."""
        with self._write() as session, session.begin():
            yield session

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session:
            yield session

    def session(self) -> Session:
        """An unmanaged write session (the caller commits); used per web request."""
        return self._write()

    def create_all(self) -> None:
        import server.models_all  # noqa: F401  (registers every domain's tables)

        Base.metadata.create_all(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()


class BulkWriter:
    """Append-only rows and per-day sums, written at once or, inside `bulk()`, in a few statements at the end.

    The gateway applies a thousand messages in one transaction: one INSERT per row and one
    upsert per game would spend its time in SQLAlchemy, not in the database. Services call
    `writer(session)` and do not care which mode they are in; `cache` is their scratch space
    for values written but not yet visible to queries (e.g. a terminal's last meters).
    """

    def __init__(self, session: Session, deferred: bool):
        self.session = session
        self.deferred = deferred
        self.cache: dict = {}
        self._rows: dict = {}
        self._sums: dict = {}

    def insert(self, table, row: dict) -> None:
        if self.deferred:
            self._rows.setdefault(table, []).append(row)
        else:
            self.session.execute(table.insert(), [row])

    def insert_many(self, table, rows: list[dict]) -> None:
        if self.deferred:
            self._rows.setdefault(table, []).extend(rows)
        elif rows:
            self.session.execute(table.insert(), rows)

    def add_sums(self, table, keys: dict, adds: dict, sets: dict | None = None, inserts: dict | None = None) -> None:
        """On the row named by `keys`: add `adds`, overwrite `sets`, and write `inserts` only when the row is new."""
        if not self.deferred:
            self._upsert(table, list(keys), list(adds), list(sets or {}), [{**keys, **adds, **(sets or {}), **(inserts or {})}])
            return
        bucket = self._sums.setdefault((table, tuple(keys), tuple(adds), tuple(sets or {}), tuple(inserts or {})), {})
        k = tuple(keys.values())
        row = bucket.get(k)
        if row is None:
            bucket[k] = {**keys, **adds, **(sets or {}), **(inserts or {})}
        else:
            for c, v in adds.items():
                row[c] += v
            row.update(sets or {})

    def flush(self) -> None:
        for table, rows in self._rows.items():
            self.session.execute(table.insert(), rows)
        for (table, keys, adds, sets, _inserts), bucket in self._sums.items():
            self._upsert(table, list(keys), list(adds), list(sets), list(bucket.values()))
        self._rows.clear()
        self._sums.clear()

    def _upsert(self, table, keys: list, adds: list, sets: list, rows: list[dict]) -> None:
        if self.session.get_bind().dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stmt = insert(table)
        update = {c: table.c[c] + stmt.excluded[c] for c in adds}
        update.update({c: stmt.excluded[c] for c in sets})
        self.session.execute(stmt.on_conflict_do_update(index_elements=keys, set_=update), rows)


def writer(session: Session) -> BulkWriter:
    """The session's deferred writer inside `bulk()`, else one that writes at once."""
    return session.info.get("bulk_writer") or BulkWriter(session, deferred=False)


@contextlib.contextmanager
def bulk(session: Session) -> Iterator[BulkWriter]:
    """Defers append-only rows and sums to one flush at the end of the block (before the caller commits)."""
    w = BulkWriter(session, deferred=True)
    session.info["bulk_writer"] = w
    try:
        yield w
        w.flush()
    finally:
        session.info.pop("bulk_writer", None)
