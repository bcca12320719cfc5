"""Validate landed creatives: types, required values, dates, unique ids (design §2).

`validate_creatives(frame, file_name, today)` -> `CreativesValidation(valid, quarantine)`.
Checks, in order (a row is quarantined for the first one it fails):

1. `missing_required_value` — an empty creative_id, account_id, campaign_id, launch_date or image_path
2. `unparseable_date`       — launch_date is not an ISO date
3. `future_date`            — launch_date after `today`
4. `duplicate_creative_id`  — a later copy of an id whose first usable row is kept

Image problems are not checked here: a creative with a bad image stays in raw.creatives (its
metrics are still valid); the image problem is recorded in raw.images and raw.quarantine.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from creative_dag.contract import CREATIVES_OPTIONAL, CREATIVES_REQUIRED
from creative_dag.landing.coerce import (
    infer_extra_column,
    is_missing,
    row_label,
    to_date,
    to_text,
)
from creative_dag.landing.quarantine import SOURCE_CREATIVES, RowRejections

ID_COLUMNS = ("creative_id", "account_id", "campaign_id", "image_path")


@dataclass(frozen=True)
class CreativesValidation:
    """valid: one row per creative (every landed column; ids str, launch_date date32 whose cells are datetime.date).
    quarantine: rejected rows (raw.quarantine columns). quarantined_ids: creative_id -> reason
    for ids that have no valid row (metrics of these ids are `creative_quarantined`)."""

    valid: pd.DataFrame
    quarantine: pd.DataFrame
    quarantined_ids: dict[str, str]


def validate_creatives(frame: pd.DataFrame, file_name: str, today: dt.date) -> CreativesValidation:
    """Split landed creatives into valid, typed rows and quarantine rows.

    frame: the landed table (CSV cells as text, or Parquet values), required columns present.
    file_name: used in messages ('creatives.csv'). today: dates after it are `future_date`.
    """
    frame = frame.reset_index(drop=True)
    rejections = RowRejections(len(frame))
    text = {c: to_text(frame[c]) for c in ID_COLUMNS}
    ids = text["creative_id"].to_numpy(dtype=object)
    landed_dates = frame["launch_date"].to_numpy(dtype=object)

    def label(i: int) -> str:
        named = f" (creative_id {ids[i]!r})" if isinstance(ids[i], str) else ""
        return f"{row_label(file_name, i)}{named}"

    empty = {c: is_missing(frame[c]).to_numpy() for c in CREATIVES_REQUIRED}
    rejections.reject(np.any(list(empty.values()), axis=0), "missing_required_value", lambda i: (
        f"{label(i)}: required {', '.join(c for c in CREATIVES_REQUIRED if empty[c][i])} empty"
    ))

    launch, bad_date = to_date(frame["launch_date"])
    rejections.reject(bad_date, "unparseable_date", lambda i: (
        f"{label(i)}: launch_date {landed_dates[i]!r} is not an ISO date YYYY-MM-DD"
    ))
    launch_values = launch.to_numpy()
    rejections.reject(launch > pd.Timestamp(today), "future_date", lambda i: (
        f"{label(i)}: launch_date {str(launch_values[i])[:10]} is after today ({today.isoformat()})"
    ))

    # Duplicates among otherwise usable rows: the first one in file order is kept.
    usable = pd.Series(~rejections.mask)
    usable_ids = text["creative_id"].where(usable)
    later_copy = usable & usable_ids.duplicated(keep="first") & usable_ids.notna()
    if later_copy.any():
        firsts = usable_ids[usable & ~later_copy].dropna()
        first_row = dict(zip(firsts.to_numpy(), firsts.index))
        rejections.reject(later_copy, "duplicate_creative_id", lambda i: (
            f"{label(i)}: creative_id {ids[i]!r} already appears in {row_label(file_name, first_row[ids[i]])}, "
            f"which was kept"
        ))

    keep = ~rejections.mask
    valid = _typed(frame, text, launch)[keep].reset_index(drop=True)
    quarantine = rejections.frame(SOURCE_CREATIVES, ids, frame)
    kept_ids = set(valid["creative_id"])
    quarantined_ids = {
        str(ids[i]): str(rejections.reason_of(i))
        for i in np.flatnonzero(rejections.mask).tolist()
        if isinstance(ids[i], str) and ids[i] not in kept_ids
    }
    return CreativesValidation(valid=valid, quarantine=quarantine, quarantined_ids=quarantined_ids)


def _typed(frame: pd.DataFrame, text: dict[str, pd.Series], launch: pd.Series) -> pd.DataFrame:
    """Every landed column, in landed order, with contract types; extra columns inferred."""
    out = {}
    for column in frame.columns:
        if column in text:
            out[column] = text[column]
        elif column == "launch_date":
            out[column] = launch.astype("date32[pyarrow]")  # DuckDB DATE; cells are datetime.date
        elif column in CREATIVES_OPTIONAL:
            out[column] = to_text(frame[column])
        else:
            out[column] = infer_extra_column(frame[column])
    return pd.DataFrame(out, index=frame.index)
