"""Decision marts (docs/marts.md): plain-Python compute on DataFrames, wrapped by creative_dag/assets/marts.py.

- ranking.py          empirical-Bayes shrunk KPIs, composite score, tiers, confidence, winners
- fatigue.py          creative-day table, change-point fatigue onset, status, account fatigue rate
- repetition.py       similarity density, creative families with per-block evidence, the tired-or-repetitive view
- recommendations.py  one DO / DON'T / TEST finding per distinct cause (joint model, stability, ranked by impact)
- health.py           account x week velocity, freshness, fatigue share, thumb-stop, diversity
- landscape.py        2-D map (UMAP / PCA), named clusters, cluster summary, PNG plot
- attributes.py       the interpretable attribute frame from embeddings + context
- block_vectors.py    per-block vectors of the marts and their exact all-pairs similarity (docs/cbr.md)
"""
