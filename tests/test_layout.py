"""The `layout` block: OCR text, CTA buttons and faces, with positions in original pixels.

Fast tests cover the availability contract and the pure-OpenCV parts (button test,
reading order, coverage classes). Tests marked slow load the real EasyOCR English
weights and read a handful of generated creatives whose ground truth is known.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw, ImageFont

from creative_dag.encoders.compiled import CompiledModels
from creative_dag.encoders.layout import (
    LAYOUT_SCALES,
    LayoutExtractor,
    TextBox,
    coverage_class,
    find_button,
    reading_order,
)


def _font(size: int) -> ImageFont.FreeTypeFont:
    import matplotlib

    return ImageFont.truetype(str(Path(matplotlib.__file__).parent / "mpl-data/fonts/ttf/DejaVuSans-Bold.ttf"), size)


def _button_image(fill: tuple[int, int, int] = (245, 124, 0), background: tuple[int, int, int] = (36, 96, 212),
                  label: str = "Shop Now") -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """A 540² image with a rounded button; returns it and the label's (x, y, w, h)."""
    image = Image.new("RGB", (540, 540), background)
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((180, 440, 360, 490), radius=10, fill=fill)
    font = _font(22)
    left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
    x, y = 270 - (right - left) / 2, 465 - (bottom - top) / 2
    draw.text((x - left, y - top), label, font=font, fill=(255, 255, 255))
    return np.asarray(image), (x, y, right - left, bottom - top)


# ------------------------------------------------------------------ availability (fast)
def test_empty_model_dir_reports_unavailable_with_a_reason(tmp_path: Path) -> None:
    extractor = LayoutExtractor(model_dir=str(tmp_path))
    assert extractor.available is False
    assert "craft_mlt_25k.pth" in extractor.unavailable_reason and str(tmp_path) in extractor.unavailable_reason
    assert extractor.model_version == "unavailable"
    with pytest.raises(RuntimeError, match="unavailable"):
        extractor.transform([np.zeros((64, 64, 3), dtype=np.uint8)])


def test_florence2_without_a_model_folder_is_unavailable_not_faked(tmp_path: Path) -> None:
    assert "model_dir" in LayoutExtractor(backend="florence2").unavailable_reason
    empty = LayoutExtractor(backend="florence2", model_dir=str(tmp_path))
    assert not empty.available and "config.json" in empty.unavailable_reason


def test_unknown_backend_is_unavailable() -> None:
    extractor = LayoutExtractor(backend="tesseract")
    assert not extractor.available and "tesseract" in extractor.unavailable_reason


def test_shipped_easyocr_weights_are_found_without_loading_them() -> None:
    extractor = LayoutExtractor()
    assert extractor.available, extractor.unavailable_reason
    assert extractor._ocr is None  # lazy: nothing loaded at construction
    assert extractor.model_id.startswith("easyocr-en")
    if not extractor.faces_available:
        assert "opencv" in extractor.faces_unavailable_reason.lower()
        assert extractor.model_id == "easyocr-en"


def test_missing_face_cascade_makes_faces_unknown_not_absent(tmp_path: Path) -> None:
    extractor = LayoutExtractor(face_cascade=str(tmp_path / "missing.xml"))
    assert extractor.available and not extractor.faces_available
    assert "missing.xml" in extractor.faces_unavailable_reason or "CascadeClassifier" in extractor.faces_unavailable_reason
    assert extractor.model_id == "easyocr-en"  # vectors without faces never share a cache key with face-aware ones
    row = extractor._faces(np.zeros((64, 64, 3), np.uint8), 1.0, 1.0, 64, 64)
    assert row["face_count"] is None and row["face_present"] is None and np.isnan(row["face_area_ratio"])


