"""Ingest of creatives and daily metrics: types, file-level errors, and every row-level quarantine reason.

Each bad-input test starts from a small valid landing folder (3 creatives x 3 days), adds one
bad thing, and asserts the quarantine row (reason, key) and that every good row still lands.
"""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest
from landing_fixtures import small_landing_tables, write_landing

from creative_dag.landing import LandingFileError, ingest_landing_folder
from creative_dag.landing.quarantine import REASONS

TODAY = dt.date(2026, 4, 1)


@pytest.fixture()
def tables():
    return small_landing_tables()


def ingest(folder):
    return ingest_landing_folder(folder, today=TODAY)


def only_quarantine_row(result, source):
    rows = result.quarantine[result.quarantine["source"] == source]
    assert len(result.quarantine) == len(rows) == 1, result.quarantine[["source", "reason", "key", "detail"]]
    return rows.iloc[0]


def with_row(frame, **values):
    """frame plus one row: a copy of the first row with `values` replaced."""
    row = frame.iloc[[0]].copy()
    for k, v in values.items():
        row[k] = v
    return pd.concat([frame, row], ignore_index=True)


# --- happy path, types, formats -------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_valid_folder_lands_every_row_with_contract_types(tmp_path, tables, fmt):
    creatives, metrics = tables
    creatives.loc[0, "creative_id"] = "007"  # leading zeros must survive
    metrics.loc[metrics["creative_id"] == "cr_001", "creative_id"] = "007"
    result = ingest(write_landing(tmp_path, creatives, metrics, fmt=fmt))

    assert result.quarantine.empty
    assert len(result.creatives) == 3 and len(result.daily_metrics) == 9 and len(result.images) == 3
    assert result.creatives["creative_id"].tolist() == ["007", "cr_002", "cr_003"]
    assert result.creatives["launch_date"].tolist() == [dt.date(2026, 3, 1), dt.date(2026, 3, 2), dt.date(2026, 3, 3)]
    assert result.creatives["last_7d_ctr"].dtype == "float64"  # numeric export column inferred
    assert result.creatives["headline"].tolist() == ["Headline 0", "Headline 1", "Headline 2"]
    m = result.daily_metrics
    assert {c: str(m[c].dtype) for c in ("impressions", "clicks", "conversions")} == dict.fromkeys(
        ("impressions", "clicks", "conversions"), "int64")
    assert m["spend"].dtype == "float64" and m["spend"].sum() == pytest.approx(9 * 12.5)
    assert m["video_3s_views"].isna().all() and m["reach"].dtype == "float64"
    assert isinstance(m["date"].iloc[0], dt.date)
    assert (result.images["decode_status"] == "ok").all()
    assert [f["file"] for f in result.files_read] == [f"creatives.{fmt}", f"daily_metrics.{fmt}"]


def test_parquet_with_native_types_is_coerced(tmp_path, tables):
    creatives, metrics = tables
    creatives["launch_date"] = pd.to_datetime(creatives["launch_date"])
    for column in ("impressions", "clicks", "conversions"):
        metrics[column] = metrics[column].astype("int64")
    metrics["spend"] = metrics["spend"].astype("float64")
    metrics["date"] = pd.to_datetime(metrics["date"]).dt.date
    result = ingest(write_landing(tmp_path, creatives, metrics, fmt="parquet"))
    assert result.quarantine.empty
    assert result.creatives["launch_date"].iloc[0] == dt.date(2026, 3, 1)
    assert result.daily_metrics["clicks"].sum() == 3 * (20 + 21 + 22)


# --- whole-file errors (the only case that stops the run) -------------------------------------

def test_missing_required_column_names_the_file_and_column(tmp_path, tables):
    creatives, metrics = tables
    folder = write_landing(tmp_path, creatives.drop(columns=["launch_date"]), metrics)
    with pytest.raises(LandingFileError, match=r"creatives\.csv is missing required column\(s\) launch_date"):
        ingest(folder)


def test_missing_metric_column_suggests_the_near_match(tmp_path, tables):
    creatives, metrics = tables
    folder = write_landing(tmp_path, creatives, metrics.rename(columns={"impressions": "Impressions"}))
    with pytest.raises(LandingFileError, match="daily_metrics.csv is missing.*'Impressions' looks like 'impressions'"):
        ingest(folder)


