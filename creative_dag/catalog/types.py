"""The SQL type a frame's column gets in the warehouse, named as DuckDB names it: what the Dagster UI's column
table shows (pandas' own names, `object` or `list<element: float>[pyarrow]`, told a data engineer nothing)."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pandas as pd

# Columns that hold days, by name (every table's convention: date, launch_date, trained_through, decided_at, ...);
# the warehouse stores such a column DATE even when a skipped step's empty frame cannot say so.
DAY_COLUMN = re.compile(r"^(date|.+_date|.+_through|decided_at|week_start)$")

_BY_KIND = {"b": "BOOLEAN", "i": "BIGINT", "u": "UBIGINT", "f": "DOUBLE", "M": "TIMESTAMP", "m": "INTERVAL"}


def sql_type(name: str, values: pd.Series) -> str:
    """DuckDB's type for a column `name` holding `values`, as the warehouse would store it."""
    dtype = values.dtype
    text = str(dtype)
    if "[pyarrow]" in text:
        return _arrow_type(text)
    if isinstance(dtype, pd.BooleanDtype):
        return "BOOLEAN"
    if pd.api.types.is_integer_dtype(dtype):
        return "BIGINT"
    if dtype.kind in _BY_KIND:
        return _BY_KIND[dtype.kind]
    first = next((v for v in values if v is not None and not (isinstance(v, float) and np.isnan(v))), None)
    if first is None:
        return "DATE" if DAY_COLUMN.match(name) else "VARCHAR"
    if isinstance(first, (list, tuple, np.ndarray)):
        items = np.asarray(first, dtype=object).ravel()
        inner = "VARCHAR" if any(isinstance(v, str) for v in items) else "DOUBLE"
        return f"{inner}[]"
    if isinstance(first, (bool, np.bool_)):
        return "BOOLEAN"
    if isinstance(first, dt.datetime):
        return "TIMESTAMP"
    if isinstance(first, dt.date):
        return "DATE"
    if isinstance(first, dict):
        return "STRUCT"
    return "VARCHAR"


def _arrow_type(text: str) -> str:
    if text.startswith("date32"):
        return "DATE"
    if text.startswith("list<"):
        inner = "VARCHAR" if "string" in text else "FLOAT" if "float>" in text or "float32" in text else "DOUBLE"
        return f"{inner}[]"
    if text.startswith(("string", "large_string")):
        return "VARCHAR"
    if text.startswith("timestamp"):
        return "TIMESTAMP"
    if text.startswith(("int", "uint")):
        return "BIGINT"
    if text.startswith(("double", "float")):
        return "DOUBLE"
    if text.startswith("bool"):
        return "BOOLEAN"
    return text.replace("[pyarrow]", "")
