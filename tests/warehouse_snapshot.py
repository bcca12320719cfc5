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


def assert_same_tables(left: dict[str, pd.DataFrame], right: dict[str, pd.DataFrame], rtol: float = 1e-3,
                       atol: float = 1e-4) -> None:
    """Two snapshots hold the same tables, rows and values; numbers and vector cells within float noise.

    Two processes need not give bit-identical vectors (a CNN forward may sum in another order), and what is
    computed from them inherits that noise: a hidden state left by an earlier run shows as whole rows or
    values that differ, not as noise in the fifth decimal."""
    assert left.keys() == right.keys()
    for table, a in left.items():
        b = right[table]
        assert list(a.columns) == list(b.columns) and len(a) == len(b), table
        for column in a.columns:
            x, y = a[column].tolist(), b[column].tolist()
            if any(isinstance(v, tuple) for v in x + y):
                for i, (u, v) in enumerate(zip(x, y, strict=True)):
                    numeric = isinstance(u, tuple) and u and not isinstance(u[0], str)
                    same = (np.allclose(np.asarray(u, dtype=float), np.asarray(v, dtype=float), rtol=rtol, atol=atol)
                            if numeric and isinstance(v, tuple) and len(u) == len(v) else u == v)
                    assert same, f"{table}.{column} row {i}: {str(u)[:200]} != {str(v)[:200]}"
            else:
                pd.testing.assert_series_equal(a[column], b[column], check_exact=False, rtol=rtol, atol=atol,
                                               obj=f"{table}.{column}")
