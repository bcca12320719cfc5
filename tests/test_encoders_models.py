"""The neural blocks on real weights (EfficientNet-Lite0, MiniLM) and a tiny CLIP saved to disk,
loaded through the same code path the assets use (`load_block` + EncoderSettings)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from creative_dag.encoders.base import ModelUnavailable
from creative_dag.resources.models import EncoderSettings, load_block

COFFEE_TAGS = {"espresso", "cup", "coffee mug", "consomme", "eggnog", "cappuccino", "coffeepot", "espresso maker",
               "saucer", "chocolate sauce"}


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(2)


def _creative(photo: np.ndarray, background: tuple[int, int, int], headline_shift: int = 0,
              photo_scale: float = 0.75, size: int = 320) -> np.ndarray:
    """A simple ad: a product photo on a plain background with a dark headline bar."""
    canvas = Image.new("RGB", (size, size), background)
    product = Image.fromarray(photo)
    width = int(size * photo_scale)
    product = product.resize((width, int(width * product.height / product.width)))
    canvas.paste(product, ((size - product.width) // 2, int(size * 0.22)))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle([20 + headline_shift, 12, size - 20 + headline_shift, 52], fill=(30, 30, 30))
    return np.asarray(canvas)


@pytest.fixture(scope="module")
def creatives() -> dict[str, np.ndarray]:
    from skimage import data

    coffee, cat, rocket = data.coffee(), data.chelsea(), data.rocket()
    return {
        "coffee": _creative(coffee, (240, 220, 190)),
        "coffee_variant": _creative(coffee, (235, 215, 185), headline_shift=6, photo_scale=0.73),
        "cat": _creative(cat, (190, 220, 240)),
        "rocket": _creative(rocket, (60, 60, 90)),
    }


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b))


@pytest.mark.slow
def test_efficientnet_tags_coffee_and_ranks_near_duplicates_closest(creatives):
    encoder = load_block("cnn", EncoderSettings(threads=2))
    assert encoder.model_id == "timm/tf_efficientnet_lite0" and encoder.dim == 1280
    names = list(creatives)
    out = encoder.encode([creatives[n] for n in names])
    assert out.vectors.shape == (4, 1280)
    np.testing.assert_allclose(np.linalg.norm(out.vectors, axis=1), 1.0, atol=1e-5)
    tags = dict(zip(names, out.attributes["tags"]))
    assert COFFEE_TAGS & set(tags["coffee"]), tags["coffee"]
    assert out.attributes["top_tag"].iloc[0] in COFFEE_TAGS
    assert any("cat" in t for t in tags["cat"]), tags["cat"]
    assert not COFFEE_TAGS & set(tags["rocket"][:2])
    v = dict(zip(names, out.vectors))
    near = _cos(v["coffee"], v["coffee_variant"])
    assert near > 0.9
    assert near > _cos(v["coffee"], v["cat"]) + 0.2
    assert near > _cos(v["coffee"], v["rocket"]) + 0.2
    # the same weights always give the same version; it names the weights, not the run
    assert load_block("cnn", EncoderSettings(threads=2)).model_version == encoder.model_version


@pytest.mark.slow
def test_minilm_puts_similar_headlines_closer():
    encoder = load_block("text", EncoderSettings(threads=2))
    assert encoder.dim == 384
    out = encoder.encode(["Fresh roasted coffee delivered to your door",
                          "Get freshly roasted coffee beans delivered",
                          "Running shoes 50% off this weekend"])
    v = out.vectors
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert _cos(v[0], v[1]) > 0.6
    assert _cos(v[0], v[1]) > _cos(v[0], v[2]) + 0.4
    n_tokens = out.attributes["n_tokens"].tolist()
    assert len(n_tokens) == 3 and all(n >= 7 for n in n_tokens)  # [CLS] + words + [SEP], per text


@pytest.mark.slow
def test_a_local_model_loads_without_a_progress_bar_in_the_run_log(capfd):
    """transformers drew "Loading weights: 0%| | 0/103" into every run's log that loaded MiniLM from its folder."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.enable_progress_bar()  # transformers' default, whatever this environment set
    try:
        encoder = load_block("text", EncoderSettings(threads=2))
        assert encoder.dim == 384
        assert "Loading weights" not in capfd.readouterr().err
        assert hf_logging.is_progress_bar_enabled()  # left as it was, so a download still shows its progress
    finally:
        if not was_enabled:
            hf_logging.disable_progress_bar()


