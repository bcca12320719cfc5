"""Element attribution: counterfactual OpenCV edits and the forecast change they cause.

The edits are checked against the product's own detectors (an edit must move what the visual and
layout blocks detect); the attribution against a generated scenario's planted effect, with the
effect's sign flipped on a held-out variant, and against edits of things nothing was planted on.
"""

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from test_cbr_scenario import NEUTRAL, PRELAUNCH, scenario  # noqa: F401  (module fixture)

from creative_dag.attribution.edits import EDIT_NAMES, EDITS, Detected, apply_edit
from creative_dag.attribution.effects import (
    AttributionConfig,
    attribute_edits,
    editable_cases,
    probe_directions,
    probe_info,
    probe_variants,
    sample_creatives,
)
from creative_dag.attribution.variants import (
    encode_variants,
    image_items,
    pixels_sha256,
    plan_variants,
)
from creative_dag.cbr.case_base import build_case_base
from creative_dag.checks.forecast import problems_element_attribution
from creative_dag.encoders.cache import EmbeddingCache
from creative_dag.encoders.colors import ColorNamer
from creative_dag.encoders.decode import decode_image, fit_decoded
from creative_dag.encoders.pipeline import encode_images
from creative_dag.features.build import build_outcomes
from creative_dag.resources.models import EncoderSettings, load_block
from creative_dag.synth import generate_scenario

EDIT_INFO = {k: (e.label, e.element) for k, e in EDITS.items()}
LIGHT_EDITS = ("brighter", "darker", "more_contrast", "less_contrast")


def _scenario(root, warm_multiplier: float, n: int = 150, seed: int = 5) -> None:
    """Only the colour temperature matters (CTR x warm_multiplier for warm backgrounds); context neutral."""
    generate_scenario(root, n_creatives=n, n_days=90, seed=seed, image_size=128, scenario={
        "context": {
            "placement_effects": {p: NEUTRAL for p in ("feed", "stories", "reels", "search_display", "discover")},
            "audience_effects": {a: NEUTRAL for a in ("broad", "interest", "lookalike", "retargeting")},
            "objective_effects": {o: NEUTRAL for o in ("conversions", "traffic", "awareness")},
        },
        "effects": [{"attribute": "hue_family", "value": "warm", "metric": "ctr", "multiplier": warm_multiplier,
                     "accounts": []}],
        "quality": {"ctr_sigma": 0.1, "cvr_sigma": 0.1},
    })


def _items(root, creatives: pd.DataFrame) -> pd.DataFrame:
    items = creatives[["creative_id", "launch_date", "image_path"]].copy()
    items["sha256"] = [hashlib.sha256((root / p).read_bytes()).hexdigest() for p in items["image_path"]]
    return items


def _attribute(root, tmp_path, blocks=("visual",), sample=40, edits=(*LIGHT_EDITS, "hue_warm", "hue_cool"),
               return_case_base=False, config=None):
    creatives = pd.read_csv(root / "creatives.csv")
    daily = pd.read_csv(root / "daily_metrics.csv")
    encoders = {b: load_block(b, EncoderSettings(use_cache=False)) for b in blocks}
    cache = EmbeddingCache(tmp_path / "cache")
    read = lambda p: (root / p).read_bytes()
    tables = {b: encode_images(e, _items(root, creatives), read, cache).frame for b, e in encoders.items()}
    prelaunch = creatives[list(PRELAUNCH)].copy()
    case_base = build_case_base(prelaunch, build_outcomes(creatives, daily), tables, daily).frame
    ids = sample_creatives(case_base, sample)
    variants = plan_variants(image_items(prelaunch, ids), read, tables.get("layout"), edits)
    variant_tables = encode_variants(variants, encoders, cache)
    # As the asset does: the model learns what was known the day after the last metric date.
    tomorrow = pd.Timestamp(daily["date"].max()).date() + pd.Timedelta(days=1)
    result = attribute_edits(case_base, tables, prelaunch, variants.frame, variant_tables,
                             config or AttributionConfig(), EDIT_INFO, as_of=tomorrow)
    return (result, variants, case_base) if return_case_base else (result, variants)


