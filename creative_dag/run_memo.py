"""Skip a CLI run that would redo exactly the last successful one.

A run's outcome is decided by the landing folder (input files and images), the project's code,
the `CREATIVE_DAG_*` settings, the selection, the launch-date range and the calendar day (the
landing resource quarantines future dates against "today"). When all of these equal the last
successful run of the same selection and every selected table is still in the warehouse, the
run would only rewrite identical tables: `creative-dag materialize` says so and stops
(`--force` runs anyway). Runs started from Dagster (UI, sensors, automation) are never skipped.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import creative_dag


def _tree_stats(root: Path, pattern: str = "*") -> Iterable[str]:
    """name:size:mtime of every file under root (sorted), without reading them."""
    if not root.exists():
        return []
    found = []
    for path in sorted(root.rglob(pattern)):
        if path.is_file():
            stat = path.stat()
            found.append(f"{path.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns}")
    return found


def code_fingerprint() -> str:
    """Hash of the package's source files (an upgrade or a local edit changes it)."""
    package = Path(creative_dag.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*")):
        if path.is_file() and path.suffix in (".py", ".json", ".yaml"):
            digest.update(str(path.relative_to(package)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def run_fingerprint(landing: Path, selection: Sequence[str], launch_date_range: tuple[str, str] | None,
                    today: dt.date | None = None, asset_config: Mapping[str, Any] | None = None) -> str:
    """Hash of everything that decides a run's outcome (see the module docstring)."""
    parts = {
        "landing": list(_tree_stats(landing)),
        "code": code_fingerprint(),
        "settings": sorted((k, v) for k, v in os.environ.items() if k.startswith("CREATIVE_DAG_")),
        "selection": sorted(selection),
        "launch_dates": list(launch_date_range or ()),
        "today": (today or dt.date.today()).isoformat(),
        "asset_config": asset_config or {},
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


class RunMemo:
    """The fingerprint of the last successful run of each selection, in one JSON file."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def _read(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    @staticmethod
    def _key(selection: Sequence[str]) -> str:
        return hashlib.sha256("|".join(sorted(selection)).encode()).hexdigest()[:16]

    def last_run(self, selection: Sequence[str], fingerprint: str) -> list[str] | None:
        """Run ids of the last successful run with this fingerprint, or None."""
        entry = self._read().get(self._key(selection))
        if entry and entry.get("fingerprint") == fingerprint:
            return list(entry.get("run_ids", []))
        return None

    def record(self, selection: Sequence[str], fingerprint: str, run_ids: Sequence[str]) -> None:
        memo = self._read()
        memo[self._key(selection)] = {"fingerprint": fingerprint, "run_ids": list(run_ids),
                                      "at": dt.datetime.now(dt.UTC).isoformat()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".tmp-{uuid.uuid4().hex}-{self.path.name}")
        tmp.write_text(json.dumps(memo, indent=1))
        tmp.replace(self.path)

    def forget(self) -> None:
        self.path.unlink(missing_ok=True)
