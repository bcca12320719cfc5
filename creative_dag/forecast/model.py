"""The prelaunch forecast: models on decision-time inputs, refitted as of each launch week.

For each KPI and input set, `rolling_forecast` walks the launch days in blocks of `refit_days`:
on the first day r of a block it fits a model on the cases available before r (launched and
matured, `available_date < r`) and predicts every creative launched in [r, r + refit_days). So
a creative's forecast only ever sees what was known on its launch day (tests/test_forecast.py
checks this by changing the future and comparing). Before `min_train` labelled cases exist, the
forecast is the account's trailing level.

The learner (`fit_predict`, default "stacked") is one ridge regression per input group plus
LightGBM on all columns, combined with non-negative weights fitted on out-of-fold predictions.
LightGBM rather than scikit-learn's HistGradientBoosting: the same family of model, but it handles
category codes natively at small sizes, fits these tables in milliseconds on one thread, and saves
a model as readable text (`Booster.save_model`), which the product keeps instead of a pickle.

The served forecast (`run_forecast`) is the mean, on the reporting scale (score as is, rates
cube-rooted), of the candidate models (`CANDIDATE_SETS`) on both target variants plus the case memory's
own forecast.
Intervals are split-conformal on that scale: a quantile of |residual| over the most recent creatives
whose outcome was known before the launch, at a level that starts at 80 % and adapts to how often the
earlier intervals missed (`rolling_conformal`, `adapted_level`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from creative_dag.cbr.backtest import (
    AsOfLabels,
    BacktestConfig,
    account_week_cohorts,
    evaluate_ranking,
    query_windows,
)
from creative_dag.cbr.index import to_days
from creative_dag.cbr.query import CaseMemory
from creative_dag.forecast.features import (
    ForecastInputs,
    apply_pca,
    build_inputs,
    reduce_blocks,
)
from creative_dag.forecast.learners import (
    KeptFit,
    LinearModel,
    column_groups,
    predict_fitted,
)
from creative_dag.forecast.memo import RefitMemo, row_digests
from creative_dag.forecast.parallel import RollingJob, run_jobs
from creative_dag.forecast.targets import (
    KPIS,
    KpiTarget,
    TargetSpec,
    kpi_targets,
    realised,
)


@dataclass(frozen=True)
class ForecastConfig:
    """kpis: forecast KPIs; warmup_days / validation_share: the backtest's windows (same queries);
    refit_days: refit cadence; min_train: fewest labelled cases to fit a model; min_support: fewest training cases with
    (and without) a flag or tag for a refit to use that column; pca_dims: components
    kept per block; k: neighbours for the CBR features; target: see TargetSpec (its `normalise` is set per
    model); target_mode: fit the served models on "both" targets, or only "normalised" / "raw";
    interval / conformal_window: coverage and the recent residuals it is calibrated on; interval_gamma: how
    fast the interval's quantile level adapts to how often earlier intervals missed (`adapted_level`); booster
    settings; evaluate / evaluate_kpis: also fit the comparison input sets of `marts.performance_model`
    for these KPIs; learner: stacked (default: a ridge per input group and LightGBM, stacked), lightgbm,
    hist_gbm, linear, grouped_linear or blend (`fit_predict`); stack_folds: out-of-fold splits of the stack;
    workers: processes the rolling forecasts run on (0 = one per core, 1 = in the step's process; the same
    answers on any number)."""

    kpis: tuple[str, ...] = KPIS
    warmup_days: int = 21
    validation_share: float = 0.3
    refit_days: int = 7
    min_train: int = 20
    min_support: int = 5
    pca_dims: int = 24
    k: int = 20
    target: TargetSpec = field(default_factory=TargetSpec)
    interval: float = 0.8
    conformal_window: int = 50
    interval_gamma: float = 0.01
    n_estimators: int = 100
    learning_rate: float = 0.06
    num_leaves: int = 15
    min_child_fraction: float = 0.02
    feature_fraction: float = 0.7
    max_bin: int = 63
    seed: int = 0
    evaluate: bool = True
    evaluate_kpis: tuple[str, ...] = ("score", "ctr")
    target_mode: str = "both"
    learner: str = "stacked"
    stack_folds: int = 3
    workers: int = 0


# The served forecast averages models on these input sets (and the CBR forecast); the rest are comparisons.
# "context+attributes" (no vectors) is the low-variance member: on three generated 300-creative scenarios it
# alone ranked as well as the models with block vectors, and the mean with it beat the mean without it on 12 of
# 12 seed x KPI test windows (docs/marts.md). The block models stay for what only vectors see
# (tests/test_forecast.py).
PRIMARY_SET = "all+cbr"
INTERPRETABLE_SET = "context+attributes"
CANDIDATE_SETS = (PRIMARY_SET, "all_blocks", INTERPRETABLE_SET)
PERFORMANCE_COLUMNS = ("input_set", "kpi", "window", "target", "served", "rmse", "mae", "r2", "spearman",
                       "spearman_within_cohort", "interval_coverage", "n_with_interval", "n", "n_without_forecast",
                       "n_account_level")


@dataclass
class FittedModel:
    """The last refit of one KPI's primary model: what `save` writes beside the warehouse."""

    kpi: str
    members: dict[str, Any]  # learner name -> fitted model (LightGBM Booster, LinearModel) or the stack weights
    features: list[str]
    categorical: list[str]
    pca: dict[str, dict]
    trained_through: str
    n_train: int
    target: TargetSpec
    conformal_q: float
    input_set: str = PRIMARY_SET
    interval_level: float = float("nan")  # the quantile level the next launch's interval uses


@dataclass
class RollingResult:
    """Per target row: prediction in KPI units, lower/upper (when intervals were computed), the
    model-space prediction, and which refit produced it (its day and training size)."""

    rows: np.ndarray
    pred: np.ndarray
    z_pred: np.ndarray
    refit_day: np.ndarray
    n_train: np.ndarray
    last_model: FittedModel | None = None


