"""In-process materialisation of the encoder assets over launch-date partition ranges, on a small
generated landing folder ingested by the real upstream assets."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from creative_dag.assets import encoders as encoder_assets
from creative_dag.checks import encoders as encoder_checks
from creative_dag.resources.embedding_store import EmbeddingStoreResource
from creative_dag.resources.image_store import ImageStoreResource
from creative_dag.resources.landing import LandingResource
from creative_dag.resources.models import EncoderResource
from creative_dag.resources.warehouse import (
    DuckDBWarehouse,
    WarehouseResource,
)
from creative_dag.vectors import vectors_to_matrix

warnings.filterwarnings("ignore", category=dg.BetaWarning)
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
UPSTREAM = ["raw/creatives", "raw/daily_metrics", "raw/images", "raw/quarantine", "features/registry",
            "features/prelaunch"]


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    from creative_dag.synth import generate_scenario

    root = tmp_path_factory.mktemp("landing")
    generate_scenario(root, n_creatives=16, n_days=12, seed=5, image_size=256)
    return root


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    from tests.test_encoders_models import build_tiny_clip

    folder = tmp_path_factory.mktemp("tiny-clip")
    build_tiny_clip(folder)
    return folder


def _resources(home: Path, landing: Path, **encoder_config) -> dict:
    return {
        "warehouse": WarehouseResource(database=str(home / "creative.duckdb")),
        "image_store": ImageStoreResource(root=str(landing)),
        "landing": LandingResource(root=str(landing), today="2030-01-01"),
        "encoders": EncoderResource(cache_dir=str(home / "cache"), threads=2, batch_size=8, **encoder_config),
        "embedding_store": EmbeddingStoreResource(uri=str(home / "embedding_store")),
    }


def _ingested(home: Path, landing: Path) -> tuple[dg.DagsterInstance, list[str]]:
    """Run the real ingest + prelaunch features, register the launch dates as partitions."""
    from creative_dag.assets import features, ingest

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(dg.load_assets_from_modules([ingest, features]), instance=instance,
                            resources=_resources(home, landing), selection=UPSTREAM)
    assert result.success
    dates = DuckDBWarehouse(home / "creative.duckdb").query(
        "SELECT DISTINCT CAST(launch_date AS VARCHAR) AS d FROM features.prelaunch ORDER BY 1")["d"].tolist()
    instance.add_dynamic_partitions("launch_date", dates)
    return instance, dates


def _materialize(instance, resources, selection, first: str, last: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(encoder_assets.ENCODER_ASSETS + encoder_checks.ENCODER_CHECKS, instance=instance,
                          resources=resources, selection=selection, tags={RANGE_START: first, RANGE_END: last})


def _metadata(result, key: str) -> dict:
    """Metadata of the (first) materialisation of `key` in a run, as plain values."""
    for event in result.get_asset_materialization_events():
        if event.asset_key.to_user_string() == key:
            return {k: v.value for k, v in event.materialization.metadata.items()}
    raise AssertionError(f"{key} was not materialised")


def _check_results(result) -> dict[str, bool]:
    return {f"{e.event_specific_data.asset_key.to_user_string()}:{e.event_specific_data.check_name}":
            e.event_specific_data.passed
            for e in result.all_events if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION}


@pytest.mark.slow
def test_partition_ranges_cache_quarantine_and_status(tmp_path, landing, tiny_clip):
    home = tmp_path / "home"
    instance, dates = _ingested(home, landing)
    warehouse = DuckDBWarehouse(home / "creative.duckdb")
    resources = _resources(home, landing, clip_model=str(tiny_clip))
    half = dates[len(dates) // 2]
    selection = ["embeddings/clip", "embeddings/cnn", "embeddings/visual", "embeddings/text"]

    first = _materialize(instance, resources, selection, dates[0], half)
    assert first.success
    expected_first = warehouse.query(
        "SELECT creative_id FROM features.prelaunch WHERE CAST(launch_date AS VARCHAR) <= ?", [half])
    for block in ("clip", "cnn", "visual", "text"):
        table = warehouse.read_table(f"embeddings.{block}")
        assert sorted(table["creative_id"]) == sorted(expected_first["creative_id"]), block
        norms = np.linalg.norm(vectors_to_matrix(table["vector"]), axis=1)
        np.testing.assert_allclose(norms, 1.0, atol=1e-4)
        assert table["model_version"].nunique() == 1
    checks = _check_results(first)
    blocking = {k: v for k, v in checks.items() if not k.endswith(":embedded_every_creative")}
    assert all(blocking.values()) and len(blocking) == 8
    # Half the launch dates are not embedded yet: the coverage warning says so for every block.
    assert {k for k, v in checks.items() if not v} == {f"embeddings/{b}:embedded_every_creative"
                                                       for b in ("clip", "cnn", "visual", "text")}
    cnn_first = _metadata(first, "embeddings/cnn")
    assert cnn_first["block_available"] is True and cnn_first["from_cache"] == 0
    # each launch date's materialisation reports that date's rows, not the run's total
    per_date = warehouse.query("SELECT CAST(launch_date AS VARCHAR) AS d, count(*) AS n FROM embeddings.cnn "
                               "GROUP BY 1").set_index("d")["n"].to_dict()
    reported = {e.partition: e.materialization.metadata["dagster/row_count"].value
                for e in first.get_asset_materialization_events() if e.asset_key.to_user_string() == "embeddings/cnn"}
    assert set(reported) == {d for d in dates if d <= half}
    assert reported == {d: per_date.get(d, 0) for d in reported} and len(set(reported.values())) > 1
    # ... and previews that date's creatives (a partition showed the run's first rows)
    ids = warehouse.query("SELECT CAST(launch_date AS VARCHAR) AS d, creative_id FROM embeddings.cnn")
    for e in first.get_asset_materialization_events():
        if e.asset_key.to_user_string() == "embeddings/cnn" and reported[e.partition]:
            preview = e.materialization.metadata["preview"].md_str
            assert all(c in preview for c in ids.loc[ids["d"] == e.partition, "creative_id"]), (e.partition, preview)
            assert not any(c in preview for c in ids.loc[ids["d"] != e.partition, "creative_id"]), (e.partition, preview)

    # an image changed on disk after ingest hashed it: quarantined, the rest of the batch goes on
    late = warehouse.query(
        "SELECT p.creative_id, p.image_path FROM features.prelaunch p "
        "WHERE CAST(p.launch_date AS VARCHAR) > ? ORDER BY p.creative_id LIMIT 1", [half])
    tampered_id, tampered_path = late["creative_id"].iloc[0], late["image_path"].iloc[0]
    data = (landing / tampered_path).read_bytes()
    (landing / tampered_path).write_bytes(data[: len(data) // 3])
    try:
        full = _materialize(instance, resources, ["embeddings/cnn", "embeddings/model_status"], dates[0], dates[-1])
    finally:
        (landing / tampered_path).write_bytes(data)
    assert full.success
    cnn = warehouse.read_table("embeddings.cnn")
    all_ids = set(warehouse.read_table("features.prelaunch")["creative_id"])
    assert set(cnn["creative_id"]) == all_ids - {tampered_id}
    meta = _metadata(full, "embeddings/cnn")
    distinct_first = warehouse.query(
        "SELECT count(DISTINCT i.sha256) AS n FROM raw.images i JOIN features.prelaunch p USING (creative_id) "
        "WHERE CAST(p.launch_date AS VARCHAR) <= ?", [half])["n"].iloc[0]
    # the first half's inputs did not change: those dates were not encoded again at all
    assert meta["unchanged_launch_dates"] == len([d for d in dates if d <= half]) and meta["from_cache"] == 0
    assert meta["quarantined"] == 1
    quarantine = warehouse.query("SELECT * FROM raw.quarantine WHERE key LIKE 'embeddings.%'")
    assert quarantine[["source", "key", "reason"]].values.tolist() == [
        ["images", f"embeddings.cnn:{tampered_id}", "image_changed_since_ingest"]]
    # Every creative now has a cnn vector or a quarantine reason: the coverage check passes.
    assert _check_results(full)["embeddings/cnn:embedded_every_creative"]

    # The image is back: the next run retries just that launch date, and its quarantine row goes.
    healed = _materialize(instance, resources, ["embeddings/cnn"], dates[0], dates[-1])
    assert _metadata(healed, "embeddings/cnn")["unchanged_launch_dates"] == len(dates) - 1
    assert tampered_id in set(warehouse.read_table("embeddings.cnn")["creative_id"])
    assert warehouse.query("SELECT count(*) AS n FROM raw.quarantine WHERE key LIKE 'embeddings.cnn:%'")["n"][0] == 0

    # with the store gone (a new deployment on the same cache), the first half comes from the cache
    import shutil

    shutil.rmtree(home / "embedding_store" / "cnn")
    again = _materialize(instance, resources, ["embeddings/cnn"], dates[0], half)
    assert _metadata(again, "embeddings/cnn")["from_cache"] == distinct_first
    assert _metadata(again, "embeddings/cnn")["computed"] == 0

    status = warehouse.read_table("embeddings.model_status").set_index("block")
    assert list(status.index) == ["clip", "cnn", "visual", "layout", "text"]
    assert bool(status.loc["clip", "available"]) and status.loc["clip", "dim"] == 32
    assert status.loc["cnn", "model_version"] == cnn["model_version"].iloc[0]
    assert status.loc["cnn", "rows"] == len(cnn) and status.loc["cnn", "dim"] == 1280


@pytest.mark.slow
def test_unavailable_clip_writes_no_rows_and_says_why(tmp_path, landing, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    home = tmp_path / "home"
    instance, dates = _ingested(home, landing)
    resources = _resources(home, landing, clip_model="openai/clip-vit-base-patch32")
    result = _materialize(instance, resources, ["embeddings/clip", "embeddings/model_status"], dates[0], dates[-1])
    assert result.success
    meta = _metadata(result, "embeddings/clip")
    assert meta["block_available"] is False and "HF_HUB_OFFLINE" in meta["unavailable_reason"]
    warehouse = DuckDBWarehouse(home / "creative.duckdb")
    assert len(warehouse.read_table("embeddings.clip")) == 0
    clip = warehouse.read_table("embeddings.model_status").set_index("block").loc["clip"]
    assert not bool(clip["available"]) and "openai/clip-vit-base-patch32" in clip["reason"]
    assert clip["rows"] == 0

    # The failed load is remembered: the next run neither the encoder nor model_status tries again.
    loads = _count_model_loads(monkeypatch)
    again = _materialize(instance, resources, ["embeddings/clip", "embeddings/model_status"], dates[0], dates[-1])
    assert again.success and loads == []
    assert "not retried before" in _metadata(again, "embeddings/clip")["unavailable_reason"]
    # ... until model_retry_after_s has passed (or is 0)
    retry = _resources(home, landing, clip_model="openai/clip-vit-base-patch32", model_retry_after_s=0)
    assert _materialize(instance, retry, ["embeddings/clip"], dates[0], dates[0]).success
    assert loads == ["clip"]


def _count_model_loads(monkeypatch) -> list[str]:
    """The blocks whose model is loaded from now on: every load, through the run's LoadedModels or not,
    calls the registry's load_block."""
    from creative_dag.resources import models as model_registry

    loads: list[str] = []
    real_load = model_registry.load_block
    monkeypatch.setattr(model_registry, "load_block",
                        lambda block, settings: (loads.append(block), real_load(block, settings))[1])
    return loads


