"""Find and read the landing folder's input files (docs/input-contract.md), as landed.

`creatives` and `daily_metrics` each come as `.csv` or `.parquet`. Every CSV cell is read as
text (ids keep their leading zeros, nothing is guessed); the validators coerce types with
row-level messages. Problems that make a whole file unusable (no file, two candidate files,
unreadable file, duplicate or missing required columns) raise `LandingFileError`: the one case
that stops an ingest run. A CSV row that cannot be split into the header's columns (a stray
quote that swallows the next lines, a row with too many or too few fields) is not a whole-file
problem: it is returned in `LandedTable.quarantine` as `malformed_csv_row`, one row per line.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from creative_dag.contract import INPUT_SUFFIXES
from creative_dag.landing.csv_reader import read_csv_text
from creative_dag.landing.parquet_reader import read_parquet_frame
from creative_dag.landing.quarantine import empty_quarantine


class LandingFileError(ValueError):
    """A whole input file is unusable; the message names the file and what to do."""


@dataclass(frozen=True)
class LandedTable:
    """One input file as landed.

    frame: the raw cells (CSV: strings, '' for empty); its index is the data row number - 1
    (rows count records under the header from 0, blank and malformed ones included), so
    messages name the row a person sees. quarantine: malformed CSV rows (raw.quarantine columns).
    """

    path: Path
    frame: pd.DataFrame
    quarantine: pd.DataFrame = field(default_factory=empty_quarantine)
    blank_rows: int = 0

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def is_csv(self) -> bool:
        return self.path.suffix.lower() == ".csv"

    def describe(self) -> dict[str, object]:
        """{file, rows, columns, bytes, malformed_rows, blank_rows} for asset metadata."""
        return {"file": self.name, "rows": len(self.frame), "columns": int(self.frame.shape[1]),
                "bytes": int(self.path.stat().st_size) if self.path.exists() else 0,
                "malformed_rows": len(self.quarantine), "blank_rows": self.blank_rows}


def find_input(folder: str | os.PathLike, stem: str) -> Path:
    """The one `<stem>.csv` or `<stem>.parquet` in `folder`; LandingFileError if none or both."""
    root = Path(folder)
    if not root.is_dir():
        raise LandingFileError(
            f"landing folder {root} does not exist or is not a folder; point the pipeline at your export "
            f"with --landing DIR or CREATIVE_DAG_LANDING"
        )
    expected = [f"{stem}{suffix}" for suffix in INPUT_SUFFIXES]
    present = [root / name for name in expected if os.path.lexists(root / name)]
    if len(present) > 1:
        raise LandingFileError(
            f"both {' and '.join(str(p) for p in present)} exist in {root}; keep exactly one {stem} file "
            f"(remove or rename the stale one)"
        )
    if not present:
        raise LandingFileError(
            f"no {stem} file in landing folder {root}: expected one of {', '.join(expected)}"
        )
    path = present[0]
    if not path.is_file():  # a folder, a FIFO (opening it would block), a device or a dangling link
        raise LandingFileError(f"{path} is not a regular file; replace it with the exported {stem} file")
    return path


def read_landed(path: str | os.PathLike, required: Sequence[str]) -> LandedTable:
    """Read one input file and check its columns.

    Column names are stripped of surrounding whitespace (and a UTF-8 BOM). Duplicate names
    (compared case-insensitively, as the warehouse does) and missing required columns raise
    LandingFileError naming the file and what it has.
    """
    path = Path(path)
    source = path.stem
    key_columns = [c for c in ("creative_id", "date") if c in required]
    if path.suffix.lower() == ".csv":
        try:
            landed = read_csv_text(path, required, source, key_columns)
        except ValueError as err:  # the reader's messages already name the file and the fix
            raise LandingFileError(str(err)) from None
        frame, quarantine, blank = landed.frame, landed.quarantine, landed.blank_rows
    else:
        try:
            frame = read_parquet_frame(path, required)
        except ValueError as err:
            raise LandingFileError(str(err)) from None
        quarantine, blank = empty_quarantine(), 0
    _check_columns(path, list(frame.columns), required)
    return LandedTable(path=path, frame=frame, quarantine=quarantine, blank_rows=blank)


def _check_columns(path: Path, columns: list[str], required: Sequence[str]) -> None:
    seen: dict[str, str] = {}
    duplicated = []
    for name in columns:
        folded = name.casefold()
        if folded in seen:
            duplicated.append(name if seen[folded] == name else f"{seen[folded]}/{name}")
        seen.setdefault(folded, name)
    if duplicated:
        raise LandingFileError(
            f"{path} has duplicate column name(s) {', '.join(map(repr, duplicated))} (names are compared "
            f"ignoring case); rename or drop the copies"
        )
    missing = [c for c in required if c not in columns]
    if missing:
        near = {c: h for c in missing for h in columns if h.lower().replace(" ", "_") == c}
        hint = "".join(f"; column {h!r} looks like {c!r}: rename it" for c, h in near.items())
        raise LandingFileError(
            f"{path} is missing required column(s) {', '.join(missing)} (it has: "
            f"{', '.join(map(str, columns)) or 'no columns'}){hint}. "
            f"Required columns: {', '.join(required)}"
        )