@dataclass
class ForecastResult:
    predictions: pd.DataFrame
    performance: pd.DataFrame
    models: dict[str, FittedModel]
    info: dict[str, Any] = field(default_factory=dict)

    def value(self, input_set: str, kpi: str, metric: str = "spearman", window: str = "test") -> float:
        p = self.performance
        sel = p[(p["input_set"] == input_set) & (p["kpi"] == kpi) & (p["window"] == window)]
        return float(sel[metric].iloc[0]) if len(sel) else float("nan")

    def served(self, kpi: str, metric: str = "spearman", window: str = "test") -> float:
        p = self.performance
        sel = p[p["served"] & (p["kpi"] == kpi) & (p["window"] == window)]
        return float(sel[metric].iloc[0]) if len(sel) else float("nan")

    def table_markdown(self, window: str = "test") -> str:
        p = self.performance[self.performance["window"] == window]
        cols = ["input_set", "kpi", "target", "served", "rmse", "mae", "r2", "spearman", "spearman_within_cohort",
                "interval_coverage", "n"]
        return p[cols].round(3).to_markdown(index=False) if len(p) else "_no evaluation rows_"

    def headline(self) -> dict[str, Any]:
        """Key figures for the asset metadata: the served forecast per KPI on the test window, and what it
        averages (once: the same members for every KPI made four ~170-character labels)."""
        out: dict[str, Any] = {}
        for kpi in self.info.get("served", {}):
            out[f"{kpi}: test Spearman (served)"] = self.served(kpi)
            out[f"{kpi}: test interval coverage"] = self.served(kpi, "interval_coverage")
        members = sorted(set(self.info.get("served", {}).values()))
        if members:
            out["served forecast"] = "; ".join(members)
        return out


def empty_performance() -> pd.DataFrame:
    """`marts.performance_model` with no rows, with its columns and types."""
    types = {"target": str, "served": bool, "input_set": str, "kpi": str, "window": str, "n": "int64",
             "n_without_forecast": "int64", "n_account_level": "int64", "n_with_interval": "int64"}
    return pd.DataFrame({c: pd.Series(dtype=types.get(c, float)) for c in PERFORMANCE_COLUMNS})


def empty_predictions() -> pd.DataFrame:
    """`marts.predictions` with no rows, with its columns and types."""
    cols = {"creative_id": str, "account_id": str, "launch_date": "datetime64[ns]", "kpi": str, "window": str,
            "forecast": float, "lower": float, "upper": float, "realised": float, "account_level": float,
            "model_trained_through": str, "n_train": "int64", "input_set": str, "evidence_ids": object,
            "evidence_top_similarity": float, "context_forecast": float}
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in cols.items()})


def input_sets(inputs: ForecastInputs) -> dict[str, tuple[list[str], list[str]]]:
    """Input set name -> (static columns, blocks) for the evaluation table."""
    ctx, attrs, cbr = inputs.groups["context"], inputs.groups["attributes"], inputs.groups["cbr"]
    blocks = list(inputs.blocks)
    sets: dict[str, tuple[list[str], list[str]]] = {"context": (ctx, [])}
    if attrs:
        sets["attributes"] = (attrs, [])
    for b in blocks:
        sets[f"block:{b}"] = ([], [b])
    if attrs:
        sets[INTERPRETABLE_SET] = (ctx + attrs, [])
    sets["all_blocks"] = (ctx + attrs, blocks)
    sets[PRIMARY_SET] = (ctx + attrs + cbr, blocks)
    return sets


def _booster(config: ForecastConfig, n_train: int):
    import lightgbm as lgb

    return lgb.LGBMRegressor(
        n_estimators=config.n_estimators, learning_rate=config.learning_rate, num_leaves=config.num_leaves,
        min_child_samples=max(5, int(config.min_child_fraction * n_train)), subsample=0.8, subsample_freq=1,
        colsample_bytree=config.feature_fraction, reg_lambda=1.0, random_state=config.seed, max_bin=config.max_bin,
        # One thread: 2 threads per fit made the demo's forecast 1.7-1.9x SLOWER on 2 cores (114 -> 192-219 s; the
        # same predictions), although one fit alone is 1.7x faster: LightGBM's OpenMP threads and the BLAS
        # threads of the ridges and PCAs between fits fight for the cores. The cores go to worker processes
        # instead, one rolling forecast each (config.workers, creative_dag.forecast.parallel).
        n_jobs=1,
        # LightGBM's category defaults (100 rows per category group) suit millions of rows; an account
        # has hundreds, and its account and placement codes must still be usable.
        min_data_per_group=5, max_cat_to_onehot=16, cat_smooth=5.0,
        # max_bin (63, not LightGBM's 255): at most a few thousand training cases, ~25+ per bin. Measured on four
        # homes (the demo, seeds 3 and 11, 2,000 creatives): served test Spearman better in 12 of 16 KPI cells
        # (mean +0.002, worst -0.003), interval coverage within 0.02, the 2,000-creative forecast 213 -> 146 s.
        deterministic=True, force_col_wise=True, verbose=-1)


def _binary_columns(static: pd.DataFrame, cols: Sequence[str]) -> list[str]:
    """The 0/1 columns (flags, object tags) among `cols`: every finite value is 0 or 1."""
    values = static[list(cols)].to_numpy(dtype=float)
    binary = np.where(np.isfinite(values), np.isin(values, (0.0, 1.0)), True).all(axis=0)
    return [c for c, is_binary in zip(cols, binary) if is_binary]


