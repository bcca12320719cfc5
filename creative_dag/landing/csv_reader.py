"""Read one CSV export exactly: every cell as text, every line either loaded or reported.

pyarrow parses (about 0.4 s for 500k rows). It runs single-threaded so that each row whose
field count differs from the header's reaches `invalid_row_handler` with its line number,
instead of being padded or dropped silently as pandas does. Such a row is then:

* blank (only delimiters or spaces) -> skipped and counted, it carries nothing;
* recoverable -> kept: extra trailing fields that are all empty (`a,b,c,,`), or missing fields
  that all fall under unnamed trailing header columns (a header written as `a,b,c,`);
* otherwise `malformed_csv_row`: one quarantine row per physical line, naming the line.

A stray double quote makes the parser swallow the following lines into one cell. When that
breaks the field count the row is malformed as above; when the count happens to match (the
quote opened in the last column), a cell holding a line that is itself a full row of fields
gives it away, and the record is malformed too. Legitimate multi-line text cells pass.

Errors for the whole file are `ValueError`s whose message names the file and the fix
(`files.read_landed` turns them into `LandingFileError`).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from creative_dag.landing.quarantine import (
    REASONS,
    clip_key,
    clip_text,
    empty_quarantine,
    quarantine_frame,
    raw_json,
)

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_EXCEL_SEP_LINE = re.compile(rb"^sep=(.)\r?\n", re.IGNORECASE)
_OTHER_DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe"}


@dataclass(frozen=True)
class CsvRead:
    """frame: str columns, index = data row number - 1. quarantine: malformed lines. blank_rows: skipped."""

    frame: pd.DataFrame
    quarantine: pd.DataFrame
    blank_rows: int


@dataclass(frozen=True)
class _BadRecord:
    """A record pyarrow could not fit into the header's columns (line numbers count the header as 1)."""

    line: int
    text: str
    fields: int


def read_csv_text(path: Path, required: Sequence[str], source: str, key_columns: Sequence[str]) -> CsvRead:
    """Parse `path`; raises ValueError (naming the file and the fix) for a whole-file problem."""
    data, skipped_lines = _prepared_bytes(path)
    header, header_lines = _header(path, data)
    names = _column_names(path, header, required, data)
    first_data_line = skipped_lines + header_lines + 1
    table, bad = _parse(path, data, len(names), skipped_lines)
    table = table.slice(1)  # the header row
    breaks = _line_breaks(table) if b'"' in data else np.zeros(table.num_rows, dtype=np.int64)
    records, lines = _record_numbers(breaks, bad, first_data_line)

    frame = pd.DataFrame({f"__{i}": table.column(i).to_pandas() for i in range(len(names))})
    frame.index = pd.Index(records, dtype="int64")
    swallowed = _swallowed_rows(frame, breaks, len(names))
    blank = _blank_mask(table)
    malformed = [_BadRecord(int(lines[k]), "", -1) for k in np.flatnonzero(swallowed & ~blank)]
    frame = frame[~(swallowed | blank)]
    blank_rows = int(blank.sum())

    recovered, more_malformed, more_blank = _recover(bad, names, _records_of_bad(bad, records, lines))
    frame = pd.concat([frame, recovered]).sort_index() if len(recovered) else frame
    frame.columns = _final_names(names)
    frame = _drop_empty_unnamed(frame, names)
    malformed += more_malformed
    quarantine = _malformed_quarantine(path, data, skipped_lines, malformed, names, source, key_columns)
    return CsvRead(frame=frame, quarantine=quarantine, blank_rows=blank_rows + more_blank)


# --- bytes, encoding, header ------------------------------------------------------------------

