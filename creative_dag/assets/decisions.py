"""marts.early_decisions (docs/early-decisions.md): KILL / KEEP / SCALE / WAIT per creative after its early window.

Thin wrapper around creative_dag.marts.early_decisions: reads raw.creatives (keys and launch date
only), raw.daily_metrics, features.outcomes (maturity dates; lifetime totals for the realised
columns) and, when present, marts.predictions (the prelaunch forecast of the composite, used as a
prior); writes the table and attaches the decision counts and the evaluation on history (policy vs
the naive "rank by early CTR" rule vs random) as metadata.

It also depends on features.early: the early KPIs are recomputed here for each creative's own
window (2 days by default, longer for slow starters, while features.early has one fixed window),
with the same window rule (creative_dag.features.early_window), so the dependency is there to put
this table behind features.early's blocking leakage checks: an early window that reads later days
stops the graph before any decision is written.
"""


import dagster as dg
import pandas as pd

from creative_dag.assets.metadata import counts_markdown, table_metadata
from creative_dag.catalog import (
    FEATURES_EARLY,
    FEATURES_OUTCOMES,
    MARTS_EARLY_DECISIONS,
    MARTS_PREDICTIONS,
    RAW_CREATIVES,
    RAW_DAILY_METRICS,
)
from creative_dag.dagster_config import config_from, field_names
from creative_dag.features.build import DEFAULT_MATURITY_DAYS, build_outcomes
from creative_dag.marts.early_decisions import (
    DECISIONS,
    NAIVE,
    POLICY,
    PRIOR_WITH_FORECAST,
    EarlyDecisionParams,
    decide,
    evaluate,
    evaluation_markdown,
    wait_kind,
)

CREATIVE_KEY_COLUMNS = ["creative_id", "account_id", "launch_date"]


class EarlyDecisionsConfig(config_from(EarlyDecisionParams, *field_names(EarlyDecisionParams))):
    """The policy (creative_dag.marts.early_decisions.EarlyDecisionParams): every field can be set."""


def _wait_reasons(table: pd.DataFrame) -> dict[str, int]:
    """WAIT rows by kind of reason."""
    return table.loc[table["decision"] == "WAIT", "reason"].map(wait_kind).value_counts().to_dict()


@dg.asset(key=MARTS_EARLY_DECISIONS.key, deps=[RAW_CREATIVES.key, RAW_DAILY_METRICS.key, FEATURES_EARLY.key, FEATURES_OUTCOMES.key,
                                           MARTS_PREDICTIONS.key],
          required_resource_keys={"warehouse"}, group_name="marts", kinds={"duckdb", "python"}, pool="warehouse",
          description="Per creative, after its early window (default 2 days, at least 1,000 impressions): KILL / KEEP "
                      "/ SCALE / WAIT with the posterior probability that it ends in its account's bottom 80 % or "
                      "top 20 %, the reason in words, and realised_* columns (lifetime rank, spend after the "
                      "window) to evaluate the policy once it matured.")
def early_decisions(context: dg.AssetExecutionContext, config: EarlyDecisionsConfig) -> dg.MaterializeResult:
    params = config.to_params()
    warehouse = context.resources.warehouse
    with warehouse.reading() as db:
        creatives = db.read_table(RAW_CREATIVES, columns=CREATIVE_KEY_COLUMNS)
        daily = db.read_table(RAW_DAILY_METRICS)
        outcomes = db.read_optional(FEATURES_OUTCOMES)
        predictions = db.read_optional(MARTS_PREDICTIONS)
    degraded = []
    if outcomes is None:
        outcomes = build_outcomes(creatives, daily, DEFAULT_MATURITY_DAYS)
        degraded.append(f"features.outcomes missing: maturity dates recomputed from raw.daily_metrics with the "
                        f"default {DEFAULT_MATURITY_DAYS}-day maturity window")
    if not params.use_forecast:
        degraded.append("prelaunch forecast switched off (use_forecast = false): account history only")
    elif predictions is None or predictions.empty:
        degraded.append("marts.predictions missing or empty: decisions use account history only, no prelaunch "
                        "forecast as prior")
    if creatives.empty:
        degraded.append("no creatives (raw.creatives is empty)")
    table = decide(creatives, daily, outcomes, predictions, params)
    warehouse.write_table(MARTS_EARLY_DECISIONS, table)
    evaluation = evaluate(table, params)
    counts = {d: int((table["decision"] == d).sum()) for d in DECISIONS}
    figures = {}
    if not evaluation.empty:
        by_policy = evaluation.set_index("policy")
        for name, label in ((POLICY, "policy"), (NAIVE, "naive")):
            for metric in ("kill_precision", "scale_recall", "spend_saved_share"):
                figures[f"{label}_{metric}"] = float(by_policy.loc[name, metric])
        figures["n_evaluated"] = int(by_policy.loc[POLICY, "n_evaluated"])
    with_forecast = int((table["prior_source"] == PRIOR_WITH_FORECAST).sum())
    return dg.MaterializeResult(metadata=table_metadata(
        MARTS_EARLY_DECISIONS, table, **{f"n_{d.lower()}": n for d, n in counts.items()}, **figures,
        evaluation=dg.MetadataValue.md(evaluation_markdown(evaluation)),
        wait_reasons=counts_markdown(_wait_reasons(table), "reason", "creatives"),
        decided_with_forecast=with_forecast,
        kill_threshold=params.kill_threshold, scale_threshold=params.scale_threshold,
        bottom_share=params.bottom_share, top_share=params.top_share, early_window_days=params.window_days,
        min_impressions=params.min_impressions,
        degraded="; ".join(degraded)))
