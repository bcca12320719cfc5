"""The `context` block: prelaunch tabular context as one L2-normalised vector (docs/cbr.md).

Each categorical column (platform, placement, format, objective, audience, country,
product_category) becomes a one-hot group; each numeric column is z-scored and clipped.
Every column group is scaled to the same norm, so cos(q, c) = the share of columns on which
two creatives agree (for categoricals) — "same platform and placement, other country" is 5/7-ish,
independent of how many categories a column has. Only prelaunch columns (features.prelaunch)
are used, and fitting learns category vocabularies and numeric scales only, never outcomes.
A category that first appears on a new day inserts a zero column into every earlier vector; rows are
normalised in float64 so that their values, and so their similarities, stay bit for bit what they were
(the forecast's refit memo keys on them).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

CONTEXT_COLUMNS: tuple[str, ...] = (
    "platform", "placement", "format", "objective", "audience", "country", "product_category",
)
NUMERIC_CLIP = 3.0


class ContextEncoder:
    """fit(prelaunch frame) -> transform(frame) = (n, d) float32, L2-normalised rows.

    categorical: columns one-hot encoded (those absent from the fitted frame are skipped).
    numeric: prelaunch numeric columns z-scored with the fitted mean/sd, clipped to ±3.
    A row with nothing known in any column is all zeros (the block is missing for it).
    """

    def __init__(self, categorical: Sequence[str] = CONTEXT_COLUMNS, numeric: Sequence[str] = ()) -> None:
        self.categorical = tuple(categorical)
        self.numeric = tuple(numeric)
        self.categories_: dict[str, list[str]] = {}
        self.scales_: dict[str, tuple[float, float]] = {}

    def fit(self, frame: pd.DataFrame) -> ContextEncoder:
        self.categories_ = {}
        for col in self.categorical:
            if col in frame.columns:
                values = frame[col].dropna().astype(str)
                cats = sorted(v for v in values.unique() if v != "")
                if cats:
                    self.categories_[col] = cats
        self.scales_ = {}
        for col in self.numeric:
            if col in frame.columns:
                x = pd.to_numeric(frame[col], errors="coerce")
                if x.notna().any():
                    sd = float(x.std(ddof=0)) or 1.0
                    self.scales_[col] = (float(x.mean()), sd)
        return self

    @property
    def dim(self) -> int:
        return sum(len(c) for c in self.categories_.values()) + len(self.scales_)

    @property
    def feature_names(self) -> list[str]:
        names = [f"{col}={cat}" for col, cats in self.categories_.items() for cat in cats]
        return names + list(self.scales_)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """(n, dim) float32; unseen categories and missing values contribute zeros for their column."""
        n = len(frame)
        parts: list[np.ndarray] = []
        for col, cats in self.categories_.items():
            lookup = {c: i for i, c in enumerate(cats)}
            onehot = np.zeros((n, len(cats)), dtype=np.float32)
            if col in frame.columns:
                values = frame[col].astype(object).where(frame[col].notna(), None).tolist()
                for r, v in enumerate(values):
                    j = lookup.get(str(v)) if v is not None else None
                    if j is not None:
                        onehot[r, j] = 1.0
            parts.append(onehot)
        for col, (mean, sd) in self.scales_.items():
            x = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float) if col in frame.columns else np.full(n, np.nan)
            z = np.clip((x - mean) / sd, -NUMERIC_CLIP, NUMERIC_CLIP) / NUMERIC_CLIP
            parts.append(np.nan_to_num(z, nan=0.0).astype(np.float32)[:, None])
        if not parts:
            return np.zeros((n, 0), dtype=np.float32)
        out = np.hstack(parts).astype(np.float64)  # float64 norms: see cbr.similarity.l2_normalize
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.where(norms > 0, out / np.where(norms > 0, norms, 1.0), 0.0).astype(np.float32)
