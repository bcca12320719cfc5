"""Scenario parameters: shipped defaults, YAML/JSON loading, deep merge and validation."""

from __future__ import annotations

import copy
import json
import numbers
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from creative_dag.synth import vocab

DEFAULT_SCENARIO_FILE = "default_scenario.yaml"

# Mappings whose keys are category names (new keys allowed, merged key by key).
_OPEN_PATHS = {
    "context.placements", "context.video_share", "context.cpm", "context.placement_effects",
    "context.audience_effects", "context.objective_effects", "context.audience_size",
    "context.country_cpm", "engagement.platform_like",
}
# Mappings that are probability mixes: an override replaces the whole mix, since
# merging weights would silently keep categories the user meant to drop.
_MIX_PATHS = {
    "creative_mix.background_style", "creative_mix.hue_family", "creative_mix.text_coverage",
    "creative_mix.headline_position", "context.platforms", "context.objectives",
    "context.audiences", "families.edits",
}
_MIX_VOCAB = {
    "creative_mix.background_style": vocab.BACKGROUND_STYLES,
    "creative_mix.hue_family": vocab.HUE_FAMILIES,
    "creative_mix.text_coverage": vocab.TEXT_COVERAGES,
    "creative_mix.headline_position": vocab.HEADLINE_POSITIONS,
    "families.edits": vocab.FAMILY_EDITS,
}
_RATE_KEYS = {"cpm", "ctr", "cvr"}


class ScenarioError(ValueError):
    """An invalid scenario: unknown key, wrong type or inconsistent values."""


def default_scenario() -> dict[str, Any]:
    """The shipped defaults (a fresh copy)."""
    text = resources.files("creative_dag.synth").joinpath(DEFAULT_SCENARIO_FILE).read_text("utf-8")
    return yaml.safe_load(text)


def load_overrides(scenario: str | Path | Mapping[str, Any] | None) -> dict[str, Any]:
    """Read overrides from a YAML/JSON file path or take a dict; None means no overrides."""
    if scenario is None:
        return {}
    if isinstance(scenario, Mapping):
        return copy.deepcopy(dict(scenario))
    path = Path(scenario)
    text = path.read_text("utf-8")
    data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ScenarioError(f"scenario file {path} must hold a mapping at top level")
    return data