def test_both_csv_and_parquet_is_an_error_naming_both(tmp_path, tables):
    creatives, metrics = tables
    write_landing(tmp_path, creatives, metrics)
    creatives.to_parquet(tmp_path / "creatives.parquet")
    with pytest.raises(LandingFileError, match=r"both .*creatives\.parquet and .*creatives\.csv exist"):
        ingest(tmp_path)


def test_no_input_file_names_folder_and_expected_names(tmp_path, tables):
    creatives, _ = tables
    creatives.to_csv(tmp_path / "creatives.csv", index=False)
    with pytest.raises(LandingFileError) as err:
        ingest(tmp_path)
    assert str(tmp_path) in str(err.value)
    assert "daily_metrics.parquet, daily_metrics.csv" in str(err.value)


def test_missing_landing_folder_says_how_to_point_at_one(tmp_path):
    with pytest.raises(LandingFileError, match="--landing DIR or CREATIVE_DAG_LANDING"):
        ingest(tmp_path / "nope")


# --- creatives: row-level quarantine ---------------------------------------------------------

def test_duplicate_creative_id_keeps_first_and_quarantines_copy(tmp_path, tables):
    creatives, metrics = tables
    creatives = with_row(creatives, headline="second copy")
    result = ingest(write_landing(tmp_path, creatives, metrics))
    row = only_quarantine_row(result, "creatives")
    assert (row["reason"], row["key"]) == ("duplicate_creative_id", "cr_001")
    assert "creatives.csv row 4" in row["detail"] and "row 1, which was kept" in row["detail"]
    assert json.loads(row["raw_value"])["headline"] == "second copy"
    kept = result.creatives.set_index("creative_id")
    assert len(kept) == 3 and kept.loc["cr_001", "headline"] == "Headline 0"
    assert len(result.daily_metrics) == 9


def test_missing_required_value_in_creatives(tmp_path, tables):
    creatives, metrics = tables
    creatives.loc[1, "account_id"] = ""
    result = ingest(write_landing(tmp_path, creatives, metrics))
    q = result.quarantine.set_index("source")
    assert (q.loc["creatives", "reason"], q.loc["creatives", "key"]) == ("missing_required_value", "cr_002")
    assert "account_id empty" in q.loc["creatives", "detail"]
    # its metrics are quarantined as belonging to a quarantined creative, not silently dropped
    metric_rows = result.quarantine[result.quarantine["source"] == "daily_metrics"]
    assert set(metric_rows["reason"]) == {"creative_quarantined"} and len(metric_rows) == 3
    assert sorted(result.creatives["creative_id"]) == ["cr_001", "cr_003"]
    assert len(result.daily_metrics) == 6


def test_missing_creative_id_has_no_key_and_names_the_row(tmp_path, tables):
    creatives, metrics = tables
    creatives = with_row(creatives, creative_id="  ")
    result = ingest(write_landing(tmp_path, creatives, metrics))
    row = only_quarantine_row(result, "creatives")
    assert row["reason"] == "missing_required_value" and pd.isna(row["key"])
    assert "creatives.csv row 4" in row["detail"]


def test_unparseable_launch_date(tmp_path, tables):
    creatives, metrics = tables
    creatives = with_row(creatives, creative_id="cr_009", launch_date="03/01/2026")
    result = ingest(write_landing(tmp_path, creatives, metrics))
    row = only_quarantine_row(result, "creatives")
    assert (row["reason"], row["key"]) == ("unparseable_date", "cr_009")
    assert "'03/01/2026'" in row["detail"] and "YYYY-MM-DD" in row["detail"]
    assert len(result.creatives) == 3


def test_future_launch_date(tmp_path, tables):
    creatives, metrics = tables
    creatives = with_row(creatives, creative_id="cr_009", launch_date="2026-04-02")
    result = ingest(write_landing(tmp_path, creatives, metrics))
    row = only_quarantine_row(result, "creatives")
    assert (row["reason"], row["key"]) == ("future_date", "cr_009")
    assert len(result.creatives) == 3