@pytest.mark.slow
def test_a_block_that_still_fails_after_its_retry_time_changes_no_launch_date(tmp_path, landing, tiny_clip,
                                                                               monkeypatch):
    """Daily runs come further apart than `model_retry_after_s`: CLIP offline must not make every
    launch date look changed each day (it never encoded one), else each run re-encodes and
    re-publishes the whole history."""
    import datetime as dt

    import pandas as pd

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    home = tmp_path / "home"
    instance, dates = _ingested(home, landing)
    offline = _resources(home, landing, clip_model="openai/clip-vit-base-patch32", model_retry_after_s=0)
    assert _materialize(instance, offline, ["embeddings/clip", "embeddings/visual"], dates[0], dates[-1]).success
    store, settings = offline["embedding_store"].get(), offline["encoders"].settings()
    days = [dt.date.fromisoformat(d) for d in dates]
    first_failure = store.read_status("clip")["checked_at"]

    # the retry time has passed (0 s) and the hub is still unreachable: tried once more, nothing changed
    loads = _count_model_loads(monkeypatch)
    changed = encoder_assets.changed_launch_dates(["clip", "visual"], days, offline["warehouse"], store, settings)
    assert changed == [] and loads == ["clip"]
    assert pd.Timestamp(store.read_status("clip")["checked_at"]) > pd.Timestamp(first_failure)
    # a date whose visual inputs changed is the only one
    store.write_inputs("visual", days[3], "changed")
    assert encoder_assets.changed_launch_dates(["clip", "visual"], days, offline["warehouse"], store,
                                               settings) == [days[3]]

    # while the failure is remembered nothing is tried
    remembered = _resources(home, landing, clip_model="openai/clip-vit-base-patch32")
    loads.clear()
    assert encoder_assets.changed_launch_dates(["clip"], days, remembered["warehouse"], store,
                                               remembered["encoders"].settings()) == [] and loads == []
    # a model that loads (here another one) has every date still to encode
    working = _resources(home, landing, clip_model=str(tiny_clip))
    assert encoder_assets.changed_launch_dates(["clip"], days, working["warehouse"], store,
                                               working["encoders"].settings()) == days


