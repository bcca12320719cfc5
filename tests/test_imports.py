"""`creative-dag import`: platform report exports -> a landing folder the real ingest accepts.

Fixtures under tests/fixtures/exports/ are written by hand from the platforms' report columns:
a Meta Ads Manager export with a "Day" breakdown (USD, "1,234.56", "--", a totals row), a Meta
export with only "Reporting starts"/"Reporting ends" (EUR, semicolons and decimal commas), and a
Google Ads report with its two preamble lines and "Total: ..." rows. The TikTok XLSX and every
image are written by the tests themselves.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from creative_dag.imports.command import import_export
from creative_dag.imports.convert import (
    ImportFileError,
    convert_exports,
    parse_day,
    parse_number,
    write_landing,
)
from creative_dag.landing import ingest_landing_folder

EXPORTS = Path(__file__).parent / "fixtures" / "exports"
META_USD = EXPORTS / "meta_ads_day_usd.csv"
META_EUR = EXPORTS / "meta_ads_reporting_eur.csv"
GOOGLE = EXPORTS / "google_ads_ad_report.csv"
TODAY = dt.date(2026, 4, 1)


def write_images(folder: Path, *names: str) -> Path:
    """Small PNG/JPEG files (64 x 64, a distinct colour each) named as given (sub-folders made)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 64), (40 * i % 256, 90, 200)).save(folder / name)
    return folder


@pytest.fixture()
def meta_images(tmp_path):
    # by ad id, by ad name in another letter case, by id in a sub-folder; ad ...004 has none
    return write_images(tmp_path / "creatives_export", "120210000000000001.png", "video hook.JPG",
                        "120210000000000005.png", "Herbst Kampagne.png", "sub/120210000000000003.png")


def by_day(metrics: pd.DataFrame, creative_id: str) -> pd.DataFrame:
    return metrics[metrics["creative_id"] == creative_id].set_index("date")


# -- cells ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("cell", "decimal_comma", "expected"), [
    ("1,234.56", False, 1234.56), ("1.234,56", True, 1234.56), ("1 234,56", True, 1234.56),
    ("$1,234", False, 1234.0), ("US$ 12", False, 12.0), ("€12,50", True, 12.5), ("12.50 EUR", False, 12.5),
    ("£18.40", False, 18.4), ("(12.00)", False, -12.0), ("-3", False, -3.0), ("12.5%", False, 0.125),
    ("--", False, None), ("", False, None), (" ", True, None), (7, False, 7.0), (2.5, True, 2.5),
])
def test_parse_number_reads_localised_cells(cell, decimal_comma, expected):
    assert parse_number(cell, decimal_comma) == expected


@pytest.mark.parametrize("cell", ["n/a", "1,23.4", "12 apples", "inf", True])
def test_parse_number_refuses_what_is_not_a_number(cell):
    with pytest.raises(ValueError, match="is not a number"):
        parse_number(cell)


def test_parse_day_accepts_unambiguous_dates_only():
    assert parse_day("2026-03-01") == parse_day("2026-03-01 00:00:00") == dt.date(2026, 3, 1)
    assert parse_day("Mar 1, 2026") == parse_day("1 March 2026") == dt.date(2026, 3, 1)
    assert parse_day(dt.datetime(2026, 3, 1, 0, 0)) == dt.date(2026, 3, 1)
    assert parse_day("03/01/2026") is None and parse_day("2026-02-30") is None


# -- Meta -----------------------------------------------------------------------------------------------

