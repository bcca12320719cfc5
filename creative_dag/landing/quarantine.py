"""Quarantine: the one place that names every reason a row or image is rejected.

A rejected row never disappears silently: it becomes one row of `raw.quarantine`
(columns `contract.QUARANTINE_COLUMNS`: source, key, reason, detail, raw_value).
`reason` is a stable snake_case code (BI filters and checks rely on it); `detail` is a
sentence naming the file, the row and what to do. docs/input-contract.md lists them all.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from creative_dag.contract import QUARANTINE_COLUMNS

# raw_value keeps each landed cell up to this many characters, a key up to MAX_KEY_CHARS: one
# 100 MB cell must not become a 100 MB quarantine row (or detail message).
MAX_RAW_CELL_CHARS = 2_000
MAX_KEY_CHARS = 200

SOURCE_CREATIVES = "creatives"
SOURCE_METRICS = "daily_metrics"
SOURCE_IMAGES = "images"

# reason code -> what to do about it (shown in docs and in check metadata).
REASONS: dict[str, str] = {
    # creatives and daily_metrics rows
    "malformed_csv_row": ("fix the CSV line(s) named: a stray double quote merges the lines after it into one row, "
                          "and an unquoted delimiter inside a cell (1,200) or a missing one shifts the columns"),
    "cell_too_long": "a cell this long is a broken export (often a stray quote); fix the cell, text over 32,767 characters is not accepted",
    "missing_required_value": "fill the empty required cell in the export",
    "unparseable_date": "write dates as ISO YYYY-MM-DD (e.g. 2026-03-01)",
    "date_out_of_range": "dates before 2000-01-01 or after 2099-12-31 are placeholders or typos (0001-01-01, 9999-12-31); write the real date",
    "future_date": "dates after today are not possible for delivered ads; fix the date or the export's timezone",
    "duplicate_creative_id": "give each creative a unique creative_id; the first usable row was kept",
    # daily_metrics rows
    "non_numeric_metric": "write plain numbers (no thousands separators, currency signs, 'n/a' or 'inf')",
    "value_out_of_range": "metrics above 10^15 are corrupt (an id or timestamp in a number column?); correct the value",
    "non_integer_count": "counts (impressions, clicks, conversions, reach, views, likes) must be whole numbers",
    "negative_value": "metrics cannot be negative; correct the value in the export",
    "clicks_exceed_impressions": "clicks cannot exceed impressions on a day; check the column order or the export",
    "unknown_creative": "add the creative to creatives.* or remove its metric rows",
    "creative_quarantined": "the creative's own row was quarantined; fix that row and its metrics load too",
    "duplicate_metric_row": "one row per creative per day; the first usable row was kept",
    "metric_before_launch": "a metric dated before the creative's launch_date; fix the launch_date or the metric date",
    # images
    "missing_image_path": "fill image_path for the creative",
    "image_path_escapes_landing": "image_path must be relative to the landing folder without '..' (no absolute paths)",
    "image_scheme_not_allowed": "copy the image into the landing folder, or allow the scheme in the image store",
    "image_fetch_failed": "the remote image could not be fetched; check the URI and credentials, or copy it into the landing folder",
    "missing_image_file": "put the image file at the image_path given (paths are case-sensitive)",
    "image_not_a_file": "image_path must name a regular file, not a folder, pipe or device; point it at the image file",
    "image_file_too_large": "the file is larger than the image size limit; re-export it smaller, or raise max_image_bytes",
    "empty_image_file": "the file has zero bytes; re-export the image",
    "image_format_not_allowed": "only JPEG, PNG, WebP, GIF, BMP and TIFF are read; convert the image to JPEG or PNG",
    "unreadable_image": "the file is not an image Pillow can read (JPEG, PNG, WebP, GIF...); re-export it",
    "degenerate_image_size": "the image is too small or too elongated to be an ad (a tracking pixel or a 1-px line?); land the real creative",
    "truncated_image": "the file ends early (interrupted copy/download); copy the image again",
    "decompression_bomb": "the image has more pixels than allowed; downscale it, or raise max_image_pixels",
}


def reason_hint(reason: str) -> str:
    """What a user should do about `reason` (empty string for an unknown code)."""
    return REASONS.get(reason, "")


def empty_quarantine() -> pd.DataFrame:
    """A quarantine frame with no rows and the contract's columns (all strings)."""
    return pd.DataFrame({c: pd.Series([], dtype="str") for c in QUARANTINE_COLUMNS})


def quarantine_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows of dicts with the QUARANTINE_COLUMNS keys -> a frame (raw_value JSON-encoded)."""
    records = []
    for row in rows:
        raw = row.get("raw_value")
        records.append({
            "source": row["source"],
            "key": row.get("key"),
            "reason": row["reason"],
            "detail": row["detail"],
            "raw_value": raw if isinstance(raw, str) else raw_json(raw or {}),
        })
    if not records:
        return empty_quarantine()
    frame = pd.DataFrame.from_records(records, columns=list(QUARANTINE_COLUMNS))
    return frame.astype({c: "str" for c in QUARANTINE_COLUMNS})


def concat_quarantine(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty_quarantine()
    return pd.concat(frames, ignore_index=True)


def raw_json(values: Mapping[str, Any]) -> str:
    """The raw row as landed, as JSON (numpy/pandas scalars and dates made plain, long text cut)."""
    return json.dumps({str(k): clip_text(_plain(v)) for k, v in values.items()}, ensure_ascii=False)


def clip_text(value: Any, limit: int = MAX_RAW_CELL_CHARS) -> Any:
    """`value` itself, or a long string cut to `limit` characters with a note of its full length."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]}... [cut: {len(value):,} characters in all]"
    return value