def test_the_attribution_model_learns_only_outcomes_known_by_the_last_metric_date(tmp_path):
    """The case base gives every creative an available date (launch + maturity window), also to the last
    fortnight's creatives whose window is still open. The model learnt from those partial outcomes and
    said it was trained through a date after the data ended (2026-04-13 for metrics ending 2026-03-30)."""
    root = tmp_path / "export"
    _scenario(root, 1.6, n=80)
    result, _, case_base = _attribute(root, tmp_path, sample=10, edits=("hue_warm",), return_case_base=True)
    last = pd.Timestamp(pd.read_csv(root / "daily_metrics.csv")["date"].max()).date()
    available = pd.to_datetime(case_base["available_date"]).dt.date
    known = int(((available <= last) & (case_base["outcome_impressions"].fillna(0) > 0)).sum())
    still_open = int((available > last).sum())
    assert still_open > 0  # the scenario has creatives inside their maturity window
    assert set(result.effects["trained_through"]) == {str(last)}
    # every known outcome but an account's first (the normalised target needs a trailing account level)
    rows = set(result.effects["model_rows"])
    assert len(rows) == 1 and known - case_base["account_id"].nunique() <= rows.pop() <= known
    assert any(f"{still_open} creatives still inside their maturity window" in n for n in result.notes)


@pytest.mark.parametrize("multiplier", [1.6, 0.6], ids=["warm-helps", "warm-hurts (held-out sign)"])
def test_attribution_recovers_the_planted_colour_effect_and_claims_nothing_else(tmp_path, multiplier):
    root = tmp_path / "export"
    _scenario(root, multiplier)
    result, _ = _attribute(root, tmp_path)
    effects = result.effects.set_index(["edit", "kpi"])
    assert not problems_element_attribution(result.effects)
    warm = effects.loc[("hue_warm", "ctr")]
    assert warm["direction"] == ("up" if multiplier > 1 else "down"), warm["statement"]
    assert warm["reached_share"] >= 0.7  # the edit made the detected colour warm
    assert warm["n"] >= 10
    # Nothing was planted on light or contrast, and nothing on CVR.
    for edit in LIGHT_EDITS:
        assert effects.loc[(edit, "ctr"), "direction"] == "none", effects.loc[(edit, "ctr"), "statement"]
    assert (effects.xs("cvr", level="kpi")["direction"] == "none").all(), result.effects.to_string()
    assert warm["statement"].startswith("Background colour made warm (orange): ")
    assert "% predicted CTR (95 % CI" in warm["statement"]
    assert warm["support"] >= AttributionConfig().min_support  # plenty of warm backgrounds to learn from
    # Pooled, the cool edit mixes warm originals (which lose the planted effect) with neutral ones (nothing
    # planted between neutral and cool); broken down by the original's hue family, the warm ones carry it.
    parts = {p["origin"]: p for p in json.loads(effects.loc[("hue_cool", "ctr"), "by_origin"])}
    assert (parts["warm"]["ci_high"] < 0) if multiplier > 1 else (parts["warm"]["ci_low"] > 0), parts
    assert abs(parts["neutral"]["effect"]) < abs(parts["warm"]["effect"]) / 2, parts
    assert sum(p["n"] for p in parts.values()) <= effects.loc[("hue_cool", "ctr"), "n"]
    # ... and the sentence a marketer reads says so, after the pooled effect
    warm_part = parts["warm"]["effect"] * 100
    assert f"from a warm background {warm_part:+.0f} % (n = {parts['warm']['n']})" in \
        effects.loc[("hue_cool", "ctr"), "statement"]
    assert pd.isna(effects.loc[("brighter", "ctr"), "by_origin"])  # nothing to break a brightness edit down by
    assert effects["support"].xs("ctr", level="kpi").loc[list(LIGHT_EDITS)].isna().all()  # no category set


