"""Draw the creative population: accounts, campaigns, launch days, families, element
attributes, context, latent quality, lifespans and fatigue plans.

Everything here is a pure function of (scenario, n_creatives, n_days, start_date, seed):
image size plays no part, so one seed gives the same population at any resolution.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from creative_dag.synth import vocab
from creative_dag.synth.scenario import account_ids

# Independent random streams, so adding draws to one stage leaves the others intact.
STREAM_POPULATION = 1
STREAM_SIMULATION = 2
STREAM_RENDER = 3

PRIMARY_TEXT_TEMPLATES = (
    "{headline}! {subline}.",
    "{subline}. {headline} - tap {cta}.",
    "{headline}. {subline}. {cta} and see why everyone is talking.",
    "New from us: {headline}. {subline}.",
)


@dataclass(frozen=True)
class Account:
    """One advertiser account and its economics."""

    index: int
    account_id: str
    launch_weight: float
    daily_budget: float
    aov: float
    base_ctr: float
    base_cvr: float
    products: tuple[str, ...]
    countries: tuple[str, ...]


@dataclass
class Population:
    """The drawn creatives (one row each, sorted by creative_id) and their accounts."""

    accounts: list[Account]
    creatives: pd.DataFrame
    families: dict[str, list[str]]


def _cycled(values: list, i: int) -> Any:
    return values[i % len(values)]


def build_accounts(scenario: dict[str, Any]) -> list[Account]:
    """Accounts acc_01.. with per-account lists cycled to the account count."""
    acc = scenario["accounts"]
    return [
        Account(index=i, account_id=aid, launch_weight=float(_cycled(acc["launch_weight"], i)),
                daily_budget=float(_cycled(acc["daily_budget"], i)), aov=float(_cycled(acc["aov"], i)),
                base_ctr=float(_cycled(acc["base_ctr"], i)), base_cvr=float(_cycled(acc["base_cvr"], i)),
                products=tuple(_cycled(acc["products"], i)), countries=tuple(_cycled(acc["countries"], i)))
        for i, aid in enumerate(account_ids(acc["count"]))
    ]


def _apportion(total: int, weights: list[float]) -> list[int]:
    """Largest-remainder split of `total` by weights (deterministic, sums exactly)."""
    w = np.asarray(weights, dtype=float)
    raw = total * w / w.sum()
    counts = np.floor(raw).astype(int)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return counts.tolist()


def _choice(rng: np.random.Generator, mix: dict[str, float]) -> str:
    """One name drawn by weight (bisect on cumulative weights: rng.choice(p=...) costs
    ~50 us a call, which dominates at 20,000 creatives)."""
    names = list(mix)
    cum = np.cumsum([float(mix[n]) for n in names])
    i = bisect.bisect_right(cum.tolist(), rng.random() * cum[-1])
    return names[min(i, len(names) - 1)]


def _family_sizes(rng: np.random.Generator, n: int, share: float, lo: int, hi: int) -> list[int]:
    target = round(share * n)
    sizes: list[int] = []
    while sum(sizes) < target:
        size = int(rng.integers(lo, hi + 1))
        rest = target - sum(sizes)
        size = min(size, rest)
        if size < 2:
            break
        sizes.append(size)
    return sizes


def _launch_days(rng: np.random.Generator, n: int, n_days: int, start: dt.date, phase: float,
                 launches: dict[str, Any]) -> np.ndarray:
    """n launch days drawn by stratified inverse-CDF sampling of the account's launch
    intensity, so launches cover the whole period continuously at a varying rate."""
    t = np.arange(n_days)
    weekday = np.asarray(launches["weekday_weights"], dtype=float)[(start.weekday() + t) % 7]
    wave = 1.0 + launches["seasonality_amplitude"] * np.sin(
        2 * np.pi * t / launches["seasonality_period_days"] + phase)
    intensity = np.clip(weekday * wave, 1e-6, None)
    cdf = np.cumsum(intensity) / intensity.sum()
    u = (np.arange(n) + rng.random(n)) / max(n, 1)
    return np.minimum(np.searchsorted(cdf, u, side="right"), n_days - 1)


def _draw_elements(rng: np.random.Generator, s: dict[str, Any], account: Account) -> dict[str, Any]:
    """Element attributes of one base creative (the planted, image-visible factors)."""
    mix = s["creative_mix"]
    style = _choice(rng, mix["background_style"])
    family = _choice(rng, mix["hue_family"])
    hues = [h for h, (fam, _) in vocab.HUES.items() if fam == family]
    product = account.products[int(rng.integers(len(account.products)))]
    kind, category = vocab.PRODUCTS[product]
    coverage = _choice(rng, mix["text_coverage"])
    pool = vocab.HEADLINES_BY_CATEGORY[category]
    headline = (pool[int(rng.integers(len(pool)))] if rng.random() < 0.7
                else vocab.GENERIC_HEADLINES[int(rng.integers(len(vocab.GENERIC_HEADLINES)))])
    n_extra = {"none": 0, "light": 0, "medium": 0, "heavy": 3}[coverage]
    extra_idx = rng.choice(len(vocab.EXTRA_LINES), size=n_extra, replace=False) if n_extra else []
    return {
        "background_style": style,
        "background_hue": hues[int(rng.integers(len(hues)))],
        "hue_family": family,
        "background_photo": (vocab.BACKGROUND_PHOTOS[int(rng.integers(len(vocab.BACKGROUND_PHOTOS)))]
                             if style in ("photo", "blurred_photo") else None),
        "product": product,
        "product_kind": kind,
        "has_face": bool(rng.random() < mix["face_share"]),
        "text_coverage": coverage,
        "has_cta": bool(rng.random() < mix["cta_share"]),
        "cta_color": list(vocab.CTA_COLORS)[int(rng.integers(len(vocab.CTA_COLORS)))],
        "cta_position": vocab.CTA_POSITIONS[int(rng.integers(len(vocab.CTA_POSITIONS)))],
        "cta_text": vocab.CTA_TEXTS[int(rng.integers(len(vocab.CTA_TEXTS)))],
        "headline_position": _choice(rng, mix["headline_position"]),
        "headline_font": list(vocab.FONTS)[int(rng.integers(len(vocab.FONTS)))],
        "headline": headline,
        "subline": vocab.SUBLINES[int(rng.integers(len(vocab.SUBLINES)))],
        "extra_lines": [vocab.EXTRA_LINES[int(i)] for i in extra_idx],
        "file_format": "png" if rng.random() < mix["png_share"] else "jpeg",
        "layout_seed": int(rng.integers(0, 2**31 - 1)),
    }


def _draw_context(rng: np.random.Generator, s: dict[str, Any]) -> dict[str, Any]:
    ctx = s["context"]
    platform = _choice(rng, ctx["platforms"])
    placement = _choice(rng, ctx["placements"][platform])
    return {
        "platform": platform,
        "placement": placement,
        "format": "video" if rng.random() < ctx["video_share"][placement] else "image",
        "audience": _choice(rng, ctx["audiences"]),
        "orientation": "portrait" if placement in ctx["portrait_placements"] else "square",
    }


def _edit_params(rng: np.random.Generator, s: dict[str, Any], edit: str, base: dict[str, Any],
                 category: str, context: dict[str, Any] | None = None) -> dict[str, Any]:
    fam = s["families"]
    if edit == "crop":
        total = rng.uniform(*fam["crop_fraction"])
        left, top = rng.uniform(0, total), rng.uniform(0, total)
        return {"crop": [float(left), float(top), float(total - left), float(total - top)]}
    if edit == "hue_shift":
        sign = 1.0 if rng.random() < 0.5 else -1.0
        return {"hue_shift_degrees": float(sign * rng.uniform(*fam["hue_shift_degrees"]))}
    if edit == "reencode":
        lo, hi = fam["reencode_quality"]
        return {"jpeg_quality": int(rng.integers(lo, hi + 1))}
    if edit == "headline":
        pool = [h for h in vocab.HEADLINES_BY_CATEGORY[category] + vocab.GENERIC_HEADLINES if h != base["headline"]]
        return {"headline": pool[int(rng.integers(len(pool)))]}
    if edit == "cta_text":
        pool = [t for t in vocab.CTA_TEXTS if t != base["cta_text"]]
        return {"cta_text": pool[int(rng.integers(len(pool)))]}
    if edit == "reframe":
        # Zoom out by a crop-sized amount and pan: the inverse of a crop (the design moves
        # inside the frame, the canvas edge is extended).
        scale = 1.0 - rng.uniform(*fam["crop_fraction"])
        return {"reframe": [float(scale), float(rng.random()), float(rng.random())]}
    if edit == "aspect_ratio":
        return _resized_context(s, context or {})
    return {}


def _draw_edit(rng: np.random.Generator, edits: dict[str, float], base: dict[str, Any]) -> str:
    """One variant edit by weight; a CTA-label edit of a creative without a CTA button would
    leave the image unchanged, so it is drawn again among the other kinds (headline if none).
    The redraw happens only when cta_text is in the mix, so default populations are unchanged."""
    edit = _choice(rng, edits)
    if edit == "cta_text" and not base["has_cta"]:
        rest = {k: v for k, v in edits.items() if k != "cta_text" and v > 0}
        edit = _choice(rng, rest) if rest else "headline"
    return edit


def _resized_context(s: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """The same design for the other aspect ratio (square <-> portrait), moved to the platform's
    first placement of that shape where it has one (resized variants are made for a placement)."""
    ctx = s["context"]
    portrait = context.get("orientation") != "portrait"
    placement = context.get("placement")
    for name in ctx["placements"].get(context.get("platform"), {}):
        if (name in ctx["portrait_placements"]) == portrait:
            placement = name
            break
    return {"orientation": "portrait" if portrait else "square", "placement": placement}


def _multiplier(effects: list[dict[str, Any]], attrs: dict[str, Any], account_id: str,
                metric: str | None) -> float:
    m = 1.0
    for eff in effects:
        if metric is not None and eff["metric"] != metric:
            continue
        if eff["accounts"] and account_id not in eff["accounts"]:
            continue
        if attrs.get(eff["attribute"]) == eff["value"] and type(attrs.get(eff["attribute"])) is type(eff["value"]):
            m *= float(eff["multiplier"])
    return m


def draw_population(s: dict[str, Any], n_creatives: int, n_days: int, start: dt.date, seed: int) -> Population:
    """Draw every creative's prelaunch facts, planted attributes and simulation parameters."""
    if n_creatives < 1 or n_days < 1:
        raise ValueError("n_creatives and n_days must be >= 1")
    rng = np.random.default_rng([seed, STREAM_POPULATION])
    accounts = build_accounts(s)
    counts = _apportion(n_creatives, [a.launch_weight for a in accounts])
    fam_cfg, ctx_cfg = s["families"], s["context"]
    rows: list[dict[str, Any]] = []
    for account, n_acc in zip(accounts, counts):
        if n_acc == 0:
            continue
        sizes = _family_sizes(rng, n_acc, fam_cfg["share"], *fam_cfg["size"])
        units = sizes + [1] * (n_acc - sum(sizes))
        units = [units[i] for i in rng.permutation(len(units))]
        phase = 2 * np.pi * account.index / len(accounts) + rng.uniform(0, 1)
        base_days = _launch_days(rng, len(units), n_days, start, phase, s["launches"])
        campaigns: dict[int, dict[str, str]] = {}
        for unit_idx, (size, day0) in enumerate(zip(units, base_days)):
            day0 = int(day0)
            k = day0 // s["launches"]["campaign_length_days"]
            if k not in campaigns:
                campaigns[k] = {
                    "campaign_id": f"cmp_{account.account_id[4:]}_{k + 1:02d}",
                    "objective": _choice(rng, ctx_cfg["objectives"]),
                    "country": account.countries[int(rng.integers(len(account.countries)))],
                }
            base = _draw_elements(rng, s, account)
            context = _draw_context(rng, s)
            category = vocab.PRODUCTS[base["product"]][1]
            offsets = [0] + sorted(int(o) for o in rng.integers(1, fam_cfg["window_days"] + 1, size=size - 1))
            edits = ["base"] + [_draw_edit(rng, fam_cfg["edits"], base) for _ in range(size - 1)]
            rho = s["quality"]["correlation"]
            e = rng.standard_normal(2)
            z = (e[0], rho * e[0] + np.sqrt(1 - rho * rho) * e[1])  # correlated log-quality pair
            for member, (offset, edit) in enumerate(zip(offsets, edits)):
                attrs = dict(base)
                params = _edit_params(rng, s, edit, base, category, context)
                if edit in ("headline", "cta_text"):
                    attrs[edit] = params[edit]
                elif edit == "aspect_ratio":
                    attrs.update(params)  # orientation and placement (after **context below)
                jitter = rng.normal(0, s["quality"]["family_member_sigma"], 2) if member else np.zeros(2)
                rows.append({
                    "account_idx": account.index, "account_id": account.account_id,
                    **campaigns[k], "launch_day": min(day0 + offset, n_days - 1),
                    **context, **attrs, "product_category": category,
                    "family_key": (account.index, unit_idx) if size > 1 else None,
                    "family_member": member, "variant_edit": edit if size > 1 else None,
                    "edit_params": params, "z_ctr": float(z[0] + jitter[0]), "z_cvr": float(z[1] + jitter[1]),
                    "sort_key": (day0 + offset, account.index, unit_idx, member),
                })
    rows.sort(key=lambda r: r["sort_key"])
    width = max(6, len(str(len(rows))))
    for i, row in enumerate(rows):
        row["creative_id"] = f"cr_{i + 1:0{width}d}"
    families = _assign_families(rows)
    frame = pd.DataFrame(rows).drop(columns=["sort_key", "family_key"])
    _add_copy(frame, rng)
    _add_lifecycle(frame, s, rng)
    _add_rates(frame, s, accounts)
    return Population(accounts=accounts, creatives=frame, families=families)


