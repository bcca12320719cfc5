"""As-of backtest of case-based prediction against baselines (docs/cbr.md).

For every creative launched after a warm-up, predict its outcome (the composite
`outcome_score`) from what was known on its launch day t, and compare methods:

* `cbr` — the K most similar cases with available_date < t (default block weights); the
  prediction is the account's as-of mean plus the similarity-weighted mean of the neighbours'
  residuals (their label minus their own account's as-of mean), shrunk toward 0:
  ŷ = μ_acct(q) + Σ a_i r_i / (Σ a_i + λ), a_i = max(S_i, 0)^p.
* `cbr_learned` — the same with block weights learned on the validation window (`weights.py`).
* `account_mean` — μ_acct(q) alone (the account's as-of mean label, shrunk to the pool mean).
* `context_knn` — `cbr` with the context block only (prelaunch targeting/placement).
* `gbm_prelaunch` — sklearn HistGradientBoostingRegressor on prelaunch context + account,
  refitted every `gbm_refit_days` on the cases available before the refit day.
* `block:<b>` — one block alone; `without:<b>` — every block but one.
* `random` — random scores (the floor of every metric).

Neighbour labels are recomputed as of t (`AsOfLabels`): the shrinkage prior of a case's
composite label is the pooled rate of its account over cases available before t, so nothing
after t leaks in through the prior either. The evaluation target of a query is its own
`outcome_score` from the case base (a label: may use everything).

Metrics per method and window (validation = the first `validation_share` of post-warm-up launch
days, test = the rest; learned weights see validation only):
`spearman` (all queries of the window), `spearman_within_cohort` and `ndcg@10` (means over
account × launch-week cohorts with at least `min_cohort` creatives; tied predictions are ordered
at random, so a constant predictor scores like random; a constant predictor's within-cohort
Spearman counts 0), `top_decile_precision` (share of the predicted top 10 % that is in the actual
top 10 %).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from creative_dag.blocks import CONTEXT, DEFAULT_WEIGHTS
from creative_dag.cbr.case_base import outcome_score
from creative_dag.cbr.context import CONTEXT_COLUMNS
from creative_dag.cbr.index import PairCosines, to_days
from creative_dag.cbr.query import CaseMemory
from creative_dag.cbr.weights import learn_block_weights

METRICS: tuple[str, ...] = ("spearman", "spearman_within_cohort", "ndcg@10", "top_decile_precision")
PRIMARY = ("cbr", "spearman")


@dataclass(frozen=True)
class BacktestConfig:
    """k: neighbours per query;
    warmup_days: days after the first launch before any prediction;
    validation_share: share of the post-warm-up launch days in the validation window (the rest is test);
    shrinkage / similarity_power: λ and p of the kNN prediction;
    prior_strength: pseudo-cases pulling an account mean to the pool mean;
    gbm_refit_days: refit cadence of the gbm_prelaunch baseline, in days;
    learn_weights: also learn block weights on the validation window (cbr_learned);
    ablations: also score the memory without each block (slower)."""

    k: int = 20
    warmup_days: int = 21
    validation_share: float = 0.3
    shrinkage: float = 1.0
    similarity_power: float = 4.0
    prior_strength: float = 5.0
    gbm_refit_days: int = 7
    learn_weights: bool = True
    ablations: bool = True
    min_cohort: int = 3
    top_fraction: float = 0.1
    ndcg_k: int = 10
    seed: int = 0
    weights: Mapping[str, float] | None = None
    threads: int | None = 1


@dataclass
class BacktestResult:
    """metrics: rows method × metric × window (value, n_queries, n_cohorts, description);
    predictions: one row per query creative with `actual` and one column per method;
    learned_weights / weight_trace: the validation-window weight search (None when off)."""

    metrics: pd.DataFrame
    predictions: pd.DataFrame
    learned_weights: dict[str, float] | None = None
    weight_trace: pd.DataFrame | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def value(self, method: str, metric: str, window: str = "test") -> float:
        sel = self.metrics[(self.metrics["method"] == method) & (self.metrics["metric"] == metric)
                           & (self.metrics["window"] == window)]
        return float(sel["value"].iloc[0]) if len(sel) else float("nan")

    def summary_markdown(self, window: str = "test") -> str:
        table = self.metrics[self.metrics["window"] == window].pivot(index="method", columns="metric", values="value")
        table = table.reindex(columns=[m for m in METRICS if m in table.columns])
        order = [m for m in self.metrics["method"].drop_duplicates() if m in table.index]
        table = table.loc[order].round(3)
        n = int(self.metrics.loc[self.metrics["window"] == window, "n_queries"].max() or 0)
        return f"{window} window, {n} creatives\n\n" + table.reset_index().to_markdown(index=False)


def account_week_cohorts(case_base: pd.DataFrame) -> np.ndarray:
    """Each case's cohort for the within-cohort Spearman: account | ISO launch week ("acc_01|2026-W14")."""
    return (case_base["account_id"].astype(str).to_numpy() + "|"
            + pd.to_datetime(case_base["launch_date"]).dt.strftime("%G-W%V").to_numpy())


