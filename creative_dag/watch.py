"""One long-lived process that runs the daily path whenever the landing folder changes.

The daemon's path (sensors and automation) starts a fresh process per run, which pays ~10 s of
imports (torch, torchvision, EasyOCR, great_expectations, the definitions) and the libraries'
first-call costs on every new day. `creative-dag watch` keeps one process: it polls the landing
folder, waits until a change has settled (an export still being copied must not be read half
written), then runs the same `materialize` a user would type, in-process. The first run after a
start pays the imports; the later ones do not. What it costs: the process stays resident between
runs (up to the ~1.9 GB peak of a demo new day), and it must restart to pick up an upgrade, which it
does by itself when the package's source files change.

The loop is plain Python with its clock, sleep and run injected, so it is tested without a pipeline.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

WATCH_LOCK = "watch.lock"


@dataclass
class WatchOutcome:
    """Why `watch_landing` returned, and how many runs it started."""

    reason: str  # "stopped" | "code changed" | "max runs"
    runs: int
    failed: int


def watch_landing(fingerprint: Callable[[], str], run: Callable[[], bool | None], *,
                  settle_s: float, interval_s: float, wait: Callable[[float], bool],
                  clock: Callable[[], float], code_changed: Callable[[], bool] = lambda: False,
                  stop_requested: Callable[[], bool] = lambda: False,
                  report: Callable[[str], None] = print, max_runs: int | None = None) -> WatchOutcome:
    """Poll `fingerprint` every `interval_s`; once a new value has stayed the same for `settle_s`, call `run`.

    fingerprint: a hash of what decides a run (landing files, code, settings, day: run_memo.run_fingerprint).
    run: one materialisation; True on success, None when it found nothing to do (not counted as a run). A
    failed run is not retried until the fingerprint changes again (a new export, an upgrade, the next day),
    so a broken export cannot loop.
    wait(seconds): sleep; returns True when the watch is asked to stop (SIGTERM, Ctrl-C between runs).
    code_changed: the package's source on disk differs from the code this process runs: stop to restart.
    stop_requested: a stop was asked for while a run was going (the run finished first).
    """
    handled: str | None = None  # the fingerprint of the last run started, succeeded or not
    pending: str | None = None
    pending_since = 0.0
    runs = failed = 0
    while True:
        if stop_requested():
            return WatchOutcome("stopped", runs, failed)
        if code_changed():
            return WatchOutcome("code changed", runs, failed)
        current = fingerprint()
        pause = interval_s
        if current != handled:
            if current != pending:
                if pending is None and handled is not None:  # once per change, not at every look while it goes on
                    report(f"the landing folder (or the code, settings or day) changed; running once it has not "
                           f"changed for {settle_s:.0f} s")
                pending, pending_since = current, clock()
            settled_for = clock() - pending_since
            if settled_for >= settle_s:
                handled, pending = current, None
                ran = run()
                if ran is None:  # nothing to do: the last successful run's inputs
                    continue
                runs += 1
                if not ran:
                    failed += 1
                    if not stop_requested():
                        report("the run failed; the next run starts when the landing folder, the code or the "
                               "settings change, or on the next day (`creative-dag runs` shows runs in progress)")
                if max_runs is not None and runs >= max_runs:
                    return WatchOutcome("max runs", runs, failed)
                continue
            pause = min(interval_s, settle_s - settled_for)
        if wait(pause):
            return WatchOutcome("stopped", runs, failed)


class WatchLock:
    """One watch per home: an exclusive lock on <home>/state/watch.lock, released when the process ends
    (the file descriptor is not inherited, so a restart by exec takes it again)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / WATCH_LOCK
        self._handle = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 (held open for the life of the process)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise RuntimeError(f"another `creative-dag watch` (pid {holder}) is watching this home ({self.path}); "
                               "stop it first, or watch another --home") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def warm_up(ocr_backend: str) -> tuple[list[str], float]:
    """Import what the runs' steps import lazily (the libraries a forkserver would preload, the OCR backend,
    the text tokenizer), so that even the first run after a start skips those imports. Returns the modules
    imported and the seconds it took; a library that is not installed is left to the step that needs it."""
    import importlib
    import time

    from creative_dag.step_processes import LAST_MODULE, PRELOAD_MODULES

    ocr = "rapidocr_onnxruntime" if ocr_backend == "rapidocr" else "easyocr"
    started, imported = time.perf_counter(), []
    for name in (*(m for m in PRELOAD_MODULES if m != LAST_MODULE), ocr, "tokenizers"):
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        imported.append(name)
    return imported, time.perf_counter() - started


def resident_mb() -> float | None:
    """This process's resident memory in MB (Linux /proc), None where it cannot be read."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None
