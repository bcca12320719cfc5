"""UMAP's cosine distance between every two vectors, compiled: the matrix UMAP builds itself for fewer
than 4,096 points, without its per-pair Python calls.

Why: below 4,096 points umap-learn computes exact neighbours with scikit-learn's `pairwise_distances`
and its own numba `cosine` as a Python callable, one call per pair (2 million at 2,000 creatives:
13 of the landscape fit's 20 s). Here the same numba function runs in a compiled loop and the same
float32 matrix comes out bit for bit (upper triangle, mirrored, the diagonal by the metric, as
scikit-learn fills it), so `UMAP(metric="precomputed")` on it gives the very same map
(tests/test_marts_health_landscape.py). Imported only when a landscape is fitted: numba loads with it.
"""

from __future__ import annotations

import numba
import numpy as np
from umap.distances import cosine

# At or above this many points UMAP finds neighbours approximately (NN-descent, compiled already) and
# never builds the full matrix: the landscape passes it the vectors then.
UMAP_EXACT_BELOW = 4096


def _cosine_matrix(x: np.ndarray) -> np.ndarray:
    n = x.shape[0]
    out = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        for j in range(i + 1, n):
            d = cosine(x[i], x[j])
            out[i, j] = d
            out[j, i] = d
        out[i, i] = cosine(x[i], x[i])
    return out


try:  # keep the machine code beside the module (or in numba's user cache), as for UMAP's own functions
    cosine_matrix = numba.njit(cache=True)(_cosine_matrix)
except RuntimeError:  # no writable cache location: compile in each process (~1 s)
    cosine_matrix = numba.njit(_cosine_matrix)
cosine_matrix.__doc__ = "(n, d) float32 vectors -> (n, n) float32 UMAP cosine distances (see the module docstring)."