def learnable_columns(static: pd.DataFrame, cols: Sequence[str], binary: Sequence[str], train: np.ndarray,
                      min_support: int, binary_values: np.ndarray | None = None) -> list[str]:
    """`cols` without the 0/1 columns that fewer than `min_support` training cases have (or lack).

    The attribute frame keeps an object tag once the whole history has a few creatives with it, so a
    new day can add a tag column to every row. A refit only keeps what its own training cases can
    teach: nothing is lost (a model cannot learn from 2 examples), the inputs of a past refit no longer
    change when later creatives land, and a tag that exists only because of later creatives never
    reaches an earlier forecast.

    binary_values: `static[binary]` as floats, when the caller asks for many training sets."""
    values = (static[list(binary)].to_numpy(dtype=float) if binary_values is None else binary_values)[train]
    support = np.minimum((values == 1.0).sum(axis=0), (values == 0.0).sum(axis=0))
    drop = {c for c, n in zip(binary, support) if n < min_support}
    return [c for c in cols if c not in drop]


def canonical_values(static: pd.DataFrame, cols: Sequence[str]) -> np.ndarray:
    """`static[cols]` as floats with one NaN bit pattern, so equal inputs have equal bytes (memo keys)."""
    values = static[list(cols)].to_numpy(dtype=float)
    return np.where(np.isnan(values), np.nan, values)


# The settings a refit's predictions depend on besides its input rows (part of its memo key).
FIT_SETTINGS = ("learner", "pca_dims", "seed", "n_estimators", "learning_rate", "num_leaves", "min_child_fraction",
                "feature_fraction", "max_bin", "stack_folds")


def refit_blocks(launch: np.ndarray, refit_days: int) -> dict[int, np.ndarray]:
    """Refit day -> positions in `launch` (launch days of the forecast creatives) predicted by that refit's model:
    a refit every `refit_days` from the first launch, where some creative launches before the next."""
    start, end = int(launch.min()), int(launch.max())
    blocks = {refit: np.flatnonzero((launch >= refit) & (launch < refit + refit_days))
              for refit in range(start, end + 1, refit_days)}
    return {refit: at for refit, at in blocks.items() if len(at)}


def refit_dates(launch_dates: pd.Series, config: ForecastConfig | None = None) -> list[pd.Timestamp]:
    """The launch dates on which `run_forecast` fits new models for creatives launched on `launch_dates`: the first
    launch of each refit's block, so a daily run that lands such a date fits and the runs between reuse the kept
    models."""
    config = config or ForecastConfig()
    forecast = _forecast_launch_days(launch_dates, config)
    return [pd.Timestamp(int(forecast[at].min()), unit="D") for at in refit_blocks(forecast, config.refit_days).values()]


def next_refit_from(launch_dates: pd.Series, config: ForecastConfig | None = None) -> pd.Timestamp:
    """The day from which the next creative to land makes `run_forecast` fit new models (the first launch on or after
    it is the next of `refit_dates`); until then daily runs predict with the kept ones."""
    config = config or ForecastConfig()
    forecast = _forecast_launch_days(launch_dates, config)
    if not len(forecast):
        return pd.Timestamp(int(to_days(launch_dates).min()) + config.warmup_days, unit="D")
    return pd.Timestamp(max(refit_blocks(forecast, config.refit_days)) + config.refit_days, unit="D")


def _forecast_launch_days(launch_dates: pd.Series, config: ForecastConfig) -> np.ndarray:
    """Launch days (days since 1970) of the creatives `run_forecast` forecasts: those after the warm-up."""
    launch = np.asarray(to_days(launch_dates), dtype=np.int64)
    return launch[launch >= launch.min() + config.warmup_days]


