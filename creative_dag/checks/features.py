"""Blocking asset checks on the feature tables (docs/features.md).

features.prelaunch and features.early each get:
* a Great Expectations suite (exact allowed column set from the registry, unique non-null
  creative_id, non-null required columns, rates in [0, 1], non-negative counts and money);
* suspected-leakage sniffing against the lifecycle outcome (creative_dag.features.leakage_sniff);
and features.early additionally gets verification by recomputation of its early window.
features.outcomes gets a GX suite too (the CBR engine's as-of retrieval relies on mature_date).

All are blocking: a failure stops every asset downstream of the guarded one.
"""


from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from creative_dag.assets.features import (
    EARLY_WINDOW_DAYS_KEY,
    MATURITY_DAYS_KEY,
)
from creative_dag.assets.metadata import markdown_preview
from creative_dag.catalog import (
    FEATURES_EARLY,
    FEATURES_OUTCOMES,
    FEATURES_PRELAUNCH,
    RAW_CREATIVES,
    RAW_DAILY_METRICS,
)
from creative_dag.checks.decision_time import explain_denied, registry_from_context
from creative_dag.dagster_config import config_from
from creative_dag.features import build
from creative_dag.features.early_window import (
    DEFAULT_EARLY_DAYS,
    EARLY_COUNT_COLUMNS,
    EARLY_MONEY_COLUMNS,
    EARLY_POSITIVE_RATE_COLUMNS,
    EARLY_UNIT_RATE_COLUMNS,
    early_kpis,
    verify_early_window,
)
from creative_dag.features.leakage_sniff import (
    LeakageSniffConfig,
    sniff_leakage,
    suspected,
)
from creative_dag.features.registry import FeatureRegistry, RegistryError

_CHECK = {"blocking": True, "required_resource_keys": {"warehouse", "landing"}, "pool": "warehouse"}
REQUIRED_NOT_NULL = ("account_id", "launch_date")
MAX_LISTED = 25


class LeakageCheckConfig(config_from(LeakageSniffConfig, "numeric_threshold", "auc_threshold", "early_threshold",
                                     "early_margin", "min_support", "targets")):
    """Thresholds of suspected-leakage sniffing (creative_dag.features.leakage_sniff.LeakageSniffConfig)."""

    def to_sniff_config(self) -> LeakageSniffConfig:
        return self.to_params()


# -- compute: plain functions the checks call (testable without Dagster) -----------------------

def prelaunch_suite_result(table: pd.DataFrame, creative_columns: list[str],
                           registry: FeatureRegistry) -> dg.AssetCheckResult:
    """GX suite for features.prelaunch against the registry's exact allowed column set."""
    from creative_dag.checks import gx_suites

    expected = build.prelaunch_stage_columns(creative_columns, registry)
    suite = gx_suites.feature_table_suite(expected, not_null_columns=REQUIRED_NOT_NULL)
    return _suite_check_result(FEATURES_PRELAUNCH, table, expected, registry,
                               gx_suites.run_suite(table, suite, "features_prelaunch"))


def early_suite_result(table: pd.DataFrame, creative_columns: list[str],
                       registry: FeatureRegistry) -> dg.AssetCheckResult:
    """GX suite for features.early: exact columns, key, non-nulls, value ranges."""
    from creative_dag.checks import gx_suites

    expected = build.early_stage_columns(creative_columns, registry)
    suite = gx_suites.feature_table_suite(
        expected,
        not_null_columns=(*REQUIRED_NOT_NULL, *EARLY_COUNT_COLUMNS, *EARLY_MONEY_COLUMNS),
        unit_interval_columns=EARLY_UNIT_RATE_COLUMNS,
        non_negative_columns=(*EARLY_COUNT_COLUMNS, *EARLY_MONEY_COLUMNS, *EARLY_POSITIVE_RATE_COLUMNS),
    )
    return _suite_check_result(FEATURES_EARLY, table, expected, registry,
                               gx_suites.run_suite(table, suite, "features_early"))