def _prepared_bytes(path: Path) -> tuple[bytes, int]:
    """The file's bytes, checked as UTF-8, without BOM, Excel `sep=,` line or leading blank lines."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ValueError(f"{path} cannot be read ({err.strerror or err}); check the file's permissions") from None
    if data.startswith(b"PK\x03\x04"):
        raise ValueError(f"{path} is a zip archive (an Excel .xlsx workbook?), not CSV text; "
                         f"save it as 'CSV UTF-8 (comma delimited)'")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ValueError(f"{path} is UTF-16 text (Excel 'Unicode Text'); save it as 'CSV UTF-8 (comma delimited)'")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ValueError(
            f"{path} is not UTF-8 text ({err.reason} at byte {err.start}, line {line}); save it as UTF-8 CSV"
        ) from None
    skipped = 0
    sep = _EXCEL_SEP_LINE.match(data)
    if sep:  # Excel's "sep=;" hint line
        if sep.group(1) != b",":
            name = _OTHER_DELIMITERS.get(sep.group(1).decode(), repr(sep.group(1).decode()))
            raise ValueError(f"{path} is {name}-delimited (its first line is {sep.group(0).decode().strip()!r}); "
                             f"export it comma-separated (CSV UTF-8)")
        data, skipped = data[sep.end():], 1
    stripped = data.lstrip(b" \t\r\n")
    skipped += _breaks(data[: len(data) - len(stripped)].decode("utf-8"))
    data = data[len(data) - len(stripped):]
    if not data.strip():
        raise ValueError(f"{path} is empty: it needs at least a header row with the column names")
    if b"\x00" in data[: data.find(b"\n") if b"\n" in data else len(data)]:
        raise ValueError(f"{path} has NUL bytes in its header (UTF-16 without a BOM?); save it as UTF-8 CSV")
    return data, skipped


def _breaks(text: str) -> int:
    """Line breaks in `text` (CRLF, CR or LF, as the parsers count them)."""
    return len(_LINE_BREAK.findall(text))


def _header(path: Path, data: bytes) -> tuple[list[str], int]:
    """The header's fields (csv module, so quoting rules match) and how many lines it spans."""
    reader = csv.reader(io.StringIO(data[:1_000_000].decode("utf-8", errors="replace"), newline=""))
    try:
        return next(reader), reader.line_num
    except csv.Error as err:
        raise ValueError(f"{path}: the header row cannot be parsed ({err}); the first line must be the "
                         f"column names") from None


def _column_names(path: Path, header: list[str], required: Sequence[str], data: bytes) -> list[str]:
    """Header names stripped; a wrong delimiter is a file error, said plainly."""
    names = [h.strip().lstrip("\ufeff").strip() for h in header]
    if not any(c in names for c in required):
        first_line = _LINE_BREAK.split(data[:100_000].decode("utf-8", errors="replace"), maxsplit=1)[0]
        for delimiter, name in _OTHER_DELIMITERS.items():
            split = [h.strip() for h in first_line.split(delimiter)]
            if any(c in split for c in required):
                raise ValueError(
                    f"{path} is {name}-delimited (its header splits on {delimiter!r} into {len(split)} columns); "
                    f"export it comma-separated (CSV UTF-8)")
    if any("\n" in n or "\r" in n for n in names):
        raise ValueError(f"{path} has a line break inside a header name (a stray double quote in the header "
                         f"row?); fix the header row")
    return names


# --- parsing ----------------------------------------------------------------------------------

def _parse(path: Path, data: bytes, n_columns: int, skipped_lines: int) -> tuple[pa.Table, list[_BadRecord]]:
    bad: list[_BadRecord] = []

    def handle(row) -> str:
        bad.append(_BadRecord(int(row.number or 0) + skipped_lines, row.text, int(row.actual_columns)))
        return "skip"

    names = [f"f{i}" for i in range(n_columns)]
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(use_threads=False, column_names=names,
                                           block_size=min(max(1 << 20, len(data) + 1), (1 << 31) - 1)),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False,
                                             invalid_row_handler=handle),
            convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()),
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except (pa.ArrowException, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path} cannot be read as CSV ({first}); re-export it as CSV UTF-8") from None
    return table, bad


