"""Catalogue of imperfect exports: one row per way a careless exporter can break a landing folder.

Each case starts from the small valid export (3 creatives x 3 days, `small_landing_tables`),
changes one thing, ingests it with `ingest_landing_folder`, and checks the promise of the input
contract: nothing crashes and nothing disappears silently. For every case that is not a whole-file
error:

* the expected quarantine reason appears exactly `n` times, and no other reason appears except the
  cascade `creative_quarantined` (metrics of a quarantined creative) or those the case lists;
* every input row is accounted for: landed + quarantined == rows in the export, per file;
* every creative (and metric row) the case did not touch is landed;
* every landed creative has one raw.images row, and every failed image one quarantine row.

A whole-file case expects `LandingFileError` (or, for the landing registry, `RegistryError`) with
a one-line message naming the file, raised without a chained pandas/pyarrow exception so that the
CLI, which prints the innermost exception, shows the project's own message.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import signal
import stat
import unicodedata
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from landing_fixtures import small_landing_tables, write_landing
from PIL import Image
from png_bytes import png_header_only

from creative_dag.contract import REGISTRY_FILE
from creative_dag.features.registry import RegistryError, load_registry
from creative_dag.landing import LandingFileError, ingest_landing_folder
from creative_dag.landing.quarantine import REASONS

TODAY = dt.date(2026, 4, 1)
CASCADE = "creative_quarantined"


# --- the harness ---------------------------------------------------------------------------------

@dataclass
class Export:
    """The export a case builds: tables to write, then file edits (`post`) on the written folder."""

    creatives: pd.DataFrame
    metrics: pd.DataFrame
    fmt: str = "csv"
    post: list[Callable[[Path], None]] = field(default_factory=list)
    untouched: set[str] | None = None  # creatives the case leaves intact (default: rows equal to the fixture's)
    damaged_metrics: set[tuple[str, str]] = field(default_factory=set)  # (creative_id, date) a text edit breaks


@dataclass(frozen=True)
class Quarantined:
    reason: str
    n: int | None = 1  # rows with this reason; None = at least one
    also: tuple[str, ...] = ()  # other reasons this case may produce besides the cascade


@dataclass(frozen=True)
class FileError:
    pattern: str
    file: str = "creatives"


@dataclass(frozen=True)
class RegistryFails:
    pattern: str


OK = Quarantined("", n=0)


@contextmanager
def deadline(seconds: int):
    """Fail instead of hanging (a FIFO opened for reading blocks forever)."""
    def expired(*_):
        raise TimeoutError(f"case took more than {seconds}s (blocked on a FIFO or device?)")
    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def build(tmp_path: Path, make: Callable[[Export], None]) -> tuple[Path, Export]:
    creatives, metrics = small_landing_tables()
    export = Export(creatives.copy(), metrics.copy())
    make(export)
    folder = write_landing(tmp_path / "landing", export.creatives, export.metrics, fmt=export.fmt)
    for edit in export.post:
        edit(folder)
    return folder, export


def untouched_ids(export: Export) -> set[str]:
    if export.untouched is not None:
        return export.untouched
    original, _ = small_landing_tables()
    text = lambda frame: frame.astype(str).to_dict("records")
    return {row["creative_id"] for row in text(original) if row in text(export.creatives)}


def good_metric_days(export: Export, intact: set[str]) -> set[tuple[str, str]]:
    """(creative_id, date) of metric rows equal to the fixture's, of intact creatives, not damaged by an edit."""
    _, original = small_landing_tables()
    written = export.metrics.astype(str).to_dict("records")
    return {(row["creative_id"], row["date"]) for row in original.astype(str).to_dict("records")
            if row in written and row["creative_id"] in intact} - export.damaged_metrics


def check_accounting(result, export: Export, expected: Quarantined) -> None:
    q = result.quarantine
    by_reason = q["reason"].value_counts().to_dict()
    if expected.reason:
        count = by_reason.get(expected.reason, 0)
        assert count >= 1 if expected.n is None else count == expected.n, q[["source", "key", "reason", "detail"]]
    allowed = {expected.reason, CASCADE, *expected.also} - {""}
    assert set(by_reason) <= allowed, q[["source", "key", "reason", "detail"]]
    assert set(q["reason"]) <= set(REASONS)
    for detail, reason in zip(q["detail"], q["reason"]):
        assert detail.endswith(f"To fix: {REASONS[reason]}."), detail

    sources = q["source"].value_counts().to_dict()
    assert len(result.creatives) + sources.get("creatives", 0) == len(export.creatives), "creatives lost silently"
    assert len(result.daily_metrics) + sources.get("daily_metrics", 0) == len(export.metrics), "metrics lost silently"

    intact = untouched_ids(export)
    assert intact <= set(result.creatives["creative_id"]), f"good creatives {intact} were not all kept"
    landed_days = set(zip(result.daily_metrics["creative_id"], result.daily_metrics["date"].astype(str)))
    missing = good_metric_days(export, intact) - landed_days
    assert not missing, f"good metric rows were not kept: {sorted(missing)}"

    assert len(result.images) == len(result.creatives)
    failed = int((result.images["decode_status"] != "ok").sum())
    assert failed == sources.get("images", 0)


