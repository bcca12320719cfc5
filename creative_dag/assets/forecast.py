"""Forecast assets: marts.performance_model (the evaluation table) and marts.predictions (one row per
creative and KPI), computed together by creative_dag.forecast from the case base and the attributes.

The fitted models of the last refit are saved beside the warehouse (<home>/models/forecast: LightGBM
text plus a JSON of features, PCA, target transform and interval width), never pickled.
"""


import json
from pathlib import Path

import dagster as dg
from pydantic import Field

from creative_dag.assets.marts import attribute_frame_of
from creative_dag.assets.metadata import table_metadata
from creative_dag.catalog import (
    CBR_CASE_BASE,
    EMBEDDING_KEYS,
    FEATURES_PRELAUNCH,
    MARTS_PERFORMANCE_MODEL,
    MARTS_PREDICTIONS,
)
from creative_dag.cbr.query import CaseMemory, index_dir_for
from creative_dag.dagster_config import config_from
from creative_dag.forecast.memo import RefitMemo
from creative_dag.forecast.model import (
    LEARNERS,
    TARGET_MODES,
    ForecastConfig,
    empty_performance,
    empty_predictions,
    next_refit_from,
    run_forecast,
    save_models,
)
from creative_dag.forecast.targets import KPIS, TargetSpec
from creative_dag.settings import HomeLayout

# days as DATE for BI: model_trained_through is an ISO string in the frame, and the empty frame of a skipped
# forecast has a nanosecond launch_date
PREDICTION_TYPES = {"launch_date": "DATE", "model_trained_through": "DATE"}


class ForecastAssetConfig(config_from(ForecastConfig, "kpis", "warmup_days", "validation_share", "refit_days",
                                      "pca_dims", "learner", "target_mode", "interval", "interval_gamma", "evaluate",
                                      "workers")):
    """creative_dag.forecast.model.ForecastConfig (windows match cbr.backtest's defaults). baseline_days:
    the trailing account window the normalised target divides by (TargetSpec.window_days)."""

    baseline_days: int = Field(TargetSpec().window_days, description="Trailing account window, in days, the "
                                                                     "normalised target divides by.")

    def to_forecast_config(self) -> ForecastConfig:
        unknown = [k for k in self.kpis if k not in KPIS]
        if unknown or self.learner not in LEARNERS or self.target_mode not in TARGET_MODES:
            raise ValueError(f"ForecastAssetConfig: unknown KPIs {unknown} (KPIs are {', '.join(KPIS)}), learner "
                             f"{self.learner!r} ({', '.join(LEARNERS)}) or target_mode {self.target_mode!r} "
                             f"({', '.join(TARGET_MODES)})")
        return self.to_params(target=TargetSpec(window_days=self.baseline_days))


def observable_oracle(landing_folder: Path) -> dict[str, dict[str, float]] | None:
    """A generated scenario's observable expectation per KPI (ground_truth.json beside the export), else None."""
    path = landing_folder / "ground_truth.json"
    if not path.exists():
        return None
    creatives = json.loads(path.read_text()).get("creatives", {})
    oracle = {"score": "expected_outcome", "ctr": "observable_ctr", "cvr": "observable_cvr"}
    out = {kpi: {c: v[key] for c, v in creatives.items() if v.get(key) is not None} for kpi, key in oracle.items()}
    return {k: v for k, v in out.items() if v} or None


