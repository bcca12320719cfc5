"""The layout block's OCR on several worker processes (creative_dag/worker_processes.py).

OCR is most of a cold run's image work and PP-OCRv4 barely uses a second thread on a small working
copy: two one-thread processes reading two images at once go 1.4-1.6x the rate of one process on 2
cores (bench/ocr.py --workers 2). EasyOCR's torch models already use every core, so two workers
gain only ~1.1x and it runs in the step's own process by default (`EncoderSettings.ocr_workers`).

Each worker loads its own extractor once; the step process sends it the small working copies
(`LayoutExtractor.working_copies`, ~0.4 MB each), not the decoded originals, and the rows come back in order.
Every worker and the step's own extractor run OCR on one thread, so the rows are the same whatever the
number of workers (tests/test_layout.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Self

import numpy as np
import pandas as pd

from creative_dag.encoders.layout import LayoutExtractor
from creative_dag.worker_processes import process_pool

# The worker process's own extractor, set once by `_load_extractor` when the worker starts: a pool
# worker keeps its model between tasks only through its module state.
_WORKER: dict[str, LayoutExtractor] = {}

# Copies per task: small enough to keep both workers busy to the end of a batch, large enough that
# sending a task costs nothing next to reading its images.
_TASK_IMAGES = 4


def _load_extractor(settings: dict[str, Any]) -> None:
    _WORKER["extractor"] = LayoutExtractor(**settings)


def _transform(copies: Sequence[tuple[np.ndarray, int, int]]) -> pd.DataFrame:
    return _WORKER["extractor"].transform_working_copies(copies)


class LayoutPool:
    """`LayoutExtractor.transform` on `workers` processes; `close()` it (or use it as a context manager)."""

    def __init__(self, extractor: LayoutExtractor, workers: int) -> None:
        if workers < 2:
            raise ValueError(f"a layout pool needs at least 2 workers, got {workers}")
        self.extractor = extractor
        self.workers = workers
        self._pool = process_pool(workers, _load_extractor, (extractor.settings(),))

    def transform(self, images: Sequence[np.ndarray], ids: Sequence[str] | None = None) -> pd.DataFrame:
        """The extractor's `transform` of `images`, read by the workers; rows in the images' order."""
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