class AsOfLabels:
    """Composite labels of cases as known on day t (cached per day).

    `at(t)` -> (y (n,) float, NaN for cases not available before t or without delivery;
    account_mean (n_accounts,) shrunk to the pool mean; pool_mean float).
    """

    def __init__(self, case_base: pd.DataFrame, prior_strength: float = 5.0) -> None:
        self.imp = case_base["outcome_impressions"].to_numpy(dtype=float)
        self.clk = case_base["outcome_clicks"].to_numpy(dtype=float)
        self.conv = case_base["outcome_conversions"].to_numpy(dtype=float)
        self.accounts, self.account_code = np.unique(case_base["account_id"].astype(str).to_numpy(), return_inverse=True)
        self.available = np.asarray(to_days(case_base["available_date"]), dtype=np.int64)
        self.has_label = np.nan_to_num(self.imp) > 0
        self.prior_strength = prior_strength
        self._cache: dict[int, tuple[np.ndarray, np.ndarray, float]] = {}

    def at(self, day: int) -> tuple[np.ndarray, np.ndarray, float]:
        day = int(day)
        if day in self._cache:
            return self._cache[day]
        elig = self.has_label & (self.available < day)
        y = np.full(len(self.imp), np.nan)
        n_acc = len(self.accounts)
        if not elig.any():
            out = (y, np.full(n_acc, np.nan), float("nan"))
            self._cache[day] = out
            return out
        code = self.account_code[elig]
        imp = np.bincount(code, self.imp[elig], n_acc)
        clk = np.bincount(code, self.clk[elig], n_acc)
        conv = np.bincount(code, self.conv[elig], n_acc)
        g_ctr = self.clk[elig].sum() / max(self.imp[elig].sum(), 1.0)
        g_cvr = self.conv[elig].sum() / max(self.clk[elig].sum(), 1.0)
        acc_ctr = np.where(imp > 0, clk / np.maximum(imp, 1.0), g_ctr)
        acc_cvr = np.where(clk > 0, conv / np.maximum(clk, 1.0), g_cvr)
        y[elig] = outcome_score(self.imp[elig], self.clk[elig], self.conv[elig], acc_ctr[code], acc_cvr[code])
        pool_mean = float(np.mean(y[elig]))
        sums = np.bincount(code, y[elig], n_acc)
        counts = np.bincount(code, minlength=n_acc)
        account_mean = (sums + self.prior_strength * pool_mean) / (counts + self.prior_strength)
        out = (y, account_mean, pool_mean)
        self._cache[day] = out
        return out


def run_backtest(case_base: pd.DataFrame, memory: CaseMemory | None = None,
                 config: BacktestConfig = BacktestConfig()) -> BacktestResult:
    """Run the as-of backtest on a `cbr.case_base` frame (memory: its CaseMemory, built if None).

    Raises ValueError naming the reason when there is nothing to evaluate (too few creatives
    after the warm-up, or no matured labels). `config.threads` caps BLAS/OpenMP threads (FAISS
    and sklearn) for the run: many small searches and fits are slower with spinning threads on
    a shared machine than on one core.
    """
    with limit_threads(config.threads):
        return _run_backtest(case_base, memory, config)


@contextmanager
def limit_threads(threads: int | None) -> Iterator[None]:
    """Cap OpenMP/BLAS threads (threadpoolctl) and FAISS's OpenMP threads inside the block."""
    if threads is None:
        yield
        return
    import faiss
    from threadpoolctl import threadpool_limits

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(int(threads))
    try:
        with threadpool_limits(limits=int(threads)):
            yield
    finally:
        faiss.omp_set_num_threads(before)


