"""Metadata every materialisation carries: row count, schema, a preview, and the stage's key figures."""

from __future__ import annotations

from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from creative_dag.catalog import Table

PREVIEW_ROWS = 10
_MAX_CELL = 60


def table_metadata(table: Table, frame: pd.DataFrame, preview_rows: int = PREVIEW_ROWS,
                   **key_figures: Any) -> dict[str, Any]:
    """Standard metadata for a table asset plus `key_figures` (plain values or MetadataValue; an empty string
    is left out: `degraded=""` showed as a blank row); the column schema carries the catalog's column
    descriptions (the Dagster UI's column table)."""
    meta: dict[str, Any] = {
        "dagster/row_count": dg.MetadataValue.int(len(frame)),
        "dagster/column_schema": table.column_schema(frame),
        "preview": dg.MetadataValue.md(markdown_preview(frame, preview_rows)),
    }
    for name, value in key_figures.items():
        if not (isinstance(value, str) and value == ""):
            meta[name] = _metadata_value(value)
    return meta


def markdown_preview(frame: pd.DataFrame, rows: int = PREVIEW_ROWS) -> str:
    """The head of a table as markdown, with vectors and long strings abbreviated."""
    if frame.empty:
        return "_empty table_"
    head = frame.head(rows).copy()
    for col in head.columns:
        head[col] = [_short(v) for v in head[col]]
    return head.to_markdown(index=False)


def counts_markdown(counts: dict[str, int] | pd.Series, key: str = "key", value: str = "count") -> dg.MetadataValue:
    """A two-column markdown table, e.g. quarantined rows by reason, as the UI renders it (a plain string
    showed its pipes: `| scope | rows | |---|---| …`)."""
    items = list(counts.items())
    if not items:
        return dg.MetadataValue.md("_none_")
    lines = [f"| {key} | {value} |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in items]
    return dg.MetadataValue.md("\n".join(lines))


def _short(value: Any) -> str:
    """A preview cell: NULL is empty whatever pandas made of it (None, nan, <NA>, NaT); a short list of names
    (evidence ids) is shown, a vector is counted."""
    if isinstance(value, (list, tuple, np.ndarray)):
        arr = np.asarray(value, dtype=object).ravel()
        if 0 < arr.size <= 3 and all(isinstance(v, str) for v in arr):
            return ", ".join(arr)
        return f"[{arr.size} values]"
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    text = str(value)
    return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 1] + "…"


def _metadata_value(value: Any) -> Any:
    if isinstance(value, dg.MetadataValue):
        return value
    if isinstance(value, (bool, np.bool_)):
        return dg.MetadataValue.bool(bool(value))
    if isinstance(value, (int, np.integer)):
        return dg.MetadataValue.int(int(value))
    if isinstance(value, (float, np.floating)):
        return dg.MetadataValue.float(float(value)) if np.isfinite(value) else dg.MetadataValue.text(str(value))
    if isinstance(value, dict):
        return dg.MetadataValue.json(value)
    if isinstance(value, pd.DataFrame):
        return dg.MetadataValue.md(markdown_preview(value, rows=50))
    return dg.MetadataValue.text(str(value))
