"""The marts assets in-process: tables written, metadata key figures, checks, graceful degradation."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from creative_dag.assets import marts as marts_assets
from creative_dag.checks import marts as marts_checks
from creative_dag.resources.warehouse import DuckDBWarehouse, WarehouseResource
from creative_dag.synth import generate_scenario

MART_TABLES = ("marts.creative_ranking", "marts.creative_fatigue", "marts.creative_fatigue_daily",
               "marts.creative_repetition", "marts.tired_or_repetitive", "marts.recommendations",
               "marts.account_health", "marts.creative_landscape", "marts.landscape_clusters")


def _warehouse(tmp_path: Path, with_embeddings: bool) -> tuple[DuckDBWarehouse, dict]:
    landing = tmp_path / "landing"
    generate_scenario(landing, n_creatives=150, n_days=70, seed=5, render_images=False)
    creatives = pd.read_csv(landing / "creatives.csv", parse_dates=["launch_date"])
    creatives["launch_date"] = creatives["launch_date"].dt.date
    daily = pd.read_csv(landing / "daily_metrics.csv", parse_dates=["date"])
    daily["date"] = daily["date"].dt.date
    truth = json.loads((landing / "ground_truth.json").read_text())
    wh = DuckDBWarehouse(tmp_path / "home" / "creative.duckdb")
    wh.write_table("raw.creatives", creatives)
    wh.write_table("raw.daily_metrics", daily)
    if with_embeddings:
        # Test-only stand-in vectors: one random direction per family (planted near-duplicates)
        # plus small noise, and the ground-truth hue family as the interpretable column.
        rng = np.random.default_rng(0)
        base: dict[str, np.ndarray] = {}
        rows = []
        for cid in creatives["creative_id"]:
            gt = truth["creatives"][cid]
            key = gt["family_id"] or cid
            base.setdefault(key, rng.normal(size=16))
            v = base[key] + rng.normal(scale=0.05, size=16)
            rows.append({"creative_id": cid, "sha256": cid, "model_id": "test", "model_version": "0",
                         "vector": (v / np.linalg.norm(v)).astype(np.float32).tolist(),
                         "dominant_hue_family": gt["attributes"]["hue_family"],
                         "face_present": float(gt["attributes"]["has_face"])})
        wh.write_table("embeddings.visual", pd.DataFrame(rows))
    return wh, truth


def _materialize(wh: DuckDBWarehouse) -> dg.ExecuteInProcessResult:
    assets = dg.load_assets_from_modules([marts_assets])
    checks = dg.load_asset_checks_from_modules([marts_checks])
    return dg.materialize([*assets, *checks], resources={"warehouse": WarehouseResource(database=str(wh.path))},
                          selection=dg.AssetSelection.groups("marts"))


def _metadata(result: dg.ExecuteInProcessResult) -> dict:
    events = [e.event_specific_data.materialization for e in result.get_asset_materialization_events()]
    return {m.asset_key.to_user_string(): m.metadata for m in events}


@pytest.mark.slow
def test_marts_materialise_with_metadata_and_passing_checks(tmp_path):
    wh, truth = _warehouse(tmp_path, with_embeddings=True)
    result = _materialize(wh)
    assert result.success
    for table in MART_TABLES:
        assert wh.exists(table), table
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 6 and all(c.passed for c in checks), [c.metadata for c in checks if not c.passed]
    meta = _metadata(result)
    ranking = meta["marts/creative_ranking"]
    assert sum(ranking[f"n_{t}"].value for t in ("best", "good", "low", "learning")) == 150
    assert "n_fatigued" in meta["marts/creative_fatigue"] and "median_days_to_fatigue" in meta["marts/creative_fatigue"]
    rep = wh.read_table("marts.creative_repetition")
    families = {c: g["family_id"] for c, g in truth["creatives"].items()}
    clustered = rep.dropna(subset=["near_duplicate_cluster"])
    assert meta["marts/creative_repetition"]["n_clusters"].value == clustered["near_duplicate_cluster"].nunique() > 0
    assert all(families[c] is not None for c in clustered["creative_id"])  # stand-in vectors: exact families
    assert "n_do" in meta["marts/recommendations"] and "top_sentences" in meta["marts/recommendations"]
    landscape = meta["marts/creative_landscape"]
    assert Path(landscape["plot"].value).exists() and Path(landscape["plot"].value).parent.name == "reports"
    assert landscape["method"].value == "umap"
    health = wh.read_table("marts.account_health")
    assert health["creative_diversity"].notna().any() and health["freshness_rate"].between(0, 1).all()

    # The next day, with 10 creatives yesterday's map did not have: the rest stay where they were.
    yesterday = wh.read_table("marts.creative_landscape")
    wh.write_table("marts.creative_landscape", yesterday.iloc[10:])
    again = dg.materialize(dg.load_assets_from_modules([marts_assets]),
                           resources={"warehouse": WarehouseResource(database=str(wh.path))},
                           selection=dg.AssetSelection.assets(marts_assets.creative_landscape))
    assert again.success and _metadata(again)["marts/creative_landscape"]["map"].value.startswith("kept")
    today = wh.read_table("marts.creative_landscape").set_index("creative_id")
    before = yesterday.set_index("creative_id")
    stayed = before.index[10:]
    pd.testing.assert_frame_equal(today.loc[stayed, ["x", "y", "cluster"]], before.loc[stayed, ["x", "y", "cluster"]])
    assert (today.loc[before.index[:10], "method"] == "umap-placed").all()
    # Once more than 20 % were not in the last fit, map and clusters are made again.
    wh.write_table("marts.creative_landscape", yesterday.iloc[40:])
    refit = dg.materialize(dg.load_assets_from_modules([marts_assets]),
                           resources={"warehouse": WarehouseResource(database=str(wh.path))},
                           selection=dg.AssetSelection.assets(marts_assets.creative_landscape))
    meta = _metadata(refit)["marts/creative_landscape"]
    assert meta["map"].value.startswith("fitted again") and meta["clustering"].value.startswith("clustered again")
    assert (wh.read_table("marts.creative_landscape")["method"] == "umap").all()


def test_without_embeddings_marts_degrade_with_a_reason(tmp_path):
    wh, _ = _warehouse(tmp_path, with_embeddings=False)
    result = _materialize(wh)
    assert result.success
    meta = _metadata(result)
    assert "no embeddings" in meta["marts/creative_repetition"]["degraded"].value
    assert "cbr.neighbors missing" in meta["marts/creative_ranking"]["degraded"].value
    assert wh.read_table("marts.creative_repetition")["vector_status"].eq("no vectors").all()
    assert len(wh.read_table("marts.creative_landscape")) == 0
    assert wh.read_table("marts.account_health")["creative_diversity"].isna().all()
    # Recommendations still run on the context attributes (format, cta, product_category).
    assert meta["marts/recommendations"]["n_attribute_columns"].value == 3
