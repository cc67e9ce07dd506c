"""The embedded instance's event log: Dagster's SQLite event log (same files, same schema, same locking) that keeps
its database engines and an open connection per database file instead of creating and disposing of an engine for
every statement.

Dagster's own class builds a new engine per connection: SQLAlchemy compiles every statement afresh, and closing the
last connection to a WAL database makes SQLite checkpoint the log and delete it, every time. Storing one event cost
~20 ms that way, and a run stores hundreds (every asset and asset check is announced as planned when the run is
created, and the dbt step reports every model and test). Commits are `synchronous=NORMAL`, which in WAL mode
cannot corrupt the database; an operating-system crash (not a process crash) can lose the last events written.
Configured in the embedded `dagster.yaml`; production uses PostgreSQL (deploy/dagster.yaml) instead.

It subclasses Dagster's private SQLite event log (`PRIVATE_SYMBOLS`, checked by tests/test_storage.py), behind an
off switch: `DAGSTER_SQLITE_KEEP_ENGINES=false` makes every method Dagster's own. The gain, with the switch as the
baseline: docs/decisions.md.
"""

import os
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

from dagster import StringSource
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import QueuePool

# What this module needs of Dagster's private parts (tests/test_storage.py checks each exists).
PRIVATE_SYMBOLS = [
    ("dagster._core.storage.event_log.sqlite.sqlite_event_log", "SqliteEventLogStorage._connect"),
    ("dagster._core.storage.event_log.sqlite.sqlite_event_log", "SqliteEventLogStorage._initdb"),
    ("dagster._core.storage.event_log.sqlite.sqlite_event_log", "SqliteEventLogStorage.conn_string_for_shard"),
    ("dagster._core.storage.event_log.sqlite.sqlite_event_log", "INDEX_SHARD_NAME"),
    ("dagster._core.storage.sqlite", "SQLITE_BUSY_TIMEOUT_SECONDS"),
]


def keep_engines() -> bool:
    """The off switch: DAGSTER_SQLITE_KEEP_ENGINES (default true)."""
    return (os.environ.get("DAGSTER_SQLITE_KEEP_ENGINES") or "true").strip().lower() not in ("false", "0", "no", "off")


# engines kept per process (one per run's database file and one for the index); the oldest are let go
MAX_ENGINES = 32


def _sqlite_settings(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("pragma synchronous = normal")
    cursor.close()


class SqliteEventLogStorageKeepingEngines(SqliteEventLogStorage):
    """SQLite event log under ``<dagster_home>/history/runs`` (where Dagster's default one keeps it)."""

    def __init__(self, base_dir: str, inst_data=None):
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        super().__init__(base_dir, inst_data)

    @classmethod
    def config_type(cls):
        return {"dagster_home": StringSource}

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        home = os.path.abspath(config_value["dagster_home"])
        return cls(base_dir=os.path.join(home, "history", "runs"), inst_data=inst_data)

    def _engine(self, shard: str) -> Engine:
        engine = self._engines.get(shard)
        if engine is None:
            # one connection in use at a time (the storage's lock), kept open between uses
            engine = create_engine(
                self.conn_string_for_shard(shard),
                poolclass=QueuePool,
                pool_size=1,
                max_overflow=2,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
            )
            event.listen(engine, "connect", _sqlite_settings)
            self._engines[shard] = engine
            while len(self._engines) > MAX_ENGINES:
                self._engines.popitem(last=False)[1].dispose()
        else:
            self._engines.move_to_end(shard)
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:  # type: ignore[override]
        if not keep_engines():
            with super()._connect(shard) as conn:
                yield conn
            return
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def wipe(self) -> None:
        # the run databases are deleted: their kept connections must not outlive the files
        with self._db_lock:
            for shard in [s for s in self._engines if s != INDEX_SHARD_NAME]:
                self._engines.pop(shard).dispose()
        super().wipe()

    def dispose(self) -> None:
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()
        super().dispose()
