"""Wording shared by the sentences the marts write for people (reasons, evidence)."""

from __future__ import annotations


def count_of(n: float, noun: str, plural: str | None = None) -> str:
    """'1 conversion', '2 conversions', '1,204 clicks': a count with its noun in the right number."""
    k = round(float(n))
    return f"{k:,} {noun if k == 1 else (plural or noun + 's')}"


def below(value: float, threshold: float) -> str:
    """`value` (< threshold) with 2 decimals, or 3 where 2 would round it up to the threshold it is
    below ('p = 0.80 (< 0.80)' read as a contradiction)."""
    return f"{value:.2f}" if round(value, 2) < threshold else f"{int(value * 1000) / 1000:.3f}"