def run_case(tmp_path: Path, make: Callable[[Export], None], expected) -> object:
    folder, export = build(tmp_path, make)
    with deadline(20):
        if isinstance(expected, FileError):
            with pytest.raises(LandingFileError) as err:
                ingest_landing_folder(folder, today=TODAY)
            check_own_message(err.value, expected.pattern, expected.file)
            return None
        result = ingest_landing_folder(folder, today=TODAY)
        if isinstance(expected, RegistryFails):
            check_accounting(result, export, OK)
            with pytest.raises(RegistryError) as err:
                load_registry(folder)
            check_own_message(err.value, expected.pattern, REGISTRY_FILE)
            return result
    check_accounting(result, export, expected)
    return result


def check_own_message(error: Exception, pattern: str, file: str) -> None:
    message = str(error)
    assert "\n" not in message, message
    assert file in message, message
    assert re.search(pattern, message), message
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__), (
        "the project's message must be the innermost exception")


# --- builders ------------------------------------------------------------------------------------

def cell(table: str, row: int, column: str, value) -> Callable[[Export], None]:
    def make(ex: Export) -> None:
        frame = ex.creatives if table == "c" else ex.metrics
        frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
    return make


def edit_text(stem: str, change: Callable[[str], str], untouched: set[str] | None = None,
              damaged: set[tuple[str, str]] = frozenset()):
    def make(ex: Export) -> None:
        ex.damaged_metrics |= set(damaged)
        def edit(folder: Path) -> None:
            path = folder / f"{stem}.csv"
            text = change(path.read_bytes().decode("utf-8"))
            path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
        ex.post.append(edit)
        if untouched is not None:
            ex.untouched = untouched
    return make


def edit_file(name: str, create: Callable[[Path], None]):
    """Replace the written `name` by whatever `create(path)` makes (a FIFO, a folder)."""
    def make(ex: Export) -> None:
        def edit(folder: Path) -> None:
            (folder / name).unlink()
            create(folder / name)
        ex.post.append(edit)
    return make


def replace_image(content: Callable[[Path], None], image_path: str = "images/cr_002.jpg"):
    """cr_002 points at `image_path`, whose file `content(path)` creates after the export is written."""
    def make(ex: Export) -> None:
        ex.creatives.loc[1, "image_path"] = image_path
        ex.untouched = {"cr_001", "cr_002", "cr_003"}  # a bad image never costs the creative its row

        def edit(folder: Path) -> None:
            path = folder / image_path
            if os.path.lexists(path):
                path.unlink()
            path.parent.mkdir(parents=True, exist_ok=True)
            content(path)
        ex.post.append(edit)
    return make


def image_bytes(data: bytes | Callable[[], bytes], image_path: str = "images/cr_002.jpg"):
    return replace_image(lambda p: p.write_bytes(data() if callable(data) else data), image_path)


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def photo(size=(64, 48), mode="RGB", colour=(200, 40, 40)) -> Image.Image:
    return Image.new(mode, size, colour if mode != "I;16" else 40000)


def exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(photo((80, 40)), "JPEG", exif=exif.tobytes())


