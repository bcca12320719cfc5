"""Convert ad platforms' ad-level daily report exports into a landing folder (docs/imports.md).

`convert_exports(paths, platform, images_dir, account, currency)` reads one or more exports of
one platform (CSV or XLSX, as the report UI writes them) and returns an `ImportResult`: the
`creatives` and `daily_metrics` tables of the landing contract (all cells text, as a CSV holds
them), the images to copy, and an `ImportSummary` with one `ImportIssue` per thing skipped or
changed. `write_landing(result, out)` writes them. Nothing here runs Dagster.

The importer translates; it does not judge. What the platforms write in their own way (report
title and date-range lines above the header, totals rows, "1,234.56", "€12,50", "--" for none,
one row per breakdown of an ad-day) is translated. What is impossible (negative counts, clicks
above impressions) and what cannot be read (a cell "n/a", a date "03/01/2026") is written as the
export has it, so the ingest quarantines it with its file, row and reason, as for any landing
folder. Only rows that are not data (totals, blank lines) and ads that cannot satisfy the
contract (no image) are left out, each counted in the summary with the ad and what to do.
"""

from __future__ import annotations

import csv
import datetime as dt
import difflib
import io
import json
import math
import os
import re
import shutil
import unicodedata
import zipfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import pandas as pd
from PIL import Image

from creative_dag.atomic_files import write_text_atomically
from creative_dag.contract import (
    CREATIVES_FILE,
    CREATIVES_REQUIRED,
    DAILY_METRICS_FILE,
    IMAGE_FORMATS,
    IMAGES_DIR,
    METRICS_OPTIONAL,
    METRICS_REQUIRED,
)
from creative_dag.imports.platforms import (
    CURRENCY_SLOT,
    PER_PERSON_FIELDS,
    PLATFORMS,
    REQUIRED_FIELDS,
    SUMMED_FIELDS,
    TEXT_FIELDS,
    ZERO_WHEN_BLANK_FIELDS,
    PlatformSpec,
    header_key,
    name_pattern,
    platform_spec,
)

SUMMARY_FILE = "import_summary.json"
# Report title, date range, account name...: Google Ads writes two such lines above the header.
MAX_PREAMBLE_ROWS = 30
CSV_DELIMITERS = (",", "\t", ";", "|")
# The header is looked for in the file's head, under each delimiter; the whole file is parsed once.
HEADER_SEARCH_CHARS = 64_000
# Cells meaning "no value": what Google Ads and TikTok write for none; Meta leaves the cell empty.
NONE_MARKERS = frozenset({"", "--", "-", "\u2013", "\u2014"})
TOTAL_LABEL = re.compile(r"^\s*totals?\b", re.IGNORECASE)
# Excel shows ids over 15 digits as 1.2021E+17 and saves them that way: the digits are gone.
EXCEL_MANGLED_ID = re.compile(r"^\d(?:[.,]\d+)?E\+?\d+$", re.IGNORECASE)
# Integers a float holds exactly: an id stored as a number in XLSX is trusted only below this.
EXACT_FLOAT_INT = 2 ** 53
# Money and count cells: currency signs and codes around the number, grouping spaces inside.
CURRENCY_AFFIX = re.compile(r"^(?:[A-Z]{0,3}[$€£¥₹₩₽₺]|[A-Z]{3})\s*|\s*(?:[A-Z]{0,3}[$€£¥₹₩₽₺]|[A-Z]{3})$")
GROUPING_CHARS = str.maketrans("", "", " \u00a0\u202f\u2009'\u2019")
PLAIN_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")
POINT_NUMBER = re.compile(r"^(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?$")
COMMA_NUMBER = re.compile(r"^(?:\d{1,3}(?:\.\d{3})+|\d+)?(?:,\d+)?$")
# Evidence for the decimal mark of a whole file (see `detect_decimal_comma`).
COMMA_DECIMAL_EVIDENCE = re.compile(r"^\d{1,3}(?:\.\d{3})+,\d+$|^\d*,(?:\d{1,2}|\d{4,})$")
POINT_DECIMAL_EVIDENCE = re.compile(r"^\d{1,3}(?:,\d{3})+\.\d+$|^\d*\.(?:\d{1,2}|\d{4,})$")
COUNT_DOT_GROUPS = re.compile(r"^\d{1,3}(?:\.\d{3})+$")
COUNT_COMMA_GROUPS = re.compile(r"^\d{1,3}(?:,\d{3})+$")
COUNT_FIELDS = ("impressions", "clicks", "reach", "video_3s_views", "video_2s_views", "likes")
ISO_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ].*)?$")
# Unambiguous written-out dates (month names); 03/01/2026 is ambiguous and left to the ingest.
WORDED_DAY_FORMATS = ("%Y/%m/%d", "%b %d, %Y", "%B %d, %Y", "%a, %b %d, %Y", "%A, %B %d, %Y",
                      "%d %b %Y", "%d %B %Y")
OPTIONAL_METRIC_FIELDS = ("reach", "frequency", "video_3s_views", "video_2s_views", "likes")

# reason -> what it means and what to do (printed with the counts, kept in import_summary.json).
ISSUE_REASONS: Mapping[str, str] = MappingProxyType({
    "preamble_line": "lines above the header (report title, date range) were skipped; nothing to do",
    "blank_row": "empty rows were skipped; nothing to do",
    "totals_row": "the report's total rows were skipped (the pipeline adds up days itself); nothing to do",
    "missing_ad_id": "a row without an Ad ID cannot be matched to an ad; re-export at ad level with the Ad ID column",
    "not_daily_row": "a row covering several days was skipped; export with a breakdown by day",
    "no_image": ("the ad and its days were left out (the contract needs an image per creative); put its image, "
                 "named by the ad id or the ad name (.jpg, .png, ...), in the images folder and import again"),
    "ambiguous_image": ("the ad and its days were left out: several images match it; keep one file per ad id or "
                        "ad name and import again"),
    "unparseable_number": ("written as the export has it: the ingest quarantines that day (non_numeric_metric); "
                           "fix the cell in the export"),
    "unparseable_date": ("written as the export has it: the ingest quarantines it (unparseable_date); "
                         "export dates as YYYY-MM-DD"),
    "rows_summed": "several rows of one ad and day (a breakdown) were added up; nothing to do",
    "reach_not_additive": ("reach and frequency were left empty for ad-days made of several rows (people are not "
                           "additive over a breakdown); export without breakdowns to keep them"),
    "no_delivery_before_launch": ("days without any delivery before the ad's first delivery were left out "
                                  "(launch_date is the first day with delivery); nothing to do"),
    "fractional_conversions": ("the contract counts whole conversions: the ad's running total was rounded "
                               "(its total stays within half a conversion of the export's); nothing to do"),
    "duplicate_across_files": ("the same ad and day is in two export files: the first file's row was kept; "
                               "import exports with date ranges that do not overlap"),
    "no_revenue_column": ("the export has no conversion value column: revenue was written as 0, so ROAS is 0 "
                          "for these ads; add the column to the report to import revenue"),
    "no_delivery": ("the ad had no delivery on any day of the export (no impressions, clicks or spend) and was left "
                    "out: it has no launch date yet; nothing to do"),
    "no_currency": ("the export names no currency (no currency column, none in the money columns' headers) and "
                    "none was passed: spend and revenue were written without one; pass --currency CODE"),
    "shared_image": ("several ads matched one image by their common ad name and were written with it; name each "
                     "ad's image by its ad id if they differ"),
    "unused_image": ("images in the images folder match no ad of the export by ad id or ad name; check their "
                     "names if an ad was left out with no_image"),
    "kept_on_append": ("--append: rows of the same ad and day as the folder's earlier import were replaced by this "
                       "import's, and the ads' other days kept; nothing to do"),
})
# Reasons that are the export's normal shape, printed as counts only.
ROUTINE_REASONS = frozenset({"preamble_line", "blank_row", "totals_row", "rows_summed"})


