"""The instance's event-log storage: Dagster's SQLite one, with prompt re-checks of the warehouse pool, and
one connection kept open per database instead of one opened and closed per event (`KeptEngines`).

Every step that writes the warehouse claims a slot of pool "warehouse" (limit 1). A step that finds it
taken checks again after an interval the storage may set; Dagster's SQLite storage sets none, and the
executor then waits 1 s, growing by 10 % with each check, so a step that has waited through half a minute
of others checks only every ~4 s. Measured on `refresh_memory` of the demo home under the multiprocess
executor (UI, daemon), 2026-12-06: 13-14 s of a 60-63 s run had no step running at all; re-checking
every 0.25 s made the run 50-52 s (3.7 s with none running), every table equal. A check is two reads of
the small index database.

`instance.prepare_dagster_home` names this class in each home's dagster.yaml with that home's event-log
folder written out: a storage class gets no instance directory from Dagster, and guessing it from
$DAGSTER_HOME would read another home's logs whenever an instance is opened from its folder
(`DagsterInstance.from_config(dir)`). The Postgres instance of deploy/ keeps Dagster's own storage.
"""

from __future__ import annotations

import os
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dagster import Field, StringSource
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    SQLITE_BUSY_TIMEOUT_SECONDS,
)
from dagster._serdes import ConfigurableClass, ConfigurableClassData
from dagster._utils.concurrency import ConcurrencyClaimStatus

DEFAULT_CLAIM_POLL_SECONDS = 0.25
# Run databases whose connection stays open (the index and the runs being written or watched).
KEPT_SHARDS = 8


class PromptClaimSqliteEventLogStorage(SqliteEventLogStorage, ConfigurableClass):
    """Dagster's SQLite event-log storage (one database per run under `base_dir`); a step blocked on a pool
    checks again every `claim_poll_seconds`, and the databases in use keep their connection."""

    def __init__(self, base_dir: str, claim_poll_seconds: float = DEFAULT_CLAIM_POLL_SECONDS,
                 inst_data: ConfigurableClassData | None = None) -> None:
        if not claim_poll_seconds > 0:
            raise ValueError(f"claim_poll_seconds must be positive, got {claim_poll_seconds!r} (dagster.yaml)")
        self.claim_poll_seconds = float(claim_poll_seconds)
        self._kept = KeptEngines()
        weakref.finalize(self, self._kept.close)  # at exit too, if the storage is still alive then
        self._tables: set[str] = set()
        super().__init__(base_dir, inst_data)

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {"base_dir": StringSource,
                "claim_poll_seconds": Field(float, is_required=False, default_value=DEFAULT_CLAIM_POLL_SECONDS)}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None,  # ty: ignore[invalid-method-override]
                          config_value: dict[str, Any]) -> PromptClaimSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def check_concurrency_claim(self, concurrency_key: str, run_id: str, step_key: str) -> ConcurrencyClaimStatus:
        return super().check_concurrency_claim(concurrency_key, run_id, step_key).with_sleep_interval(
            self.claim_poll_seconds)

    # Dagster's SQLite storage builds an engine, opens a connection and closes it for every event it stores (and
    # the close of a database's last connection checkpoints its write-ahead log). It keeps one connection per
    # database instead, for the few databases in use: a demo new day (~330 run events, the index's copies besides)
    # took 36.6 s with a connection per event and 33.3-33.9 s so. `_db_lock` serialises every use, so one
    # connection per database is enough, and it may move between threads.
    @contextmanager
    def _connect(self, shard: str) -> Iterator[Any]:
        with self._db_lock:
            engine = self._kept.engine(shard, self.conn_string_for_shard(shard))
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def has_table(self, table_name: str) -> bool:
        # asked on every asset-check event, with an engine of its own each time; a table once there stays
        if table_name not in self._tables and super().has_table(table_name):
            self._tables.add(table_name)
        return table_name in self._tables

    def wipe(self) -> None:
        with self._db_lock:  # before the files go: a kept connection would go on writing to a deleted file
            self._kept.close()
        super().wipe()

    def dispose(self) -> None:
        super().dispose()
        with self._db_lock:
            self._kept.close()


class KeptEngines:
    """SQLAlchemy engines of one storage by database, each holding one open connection, the least recently used
    closed beyond `limit`. Its process's only: a forked child starts with none of them (a connection must not
    cross a fork), and it closes what it kept when the storage is disposed, or at exit, so the last close can
    fold the write-ahead log back into the database file."""

    def __init__(self, limit: int = KEPT_SHARDS) -> None:
        self.limit = limit
        self.engines: OrderedDict[str, Any] = OrderedDict()
        self.pid = os.getpid()

    def engine(self, shard: str, url: str) -> Any:
        from sqlalchemy import create_engine
        from sqlalchemy.pool import QueuePool

        if self.pid != os.getpid():
            for inherited in self.engines.values():
                inherited.dispose(close=False)
            self.engines.clear()
            self.pid = os.getpid()
        engine = self.engines.pop(shard, None)
        if engine is None:  # one kept connection; _initdb briefly needs a second one, which is then closed
            engine = create_engine(url, poolclass=QueuePool, pool_size=1, max_overflow=4,
                                   connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False})
        self.engines[shard] = engine
        while len(self.engines) > self.limit:
            self.engines.popitem(last=False)[1].dispose()
        return engine

    def close(self) -> None:
        for engine in self.engines.values():
            engine.dispose(close=self.pid == os.getpid())
        self.engines.clear()
