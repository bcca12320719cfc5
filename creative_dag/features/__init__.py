"""Feature layer (docs/features.md): the registry of column stages, stage-filtered feature tables,
lifecycle labels, early-window verification and suspected-leakage sniffing. Plain pandas, no I/O
beyond reading registry files."""

from creative_dag.features.build import (
    DEFAULT_MATURITY_DAYS,
    OUTCOME_COLUMNS,
    build_early,
    build_outcomes,
    build_prelaunch,
    early_stage_columns,
    post_window_outcomes,
    prelaunch_stage_columns,
)
from creative_dag.features.early_window import (
    DEFAULT_EARLY_DAYS,
    EARLY_KPI_COLUMNS,
    EarlyWindowReport,
    early_kpis,
    verify_early_window,
)
from creative_dag.features.leakage_sniff import (
    LeakageSniffConfig,
    sniff_leakage,
    suspected,
)
from creative_dag.features.registry import (
    EARLY,
    ID,
    LIFECYCLE,
    PRELAUNCH,
    STAGES,
    FeatureRegistry,
    RegistryError,
    load_registry,
    load_shipped_registry,
)

__all__ = [
    "DEFAULT_EARLY_DAYS",
    "DEFAULT_MATURITY_DAYS",
    "EARLY",
    "EARLY_KPI_COLUMNS",
    "ID",
    "LIFECYCLE",
    "OUTCOME_COLUMNS",
    "PRELAUNCH",
    "STAGES",
    "EarlyWindowReport",
    "FeatureRegistry",
    "LeakageSniffConfig",
    "RegistryError",
    "build_early",
    "build_outcomes",
    "build_prelaunch",
    "early_kpis",
    "early_stage_columns",
    "load_registry",
    "load_shipped_registry",
    "post_window_outcomes",
    "prelaunch_stage_columns",
    "sniff_leakage",
    "suspected",
    "verify_early_window",
]