class ImportFileError(ValueError):
    """A whole export (or the output folder) is unusable; the message names the file and what to do."""


@dataclass(frozen=True)
class ImportIssue:
    """One thing skipped or changed: the reason code, where, and a sentence naming the ad."""

    reason: str
    detail: str
    file: str = ""
    row: int | None = None
    ad_id: str = ""

    def as_dict(self) -> dict[str, object]:
        return {"reason": self.reason, "file": self.file, "row": self.row, "ad_id": self.ad_id,
                "detail": self.detail}


@dataclass(frozen=True)
class ColumnRef:
    """Where a field is in an export: column position, header as written, currency in the header."""

    index: int
    header: str
    currency: str | None = None


@dataclass(frozen=True)
class ExportTable:
    """An export's header and data rows. Row numbers are as a spreadsheet shows them (header included)."""

    path: Path
    header_row: int
    header: list[str]
    rows: list[tuple[int, list[object]]]
    sheet: str | None = None

    @property
    def label(self) -> str:
        return f"{self.path.name} (sheet {self.sheet!r})" if self.sheet else self.path.name


@dataclass(frozen=True)
class ExportRow:
    """One data row. metrics: field -> float, None (empty / "--"), or the cell text when unreadable."""

    file: str
    row: int
    ad_id: str
    ad_name: str
    account_id: str
    campaign_id: str
    currency: str
    day: dt.date | None
    day_text: str
    metrics: dict[str, float | str | None]
    text: dict[str, str]

    @property
    def day_key(self) -> str:
        return self.day.isoformat() if self.day else self.day_text


@dataclass(frozen=True)
class AdDay:
    """The metrics of one ad on one day, after summing its rows (cells: float, None, or unreadable text)."""

    ad_id: str
    day: dt.date | None
    day_text: str
    metrics: dict[str, float | str | None]
    first: ExportRow


@dataclass(frozen=True)
class ImportSummary:
    """What an import read, wrote, skipped and changed (printed by the command, saved as import_summary.json)."""

    platform: str
    files: list[dict[str, object]]
    ads_in_export: int
    creatives_written: int
    metric_rows_written: int
    issues: list[ImportIssue] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """{reason: issues}, in the order of ISSUE_REASONS."""
        found: dict[str, int] = {}
        for issue in self.issues:
            found[issue.reason] = found.get(issue.reason, 0) + 1
        return {r: found[r] for r in ISSUE_REASONS if r in found}

    def as_dict(self) -> dict[str, object]:
        return {"platform": self.platform, "files": self.files, "ads_in_export": self.ads_in_export,
                "creatives_written": self.creatives_written, "metric_rows_written": self.metric_rows_written,
                "counts": self.counts(), "to_do": {r: ISSUE_REASONS[r] for r in self.counts()},
                "issues": [i.as_dict() for i in self.issues]}

    def lines(self, examples: int = 5) -> list[str]:
        """A readable report: totals, then per reason its count, what to do, and a few named examples."""
        out = [(f"{self.platform}: {len(self.files)} file(s), {self.ads_in_export} ads in the export; wrote "
                f"{self.creatives_written} creatives and {self.metric_rows_written} daily rows")]
        for reason, count in self.counts().items():
            out.append(f"  {reason}: {count} - {ISSUE_REASONS[reason]}")
            if reason in ROUTINE_REASONS:
                continue
            named = [i for i in self.issues if i.reason == reason]
            out += [f"    {i.detail}" for i in named[:examples]]
            if len(named) > examples:
                out.append(f"    ... and {len(named) - examples} more (see {SUMMARY_FILE})")
        return out


@dataclass(frozen=True)
class ImportResult:
    """The landing tables as text cells, the images to copy (landing-relative path -> source), the summary."""

    creatives: pd.DataFrame
    daily_metrics: pd.DataFrame
    image_copies: dict[str, Path]
    summary: ImportSummary


# -- reading files ---------------------------------------------------------------------------------

def read_export(path: str | os.PathLike, spec: PlatformSpec) -> ExportTable:
    """The export's header and data rows (CSV in any common delimiter and encoding, or XLSX).

    The header is the first row, among the first MAX_PREAMBLE_ROWS, that names the ad id, a day
    and at least one more field of `spec`: lines above it (a report title, a date range) are
    preamble. ImportFileError when the file cannot be read or no row is such a header.
    """
    path = Path(path)
    if not path.is_file():
        raise ImportFileError(f"{path}: no such file; give the path of the exported report")
    head = path.read_bytes()[:8]
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise ImportFileError(f"{path.name} is an old Excel .xls workbook: export CSV or XLSX instead")
    if head.startswith(b"PK\x03\x04"):
        return _read_xlsx(path, spec)
    return _read_csv(path, spec)


def _read_csv(path: Path, spec: PlatformSpec) -> ExportTable:
    """The delimiter is the one under which a header row appears (most fields matched) in the file's head."""
    text = _decode(path)
    head = text[:HEADER_SEARCH_CHARS]
    best: tuple[int, str] | None = None
    for delimiter in CSV_DELIMITERS:
        found = find_header(_csv_rows(head, delimiter), spec)
        if found is not None and (best is None or found[1] > best[0]):
            best = (found[1], delimiter)
    if best is None:
        raise ImportFileError(_no_header_message(path.name, _csv_rows(head, _likely_delimiter(head)), spec))
    rows = _csv_rows(text, best[1])
    at = find_header(rows, spec)[0]
    return ExportTable(path=path, header_row=rows[at][0], header=[str(c) for c in rows[at][1]], rows=rows[at + 1:])