@pytest.mark.slow
def test_layout_reads_headlines_and_feeds_the_text_block(tmp_path, landing):
    home = tmp_path / "home"
    instance, _dates = _ingested(home, landing)
    warehouse = DuckDBWarehouse(home / "creative.duckdb")
    counts = warehouse.query("SELECT CAST(launch_date AS VARCHAR) AS d, count(*) AS n FROM features.prelaunch "
                             "GROUP BY 1 ORDER BY 1")
    day = counts.sort_values("n", ascending=False)["d"].iloc[0]  # one busy day keeps OCR cheap
    resources = _resources(home, landing, ocr_working_size=256)
    result = _materialize(instance, resources, ["embeddings/layout", "embeddings/text"], day, day)
    assert result.success
    layout = warehouse.read_table("embeddings.layout")
    truth = json.loads((landing / "ground_truth.json").read_text())["creatives"]
    assert len(layout) == int(counts.set_index("d").loc[day, "n"])
    recalls = []
    for row in layout.itertuples():
        headline = {w.lower() for w in truth[row.creative_id]["attributes"]["headline"].split()}
        read = {w.lower() for w in str(row.ocr_text).split()}
        recalls.append(len(headline & read) / len(headline))
    assert np.mean(recalls) >= 0.5, recalls
    text = warehouse.read_table("embeddings.text").set_index("creative_id")
    with_ocr = [r.creative_id for r in layout.itertuples() if r.ocr_text]
    assert with_ocr and all(text.loc[c, "text"] for c in with_ocr)


