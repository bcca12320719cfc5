"""The DuckDB warehouse: the one way assets read and write tables.

Table names are `schema.table`, the same words as the Dagster asset key. Every call
opens and closes its own connection so no lock outlives a step (DuckDB allows one
writer process; writer assets share the `warehouse` concurrency pool).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import numpy as np
import pandas as pd

from creative_dag.catalog.types import DAY_COLUMN

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# The serving copy's DuckDB file is written in this storage format: DuckDB 1.0 and later read it (the
# duckdb-cli on PyPI and the DuckDB bundled in BI drivers lag the Python package; 2.x writes a format
# 1.x cannot open by default).
SERVING_STORAGE_VERSION = "v1.0.0"


def split_table_name(name: str) -> tuple[str, str]:
    """'raw.creatives' -> ('raw', 'creatives'); rejects anything that is not two identifiers."""
    parts = name.split(".")
    if len(parts) != 2 or not all(_IDENT.match(p) for p in parts):
        raise ValueError(f"table name must be 'schema.table' of identifiers, got {name!r}")
    return parts[0], parts[1]


class WarehouseLockedError(RuntimeError):
    """The DuckDB file stayed locked by another process past the lock timeout."""


class DuckDBWarehouse:
    """Plain-Python access to one DuckDB file (usable without Dagster, e.g. in tests and the CLI)."""

    def __init__(self, path: str | os.PathLike, read_only: bool = False, lock_timeout_s: float = 60.0) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self.lock_timeout_s = lock_timeout_s

    @contextmanager
    def connect(self, write: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection that closes on exit. Reads open the file read-only (write=False), so only
        steps that write take DuckDB's writer lock, and those are the steps in the `warehouse` pool.
        Reading a database that does not exist yet gives an empty in-memory catalog."""
        writable = write and not self.read_only
        if write and self.read_only:
            raise PermissionError(f"warehouse {self.path} was opened read-only; this operation writes")
        if writable:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif not self.path.exists():
            con = duckdb.connect(":memory:")
            try:
                yield con
            finally:
                con.close()
            return
        con = self._open_waiting_for_lock(read_only=not writable)
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def reading(self) -> Iterator[DuckDBWarehouse]:
        """A read-only view of this warehouse whose reads all share one connection: a step's read phase.

        Each read otherwise opens the file, and an open costs ~20 ms (DuckDB builds a database instance
        each time; a new-day run of the demo opened it ~265 times). While the view is open the file is
        locked against writers in other processes, so keep it around reads, not compute; writing through
        it raises PermissionError."""
        with self.connect() as con:
            yield _SharedConnection(self, con)

    def _open_waiting_for_lock(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        """Open the file, retrying while another process holds its lock (a transient state: a BI
        tool or a CLI query on the live file) for up to lock_timeout_s, then fail naming the holder."""
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.2
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise
                if time.monotonic() >= deadline:
                    raise WarehouseLockedError(
                        f"warehouse {self.path} stayed locked by another process for {self.lock_timeout_s:.0f}s "
                        f"({exc}); close that process (BI tools must open the serving copy, not the live "
                        "file) and re-run") from None
                time.sleep(min(delay, max(deadline - time.monotonic(), 0.0)))
                delay = min(delay * 2, 5.0)

    # -- reads -------------------------------------------------------------------------
    def exists(self, table: str) -> bool:
        if not self.path.exists():
            return False
        with self.connect() as con:
            return _exists(con, table)

    def read_table(self, table: str, columns: Sequence[str] | None = None,
                   where: str | None = None, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """Read a table. `where` is a SQL predicate with `?` placeholders bound from `params`."""
        frame = self.read_optional(table, columns, where, params)
        if frame is None:
            schema, name = split_table_name(table)
            raise LookupError(
                f"warehouse table {table} does not exist in {self.path}; materialise the asset "
                f"{schema}/{name} first (creative-dag materialize --select {schema}/{name})"
            )
        return frame

    def read_optional(self, table: str, columns: Sequence[str] | None = None,
                      where: str | None = None, params: Sequence[Any] | None = None) -> pd.DataFrame | None:
        """`read_table`, or None when the table does not exist. One connection: opening the file costs
        ~10 ms, and a run reads a few hundred tables."""
        schema, name = split_table_name(table)
        cols = ", ".join(_quote(c) for c in columns) if columns else "*"
        sql = f"SELECT {cols} FROM {schema}.{name}"
        if where:
            sql += f" WHERE {where}"
        with self.connect() as con:
            if not _exists(con, table):
                return None
            return con.execute(sql, list(params or [])).df()

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """Run a read-only query (a statement that writes fails: use `execute`)."""
        with self.connect() as con:
            return con.execute(sql, list(params or [])).df()

    def tables(self) -> list[str]:
        if not self.path.exists():
            return []
        with self.connect() as con:
            rows = con.execute(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_schema NOT IN ('information_schema', 'pg_catalog') ORDER BY 1, 2"
            ).fetchall()
        return [f"{s}.{t}" for s, t in rows]

    # -- writes ------------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        """Run a statement that changes the warehouse (DDL or DML)."""
        with self.connect(write=True) as con:
            con.execute(sql, list(params or []))

    def write_table(self, table: str, frame: pd.DataFrame, types: Mapping[str, str] | None = None) -> int:
        """Replace `table` with `frame` (created with the frame's schema). Returns the row count.

        types: DuckDB types for some columns (e.g. {"trained_through": "DATE"} for ISO date strings).
        A column with no value at all (every cell None, or no row) and no declared type is a DATE when
        its name says it holds days (`DAY_COLUMN`: a step skipped for lack of data writes an empty table
        typed like a full one), else VARCHAR: DuckDB would type it "NULL" (or text), which BI drivers
        cannot map and no later value can be cast to."""
        schema, name = split_table_name(table)
        types = {**_empty_day_columns(frame), **(types or {})}
        frame = _duckdb_ready(frame)
        with self.connect(write=True) as con:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            con.register("_incoming", frame)
            con.execute(f"CREATE OR REPLACE TABLE {schema}.{name} AS SELECT "
                        f"{_typed_columns(_describe_incoming(con), types)} FROM _incoming")
            con.unregister("_incoming")
        return len(frame)

    def replace_rows(self, table: str, frame: pd.DataFrame, key_column: str,
                     keys: Sequence[Any]) -> int:
        """Delete rows whose `key_column` is in `keys`, then insert `frame` (by column name).

        This is how partitioned assets write: only their own partition's rows change.
        The table is created from `frame` when it does not exist yet.
        """
        schema, name = split_table_name(table)
        if not _IDENT.match(key_column):
            raise ValueError(f"bad key column {key_column!r}")
        frame = _duckdb_ready(frame)
        with self.connect(write=True) as con:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            con.register("_incoming", frame)
            incoming = _describe_incoming(con)
            con.execute(f"CREATE TABLE IF NOT EXISTS {schema}.{name} AS SELECT "
                        f"{_typed_columns(incoming, _empty_day_columns(frame))} FROM _incoming LIMIT 0")
            _type_null_columns(con, schema, name, incoming)
            con.execute("BEGIN TRANSACTION")
            try:
                if len(keys):
                    con.register("_keys", pd.DataFrame({"k": list(keys)}))
                    con.execute(f"DELETE FROM {schema}.{name} WHERE {_quote(key_column)} IN (SELECT k FROM _keys)")
                    con.unregister("_keys")
                con.execute(f"INSERT INTO {schema}.{name} BY NAME SELECT * FROM _incoming")
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
            finally:
                con.unregister("_incoming")
        return len(frame)

    # -- serving copy ------------------------------------------------------------------
    def publish(self, serving_dir: str | os.PathLike) -> dict[str, int]:
        """Write every table to Parquet plus a DuckDB file of the same tables, then move each file
        into `serving_dir` with one rename.

        BI tools open `serving_dir/creative.duckdb` (or the Parquet files), never the live file. A
        reader opening a path under `serving_dir` always finds a whole file, of the previous copy or
        of this one; one that has a file open keeps reading it. The DuckDB file is written in the
        storage format of `SERVING_STORAGE_VERSION`, so that BI drivers bundling an older DuckDB
        open it too. Returns row counts per table.
        """
        serving = Path(serving_dir)
        serving.parent.mkdir(parents=True, exist_ok=True)
        # mkdir, not mkdtemp: folders get the umask's permissions (a BI server runs as its own user).
        staging = serving.parent / f".{serving.name}-{os.getpid()}-{time.time_ns()}"
        staging.mkdir()
        try:
            counts: dict[str, int] = {}
            tables = self.tables()
            with self.connect() as con:
                for table in tables:
                    schema, name = split_table_name(table)
                    target = staging / schema / f"{name}.parquet"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    con.execute(f"COPY {schema}.{name} TO '{_sql_path(target)}' (FORMAT PARQUET)")
                    counts[table] = int(con.execute(f"SELECT count(*) FROM {schema}.{name}").fetchone()[0])
            serving_db = duckdb.connect(":memory:")
            try:
                serving_db.execute(f"ATTACH '{_sql_path(staging / 'creative.duckdb')}' AS serving "
                                   f"(STORAGE_VERSION '{SERVING_STORAGE_VERSION}')")
                for table in counts:
                    schema, name = split_table_name(table)
                    serving_db.execute(f"CREATE SCHEMA IF NOT EXISTS serving.{schema}")
                    # Tables, not views over relative paths: the copy must stay valid after the move.
                    serving_db.execute(
                        f"CREATE TABLE serving.{schema}.{name} AS SELECT * FROM "
                        f"read_parquet('{_sql_path(staging / schema / (name + '.parquet'))}')")
                serving_db.execute("DETACH serving")
            finally:
                serving_db.close()
            _move_files_into(staging, serving)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return counts


class _SharedConnection(DuckDBWarehouse):
    """DuckDBWarehouse.reading()'s view: every read goes through the one open read-only connection."""

    def __init__(self, base: DuckDBWarehouse, con: duckdb.DuckDBPyConnection) -> None:
        super().__init__(base.path, read_only=True, lock_timeout_s=base.lock_timeout_s)
        self._con = con

    @contextmanager
    def connect(self, write: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        if write:
            raise PermissionError(f"warehouse {self.path}: a write inside reading(); write after the read phase")
        yield self._con

    @contextmanager
    def reading(self) -> Iterator[DuckDBWarehouse]:
        yield self


class WarehouseResource(dg.ConfigurableResource):
    """Dagster resource for the warehouse. `database` is the DuckDB file path; `lock_timeout_s`:
    how long a step waits for another process's lock on it before failing with the holder named."""

    database: str
    lock_timeout_s: float = 60.0

    def get(self) -> DuckDBWarehouse:
        return DuckDBWarehouse(self.database, lock_timeout_s=self.lock_timeout_s)

    def read_table(self, table: str, **kwargs: Any) -> pd.DataFrame:
        return self.get().read_table(table, **kwargs)

    def write_table(self, table: str, frame: pd.DataFrame, types: Mapping[str, str] | None = None) -> int:
        return self.get().write_table(table, frame, types)

    def replace_rows(self, table: str, frame: pd.DataFrame, key_column: str, keys: Sequence[Any]) -> int:
        return self.get().replace_rows(table, frame, key_column, keys)

    def read_optional(self, table: str, **kwargs: Any) -> pd.DataFrame | None:
        return self.get().read_optional(table, **kwargs)

    @contextmanager
    def reading(self) -> Iterator[DuckDBWarehouse]:
        """DuckDBWarehouse.reading(): reads that share one connection (a step's read phase)."""
        with self.get().reading() as view:
            yield view

    def exists(self, table: str) -> bool:
        return self.get().exists(table)

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        return self.get().query(sql, params)

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        self.get().execute(sql, params)


def _duckdb_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """Convert numpy-array cells to lists so DuckDB stores them as LIST columns."""
    out = frame
    for col in frame.columns:
        if frame[col].dtype == object and len(frame) and isinstance(frame[col].iloc[0], np.ndarray):
            if out is frame:
                out = frame.copy()
            # A cell that is not a sequence (None, NaN, pd.NA) is a NULL list; an empty array stays [].
            out[col] = [np.asarray(v).tolist() if isinstance(v, (list, tuple, np.ndarray)) else None
                        for v in frame[col]]
    return out


def _exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    schema, name = split_table_name(table)
    row = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                      [schema, name]).fetchone()
    return bool(row and row[0])


def _empty_day_columns(frame: pd.DataFrame) -> dict[str, str]:
    """DATE for each day-named object column without a single value (pandas cannot type it)."""
    return {c: "DATE" for c in frame.columns if isinstance(c, str) and DAY_COLUMN.match(c)
            and frame[c].dtype == object and not frame[c].notna().any()}


def _is_null_type(duckdb_type: str) -> bool:
    return duckdb_type.strip('"') == "NULL"


def _describe_incoming(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Column -> DuckDB type of the registered `_incoming` frame, in its order."""
    return {col: typ for col, typ, *_ in con.execute("DESCRIBE SELECT * FROM _incoming").fetchall()}


def _typed_columns(incoming: Mapping[str, str], types: Mapping[str, str] | None = None) -> str:
    """The select list of `_incoming` (`incoming`: its column types): declared columns cast to their type, other
    NULL-typed ones to VARCHAR."""
    types = types or {}
    unknown = set(types) - set(incoming)
    if unknown:
        raise ValueError(f"types declared for columns the frame does not have: {sorted(unknown)}")
    return ", ".join(
        f"CAST({_quote(col)} AS {types[col]}) AS {_quote(col)}" if col in types
        else f"CAST({_quote(col)} AS VARCHAR) AS {_quote(col)}" if _is_null_type(typ) else _quote(col)
        for col, typ in incoming.items())


def _type_null_columns(con: duckdb.DuckDBPyConnection, schema: str, name: str, incoming: Mapping[str, str]) -> None:
    """Give a NULL-typed column of an existing table (a table created before that type fix) the incoming
    frame's type, so that its first real values can be inserted."""
    for col, typ, *_ in con.execute(f"DESCRIBE {schema}.{name}").fetchall():
        if _is_null_type(typ) and col in incoming and not _is_null_type(incoming[col]):
            con.execute(f"ALTER TABLE {schema}.{name} ALTER {_quote(col)} TYPE {incoming[col]}")


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def _move_files_into(staging: Path, serving: Path) -> None:
    """Move every file of `staging` to the same place under `serving`, each with one rename (atomic
    for readers), then remove the Parquet files of tables that are gone. `serving` takes the
    permissions of `staging` (copies published before were 0700)."""
    serving.mkdir(exist_ok=True)
    os.chmod(serving, stat.S_IMODE(staging.stat().st_mode))
    published = {path.relative_to(staging) for path in staging.rglob("*") if path.is_file()}
    for relative in published:
        (serving / relative).parent.mkdir(exist_ok=True)
        os.replace(staging / relative, serving / relative)
    for stale in serving.glob("*/*.parquet"):
        if stale.relative_to(serving) not in published:
            stale.unlink(missing_ok=True)
            if not any(stale.parent.iterdir()):  # a schema with no table left
                stale.parent.rmdir()
