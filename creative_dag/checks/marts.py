"""Asset checks on the decision marts: the invariants a BI user relies on when reading them.

Each check is a plain function `problems_<table>(frame) -> list[str]` (testable without Dagster)
wrapped in a non-blocking `@asset_check`: the marts are leaves of the graph, so a failure is
reported in the UI next to the table rather than stopping anything.
"""


import dagster as dg
import numpy as np
import pandas as pd

from creative_dag.catalog import (
    MARTS_ACCOUNT_HEALTH,
    MARTS_CREATIVE_FATIGUE,
    MARTS_CREATIVE_LANDSCAPE,
    MARTS_CREATIVE_RANKING,
    MARTS_CREATIVE_REPETITION,
    MARTS_RECOMMENDATIONS,
)
from creative_dag.marts.fatigue import STATUSES
from creative_dag.marts.ranking import TIERS
from creative_dag.marts.recommendations import RecommendationParams

_CHECK = dict(blocking=False, required_resource_keys={"warehouse"})


def _unique_ids(frame: pd.DataFrame, table: str) -> list[str]:
    dup = frame.loc[frame["creative_id"].duplicated(), "creative_id"]
    return [f"{table}: creative {dup.iloc[0]} appears {int((frame['creative_id'] == dup.iloc[0]).sum())} times"] \
        if len(dup) else []


def _in_unit_interval(frame: pd.DataFrame, cols: list[str], table: str) -> list[str]:
    out = []
    for c in cols:
        v = frame[c].dropna() if c in frame.columns else pd.Series(dtype=float)
        bad = v[(v < -1e-9) | (v > 1 + 1e-9)]
        if len(bad):
            out.append(f"{table}.{c} has {len(bad)} values outside [0, 1], e.g. {bad.iloc[0]}")
    return out


def problems_ranking(frame: pd.DataFrame) -> list[str]:
    """Unique creatives, known tiers, confidence in [0, 1], ranks 1..n per account, LEARNING has data below threshold."""
    out = _unique_ids(frame, MARTS_CREATIVE_RANKING)
    bad = set(frame["tier"].dropna()) - set(TIERS)
    if bad:
        out.append(f"marts.creative_ranking has unknown tiers {sorted(bad)}; expected {TIERS}")
    out += _in_unit_interval(frame, ["confidence", "spend_share"], MARTS_CREATIVE_RANKING)
    for acc, g in frame.groupby("account_id"):
        if sorted(g["rank_in_account"].tolist()) != list(range(1, len(g) + 1)):
            out.append(f"marts.creative_ranking: ranks in {acc} are not 1..{len(g)}")
    if frame["score"].isna().any():
        out.append(f"marts.creative_ranking: {int(frame['score'].isna().sum())} creatives have no score")
    return out


def problems_fatigue(frame: pd.DataFrame) -> list[str]:
    """Known statuses; an onset lies within the creative's observed dates; days_to_fatigue >= 0."""
    out = _unique_ids(frame, MARTS_CREATIVE_FATIGUE)
    bad = set(frame["status"].dropna()) - set(STATUSES)
    if bad:
        out.append(f"marts.creative_fatigue has unknown statuses {sorted(bad)}; expected {STATUSES}")
    on = frame.dropna(subset=["fatigue_onset_date"])
    if len(on):
        onset = pd.to_datetime(on["fatigue_onset_date"])
        outside = on[(onset < pd.to_datetime(on["first_date"])) | (onset > pd.to_datetime(on["last_date"]))]
        if len(outside):
            out.append(f"marts.creative_fatigue: onset outside the observed dates for {len(outside)} creatives, "
                       f"e.g. {outside['creative_id'].iloc[0]}")
    neg = frame["days_to_fatigue"].dropna()
    if (neg < 0).any():
        out.append(f"marts.creative_fatigue: {int((neg < 0).sum())} creatives fatigue before launch")
    return out


def problems_repetition(frame: pd.DataFrame) -> list[str]:
    """Families have >= 2 members and one account; density is non-negative; each member's closest
    variant is in its own family."""
    out = _unique_ids(frame, MARTS_CREATIVE_REPETITION)
    clustered = frame.dropna(subset=["near_duplicate_cluster"])
    sizes = clustered.groupby("near_duplicate_cluster").agg(n=("creative_id", "size"), acc=("account_id", "nunique"))
    if (sizes["n"] < 2).any():
        out.append(f"marts.creative_repetition: cluster {sizes.index[sizes['n'] < 2][0]} has a single member")
    if (sizes["acc"] > 1).any():
        out.append(f"marts.creative_repetition: cluster {sizes.index[sizes['acc'] > 1][0]} spans accounts")
    dens = frame["similarity_density"].dropna()
    if (dens < 0).any():
        out.append("marts.creative_repetition: negative similarity_density")
    if "family_id" in frame.columns:
        fam = frame.dropna(subset=["family_id"])
        if not frame["family_id"].fillna("").equals(frame["near_duplicate_cluster"].fillna("")):
            out.append("marts.creative_repetition: family_id differs from near_duplicate_cluster")
        mate = fam["closest_variant_id"].map(dict(zip(frame["creative_id"], frame["family_id"])))
        if (mate != fam["family_id"]).any():
            out.append(f"marts.creative_repetition: {fam.loc[mate != fam['family_id'], 'creative_id'].iloc[0]} has a "
                       "closest_variant_id outside its family")
    return out


