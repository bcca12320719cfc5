"""Every table of a warehouse in a form two runs can be compared by: what a run wrote, not when."""

from __future__ import annotations

import numpy as np
import pandas as pd

from creative_dag.resources.warehouse import DuckDBWarehouse


def table_snapshot(warehouse: DuckDBWarehouse) -> dict[str, pd.DataFrame]:
    """Every table (less *_at run timestamps), rows in a canonical order, list cells as tuples."""
    out = {}
    for table in warehouse.tables():
        frame = warehouse.read_table(table)
        frame = frame.drop(columns=[c for c in frame.columns if c.endswith("_at")])  # when it ran, not what
        key = []
        for c in frame.columns:
            cells = frame[c].tolist()
            if any(isinstance(v, (list, np.ndarray)) for v in cells):
                frame[c] = [tuple(np.round(np.asarray(v, dtype=float), 5)) if isinstance(v, (list, np.ndarray))
                            and len(v) and not isinstance(np.asarray(v).flat[0], str) else
                            (tuple(v) if isinstance(v, (list, np.ndarray)) else v) for v in cells]
            else:
                key.append(c)
        out[table] = frame.sort_values(key).reset_index(drop=True) if key and len(frame) else frame
    return out
