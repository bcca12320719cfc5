"""An image block's feature extractor on several worker processes (creative_dag/worker_processes.py).

Two blocks compute their features in plain Python / OpenCV / ONNX Runtime that barely use a second
core, so a process per core reads their images faster than one process does:
- the layout block's OCR (PP-OCRv4 on a small working copy): two one-thread processes read 1.4-1.6x
  the images of one process on 2 cores (bench/ocr.py --workers 2). EasyOCR's torch models already use
  every core, so two workers gain only ~1.1x and it runs in the step's own process by default
  (`EncoderSettings.ocr_workers`);
- the visual block's colour, tone, texture and composition features (~35 ms per image, ~1.2 cores
  used in one process): two workers raise the pipeline ~1.15x (bench/encoders.py), as the step's own
  process still decodes every image in full.

Each worker builds its own extractor once from the extractor's `settings()`; the step process sends
it the small working copies (`working_copies`: the copy the features are computed on plus the
original size, ~0.4-0.8 MB), not the decoded originals, and the rows come back in order. OCR runs on
one thread everywhere and the visual features use no call whose result depends on the thread count,
so the rows are the same whatever the number of workers (tests/test_layout.py, tests/test_visual.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol, Self

import numpy as np
import pandas as pd

from creative_dag.worker_processes import process_pool

# The worker process's own extractor, set once by `_load_extractor` when the worker starts: a pool
# worker keeps its model between tasks only through its module state.
_WORKER: dict[str, Any] = {}

# Copies per task: small enough to keep both workers busy to the end of a batch, large enough that
# sending a task costs nothing next to reading its images.
_TASK_IMAGES = 4


class PoolableExtractor(Protocol):
    """What a pool needs: rebuild the extractor in a worker, reduce images there and back."""

    def settings(self) -> dict[str, Any]: ...

    def working_copies(self, images: Sequence[np.ndarray],
                       ids: Sequence[str] | None = None) -> list[tuple[np.ndarray, int, int]]: ...

    def transform_working_copies(self, copies: Sequence[tuple[np.ndarray, int, int]]) -> pd.DataFrame: ...


def _load_extractor(kind: type, settings: dict[str, Any]) -> None:
    import cv2

    cv2.setNumThreads(1)  # OpenCV's own thread pool ignores OMP_NUM_THREADS: one per worker, as the rest
    _WORKER["extractor"] = kind(**settings)


def _transform(copies: Sequence[tuple[np.ndarray, int, int]]) -> pd.DataFrame:
    return _WORKER["extractor"].transform_working_copies(copies)


class ExtractorPool:
    """`extractor.transform` on `workers` processes; `close()` it (or use it as a context manager)."""

    def __init__(self, extractor: PoolableExtractor, workers: int) -> None:
        if workers < 2:
            raise ValueError(f"an extractor pool needs at least 2 workers, got {workers}")
        self.extractor = extractor
        self.workers = workers
        self._pool = process_pool(workers, _load_extractor, (type(extractor), extractor.settings()))

    def transform(self, images: Sequence[np.ndarray], ids: Sequence[str] | None = None) -> pd.DataFrame:
        """The extractor's `transform` of `images`, computed by the workers; rows in the images' order."""
        copies = self.extractor.working_copies(images, ids)
        if not copies:
            return self.extractor.transform_working_copies([])
        size = min(_TASK_IMAGES, math.ceil(len(copies) / self.workers))
        futures = [self._pool.submit(_transform, copies[i:i + size]) for i in range(0, len(copies), size)]
        return pd.concat([f.result() for f in futures], ignore_index=True)

    def close(self, kill: bool = False) -> None:
        """Stop the workers (at once with `kill`, e.g. after an error or Ctrl-C)."""
        self._pool.shutdown(wait=True, kill_workers=kill)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self.close(kill=exc_type is not None)