def early_window_result(table: pd.DataFrame, creatives: pd.DataFrame, daily_metrics: pd.DataFrame,
                        n_days: int) -> dg.AssetCheckResult:
    """Recompute early KPIs with only days 0..N-1 and compare (GX on the reconciliation frame)."""
    from creative_dag.checks import gx_suites

    report = verify_early_window(table, creatives, daily_metrics, n_days)
    suite = [gx_suites.in_set("matches", [True])]
    result = gx_suites.run_suite(report.reconciliation, suite, "features_early_window",
                                 index_columns=("creative_id", "kpi"))
    offenders = report.offenders
    n_creatives = offenders["creative_id"].nunique()
    if result.success and report.ok:
        description = (f"features.early: all {table.shape[0]} rows match a recomputation from "
                       f"raw.daily_metrics over days 0..{n_days - 1} after launch")
    else:
        kinds = offenders["diagnosis"].replace("", np.nan).dropna().value_counts()
        why = f"; most common: {kinds.index[0]} ({int(kinds.iloc[0])} values)" if len(kinds) else ""
        description = (f"features.early: {len(offenders)} value(s) on {n_creatives} creative(s) differ from "
                       f"the recomputation over the allowed {n_days}-day window{why}. Rebuild features.early "
                       f"from raw.daily_metrics with dates launch_date .. launch_date + {n_days - 1} only.")
    return dg.AssetCheckResult(
        passed=bool(result.success and report.ok),
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={
            EARLY_WINDOW_DAYS_KEY: dg.MetadataValue.int(int(n_days)),
            "values_compared": dg.MetadataValue.int(len(report.reconciliation)),
            "mismatched_values": dg.MetadataValue.int(len(offenders)),
            "mismatched_creatives": dg.MetadataValue.int(int(n_creatives)),
            "offending_rows": dg.MetadataValue.md(markdown_preview(offenders, MAX_LISTED)),
            "failed_expectations": dg.MetadataValue.md(result.failures_markdown()),
        },
    )


def leakage_sniff_result(table_name: str, table: pd.DataFrame, registry: FeatureRegistry,
                         outcomes: pd.DataFrame, config: LeakageSniffConfig,
                         creatives: pd.DataFrame | None = None,
                         daily_metrics: pd.DataFrame | None = None,
                         n_days: int = DEFAULT_EARLY_DAYS) -> dg.AssetCheckResult:
    """Sniff every prelaunch/early column of `table`; fail when any looks like leakage."""
    post = honest = None
    if creatives is not None and daily_metrics is not None:
        post = build.post_window_outcomes(creatives, daily_metrics, n_days)
        honest = early_kpis(creatives, daily_metrics, n_days)
    findings = sniff_leakage(table, registry, outcomes, config, post, honest)
    hits = suspected(findings)
    strongest = _strongest_by_column(findings)
    if hits.empty:
        description = (f"{table_name}: no decision-time column predicts the outcome implausibly well "
                       f"({findings['column'].nunique()} columns tested)")
    else:
        # Statistical evidence first, the contract's name list second: the numbers say *why*.
        ordered = hits.assign(_known=hits["method"] == "known_leaky_export_column").sort_values("_known", kind="stable")
        description = f"{table_name}: suspected leakage in {', '.join(sorted(hits['column'].unique()))}. " + \
            " ".join(ordered.drop_duplicates("column")["explanation"].tolist())
    return dg.AssetCheckResult(
        passed=hits.empty,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description[:2000],
        metadata={
            "suspected_columns": dg.MetadataValue.json(sorted(hits["column"].unique().tolist())),
            "suspected_findings": dg.MetadataValue.md(markdown_preview(hits, MAX_LISTED)),
            "strongest_association_by_column": dg.MetadataValue.md(markdown_preview(strongest, 60)),
            "name_hints": dg.MetadataValue.json(
                sorted(findings.loc[findings["method"] == "name_hint", "column"].unique().tolist())),
            "thresholds": dg.MetadataValue.json({
                "numeric_spearman": config.numeric_threshold,
                "categorical_auc": config.auc_threshold,
                "early_floor": config.early_threshold, "early_margin": config.early_margin,
                "targets": list(config.targets), "min_support": config.min_support}),
        },
    )


