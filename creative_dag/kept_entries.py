"""Results a run can take from the run before: a file of entries keyed by a digest of their inputs.

The forecast's refit memo and the attribution's variant index work the same way: `open` loads what
the previous run saved (a missing or unreadable file is an empty memo, with a `note` saying why),
`get` returns an entry whose key is known (and marks it used), `put` records a new one, and `save`
writes only the entries this run used, atomically, so the file never grows beyond one run's needs.
Subclasses say how a file is read and written and how keys are made.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from creative_dag.atomic_files import atomic_path

V = TypeVar("V")


@dataclass
class KeptEntries(ABC, Generic[V]):
    """path: the file (None: in memory only, nothing saved); salt: the code the entries depend on
    (part of every key); stored: what the previous run saved; used: what this run got or put."""

    path: Path | None
    salt: str = ""
    stored: dict[str, V] = field(default_factory=dict)
    used: dict[str, V] = field(default_factory=dict)
    hits: int = 0
    note: str = ""
    what: ClassVar[str] = "kept entries"  # for the note on an unreadable file

    @classmethod
    def open(cls, path: str | os.PathLike, **fields: Any) -> KeptEntries[V]:
        """The entries saved at `path`, or none (with a note) when it is missing or unreadable."""
        kept = cls(Path(path), **fields)
        if not kept.path.exists():
            return kept
        try:
            kept.stored = kept._read(kept.path)
        except Exception as exc:  # noqa: BLE001 — any damage means "start afresh", said in the note
            kept.note = f"{cls.what} {kept.path} unreadable ({type(exc).__name__}: {exc}); starting afresh"
        return kept

    def get(self, key: str) -> V | None:
        value = self.stored.get(key)
        if value is not None:
            self.hits += 1
            self.used[key] = value
        return value

    def put(self, key: str, value: V) -> None:
        self.used[key] = value

    def save(self) -> None:
        """Write the entries this run used (atomically: a killed run leaves the previous file)."""
        if self.path is not None:
            with atomic_path(self.path) as partial:
                self._write(partial, self.used)

    @abstractmethod
    def _read(self, path: Path) -> dict[str, V]:
        """The entries of a saved file (raise on anything unreadable)."""

    @abstractmethod
    def _write(self, path: Path, entries: dict[str, V]) -> None:
        """Write `entries` to `path` (a temporary file with the target's suffix)."""


@dataclass
class KeptStrings(KeptEntries[str]):
    """Entries that are strings, kept as one JSON object (the attribution's variant index, the report's
    thumbnails)."""

    def _read(self, path: Path) -> dict[str, str]:
        loaded = json.loads(path.read_text())
        if not isinstance(loaded, dict):
            raise TypeError(f"expected a JSON object, found {type(loaded).__name__}")
        return {str(k): str(v) for k, v in loaded.items()}

    def _write(self, path: Path, entries: dict[str, str]) -> None:
        path.write_text(json.dumps(entries, sort_keys=True))
