"""The feature registry (docs/features.md): which stage every column belongs to.

The shipped registry (`feature_registry.json` beside this module) is extended or overridden,
entry by entry, by an optional `feature_registry.json` in the landing folder. A column with no
entry in either is `lifecycle`: deny by default, and reported so a person can register it.

File format (shipped and landing alike)::

    {"columns": {"<column>": {"stage": "prelaunch", "description": "...", "leakage_note": "..."}}}

A landing entry may give only `stage`; description and leakage note are then inherited from the
shipped entry of the same column.

A landing file is untrusted input, read defensively: it must be a regular UTF-8 JSON file of at
most MAX_REGISTRY_BYTES inside the landing folder (not a symlink out of it), shaped exactly as
above (no duplicate keys, string values, no unknown entry keys). It may not move the contract's
columns (ids, launch_date, image_path, metric columns) to another stage, nor give the `id` stage
to any other column: `id` columns skip the leakage sniff, so that label must stay with the keys.
Every problem is a RegistryError naming the file and the fix.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from creative_dag.contract import (
    CREATIVES_REQUIRED,
    METRICS_OPTIONAL,
    METRICS_REQUIRED,
    REGISTRY_FILE,
)

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

# A registry lists a few hundred columns at most; 1 MB is far beyond any real one.
MAX_REGISTRY_BYTES = 1_000_000
ENTRY_KEYS = ("stage", "description", "leakage_note")
# Columns whose stage a landing file may not change: the contract's keys and anchors, and the
# metric columns (outcomes by definition).
PROTECTED_COLUMNS: frozenset[str] = frozenset((*CREATIVES_REQUIRED, *METRICS_REQUIRED, *METRICS_OPTIONAL))

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
    example = '{"columns": {"my_column": {"stage": "prelaunch", "description": "..."}}}'
    if not isinstance(data, dict) or not isinstance(data.get("columns"), dict):
        raise RegistryError(
            f"{origin}: a feature registry must be a JSON object with a 'columns' object, e.g. {example}"
        )
    parsed: dict[str, dict[str, str]] = {}
    for column, spec in data["columns"].items():
        name = str(column).strip()
        if not name:
            raise RegistryError(f"{origin}: an entry has an empty column name; remove it or name the column")
        if isinstance(spec, str):  # shorthand: "column": "prelaunch"
            spec = {"stage": spec}
        if not isinstance(spec, dict) or "stage" not in spec:
            raise RegistryError(f"{origin}: entry {_short(name)} needs a 'stage' (one of {', '.join(STAGES)}), "
                                f"e.g. {example}")
        unknown = [k for k in spec if k not in ENTRY_KEYS]
        if unknown:
            raise RegistryError(f"{origin}: entry {_short(name)} has unknown key(s) {', '.join(map(_short, unknown))}; "
                                f"an entry may only have {', '.join(ENTRY_KEYS)}")
        bad_types = [k for k in ENTRY_KEYS if k in spec and not isinstance(spec[k], str)
                     and not (k != "stage" and spec[k] is None)]
        if bad_types:
            raise RegistryError(f"{origin}: entry {_short(name)}: {', '.join(bad_types)} must be text, not "
                                f"{type(spec[bad_types[0]]).__name__}; write it as a JSON string")
        stage = spec["stage"].strip().lower()
        if stage not in STAGES:
            raise RegistryError(
                f"{origin}: entry {_short(name)} has stage {_short(spec['stage'])}; use one of {', '.join(STAGES)}"
            )
        entry = {"stage": stage}
        for key in ("description", "leakage_note"):
            if spec.get(key) is not None:
                entry[key] = spec[key]
        parsed[name] = entry
    return parsed


def read_registry_file(path: str | os.PathLike, source: str) -> dict[str, dict[str, str]]:
    """Read and validate one registry file (a regular UTF-8 JSON file of at most MAX_REGISTRY_BYTES)."""
    path = Path(path)
    fix = "fix or remove the file" if source == SOURCE_LANDING else "reinstall the package"
    try:
        info = os.stat(path)
    except OSError as exc:
        raise RegistryError(f"{path}: cannot be read ({exc.strerror or exc}); {fix}") from None
    if not stat.S_ISREG(info.st_mode):  # a FIFO would block the read forever
        raise RegistryError(f"{path} is not a regular file; replace it with a JSON file or remove it")
    if info.st_size > MAX_REGISTRY_BYTES:
        raise RegistryError(f"{path} has {info.st_size:,} bytes, more than {MAX_REGISTRY_BYTES:,} for a feature "
                            f"registry; {fix}")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RegistryError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise RegistryError(f"{path}: cannot be read ({exc.strerror or exc}); {fix}") from None
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise RegistryError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
                            f"{fix}") from None
    except RecursionError:
        raise RegistryError(f"{path}: JSON nested too deeply to be a feature registry; {fix}") from None
    except ValueError as exc:  # duplicate keys
        raise RegistryError(f"{path}: {exc}; keep one entry per key") from None
    return parse_registry(data, source, str(path))


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """json object hook: a key written twice would silently keep only the last entry."""
    keys = [k for k, _ in pairs]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ValueError(f"key(s) {', '.join(map(_short, repeated))} appear more than once in one object")
    return dict(pairs)


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _check_landing_overrides(shipped: Mapping[str, Mapping[str, str]], landing: Mapping[str, Mapping[str, str]],
                             origin: str) -> None:
    """A landing file may not move the contract's columns, nor hand out the `id` stage."""
    for column, spec in landing.items():
        base = shipped.get(column, {}).get("stage")
        if column in PROTECTED_COLUMNS and base is not None and spec["stage"] != base:
            raise RegistryError(
                f"{origin}: entry {_short(column)} relabels a contract column from {base!r} to {spec['stage']!r}; "
                f"its stage is fixed by the input contract: remove the entry"
            )
        if spec["stage"] == ID and base != ID:
            raise RegistryError(
                f"{origin}: entry {_short(column)} has stage 'id', which is reserved for the contract's keys "
                f"(id columns skip the leakage checks); use 'prelaunch', 'early' or 'lifecycle'"
            )


def merge_registries(shipped: Mapping[str, Mapping[str, str]],
                     landing: Mapping[str, Mapping[str, str]] | None = None,
                     landing_file: str | None = None) -> FeatureRegistry:
    """Shipped entries, then landing entries on top (landing wins, per column).

    Raises RegistryError when a landing entry relabels a protected column or claims the `id` stage.
    """
    if landing:
        _check_landing_overrides(shipped, landing, landing_file or REGISTRY_FILE)
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
    if not os.path.lexists(landing_path):
        return merge_registries(shipped)
    _check_inside(landing_path, Path(landing_root))
    return merge_registries(shipped, read_registry_file(landing_path, SOURCE_LANDING), str(landing_path))


def _check_inside(path: Path, root: Path) -> None:
    """The landing registry must resolve inside the landing folder (no symlink to another file)."""
    resolved, base = path.resolve(), root.resolve()
    if base not in resolved.parents:
        raise RegistryError(
            f"{path} is a link to {resolved}, outside the landing folder {base}; copy the registry into the "
            f"folder instead of linking it"
        )
