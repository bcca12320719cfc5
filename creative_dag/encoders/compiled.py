"""Frozen TorchScript copies of the CPU forward passes (the CNN, EasyOCR's text detector, the text model), kept
between runs.

On CPU the CNN and the detector run as a traced and frozen copy (cnn._freeze_forward,
layout._freeze_detector): the same output, 1.4-1.45x faster; the text model runs as one where a home keeps it
(text._freeze). Building that copy is paid by every process that loads the model (each daily run, each step
process of the UI's executor, each `creative-dag assess`): measured on 2 cores, the CNN's load (timm import,
build, trace) 1.46 s against 0.01 s to load its saved copy, and the detector's trace 1.75 s against 0.3 s to
load and optimise its copy, and the text model's (transformers' import and load) 1.7-2.0 s against 0.3 s
(creative_dag/encoders/text.py). The copy changes only with what it is built from, so it is kept on disk
(`<home>/cache/compiled`), keyed by that: the weight files (path, size, modification time), the versions of
torch and of the library that builds the model, the source file that traces it, and the trace's settings. A
missing, stale or unreadable copy is built again; no output depends on whether it was used (tests compare
vectors and boxes with the eager model)."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from creative_dag.atomic_files import atomic_path, write_text_atomically


@contextmanager
def _quiet_torchscript() -> Iterator[None]:
    with warnings.catch_warnings():  # torch.jit.save / load are deprecated in favour of torch.export
        warnings.simplefilter("ignore", FutureWarning)
        yield


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


@dataclass(frozen=True)
class CompiledModels:
    """The folder of saved frozen modules: `<name>-<key>.pt` with its `<name>-<key>.json` metadata."""

    root: Path

    def slot(self, name: str, *, files: Iterable[str | os.PathLike], libraries: Iterable[str],
             sources: Iterable[str | os.PathLike], settings: Any) -> KeptCopy:
        """The place of the copy of `name` built from these weight `files`, with the versions of torch and of the
        `libraries` that build it, the `sources` that trace it and the trace's `settings` (its key hashes them).
        `name` carries the settings under which copies coexist."""
        files = tuple(Path(f) for f in files)
        digest = hashlib.sha256(repr(settings).encode())
        for library in ("torch", *libraries):
            digest.update(f"{library}={_version(library)};".encode())
        for path in files:
            stat = path.stat()
            digest.update(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns};".encode())
        for path in sources:
            digest.update(Path(path).read_bytes())
        return KeptCopy(self.root, name, digest.hexdigest()[:20], files)


@dataclass(frozen=True)
class KeptCopy:
    """One frozen module's place in the folder: the module under `<name>-<key>.pt`, its metadata beside it."""

    root: Path
    name: str
    key: str
    files: tuple[Path, ...]  # the weight files it is built from

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.root / f"{self.name}-{key}.pt", self.root / f"{self.name}-{key}.json"

    def load(self) -> tuple[Any, dict] | None:
        """(module, metadata) kept under this key, or None when there is none or it cannot be read."""
        import torch

        module_path, meta_path = self._paths(self.key)
        if not (module_path.is_file() and meta_path.is_file()):
            return None
        try:
            meta = json.loads(meta_path.read_text())
            with _quiet_torchscript():
                module = torch.jit.load(str(module_path), map_location="cpu")
        except Exception:  # noqa: BLE001 — a damaged copy is rebuilt, as if it were missing
            return None
        meta.pop(_BUILT_FROM, None)
        return module.eval(), meta

    def save(self, module: Any, meta: dict) -> None:
        """Keep `module` (a frozen ScriptModule) and its metadata, in place of the copies of this name built from the
        same weight files under other keys (other file versions, code or torch: stale). A copy built from other
        paths (another install sharing the home) is left to its install. The module file is written first, so a
        reader never finds metadata without its module. A folder that cannot be written only costs speed."""
        import torch

        module_path, meta_path = self._paths(self.key)
        built_from = sorted(str(f.resolve()) for f in self.files)
        try:
            with atomic_path(module_path) as temporary, _quiet_torchscript():
                torch.jit.save(module, str(temporary))
            write_text_atomically(meta_path, json.dumps({**meta, _BUILT_FROM: built_from}))
            for other in self.root.glob(f"{self.name}-*.json"):
                other_key = other.stem.removeprefix(f"{self.name}-")
                if other_key != self.key and other_key.isalnum() and _built_from(other) in (built_from, None):
                    for stale in self._paths(other_key):
                        stale.unlink(missing_ok=True)
        except OSError:
            return


_BUILT_FROM = "built_from"  # the weight files a copy was built from, in its metadata


def _built_from(meta_path: Path) -> list[str] | None:
    """The weight files a kept copy names; None when its metadata cannot be read (damaged: replaced too)."""
    try:
        return json.loads(meta_path.read_text()).get(_BUILT_FROM)
    except (OSError, ValueError, AttributeError):
        return None
