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


def upsert_add(session: Session, table, keys: dict, adds: dict, sets: dict | None = None,
               inserts: dict | None = None) -> None:
    """INSERT a row, or on key conflict add `adds` to its columns and overwrite `sets` (SQLite and PostgreSQL).

    `inserts` are columns written only when the row is new (e.g. a day's opening values).
    """
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(table).values(**keys, **adds, **(sets or {}), **(inserts or {}))
    update = {c: table.c[c] + stmt.excluded[c] for c in adds}
    update.update({c: stmt.excluded[c] for c in (sets or {})})
    session.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=update))
