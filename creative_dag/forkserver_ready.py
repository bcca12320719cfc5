"""Imported last by the step processes' forkserver (`step_processes.PRELOAD_MODULES`), after the project and
its libraries: it prepares what every forked step process inherits.

- `gc.freeze()` moves the preloaded objects (the definitions, torch, pandas, Dagster: ~0.5 M) to the
  collector's permanent generation, so no step's full collection walks them again, and walking them
  no longer writes to their pages, which forked processes would then copy: what CPython's `gc.freeze`
  documentation recommends before forking.
- Full collections are spaced out as in the CLI (`process_gc`).

Python's forkserver offers no hook other than importing modules, hence a module whose import is the
point; nothing else imports it.
"""

from __future__ import annotations

import gc

from creative_dag.process_gc import space_out_full_collections

space_out_full_collections()
gc.freeze()