def build_tiny_clip(folder) -> None:
    """A random tiny CLIP + explicit-vocab tokenizer + image processor, saved like a real model folder."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in "abcdefghijklmnopqrstuvwxyz":
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], unk_token="<|endoftext|>", bos_token="<|startoftext|>",
                              eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    config = CLIPConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                         "num_attention_heads": 2, "max_position_embeddings": 77, "bos_token_id": 0, "eos_token_id": 1,
                         "pad_token_id": 1},
        vision_config={"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
                           "image_size": 224, "patch_size": 32},
        projection_dim=32,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessor().save_pretrained(folder)


@pytest.mark.slow
def test_tiny_clip_from_a_local_folder_loads_through_the_real_path(tmp_path, creatives):
    folder = tmp_path / "tiny-clip"
    build_tiny_clip(folder)
    encoder = load_block("clip", EncoderSettings(clip_model=str(folder), threads=2))
    assert encoder.dim == 32 and encoder.model_id == str(folder)
    out = encoder.encode(list(creatives.values()))
    assert out.vectors.shape == (4, 32)
    np.testing.assert_allclose(np.linalg.norm(out.vectors, axis=1), 1.0, atol=1e-5)
    assert len(out.attributes["tags"].iloc[0]) == 3  # zero-shot concepts ran through the tokenizer
    # identical pixels -> identical vectors (deterministic preprocessing + inference)
    again = encoder.encode([creatives["coffee"]])
    np.testing.assert_allclose(again.vectors[0], out.vectors[0], atol=1e-5)
    # Text probes go through the same model's text tower, into the image vectors' space.
    text = encoder.encode_text(["a red background", "a face"])
    assert text.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(text[0], text[1])
    # A folder without tokenizer files still encodes images, but says why it cannot encode text.
    bare_folder = tmp_path / "tiny-clip-without-tokenizer"
    bare_folder.mkdir()
    for name in ("config.json", "model.safetensors", "preprocessor_config.json"):
        (bare_folder / name).write_bytes((folder / name).read_bytes())
    bare = load_block("clip", EncoderSettings(clip_model=str(bare_folder), threads=2))
    plain = bare.encode([creatives["coffee"]])
    assert plain.vectors.shape == (1, 32)
    assert plain.attributes["tags"].iloc[0] is None  # no made-up concept tags from an empty tokenizer
    assert bare.model_version != encoder.model_version  # so the cache never serves tags made with a tokenizer
    with pytest.raises(ModelUnavailable, match="no tokenizer"):
        bare.encode_text(["a face"])


@pytest.mark.slow
def test_an_uncached_hub_id_offline_is_unavailable_at_once_and_a_cached_one_still_loads(tmp_path):
    """Offline (the hub's host refuses connections, the cache is empty) a hub id is reported unavailable
    before transformers is imported, the 5-7 s that were the whole CLIP step of an offline run; the same id
    in the local Hugging Face cache still loads through transformers."""
    import os
    import subprocess
    import sys

    cache = tmp_path / "hub"
    snapshot = cache / "models--tiny--clip" / "snapshots" / "0123abc"
    build_tiny_clip(snapshot)
    (cache / "models--tiny--clip" / "refs").mkdir(parents=True)
    (cache / "models--tiny--clip" / "refs" / "main").write_text("0123abc")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env.update(HF_HUB_CACHE=str(cache), HF_ENDPOINT="http://127.0.0.1:9")  # the discard port: refused
    script = """
import sys, time
from creative_dag.encoders.base import ModelUnavailable
from creative_dag.encoders.clip import ClipEncoder
started = time.perf_counter()
try:
    ClipEncoder.load("openai/clip-vit-base-patch32")
except ModelUnavailable as exc:
    print("unavailable", "transformers" in sys.modules, round(time.perf_counter() - started, 2), exc.reason)
print("cached dim", ClipEncoder.load("tiny/clip").dim)
"""
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300,
                         check=False)  # the return code is asserted below, with the child's stderr
    assert out.returncode == 0, out.stderr[-2000:]
    unavailable, cached = out.stdout.strip().splitlines()[-2:]
    assert unavailable.startswith("unavailable False ") and "not in the local Hugging Face cache" in unavailable
    assert "127.0.0.1 unreachable" in unavailable
    assert cached == "cached dim 32"


@pytest.mark.slow
def test_unloadable_models_raise_model_unavailable_with_a_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable) as err:
        load_block("clip", EncoderSettings(clip_model="openai/clip-vit-base-patch32"))
    assert "openai/clip-vit-base-patch32" in err.value.reason and "HF_HUB_OFFLINE" in err.value.reason
    with pytest.raises(ModelUnavailable, match="does not exist"):
        load_block("clip", EncoderSettings(clip_model=str(tmp_path / "no-such-folder")))
    with pytest.raises(ModelUnavailable, match="ResNet50 weights file"):
        load_block("cnn", EncoderSettings(resnet50_weights=str(tmp_path / "missing.pth")))
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a state dict")
    with pytest.raises(ModelUnavailable, match="cannot load EfficientNet-Lite0"):
        load_block("cnn", EncoderSettings(efficientnet_weights=str(broken)))


def test_a_run_loads_each_model_once_and_a_failed_load_is_tried_again(tmp_path):
    """The attribution and candidate steps of an in-process run reuse the models its encode steps loaded; other
    settings are another model. A failed load is not kept (the embedding store remembers failures, with
    their retry time), and every run starts with none: Dagster builds the resource anew per run."""
    import dagster as dg

    from creative_dag.resources.models import (
        EncoderResource,
        LoadedModels,
        lazy_blocks,
        load_blocks,
    )

    models = LoadedModels()
    settings = EncoderSettings()
    first = models.load("visual", settings)
    assert models.load("visual", settings) is first and models.has("visual", settings) and models.loads == 1
    assert load_blocks(["visual"], settings, models=models)["visual"] is first and models.loads == 1
    other = models.load("visual", EncoderSettings(visual_working_size=256))
    assert other is not first and models.loads == 2
    missing = EncoderSettings(clip_model=str(tmp_path / "no-such-folder"))
    for _ in range(2):
        with pytest.raises(ModelUnavailable, match="does not exist"):
            models.load("clip", missing)
    assert not models.has("clip", missing)

    class Store:  # records the visual block as its encode step loaded it
        def read_status(self, block):
            return {"available": True, "model_id": first.model_id, "model_version": first.model_version,
                    "dim": first.dim, "fingerprint": None} if block == "visual" else None

    seen = []

    @dg.asset(required_resource_keys={"encoders"})  # (this module's annotations are strings: no typed resource)
    def step(context) -> None:
        encoders = context.resources.encoders
        seen.append(encoders.models())
        encoders.models().load("visual", encoders.settings())

    @dg.asset(deps=[step], required_resource_keys={"encoders"})
    def later_step(context) -> None:
        encoders = context.resources.encoders
        seen.append(encoders.models())
        assert encoders.models().has("visual", encoders.settings())

    resource = EncoderResource()
    for _ in range(2):
        assert dg.materialize([step, later_step], resources={"encoders": resource}).success
    assert seen[0] is seen[1] and seen[2] is seen[3] and seen[0] is not seen[2] and seen[0].loads == 1
    lazy = lazy_blocks(["visual"], settings, Store(), models=models)["visual"]
    assert lazy.encode.__self__ is first  # a recorded block, loaded on use: the run's model


@pytest.mark.slow
def test_resnet50_from_a_user_weights_file(tmp_path, creatives):
    import torchvision

    torch.manual_seed(0)
    weights = tmp_path / "resnet50.pth"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), weights)
    encoder = load_block("cnn", EncoderSettings(resnet50_weights=str(weights), threads=2))
    assert encoder.model_id == "torchvision/resnet50" and encoder.dim == 2048
    out = encoder.encode([creatives["coffee"]])
    assert out.vectors.shape == (1, 2048) and len(out.attributes["tags"].iloc[0]) == 5
    _assert_frozen_matches_eager(encoder, list(creatives.values()))


@pytest.mark.slow
def test_efficientnet_runs_frozen_on_cpu_with_the_eager_vectors_and_tags(creatives):
    encoder = load_block("cnn", EncoderSettings(threads=2))
    _assert_frozen_matches_eager(encoder, list(creatives.values()))


def _assert_frozen_matches_eager(encoder, images: list[np.ndarray]) -> None:
    """The CPU speed-up (a frozen TorchScript forward, BatchNorm folded into the convolutions) is in use
    and gives the eager module's vectors and tags, at any batch size (the trace is made at 2)."""
    assert encoder.forward_mode == "torchscript"
    for batch in (images[:1], images[:3], images):
        frozen = encoder.encode(batch)
        kept, encoder._frozen = encoder._frozen, None
        try:
            eager = encoder.encode(batch)
        finally:
            encoder._frozen = kept
        np.testing.assert_allclose(frozen.vectors, eager.vectors, atol=1e-4)
        assert frozen.attributes["tags"].tolist() == eager.attributes["tags"].tolist()


def test_a_deployment_picks_its_ocr_backend_from_the_environment(tmp_path, monkeypatch):
    from creative_dag.blocks import LAYOUT
    from creative_dag.resources.models import EncoderResource, block_model_id
    from creative_dag.settings import resolve_locations

    monkeypatch.delenv("CREATIVE_DAG_OCR_BACKEND", raising=False)
    locations = resolve_locations(tmp_path, tmp_path / "landing")
    assert EncoderResource.from_locations(locations).settings().effective_ocr_backend == "easyocr"
    monkeypatch.setenv("CREATIVE_DAG_OCR_BACKEND", " RapidOCR ")
    settings = EncoderResource.from_locations(locations).settings()
    assert settings.effective_ocr_backend == "rapidocr"
    assert block_model_id(LAYOUT, settings) == "rapidocr-ppocrv4"


def test_ocr_workers_default_to_one_per_core_for_rapidocr_only_and_leave_the_rows_alone():
    """ocr_workers = 0: rapidocr (one thread per image) reads on every core; EasyOCR's torch models
    already use them all. The count changes no output, so it does not re-encode anything."""
    from creative_dag.blocks import LAYOUT
    from creative_dag.resources.models import block_fingerprint
    from creative_dag.worker_processes import usable_cores

    assert EncoderSettings(ocr_backend="rapidocr").effective_ocr_workers == usable_cores()
    assert EncoderSettings().effective_ocr_workers == 1
    assert EncoderSettings(ocr_workers=3).effective_ocr_workers == 3
    assert block_fingerprint(LAYOUT, EncoderSettings(ocr_workers=4)) == block_fingerprint(LAYOUT, EncoderSettings())
    assert load_block(LAYOUT, EncoderSettings(ocr_backend="rapidocr", ocr_workers=2, device="cpu")).workers == 2


def test_visual_workers_default_to_one_per_core_and_leave_the_rows_alone():
    """visual_workers = 0: the visual block's features (OpenCV / numpy, ~1.2 cores in one process)
    are computed on every core. The count changes no output, so it does not re-encode anything."""
    from creative_dag.blocks import VISUAL
    from creative_dag.resources.models import block_fingerprint
    from creative_dag.worker_processes import usable_cores

    assert EncoderSettings().effective_visual_workers == usable_cores()
    assert EncoderSettings(visual_workers=3).effective_visual_workers == 3
    assert block_fingerprint(VISUAL, EncoderSettings(visual_workers=4)) == block_fingerprint(VISUAL, EncoderSettings())
    assert load_block(VISUAL, EncoderSettings(visual_workers=2)).workers == 2


def _fresh_process_load(block: str, settings: str, library: str) -> list[bool]:
    """[whether `library` was imported, whether no model was built] when a fresh process loads `block` with
    EncoderSettings(threads=2, <settings>): a kept copy's point is the import and the build it avoids."""
    import json
    import subprocess
    import sys

    probe = (f"import sys, json\nfrom creative_dag.resources.models import EncoderSettings, load_block\n"
             f"e = load_block({block!r}, EncoderSettings(threads=2, {settings}))\n"
             f"print(json.dumps([{library!r} in sys.modules, e.model is None]))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
def test_the_frozen_cnn_kept_between_runs_gives_the_same_vectors_and_skips_the_build(creatives, tmp_path):
    """A home keeps the frozen forward pass (creative_dag/encoders/compiled.py): the next load reads it instead of
    importing timm, building, loading and tracing the model, with the same vectors, tags and model version. A
    damaged copy is built again; new weights make a new copy and drop the old one."""
    import os
    import shutil

    from creative_dag.encoders.cnn import default_lite0_weights

    weights = tmp_path / "lite0.pth"
    shutil.copy(default_lite0_weights(), weights)
    kept = tmp_path / "compiled"
    settings = EncoderSettings(threads=2, efficientnet_weights=str(weights), compiled_dir=str(kept))
    images = list(creatives.values())
    built = load_block("cnn", settings)
    assert built.model is not None and built.forward_mode == "torchscript"
    copies = sorted(p.name for p in kept.glob("*.pt"))
    assert len(copies) == 1
    loaded = load_block("cnn", settings)
    assert loaded.model is None and loaded.forward_mode == "torchscript"  # from the copy, no model built
    assert loaded.model_version == built.model_version and loaded.class_names == built.class_names
    want, got = built.encode(images), loaded.encode(images)
    assert np.array_equal(want.vectors, got.vectors)
    assert got.attributes["tags"].tolist() == want.attributes["tags"].tolist()

    # a fresh process with the copy kept never imports timm (its import and the trace were the load's cost)
    assert _fresh_process_load("cnn", f"efficientnet_weights={str(weights)!r}, compiled_dir={str(kept)!r}",
                               "timm") == [False, True]

    next(kept.glob("*.pt")).write_bytes(b"not a TorchScript archive")
    rebuilt = load_block("cnn", settings)
    assert rebuilt.model is not None and np.array_equal(rebuilt.encode(images).vectors, want.vectors)

    # other weights (or the same file rewritten): a new copy, the stale one gone
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert load_block("cnn", settings).model is not None
    assert len(list(kept.glob("*.pt"))) == 1 and sorted(p.name for p in kept.glob("*.pt")) != copies


@pytest.mark.slow
def test_the_frozen_text_model_kept_between_runs_gives_the_transformers_vectors_without_importing_it(tmp_path):
    """The text block's kept copy (creative_dag/encoders/text.py): the frozen MiniLM with its tokenizer.json read by
    the `tokenizers` library gives the vectors and token counts of the transformers path, for batches of other
    sizes and lengths than the trace's, truncated and empty texts included; a fresh process loading it does not
    import transformers. A damaged copy is built again; a changed tokenizer file makes a new copy; a folder
    without tokenizer.json keeps none and still loads."""
    import os
    import shutil

    from creative_dag.encoders.text import default_text_model_dir

    folder = tmp_path / "minilm"
    shutil.copytree(default_text_model_dir(), folder)
    kept = tmp_path / "compiled"
    settings = EncoderSettings(threads=2, text_model=str(folder), compiled_dir=str(kept))
    texts = ["Fresh roasted coffee delivered to your door", "", "Shop now", "Café crème — 50 % off! 🔥",
             "running shoes " * 300, "Learn more about our summer collection. Free shipping over $50"]

    plain = load_block("text", EncoderSettings(threads=2, text_model=str(folder)))
    built = load_block("text", settings)
    assert built.model is not None and len(list(kept.glob("*.pt"))) == 1
    loaded = load_block("text", settings)
    assert loaded.model is None  # from the copy: no transformers model built
    want, first, got = plain.encode(texts), built.encode(texts), loaded.encode(texts)
    assert np.array_equal(first.vectors, got.vectors)
    np.testing.assert_allclose(got.vectors, want.vectors, rtol=0, atol=1e-6)  # measured: identical
    assert got.attributes["n_tokens"].tolist() == want.attributes["n_tokens"].tolist()
    assert got.attributes["n_tokens"].tolist()[4] == plain.max_tokens and not got.vectors[1].any()
    assert loaded.model_version == plain.model_version and loaded.dim == 384
    one_by_one = np.vstack([loaded.encode([t]).vectors for t in texts])  # batches of one: no padding
    np.testing.assert_allclose(one_by_one, want.vectors, rtol=0, atol=1e-6)

    assert _fresh_process_load("text", f"text_model={str(folder)!r}, compiled_dir={str(kept)!r}",
                               "transformers") == [False, True]

    next(kept.glob("*.pt")).write_bytes(b"not a TorchScript archive")
    rebuilt = load_block("text", settings)
    assert rebuilt.model is not None and np.array_equal(rebuilt.encode(texts).vectors, got.vectors)

    tokenizer_file = folder / "tokenizer.json"
    before = sorted(p.name for p in kept.glob("*.pt"))
    os.utime(tokenizer_file, ns=(tokenizer_file.stat().st_atime_ns, tokenizer_file.stat().st_mtime_ns + 10**9))
    assert load_block("text", settings).model is not None
    assert len(list(kept.glob("*.pt"))) == 1 and sorted(p.name for p in kept.glob("*.pt")) != before

    tokenizer_file.unlink()  # an older sentence-transformers folder: vocab.txt only
    shutil.rmtree(kept)
    without = load_block("text", settings)
    assert without.model is not None and not kept.exists()
    np.testing.assert_allclose(without.encode(texts).vectors, want.vectors, rtol=0, atol=1e-6)