def test_an_edit_whose_result_few_training_creatives_resemble_is_not_tested(tmp_path):
    """On v1, 3 of the 122 training creatives had no text on the image: an edit whose images end up like that
    asks the model to extrapolate from three cases. Here the warm edit, called with the default support, is
    asked for more warm creatives than the account has: reported, not tested, and said so."""
    root = tmp_path / "export"
    _scenario(root, 1.6, n=100)
    result, _ = _attribute(root, tmp_path, sample=30, edits=("hue_warm", "brighter"),
                           config=AttributionConfig(min_support=10_000))
    warm = result.effects.set_index(["edit", "kpi"]).loc[("hue_warm", "ctr")]
    truth = json.loads((root / "ground_truth.json").read_text())["creatives"]
    warm_creatives = sum(c["attributes"]["hue_family"] == "warm" for c in truth.values())
    assert 10 <= warm["support"] <= min(warm_creatives + 3, warm["model_rows"])  # detected warm among those learnt from
    assert warm["direction"] == "none" and not warm["significant"]
    assert (f"; only {int(warm['support'])} of the {warm['model_rows']} creatives the model learnt from have a warm "
            "background: an extrapolation, not tested") in warm["statement"]
    assert warm["effect"] > 0.1  # the estimate itself is still reported


@pytest.mark.slow
def test_edits_remove_what_the_detectors_see(tmp_path):
    """Text, CTA and face removal, hue shifts and light edits, measured by the layout and visual blocks."""
    root = tmp_path / "export"
    generate_scenario(root, n_creatives=10, n_days=20, seed=3, image_size=256)
    creatives = pd.read_csv(root / "creatives.csv")
    layout, visual = (load_block(b, EncoderSettings(use_cache=False)) for b in ("layout", "visual"))
    images = [decode_image((root / p).read_bytes()) for p in creatives["image_path"]]
    before = pd.DataFrame(layout.encode(images).attributes)
    colours = pd.DataFrame(visual.encode(images).attributes)
    namer = ColorNamer()
    outcome = {}
    for edit in ("remove_text", "remove_cta", "remove_face", "hue_warm", "hue_cool", "brighter"):
        done = [(i, apply_edit(edit, im, Detected.from_layout_row(before.iloc[i].to_dict()), namer))
                for i, im in enumerate(images)]
        done = [(i, out) for i, out in done if out is not None]
        assert done, f"{edit} applied to no creative"
        idx = [i for i, _ in done]
        after_layout = pd.DataFrame(layout.encode([out for _, out in done]).attributes)
        after_visual = pd.DataFrame(visual.encode([out for _, out in done]).attributes)
        outcome[edit] = (before.iloc[idx].reset_index(drop=True), after_layout, colours.iloc[idx].reset_index(drop=True),
                         after_visual)
    b, a, _, _ = outcome["remove_text"]
    assert a["text_area_ratio"].mean() < 0.3 * b["text_area_ratio"].mean()
    b, a, _, _ = outcome["remove_cta"]
    assert b["cta_detected"].all() and a["cta_detected"].mean() <= 0.2
    b, a, _, _ = outcome["remove_face"]
    assert b["face_present"].all() and not a["face_present"].any()
    for edit, family in (("hue_warm", "warm"), ("hue_cool", "cool")):
        _, _, cb, ca = outcome[edit]
        assert (cb["background_hue_family"] != family).mean() >= 0.5  # it applied to other families ...
        assert (ca["background_hue_family"] == family).mean() >= 0.7  # ... and moved them there
    _, _, cb, ca = outcome["brighter"]
    assert (ca["brightness"] > cb["brightness"]).all()
    # Edits that cannot apply say so instead of returning the image unchanged.
    assert apply_edit("remove_face", images[0], Detected(), namer) is None
    assert apply_edit("remove_text", images[0], Detected(), namer) is None
    with pytest.raises(ValueError, match="unknown edit"):
        apply_edit("make_it_pop", images[0])