def _line_breaks(table: pa.Table) -> np.ndarray:
    """(rows,) int: line breaks inside each row's cells (quoted multi-line text)."""
    total = np.zeros(table.num_rows, dtype=np.int64)
    for column in table.columns:
        lf = pc.count_substring(column, "\n").to_numpy()
        cr = pc.count_substring(column, "\r").to_numpy()
        crlf = pc.count_substring(column, "\r\n").to_numpy()
        total += (lf + cr - crlf).astype(np.int64)
    return total


def _record_numbers(breaks: np.ndarray, bad: list[_BadRecord], first_line: int) -> tuple[np.ndarray, np.ndarray]:
    """(record index, first file line) of each parsed row, interleaving the rows pyarrow handed back."""
    if not bad:
        records = np.arange(len(breaks), dtype=np.int64)
        lines = first_line + records + np.concatenate([[0], np.cumsum(breaks)[:-1]]).astype(np.int64)
        return records, lines[: len(breaks)]
    records = np.empty(len(breaks), dtype=np.int64)
    lines = np.empty(len(breaks), dtype=np.int64)
    line, record, b = first_line, 0, 0
    for k in range(len(breaks)):
        while b < len(bad) and bad[b].line <= line:
            line += _breaks(bad[b].text) + 1
            record, b = record + 1, b + 1
        records[k], lines[k] = record, line
        line, record = line + int(breaks[k]) + 1, record + 1
    return records, lines


def _records_of_bad(bad: list[_BadRecord], records: np.ndarray, lines: np.ndarray) -> list[int]:
    """Record index of each handed-back row: the count of parsed rows and earlier bad rows before it."""
    before = np.searchsorted(lines, [r.line for r in bad], side="left")
    return [int(before[j]) + j for j in range(len(bad))]


def _blank_mask(table: pa.Table) -> np.ndarray:
    """(rows,) bool: every cell empty or spaces (',,,,' lines, trailing blank rows)."""
    blank = np.ones(table.num_rows, dtype=bool)
    for column in table.columns:
        blank &= pc.equal(pc.utf8_trim_whitespace(column), "").to_numpy(zero_copy_only=False)
    return blank


def _swallowed_rows(frame: pd.DataFrame, breaks: np.ndarray, n_columns: int) -> np.ndarray:
    """(rows,) bool: a cell holds a later line that is a full row by itself (a stray quote's work)."""
    out = np.zeros(len(frame), dtype=bool)
    for k in np.flatnonzero(breaks):
        for cell in frame.iloc[k].tolist():
            parts = _LINE_BREAK.split(cell) if isinstance(cell, str) else []
            if any(len(_fields(part)) >= n_columns for part in parts[1:]):
                out[k] = True
                break
    return out


def _fields(line: str) -> list[str]:
    try:
        return next(csv.reader([line]), [])
    except csv.Error:
        return line.split(",")


def _recover(bad: list[_BadRecord], names: list[str], records: list[int]
             ) -> tuple[pd.DataFrame, list[_BadRecord], int]:
    """Rows handed back by pyarrow: (recovered rows as a frame, malformed ones, blank count)."""
    n, named = len(names), _named_width(names)
    rows, index, malformed, blank = [], [], [], 0
    for record, row in zip(records, bad):
        fields = _record_fields(row.text)
        if all(not f.strip() for f in fields):
            blank += 1
        elif len(fields) > n and all(not f.strip() for f in fields[n:]):
            rows.append(fields[:n])
            index.append(record)
        elif named <= len(fields) < n:  # only unnamed trailing columns are absent
            rows.append(fields + [""] * (n - len(fields)))
            index.append(record)
        else:
            malformed.append(_BadRecord(row.line, row.text, len(fields)))
    frame = pd.DataFrame(rows, columns=[f"__{i}" for i in range(n)], index=pd.Index(index, dtype="int64"),
                         dtype="str")
    return frame, malformed, blank


def _record_fields(text: str) -> list[str]:
    try:
        return next(csv.reader(io.StringIO(text, newline="")), [])
    except csv.Error:
        return [text]


def _named_width(names: list[str]) -> int:
    """Columns up to the last one with a name (a header 'a,b,c,' has 3)."""
    width = len(names)
    while width and not names[width - 1]:
        width -= 1
    return width


