"""Shared pieces of the neural encoders: the unavailable-model error, devices and threads,
weight hashes (the `model_version` of every block), L2 normalisation and progress logging.

Nothing here holds state between calls; models are loaded by each encoder's `load`.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pandas as pd


class ModelUnavailable(RuntimeError):
    """A block's model cannot be loaded here (no files, no network, bad config).

    `reason` is the one-line explanation stored in `embeddings.model_status.reason`.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class EncodedBatch:
    """What an encoder returns for n inputs.

    vectors: (n, d) float32, L2-normalised rows.
    attributes: n rows of named, interpretable columns (may have no columns).
    """

    vectors: np.ndarray
    attributes: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __post_init__(self) -> None:
        if self.attributes is None or (len(self.attributes.columns) == 0 and len(self.attributes) == 0):
            self.attributes = pd.DataFrame(index=range(len(self.vectors)))
        if len(self.attributes) != len(self.vectors):
            raise ValueError(
                f"encoder returned {len(self.vectors)} vectors but {len(self.attributes)} attribute rows"
            )


def resolve_device(requested: str) -> str:
    """'auto' -> 'cuda' when a GPU is visible else 'cpu'; 'cuda' without a GPU falls back to 'cpu'.

    The device actually used is what the status row reports, so a fallback is never hidden.
    """
    requested = (requested or "auto").lower()
    if requested not in {"auto", "cpu", "cuda"} and not requested.startswith("cuda:"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {requested!r}")
    if requested == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda" if requested == "auto" else requested
    return "cpu"


def configure_threads(threads: int) -> int:
    """Set torch's intra-op threads (0 = leave torch's default). Returns the count in force."""
    import torch

    if threads and threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(int(threads))
    return torch.get_num_threads()


def state_dict_hash(module: Any) -> str:
    """sha256 over a torch module's parameter and buffer names, shapes, dtypes and bytes (16 hex).

    Independent of the file format the weights came in, so the same weights give the same
    `model_version` whether loaded from a .pth, safetensors or the hub cache.
    """
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        if not isinstance(tensor, torch.Tensor):
            continue
        t = tensor.detach().to("cpu").contiguous()
        digest.update(name.encode())
        digest.update(str(tuple(t.shape)).encode())
        digest.update(str(t.dtype).encode())
        # view as bytes: works for every dtype (bfloat16 included), no copy for contiguous tensors
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()[:16]


def files_hash(paths: Iterable[str | os.PathLike], chunk: int = 1 << 20) -> str:
    """sha256 over the contents of files (sorted by name), 16 hex."""
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            while True:
                block = handle.read(chunk)
                if not block:
                    break
                digest.update(block)
    return digest.hexdigest()[:16]


def settings_hash(*parts: Any) -> str:
    """Short hash (8 hex) of preprocessing settings that change a block's output."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:8]


def text_sha256(text: str) -> str:
    """Cache key of a text input (the text block is keyed by its input, not by the image)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def l2_normalize(matrix: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit L2 norm; (n, d) float32. All-zero rows stay zero (never NaN)."""
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError(f"expected an (n, d) matrix, got shape {matrix.shape}")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, eps)).astype(np.float32, copy=False)


def resize_center_crop(image: np.ndarray, resize: int, crop: int, interpolation: str) -> np.ndarray:
    """Scale the shorter side to `resize` (no-op when the decoder already did), centre-crop `crop`²."""
    import cv2

    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    height, width = image.shape[:2]
    if min(height, width) != resize:
        scale = resize / min(height, width)
        size = (max(crop, round(width * scale)), max(crop, round(height * scale)))
        flag = cv2.INTER_CUBIC if interpolation == "bicubic" else cv2.INTER_LINEAR
        if scale < 1:
            flag = cv2.INTER_AREA  # downscaling: area averaging avoids aliasing
        image = cv2.resize(image, size, interpolation=flag)
        height, width = image.shape[:2]
    top, left = (height - crop) // 2, (width - crop) // 2
    return image[top:top + crop, left:left + crop]


def batched(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Consecutive slices of at most `size` items."""
    if size < 1:
        raise ValueError(f"batch size must be >= 1, got {size}")
    for start in range(0, len(items), size):
        yield items[start:start + size]


@contextmanager
def quiet_weight_loading() -> Iterator[None]:
    """Inside: transformers draws no "Loading weights" progress bar, which it draws on every model load, even
    from a local folder (noise in every run's log). Only around local loads: a download keeps its bar."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def hub_reachable(timeout_s: float = 3.0) -> tuple[bool, str]:
    """Whether the model hub's host answers a TCP connect within `timeout_s`.

    transformers retries an unreachable hub for ~20 s before failing; probing first lets an
    air-gapped run report CLIP unavailable at once. Honours HF_HUB_OFFLINE and HF_ENDPOINT.
    """
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        return False, "HF_HUB_OFFLINE is set"
    try:
        from huggingface_hub import constants

        endpoint = constants.ENDPOINT
    except ImportError:  # pragma: no cover - huggingface_hub always ships with transformers
        endpoint = os.environ.get("HF_ENDPOINT", "")
    parsed = urlparse(endpoint)
    host = parsed.hostname
    if not host:
        return False, f"no model hub endpoint configured ({endpoint!r})"
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True, ""
    except OSError as exc:
        return False, f"model hub {host} unreachable ({exc})"


class ProgressLogger:
    """Logs `done/total, rate, ETA` at most every `every_s` seconds (and at the end).

    `log` is any callable taking a string (a Dagster logger's `.info`, `print`, ...).
    """

    def __init__(self, label: str, total: int, log: Callable[[str], Any] | None,
                 every_s: float = 10.0) -> None:
        self.label = label
        self.total = int(total)
        self.log = log
        self.every_s = every_s
        self.done = 0
        self.started = time.perf_counter()
        self._last = self.started

    def update(self, n: int) -> None:
        self.done += int(n)
        now = time.perf_counter()
        if self.log is not None and (now - self._last >= self.every_s):
            self._last = now
            self.log(self.message())

    def finish(self) -> None:
        if self.log is not None and self.total:
            self.log(self.message(final=True))

    @property
    def rate(self) -> float:
        elapsed = time.perf_counter() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def message(self, final: bool = False) -> str:
        rate = self.rate
        if final:
            return f"{self.label}: {self.done}/{self.total} done, {rate:.1f}/s"
        remaining = (self.total - self.done) / rate if rate > 0 else float("nan")
        return f"{self.label}: {self.done}/{self.total} ({rate:.1f}/s, ETA {remaining:.0f} s)"


def normalised_pixels(images: Sequence[np.ndarray], resize: int, crop: int, interpolation: str,
                      mean: Sequence[float], std: Sequence[float], device: str, channels_last: bool = False):
    """RGB uint8 arrays (any size) -> (n, 3, crop, crop) float32 torch tensor, (x / 255 - mean) / std per
    channel, on `device`: the preprocessing the CNN and CLIP image towers share."""
    import torch

    batch = np.stack([resize_center_crop(img, resize, crop, interpolation) for img in images])
    tensor = torch.from_numpy(batch).permute(0, 3, 1, 2).float()  # NHWC memory = channels_last
    tensor = (tensor - torch.tensor(mean).view(1, 3, 1, 1) * 255.0) / (torch.tensor(std).view(1, 3, 1, 1) * 255.0)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return tensor.contiguous(memory_format=memory_format).to(device)