def test_unreadable_images_and_a_block_that_cannot_encode_the_edits(tmp_path):
    root = tmp_path / "export"
    _scenario(root, 1.6, n=60, seed=2)
    creatives = pd.read_csv(root / "creatives.csv")
    bad = creatives["image_path"].iloc[0]
    (root / bad).write_bytes(b"not an image")
    prelaunch = creatives[list(PRELAUNCH)].copy()
    visual = load_block("visual", EncoderSettings(use_cache=False))
    variants = plan_variants(image_items(prelaunch, creatives["creative_id"].iloc[:3].tolist()),
                             lambda p: (root / p).read_bytes(), None, ("brighter", "hue_warm"))
    encoded = encode_variants(variants, {"visual": visual})
    first = str(creatives["creative_id"].iloc[0])
    assert first in variants.skipped and "unreadable" in variants.skipped[first]
    assert not variants.frame.empty and first not in set(variants.frame["creative_id"])
    assert set(variants.frame["edit"]) <= {"brighter", "hue_warm"}
    assert variants.made == len(variants.frame) == len(encoded["visual"])

    # A block with vectors for the originals but no encoder for the edits (CLIP offline) leaves the model,
    # with a note, instead of comparing an original with the block against an edit without it.
    daily = pd.read_csv(root / "daily_metrics.csv")
    good = creatives.iloc[1:]
    tables = {"visual": encode_images(visual, _items(root, good), lambda p: (root / p).read_bytes()).frame}
    fake_clip = tables["visual"][["creative_id", "sha256", "launch_date", "vector"]].copy()
    tables["clip"] = fake_clip
    case_base = build_case_base(prelaunch, build_outcomes(creatives, daily), tables, daily).frame
    ids = sample_creatives(case_base, 10)
    variants = plan_variants(image_items(prelaunch, ids), lambda p: (root / p).read_bytes(), None, ("brighter",))
    variant_tables = encode_variants(variants, {"visual": visual})
    result = attribute_edits(case_base, tables, prelaunch, variants.frame, variant_tables,
                             AttributionConfig(n_models=3), EDIT_INFO)
    assert any("clip" in note and "left out" in note for note in result.notes), result.notes
    assert (result.effects["blocks"] == "visual").all()
    assert len(result.effects) == 2 and (result.effects["n"] > 0).all()

    # No edit at all: an empty table with the reason, not an error.
    empty = attribute_edits(case_base, tables, prelaunch, variants.frame.iloc[:0], {}, AttributionConfig(), EDIT_INFO)
    assert empty.effects.empty and empty.notes


def test_every_edit_is_named_and_described():
    assert len(EDIT_NAMES) == len(set(EDIT_NAMES)) >= 10
    for name, edit in EDITS.items():
        assert edit.label and edit.element, name
    row = {"text_boxes": json.dumps([{"text": "Sale", "conf": 0.9, "x": 1, "y": 2, "w": 30, "h": 10}]),
           "cta_box": "", "face_box": pd.NA}
    detected = Detected.from_layout_row(row)
    assert detected.text_boxes == [(1.0, 2.0, 30.0, 10.0)] and detected.cta_box is None and detected.face_box is None
    # Damaged layout cells (not JSON, wrong shape) mean "nothing detected", never an error.
    assert Detected.from_layout_row({"text_boxes": "{oops", "cta_box": "[1, 2]", "face_box": '{"x": 1}'}) == Detected()
    image = np.full((64, 64, 3), 200, np.uint8)
    assert apply_edit("remove_text", image, detected) is not None


def test_the_sample_stays_when_new_creatives_mature():
    ids = [f"c{i:03d}" for i in range(300)]
    case_base = pd.DataFrame({"creative_id": ids, "outcome_score": np.linspace(-1, 1, 300)})
    before = sample_creatives(case_base, 30)
    assert len(before) == 30 and before != ids[:30]  # a random draw, not the first ids
    # One more day: five creatives matured. The old sample keeps at least 25 of its creatives (a new one can
    # only take the place of one drawn before), so most edited images come from the embedding cache.
    grown = pd.concat([case_base, pd.DataFrame({"creative_id": [f"n{i}" for i in range(5)], "outcome_score": 0.0})])
    after = sample_creatives(grown, 30)
    assert len(after) == 30 and len(set(before) & set(after)) >= 25
    # Unlabelled creatives are never drawn; another seed draws another sample.
    unlabelled = case_base.assign(outcome_score=np.where(np.arange(300) % 2 == 0, np.nan, 1.0))
    assert all(int(c[1:]) % 2 == 1 for c in sample_creatives(unlabelled, 30))
    assert sample_creatives(case_base, 30, seed=1) != before