def outcomes_suite_result(table: pd.DataFrame) -> dg.AssetCheckResult:
    """GX suite for features.outcomes: key, required columns, value ranges."""
    from creative_dag.checks import gx_suites

    suite = gx_suites.feature_table_suite(
        list(table.columns),
        not_null_columns=("account_id", "launch_date", "mature_date", "impressions", "clicks", "spend",
                          "conversions", "revenue", "days_active"),
        unit_interval_columns=("ctr",),  # CVR may exceed 1 (view-through conversions): non-negative only
        non_negative_columns=("impressions", "clicks", "spend", "conversions", "revenue", "cvr", "roas", "cpa",
                              "days_active"),
    )
    result = gx_suites.run_suite(table, suite, "features_outcomes")
    return dg.AssetCheckResult(
        passed=result.success, severity=dg.AssetCheckSeverity.ERROR,
        description="features.outcomes: " + ("suite passed" if result.success else
                                              "; ".join(o.expectation for o in result.failed)),
        metadata={"failed_expectations": dg.MetadataValue.md(result.failures_markdown()),
                  "suite": dg.MetadataValue.json(result.to_metadata())},
    )


def _suite_check_result(table_name: str, table: pd.DataFrame, expected: list[str],
                        registry: FeatureRegistry, result: Any) -> dg.AssetCheckResult:
    unexpected = [c for c in table.columns if c not in set(expected)]
    missing = [c for c in expected if c not in table.columns]
    if result.success:
        description = f"{table_name}: {len(result.outcomes)} expectations passed"
    else:
        parts = []
        if unexpected:
            parts.append("columns not allowed at this stage: " + ", ".join(
                f"{c} ({r})" for c, r in explain_denied(unexpected, registry).items()))
        if missing:
            parts.append("allowed columns missing: " + ", ".join(missing))
        parts += [f"{o.expectation} failed ({o.unexpected_count or 0} unexpected)" for o in result.failed
                  if o.column is not None]
        description = f"{table_name}: " + "; ".join(parts)
    return dg.AssetCheckResult(
        passed=result.success,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description[:2000],
        metadata={
            "unexpected_columns": dg.MetadataValue.json(explain_denied(unexpected, registry)),
            "missing_columns": dg.MetadataValue.json(missing),
            "expected_columns": dg.MetadataValue.json(expected),
            "failed_expectations": dg.MetadataValue.md(result.failures_markdown()),
            "suite": dg.MetadataValue.json(result.to_metadata()),
        },
    )


def _strongest_by_column(findings: pd.DataFrame) -> pd.DataFrame:
    tested = findings.loc[findings["method"].isin(["spearman", "oof_target_encoding_auc"])].copy()
    if tested.empty:
        return tested
    # Spearman is signed, AUC is in [0, 1] with 0.5 = nothing: compare both as "strength".
    tested["strength"] = np.where(tested["method"] == "spearman", tested["statistic"].abs(), tested["statistic"])
    best = tested.sort_values("strength", ascending=False).drop_duplicates("column")
    return best[["column", "stage", "target", "method", "statistic", "threshold", "n"]].reset_index(drop=True)


# -- Dagster wiring ---------------------------------------------------------------------------

def _registry_or_failure(context: Any) -> tuple[FeatureRegistry | None, dg.AssetCheckResult | None]:
    try:
        return registry_from_context(context), None
    except RegistryError as exc:
        return None, dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR,
                                         description=f"feature registry unusable: {exc}")


def _creative_columns(warehouse: Any) -> list[str]:
    return list(warehouse.query("SELECT * FROM raw.creatives LIMIT 0").columns)


def _materialized_int(context: Any, key: dg.AssetKey, name: str, default: int) -> int:
    """An int the asset recorded in its latest materialisation metadata (e.g. its window)."""
    event = context.instance.get_latest_materialization_event(key)
    materialization = event.asset_materialization if event is not None else None
    if materialization is None or name not in materialization.metadata:
        return default
    value = materialization.metadata[name]
    return int(getattr(value, "value", value))


def _outcomes_for_sniffing(warehouse: Any, creatives: pd.DataFrame, daily: pd.DataFrame) -> pd.DataFrame:
    """features.outcomes when materialised, else the same labels computed from raw metrics."""
    outcomes = warehouse.read_optional(FEATURES_OUTCOMES)
    return build.build_outcomes(creatives, daily) if outcomes is None else outcomes


@dg.asset_check(asset=FEATURES_PRELAUNCH.key, name="prelaunch_suite", **_CHECK,
                description="GX: exactly the registry's id+prelaunch columns, unique non-null creative_id, "
                            "non-null account_id and launch_date.")
