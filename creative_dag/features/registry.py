"""The feature registry (design §3): which stage every column belongs to.

The shipped registry (`feature_registry.json` beside this module) is extended or overridden,
entry by entry, by an optional `feature_registry.json` in the landing folder. A column with no
entry in either is `lifecycle`: deny by default, and reported so a person can register it.

File format (shipped and landing alike)::

    {"columns": {"<column>": {"stage": "prelaunch", "description": "...", "leakage_note": "..."}}}

A landing entry may give only `stage`; description and leakage note are then inherited from the
shipped entry of the same column.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from creative_dag.contract import REGISTRY_FILE

ID = "id"
PRELAUNCH = "prelaunch"
EARLY = "early"
LIFECYCLE = "lifecycle"
STAGES: tuple[str, ...] = (ID, PRELAUNCH, EARLY, LIFECYCLE)

# Stages each decision-time table may carry.
PRELAUNCH_STAGES: frozenset[str] = frozenset({ID, PRELAUNCH})
EARLY_STAGES: frozenset[str] = frozenset({ID, PRELAUNCH, EARLY})

SOURCE_SHIPPED = "shipped"
SOURCE_LANDING = "landing"
SOURCE_DEFAULT_DENY = "default-deny"

SHIPPED_REGISTRY_PATH = Path(__file__).with_name("feature_registry.json")

REGISTRY_TABLE_COLUMNS = (
    "column", "stage", "source", "shipped_stage", "description", "leakage_note", "raw_table",
)


class RegistryError(ValueError):
    """A registry file that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class RegistryEntry:
    """One column's registration."""

    column: str
    stage: str
    source: str
    description: str = ""
    leakage_note: str = ""
    shipped_stage: str | None = None  # the shipped stage when a landing entry overrides it


@dataclass(frozen=True)
class FeatureRegistry:
    """An effective registry: column name -> entry. Unknown columns resolve to `lifecycle`."""

    entries: Mapping[str, RegistryEntry] = field(default_factory=dict)
    landing_file: str | None = None  # the landing file merged in, if any

    def stage_of(self, column: str) -> str:
        entry = self.entries.get(column)
        return entry.stage if entry else LIFECYCLE

    def is_registered(self, column: str) -> bool:
        return column in self.entries

    def columns_in(self, stages: Iterable[str]) -> set[str]:
        """Registered columns whose stage is one of `stages`."""
        wanted = set(stages)
        return {c for c, e in self.entries.items() if e.stage in wanted}

    def allowed(self, columns: Iterable[str], stages: Iterable[str]) -> list[str]:
        """`columns` (order kept) whose effective stage is in `stages`; unregistered ones never are."""
        wanted = set(stages)
        return [c for c in columns if self.is_registered(c) and self.stage_of(c) in wanted]

    def unregistered(self, columns: Iterable[str]) -> list[str]:
        """Columns with no entry (denied by default), order kept."""
        return [c for c in columns if not self.is_registered(c)]

    def to_frame(self, raw_columns: Mapping[str, Iterable[str]] | None = None) -> pd.DataFrame:
        """The registry as a table (features.registry).

        One row per registered column, plus one `default-deny` row per raw column with no entry.
        `raw_columns` maps a raw table name (e.g. "raw.creatives") to its columns; `raw_table`
        says where each column was seen (comma-joined), empty when it is in no raw table.
        """
        seen: dict[str, list[str]] = {}
        for table, cols in (raw_columns or {}).items():
            for c in cols:
                seen.setdefault(c, []).append(table)
        rows = []
        for name, e in sorted(self.entries.items()):
            rows.append({
                "column": name, "stage": e.stage, "source": e.source,
                "shipped_stage": e.shipped_stage, "description": e.description,
                "leakage_note": e.leakage_note, "raw_table": ",".join(seen.get(name, [])),
            })
        for name in sorted(c for c in seen if c not in self.entries):
            rows.append({
                "column": name, "stage": LIFECYCLE, "source": SOURCE_DEFAULT_DENY,
                "shipped_stage": None,
                "description": "Not registered: treated as lifecycle (deny by default).",
                "leakage_note": f"Register it in the landing folder's {REGISTRY_FILE} to use it before launch.",
                "raw_table": ",".join(seen[name]),
            })
        return pd.DataFrame(rows, columns=list(REGISTRY_TABLE_COLUMNS))


