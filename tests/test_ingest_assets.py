"""The ingest multi-asset and its checks, materialised in-process on a generated landing folder."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from creative_dag.assets.ingest import ingest_raw_tables, launch_dates
from creative_dag.catalog import (
    RAW_CREATIVES,
    RAW_DAILY_METRICS,
    RAW_IMAGES,
    RAW_QUARANTINE,
)
from creative_dag.checks.ingest import (
    creative_id_unique_and_present,
    creative_key_problems,
    nothing_quarantined,
    quarantine_summary,
)
from creative_dag.resources.image_store import ImageStoreResource
from creative_dag.resources.landing import LandingResource
from creative_dag.resources.warehouse import DuckDBWarehouse, WarehouseResource
from creative_dag.synth import generate_scenario

N_CREATIVES = 40


@pytest.fixture(scope="module")
def generated_landing(tmp_path_factory):
    """A small generated landing folder (40 creatives x 20 days, 96-px images), read-only for tests."""
    folder = tmp_path_factory.mktemp("generated") / "landing"
    summary = generate_scenario(folder, n_creatives=N_CREATIVES, n_days=20, seed=3, image_size=96)
    return folder, summary


def copy_landing(source, target):
    import shutil

    shutil.copytree(source, target)
    return target


def resources(tmp_path, landing, **landing_config):
    return {
        "warehouse": WarehouseResource(database=str(tmp_path / "w.duckdb")),
        "landing": LandingResource(root=str(landing), **landing_config),
        "image_store": ImageStoreResource(root=str(landing)),
    }


def materialize(tmp_path, landing, raise_on_error=True, **landing_config):
    return dg.materialize([ingest_raw_tables, nothing_quarantined, creative_id_unique_and_present],
                          resources=resources(tmp_path, landing, **landing_config), raise_on_error=raise_on_error)


def metadata_of(result, key):
    [event] = [m for m in result.get_asset_materialization_events() if m.asset_key == key.key]
    return event.materialization.metadata


def check_results(result):
    """{check name: AssetCheckEvaluation} of a materialize() result."""
    return {evaluation.check_name: evaluation for evaluation in result.get_asset_check_evaluations()}


def test_clean_generated_folder_lands_completely(tmp_path, generated_landing):
    folder, summary = generated_landing
    result = materialize(tmp_path, folder, today="2026-06-01")
    assert result.success
    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb")
    assert warehouse.tables() == ["raw.creatives", "raw.daily_metrics", "raw.images", "raw.quarantine"]
    assert len(warehouse.read_table("raw.creatives")) == N_CREATIVES
    assert len(warehouse.read_table("raw.daily_metrics")) == summary["n_daily_rows"]
    images = warehouse.read_table("raw.images")
    assert len(images) == N_CREATIVES and (images["decode_status"] == "ok").all()
    assert warehouse.read_table("raw.quarantine").empty
    types = dict(warehouse.query("SELECT column_name, data_type FROM information_schema.columns "
                                 "WHERE table_name = 'daily_metrics'").values)
    assert (types["date"], types["impressions"], types["spend"], types["reach"]) == ("DATE", "BIGINT", "DOUBLE", "DOUBLE")
    assert dict(warehouse.query("SELECT column_name, data_type FROM information_schema.columns "
                                "WHERE table_name = 'creatives'").values)["launch_date"] == "DATE"

    meta = metadata_of(result, RAW_CREATIVES)
    assert meta["dagster/row_count"].value == N_CREATIVES
    assert meta["quarantined_rows"].value == 0
    creatives = pd.read_csv(folder / "creatives.csv", dtype=str)
    assert meta["launch_date_min"].value == creatives["launch_date"].min()
    assert meta["launch_date_max"].value == creatives["launch_date"].max()
    assert launch_dates(WarehouseResource(database=str(tmp_path / "w.duckdb"))) == sorted(creatives["launch_date"].unique())
    checks = check_results(result)
    assert checks["nothing_quarantined"].passed and checks["creative_id_unique_and_present"].passed

    # The next run (a new day of the same export) decodes no image it probed before, and lands the same rows.
    assert metadata_of(result, RAW_IMAGES)["images_reused"].value == 0
    again = materialize(tmp_path, folder, today="2026-06-01")
    assert metadata_of(again, RAW_IMAGES)["images_reused"].value == N_CREATIVES
    pd.testing.assert_frame_equal(warehouse.read_table("raw.images"), images)


def test_bad_rows_are_quarantined_counted_and_warned_not_blocking(tmp_path, generated_landing):
    folder = copy_landing(generated_landing[0], tmp_path / "landing")
    creatives = pd.read_csv(folder / "creatives.csv", dtype=str, keep_default_na=False)
    metrics = pd.read_csv(folder / "daily_metrics.csv", dtype=str, keep_default_na=False)
    creatives = pd.concat([creatives, creatives.iloc[[0]]], ignore_index=True)  # duplicate id
    metrics.loc[0, "clicks"] = str(int(metrics.loc[0, "impressions"]) + 1)   # clicks > impressions
    metrics.loc[1, "spend"] = "-3"                                            # negative
    creatives.to_csv(folder / "creatives.csv", index=False)
    metrics.to_csv(folder / "daily_metrics.csv", index=False)
    (folder / creatives.loc[5, "image_path"]).write_bytes(b"")               # zero-byte image

    result = materialize(tmp_path, folder, today="2026-06-01")
    assert result.success  # bad rows never stop the run
    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb")
    quarantine = warehouse.read_table("raw.quarantine")
    assert sorted(zip(quarantine["source"], quarantine["reason"])) == [
        ("creatives", "duplicate_creative_id"), ("daily_metrics", "clicks_exceed_impressions"),
        ("daily_metrics", "negative_value"), ("images", "empty_image_file")]
    assert len(warehouse.read_table("raw.creatives")) == N_CREATIVES  # the bad-image creative stays
    assert len(warehouse.read_table("raw.daily_metrics")) == len(metrics) - 2

    meta = metadata_of(result, RAW_QUARANTINE)
    assert meta["quarantined_rows"].value == 4 and meta["dagster/row_count"].value == 4
    assert "| negative_value | 1 |" in meta["quarantined_by_reason"].value
    assert metadata_of(result, RAW_DAILY_METRICS)["quarantine_counts"].value == {
        "clicks_exceed_impressions": 1, "negative_value": 1}
    assert metadata_of(result, RAW_IMAGES)["images_failed"].value == 1
    assert "creatives.csv" in metadata_of(result, RAW_CREATIVES)["files_read"].value

    checks = check_results(result)
    warn = checks["nothing_quarantined"]
    assert not warn.passed and warn.severity == dg.AssetCheckSeverity.WARN
    assert warn.metadata["counts"].value["images/empty_image_file"] == 1
    assert checks["creative_id_unique_and_present"].passed


def test_missing_required_column_fails_the_run_with_the_message(tmp_path, generated_landing):
    folder = copy_landing(generated_landing[0], tmp_path / "landing")
    metrics = pd.read_csv(folder / "daily_metrics.csv", dtype=str)
    metrics.drop(columns=["revenue"]).to_csv(folder / "daily_metrics.csv", index=False)
    result = materialize(tmp_path, folder, raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message + str(failure.step_failure_data.user_failure_data)
    assert "daily_metrics.csv is missing required column(s) revenue" in message
    assert not DuckDBWarehouse(tmp_path / "w.duckdb").exists("raw.creatives")


def test_future_dates_use_the_configured_today(tmp_path, generated_landing):
    folder, _ = generated_landing
    result = materialize(tmp_path, folder, today="2026-03-05")
    quarantine = DuckDBWarehouse(tmp_path / "w.duckdb").read_table("raw.quarantine")
    assert result.success and len(quarantine) > 0
    assert set(quarantine["reason"]) <= {"future_date", "creative_quarantined"}
    assert all(d <= "2026-03-05" for d in launch_dates(DuckDBWarehouse(tmp_path / "w.duckdb")))


def test_launch_dates_is_empty_before_ingest(tmp_path):
    assert launch_dates(WarehouseResource(database=str(tmp_path / "w.duckdb"))) == []


def test_check_logic_on_frames():
    assert creative_key_problems(pd.DataFrame({"creative_id": ["a", "b", "a", None]})) == {
        "null_creative_id": 1, "duplicate_creative_id": 1}
    summary = quarantine_summary(pd.DataFrame({"source": ["images", "daily_metrics", "daily_metrics"],
                                               "reason": ["truncated_image", "negative_value", "negative_value"]}))
    assert summary[["reason", "rows"]].values.tolist() == [["negative_value", 2], ["truncated_image", 1]]
    assert summary["to_fix"].str.len().min() > 10
