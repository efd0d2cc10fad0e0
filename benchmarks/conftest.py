"""Shared pieces of the pytest-benchmark suite (run explicitly: ``pytest benchmarks``).

Every benchmark builds a fresh emulator in ``setup`` (the replay mutates it), times only the
replay with ``benchmark.pedantic(..., rounds=R, iterations=1)``, and checks its result.  Sizes
depend on the engine: the pure-Python reference engine gets small streams so the suite stays
short on a 2-core CI machine.  ``MEMCG_EMU_BENCH_LARGE=1`` adds the 10^7-event runs.
CI smoke-runs the suite with ``--benchmark-disable`` (each target runs once).
"""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

import memcg_emu
from memcg_emu.events import Op, from_columns

LARGE = os.environ.get("MEMCG_EMU_BENCH_LARGE") == "1"
BACKENDS = ["python", "cython"]


def skip_unless_available(backend: str) -> None:
    if backend == "cython" and memcg_emu.BACKEND != "cython":
        pytest.skip("compiled engine memcg_emu._core not built (or MEMCG_EMU_PUREPYTHON=1)")


@pytest.fixture(params=BACKENDS)
def backend(request):
    skip_unless_available(request.param)
    return request.param


def alternating(n: int, task: int, nr_pages: int, kind: int, gfp: int) -> np.ndarray:
    """n events: CHARGE nr_pages, UNCHARGE nr_pages, CHARGE, ... (n even) for one task."""
    assert n % 2 == 0
    op = np.empty(n, np.uint8)
    op[0::2] = Op.CHARGE
    op[1::2] = Op.UNCHARGE
    return from_columns(op, task=task, arg=nr_pages, gfp=gfp, kind=kind)


class Timed:
    """Wraps a replay target: keeps the least thread CPU time of a call, the least time
    inside the engine loop (``ReplayResult.elapsed``) over the rounds, and the last result,
    so events/s can be reported also when pytest-benchmark is disabled.  (Minima over
    rounds of one target; ``memcg-emu bench`` interleaves the targets round by round.)"""

    def __init__(self, fn):
        self.fn = fn
        self.best = float("inf")
        self.best_loop = float("inf")
        self.result = None
        self.calls = 0

    def __call__(self, *args, **kwargs):
        t0 = time.thread_time_ns()
        self.result = self.fn(*args, **kwargs)
        self.best = min(self.best, (time.thread_time_ns() - t0) / 1e9)
        res = self.result[-1] if isinstance(self.result, tuple) else self.result
        if res is not None and getattr(res, "elapsed", 0) > 0:
            self.best_loop = min(self.best_loop, res.elapsed)
        self.calls += 1
        return self.result


def report(benchmark, timed: Timed, n_events: int, backend: str | None = None) -> None:
    benchmark.extra_info["events"] = n_events
    if backend is not None:
        benchmark.extra_info["backend"] = backend
    if timed.best > 0 and timed.best != float("inf"):
        benchmark.extra_info["events_per_sec"] = n_events / timed.best
        benchmark.extra_info["ns_per_event"] = timed.best * 1e9 / n_events
    if timed.best_loop != float("inf"):
        # inside the engine loop only (best round; without the snapshot and the result)
        benchmark.extra_info["loop_events_per_sec"] = n_events / timed.best_loop


@pytest.fixture
def bench():
    """Helpers for the benchmark modules (conftest modules are not imported directly)."""

    class _Helpers:
        LARGE = LARGE
        Timed = Timed
        alternating = staticmethod(alternating)
        report = staticmethod(report)

    return _Helpers
