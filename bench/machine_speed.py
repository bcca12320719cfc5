"""How fast this machine is right now, as two reference figures stored beside a benchmark's timings.

The shared 2-core development machine runs the same code up to 1.7x slower in one hour than in
another (docs/operations.md), so seconds from different sessions only compare together with these:
a float32 2048 x 2048 matrix product on `threads` torch threads (the encoders' kind of work, in
GFLOPS) and a pure-Python loop on one core (the marts' and Dagster's kind, in million additions per
second). Higher is faster for both.

Usage: python bench/machine_speed.py [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import time

MATMUL_SIDE = 2048
MATMUL_REPEATS = 20
LOOP_ADDITIONS = 5_000_000


def measure(threads: int = 2) -> dict[str, float]:
    """{"matmul_gflops": ..., "python_madds_per_s": ...}: best of three short timings each."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.rand(MATMUL_SIDE, MATMUL_SIDE), torch.rand(MATMUL_SIDE, MATMUL_SIDE)
        for _ in range(3):  # warm the allocator and the BLAS threads
            a @ b
        matmul_s = min(_timed(lambda: [a @ b for _ in range(MATMUL_REPEATS)]) for _ in range(3))
    finally:
        torch.set_num_threads(previous)
    loop_s = min(_timed(_python_loop) for _ in range(3))
    return {"matmul_gflops": round(2 * MATMUL_SIDE ** 3 * MATMUL_REPEATS / matmul_s / 1e9, 1),
            "python_madds_per_s": round(LOOP_ADDITIONS / loop_s / 1e6, 1)}


def _timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def _python_loop() -> int:
    total = 0
    for i in range(LOOP_ADDITIONS):
        total += i
    return total


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    print(json.dumps(measure(parser.parse_args().threads)))