def parse_registry(data: object, source: str, origin: str) -> dict[str, dict[str, str]]:
    """Validate a registry document; returns column -> {stage, description?, leakage_note?}.

    `origin` names the file in error messages.
    """
    if not isinstance(data, dict) or not isinstance(data.get("columns"), dict):
        raise RegistryError(
            f"{origin}: a feature registry must be a JSON object with a 'columns' object, e.g. "
            '{"columns": {"my_column": {"stage": "prelaunch", "description": "..."}}}'
        )
    parsed: dict[str, dict[str, str]] = {}
    for column, spec in data["columns"].items():
        if isinstance(spec, str):  # shorthand: "column": "prelaunch"
            spec = {"stage": spec}
        if not isinstance(spec, dict) or "stage" not in spec:
            raise RegistryError(f"{origin}: entry {column!r} needs a 'stage' (one of {', '.join(STAGES)})")
        stage = str(spec["stage"]).strip().lower()
        if stage not in STAGES:
            raise RegistryError(
                f"{origin}: entry {column!r} has stage {spec['stage']!r}; use one of {', '.join(STAGES)}"
            )
        entry = {"stage": stage}
        for key in ("description", "leakage_note"):
            if key in spec and spec[key] is not None:
                entry[key] = str(spec[key])
        parsed[str(column)] = entry
    return parsed


def read_registry_file(path: str | os.PathLike, source: str) -> dict[str, dict[str, str]]:
    """Read and validate one registry file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RegistryError(f"{path}: not valid JSON ({exc}); fix or remove the file") from exc
    return parse_registry(data, source, str(path))


def merge_registries(shipped: Mapping[str, Mapping[str, str]],
                     landing: Mapping[str, Mapping[str, str]] | None = None,
                     landing_file: str | None = None) -> FeatureRegistry:
    """Shipped entries, then landing entries on top (landing wins, per column)."""
    entries: dict[str, RegistryEntry] = {
        c: RegistryEntry(c, s["stage"], SOURCE_SHIPPED, s.get("description", ""), s.get("leakage_note", ""))
        for c, s in shipped.items()
    }
    for c, s in (landing or {}).items():
        base = entries.get(c)
        entries[c] = RegistryEntry(
            column=c,
            stage=s["stage"],
            source=SOURCE_LANDING,
            description=s.get("description", base.description if base else ""),
            leakage_note=s.get("leakage_note", base.leakage_note if base else ""),
            shipped_stage=base.stage if base else None,
        )
    return FeatureRegistry(entries=entries, landing_file=landing_file)


def load_shipped_registry() -> FeatureRegistry:
    """The registry shipped with the package."""
    return merge_registries(read_registry_file(SHIPPED_REGISTRY_PATH, SOURCE_SHIPPED))


def load_registry(landing_root: str | os.PathLike | None = None) -> FeatureRegistry:
    """The effective registry: shipped, extended/overridden by `<landing_root>/feature_registry.json`.

    A missing landing file is fine (shipped only); a malformed one raises RegistryError naming it,
    because silently ignoring a registry someone wrote could let a column through or block one.
    """
    shipped = read_registry_file(SHIPPED_REGISTRY_PATH, SOURCE_SHIPPED)
    if landing_root is None:
        return merge_registries(shipped)
    landing_path = Path(landing_root) / REGISTRY_FILE
    if not landing_path.exists():
        return merge_registries(shipped)
    return merge_registries(shipped, read_registry_file(landing_path, SOURCE_LANDING), str(landing_path))