def _assign_families(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """fam_0001.. numbered in order of each family's first creative_id."""
    families: dict[str, list[str]] = {}
    key_to_id: dict[Any, str] = {}
    for row in rows:
        key = row["family_key"]
        if key is None:
            row["family_id"] = None
            continue
        if key not in key_to_id:
            key_to_id[key] = f"fam_{len(key_to_id) + 1:04d}"
            families[key_to_id[key]] = []
        row["family_id"] = key_to_id[key]
        families[key_to_id[key]].append(row["creative_id"])
    return families


def _add_copy(frame: pd.DataFrame, rng: np.random.Generator) -> None:
    template_idx = rng.integers(len(PRIMARY_TEXT_TEMPLATES), size=len(frame))
    frame["primary_text"] = [
        PRIMARY_TEXT_TEMPLATES[t].format(headline=h, subline=sub, cta=c.lower())
        for t, h, sub, c in zip(template_idx, frame["headline"], frame["subline"], frame["cta_text"])
    ]


def _add_lifecycle(frame: pd.DataFrame, s: dict[str, Any], rng: np.random.Generator) -> None:
    """Planned lifespan and the fatigue plan (onset day offset, decay half-life)."""
    lc, fat = s["lifecycle"], s["fatigue"]
    n = len(frame)
    life = np.exp(np.log(lc["lifespan_days_median"]) + lc["lifespan_days_sigma"] * rng.standard_normal(n))
    life = np.clip(np.round(life), lc["min_lifespan_days"], lc["max_lifespan_days"]).astype(int)
    fatigues = rng.random(n) < fat["share"]
    frac = rng.uniform(*fat["onset_fraction"], size=n)
    onset = np.maximum(fat["min_onset_days"], np.round(frac * life)).astype(int)
    # The onset must leave at least two planned days of decay to be observable.
    fatigues &= onset <= life - 2
    frame["lifespan_days"] = life
    frame["fatigues"] = fatigues
    frame["onset_offset"] = np.where(fatigues, onset, -1)
    frame["half_life_days"] = np.where(fatigues, rng.uniform(*fat["half_life_days"], size=n), np.nan)


def _add_rates(frame: pd.DataFrame, s: dict[str, Any], accounts: list[Account]) -> None:
    """Expected CTR/CVR/CPM and the other per-creative rates of the metric model."""
    ctx, q = s["context"], s["quality"]
    q_ctr = np.exp(q["ctr_sigma"] * frame["z_ctr"] - q["ctr_sigma"] ** 2 / 2)
    q_cvr = np.exp(q["cvr_sigma"] * frame["z_cvr"] - q["cvr_sigma"] ** 2 / 2)
    attrs = frame[list(vocab.ELEMENT_ATTRIBUTE_DOMAINS)].to_dict("records")
    acc_ids = frame["account_id"].tolist()
    elem_ctr = np.array([_multiplier(s["effects"], a, acc, "ctr") for a, acc in zip(attrs, acc_ids)])
    elem_cvr = np.array([_multiplier(s["effects"], a, acc, "cvr") for a, acc in zip(attrs, acc_ids)])
    thumb = np.array([_multiplier(s["video"]["thumb_stop_effects"], a, acc, None) for a, acc in zip(attrs, acc_ids)])

    def ctx_mult(rate: str) -> np.ndarray:
        return (frame["placement"].map(lambda p: ctx["placement_effects"][p][rate]).to_numpy(float)
                * frame["audience"].map(lambda p: ctx["audience_effects"][p][rate]).to_numpy(float)
                * frame["objective"].map(lambda p: ctx["objective_effects"][p][rate]).to_numpy(float))

    base_ctr = np.array([accounts[i].base_ctr for i in frame["account_idx"]])
    base_cvr = np.array([accounts[i].base_cvr for i in frame["account_idx"]])
    frame["q_ctr"], frame["q_cvr"] = q_ctr, q_cvr
    frame["element_ctr_multiplier"], frame["element_cvr_multiplier"] = elem_ctr, elem_cvr
    frame["context_ctr_multiplier"], frame["context_cvr_multiplier"] = ctx_mult("ctr"), ctx_mult("cvr")
    frame["expected_ctr"] = np.clip(base_ctr * elem_ctr * frame["context_ctr_multiplier"] * q_ctr, 0, 0.5)
    frame["expected_cvr"] = np.clip(base_cvr * elem_cvr * frame["context_cvr_multiplier"] * q_cvr, 0, 0.9)
    # Oracle for ranking: log expected conversions per impression relative to the
    # account's baseline creative in a fixed reference context (so ROAS-proportional
    # at fixed CPM and AOV); context, fatigue and noise are excluded on purpose.
    frame["latent_quality"] = np.log(elem_ctr * elem_cvr * q_ctr * q_cvr)
    frame["cpm"] = (frame["platform"].map(ctx["cpm"]).to_numpy(float)
                    * frame["country"].map(ctx["country_cpm"]).to_numpy(float) * ctx_mult("cpm"))
    frame["audience_size"] = frame["audience"].map(ctx["audience_size"]).to_numpy(float)
    frame["aov"] = [accounts[i].aov for i in frame["account_idx"]]
    frame["thumb_stop"] = np.where(frame["format"] == "video",
                                   np.clip(s["video"]["base_thumb_stop"] * thumb * np.sqrt(q_ctr), 0, 0.95), np.nan)
    frame["like_rate"] = (s["engagement"]["base_like_rate"]
                          * frame["platform"].map(s["engagement"]["platform_like"]).to_numpy(float)
                          * np.sqrt(elem_ctr * q_ctr))


def iso_day(start: dt.date, day: int) -> str:
    """ISO date of day index `day` from `start`."""
    return (start + dt.timedelta(days=int(day))).isoformat()


def finite_or_none(value: float) -> float | None:
    """JSON-friendly float: None for NaN/inf."""
    return None if value is None or not math.isfinite(value) else float(value)