def prelaunch_suite(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    registry, failure = _registry_or_failure(context)
    if failure:
        return failure
    warehouse = context.resources.warehouse
    return prelaunch_suite_result(warehouse.read_table(FEATURES_PRELAUNCH), _creative_columns(warehouse), registry)


@dg.asset_check(asset=FEATURES_PRELAUNCH.key, name="prelaunch_leakage_sniff", **_CHECK,
                additional_deps=[FEATURES_OUTCOMES.key, RAW_CREATIVES.key, RAW_DAILY_METRICS.key],
                description="Suspected leakage: a prelaunch column whose association with the lifecycle "
                            "CTR/ROAS is implausibly strong.")
def prelaunch_leakage_sniff(context: dg.AssetCheckExecutionContext,
                            config: LeakageCheckConfig) -> dg.AssetCheckResult:
    registry, failure = _registry_or_failure(context)
    if failure:
        return failure
    warehouse = context.resources.warehouse
    creatives = warehouse.read_table(RAW_CREATIVES)
    daily = warehouse.read_table(RAW_DAILY_METRICS)
    return leakage_sniff_result(FEATURES_PRELAUNCH, warehouse.read_table(FEATURES_PRELAUNCH), registry,
                                _outcomes_for_sniffing(warehouse, creatives, daily), config.to_sniff_config())


@dg.asset_check(asset=FEATURES_EARLY.key, name="early_suite", **_CHECK,
                description="GX: exactly the registry's id+prelaunch+early columns plus the early KPIs, "
                            "unique non-null creative_id, rates in [0, 1], non-negative counts and money.")
def early_suite(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    registry, failure = _registry_or_failure(context)
    if failure:
        return failure
    warehouse = context.resources.warehouse
    return early_suite_result(warehouse.read_table(FEATURES_EARLY), _creative_columns(warehouse), registry)


@dg.asset_check(asset=FEATURES_EARLY.key, name="early_window_recomputed", **_CHECK,
                additional_deps=[RAW_CREATIVES.key, RAW_DAILY_METRICS.key],
                description="No metric row dated on or after launch + N contributed: early KPIs are "
                            "recomputed from raw.daily_metrics over days 0..N-1 and compared.")
def early_window_recomputed(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    warehouse = context.resources.warehouse
    n_days = _materialized_int(context, FEATURES_EARLY.key, EARLY_WINDOW_DAYS_KEY, DEFAULT_EARLY_DAYS)
    return early_window_result(warehouse.read_table(FEATURES_EARLY), warehouse.read_table(RAW_CREATIVES),
                               warehouse.read_table(RAW_DAILY_METRICS), n_days)


@dg.asset_check(asset=FEATURES_EARLY.key, name="early_leakage_sniff", **_CHECK,
                additional_deps=[FEATURES_OUTCOMES.key, RAW_CREATIVES.key, RAW_DAILY_METRICS.key],
                description="Suspected leakage: prelaunch columns vs lifecycle outcome; early columns vs the "
                            "outcome after the early window, relative to honest early KPIs.")
def early_leakage_sniff(context: dg.AssetCheckExecutionContext,
                        config: LeakageCheckConfig) -> dg.AssetCheckResult:
    registry, failure = _registry_or_failure(context)
    if failure:
        return failure
    warehouse = context.resources.warehouse
    n_days = _materialized_int(context, FEATURES_EARLY.key, EARLY_WINDOW_DAYS_KEY, DEFAULT_EARLY_DAYS)
    creatives = warehouse.read_table(RAW_CREATIVES)
    daily = warehouse.read_table(RAW_DAILY_METRICS)
    return leakage_sniff_result(FEATURES_EARLY, warehouse.read_table(FEATURES_EARLY), registry,
                                _outcomes_for_sniffing(warehouse, creatives, daily), config.to_sniff_config(),
                                creatives=creatives, daily_metrics=daily, n_days=n_days)


@dg.asset_check(asset=FEATURES_OUTCOMES.key, name="outcomes_suite", **_CHECK,
                description="GX: unique creative_id, non-null totals and mature_date, rates in range.")
def outcomes_suite(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    table = context.resources.warehouse.read_table(FEATURES_OUTCOMES)
    result = outcomes_suite_result(table)
    maturity = _materialized_int(context, FEATURES_OUTCOMES.key, MATURITY_DAYS_KEY, build.DEFAULT_MATURITY_DAYS)
    return dg.AssetCheckResult(passed=result.passed, severity=result.severity, description=result.description,
                               metadata={**result.metadata, MATURITY_DAYS_KEY: dg.MetadataValue.int(maturity)})
