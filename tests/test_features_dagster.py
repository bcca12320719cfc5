"""Feature assets and their blocking checks, materialised in process (ingest -> features -> a test asset).

The ingest multi-asset writes raw.*; a trivial downstream asset on features.prelaunch (and one
on features.early) shows whether the blocking checks let the graph go on.
"""

import json
import os
import subprocess
import sys

import dagster as dg
import pandas as pd
import pytest

from creative_dag.assets import features as feature_assets
from creative_dag.assets.ingest import ingest_raw_tables
from creative_dag.catalog import FEATURES_EARLY, FEATURES_PRELAUNCH, FEATURES_REGISTRY
from creative_dag.checks import features as feature_checks
from creative_dag.checks import gx_suites
from creative_dag.checks.decision_time import EMBEDDING_COLUMNS, decision_time_check
from creative_dag.contract import KNOWN_LEAKY_EXPORT_COLUMNS, REGISTRY_FILE
from creative_dag.features import build as build_module
from creative_dag.features import load_shipped_registry
from creative_dag.resources.image_store import ImageStoreResource
from creative_dag.resources.landing import LandingResource
from creative_dag.resources.warehouse import DuckDBWarehouse, WarehouseResource
from creative_dag.synth import generate_scenario

FEATURE_ASSETS = [feature_assets.features_registry, feature_assets.features_prelaunch,
                  feature_assets.features_early, feature_assets.features_outcomes]
FEATURE_CHECKS = [feature_checks.prelaunch_suite, feature_checks.prelaunch_leakage_sniff,
                  feature_checks.early_suite, feature_checks.early_window_recomputed,
                  feature_checks.early_leakage_sniff, feature_checks.outcomes_suite]


@dg.asset(key=["test", "uses_prelaunch"], deps=[FEATURES_PRELAUNCH.key])
def uses_prelaunch() -> None:
    """Stands in for every decision-time consumer of features.prelaunch."""


@dg.asset(key=["test", "uses_early"], deps=[FEATURES_EARLY.key])
def uses_early() -> None:
    """Stands in for every consumer of features.early."""


@pytest.fixture(scope="module")
def landing_template(tmp_path_factory):
    out = tmp_path_factory.mktemp("landing")
    generate_scenario(out, n_creatives=120, n_days=60, seed=5, render_images=False)
    return out


@pytest.fixture
def landing(landing_template, tmp_path):
    """A fresh copy per test, so a test can add a feature_registry.json."""
    folder = tmp_path / "landing"
    folder.mkdir()
    for name in ("creatives.csv", "daily_metrics.csv"):
        (folder / name).write_bytes((landing_template / name).read_bytes())
    return folder


def _materialize(landing, tmp_path, assets=(), checks=FEATURE_CHECKS):
    database = tmp_path / "warehouse.duckdb"
    result = dg.materialize(
        [ingest_raw_tables, *FEATURE_ASSETS, uses_prelaunch, uses_early, *assets, *checks],
        resources={
            "warehouse": WarehouseResource(database=str(database)),
            "landing": LandingResource(root=str(landing), today="2026-12-31"),
            "image_store": ImageStoreResource(root=str(landing)),
        },
        raise_on_error=False,
    )
    checks_by_name = {e.check_name: e for e in result.get_asset_check_evaluations()}
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    return result, checks_by_name, materialized, DuckDBWarehouse(database)