# ------------------------------------------------------------------ pure helpers (fast)
def test_button_is_found_around_button_text_and_not_around_plain_text() -> None:
    image, label_box = _button_image()
    button = find_button(image, label_box)
    assert button is not None
    x, y, w, h = button
    assert abs(x - 180) <= 3 and abs(y - 440) <= 3 and abs(w - 181) <= 4 and abs(h - 51) <= 4
    # The same words written straight on the background: no filled rectangle of their own.
    plain = Image.new("RGB", (540, 540), (36, 96, 212))
    draw = ImageDraw.Draw(plain)
    draw.text((200, 455), "Shop Now", font=_font(22), fill=(255, 255, 255))
    left, top, right, bottom = draw.textbbox((200, 455), "Shop Now", font=_font(22))
    assert find_button(np.asarray(plain), (left, top, right - left, bottom - top)) is None
    # A button the colour of the background is invisible: no button.
    same, box = _button_image(fill=(36, 96, 212))
    assert find_button(same, box) is None


def test_reading_order_is_lines_top_to_bottom_then_left_to_right() -> None:
    boxes = [TextBox("Now", 0.9, 300, 410, 80, 30), TextBox("Big", 0.9, 20, 105, 90, 60),
             TextBox("Shop", 0.9, 200, 412, 90, 28), TextBox("Sale", 0.9, 130, 100, 100, 62)]
    assert " ".join(b.text for b in reading_order(boxes)) == "Big Sale Shop Now"


def test_coverage_classes_use_the_documented_thresholds() -> None:
    assert coverage_class(0.0, False) == "none"
    assert coverage_class(0.0, True) == "light"  # text was read, however small
    assert coverage_class(0.05, True) == "light"
    assert coverage_class(0.12, True) == "medium"
    assert coverage_class(0.25, True) == "heavy"


def test_vectorize_treats_missing_positions_as_neutral_and_normalises() -> None:
    frame = pd.DataFrame([
        {c: np.nan for c in LAYOUT_SCALES} | {"text_present": False, "cta_detected": False, "face_present": None,
                                               "log_word_count": 0.0, "text_area_ratio": 0.0,
                                               "largest_text_height_ratio": 0.0, "face_area_ratio": 0.0},
        {c: LAYOUT_SCALES[c][0] for c in LAYOUT_SCALES} | {"text_present": True},
    ])
    vectors = LayoutExtractor(model_dir="/nonexistent").vectorize(frame)
    assert vectors.shape == (2, len(LAYOUT_SCALES)) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert np.isfinite(vectors).all()


# ------------------------------------------------------------------ real EasyOCR on generated creatives (slow)
def _words(text: str) -> list[str]:
    import re

    return [w for w in re.sub(r"[^a-z0-9$% ]", " ", text.lower()).split() if w]


@pytest.fixture(scope="module")
def chosen_creatives(tmp_path_factory) -> tuple[list[np.ndarray], list[dict]]:
    """Six generated 720 px creatives (faces, CTAs, headlines mixed) and their ground truth."""
    import torch
    from PIL import ImageOps

    from creative_dag.synth import generate_scenario

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    landing = tmp_path_factory.mktemp("landing_layout")
    generate_scenario(landing, n_creatives=24, n_days=7, seed=5, image_size=720,
                      scenario={"creative_mix": {"face_share": 0.6}})
    truth = json.loads((landing / "ground_truth.json").read_text())["creatives"]
    chosen, seen = [], set()
    for cid in sorted(truth):  # a deterministic handful covering face/no face x CTA/no CTA
        attrs = truth[cid]["attributes"]
        key = (attrs["has_face"], attrs["has_cta"])
        if attrs["text_coverage"] != "none" and (key not in seen or len(chosen) >= 4):
            chosen.append(truth[cid])
            seen.add(key)
        if len(chosen) == 6:
            break
    images = [np.asarray(ImageOps.exif_transpose(Image.open(landing / t["image_path"])).convert("RGB"))
              for t in chosen]
    return images, chosen


@pytest.fixture(scope="module")
def read_creatives(chosen_creatives) -> tuple[pd.DataFrame, list[dict], LayoutExtractor]:
    """The six creatives read once at working size 384 (the pipeline default)."""
    images, chosen = chosen_creatives
    extractor = LayoutExtractor(working_size=384)
    return extractor.transform(images), chosen, extractor


