"""Cells of vector columns (embeddings, case base): the one place that says what a missing vector is.

A vector column holds one list/array per row. A row without a vector can come back as `None`
(frames built in memory), `NaN` (pandas alignment) or `pd.NA` (a NULL list read back from DuckDB),
and an empty list is no vector either. Every reader of a vector column goes through these helpers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd


def is_missing_vector(value: Any) -> bool:
    """True for a cell that holds no vector: None, NaN, pd.NA, or an empty list/array."""
    if value is None or value is pd.NA:
        return True
    if isinstance(value, (float, np.floating)):
        return True  # a scalar is never a vector; NaN is how pandas fills missing object cells
    try:
        return len(value) == 0
    except TypeError:
        return True


def as_vector(value: Any, dim: int | None = None) -> np.ndarray | None:
    """A cell as a (d,) float32 array, or None when it is missing, the wrong length or not finite."""
    if is_missing_vector(value):
        return None
    try:
        vec = np.asarray(value, dtype=np.float32).reshape(-1)
    except (TypeError, ValueError):
        return None
    if (dim is not None and len(vec) != dim) or not np.all(np.isfinite(vec)):
        return None
    return vec


def vector_length(value: Any) -> int:
    """Length of a vector cell; -1 when the cell holds no vector."""
    return -1 if is_missing_vector(value) else len(value)


def vectors_to_matrix(column: Iterable[Any], dim: int | None = None) -> np.ndarray:
    """A column of vectors (lists / arrays, none missing) -> (n, d) float32 matrix."""
    cells = list(column)
    if not cells:
        return np.zeros((0, dim or 0), dtype=np.float32)
    missing = [i for i, v in enumerate(cells) if is_missing_vector(v)]
    if missing:
        raise ValueError(f"{len(missing)} rows have no vector (first at position {missing[0]}); drop them first")
    return np.vstack([np.asarray(v, dtype=np.float32) for v in cells])