def animated_gif() -> bytes:
    frames = [photo((40, 40), "RGB", (i * 60, 0, 0)) for i in range(3)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def fifo(path: Path) -> None:
    os.mkfifo(path)


def device(path: Path) -> None:
    try:
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # a /dev/null twin
    except (PermissionError, OSError) as err:
        pytest.skip(f"cannot create a device file here ({err})")


def sparse_gib(path: Path) -> None:
    with open(path, "wb") as handle:
        handle.truncate(1 << 30)  # 1 GiB that takes no disk and must never be read


def symlink_outside(path: Path) -> None:
    secret = path.parents[2] / "secret.jpg"
    Image.new("RGB", (64, 64)).save(secret)
    path.symlink_to(secret)


def registry(content: bytes | str | Callable[[Path], None]):
    def make(ex: Export) -> None:
        def edit(folder: Path) -> None:
            path = folder / REGISTRY_FILE
            if callable(content):
                content(path)
            else:
                path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        ex.post.append(edit)
    return make


def registry_link_outside(path: Path) -> None:
    outside = path.parent.parent / "registry_elsewhere.json"
    outside.write_text(json.dumps({"columns": {"headline": {"stage": "prelaunch"}}}))
    path.symlink_to(outside)


def parquet(change: Callable[[Export], None] = lambda ex: None):
    def make(ex: Export) -> None:
        ex.fmt = "parquet"
        change(ex)
    return make


def typed_parquet(ex: Export) -> None:
    ex.creatives["creative_id"] = ex.creatives["creative_id"].astype("category")
    ex.creatives["last_7d_ctr"] = ex.creatives["last_7d_ctr"].astype(float)
    ex.metrics["impressions"] = ex.metrics["impressions"].astype(float)
    ex.metrics["clicks"] = ex.metrics["clicks"].astype("int32")
    ex.metrics["date"] = pd.to_datetime(ex.metrics["date"]).dt.tz_localize("Europe/Paris")


def year_one_launch(ex: Export) -> None:
    ex.creatives["launch_date"] = [dt.date(1, 1, 1), dt.date(2026, 3, 2), dt.date(2026, 3, 3)]


def year_9999_timestamps(ex: Export) -> None:
    dates = [d if i != 4 else "9999-12-31" for i, d in enumerate(ex.metrics["date"])]
    ex.metrics["date"] = pd.Series(pd.to_datetime(dates, format="%Y-%m-%d")).astype("datetime64[us]")


def uint64_max(ex: Export) -> None:
    values = [1000] * len(ex.metrics)
    values[2] = 2 ** 64 - 1
    ex.metrics["impressions"] = np.array(values, dtype=np.uint64)


def nested_extra(ex: Export) -> None:
    ex.creatives["targeting"] = [{"age": [18, 34], "geo": "FR"}, None, {"age": [25, 54], "geo": "DE"}]


def nested_launch(ex: Export) -> None:
    ex.creatives["launch_date"] = [["2026-03-01"], ["2026-03-02"], ["2026-03-03"]]


def id_as_index(ex: Export) -> None:
    frame = ex.creatives.set_index("creative_id")  # write_landing drops the index: write it ourselves
    ex.post.append(lambda folder: frame.to_parquet(folder / "creatives.parquet"))


def int_ids(ex: Export) -> None:
    ex.creatives["creative_id"] = [1, 2, 3]
    ex.metrics["creative_id"] = ex.metrics["creative_id"].map({"cr_001": 1, "cr_002": 2, "cr_003": 3})


def corrupt_parquet(ex: Export) -> None:
    ex.fmt = "parquet"
    ex.post.append(lambda folder: (folder / "daily_metrics.parquet").write_bytes(b"PAR1 not really parquet PAR1"))


def duplicate_parquet_columns(ex: Export) -> None:
    ex.fmt = "parquet"

    def edit(folder: Path) -> None:
        table = pq.read_table(folder / "daily_metrics.parquet")
        doubled = pa.Table.from_arrays([*table.columns, table.column("clicks")], names=[*table.column_names, "Clicks"])
        pq.write_table(doubled, folder / "daily_metrics.parquet")
    ex.post.append(edit)


def header_only(stem: str):
    def make(ex: Export) -> None:
        if stem in ("creatives", "both"):
            ex.creatives = ex.creatives.iloc[0:0]
        if stem in ("daily_metrics", "both"):
            ex.metrics = ex.metrics.iloc[0:0]
    return make


def all_creatives_bad(ex: Export) -> None:
    ex.creatives["launch_date"] = "0001-01-01"


def all_metrics_bad(ex: Export) -> None:
    ex.metrics["impressions"] = "lots"


def blank_lines_between(text: str) -> str:
    lines = text.splitlines(keepends=True)
    return "".join(lines[:2] + ["\n", "   \n", ",,,,\n"] + lines[2:])


def stray_quote_closed_later(ex: Export) -> None:
    ex.creatives.loc[1, "headline"] = "Buy now, save 20%"  # quoted by the writer: its quote ends the stray one
    edit_text("creatives", lambda t: t.replace("Headline 0", '"Headline 0', 1), untouched={"cr_003"})(ex)


def nfd_file_name(ex: Export) -> None:
    nfc = unicodedata.normalize("NFC", "images/café.jpg")
    ex.creatives.loc[1, "image_path"] = nfc

    def edit(folder: Path) -> None:
        (folder / nfc).rename(folder / unicodedata.normalize("NFD", nfc))
    ex.post.append(edit)


def case_mismatch(ex: Export) -> None:
    ex.untouched = {"cr_001", "cr_002", "cr_003"}
    ex.post.append(lambda folder: (folder / "images" / "cr_002.jpg").rename(folder / "images" / "CR_002.JPG"))


def same_bytes_for_two(ex: Export) -> None:
    ex.creatives.loc[2, "image_path"] = "images/cr_001.jpg"


# --- the catalogue -------------------------------------------------------------------------------

TEN_MB_LATER = "x" * 40_000  # over the 32,767-character cell limit

CASES: list[tuple[str, Callable[[Export], None], object]] = [
    # dates out of pandas' range or absurd
    ("launch_date_year_1", cell("c", 0, "launch_date", "0001-01-01"), Quarantined("date_out_of_range")),
    ("launch_date_year_9999", cell("c", 1, "launch_date", "9999-12-31"), Quarantined("date_out_of_range")),
    ("launch_date_1700", cell("c", 2, "launch_date", "1700-01-01"), Quarantined("date_out_of_range")),
    ("launch_date_1999_12_31", cell("c", 0, "launch_date", "1999-12-31"), Quarantined("date_out_of_range")),
    ("launch_date_2000_01_01_is_fine", cell("c", 0, "launch_date", "2000-01-01"), OK),
    ("metric_date_year_1", cell("m", 3, "date", "0001-01-01"), Quarantined("date_out_of_range")),
    ("metric_date_year_9999", cell("m", 4, "date", "9999-12-31"), Quarantined("date_out_of_range")),
    ("metric_date_2150", cell("m", 5, "date", "2150-06-01"), Quarantined("date_out_of_range")),
    ("parquet_launch_date_year_1", parquet(year_one_launch), Quarantined("date_out_of_range")),
    ("parquet_timestamp_us_year_9999", parquet(year_9999_timestamps), Quarantined("date_out_of_range")),
    ("excel_serial_date", cell("c", 0, "launch_date", "46082"), Quarantined("unparseable_date")),
    ("us_style_date", cell("m", 0, "date", "03/01/2026"), Quarantined("unparseable_date")),
    ("iso_date_with_utc_offset", cell("c", 0, "launch_date", "2026-03-01T09:30:00+02:00"), OK),
    ("iso_date_with_time", cell("m", 0, "date", "2026-03-01 00:00:00"), OK),
    # empty exports: a valid, empty ingest
    ("creatives_header_only", header_only("creatives"), Quarantined("unknown_creative", n=9)),
    ("metrics_header_only", header_only("daily_metrics"), OK),
    ("both_header_only", header_only("both"), OK),
    ("parquet_zero_rows", parquet(header_only("both")), OK),
    ("every_creative_bad", all_creatives_bad, Quarantined("date_out_of_range", n=3)),
    ("every_metric_bad", all_metrics_bad, Quarantined("non_numeric_metric", n=9)),
    # numbers beyond int64 / float64
    ("count_beyond_int64", cell("m", 0, "impressions", "99999999999999999999"), Quarantined("value_out_of_range")),
    ("negative_beyond_int64", cell("m", 1, "clicks", "-99999999999999999999"), Quarantined("value_out_of_range")),
    ("huge_float_spend", cell("m", 2, "spend", "1e300"), Quarantined("value_out_of_range")),
    ("float_overflow_1e400", cell("m", 3, "revenue", "1e400"), Quarantined("value_out_of_range")),
    ("optional_metric_beyond_int64", cell("m", 4, "reach", "123456789012345678901234"),
     Quarantined("value_out_of_range")),
    ("inf_literal", cell("m", 5, "spend", "inf"), Quarantined("non_numeric_metric")),
    ("parquet_uint64_max", parquet(uint64_max), Quarantined("value_out_of_range")),
    # null markers and whitespace
    ("NULL_creative_id", cell("c", 1, "creative_id", "NULL"),
     Quarantined("missing_required_value", also=("unknown_creative",))),
    ("nan_launch_date", cell("c", 2, "launch_date", "nan"), Quarantined("missing_required_value")),
    ("NaN_required_metric", cell("m", 6, "impressions", "NaN"), Quarantined("missing_required_value")),
    ("NULL_optional_metric_is_empty", cell("m", 7, "reach", "NULL"), OK),
    ("n/a_metric_is_not_a_number", cell("m", 8, "clicks", "n/a"), Quarantined("non_numeric_metric")),
    ("empty_image_path", cell("c", 1, "image_path", ""), Quarantined("missing_required_value")),
    ("whitespace_around_ids", edit_text("daily_metrics", lambda t: t.replace("cr_002,", "  cr_002 ,")), OK),
    ("whitespace_around_numbers", cell("m", 0, "impressions", " 1000 "), OK),
    # CSV structure
    ("unterminated_quote_swallows_rows",
     edit_text("creatives", lambda t: t.replace("Headline 1", '"Headline 1', 1), untouched={"cr_001"}),
     Quarantined("malformed_csv_row", n=2)),
    ("unterminated_quote_in_last_column",
     edit_text("creatives", lambda t: t.replace(",0.020", ',"0.020', 1), untouched={"cr_001"}),
     Quarantined("malformed_csv_row", n=2)),
    ("unterminated_quote_in_metrics",
     edit_text("daily_metrics", lambda t: t.replace("cr_003,2026-03-04,", 'cr_003,"2026-03-04,', 1),
               damaged={("cr_003", "2026-03-04"), ("cr_003", "2026-03-05")}),
     Quarantined("malformed_csv_row", n=2)),
    ("stray_quote_closed_by_a_later_quote", stray_quote_closed_later, Quarantined("malformed_csv_row", n=2)),
    ("too_many_fields", edit_text("creatives", lambda t: t.replace("Headline 2", "Headline, 2"),
                                  untouched={"cr_001", "cr_002"}), Quarantined("malformed_csv_row")),
    ("too_few_fields", edit_text("creatives", lambda t: t.replace("meta,Headline 0", "metaHeadline 0"),
                                 untouched={"cr_002", "cr_003"}), Quarantined("malformed_csv_row")),
    ("thousands_separator_unquoted",
     edit_text("daily_metrics", lambda t: t.replace("cr_002,2026-03-03,1010", "cr_002,2026-03-03,1,010"),
               damaged={("cr_002", "2026-03-03")}), Quarantined("malformed_csv_row")),
    ("trailing_empty_rows", edit_text("creatives", lambda t: t + ",,,,,,,\n\n  \n"), OK),
    ("blank_lines_between_rows", edit_text("daily_metrics", blank_lines_between), OK),
    ("crlf_line_endings", edit_text("creatives", lambda t: t.replace("\n", "\r\n")), OK),
    ("cr_only_line_endings", edit_text("daily_metrics", lambda t: t.replace("\n", "\r")), OK),
    ("utf8_bom", edit_text("creatives", lambda t: "\ufeff" + t), OK),
    ("bom_and_crlf_metrics", edit_text("daily_metrics", lambda t: "\ufeff" + t.replace("\n", "\r\n")), OK),
    ("trailing_delimiter_on_every_line",
     edit_text("creatives", lambda t: "".join(line.rstrip("\n") + ",\n" for line in t.splitlines(keepends=True))), OK),
    ("extra_empty_fields_on_one_row", edit_text("creatives", lambda t: t.replace("0.030\n", "0.030,,,\n")), OK),
    ("header_with_trailing_delimiter_only",
     edit_text("daily_metrics", lambda t: t.replace("likes\n", "likes,\n", 1)), OK),
    ("multiline_quoted_headline", cell("c", 1, "headline", "Buy now,\nsave 20%, today, only, here"), OK),
    ("excel_sep_comma_line", edit_text("creatives", lambda t: "sep=,\n" + t), OK),
    ("leading_blank_lines", edit_text("daily_metrics", lambda t: "\n\n" + t), OK),
    ("column_name_with_spaces", edit_text("creatives", lambda t: t.replace("creative_id", " creative_id ", 1)), OK),
    ("unnamed_column_with_data", edit_text("creatives", lambda t: t.replace("platform,", ",", 1)), OK),
    ("long_headline_cell", cell("c", 1, "headline", TEN_MB_LATER), Quarantined("cell_too_long")),
    ("long_cell_in_unknown_column",
     lambda ex: ex.metrics.__setitem__("note", ["" if i != 2 else TEN_MB_LATER for i in range(len(ex.metrics))]),
     Quarantined("cell_too_long")),
    # whole-file errors
    ("semicolon_delimited", edit_text("creatives", lambda t: t.replace(",", ";")), FileError("semicolon-delimited")),
    ("tab_delimited", edit_text("daily_metrics", lambda t: t.replace(",", "\t")),
     FileError("tab-delimited", "daily_metrics")),
    ("excel_sep_semicolon_line", edit_text("creatives", lambda t: "sep=;\n" + t.replace(",", ";")),
     FileError("semicolon-delimited")),
    ("xlsx_saved_as_csv", edit_text("creatives", lambda t: b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 64),
     FileError("zip archive.*xlsx")),
    ("utf16_export", edit_text("creatives", lambda t: t.encode("utf-16")), FileError("UTF-16")),
    ("latin1_export", edit_text("creatives", lambda t: t.replace("Headline 1", "Café").encode("latin-1")),
     FileError(r"not UTF-8 .*line 3")),
    ("zero_byte_csv", edit_text("daily_metrics", lambda t: ""), FileError("is empty", "daily_metrics")),
    ("duplicate_column_name", edit_text("daily_metrics", lambda t: t.replace("likes", "impressions", 1)),
     FileError("duplicate column name.*impressions", "daily_metrics")),
    ("duplicate_column_name_by_case", edit_text("creatives", lambda t: t.replace("headline", "Platform", 1)),
     FileError("duplicate column name.*Platform")),
    ("mixed_case_required_column", edit_text("creatives", lambda t: t.replace("creative_id", "Creative_ID", 1)),
     FileError("missing required column.*'Creative_ID' looks like 'creative_id'")),
    ("creatives_csv_is_a_fifo", edit_file("creatives.csv", os.mkfifo), FileError("not a regular file")),
    ("metrics_csv_is_a_folder", edit_file("daily_metrics.csv", os.mkdir),
     FileError("not a regular file", "daily_metrics")),
    ("corrupt_parquet", corrupt_parquet, FileError("cannot be read as Parquet", "daily_metrics")),
    ("parquet_duplicate_columns_by_case", duplicate_parquet_columns,
     FileError("duplicate column name", "daily_metrics")),
    ("parquet_nested_contract_column", parquet(nested_launch), FileError("launch_date.*nested")),
    # Parquet with odd types
    ("parquet_typed_columns", parquet(typed_parquet), OK),
    ("parquet_nested_extra_column", parquet(nested_extra), OK),
    ("parquet_creative_id_as_index", parquet(id_as_index), OK),
    ("parquet_integer_ids", parquet(int_ids), OK),
    ("parquet_text_count_with_garbage", parquet(cell("m", 2, "impressions", "lots")),
     Quarantined("non_numeric_metric")),
    # images that must never be read whole, hang, or reach Ghostscript
    ("image_is_a_fifo", replace_image(fifo), Quarantined("image_not_a_file")),
    ("image_is_a_device_file", replace_image(device), Quarantined("image_not_a_file")),
    ("image_is_a_directory", replace_image(lambda p: p.mkdir()), Quarantined("image_not_a_file")),
    ("image_is_1_gib", replace_image(sparse_gib), Quarantined("image_file_too_large")),
    ("eps_image", image_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\nshowpage\n", "images/ad.eps"),
     Quarantined("image_format_not_allowed")),
    ("eps_named_jpg", image_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\nshowpage\n"),
     Quarantined("image_format_not_allowed")),
    ("pdf_image", image_bytes(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", "images/ad.pdf"),
     Quarantined("image_format_not_allowed")),
    ("psd_image", image_bytes(b"8BPS\x00\x01" + b"\x00" * 20, "images/ad.psd"), Quarantined("image_format_not_allowed")),
    ("ico_image", image_bytes(lambda: encode(photo((32, 32)), "ICO"), "images/ad.ico"),
     Quarantined("image_format_not_allowed")),
    ("heic_image", image_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 32, "images/ad.heic"),
     Quarantined("image_format_not_allowed")),
    ("svg_image", image_bytes(b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"/>', "images/ad.svg"),
     Quarantined("image_format_not_allowed")),
    # degenerate sizes
    ("image_1x20000", image_bytes(lambda: encode(Image.new("L", (1, 20_000)), "PNG"), "images/strip.png"),
     Quarantined("degenerate_image_size")),
    ("image_20000x1", image_bytes(lambda: encode(Image.new("L", (20_000, 1)), "PNG"), "images/strip.png"),
     Quarantined("degenerate_image_size")),
    ("image_1x1_tracking_pixel", image_bytes(lambda: encode(Image.new("RGB", (1, 1)), "GIF"), "images/px.gif"),
     Quarantined("degenerate_image_size")),
    ("image_aspect_21_to_1", image_bytes(lambda: encode(photo((420, 20)), "PNG"), "images/wide.png"),
     Quarantined("degenerate_image_size")),
    ("iab_micro_bar_88x31_is_fine", image_bytes(lambda: encode(photo((88, 31)), "PNG"), "images/micro.png"), OK),
    ("iab_970x90_banner_is_fine", image_bytes(lambda: encode(photo((970, 90)), "JPEG"), "images/banner.jpg"), OK),
    # broken images (already handled; kept)
    ("zero_byte_image", image_bytes(b""), Quarantined("empty_image_file")),
    ("truncated_jpeg", image_bytes(lambda: encode(Image.effect_noise((128, 128), 60).convert("RGB"), "JPEG")[:900]),
     Quarantined("truncated_image")),
    ("decompression_bomb_png", image_bytes(png_header_only(8_000, 8_000), "images/bomb.png"),
     Quarantined("decompression_bomb")),
    ("text_file_named_jpg", image_bytes(b"creative_id,oops this is a csv\n"), Quarantined("unreadable_image")),
    ("symlink_out_of_landing", replace_image(symlink_outside), Quarantined("image_path_escapes_landing")),
    ("path_differs_only_by_case", case_mismatch, Quarantined("missing_image_file")),
    # odd but valid images and paths
    ("png_with_alpha", image_bytes(lambda: encode(photo((40, 30), "RGBA", (1, 2, 3, 90)), "PNG"), "images/a.png"), OK),
    ("cmyk_jpeg", image_bytes(lambda: encode(photo((40, 30), "CMYK", (0, 128, 255, 10)), "JPEG")), OK),
    ("png_16_bit", image_bytes(lambda: encode(photo((40, 30), "I;16"), "PNG"), "images/deep.png"), OK),
    ("animated_gif", image_bytes(animated_gif, "images/anim.gif"), OK),
    ("exif_rotated_jpeg", image_bytes(exif_rotated), OK),
    ("webp_image", image_bytes(lambda: encode(photo(), "WEBP"), "images/a.webp"), OK),
    ("tiff_image", image_bytes(lambda: encode(photo(), "TIFF"), "images/a.tiff"), OK),
    ("bmp_image", image_bytes(lambda: encode(photo(), "BMP"), "images/a.bmp"), OK),
    ("uppercase_JPG_extension", cell("c", 1, "image_path", "images/CR_002.JPG"), OK),
    ("path_with_spaces_and_unicode", cell("c", 1, "image_path", "images/mon annonce été №2.jpg"), OK),
    ("nfd_file_name_on_disk", nfd_file_name, OK),
    ("same_bytes_for_two_creatives", same_bytes_for_two, OK),
    # a landing feature_registry.json
    ("registry_relabels_creative_id", registry('{"columns": {"creative_id": {"stage": "prelaunch"}}}'),
     RegistryFails("relabels a contract column")),
    ("registry_relabels_launch_date", registry('{"columns": {"launch_date": "lifecycle"}}'),
     RegistryFails("launch_date.*relabels")),
    ("registry_relabels_a_metric", registry('{"columns": {"impressions": {"stage": "prelaunch"}}}'),
     RegistryFails("relabels a contract column")),
    ("registry_claims_id_stage", registry('{"columns": {"lifetime_roas": {"stage": "id"}}}'),
     RegistryFails("reserved")),
    ("registry_not_utf8", registry('{"columns": {"titre": {"stage": "prelaunch", "description": "ré"}}}'
                                   .encode("latin-1")), RegistryFails("not UTF-8")),
    ("registry_deeply_nested", registry("[" * 100_000 + "]" * 100_000), RegistryFails("nested too deeply|JSON object")),
    ("registry_is_a_list", registry('[{"column": "headline", "stage": "prelaunch"}]'), RegistryFails("JSON object")),
    ("registry_description_is_an_object",
     registry('{"columns": {"tier": {"stage": "prelaunch", "description": {"en": "tier"}}}}'),
     RegistryFails("must be text")),
    ("registry_unknown_entry_key", registry('{"columns": {"tier": {"stage": "prelaunch", "stgae": "early"}}}'),
     RegistryFails("unknown key")),
    ("registry_duplicate_key", registry('{"columns": {"tier": "prelaunch", "tier": "lifecycle"}}'),
     RegistryFails("more than once")),
    ("registry_symlink_outside", registry(registry_link_outside), RegistryFails("outside the landing folder")),
    ("registry_is_a_fifo", registry(lambda p: os.mkfifo(p)), RegistryFails("not a regular file")),
    ("registry_invalid_json", registry('{"columns": {"tier": "prelaunch",}}'), RegistryFails("not valid JSON")),
]


@pytest.mark.parametrize("make, expected", [pytest.param(m, e, id=i) for i, m, e in CASES])
def test_bad_input_catalogue(tmp_path, make, expected):
    run_case(tmp_path, make, expected)


def test_catalogue_is_large_and_names_are_unique():
    names = [name for name, _, _ in CASES]
    assert len(names) == len(set(names)) and len(names) >= 60


# --- properties that need more than the generic checks -------------------------------------------

def test_empty_ingest_keeps_contract_columns_and_dtypes(tmp_path):
    creatives, metrics = small_landing_tables()
    full = ingest_landing_folder(write_landing(tmp_path / "full", creatives, metrics), today=TODAY)
    empty = ingest_landing_folder(write_landing(tmp_path / "empty", creatives.iloc[0:0], metrics.iloc[0:0]),
                                  today=TODAY)
    for name in ("creatives", "daily_metrics", "images", "quarantine"):
        got, want = getattr(empty, name), getattr(full, name)
        assert len(got) == 0 and list(got.columns) == list(want.columns), name
        dtypes = {c: (str(want[c].dtype), str(got[c].dtype)) for c in want.columns}
        differ = {c: d for c, d in dtypes.items() if d[0] != d[1]}
        # Only an un-contracted column is typed by inference, which needs values: empty -> text.
        assert differ == ({"last_7d_ctr": ("float64", "str")} if name == "creatives" else {}), (name, differ)


def test_all_bad_creatives_keep_their_quarantine_rows(tmp_path):
    creatives, metrics = small_landing_tables()
    creatives["launch_date"] = "9999-12-31"
    result = ingest_landing_folder(write_landing(tmp_path, creatives, metrics), today=TODAY)
    assert result.creatives.empty and result.daily_metrics.empty
    assert result.quarantined_by_reason("creatives") == {"date_out_of_range": 3}
    assert result.quarantined_by_reason("daily_metrics") == {"creative_quarantined": 9}
    assert "9999-12-31" in result.quarantine["detail"].iloc[0] and "2000-01-01" in result.quarantine["detail"].iloc[0]


def test_count_beyond_int64_is_never_stored_wrapped(tmp_path):
    creatives, metrics = small_landing_tables()
    metrics.loc[0, "impressions"] = "99999999999999999999"
    result = ingest_landing_folder(write_landing(tmp_path, creatives, metrics), today=TODAY)
    assert (result.daily_metrics[["impressions", "clicks", "conversions"]] >= 0).all().all()
    row = result.quarantine.iloc[0]
    assert (row["reason"], row["key"]) == ("value_out_of_range", "cr_001|2026-03-01")
    assert json.loads(row["raw_value"])["impressions"] == "99999999999999999999"


def test_malformed_lines_are_named_and_later_rows_keep_their_numbers(tmp_path):
    creatives, metrics = small_landing_tables()
    metrics.loc[8, "spend"] = "-1"  # row 9, after the malformed one
    folder = write_landing(tmp_path, creatives, metrics)
    path = folder / "daily_metrics.csv"
    path.write_text(path.read_text().replace("cr_002,2026-03-03,1010", "cr_002,2026-03-03,1,010"))
    result = ingest_landing_folder(folder, today=TODAY)
    malformed = result.quarantine[result.quarantine["reason"] == "malformed_csv_row"].iloc[0]
    assert malformed["key"] == "cr_002|2026-03-03"
    assert malformed["detail"].startswith("daily_metrics.csv line 6: 12 fields where the header has 11")
    assert json.loads(malformed["raw_value"]) == {"line": 6, "text": "cr_002,2026-03-03,1,010,21,12.50,2,40.0,801,1.25,,1"}
    negative = result.quarantine[result.quarantine["reason"] == "negative_value"].iloc[0]
    assert negative["detail"].startswith("daily_metrics.csv row 9 ")


def test_swallowed_lines_name_the_opening_quote(tmp_path):
    creatives, metrics = small_landing_tables()
    folder = write_landing(tmp_path, creatives, metrics)
    path = folder / "creatives.csv"
    path.write_text(path.read_text().replace("Headline 1", '"Headline 1', 1))
    result = ingest_landing_folder(folder, today=TODAY)
    rows = result.quarantine[result.quarantine["source"] == "creatives"]
    assert rows["key"].tolist() == ["cr_002", "cr_003"]
    expected = 'lines 3-4 were read as one row: a stray double quote (") on line 3 leaves a quoted cell open'
    assert all(expected in detail for detail in rows["detail"]), rows["detail"].tolist()
    assert result.quarantined_by_reason("daily_metrics") == {"creative_quarantined": 6}


def test_huge_cell_is_not_copied_into_quarantine(tmp_path):
    creatives, metrics = small_landing_tables()
    creatives.loc[1, "headline"] = "y" * 2_000_000
    result = ingest_landing_folder(write_landing(tmp_path, creatives, metrics), today=TODAY)
    row = result.quarantine[result.quarantine["source"] == "creatives"].iloc[0]
    assert row["reason"] == "cell_too_long" and "headline has 2,000,000 characters" in row["detail"]
    assert len(row["raw_value"]) < 5_000 and len(row["detail"]) < 1_000


def test_leakage_sniff_memory_is_bounded_by_long_text(tmp_path):
    """A 20 MB headline used to be copied per fold and target (100 MB -> 23 GB); now once."""
    import resource

    from creative_dag.features.leakage_sniff import sniff_leakage
    from creative_dag.features.registry import load_shipped_registry

    n = 120
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"creative_id": [f"c{i}" for i in range(n)],
                          "headline": [f"h{i % 7}" for i in range(n)], "platform": ["meta"] * n})
    table.loc[0, "headline"] = "x" * 20_000_000
    outcomes = pd.DataFrame({"creative_id": table["creative_id"], "ctr": rng.random(n), "roas": rng.random(n)})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    findings = sniff_leakage(table, load_shipped_registry(), outcomes)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 300, f"peak memory grew by {grown_mb:.0f} MB"
    assert findings["explanation"].str.len().max() < 2_000


def test_eps_never_reaches_ghostscript(tmp_path, monkeypatch):
    from PIL import EpsImagePlugin

    def forbidden(*args, **kwargs):
        raise AssertionError("Ghostscript was called")
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", forbidden)
    result = run_case(tmp_path, image_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\nshowpage\n"),
                      Quarantined("image_format_not_allowed"))
    assert "EPS" in result.quarantine["detail"].iloc[0]


def test_huge_image_is_rejected_from_its_size_without_reading(tmp_path):
    result = run_case(tmp_path, replace_image(sparse_gib), Quarantined("image_file_too_large"))
    detail = result.quarantine["detail"].iloc[0]
    assert "1,073,741,824 bytes" in detail and "50,000,000" in detail
    assert pd.isna(result.images.set_index("creative_id").loc["cr_002", "byte_size"])  # never read
