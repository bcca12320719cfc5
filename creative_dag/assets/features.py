"""Feature assets (docs/features.md): features.registry, features.prelaunch, features.early, features.outcomes.

Thin wrappers: read raw tables, call creative_dag.features, write through the warehouse resource.
Blocking checks guarding them live in creative_dag/checks/features.py.
"""


import dagster as dg
import pandas as pd
from pydantic import Field

from creative_dag.assets.metadata import counts_markdown, table_metadata
from creative_dag.catalog import (
    FEATURES_EARLY,
    FEATURES_OUTCOMES,
    FEATURES_PRELAUNCH,
    FEATURES_REGISTRY,
    RAW_CREATIVES,
    RAW_DAILY_METRICS,
)
from creative_dag.features import build
from creative_dag.features.early_window import DEFAULT_EARLY_DAYS
from creative_dag.features.registry import (
    SOURCE_DEFAULT_DENY,
    SOURCE_LANDING,
    load_registry,
)

# Metadata keys the checks read back (the window a table was built with).
EARLY_WINDOW_DAYS_KEY = "early_window_days"
MATURITY_DAYS_KEY = "maturity_days"

_COMMON = {"group_name": "features", "kinds": {"duckdb", "python"}, "pool": "warehouse"}


class EarlyFeaturesConfig(dg.Config):
    """n_days: length of the early window in days (launch_date .. launch_date + n_days - 1)."""

    n_days: int = Field(DEFAULT_EARLY_DAYS, description="Length of the early window in days (launch_date .. "
                                                          "launch_date + n_days - 1).")


class OutcomesConfig(dg.Config):
    """maturity_days: days after launch when an outcome counts as known (mature_date)."""

    maturity_days: int = Field(build.DEFAULT_MATURITY_DAYS, description="Days after launch when an outcome counts "
                                                                         "as known (mature_date).")


def _landing_root(context: dg.AssetExecutionContext) -> str | None:
    return getattr(context.resources.landing, "root", None)


def _columns(warehouse, table: str) -> list[str]:
    return list(warehouse.query(f"SELECT * FROM {table} LIMIT 0").columns)


@dg.asset(key=FEATURES_REGISTRY.key, deps=[RAW_CREATIVES.key, RAW_DAILY_METRICS.key],
          required_resource_keys={"warehouse", "landing"}, **_COMMON,
          description="The effective feature registry: every column's stage, where the entry came from "
                      "(shipped / landing / default-deny) and which raw columns are unregistered.")
def features_registry(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    warehouse = context.resources.warehouse
    registry = load_registry(_landing_root(context))
    raw_columns = {t: _columns(warehouse, t) for t in (RAW_CREATIVES, RAW_DAILY_METRICS) if warehouse.exists(t)}
    table = registry.to_frame(raw_columns)
    warehouse.write_table(FEATURES_REGISTRY, table)
    unregistered = table.loc[table["source"] == SOURCE_DEFAULT_DENY, "column"].tolist()
    overridden = table.loc[table["source"] == SOURCE_LANDING, ["column", "shipped_stage", "stage"]]
    return dg.MaterializeResult(metadata=table_metadata(
        FEATURES_REGISTRY, table, preview_rows=60,
        columns_by_stage=counts_markdown(table["stage"].value_counts().to_dict(), "stage", "columns"),
        unregistered_raw_columns=dg.MetadataValue.json(unregistered),
        landing_overrides=overridden,
        landing_registry_file=registry.landing_file or "(none: shipped registry only)",
    ))


@dg.asset(key=FEATURES_PRELAUNCH.key, deps=[RAW_CREATIVES.key, FEATURES_REGISTRY.key],
          required_resource_keys={"warehouse", "landing"}, **_COMMON,
          description="One row per creative: id + prelaunch columns only (what is known before launch).")
def features_prelaunch(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    warehouse = context.resources.warehouse
    registry = load_registry(_landing_root(context))
    creatives = warehouse.read_table(RAW_CREATIVES)
    table, selection = build.build_prelaunch(creatives, registry)
    warehouse.write_table(FEATURES_PRELAUNCH, table)
    return dg.MaterializeResult(metadata=table_metadata(
        FEATURES_PRELAUNCH, table,
        kept_columns=dg.MetadataValue.json(selection.kept),
        denied_registered_columns=dg.MetadataValue.json(selection.denied_registered),
        denied_unregistered_columns=dg.MetadataValue.json(selection.denied_unregistered),
    ))


@dg.asset(key=FEATURES_EARLY.key, deps=[RAW_CREATIVES.key, RAW_DAILY_METRICS.key, FEATURES_REGISTRY.key],
          required_resource_keys={"warehouse", "landing"}, **_COMMON,
          description="Prelaunch columns + KPIs of the first N days after launch (default 3), only for "
                      "creatives whose N days are all in the data.")
def features_early(context: dg.AssetExecutionContext, config: EarlyFeaturesConfig) -> dg.MaterializeResult:
    warehouse = context.resources.warehouse
    registry = load_registry(_landing_root(context))
    creatives = warehouse.read_table(RAW_CREATIVES)
    daily = warehouse.read_table(RAW_DAILY_METRICS)
    table, selection = build.build_early(creatives, daily, registry, config.n_days)
    warehouse.write_table(FEATURES_EARLY, table)
    horizon = build.horizon_date(daily)
    return dg.MaterializeResult(metadata=table_metadata(
        FEATURES_EARLY, table,
        **{EARLY_WINDOW_DAYS_KEY: int(config.n_days)},
        last_metric_date=str(horizon) if horizon else "(no metrics)",
        creatives_without_complete_window=int(len(creatives) - len(table)),
        denied_registered_columns=dg.MetadataValue.json(selection.denied_registered),
        denied_unregistered_columns=dg.MetadataValue.json(selection.denied_unregistered),
    ))


@dg.asset(key=FEATURES_OUTCOMES.key, deps=[RAW_CREATIVES.key, RAW_DAILY_METRICS.key],
          required_resource_keys={"warehouse"}, **_COMMON,
          description="Lifecycle labels per creative from raw.daily_metrics (never the export's lifetime "
                      "columns): totals, CTR/CVR/ROAS/CPA, days active, first/last date, mature_date.")
def features_outcomes(context: dg.AssetExecutionContext, config: OutcomesConfig) -> dg.MaterializeResult:
    warehouse = context.resources.warehouse
    creatives = warehouse.read_table(RAW_CREATIVES)
    daily = warehouse.read_table(RAW_DAILY_METRICS)
    table = build.build_outcomes(creatives, daily, config.maturity_days)
    warehouse.write_table(FEATURES_OUTCOMES, table)
    delivered = table["impressions"] > 0
    return dg.MaterializeResult(metadata=table_metadata(
        FEATURES_OUTCOMES, table,
        **{MATURITY_DAYS_KEY: int(config.maturity_days)},
        mature_creatives=int(table["is_mature"].sum()),
        creatives_without_delivery=int((~delivered).sum()),
        median_ctr=float(pd.to_numeric(table.loc[delivered, "ctr"]).median()) if delivered.any() else float("nan"),
    ))
