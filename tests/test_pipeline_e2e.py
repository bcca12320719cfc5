"""End to end, the way a user runs it: `creative-dag materialize --landing X --home Y` on a generated
export, then the warehouse, the serving copy, `creative-dag similar`, and a blocked run.

Real models (EfficientNet-Lite0, MiniLM, EasyOCR) run on a small scenario; CLIP cannot be
downloaded here, so its block must come out `unavailable`, never faked.
"""

import dataclasses
import datetime as dt
import json
import shutil

import duckdb
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image
from served_types import badly_typed_columns, day_columns

from creative_dag.cli import main
from creative_dag.contract import KNOWN_LEAKY_EXPORT_COLUMNS
from creative_dag.resources.warehouse import DuckDBWarehouse
from creative_dag.synth import generate_scenario
from creative_dag.synth.candidates import write_candidate_batch

pytestmark = pytest.mark.slow

DESIGN_TABLES = {
    "raw.creatives", "raw.daily_metrics", "raw.images", "raw.quarantine",
    "features.registry", "features.prelaunch", "features.early", "features.outcomes",
    "embeddings.clip", "embeddings.cnn", "embeddings.visual", "embeddings.layout", "embeddings.text",
    "embeddings.model_status", "cbr.case_base", "cbr.neighbors", "cbr.backtest",
    "marts.creative_ranking", "marts.creative_fatigue", "marts.creative_repetition",
    "marts.recommendations", "marts.account_health", "marts.creative_landscape",
    "marts.performance_model", "marts.predictions", "marts.element_attribution", "marts.pairwise_backtest",
    "marts.candidate_assessment", "marts.candidate_pairs",
}
DECISION_TABLES = ["features.prelaunch", "features.early", "embeddings.cnn", "embeddings.visual",
                   "embeddings.layout", "embeddings.text", "cbr.case_base"]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    landing, home = root / "export", root / "home"
    generate_scenario(landing, n_creatives=48, n_days=45, seed=11, image_size=320)
    # A batch of new candidates with ground truth, plus what a real batch folder also holds.
    batch = write_candidate_batch(landing, batch="week_16", n=4, seed=12, image_size=320)
    (batch / "truncated.jpg").write_bytes(next(batch.glob("*.jpg")).read_bytes()[:300])
    Image.new("RGB", (1, 1)).save(batch / "pixel.png")
    shutil.copyfile(next(batch.glob("candidate_01.*")), batch / "same_again.jpg")
    config = root / "assets.yaml"  # a small attribution sample: each edit is OCR'd like a creative
    # (the stacked learner is measured in tests/test_forecast.py; the cheaper blend serves here)
    config.write_text("marts/element_attribution:\n  sample_size: 3\n  n_models: 5\n"
                      "prelaunch_forecast:\n  learner: blend\n")
    result = CliRunner().invoke(
        main, ["materialize", "--landing", str(landing), "--home", str(home), "--config", str(config)],
        catch_exceptions=False,
    )
    return landing, home, result


def test_whole_graph_materialises_every_design_table(deployment):
    _, home, result = deployment
    assert result.exit_code == 0, result.output
    warehouse = DuckDBWarehouse(home / "creative.duckdb")
    assert DESIGN_TABLES <= set(warehouse.tables())
    # 48 creatives are too few for a finding to pass the support and stability rules: an empty list is the
    # honest answer there (tests/test_marts_recommendations.py checks the findings on larger scenarios).
    for table in DESIGN_TABLES - {"raw.quarantine", "embeddings.clip", "marts.recommendations"}:
        assert len(warehouse.read_table(table)) > 0, f"{table} is empty"


