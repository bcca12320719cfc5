"""The forecast's change when one element of a creative is edited (marts.element_attribution).

For a sample of creatives, every edit of `edits.EDITS` that applies is made, each edited image is
encoded by the same encoders as the originals (`variant_tables`: one embeddings-like frame per
block, keyed by a variant id), and the forecast model predicts original and edit alike. The
reported effect of an edit is the relative change of the predicted KPI summed over the creatives
it applies to (total predicted KPI of the edited creatives / of the originals - 1).

The model is the forecast's `all_blocks` input set (context, interpretable attributes, each
block reduced by PCA; `creative_dag.forecast`) fitted on the normalised target of every case
matured so far, by a ridge with a penalty per input group (`grouped_linear`: one penalty over ~40
interpretable columns, ~100 image tags and ~100 block components shrinks the few to nothing).
The CBR-evidence features are left out because an edited image has no neighbours' outcomes of its
own to differ by. Blocks the edits cannot be encoded by (a model
unavailable now) are left out of the model too, so original and edit are always compared on the
same inputs.

Uncertainty has two sources, both in the 95 % interval: which creatives were sampled (the spread
of per-creative effects) and which model was fitted (the spread over `n_models` bootstrap refits
of the training cases). A tree model can move every prediction the same way for an edit that
only touched noise; refitting on resampled cases is what exposes that as uncertainty. An effect is
called up or down only when it stays significant after Holm's correction over all the run's edits
and KPIs (`_call_directions`).

The sample is drawn by hash (`sample_creatives`), so it barely changes from one day to the next
and the edited images of a daily run come from the embedding cache.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from creative_dag.attribution.edits import EDIT_NAMES
from creative_dag.blocks import CLIP, CONTEXT, TEXT
from creative_dag.cbr.backtest import AsOfLabels
from creative_dag.cbr.index import NO_LIMIT_DAY, to_days
from creative_dag.forecast.features import (
    attribute_features,
    block_matrices,
    context_features,
    reduce_blocks,
)
from creative_dag.forecast.model import ForecastConfig, design_matrix, fit_predict
from creative_dag.forecast.targets import KpiTarget, TargetSpec
from creative_dag.marts.attributes import attribute_frame
from creative_dag.vectors import as_vector, is_missing_vector

KPI_LABELS = {"ctr": "CTR", "cvr": "CVR", "roas": "ROAS", "score": "outcome score"}
VARIANT_COLUMNS = ("variant_id", "creative_id", "edit", "sha256", "launch_date")  # one row per edited image
EFFECT_COLUMNS = ("edit", "label", "element", "kpi", "effect", "ci_low", "ci_high", "significant", "direction",
                  "n", "reached_share", "support", "by_origin", "statement", "model_rows", "blocks", "trained_through")


# CLIP text probes (issue 10): directions in the CLIP space a marketer can name. Reported as edits named
# "probe: <text>" with element "clip text probe", beside the image edits.
PROBE_PREFIX = "probe: "
PROBE_ELEMENT = "clip text probe"
DEFAULT_PROBES = ("a person next to the product", "a red background", "a blue background",
                  "a lot of text on the image", "a close-up of the product", "a smiling face")


@dataclass(frozen=True)
class AttributionConfig:
    """sample_size: creatives edited (ones with an outcome and an image, drawn at random); edits: names
    from edits.EDIT_NAMES; kpis: forecast KPIs attributed; n_models: bootstrap refits of the model;
    confidence: interval level; min_effect: smallest relative change called up or down (below it
    an effect is reported but its direction is "none"); learner / pca_dims: as the forecast's; probes /
    probe_baseline / probe_strength: CLIP text probes, the neutral prompt their directions are taken from, and
    how far each moves the image vector (`probe_variants`); min_train: fewest creatives with a known outcome
    the model must learn from (the forecast's), else a KPI is not attributed; min_support: fewest creatives the
    model learnt from that look like an edit's result (`support`), else the edit is not called (an extrapolation).
    seed: the sample draw and bootstrap refits (the same seed, the same table).
    learner "grouped_linear" by default: the ridge with a penalty per input group (docs/marts.md, "Model")."""

    sample_size: int = 30
    edits: tuple[str, ...] = EDIT_NAMES
    kpis: tuple[str, ...] = ("ctr", "cvr")
    n_models: int = 20
    confidence: float = 0.95
    min_effect: float = 0.02
    learner: str = "grouped_linear"
    pca_dims: int = 24
    seed: int = 0
    probes: tuple[str, ...] = DEFAULT_PROBES
    probe_baseline: str = "an advertisement"
    probe_strength: float = 0.25
    min_train: int = 20
    min_support: int = 10


@dataclass
class AttributionResult:
    effects: pd.DataFrame  # EFFECT_COLUMNS, one row per edit x KPI
    notes: list[str] = field(default_factory=list)


def sample_creatives(case_base: pd.DataFrame, size: int, seed: int = 0) -> list[str]:
    """Up to `size` creatives with an outcome (matured or not), drawn at random (reproducibly).

    The draw is the `size` smallest hashes of (seed, creative_id): a creative's chance is random, but it does
    not depend on which other creatives exist, so a new day of creatives changes the sample only where a new
    creative outranks one drawn before (about size / n per new creative). The edited images of the creatives
    that stay are then found in the embedding cache instead of being encoded again every day."""
    labelled = case_base[pd.to_numeric(case_base.get("outcome_score"), errors="coerce").notna()]
    ids = sorted(labelled["creative_id"].astype(str).unique())
    rank = {c: hashlib.blake2b(f"{seed}:{c}".encode(), digest_size=8).digest() for c in ids}
    return sorted(sorted(ids, key=rank.__getitem__)[:size])


def editable_cases(case_base: pd.DataFrame, tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The case-base rows whose image has a vector in every image block of `tables` (block -> embeddings table).

    An edit is scored against its original on the same blocks, so a creative whose image ingest quarantined
    (a decompression bomb, a 1 x 1 pixel) or an encoder could not read has no original to compare with; its
    file is not read again either (ingest's pixel limits are what keep a hostile image out of memory)."""
    keep = set(case_base["creative_id"].astype(str))
    for block, table in tables.items():
        if block != TEXT and "vector" in table:
            keep &= set(table["creative_id"].astype(str)[[not is_missing_vector(v) for v in table["vector"]]])
    return case_base[case_base["creative_id"].astype(str).isin(keep)]


@dataclass(frozen=True)
class KnownTargets:
    """Each KPI's model target for every case as known before the as-of day (NaN where not known then)."""

    day: int | None  # the day the labels are read at; None when no case had matured
    immature: int  # cases still inside their maturity window on that day
    targets: dict[str, tuple[KpiTarget, np.ndarray]]

    def counts(self) -> dict[str, int]:
        """kpi -> how many cases the model can learn it from."""
        return {kpi: int(np.isfinite(y).sum()) for kpi, (_, y) in self.targets.items()}


def known_targets(case_base: pd.DataFrame, kpis: Sequence[str], as_of: dt.date | None) -> KnownTargets:
    """The targets the attribution model learns, as of `as_of` (None: every case with an available date). A
    creative counts once its maturity window closed before `as_of`, and each KPI's normalised target drops a few
    more (an account's first creatives have no trailing average): cheap, so the asset counts before editing."""
    cb = case_base.reset_index(drop=True)
    available = np.asarray(to_days(cb["available_date"]), dtype=np.int64)
    limit = NO_LIMIT_DAY if as_of is None else int(to_days(as_of))
    matured = available[available < limit]
    immature = int(((available >= limit) & (available < NO_LIMIT_DAY)).sum())
    if not len(matured):
        return KnownTargets(None, immature, {})
    day = int(matured.max()) + 1 if as_of is None else limit
    labels, targets = AsOfLabels(cb), {}
    for kpi in kpis:
        target = KpiTarget(cb, kpi, TargetSpec(normalise=True), labels)
        targets[kpi] = (target, target.to_model(target.labels_at(day), np.arange(len(cb)), training=True))
    return KnownTargets(day, immature, targets)


def variant_id(creative_id: str, edit: str) -> str:
    return f"{creative_id}~{edit}"


def attribute_edits(case_base: pd.DataFrame, tables: Mapping[str, pd.DataFrame], prelaunch: pd.DataFrame | None,
                    variants: pd.DataFrame, variant_tables: Mapping[str, pd.DataFrame],
                    config: AttributionConfig, edit_info: Mapping[str, tuple[str, str]] | None = None,
                    as_of: dt.date | None = None) -> AttributionResult:
    """Effects of the edits in `variants` (variant_id, creative_id, edit) on the forecast.

    tables: block -> embeddings table of the originals (as in the warehouse); variant_tables: block
    -> the same columns for the encoded edits, creative_id = variant_id (blocks missing here were not
    re-encoded); edit_info: edit -> (label, element) for the report (default: the edit names).
    as_of: the model learns the outcomes known before this day: pass the day after the last metric date,
    so creatives still inside their maturity window (outcome over a partial window) stay out. None: every
    case with an available date (for a case base whose outcomes are all final).
    """
    notes: list[str] = []
    cb = case_base.reset_index(drop=True)
    image_blocks = [b for b in tables if b != TEXT]
    # Original and edit must be compared on the same inputs: a block that cannot be recomputed for
    # the edits (its model unavailable now) is left out of the model; the text (ad copy) does not change.
    dropped = [b for b in image_blocks if b not in variant_tables]
    if dropped:
        notes.append(f"blocks not re-encoded for the edits, left out of the attribution model: {', '.join(dropped)}")
    blocks = [b for b in tables if b not in dropped]
    known = set(cb["creative_id"].astype(str))
    variants = variants[variants["creative_id"].astype(str).isin(known)].copy()
    encoded = set.intersection(*(set(variant_tables[b]["creative_id"].astype(str)) for b in blocks if b != TEXT)) \
        if any(b != TEXT for b in blocks) else set(variants["variant_id"])
    missing = variants[~variants["variant_id"].isin(encoded)]
    if len(missing):
        notes.append(f"{len(missing)} edited image(s) not encoded by every block, left out")
    variants = variants[variants["variant_id"].isin(encoded)].reset_index(drop=True)
    if variants.empty:
        return AttributionResult(empty_effects(), [*notes, "no edited image to attribute"])

    aug = _augmented_case_base(cb, variants, variant_tables, blocks)
    attrs = attribute_frame(_augmented_tables(tables, variants, variant_tables, blocks),
                            _augmented_prelaunch(prelaunch, variants))
    ctx = context_features(aug)
    attr_x, attr_cat = attribute_features(aug, attrs)
    static = pd.concat([ctx, attr_x], axis=1)
    mats = {b: m for b, m in block_matrices(aug, blocks).items() if b != CONTEXT}
    categorical = list(ctx.columns) + attr_cat
    n_cases = len(cb)
    row_of = pd.Series(np.arange(n_cases), index=cb["creative_id"].astype(str))
    orig_rows = row_of.loc[variants["creative_id"].astype(str)].to_numpy()
    var_rows = n_cases + np.arange(len(variants))
    base_rows = np.unique(orig_rows)
    query = np.concatenate([base_rows, var_rows])
    base_pos = pd.Series(np.arange(len(base_rows)), index=base_rows)

    known = known_targets(cb, config.kpis, as_of)
    if known.day is None:
        return AttributionResult(empty_effects(), [*notes, "no matured creative to learn from"])
    if known.immature:
        notes.append(f"{known.immature} creatives still inside their maturity window on {as_of}: not learnt from")
    fc = ForecastConfig(learner=config.learner, pca_dims=config.pca_dims, seed=config.seed, min_train=config.min_train)
    rng = np.random.default_rng(config.seed)
    by_id = attrs.set_index(attrs["creative_id"].astype(str))  # originals and edits, by id
    reached = _reached(by_id, variants)
    ids = pd.concat([cb["creative_id"].astype(str), variants["variant_id"].astype(str)], ignore_index=True)
    origins = _origins(by_id, variants)
    effect_rows = []
    for kpi, (target, y_cb) in known.targets.items():
        y = np.concatenate([y_cb, np.full(len(variants), np.nan)])
        train = np.flatnonzero(np.isfinite(y))
        if len(train) < fc.min_train:
            notes.append(f"{kpi}: {len(train)} matured creatives, fewer than {fc.min_train}: not attributed")
            continue
        reduced, _ = reduce_blocks(mats, train, config.pca_dims, config.seed)
        x = design_matrix(static, list(static.columns), reduced)
        cats = [c for c in categorical if c in x.columns]
        diffs = np.full((len(variants), config.n_models), np.nan)
        bases = np.full((len(variants), config.n_models), np.nan)
        weights = None  # a grouped ridge keeps the first fit's group weights in its bootstrap refits
        for m in range(config.n_models):
            rows = train if m == 0 else rng.choice(train, size=len(train), replace=True)
            z, fitted = fit_predict(config.learner, x, y, rows, query, cats, fc, group_weights=weights)
            if m == 0 and "linear" in fitted:
                weights = fitted["linear"].weights or None
            z_base, z_edit = z[: len(base_rows)][base_pos.loc[orig_rows].to_numpy()], z[len(base_rows):]
            bases[:, m], diffs[:, m] = _relative_kpi(target.spec, kpi, z_base, z_edit)
        support = _support(by_id, variants, ids.iloc[train])
        for edit, at in variants.groupby("edit").indices.items():
            label, element = (edit_info or {}).get(edit, (edit, ""))
            row = _summarise(edit, label, element, kpi, bases[at], diffs[at], config, reached.get(edit))
            by_origin = _by_origin(edit, kpi, origins[at], bases[at], diffs[at], config)
            effect_rows.append({**row, "model_rows": len(train), "by_origin": by_origin,
                                "origin_words": origin_words(edit, kpi, by_origin),
                                "support": support.get(edit, (np.nan, ""))[0], "looks_like": support.get(edit, (0, ""))[1]})
    effects = pd.DataFrame(effect_rows, columns=[c for c in EFFECT_COLUMNS if c not in
                                                 ("blocks", "trained_through", "significant", "direction")]
                           + ["p_value", "looks_like", "origin_words"])
    effects = _call_directions(effects, config)
    effects["statement"] += effects.pop("origin_words")  # after what the correction says of the pooled effect
    effects["blocks"] = ", ".join(b for b in blocks if b in mats) or "none"
    effects["trained_through"] = str(pd.Timestamp(known.day - 1, unit="D").date())
    return AttributionResult(effects[list(EFFECT_COLUMNS)], notes)


def _relative_kpi(spec: TargetSpec, kpi: str, z_base: np.ndarray, z_edit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(original, edit - original) of each creative's predicted KPI relative to its account's level, where
    the level cancels: a rate's (z)^root; for the composite score (a log, already relative) the
    difference with a base of 1. Computed there so a creative whose account had no history yet at its
    launch still counts."""
    if kpi == "score":
        return np.ones_like(z_base), (z_edit - z_base) * spec.root
    base, edit = np.clip(z_base, 0.0, None) ** spec.root, np.clip(z_edit, 0.0, None) ** spec.root
    return base, edit - base


def _summarise(edit: str, label: str, element: str, kpi: str, bases: np.ndarray, diffs: np.ndarray,
               config: AttributionConfig, reached: float | None) -> dict:
    """Effect = sum of changes / sum of originals over creatives and models (a ratio of means: one
    creative predicted near zero cannot blow it up); its variance adds the spread over creatives
    (delta method for a ratio) and over the bootstrap models (see module doc)."""
    from scipy.stats import norm

    ok = np.isfinite(diffs).all(axis=1) & np.isfinite(bases).all(axis=1)
    d, b = diffs[ok], bases[ok]
    n = len(d)
    if n == 0 or b.sum() <= 0:
        effect = low = high = se = float("nan")
    else:
        effect = float(d.sum() / b.sum())
        per_creative = d.mean(axis=1) - effect * b.mean(axis=1)
        creative_var = float(per_creative.var(ddof=1)) / n / float(b.mean()) ** 2 if n > 1 else 0.0
        per_model = d.sum(axis=0) / np.where(b.sum(axis=0) > 0, b.sum(axis=0), np.nan)
        model_var = float(np.nanvar(per_model, ddof=1)) if d.shape[1] > 1 else 0.0
        se = np.sqrt(creative_var + model_var)
        half = float(norm.ppf(0.5 + config.confidence / 2)) * se
        low, high = effect - half, effect + half
    p_value = float(2 * norm.sf(abs(effect) / se)) if n >= 2 and np.isfinite(effect) and se > 0 else float("nan")
    return {"edit": edit, "label": label, "element": element, "kpi": kpi, "effect": effect, "ci_low": low,
            "ci_high": high, "n": n, "reached_share": reached, "p_value": p_value,
            "statement": statement(label, kpi, effect, low, high, n, config.confidence)}


def holm_significant(p_values: np.ndarray, alpha: float) -> np.ndarray:
    """Holm's step-down test over one run's edits x KPIs: which effects stay significant at family-wise
    level alpha (NaN p-values never do)."""
    p = np.asarray(p_values, dtype=float)
    out = np.zeros(len(p), dtype=bool)
    finite = np.flatnonzero(np.isfinite(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    for i, row in enumerate(order):
        if p[row] > alpha / (len(order) - i):
            break
        out[row] = True
    return out


def _call_directions(effects: pd.DataFrame, config: AttributionConfig) -> pd.DataFrame:
    """`significant` and `direction` over the whole table: a run tests every edit on every KPI (~26 effects),
    and at 95 % per effect one of them would be "significant" by chance in most runs; Holm's correction keeps
    the chance of any false claim in a run at 5 %. The statement keeps the per-effect 95 % interval and says
    when the correction is what kept an effect from being called.

    An edit whose result fewer than `min_support` of the creatives the model learnt from look like (`support`;
    on v1, 3 of the 122 had no text on the image) is not tested: the model's answer there is an extrapolation
    from a handful of cases, which a ridge gives with a confidence it has not earned."""
    out = effects.copy()
    thin = pd.to_numeric(out["support"], errors="coerce") < config.min_support
    p_values = np.where(thin, np.nan, out["p_value"].to_numpy(dtype=float))
    out["significant"] = holm_significant(p_values, 1 - config.confidence)
    big = out["effect"].abs() >= config.min_effect
    out["direction"] = np.where(out["significant"] & big, np.where(out["effect"] > 0, "up", "down"), "none")
    uncorrected = (out["ci_low"] > 0) | (out["ci_high"] < 0)
    out.loc[uncorrected & ~out["significant"] & ~thin, "statement"] += (
        f"; not significant once corrected for the {int(np.isfinite(p_values).sum())} effects tested")
    for i in np.flatnonzero(thin.to_numpy()):
        row = out.iloc[i]
        out.iloc[i, out.columns.get_loc("statement")] += (
            f"; only {int(row['support'])} of the {int(row['model_rows'])} creatives the model learnt from have "
            f"{row['looks_like']}: an extrapolation, not tested")
    return out.drop(columns=["p_value", "looks_like"])


def statement(label: str, kpi: str, effect: float, low: float, high: float, n: int, confidence: float) -> str:
    """'Removing the text on the image: -6 % predicted CTR (95 % CI -9 … -3, n = 120)'."""
    name = KPI_LABELS.get(kpi, kpi)
    if not np.isfinite(effect):
        return f"{label}: no estimate for {name} (n = {n})"
    if kpi == "score":
        return (f"{label}: {effect:+.3f} predicted {name} ({confidence * 100:.0f} % CI {low:+.3f} … {high:+.3f}, "
                f"n = {n})")
    return (f"{label}: {effect * 100:+.0f} % predicted {name} ({confidence * 100:.0f} % CI {low * 100:+.0f} … "
            f"{high * 100:+.0f}, n = {n})")


# The detected attribute each edit should move, and how to tell it moved (variant vs original).
_REACHES = {
    "hue_warm": ("background_hue_family", lambda o, v: v == "warm"),
    "hue_cool": ("background_hue_family", lambda o, v: v == "cool"),
    "hue_neutral": ("background_hue_family", lambda o, v: v == "neutral"),
    "remove_text": ("text_area_ratio", lambda o, v: float(v) < 0.5 * float(o)),
    "remove_cta": ("cta_detected", lambda o, v: not bool(v)),
    "remove_face": ("face_present", lambda o, v: not bool(v)),
    "brighter": ("brightness", lambda o, v: float(v) > float(o)),
    "darker": ("brightness", lambda o, v: float(v) < float(o)),
    "more_contrast": ("contrast", lambda o, v: float(v) > float(o)),
    "less_contrast": ("contrast", lambda o, v: float(v) < float(o)),
    "crop_to_subject": ("salient_area_ratio", lambda o, v: float(v) > float(o)),
}


def _reached(frame: pd.DataFrame, variants: pd.DataFrame) -> dict[str, float]:
    """Per edit: share of edited images whose detected attribute moved the intended way (frame: the attribute
    frame indexed by creative / variant id)."""
    out = {}
    for edit, group in variants.groupby("edit"):
        col, moved = _REACHES.get(edit, (None, None))
        if col is None or col not in frame.columns:
            continue
        hits = []
        for vid, cid in zip(group["variant_id"], group["creative_id"].astype(str), strict=True):
            o, v = frame[col].get(cid), frame[col].get(vid)
            if o is None or v is None or pd.isna(o) or pd.isna(v):
                continue
            hits.append(bool(moved(o, v)))
        if hits:
            out[edit] = float(np.mean(hits))
    return out


def _origins(frame: pd.DataFrame, variants: pd.DataFrame) -> np.ndarray:
    """Per variant row, its original's value of the edit's `ORIGIN_COLUMNS` attribute (None where there is none);
    frame: the attribute frame indexed by creative / variant id."""
    out = []
    for edit, cid in zip(variants["edit"], variants["creative_id"].astype(str), strict=True):
        column = ORIGIN_COLUMNS.get(edit)
        value = frame[column].get(cid) if column in frame.columns else None
        out.append(None if value is None or pd.isna(value) else str(value))
    return np.asarray(out, dtype=object)


def _by_origin(edit: str, kpi: str, origins: np.ndarray, bases: np.ndarray, diffs: np.ndarray,
               config: AttributionConfig) -> str | None:
    """JSON list of {origin, effect, ci_low, ci_high, n} per original value with at least MIN_ORIGIN_N edited
    creatives, largest first; None for an edit with no breakdown. Descriptive: each interval is the
    subgroup's own 95 % one, not part of the Holm-corrected calls."""
    if edit not in ORIGIN_COLUMNS:
        return None
    parts = []
    for value in dict.fromkeys(v for v in origins if v is not None):
        at = origins == value
        if at.sum() < MIN_ORIGIN_N:
            continue
        r = _summarise(edit, "", "", kpi, bases[at], diffs[at], config, None)
        parts.append({"origin": value, **{k: round(float(r[k]), 4) for k in ("effect", "ci_low", "ci_high")},
                      "n": int(r["n"])})
    return json.dumps(sorted(parts, key=lambda p: -p["n"])) if parts else None


def origin_words(edit: str, kpi: str, by_origin: str | None) -> str:
    """'; from a warm background -6 % (n = 11), from a cool background +16 % (n = 13)' when the effect has two or
    more subgroups (`by_origin`), else ''."""
    parts = json.loads(by_origin) if by_origin else []
    if len(parts) < 2:
        return ""
    column = ORIGIN_COLUMNS[edit]
    size = (lambda e: f"{e:+.3f}") if kpi == "score" else (lambda e: f"{e * 100:+.0f} %")
    return "; " + ", ".join(f"from {_looks_like(column, p['origin'])} {size(p['effect'])} (n = {p['n']})" for p in parts)


# The detected attribute whose value an edit sets, and how that value reads ("no text on the image").
_SETS = {"hue_warm": "background_hue_family", "hue_cool": "background_hue_family", "hue_neutral": "background_hue_family",
         "remove_text": "text_coverage_class", "remove_cta": "cta_detected", "remove_face": "face_present"}
_PRESENT = {"cta_detected": "a call-to-action button", "face_present": "a face"}
# The edits whose effect is also broken down by the original's value of what they set (`by_origin`): one edit
# meets different creatives, and a neutral background takes a warm one's bonus away where it leaves a cool one
# as it was. A face or CTA removal always starts from "present", so it has nothing to break down.
ORIGIN_COLUMNS = {e: c for e, c in _SETS.items() if c in ("background_hue_family", "text_coverage_class")}
MIN_ORIGIN_N = 3  # fewest edited creatives of one origin reported


def _looks_like(column: str, value: Any) -> str:
    if column in _PRESENT:
        return _PRESENT[column] if bool(value) else "no " + _PRESENT[column].removeprefix("a ")
    if column == "text_coverage_class":
        return "no text on the image" if value == "none" else f"{value} text on the image"
    return f"a {value} background" if column == "background_hue_family" else f"{column} = {value}"


def _support(frame: pd.DataFrame, variants: pd.DataFrame, trained_ids: pd.Series) -> dict[str, tuple[int, str]]:
    """Per edit that sets a categorical attribute (`_SETS`): the median over its edited images of how many
    training creatives share the value the image was detected with (text removal leaves some images with a
    word or two the OCR still reads, "light", and others with none), and the commonest such value in words."""
    counts_of = {column: frame[column].reindex(pd.Index(trained_ids.unique())).value_counts()
                 for column in set(_SETS.values()) if column in frame.columns}
    out = {}
    for edit, group in variants.groupby("edit"):
        column = _SETS.get(edit)
        if column not in counts_of:
            continue
        landed = frame[column].reindex(group["variant_id"].astype(str)).dropna()
        if landed.empty:
            continue
        support = np.median([counts_of[column].get(v, 0) for v in landed])
        out[edit] = (int(support), _looks_like(column, landed.mode().iloc[0]))
    return out


def probe_directions(text: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """Unit directions of probes in the CLIP space: each text embedding minus a neutral prompt's ("an
    advertisement"). Adding a text embedding itself to an image vector would mostly move it across the gap
    between CLIP's image and text cones, the same for every probe (a random tiny CLIP gave every probe
    +43 … +67 % CTR); the difference keeps only what the probe says beyond "an ad"."""
    diff = np.asarray(text, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)[None, :]
    return diff / np.maximum(np.linalg.norm(diff, axis=1, keepdims=True), 1e-12)


def probe_variants(tables: Mapping[str, pd.DataFrame], ids: Sequence[str], text_vectors: Mapping[str, np.ndarray],
                   strength: float = 0.25) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """CLIP text probes as edits of the embedding rather than of the pixels: for each creative of `ids` with a
    CLIP vector and each probe with unit direction t (`probe_directions`), a variant whose CLIP vector is
    normalise(v + strength * t) (the image "shows more of" the probe), every other block of `tables`
    unchanged. The model then predicts original and probe alike, as for an image edit.

    Returns (variants: variant_id, creative_id, edit = "probe: <text>", sha256 = None, launch_date = None;
    block -> that block's rows for the variants, keyed by variant id)."""
    clip = tables[CLIP].drop_duplicates("creative_id", keep="last") if CLIP in tables else pd.DataFrame()
    wanted = {str(i) for i in ids}
    have = [] if clip.empty else [(str(c), as_vector(v)) for c, v in zip(clip["creative_id"], clip["vector"],
                                                                         strict=True) if str(c) in wanted]
    have = [(c, v) for c, v in have if v is not None]
    rows, vectors = [], []
    for cid, vec in have:
        for text, t in text_vectors.items():
            rows.append({"variant_id": variant_id(cid, PROBE_PREFIX + text), "creative_id": cid,
                         "edit": PROBE_PREFIX + text, "sha256": None, "launch_date": None})
            moved = np.asarray(vec, dtype=np.float32) + strength * np.asarray(t, dtype=np.float32)
            vectors.append((moved / max(float(np.linalg.norm(moved)), 1e-12)).astype(np.float32))
    frame = pd.DataFrame(rows, columns=list(VARIANT_COLUMNS))
    if frame.empty:
        return frame, {}
    out = {b: _rows_for_variants(table, frame) for b, table in tables.items() if b != TEXT}
    out[CLIP]["vector"] = [v.tolist() for v in vectors]
    return frame, out


def probe_info(probes: Sequence[str]) -> dict[str, tuple[str, str]]:
    """edit -> (label, element) of each probe for the report."""
    return {PROBE_PREFIX + t: (f"Moving the image toward '{t}' (CLIP)", PROBE_ELEMENT) for t in probes}


def _rows_for_variants(frame: pd.DataFrame, variants: pd.DataFrame) -> pd.DataFrame:
    """Each edit's copy of its original's row of `frame` (the last row per creative), keyed by the variant id."""
    latest = frame.drop_duplicates("creative_id", keep="last")
    rows = latest.set_index(latest["creative_id"].astype(str)).reindex(
        variants["creative_id"].astype(str)).reset_index(drop=True)
    rows["creative_id"] = variants["variant_id"].to_numpy()
    return rows


def _augmented_case_base(cb: pd.DataFrame, variants: pd.DataFrame, variant_tables: Mapping[str, pd.DataFrame],
                         blocks: Sequence[str]) -> pd.DataFrame:
    """The case base plus one row per edit: the original's row with the edit's block vectors and no outcome."""
    rows = _rows_for_variants(cb, variants)
    for b, table in variant_tables.items():
        if b in blocks and b in rows.columns:
            vec = table.drop_duplicates("creative_id", keep="last").set_index("creative_id")["vector"]
            rows[b] = [vec.get(v) for v in variants["variant_id"]]
    for col in rows.columns:
        if col.startswith("outcome_"):
            rows[col] = np.nan
    return pd.concat([cb, rows], ignore_index=True)


def _augmented_tables(tables: Mapping[str, pd.DataFrame], variants: pd.DataFrame,
                      variant_tables: Mapping[str, pd.DataFrame], blocks: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Each block's table plus the edits' rows: their own encoding, or (a block not re-encoded: the ad copy)
    the original's row."""
    return {b: pd.concat([tables[b], variant_tables[b] if b in variant_tables else _rows_for_variants(tables[b], variants)],
                         ignore_index=True) for b in blocks}


def _augmented_prelaunch(prelaunch: pd.DataFrame | None, variants: pd.DataFrame) -> pd.DataFrame | None:
    if prelaunch is None or prelaunch.empty:
        return prelaunch
    return pd.concat([prelaunch, _rows_for_variants(prelaunch, variants)], ignore_index=True)


def empty_effects() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="object") for c in EFFECT_COLUMNS})
    for c in ("effect", "ci_low", "ci_high", "reached_share", "support"):
        frame[c] = frame[c].astype(float)
    frame["significant"] = frame["significant"].astype(bool)
    frame["n"] = frame["n"].astype("int64")
    frame["model_rows"] = frame["model_rows"].astype("int64")
    return frame
