"""A batch of new, unlaunched candidate creatives: images plus optional context and ad copy.

Sources: the CLI's files and folders (`creative-dag assess IMAGE_OR_DIR...`) or a landing folder
`<landing>/candidates/<batch>/` (images plus an optional `candidates.csv`; see docs/candidates.md).
Every image is probed with the ingest's own rules (`landing.images.probe_image_bytes`: format,
truncation, decompression bombs, degenerate sizes), so a candidate is accepted exactly when a landed
creative would be. Problems never stop the batch: each becomes a row of `problems` naming the file
and what to do, and the good candidates go on.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from creative_dag.cbr.context import CONTEXT_COLUMNS
from creative_dag.landing.images import OK, probe_image_bytes

CANDIDATES_DIR = "candidates"
CANDIDATES_FILE = "candidates.csv"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
COPY_COLUMNS = ("headline", "primary_text", "cta")
ITEM_COLUMNS = ("candidate_id", "name", "image_path", "sha256", "width", "height", "account_id", "campaign_id",
                *CONTEXT_COLUMNS, *COPY_COLUMNS)
PROBLEM_COLUMNS = ("candidate", "reason", "detail")


@dataclass
class CandidateBatch:
    """items: one row per accepted candidate (ITEM_COLUMNS); problems: (candidate, reason, detail) rows;
    images: candidate_id -> file bytes (read once, reused by every encoder)."""

    batch: str
    items: pd.DataFrame
    problems: pd.DataFrame
    images: dict[str, bytes] = field(default_factory=dict)

    def read_bytes(self, candidate_id: str) -> bytes:
        return self.images[candidate_id]


def candidate_id(batch: str, name: str) -> str:
    """Ids that can never collide with a landed creative id: `cand:<batch>/<file stem>`."""
    return f"cand:{batch}/{name}"


def batch_folders(landing: str | Path) -> list[Path]:
    """`<landing>/candidates/<batch>/` folders holding at least one image, by name."""
    root = Path(landing) / CANDIDATES_DIR
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and _images_in(p))


def valid_batch_name(name: str) -> bool:
    """Batch names become Dagster partition keys and file names: letters, digits, `-`, `_`, `.`."""
    return bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name))


def read_batch_folder(folder: str | Path, defaults: Mapping[str, str] | None = None,
                      batch: str | None = None) -> CandidateBatch:
    """A landing batch folder: its images, with `candidates.csv` (column `image` = file name, plus
    account_id, campaign_id, context and copy columns) when present; `defaults` fill what it lacks.
    batch: the batch's name (default: the folder's)."""
    folder = Path(folder)
    rows: dict[str, dict[str, str]] = {}
    problems: list[dict[str, str]] = []
    sheet = folder / CANDIDATES_FILE
    if sheet.exists():
        try:
            table = pd.read_csv(sheet, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            problems.append({"candidate": str(sheet), "reason": "unreadable_candidates_csv",
                             "detail": f"{exc}; write it as UTF-8 CSV with a header row (image, account_id, ...)"})
            table = pd.DataFrame()
        if len(table) and "image" not in table.columns:
            problems.append({"candidate": str(sheet), "reason": "candidates_csv_without_image_column",
                             "detail": f"columns are {', '.join(table.columns)}; add an `image` column naming "
                                       "each image file of the folder"})
        elif len(table):
            for i, rec in enumerate(table.to_dict("records")):
                name = str(rec.pop("image")).strip()
                if not (folder / name).is_file():
                    problems.append({"candidate": name or f"{sheet} row {i + 2}", "reason": "missing_image_file",
                                     "detail": f"{sheet} row {i + 2} names {name!r}, which is not a file in "
                                               f"{folder}"})
                    continue
                rows[name] = {k: str(v).strip() for k, v in rec.items() if str(v).strip()}
    files = _images_in(folder)
    problems += _not_images(folder)
    return read_candidates(batch or folder.name, files, defaults, {f: rows.get(f.name, {}) for f in files},
                           problems)


def read_candidates(batch: str, paths: Sequence[str | Path], defaults: Mapping[str, str] | None = None,
                    per_file: Mapping[Path, Mapping[str, str]] | None = None,
                    problems: list[dict[str, str]] | None = None) -> CandidateBatch:
    """Probe and read every image of `paths` (files, or folders whose images are taken); `defaults` are the
    account, context and copy of every candidate, `per_file` overrides them per image."""
    problems = list(problems or [])
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = _images_in(p)
            files += found
            problems += _not_images(p)
            if not found:
                problems.append({"candidate": str(p), "reason": "missing_image_file",
                                 "detail": f"{p} holds no image file ({', '.join(IMAGE_SUFFIXES)})"})
        elif p.is_file():
            files.append(p)
        else:
            problems.append({"candidate": str(p), "reason": "missing_image_file",
                             "detail": f"{p} is not a file or folder; check the path"})
    rows, images, seen_sha, seen_ids = [], {}, {}, set()
    for f in files:
        name = f.stem
        cid = candidate_id(batch, name)
        if cid in seen_ids:  # two files with the same stem (ad.jpg, ad.png): keep both, told apart
            name = f.name
            cid = candidate_id(batch, name)
        try:
            data = f.read_bytes()
        except OSError as exc:
            problems.append({"candidate": name, "reason": "unreadable_image", "detail": f"{f}: {exc}"})
            continue
        probe = probe_image_bytes(data)
        if probe.decode_status != OK:
            problems.append({"candidate": name, "reason": probe.decode_status,
                             "detail": f"{f}: {probe.detail}; replace the file with a JPEG or PNG of at least "
                                       "16 px a side"})
            continue
        digest = hashlib.sha256(data).hexdigest()
        if digest in seen_sha:
            problems.append({"candidate": name, "reason": "duplicate_in_batch",
                             "detail": f"{f} has the same bytes as candidate {seen_sha[digest]}; assessed once, "
                                       "as that one"})
            continue
        seen_sha[digest] = name
        seen_ids.add(cid)
        row = {**(defaults or {}), **((per_file or {}).get(f, {}))}
        rows.append({"candidate_id": cid, "name": name, "image_path": str(f), "sha256": digest,
                     "width": probe.width, "height": probe.height, **row})
        images[cid] = data
    items = pd.DataFrame(rows)
    for c in ITEM_COLUMNS:
        if c not in items.columns:
            items[c] = None
    items = items[[*ITEM_COLUMNS, *[c for c in items.columns if c not in ITEM_COLUMNS]]]
    return CandidateBatch(batch, items.reset_index(drop=True),
                          pd.DataFrame(problems, columns=list(PROBLEM_COLUMNS)), images)


def parse_context(pairs: Sequence[str]) -> dict[str, str]:
    """`key=value` options (account_id, campaign_id, context and copy columns) -> dict; unknown keys raise."""
    allowed = ("account_id", "campaign_id", *CONTEXT_COLUMNS, *COPY_COLUMNS)
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--context {pair!r}: write key=value, e.g. placement=feed")
        if key not in allowed:
            raise ValueError(f"--context {key!r} is not a context column; use one of {', '.join(allowed)}")
        out[key] = value.strip()
    return out


def read_copy(path: str | Path) -> dict[str, str]:
    """An ad-copy text file: the first non-empty line is the headline, the rest the primary text."""
    lines = [ln.rstrip() for ln in Path(path).read_text(encoding="utf-8-sig").splitlines()]
    lines = [ln for ln in lines if ln.strip()]
    if not lines:
        return {}
    out = {"headline": lines[0].strip()}
    if len(lines) > 1:
        out["primary_text"] = "\n".join(lines[1:]).strip()
    return out


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not p.name.startswith("."))


# what a batch folder may hold beside its images: the candidates table, copy and notes
_SIDECAR_SUFFIXES = (".csv", ".txt", ".md", ".json", ".yaml", ".yml")


def _not_images(folder: Path) -> list[dict[str, str]]:
    """A problem row for each file of a batch folder that is neither an image nor a sidecar (hidden files
    aside): a brief.pdf or logo.eps beside the images is named, not skipped without a word."""
    others = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                    and p.suffix.lower() not in (*IMAGE_SUFFIXES, *_SIDECAR_SUFFIXES))
    return [{"candidate": o.name, "reason": "image_format_not_allowed",
             "detail": f"{o}: only {', '.join(s.lstrip('.') for s in IMAGE_SUFFIXES)} files are read; convert it "
                       "to JPEG or PNG"} for o in others]
