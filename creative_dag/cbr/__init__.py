"""Case-based reasoning engine (docs/cbr.md): similarity, case base, FAISS index, as-of retrieval, backtest.

See docs/cbr.md. Entry points: `creative_dag.cbr.query.CaseMemory` (`similar`, `neighbors`),
`similar_for_creative` / `format_neighbors` (CLI), `creative_dag.cbr.backtest.run_backtest`.
"""
