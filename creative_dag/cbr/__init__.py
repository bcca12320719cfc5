"""Case-based reasoning engine (design §4–5): similarity, case base, FAISS index, as-of retrieval, backtest.

See docs/cbr.md. Entry points: `creative_dag.cbr.query.CaseMemory` (`similar`, `neighbors`),
`similar_for_creative` / `format_neighbors` (CLI), `creative_dag.cbr.backtest.run_backtest`.
"""