def test_only_creatives_with_every_image_vector_are_drawn():
    """As read back from DuckDB: a quarantined image has no row in an image block, a failed encode a NULL
    vector (pd.NA); the text block (the ad copy) does not decide, and neither does a block with no vectors."""
    case_base = pd.DataFrame({"creative_id": ["a", "b", "c", "d", "e"], "outcome_score": 1.0})
    vec = [0.1, 0.2]
    tables = {
        "cnn": pd.DataFrame({"creative_id": ["a", "b", "c", "d"], "vector": [vec, vec, pd.NA, vec]}),
        "layout": pd.DataFrame({"creative_id": ["a", "b", "c", "e"], "vector": [vec, vec, vec, vec]}),
        "text": pd.DataFrame({"creative_id": ["a", "b"], "vector": [vec, vec]}),
    }
    assert editable_cases(case_base, tables)["creative_id"].tolist() == ["a", "b"]
    assert sample_creatives(editable_cases(case_base, tables), 30) == ["a", "b"]
    assert editable_cases(case_base, {"text": tables["text"]})["creative_id"].tolist() == list("abcde")


def test_holm_keeps_a_strong_effect_and_drops_a_borderline_one_among_many():
    from creative_dag.attribution.effects import holm_significant

    # One clear effect among 26 tested; a p = 0.03 that a per-effect 95 % interval would call is chance here.
    p = np.array([1e-6, 0.03, *np.linspace(0.2, 0.9, 23), np.nan])
    called = holm_significant(p, 0.05)
    assert called.tolist() == [True] + [False] * 25
    # Alone, the same p = 0.03 is significant.
    assert holm_significant(np.array([0.03]), 0.05).tolist() == [True]


def _visual_only_export(tmp_path, n: int, seed: int):
    """A small generated export: (image items of every creative, bytes reader, {"visual": encoder})."""
    root = tmp_path / "export"
    generate_scenario(root, n_creatives=n, n_days=20, seed=seed, image_size=128)
    creatives = pd.read_csv(root / "creatives.csv")
    items = image_items(creatives, creatives["creative_id"].astype(str).tolist())
    return items, lambda p: (root / p).read_bytes(), {"visual": load_block("visual", EncoderSettings(use_cache=False))}


def test_a_daily_rerun_takes_cached_edits_without_editing_or_loading_a_model(tmp_path):
    from creative_dag.attribution.variants import VariantIndex, cached_in_every_block
    from creative_dag.resources.models import RecordedEncoder

    # The visual block alone (no OCR model to load): the reuse does not depend on which blocks there are.
    items, read, encoders = _visual_only_export(tmp_path, n=8, seed=4)
    cache = EmbeddingCache(tmp_path / "cache")
    layout = None  # no detected boxes: the edits that need none (hue, light, contrast, crop)
    cached = lambda shas: cached_in_every_block(cache, encoders, shas)

    index = VariantIndex.open(tmp_path / "variants.json")
    first = plan_variants(items, read, layout, EDIT_NAMES, index=index, cached=cached)
    first_tables = encode_variants(first, encoders, cache)
    index.save()
    assert first.made == len(first.frame) > 8

    # The next day: every edit is in the index and every vector in the cache -> nothing edited, and stand-ins
    # that only know the recorded model versions give the same vectors.
    again_index = VariantIndex.open(tmp_path / "variants.json")
    again = plan_variants(items, read, layout, EDIT_NAMES, index=again_index, cached=cached)
    assert not again.pending and again.to_make == 0
    pd.testing.assert_frame_equal(again.frame, first.frame)
    stand_ins = {b: RecordedEncoder(b, e.model_id, e.model_version, e.dim) for b, e in encoders.items()}
    again_tables = encode_variants(again, stand_ins, cache)
    for block in encoders:
        np.testing.assert_array_equal(np.stack(again_tables[block]["vector"]), np.stack(first_tables[block]["vector"]))

    # A vector missing from the cache (another model version) or changed edit code: those edits are made again.
    other_model = {"visual": RecordedEncoder("visual", "visual", "another-version", 8)}
    remade = plan_variants(items, read, layout, EDIT_NAMES, index=VariantIndex.open(tmp_path / "variants.json"),
                           cached=lambda shas: cached_in_every_block(cache, other_model, shas))
    assert remade.to_make == len(first.frame)
    new_code = VariantIndex.open(tmp_path / "variants.json")
    new_code.salt = "edits changed"
    redone = plan_variants(items, read, layout, EDIT_NAMES, index=new_code, cached=cached)
    encode_variants(redone, encoders, cache)
    assert redone.made == len(first.frame)
    with pytest.raises(RuntimeError, match="not loaded"):
        stand_ins["visual"].encode([])


