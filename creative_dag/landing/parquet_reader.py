"""Read one Parquet export into a frame the validators understand, whatever its types.

Typed columns (integers, floats, dates, timestamps of any unit, even year 1 or 9999) pass through
and are checked per row later. What pandas or the warehouse cannot hold is made plain here:
dictionary columns are decoded, binary becomes UTF-8 text, and nested columns (struct, list,
map) become JSON text when they are extra columns; a nested contract column is a file error.
A pandas index saved in the file (`df.set_index("creative_id").to_parquet(...)`) comes back
as a column rather than being dropped.

Errors are `ValueError`s naming the file and the fix (`files.read_landed` makes them
`LandingFileError`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from creative_dag.contract import (
    CREATIVES_OPTIONAL,
    CREATIVES_REQUIRED,
    METRICS_OPTIONAL,
    METRICS_REQUIRED,
)

CONTRACT_COLUMNS = frozenset((*CREATIVES_REQUIRED, *CREATIVES_OPTIONAL, *METRICS_REQUIRED, *METRICS_OPTIONAL))


def read_parquet_frame(path: Path, required: Sequence[str]) -> pd.DataFrame:
    """The file as a DataFrame with a default index; ValueError for an unreadable file."""
    try:
        table = pq.read_table(path)
    except Exception as err:  # noqa: BLE001 - pyarrow raises several unrelated types for corrupt files
        raise ValueError(f"{path} cannot be read as Parquet ({type(err).__name__}: {_first_line(err)}); "
                         f"re-export it") from None
    table = _plain_columns(path, table)
    try:
        frame = table.to_pandas()
    except Exception as err:  # noqa: BLE001 - exotic logical types pandas cannot hold
        raise ValueError(f"{path}: its columns cannot be converted ({type(err).__name__}: {_first_line(err)}); "
                         f"re-export it with plain text, number and date columns") from None
    return _with_index_as_columns(frame)


def _plain_columns(path: Path, table: pa.Table) -> pa.Table:
    """Decode dictionary and binary columns, JSON-encode nested extra columns."""
    columns, names = [], []
    for name, column in zip(table.column_names, table.columns):
        kind = column.type
        if pa.types.is_dictionary(kind):
            column, kind = column.cast(kind.value_type), kind.value_type
        if pa.types.is_nested(kind):
            if str(name).strip() in CONTRACT_COLUMNS:
                raise ValueError(f"{path}: column {name!r} is nested ({kind}); export it as a plain "
                                 f"{'date' if 'date' in str(name) else 'text or number'} column")
            column = pa.array([None if v is None else json.dumps(v, default=str, ensure_ascii=False)
                               for v in column.to_pylist()], pa.string())
        elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):
            column = pa.array([None if v is None else v.decode("utf-8", errors="replace")
                               for v in column.to_pylist()], pa.string())
        columns.append(column)
        names.append(str(name).strip())
    return pa.Table.from_arrays(columns, names=names, metadata=table.schema.metadata)


def _with_index_as_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """A saved, named index becomes column(s) again (it often *is* creative_id); else a RangeIndex."""
    names = [n for n in frame.index.names if n is not None]
    if names and not any(n in frame.columns for n in names):
        frame = frame.reset_index()
    return frame.reset_index(drop=True)


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__