def _final_names(names: list[str]) -> list[str]:
    return [name or f"unnamed_{i + 1}" for i, name in enumerate(names)]


def _drop_empty_unnamed(frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Columns without a header name are kept (as unnamed_N) only when some cell has data."""
    empty = [f"unnamed_{i + 1}" for i, name in enumerate(names)
             if not name and not frame[f"unnamed_{i + 1}"].str.strip().ne("").any()]
    return frame.drop(columns=empty)


# --- quarantine rows for malformed lines ------------------------------------------------------

def _malformed_quarantine(path: Path, data: bytes, skipped_lines: int, malformed: list[_BadRecord],
                          names: list[str], source: str,
                          key_columns: Sequence[str]) -> pd.DataFrame:
    """One quarantine row per physical line of each malformed record (blank lines skipped)."""
    if not malformed:
        return empty_quarantine()
    physical = _LINE_BREAK.split(data.decode("utf-8"))
    file_end = skipped_lines + len(physical) - (1 if physical and physical[-1] == "" else 0)
    key_positions = [names.index(c) for c in key_columns if c in names]
    rows = []
    for record in sorted(malformed, key=lambda r: r.line):
        first = record.line
        span = _breaks(record.text) + 1 if record.text else _span_from(physical, first - 1 - skipped_lines)
        last = first + span - 1
        lines = [_physical_line(physical, line, skipped_lines) for line in range(first, last + 1)]
        # An odd number of quotes: the last one opened is never closed (it ran to the end of the file).
        unclosed = "\n".join(lines).count('"') % 2 == 1 and last >= file_end
        why = _why(record, first, last, len(names), unclosed)
        for line, text in zip(range(first, last + 1), lines):
            if not text.strip():
                continue
            rows.append({
                "source": source,
                "key": _line_key(text, key_positions, len(names)),
                "reason": "malformed_csv_row",
                "detail": f"{path.name} line {line}: {why}; the line was not loaded. "
                          f"To fix: {REASONS['malformed_csv_row']}.",
                "raw_value": raw_json({"line": line, "text": clip_text(text)}),
            })
    return quarantine_frame(rows)


def _physical_line(physical: list[str], line: int, skipped_lines: int) -> str:
    """File line `line` (1-based, counting skipped leading lines) from the prepared data's lines."""
    position = line - 1 - skipped_lines
    return physical[position] if 0 <= position < len(physical) else ""


def _span_from(physical: list[str], start: int) -> int:
    """Lines the record starting at physical[start] covers, re-read with the csv module."""
    reader = csv.reader(io.StringIO("\n".join(physical[start:]), newline=""))
    try:
        next(reader, None)
    except csv.Error:  # a cell over the csv module's field limit: the record runs on
        return max(1, len(physical) - start)
    return max(1, reader.line_num)


def _why(record: _BadRecord, first: int, last: int, n_columns: int, unclosed: bool) -> str:
    if last > first:
        closed = ("leaves a quoted cell open to the end of the file" if unclosed
                  else f"opens a quoted cell that only closes on line {last}")
        what = f"lines {first}-{last} were read as one row: a stray double quote (\") on line {first} {closed}"
        return what if record.fields < 0 else f"{what}, giving {record.fields} fields where the header has {n_columns}"
    if record.fields > n_columns:
        return (f"{record.fields} fields where the header has {n_columns} (a delimiter inside an unquoted cell, "
                f"like 1,200, shifts the columns)")
    return f"{record.fields} fields where the header has {n_columns} (a delimiter is missing)"


def _line_key(text: str, positions: list[int], n_columns: int) -> str | None:
    """creative_id (or creative_id|date) read from the line alone, best effort: a line broken by a
    stray quote is split on the delimiter without quoting rules."""
    fields = _fields(text)
    if len(fields) != n_columns:
        fields = [f.strip().strip('"') for f in text.split(",")]
    parts = [fields[p].strip() if p < len(fields) else "" for p in positions]
    if not parts or not parts[0]:
        return None
    return clip_key("|".join(parts))