def test_meta_exports_become_contract_tables(meta_images):
    result = convert_exports([META_USD, META_EUR], "meta", meta_images)
    creatives, metrics = result.creatives, result.daily_metrics

    assert creatives["creative_id"].tolist() == ["120210000000000001", "120210000000000002", "120210000000000003",
                                                 "120210000000000005", "120220000000000001"]
    c = creatives.set_index("creative_id")
    assert c.loc["120210000000000001", "image_path"] == "images/120210000000000001.png"
    assert c.loc["120210000000000002", "image_path"] == "images/video hook.JPG"  # matched by ad name
    assert c.loc["120210000000000003", "image_path"] == "images/sub/120210000000000003.png"
    assert c.loc["120210000000000001", "campaign_id"] == "2385000000000001"
    assert c.loc["120220000000000001", "campaign_id"] == "unknown"  # the EUR export has no campaign column
    assert c["account_id"].tolist() == ["1111"] * 4 + ["2222"]
    assert c["currency"].tolist() == ["USD"] * 4 + ["EUR"]  # from "Amount spent (USD)" / "(EUR)"
    assert set(c["platform"]) == {"meta"}
    # launch = first day with delivery: ad 2 spent 3.10 on 03-02 with zero impressions
    assert c.loc["120210000000000002", "launch_date"] == "2026-03-02"

    ad1 = by_day(metrics, "120210000000000001")
    assert ad1.loc["2026-03-02", ["clicks", "conversions"]].tolist() == ["4", "9"]  # conversions > clicks kept
    assert ad1.loc["2026-03-03", ["spend", "impressions", "revenue"]].tolist() == ["1234.56", "45000", "2450"]
    ad2 = by_day(metrics, "120210000000000002")
    assert list(ad2.index) == ["2026-03-02", "2026-03-03"]  # 03-01 had no delivery at all
    assert ad2.loc["2026-03-02", ["spend", "impressions"]].tolist() == ["3.1", "0"]
    assert ad2.loc["2026-03-03", ["conversions", "revenue", "video_3s_views"]].tolist() == ["0", "0", "410"]
    assert ad1["video_3s_views"].tolist() == ["", "", ""]  # an image ad: no video plays, not zero
    ad3 = by_day(metrics, "120210000000000003")
    assert list(ad3.index) == ["2026-03-01", "2026-03-02", "2026-03-05", "2026-03-06"]  # stops and restarts
    assert ad3.loc["2026-03-05", ["spend", "impressions", "clicks", "reach"]].tolist() == ["10", "800", "10", ""]
    eur = by_day(metrics, "120220000000000001")
    assert eur.loc["2026-03-02", ["spend", "impressions", "revenue", "frequency"]].tolist() == [
        "1020", "2500", "129", "1.2"]
    assert "120210000000000004" not in set(metrics["creative_id"])

    counts = result.summary.counts()
    assert counts == {"totals_row": 2, "no_image": 1, "rows_summed": 1, "reach_not_additive": 1,
                      "no_delivery_before_launch": 1}
    no_image = next(i for i in result.summary.issues if i.reason == "no_image")
    assert no_image.ad_id == "120210000000000004"
    assert "'No Picture Yet'" in no_image.detail and "no image named 120210000000000004.*" in no_image.detail
    assert [f["decimal_comma"] for f in result.summary.files] == [False, True]


def test_imported_meta_folder_goes_through_the_real_ingest(tmp_path, meta_images):
    """Real-data semantics land; only the impossible row is quarantined, by the ingest itself."""
    landing = write_landing(convert_exports([META_USD, META_EUR], "meta", meta_images), tmp_path / "landing")
    assert (landing / "images" / "sub" / "120210000000000003.png").is_file()
    assert json.loads((landing / "import_summary.json").read_text())["creatives_written"] == 5

    ingested = ingest_landing_folder(landing, today=TODAY)

    assert ingested.quarantined_by_reason() == {"clicks_exceed_impressions": 1}
    assert ingested.quarantine["key"].tolist() == ["120210000000000005|2026-03-01"]
    assert len(ingested.creatives) == 5 and len(ingested.images) == 5
    assert (ingested.images["decode_status"] == "ok").all()
    assert len(ingested.daily_metrics) == 12
    m = ingested.daily_metrics.assign(day=ingested.daily_metrics["date"].astype(str)).set_index(["creative_id", "day"])
    assert m.loc[("120210000000000001", "2026-03-02"), ["clicks", "conversions"]].tolist() == [4, 9]
    assert m.loc[("120210000000000002", "2026-03-02"), ["impressions", "spend"]].tolist() == [0, 3.1]
    assert pd.isna(m.loc[("120210000000000003", "2026-03-05"), "reach"])
    c = ingested.creatives.set_index("creative_id")
    assert c.loc["120220000000000001", "currency"] == "EUR" and c.loc["120210000000000001", "currency"] == "USD"


# -- Google Ads -----------------------------------------------------------------------------------------

