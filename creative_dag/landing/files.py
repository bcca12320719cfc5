"""Find and read the landing folder's input files (design §2), as landed.

`creatives` and `daily_metrics` each come as `.csv` or `.parquet`. CSV is read with every
column as text (`dtype=str`) so ids keep their leading zeros and nothing is guessed; the
validators coerce types with row-level messages. Problems that make a whole file unusable
(no file, two candidate files, unreadable file, a required column missing) raise
`LandingFileError`: the one case that stops an ingest run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from creative_dag.contract import INPUT_SUFFIXES


class LandingFileError(ValueError):
    """A whole input file is unusable; the message names the file and what to do."""


@dataclass(frozen=True)
class LandedTable:
    """One input file as landed: `frame` holds the raw cells (CSV: strings, '' for empty)."""

    path: Path
    frame: pd.DataFrame

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def is_csv(self) -> bool:
        return self.path.suffix.lower() == ".csv"

    def describe(self) -> dict[str, object]:
        """{file, rows, columns, bytes} for asset metadata."""
        return {"file": self.name, "rows": len(self.frame), "columns": int(self.frame.shape[1]),
                "bytes": int(self.path.stat().st_size) if self.path.exists() else 0}


def find_input(folder: str | os.PathLike, stem: str) -> Path:
    """The one `<stem>.csv` or `<stem>.parquet` in `folder`; LandingFileError if none or both."""
    root = Path(folder)
    if not root.is_dir():
        raise LandingFileError(
            f"landing folder {root} does not exist or is not a folder; point the pipeline at your export "
            f"with --landing DIR or CREATIVE_DAG_LANDING"
        )
    expected = [f"{stem}{suffix}" for suffix in INPUT_SUFFIXES]
    found = [root / name for name in expected if (root / name).is_file()]
    if not found:
        raise LandingFileError(
            f"no {stem} file in landing folder {root}: expected one of {', '.join(expected)}"
        )
    if len(found) > 1:
        raise LandingFileError(
            f"both {' and '.join(str(p) for p in found)} exist in {root}; keep exactly one {stem} file "
            f"(remove or rename the stale one)"
        )
    return found[0]


def read_landed(path: str | os.PathLike, required: Sequence[str]) -> LandedTable:
    """Read one input file and check its required columns are there.

    Column names are stripped of surrounding whitespace (and a UTF-8 BOM). A missing required
    column raises LandingFileError listing what is missing and what the file has.
    """
    path = Path(path)
    frame = _read_csv(path) if path.suffix.lower() == ".csv" else _read_parquet(path)
    frame.columns = [str(c).strip().lstrip("\ufeff").strip() for c in frame.columns]
    duplicated = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if duplicated:
        raise LandingFileError(f"{path} has duplicate column name(s) {duplicated}; rename or drop the copies")
    missing = [c for c in required if c not in frame.columns]
    if missing:
        near = {c: h for c in missing for h in frame.columns if h.lower().replace(" ", "_") == c}
        hint = "".join(f"; column {h!r} looks like {c!r}: rename it" for c, h in near.items())
        raise LandingFileError(
            f"{path} is missing required column(s) {', '.join(missing)} (it has: "
            f"{', '.join(map(str, frame.columns)) or 'no columns'}){hint}. "
            f"Required columns: {', '.join(required)}"
        )
    return LandedTable(path=path, frame=frame.reset_index(drop=True))


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        # dtype=str + keep_default_na=False: cells stay exactly as written ('' when empty,
        # 'NA' stays 'NA'); ids keep leading zeros.
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise LandingFileError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8 CSV") from err
    except pd.errors.EmptyDataError as err:
        raise LandingFileError(f"{path} is empty: it needs at least a header row") from err
    except (pd.errors.ParserError, OSError) as err:
        raise LandingFileError(f"{path} cannot be read as CSV: {err}") from err


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several unrelated types for corrupt files
        raise LandingFileError(f"{path} cannot be read as Parquet ({type(err).__name__}: {err}); re-export it") from err
