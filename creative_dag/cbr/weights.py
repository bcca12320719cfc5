"""Learned block weights: coordinate ascent on a validation window of the backtest.

The weights are fitted only on the validation window (creatives launched after the warm-up and
before the test window); the test window never informs them. Why coordinate ascent over a small
grid rather than gradient fitting: the objective (a rank correlation of as-of kNN predictions)
is piecewise constant in the weights, there are at most six of them, and a grid keeps the
result readable ("text 0 -> the text block did not help").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

WEIGHT_GRID: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)


def learn_block_weights(objective: Callable[[dict[str, float]], float], blocks: Sequence[str],
                        start: Mapping[str, float], grid: Sequence[float] = WEIGHT_GRID,
                        passes: int = 2, min_gain: float = 1e-3) -> tuple[dict[str, float], pd.DataFrame]:
    """Maximise `objective(weights)` one block at a time over `grid` values.

    objective: validation score of a weight dict (higher is better; NaN counts as -inf).
    blocks: the blocks to tune (those in the case base); start: the initial weights.
    A change is kept only when it beats the current score by `min_gain` (ties keep the default),
    and at least one block keeps a positive weight. Returns (weights, trace with one row per
    evaluation: pass, block, weight, score, accepted).
    """
    current = {b: float(start.get(b, 0.0)) for b in blocks}
    best = _score(objective, current)
    trace = [{"pass": 0, "block": "(start)", "weight": np.nan, "score": best, "accepted": True}]
    for p in range(1, passes + 1):
        changed = False
        for block in blocks:
            for value in grid:
                if value == current[block]:
                    continue
                trial = dict(current, **{block: float(value)})
                if not any(v > 0 for v in trial.values()):
                    continue
                score = _score(objective, trial)
                accepted = score > best + min_gain
                trace.append({"pass": p, "block": block, "weight": float(value), "score": score, "accepted": accepted})
                if accepted:
                    current, best, changed = trial, score, True
        if not changed:
            break
    return current, pd.DataFrame(trace)


def _score(objective: Callable[[dict[str, float]], float], weights: dict[str, float]) -> float:
    value = float(objective(weights))
    return value if np.isfinite(value) else -np.inf
