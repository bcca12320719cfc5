"""Similarity block names and default weights (docs/cbr.md). Everything imports them from here."""

from __future__ import annotations

CLIP = "clip"
CNN = "cnn"
VISUAL = "visual"
LAYOUT = "layout"
TEXT = "text"
CONTEXT = "context"

BLOCKS: tuple[str, ...] = (CLIP, CNN, VISUAL, LAYOUT, TEXT, CONTEXT)
# Image-derived blocks are stored as `embeddings.<block>`; context is built from features.prelaunch.
EMBEDDING_BLOCKS: tuple[str, ...] = (CLIP, CNN, VISUAL, LAYOUT, TEXT)

DEFAULT_WEIGHTS: dict[str, float] = {
    CLIP: 1.0,
    CNN: 1.0,
    VISUAL: 1.0,
    LAYOUT: 0.75,
    TEXT: 0.75,
    CONTEXT: 0.5,
}


def parse_weights(spec: str | None) -> dict[str, float]:
    """Parse `clip=1,cnn=0.5` into a weight dict; unknown block names are an error."""
    if not spec:
        return dict(DEFAULT_WEIGHTS)
    weights: dict[str, float] = {}
    for part in spec.split(","):
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in BLOCKS:
            raise ValueError(f"unknown block {name!r} in weights {spec!r}; blocks are {', '.join(BLOCKS)}")
        try:
            weights[name] = float(value)
        except ValueError as exc:
            raise ValueError(f"weight for {name!r} must be a number, got {value!r}") from exc
        if weights[name] < 0:
            raise ValueError(f"weight for {name!r} must be >= 0, got {value!r}")
    return weights