def test_a_refresh_under_dagsters_multiprocess_executor_gives_the_cli_tables(deployment, tmp_path):
    """The UI, the daemon and `dagster job execute` run each step in a process of its own, forked from a
    server that preloaded the project (creative_dag/step_processes.py); what they write must be what the
    CLI's in-process run wrote."""
    import yaml

    from bench.step_processes import refresh, tables_equal
    from creative_dag.definitions import build_definitions
    from creative_dag.runner import op_config_for
    from creative_dag.step_processes import PRELOAD_EVENT, PRELOAD_MODULES

    landing, home, result = deployment
    assert result.exit_code == 0, result.output
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    asset_config = yaml.safe_load((home.parent / "assets.yaml").read_text())
    ops = op_config_for(list(build_definitions(copy, landing).assets), asset_config)
    log = tmp_path / "refresh.log"
    refresh(copy, landing, None, ops, log, timeout_s=900)  # None: the project's default executor; raises on failure
    text = log.read_text()
    assert "Executing steps using multiprocess executor" in text and "RUN_SUCCESS" in text
    # features and whole-history steps: the server preloads every library the graph's steps import
    assert PRELOAD_EVENT + ", ".join(PRELOAD_MODULES) + " (" in text
    assert tables_equal(home, copy) == []


def test_model_status_is_truthful(deployment):
    _, home, result = deployment
    warehouse = DuckDBWarehouse(home / "creative.duckdb")
    status = warehouse.read_table("embeddings.model_status").set_index("block")
    assert not status.loc["clip", "available"] and status.loc["clip", "reason"]
    assert len(warehouse.read_table("embeddings.clip")) == 0, "an unavailable model produces no vectors"
    # ... and an empty block is not silently green: a warning check says so on the console.
    assert "WARNING check embeddings/clip:embedded_every_creative" in result.output, result.output
    for block in ("cnn", "visual", "layout", "text"):
        assert status.loc[block, "available"], status.loc[block, "reason"]
        assert len(warehouse.read_table(f"embeddings.{block}")) == 48


def test_the_attribution_reuses_the_models_the_encode_steps_loaded(deployment):
    """One in-process run (the CLI): the element attribution edits its sample with the encoders' models
    instead of loading EasyOCR and the CNN a second time; the tables equal those of the multiprocess
    run (below), whose steps each load their own."""
    _, _, result = deployment
    assert "element attribution: the cnn, visual, layout model(s) this run's encode steps loaded are reused" \
        in result.output, result.output[-3000:]


def test_leaky_export_columns_never_reach_decision_tables(deployment):
    _, home, _ = deployment
    warehouse = DuckDBWarehouse(home / "creative.duckdb")
    for table in DECISION_TABLES:
        columns = set(warehouse.read_table(table).columns)
        assert not columns & set(KNOWN_LEAKY_EXPORT_COLUMNS), f"{table} carries a leaky column"


def test_serving_copy_is_readable_without_the_live_file(deployment):
    _, home, _ = deployment
    serving = duckdb.connect(str(home / "serving" / "creative.duckdb"), read_only=True)
    try:
        ranked = serving.execute("SELECT count(*) FROM marts.creative_ranking").fetchone()[0]
    finally:
        serving.close()
    assert ranked == 48
    assert (home / "serving" / "marts" / "recommendations.parquet").exists()


def test_every_query_of_the_bi_guide_runs_on_the_serving_copy(deployment):
    """docs/bi.md promises its SQL runs unchanged in a BI tool; and no column is typed "NULL" (a BI
    driver cannot map it: recommendations.attribute_b without a pair, cbr.case_base.clip offline), and a
    day is a DATE in every table (cbr.neighbors had TIMESTAMPs, two marts text)."""
    import re
    from pathlib import Path

    _, home, _ = deployment
    guide = (Path(__file__).resolve().parents[1] / "docs" / "bi.md").read_text()
    queries = re.findall(r"```sql\n(.*?)```", guide, flags=re.DOTALL)
    assert len(queries) >= 7
    serving = duckdb.connect(str(home / "serving" / "creative.duckdb"), read_only=True)
    try:
        for sql in queries:
            serving.execute(sql).fetchall()  # raises on a table, column or keyword the guide gets wrong
    finally:
        serving.close()
    assert badly_typed_columns(home / "serving" / "creative.duckdb") == []
    assert day_columns(home / "serving" / "creative.duckdb") > 20


