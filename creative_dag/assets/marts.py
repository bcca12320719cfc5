"""Decision marts (docs/marts.md): ranking, fatigue, repetition, recommendations, account health, landscape.

Thin wrappers: read warehouse tables, call creative_dag.marts, write through the warehouse
resource, return metadata with the stage's key figures. An optional input that is missing
(no embeddings because every image block is unavailable, no cbr.neighbors yet) degrades the
mart gracefully and says so in `degraded` metadata; it never crashes the run.
"""


import base64
from pathlib import Path

import dagster as dg
import pandas as pd

from creative_dag.assets.keys import (
    CBR_NEIGHBORS,
    EMBEDDING_KEYS,
    FEATURES_PRELAUNCH,
    MARTS_ACCOUNT_HEALTH,
    MARTS_CREATIVE_FATIGUE,
    MARTS_CREATIVE_FATIGUE_DAILY,
    MARTS_CREATIVE_LANDSCAPE,
    MARTS_CREATIVE_RANKING,
    MARTS_CREATIVE_REPETITION,
    MARTS_LANDSCAPE_CLUSTERS,
    MARTS_RECOMMENDATIONS,
    MARTS_TIRED_OR_REPETITIVE,
    RAW_CREATIVES,
    RAW_DAILY_METRICS,
)
from creative_dag.assets.metadata import counts_markdown, table_metadata
from creative_dag.blocks import DEFAULT_WEIGHTS, EMBEDDING_BLOCKS
from creative_dag.marts import fatigue as fatigue_mod
from creative_dag.marts.attributes import attribute_frame
from creative_dag.marts.health import account_health
from creative_dag.marts.landscape import (
    LandscapeParams,
    cluster_summary,
    landscape_coordinates,
    plot_landscape,
)
from creative_dag.marts.ranking import RankingParams, creative_totals, rank_creatives
from creative_dag.marts.recommendations import (
    RecommendationParams,
    attribute_effects,
    recommend,
)
from creative_dag.marts.repetition import (
    RepetitionParams,
    creative_repetition,
    tired_or_repetitive,
)
from creative_dag.marts.similarity import BlockVectors
from creative_dag.settings import HomeLayout

_COMMON = dict(group_name="marts", kinds={"duckdb", "python"}, pool="warehouse")
_SPEC = dict(group_name="marts", kinds={"duckdb", "python"})  # multi-asset specs; the pool is on the multi_asset
CREATIVE_COLUMNS = ("creative_id", "account_id", "campaign_id", "launch_date", "platform", "placement", "format",
                    "audience", "objective", "country", "cta", "product_category")
# Marts compare images, so the context block (same campaign settings) is left out of their similarity.
IMAGE_WEIGHTS = {b: w for b, w in DEFAULT_WEIGHTS.items() if b in EMBEDDING_BLOCKS}


# -- configs ---------------------------------------------------------------------------------
class RankingConfig(dg.Config):
    """Composite weights per metric (log-lift vs account prior) and the LEARNING thresholds."""

    weight_ctr: float = 1.0
    weight_cvr: float = 1.0
    weight_roas: float = 1.0
    weight_cpa: float = 0.5
    min_impressions: float = 2000.0
    min_spend: float = 10.0
    best_share: float = 0.2
    best_confidence: float = 0.8


class FatigueConfig(dg.Config):
    """Change-point and status thresholds (see creative_dag.marts.fatigue.FatigueParams).

    alpha: an onset is reported only when its Bayes factor against a constant CTR is >= 1/alpha.
    """

    alpha: float = 0.2
    min_drop: float = 0.1
    fatigued_drop: float = 0.4
    cpa_multiple: float = 2.0
    min_clicks: float = 100.0


class RepetitionConfig(dg.Config):
    """Density and family thresholds (see creative_dag.marts.repetition.RepetitionParams).

    min_evidence: mean per-block evidence (-log10 share of unrelated pairs as similar) of a variant
    pair; min_evidence_blocks: fewest shared blocks for that rule (fewer: fused >= dup_threshold only).
    """

    tau: float = 0.85
    dup_threshold: float = 0.92
    window_days: int = 28
    density_threshold: int = 3
    min_evidence: float = 2.0
    min_evidence_blocks: int = 3


class RecommendationsConfig(dg.Config):
    """Finding thresholds (see creative_dag.marts.recommendations.RecommendationParams).

    top_n: rows per scope in the default view (`shown`); the rest stay in the table with their rank.
    """

    fdr: float = 0.05
    min_support: int = 8
    min_lift: float = 0.03
    combinations: bool = True
    min_prevalence: float = 0.05
    min_stability: float = 0.6
    n_resamples: int = 50
    top_n: int = 10