def test_clean_scenario_passes_every_check_and_downstream_runs(landing, tmp_path):
    """Clean = shipped registry; an extra unregistered column is denied and reported, not a failure."""
    creatives = pd.read_csv(landing / "creatives.csv")
    creatives["winner_flag"] = 0
    creatives.to_csv(landing / "creatives.csv", index=False)
    result, checks, materialized, warehouse = _materialize(landing, tmp_path)
    assert result.success
    assert set(checks) == {spec.name for c in FEATURE_CHECKS for spec in c.check_specs}
    assert all(c.passed for c in checks.values()), {n: c.description for n, c in checks.items() if not c.passed}
    assert {"test/uses_prelaunch", "test/uses_early", "features/outcomes", "features/registry"} <= materialized
    for table in ("features.prelaunch", "features.early"):
        columns = set(warehouse.query(f"SELECT * FROM {table} LIMIT 0").columns)
        assert not columns & set(KNOWN_LEAKY_EXPORT_COLUMNS), table
    registry = warehouse.read_table("features.registry")
    leaky = registry[registry["column"].isin(KNOWN_LEAKY_EXPORT_COLUMNS)]
    assert (leaky["stage"] == "lifecycle").all() and (leaky["raw_table"] == "raw.creatives").all()
    outcomes = warehouse.read_table("features.outcomes")
    assert len(outcomes) == len(warehouse.read_table("raw.creatives"))
    # The unregistered column: absent from decision-time tables, reported by features.registry.
    for table in ("features.prelaunch", "features.early"):
        assert "winner_flag" not in warehouse.query(f"SELECT * FROM {table} LIMIT 0").columns
    row = registry[registry["column"] == "winner_flag"].iloc[0]
    assert (row["stage"], row["source"]) == ("lifecycle", "default-deny")
    events = [e.materialization for e in result.get_asset_materialization_events()
              if e.asset_key == FEATURES_REGISTRY.key]
    assert events[0].metadata["unregistered_raw_columns"].value == ["winner_flag"]
    assert (pd.to_datetime(outcomes["mature_date"]) - pd.to_datetime(outcomes["launch_date"])).dt.days.eq(14).all()


def test_mislabelled_lifecycle_column_blocks_downstream(landing, tmp_path):
    (landing / REGISTRY_FILE).write_text(json.dumps({"columns": {"last_7d_ctr": {"stage": "prelaunch"}}}))
    result, checks, materialized, _ = _materialize(landing, tmp_path)
    assert not result.success
    sniff = checks["prelaunch_leakage_sniff"]
    assert not sniff.passed and sniff.severity == dg.AssetCheckSeverity.ERROR
    assert sniff.metadata["suspected_columns"].value == ["last_7d_ctr"]
    assert "last_7d_ctr" in sniff.description and "measured after launch" in sniff.description
    assert "winner_loser_auc" in sniff.metadata["suspected_findings"].value  # the statistical evidence
    assert "features/prelaunch" in materialized  # the table was written ...
    assert "test/uses_prelaunch" not in materialized  # ... but nothing downstream ran
    assert checks["prelaunch_suite"].passed  # column set matches the (wrong) registry: sniffing caught it


def test_early_window_violation_is_caught_and_blocks_downstream(landing, tmp_path, monkeypatch):
    honest_early_kpis = build_module.early_kpis

    def window_one_day_too_long(creatives, daily_metrics, n_days=3):
        return honest_early_kpis(creatives, daily_metrics, n_days + 1).pipe(
            lambda f: f[f["creative_id"].isin(honest_early_kpis(creatives, daily_metrics, n_days)["creative_id"])])

    monkeypatch.setattr(build_module, "early_kpis", window_one_day_too_long)
    _, checks, materialized, _ = _materialize(landing, tmp_path)
    window = checks["early_window_recomputed"]
    assert not window.passed
    assert "4-day window" in window.description
    assert "early_impressions" in window.metadata["offending_rows"].value
    assert checks["early_suite"].passed  # the schema is fine: only recomputation shows the leak
    assert "features/early" in materialized and "test/uses_early" not in materialized
    assert "test/uses_prelaunch" in materialized  # the prelaunch branch is unaffected


def test_suite_names_offending_columns_rows_and_expectation():
    registry = load_shipped_registry()
    table = pd.DataFrame({
        "creative_id": ["cr_1", "cr_2", "cr_2"], "account_id": ["a", "a", None],
        "launch_date": ["2026-03-01"] * 3, "lifetime_roas": [1.0, 2.0, 3.0],
    })
    result = feature_checks.prelaunch_suite_result(
        table, ["creative_id", "account_id", "launch_date", "lifetime_roas", "placement"], registry)
    assert not result.passed
    assert "lifetime_roas" in result.metadata["unexpected_columns"].value
    assert result.metadata["missing_columns"].value == ["placement"]
    failed = result.metadata["failed_expectations"].value
    assert "ExpectTableColumnsToMatchSet" in failed and "ExpectColumnValuesToBeUnique" in failed
    assert "cr_2" in failed and "ExpectColumnValuesToNotBeNull(column=account_id)" in failed