def test_the_ui_metadata_renders_tables_as_tables_and_nulls_as_blanks(deployment):
    """What the Dagster UI shows of each latest materialisation: count tables were plain text (their pipes
    showed), `degraded` a blank row, and previews spelt NULL four ways (nan, None, <NA>, NaT)."""
    import re

    import dagster as dg

    from creative_dag.instance import get_instance
    from creative_dag.settings import resolve_locations

    landing, home, _ = deployment
    instance = get_instance(resolve_locations(home, landing))
    checked = 0
    for key in instance.get_asset_keys():
        event = instance.get_latest_materialization_event(key)
        if event is None or event.asset_materialization is None:
            continue
        for name, value in event.asset_materialization.metadata.items():
            if isinstance(value, dg.TextMetadataValue):
                assert "|---|" not in value.text, (key, name)
                assert value.text != "", (key, name)
            if name == "preview" and isinstance(value, dg.MarkdownMetadataValue):
                assert not re.search(r"\|\s*(nan|None|<NA>|NaT)\s*\|", value.md_str), (key, value.md_str[:500])
                checked += 1
    assert checked >= 25


def test_similar_prints_as_of_neighbours(deployment):
    landing, home, _ = deployment
    truth = json.loads((landing / "ground_truth.json").read_text())
    family = next(ids for ids in truth["families"].values() if len(ids) >= 2)
    late = sorted(family, key=lambda cid: truth["creatives"][cid]["launch_date"])[-1]
    result = CliRunner().invoke(main, ["similar", late, "--k", "5", "--home", str(home),
                                       "--landing", str(landing)])
    assert result.exit_code == 0, result.output
    assert "sim_" in result.output or "cnn" in result.output
    unknown = CliRunner().invoke(main, ["similar", "cr_does_not_exist", "--home", str(home),
                                        "--landing", str(landing)])
    assert unknown.exit_code != 0 and "cr_does_not_exist" in unknown.output