# -- loading helpers ---------------------------------------------------------------------------
def _optional(warehouse, table: str) -> pd.DataFrame | None:
    return warehouse.read_table(table) if warehouse.exists(table) else None


def _creatives(warehouse) -> pd.DataFrame:
    table = "features.prelaunch" if warehouse.exists("features.prelaunch") else "raw.creatives"
    frame = warehouse.read_table(table)
    return frame[[c for c in CREATIVE_COLUMNS if c in frame.columns]]


def embedding_tables_of(warehouse) -> dict[str, pd.DataFrame]:
    """block -> its non-empty embeddings.<block> table."""
    out = {}
    for block in EMBEDDING_BLOCKS:
        frame = _optional(warehouse, f"embeddings.{block}")
        if frame is not None and len(frame):
            out[block] = frame
    return out


def attribute_frame_of(warehouse) -> pd.DataFrame:
    """The interpretable attribute frame of every creative in the warehouse (recommendations, forecast, CLI)."""
    return attribute_frame(embedding_tables_of(warehouse), _creatives(warehouse))


def _vectors(warehouse, ids: list[str]) -> tuple[BlockVectors | None, str | None]:
    tables = embedding_tables_of(warehouse)
    if not tables:
        return None, "no embeddings.* rows (every image block unavailable or not materialised)"
    vectors = BlockVectors.from_tables(ids, tables)
    if not vectors.available:
        return None, "embeddings tables hold no vectors for these creatives"
    return vectors, None


def _reports_dir(warehouse) -> Path:
    """$CREATIVE_DAG_HOME/reports, beside the warehouse file."""
    return HomeLayout.of_database(warehouse.database).reports


def _md_list(lines: list[str]) -> dg.MetadataValue:
    return dg.MetadataValue.md("\n".join(f"- {line}" for line in lines) if lines else "_none_")


# -- assets ------------------------------------------------------------------------------------
@dg.asset(key=MARTS_CREATIVE_RANKING, deps=[RAW_DAILY_METRICS, RAW_CREATIVES, FEATURES_PRELAUNCH, CBR_NEIGHBORS], required_resource_keys={"warehouse"},
          **_COMMON, description="Per creative: empirical-Bayes shrunk CTR/CVR/ROAS/CPA, composite score, rank in "
                                 "account and campaign, tier BEST/GOOD/LOW/LEARNING, confidence, winner flag.")
def creative_ranking(context: dg.AssetExecutionContext, config: RankingConfig) -> dg.MaterializeResult:
    warehouse = context.resources.warehouse
    creatives = _creatives(warehouse)
    daily = warehouse.read_table("raw.daily_metrics")
    neighbors = _optional(warehouse, "cbr.neighbors")
    params = RankingParams(weights={"ctr": config.weight_ctr, "cvr": config.weight_cvr, "roas": config.weight_roas,
                                    "cpa": config.weight_cpa},
                           min_impressions=config.min_impressions, min_spend=config.min_spend,
                           best_share=config.best_share, best_confidence=config.best_confidence)
    table = rank_creatives(creative_totals(daily, creatives), params, neighbors)
    warehouse.write_table("marts.creative_ranking", table)
    tiers = table["tier"].value_counts().reindex(["BEST", "GOOD", "LOW", "LEARNING"], fill_value=0)
    return dg.MaterializeResult(metadata=table_metadata(
        table, **{f"n_{t.lower()}": int(n) for t, n in tiers.items()},
        n_winners=int(table["is_winner"].sum()),
        explanations_use_neighbors=neighbors is not None,
        degraded="" if neighbors is not None else "cbr.neighbors missing: explanations list no similar creatives",
        top_per_account=table[table["rank_in_account"] <= 3][["account_id", "rank_in_account", "creative_id", "tier",
                                                               "score", "confidence", "explanation"]]))


