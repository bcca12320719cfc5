"""Suspected-leakage sniffing: decision-time columns that know the outcome too well.

Registry labels are written by people and can be wrong. A column labelled `prelaunch` that
predicts its creative's lifecycle outcome almost perfectly was almost surely measured after
launch. The rules (thresholds in `LeakageSniffConfig`):

* numeric `prelaunch` column: |Spearman(column, outcome)| > `numeric_threshold` (0.9) against each
  target (lifecycle CTR and ROAS by default), over creatives with both values.
* categorical `prelaunch` column: encode each category by the mean outcome rank of the *other
  folds* (5-fold, smoothed toward the overall mean; categories with fewer than
  `min_category_support` training rows get the overall mean), then AUC of that score for winners
  (top quartile) vs losers (bottom quartile) > `auc_threshold` (0.95). Out-of-fold
  matters: in-sample encoding of a near-unique column (headline, image_path) is trivially perfect.
  With several accounts the column must also separate them within accounts (the same test on the
  outcome ranked within each account, AUC > `within_account_auc`, 0.75): accounts' base rates differ
  by multiples, so an account's own country or product line sorts winners from losers across accounts
  without knowing anything about a creative. The numeric rules have the same guard: a number that
  trips them must also have |Spearman| > `within_account_spearman` (0.5) with the outcome when both
  are ranked within each account.
  Strings that parse as numbers are treated as numbers.
* `early` column: compared with the outcome *after* the early window (days N.. of the creative's
  life), because the lifetime outcome contains the early days mechanically. Honest early KPIs,
  recomputed from raw metrics, predict the future well, so the bar is relative: flag when
  |Spearman| > max(`early_threshold`, min(reference + `early_margin`, `early_ceiling`)), where
  reference is the strongest |Spearman| of the honest early KPIs for that target. A column that
  knows more about the future than the first N days of data themselves must contain later data.
* the contract's known leaky export columns (last_7d_ctr, lifetime_spend, lifetime_roas) in a
  decision-time table are always flagged, whatever the registry says.
* names that read like lifecycle aggregates (`lifetime_*`, `last_7d_*`, `*_to_date`, ...) are
  reported as hints, not failures.

Every test needs `min_support` creatives (and `min_class_support` winners and losers); with less
data the column is reported as "not tested" rather than passed silently.

Memory stays bounded whatever the text: category values longer than MAX_CATEGORY_CHARS are
replaced, once, by a short label with a digest of the full value (equal values keep equal
labels, so grouping is unchanged), and categories are grouped as integer codes. Without that, one
100 MB headline cell was copied per fold and per target (pyarrow-backed strings copy their bytes)
until the machine ran out of memory.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from creative_dag.contract import KNOWN_LEAKY_EXPORT_COLUMNS
from creative_dag.features.registry import EARLY, ID, PRELAUNCH, FeatureRegistry

FINDING_COLUMNS = (
    "column", "stage", "target", "method", "statistic", "threshold", "n", "suspected", "explanation",
)
MAX_CATEGORY_CHARS = 200
METHOD_SPEARMAN = "spearman"
METHOD_AUC = "oof_target_encoding_auc"
METHOD_NUMERIC_AUC = "winner_loser_auc"
METHOD_KNOWN_EXPORT = "known_leaky_export_column"
METHOD_NAME_HINT = "name_hint"
METHOD_NOT_TESTED = "not_tested"

_LIFECYCLE_NAME = re.compile(
    r"^(lifetime|ltd|cumulative|last_\d+d|trailing_\d+d|l\d+d|past_\d+d)_|_(lifetime|to_date|ltd|last_\d+d)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class LeakageSniffConfig:
    """Thresholds of the suspected-leakage rules (see module docstring)."""

    targets: tuple[str, ...] = ("ctr", "roas")
    numeric_threshold: float = 0.9
    auc_threshold: float = 0.95
    early_threshold: float = 0.9
    early_margin: float = 0.05
    early_ceiling: float = 0.995
    min_support: int = 30
    min_class_support: int = 10
    min_category_support: int = 5
    winner_quantile: float = 0.75
    loser_quantile: float = 0.25
    n_folds: int = 5
    seed: int = 0
    within_account_auc: float = 0.75
    within_account_spearman: float = 0.5


def sniff_leakage(table: pd.DataFrame, registry: FeatureRegistry, outcomes: pd.DataFrame,
                  config: LeakageSniffConfig = LeakageSniffConfig(),
                  post_window_outcomes: pd.DataFrame | None = None,
                  honest_early: pd.DataFrame | None = None) -> pd.DataFrame:
    """Test every prelaunch/early column of a decision-time `table` for suspected leakage.

    `outcomes`: creative_id + target columns over the whole life (features.outcomes).
    `post_window_outcomes`: creative_id + targets after the early window; needed for `early`
    columns (otherwise they are reported not tested). `honest_early`: creative_id + early KPIs
    recomputed from raw metrics, the reference for the relative early rule.
    Returns one row per (column, target, method) with FINDING_COLUMNS; `suspected` is the verdict.
    """
    findings: list[dict] = []
    table = table.copy()
    table["creative_id"] = table["creative_id"].astype(str)
    for column in table.columns:
        if column != "creative_id":
            table[column] = bounded_text(table[column])
    launch = _launch_ordinals(table, outcomes)
    early_thresholds: dict[str, float] | None = None
    for column in table.columns:
        if column == "creative_id":
            continue
        stage = registry.stage_of(column)
        if column in KNOWN_LEAKY_EXPORT_COLUMNS:
            findings.append(_finding(
                column, stage, "", METHOD_KNOWN_EXPORT, np.nan, np.nan, len(table), True,
                f"{column} is one of the export's lifetime columns the input contract names as leaky "
                f"(creative_dag.contract.KNOWN_LEAKY_EXPORT_COLUMNS) but the registry labels it {stage!r}; "
                "it is measured after launch. Remove the override from the landing feature_registry.json."))
        if stage == ID or stage not in (PRELAUNCH, EARLY):
            continue
        if _LIFECYCLE_NAME.search(column):
            findings.append(_finding(
                column, stage, "", METHOD_NAME_HINT, np.nan, np.nan, len(table), False,
                f"name of {column} reads like a lifecycle aggregate; check its {stage!r} label"))
        if stage == PRELAUNCH:
            findings += _test_column(table, column, stage, outcomes, config, launch,
                                     numeric_threshold=config.numeric_threshold, outcome_label="lifecycle")
        else:
            if post_window_outcomes is None:
                findings.append(_finding(column, stage, "", METHOD_NOT_TESTED, np.nan, np.nan, 0, False,
                                         "no post-window outcomes given; early columns not tested"))
                continue
            if early_thresholds is None:
                early_thresholds = _early_thresholds(honest_early, post_window_outcomes, config, launch)
            findings += _test_column(table, column, stage, post_window_outcomes, config, launch,
                                     numeric_threshold=early_thresholds, outcome_label="post-early-window",
                                     numeric_auc=False)
    return pd.DataFrame(findings, columns=list(FINDING_COLUMNS))


def suspected(findings: pd.DataFrame) -> pd.DataFrame:
    """Only the findings that fail the check."""
    return findings.loc[findings["suspected"].astype(bool)].reset_index(drop=True)


def bounded_text(values: pd.Series, limit: int = MAX_CATEGORY_CHARS) -> pd.Series:
    """`values` with every string longer than `limit` replaced by '<start>...#<sha256 prefix> (<n> chars)'.

    Non-text columns are returned as they are. Equal long values map to equal labels.
    """
    if not (values.dtype == object or pd.api.types.is_string_dtype(values.dtype)):
        return values
    long = values.map(lambda v: isinstance(v, str) and len(v) > limit).to_numpy(dtype=bool)
    if not long.any():
        return values
    out = values.astype(object).copy()
    out[long] = [_digest_label(v, limit) for v in values[long].tolist()]
    return out


def _digest_label(value: str, limit: int) -> str:
    digest = hashlib.sha256(value.encode("utf-8", errors="surrogatepass")).hexdigest()[:16]
    return f"{value[: min(40, limit)]}...#{digest} ({len(value):,} chars)"


def _launch_ordinals(table: pd.DataFrame, outcomes: pd.DataFrame) -> pd.Series:
    """creative_id -> launch day ordinal (the age control), from outcomes or else the table."""
    source = outcomes if "launch_date" in outcomes.columns else table
    if "launch_date" not in source.columns:
        return pd.Series(dtype="float64")
    days = _as_numeric(source["launch_date"])
    if days is None:
        return pd.Series(dtype="float64")
    return pd.Series(days.to_numpy(), index=source["creative_id"].astype(str).to_numpy()).groupby(level=0).first()


def _early_thresholds(honest_early: pd.DataFrame | None, post: pd.DataFrame,
                      config: LeakageSniffConfig, launch: pd.Series) -> dict[str, float]:
    """Per target: max(early_threshold, min(best honest early |rho| + margin, ceiling))."""
    out: dict[str, float] = {}
    for target in config.targets:
        reference = 0.0
        if honest_early is not None and target in post.columns:
            merged = honest_early.merge(post[["creative_id", target]], on="creative_id")
            for c in honest_early.columns:
                if c == "creative_id":
                    continue
                rho, n = _spearman(merged[c], merged[target], _control(merged, launch))
                if n >= config.min_support and np.isfinite(rho):
                    reference = max(reference, abs(rho))
        out[target] = max(config.early_threshold, min(reference + config.early_margin, config.early_ceiling))
    return out


def _control(merged: pd.DataFrame, launch: pd.Series) -> pd.Series | None:
    """Launch ordinal aligned with `merged` rows, or None when unknown."""
    if launch.empty:
        return None
    return merged["creative_id"].astype(str).map(launch)


def _test_column(table: pd.DataFrame, column: str, stage: str, outcomes: pd.DataFrame,
                 config: LeakageSniffConfig, launch: pd.Series, numeric_threshold: float | dict[str, float],
                 outcome_label: str, numeric_auc: bool = True) -> list[dict]:
    """Findings for one column against each target. `numeric_auc=False` skips the absolute
    winner/loser AUC rule for numbers (early columns: honest early CTR alone reaches AUC ~0.99)."""
    findings = []
    values = _as_numeric(table[column])
    for target in config.targets:
        if target not in outcomes.columns:
            continue
        merged = pd.DataFrame({"creative_id": table["creative_id"], "x": table[column]}).merge(
            outcomes[["creative_id", target]], on="creative_id", how="inner")
        y = pd.to_numeric(merged[target], errors="coerce").astype("float64")
        y = y.where(np.isfinite(y))
        if values is not None:
            x = _as_numeric(merged["x"])
            threshold = numeric_threshold[target] if isinstance(numeric_threshold, dict) else numeric_threshold
            rho, n = _spearman(x, y, _control(merged, launch))
            if n < config.min_support or not np.isfinite(rho):
                findings.append(_finding(column, stage, target, METHOD_NOT_TESTED, rho, threshold, n, False,
                                         f"only {n} creatives with both {column} and {target} "
                                         f"(need {config.min_support}), or {column} is constant or "
                                         "determined by the launch date (the as-of anchor itself)"))
                continue
            hit = abs(rho) > threshold
            auc, n_win, n_lose = _numeric_auc(x, y, config) if numeric_auc else (np.nan, 0, 0)
            auc_tested = numeric_auc and n_win >= config.min_class_support and n_lose >= config.min_class_support \
                and np.isfinite(auc)
            if hit or (auc_tested and auc > config.auc_threshold):
                within = _within_account_spearman(merged, x, y, outcomes)
                if within is not None and (not np.isfinite(within) or abs(within) <= config.within_account_spearman):
                    # As for categories below: a number that describes the account (its budget tier) follows the
                    # accounts' base rates; a leaked outcome follows the creative inside its account too.
                    findings.append(_finding(
                        column, stage, target, METHOD_SPEARMAN, rho, threshold, n, False,
                        f"Spearman {rho:+.3f} and winner/loser AUC {auc:.3f} across accounts, but within accounts "
                        f"|Spearman| {abs(within) if np.isfinite(within) else 0.0:.3f} <= "
                        f"{config.within_account_spearman:.3f}: {column} tells the accounts apart (their base rates "
                        "differ), not the creatives; not leakage"))
                    continue
            if auc_tested:
                auc_hit = auc > config.auc_threshold
                findings.append(_finding(
                    column, stage, target, METHOD_NUMERIC_AUC, auc, config.auc_threshold, n_win + n_lose, auc_hit,
                    (f"{column} (registered {stage!r}) separates {outcome_label} {target.upper()} winners "
                     f"(top {1 - config.winner_quantile:.0%}, {n_win}) from losers (bottom "
                     f"{config.loser_quantile:.0%}, {n_lose}) with AUC {auc:.3f} > {config.auc_threshold:.3f}; "
                     "a value known before the outcome cannot sort creatives this cleanly, so it was probably "
                     "measured after launch. Fix its stage in feature_registry.json or remove it from the input.")
                    if auc_hit else f"winner/loser AUC {auc:.3f} <= {config.auc_threshold:.3f}"))
            findings.append(_finding(
                column, stage, target, METHOD_SPEARMAN, rho, threshold, n, hit,
                (f"{column} (registered {stage!r}) has Spearman {rho:+.3f} (given launch date) with the "
                 f"{outcome_label} {target.upper()} over {n} creatives; |rho| > {threshold:.3f} is implausible for a column "
                 f"known at decision time, so it was probably measured after launch. Fix its stage in "
                 f"feature_registry.json or remove it from the input.") if hit else
                f"|Spearman| {abs(rho):.3f} <= {threshold:.3f} against {outcome_label} {target.upper()}"))
        else:
            auc, n, n_win, n_lose, top = _oof_auc(merged["x"], y, config)
            threshold = config.auc_threshold
            if n_win < config.min_class_support or n_lose < config.min_class_support:
                findings.append(_finding(column, stage, target, METHOD_NOT_TESTED, auc, threshold, n, False,
                                         f"{n_win} winners / {n_lose} losers by {target} "
                                         f"(need {config.min_class_support} each)"))
                continue
            hit = bool(np.isfinite(auc) and auc > threshold)
            within = _within_account_auc(merged, y, outcomes, config) if hit else None
            if within is not None and within <= config.within_account_auc:
                # Accounts differ in base rates by multiples, so a category that only tells the accounts apart
                # (their countries, their product line) sorts winners from losers across accounts; leakage
                # knows the creative's own outcome and sorts them inside each account too.
                findings.append(_finding(
                    column, stage, target, METHOD_AUC, auc, threshold, n, False,
                    f"out-of-fold AUC {auc:.3f} > {threshold:.3f} across accounts ({top}), but within accounts "
                    f"only {within:.3f} <= {config.within_account_auc:.3f}: {column} tells the accounts apart "
                    "(their base rates differ), not the creatives; not leakage"))
                continue
            findings.append(_finding(
                column, stage, target, METHOD_AUC, auc, threshold, n, hit,
                (f"{column} (registered {stage!r}) separates {outcome_label} {target.upper()} winners "
                 f"(top {1 - config.winner_quantile:.0%}) from losers (bottom {config.loser_quantile:.0%}) "
                 f"with out-of-fold AUC {auc:.3f} > {threshold:.3f} ({n_win} winners, {n_lose} losers; {top}); "
                 f"a category known before launch should not sort creatives this cleanly. Fix its stage in "
                 f"feature_registry.json or remove it from the input.") if hit else
                f"out-of-fold AUC {auc:.3f} <= {threshold:.3f} ({top})"))
    return findings


def _finding(column: str, stage: str, target: str, method: str, statistic: float, threshold: float,
             n: int, suspected_: bool, explanation: str) -> dict:
    return {"column": column, "stage": stage, "target": target, "method": method,
            "statistic": float(statistic) if statistic is not None else np.nan,
            "threshold": float(threshold) if threshold is not None else np.nan,
            "n": int(n), "suspected": bool(suspected_), "explanation": explanation}


def _as_numeric(values: pd.Series) -> pd.Series | None:
    """Numeric view of a column, or None when it is categorical.

    Numbers and booleans-as-numbers stay; dates become day ordinals; strings count as numeric
    when at least 95% of the non-null values parse as numbers (a CTR exported as text).
    """
    if pd.api.types.is_bool_dtype(values):
        return None
    if pd.api.types.is_numeric_dtype(values):
        return values.astype("float64")
    if pd.api.types.is_datetime64_any_dtype(values):
        return pd.Series(values.to_numpy().astype("datetime64[D]").astype("float64"), index=values.index).where(values.notna())
    non_null = values.dropna()
    if non_null.empty:
        return None
    if all(isinstance(v, (dt.date, pd.Timestamp)) for v in non_null.head(50)):
        days = pd.to_datetime(values, errors="coerce")
        return pd.Series(days.to_numpy().astype("datetime64[D]").astype("float64"), index=values.index).where(days.notna())
    parsed = pd.to_numeric(non_null, errors="coerce")
    if parsed.notna().mean() >= 0.95:
        return pd.to_numeric(values, errors="coerce").astype("float64")
    return None


def _accounts(merged: pd.DataFrame, outcomes: pd.DataFrame) -> pd.Series | None:
    """Each merged row's account, or None with one account (or no account column): then across and
    within accounts are the same test."""
    if "account_id" not in outcomes.columns:
        return None
    account = merged["creative_id"].map(outcomes.drop_duplicates("creative_id").set_index("creative_id")["account_id"])
    return account if account.nunique() >= 2 else None


def _ranked_within(frame: pd.DataFrame | pd.Series, account: pd.Series) -> pd.DataFrame | pd.Series:
    """Ranks within each account on (0, 1): ties, a constant column and a lone creative sit at 0.5."""
    groups = frame.groupby(account)
    return (groups.rank() - 0.5) / groups.transform("count")


def _within_account_auc(merged: pd.DataFrame, y: pd.Series, outcomes: pd.DataFrame,
                        config: LeakageSniffConfig) -> float | None:
    """The out-of-fold AUC of `merged["x"]` for the outcome ranked within each creative's account, or None
    with one account."""
    account = _accounts(merged, outcomes)
    if account is None:
        return None
    auc, *_ = _oof_auc(merged["x"], _ranked_within(y, account).where(y.notna()), config)
    return auc if np.isfinite(auc) else None


def _within_account_spearman(merged: pd.DataFrame, x: pd.Series, y: pd.Series, outcomes: pd.DataFrame) -> float | None:
    """Spearman of x and y ranked within each creative's account (NaN when x is constant inside every
    account), or None with one account."""
    account = _accounts(merged, outcomes)
    if account is None:
        return None
    ok = x.notna() & y.notna()
    ranked = _ranked_within(pd.DataFrame({"x": x[ok], "y": y[ok]}), account[ok])
    if len(ranked) < 3 or (ranked.std() < 1e-12).any():
        return float("nan")
    return float(np.corrcoef(ranked["x"], ranked["y"])[0, 1])


def _spearman(x: pd.Series, y: pd.Series, control: pd.Series | None = None) -> tuple[float, int]:
    """Spearman rho of x and y; with `control`, the partial rank correlation given it.

    Returns (rho, n). NaN when fewer than 3 complete rows, a constant column, or x is (almost)
    a function of the control (nothing left to test).
    """
    frame = pd.DataFrame({
        "x": pd.to_numeric(x, errors="coerce").astype("float64").to_numpy(),
        "y": pd.to_numeric(y, errors="coerce").astype("float64").to_numpy(),
    })
    if control is not None:
        frame["c"] = pd.to_numeric(control, errors="coerce").astype("float64").to_numpy()
    frame = frame[np.isfinite(frame).all(axis=1)]
    n = len(frame)
    if n < 3:
        return float("nan"), n
    ranks = frame.rank()
    if (ranks.std() == 0).any():
        if control is not None and ranks["c"].std() == 0:  # one launch date: nothing to control
            return _spearman(frame["x"], frame["y"])
        return float("nan"), n
    r = np.corrcoef(ranks.to_numpy().T)
    if control is None:
        return float(r[0, 1]), n
    r_xy, r_xc, r_yc = r[0, 1], r[0, 2], r[1, 2]
    denominator = (1 - r_xc ** 2) * (1 - r_yc ** 2)
    if denominator < 1e-6:
        return float("nan"), n
    return float((r_xy - r_xc * r_yc) / np.sqrt(denominator)), n


def _oof_auc(x: pd.Series, y: pd.Series, config: LeakageSniffConfig) -> tuple[float, int, int, int, str]:
    """Out-of-fold target-encoded AUC of winners vs losers. Returns (auc, n, winners, losers, top)."""
    ok = y.notna().to_numpy()
    # Integer codes: grouping and per-fold encodings never copy the category strings.
    # x comes from the table sniff_leakage has already bounded (bounded_text), so no cell is huge here.
    codes_all, uniques = pd.factorize(x.astype(object).where(x.notna(), "<missing>").astype(str))
    codes = codes_all[ok]
    target = y.to_numpy()[ok]
    n = len(target)
    if n == 0:
        return float("nan"), 0, 0, 0, "no outcomes"
    ranks = pd.Series(target).rank(pct=True).to_numpy()
    hi, lo = np.quantile(target, config.winner_quantile), np.quantile(target, config.loser_quantile)
    winner, loser = target >= hi, target <= lo
    if hi == lo:  # degenerate target: everything ties
        return float("nan"), n, 0, 0, "outcome is constant"
    folds = np.random.default_rng(config.seed).permutation(n) % config.n_folds
    score = np.full(n, np.nan)
    prior_weight = float(config.min_category_support)
    k = len(uniques)
    for f in range(config.n_folds):
        train, test = folds != f, folds == f
        sums = np.bincount(codes[train], weights=ranks[train], minlength=k)
        counts = np.bincount(codes[train], minlength=k)
        prior = float(ranks[train].mean()) if train.any() else 0.5
        enc = (sums + prior * prior_weight) / (counts + prior_weight)
        enc[counts < config.min_category_support] = prior
        score[test] = enc[codes[test]]
    auc = _auc(score[winner], score[loser])
    frame = pd.DataFrame({"c": codes, "w": winner, "l": loser})
    by_cat = frame.groupby("c").agg(n=("w", "size"), w=("w", "mean"), l=("l", "mean"))
    by_cat = by_cat[by_cat["n"] >= config.min_category_support]
    if by_cat.empty:
        top = "no category has enough support"
    else:
        best = (by_cat["w"] - by_cat["l"]).abs().idxmax()
        row = by_cat.loc[best]
        top = (f"strongest category {str(uniques[best])!r}: {int(row['n'])} creatives, "
               f"{row['w']:.0%} winners / {row['l']:.0%} losers")
    return auc, n, int(winner.sum()), int(loser.sum()), top


def _numeric_auc(x: pd.Series, y: pd.Series, config: LeakageSniffConfig) -> tuple[float, int, int]:
    """Direction-free AUC of a numeric column for winners (top quartile of y) vs losers (bottom).

    Returns (max(AUC, 1 - AUC), winners, losers) over rows where both are known.
    """
    frame = pd.DataFrame({"x": pd.to_numeric(x, errors="coerce").to_numpy(dtype="float64"),
                          "y": pd.to_numeric(y, errors="coerce").to_numpy(dtype="float64")})
    frame = frame[np.isfinite(frame).all(axis=1)]
    if frame.empty:
        return float("nan"), 0, 0
    hi, lo = frame["y"].quantile(config.winner_quantile), frame["y"].quantile(config.loser_quantile)
    if hi == lo:
        return float("nan"), 0, 0
    winners, losers = frame.loc[frame["y"] >= hi, "x"].to_numpy(), frame.loc[frame["y"] <= lo, "x"].to_numpy()
    auc = _auc(winners, losers)
    return (max(auc, 1 - auc) if np.isfinite(auc) else auc), len(winners), len(losers)


def _auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Mann-Whitney AUC with ties counted half."""
    if len(positive) == 0 or len(negative) == 0:
        return float("nan")
    both = np.concatenate([positive, negative])
    ranks = pd.Series(both).rank().to_numpy()
    r_pos = ranks[: len(positive)].sum()
    return float((r_pos - len(positive) * (len(positive) + 1) / 2) / (len(positive) * len(negative)))