def problems_recommendations(frame: pd.DataFrame, fdr: float = 0.05) -> list[str]:
    """Known kinds; DO/DON'T rows are significant with the right sign; CI brackets the lift; a sentence per row;
    one row per finding and scope; ranks 1..n per scope with the shown rows on top; shares in [0, 1]."""
    out = []
    bad = set(frame["recommendation"].dropna()) - {"DO", "DON'T", "TEST"}
    if bad:
        out.append(f"marts.recommendations has unknown recommendations {sorted(bad)}")
    do = frame[frame["recommendation"] == "DO"]
    dont = frame[frame["recommendation"] == "DON'T"]
    if (do["lift"] <= 0).any() or (dont["lift"] >= 0).any():
        out.append("marts.recommendations: a DO row with a negative lift or a DON'T row with a positive lift")
    sig = pd.concat([do, dont])
    if (sig["q_value"] > fdr + 1e-12).any():
        out.append(f"marts.recommendations: DO/DON'T rows with q_value above the FDR level {fdr}")
    if ((frame["ci_low"] > frame["lift"] + 1e-9) | (frame["ci_high"] < frame["lift"] - 1e-9)).any():
        out.append("marts.recommendations: a confidence interval that does not contain its lift")
    if frame["sentence"].isna().any() or (frame["sentence"].astype(str).str.len() == 0).any():
        out.append("marts.recommendations: rows without a sentence")
    if "finding_id" in frame.columns and frame.duplicated(["scope", "finding_id"]).any():
        out.append("marts.recommendations: a finding appears twice in one scope (one row per finding and scope)")
    if "rank" in frame.columns and len(frame):
        ranks = frame.sort_values(["scope", "rank"]).groupby("scope")
        if any(list(g["rank"]) != list(range(1, len(g) + 1)) for _, g in ranks):
            out.append("marts.recommendations: ranks are not 1..n within a scope")
        if any(g["shown"].astype(int).diff().gt(0).any() for _, g in ranks):
            out.append("marts.recommendations: a shown row ranks below a hidden one")
    out += _in_unit_interval(frame, [c for c in ("prevalence", "stability", "spend_share") if c in frame.columns],
                             MARTS_RECOMMENDATIONS)
    return out


def problems_health(frame: pd.DataFrame) -> list[str]:
    """Shares in [0, 1]; one row per account and week; non-negative velocity."""
    out = _in_unit_interval(frame, ["freshness_rate", "fatigued_spend_share", "thumb_stop_ratio",
                                    "winners_spend_share"], MARTS_ACCOUNT_HEALTH)
    if frame.duplicated(["account_id", "week_start"]).any():
        out.append("marts.account_health: duplicate (account_id, week_start) rows")
    if (frame["creative_velocity"] < 0).any():
        out.append("marts.account_health: negative creative_velocity")
    return out


def problems_landscape(frame: pd.DataFrame) -> list[str]:
    """Unique creatives with finite coordinates, each with its cluster's name."""
    out = _unique_ids(frame, MARTS_CREATIVE_LANDSCAPE) if len(frame) else []
    if len(frame) and not np.isfinite(frame[["x", "y"]].to_numpy(float)).all():
        out.append("marts.creative_landscape: non-finite coordinates")
    if len(frame) and "cluster_name" in frame.columns and frame["cluster_name"].isna().any():
        out.append("marts.creative_landscape: creatives without a cluster_name")
    return out


def _result(problems: list[str], rows: int) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=not problems, metadata={
        "rows": rows, "problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems) or "_none_")})


def table_check(asset_key: dg.AssetKey, table: str, validator, name: str) -> dg.AssetChecksDefinition:
    """A non-blocking check that reads `table` and reports `validator(frame)`'s problems (marts and forecast)."""

    @dg.asset_check(asset=asset_key, name=name, description=validator.__doc__, **_CHECK)
    def _check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        frame = context.resources.warehouse.read_table(table)
        return _result(validator(frame), len(frame))

    return _check


creative_ranking_invariants = table_check(MARTS_CREATIVE_RANKING.key, MARTS_CREATIVE_RANKING, problems_ranking, "ranking_invariants")
creative_fatigue_invariants = table_check(MARTS_CREATIVE_FATIGUE.key, MARTS_CREATIVE_FATIGUE, problems_fatigue, "fatigue_invariants")
creative_repetition_invariants = table_check(MARTS_CREATIVE_REPETITION.key, MARTS_CREATIVE_REPETITION, problems_repetition,
                                             "repetition_invariants")


@dg.asset_check(asset=MARTS_RECOMMENDATIONS.key, name="recommendations_invariants",
                description=problems_recommendations.__doc__, **_CHECK)
def recommendations_invariants(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    frame = context.resources.warehouse.read_table(MARTS_RECOMMENDATIONS)
    # The FDR level the asset ran with (its config), recorded in its materialisation's metadata.
    event = context.instance.get_latest_materialization_event(MARTS_RECOMMENDATIONS.key)
    recorded = event.asset_materialization.metadata.get("fdr") if event and event.asset_materialization else None
    fdr = float(recorded.value) if recorded is not None else RecommendationParams().fdr
    return _result(problems_recommendations(frame, fdr), len(frame))
account_health_invariants = table_check(MARTS_ACCOUNT_HEALTH.key, MARTS_ACCOUNT_HEALTH, problems_health, "account_health_invariants")
creative_landscape_invariants = table_check(MARTS_CREATIVE_LANDSCAPE.key, MARTS_CREATIVE_LANDSCAPE, problems_landscape,
                                            "landscape_invariants")
