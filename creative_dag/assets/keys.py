"""Asset keys of every warehouse table (docs/operations.md), in one place: `[schema, table]` = DuckDB `schema.table`."""

import dagster as dg

from creative_dag.blocks import EMBEDDING_BLOCKS

RAW_CREATIVES = dg.AssetKey(["raw", "creatives"])
RAW_DAILY_METRICS = dg.AssetKey(["raw", "daily_metrics"])
RAW_IMAGES = dg.AssetKey(["raw", "images"])
RAW_QUARANTINE = dg.AssetKey(["raw", "quarantine"])

FEATURES_REGISTRY = dg.AssetKey(["features", "registry"])
FEATURES_PRELAUNCH = dg.AssetKey(["features", "prelaunch"])
FEATURES_EARLY = dg.AssetKey(["features", "early"])
FEATURES_OUTCOMES = dg.AssetKey(["features", "outcomes"])

EMBEDDING_KEYS = [dg.AssetKey(["embeddings", block]) for block in EMBEDDING_BLOCKS]
EMBEDDINGS_MODEL_STATUS = dg.AssetKey(["embeddings", "model_status"])

CBR_CASE_BASE = dg.AssetKey(["cbr", "case_base"])
CBR_NEIGHBORS = dg.AssetKey(["cbr", "neighbors"])
CBR_BACKTEST = dg.AssetKey(["cbr", "backtest"])

MARTS_CREATIVE_RANKING = dg.AssetKey(["marts", "creative_ranking"])
MARTS_CREATIVE_FATIGUE = dg.AssetKey(["marts", "creative_fatigue"])
MARTS_CREATIVE_FATIGUE_DAILY = dg.AssetKey(["marts", "creative_fatigue_daily"])
MARTS_CREATIVE_REPETITION = dg.AssetKey(["marts", "creative_repetition"])
MARTS_TIRED_OR_REPETITIVE = dg.AssetKey(["marts", "tired_or_repetitive"])
MARTS_RECOMMENDATIONS = dg.AssetKey(["marts", "recommendations"])
MARTS_ACCOUNT_HEALTH = dg.AssetKey(["marts", "account_health"])
MARTS_CREATIVE_LANDSCAPE = dg.AssetKey(["marts", "creative_landscape"])
MARTS_LANDSCAPE_CLUSTERS = dg.AssetKey(["marts", "landscape_clusters"])
MARTS_PERFORMANCE_MODEL = dg.AssetKey(["marts", "performance_model"])
MARTS_PREDICTIONS = dg.AssetKey(["marts", "predictions"])
MARTS_ELEMENT_ATTRIBUTION = dg.AssetKey(["marts", "element_attribution"])
MARTS_PAIRWISE_BACKTEST = dg.AssetKey(["marts", "pairwise_backtest"])
MARTS_CANDIDATE_ASSESSMENT = dg.AssetKey(["marts", "candidate_assessment"])
MARTS_CANDIDATE_PAIRS = dg.AssetKey(["marts", "candidate_pairs"])
MARTS_EARLY_DECISIONS = dg.AssetKey(["marts", "early_decisions"])


def embedding_key(block: str) -> dg.AssetKey:
    """The key of `embeddings.<block>`."""
    if block not in EMBEDDING_BLOCKS:
        raise ValueError(f"{block!r} is not an embedding block ({', '.join(EMBEDDING_BLOCKS)})")
    return dg.AssetKey(["embeddings", block])