def test_rapidocr_backend_reads_headlines_and_buttons_with_its_shipped_weights(chosen_creatives) -> None:
    """The optional PP-OCRv4 backend (make bootstrap installs it) through the same layout path: every
    headline word, the planted buttons and their labels (bench/ocr.py measures it against EasyOCR)."""
    pytest.importorskip("rapidocr_onnxruntime", reason="optional backend: docs/operations.md installs it")
    images, truth = chosen_creatives
    extractor = LayoutExtractor(backend="rapidocr", working_size=384)
    assert extractor.available, extractor.unavailable_reason
    assert extractor.model_id.startswith("rapidocr-ppocrv4") and len(extractor.model_version) == 16
    frame = extractor.transform(images)
    read = list(zip(frame["ocr_text"], [t["attributes"]["headline"] for t in truth]))
    # Every headline word is read, though not always as a word of its own: it joins a word to a
    # neighbour now and then ("Under$50"; at 384 px 8 of 9 words stand alone, EasyOCR 9 of 9).
    joined = [np.mean([w in "".join(_words(text)) for w in _words(headline)]) for text, headline in read]
    alone = [np.mean([w in set(_words(text)) for w in _words(headline)]) for text, headline in read]
    assert np.mean(joined) == 1.0 and np.mean(alone) >= 0.8, read
    planted = np.array([t["attributes"]["has_cta"] for t in truth])
    assert (frame["cta_detected"].to_numpy() == planted).mean() >= 5 / 6
    for row, t in zip(frame.itertuples(), truth):
        if row.cta_detected and t["attributes"]["has_cta"]:
            # its recogniser drops the space in "ShopNow": put back, the label reads as drawn
            assert row.cta_text.lower() == t["attributes"]["cta_text"].lower(), (row.cta_text, t["attributes"])


def _encode_through_the_pipeline(encoder, images: list[np.ndarray], log=None):
    """encode_images over PNG copies of `images`, in batches of 4 (the path of the encode step)."""
    import hashlib
    import io

    from creative_dag.encoders.pipeline import encode_images

    files = {}
    for i, image in enumerate(images):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        files[f"img_{i}.png"] = buffer.getvalue()
    items = pd.DataFrame({"creative_id": [f"cr_{i}" for i in range(len(files))],
                          "sha256": [hashlib.sha256(b).hexdigest() for b in files.values()],
                          "launch_date": pd.Timestamp("2026-01-05").date(), "image_path": list(files)})
    return encode_images(encoder, items, files.__getitem__, batch_size=4, log=log).frame


def test_worker_processes_read_the_same_rows_as_the_step_process(chosen_creatives) -> None:
    """rapidocr reads a cold run's images on one worker process per core (ocr_workers = 0); the layout
    rows must not depend on how many read them, and a worker that dies must not lose a creative."""
    pytest.importorskip("rapidocr_onnxruntime", reason="optional backend: docs/operations.md installs it")
    from test_worker_processes import _children, encode_then_kill_the_workers

    from creative_dag.encoders.pipeline import LayoutBlockEncoder

    images, _ = chosen_creatives
    images = images * 2  # 12 images: three batches of 4
    here = _encode_through_the_pipeline(LayoutBlockEncoder.load(backend="rapidocr", workers=1), images)
    encoder = LayoutBlockEncoder.load(backend="rapidocr", workers=2)
    assert encoder.workers == 2
    with encoder.parallel(len(images)):  # 12 images are too few to be worth starting workers
        assert encoder.reading_workers == 0
    pooled, after_kill = (batch.attributes for batch in encode_then_kill_the_workers(encoder, images))
    pd.testing.assert_frame_equal(pooled, here.drop(columns=["creative_id", "sha256", "launch_date", "model_id",
                                                             "model_version", "vector"]).reset_index(drop=True)
                                  [pooled.columns], check_dtype=False)
    pd.testing.assert_frame_equal(after_kill, pooled)
    through_pipeline = _encode_through_the_pipeline(encoder, images)  # the pipeline opens the pool itself
    pd.testing.assert_frame_equal(through_pipeline, here)
    assert not _children()


