"""Can the forecast learn an element at all? The boosting test of Dutt et al. (Hypothesis A).

Inflate the KPI of the training creatives that have attribute A by `factor` × the KPI's mean
("boosting"), refit the forecast's learner on the same decision-time inputs, and compare its
predictions on held-out creatives with those of the model fitted on the true KPI. A model that can
see A predicts more for held-out creatives with A, more so as the factor grows, and barely moves
for creatives without A — including those with a similar but different attribute B.

This is a test of the model, not of the account: it uses a random split (not the time order) and
the raw KPI, because the question is whether the inputs carry A, not what A is worth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from creative_dag.cbr.backtest import AsOfLabels
from creative_dag.cbr.query import CaseMemory
from creative_dag.forecast.features import build_inputs, reduce_blocks
from creative_dag.forecast.model import ForecastConfig, design_matrix, fit_predict
from creative_dag.forecast.targets import RATE_COUNTS, KpiTarget, TargetSpec, realised


@dataclass(frozen=True)
class AttributeSelector:
    """`column` or `column=value` of the attribute frame (booleans: `face_present` = `face_present=true`)."""

    column: str
    value: str | None = None

    @classmethod
    def parse(cls, text: str) -> AttributeSelector:
        column, _, value = text.partition("=")
        return cls(column.strip(), value.strip() or None)

    def mask(self, attributes: pd.DataFrame) -> np.ndarray:
        if self.column not in attributes.columns:
            raise ValueError(f"attribute {self.column!r} is not in the attribute frame; available: "
                             f"{', '.join(sorted(c for c in attributes.columns if c != 'creative_id'))}")
        s = attributes[self.column]
        if self.value is None or self.value.lower() in ("true", "false"):
            want = self.value is None or self.value.lower() == "true"
            truthy = s.map(lambda v: None if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v))
                           else bool(v))
            return (truthy == want).fillna(False).to_numpy(dtype=bool)
        return (s.astype("string") == self.value).fillna(False).to_numpy(dtype=bool)

    def __str__(self) -> str:
        return self.column if self.value is None else f"{self.column}={self.value}"


def boosting_validation(case_base: pd.DataFrame, attributes: pd.DataFrame, attribute: str,
                        factors: Sequence[float] = (1.0, 2.0, 5.0), kpi: str = "ctr", similar: str | None = None,
                        memory: CaseMemory | None = None, config: ForecastConfig | None = None,
                        holdout_share: float = 0.3, seed: int = 0, blocks_only: bool = False) -> pd.DataFrame:
    """One row per factor (0 = the model on the true KPI): the mean predicted uplift, relative to the
    unboosted prediction, on held-out creatives with A, without A, and with the similar attribute B
    but not A, with a 95 % interval for the uplift with A and the group sizes.

    blocks_only: the model sees only the block vectors (the paper's setting: image embeddings alone),
    so A must be learnt from what the encoders see, not read off its own attribute column."""
    if kpi not in RATE_COUNTS:
        raise ValueError(f"boosting validation runs on a rate KPI ({', '.join(RATE_COUNTS)}), got {kpi!r}")
    config = config or ForecastConfig()
    memory = memory or CaseMemory(case_base)
    cb = memory.case_base
    aligned = cb[["creative_id"]].merge(attributes.drop_duplicates("creative_id"), on="creative_id", how="left")
    has_a = AttributeSelector.parse(attribute).mask(aligned)
    has_b = AttributeSelector.parse(similar).mask(aligned) & ~has_a if similar else np.zeros(len(cb), bool)
    value = realised(cb, kpi)
    known = np.flatnonzero(np.isfinite(value))
    rng = np.random.default_rng(seed)
    held = np.zeros(len(cb), bool)
    held[rng.choice(known, size=round(holdout_share * len(known)), replace=False)] = True
    train = known[~held[known]]
    test = np.flatnonzero(held)
    if has_a[train].sum() < 5 or has_a[test].sum() < 3 or (~has_a[test]).sum() < 3:
        raise ValueError(f"attribute {attribute!r}: too few creatives with and without it "
                         f"({int(has_a[known].sum())} of {len(known)} with an outcome have it)")
    target = KpiTarget(cb, kpi, TargetSpec(normalise=False), AsOfLabels(cb))
    inputs = build_inputs(memory, attributes, {kpi: target}, k=config.k)
    static_cols = [] if blocks_only else inputs.groups["context"] + inputs.groups["attributes"]
    reduced, _ = reduce_blocks(inputs.blocks, train, config.pca_dims, config.seed)
    x = design_matrix(inputs.static, static_cols, reduced)
    cats = [c for c in inputs.categorical if c in x.columns]
    mean_kpi = float(np.mean(value[train]))

    def predict(boost: float) -> np.ndarray:
        y = value.copy()
        y[train] = np.where(has_a[train], value[train] + boost * mean_kpi, value[train])
        pred, _ = fit_predict(config.learner, x, y, train, test, cats, config)
        return pred

    base = predict(0.0)
    rows = []
    for factor in (0.0, *[float(f) for f in factors]):
        pred = base if factor == 0 else predict(factor)
        uplift = (pred - base) / max(abs(float(np.mean(base))), 1e-12)
        a, not_a, b = has_a[test], ~has_a[test], has_b[test]
        sd = float(np.std(uplift[a], ddof=1)) if a.sum() > 1 else float("nan")
        half = 1.96 * sd / np.sqrt(a.sum()) if a.sum() > 1 else float("nan")
        rows.append({
            "attribute": str(AttributeSelector.parse(attribute)), "kpi": kpi, "factor": factor,
            "uplift_with": float(np.mean(uplift[a])), "uplift_with_ci_low": float(np.mean(uplift[a]) - half),
            "uplift_with_ci_high": float(np.mean(uplift[a]) + half),
            "uplift_without": float(np.mean(uplift[not_a])),
            "similar": similar or "", "uplift_similar": float(np.mean(uplift[b])) if b.any() else float("nan"),
            "n_with": int(a.sum()), "n_without": int(not_a.sum()), "n_similar": int(b.sum()),
            "n_train": len(train), "n_train_with": int(has_a[train].sum()),
            "inputs": "blocks only" if blocks_only else "context, attributes and blocks",
        })
    return pd.DataFrame(rows)