def test_block_table_gains_attribute_columns_after_an_unavailable_run(tmp_path):
    """An unavailable block leaves a bare typed table; the first real rows add their columns in place."""
    import datetime as dt

    import pandas as pd

    from creative_dag.encoders.pipeline import (
        date_series,
        empty_block_frame,
        vector_series,
    )

    warehouse = WarehouseResource(database=str(tmp_path / "w.duckdb"))
    day1, day2 = dt.date(2026, 3, 1), dt.date(2026, 3, 2)
    encoder_assets.write_block_rows(warehouse, "cnn", empty_block_frame(), [day1])
    rows = pd.DataFrame({
        "creative_id": pd.Series(["a", "b"], dtype="string"), "sha256": pd.Series(["s1", "s2"], dtype="string"),
        "launch_date": date_series(pd.Series([day1, day2])), "model_id": pd.Series(["m", "m"], dtype="string"),
        "model_version": pd.Series(["v", "v"], dtype="string"),
        "vector": vector_series(np.eye(2, 3, dtype=np.float32)),
        "top_tag": ["espresso", None], "tags": [["espresso", "cup"], ["cup"]], "face_count": [None, None],
    })
    encoder_assets.write_block_rows(warehouse, "cnn", rows, [day1, day2], numeric_columns=["face_count"])
    types = encoder_assets.existing_types(warehouse, "embeddings.cnn")
    assert types["vector"] == "FLOAT[]" and types["launch_date"] == "DATE"
    assert types["top_tag"] == "VARCHAR" and types["tags"] == "VARCHAR[]" and types["face_count"] == "DOUBLE"
    stored = warehouse.read_table("embeddings.cnn").set_index("creative_id")
    assert list(stored.loc["a", "tags"]) == ["espresso", "cup"]
    # replacing one launch date leaves the other date's rows alone
    encoder_assets.write_block_rows(warehouse, "cnn", rows.iloc[:0], [day1])
    assert warehouse.read_table("embeddings.cnn")["creative_id"].tolist() == ["b"]