@dg.multi_asset(
    specs=[dg.AssetSpec(MARTS_CREATIVE_FATIGUE_DAILY, deps=[RAW_DAILY_METRICS, RAW_CREATIVES, FEATURES_PRELAUNCH], **_SPEC,
                        description="Creative-day: rolling CTR/CPA, cumulative impressions and spend, frequency."),
           dg.AssetSpec(MARTS_CREATIVE_FATIGUE, deps=[MARTS_CREATIVE_FATIGUE_DAILY, MARTS_CREATIVE_RANKING], **_SPEC,
                        description="Per creative: early peak, current vs peak, change-point fatigue onset, status "
                                    "fresh/stable/fatiguing/fatigued, days to fatigue.")],
    required_resource_keys={"warehouse"}, name="creative_fatigue", pool="warehouse",
)
def creative_fatigue(context: dg.AssetExecutionContext, config: FatigueConfig):
    warehouse = context.resources.warehouse
    creatives = _creatives(warehouse)
    daily = warehouse.read_table("raw.daily_metrics")
    params = fatigue_mod.FatigueParams(alpha=config.alpha, min_drop=config.min_drop,
                                       fatigued_drop=config.fatigued_drop, cpa_multiple=config.cpa_multiple,
                                       min_clicks=config.min_clicks)
    daily_table = fatigue_mod.fatigue_daily(daily, creatives, params)
    summary = fatigue_mod.fatigue_summary(daily_table, creatives, params)
    warehouse.write_table("marts.creative_fatigue_daily", daily_table)
    warehouse.write_table("marts.creative_fatigue", summary)
    ranking = _optional(warehouse, "marts.creative_ranking")
    rate = fatigue_mod.account_fatigue_rate(daily_table, ranking) if ranking is not None else pd.DataFrame()
    yield dg.MaterializeResult(asset_key=MARTS_CREATIVE_FATIGUE_DAILY, metadata=table_metadata(
        daily_table, has_frequency=bool(daily_table["frequency"].notna().any())))
    status = summary["status"].value_counts().reindex(list(fatigue_mod.STATUSES), fill_value=0)
    yield dg.MaterializeResult(asset_key=MARTS_CREATIVE_FATIGUE, metadata=table_metadata(
        summary, **{f"n_{s}": int(n) for s, n in status.items()},
        median_days_to_fatigue=float(summary["days_to_fatigue"].median()) if summary["days_to_fatigue"].notna().any()
        else float("nan"),
        n_cpa_rule=int(summary["cpa_rule_triggered"].sum()),
        account_fatigue_rate=rate if len(rate) else "marts.creative_ranking missing: no winners to measure",
    ))


@dg.multi_asset(
    specs=[dg.AssetSpec(MARTS_CREATIVE_REPETITION, deps=[RAW_CREATIVES, FEATURES_PRELAUNCH, *EMBEDDING_KEYS], **_SPEC,
                        description="Per creative: similarity density, creative family (variants) with the "
                                    "per-block evidence (blocks that agree / differ), repetition flag."),
           dg.AssetSpec(MARTS_TIRED_OR_REPETITIVE, deps=[MARTS_CREATIVE_REPETITION, MARTS_CREATIVE_FATIGUE], **_SPEC,
                        description="Per creative: tired (fatiguing/fatigued) or repetitive, with the reason.")],
    required_resource_keys={"warehouse"}, name="creative_repetition", pool="warehouse",
)
def creative_repetition_assets(context: dg.AssetExecutionContext, config: RepetitionConfig):
    warehouse = context.resources.warehouse
    creatives = _creatives(warehouse)
    vectors, reason = _vectors(warehouse, creatives["creative_id"].astype(str).tolist())
    if vectors is None:
        vectors = BlockVectors(creatives["creative_id"].astype(str).tolist(), {}, {})
    params = RepetitionParams(tau=config.tau, dup_threshold=config.dup_threshold, window_days=config.window_days,
                              density_threshold=config.density_threshold, weights=IMAGE_WEIGHTS,
                              min_evidence=config.min_evidence, min_evidence_blocks=config.min_evidence_blocks)
    table = creative_repetition(creatives, vectors, params)
    fatigue = _optional(warehouse, "marts.creative_fatigue")
    tired = tired_or_repetitive(table, fatigue)
    warehouse.write_table("marts.creative_repetition", table)
    warehouse.write_table("marts.tired_or_repetitive", tired)
    n_clusters = int(table["family_id"].nunique())
    differ = table["blocks_differ"].dropna().str.split(", ").explode()
    yield dg.MaterializeResult(asset_key=MARTS_CREATIVE_REPETITION, metadata=table_metadata(
        table, n_clusters=n_clusters, n_in_clusters=int(table["family_id"].notna().sum()),
        n_repetitive=int(table["is_repetitive"].sum()), blocks_used=", ".join(vectors.available) or "none",
        family_members_by_differing_block=counts_markdown(differ[differ != ""].value_counts(), "block", "members"),
        degraded=reason or ""))
    yield dg.MaterializeResult(asset_key=MARTS_TIRED_OR_REPETITIVE, metadata=table_metadata(
        tired, n_tired_or_repetitive=int(tired["tired_or_repetitive"].sum()), n_tired=int(tired["is_tired"].sum()),
        degraded="" if fatigue is not None else "marts.creative_fatigue missing: repetition only"))