# --- daily metrics: row-level quarantine -----------------------------------------------------

@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_metrics_for_unknown_creative(tmp_path, tables, fmt):
    creatives, metrics = tables
    metrics = with_row(metrics, creative_id="cr_404")
    result = ingest(write_landing(tmp_path, creatives, metrics, fmt=fmt))
    row = only_quarantine_row(result, "daily_metrics")
    assert (row["reason"], row["key"]) == ("unknown_creative", "cr_404|2026-03-01")
    assert f"daily_metrics.{fmt} row 10" in row["detail"]
    assert len(result.daily_metrics) == 9


def test_duplicate_metric_row_keeps_first(tmp_path, tables):
    creatives, metrics = tables
    metrics = with_row(metrics, impressions="5000")
    result = ingest(write_landing(tmp_path, creatives, metrics))
    row = only_quarantine_row(result, "daily_metrics")
    assert (row["reason"], row["key"]) == ("duplicate_metric_row", "cr_001|2026-03-01")
    first = result.daily_metrics[(result.daily_metrics["creative_id"] == "cr_001")
                                 & (result.daily_metrics["date"] == dt.date(2026, 3, 1))]
    assert first["impressions"].tolist() == [1000]


def test_duplicate_metric_row_keeps_the_first_usable_copy(tmp_path, tables):
    creatives, metrics = tables
    metrics.loc[0, "clicks"] = "-3"  # first copy unusable; the corrected copy below is kept
    metrics = with_row(metrics, clicks="20")
    result = ingest(write_landing(tmp_path, creatives, metrics))
    row = only_quarantine_row(result, "daily_metrics")
    assert (row["reason"], row["key"]) == ("negative_value", "cr_001|2026-03-01")
    assert len(result.daily_metrics) == 9


@pytest.mark.parametrize("column", ["impressions", "spend"])
def test_missing_required_metric_value(tmp_path, tables, column):
    creatives, metrics = tables
    metrics.loc[4, column] = ""
    result = ingest(write_landing(tmp_path, creatives, metrics))
    row = only_quarantine_row(result, "daily_metrics")
    assert (row["reason"], row["key"]) == ("missing_required_value", "cr_002|2026-03-03")
    assert f"{column} empty" in row["detail"]
    assert len(result.daily_metrics) == 8


def test_unparseable_metric_date(tmp_path, tables):
    creatives, metrics = tables
    metrics.loc[2, "date"] = "2026-02-30"
    result = ingest(write_landing(tmp_path, creatives, metrics))
    row = only_quarantine_row(result, "daily_metrics")
    assert (row["reason"], row["key"]) == ("unparseable_date", "cr_001|2026-02-30")


def test_future_metric_date(tmp_path, tables):
    creatives, metrics = tables
    metrics = with_row(metrics, date="2026-04-05")
    result = ingest(write_landing(tmp_path, creatives, metrics))
    row = only_quarantine_row(result, "daily_metrics")
    assert (row["reason"], row["key"]) == ("future_date", "cr_001|2026-04-05")


def test_negative_value(tmp_path, tables):
    creatives, metrics = tables
    metrics.loc[3, "spend"] = "-1.5"
    result = ingest(write_landing(tmp_path, creatives, metrics))
    row = only_quarantine_row(result, "daily_metrics")
    assert (row["reason"], row["key"]) == ("negative_value", "cr_002|2026-03-02")
    assert "spend '-1.5' is negative" in row["detail"]


def test_clicks_exceed_impressions(tmp_path, tables):
    creatives, metrics = tables
    metrics.loc[5, "clicks"] = "5000"
    result = ingest(write_landing(tmp_path, creatives, metrics))
    row = only_quarantine_row(result, "daily_metrics")
    assert (row["reason"], row["key"]) == ("clicks_exceed_impressions", "cr_002|2026-03-04")
    assert "clicks 5000 > impressions 1020" in row["detail"]