def resolve_scenario(scenario: str | Path | Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults deep-merged with `scenario` overrides, then validated."""
    merged = _merge(default_scenario(), load_overrides(scenario), "")
    validate(merged)
    return merged


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_type(default: Any, value: Any, path: str) -> None:
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif _is_number(default):
        ok = _is_number(value)
    elif isinstance(default, str):
        ok = isinstance(value, str)
    elif isinstance(default, list):
        ok = isinstance(value, list)
    elif isinstance(default, dict):
        ok = isinstance(value, dict)
    else:
        ok = True
    if not ok:
        raise ScenarioError(
            f"scenario key '{path}' expects {type(default).__name__}, got {type(value).__name__}: {value!r}")


def _merge(base: dict[str, Any], override: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        path = f"{prefix}{key}"
        if key not in base:
            if prefix.rstrip(".") in _OPEN_PATHS:
                out[key] = copy.deepcopy(value)
                continue
            raise ScenarioError(f"unknown scenario key '{path}'")
        _check_type(base[key], value, path)
        # Each platform's placement table is a mix too: replace it whole.
        is_mix = path in _MIX_PATHS or prefix == "context.placements."
        if isinstance(value, dict) and not is_mix:
            out[key] = _merge(base[key], value, path + ".")
        else:
            out[key] = copy.deepcopy(value)
    return out


def _mix(mapping: Any, path: str, allowed: tuple | None = None) -> None:
    if not isinstance(mapping, dict) or not mapping:
        raise ScenarioError(f"scenario key '{path}' must be a non-empty mapping of weights")
    for name, weight in mapping.items():
        if allowed is not None and name not in allowed:
            raise ScenarioError(f"unknown value '{name}' in scenario key '{path}' (allowed: {list(allowed)})")
        if not _is_number(weight) or weight < 0:
            raise ScenarioError(f"scenario key '{path}.{name}' must be a non-negative number")
    if sum(mapping.values()) <= 0:
        raise ScenarioError(f"scenario key '{path}' weights sum to zero")


def _share(value: Any, path: str) -> None:
    if not _is_number(value) or not 0 <= value <= 1:
        raise ScenarioError(f"scenario key '{path}' must be a share in [0, 1], got {value!r}")


def _range(value: Any, path: str, low: float = 0.0) -> None:
    if (not isinstance(value, list) or len(value) != 2 or not all(_is_number(v) for v in value)
            or value[0] > value[1] or value[0] < low):
        raise ScenarioError(f"scenario key '{path}' must be [low, high] with {low} <= low <= high")


def account_ids(count: int) -> list[str]:
    """acc_01, acc_02, ... (two digits up to 99 accounts)."""
    width = max(2, len(str(count)))
    return [f"acc_{i + 1:0{width}d}" for i in range(count)]


def _effects(effects: Any, path: str, accounts: list[str], need_metric: bool) -> None:
    if not isinstance(effects, list):
        raise ScenarioError(f"scenario key '{path}' must be a list")
    allowed_keys = {"attribute", "value", "metric", "multiplier", "accounts"} if need_metric else {
        "attribute", "value", "multiplier", "accounts"}
    for i, eff in enumerate(effects):
        where = f"{path}[{i}]"
        if not isinstance(eff, dict):
            raise ScenarioError(f"scenario key '{where}' must be a mapping")
        for key in eff:
            if key not in allowed_keys:
                raise ScenarioError(f"unknown scenario key '{where}.{key}'")
        required = allowed_keys - {"accounts"}
        missing = required - set(eff)
        if missing:
            raise ScenarioError(f"scenario key '{where}' misses {sorted(missing)}")
        attr = eff["attribute"]
        if attr not in vocab.ELEMENT_ATTRIBUTE_DOMAINS:
            raise ScenarioError(f"unknown effect attribute '{attr}' in '{where}' "
                                f"(allowed: {sorted(vocab.ELEMENT_ATTRIBUTE_DOMAINS)})")
        domain = vocab.ELEMENT_ATTRIBUTE_DOMAINS[attr]
        if eff["value"] not in domain or isinstance(eff["value"], bool) != isinstance(domain[0], bool):
            raise ScenarioError(f"effect value {eff['value']!r} in '{where}' is not one of {list(domain)}")
        if need_metric and eff["metric"] not in ("ctr", "cvr"):
            raise ScenarioError(f"effect metric in '{where}' must be 'ctr' or 'cvr', got {eff['metric']!r}")
        if not _is_number(eff["multiplier"]) or eff["multiplier"] <= 0:
            raise ScenarioError(f"effect multiplier in '{where}' must be a positive number")
        eff.setdefault("accounts", [])
        if not isinstance(eff["accounts"], list):
            raise ScenarioError(f"scenario key '{where}.accounts' must be a list")
        for acc in eff["accounts"]:
            if acc not in accounts:
                raise ScenarioError(f"effect in '{where}' names unknown account {acc!r} (have {accounts})")


def validate(s: dict[str, Any]) -> None:
    """Semantic checks after merging; raises ScenarioError naming the offending key."""
    acc = s["accounts"]
    if not isinstance(acc["count"], int) or acc["count"] < 1:
        raise ScenarioError("scenario key 'accounts.count' must be an integer >= 1")
    ids = account_ids(acc["count"])
    for key in ("launch_weight", "daily_budget", "aov", "base_ctr", "base_cvr", "products", "countries"):
        if not acc[key]:
            raise ScenarioError(f"scenario key 'accounts.{key}' must be a non-empty list")
    for key in ("launch_weight", "daily_budget", "aov", "base_ctr", "base_cvr"):
        for v in acc[key]:
            if not _is_number(v) or v <= 0:
                raise ScenarioError(f"scenario key 'accounts.{key}' must hold positive numbers")
    for key in ("base_ctr", "base_cvr"):
        if max(acc[key]) >= 0.5:
            raise ScenarioError(f"scenario key 'accounts.{key}' must be rates below 0.5")
    for products in acc["products"]:
        if not isinstance(products, list) or not products:
            raise ScenarioError("scenario key 'accounts.products' must be a list of non-empty lists")
        for p in products:
            if p not in vocab.PRODUCTS:
                raise ScenarioError(f"unknown product {p!r} in 'accounts.products' (allowed: {list(vocab.PRODUCTS)})")
    ctx = s["context"]
    for countries in acc["countries"]:
        if not isinstance(countries, list) or not countries:
            raise ScenarioError("scenario key 'accounts.countries' must be a list of non-empty lists")
        for c in countries:
            if c not in ctx["country_cpm"]:
                raise ScenarioError(f"country {c!r} in 'accounts.countries' has no 'context.country_cpm' entry")

    for path in _MIX_PATHS:
        section, key = path.split(".")
        _mix(s[section][key], path, _MIX_VOCAB.get(path))
    for platform in ctx["platforms"]:
        for table in ("cpm", "placements"):
            if platform not in ctx[table]:
                raise ScenarioError(f"platform {platform!r} has no 'context.{table}' entry")
        if platform not in s["engagement"]["platform_like"]:
            raise ScenarioError(f"platform {platform!r} has no 'engagement.platform_like' entry")
        _mix(ctx["placements"][platform], f"context.placements.{platform}")
        for placement in ctx["placements"][platform]:
            for table in ("placement_effects", "video_share"):
                if placement not in ctx[table]:
                    raise ScenarioError(f"placement {placement!r} has no 'context.{table}' entry")
            _share(ctx["video_share"][placement], f"context.video_share.{placement}")
    for table, names in (("audience_effects", ctx["audiences"]), ("objective_effects", ctx["objectives"]),
                         ("placement_effects", ctx["placement_effects"])):
        for name in names:
            if name not in ctx[table]:
                raise ScenarioError(f"{name!r} has no 'context.{table}' entry")
            entry = ctx[table][name]
            if not isinstance(entry, dict) or set(entry) != _RATE_KEYS or not all(
                    _is_number(v) and v > 0 for v in entry.values()):
                raise ScenarioError(f"'context.{table}.{name}' must map cpm, ctr, cvr to positive numbers")
    for audience in ctx["audiences"]:
        if audience not in ctx["audience_size"]:
            raise ScenarioError(f"audience {audience!r} has no 'context.audience_size' entry")

    mix = s["creative_mix"]
    for key in ("face_share", "cta_share", "png_share"):
        _share(mix[key], f"creative_mix.{key}")
    _share(s["fatigue"]["share"], "fatigue.share")
    _share(s["families"]["share"], "families.share")
    _range(s["fatigue"]["onset_fraction"], "fatigue.onset_fraction")
    _range(s["fatigue"]["half_life_days"], "fatigue.half_life_days")
    _share(s["fatigue"]["floor"], "fatigue.floor")
    _range(s["families"]["size"], "families.size", low=2)
    _range(s["families"]["crop_fraction"], "families.crop_fraction")
    _range(s["families"]["hue_shift_degrees"], "families.hue_shift_degrees")
    _range(s["families"]["reencode_quality"], "families.reencode_quality", low=1)
    if s["families"]["reencode_quality"][1] > 100:
        raise ScenarioError("scenario key 'families.reencode_quality' must be within [1, 100]")
    lc = s["lifecycle"]
    if lc["min_lifespan_days"] < 1 or lc["min_lifespan_days"] > lc["max_lifespan_days"]:
        raise ScenarioError("scenario keys 'lifecycle.min_lifespan_days' <= 'lifecycle.max_lifespan_days' required")
    if len(s["launches"]["weekday_weights"]) != 7 or min(s["launches"]["weekday_weights"]) < 0:
        raise ScenarioError("scenario key 'launches.weekday_weights' must hold 7 non-negative numbers")
    for key in ("ctr_sigma", "cvr_sigma", "family_member_sigma"):
        if s["quality"][key] < 0:
            raise ScenarioError(f"scenario key 'quality.{key}' must be >= 0")
    if not -1 <= s["quality"]["correlation"] <= 1:
        raise ScenarioError("scenario key 'quality.correlation' must be within [-1, 1]")
    for key, value in s["noise"].items():
        if value < 0:
            raise ScenarioError(f"scenario key 'noise.{key}' must be >= 0")
    _effects(s["effects"], "effects", ids, need_metric=True)
    _effects(s["video"]["thumb_stop_effects"], "video.thumb_stop_effects", ids, need_metric=False)