@pytest.mark.slow
def test_text_block_runs_on_ad_copy_when_the_layout_block_is_unavailable(tmp_path, landing):
    home = tmp_path / "home"
    instance, dates = _ingested(home, landing)
    resources = _resources(home, landing, ocr_backend="florence2", florence2_model=str(tmp_path / "no-such-model"))
    result = _materialize(instance, resources, ["embeddings/layout", "embeddings/text"], dates[0], dates[-1])
    assert result.success
    assert _metadata(result, "embeddings/layout")["block_available"] is False
    warehouse = DuckDBWarehouse(home / "creative.duckdb")
    text = warehouse.read_table("embeddings.text")
    assert len(text) == len(warehouse.read_table("features.prelaunch"))  # every creative has a headline


def test_creatives_without_any_text_are_not_missing_text_vectors(tmp_path):
    """An imported export often has no ad copy: a creative with no headline, no primary text and no text on its
    image has nothing for the text block to embed. The coverage check says so instead of 'materialise their
    launch-date partitions' (which would change nothing)."""
    import pandas as pd

    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb")
    warehouse.write_table("features.prelaunch", pd.DataFrame({
        "creative_id": ["copy", "ocr_only", "nothing", "not_embedded"],
        "launch_date": pd.to_datetime(["2026-03-01", "2026-03-01", "2026-03-02", "2026-03-02"]),
        "headline": ["Fresh coffee", None, None, "Big sale"], "primary_text": [None, "", "  ", None]}))
    warehouse.write_table("embeddings.layout", pd.DataFrame({
        "creative_id": ["copy", "ocr_only", "nothing", "not_embedded"], "ocr_text": ["", "20% OFF", "", ""]}))
    unit = [1.0, 0.0]
    warehouse.write_table("embeddings.text", pd.DataFrame({"creative_id": ["copy", "ocr_only"], "vector": [unit, unit]}))
    expected, missing, quarantined, without_text = encoder_checks.missing_embeddings(warehouse, "text")
    assert (expected, missing, quarantined, without_text) == (3, ["not_embedded"], 0, 1)
