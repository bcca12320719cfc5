"""Forecast targets: the KPIs, their realised values, and the paper's normalised target.

KPIs (`KPIS`): `score` is the composite outcome of the case base (log shrunk CTR + log shrunk
CVR); `ctr`, `cvr`, `roas` are the maturity-window rates (clicks / impressions, conversions /
clicks, revenue / spend), reported only where the denominator is large enough to mean
something (`MIN_DENOMINATOR`).

Normalised target (Dutt et al., "normalised on a twelve-month rolling average, cube-root
transformed"): a creative's KPI is divided by its account's trailing level — the KPI over the
account's cases that were *available* (launched and matured) before the creative's launch and
launched within `window_days` before it — and cube-rooted. The composite score is a log, so
"divide" is "subtract" and the cube root is a division by 3: z = (score − level) / 3. Both
transforms are increasing, so intervals invert bound by bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from creative_dag.cbr.backtest import AsOfLabels
from creative_dag.cbr.index import to_days

KPIS: tuple[str, ...] = ("score", "ctr", "cvr", "roas")
RATE_COUNTS: dict[str, tuple[str, str]] = {
    "ctr": ("outcome_clicks", "outcome_impressions"),
    "cvr": ("outcome_conversions", "outcome_clicks"),
    "roas": ("outcome_revenue", "outcome_spend"),
}
# Below these a rate is mostly noise (e.g. 1 conversion from 2 clicks): neither trained on nor scored.
MIN_DENOMINATOR: dict[str, float] = {"ctr": 200.0, "cvr": 5.0, "roas": 5.0}


@dataclass(frozen=True)
class TargetSpec:
    """normalise: divide by the trailing account level and take the `root`-th root (the paper's
    target); False trains on the KPI as is. window_days: the trailing window (default 12 months);
    prior_strength: pseudo-cases pulling a thin account's level to the pool's."""

    normalise: bool = True
    window_days: int = 365
    root: float = 3.0
    prior_strength: float = 5.0


def realised(case_base: pd.DataFrame, kpi: str) -> np.ndarray:
    """The KPI a creative actually reached over its maturity window (NaN where unknown or too thin)."""
    if kpi == "score":
        return case_base["outcome_score"].to_numpy(dtype=float)
    if kpi not in RATE_COUNTS:
        raise ValueError(f"unknown KPI {kpi!r}; KPIs are {', '.join(KPIS)}")
    num_col, den_col = RATE_COUNTS[kpi]
    num = case_base[num_col].to_numpy(dtype=float)
    den = case_base[den_col].to_numpy(dtype=float)
    ok = np.isfinite(num) & np.isfinite(den) & (den >= MIN_DENOMINATOR[kpi])
    out = np.full(len(case_base), np.nan)
    out[ok] = num[ok] / den[ok]
    return out


def kpi_targets(case_base: pd.DataFrame, kpis: Sequence[str], spec: TargetSpec,
                labels: AsOfLabels) -> dict[bool, dict[str, KpiTarget]]:
    """normalise flag -> KPI -> its target, for both variants of `spec` (the forecast fits each model on both)."""
    return {norm: {k: KpiTarget(case_base, k, replace(spec, normalise=norm), labels) for k in kpis}
            for norm in (True, False)}


class KpiTarget:
    """One KPI of one case base: training labels as of a day, trailing levels, and the transform.

    `labels_at(day)`: the KPI of every case available before `day` (NaN otherwise). For the
    composite score these are recomputed with as-of shrinkage priors (`AsOfLabels`), so nothing
    after `day` reaches a label through its prior.
    `level`: each creative's trailing account level as of its own launch day (NaN without any
    history in the pool).
    """

    def __init__(self, case_base: pd.DataFrame, kpi: str, spec: TargetSpec, labels: AsOfLabels) -> None:
        self.kpi = kpi
        self.spec = spec
        self._labels = labels
        self.value = realised(case_base, kpi)
        self.available = np.asarray(to_days(case_base["available_date"]), dtype=np.int64)
        self.launch = np.asarray(to_days(case_base["launch_date"]), dtype=np.int64)
        self.account = labels.account_code
        den_col = RATE_COUNTS[kpi][1] if kpi in RATE_COUNTS else None
        self.denominator = (np.nan_to_num(case_base[den_col].to_numpy(dtype=float), nan=0.0) if den_col
                            else np.ones(len(case_base)))
        self.level = self._levels_at(self.launch)
        # A case launched before its pool had any history still becomes a training label once it is
        # available: normalise it by the level known on that day (cases available strictly before it).
        self.train_level = np.where(np.isfinite(self.level), self.level, self._levels_at(self.available))

    def labels_at(self, day: int) -> np.ndarray:
        if self.kpi == "score":
            return self._labels.at(int(day))[0]
        return np.where(self.available < day, self.value, np.nan)

    def _levels_at(self, days: np.ndarray) -> np.ndarray:
        """Each row's account level as of days[row] (trailing window ending that day)."""
        n_acc = int(self.account.max()) + 1 if len(self.account) else 0
        level = np.full(len(days), np.nan)
        rate = self.kpi in RATE_COUNTS
        for day in np.unique(days):
            y = self.labels_at(int(day))
            elig = np.isfinite(y) & (self.launch >= day - self.spec.window_days)
            if not elig.any():
                continue
            code = self.account[elig]
            if rate:  # a ratio of sums: one big creative should weigh more than a thin one
                num = np.bincount(code, y[elig] * self.denominator[elig], n_acc)
                den = np.bincount(code, self.denominator[elig], n_acc)
                pool = num.sum() / max(den.sum(), 1e-12)
                pseudo = self.spec.prior_strength * den.sum() / max(elig.sum(), 1)
                acc_level = (num + pseudo * pool) / (den + pseudo)
            else:
                sums = np.bincount(code, y[elig], n_acc)
                counts = np.bincount(code, minlength=n_acc)
                pool = float(y[elig].mean())
                acc_level = (sums + self.spec.prior_strength * pool) / (counts + self.spec.prior_strength)
            at = days == day
            level[at] = acc_level[self.account[at]]
        return level

    def to_model(self, value: np.ndarray, rows: np.ndarray, training: bool = False) -> np.ndarray:
        """KPI -> model space for `rows` (NaN where the level is unknown and normalising). training=True
        normalises cases as training labels (`train_level`), otherwise as forecasts at launch (`level`)."""
        value = np.asarray(value, dtype=float)
        if not self.spec.normalise:
            return value
        level = (self.train_level if training else self.level)[rows]
        if self.kpi == "score":
            return (value - level) / self.spec.root
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(level > 0, value / level, np.nan)
        return np.cbrt(ratio) if self.spec.root == 3.0 else np.sign(ratio) * np.abs(ratio) ** (1 / self.spec.root)

    def from_model(self, z: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Model space -> KPI for `rows` (rates are never negative)."""
        z = np.asarray(z, dtype=float)
        if not self.spec.normalise:
            return z if self.kpi == "score" else np.clip(z, 0.0, None)
        level = self.level[rows]
        if self.kpi == "score":
            return z * self.spec.root + level
        return np.clip(z, 0.0, None) ** self.spec.root * level
