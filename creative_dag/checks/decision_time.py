"""A reusable blocking decision-time column check for any stage's asset (docs/features.md).

Every decision-time table (features.prelaunch / .early, embeddings.*, cbr.case_base) may carry only
columns known at decision time (the candidate tables are outputs; docs/conventions.md says how their
as-of guarantee is tested). `decision_time_check` builds a
blocking Dagster asset check that compares the table's columns with an allowed set derived from
the effective feature registry (shipped + landing `feature_registry.json`), plus columns the
stage derives itself and names explicitly (vectors, model ids, image attributes). A column that
is neither is denied (deny by default) and the check fails, which stops the downstream graph.

Usage in another stage's checks module::

    from creative_dag.checks.decision_time import EMBEDDING_COLUMNS, decision_time_check

    visual_columns_check = decision_time_check(
        ["embeddings", "visual"], "embeddings.visual",
        extra_allowed=EMBEDDING_COLUMNS + ("dominant_hue_family", "warm_share", "brightness"),
    )

Names the registry marks `lifecycle` may be allowed through `extra_allowed` (for example a case
base that stores mature outcomes for as-of retrieval); the check then lists them in its metadata
so the exception stays visible. The contract's known leaky export columns are never allowed.
"""


from collections.abc import Callable, Iterable
from typing import Any

import dagster as dg
import pandas as pd

from creative_dag.contract import KNOWN_LEAKY_EXPORT_COLUMNS
from creative_dag.features.registry import (
    LIFECYCLE,
    PRELAUNCH_STAGES,
    FeatureRegistry,
    RegistryError,
    load_registry,
)
from creative_dag.resources.warehouse import split_table_name

# Non-registry columns every embeddings.<block> table carries (docs/operations.md).
EMBEDDING_COLUMNS: tuple[str, ...] = ("creative_id", "sha256", "launch_date", "model_id", "model_version", "vector")

AllowedColumns = Callable[[FeatureRegistry], Iterable[str]] | Iterable[str] | None


def allowed_column_set(registry: FeatureRegistry, allowed_columns: AllowedColumns = None,
                       extra_allowed: Iterable[str] = (),
                       stages: Iterable[str] = PRELAUNCH_STAGES) -> set[str]:
    """The allowed set: `allowed_columns(registry)` (or the given names, or the registry's columns
    in `stages` when None) plus `extra_allowed`, minus the contract's known leaky export columns."""
    if allowed_columns is None:
        base = registry.columns_in(stages)
    elif callable(allowed_columns):
        base = set(allowed_columns(registry))
    else:
        base = set(allowed_columns)
    return (base | set(extra_allowed)) - set(KNOWN_LEAKY_EXPORT_COLUMNS)


def explain_denied(columns: Iterable[str], registry: FeatureRegistry) -> dict[str, str]:
    """Why each denied column is denied, in words a data engineer can act on."""
    reasons = {}
    for c in columns:
        if c in KNOWN_LEAKY_EXPORT_COLUMNS:
            reasons[c] = "known leaky export column (contract); measured after launch"
        elif not registry.is_registered(c):
            reasons[c] = "not in the feature registry: lifecycle by default; register it to allow it"
        else:
            e = registry.entries[c]
            reasons[c] = f"registered {e.stage!r} ({e.source}) — not allowed at this decision time"
    return reasons


def column_check_result(table_name: str, frame: pd.DataFrame, registry: FeatureRegistry,
                        allowed: set[str], key: str | None = "creative_id",
                        explicitly_allowed: Iterable[str] = ()) -> dg.AssetCheckResult:
    """Run the GX column suite on `frame` and turn it into a check result.

    The suite is "columns exactly = the table's allowed columns" (GX ExpectTableColumnsToMatchSet,
    exact_match): every observed column outside `allowed` is reported unexpected. With `key`, the
    key is also unique and non-null. `frame` may hold only the key column's values plus zero-row
    stand-ins for the others (see `_load_for_column_check`).
    """
    from creative_dag.checks import gx_suites

    observed = list(frame.columns)
    denied = [c for c in observed if c not in allowed]
    expectations = [gx_suites.columns_exactly([c for c in observed if c in allowed])]
    if key is not None:
        expectations += [gx_suites.not_null(key), gx_suites.unique(key)]
    result = gx_suites.run_suite(frame, expectations, suite_name=table_name.replace(".", "_") + "_decision_time")
    lifecycle_allowed = sorted(c for c in set(explicitly_allowed) & set(observed)
                               if registry.is_registered(c) and registry.stage_of(c) == LIFECYCLE)
    reasons = explain_denied(denied, registry)
    description = (f"{table_name}: {len(denied)} column(s) not allowed at decision time: "
                   + ", ".join(f"{c} ({r})" for c, r in reasons.items())) if denied else (
        f"{table_name}: all {len(observed)} columns allowed at decision time")
    if not result.success and not denied:
        description = f"{table_name}: " + "; ".join(o.expectation for o in result.failed)
    return dg.AssetCheckResult(
        passed=result.success,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={
            "denied_columns": dg.MetadataValue.json(reasons),
            "observed_columns": dg.MetadataValue.json(observed),
            "allowed_lifecycle_columns_by_exception": dg.MetadataValue.json(lifecycle_allowed),
            "failed_expectations": dg.MetadataValue.md(result.failures_markdown()),
            "suite": dg.MetadataValue.json(result.to_metadata()),
            "registry_landing_file": dg.MetadataValue.text(registry.landing_file or "(none: shipped registry only)"),
        },
    )


