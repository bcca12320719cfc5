"""The `visual` block: interpretable OpenCV features respond to images with a known answer."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw
from skimage import data

from creative_dag.encoders.colors import COLOR_FAMILIES, ColorNamer, name_rgb
from creative_dag.encoders.visual import VISUAL_SCALES, VisualFeatureExtractor
from creative_dag.synth import vocab


@pytest.fixture(scope="module")
def extractor() -> VisualFeatureExtractor:
    return VisualFeatureExtractor(working_size=256)


def _flat(rgb: tuple[int, int, int], size: int = 200) -> np.ndarray:
    return np.full((size, size, 3), rgb, dtype=np.uint8)


def _checkerboard(size: int = 256, square: int = 8) -> np.ndarray:
    board = ((np.indices((size, size)).sum(axis=0) // square) % 2 * 255).astype(np.uint8)
    return np.repeat(board[..., None], 3, axis=2)


def _ad(background: tuple[int, int, int], seed: int, size: int = 320) -> np.ndarray:
    """A hand-drawn ad: jittered vertical-gradient background, a real photo in the middle, a white headline."""
    rng = np.random.default_rng(seed)
    base = np.clip(np.array(background) + rng.integers(-12, 13, 3), 0, 255)
    ramp = np.linspace(-18, 18, size)[:, None, None]
    canvas = np.clip(base[None, None, :] + ramp + rng.normal(0, 3, (size, size, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(canvas)
    photo = Image.fromarray([data.astronaut(), data.coffee(), data.chelsea()][seed % 3]).resize((size // 2, size // 2))
    image.paste(photo, (size // 4, size // 4))
    ImageDraw.Draw(image).text((size // 10, size // 20), "Summer Sale", fill=(255, 255, 255))
    return np.asarray(image)


# ------------------------------------------------------------------ colour vocabulary
def test_reference_hues_of_the_generator_get_their_own_name_and_family() -> None:
    for name, (family, rgb) in vocab.HUES.items():
        assert name_rgb(rgb) == name, f"{name} {rgb} was named {name_rgb(rgb)}"
        assert COLOR_FAMILIES[name_rgb(rgb)] == family


def test_pixel_naming_lut_agrees_with_the_scalar_rule() -> None:
    namer = ColorNamer()
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (500, 1, 3), dtype=np.uint8)
    from creative_dag.encoders.colors import COLOR_NAMES

    lut_names = [COLOR_NAMES[i] for i in namer.name_indices(pixels).ravel()]
    scalar_names = [name_rgb(p) for p in pixels[:, 0, :]]
    # The LUT quantises S and V to 64 levels: only colours right on a rule boundary may differ.
    assert np.mean([a == b for a, b in zip(lut_names, scalar_names)]) > 0.97


# ------------------------------------------------------------------ tone and texture
def test_flat_image_has_no_edges_full_negative_space_and_perfect_symmetry(extractor) -> None:
    row = extractor.transform([_flat((40, 90, 200))]).iloc[0]
    assert row["edge_density"] == 0.0
    assert row["contrast"] == pytest.approx(0.0, abs=1e-9)
    assert row["negative_space_ratio"] == pytest.approx(1.0)
    assert row["symmetry"] == pytest.approx(1.0)
    assert row["dominant_color_name"] == "blue" and row["dominant_hue_family"] == "cool"
    assert row["dominant_color_share"] == pytest.approx(1.0)
    assert row["cool_share"] == pytest.approx(1.0)
    assert row["background_color_name"] == "blue" and row["background_uniformity"] == pytest.approx(1.0)


def test_checkerboard_is_edgy_textured_and_sharp(extractor) -> None:
    board, flat = extractor.transform([_checkerboard(), _flat((128, 128, 128))]).to_dict("records")
    assert board["edge_density"] > 0.15
    assert board["negative_space_ratio"] == 0.0
    assert board["sharpness"] > flat["sharpness"] + 3
    assert board["texture_entropy"] > 1.0 and flat["texture_entropy"] == 0.0
    assert board["contrast"] == pytest.approx(0.5, abs=0.01)
    assert board["neutral_share"] == pytest.approx(1.0)


def test_brightness_saturation_and_colourfulness_order(extractor) -> None:
    frame = extractor.transform([_flat((0, 0, 0)), _flat((128, 128, 128)), _flat((255, 255, 255)),
                                 _flat((230, 30, 30))])
    assert list(frame["brightness"][:3].round(2)) == [0.0, 0.5, 1.0]
    assert frame["saturation"][:3].max() == 0.0 and frame["saturation"][3] > 0.8
    assert frame["colorfulness"][:3].max() == pytest.approx(0.0, abs=1e-6) and frame["colorfulness"][3] > 60
    assert list(frame["dominant_color_name"]) == ["black", "grey", "white", "red"]
    assert list(frame["dominant_hue_family"]) == ["neutral", "neutral", "neutral", "warm"]


def test_symmetry_of_a_mirrored_photo_is_one_and_a_photo_is_less(extractor) -> None:
    photo = data.astronaut()
    half = photo[:, :256]
    mirrored = np.concatenate([half, half[:, ::-1]], axis=1)
    sym_mirror, sym_photo = extractor.transform([mirrored, photo])["symmetry"]
    assert sym_mirror > 0.995
    assert sym_photo < sym_mirror - 0.1


def test_visual_mass_and_saliency_follow_an_off_centre_object(extractor) -> None:
    on_thirds = np.zeros((300, 300, 3), dtype=np.uint8)
    on_thirds[70:130, 70:130] = (255, 220, 0)  # one bright object centred on the top-left thirds point
    centred = np.zeros((300, 300, 3), dtype=np.uint8)
    centred[120:180, 120:180] = (255, 220, 0)
    row, middle = extractor.transform([on_thirds, centred]).to_dict("records")
    assert row["visual_mass_x"] == pytest.approx(1 / 3, abs=0.03)
    assert row["visual_mass_y"] == pytest.approx(1 / 3, abs=0.03)
    assert row["saliency_x"] < 0.45 and row["saliency_y"] < 0.45
    assert 0.0 < row["salient_area_ratio"] < 0.3
    assert row["thirds_distance"] < 0.1
    assert middle["thirds_distance"] == pytest.approx(0.5, abs=0.05)  # the centre is half-way to a corner's reach
    assert middle["saliency_x"] == pytest.approx(0.5, abs=0.05)
    assert row["background_hue_family"] == "neutral"  # black border, yellow object


# ------------------------------------------------------------------ background hue family
def test_border_hue_family_of_hand_drawn_ads_matches_every_reference_hue(extractor) -> None:
    images, families = [], []
    for seed, (family, rgb) in enumerate(vocab.HUES.values()):
        images.append(_ad(rgb, seed))
        families.append(family)
    frame = extractor.transform(images)
    assert list(frame["background_hue_family"]) == families
    assert list(frame["background_color_name"]) == list(vocab.HUES)


# ------------------------------------------------------------------ vectors
def test_vectors_are_unit_length_and_near_duplicates_are_closer_than_unrelated(extractor) -> None:
    base = [_ad(vocab.HUES[name][1], seed) for seed, name in enumerate(["red", "blue", "beige", "green"])]
    variants = [np.clip(img.astype(np.int16) + 8, 0, 255).astype(np.uint8)[4:-4, 4:-4] for img in base]
    frame = extractor.transform(base + variants)
    vectors = extractor.vectorize(frame)
    assert vectors.shape == (8, len(VISUAL_SCALES)) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similarity = vectors @ vectors.T
    for i in range(4):
        duplicate = similarity[i, 4 + i]
        unrelated = max(similarity[i, j] for j in range(4) if j != i)
        assert duplicate > 0.95 and duplicate > unrelated + 0.1, (i, duplicate, unrelated)


def test_vectorize_uses_fixed_scales_not_batch_statistics(extractor) -> None:
    frame = extractor.transform([_ad((212, 48, 48), 0), _ad((36, 96, 212), 1), _checkerboard()])
    alone = extractor.vectorize(frame.iloc[[0]])
    together = extractor.vectorize(frame)
    assert np.allclose(alone[0], together[0])


def test_vectorize_rejects_a_frame_without_the_feature_columns(extractor) -> None:
    with pytest.raises(ValueError, match="brightness"):
        extractor.vectorize(pd.DataFrame({"creative_id": ["cr_1"]}))


# ------------------------------------------------------------------ contract and bad input
def test_one_row_per_image_in_order_with_documented_columns(extractor) -> None:
    images = [_flat((10, 10, 10), 64), data.coffee(), _flat((250, 250, 250), 64)]
    frame = extractor.transform(images)
    assert list(frame.columns) == VisualFeatureExtractor.output_columns()
    assert len(frame) == 3
    assert list(frame["dominant_color_name"].iloc[[0, 2]]) == ["black", "white"]
    assert (frame["image_width"] == [64, 600, 64]).all()
    palette = json.loads(frame["palette"][1])
    assert 1 <= len(palette) <= 5 and abs(sum(p["share"] for p in palette) - 1) < 0.01
    assert frame["warm_share"].add(frame["cool_share"]).add(frame["neutral_share"]).round(6).eq(1).all()
    assert extractor.transform([]).columns.tolist() == VisualFeatureExtractor.output_columns()


def test_features_are_deterministic(extractor) -> None:
    first = extractor.transform([data.chelsea(), data.astronaut()])
    second = extractor.transform([data.chelsea(), data.astronaut()])
    pd.testing.assert_frame_equal(first, second)


def test_gray_and_rgba_inputs_are_accepted(extractor) -> None:
    gray = data.camera()
    rgba = np.dstack([data.coffee(), np.full(data.coffee().shape[:2], 255, np.uint8)])
    frame = extractor.transform([gray, rgba])
    assert frame["saturation"][0] == 0.0 and frame["saturation"][1] > 0.2


def test_bad_images_raise_errors_that_name_the_creative(extractor) -> None:
    with pytest.raises(ValueError, match="cr_000007.*uint8"):
        extractor.transform([np.zeros((10, 10, 3), dtype=np.float32)], ids=["cr_000007"])
    with pytest.raises(ValueError, match="image #1.*shape"):
        extractor.transform([_flat((1, 2, 3), 8), np.zeros((5,), dtype=np.uint8)])
    with pytest.raises(ValueError, match="working_size"):
        VisualFeatureExtractor(working_size=4)


def test_working_size_makes_features_resolution_independent(extractor) -> None:
    small = _ad((240, 128, 36), 3, size=320)
    large = np.asarray(Image.fromarray(small).resize((1024, 1024), Image.BICUBIC))
    a, b = extractor.transform([small, large]).to_dict("records")
    for column in ("brightness", "saturation", "warm_share", "negative_space_ratio", "symmetry"):
        assert a[column] == pytest.approx(b[column], abs=0.06), column
    assert a["background_hue_family"] == b["background_hue_family"] == "warm"


# ------------------------------------------------------------------ generated creatives (ground truth)
@pytest.fixture(scope="module")
def generated(tmp_path_factory, extractor) -> tuple[pd.DataFrame, dict]:
    """Features of 60 generated 256 px creatives and their ground truth (by creative id, same order)."""
    from PIL import ImageOps

    from creative_dag.synth import generate_scenario

    landing = tmp_path_factory.mktemp("landing_visual")
    generate_scenario(landing, n_creatives=60, n_days=10, seed=3, image_size=256)
    truth = json.loads((landing / "ground_truth.json").read_text())
    creatives = pd.read_csv(landing / "creatives.csv")
    images = [np.asarray(ImageOps.exif_transpose(Image.open(landing / p)).convert("RGB"))
              for p in creatives["image_path"]]
    ids = list(creatives["creative_id"])
    return extractor.transform(images, ids=ids), {cid: truth["creatives"][cid] for cid in ids}


def test_border_hue_family_matches_the_planted_hue_family(generated) -> None:
    frame, truth = generated
    planted = [t["attributes"]["hue_family"] for t in truth.values()]
    styles = [t["attributes"]["background_style"] for t in truth.values()]
    hit = frame["background_hue_family"].to_numpy() == np.array(planted)
    plain = np.array([s not in ("photo", "blurred_photo") for s in styles])
    # Measured (seed 3, 60 creatives): border family right on 35/35 drawn backgrounds and 19/25 photo
    # backgrounds (90 % overall); the misses are photos tinted by a hue that does not change their
    # look (coffee + 45 % black stays dark brown, a flower + white stays green). The dominant colour
    # (largest cluster of the whole image) is often the product or a text panel: 78 %.
    assert hit[plain].mean() >= 0.97, frame.loc[plain & ~hit, ["background_color_name", "background_hue_family"]]
    assert hit.mean() >= 0.85
    assert (frame["dominant_hue_family"].to_numpy() == np.array(planted)).mean() >= 0.7


def test_family_variants_are_closer_than_unrelated_creatives(extractor, generated) -> None:
    frame, truth = generated
    vectors = extractor.vectorize(frame)
    ids = list(truth)
    families = [t["family_id"] if isinstance(t["family_id"], str) else None for t in truth.values()]
    similarity = vectors @ vectors.T
    same, other = [], []
    for i in range(len(ids)):
        for j in range(i + 1, len(ids)):
            (same if families[i] and families[i] == families[j] else other).append(similarity[i, j])
    assert len(same) >= 3, "the fixture scenario should contain near-duplicate families"
    assert np.median(same) > np.percentile(other, 90), (np.median(same), np.percentile(other, 90))


def test_worker_processes_compute_the_same_rows_as_the_step_process() -> None:
    """A cold run computes the visual features on one worker process per core (visual_workers = 0); the
    rows must not depend on how many compute them, and a worker that dies must not lose a creative."""
    from test_layout import _encode_through_the_pipeline
    from test_worker_processes import _children, encode_then_kill_the_workers

    from creative_dag.encoders.pipeline import VisualBlockEncoder

    backgrounds = [(230, 90, 40), (40, 90, 200), (200, 200, 200), (250, 220, 60), (30, 140, 90), (120, 40, 160)]
    images = [_ad(bg, seed) for seed, bg in enumerate(backgrounds)] * 2  # 12 images: three batches of 4
    one = VisualBlockEncoder(working_size=256, workers=1)
    here, in_process = _encode_through_the_pipeline(one, images), one.encode(images)
    encoder = VisualBlockEncoder(working_size=256, workers=2)
    with encoder.parallel(len(images)):  # 12 images are too few to be worth starting workers
        assert encoder.reading_workers == 0
    pooled, after_kill = encode_then_kill_the_workers(encoder, images)
    pd.testing.assert_frame_equal(pooled.attributes, in_process.attributes, check_exact=True)
    np.testing.assert_array_equal(pooled.vectors, in_process.vectors)
    pd.testing.assert_frame_equal(after_kill.attributes, pooled.attributes, check_exact=True)
    pd.testing.assert_frame_equal(_encode_through_the_pipeline(encoder, images), here,  # the pipeline opens it
                                  check_exact=True)
    assert not _children()
