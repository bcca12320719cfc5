"""SIGINT (Ctrl-C) and SIGTERM (a service manager's stop), seen whatever Python handler is installed.

Dagster's in-process execution, which `creative-dag materialize`, `demo` and `watch` use, takes both
signals over during a run. It fails the step it interrupts, except that a step with a retry policy (the
encoders' encode and publish steps) takes the interrupt as a reason to retry: measured 2026-12-08, a Ctrl-C
30 s into `embeddings/layout` had the step started again 10 s later and the run went on to the end, exit 0.
The signal numbers still reach a wakeup pipe (`signal.set_wakeup_fd`), which `StopSignals` reads, so the
runner can stop the run itself (run_health.PoolWaitReporter). Set up and closed from the main thread.
"""

from __future__ import annotations

import os
import select
import signal

STOPS = frozenset({int(signal.SIGINT), int(signal.SIGTERM)})


class StopSignals:
    """The wakeup pipe of this process while it exists; `close()` gives the previous one back."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._previous = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        self.received: int | None = None  # the first stop signal's number

    def asked(self) -> bool:
        """Whether SIGTERM or SIGINT arrived since this was set up."""
        try:
            while data := os.read(self._read, 512):
                if self.received is None:
                    self.received = next((s for s in data if s in STOPS), None)
        except BlockingIOError:
            pass
        return self.received is not None

    def wait(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for a signal (or `wake`); whether a stop has been asked for."""
        if not self.asked():
            select.select([self._read], [], [], max(timeout_s, 0.0))
        return self.asked()

    def wake(self) -> None:
        """End a `wait` early (a byte that is no signal number)."""
        try:
            os.write(self._write, b"\0")
        except BlockingIOError:  # the pipe is full: a wait returns anyway
            pass

    def exit_code(self) -> int:
        """The shell's code for the signal received: 130 after SIGINT, 143 after SIGTERM."""
        return 128 + (self.received or int(signal.SIGINT))

    def close(self) -> None:
        current = signal.set_wakeup_fd(-1)
        # the previous pipe back, unless someone replaced ours meanwhile: then theirs stays
        signal.set_wakeup_fd(self._previous if current == self._write else current, warn_on_full_buffer=False)
        os.close(self._read)
        os.close(self._write)
