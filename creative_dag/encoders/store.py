"""The embedding store: encoder output as per-launch-date Parquet files, outside the warehouse.

Encoders are the heavy part of the graph. They write here, without holding the warehouse's
single-writer pool, and a short pooled step copies the rows of the same launch dates into
DuckDB (`embeddings.<block>`). Any fsspec URI works (a local folder by default, `s3://...`,
`gs://...` with their fsspec packages in production, `memory://` in tests).

Layout under the root:
    <block>/rows/launch_date=<YYYY-MM-DD>.parquet        the block's rows of one launch date
    <block>/quarantine/launch_date=<YYYY-MM-DD>.parquet  raw.quarantine rows of that date
    <block>/inputs/launch_date=<YYYY-MM-DD>.txt         fingerprint of the inputs those rows were made from
    <block>/runs/<run_id>.json                          what one encoder run did (for the publish step)
    <block>/status.json                                 the last model load: available or why not

Every file is written under a temporary name and moved into place, so a reader never sees a
partial file; a launch date with no rows is a 0-row file, so "computed, nothing there" and
"never computed" stay different.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


class StoreError(RuntimeError):
    """A store file that should be there is not (or cannot be read)."""


class EmbeddingStore:
    """Read and write one deployment's embedding store (plain Python; no Dagster)."""

    def __init__(self, uri: str, storage_options: dict[str, Any] | None = None) -> None:
        self.uri = uri.rstrip("/") or uri
        self.fs, self.root = fsspec.core.url_to_fs(self.uri, **(storage_options or {}))
        self.root = self.root.rstrip("/")

    # -- paths ---------------------------------------------------------------------------
    def _path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def rows_path(self, block: str, day: dt.date) -> str:
        return self._path(block, "rows", f"launch_date={day.isoformat()}.parquet")

    def quarantine_path(self, block: str, day: dt.date) -> str:
        return self._path(block, "quarantine", f"launch_date={day.isoformat()}.parquet")

    # -- rows ----------------------------------------------------------------------------
    def write_rows(self, block: str, frame: pd.DataFrame, dates: Sequence[dt.date]) -> dict[dt.date, int]:
        """Replace the files of `dates` with `frame`'s rows of each date (a 0-row file when none)."""
        return self._write_by_date(frame, dates, lambda d: self.rows_path(block, d), frame["launch_date"])

    def read_rows(self, block: str, dates: Sequence[dt.date]) -> pd.DataFrame:
        """The rows of `dates` (every one must have been written), in date order."""
        return self._read(self.rows_path(block, d) for d in sorted(set(dates)))

    def write_quarantine(self, block: str, quarantine: pd.DataFrame, launch_dates: pd.Series,
                         dates: Sequence[dt.date]) -> None:
        """Per-date quarantine rows; `launch_dates` is each quarantine row's creative's launch date."""
        self._write_by_date(quarantine, dates, lambda d: self.quarantine_path(block, d), launch_dates)

    def read_quarantine(self, block: str, dates: Sequence[dt.date]) -> pd.DataFrame:
        return self._read(self.quarantine_path(block, d) for d in sorted(set(dates)))

    def _write_by_date(self, frame: pd.DataFrame, dates: Sequence[dt.date], path_of,
                       frame_dates: pd.Series) -> dict[dt.date, int]:
        keys = pd.Series([_as_date(v) for v in frame_dates], index=frame.index, dtype=object)
        schema = pa.Schema.from_pandas(frame, preserve_index=False)
        counts = {}
        for day in sorted(set(dates)):
            part = frame[(keys == day).to_numpy()]
            self._put_table(pa.Table.from_pandas(part, schema=schema, preserve_index=False), path_of(day))
            counts[day] = len(part)
        return counts

    def _put_table(self, table: pa.Table, path: str) -> None:
        self._put(path, "wb", lambda handle: pq.write_table(table, handle))

    def _put(self, path: str, mode: str, write: Callable[[Any], Any]) -> None:
        """Write under a temporary name, then move into place (a reader never sees a partial file)."""
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        with self.fs.open(tmp, mode) as handle:
            write(handle)
        self.fs.mv(tmp, path)

    def _read(self, paths: Iterable[str]) -> pd.DataFrame:
        frames = []
        for path in paths:
            try:
                with self.fs.open(path, "rb") as handle:
                    table = pq.read_table(handle)
            except FileNotFoundError:
                raise StoreError(f"embedding store file {self.fs.unstrip_protocol(path)} is missing: "
                                 "re-materialise that launch date of the block") from None
            frames.append(table.to_pandas(types_mapper=_pandas_type))
        frames = [f for f in frames if len(f)] or frames[:1]
        if not frames:
            return pd.DataFrame()
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

    # -- input fingerprints ----------------------------------------------------------------
    def write_inputs(self, block: str, day: dt.date, fingerprint: str) -> None:
        self._put(self._path(block, "inputs", f"launch_date={day.isoformat()}.txt"), "w",
                  lambda handle: handle.write(fingerprint))

    def read_inputs(self, block: str, day: dt.date) -> str | None:
        """The fingerprint of the inputs the date's rows were made from (None: never, or rows gone)."""
        if not self.fs.exists(self.rows_path(block, day)):
            return None
        try:
            with self.fs.open(self._path(block, "inputs", f"launch_date={day.isoformat()}.txt"), "r") as handle:
                return handle.read().strip()
        except FileNotFoundError:
            return None

    # -- run manifests and model status ---------------------------------------------------
    def write_run(self, block: str, run_id: str, manifest: dict[str, Any]) -> None:
        self._put_json(self._path(block, "runs", f"{run_id}.json"), manifest)

    def read_run(self, block: str, run_id: str) -> dict[str, Any]:
        path = self._path(block, "runs", f"{run_id}.json")
        found = self._get_json(path)
        if found is None:
            raise StoreError(f"no record of run {run_id} of block {block} in {self.fs.unstrip_protocol(path)}: "
                             "its encoder step did not finish; re-materialise those launch dates")
        return found

    def write_status(self, block: str, status: dict[str, Any]) -> None:
        self._put_json(self._path(block, "status.json"), status)

    def read_status(self, block: str) -> dict[str, Any] | None:
        return self._get_json(self._path(block, "status.json"))

    def _put_json(self, path: str, payload: dict[str, Any]) -> None:
        self._put(path, "w", lambda handle: handle.write(json.dumps(payload, indent=1, default=str)))

    def _get_json(self, path: str) -> dict[str, Any] | None:
        try:
            with self.fs.open(path, "r") as handle:
                return json.loads(handle.read())
        except FileNotFoundError:
            return None


def _as_date(value: Any) -> dt.date | None:
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return None
    return pd.Timestamp(value).date()


def _pandas_type(arrow_type: pa.DataType) -> Any:
    """Read back the dtypes the encoders wrote: lists and dates stay Arrow (so DuckDB gets FLOAT[]
    and DATE again), strings become pandas strings, numbers and bools numpy's."""
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type) or pa.types.is_date(arrow_type):
        return pd.ArrowDtype(arrow_type)
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pd.StringDtype()
    return None