@dg.multi_asset(
    specs=[dg.AssetSpec(MARTS_PERFORMANCE_MODEL.key, deps=[CBR_CASE_BASE.key, FEATURES_PRELAUNCH.key, *EMBEDDING_KEYS],
                        group_name="marts", kinds={"duckdb", "python", "lightgbm"},
                        description="Table I of the prelaunch forecast: per input set (context, attributes, each "
                                    "block, all blocks, all + CBR evidence, the other target variant, the observable "
                                    "oracle when ground truth exists), KPI and window: RMSE, MAE, R², Spearman, "
                                    "within-cohort Spearman, interval coverage, n."),
           dg.AssetSpec(MARTS_PREDICTIONS.key, deps=[CBR_CASE_BASE.key, FEATURES_PRELAUNCH.key, *EMBEDDING_KEYS],
                        group_name="marts", kinds={"duckdb", "python", "lightgbm"},
                        description="Per creative and KPI: the as-of prelaunch forecast with an 80 % conformal "
                                    "interval, the realised value once matured, the account's trailing level and "
                                    "the top 3 as-of neighbours as evidence.")],
    required_resource_keys={"warehouse", "landing"}, pool="warehouse", name="prelaunch_forecast",
)
def prelaunch_forecast(context: dg.AssetExecutionContext, config: ForecastAssetConfig):
    warehouse = context.resources.warehouse
    case_base = warehouse.read_table(CBR_CASE_BASE)
    fc_config = config.to_forecast_config()
    oracle = observable_oracle(context.resources.landing.folder())
    status = ""
    result = None
    if case_base.empty:
        status = "skipped: cbr.case_base is empty (no creative landed)"
    else:
        attributes = attribute_frame_of(warehouse)
        memory = CaseMemory.open(case_base, index_dir_for(warehouse.database))
        memo = RefitMemo.open(HomeLayout.of_database(warehouse.database).cache / "forecast" / "refits.npz")
        if memo.note:
            context.log.warning(f"prelaunch forecast: {memo.note}")
        try:
            result = run_forecast(case_base, memory, attributes, fc_config, oracle=oracle, memo=memo)
        except ValueError as exc:  # too little history is a state of the data: record it and go on
            status = f"skipped: {exc}"
    if result is None:
        context.log.warning(f"prelaunch forecast {status}")
        performance, predictions = empty_performance(), empty_predictions()
        warehouse.write_table(MARTS_PERFORMANCE_MODEL, performance)
        warehouse.write_table(MARTS_PREDICTIONS, predictions, types=PREDICTION_TYPES)
        yield dg.MaterializeResult(asset_key=MARTS_PERFORMANCE_MODEL.key, metadata=table_metadata(MARTS_PERFORMANCE_MODEL, performance, status=status))
        yield dg.MaterializeResult(asset_key=MARTS_PREDICTIONS.key, metadata=table_metadata(MARTS_PREDICTIONS, predictions, status=status))
        return
    performance, predictions = result.performance, result.predictions
    warehouse.write_table(MARTS_PERFORMANCE_MODEL, performance)
    warehouse.write_table(MARTS_PREDICTIONS, predictions, types=PREDICTION_TYPES)
    model_dir = HomeLayout.of_database(warehouse.database).models / "forecast"
    saved = save_models(result.models, model_dir)
    memo.save()  # after the tables: a failed run keeps the previous memo
    context.log.info(f"prelaunch forecast: {memo.summary()}")
    for note in result.info["notes"]:
        context.log.info(f"prelaunch forecast: {note}")
    figures = result.headline()
    yield dg.MaterializeResult(asset_key=MARTS_PERFORMANCE_MODEL.key, metadata=table_metadata(
        MARTS_PERFORMANCE_MODEL, performance, preview_rows=40, **figures,
        test_table=dg.MetadataValue.md(result.table_markdown("test")),
        models=dg.MetadataValue.md("\n".join(f"- `{p}`" for p in saved) or "_none_"),
        oracle="observable oracle from ground_truth.json" if oracle else "no ground truth (not a generated scenario)",
        refits_reused=memo.hits, refits_fitted=memo.fitted, refits_predicted_with_kept_model=memo.models_reused,
        next_refit=f"on the first launch from {next_refit_from(memory.case_base['launch_date'], fc_config).date()} "
                   f"(every {fc_config.refit_days} days; the runs before it reuse this run's models)",
        notes="; ".join(result.info["notes"]) or "none"))
    yield dg.MaterializeResult(asset_key=MARTS_PREDICTIONS.key, metadata=table_metadata(
        MARTS_PREDICTIONS, predictions, creatives_forecast=int(predictions.loc[predictions["forecast"].notna(), "creative_id"].nunique()),
        live_creatives=int(predictions.loc[predictions["window"] == "live", "creative_id"].nunique()),
        kpis=", ".join(fc_config.kpis),
        interval_level=", ".join(f"{k} {v:.3f}" for k, v in result.info["interval_level"].items())))