def _run_backtest(case_base: pd.DataFrame, memory: CaseMemory | None, config: BacktestConfig) -> BacktestResult:
    memory = memory or CaseMemory(case_base)
    cb = memory.case_base
    launch = np.asarray(to_days(cb["launch_date"]), dtype=np.int64)
    actual = cb["outcome_score"].to_numpy(dtype=float)
    query_rows, window = query_windows(cb, config.warmup_days, config.validation_share)
    labels = AsOfLabels(cb, config.prior_strength)
    base_weights = {b: float((config.weights or DEFAULT_WEIGHTS).get(b, DEFAULT_WEIGHTS.get(b, 0.0))) for b in memory.layout.blocks}
    labelled = labels.has_label  # neighbours without delivery carry no outcome: keep them out of the K
    # ~70 searches of the same queries with other weights: a pair's per-block cosines are computed once.
    cosines = PairCosines()

    def knn(weights: Mapping[str, float], rows: np.ndarray) -> np.ndarray:
        return _knn_predict(memory, rows, weights, labels, labelled, launch, config, cosines)

    preds: dict[str, np.ndarray] = {}
    descriptions: dict[str, str] = {}
    preds["cbr"] = knn(base_weights, query_rows)
    descriptions["cbr"] = "as-of top-K neighbours, default block weights, residuals shrunk to the account prior"
    learned, trace = None, None
    val_rows = query_rows[window == "validation"]
    if config.learn_weights and len(memory.layout.blocks) > 1 and len(val_rows) >= 10:
        val_actual = actual[val_rows]

        def objective(w: dict[str, float]) -> float:
            return _spearman(knn(w, val_rows), val_actual)

        learned, trace = learn_block_weights(objective, memory.layout.blocks, base_weights)
        preds["cbr_learned"] = knn(learned, query_rows)
        descriptions["cbr_learned"] = "as cbr, block weights learned on the validation window: " + \
            ", ".join(f"{b}={w:g}" for b, w in learned.items())
    preds["account_mean"] = _account_mean_predict(query_rows, labels, launch)
    descriptions["account_mean"] = "the account's as-of mean outcome (shrunk to the pool mean)"
    if CONTEXT in memory.layout.blocks:
        preds["context_knn"] = knn({b: (1.0 if b == CONTEXT else 0.0) for b in memory.layout.blocks}, query_rows)
        descriptions["context_knn"] = "kNN on the prelaunch context block only"
    preds["gbm_prelaunch"] = _gbm_predict(cb, query_rows, labels, launch, config)
    descriptions["gbm_prelaunch"] = f"HistGradientBoosting on prelaunch context + account, refitted every {config.gbm_refit_days} days as-of"
    if config.ablations and len(memory.layout.blocks) > 1:
        for b in memory.layout.blocks:
            preds[f"block:{b}"] = knn({x: (1.0 if x == b else 0.0) for x in memory.layout.blocks}, query_rows)
            descriptions[f"block:{b}"] = f"kNN on the {b} block alone"
        for b in memory.layout.blocks:
            rest = {x: (0.0 if x == b else base_weights[x]) for x in memory.layout.blocks}
            if any(v > 0 for v in rest.values()):
                preds[f"without:{b}"] = knn(rest, query_rows)
                descriptions[f"without:{b}"] = f"cbr without the {b} block"
    rng = np.random.default_rng(config.seed)
    preds["random"] = rng.normal(size=len(query_rows))
    descriptions["random"] = "random scores (floor)"

    cohorts = account_week_cohorts(cb)[query_rows]
    rows = []
    for name, pred in preds.items():
        for win in ("validation", "test"):
            sel = window == win
            if sel.sum() < 3:
                continue
            scores = evaluate_ranking(pred[sel], actual[query_rows][sel], cohorts[sel], config,
                                      np.random.default_rng(config.seed + 1))
            for metric in METRICS:
                rows.append({"method": name, "metric": metric, "window": win, "value": scores[metric],
                             "n_queries": int(sel.sum()), "n_cohorts": scores["n_cohorts"],
                             "description": descriptions[name]})
    metrics_frame = pd.DataFrame(rows)
    predictions = pd.DataFrame({
        "creative_id": cb["creative_id"].to_numpy()[query_rows],
        "account_id": cb["account_id"].to_numpy()[query_rows],
        "launch_date": cb["launch_date"].to_numpy()[query_rows],
        "cohort": cohorts, "window": window, "actual": actual[query_rows],
    })
    for name, pred in preds.items():
        predictions[f"pred_{name}"] = pred
    info = {"n_queries": len(query_rows), "n_validation": int((window == "validation").sum()),
            "n_test": int((window == "test").sum()), "warmup_days": config.warmup_days, "k": config.k,
            "blocks": list(memory.layout.blocks), "default_weights": base_weights}
    return BacktestResult(metrics=metrics_frame, predictions=predictions, learned_weights=learned,
                          weight_trace=trace, info=info)