def test_google_report_with_preamble_totals_and_two_currencies(tmp_path):
    images = write_images(tmp_path / "img", "700000000001.png", "700000000002.PNG")
    result = convert_exports([GOOGLE], "google", images)
    c = result.creatives.set_index("creative_id")
    assert c["account_id"].tolist() == ["123-456-7890", "987-654-3210"]
    assert c["currency"].tolist() == ["USD", "GBP"]
    assert c["campaign_id"].tolist() == ["Coffee - Search", "Tea - UK"]  # no Campaign ID: the name
    assert c.loc["700000000001", ["headline", "primary_text"]].tolist() == ["Fresh coffee daily", "Roasted this morning"]
    assert "ad_name" not in c.columns  # Google's ad report has no ad name

    coffee = by_day(result.daily_metrics, "700000000001")
    # data-driven attribution's 3.0, 2.5, 0.5 conversions: the running total is rounded (6 in all)
    assert coffee["conversions"].tolist() == ["3", "3", "0"]
    assert coffee["impressions"].tolist() == ["1200", "1100", "980"]
    tea = by_day(result.daily_metrics, "700000000002")
    assert tea.loc["2026-03-02", ["spend", "conversions", "revenue"]].tolist() == ["18.4", "0", "0"]  # "--"
    assert tea.loc["2026-03-03", "revenue"] == "64"
    assert result.summary.counts() == {"preamble_line": 2, "totals_row": 2, "fractional_conversions": 1}

    ingested = ingest_landing_folder(write_landing(result, tmp_path / "landing"), today=TODAY)
    assert ingested.quarantine.empty
    assert int(ingested.daily_metrics["conversions"].sum()) == 8


def test_google_excel_csv_in_utf16_with_tabs_reads_the_same(tmp_path):
    """Google Ads' "Excel CSV" download is UTF-16 and tab-separated."""
    import csv

    rows = list(csv.reader(GOOGLE.read_text(encoding="utf-8").splitlines()))
    export = tmp_path / "Ad report.csv"
    export.write_text("\r\n".join("\t".join(r) for r in rows) + "\r\n", encoding="utf-16")
    images = write_images(tmp_path / "img", "700000000001.png", "700000000002.png")
    utf16 = convert_exports([export], "google", images)
    pd.testing.assert_frame_equal(utf16.daily_metrics, convert_exports([GOOGLE], "google", images).daily_metrics)


# -- TikTok (XLSX) ---------------------------------------------------------------------------------------