@dg.asset(key=MARTS_RECOMMENDATIONS, deps=[MARTS_CREATIVE_RANKING, MARTS_CREATIVE_REPETITION, FEATURES_PRELAUNCH, CBR_NEIGHBORS, *EMBEDDING_KEYS],
          required_resource_keys={"warehouse"}, **_COMMON,
          description="Per account and ALL: a short ranked list of distinct DO / DON'T / TEST findings over "
                      "interpretable attributes (one row per cause, effects on every metric as columns), with CI, "
                      "q-value, support, stability, expected impact, evidence creatives and a sentence.")
def recommendations(context: dg.AssetExecutionContext, config: RecommendationsConfig) -> dg.MaterializeResult:
    warehouse = context.resources.warehouse
    creatives = _creatives(warehouse)
    ranking = warehouse.read_table("marts.creative_ranking")
    attrs = attribute_frame(embedding_tables_of(warehouse), creatives)
    perf = ranking.merge(creatives.drop(columns=["account_id", "campaign_id"], errors="ignore"),
                         on="creative_id", how="left")
    repetition = _optional(warehouse, "marts.creative_repetition")
    if repetition is not None:
        perf = perf.merge(repetition[["creative_id", "near_duplicate_cluster"]], on="creative_id", how="left")
    neighbors = _optional(warehouse, "cbr.neighbors")
    params = RecommendationParams(fdr=config.fdr, min_support=config.min_support, min_lift=config.min_lift,
                                  combinations=config.combinations, min_prevalence=config.min_prevalence,
                                  min_stability=config.min_stability, n_resamples=config.n_resamples,
                                  top_n=config.top_n)
    degraded = []
    if perf.empty or attrs.shape[1] <= 1:
        degraded.append("no creatives (raw.creatives is empty)" if perf.empty
                        else "no interpretable attributes (no embeddings and no context columns)")
        effects, table = pd.DataFrame(), recommend(pd.DataFrame({"creative_id": pd.Series(dtype=object)}),
                                                   perf.iloc[:0], params)
    else:
        effects = attribute_effects(attrs, perf, params)
        table = recommend(attrs, perf, params, neighbors=neighbors, effects=effects)
    if neighbors is None:
        degraded.append("cbr.neighbors missing: TEST rows use the winners themselves instead of their neighbours")
    n_tests = int(table.attrs.get("n_tests", len(effects)))
    warehouse.write_table("marts.recommendations", table)
    counts = table["recommendation"].value_counts().reindex(["DO", "DON'T", "TEST"], fill_value=0)
    shown = table[table["shown"]].assign(_all=table["scope"].eq("ALL")).sort_values(
        ["_all", "rank"], ascending=[False, True])
    return dg.MaterializeResult(metadata=table_metadata(
        table, n_do=int(counts["DO"]), n_dont=int(counts["DON'T"]), n_test=int(counts["TEST"]),
        n_shown=int(table["shown"].sum()), n_tests_run=n_tests, n_attribute_columns=int(attrs.shape[1] - 1),
        fdr=float(config.fdr),
        rows_per_scope=counts_markdown(table["scope"].value_counts(), "scope", "rows"),
        attribute_sources=counts_markdown(pd.Series(attrs.attrs.get("sources", {})).value_counts(), "block",
                                          "attributes"),
        top_sentences=_md_list(shown["sentence"].head(8).tolist()),
        degraded="; ".join(degraded)))


@dg.asset(key=MARTS_ACCOUNT_HEALTH, deps=[RAW_DAILY_METRICS, RAW_CREATIVES, FEATURES_PRELAUNCH, MARTS_CREATIVE_FATIGUE, MARTS_CREATIVE_RANKING, *EMBEDDING_KEYS],
          required_resource_keys={"warehouse"}, **_COMMON,
          description="Per account per week: creative velocity, freshness rate, fatigued spend share, thumb-stop "
                      "ratio, creative diversity, winners' spend share, creative fatigue rate.")