def query_windows(cb: pd.DataFrame, warmup_days: int, validation_share: float,
                  min_queries: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """The evaluated creatives and their window, shared by every forecast evaluated against this backtest.

    Rows (sorted by launch) = matured creatives with a finite outcome_score launched at least
    `warmup_days` after the first launch; window = "validation" for the first `validation_share`
    of their launch days, "test" for the rest. Raises ValueError when fewer than `min_queries`.
    """
    launch = np.asarray(to_days(cb["launch_date"]), dtype=np.int64)
    first_day = int(launch.min())
    actual = cb["outcome_score"].to_numpy(dtype=float)
    mature = cb["outcome_is_mature"].to_numpy(dtype=bool) if "outcome_is_mature" in cb.columns else np.ones(len(cb), bool)
    query_rows = np.flatnonzero((launch >= first_day + warmup_days) & np.isfinite(actual) & mature)
    if len(query_rows) < min_queries:
        raise ValueError(f"backtest: only {len(query_rows)} matured creatives launched after the {warmup_days}-day "
                         f"warm-up (of {len(cb)}); lower warmup_days or add history")
    query_rows = query_rows[np.argsort(launch[query_rows], kind="stable")]
    days = np.unique(launch[query_rows])
    n_val_days = int(round(len(days) * validation_share))
    val_days = set(days[:n_val_days].tolist())
    window = np.array(["validation" if launch[r] in val_days else "test" for r in query_rows])
    return query_rows, window


def _knn_predict(memory: CaseMemory, rows: np.ndarray, weights: Mapping[str, float], labels: AsOfLabels,
                 labelled: np.ndarray, launch: np.ndarray, config: BacktestConfig,
                 cosines: PairCosines | None = None) -> np.ndarray:
    """ŷ = μ_acct(q) + Σ a_i (y_i − μ_acct(i)) / (Σ a_i + λ) over as-of neighbours (see module doc)."""
    if not any(float(v) > 0 for v in weights.values()):
        return _account_mean_predict(rows, labels, launch)
    result = memory.search_rows(rows, dict(weights), k=config.k, mask=labelled, cache=cosines)
    out = np.full(len(rows), np.nan)
    for day in np.unique(launch[rows]):
        at = np.flatnonzero(launch[rows] == day)
        y, account_mean, pool_mean = labels.at(int(day))
        if not np.isfinite(pool_mean):
            continue
        nb = result.rows[at]
        s = result.scores[at]
        ok = (nb >= 0) & np.isfinite(s)
        nbc = np.maximum(nb, 0)
        resid = np.where(ok, y[nbc] - account_mean[labels.account_code[nbc]], 0.0)
        ok &= np.isfinite(resid)
        a = np.where(ok, np.clip(np.nan_to_num(s), 0.0, None) ** config.similarity_power, 0.0)
        own = account_mean[labels.account_code[rows[at]]]
        out[at] = own + (a * np.nan_to_num(resid)).sum(axis=1) / (a.sum(axis=1) + config.shrinkage)
    return _fill(out, rows, labels, launch)


def _account_mean_predict(rows: np.ndarray, labels: AsOfLabels, launch: np.ndarray) -> np.ndarray:
    out = np.full(len(rows), np.nan)
    for day in np.unique(launch[rows]):
        at = np.flatnonzero(launch[rows] == day)
        _, account_mean, _ = labels.at(int(day))
        out[at] = account_mean[labels.account_code[rows[at]]]
    return out


def _fill(pred: np.ndarray, rows: np.ndarray, labels: AsOfLabels, launch: np.ndarray) -> np.ndarray:
    """Where a method has no answer (no history yet), fall back to the account mean, then 0."""
    missing = ~np.isfinite(pred)
    if missing.any():
        pred[missing] = _account_mean_predict(rows[missing], labels, launch)
    return np.nan_to_num(pred, nan=0.0)


def _gbm_predict(cb: pd.DataFrame, rows: np.ndarray, labels: AsOfLabels, launch: np.ndarray,
                 config: BacktestConfig) -> np.ndarray:
    """Rolling as-of HistGradientBoosting on prelaunch context columns + account (categorical)."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.preprocessing import OrdinalEncoder

    cols = [c for c in ("account_id", *CONTEXT_COLUMNS) if c in cb.columns]
    encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=np.nan)
    # Category vocabularies are prelaunch facts (no outcomes), so encoding all rows leaks nothing.
    x_all = encoder.fit_transform(cb[cols].astype(str).where(cb[cols].notna(), "(missing)"))
    out = np.full(len(rows), np.nan)
    start = int(launch[rows].min())
    end = int(launch[rows].max())
    for refit in range(start, end + 1, config.gbm_refit_days):
        at = np.flatnonzero((launch[rows] >= refit) & (launch[rows] < refit + config.gbm_refit_days))
        if not len(at):
            continue
        y, _, _ = labels.at(refit)  # cases available before the refit day: before every query of the block
        train = np.flatnonzero(np.isfinite(y))
        if len(train) < 20:
            continue
        model = HistGradientBoostingRegressor(max_iter=100, learning_rate=0.08, max_leaf_nodes=15,
                                              min_samples_leaf=max(5, len(train) // 50),
                                              categorical_features=np.ones(len(cols), dtype=bool),
                                              random_state=config.seed)
        model.fit(x_all[train], y[train])
        out[at] = model.predict(x_all[rows[at]])
    return _fill(out, rows, labels, launch)


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties at their average: `scipy.stats.rankdata(values)` exactly (ranks are whole or
    half numbers, so any correct computation gives the same floats), NaN everywhere if any value is NaN.
    Without scipy's per-call overhead: the metrics below rank thousands of small cohorts per run."""
    values = np.asarray(values, dtype=float)
    if np.isnan(values).any():
        return np.full(len(values), np.nan)
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    counts = np.diff(np.r_[starts, len(values)])
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(starts + (counts + 1) / 2.0, counts)
    return ranks


def _near_constant(values: np.ndarray) -> bool:
    """`np.allclose(values, values[0])` (its default tolerances), computed directly for finite values."""
    if not np.isfinite(values).all():
        return bool(np.allclose(values, values[0]))
    return bool((np.abs(values - values[0]) <= 1e-8 + 1e-5 * abs(values[0])).all())


def _spearman(pred: np.ndarray, actual: np.ndarray) -> float:
    """`scipy.stats.spearmanr(pred, actual).statistic` to the bit (the same ranks, the same `np.corrcoef`
    call), NaN for fewer than 3 values or a (nearly) constant side."""
    pred, actual = np.asarray(pred, dtype=float), np.asarray(actual, dtype=float)
    if len(pred) < 3 or _near_constant(pred) or _near_constant(actual):
        return float("nan")
    ranked = np.column_stack((average_ranks(pred), average_ranks(actual)))
    if np.isnan(ranked).any():
        return float("nan")
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.corrcoef(ranked, rowvar=False)[1, 0])