def test_a_clip_text_probe_along_a_planted_element_moves_the_forecast_and_one_along_nothing_does_not(scenario):  # noqa: F811
    """CLIP text probes, with the direction known: the scenario's test-only CLIP block carries each planted
    attribute as one coordinate, so the probe "a face" is that coordinate (faces: CTR x 1.5 planted) and the
    probe "another product" moves between two products (nothing planted). Only the CLIP block goes in the model
    (the test-only visual block restates the same attributes and would share the face's weight)."""
    from test_cbr_scenario import ATTRIBUTES

    creatives, truth = scenario["creatives"], scenario["truth"]
    tokens = sorted({f"{a}={truth['creatives'][c]['attributes'].get(a)}" for c in creatives["creative_id"]
                     for a in ATTRIBUTES})
    dim = len(scenario["blocks"]["clip"]["vector"].iloc[0])

    def direction(plus: str, minus: str) -> np.ndarray:
        d = np.zeros(dim)
        d[dim - len(tokens) + tokens.index(plus)], d[dim - len(tokens) + tokens.index(minus)] = 1.0, -1.0
        return d / np.linalg.norm(d)

    products = [t for t in tokens if t.startswith("product=")]
    probes = {"a face": direction("has_face=True", "has_face=False"),
              "another product": direction(products[0], products[1])}
    case_base = scenario["build"].frame
    ids = sample_creatives(case_base, 60)
    both = probe_variants(scenario["blocks"], ids, probes, strength=0.25)[1]
    assert set(both) == {"clip", "visual"}  # every block of the original, the CLIP one moved
    tables = {"clip": scenario["blocks"]["clip"]}
    frame, probe_tables = probe_variants(tables, ids, probes, strength=0.25)
    assert len(frame) == 2 * 60
    moved = probe_tables["clip"].set_index("creative_id")["vector"]
    original = tables["clip"].set_index("creative_id")["vector"]
    first = frame.iloc[0]
    cos = [float(np.dot(v, probes["a face"]) / np.linalg.norm(v))
           for v in (original[first["creative_id"]], np.asarray(moved[first["variant_id"]]))]
    assert cos[1] > cos[0] and np.isclose(np.linalg.norm(moved[first["variant_id"]]), 1.0)

    config = AttributionConfig(kpis=("ctr",), n_models=10)
    result = attribute_edits(case_base, tables, scenario["prelaunch"], frame, probe_tables, config,
                             probe_info(list(probes)))
    effects = result.effects.set_index("edit")
    print(effects[["effect", "ci_low", "ci_high", "direction", "statement"]].to_string())
    assert effects.loc["probe: a face", "direction"] == "up"
    assert effects.loc["probe: a face", "element"] == "clip text probe"
    assert "toward 'a face' (CLIP)" in effects.loc["probe: a face", "statement"]
    assert effects.loc["probe: another product", "direction"] == "none"
    # A probe's direction is what its text adds to a neutral prompt's: the part every CLIP text embedding
    # shares (the gap between CLIP's text and image cones) cancels.
    gap = np.full(4, 3.0)
    directions = probe_directions(np.array([gap + [1, 0, 0, 0], gap + [0, 2, 0, 0]]), gap)
    np.testing.assert_allclose(directions, [[1, 0, 0, 0], [0, 1, 0, 0]])
    # No CLIP vectors (block unavailable): no probe variants, nothing to attribute.
    assert probe_variants({"visual": scenario["blocks"]["visual"]}, ids, probes)[0].empty


