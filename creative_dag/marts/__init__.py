"""Decision marts (docs/marts.md): plain-Python compute on DataFrames, wrapped by creative_dag/assets/marts.py.

- ranking.py          empirical-Bayes shrunk KPIs, composite score, tiers, confidence, winners
- fatigue.py          creative-day table, change-point fatigue onset, status, account fatigue rate
- repetition.py       similarity density, creative families with per-block evidence, the tired-or-repetitive view
- recommendations.py  one DO / DON'T / TEST finding per distinct cause (joint model, stability, ranked by impact)
- health.py           account x week velocity, freshness, fatigue share, thumb-stop, diversity
- landscape.py        2-D map (UMAP / PCA), named clusters, cluster summary, PNG plot
- attributes.py       the interpretable attribute frame from embeddings + context
- similarity.py       exact all-pairs fused block similarity (docs/cbr.md, Similarity)
"""

from creative_dag.marts.fatigue import (
    FatigueParams,
    detect_onset,
    fatigue_daily,
    fatigue_summary,
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

__all__ = [
    "BlockVectors", "FatigueParams", "RankingParams", "RecommendationParams", "RepetitionParams",
    "attribute_effects", "creative_repetition", "creative_totals", "detect_onset", "fatigue_daily",
    "fatigue_summary", "rank_creatives", "recommend", "tired_or_repetitive",
]