def short_repr(value: Any, limit: int = 60) -> str:
    """repr() for messages, never longer than about `limit` characters."""
    if isinstance(value, str) and len(value) > limit:
        return repr(value[:limit]) + f"... ({len(value):,} characters)"
    text = repr(value)
    return text if len(text) <= limit + 20 else text[:limit] + "..."


def rows_as_json(raw: pd.DataFrame, positions: Sequence[int]) -> list[str]:
    """The landed rows at `positions` as JSON objects (one string each), encoded in bulk.

    pandas' C encoder: ~100x faster than json.dumps per row, which matters when a whole file
    is rejected (a 300k-row export with thousands separators in `spend`).
    """
    if not len(positions):
        return []
    raw = _clip_frame(raw.iloc[list(positions)])
    positions = range(len(raw))
    text = raw.to_json(orient="records", lines=True, force_ascii=False,
                       date_format="iso", default_handler=str, double_precision=15)
    # JSON escapes newlines inside strings, so '\n' only separates records.
    lines = [line for line in text.split("\n") if line]
    if len(lines) != len(positions):  # defensive: fall back to the exact per-row encoder
        return [raw_json(r) for r in raw.to_dict("records")]
    return lines


def _clip_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """`rows` with text cells over MAX_RAW_CELL_CHARS cut (only the few rejected rows are scanned)."""
    out = rows.copy()
    for column in out.columns:
        values = out[column]
        if (values.dtype == object or pd.api.types.is_string_dtype(values.dtype)) and _has_long_text(values):
            out[column] = values.astype(object).map(clip_text)
    return out


def _has_long_text(values: pd.Series) -> bool:
    try:  # vectorised for text columns; non-text cells count as length 0
        lengths = values.str.len()
    except AttributeError:
        lengths = values.map(lambda v: len(v) if isinstance(v, str) else 0)
    return bool((pd.to_numeric(lengths, errors="coerce").fillna(0) > MAX_RAW_CELL_CHARS).any())


def clip_key(key: str) -> str:
    """A quarantine key, cut to MAX_KEY_CHARS (an id that long is itself the problem)."""
    return key if len(key) <= MAX_KEY_CHARS else f"{key[:MAX_KEY_CHARS]}..."


def counts_by_reason(quarantine: pd.DataFrame) -> dict[str, int]:
    """{reason: rows}, most frequent first."""
    if quarantine.empty:
        return {}
    counts = quarantine["reason"].value_counts()
    return {str(k): int(v) for k, v in counts.items()}


def _plain(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else (float(value) if math.isfinite(value) else str(value))
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (pd.Timestamp, dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, (str, int)):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


class RowRejections:
    """Collects one reason per rejected row, in the order checks are applied (first failing check wins).

    Rows are positions 0..n-1 of the landed frame. Validators call
    `reject(mask, reason, detail_for_row)` from the most basic check to the most specific; a row
    already rejected keeps its first reason, so each bad row yields exactly one quarantine row
    whose reason is the root cause. `detail_for_row(i)` is called only for newly rejected rows.
    """

    def __init__(self, n_rows: int) -> None:
        self._rejected = np.zeros(n_rows, dtype=bool)
        self._reason: dict[int, str] = {}
        self._detail: dict[int, str] = {}

    def reject(self, mask: pd.Series | np.ndarray, reason: str, detail_for_row) -> int:
        """Reject rows where `mask` is true and not yet rejected; returns how many were new."""
        if reason not in REASONS:
            raise KeyError(f"unknown quarantine reason {reason!r}; add it to REASONS with its remedy")
        flags = np.asarray(pd.Series(mask).fillna(False), dtype=bool)
        new = np.flatnonzero(flags & ~self._rejected)
        self._rejected[new] = True
        remedy = REASONS[reason]
        for i in new.tolist():
            self._reason[i] = reason
            self._detail[i] = f"{detail_for_row(i)}. To fix: {remedy}."
        return len(new)

    @property
    def mask(self) -> np.ndarray:
        """(n,) bool: True for rejected rows."""
        return self._rejected.copy()

    def reason_of(self, i: int) -> str | None:
        return self._reason.get(i)

    def frame(self, source: str, keys: Sequence[Any], raw: pd.DataFrame) -> pd.DataFrame:
        """The quarantine rows (in file order) with `keys[i]` and the raw landed row as JSON."""
        positions = sorted(self._reason)
        rows = []
        for i, raw_value in zip(positions, rows_as_json(raw, positions)):
            key = keys[i]
            rows.append({
                "source": source,
                "key": None if key is None or (isinstance(key, float) and math.isnan(key)) else clip_key(str(key)),
                "reason": self._reason[i],
                "detail": self._detail[i],
                "raw_value": raw_value,
            })
        return quarantine_frame(rows)