def _decode(path: Path) -> str:
    raw = path.read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")  # Google Ads' "Excel CSV" is UTF-16 with tabs
    if len(raw) >= 4 and raw[1:4:2] == b"\x00\x00" and raw[0:4:2] != b"\x00\x00":
        return raw.decode("utf-16-le")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise ImportFileError(f"{path.name} is not UTF-8 (byte 0x{raw[err.start]:02x} on line {line}): "
                              f"export it again as CSV (UTF-8) or XLSX") from None


def _csv_rows(text: str, delimiter: str) -> list[tuple[int, list[object]]]:
    """(first line of the record, cells) for each CSV record; quoted multi-line cells stay one record."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[tuple[int, list[object]]] = []
    start = 1
    try:
        for cells in reader:
            rows.append((start, list(cells)))
            start = reader.line_num + 1
    except csv.Error:  # an unterminated quote: keep what was read; the header search decides
        pass
    return rows


def _likely_delimiter(text: str) -> str:
    return max(CSV_DELIMITERS, key=text.count)


def _read_xlsx(path: Path, spec: PlatformSpec) -> ExportTable:
    try:
        import openpyxl
        from openpyxl.utils.exceptions import InvalidFileException
    except ImportError:  # pragma: no cover - openpyxl is a dependency
        raise ImportFileError(f"{path.name}: reading XLSX needs openpyxl (pip install openpyxl); "
                              f"or export the report as CSV") from None
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError) as err:  # damaged or not XLSX
        raise ImportFileError(f"{path.name} is not a readable XLSX workbook ({err}); export it again") from None
    try:
        sheets = []
        for sheet in book.worksheets:
            rows = [(n, _trim(list(values))) for n, values in
                    enumerate(sheet.iter_rows(min_row=1, values_only=True), start=1)]
            found = find_header(rows, spec)
            if found is not None:
                at = found[0]
                return ExportTable(path=path, header_row=rows[at][0], header=[_cell_text(c) for c in rows[at][1]],
                                   rows=rows[at + 1:], sheet=sheet.title)
            sheets.append(rows)
    finally:
        book.close()
    raise ImportFileError(_no_header_message(path.name, sheets[0] if sheets else [], spec))


def _trim(cells: list[object]) -> list[object]:
    while cells and cells[-1] is None:
        cells.pop()
    return ["" if c is None else c for c in cells]


# -- the header --------------------------------------------------------------------------------------

def match_columns(header: Sequence[object], spec: PlatformSpec) -> dict[str, ColumnRef]:
    """field -> where it is, for every field of `spec` the header names (first matching name wins)."""
    keys = [header_key(h) for h in header]
    found: dict[str, ColumnRef] = {}
    for field_name, names in spec.columns.items():
        for name in names:
            pattern = name_pattern(name)
            hit = next(((i, m) for i, k in enumerate(keys) if (m := pattern.match(k))), None)
            if hit is not None:
                i, m = hit
                currency = m.groupdict().get("currency")
                found[field_name] = ColumnRef(i, str(header[i]).strip(), currency.upper() if currency else None)
                break
    return found


def find_header(rows: Sequence[tuple[int, list[object]]], spec: PlatformSpec) -> tuple[int, int] | None:
    """(position in `rows`, fields matched) of the header row, or None when no early row is one."""
    for at, (_, cells) in enumerate(rows[:MAX_PREAMBLE_ROWS]):
        matched = match_columns(cells, spec)
        if "ad_id" in matched and any(f in matched for f in spec.date_fields()) and len(matched) >= 3:
            return at, len(matched)
    return None


def missing_fields(columns: Mapping[str, ColumnRef], spec: PlatformSpec) -> list[str]:
    """Required fields the header lacks (a day column counts once, whichever the export has)."""
    missing = [f for f in REQUIRED_FIELDS if f not in columns]
    if not any(f in columns for f in spec.date_fields()):
        missing.append("date")
    return missing


def _no_header_message(file: str, rows: Sequence[tuple[int, list[object]]], spec: PlatformSpec) -> str:
    """One line for an export without a usable header: judged on the early row most like one."""
    candidates = [(len(match_columns(cells, spec)), n, cells) for n, cells in rows[:MAX_PREAMBLE_ROWS]
                  if any(_cell_text(c) for c in cells)]
    if not candidates:
        return f"{file}: no header row found (the file is empty); export the {spec.label} report again"
    _, row, cells = max(candidates, key=lambda c: c[0])
    return missing_columns_message(file, row, cells, spec)


def missing_columns_message(file: str, row: int, header: Sequence[object], spec: PlatformSpec) -> str:
    """One line: the required columns the header lacks, their near matches, and a platform it fits instead."""
    columns = match_columns(header, spec)
    keys = {header_key(c): _cell_text(c) for c in header if _cell_text(c)}
    parts = []
    for field_name in missing_fields(columns, spec):
        names = [n.replace(CURRENCY_SLOT, "<currency>") for n in (
            [n for f in spec.date_fields() for n in spec.names_for(f)] if field_name == "date"
            else spec.names_for(field_name))]
        near = difflib.get_close_matches(header_key(names[0]), list(keys), n=1, cutoff=0.6)
        hint = f" ({keys[near[0]]!r} looks like {names[0]!r})" if near else ""
        parts.append(f"{' / '.join(repr(n) for n in names)}{hint}")
    shown = ", ".join(repr(v) for v in list(keys.values())[:12]) + (" ..." if len(keys) > 12 else "")
    fits = [s for s in PLATFORMS.values() if s.name != spec.name and not missing_fields(match_columns(header, s), s)]
    other = f"; it looks like a {fits[0].label} export (--from {fits[0].name})" if fits else ""
    # headers in another language match nothing, or only look-alikes ("Impressionen")
    language = ("; the importer reads the platform's English column names: switch its language to English "
                "before exporting" if not other and len(parts) == len(missing_fields({}, spec)) else "")
    return (f"{file}: no {spec.label} header with {'; '.join(parts) or 'the required columns'} "
            f"(row {row} has {shown}){other}{language}"
            + ("" if other else f"; export with {spec.how_to_export}"))  # how to export the wrong platform: no


# -- cells -------------------------------------------------------------------------------------------

def _cell_text(cell: object) -> str:
    if cell is None:
        return ""
    if isinstance(cell, float) and math.isnan(cell):
        return ""
    if isinstance(cell, dt.datetime):
        return cell.isoformat(sep=" ")
    return str(cell).strip()


def _value_text(cell: object) -> str:
    """A text cell, '' when it says none ("--")."""
    text = _cell_text(cell)
    return "" if text in NONE_MARKERS else text


def _cell(cells: Sequence[object], ref: ColumnRef | None) -> object:
    if ref is None or ref.index >= len(cells):
        return ""
    return cells[ref.index]


def id_text(cell: object, file: str, row: int) -> str:
    """An id cell as text: integers stay exact, '' for none. ImportFileError when Excel lost its digits."""
    if isinstance(cell, bool):
        return str(cell)
    if isinstance(cell, int):
        return str(cell)
    if isinstance(cell, float):
        if cell.is_integer() and abs(cell) < EXACT_FLOAT_INT:
            return str(int(cell))
        raise ImportFileError(f"{file} row {row}: the id {cell!r} is stored as a number and has lost digits; "
                              f"export the report again with ids as text (CSV), without saving it from Excel")
    text = _cell_text(cell)
    if text in NONE_MARKERS:
        return ""
    if EXCEL_MANGLED_ID.match(text):
        raise ImportFileError(f"{file} row {row}: the id {text!r} lost its digits (Excel shows long ids as "
                              f"1.2E+17 and saves them so); export the report again and import it without "
                              f"opening it in Excel")
    return text


def parse_number(cell: object, decimal_comma: bool = False, percent_ok: bool = True) -> float | None:
    """A localised number cell -> float; None for an empty or "--" cell; ValueError when unreadable.

    Accepts "1,234.56", "1.234,56" (when `decimal_comma`), "1 234,56", "$1,234", "US$ 12", "€12,50",
    "12.50 EUR", "(12.00)" and "-12" (negative), "12.5%" (-> 0.125, unless not `percent_ok`: a percentage
    in a count or amount column means shifted columns). Numbers typed in XLSX pass as they are.
    """
    if isinstance(cell, (int, float)) and not isinstance(cell, bool):
        value = float(cell)
        if math.isnan(value):
            return None
        if not math.isfinite(value):
            raise ValueError(f"{cell!r} is not a finite number")
        return value
    text = _cell_text(cell)
    if text in NONE_MARKERS:
        return None
    if PLAIN_NUMBER.match(text) and (not decimal_comma or "." not in text):  # the common case, fast
        return float(text)
    body, negative = text.replace("\u2212", "-"), False
    if body.startswith("(") and body.endswith(")"):
        body, negative = body[1:-1].strip(), True
    if body.startswith("-"):
        body, negative = body[1:].strip(), not negative
    percent = body.endswith("%")
    if percent and not percent_ok:
        raise ValueError(f"{text!r} is a percentage, not a count or an amount (are the export's columns shifted?)")
    body = body.rstrip("%").strip()
    body = CURRENCY_AFFIX.sub("", body, count=2).strip()
    if body.startswith("-") and not negative:  # "$-12" / "US$ -12"
        body, negative = body[1:].strip(), True
    body = body.translate(GROUPING_CHARS)
    pattern, group, mark = (COMMA_NUMBER, ".", ",") if decimal_comma else (POINT_NUMBER, ",", ".")
    if not body or body in (".", ",") or not pattern.match(body):
        raise ValueError(f"{text!r} is not a number")
    value = float(body.replace(group, "").replace(mark, "."))
    value = -value if negative else value
    return value / 100 if percent else value


def _number_body(cell: object) -> str:
    """The digits and separators of a text cell (signs, currency, spaces removed), for format evidence."""
    text = _cell_text(cell).replace("\u2212", "-").strip("()-% ")
    return CURRENCY_AFFIX.sub("", text, count=2).strip().lstrip("-").translate(GROUPING_CHARS)


def detect_decimal_comma(table: ExportTable, columns: Mapping[str, ColumnRef]) -> bool:
    """Whether the export writes decimals with a comma ("1.234,56"), from its own cells.

    Evidence for a decimal comma: "12,5", "0,25", "1.234,56", or a count written "1.234". Evidence
    for a decimal point: "12.5", "1,234.56", or a count written "1,234". "1,234" alone in a money
    column is ambiguous and votes for nothing. ImportFileError when both kinds appear.
    """
    comma: tuple[int, str] | None = None
    point: tuple[int, str] | None = None
    for field_name, ref in columns.items():
        if field_name not in SUMMED_FIELDS + PER_PERSON_FIELDS:
            continue
        is_count = field_name in COUNT_FIELDS
        for row, cells in table.rows:
            cell = _cell(cells, ref)
            if not isinstance(cell, str) or cell.isdigit():
                continue
            body = _number_body(cell)
            if comma is None and (COMMA_DECIMAL_EVIDENCE.match(body) or (is_count and COUNT_DOT_GROUPS.match(body))):
                comma = (row, cell)
            if point is None and (POINT_DECIMAL_EVIDENCE.match(body) or (is_count and COUNT_COMMA_GROUPS.match(body))):
                point = (row, cell)
        if comma and point:
            raise ImportFileError(
                f"{table.label}: numbers are written both with a decimal comma (row {comma[0]}: {comma[1]!r}) and "
                f"with a decimal point (row {point[0]}: {point[1]!r}); export the report again with one number format")
    return comma is not None


def parse_day(cell: object) -> dt.date | None:
    """A report's day cell -> date; None when it is not a date written unambiguously.

    ISO (a time part is dropped), "2026/03/01", and month names ("Mar 1, 2026", "1 March 2026",
    "Sun, Mar 1, 2026"). "03/01/2026" is None: day and month cannot be told apart.
    """
    if isinstance(cell, dt.datetime):
        return cell.date()
    if isinstance(cell, dt.date):
        return cell
    text = _cell_text(cell)
    iso = ISO_DAY.match(text)
    if iso:
        try:
            return dt.date(int(iso[1]), int(iso[2]), int(iso[3]))
        except ValueError:
            return None
    for fmt in WORDED_DAY_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


# -- rows ----------------------------------------------------------------------------------------------

def parse_rows(table: ExportTable, columns: Mapping[str, ColumnRef], spec: PlatformSpec, decimal_comma: bool,
               account: str | None = None, currency: str | None = None
               ) -> tuple[list[ExportRow], list[ImportIssue]]:
    """The export's data rows as ExportRow, and an issue for each row skipped or cell unreadable.

    Skipped: blank rows, totals rows (a "Total..." label, or no ad id and no ad name), rows with an
    ad name but no ad id, and (Meta's "Reporting starts"/"Reporting ends" without "Day") rows
    covering more than one day. `account` and `currency` fill in where the export says nothing.
    """
    file = table.label
    # one per line, so the printed count is the lines skipped (Google Ads writes two)
    issues = [ImportIssue("preamble_line", f"{file} row {row}: above the header, skipped", file, row)
              for row in range(1, table.header_row)]
    header_currency = next((r.currency for r in columns.values() if r.currency), None)
    day_ref = columns.get("date") or columns.get("reporting_starts")
    ends_ref = None if "date" in columns else columns.get("reporting_ends")
    out: list[ExportRow] = []
    for row, cells in table.rows:
        ad_id = id_text(_cell(cells, columns.get("ad_id")), file, row)
        ad_name = _value_text(_cell(cells, columns.get("ad_name")))
        if TOTAL_LABEL.match(ad_id):  # Google's "Total: Account" under an Ad ID first column
            issues.append(ImportIssue("totals_row", f"{file} row {row}: totals row {ad_id!r} skipped", file, row))
            continue
        if not ad_id:
            texts = [_cell_text(c) for c in cells]
            if not any(texts):
                issues.append(ImportIssue("blank_row", f"{file} row {row}: blank", file, row))
                continue
            label = next((t for t in texts if TOTAL_LABEL.match(t)), None)
            if label is not None or not ad_name:
                issues.append(ImportIssue("totals_row", f"{file} row {row}: totals row{' ' + repr(label) if label else ''} "
                                          f"skipped", file, row))
            else:
                issues.append(ImportIssue("missing_ad_id", f"{file} row {row}: ad {ad_name!r} has no Ad ID; "
                                          f"its row was skipped", file, row))
            continue
        day_cell = _cell(cells, day_ref)
        day = parse_day(day_cell)
        if ends_ref is not None and day is not None:
            ends = parse_day(_cell(cells, ends_ref))
            if ends is not None and ends != day:
                issues.append(ImportIssue("not_daily_row", f"{file} row {row}: ad {ad_id} covers {day} .. {ends}, "
                                          f"not one day; skipped", file, row, ad_id))
                continue
        if day is None:
            issues.append(ImportIssue("unparseable_date", f"{file} row {row}: ad {ad_id}: day "
                                      f"{_cell_text(day_cell)!r} is not a date written unambiguously", file, row, ad_id))
        metrics: dict[str, float | str | None] = {}
        for field_name in (*SUMMED_FIELDS, *PER_PERSON_FIELDS):
            if field_name not in columns:
                continue
            cell = _cell(cells, columns[field_name])
            try:
                metrics[field_name] = parse_number(cell, decimal_comma, percent_ok=False)
            except ValueError as err:
                metrics[field_name] = _cell_text(cell)
                issues.append(ImportIssue("unparseable_number", f"{file} row {row}: ad {ad_id}: "
                                          f"{columns[field_name].header} {err}", file, row, ad_id))
        out.append(ExportRow(
            file=file, row=row, ad_id=ad_id, ad_name=ad_name,
            account_id=(id_text(_cell(cells, columns.get("account_id")), file, row)
                        or _value_text(_cell(cells, columns.get("account_name"))) or account or ""),
            campaign_id=(id_text(_cell(cells, columns.get("campaign_id")), file, row)
                         or _value_text(_cell(cells, columns.get("campaign_name")))),
            currency=(_value_text(_cell(cells, columns.get("currency"))).upper() or header_currency
                      or (currency or "").strip().upper()),
            day=day, day_text=_cell_text(day_cell), metrics=metrics,
            text={f: _value_text(_cell(cells, columns[f])) for f in TEXT_FIELDS if f in columns},
        ))
    return out, issues


def sum_ad_days(rows: Iterable[ExportRow]) -> tuple[list[AdDay], list[ImportIssue]]:
    """One AdDay per (ad, day) of one file: additive metrics summed, per-person ones kept for single rows.

    A summed cell is the first unreadable text among its rows when there is one (so the ingest
    quarantines that day), else the sum. Blank cells count as 0 in ZERO_WHEN_BLANK_FIELDS; elsewhere
    (video views, likes) an ad-day whose cells are all blank stays blank.
    """
    groups: dict[tuple[str, str], list[ExportRow]] = {}
    for row in rows:
        groups.setdefault((row.ad_id, row.day_key), []).append(row)
    days: list[AdDay] = []
    issues: list[ImportIssue] = []
    for (ad_id, _), members in groups.items():
        first = members[0]
        metrics: dict[str, float | str | None] = {}
        for field_name in first.metrics:
            values = [m.metrics.get(field_name) for m in members]
            text = next((v for v in values if isinstance(v, str)), None)
            if field_name in PER_PERSON_FIELDS:
                metrics[field_name] = values[0] if len(values) == 1 else text
            elif text is None and field_name not in ZERO_WHEN_BLANK_FIELDS and all(v is None for v in values):
                metrics[field_name] = None
            else:
                metrics[field_name] = text if text is not None else float(sum(v or 0.0 for v in values))
        if len(members) > 1:
            issues.append(ImportIssue("rows_summed", f"{first.file} rows {', '.join(str(m.row) for m in members)}: "
                                      f"ad {ad_id} on {first.day_key}: {len(members)} rows added up",
                                      first.file, first.row, ad_id))
            if any(m.metrics.get(f) is not None for m in members for f in PER_PERSON_FIELDS):
                issues.append(ImportIssue("reach_not_additive", f"{first.file} row {first.row}: ad {ad_id} on "
                                          f"{first.day_key}: reach/frequency left empty ({len(members)} rows)",
                                          first.file, first.row, ad_id))
        days.append(AdDay(ad_id, first.day, first.day_text, metrics, first))
    return days, issues


def merge_files(per_file: Sequence[Sequence[AdDay]]) -> tuple[list[AdDay], list[ImportIssue]]:
    """Ad-days of several files of one platform; an ad-day already read from an earlier file is dropped."""
    kept: dict[tuple[str, str], AdDay] = {}
    issues: list[ImportIssue] = []
    for days in per_file:
        for day in days:
            key = (day.ad_id, day.first.day_key)
            if key in kept:
                earlier = kept[key].first
                issues.append(ImportIssue("duplicate_across_files", f"{day.first.file} row {day.first.row}: ad "
                                          f"{day.ad_id} on {key[1]} is also in {earlier.file} row {earlier.row}, "
                                          f"which was kept", day.first.file, day.first.row, day.ad_id))
            else:
                kept[key] = day
    return list(kept.values()), issues


def _delivered(day: AdDay) -> bool:
    return any(isinstance(v, str) or (v or 0) != 0 for f, v in day.metrics.items() if f in SUMMED_FIELDS)


def drop_never_delivered(days: Sequence[AdDay]) -> tuple[list[AdDay], list[ImportIssue]]:
    """Leave out the ads without delivery on any day (every readable cell 0 or empty): nothing ran, so
    there is no launch date and no outcome. An ad with an unreadable cell stays, for the ingest to quarantine."""
    delivered = {d.ad_id for d in days if _delivered(d)}
    issues, seen = [], set()
    for day in days:
        if day.ad_id not in delivered and day.ad_id not in seen:
            seen.add(day.ad_id)
            count = sum(d.ad_id == day.ad_id for d in days)
            issues.append(ImportIssue("no_delivery", f"{day.first.file} row {day.first.row}: ad {day.ad_id}"
                                      f"{' (' + repr(day.first.ad_name) + ')' if day.first.ad_name else ''}: "
                                      f"no delivery on its {count} day(s)", day.first.file, day.first.row, day.ad_id))
    return [d for d in days if d.ad_id in delivered], issues


def launch_dates(days: Iterable[AdDay]) -> dict[str, dt.date | str]:
    """ad id -> its first day with delivery (anything counted or spent); the first day it has otherwise.

    An ad whose days are all unreadable gets its first day's text: the ingest quarantines it.
    """
    by_ad: dict[str, list[AdDay]] = {}
    for day in days:
        by_ad.setdefault(day.ad_id, []).append(day)
    out: dict[str, dt.date | str] = {}
    for ad_id, ad_days in by_ad.items():
        dated = [d for d in ad_days if d.day is not None]
        delivered = [d.day for d in dated if _delivered(d)]
        if delivered:
            out[ad_id] = min(delivered)
        elif dated:
            out[ad_id] = min(d.day for d in dated)
        else:
            out[ad_id] = ad_days[0].day_text
    return out


def drop_before_launch(days: Iterable[AdDay], launch: Mapping[str, dt.date | str]
                       ) -> tuple[list[AdDay], list[ImportIssue]]:
    """Leave out the days (all without delivery, by construction) before each ad's launch date."""
    kept, issues = [], []
    for day in days:
        start = launch.get(day.ad_id)
        if isinstance(start, dt.date) and day.day is not None and day.day < start:
            issues.append(ImportIssue("no_delivery_before_launch", f"{day.first.file} row {day.first.row}: ad "
                                      f"{day.ad_id} on {day.day} had no delivery before its first on {start}",
                                      day.first.file, day.first.row, day.ad_id))
        else:
            kept.append(day)
    return kept, issues


def whole_conversions(days: Sequence[AdDay]) -> tuple[list[AdDay], list[ImportIssue]]:
    """Fractional conversions (Google's data-driven attribution) rounded as a running total per ad.

    Each day gets round(total so far) - round(total before it), so an ad's total moves by at most
    half a conversion and no day goes negative. Ads with a negative or unreadable conversions cell
    are left as they are (the ingest quarantines those days).
    """
    by_ad: dict[str, list[AdDay]] = {}
    for day in days:
        by_ad.setdefault(day.ad_id, []).append(day)
    out: list[AdDay] = []
    issues: list[ImportIssue] = []
    for ad_id, ad_days in by_ad.items():
        values = [d.metrics.get("conversions") for d in ad_days]
        fractional = any(isinstance(v, float) and not v.is_integer() for v in values)
        readable = all(v is None or (isinstance(v, float) and v >= 0) for v in values)
        if not (fractional and readable) or any(d.day is None for d in ad_days):
            out += ad_days
            continue
        running, rounded_before = 0.0, 0
        for day in sorted(ad_days, key=lambda d: d.day):
            running += day.metrics.get("conversions") or 0.0
            rounded = math.floor(running + 0.5)
            out.append(AdDay(day.ad_id, day.day, day.day_text,
                             {**day.metrics, "conversions": float(rounded - rounded_before)}, day.first))
            rounded_before = rounded
        issues.append(ImportIssue("fractional_conversions", f"ad {ad_id}: {running:g} conversions in the export, "
                                  f"{rounded_before} written", ad_days[0].first.file, ad_days[0].first.row, ad_id))
    return out, issues


# -- images --------------------------------------------------------------------------------------------

def _stem_key(name: str) -> str:
    return unicodedata.normalize("NFC", name).strip().casefold()


def image_suffixes() -> frozenset[str]:
    """File extensions Pillow reads as one of the contract's image formats (.jpg, .png, .webp, ...)."""
    return frozenset(ext for ext, fmt in Image.registered_extensions().items() if fmt in IMAGE_FORMATS)


def index_images(folder: Path, images: bool = True) -> dict[str, list[Path]]:
    """Normalised file stem -> the image files (relative to `folder`) with that stem, in and under it;
    with `images` False, the other files (a PDF or HEIC an ad's image was saved as)."""
    suffixes = image_suffixes()
    index: dict[str, list[Path]] = {}
    for path in sorted(folder.rglob("*")):
        if (path.suffix.lower() in suffixes) == images and path.is_file() and not path.name.startswith("."):
            index.setdefault(_stem_key(path.stem), []).append(path.relative_to(folder))
    return index


def match_image(ad_id: str, ad_name: str, index: Mapping[str, Sequence[Path]]) -> tuple[Path | None, list[Path]]:
    """(the image of an ad, []) by ad id, else by ad name (case-insensitive stem); (None, candidates) otherwise.

    Candidates are empty when nothing matched and several files when the match is ambiguous.
    """
    for key in (ad_id, ad_name):
        if not key:
            continue
        found = list(index.get(_stem_key(key), ()))
        if len(found) == 1:
            return found[0], []
        if found:
            return None, found
    return None, []


# -- the whole conversion --------------------------------------------------------------------------------

def convert_exports(paths: Sequence[str | os.PathLike], platform: str, images_dir: str | os.PathLike,
                    account: str | None = None, currency: str | None = None) -> ImportResult:
    """Read exports of one platform and build the landing tables (no file is written).

    images_dir: the folder searched for each ad's image (by ad id, then ad name). account and
    currency: used where the export has no account column / says no currency. ImportFileError for
    a whole-file problem, or when no ad has an image (nothing could be written).
    """
    spec = platform_spec(platform)
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise ImportFileError(f"images folder {images_dir} does not exist: pass --images DIR with the ads' images "
                              f"named by ad id or ad name")
    if not paths:
        raise ImportFileError("no export file given")
    issues: list[ImportIssue] = []
    summed: list[ImportIssue] = []  # said once the merge has chosen which file's ad-days are kept
    per_file: list[list[AdDay]] = []
    files: list[dict[str, object]] = []
    optional_seen: set[str] = set()
    text_seen: set[str] = set()
    for path in paths:
        table = read_export(path, spec)
        columns = match_columns(table.header, spec)
        missing = missing_fields(columns, spec)
        if missing:
            raise ImportFileError(missing_columns_message(table.label, table.header_row, table.header, spec))
        if not account and not ({"account_id", "account_name"} & set(columns)):
            raise ImportFileError(f"{table.label}: no account column ({', '.join(map(repr, spec.names_for('account_id')))}"
                                  f"); add it to the report or pass --account ID")
        decimal_comma = detect_decimal_comma(table, columns)
        rows, row_issues = parse_rows(table, columns, spec, decimal_comma, account, currency)
        issues += row_issues
        if not any(r.day is not None for r in rows) and any(i.reason == "not_daily_row" for i in row_issues):
            raise ImportFileError(f"{table.label}: every row covers several days; export with {spec.how_to_export}")
        if "revenue" not in columns:
            issues.append(ImportIssue("no_revenue_column", f"{table.label}: none of "
                                      f"{', '.join(map(repr, spec.names_for('revenue')))}", table.label))
        days, sum_issues = sum_ad_days(rows)
        summed += sum_issues
        per_file.append(days)
        optional_seen |= {f for f in OPTIONAL_METRIC_FIELDS if f in columns}
        text_seen |= {f for f in TEXT_FIELDS if f in columns}
        files.append({"file": table.label, "header_row": table.header_row, "data_rows": len(rows),
                      "decimal_comma": decimal_comma,
                      "columns": {f: r.header for f, r in columns.items()}})
    days, merge_issues = merge_files(per_file)
    kept_rows = {(d.first.file, d.first.row) for d in days}
    issues += [i for i in summed if (i.file, i.row) in kept_rows]
    days, never_issues = drop_never_delivered(days)
    issues += never_issues
    launch = launch_dates(days)
    days, early_issues = drop_before_launch(days, launch)
    days, rounding_issues = whole_conversions(days)
    issues += merge_issues + early_issues + rounding_issues

    file_order = {str(f["file"]): i for i, f in enumerate(files)}
    days = sorted(days, key=lambda d: (file_order[d.first.file], d.first.row))  # file order, as given
    ads = _ads_in_order(days)
    if not ads:
        raise ImportFileError(f"{', '.join(str(f['file']) for f in files)}: no ad rows under the header; export "
                              f"the report at ad level with {spec.how_to_export}")
    index, others = index_images(images_dir), index_images(images_dir, images=False)
    image_of: dict[str, str] = {}
    copies: dict[str, Path] = {}
    ads_of_image: dict[Path, list[str]] = {}
    days_of_ad = Counter(d.ad_id for d in days)
    for ad_id, first in ads.items():
        found, candidates = match_image(ad_id, first.ad_name, index)
        if found is None:
            reason = "ambiguous_image" if candidates else "no_image"
            named = f" ({first.ad_name!r})" if first.ad_name else ""
            what = (f"several images match: {', '.join(str(c) for c in candidates)}" if candidates else
                    f"no image named {ad_id}.*{' or ' + repr(first.ad_name) + '.*' if first.ad_name else ''} "
                    f"in {images_dir}")
            unreadable = [f for key in (ad_id, first.ad_name) if key for f in others.get(_stem_key(key), ())]
            if not candidates and unreadable:
                what += (f"; {', '.join(str(f) for f in unreadable)} is there but not an image format the pipeline "
                         f"reads ({', '.join(sorted(IMAGE_FORMATS))}): convert it and import again")
            issues.append(ImportIssue(reason, f"ad {ad_id}{named}, {days_of_ad[ad_id]} day(s): {what}", first.file,
                                      first.row, ad_id))
            continue
        landing_path = (Path(IMAGES_DIR) / found).as_posix()
        image_of[ad_id] = landing_path
        copies[landing_path] = images_dir / found
        ads_of_image.setdefault(found, []).append(ad_id)
    if not image_of:
        raise ImportFileError(f"none of the {len(ads)} ads has an image in {images_dir}: name each image by its ad id "
                              f"or ad name (e.g. {next(iter(ads), '1234567890')}.jpg) and import again")
    for found, ad_ids in ads_of_image.items():
        if len(ad_ids) > 1:
            first = ads[ad_ids[0]]
            issues.append(ImportIssue("shared_image", f"ads {', '.join(ad_ids)} (all named {first.ad_name!r}) were "
                                      f"written with the one image {found}", first.file, first.row, ad_ids[0]))
    issues += [ImportIssue("unused_image", f"{images_dir / path}: no ad has the id or name {path.stem!r}")
               for paths in index.values() for path in paths if path not in ads_of_image]

    creatives = _creatives_frame(ads, days, launch, image_of, spec, text_seen)
    if "currency" not in creatives.columns:
        issues.append(ImportIssue("no_currency", f"{', '.join(str(f['file']) for f in files)}: no currency column, "
                                  f"no currency in a money column's header, and no --currency"))
    metrics = _metrics_frame(days, image_of, optional_seen)
    summary = ImportSummary(platform=spec.name, files=files, ads_in_export=len(ads),
                            creatives_written=len(creatives), metric_rows_written=len(metrics), issues=issues)
    return ImportResult(creatives=creatives, daily_metrics=metrics, image_copies=copies, summary=summary)


def _ads_in_order(days: Iterable[AdDay]) -> dict[str, ExportRow]:
    """ad id -> the first row of its first day in `days` (the ad's name, account, campaign, currency, copy)."""
    first: dict[str, ExportRow] = {}
    for day in days:
        first.setdefault(day.ad_id, day.first)
    return first


def _first_non_empty(values: Iterable[str]) -> str:
    return next((v for v in values if v), "")


def _creatives_frame(ads: Mapping[str, ExportRow], days: Sequence[AdDay], launch: Mapping[str, dt.date | str],
                     image_of: Mapping[str, str], spec: PlatformSpec, text_fields: set[str]) -> pd.DataFrame:
    rows_of: dict[str, list[ExportRow]] = {}
    for day in days:  # in file order: the first non-empty account, campaign, copy and currency win
        rows_of.setdefault(day.ad_id, []).append(day.first)
    records = []
    for ad_id, first in ads.items():
        if ad_id not in image_of:
            continue
        rows = rows_of[ad_id]
        start = launch[ad_id]
        record = {
            "creative_id": ad_id,
            "account_id": _first_non_empty(r.account_id for r in rows),
            "campaign_id": _first_non_empty(r.campaign_id for r in rows) or "unknown",
            "launch_date": start.isoformat() if isinstance(start, dt.date) else start,
            "image_path": image_of[ad_id],
            "platform": spec.name,
            "ad_name": first.ad_name,
            **{f: _first_non_empty(r.text.get(f, "") for r in rows) for f in TEXT_FIELDS if f in text_fields},
            "currency": _first_non_empty(r.currency for r in rows),
        }
        records.append(record)
    columns = [*CREATIVES_REQUIRED, "platform", "ad_name", *[f for f in TEXT_FIELDS if f in text_fields], "currency"]
    frame = pd.DataFrame.from_records(records, columns=columns)
    if not frame["currency"].astype(bool).any():
        frame = frame.drop(columns="currency")
    if not frame["ad_name"].astype(bool).any():
        frame = frame.drop(columns="ad_name")
    return frame


def format_number(value: float | str | None) -> str:
    """A metric as the landing CSV holds it: whole numbers without '.0', others to 6 decimals, text as is."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return f"{value:.6f}".rstrip("0").rstrip(".")


def _metrics_frame(days: Sequence[AdDay], image_of: Mapping[str, str], optional: set[str]) -> pd.DataFrame:
    columns = [*METRICS_REQUIRED, *[f for f in (*METRICS_OPTIONAL, "video_2s_views") if f in optional]]
    records = []
    for day in sorted(days, key=lambda d: (d.ad_id, d.first.day_key)):
        if day.ad_id not in image_of:
            continue
        record = {"creative_id": day.ad_id, "date": day.first.day_key}
        for column in columns[2:]:
            value = day.metrics.get(column)
            record[column] = format_number(0.0 if value is None and column == "revenue" else value)
        records.append(record)
    return pd.DataFrame.from_records(records, columns=columns)


# -- writing -----------------------------------------------------------------------------------------------

def write_landing(result: ImportResult, out: str | os.PathLike, append: bool = False) -> Path:
    """Write creatives.csv, daily_metrics.csv, import_summary.json and the images into `out`.

    Existing CSVs of an earlier import are replaced (each file is written whole, then renamed), or with
    `append` kept and merged: an advertiser on several platforms imports each platform's export into one
    landing folder (an ad already there is replaced by this import's rows for it).
    ImportFileError when `out` holds a Parquet twin, which the ingest would refuse next to a CSV.
    """
    out = Path(out)
    for stem in (CREATIVES_FILE, DAILY_METRICS_FILE):
        twin = out / f"{stem}.parquet"
        if twin.exists():
            raise ImportFileError(f"{twin} exists: the landing folder would hold both {stem}.parquet and {stem}.csv; "
                                  f"import into an empty folder or remove it")
    out.mkdir(parents=True, exist_ok=True)
    for landing_path, source in result.image_copies.items():
        target = out / landing_path
        if target.exists() and target.resolve() == source.resolve():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    creatives, daily = result.creatives, result.daily_metrics
    summary = result.summary.as_dict()
    if append:
        daily, kept_days, replaced_days = _appended_days(out / f"{DAILY_METRICS_FILE}.csv", daily)
        creatives = _appended_creatives(out / f"{CREATIVES_FILE}.csv", creatives)
        if kept_days or replaced_days:
            # what happened to the ads this import shares with the folder's earlier imports (the summary's
            # issues, so the command prints them and import_summary.json keeps them)
            result.summary.issues.append(ImportIssue(
                "kept_on_append", f"{replaced_days} ad-day(s) already in {out.name} were replaced by this import's "
                f"rows for the same ad and day; {kept_days} earlier day(s) of the same ads were kept"))
        summary = result.summary.as_dict()
        earlier = _read_summary(out / SUMMARY_FILE)
        if earlier:
            summary["earlier_imports"] = [*earlier.pop("earlier_imports", []), earlier]
    write_text_atomically(out / f"{CREATIVES_FILE}.csv", creatives.to_csv(index=False, lineterminator="\n"))
    write_text_atomically(out / f"{DAILY_METRICS_FILE}.csv", daily.to_csv(index=False, lineterminator="\n"))
    write_text_atomically(out / SUMMARY_FILE, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return out


def _read_summary(path: Path) -> dict | None:
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def _read_text_csv(path: Path) -> pd.DataFrame | None:
    """An existing landing CSV as text (ids keep their zeros), None when there is none."""
    return pd.read_csv(path, dtype=str, keep_default_na=False) if path.exists() else None


def _appended_days(existing: Path, new: pd.DataFrame) -> tuple[pd.DataFrame, int, int]:
    """The folder's daily rows with this import's added: a re-exported (ad, day) is replaced by the new row, and
    the ad's other days stay (a weekly export appended to the history). Returns (rows, earlier days kept of the
    re-imported ads, ad-days replaced)."""
    old = _read_text_csv(existing)
    if old is None:
        return new, 0, 0
    new_keys = set(zip(new["creative_id"], new["date"], strict=True))
    replaced = pd.Series([k in new_keys for k in zip(old["creative_id"], old["date"], strict=True)],
                         index=old.index, dtype=bool)
    kept_of_same_ads = int((~replaced & old["creative_id"].isin(set(new["creative_id"]))).sum())
    rows = pd.concat([old[~replaced], new.astype(object)], ignore_index=True).fillna("")
    return rows, kept_of_same_ads, int(replaced.sum())


def _appended_creatives(existing: Path, new: pd.DataFrame) -> pd.DataFrame:
    """The folder's creatives with this import's added; an ad already there takes this import's row (names,
    copy, campaign as exported now) with the earlier of the two launch dates, since its earlier days stay."""
    old = _read_text_csv(existing)
    if old is None:
        return new
    new = new.astype(object).copy()
    earlier_launch = old.set_index("creative_id")["launch_date"]
    for i, (creative_id, launch) in enumerate(zip(new["creative_id"], new["launch_date"], strict=True)):
        before = earlier_launch.get(creative_id)
        if before and ISO_DAY.match(str(before)) and ISO_DAY.match(str(launch)) and before < launch:
            new.iloc[i, new.columns.get_loc("launch_date")] = before
    old = old[~old["creative_id"].isin(set(new["creative_id"]))]
    return pd.concat([old, new], ignore_index=True).fillna("")


