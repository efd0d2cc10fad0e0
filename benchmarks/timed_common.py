"""Shared pieces of the timed-engine benchmarks (``simpy_model.py``, ``timed_scale.py``,
``timed_incident.py``, ``test_bench_timed.py``, ``test_bench_simpy.py``).

* Which timed schedulers exist: ``TimedSim(scheduler="python")`` (the event loop in
  ``memcg_emu/timed.py``) always; ``scheduler="cython"`` (the compiled event loop) only when
  ``TimedSim`` takes a ``scheduler`` argument, the compiled engine is built, and a small run
  reports ``summary["scheduler"] == "cython"``.  Before the ``scheduler`` argument existed the
  timed engine had one event loop, the Python one; :func:`sched_kwargs` then passes nothing.
* Timing: thread CPU time (``time.thread_time_ns``) of the measured call only, the minimum over
  repeats that interleave the targets (round r runs every target once), all in one process,
  so load from other processes hits every target alike.
* Tables: Markdown, ready to paste into the README.
"""
from __future__ import annotations

import functools
import inspect
import time

import memcg_emu as me
from memcg_emu import timed

SCHEDULERS = ("python", "cython")


def _has_scheduler_arg() -> bool:
    return "scheduler" in inspect.signature(timed.TimedSim.__init__).parameters


@functools.cache
def compiled_scheduler_status() -> tuple[bool, str]:
    """(available, why not)."""
    if me.BACKEND != "cython":
        return False, "compiled engine memcg_emu._core not built (or MEMCG_EMU_PUREPYTHON=1)"
    if not _has_scheduler_arg():
        return False, "compiled scheduler not available (TimedSim has no scheduler= argument)"
    try:
        sim = timed.TimedSim(backend="cython", scheduler="cython")
        sim.mkdir("a")
        sim.add_task("a", timed.ProgramBuilder().compute(1000).sleep(1000).build())
        res = sim.run(10_000)
    except (ValueError, TypeError, ImportError, NotImplementedError) as e:
        return False, f"compiled scheduler not available ({type(e).__name__}: {e})"
    ran = res.summary.get("scheduler")
    if ran != "cython":
        return False, f"compiled scheduler not available (scheduler='cython' ran {ran!r})"
    return True, ""


def available_schedulers() -> list[str]:
    """The schedulers to measure, Python first."""
    return ["python"] + (["cython"] if compiled_scheduler_status()[0] else [])


def sched_kwargs(scheduler: str) -> dict:
    """TimedSim keyword arguments selecting ``scheduler``."""
    if scheduler not in SCHEDULERS:
        raise ValueError(f"scheduler must be one of {SCHEDULERS}, not {scheduler!r}")
    if scheduler == "cython":
        ok, why = compiled_scheduler_status()
        if not ok:
            raise RuntimeError(why)
        return {"scheduler": "cython"}
    return {"scheduler": "python"} if _has_scheduler_arg() else {}


def scheduler_ran(res) -> str:
    """The scheduler a TimedResult came from (``python`` before the key existed)."""
    return res.summary.get("scheduler", "python")


def engine_backend() -> str:
    return "cython" if me.BACKEND == "cython" else "python"


def cpu_ns(fn, *args):
    """(thread CPU ns of ``fn(*args)``, its result)."""
    t0 = time.thread_time_ns()
    out = fn(*args)
    return time.thread_time_ns() - t0, out


def interleaved(targets: dict, repeats: int) -> dict:
    """``targets``: name -> (setup, run); ``run(setup())`` is timed.  Round r runs every
    target once, in order.  Returns name -> (least thread CPU ns over the rounds, the last
    round's result)."""
    best = {k: None for k in targets}
    last = {}
    for _ in range(repeats):
        for name, (setup, run) in targets.items():
            obj = setup()
            ns, out = cpu_ns(run, obj)
            if best[name] is None or ns < best[name]:
                best[name] = ns
            last[name] = out
    return {k: (best[k], last[k]) for k in targets}


def md_table(headers, rows) -> str:
    """A Markdown table (cells already formatted)."""
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def fmt_rate(x: float) -> str:
    """events/s as '1.23 M' or '456 k'."""
    return f"{x / 1e6:.2f} M" if x >= 1e6 else f"{x / 1e3:.0f} k"