def account_health_asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    warehouse = context.resources.warehouse
    creatives = _creatives(warehouse)
    daily = warehouse.read_table("raw.daily_metrics")
    fatigue = _optional(warehouse, "marts.creative_fatigue")
    ranking = _optional(warehouse, "marts.creative_ranking")
    vectors, reason = _vectors(warehouse, creatives["creative_id"].astype(str).tolist())
    rate = None
    if ranking is not None and warehouse.exists("marts.creative_fatigue_daily"):
        rate = fatigue_mod.account_fatigue_rate(warehouse.read_table("marts.creative_fatigue_daily"), ranking)
    table = account_health(daily, creatives, fatigue, ranking, vectors, rate)
    warehouse.write_table("marts.account_health", table)
    latest = table.sort_values("week_start").groupby("account_id").tail(1)
    degraded = [r for r in (reason and f"creative_diversity is NaN: {reason}",
                            fatigue is None and "marts.creative_fatigue missing",
                            ranking is None and "marts.creative_ranking missing") if r]
    return dg.MaterializeResult(metadata=table_metadata(table, latest_week_per_account=latest,
                                                        degraded="; ".join(degraded)))


@dg.multi_asset(
    specs=[dg.AssetSpec(MARTS_CREATIVE_LANDSCAPE, deps=[RAW_CREATIVES, FEATURES_PRELAUNCH, MARTS_CREATIVE_RANKING, MARTS_CREATIVE_FATIGUE, *EMBEDDING_KEYS], **_SPEC,
                        description="Per creative: deterministic 2-D map (UMAP, PCA under 15 creatives) and cluster."),
           dg.AssetSpec(MARTS_LANDSCAPE_CLUSTERS, deps=[MARTS_CREATIVE_LANDSCAPE], **_SPEC,
                        description="Per landscape cluster: name (what distinguishes it), size, spend share, "
                                    "mean and median score, dominant attributes, share fatigued.")],
    required_resource_keys={"warehouse"}, name="creative_landscape", pool="warehouse",
)
def creative_landscape(context: dg.AssetExecutionContext):
    warehouse = context.resources.warehouse
    creatives = _creatives(warehouse)
    ids = creatives["creative_id"].astype(str).tolist()
    vectors, reason = _vectors(warehouse, ids)
    if vectors is None:
        coords = pd.DataFrame({"creative_id": pd.Series(dtype="object"), "x": pd.Series(dtype="float64"),
                               "y": pd.Series(dtype="float64"), "cluster": pd.Series(dtype="int64"),
                               "method": pd.Series(dtype="object")})
    else:
        have = vectors.has_any()
        kept = [i for i, h in zip(vectors.ids, have) if h]
        sub = vectors.subset(kept)
        coords = landscape_coordinates(kept, sub.fused_vectors(IMAGE_WEIGHTS), LandscapeParams(),
                                       cache_dir=HomeLayout.of_database(warehouse.database).cache / "landscape")
    ranking = _optional(warehouse, "marts.creative_ranking")
    fatigue = _optional(warehouse, "marts.creative_fatigue")
    coords = coords.merge(creatives[["creative_id", "account_id"]], on="creative_id", how="left")
    if ranking is not None:
        coords = coords.merge(ranking[["creative_id", "score", "tier"]], on="creative_id", how="left")
    attrs = attribute_frame(embedding_tables_of(warehouse), None)
    clusters = cluster_summary(coords, ranking, fatigue, attrs if attrs.shape[1] > 1 else None)
    # Each creative carries its cluster's name, so a BI chart can label points without a join.
    coords = coords.merge(clusters[["cluster", "cluster_name"]], on="cluster", how="left") if len(coords) else \
        coords.assign(cluster_name=pd.Series(dtype="object"))
    warehouse.write_table("marts.creative_landscape", coords)
    warehouse.write_table("marts.landscape_clusters", clusters)
    plot_meta = {}
    if len(coords):
        png = plot_landscape(coords, _reports_dir(warehouse) / "creative_landscape.png")
        thumb = plot_landscape(coords, _reports_dir(warehouse) / "creative_landscape_thumb.png", dpi=40)
        plot_meta = {"plot": dg.MetadataValue.path(str(png))}
        data = thumb.read_bytes()
        if len(data) <= 60_000:  # inline only a small thumbnail; the full plot is the path above
            encoded = base64.b64encode(data).decode("ascii")
            plot_meta["plot_preview"] = dg.MetadataValue.md(f"![creative landscape](data:image/png;base64,{encoded})")
    yield dg.MaterializeResult(asset_key=MARTS_CREATIVE_LANDSCAPE, metadata=table_metadata(
        coords, n_clusters=int((clusters["cluster"] >= 0).sum()) if len(clusters) else 0,
        method=str(coords["method"].iloc[0]) if len(coords) else "none", degraded=reason or "", **plot_meta))
    yield dg.MaterializeResult(asset_key=MARTS_LANDSCAPE_CLUSTERS, metadata=table_metadata(
        clusters, cluster_names=_md_list(clusters["cluster_name"].tolist()[:12])))