def write_tiktok_xlsx(path: Path) -> Path:
    """A TikTok Ads Manager ad-level report as XLSX: typed cells, ids as text, a totals row."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Ad report"
    sheet.append(["Ad name", "Ad ID", "Campaign name", "Ad group name", "Date", "Cost", "Impressions", "Clicks",
                  "Conversions", "2-second video views", "Reach", "Frequency", "Ad text"])
    sheet.append(["TT Dance Clip", "1790000000000000001", "TT Spring", "Gen Z", dt.datetime(2026, 3, 1),
                  20.5, 5000, 60, 4, 1500, 4200, 1.19, "Dance with us"])
    sheet.append(["TT Dance Clip", "1790000000000000001", "TT Spring", "Gen Z", dt.datetime(2026, 3, 2),
                  22.0, 5200, 65, 170, 1600, 4300, 1.21, "Dance with us"])
    sheet.append(["TT Unboxing", "1790000000000000002", "TT Spring", "Gen Z", dt.datetime(2026, 3, 2),
                  "1,010.25", 9000, 90, 5, "--", 7000, 1.29, "Unbox it"])
    sheet.append(["Total", None, None, None, None, 1052.75, 19200, 215, 179, 3100, None, None, None])
    book.save(path)
    return path


def test_tiktok_xlsx_keeps_two_second_views_apart(tmp_path):
    export = write_tiktok_xlsx(tmp_path / "tiktok.xlsx")
    images = write_images(tmp_path / "img", "TT Dance Clip.jpg", "1790000000000000002.png")
    result = convert_exports([export], "tiktok", images, account="7000111", currency="eur")

    c = result.creatives.set_index("creative_id")
    assert c["account_id"].tolist() == ["7000111", "7000111"] and c["currency"].tolist() == ["EUR", "EUR"]
    assert c["campaign_id"].tolist() == ["TT Spring", "TT Spring"]
    assert c.loc["1790000000000000001", ["image_path", "primary_text"]].tolist() == [
        "images/TT Dance Clip.jpg", "Dance with us"]
    m = result.daily_metrics
    assert "video_2s_views" in m.columns and "video_3s_views" not in m.columns
    dance = by_day(m, "1790000000000000001")
    assert dance.loc["2026-03-02", ["clicks", "conversions", "video_2s_views"]].tolist() == ["65", "170", "1600"]
    # "--" in a view count: not applicable (an image ad), so empty rather than 0
    assert by_day(m, "1790000000000000002").loc["2026-03-02", ["spend", "video_2s_views"]].tolist() == ["1010.25", ""]
    assert set(m["revenue"]) == {"0"}
    assert result.summary.counts() == {"totals_row": 1, "no_revenue_column": 1}

    ingested = ingest_landing_folder(write_landing(result, tmp_path / "landing"), today=TODAY)
    assert ingested.quarantine.empty and len(ingested.daily_metrics) == 3
    assert ingested.daily_metrics["video_2s_views"].tolist()[:2] == [1500.0, 1600.0]
    assert pd.isna(ingested.daily_metrics["video_2s_views"].iloc[2])


def test_overlapping_exports_keep_each_ad_day_once(tmp_path, meta_images):
    once = convert_exports([META_USD], "meta", meta_images)
    twice = convert_exports([META_USD, META_USD], "meta", meta_images)
    pd.testing.assert_frame_equal(once.daily_metrics, twice.daily_metrics)
    duplicates = [i for i in twice.summary.issues if i.reason == "duplicate_across_files"]
    assert len(duplicates) == 13 and "which was kept" in duplicates[0].detail


def test_two_images_for_one_ad_leave_it_out_by_name(tmp_path):
    images = write_images(tmp_path / "img", "700000000001.png", "700000000001.jpg", "700000000002.png")
    result = convert_exports([GOOGLE], "google", images)
    assert result.creatives["creative_id"].tolist() == ["700000000002"]
    issue = next(i for i in result.summary.issues if i.reason == "ambiguous_image")
    assert issue.ad_id == "700000000001" and "700000000001.jpg, 700000000001.png" in issue.detail


def test_conversions_above_clicks_pass_the_feature_suites(tmp_path):
    """A lifetime and early CVR above 1 (view-through, several purchases per click) is not a failed check."""
    from creative_dag.checks.features import early_suite_result, outcomes_suite_result
    from creative_dag.features.build import build_early, build_outcomes
    from creative_dag.features.registry import load_shipped_registry

    images = write_images(tmp_path / "img", "TT Dance Clip.jpg", "1790000000000000002.png")
    result = convert_exports([write_tiktok_xlsx(tmp_path / "tiktok.xlsx")], "tiktok", images, account="7000111")
    ingested = ingest_landing_folder(write_landing(result, tmp_path / "landing"), today=TODAY)
    registry = load_shipped_registry()

    outcomes = build_outcomes(ingested.creatives, ingested.daily_metrics)
    assert outcomes.set_index("creative_id").loc["1790000000000000001", "cvr"] == pytest.approx(174 / 125)
    assert outcomes_suite_result(outcomes).passed
    early, _ = build_early(ingested.creatives, ingested.daily_metrics, registry, n_days=1)
    assert early.set_index("creative_id").loc["1790000000000000001", "early_cvr"] == pytest.approx(4 / 60)
    early2, _ = build_early(ingested.creatives, ingested.daily_metrics, registry, n_days=2)
    assert early2.set_index("creative_id").loc["1790000000000000001", "early_cvr"] == pytest.approx(174 / 125)
    assert early_suite_result(early2, list(ingested.creatives.columns), registry).passed


# -- whole-file problems ------------------------------------------------------------------------------------

def test_missing_column_names_the_near_match(tmp_path):
    export = tmp_path / "google.csv"
    export.write_text("Ad ID,Day,Customer ID,Impr,Clicks,Cost,Conversions\n1,2026-03-01,1,10,1,1.00,0\n")
    with pytest.raises(ImportFileError, match=r"google.csv: no Google Ads header with 'Impr\.' / 'Impressions' "
                                              r"\('Impr' looks like 'Impr\.'\)"):
        convert_exports([export], "google", write_images(tmp_path / "img", "1.png"))


def test_wrong_platform_is_named(tmp_path):
    with pytest.raises(ImportFileError, match=r"looks like a Google Ads export \(--from google\)") as refused:
        convert_exports([GOOGLE], "meta", write_images(tmp_path / "img", "x.png"))
    assert "export with" not in str(refused.value)  # not how to export from the platform it is not


def test_mixed_number_formats_are_refused(tmp_path):
    export = tmp_path / "meta.csv"
    export.write_text("Ad ID,Account ID,Day,Amount spent (USD),Impressions,Link clicks,Purchases\n"
                      "1,9,2026-03-01,\"12,50\",100,1,0\n1,9,2026-03-02,12.50,100,1,0\n")
    with pytest.raises(ImportFileError, match=r"decimal comma \(row 2: '12,50'\).*decimal point \(row 3: '12.50'\)"):
        convert_exports([export], "meta", write_images(tmp_path / "img", "1.png"))


def test_ids_mangled_by_excel_are_refused(tmp_path):
    export = tmp_path / "meta.csv"
    export.write_text("Ad ID,Account ID,Day,Amount spent (USD),Impressions,Link clicks,Purchases\n"
                      "1.20210E+17,9,2026-03-01,1,100,1,0\n")
    with pytest.raises(ImportFileError, match="lost its digits"):
        convert_exports([export], "meta", write_images(tmp_path / "img", "1.png"))


def test_report_without_a_day_breakdown_is_refused(tmp_path):
    export = tmp_path / "meta.csv"
    export.write_text("Reporting starts,Reporting ends,Ad ID,Account ID,Amount spent (USD),Impressions,Link clicks,"
                      "Purchases\n2026-03-01,2026-03-31,1,9,10,100,1,0\n")
    with pytest.raises(ImportFileError, match="every row covers several days.*By time > Day"):
        convert_exports([export], "meta", write_images(tmp_path / "img", "1.png"))


def test_no_account_column_needs_the_account_option(tmp_path):
    export = write_tiktok_xlsx(tmp_path / "tiktok.xlsx")
    with pytest.raises(ImportFileError, match="no account column.*pass --account ID"):
        convert_exports([export], "tiktok", write_images(tmp_path / "img", "x.png"))


def test_unreadable_cells_are_left_for_the_ingest_to_quarantine(tmp_path):
    export = tmp_path / "meta.csv"
    export.write_text("Ad ID,Account ID,Day,Amount spent (USD),Impressions,Link clicks,Purchases\n"
                      "1,9,2026-03-01,1.50,100,1,0\n1,9,2026-03-02,n/a,100,1,0\n1,9,03/03/2026,2.00,100,1,0\n")
    result = convert_exports([export], "meta", write_images(tmp_path / "img", "1.png"))
    assert result.summary.counts() == {"unparseable_number": 1, "unparseable_date": 1, "no_revenue_column": 1}
    ingested = ingest_landing_folder(write_landing(result, tmp_path / "landing"), today=TODAY)
    assert ingested.quarantined_by_reason() == {"non_numeric_metric": 1, "unparseable_date": 1}
    assert len(ingested.daily_metrics) == 1


def test_landing_with_a_parquet_twin_is_refused(tmp_path, meta_images):
    out = tmp_path / "landing"
    out.mkdir()
    (out / "creatives.parquet").write_bytes(b"PAR1")
    with pytest.raises(ImportFileError, match="both creatives.parquet and creatives.csv"):
        write_landing(convert_exports([META_USD], "meta", meta_images), out)


# -- the command -------------------------------------------------------------------------------------------

def test_command_writes_the_landing_folder_and_prints_the_summary(tmp_path, meta_images):
    out = tmp_path / "landing"
    run = CliRunner().invoke(import_export, ["--from", "meta", str(META_USD), str(META_EUR),
                                             "--images", str(meta_images), "--out", str(out)])
    assert run.exit_code == 0, run.output
    assert "wrote 5 creatives and 13 daily rows" in run.output
    assert "no_image: 1" in run.output and "120210000000000004" in run.output
    assert sorted(p.name for p in out.iterdir()) == ["creatives.csv", "daily_metrics.csv", "images",
                                                     "import_summary.json"]


def test_command_uses_landing_images_by_default_and_fails_in_one_line(tmp_path):
    out = tmp_path / "landing"
    write_images(out / "images", "700000000001.png", "700000000002.png")
    run = CliRunner().invoke(import_export, ["--from", "google", str(GOOGLE), "--out", str(out)])
    assert run.exit_code == 0, run.output
    assert pd.read_csv(out / "creatives.csv")["image_path"].tolist() == ["images/700000000001.png",
                                                                          "images/700000000002.png"]

    run = CliRunner().invoke(import_export, ["--from", "tiktok", str(GOOGLE), "--out", str(out)])
    assert run.exit_code == 1
    assert run.output.startswith("Error: google_ads_ad_report.csv: no TikTok Ads Manager header")
    assert len(run.output.strip().splitlines()) == 1


def test_landing_resource_imports_the_export_before_the_ingest_asset_runs(tmp_path, meta_images):
    """The same conversion as an option of the landing resource: a Dagster ingest run reads the platform export."""
    import dagster as dg

    from creative_dag.assets import ingest as ingest_assets
    from creative_dag.resources.image_store import ImageStoreResource
    from creative_dag.resources.landing import LandingResource
    from creative_dag.resources.warehouse import DuckDBWarehouse, WarehouseResource

    landing = tmp_path / "landing"
    landing.mkdir()
    resources = {
        "landing": LandingResource(root=str(landing), today=TODAY.isoformat(), import_from="meta",
                                   import_exports=[str(META_USD), str(META_EUR)], import_images=str(meta_images)),
        "image_store": ImageStoreResource(root=str(landing)),
        "warehouse": WarehouseResource(database=str(tmp_path / "w.duckdb")),
    }
    result = dg.materialize(dg.load_assets_from_modules([ingest_assets]), resources=resources)
    assert result.success
    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb")
    assert len(warehouse.read_table("raw.creatives")) == 5
    assert warehouse.read_table("raw.quarantine")["reason"].tolist() == ["clicks_exceed_impressions"]
    broken = dict(resources, landing=LandingResource(root=str(landing), import_from="google",
                                                      import_exports=[str(META_USD)]))
    failed = dg.materialize(dg.load_assets_from_modules([ingest_assets]), resources=broken, raise_on_error=False)
    assert not failed.success


@pytest.mark.slow
def test_one_export_of_each_platform_goes_through_import_and_the_whole_graph(tmp_path, meta_images):
    """What an advertiser on three platforms does: import each platform's report into one landing folder
    (--append), then materialise everything. Real-data rows land; only the impossible one is quarantined."""
    from click.testing import CliRunner

    from creative_dag.cli import main
    from creative_dag.resources.warehouse import DuckDBWarehouse

    landing, home = tmp_path / "landing", tmp_path / "home"
    google_images = write_images(tmp_path / "google_img", "700000000001.png", "700000000002.PNG")
    tiktok_images = write_images(tmp_path / "tiktok_img", "TT Dance Clip.jpg", "1790000000000000002.png")
    runner = CliRunner()
    for args in (["--from", "meta", str(META_USD), str(META_EUR), "--images", str(meta_images)],
                 ["--from", "google", str(GOOGLE), "--images", str(google_images), "--append"],
                 ["--from", "tiktok", str(write_tiktok_xlsx(tmp_path / "tiktok.xlsx")), "--images",
                  str(tiktok_images), "--account", "7000111", "--currency", "EUR", "--append"]):
        result = runner.invoke(main, ["import", *args, "--out", str(landing)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    run = runner.invoke(main, ["materialize", "--landing", str(landing), "--home", str(home)],
                        catch_exceptions=False)
    assert run.exit_code == 0, run.output
    warehouse = DuckDBWarehouse(home / "creative.duckdb")
    creatives = warehouse.read_table("raw.creatives")
    assert len(creatives) == 5 + 2 + 2
    assert set(creatives["platform"]) == {"meta", "google", "tiktok"}
    assert set(creatives["currency"]) == {"USD", "EUR", "GBP"}
    assert warehouse.read_table("raw.quarantine")["reason"].tolist() == ["clicks_exceed_impressions"]
    for table in ("features.outcomes", "embeddings.cnn", "cbr.case_base", "marts.creative_ranking",
                  "marts.early_decisions"):
        assert len(warehouse.read_table(table)) == 9, table
    assert (home / "reports" / "creative_memory.html").exists()


def test_append_keeps_the_other_platform_and_replaces_a_reimported_ad(tmp_path, meta_images):
    landing = tmp_path / "landing"
    write_landing(convert_exports([META_USD], "meta", meta_images), landing)
    before = pd.read_csv(landing / "daily_metrics.csv", dtype=str)
    google_images = write_images(tmp_path / "g", "700000000001.png", "700000000002.png")
    write_landing(convert_exports([GOOGLE], "google", google_images), landing, append=True)
    write_landing(convert_exports([META_USD], "meta", meta_images), landing, append=True)  # the same again
    after = pd.read_csv(landing / "daily_metrics.csv", dtype=str)
    meta_rows = after[after["creative_id"].isin(set(before["creative_id"]))]
    assert len(meta_rows) == len(before)  # re-imported, not doubled
    assert {"700000000001", "700000000002"} <= set(after["creative_id"])
    creatives = pd.read_csv(landing / "creatives.csv", dtype=str)
    assert creatives["creative_id"].is_unique and len(creatives) == before["creative_id"].nunique() + 2


# -- what an analyst's real exports do (found by a user-style review, stop 50) -----------------------------

META_HEADER = "Ad name,Ad ID,Account ID,Day,Amount spent (EUR),Impressions,Reach,Link clicks,Purchases\n"


def write_meta(path: Path, *rows: str) -> Path:
    path.write_text(META_HEADER + "".join(f"{r}\n" for r in rows))
    return path


def test_a_weekly_export_appended_keeps_the_earlier_days_of_the_same_ads(tmp_path):
    images = write_images(tmp_path / "img", "11.png", "22.png")
    landing = tmp_path / "landing"
    write_landing(convert_exports([write_meta(tmp_path / "week1.csv",
                                              "A,11,9,2026-03-01,10,100,90,5,1", "A,11,9,2026-03-02,10,100,90,5,1",
                                              "B,22,9,2026-03-02,8,80,70,4,0")], "meta", images), landing)
    # the next week's export repeats 03-02 (late conversions counted since) and adds 03-03
    second = convert_exports([write_meta(tmp_path / "week2.csv", "A,11,9,2026-03-02,10,100,90,5,2",
                                         "A,11,9,2026-03-03,12,120,100,6,1")], "meta", images)
    write_landing(second, landing, append=True)
    metrics = pd.read_csv(landing / "daily_metrics.csv", dtype=str)
    a = by_day(metrics, "11")
    assert a.index.tolist() == ["2026-03-01", "2026-03-02", "2026-03-03"]  # the first week's first day stays
    assert a.loc["2026-03-02", "conversions"] == "2"  # the re-exported day is this import's
    assert by_day(metrics, "22").index.tolist() == ["2026-03-02"]  # an ad absent from the new export stays
    creatives = pd.read_csv(landing / "creatives.csv", dtype=str).set_index("creative_id")
    assert creatives.loc["11", "launch_date"] == "2026-03-01"  # its first delivery, from the earlier import
    kept = next(i for i in second.summary.issues if i.reason == "kept_on_append")
    assert "1 ad-day(s) already in landing were replaced" in kept.detail and "1 earlier day(s)" in kept.detail
    summary = json.loads((landing / "import_summary.json").read_text())
    assert summary["counts"]["kept_on_append"] == 1
    assert [s["files"][0]["file"] for s in summary["earlier_imports"]] == ["week1.csv"]  # the first import's too


def test_a_totals_row_under_an_ad_id_first_column_is_skipped(tmp_path):
    export = tmp_path / "google.csv"
    export.write_text("Ad report\n\"March 1, 2026 - March 1, 2026\"\n"
                      "Ad ID,Day,Customer ID,Currency code,Impr.,Clicks,Cost,Conversions\n"
                      "700000000001,2026-03-01,123-456-7890,USD,\"1,000\",10,12.00,1.00\n"
                      "Total: Account,,,,\"1,000\",10,12.00,1.00\nTotal: Display,,,,0,0,0.00,0.00\n")
    result = convert_exports([export], "google", write_images(tmp_path / "img", "700000000001.png"))
    assert result.creatives["creative_id"].tolist() == ["700000000001"]
    assert result.summary.counts().get("totals_row") == 2
    assert not {"no_image", "unparseable_date"} & set(result.summary.counts())


def test_reach_is_said_left_empty_only_for_ad_days_whose_summed_row_was_kept(tmp_path):
    images = write_images(tmp_path / "img", "11.png")
    first = write_meta(tmp_path / "a.csv", "A,11,9,2026-03-01,10,100,90,5,1")
    # the second file has the same ad-day in two placement rows: summed there, but the first file's row is kept
    second = write_meta(tmp_path / "b.csv", "A,11,9,2026-03-01,6,60,50,3,0", "A,11,9,2026-03-01,4,40,40,2,1")
    result = convert_exports([first, second], "meta", images)
    assert result.daily_metrics["reach"].tolist() == ["90"]
    assert not {"rows_summed", "reach_not_additive"} & set(result.summary.counts())
    assert result.summary.counts()["duplicate_across_files"] == 1


def test_image_problems_are_said_as_they_are(tmp_path):
    images = write_images(tmp_path / "img", "Spring Sale.png", "999999.jpg")
    (images / "33.pdf").write_bytes(b"%PDF-1.4 not an image")
    export = write_meta(tmp_path / "m.csv", "Spring Sale,11,9,2026-03-01,10,100,90,5,1",
                        "Spring Sale,22,9,2026-03-01,8,80,70,4,0", "Brochure,33,9,2026-03-01,5,50,40,1,0")
    result = convert_exports([export], "meta", images, currency="EUR")
    issues = {i.reason: i for i in result.summary.issues}
    assert "33.pdf is there but not an image format" in issues["no_image"].detail  # not just "no image named"
    assert issues["shared_image"].detail.startswith("ads 11, 22 (all named 'Spring Sale')")
    assert "999999.jpg" in issues["unused_image"].detail
    assert set(result.creatives["creative_id"]) == {"11", "22"}


def test_an_ad_that_never_delivered_is_left_out_and_said(tmp_path):
    images = write_images(tmp_path / "img", "11.png", "22.png")
    export = write_meta(tmp_path / "m.csv", "A,11,9,2026-03-01,10,100,90,5,1",
                        "Paused,22,9,2026-03-01,0,0,,,", "Paused,22,9,2026-03-02,--,--,--,--,--")
    result = convert_exports([export], "meta", images)
    assert result.creatives["creative_id"].tolist() == ["11"]
    assert set(result.daily_metrics["creative_id"]) == {"11"}
    issue = next(i for i in result.summary.issues if i.reason == "no_delivery")
    assert issue.ad_id == "22" and "no delivery on its 2 day(s)" in issue.detail


def test_an_export_without_currency_says_so_and_a_percentage_in_an_amount_is_left_for_the_ingest(tmp_path):
    images = write_images(tmp_path / "img", "700000000001.png")
    export = tmp_path / "google.csv"
    export.write_text("Ad ID,Day,Customer ID,Impr.,Clicks,Cost,Conversions\n"
                      "700000000001,2026-03-01,1,1000,10,12.00,1\n700000000001,2026-03-02,1,1000,10,5%,1\n")
    result = convert_exports([export], "google", images)
    assert "currency" not in result.creatives.columns and "no_currency" in result.summary.counts()
    spend = by_day(result.daily_metrics, "700000000001")["spend"]
    assert spend.tolist() == ["12", "5%"]  # written as exported: the ingest quarantines that day
    assert any("is a percentage" in i.detail for i in result.summary.issues if i.reason == "unparseable_number")
    assert parse_number("5%") == 0.05  # a rate elsewhere stays readable


def test_an_export_in_another_language_is_told_to_switch_to_english(tmp_path):
    export = tmp_path / "de.csv"
    export.write_text("Tag,Anzeigen-ID,Konto-ID,Impressionen,Link-Klicks,Ausgegebener Betrag (EUR)\n"
                      "2026-03-01,11,9,100,5,10\n")
    with pytest.raises(ImportFileError, match="switch its language to English"):
        convert_exports([export], "meta", write_images(tmp_path / "img", "11.png"))
    english_but_short = tmp_path / "en.csv"  # an English header missing two columns is told what is missing only
    english_but_short.write_text("Day,Ad ID,Account ID,Impressions,Link clicks\n2026-03-01,11,9,100,5\n")
    with pytest.raises(ImportFileError) as refused:
        convert_exports([english_but_short], "meta", write_images(tmp_path / "img2", "11.png"))
    assert "English" not in str(refused.value) and "'Purchases'" in str(refused.value)