def evaluate_ranking(pred: np.ndarray, actual: np.ndarray, cohorts: np.ndarray, config: BacktestConfig,
                     rng: np.random.Generator) -> dict[str, float]:
    """The four ranking metrics of the module doc for one method on one window."""
    pred = np.asarray(pred, dtype=float)
    actual = np.asarray(actual, dtype=float)
    within, ndcgs = [], []
    for cohort in np.unique(cohorts):
        idx = np.flatnonzero(cohorts == cohort)
        if len(idx) < config.min_cohort:
            continue
        p, a = pred[idx], actual[idx]
        rho = _spearman(p, a)
        within.append(0.0 if _near_constant(p) or not np.isfinite(rho) else rho)
        ndcgs.append(ndcg_at_k(p, a, config.ndcg_k, rng))
    n = len(pred)
    top = max(1, int(round(config.top_fraction * n)))
    tie_break = rng.random(n)
    predicted_top = np.lexsort((tie_break, -pred))[:top]
    actual_top = np.argsort(-actual, kind="stable")[:top]
    return {
        "spearman": _spearman(pred, actual),
        "spearman_within_cohort": float(np.mean(within)) if within else float("nan"),
        "ndcg@10": float(np.mean(ndcgs)) if ndcgs else float("nan"),
        "top_decile_precision": len(set(predicted_top) & set(actual_top)) / top,
        "n_cohorts": len(within),
    }


def ndcg_at_k(pred: np.ndarray, actual: np.ndarray, k: int, rng: np.random.Generator) -> float:
    """NDCG@k with gain = the actual outcome's percentile in the cohort (0 = worst, 1 = best);
    tied predictions are ordered at random."""
    n = len(pred)
    gain = (average_ranks(actual) - 1) / max(n - 1, 1)
    order = np.lexsort((rng.random(n), -np.asarray(pred)))[:k]
    discount = 1.0 / np.log2(np.arange(2, min(k, n) + 2))
    dcg = float((gain[order] * discount[:len(order)]).sum())
    ideal = float((np.sort(gain)[::-1][:k] * discount[:min(k, n)]).sum())
    return dcg / ideal if ideal > 0 else float("nan")