def test_rates_out_of_range_fail_the_early_suite():
    registry = load_shipped_registry()
    row = {"creative_id": "cr_1", "account_id": "a", "launch_date": "2026-03-01",
           **{k: 1 for k in build_module.EARLY_KPI_COLUMNS}}
    table = pd.DataFrame([row, {**row, "creative_id": "cr_2", "early_ctr": 1.7, "early_clicks": -3}])
    result = feature_checks.early_suite_result(table, ["creative_id", "account_id", "launch_date"], registry)
    assert not result.passed
    failed = result.metadata["failed_expectations"].value
    assert "column=early_ctr, min_value=0, max_value=1" in failed and "column=early_clicks, min_value=0" in failed
    assert "cr_2" in failed


def test_decision_time_check_factory_guards_another_stages_table(landing, tmp_path):
    """How encoders / CBR use it: named derived columns pass, anything else is denied and blocks."""
    key = dg.AssetKey(["embeddings", "visual"])

    @dg.asset(key=key, deps=[FEATURES_PRELAUNCH.key], required_resource_keys={"warehouse"})
    def visual(context):
        prelaunch = context.resources.warehouse.read_table("features.prelaunch")
        frame = prelaunch[["creative_id", "launch_date"]].assign(
            sha256="x", model_id="opencv", model_version="1", vector=[[1.0, 0.0]] * len(prelaunch),
            warm_share=0.5, lifetime_spend=1.0, mystery=2)
        context.resources.warehouse.write_table("embeddings.visual", frame)

    @dg.asset(key=["test", "uses_visual"], deps=[key])
    def uses_visual() -> None:
        pass

    check = decision_time_check(key, "embeddings.visual", extra_allowed=(*EMBEDDING_COLUMNS, "warm_share"))
    _, checks, materialized, _ = _materialize(landing, tmp_path, assets=[visual, uses_visual],
                                                   checks=[check])
    evaluation = checks["decision_time_columns"]
    assert not evaluation.passed
    assert set(evaluation.metadata["denied_columns"].value) == {"lifetime_spend", "mystery"}
    assert "not in the feature registry" in evaluation.metadata["denied_columns"].value["mystery"]
    assert "embeddings/visual" in materialized and "test/uses_visual" not in materialized


def test_loading_feature_definitions_does_not_import_great_expectations():
    code = ("import sys, dagster as dg\n"
            "from creative_dag.assets import features as a\n"
            "from creative_dag.checks import features as c, decision_time as l\n"
            "from creative_dag.resources.landing import LandingResource\n"
            "from creative_dag.resources.warehouse import WarehouseResource\n"
            "check = l.decision_time_check(['embeddings', 'clip'], 'embeddings.clip', extra_allowed=l.EMBEDDING_COLUMNS)\n"
            "defs = dg.Definitions(assets=dg.load_assets_from_modules([a]),\n"
            "                      asset_checks=[*dg.load_asset_checks_from_modules([c]), check],\n"
            "                      resources={'warehouse': WarehouseResource(database='/tmp/cd-gx/w.duckdb'),\n"
            "                                 'landing': LandingResource(root='/tmp/cd-gx/landing')})\n"
            "defs.resolve_asset_graph()\n"
            "assert 'great_expectations' not in sys.modules, 'GX imported at definition load'\n")
    env = {**os.environ, "CREATIVE_DAG_HOME": "/tmp/creative-dag-gx-import-test"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-2000:]


def test_gx_suite_reports_every_failed_expectation_with_its_rows():
    frame = pd.DataFrame({"creative_id": ["a", "b", "b"], "rate": [0.5, 1.5, None], "extra": 1})
    result = gx_suites.run_suite(frame, gx_suites.feature_table_suite(["creative_id", "rate"],
                                                                      unit_interval_columns=["rate"]), "t")
    by_type = {o.expectation.split("(")[0]: o for o in result.failed}
    assert by_type["ExpectTableColumnsToMatchSet"].detail["unexpected_columns"] == ["extra"]
    assert by_type["ExpectColumnValuesToBeUnique"].unexpected_count == 2
    assert by_type["ExpectColumnValuesToBeBetween"].detail["unexpected_rows"] == [{"creative_id": "b"}]
    assert gx_suites.run_suite(frame[["creative_id"]].iloc[:2], [gx_suites.unique("creative_id")], "ok").success