def rolling_forecast(inputs: ForecastInputs, target: KpiTarget, static_cols: Sequence[str], blocks: Sequence[str],
                     rows: np.ndarray, config: ForecastConfig, keep_last: bool = False,
                     memo: RefitMemo | None = None) -> RollingResult:
    """As-of forecasts of `target` for case `rows` (see module doc); the account's level where no model could be
    fitted yet (n_train = 0), NaN only where not even that is known.

    memo: reuse the predictions of refits whose inputs are unchanged since an earlier run (`RefitMemo`), and the
    last refit's kept model when only its query rows changed; keep_last: return the last refit's model (from the
    memo when its training inputs are unchanged, else fitted)."""
    launch = target.launch
    pred = np.full(len(rows), np.nan)
    z_pred = np.full(len(rows), np.nan)
    refit_of = np.full(len(rows), -1, dtype=np.int64)
    n_of = np.zeros(len(rows), dtype=np.int64)
    last: FittedModel | None = None
    if not len(rows):
        return RollingResult(rows, pred, z_pred, refit_of, n_of)
    cats = [c for c in static_cols if c in set(inputs.categorical)]
    all_rows = np.arange(len(launch))
    blocks_of = refit_blocks(launch[rows], config.refit_days)
    last_refit = max(blocks_of)
    binary = _binary_columns(inputs.static, static_cols)
    binary_values = inputs.static[binary].to_numpy(dtype=float)
    block_digests = None
    if memo is not None:
        if tuple(blocks) not in inputs.digest_cache:
            inputs.digest_cache[tuple(blocks)] = row_digests(inputs.static, [], [inputs.blocks[b] for b in blocks])
        block_digests = inputs.digest_cache[tuple(blocks)]
        fit_setting = "|".join([",".join(blocks), *(f"{name}={getattr(config, name)!r}" for name in FIT_SETTINGS)])
        # A refit's key holds the values of its static columns on its rows, not per-row digests of them:
        # the same information, hashed in one call instead of one per row and refit.
        static_values = canonical_values(inputs.static, static_cols)
        position = {c: i for i, c in enumerate(static_cols)}
    for refit, at in blocks_of.items():
        y = target.to_model(target.labels_at(refit), all_rows, training=True)
        train = np.flatnonzero(np.isfinite(y))
        if len(train) < config.min_train:
            continue
        q_rows = rows[at]
        cols = learnable_columns(inputs.static, static_cols, binary, train, config.min_support, binary_values)
        refit_cats = [c for c in cats if c in cols]
        is_last = refit == last_refit
        key = train_key = None
        if memo is not None:
            values = static_values[:, [position[c] for c in cols]]
            train_key = memo.key(fit_setting, ",".join(cols), ",".join(refit_cats), values[train],
                                 block_digests[train], y[train])
            key = memo.key(train_key, values[q_rows], block_digests[q_rows])
        z = None if memo is None or (keep_last and is_last) else memo.get(key)
        if z is not None and is_last:
            memo.keep_fit(train_key)  # tomorrow's creatives will need it
        if z is None:
            # The last refit's query rows grow with each new day while its training rows stay: a kept model
            # predicts them as the fresh fit would.
            fit = memo.get_fit(train_key) if memo is not None and is_last else None
            if fit is not None:
                # every row, as the fit built it: projecting the query rows alone could round differently
                x = design_matrix(inputs.static, cols, {b: apply_pca(inputs.blocks[b], p) for b, p in fit.pca.items()})
                z = predict_fitted(fit.members, x.iloc[q_rows][fit.features])
                memo.put(key, z, fitted=False)
            else:
                reduced, pca = reduce_blocks({b: inputs.blocks[b] for b in blocks}, train, config.pca_dims,
                                             config.seed, cache=inputs.pca_cache)
                x = design_matrix(inputs.static, cols, reduced)
                if x.shape[1] == 0:
                    continue
                z, model = fit_predict(config.learner, x, y, train, q_rows, refit_cats, config)
                fit = KeptFit(model, list(x.columns), refit_cats, pca)
                if memo is not None:
                    memo.put(key, z)
                    if is_last:
                        memo.put_fit(train_key, fit)
            if keep_last:
                last = FittedModel(kpi=target.kpi, members=fit.members, features=fit.features,
                                   categorical=fit.categorical, pca=fit.pca,
                                   trained_through=str(pd.Timestamp(refit - 1, unit="D").date()),
                                   n_train=len(train), target=target.spec, conformal_q=float("nan"))
        z_pred[at] = z
        pred[at] = target.from_model(z, q_rows)
        refit_of[at] = refit
        n_of[at] = len(train)
    # Before any model could be fitted (too little history), the forecast is the account's trailing level,
    # as the backtest's baselines fall back to the account mean; n_train = 0 marks it.
    none = ~np.isfinite(pred) & np.isfinite(target.level[rows])
    z_pred[none] = target.to_model(target.level[rows[none]], rows[none])
    pred[none] = target.level[rows[none]]
    return RollingResult(rows, pred, z_pred, refit_of, n_of, last)


