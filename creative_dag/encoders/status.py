"""Per-block model status: which model a block uses, its version, and whether it is available.

One row per block in `embeddings.model_status`:
block, model_id, model_version (hash of the weights, plus settings that change the output),
dim (vector length), device, available (bool), reason (why not, or '' when available).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

STATUS_COLUMNS = ("block", "model_id", "model_version", "dim", "device", "available", "reason")


@dataclass(frozen=True)
class BlockStatus:
    """The status of one similarity block's model, as loaded (or not) in this process."""

    block: str
    model_id: str
    model_version: str | None
    dim: int | None
    device: str
    available: bool
    reason: str = ""

    @classmethod
    def unavailable(cls, block: str, model_id: str, reason: str, device: str = "cpu") -> BlockStatus:
        return cls(block=block, model_id=model_id, model_version=None, dim=None, device=device,
                   available=False, reason=reason)

    def as_row(self) -> dict:
        return asdict(self)


def status_frame(statuses: list[BlockStatus]) -> pd.DataFrame:
    """Status rows -> DataFrame with the STATUS_COLUMNS (typed even when empty)."""
    frame = pd.DataFrame([s.as_row() for s in statuses], columns=list(STATUS_COLUMNS))
    return frame.astype({"block": "string", "model_id": "string", "model_version": "string",
                         "dim": "Int64", "device": "string", "available": "boolean", "reason": "string"})


def encoder_status(encoder: object) -> BlockStatus:
    """Status of a loaded encoder (anything with block/model_id/model_version/dim/device)."""
    return BlockStatus(
        block=encoder.block,
        model_id=encoder.model_id,
        model_version=encoder.model_version,
        dim=int(encoder.dim),
        device=getattr(encoder, "device", "cpu"),
        available=True,
        reason="",
    )