def test_the_asset_runs_text_probes_with_clip_and_says_why_not_without(scenario):  # noqa: F811
    from creative_dag.assets.attribution import text_probes, with_probes
    from creative_dag.encoders.base import ModelUnavailable

    dim = len(scenario["blocks"]["clip"]["vector"].iloc[0])

    class LoadedClip:  # what a loaded ClipEncoder offers the asset
        def __init__(self, tokenizer=True):
            self.tokenizer = tokenizer

        def encode_text(self, texts):
            if not self.tokenizer:
                raise ModelUnavailable("CLIP model 'x' has no tokenizer")
            vectors = np.random.default_rng(len(texts)).normal(size=(len(texts), dim))
            return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    tables, ids = scenario["blocks"], sample_creatives(scenario["build"].frame, 5)
    config = AttributionConfig(probes=("a face", "a red background"))
    edited = {b: t.head(3).assign(creative_id=[f"v{i}" for i in range(3)]) for b, t in tables.items()}
    frame, probe_tables, note = text_probes(config, tables, ids, edited, {"clip": LoadedClip()}, None)
    assert note is None and len(frame) == 10 and set(frame["edit"]) == {"probe: a face", "probe: a red background"}
    merged = with_probes(edited, probe_tables)
    assert {b: len(t) for b, t in merged.items()} == {"clip": 13, "visual": 13}
    # Each reason a user needs when no probe ran.
    assert text_probes(AttributionConfig(probes=()), tables, ids, edited, {}, None)[2] is None
    assert "no vectors" in text_probes(config, {"visual": tables["visual"]}, ids, {}, {}, None)[2]
    assert "not re-encoded" in text_probes(config, tables, ids, {"visual": edited["visual"]}, {}, None)[2]
    frame, _, note = text_probes(config, tables, ids, edited, {"clip": LoadedClip(tokenizer=False)}, None)
    assert frame.empty and "no tokenizer" in note


def test_an_edit_handed_over_in_memory_encodes_as_its_lossless_file_would(tmp_path):
    """Edited images go to the encoders as arrays, not as PNG files written and decoded again: every
    block must see the same pixels, bit for bit (a tall image, so the CNN's centre crop and both resizes
    are exercised), and so give the same vectors (to float32 rounding: OpenCV's SIMD paths can round the
    last bit differently with the array's memory alignment)."""
    import cv2

    rng = np.random.default_rng(3)
    image = np.full((1200, 700, 3), 230, np.uint8)
    cv2.rectangle(image, (80, 150), (620, 700), (200, 40, 30), -1)
    cv2.putText(image, "SALE 50%", (90, 900), cv2.FONT_HERSHEY_SIMPLEX, 3, (20, 20, 20), 6)
    image = np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)
    edited = apply_edit("hue_cool", image, Detected(), ColorNamer())
    assert edited is not None
    png = cv2.imencode(".png", cv2.cvtColor(edited, cv2.COLOR_RGB2BGR))[1].tobytes()
    items = pd.DataFrame({"creative_id": ["c1~hue_cool"], "sha256": [pixels_sha256(edited)],
                          "launch_date": ["2026-01-01"], "image_path": ["c1~hue_cool"]})
    for block in ("visual", "cnn"):
        encoder = load_block(block, EncoderSettings(use_cache=False))
        kwargs = {"shorter_side": getattr(encoder, "decode_shorter_side", None),
                  "longer_side": getattr(encoder, "decode_longer_side", None)}
        np.testing.assert_array_equal(fit_decoded(edited, **kwargs), decode_image(png, **kwargs), err_msg=block)
        from_file = encode_images(encoder, items, lambda _: png, verify_sha256=False).frame
        in_memory = encode_images(encoder, items, lambda p: pytest.fail(f"read {p}"),
                                  decoded={"c1~hue_cool": edited}).frame
        np.testing.assert_allclose(np.stack(in_memory["vector"]), np.stack(from_file["vector"]), rtol=1e-6,
                                   atol=1e-7, err_msg=block)
    # The key is the pixels: one changed pixel is another image.
    other = edited.copy()
    other[0, 0, 0] ^= 1
    assert pixels_sha256(other) != pixels_sha256(edited) == pixels_sha256(edited.copy())


def test_edits_made_a_few_creatives_at_a_time_equal_edits_made_at_once(tmp_path):
    items, read, encoders = _visual_only_export(tmp_path, n=7, seed=6)
    runs = []
    for chunk in (1, 3, 100):
        variants = plan_variants(items, read, None, ("brighter", "hue_cool", "crop_to_subject"))
        runs.append((variants, encode_variants(variants, encoders, chunk_creatives=chunk)))
    (one, one_tables), *others = runs
    assert one.made == len(one.frame) >= 14
    for variants, tables in others:
        pd.testing.assert_frame_equal(variants.frame, one.frame)
        pd.testing.assert_frame_equal(tables["visual"], one_tables["visual"])