def registry_from_context(context: Any) -> FeatureRegistry:
    """The effective registry for a run: shipped + the `landing` resource's feature_registry.json."""
    landing = getattr(context.resources, "landing", None)
    root = getattr(landing, "root", None) if landing is not None else None
    return load_registry(root)


def decision_time_check(asset_key: dg.AssetKey | str | list[str], table: str,
                        allowed_columns: AllowedColumns = None,
                        extra_allowed: Iterable[str] = (),
                        stages: Iterable[str] = PRELAUNCH_STAGES,
                        key: str | None = "creative_id",
                        name: str = "decision_time_columns",
                        additional_deps: Iterable[dg.AssetKey] = ()) -> dg.AssetChecksDefinition:
    """A blocking asset check: `table` carries only columns allowed at decision time.

    asset_key: the asset guarded (e.g. ["embeddings", "visual"]); table: its warehouse table
    ("embeddings.visual"). allowed_columns: a callable registry -> names, a set of names, or None
    for "registry columns in `stages`" (id + prelaunch by default; pass EARLY_STAGES for tables
    used at launch + N). extra_allowed: non-registry columns the stage derives itself (vectors,
    model ids, image attributes) — listed explicitly so anything else is denied. key: a column
    that must be unique and non-null (None to skip). Needs resources `warehouse` and `landing`.
    """
    split_table_name(table)  # fail at definition time on a malformed name (it is put into SQL)
    asset_key = dg.AssetKey.from_coercible(asset_key)
    extra = tuple(extra_allowed)
    stage_set = frozenset(stages)

    @dg.asset_check(
        asset=asset_key,
        name=name,
        blocking=True,
        description=(f"{table} carries only columns allowed at decision time (registry stages "
                     f"{sorted(stage_set)} plus {len(extra)} named derived columns); GX column-set suite."),
        required_resource_keys={"warehouse", "landing"},
        additional_deps=list(additional_deps),
        pool="warehouse",
    )
    def _decision_time_check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        warehouse = context.resources.warehouse
        try:
            registry = registry_from_context(context)
        except RegistryError as exc:
            return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR,
                                       description=f"feature registry unusable: {exc}")
        with warehouse.reading() as db:
            if not db.exists(table):
                return dg.AssetCheckResult(
                    passed=False, severity=dg.AssetCheckSeverity.ERROR,
                    description=f"{table} does not exist in the warehouse; materialise {asset_key.to_user_string()}")
            frame = _load_for_column_check(db, table, key)
        allowed = allowed_column_set(registry, allowed_columns, extra, stage_set)
        return column_check_result(table, frame, registry, allowed, key=key, explicitly_allowed=extra)

    return _decision_time_check


def _load_for_column_check(warehouse: Any, table: str, key: str | None) -> pd.DataFrame:
    """All column names of `table`, with the key column's values (others all-null).

    Why not the whole table: embeddings and case bases hold vectors; the column suite needs only
    the names, and the key checks need only the key.
    """
    header = warehouse.query(f"SELECT * FROM {table} LIMIT 0")
    if key is None or key not in header.columns:
        return header
    keys = warehouse.query(f'SELECT "{key}" FROM {table}')
    frame = pd.DataFrame({c: pd.Series([None] * len(keys), dtype="object") for c in header.columns})
    frame[key] = keys[key].to_numpy()
    return frame