def fit_predict(learner: str, x: pd.DataFrame, y: np.ndarray, train: np.ndarray, query: np.ndarray,
                categorical: list[str], config: ForecastConfig,
                group_weights: Mapping[str, float] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Fit `learner` on the train rows and predict the query rows; returns (predictions, {name: fitted model}).

    "lightgbm", "hist_gbm" (scikit-learn, for comparison) and "linear" are single models; "grouped_linear"
    is the ridge with a penalty per input group (`LinearModel`), whose group weights are chosen again unless
    `group_weights` (an earlier fit's `.weights`) are given; "blend" is the
    plain mean of LightGBM and the ridge; "stacked" fits one ridge per input group (context,
    attributes, image tags, each block, CBR evidence) plus LightGBM on everything, and combines them with
    non-negative weights fitted on their out-of-fold predictions — so a group that only adds noise gets
    weight 0 instead of diluting the others, which one model over a few hundred columns cannot avoid
    with a few hundred training cases.
    """
    if learner not in LEARNERS:
        raise ValueError(f"unknown learner {learner!r}; choose one of {', '.join(LEARNERS)}")
    if learner == "lightgbm":
        booster = _fit_booster(x.iloc[train], y[train], categorical, config)
        return booster.predict(x.iloc[query]), {"lightgbm": booster.booster_}
    if learner in ("linear", "grouped_linear"):
        linear = LinearModel.fit(x.iloc[train], y[train], categorical, grouped=learner == "grouped_linear",
                                 weights=group_weights)
        return linear.predict(x.iloc[query]), {"linear": linear}
    if learner == "hist_gbm":  # scikit-learn's booster, kept for the comparison in bench/forecast.py
        from sklearn.ensemble import HistGradientBoostingRegressor

        # Its binning fails on a column with no value in the training rows (LightGBM just ignores one).
        cols = [c for c in x.columns if x[c].iloc[train].notna().any()]
        hgb = HistGradientBoostingRegressor(
            max_iter=config.n_estimators, learning_rate=config.learning_rate, max_leaf_nodes=config.num_leaves,
            min_samples_leaf=max(5, int(config.min_child_fraction * len(train))), l2_regularization=1.0,
            categorical_features=[c in set(categorical) for c in cols], random_state=config.seed)
        hgb.fit(x[cols].iloc[train], y[train])
        return hgb.predict(x[cols].iloc[query]), {"hist_gbm": hgb}
    if learner == "blend":
        booster = _fit_booster(x.iloc[train], y[train], categorical, config)
        linear = LinearModel.fit(x.iloc[train], y[train], categorical)
        pred = 0.5 * booster.predict(x.iloc[query]) + 0.5 * linear.predict(x.iloc[query])
        return pred, {"lightgbm": booster.booster_, "linear": linear,
                      "stack": {"members": ["lightgbm", "linear"], "weights": [0.5, 0.5], "intercept": 0.0}}
    return _stacked(x, y, train, query, categorical, config)


def _fit_booster(x: pd.DataFrame, y: np.ndarray, categorical: list[str], config: ForecastConfig):
    booster = _booster(config, len(x))
    booster.fit(x, y, categorical_feature=[c for c in categorical if c in x.columns] or "auto")
    return booster


def _stacked(x: pd.DataFrame, y: np.ndarray, train: np.ndarray, query: np.ndarray, categorical: list[str],
             config: ForecastConfig) -> tuple[np.ndarray, dict[str, Any]]:
    from scipy.optimize import nnls

    groups = column_groups(x.columns)
    members = [(f"linear:{g}", cols) for g, cols in groups.items()] + [("lightgbm", list(x.columns))]
    frames = {name: x if name == "lightgbm" else x[cols] for name, cols in members}  # selected once, not per fit

    def fit(name: str, rows: np.ndarray):
        if name == "lightgbm":
            return _fit_booster(frames[name].iloc[rows], y[rows], categorical, config)
        return LinearModel.fit(frames[name].iloc[rows], y[rows], categorical)

    folds = min(config.stack_folds, len(train))
    order = np.random.default_rng(config.seed).permutation(len(train))
    oof = np.zeros((len(train), len(members)))
    for f in range(folds):
        held = order[f::folds]
        rest = np.setdiff1d(np.arange(len(train)), held)
        for j, (name, _) in enumerate(members):
            oof[held, j] = fit(name, train[rest]).predict(frames[name].iloc[train[held]])
    y_train = y[train]
    centre_p, centre_y = oof.mean(axis=0), y_train.mean()
    weights, _ = nnls(oof - centre_p, y_train - centre_y)
    intercept = float(centre_y - centre_p @ weights)
    fitted: dict[str, Any] = {"stack": {"members": [m for m, _ in members], "weights": weights.tolist(),
                                        "intercept": intercept}}
    pred = np.full(len(query), intercept)
    for (name, _), w in zip(members, weights):
        if w <= 0:
            continue
        model = fit(name, train)
        pred += w * model.predict(frames[name].iloc[query])
        fitted[name] = model.booster_ if name == "lightgbm" else model
    return pred, fitted


LEARNERS = ("stacked", "blend", "lightgbm", "hist_gbm", "linear", "grouped_linear")
TARGET_MODES = ("both", "normalised", "raw")


def design_matrix(static: pd.DataFrame, cols: Sequence[str], reduced: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """The model's input columns: the chosen static columns plus each reduced block as `<block>_pcN`."""
    parts = [static[list(cols)]] if cols else []
    for b, scores in reduced.items():
        parts.append(pd.DataFrame(scores, index=static.index, columns=[f"{b}_pc{i + 1}" for i in range(scores.shape[1])]))
    return pd.concat(parts, axis=1) if parts else pd.DataFrame(index=static.index)


def conformal_q(z_pred: np.ndarray, z_actual: np.ndarray, coverage: float) -> float:
    """Split-conformal half-width: the ⌈(n+1)·coverage⌉-th smallest |residual| (NaN with < 10 residuals;
    coverage is clipped to (0, 1], 1 giving the largest residual)."""
    resid = np.abs(np.asarray(z_actual, float) - np.asarray(z_pred, float))
    resid = np.sort(resid[np.isfinite(resid)])
    if len(resid) < 10:
        return float("nan")
    rank = min(max(int(np.ceil((len(resid) + 1) * coverage)), 1), len(resid))
    return float(resid[rank - 1])


def adapted_level(coverage: float, missed: np.ndarray, gamma: float) -> float:
    """Adaptive conformal inference (Gibbs & Candès 2021) with delayed feedback: the quantile level to use
    now, given whether each earlier interval whose outcome is known missed. Every known miss raises the
    level by gamma·coverage, every hit lowers it by gamma·(1 − coverage), so intervals that keep covering
    more than `coverage` narrow and ones that cover less widen; gamma = 0 is plain split-conformal."""
    missed = np.asarray(missed, dtype=float)
    return float(np.clip(coverage + gamma * np.sum(missed - (1.0 - coverage)), 0.5, 1.0))


def reporting_scale(value: np.ndarray, kpi: str) -> np.ndarray:
    """The scale forecasts are averaged, intervals built and errors measured on: the score as is, rates
    cube-rooted (skewed, and a cube root keeps them positive when inverted)."""
    value = np.asarray(value, dtype=float)
    return value if kpi == "score" else np.cbrt(value)


def from_reporting_scale(value: np.ndarray, kpi: str) -> np.ndarray:
    value = np.asarray(value, dtype=float)
    return value if kpi == "score" else np.clip(value, 0.0, None) ** 3


def _cbr_forecast(inputs: ForecastInputs, target: KpiTarget, rows: np.ndarray) -> RollingResult:
    """The case memory's own forecast: the account's level moved by the similarity-weighted residual of the
    as-of neighbours (no fitting; the backtest's `cbr` on the normalised target). No neighbours -> the level."""
    neutral = 0.0 if target.kpi == "score" else 1.0  # the normalised target of a creative at its account's level
    z = np.nan_to_num(inputs.static[f"cbr_residual_{target.kpi}"].to_numpy(dtype=float)[rows], nan=neutral)
    pred = target.from_model(z, rows)
    n = np.where(np.isfinite(target.level[rows]), 1, 0)
    return RollingResult(rows, pred, z, np.full(len(rows), -1), n)


def average_members(runs: Mapping[tuple[str, bool], RollingResult], members: Sequence[tuple[str, bool]],
                    kpi: str) -> RollingResult:
    """The mean of the `members` runs on the reporting scale (NaN members ignored per row), back on the KPI's.
    n_train is the fitted members' largest: the CBR member fits nothing (its n marks a known account level),
    and counting it made every warm-up row look fitted (n_train 1, input_set 'ensemble')."""
    first = runs[members[0]]
    scaled = np.vstack([reporting_scale(runs[m].pred, kpi) for m in members])
    with np.errstate(invalid="ignore"):
        z = np.nanmean(np.where(np.isfinite(scaled), scaled, np.nan), axis=0) if len(members) > 1 else scaled[0]
    fitted = [m for m in members if m[0] != "cbr"] or list(members)
    n_train = np.max(np.vstack([runs[m].n_train for m in fitted]), axis=0)
    return RollingResult(first.rows, from_reporting_scale(z, kpi), z, first.refit_day, n_train)


def rolling_conformal(z_pred: np.ndarray, z_actual: np.ndarray, calibrate: np.ndarray, available: np.ndarray,
                      launch: np.ndarray, coverage: float, window: int, gamma: float = 0.0
                      ) -> tuple[np.ndarray, float]:
    """As-of split-conformal half-width per row: `conformal_q` over the `window` most recent calibration rows
    whose outcome was known before the row's launch (available < launch). Recent residuals, because the
    models improve as the memory grows and the first weeks' errors would make every later interval too wide.
    Even recent residuals overstate the next error a little, so the quantile level adapts to how often the
    earlier intervals (of rows known before the launch) missed (`adapted_level`, gamma).
    NaN while fewer than 10 residuals are known. Returns (half-widths, the level the next launch gets:
    adapted to every interval whose outcome is known now)."""
    half = np.full(len(z_pred), np.nan)
    resid = np.abs(np.asarray(z_actual, float) - np.asarray(z_pred, float))
    cal = np.flatnonzero(calibrate & np.isfinite(z_pred) & np.isfinite(z_actual))
    cal = cal[np.argsort(available[cal], kind="stable")]
    for day in np.unique(launch):
        known = cal[available[cal] < day]
        if len(known) < 10:
            continue
        judged = known[np.isfinite(half[known])]  # rows launched before day whose own interval is now known
        level = adapted_level(coverage, resid[judged] > half[judged], gamma)
        recent = known[-window:]
        half[launch == day] = conformal_q(z_pred[recent], z_actual[recent], level)
    judged = cal[np.isfinite(half[cal])]
    return half, adapted_level(coverage, resid[judged] > half[judged], gamma)


def served_forecast(inputs: ForecastInputs, targets: Mapping[bool, KpiTarget],
                    sets: Mapping[str, tuple[list[str], list[str]]], rows: np.ndarray, config: ForecastConfig,
                    keep_last: bool = False, memo: RefitMemo | None = None,
                    done: Mapping[tuple[str, str, bool], RollingResult] | None = None
                    ) -> tuple[dict[tuple[str, bool], RollingResult], list[tuple[str, bool]], RollingResult]:
    """The served forecast of one KPI for case `rows`: (every member's run, the members averaged, the average).

    targets: normalise flag -> the KPI's target. The served forecast averages the candidate models (all inputs
    with and without CBR evidence, context + attributes; normalised and raw target, as `config.target_mode` says)
    on the reporting scale: choosing one on a validation window of a few dozen creatives picked noise, and so
    did weighting them by their as-of errors (non-negative least squares over every earlier out-of-time
    forecast: better on one scenario, worse on another). The CBR forecast is a member too: the weakest on the
    demo-like scenarios, the strongest where the effects live in what the block vectors see (the visual
    scenario of tests/test_forecast.py), and the mean kept either way within noise of its best members.
    done: the members' runs made already (`served_jobs` run by the caller), else they are run here.
    """
    kpi = targets[True].kpi
    jobs = served_jobs(kpi, targets, sets, config, keep_last)
    if done is None:
        done = run_jobs(run_job, inputs, jobs, rows, config, memo, config.workers)
    runs = {job.key[1:]: done[job.key] for job in jobs}
    if f"cbr_residual_{kpi}" in inputs.static.columns:
        runs[("cbr", True)] = _cbr_forecast(inputs, targets[True], rows)
    members = [key for key in runs if runs[key].n_train.any()] or list(runs)
    return runs, members, average_members(runs, members, kpi)


def served_jobs(kpi: str, targets: Mapping[bool, KpiTarget], sets: Mapping[str, tuple[list[str], list[str]]],
                config: ForecastConfig, keep_last: bool) -> list[RollingJob]:
    """The rolling forecasts the served forecast of `kpi` averages (the CBR member needs none)."""
    modes = {"both": (True, False), "normalised": (True,), "raw": (False,)}[config.target_mode]
    return [RollingJob((kpi, name, norm), targets[norm], *sets[name], keep_last=keep_last)
            for name in CANDIDATE_SETS if name in sets for norm in modes]


def run_job(inputs: ForecastInputs, job: RollingJob, rows: np.ndarray, config: ForecastConfig,
            memo: RefitMemo | None) -> RollingResult:
    """`rolling_forecast` of one job (what `run_jobs` runs, here or in a worker)."""
    return rolling_forecast(inputs, job.target, job.static_cols, job.blocks, rows, config, keep_last=job.keep_last,
                            memo=memo)


def run_forecast(case_base: pd.DataFrame, memory: CaseMemory | None = None, attributes: pd.DataFrame | None = None,
                 config: ForecastConfig | None = None, oracle: Mapping[str, Mapping[str, float]] | None = None,
                 weights: Mapping[str, float] | None = None, memo: RefitMemo | None = None) -> ForecastResult:
    """Forecast every creative of the case base for every KPI and evaluate against the backtest's windows.

    memo: the refits of an earlier run to reuse where their inputs are unchanged (the caller saves it).

    oracle: optional KPI -> {creative_id: expected value} (a generated scenario's observable
    truth) evaluated as one more row of the table. Raises ValueError (from the backtest's window
    split) when too few matured creatives follow the warm-up.
    """
    config = config or ForecastConfig()
    memory = memory or CaseMemory(case_base)
    cb = memory.case_base
    launch = np.asarray(to_days(cb["launch_date"]), dtype=np.int64)
    query_rows, window = query_windows(cb, config.warmup_days, config.validation_share)
    window_of = pd.Series(window, index=query_rows)
    first = int(launch.min())
    target_rows = np.flatnonzero(launch >= first + config.warmup_days)
    labels = AsOfLabels(cb, config.target.prior_strength)
    kpis = [k for k in config.kpis if k in KPIS]
    if config.target_mode not in TARGET_MODES:
        raise ValueError(f"unknown target_mode {config.target_mode!r}; choose one of {', '.join(TARGET_MODES)}")
    targets = kpi_targets(cb, kpis, config.target, labels)
    chosen = targets[True]  # CBR evidence is read relative to each neighbour's account level either way
    inputs = build_inputs(memory, attributes, chosen, k=config.k, weights=weights)
    sets = input_sets(inputs)
    cohorts = account_week_cohorts(cb)
    bt = BacktestConfig(warmup_days=config.warmup_days, validation_share=config.validation_share, seed=config.seed)

    # Every rolling forecast of the run at once, so that they can share the cores (config.workers).
    jobs = [job for kpi in kpis for job in served_jobs(kpi, {n: targets[n][kpi] for n in (True, False)}, sets,
                                                       config, keep_last=True)]
    # The comparison sets on the normalised target: "a block alone" then means the block on top of the
    # account's own level, as in the paper (a raw-target block alone cannot even see the account).
    served_keys = {job.key for job in jobs}
    jobs += [RollingJob((kpi, other, True), targets[True][kpi], *sets[other])
             for kpi in kpis if config.evaluate and kpi in config.evaluate_kpis
             for other in sets if (kpi, other, True) not in served_keys]
    done = run_jobs(run_job, inputs, jobs, target_rows, config, memo, config.workers)

    perf_rows: list[dict[str, Any]] = []
    pred_frames: list[pd.DataFrame] = []
    models: dict[str, FittedModel] = {}
    served: dict[str, str] = {}
    levels: dict[str, float] = {}
    for kpi in kpis:
        actual = realised(cb, kpi)
        runs, members, primary = served_forecast(inputs, {norm: targets[norm][kpi] for norm in (True, False)},
                                                 sets, target_rows, config, keep_last=True, memo=memo, done=done)
        served[kpi] = "mean of " + ", ".join(f"{n} ({'normalised' if m else 'raw'})" for n, m in members)
        target = targets[members[0][1]][kpi]
        z_actual = reporting_scale(actual[target_rows], kpi)
        # Calibrated on every served forecast with a known account level, fitted or not (before any model the served
        # mean is the account level moved by the case memory's neighbours): leaving those out left the validation
        # window without intervals. An account's first launches (no level yet) stay out.
        calibrate = np.isin(target_rows, query_rows) & ((primary.n_train > 0) | np.isfinite(target.level[target_rows]))
        half, levels[kpi] = rolling_conformal(primary.z_pred, z_actual, calibrate, target.available[target_rows],
                                              target.launch[target_rows], config.interval, config.conformal_window,
                                              config.interval_gamma)
        lower = from_reporting_scale(primary.z_pred - half, kpi)
        upper = from_reporting_scale(primary.z_pred + half, kpi)
        later = np.isfinite(half)
        q_last = float(half[later][-1]) if later.any() else float("nan")
        for key in members:
            model = runs[key].last_model
            if model is not None:
                model.conformal_q, model.input_set, model.interval_level = q_last, key[0], levels[kpi]
                models[f"{kpi}.{key[0].replace('+', '_')}.{'normalised' if key[1] else 'raw'}"] = model
        best = ("served", None)
        runs[best] = primary
        runs.update({key[1:]: res for key, res in done.items() if key[0] == kpi and key[1:] not in runs})
        for (set_name, set_norm), res in runs.items():
            perf_rows += evaluate_forecast(set_name, kpi, res, actual, window_of, cohorts, bt,
                                           interval=(lower, upper) if (set_name, set_norm) == best else None,
                                           target=None if set_norm is None else targets[set_norm][kpi].spec,
                                           served=(set_name, set_norm) == best)
        if oracle and kpi in oracle:
            expected = cb["creative_id"].map(oracle[kpi]).to_numpy(dtype=float)
            res = RollingResult(target_rows, expected[target_rows], expected[target_rows],
                                np.full(len(target_rows), -1), np.ones(len(target_rows), np.int64))
            perf_rows += evaluate_forecast("observable oracle", kpi, res, actual, window_of, cohorts, bt, None, None)
        context_only = runs.get(("context", True))
        pred_frames.append(_prediction_rows(cb, kpi, target_rows, primary, lower, upper, actual, window_of,
                                            inputs, target, "ensemble",
                                            None if context_only is None else context_only.pred))
    performance = pd.DataFrame(perf_rows) if perf_rows else empty_performance()
    predictions = pd.concat(pred_frames, ignore_index=True) if pred_frames else empty_predictions()
    info = {"n_creatives": len(cb), "n_forecast": len(target_rows), "n_validation": int((window == "validation").sum()),
            "n_test": int((window == "test").sum()), "input_sets": list(sets), "notes": inputs.notes,
            "blocks": list(inputs.blocks), "served": served, "interval_level": levels}
    return ForecastResult(predictions=predictions, performance=performance, models=models, info=info)


def evaluate_forecast(name: str, kpi: str, res: RollingResult, actual: np.ndarray, window_of: pd.Series,
                      cohorts: np.ndarray, bt: BacktestConfig, interval: tuple[np.ndarray, np.ndarray] | None,
                      target: TargetSpec | None, served: bool = False) -> list[dict[str, Any]]:
    """Rows of `marts.performance_model` for one run `res` of input set `name`: per window (validation, test),
    errors on the reporting scale, Spearman overall and within cohorts, and the interval's coverage if given."""
    rows_out = []
    pos = {r: i for i, r in enumerate(res.rows)}
    for win in ("validation", "test"):
        q_rows = window_of.index[window_of.to_numpy() == win].to_numpy()
        idx = np.array([pos[r] for r in q_rows if r in pos], dtype=np.int64)
        if not len(idx):
            continue
        rows = res.rows[idx]
        p, a = res.pred[idx], actual[rows]
        ok = np.isfinite(p) & np.isfinite(a)
        if ok.sum() < 3:
            continue
        p, a, rows_ok = p[ok], a[ok], rows[ok]
        err = reporting_scale(p, kpi) - reporting_scale(a, kpi)
        ranking = evaluate_ranking(p, a, cohorts[rows_ok], bt, np.random.default_rng(bt.seed + 1))
        coverage, with_interval = float("nan"), 0
        if interval is not None:
            lo, hi = interval[0][idx][ok], interval[1][idx][ok]
            has = np.isfinite(lo) & np.isfinite(hi)  # the first days have too few known residuals for an interval
            with_interval = int(has.sum())
            coverage = float(np.mean((a[has] >= lo[has]) & (a[has] <= hi[has]))) if has.sum() >= 3 else float("nan")
        ss_tot = float(np.sum((reporting_scale(a, kpi) - reporting_scale(a, kpi).mean()) ** 2))
        rows_out.append({
            "input_set": name, "kpi": kpi, "window": win,
            "target": "" if target is None else ("normalised" if target.normalise else "raw"), "served": served,
            "rmse": float(np.sqrt(np.mean(err ** 2))), "mae": float(np.mean(np.abs(err))),
            "r2": 1.0 - float(np.sum(err ** 2)) / ss_tot if ss_tot > 0 else float("nan"),
            "spearman": ranking["spearman"], "spearman_within_cohort": ranking["spearman_within_cohort"],
            "interval_coverage": coverage, "n_with_interval": with_interval, "n": int(ok.sum()),
            "n_without_forecast": int((~np.isfinite(res.pred[idx])).sum()),
            # Before min_train matured cases exist every input set falls back to the account's level, so on a
            # short history their rows agree closely: this count says how much of the window that was.
            "n_account_level": int((res.n_train[idx][ok] == 0).sum()),
        })
    return rows_out


def _prediction_rows(cb: pd.DataFrame, kpi: str, rows: np.ndarray, res: RollingResult, lower: np.ndarray,
                     upper: np.ndarray, actual: np.ndarray, window_of: pd.Series, inputs: ForecastInputs,
                     target: KpiTarget, input_set: str, context_only: np.ndarray | None = None) -> pd.DataFrame:
    """context_forecast: the context-only model's as-of forecast (a baseline for the pairwise evaluation;
    NaN for KPIs the comparison sets were not fitted for)."""
    nb = inputs.neighbors[rows][:, :3]
    ids = cb["creative_id"].to_numpy()
    evidence = [[str(ids[j]) for j in r if j >= 0] for r in nb]
    mature = cb["outcome_is_mature"].to_numpy(dtype=bool) if "outcome_is_mature" in cb.columns else np.ones(len(cb), bool)
    window = np.array([window_of.get(r, "live" if not mature[r] else "unevaluated") for r in rows], dtype=object)
    refit = np.where(res.refit_day >= 0, res.refit_day, np.nan)
    return pd.DataFrame({
        "creative_id": ids[rows], "account_id": cb["account_id"].to_numpy()[rows],
        "launch_date": pd.to_datetime(cb["launch_date"].to_numpy()[rows]).date, "kpi": kpi, "window": window,
        "forecast": res.pred, "lower": lower, "upper": upper,
        "realised": np.where(mature[rows], actual[rows], np.nan),
        "account_level": target.level[rows],
        "model_trained_through": [None if not np.isfinite(d) else str(pd.Timestamp(int(d) - 1, unit="D").date())
                                  for d in refit],
        "n_train": res.n_train, "input_set": np.where(res.n_train > 0, input_set, "account level (too little history)"),
        "evidence_ids": evidence,
        "evidence_top_similarity": inputs.static["cbr_top_similarity"].to_numpy()[rows],
        "context_forecast": np.full(len(rows), np.nan) if context_only is None else context_only,
    })


def save_models(models: Mapping[str, FittedModel], folder: str | Path) -> list[Path]:
    """The last refit of each served member (key `<kpi>.<input set>.<target>`): LightGBM as text
    (`<key>.lightgbm.txt`) and `<key>.json` with the feature list, categorical features, block PCAs, the
    ridge members' coefficients, the stack weights, training window, target transform and interval width."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for kpi, m in models.items():
        meta = {"kpi": m.kpi, "member": kpi, "input_set": m.input_set, "features": m.features,
                "categorical": m.categorical, "pca": m.pca,
                "trained_through": m.trained_through, "n_train": m.n_train, "target": asdict(m.target),
                "conformal_q": m.conformal_q, "interval_level": m.interval_level, "learners": sorted(m.members),
                "prediction": "stack: intercept + sum of weight x member prediction, in the target space",
                "served_as": "one member of the mean (score as is, rates cube-rooted) that marts.predictions serves; "
                             "the other fitted members are saved beside it (<kpi>.<input set>.<target>.json); the CBR "
                             "forecast needs no fitted model"}
        for name, model in m.members.items():
            if name == "lightgbm":
                model_path = folder / f"{kpi}.lightgbm.txt"
                model.save_model(str(model_path))
                written.append(model_path)
            elif name == "stack":
                meta["stack"] = model
            elif name == "hist_gbm":  # scikit-learn has no format of its own but pickle: say so, save nothing
                meta["hist_gbm"] = "not saved: scikit-learn models have no portable format; use learner=stacked"
            else:
                meta[name] = model.to_dict()
        # no indent: Python's C encoder only runs without one (the PCA matrices made an indented dump ~1 s a run)
        (folder / f"{kpi}.json").write_text(json.dumps(meta))
        written.append(folder / f"{kpi}.json")
    return written
