"""Write a file so that a reader, or the next run after a killed one, never sees half of it.

The content goes to a uniquely named temporary file beside the target, which is then renamed over
it (`os.replace` is atomic within a file system): readers see the old file or the new one, two
writers never share a temporary file, and a failed write leaves the old file and no debris.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """A temporary path to write the new content to; renamed over `target` when the block exits
    without an error, deleted otherwise. Its name keeps the target's suffix (np.savez, pq.write_table)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".tmp-{uuid.uuid4().hex}-{target.name}")
    try:
        yield temporary
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def write_text_atomically(target: str | os.PathLike, text: str, durable: bool = False) -> None:
    """`target` holds `text` (UTF-8) or what it held before, never a mix. durable: fsync before the
    rename, for files read by other machines or after a power cut (the HTML report)."""
    with atomic_path(target) as temporary, open(temporary, "w", encoding="utf-8") as out:
        out.write(text)
        if durable:
            out.flush()
            os.fsync(out.fileno())
