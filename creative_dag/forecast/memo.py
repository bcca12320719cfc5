"""Refit memo: the predictions of every as-of refit of the forecast, kept between runs.

The forecast refits its models as of every launch week (`rolling_forecast`), and an as-of refit
only reads what was known before its day: once that day has passed, a new export day changes
none of its inputs, so its predictions cannot change either. Recomputing them every day was most
of a daily run (185 s of 489 s on the 300-creative bench). The memo keys each refit by a digest
of everything it reads — the training rows' inputs and labels, the query rows' inputs, the input
set, the settings, the forecast code and the learners' versions — and stores its predictions. The
last refit of each rolling forecast also keeps its fitted model, keyed by its training inputs alone:
the next day adds creatives to that refit's query rows but changes nothing it learns from, so they are
predicted with the kept model (creative_dag.forecast.learners) rather than a new fit. A
refit whose inputs changed in any way (a late metric row, a new category level that recodes a
column, a re-encoded image) gets a new key and is fitted again, so the memo never changes an answer;
tests/test_forecast_memo.py checks that a memoised run equals a fresh one.

Stored as one `.npz` (no pickle) beside the warehouse: float arrays of predictions, byte arrays of kept
models (JSON with LightGBM's text format inside); each save keeps only the
entries the run used, so the file holds one run's refits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from creative_dag.forecast.learners import KeptFit, fitted_from_payload, fitted_payload
from creative_dag.kept_entries import KeptEntries

_DIGEST_BYTES = 16
_FIT_PREFIX = "fit:"  # entries holding a fitted refit (JSON bytes) rather than predictions


def code_salt() -> str:
    """The forecast's code and its learners' versions: a changed model or feature code must not reuse results."""
    digest = hashlib.blake2b(digest_size=_DIGEST_BYTES)
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.name.encode())
        digest.update(source.read_bytes())
    for package in ("lightgbm", "scikit-learn", "numpy", "scipy"):
        try:
            digest.update(f"{package}={metadata.version(package)}".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{package}=absent".encode())
    return digest.hexdigest()


def row_digests(static: pd.DataFrame, columns: Sequence[str], blocks: Iterable[np.ndarray]) -> np.ndarray:
    """One digest per row of the named static columns and block matrices (what a refit reads of a row)."""
    parts = [static[list(columns)].to_numpy(dtype=float)] if columns else []
    parts += [np.asarray(b, dtype=float) for b in blocks]
    matrix = np.ascontiguousarray(np.hstack(parts) if parts else np.zeros((len(static), 0)))
    # NaN has many bit patterns; one canonical NaN so equal inputs give equal digests.
    matrix = np.where(np.isnan(matrix), np.nan, matrix)
    return np.array([hashlib.blake2b(row.tobytes(), digest_size=_DIGEST_BYTES).digest() for row in matrix],
                    dtype=f"S{_DIGEST_BYTES}")


@dataclass
class RefitMemo(KeptEntries[np.ndarray]):
    """Predictions of as-of refits by input digest. `path=None`: an in-memory memo (nothing saved)."""

    salt: str = field(default_factory=code_salt)
    fitted: int = 0
    models_reused: int = 0
    what: ClassVar[str] = "refit memo"

    def key(self, *parts: str | bytes | np.ndarray) -> str:
        digest = hashlib.blake2b(self.salt.encode(), digest_size=_DIGEST_BYTES)
        for part in parts:
            data = part.encode() if isinstance(part, str) else part.tobytes() if isinstance(part, np.ndarray) else part
            digest.update(len(data).to_bytes(8, "little"))  # length-prefixed: parts cannot run into each other
            digest.update(data)
        return digest.hexdigest()

    def put(self, key: str, value: np.ndarray, fitted: bool = True) -> None:
        """fitted=False: predictions of a kept model (`get_fit`), not of a new fit."""
        super().put(key, np.asarray(value, dtype=float))
        self.fitted += fitted

    def get_fit(self, key: str) -> KeptFit | None:
        """The fitted refit kept under `key` (a digest of its training inputs only), if any."""
        payload = self.stored.get(_FIT_PREFIX + key)
        if payload is None:
            return None
        try:
            fit = fitted_from_payload(payload.tobytes())
        except Exception:  # noqa: BLE001 — a damaged entry (JSON, LightGBM text) is fitted again
            return None
        self.keep_fit(key)
        self.models_reused += 1
        return fit

    def keep_fit(self, key: str) -> None:
        """Carry a kept refit over to the next save unread (its predictions were reused this run)."""
        payload = self.stored.get(_FIT_PREFIX + key)
        if payload is not None:
            self.used[_FIT_PREFIX + key] = payload

    def put_fit(self, key: str, fit: KeptFit) -> None:
        """Keep a refit's model (nothing for a learner without a portable format)."""
        payload = fitted_payload(fit)
        if payload is not None:
            KeptEntries.put(self, _FIT_PREFIX + key, np.frombuffer(payload, dtype=np.uint8))

    def _read(self, path: Path) -> dict[str, np.ndarray]:
        with np.load(path, allow_pickle=False) as saved:
            return {k: saved[k] for k in saved.files}

    def _write(self, path: Path, entries: dict[str, np.ndarray]) -> None:
        np.savez(path, **entries)  # the temporary name keeps .npz, so np.savez adds none

    def merge(self, other: RefitMemo) -> None:
        """Take over what another copy of this memo (a worker's, creative_dag.forecast.parallel) used and counted."""
        self.used.update(other.used)
        self.hits += other.hits
        self.fitted += other.fitted
        self.models_reused += other.models_reused

    def summary(self) -> str:
        return (f"{self.hits} as-of refits reused from the previous run, {self.models_reused} predicted with a kept "
                f"model (their query rows grew), {self.fitted} fitted")