def test_conversions_exceed_clicks_is_accepted(tmp_path, tables):
    """View-through and multi-purchase attribution give more conversions than clicks: real data."""
    creatives, metrics = tables
    metrics.loc[6, "conversions"] = "50"
    metrics.loc[7, ["clicks", "conversions"]] = ["0", "3"]
    result = ingest(write_landing(tmp_path, creatives, metrics))
    assert result.quarantine.empty
    assert len(result.daily_metrics) == 9
    landed = result.daily_metrics.set_index(["creative_id", result.daily_metrics["date"].astype(str)])
    assert landed.loc[("cr_003", "2026-03-03"), "conversions"] == 50
    assert landed.loc[("cr_003", "2026-03-04"), ["clicks", "conversions"]].tolist() == [0, 3]


@pytest.mark.parametrize("value", ["1,200", "n/a", "inf", "12 EUR"])
def test_non_numeric_metric(tmp_path, tables, value):
    creatives, metrics = tables
    metrics.loc[1, "impressions"] = value
    result = ingest(write_landing(tmp_path, creatives, metrics))
    row = only_quarantine_row(result, "daily_metrics")
    assert (row["reason"], row["key"]) == ("non_numeric_metric", "cr_001|2026-03-02")
    assert json.loads(row["raw_value"])["impressions"] == value


def test_non_numeric_optional_metric_is_quarantined_but_empty_is_fine(tmp_path, tables):
    creatives, metrics = tables
    metrics.loc[1, "likes"] = "many"
    metrics.loc[2, "reach"] = ""
    result = ingest(write_landing(tmp_path, creatives, metrics))
    row = only_quarantine_row(result, "daily_metrics")
    assert row["reason"] == "non_numeric_metric" and "likes 'many'" in row["detail"]
    assert result.daily_metrics["reach"].isna().sum() == 1


def test_fractional_count_is_non_integer(tmp_path, tables):
    creatives, metrics = tables
    metrics.loc[0, "clicks"] = "20.5"
    metrics.loc[1, "clicks"] = "21.0"  # a whole number written as float is fine
    result = ingest(write_landing(tmp_path, creatives, metrics))
    row = only_quarantine_row(result, "daily_metrics")
    assert (row["reason"], row["key"]) == ("non_integer_count", "cr_001|2026-03-01")
    assert 21 in result.daily_metrics["clicks"].tolist()


def test_metric_before_launch(tmp_path, tables):
    creatives, metrics = tables
    metrics = with_row(metrics, creative_id="cr_003", date="2026-03-02")  # cr_003 launches 2026-03-03
    result = ingest(write_landing(tmp_path, creatives, metrics))
    row = only_quarantine_row(result, "daily_metrics")
    assert (row["reason"], row["key"]) == ("metric_before_launch", "cr_003|2026-03-02")
    assert "2026-03-03" in row["detail"]


def test_every_quarantine_detail_says_what_to_do(tmp_path, tables):
    creatives, metrics = tables
    metrics.loc[0, "spend"] = "-1"
    creatives = with_row(creatives, creative_id="cr_009", launch_date="soon")
    result = ingest(write_landing(tmp_path, creatives, metrics))
    assert len(result.quarantine) == 2
    for detail, reason in zip(result.quarantine["detail"], result.quarantine["reason"]):
        assert detail.endswith(f"To fix: {REASONS[reason]}.")


def test_extra_text_column_keeps_leading_zeros(tmp_path, tables):
    creatives, metrics = tables
    creatives["zip"] = ["02139", "10001", "94105"]
    result = ingest(write_landing(tmp_path, creatives, metrics))
    assert result.creatives["zip"].tolist() == ["02139", "10001", "94105"]


def test_non_utf8_csv_is_a_file_error_saying_how_to_fix(tmp_path, tables):
    creatives, metrics = tables
    write_landing(tmp_path, creatives, metrics)
    (tmp_path / "creatives.csv").write_bytes("creative_id,headline\ncr_1,Caf\xe9\n".encode("latin-1"))
    with pytest.raises(LandingFileError, match="creatives.csv is not UTF-8.*save it as UTF-8"):
        ingest(tmp_path)


def test_every_quarantine_reason_is_documented():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "input-contract.md").read_text()
    undocumented = [reason for reason in REASONS if f"`{reason}`" not in doc]
    assert undocumented == []
