"""Validate landed daily metrics against the contract and the valid creatives (docs/input-contract.md).

`validate_metrics(frame, file_name, creatives, today, quarantined_ids)` ->
`MetricsValidation(valid, quarantine)`. Checks, in order (first failing check wins):

1. `cell_too_long`             — a cell longer than MAX_CELL_CHARS (a broken export)
2. `missing_required_value`    — empty creative_id, date or required metric ('NULL', 'NaN'... count as empty)
3. `unparseable_date`          — date is not an ISO date
4. `date_out_of_range`         — date before MIN_DATE or after MAX_DATE (0001-01-01, 9999-12-31)
5. `non_numeric_metric`        — a metric cell that is not a finite number
6. `value_out_of_range`        — a metric above MAX_METRIC_VALUE (or too large for float64)
7. `non_integer_count`         — a count (impressions, clicks, ...) with a fraction
8. `negative_value`            — any metric below zero
9. `future_date`               — date after `today`
10. `clicks_exceed_impressions` — clicks > impressions
11. `creative_quarantined` / `unknown_creative` — the creative has no valid row
12. `metric_before_launch`     — date before the creative's launch_date
13. `duplicate_metric_row`     — a later copy of (creative_id, date) whose first usable row is kept

Conversions above clicks are accepted: platforms count view-through conversions and several
purchases per click, so that is real data, not a broken export.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from creative_dag.contract import (
    MAX_CELL_CHARS,
    MAX_DATE,
    MAX_METRIC_VALUE,
    METRIC_COUNT_COLUMNS,
    METRICS_OPTIONAL,
    METRICS_REQUIRED,
    MIN_DATE,
)
from creative_dag.landing.coerce import (
    blank_null_tokens,
    infer_extra_column,
    is_missing,
    looks_like_excel_serial,
    row_numbers,
    to_date,
    to_number,
    to_text,
    too_long,
)
from creative_dag.landing.quarantine import SOURCE_METRICS, RowRejections, short_repr

REQUIRED_METRICS = tuple(c for c in METRICS_REQUIRED if c not in ("creative_id", "date"))
# Required counts are int64 in raw.daily_metrics; optional ones stay float64 (nullable).
REQUIRED_COUNTS = tuple(c for c in REQUIRED_METRICS if c in METRIC_COUNT_COLUMNS)


@dataclass(frozen=True)
class MetricsValidation:
    """valid: one row per (creative_id, date): creative_id str,
    date date32 (cells datetime.date),
    impressions/clicks/conversions int64, spend/revenue float64, optional metrics float64 (NaN = empty).
    quarantine: rejected rows (raw.quarantine columns)."""

    valid: pd.DataFrame
    quarantine: pd.DataFrame


def validate_metrics(frame: pd.DataFrame, file_name: str, creatives: pd.DataFrame, today: dt.date,
                     quarantined_ids: Mapping[str, str] | None = None) -> MetricsValidation:
    """Split landed daily metrics into valid, typed rows and quarantine rows.

    creatives: the *valid* creatives (creative_id, launch_date as dates).
    quarantined_ids: creative_id -> reason for creatives whose row was quarantined.
    Cost is vectorised over rows; messages are built only for rejected rows.
    """
    rows = row_numbers(frame)
    frame = frame.reset_index(drop=True)
    quarantined_ids = dict(quarantined_ids or {})
    rejections = RowRejections(len(frame))
    metric_columns = [c for c in (*REQUIRED_METRICS, *METRICS_OPTIONAL) if c in frame.columns]
    contract = {c: blank_null_tokens(frame[c]) for c in ("creative_id", "date", *metric_columns)}
    id_text = to_text(contract["creative_id"])
    ids = id_text.to_numpy(dtype=object)

    landed: dict[str, np.ndarray] = {}  # columns as object arrays, converted on first use by a message

    def cell(column: str, i: int) -> object:
        """The landed cell, for messages (only rejected rows are looked up)."""
        if column not in landed:
            landed[column] = frame[column].to_numpy(dtype=object)
        return landed[column][i]

    def label(i: int) -> str:
        return (f"{file_name} row {rows[i] + 1} (creative_id {short_repr(ids[i])}, "
                f"date {short_repr(cell('date', i))})")

    long_cells = {c: too_long(frame[c]) for c in frame.columns}
    rejections.reject(np.any(list(long_cells.values()), axis=0), "cell_too_long", lambda i: (
        f"{file_name} row {rows[i] + 1}: " + ", ".join(
            f"{c} has {len(frame[c].iloc[i]):,} characters" for c in frame.columns if long_cells[c][i])
        + f" (more than {MAX_CELL_CHARS:,})"
    ))

    empty = {c: is_missing(contract[c]).to_numpy() for c in METRICS_REQUIRED}
    rejections.reject(np.any(list(empty.values()), axis=0), "missing_required_value", lambda i: (
        f"{label(i)}: required {', '.join(c for c in METRICS_REQUIRED if empty[c][i])} empty"
    ))

    dates, bad_date, date_out_of_range = to_date(contract["date"])
    rejections.reject(bad_date, "unparseable_date", lambda i: (
        f"{label(i)}: date {short_repr(cell('date', i))} is not an ISO date YYYY-MM-DD"
        + (" (it looks like an Excel serial date: format the column as a date before exporting)"
           if looks_like_excel_serial(cell("date", i)) else "")
    ))
    rejections.reject(date_out_of_range, "date_out_of_range",
                      lambda i: f"{label(i)}: date is outside {MIN_DATE}..{MAX_DATE}")

    numbers: dict[str, pd.Series] = {}
    non_numeric: dict[str, np.ndarray] = {}
    out_of_range: dict[str, np.ndarray] = {}
    for column in metric_columns:
        numbers[column], bad, huge = to_number(contract[column])
        non_numeric[column], out_of_range[column] = bad.to_numpy(), huge.to_numpy()
    _reject_by_column(rejections, non_numeric, "non_numeric_metric", label, cell, "is not a number")
    _reject_by_column(rejections, out_of_range, "value_out_of_range", label, cell,
                      f"is beyond ±{MAX_METRIC_VALUE:.0e}")

    fractional = {c: (numbers[c].notna() & (numbers[c] != np.floor(numbers[c]))).to_numpy()
                  for c in metric_columns if c in METRIC_COUNT_COLUMNS}
    _reject_by_column(rejections, fractional, "non_integer_count", label, cell, "is not a whole number")

    negative = {c: (numbers[c] < 0).to_numpy() for c in metric_columns}
    _reject_by_column(rejections, negative, "negative_value", label, cell, "is negative")

    rejections.reject(dates > pd.Timestamp(today), "future_date",
                      lambda i: f"{label(i)}: date is after today ({today.isoformat()})")

    impressions, clicks = (numbers[c].to_numpy() for c in ("impressions", "clicks"))
    rejections.reject(clicks > impressions, "clicks_exceed_impressions", lambda i: (
        f"{label(i)}: clicks {clicks[i]:.0f} > impressions {impressions[i]:.0f}"
    ))

    # Launch date of each row's creative (NaT when the creative has no valid row), by position.
    lookup = pd.Index(to_text(creatives["creative_id"]).to_numpy(dtype=object)).get_indexer(
        id_text.to_numpy(dtype=object))
    known = lookup >= 0
    launch_days = np.array([pd.Timestamp(d).to_datetime64() for d in creatives["launch_date"]],
                           dtype="datetime64[ns]").reshape(-1)
    launch_values = np.full(len(frame), np.datetime64("NaT"), dtype="datetime64[ns]")
    launch_values[known] = launch_days[lookup[known]]
    quarantined_creative = ~known & id_text.isin(list(quarantined_ids)).to_numpy()
    rejections.reject(quarantined_creative, "creative_quarantined", lambda i: (
        f"{label(i)}: creative {short_repr(ids[i])} was quarantined from the creatives file "
        f"({quarantined_ids[ids[i]]})"
    ))
    rejections.reject(~known, "unknown_creative",
                      lambda i: f"{label(i)}: creative {short_repr(ids[i])} is not in the creatives file")
    rejections.reject(known & (dates.to_numpy() < launch_values), "metric_before_launch", lambda i: (
        f"{label(i)}: date is before the creative's launch_date {str(launch_values[i])[:10]}"
    ))

    iso_dates = dates.dt.strftime("%Y-%m-%d")
    usable = pd.Series(~rejections.mask)
    day_key = (id_text + "|" + iso_dates).where(usable)
    later_copy = usable & day_key.duplicated(keep="first") & day_key.notna()
    if later_copy.any():
        firsts = day_key[usable & ~later_copy].dropna()
        first_row = dict(zip(firsts.to_numpy(), firsts.index))
        keys_now = day_key.to_numpy(dtype=object)
        rejections.reject(later_copy, "duplicate_metric_row", lambda i: (
            f"{label(i)}: ({keys_now[i].replace('|', ', ')}) already appears in "
            f"{file_name} row {rows[first_row[keys_now[i]]] + 1}, which was kept"
        ))

    keys = (id_text.fillna("") + "|" + iso_dates.fillna(to_text(frame["date"]).fillna(""))).to_numpy(dtype=object)
    quarantine = rejections.frame(SOURCE_METRICS, keys, frame)
    keep = ~rejections.mask
    valid = _typed(frame[keep], id_text[keep], dates[keep], {c: n[keep] for c, n in numbers.items()})
    valid = valid.reset_index(drop=True)
    return MetricsValidation(valid=valid, quarantine=quarantine)


def _reject_by_column(rejections: RowRejections, masks: dict[str, np.ndarray], reason: str,
                      label: Callable[[int], str], cell: Callable[[str, int], object], what: str) -> None:
    """Reject rows where any column's mask is true; the detail lists each offending cell."""
    if not masks:
        return
    rejections.reject(np.any(list(masks.values()), axis=0), reason, lambda i: "{}: {}".format(label(i), "; ".join(
        f"{c} {short_repr(cell(c, i))} {what}" for c, m in masks.items() if m[i]
    )))


def _typed(frame: pd.DataFrame, ids: pd.Series, dates: pd.Series, numbers: dict[str, pd.Series]) -> pd.DataFrame:
    out = {}
    for column in frame.columns:
        if column == "creative_id":
            out[column] = ids
        elif column == "date":
            out[column] = dates.astype("date32[pyarrow]")  # DuckDB DATE; cells are datetime.date
        elif column in REQUIRED_COUNTS:
            # Only kept rows reach here: whole, finite, at most MAX_METRIC_VALUE, so int64 is exact.
            out[column] = numbers[column].fillna(0).round().astype("int64")
        elif column in numbers:
            out[column] = numbers[column].astype("float64")
        else:
            out[column] = infer_extra_column(frame[column])
    return pd.DataFrame(out, index=frame.index)
