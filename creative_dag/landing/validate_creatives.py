"""Validate landed creatives: types, required values, dates, unique ids (docs/input-contract.md).

`validate_creatives(frame, file_name, today)` -> `CreativesValidation(valid, quarantine)`.
Checks, in order (a row is quarantined for the first one it fails):

1. `cell_too_long`          — a cell longer than MAX_CELL_CHARS (a broken export)
2. `missing_required_value` — an empty creative_id, account_id, campaign_id, launch_date or image_path
                              (null markers such as 'NULL' or 'NaN' count as empty)
3. `unparseable_date`       — launch_date is not an ISO date
4. `date_out_of_range`      — launch_date before MIN_DATE or after MAX_DATE (0001-01-01, 9999-12-31)
5. `future_date`            — launch_date after `today`
6. `duplicate_creative_id`  — a later copy of an id whose first usable row is kept

Image problems are not checked here: a creative with a bad image stays in raw.creatives (its
metrics are still valid); the image problem is recorded in raw.images and raw.quarantine.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from creative_dag.contract import (
    CREATIVES_OPTIONAL,
    CREATIVES_REQUIRED,
    MAX_CELL_CHARS,
    MAX_DATE,
    MIN_DATE,
)
from creative_dag.landing.coerce import (
    blank_null_tokens,
    infer_extra_column,
    is_missing,
    looks_like_excel_serial,
    row_numbers,
    to_date,
    to_text,
    too_long,
)
from creative_dag.landing.quarantine import SOURCE_CREATIVES, RowRejections, short_repr

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
    rows = row_numbers(frame)
    frame = frame.reset_index(drop=True)
    rejections = RowRejections(len(frame))
    required = {c: blank_null_tokens(frame[c]) for c in CREATIVES_REQUIRED}
    text = {c: to_text(required[c]) for c in ID_COLUMNS}
    ids = text["creative_id"].to_numpy(dtype=object)
    landed_dates = frame["launch_date"].to_numpy(dtype=object)

    def label(i: int) -> str:
        named = f" (creative_id {short_repr(ids[i])})" if isinstance(ids[i], str) else ""
        return f"{file_name} row {rows[i] + 1}{named}"

    long_cells = {c: too_long(frame[c]) for c in frame.columns}
    rejections.reject(np.any(list(long_cells.values()), axis=0), "cell_too_long", lambda i: (
        f"{label(i)}: " + ", ".join(f"{c} has {len(frame[c].iloc[i]):,} characters" for c in frame.columns
                                    if long_cells[c][i]) + f" (more than {MAX_CELL_CHARS:,})"
    ))

    empty = {c: is_missing(required[c]).to_numpy() for c in CREATIVES_REQUIRED}
    rejections.reject(np.any(list(empty.values()), axis=0), "missing_required_value", lambda i: (
        f"{label(i)}: required {', '.join(c for c in CREATIVES_REQUIRED if empty[c][i])} empty"
        + _null_marker_note(frame, i, [c for c in CREATIVES_REQUIRED if empty[c][i]])
    ))

    launch, bad_date, out_of_range = to_date(required["launch_date"])
    rejections.reject(bad_date, "unparseable_date", lambda i: (
        f"{label(i)}: launch_date {short_repr(landed_dates[i])} is not an ISO date YYYY-MM-DD"
        + (" (it looks like an Excel serial date: format the column as a date before exporting)"
           if looks_like_excel_serial(landed_dates[i]) else "")
    ))
    rejections.reject(out_of_range, "date_out_of_range", lambda i: (
        f"{label(i)}: launch_date {short_repr(landed_dates[i])} is outside {MIN_DATE}..{MAX_DATE}"
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
            f"{label(i)}: creative_id {short_repr(ids[i])} already appears in {file_name} row "
            f"{rows[first_row[ids[i]]] + 1}, which was kept"
        ))

    keep = ~rejections.mask
    valid = _typed(frame[keep], {c: t[keep] for c, t in text.items()}, launch[keep]).reset_index(drop=True)
    quarantine = rejections.frame(SOURCE_CREATIVES, ids, frame)
    kept_ids = set(valid["creative_id"])
    quarantined_ids = {
        str(ids[i]): str(rejections.reason_of(i))
        for i in np.flatnonzero(rejections.mask).tolist()
        if isinstance(ids[i], str) and ids[i] not in kept_ids
    }
    return CreativesValidation(valid=valid, quarantine=quarantine, quarantined_ids=quarantined_ids)


def _null_marker_note(frame: pd.DataFrame, i: int, columns: list[str]) -> str:
    """' (null marker 'NULL' counts as empty)' when an empty-looking cell held a marker."""
    markers = [str(frame[c].iloc[i]).strip() for c in columns if isinstance(frame[c].iloc[i], str)
               and frame[c].iloc[i].strip()]
    return f" (null marker {', '.join(map(repr, markers))} counts as empty)" if markers else ""


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
