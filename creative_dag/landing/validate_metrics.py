"""Validate landed daily metrics against the contract and the valid creatives (design §2).

`validate_metrics(frame, file_name, creatives, today, quarantined_ids)` ->
`MetricsValidation(valid, quarantine)`. Checks, in order (first failing check wins):

1. `missing_required_value`    — empty creative_id, date or required metric
2. `unparseable_date`          — date is not an ISO date
3. `non_numeric_metric`        — a metric cell that is not a finite number
4. `non_integer_count`         — a count (impressions, clicks, ...) with a fraction
5. `negative_value`            — any metric below zero
6. `future_date`               — date after `today`
7. `clicks_exceed_impressions` — clicks > impressions
8. `conversions_exceed_clicks` — conversions > clicks
9. `creative_quarantined` / `unknown_creative` — the creative has no valid row
10. `metric_before_launch`     — date before the creative's launch_date
11. `duplicate_metric_row`     — a later copy of (creative_id, date) whose first usable row is kept
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from creative_dag.contract import (
    METRIC_COUNT_COLUMNS,
    METRICS_OPTIONAL,
    METRICS_REQUIRED,
)
from creative_dag.landing.coerce import (
    infer_extra_column,
    is_missing,
    row_label,
    to_date,
    to_number,
    to_text,
)
from creative_dag.landing.quarantine import SOURCE_METRICS, RowRejections

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
    frame = frame.reset_index(drop=True)
    quarantined_ids = dict(quarantined_ids or {})
    rejections = RowRejections(len(frame))
    id_text = to_text(frame["creative_id"])
    ids = id_text.to_numpy(dtype=object)

    landed: dict[str, np.ndarray] = {}  # columns as object arrays, converted on first use by a message

    def cell(column: str, i: int) -> object:
        """The landed cell, for messages (only rejected rows are looked up)."""
        if column not in landed:
            landed[column] = frame[column].to_numpy(dtype=object)
        return landed[column][i]

    def label(i: int) -> str:
        return f"{row_label(file_name, i)} (creative_id {ids[i]!r}, date {cell('date', i)!r})"

    empty = {c: is_missing(frame[c]).to_numpy() for c in METRICS_REQUIRED}
    rejections.reject(np.any(list(empty.values()), axis=0), "missing_required_value", lambda i: (
        f"{label(i)}: required {', '.join(c for c in METRICS_REQUIRED if empty[c][i])} empty"
    ))

    dates, bad_date = to_date(frame["date"])
    rejections.reject(bad_date, "unparseable_date",
                      lambda i: f"{label(i)}: date {cell('date', i)!r} is not an ISO date YYYY-MM-DD")

    metric_columns = [c for c in (*REQUIRED_METRICS, *METRICS_OPTIONAL) if c in frame.columns]
    numbers: dict[str, pd.Series] = {}
    non_numeric: dict[str, np.ndarray] = {}
    for column in metric_columns:
        numbers[column], bad = to_number(frame[column])
        non_numeric[column] = bad.to_numpy()
    _reject_by_column(rejections, non_numeric, "non_numeric_metric", label, cell, "is not a number")

    fractional = {c: (numbers[c].notna() & (numbers[c] != np.floor(numbers[c]))).to_numpy()
                  for c in metric_columns if c in METRIC_COUNT_COLUMNS}
    _reject_by_column(rejections, fractional, "non_integer_count", label, cell, "is not a whole number")

    negative = {c: (numbers[c] < 0).to_numpy() for c in metric_columns}
    _reject_by_column(rejections, negative, "negative_value", label, cell, "is negative")

    rejections.reject(dates > pd.Timestamp(today), "future_date",
                      lambda i: f"{label(i)}: date is after today ({today.isoformat()})")

    impressions, clicks, conversions = (numbers[c].to_numpy() for c in ("impressions", "clicks", "conversions"))
    rejections.reject(clicks > impressions, "clicks_exceed_impressions", lambda i: (
        f"{label(i)}: clicks {clicks[i]:.0f} > impressions {impressions[i]:.0f}"
    ))
    rejections.reject(conversions > clicks, "conversions_exceed_clicks", lambda i: (
        f"{label(i)}: conversions {conversions[i]:.0f} > clicks {clicks[i]:.0f}"
    ))

    launch_by_id = pd.Series(
        pd.to_datetime(pd.Series(creatives["launch_date"])).to_numpy(dtype="datetime64[ns]"),
        index=to_text(creatives["creative_id"]).to_numpy(dtype=object),
    )
    known = id_text.isin(launch_by_id.index).to_numpy()
    quarantined_creative = ~known & id_text.isin(list(quarantined_ids)).to_numpy()
    rejections.reject(quarantined_creative, "creative_quarantined", lambda i: (
        f"{label(i)}: creative {ids[i]!r} was quarantined from the creatives file "
        f"({quarantined_ids[ids[i]]})"
    ))
    rejections.reject(~known, "unknown_creative",
                      lambda i: f"{label(i)}: creative {ids[i]!r} is not in the creatives file")

    launch = id_text.map(launch_by_id).astype("datetime64[ns]")
    launch_values = launch.to_numpy()
    rejections.reject(known & (dates < launch).to_numpy(), "metric_before_launch", lambda i: (
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
            f"{row_label(file_name, first_row[keys_now[i]])}, which was kept"
        ))

    keys = (id_text.fillna("") + "|" + iso_dates.fillna(to_text(frame["date"]).fillna(""))).to_numpy(dtype=object)
    quarantine = rejections.frame(SOURCE_METRICS, keys, frame)
    keep = ~rejections.mask
    valid = _typed(frame, id_text, dates, numbers)[keep].reset_index(drop=True)
    return MetricsValidation(valid=valid, quarantine=quarantine)


def _reject_by_column(rejections: RowRejections, masks: dict[str, np.ndarray], reason: str,
                      label: Callable[[int], str], cell: Callable[[str, int], object], what: str) -> None:
    """Reject rows where any column's mask is true; the detail lists each offending cell."""
    if not masks:
        return
    rejections.reject(np.any(list(masks.values()), axis=0), reason, lambda i: "{}: {}".format(label(i), "; ".join(
        f"{c} {cell(c, i)!r} {what}" for c, m in masks.items() if m[i]
    )))


def _typed(frame: pd.DataFrame, ids: pd.Series, dates: pd.Series, numbers: dict[str, pd.Series]) -> pd.DataFrame:
    out = {}
    for column in frame.columns:
        if column == "creative_id":
            out[column] = ids
        elif column == "date":
            out[column] = dates.astype("date32[pyarrow]")  # DuckDB DATE; cells are datetime.date
        elif column in REQUIRED_COUNTS:
            # Rejected rows are dropped afterwards; fill them so the cast to int64 is possible.
            out[column] = numbers[column].fillna(0).round().astype("int64")
        elif column in numbers:
            out[column] = numbers[column].astype("float64")
        else:
            out[column] = infer_extra_column(frame[column])
    return pd.DataFrame(out, index=frame.index)
