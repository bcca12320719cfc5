"""Decision marts (docs/marts.md): ranking, fatigue, repetition, recommendations, account health, landscape.

Thin wrappers: read warehouse tables, call creative_dag.marts, write through the warehouse
resource, return metadata with the stage's key figures. An optional input that is missing
(no embeddings because every image block is unavailable, no cbr.neighbors yet) degrades the
mart gracefully and says so in `degraded` metadata; it never crashes the run.
"""


import base64
from functools import partial
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from creative_dag.assets.metadata import counts_markdown, table_metadata
from creative_dag.blocks import DEFAULT_WEIGHTS, EMBEDDING_BLOCKS
from creative_dag.catalog import (
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
    RAW_IMAGES,
)
from creative_dag.dagster_config import config_from
from creative_dag.marts import fatigue as fatigue_mod
from creative_dag.marts.attributes import attribute_frame
from creative_dag.marts.block_vectors import BlockVectors
from creative_dag.marts.health import account_health
from creative_dag.marts.landscape import (
    PLACED,
    LandscapeParams,
    cluster_summary,
    cluster_vectors,
    keep_clusters,
    keep_map,
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
from creative_dag.settings import HomeLayout

_COMMON = dict(group_name="marts", kinds={"duckdb", "python"}, pool="warehouse")
_SPEC = dict(group_name="marts", kinds={"duckdb", "python"})  # multi-asset specs; the pool is on the multi_asset
CREATIVE_COLUMNS = ("creative_id", "account_id", "campaign_id", "launch_date", "platform", "placement", "format",
                    "audience", "objective", "country", "cta", "product_category")
# Marts compare images, so the context block (same campaign settings) is left out of their similarity.
IMAGE_WEIGHTS = {b: w for b, w in DEFAULT_WEIGHTS.items() if b in EMBEDDING_BLOCKS}


# -- configs ---------------------------------------------------------------------------------
_RANKING_WEIGHTS = RankingParams().weights


class RankingConfig(config_from(RankingParams, "min_impressions", "min_spend", "best_share", "best_confidence")):
    """Composite weights per metric (log-lift vs account prior) and the LEARNING thresholds
    (creative_dag.marts.ranking.RankingParams)."""

    weight_ctr: float = Field(_RANKING_WEIGHTS["ctr"], description="Weight of the CTR log-lift in the score.")
    weight_cvr: float = Field(_RANKING_WEIGHTS["cvr"], description="Weight of the CVR log-lift in the score.")
    weight_roas: float = Field(_RANKING_WEIGHTS["roas"], description="Weight of the ROAS log-lift in the score.")
    weight_cpa: float = Field(_RANKING_WEIGHTS["cpa"], description="Weight of the (inverted) CPA log-lift in the "
                                                                   "score.")


class FatigueConfig(config_from(fatigue_mod.FatigueParams, "alpha", "min_drop", "fatigued_drop", "cpa_multiple",
                                "min_clicks")):
    """Change-point and status thresholds (creative_dag.marts.fatigue.FatigueParams)."""


class RepetitionConfig(config_from(RepetitionParams, "tau", "dup_threshold", "window_days", "density_threshold",
                                   "min_evidence", "min_evidence_blocks", "split_below",
                                   "cross_shape_weight")):
    """Density and family thresholds (creative_dag.marts.repetition.RepetitionParams)."""


class RecommendationsConfig(config_from(RecommendationParams, "fdr", "min_support", "min_lift", "combinations",
                                        "min_prevalence", "min_stability", "n_resamples", "top_n")):
    """Finding thresholds (creative_dag.marts.recommendations.RecommendationParams)."""


# -- loading helpers ---------------------------------------------------------------------------
def _optional(warehouse, table: str) -> pd.DataFrame | None:
    return warehouse.read_optional(table)


def _with_image_shapes(warehouse, creatives: pd.DataFrame) -> pd.DataFrame:
    """creatives + aspect_ratio (width / height of the landed image, as displayed; NaN where none)."""
    images = _optional(warehouse, RAW_IMAGES)
    if images is None or not {"width", "height"} <= set(images.columns):
        return creatives
    shapes = images[["creative_id", "width", "height"]].dropna().drop_duplicates("creative_id")
    ratio = pd.to_numeric(shapes["width"]) / pd.to_numeric(shapes["height"]).where(lambda h: h > 0)
    return creatives.merge(shapes.assign(aspect_ratio=ratio)[["creative_id", "aspect_ratio"]],
                           on="creative_id", how="left")


def _creatives(warehouse) -> pd.DataFrame:
    frame = warehouse.read_optional(FEATURES_PRELAUNCH)
    if frame is None:
        frame = warehouse.read_table(RAW_CREATIVES)
    return frame[[c for c in CREATIVE_COLUMNS if c in frame.columns]]


def embedding_tables_of(warehouse) -> dict[str, pd.DataFrame]:
    """block -> its non-empty embeddings.<block> table."""
    out = {}
    with warehouse.reading() as db:
        for block in EMBEDDING_BLOCKS:
            frame = _optional(db, f"embeddings.{block}")
            if frame is not None and len(frame):
                out[block] = frame
    return out


def attribute_frame_of(warehouse) -> pd.DataFrame:
    """The interpretable attribute frame of every creative in the warehouse (recommendations, forecast, CLI)."""
    with warehouse.reading() as db:
        tables, creatives = embedding_tables_of(db), _creatives(db)
    return attribute_frame(tables, creatives)


def _vectors(ids: list[str], tables: dict[str, pd.DataFrame]) -> tuple[BlockVectors | None, str | None]:
    """The creatives' block vectors from `embedding_tables_of`'s tables, or None with the reason."""
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
@dg.asset(key=MARTS_CREATIVE_RANKING.key, deps=[RAW_DAILY_METRICS.key, RAW_CREATIVES.key, FEATURES_PRELAUNCH.key, CBR_NEIGHBORS.key], required_resource_keys={"warehouse"},
          **_COMMON, description="Per creative: empirical-Bayes shrunk CTR/CVR/ROAS/CPA, composite score, rank in "
                                 "account and campaign, tier BEST/GOOD/LOW/LEARNING, confidence, winner flag.")
def creative_ranking(context: dg.AssetExecutionContext, config: RankingConfig) -> dg.MaterializeResult:
    warehouse = context.resources.warehouse
    with warehouse.reading() as db:
        creatives = _creatives(db)
        daily = db.read_table(RAW_DAILY_METRICS)
        neighbors = _optional(db, CBR_NEIGHBORS)
    params = config.to_params(weights={"ctr": config.weight_ctr, "cvr": config.weight_cvr,
                                       "roas": config.weight_roas, "cpa": config.weight_cpa})
    table = rank_creatives(creative_totals(daily, creatives), params, neighbors)
    warehouse.write_table(MARTS_CREATIVE_RANKING, table)
    tiers = table["tier"].value_counts().reindex(["BEST", "GOOD", "LOW", "LEARNING"], fill_value=0)
    return dg.MaterializeResult(metadata=table_metadata(
        MARTS_CREATIVE_RANKING, table, **{f"n_{t.lower()}": int(n) for t, n in tiers.items()},
        n_winners=int(table["is_winner"].sum()),
        explanations_use_neighbors=neighbors is not None,
        degraded="" if neighbors is not None else "cbr.neighbors missing: explanations list no similar creatives",
        top_per_account=table[table["rank_in_account"] <= 3][["account_id", "rank_in_account", "creative_id", "tier",
                                                               "score", "confidence", "explanation"]]))


@dg.multi_asset(
    specs=[dg.AssetSpec(MARTS_CREATIVE_FATIGUE_DAILY.key, deps=[RAW_DAILY_METRICS.key, RAW_CREATIVES.key, FEATURES_PRELAUNCH.key], **_SPEC,
                        description="Creative-day: rolling CTR/CPA, cumulative impressions and spend, frequency."),
           dg.AssetSpec(MARTS_CREATIVE_FATIGUE.key, deps=[MARTS_CREATIVE_FATIGUE_DAILY.key, MARTS_CREATIVE_RANKING.key], **_SPEC,
                        description="Per creative: early peak, current vs peak, change-point fatigue onset, status "
                                    "fresh/stable/fatiguing/fatigued, days to fatigue.")],
    required_resource_keys={"warehouse"}, name="creative_fatigue", pool="warehouse",
)
def creative_fatigue(context: dg.AssetExecutionContext, config: FatigueConfig):
    warehouse = context.resources.warehouse
    with warehouse.reading() as db:
        creatives = _creatives(db)
        daily = db.read_table(RAW_DAILY_METRICS)
        ranking = _optional(db, MARTS_CREATIVE_RANKING)
    params = config.to_params()
    daily_table = fatigue_mod.fatigue_daily(daily, creatives, params)
    summary = fatigue_mod.fatigue_summary(daily_table, creatives, params)
    warehouse.write_table(MARTS_CREATIVE_FATIGUE_DAILY, daily_table)
    warehouse.write_table(MARTS_CREATIVE_FATIGUE, summary)
    rate = fatigue_mod.account_fatigue_rate(daily_table, ranking) if ranking is not None else pd.DataFrame()
    yield dg.MaterializeResult(asset_key=MARTS_CREATIVE_FATIGUE_DAILY.key, metadata=table_metadata(
        MARTS_CREATIVE_FATIGUE_DAILY, daily_table, has_frequency=bool(daily_table["frequency"].notna().any())))
    status = summary["status"].value_counts().reindex(list(fatigue_mod.STATUSES), fill_value=0)
    yield dg.MaterializeResult(asset_key=MARTS_CREATIVE_FATIGUE.key, metadata=table_metadata(
        MARTS_CREATIVE_FATIGUE, summary, **{f"n_{s}": int(n) for s, n in status.items()},
        median_days_to_fatigue=float(summary["days_to_fatigue"].median()) if summary["days_to_fatigue"].notna().any()
        else float("nan"),
        n_cpa_rule=int(summary["cpa_rule_triggered"].sum()),
        account_fatigue_rate=rate if len(rate) else "marts.creative_ranking missing: no winners to measure",
    ))


@dg.multi_asset(
    specs=[dg.AssetSpec(MARTS_CREATIVE_REPETITION.key, deps=[RAW_CREATIVES.key, RAW_IMAGES.key, FEATURES_PRELAUNCH.key,
                                                           *EMBEDDING_KEYS], **_SPEC,
                        description="Per creative: similarity density, creative family (variants) with the "
                                    "per-block evidence (blocks that agree / differ), repetition flag."),
           dg.AssetSpec(MARTS_TIRED_OR_REPETITIVE.key, deps=[MARTS_CREATIVE_REPETITION.key, MARTS_CREATIVE_FATIGUE.key], **_SPEC,
                        description="Per creative: tired (fatiguing/fatigued) or repetitive, with the reason.")],
    required_resource_keys={"warehouse"}, name="creative_repetition", pool="warehouse",
)
def creative_repetition_assets(context: dg.AssetExecutionContext, config: RepetitionConfig):
    warehouse = context.resources.warehouse
    with warehouse.reading() as db:
        creatives = _creatives(db)
        tables = embedding_tables_of(db)
        shaped = _with_image_shapes(db, creatives)
        fatigue = _optional(db, MARTS_CREATIVE_FATIGUE)
    vectors, reason = _vectors(creatives["creative_id"].astype(str).tolist(), tables)
    if vectors is None:
        vectors = BlockVectors(creatives["creative_id"].astype(str).tolist(), {}, {})
    params = config.to_params(weights=IMAGE_WEIGHTS)
    table = creative_repetition(shaped, vectors, params)
    tired = tired_or_repetitive(table, fatigue)
    warehouse.write_table(MARTS_CREATIVE_REPETITION, table)
    warehouse.write_table(MARTS_TIRED_OR_REPETITIVE, tired)
    n_clusters = int(table["family_id"].nunique())
    differ = table["blocks_differ"].dropna().str.split(", ").explode()
    yield dg.MaterializeResult(asset_key=MARTS_CREATIVE_REPETITION.key, metadata=table_metadata(
        MARTS_CREATIVE_REPETITION, table, n_clusters=n_clusters, n_in_clusters=int(table["family_id"].notna().sum()),
        n_repetitive=int(table["is_repetitive"].sum()), blocks_used=", ".join(vectors.available) or "none",
        family_members_by_differing_block=counts_markdown(differ[differ != ""].value_counts(), "block", "members"),
        degraded=reason or ""))
    yield dg.MaterializeResult(asset_key=MARTS_TIRED_OR_REPETITIVE.key, metadata=table_metadata(
        MARTS_TIRED_OR_REPETITIVE, tired, n_tired_or_repetitive=int(tired["tired_or_repetitive"].sum()), n_tired=int(tired["is_tired"].sum()),
        degraded="" if fatigue is not None else "marts.creative_fatigue missing: repetition only"))


@dg.asset(key=MARTS_RECOMMENDATIONS.key, deps=[MARTS_CREATIVE_RANKING.key, MARTS_CREATIVE_REPETITION.key, FEATURES_PRELAUNCH.key, CBR_NEIGHBORS.key, *EMBEDDING_KEYS],
          required_resource_keys={"warehouse"}, **_COMMON,
          description="Per account and ALL: a short ranked list of distinct DO / DON'T / TEST findings over "
                      "interpretable attributes (one row per cause, effects on every metric as columns), with CI, "
                      "q-value, support, stability, expected impact, evidence creatives and a sentence.")
def recommendations(context: dg.AssetExecutionContext, config: RecommendationsConfig) -> dg.MaterializeResult:
    warehouse = context.resources.warehouse
    with warehouse.reading() as db:
        creatives = _creatives(db)
        ranking = db.read_table(MARTS_CREATIVE_RANKING)
        tables = embedding_tables_of(db)
        repetition = _optional(db, MARTS_CREATIVE_REPETITION)
        neighbors = _optional(db, CBR_NEIGHBORS)
    attrs = attribute_frame(tables, creatives)
    perf = ranking.merge(creatives.drop(columns=["account_id", "campaign_id"], errors="ignore"),
                         on="creative_id", how="left")
    if repetition is not None:
        perf = perf.merge(repetition[["creative_id", "near_duplicate_cluster"]], on="creative_id", how="left")
    params = config.to_params()
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
    warehouse.write_table(MARTS_RECOMMENDATIONS, table)
    counts = table["recommendation"].value_counts().reindex(["DO", "DON'T", "TEST"], fill_value=0)
    shown = table[table["shown"]].assign(_all=table["scope"].eq("ALL")).sort_values(
        ["_all", "rank"], ascending=[False, True])
    return dg.MaterializeResult(metadata=table_metadata(
        MARTS_RECOMMENDATIONS, table, n_do=int(counts["DO"]), n_dont=int(counts["DON'T"]), n_test=int(counts["TEST"]),
        n_shown=int(table["shown"].sum()), n_tests_run=n_tests, n_attribute_columns=int(attrs.shape[1] - 1),
        fdr=float(config.fdr),
        rows_per_scope=counts_markdown(table["scope"].value_counts(), "scope", "rows"),
        attribute_sources=counts_markdown(pd.Series(attrs.attrs.get("sources", {})).value_counts(), "block",
                                          "attributes"),
        top_sentences=_md_list(shown["sentence"].head(8).tolist()),
        degraded="; ".join(degraded)))


@dg.asset(key=MARTS_ACCOUNT_HEALTH.key, deps=[RAW_DAILY_METRICS.key, RAW_CREATIVES.key, FEATURES_PRELAUNCH.key, MARTS_CREATIVE_FATIGUE.key, MARTS_CREATIVE_RANKING.key, *EMBEDDING_KEYS],
          required_resource_keys={"warehouse"}, **_COMMON,
          description="Per account per week: creative velocity, freshness rate, fatigued spend share, thumb-stop "
                      "ratio, creative diversity, winners' spend share, creative fatigue rate.")
def account_health_asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    warehouse = context.resources.warehouse
    with warehouse.reading() as db:
        creatives = _creatives(db)
        daily = db.read_table(RAW_DAILY_METRICS)
        fatigue = _optional(db, MARTS_CREATIVE_FATIGUE)
        ranking = _optional(db, MARTS_CREATIVE_RANKING)
        tables = embedding_tables_of(db)
        fatigue_daily = _optional(db, MARTS_CREATIVE_FATIGUE_DAILY) if ranking is not None else None
    vectors, reason = _vectors(creatives["creative_id"].astype(str).tolist(), tables)
    rate = None
    if fatigue_daily is not None:
        rate = fatigue_mod.account_fatigue_rate(fatigue_daily, ranking)
    table = account_health(daily, creatives, fatigue, ranking, vectors, rate)
    warehouse.write_table(MARTS_ACCOUNT_HEALTH, table)
    latest = table.sort_values("week_start").groupby("account_id").tail(1)
    degraded = [r for r in (reason and f"creative_diversity is NaN: {reason}",
                            fatigue is None and "marts.creative_fatigue missing",
                            ranking is None and "marts.creative_ranking missing") if r]
    return dg.MaterializeResult(metadata=table_metadata(MARTS_ACCOUNT_HEALTH, table, latest_week_per_account=latest,
                                                        degraded="; ".join(degraded)))


@dg.multi_asset(
    specs=[dg.AssetSpec(MARTS_CREATIVE_LANDSCAPE.key, deps=[RAW_CREATIVES.key, FEATURES_PRELAUNCH.key, MARTS_CREATIVE_RANKING.key, MARTS_CREATIVE_FATIGUE.key, *EMBEDDING_KEYS], **_SPEC,
                        description="Per creative: deterministic 2-D map (UMAP, PCA under 15 creatives) and cluster."),
           dg.AssetSpec(MARTS_LANDSCAPE_CLUSTERS.key, deps=[MARTS_CREATIVE_LANDSCAPE.key], **_SPEC,
                        description="Per landscape cluster: name (what distinguishes it), size, spend share, "
                                    "mean and median score, dominant attributes, share fatigued.")],
    required_resource_keys={"warehouse"}, name="creative_landscape", pool="warehouse",
)
def creative_landscape(context: dg.AssetExecutionContext):
    warehouse = context.resources.warehouse
    with warehouse.reading() as db:
        creatives = _creatives(db)
        tables = embedding_tables_of(db)
        previous = _optional(db, MARTS_CREATIVE_LANDSCAPE)
        ranking = _optional(db, MARTS_CREATIVE_RANKING)
        fatigue = _optional(db, MARTS_CREATIVE_FATIGUE)
    ids = creatives["creative_id"].astype(str).tolist()
    vectors, reason = _vectors(ids, tables)
    clustering, mapping = "none: no vectors", "none: no vectors"
    if vectors is None:
        coords = pd.DataFrame({"creative_id": pd.Series(dtype="object"), "x": pd.Series(dtype="float64"),
                               "y": pd.Series(dtype="float64"), "cluster": pd.Series(dtype="int64"),
                               "method": pd.Series(dtype="object")})
    else:
        have = vectors.has_any()
        kept = [i for i, h in zip(vectors.ids, have) if h]
        sub = vectors.subset(kept)
        fused = sub.fused_vectors(IMAGE_WEIGHTS)
        params = LandscapeParams()
        coords, mapping = keep_map(kept, fused, previous, params)
        if coords is None:
            coords = landscape_coordinates(kept, fused, params,
                                           cache_dir=HomeLayout.of_database(warehouse.database).cache / "landscape")
            fresh = coords["cluster"].to_numpy()
        else:  # a kept map has no clustering of today's vectors: made only if the clusters are made again
            fresh = partial(cluster_vectors, np.asarray(fused), params)
        clustering = "k-means on the 2-D map (fewer creatives than UMAP needs)"
        if mapping.startswith("fitted again"):  # map and clusters are renewed together, ~every 20 % of growth
            clustering = f"clustered again with the map ({mapping.removeprefix('fitted again: ')})"
        elif coords["method"].isin(["umap", PLACED]).all():
            labels, clustering = keep_clusters(
                kept, fused, fresh,
                None if previous is None or "cluster" not in previous.columns
                else previous.set_index(previous["creative_id"].astype(str))["cluster"])
            coords["cluster"] = labels
    coords = coords.merge(creatives[["creative_id", "account_id"]], on="creative_id", how="left")
    if ranking is not None:
        coords = coords.merge(ranking[["creative_id", "score", "tier"]], on="creative_id", how="left")
    attrs = attribute_frame(tables, None)
    clusters = cluster_summary(coords, ranking, fatigue, attrs if attrs.shape[1] > 1 else None)
    # Each creative carries its cluster's name, so a BI chart can label points without a join.
    coords = coords.merge(clusters[["cluster", "cluster_name"]], on="cluster", how="left") if len(coords) else \
        coords.assign(cluster_name=pd.Series(dtype="object"))
    warehouse.write_table(MARTS_CREATIVE_LANDSCAPE, coords)
    warehouse.write_table(MARTS_LANDSCAPE_CLUSTERS, clusters)
    plot_meta = {}
    if len(coords):
        png = plot_landscape(coords, _reports_dir(warehouse) / "creative_landscape.png")
        thumb = plot_landscape(coords, _reports_dir(warehouse) / "creative_landscape_thumb.png", dpi=40)
        plot_meta = {"plot": dg.MetadataValue.path(str(png))}
        data = thumb.read_bytes()
        if len(data) <= 60_000:  # inline only a small thumbnail; the full plot is the path above
            encoded = base64.b64encode(data).decode("ascii")
            plot_meta["plot_preview"] = dg.MetadataValue.md(f"![creative landscape](data:image/png;base64,{encoded})")
    yield dg.MaterializeResult(asset_key=MARTS_CREATIVE_LANDSCAPE.key, metadata=table_metadata(
        MARTS_CREATIVE_LANDSCAPE, coords, n_clusters=int((clusters["cluster"] >= 0).sum()) if len(clusters) else 0,
        method=str(coords["method"].iloc[0]) if len(coords) else "none", clustering=clustering, map=mapping,
        degraded=reason or "", **plot_meta))
    yield dg.MaterializeResult(asset_key=MARTS_LANDSCAPE_CLUSTERS.key, metadata=table_metadata(
        MARTS_LANDSCAPE_CLUSTERS, clusters, cluster_names=_md_list(clusters["cluster_name"].tolist()[:12])))