def test_rapidocr_without_its_weights_is_unavailable_not_faked(tmp_path: Path) -> None:
    extractor = LayoutExtractor(backend="rapidocr", model_dir=str(tmp_path))
    assert not extractor.available
    assert "ch_PP-OCRv4_det_infer.onnx" in extractor.unavailable_reason or "rapidocr" in extractor.unavailable_reason
    with pytest.raises(RuntimeError, match="unavailable"):
        extractor.transform([np.zeros((64, 64, 3), dtype=np.uint8)])


@pytest.mark.slow
def test_ocr_reads_the_planted_headlines(read_creatives) -> None:
    frame, truth, extractor = read_creatives
    assert extractor.model_version not in ("", "unavailable") and len(extractor.model_version) == 16
    recall = [np.mean([w in set(_words(text)) for w in _words(t["attributes"]["headline"])])
              for text, t in zip(frame["ocr_text"], truth)]
    # Measured on 14 generated 1080 px creatives: every headline word read at 540, 448 and 384.
    assert np.mean(recall) >= 0.9, list(zip(frame["ocr_text"], [t["attributes"]["headline"] for t in truth]))
    assert (frame["word_count"] >= 2).all() and frame["text_present"].all()


@pytest.mark.slow
def test_loading_and_reading_text_on_a_cpu_leave_no_warning_in_the_run_log(chosen_creatives) -> None:
    """Every run's log used to carry two torch UserWarnings no user can act on: EasyOCR quantizes its
    recogniser with tensor functions torch deprecates, and its DataLoader asks for pinned memory, which
    a CPU cannot give."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = LayoutExtractor(working_size=384).transform(chosen_creatives[0][:1])
    assert frame["text_present"].all()
    assert not [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


@pytest.mark.slow
def test_text_boxes_are_in_original_pixels_on_the_headline(read_creatives) -> None:
    frame, truth, _ = read_creatives
    inside = []
    for boxes, t in zip(frame["text_boxes"], truth):
        largest = max(json.loads(boxes), key=lambda b: b["h"])
        hx, hy, hw, hh = t["headline_box"]
        cx, cy = largest["x"] + largest["w"] / 2, largest["y"] + largest["h"] / 2
        inside.append(hx - 0.1 * hw <= cx <= hx + 1.1 * hw and hy - 0.5 * hh <= cy <= hy + 1.5 * hh)
    assert np.mean(inside) >= 5 / 6
    positions = frame["text_position"].to_numpy() == np.array([t["attributes"]["headline_position"] for t in truth])
    assert positions.mean() >= 4 / 6


@pytest.mark.slow
def test_cta_detection_agrees_with_the_planted_button(read_creatives) -> None:
    frame, truth, _ = read_creatives
    planted = np.array([t["attributes"]["has_cta"] for t in truth])
    assert frame["cta_detected"].dtype == bool
    detected = frame["cta_detected"].to_numpy()
    assert planted.any() and (~planted).any(), "fixture should mix creatives with and without a CTA"
    assert (detected == planted).mean() >= 5 / 6
    for row, t in zip(frame.itertuples(), truth):
        if row.cta_detected and t["attributes"]["has_cta"]:
            assert row.cta_position == t["attributes"]["cta_position"]
            # OCR may misread a letter at 384 px ("Leam More"): near-equal text is a match.
            similarity = difflib.SequenceMatcher(None, row.cta_text.lower(), t["attributes"]["cta_text"].lower())
            assert similarity.ratio() >= 0.75, (row.cta_text, t["attributes"]["cta_text"])


@pytest.mark.slow
def test_faces_are_found_where_the_person_was_placed(read_creatives) -> None:
    frame, truth, extractor = read_creatives
    if not extractor.faces_available:
        pytest.skip(f"face detector unavailable: {extractor.faces_unavailable_reason}")
    for row, t in zip(frame.itertuples(), truth):
        if t["face_box"] is None:
            continue
        fx, fy, fw, fh = t["face_box"]
        x, y, w, h = json.loads(row.face_box)
        assert fx <= x + w / 2 <= fx + fw and fy <= y + h / 2 <= fy + fh, (row.face_box, t["face_box"])
    planted = np.array([t["face_box"] is not None for t in truth])
    assert planted.any() and (~planted).any()
    assert ((frame["face_count"].to_numpy() > 0) == planted).mean() >= 5 / 6


@pytest.mark.slow
def test_layout_vectors_are_unit_and_separate_layouts(read_creatives) -> None:
    frame, truth, extractor = read_creatives
    vectors = extractor.vectorize(frame)
    assert vectors.shape == (len(truth), len(extractor.vector_columns))
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert len({tuple(np.round(v, 3)) for v in vectors}) > 1


@pytest.mark.slow
def test_frozen_detector_matches_eager_on_square_and_portrait_copies(read_creatives) -> None:
    import easyocr
    import torch

    _, _, extractor = read_creatives
    assert extractor.detector_mode == "torchscript"  # the CPU speed-up is actually in use
    eager = easyocr.Reader(["en"], gpu=False, model_storage_directory=extractor.model_dir,
                           user_network_directory=extractor.model_dir, download_enabled=False,
                           verbose=False).detector.eval()
    generator = torch.Generator().manual_seed(0)
    for shape in [(1, 3, 384, 384), (1, 3, 224, 384)]:  # traced at 384², run on a portrait copy too
        image = torch.rand(shape, generator=generator)
        with torch.no_grad():
            want, got = eager(image)[0], extractor._ocr.detector(image)[0]
        assert got.shape == want.shape
        assert torch.allclose(got, want, atol=1e-3), float((got - want).abs().max())


def test_the_craft_detector_holds_easyocrs_own_weights_and_boxes() -> None:
    """On CPU the detector is built on the meta device and filled from the weights file (no random
    initialisation of VGG16-BN's unused classifier first): the same tensors and the same output as
    EasyOCR's get_detector, bit for bit."""
    import easyocr
    import torch
    from easyocr.detection import get_detector

    from creative_dag.encoders.layout import (
        _load_craft_detector,
        default_easyocr_model_dir,
    )

    folder = default_easyocr_model_dir()
    reader = easyocr.Reader(["en"], gpu=False, model_storage_directory=folder, user_network_directory=folder,
                            download_enabled=False, verbose=False, detector=False)
    path = reader.getDetectorPath("craft")
    ours, theirs = _load_craft_detector(path, reader.quantize), get_detector(path, device="cpu", quantize=reader.quantize)
    assert not any(t.is_meta for t in [*ours.parameters(), *ours.buffers()])
    mine, want = ours.state_dict(), theirs.state_dict()
    assert mine.keys() == want.keys() and all(torch.equal(mine[k], want[k]) for k in want)
    assert not ours.training
    image = torch.rand((1, 3, 224, 384), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(ours(image), theirs(image)))


# ------------------------------------------------------------------ Florence-2 backend
def test_florence_ocr_output_is_parsed_into_pixel_quads() -> None:
    from creative_dag.encoders.layout import parse_florence_ocr

    decoded = ("</s><s>Summer Sale<loc_100><loc_50><loc_600><loc_50><loc_600><loc_150><loc_100><loc_150>"
               "Shop Now<loc_400><loc_800><loc_600><loc_800><loc_600><loc_900><loc_400><loc_900></s>")
    (quad1, text1), (quad2, text2) = parse_florence_ocr(decoded, 1000, 2000)
    assert (text1, text2) == ("Summer Sale", "Shop Now")
    assert np.allclose(quad1[0], [100.5, 101.0]) and np.allclose(quad1[2], [600.5, 301.0])
    assert np.allclose(quad2[:, 1].min(), 1601.0)
    assert parse_florence_ocr("</s><s>no regions here</s>", 100, 100) == []


def _tiny_random_florence2(folder: Path) -> None:
    """A tiny random-weight Florence-2 (test only): 64 px images, 1-layer BART, 1000 location tokens."""
    import torch
    from transformers import (
        BartConfig,
        BartTokenizer,
        CLIPImageProcessor,
        Florence2Config,
        Florence2ForConditionalGeneration,
        Florence2Processor,
        Florence2VisionConfig,
    )

    torch.manual_seed(0)
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for char in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?$%":
        vocab[char] = len(vocab)
    vocab["Ġ"] = len(vocab)
    tokenizer = BartTokenizer(vocab=vocab, merges=[], extra_special_tokens={"image_token": "<image>"})
    tokenizer.add_tokens([f"<loc_{i}>" for i in range(1000)], special_tokens=True)
    vision = Florence2VisionConfig(depths=(1, 1, 1, 1), embed_dim=(16, 32, 32, 32), num_heads=(1, 1, 1, 1),
                                   num_groups=(1, 1, 1, 1), window_size=2, projection_dim=32, drop_path_rate=0.0)
    text = BartConfig(vocab_size=len(tokenizer), d_model=32, encoder_layers=1, decoder_layers=1,
                      encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                      max_position_embeddings=128, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                      decoder_start_token_id=2, forced_eos_token_id=2)
    model = Florence2ForConditionalGeneration(
        Florence2Config(vision_config=vision, text_config=text, image_token_id=tokenizer.image_token_id))
    # 64 px / total stride 32 = 2x2 patches, plus one pooled token.
    images = CLIPImageProcessor(size={"height": 64, "width": 64}, do_center_crop=False, image_seq_length=5)
    model.save_pretrained(folder)
    Florence2Processor(image_processor=images, tokenizer=tokenizer,
                       post_processor_config={"pure_text": {}}).save_pretrained(folder)


def test_florence2_backend_runs_a_local_model_folder(tmp_path: Path) -> None:
    folder = tmp_path / "florence2-tiny"
    _tiny_random_florence2(folder)
    extractor = LayoutExtractor(backend="florence2", model_dir=str(folder), working_size=128)
    assert extractor.available, extractor.unavailable_reason
    assert extractor.model_id.startswith("florence2:florence2-tiny")
    image, _ = _button_image()
    frame = extractor.transform([image, image[:300]])
    assert list(frame.columns) == LayoutExtractor.output_columns() and len(frame) == 2
    # Random weights read nothing meaningful; the contract is the shape and types of the answer.
    for boxes in frame["text_boxes"]:
        for box in json.loads(boxes):
            assert {"text", "conf", "x", "y", "w", "h"} <= set(box) and 0 <= box["x"] <= 540
    assert len(extractor.model_version) == 16
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    (broken / "model.safetensors").write_bytes(b"not a model")
    bad = LayoutExtractor(backend="florence2", model_dir=str(broken))
    with pytest.raises(RuntimeError, match="failed to load"):
        bad.transform([image])
    assert not bad.available and "failed to load" in bad.unavailable_reason


@pytest.mark.slow
def test_the_frozen_detector_kept_between_runs_reads_the_same_layout(read_creatives, chosen_creatives,
                                                                      tmp_path) -> None:
    """A home keeps the traced and frozen CRAFT detector (creative_dag/encoders/compiled.py); the next load
    reads it instead of tracing again, and every layout column is the same as without a kept copy. A damaged
    copy is traced again."""
    images = chosen_creatives[0][:2]
    want = read_creatives[0].head(2)  # read with no kept copy: traced at load
    kept = tmp_path / "compiled"
    first = LayoutExtractor(working_size=384, compiled=CompiledModels(kept))
    pd.testing.assert_frame_equal(first.transform(images), want)
    [copy] = kept.glob("ocr-craft-384-*.pt")
    second = LayoutExtractor(working_size=384, compiled=CompiledModels(kept))
    second._load()
    assert second.detector_mode == "torchscript"
    pd.testing.assert_frame_equal(second.transform(images), want)
    copy.write_bytes(b"damaged")
    third = LayoutExtractor(working_size=384, compiled=CompiledModels(kept))
    pd.testing.assert_frame_equal(third.transform(images), want)
    assert copy.stat().st_size > 1000  # traced again and kept again