def test_rerun_skips_launch_dates_whose_inputs_did_not_change(deployment):
    import dagster as dg

    from creative_dag.instance import get_instance
    from creative_dag.settings import resolve_locations

    landing, home, _ = deployment
    instance = get_instance(resolve_locations(home, landing))
    cnn = dg.AssetKey(["embeddings", "cnn"])
    before = instance.fetch_materializations(cnn, limit=1, ascending=False).records[0].storage_id
    # Nothing an encoder reads changed: the CLI does not run the encoders over any launch date.
    result = CliRunner().invoke(main, ["materialize", "--select", "group:encoders", "--landing",
                                       str(landing), "--home", str(home)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "no launch date's encoder inputs changed" in result.output, result.output
    assert instance.fetch_materializations(cnn, limit=1, ascending=False).records[0].storage_id == before
    # --force runs them over every launch date; each step still encodes nothing it encoded before.
    forced = CliRunner().invoke(main, ["materialize", "--select", "group:encoders", "--force", "--landing",
                                       str(landing), "--home", str(home)], catch_exceptions=False)
    assert forced.exit_code == 0, forced.output
    metadata = instance.get_latest_materialization_event(cnn).asset_materialization.metadata
    assert metadata["computed"].value == 0, {k: v.value for k, v in metadata.items()}
    assert metadata["unchanged_launch_dates"].value == metadata["launch_dates"].value > 0


def test_mislabelled_leaky_column_blocks_the_graph_and_fails_the_command(deployment, tmp_path):
    landing, _, _ = deployment
    export = tmp_path / "export"
    export.mkdir()
    for name in ("creatives.csv", "daily_metrics.csv"):
        (export / name).write_bytes((landing / name).read_bytes())
    (export / "images").symlink_to(landing / "images")
    (export / "feature_registry.json").write_text(json.dumps(
        {"columns": {"last_7d_ctr": {"stage": "prelaunch", "description": "mislabelled on purpose"}}}
    ))
    result = CliRunner().invoke(main, ["materialize", "--select", "group:ingest", "--select", "group:features",
                                       "--select", "cbr/case_base", "--landing", str(export),
                                       "--home", str(tmp_path / "home")])
    assert result.exit_code != 0
    assert "leakage" in result.output
    assert "cbr/case_base" in result.output  # named as not materialised


def test_validate_attribution_reports_a_growing_uplift(deployment):
    from creative_dag.assets.marts import attribute_frame_of

    _, home, _ = deployment
    attrs = attribute_frame_of(DuckDBWarehouse(home / "creative.duckdb"))
    # The most balanced detected yes/no attribute of this small export.
    shares = {c: attrs[c].astype("boolean").mean() for c in attrs.columns
              if c != "creative_id" and attrs[c].dropna().isin([True, False]).all() and attrs[c].notna().any()}
    column = min(shares, key=lambda c: abs(shares[c] - 0.5))
    result = CliRunner().invoke(main, ["validate-attribution", "--attribute", column, "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert "grows with the factor" in result.output, result.output
    bad = CliRunner().invoke(main, ["validate-attribution", "--attribute", "no_such_column", "--home", str(home)])
    assert bad.exit_code != 0 and "not in the attribute frame" in bad.output
    # The attribution's own learner can be validated too, and a learner that does not exist is named.
    grouped = CliRunner().invoke(main, ["validate-attribution", "--attribute", column, "--learner", "grouped_linear",
                                        "--json", "--home", str(home)])
    assert grouped.exit_code == 0, grouped.output
    uplift = [row["uplift_with"] for row in json.loads(grouped.output)]
    assert uplift == sorted(uplift) and uplift[-1] > uplift[0]
    wrong = CliRunner().invoke(main, ["validate-attribution", "--attribute", column, "--learner", "xgboost",
                                      "--home", str(home)])
    assert wrong.exit_code != 0 and "grouped_linear" in wrong.output


def test_element_attribution_follows_the_config_file(deployment):
    _, home, result = deployment
    attribution = DuckDBWarehouse(home / "creative.duckdb").read_table("marts.element_attribution")
    assert len(attribution) and set(attribution["kpi"]) == {"ctr", "cvr"}
    assert attribution["n"].max() <= 3  # sample_size from --config, not the default 30
    assert (attribution["ci_low"] <= attribution["effect"]).all() and (attribution["effect"] <= attribution["ci_high"]).all()
    assert "element_attribution_invariants" not in result.output  # the check passed (failures are printed)


def test_a_candidate_batch_folder_is_assessed_with_the_graph(deployment):
    _, home, _ = deployment
    warehouse = DuckDBWarehouse(home / "creative.duckdb")
    assessed = warehouse.read_table("marts.candidate_assessment")
    assert set(assessed["batch"]) == {"week_16"}
    ok = assessed[assessed["status"] == "assessed"]
    assert sorted(ok["name"]) == ["candidate_01", "candidate_02", "candidate_03", "candidate_04"]
    assert sorted(ok["rank"]) == [1, 2, 3, 4] and ok["forecast_score"].notna().all()
    has = ok["lower_score"].notna()
    assert (ok.loc[has, "lower_score"] <= ok.loc[has, "forecast_score"]).all()
    assert (ok.loc[has, "forecast_score"] <= ok.loc[has, "upper_score"]).all()
    assert ok["similar_ids"].map(len).min() > 0  # as-of evidence for every candidate
    rejected = assessed[assessed["status"] != "assessed"].set_index("name")["status"].to_dict()
    assert rejected["pixel"] == "degenerate_image_size"
    assert rejected["truncated"] in ("truncated_image", "unreadable_image")
    assert rejected["same_again"] == "duplicate_in_batch"
    pairs = warehouse.read_table("marts.candidate_pairs")
    assert len(pairs) == 6
    decided = pairs[~pairs["abstain"]]
    assert (decided["winner"].eq(decided["candidate_a"]) | decided["winner"].eq(decided["candidate_b"])).all()
    assert pairs["verdict"].str.len().min() > 20
    backtest = warehouse.read_table("marts.pairwise_backtest")
    assert {"served forecast", "context only", "random (expected)"} <= set(backtest["method"])
    # the serving copy and the page came after the batch, not before it (they were a run behind)
    serving = DuckDBWarehouse(home / "serving" / "creative.duckdb", read_only=True)
    assert len(serving.read_table("marts.candidate_assessment")) == len(assessed)
    assert len(serving.read_table("marts.candidate_pairs")) == len(pairs)
    assert "Batch week_16" in (home / "reports" / "creative_memory.html").read_text()


def test_assess_cli_on_one_odd_candidate(deployment, tmp_path):
    landing, home, _ = deployment
    past = min((landing / "images").iterdir())
    odd = tmp_path / "odd.jpg"
    shutil.copyfile(past, odd)
    result = CliRunner().invoke(main, ["assess", str(odd), "--account", "acc_99", "--context", "placement=hologram",
                                       "--json", "--home", str(home), "--landing", str(landing)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{"):])
    (candidate,) = report["candidates"]
    assert candidate["identical_to"] and candidate["repetition_risk"] == "identical"
    assert candidate["as_of"] == report["as_of"]  # a day, as at the top (was "…T00:00:00.000")
    assert "acc_99 has no history" in candidate["candidate_notes"]
    assert "placement=hologram never seen" in candidate["candidate_notes"]
    assert candidate["forecast_score"] is not None and report["pairs"] == []
    missing = CliRunner().invoke(main, ["assess", str(tmp_path / "nope.png"), "--home", str(home)])
    assert missing.exit_code != 0 and "no readable candidate image" in missing.output


def test_assess_and_similar_say_when_the_as_of_date_is_too_early_or_after_the_data(deployment, tmp_path):
    """--as-of before any outcome was known printed NaN forecasts; one after the data's last day let creatives
    still in their maturity window pass for matured (partial outcomes as evidence)."""
    landing, home, _ = deployment
    warehouse = DuckDBWarehouse(home / "creative.duckdb", read_only=True)
    first_launch = warehouse.query("SELECT min(launch_date) AS d FROM raw.creatives")["d"].iloc[0]
    last_day = pd.Timestamp(warehouse.query("SELECT max(date) AS d FROM raw.daily_metrics")["d"].iloc[0]).date()
    odd = tmp_path / "odd.jpg"
    shutil.copyfile(min((landing / "images").iterdir()), odd)
    where = ["--home", str(home), "--landing", str(landing)]
    early = (pd.Timestamp(first_launch) + pd.Timedelta(days=2)).date()
    too_early = CliRunner().invoke(main, ["assess", str(odd), "--as-of", early.isoformat(), *where])
    assert too_early.exit_code == 1 and f"no creative had matured before {early}" in too_early.output, too_early.output
    assert "nan" not in too_early.output.lower()

    known = last_day + dt.timedelta(days=1)
    late = CliRunner().invoke(main, ["assess", str(odd), "--as-of", "2027-01-01", "--json", *where])
    assert late.exit_code == 0, late.output
    report = json.loads(late.output[late.output.index("{"):])
    assert report["as_of"] == known.isoformat()
    assert f"after the data's last day ({last_day})" in late.output
    from creative_dag.cbr.query import similar_for_creative

    latest = str(warehouse.read_table("raw.creatives").sort_values("launch_date")["creative_id"].iloc[-1])
    found = similar_for_creative(warehouse, latest, k=50, as_of="2027-01-01")
    assert found.attrs["notes"] == [(f"--as-of 2027-01-01 is after the data's last day ({last_day}): cases matured "
                                     f"before {known} only")]
    assert len(found) and (pd.to_datetime(found["mature_date"]).dt.date < known).all()


def test_candidate_verdicts_use_nothing_after_the_as_of_date(deployment):
    from creative_dag.candidates.assess import History, assess
    from creative_dag.candidates.batch import read_candidates
    from creative_dag.candidates.pairwise import pair_table

    landing, home, _ = deployment
    history = History.from_warehouse(DuckDBWarehouse(home / "creative.duckdb"))
    as_of = dt.date(2026, 3, 29)
    # Three late creatives re-submitted as candidates, with the vectors their images already have.
    late = history.prelaunch.sort_values("launch_date")["creative_id"].astype(str).tail(3).tolist()
    images = [landing / p for p in history.prelaunch.set_index("creative_id").loc[late, "image_path"]]
    batch = read_candidates("asof", images, {"account_id": "acc_01"})
    ids = dict(zip(batch.items["name"], batch.items["candidate_id"], strict=True))
    names = {cid: p.stem for cid, p in zip(late, images, strict=True)}
    tables = {b: t[t["creative_id"].isin(late)].assign(creative_id=lambda f: f["creative_id"].map(
        lambda c: ids[names[c]])) for b, t in history.tables.items()}

    def verdicts(h):
        a = assess(h, batch, tables, as_of)
        return a.candidates.set_index("candidate_id")["forecast_score"], pair_table(a)

    before_scores, before_pairs = verdicts(history)
    # Rewrite the future: every metric dated on or after the as-of date, and the forecasts made after it.
    future = pd.to_datetime(history.daily_metrics["date"]).dt.date >= as_of
    changed = dataclasses.replace(history)
    changed.daily_metrics = history.daily_metrics.copy()
    changed.daily_metrics.loc[future, ["clicks", "conversions"]] *= 3
    changed.predictions = history.predictions.assign(forecast=history.predictions["forecast"] + 5.0 * (
        pd.to_datetime(history.predictions["launch_date"]).dt.date >= as_of))
    after_scores, after_pairs = verdicts(changed)
    assert future.any()
    assert before_scores.round(9).equals(after_scores.round(9))
    assert before_pairs[["winner", "abstain", "p_a_better"]].round(9).equals(
        after_pairs[["winner", "abstain", "p_a_better"]].round(9))


def test_every_column_of_every_table_is_described_in_the_warehouse_and_the_ui(deployment):
    landing, home, _ = deployment
    import dagster as dg

    from creative_dag.catalog import MARTS_CREATIVE_RANKING, table_named
    from creative_dag.instance import get_instance
    from creative_dag.settings import resolve_locations

    warehouse = DuckDBWarehouse(home / "creative.duckdb", read_only=True)
    columns = warehouse.query("SELECT table_schema || '.' || table_name AS t, column_name AS c "
                              "FROM information_schema.columns")
    undescribed = {t: table_named(t).undescribed(list(group["c"])) for t, group in columns.groupby("t")}
    assert not {t: cols for t, cols in undescribed.items() if cols}, "add them to creative_dag/catalog/columns.py"
    instance = get_instance(resolve_locations(home, landing))
    event = instance.get_latest_materialization_event(MARTS_CREATIVE_RANKING.key)
    schema = event.asset_materialization.metadata["dagster/column_schema"].value
    assert isinstance(schema, dg.TableSchema) and all(c.description for c in schema.columns)


def test_element_attribution_edits_nothing_when_too_few_outcomes_are_known(deployment, tmp_path):
    """On the 40-creative bad export the asset made 258 edited images through every encoder (~3 minutes), and
    then found each KPI's target known for 16 creatives, fewer than min_train (20). It had counted 20 outcomes
    known by the last metric date, but each KPI's normalised target drops an account's first creatives (no
    trailing average yet). Now it counts what the model would learn from first, and edits nothing."""
    from creative_dag.assets.attribution import _day_after_last_metric
    from creative_dag.attribution.effects import AttributionConfig, known_targets
    from creative_dag.catalog import MARTS_ELEMENT_ATTRIBUTION
    from creative_dag.cbr.index import to_days
    from creative_dag.instance import get_instance
    from creative_dag.settings import resolve_locations

    landing, home, _ = deployment
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    warehouse = DuckDBWarehouse(copy / "creative.duckdb")
    case_base, as_of = warehouse.read_table("cbr.case_base"), _day_after_last_metric(warehouse)
    counts = known_targets(case_base, AttributionConfig().kpis, as_of).counts()
    by_date = int((to_days(case_base["available_date"]) < to_days(as_of)).sum())
    assert by_date > max(counts.values()), (by_date, counts)  # the targets drop an account's first creatives
    min_train = max(counts.values()) + 1  # enough outcomes known by date, too few for any KPI's model
    index = copy / "cache" / "attribution" / "variants.json"
    before = index.read_bytes()
    config = tmp_path / "assets.yaml"  # another seed: a sample whose edits are not cached yet
    config.write_text(f"marts/element_attribution: {{sample_size: 3, n_models: 5, seed: 7, min_train: {min_train}}}\n")
    result = CliRunner().invoke(main, ["materialize", "--landing", str(landing), "--home", str(copy), "--config",
                                       str(config), "--select", "marts/element_attribution"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert warehouse.read_table("marts.element_attribution").empty
    assert index.read_bytes() == before  # no image edited
    event = get_instance(resolve_locations(copy, landing)).get_latest_materialization_event(MARTS_ELEMENT_ATTRIBUTION.key)
    status = event.asset_materialization.metadata["status"].value
    assert status.startswith(f"skipped: by {as_of} no KPI had min_train ({min_train})"), status
    assert all(f"{kpi} {n}" in status for kpi, n in counts.items()) and status.endswith("no image edited"), status