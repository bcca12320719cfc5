"""Orchestrate a scenario: draw, simulate, render, and write the landing folder."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from creative_dag import contract
from creative_dag.synth import vocab
from creative_dag.synth.population import (
    Population,
    draw_population,
    finite_or_none,
    iso_day,
)
from creative_dag.synth.render import encode, render_creative
from creative_dag.synth.scenario import resolve_scenario
from creative_dag.synth.simulate import SimulationResult, simulate

GROUND_TRUTH_FILE = "ground_truth.json"
LEAKY_COLUMNS = list(contract.KNOWN_LEAKY_EXPORT_COLUMNS)
# Attributes reported under ground_truth creatives[*].attributes (planted, image-visible).
ATTRIBUTE_KEYS = (
    "background_style", "background_hue", "hue_family", "background_photo", "product", "product_kind",
    "has_face", "text_coverage", "has_cta", "cta_color", "cta_position", "cta_text", "headline_position",
    "headline_font", "headline", "subline", "extra_lines", "orientation", "file_format",
)
CONTEXT_KEYS = ("platform", "placement", "format", "objective", "audience", "country", "product_category")
_SPEC_KEYS = ATTRIBUTE_KEYS + ("layout_seed", "variant_edit", "edit_params")
# Below this many megapixels of images in total, a process pool costs more than it saves.
_PARALLEL_MIN_MEGAPIXELS = 40.0
_INDENT_MAX_CREATIVES = 2000


def _image_rel_path(creative_id: str, file_format: str) -> str:
    return f"{contract.IMAGES_DIR}/{creative_id}.{'png' if file_format == 'png' else 'jpg'}"


def _render_one(job: tuple[dict[str, Any], str, int, float, int]) -> dict[str, Any]:
    """Render, encode and write one image; returns its render facts (runs in workers)."""
    spec, path, image_size, portrait_aspect, jpeg_quality = job
    img, meta = render_creative(spec, image_size, portrait_aspect)
    reencode = spec["edit_params"].get("jpeg_quality") if spec["variant_edit"] == "reencode" else None
    data = encode(img, spec["file_format"], jpeg_quality, reencode)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
    meta["jpeg_quality"] = None if spec["file_format"] == "png" and reencode is None else (reencode or jpeg_quality)
    meta["file_bytes"] = len(data)
    return meta


def _render_all(pop: Population, out: Path, image_size: int, s: dict[str, Any],
                workers: int | None) -> list[dict[str, Any]]:
    frame = pop.creatives
    images_dir = out / contract.IMAGES_DIR
    images_dir.mkdir(parents=True, exist_ok=True)
    jobs = []
    for row in frame[["creative_id", *_SPEC_KEYS]].to_dict("records"):
        spec = {k: _py(row[k]) for k in _SPEC_KEYS}
        spec["edit_params"] = spec["edit_params"] or {}
        path = str(out / _image_rel_path(row["creative_id"], spec["file_format"]))
        jobs.append((spec, path, image_size, s["images"]["portrait_aspect"], s["images"]["jpeg_quality"]))
    # Drop images left by an earlier run into the same folder that this run does not write.
    wanted = {Path(j[1]).name for j in jobs}
    for old in images_dir.glob("cr_*"):
        if old.suffix in (".jpg", ".png") and old.name not in wanted:
            old.unlink()
    if workers is None:
        megapixels = len(jobs) * image_size * image_size * 1.3 / 1e6
        workers = min(2, os.cpu_count() or 1) if megapixels > _PARALLEL_MIN_MEGAPIXELS else 1
    if workers <= 1:
        return [_render_one(job) for job in jobs]
    # Each image is a pure function of its job, so order and worker count never change bytes.
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_render_one, jobs, chunksize=16))


def _daily_table(pop: Population, sim: SimulationResult, start: dt.date) -> pd.DataFrame:
    d = sim.daily
    ids = pop.creatives["creative_id"].to_numpy()
    dates = np.array([iso_day(start, t) for t in range(int(d["day"].max()) + 1)]) if len(d) else np.array([])
    freq = np.where(d["reach"] > 0, d["impressions"] / np.maximum(d["reach"], 1), 0.0)
    return pd.DataFrame({
        "creative_id": ids[d["creative_idx"].to_numpy(int)],
        "date": dates[d["day"].to_numpy(int)],
        "impressions": d["impressions"].astype("int64"),
        "clicks": d["clicks"].astype("int64"),
        "spend": d["spend"].round(2),
        "conversions": d["conversions"].astype("int64"),
        "revenue": d["revenue"].round(2),
        "reach": d["reach"].astype("int64"),
        "frequency": np.round(freq, 4),
        # Empty (NA) for image creatives: the metric does not exist for them.
        "video_3s_views": pd.Series(d["video_3s_views"].to_numpy(), dtype="Int64").mask(d["video_3s_views"] < 0),
        "likes": d["likes"].astype("int64"),
    })


def _lifetime(pop: Population, sim: SimulationResult, last_n_days: int) -> pd.DataFrame:
    """True lifetime totals and the leaky export columns, per creative index."""
    d = sim.daily
    n = len(pop.creatives)
    idx = d["creative_idx"].to_numpy(int)
    sums = {c: np.bincount(idx, d[c].to_numpy(float), n) for c in ("impressions", "clicks", "spend", "conversions", "revenue")}
    recent = d["day"].to_numpy(int) > sim.last_day[idx] - last_n_days
    imps7 = np.bincount(idx[recent], d["impressions"].to_numpy(float)[recent], n)
    clk7 = np.bincount(idx[recent], d["clicks"].to_numpy(float)[recent], n)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = pd.DataFrame({
            **sums,
            "ctr": np.where(sums["impressions"] > 0, sums["clicks"] / sums["impressions"], np.nan),
            "cvr": np.where(sums["clicks"] > 0, sums["conversions"] / sums["clicks"], np.nan),
            "roas": np.where(sums["spend"] > 0, sums["revenue"] / sums["spend"], np.nan),
            "last_7d_ctr": np.where(imps7 > 0, clk7 / imps7, np.nan),
        })
    return out


def _creatives_table(pop: Population, life: pd.DataFrame, start: dt.date) -> pd.DataFrame:
    f = pop.creatives
    return pd.DataFrame({
        "creative_id": f["creative_id"],
        "account_id": f["account_id"],
        "campaign_id": f["campaign_id"],
        "launch_date": [iso_day(start, t) for t in f["launch_day"]],
        "image_path": [_image_rel_path(c, fmt) for c, fmt in zip(f["creative_id"], f["file_format"])],
        "platform": f["platform"], "placement": f["placement"], "format": f["format"],
        "objective": f["objective"], "audience": f["audience"], "country": f["country"],
        "product_category": f["product_category"], "headline": f["headline"],
        "primary_text": f["primary_text"], "cta": f["cta_text"],
        # Lifetime columns as a real export carries them: they leak outcomes on purpose.
        "last_7d_ctr": life["last_7d_ctr"].round(6),
        "lifetime_spend": life["spend"].round(2),
        "lifetime_roas": life["roas"].round(4),
    })


def _r(value: Any, digits: int = 6) -> float | None:
    v = finite_or_none(value)
    return None if v is None else round(v, digits)


def _py(value: Any) -> Any:
    """JSON-native value: numpy scalars unwrapped, NaN (pandas' missing) -> None."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return _r(float(value))
    if isinstance(value, (list, tuple)):
        return [_py(v) for v in value]
    if isinstance(value, dict):
        return {k: _py(v) for k, v in value.items()}
    return value


def _observable_expectation(row: dict[str, Any], account: Any) -> dict[str, float | None]:
    """What a perfect model of observable things expects: the account's base rates x context x planted
    elements, without the unobservable quality draw. expected_outcome is on the scale of the case
    base's composite `outcome_score` (log CTR + log CVR)."""
    ctr = min(account.base_ctr * row["element_ctr_multiplier"] * row["context_ctr_multiplier"], 0.5)
    cvr = min(account.base_cvr * row["element_cvr_multiplier"] * row["context_cvr_multiplier"], 0.9)
    return {"observable_ctr": _r(ctr, 8), "observable_cvr": _r(cvr, 8),
            "expected_outcome": _r(math.log(ctr) + math.log(cvr), 6)}


def _ground_truth(pop: Population, sim: SimulationResult, life: pd.DataFrame, metas: list[dict[str, Any]] | None,
                  s: dict[str, Any], run: dict[str, Any], start: dt.date) -> dict[str, Any]:
    f = pop.creatives
    creatives: dict[str, Any] = {}
    lives = life.to_dict("records")
    for i, row in enumerate(f.to_dict("records")):
        lt = lives[i]
        onset = int(sim.onset_day[i])
        observed = onset >= 0 and onset <= int(sim.last_day[i]) and onset < run["n_days"]
        meta = metas[i] if metas is not None else {}
        creatives[row["creative_id"]] = {
            "account_id": row["account_id"],
            "campaign_id": row["campaign_id"],
            "launch_date": iso_day(start, row["launch_day"]),
            "image_path": _image_rel_path(row["creative_id"], row["file_format"]),
            "attributes": {k: _py(row[k]) for k in ATTRIBUTE_KEYS},
            "context": {k: row[k] for k in CONTEXT_KEYS},
            "latent_quality": _r(row["latent_quality"]),
            "quality_ctr": _r(row["q_ctr"]),
            "quality_cvr": _r(row["q_cvr"]),
            "element_ctr_multiplier": _r(row["element_ctr_multiplier"]),
            "element_cvr_multiplier": _r(row["element_cvr_multiplier"]),
            "context_ctr_multiplier": _r(row["context_ctr_multiplier"]),
            "context_cvr_multiplier": _r(row["context_cvr_multiplier"]),
            "expected_ctr": _r(row["expected_ctr"], 8),
            "expected_cvr": _r(row["expected_cvr"], 8),
            "expected_thumb_stop": _r(row["thumb_stop"]),
            **_observable_expectation(row, pop.accounts[int(row["account_idx"])]),
            "fatigues": bool(row["fatigues"]),
            "planted_fatigue_onset_date": iso_day(start, onset) if onset >= 0 else None,
            "fatigue_onset_date": iso_day(start, onset) if observed else None,
            "fatigue_half_life_days": _r(row["half_life_days"], 3),
            "planned_end_date": iso_day(start, row["launch_day"] + row["lifespan_days"] - 1),
            "end_date": iso_day(start, sim.end_day[i]) if sim.end_day[i] >= 0 else None,
            "stop_reason": str(sim.stop_reason[i]),
            "family_id": _py(row["family_id"]),
            "variant_edit": _py(row["variant_edit"]),
            "edit_params": _py(row["edit_params"]) if _py(row["family_id"]) else None,
            "face_box": _py(meta.get("face_box")),
            "headline_box": _py(meta.get("headline_box")),
            "product_box": _py(meta.get("product_box")),
            "cta_box": _py(meta.get("cta_box")),
            "text_boxes": _py(meta.get("text_boxes")),
            "text_area_ratio": _r(meta["text_area_ratio"], 4) if meta else None,
            "text_color": meta.get("text_color"),
            "text_panel": meta.get("text_panel"),
            "dominant_background_rgb": [round(v, 1) for v in meta["dominant_background_rgb"]] if meta else None,
            "image_width": meta.get("width"),
            "image_height": meta.get("height"),
            "jpeg_quality": meta.get("jpeg_quality"),
            "lifetime": {
                "impressions": int(lt["impressions"]), "clicks": int(lt["clicks"]),
                "conversions": int(lt["conversions"]), "spend": _r(lt["spend"], 2),
                "revenue": _r(lt["revenue"], 2), "ctr": _r(lt["ctr"], 8),
                "cvr": _r(lt["cvr"], 8), "roas": _r(lt["roas"], 6),
            },
        }
    return {
        "seed": run["seed"],
        "run": run,
        "scenario": s,
        "leaky_columns": LEAKY_COLUMNS,
        "effects": [{"attribute": e["attribute"], "value": e["value"], "metric": e["metric"],
                     "multiplier": float(e["multiplier"]), "accounts": list(e["accounts"])} for e in s["effects"]],
        "thumb_stop_effects": [{"attribute": e["attribute"], "value": e["value"], "metric": "thumb_stop",
                                "multiplier": float(e["multiplier"]), "accounts": list(e["accounts"])}
                               for e in s["video"]["thumb_stop_effects"]],
        "attribute_domains": {k: list(v) for k, v in vocab.ELEMENT_ATTRIBUTE_DOMAINS.items()},
        "latent_quality_definition": (
            "ln(element CTR multiplier x element CVR multiplier x latent CTR quality x latent CVR quality): "
            "log expected conversions per impression relative to the account's baseline creative in a fixed "
            "reference context (ROAS-proportional at fixed CPM and AOV); excludes context, fatigue and noise"),
        "accounts": {a.account_id: {"daily_budget": a.daily_budget, "aov": a.aov, "base_ctr": a.base_ctr,
                                    "base_cvr": a.base_cvr, "products": list(a.products),
                                    "countries": list(a.countries), "launch_weight": a.launch_weight}
                     for a in pop.accounts},
        "families": pop.families,
        "creatives": creatives,
    }


def generate_scenario(out_dir: str | os.PathLike, n_creatives: int = 100, n_days: int = 60, seed: int = 0,
                      scenario: str | os.PathLike | Mapping[str, Any] | None = None, image_size: int = 1080,
                      start_date: str = "2026-03-01", *, workers: int | None = None,
                      render_images: bool = True) -> dict[str, Any]:
    """Write a landing folder (creatives.csv, daily_metrics.csv, images/) and ground_truth.json.

    scenario: None, a YAML/JSON file path, or a dict of overrides over default_scenario.yaml.
    image_size: the short side of every image in pixels (portrait creatives are taller).
    workers: image-rendering processes (None: 1 for small runs, up to 2 for large ones);
    output bytes never depend on it. render_images=False writes metrics and ground
    truth only (image facts null) for fast statistical tests.
    Returns a summary: counts, paths and timings in seconds.
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    s = resolve_scenario(scenario)
    if image_size < 64:
        raise ValueError("image_size must be >= 64 pixels")
    start = dt.date.fromisoformat(start_date)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pop = draw_population(s, int(n_creatives), int(n_days), start, int(seed))
    timings["population"] = time.perf_counter() - t0

    t = time.perf_counter()
    sim = simulate(pop.creatives, pop.accounts, s, int(n_days), start.weekday(), int(seed))
    timings["simulate"] = time.perf_counter() - t

    t = time.perf_counter()
    metas = _render_all(pop, out, int(image_size), s, workers) if render_images else None
    timings["render"] = time.perf_counter() - t

    t = time.perf_counter()
    life = _lifetime(pop, sim, s["leaky"]["last_n_days"])
    creatives_csv = out / f"{contract.CREATIVES_FILE}.csv"
    metrics_csv = out / f"{contract.DAILY_METRICS_FILE}.csv"
    _creatives_table(pop, life, start).to_csv(creatives_csv, index=False, lineterminator="\n")
    daily = _daily_table(pop, sim, start)
    daily.to_csv(metrics_csv, index=False, lineterminator="\n")
    run = {"seed": int(seed), "n_creatives": int(n_creatives), "n_days": int(n_days), "image_size": int(image_size),
           "start_date": start.isoformat(), "render_images": bool(render_images)}
    truth = _ground_truth(pop, sim, life, metas, s, run, start)
    gt_path = out / GROUND_TRUTH_FILE
    # Indented for reading at demo sizes; compact above that (json's indenting encoder
    # is pure Python and takes tens of seconds at 20,000 creatives).
    indent = 1 if len(pop.creatives) <= _INDENT_MAX_CREATIVES else None
    gt_path.write_text(json.dumps(truth, indent=indent, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")
    timings["write"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0

    f = pop.creatives
    return {
        "out_dir": str(out),
        "seed": int(seed),
        "n_creatives": len(f),
        "n_days": int(n_days),
        "n_accounts": len(pop.accounts),
        "n_daily_rows": len(daily),
        "n_images": len(metas) if metas is not None else 0,
        "n_families": len(pop.families),
        "n_family_members": int(f["family_id"].notna().sum()),
        "n_video": int((f["format"] == "video").sum()),
        "n_fatiguing": int(f["fatigues"].sum()),
        "paths": {"creatives": str(creatives_csv), "daily_metrics": str(metrics_csv),
                  "images": str(out / contract.IMAGES_DIR), "ground_truth": str(gt_path)},
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }
