"""Cost per scheduler event of the timed engine from 10^3 to 10^4 tasks (it should be flat):
thread CPU time of ``run`` per ``summary["events"]``, the minimum over interleaved repeats
(round r runs every size and scheduler once), one process.

* ``jbd2-stall`` scaled by f = tasks / 1000: ``pod_procs`` 16 f (16 threads each),
  ``outside_tasks`` 744 f, ``pod_max_pages`` 8192 f (the same memory per process) and
  ``writeback_page_ns`` / f (the same disk bandwidth per task), so 1 + 1000 f tasks (plus the
  flusher); ``--duration-ms`` simulated (default 1000).  The journal and the flusher stay one
  each and reclaim scans a pod f times larger, so the work per event grows with f, and at
  some size the run turns into a stall (reclaim and OOM passes of handle holders while most
  tasks wait in D state): the table shows the reclaim passes and OOM invocations of each
  run beside its cost per event.
* the SimPy-equivalent lock loop (``simpy_model.py``) with N processes, its sleeps scaled
  with N (``LockLoopParams.scaled``) so the lock's load stays the same; ``--iterations`` each
  (default 20).  SimPy's own cost per event is printed beside it when SimPy is installed.

``run()`` of a fresh ``TimedSim`` includes its first-run set-up in Python (programs flattened,
every actor scheduled: O(tasks), so about constant per event when the events grow with the
tasks) and the hand-over to and from the compiled loop.  For the compiled scheduler the table
also shows the loop alone ("loop ns/event": thread CPU time inside ``TimedCore.run``, the
nogil event loop), the scheduler's own cost per event.

    python benchmarks/timed_scale.py                         # 1000 2000 5000 10000 tasks
    python benchmarks/timed_scale.py --tasks 1000 4000 --repeats 2 --model jbd2
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace

import simpy_model as sm
import timed_common as tc

from memcg_emu import scenarios


def jbd2_params(tasks: int, duration_ms: int) -> scenarios.Jbd2StallParams:
    f = max(1, round(tasks / 1000))
    p = scenarios.Jbd2StallParams()
    return replace(p, pod_procs=p.pod_procs * f, outside_tasks=p.outside_tasks * f,
                   pod_max_pages=p.pod_max_pages * f, writeback_page_ns=p.writeback_page_ns // f,
                   duration_ns=duration_ms * 1_000_000)


def jbd2_tasks(p: scenarios.Jbd2StallParams) -> int:
    return 1 + p.pod_procs * p.pod_threads + p.outside_tasks


def _once(cache: dict, p) -> int:
    if not cache:
        cache[0] = sm.count_simpy_events(p)
    return cache[0]


LOOP_NS = [0]  # thread CPU ns spent in TimedCore.run since the process started
LOOP_BEST: dict = {}  # name -> least loop ns over the rounds


def install_loop_clock() -> bool:
    """Time the compiled event loop: TimedSim makes a ``_backend._tsched.TimedCore`` per
    run(); a subclass whose ``run`` adds its thread CPU time to LOOP_NS takes its place."""
    from memcg_emu import _backend
    mod = getattr(_backend, "_tsched", None)
    if mod is None or getattr(mod.TimedCore, "_loop_clock", False):
        return mod is not None
    base = mod.TimedCore

    class ClockedCore(base):
        _loop_clock = True

        def run(self, until):
            t0 = time.thread_time_ns()
            try:
                return base.run(self, until)
            finally:
                LOOP_NS[0] += time.thread_time_ns() - t0

    mod.TimedCore = ClockedCore
    return True


def _clocked(name, fn):
    def run(obj):
        t0 = LOOP_NS[0]
        out = fn(obj)
        ns = LOOP_NS[0] - t0
        if ns and (name not in LOOP_BEST or ns < LOOP_BEST[name]):
            LOOP_BEST[name] = ns
        return out
    return run


def targets(sizes, models, schedulers, duration_ms: int, iterations: int) -> dict:
    """name -> (setup, run), with name = (model, scheduler, tasks)."""
    backend = tc.engine_backend()
    out = {}
    for n in sizes:
        if "jbd2" in models:
            p = jbd2_params(n, duration_ms)
            for sch in schedulers:
                name = ("jbd2-stall", sch, jbd2_tasks(p))
                out[name] = (
                    lambda p=p, sch=sch: scenarios.build(
                        "jbd2-stall", "baseline", backend=backend, params=p,
                        **tc.sched_kwargs(sch)),
                    _clocked(name, lambda sim: sim.run(sim.duration_ns)))
        if "lock" in models:
            p = sm.LockLoopParams(iterations=iterations).scaled(n)
            for sch in schedulers:
                name = ("lock loop", sch, n)
                out[name] = (lambda p=p, sch=sch: sm.timed_sim(p, sch, backend),
                             _clocked(name, sm.run_timed))
            if sm.simpy is not None:  # events counted once, untimed, in the first setup
                count = {}
                out[("lock loop", "SimPy", n)] = (
                    lambda p=p, count=count: (sm.simpy_env(p), _once(count, p)),
                    lambda b: (sm.run_simpy(b[0]), b[1]))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, nargs="+", default=[1000, 2000, 5000, 10000])
    ap.add_argument("--model", choices=["jbd2", "lock", "both"], default="both")
    ap.add_argument("--scheduler", action="append", choices=tc.SCHEDULERS,
                    help="repeatable; default: every available one")
    ap.add_argument("--duration-ms", type=int, default=1000, help="jbd2-stall simulated time")
    ap.add_argument("--iterations", type=int, default=20, help="lock loop iterations")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args(argv)
    ok, why = tc.compiled_scheduler_status()
    if not ok:
        print(why, "- measuring the Python scheduler only", file=sys.stderr, flush=True)
    schedulers = a.scheduler or tc.available_schedulers()
    models = ["jbd2", "lock"] if a.model == "both" else [a.model]
    if "cython" in schedulers:
        install_loop_clock()
    tg = targets(sorted(a.tasks), models, schedulers, a.duration_ms, a.iterations)
    best = tc.interleaved(tg, a.repeats)
    rows = []
    smallest = {}
    for (model, sch, n), (ns, out) in best.items():
        work = ["-", "-"]
        loop = LOOP_BEST.get((model, sch, n))
        if sch == "SimPy":
            ev = out[1]
            ran = "SimPy"
        else:
            ev = out.summary["events"]
            ran = tc.scheduler_ran(out)
            if model == "jbd2-stall":
                work = [f"{out.summary[k]:,}" for k in ("reclaim_passes", "oom_invocations")]
        per = ns / ev
        base = smallest.setdefault((model, sch), per)
        lp = ["-", "-"]
        if loop is not None:
            lbase = smallest.setdefault((model, sch, "loop"), loop / ev)
            lp = [f"{loop / ev:,.0f}", f"{loop / ev / lbase:.2f}"]
        rows.append([model, ran, n, ev, per, per / base] + lp + work)
    rows.sort(key=lambda r: (r[0] != "jbd2-stall", r[1], r[2]))
    print(tc.md_table(["model", "scheduler", "tasks", "events", "ns/event", "vs smallest",
                       "loop ns/event", "loop vs smallest", "reclaim passes",
                       "OOM invocations"],
                      [[m, s, f"{n:,}", f"{ev:,}", f"{per:,.0f}", f"{ratio:.2f}"] + work
                       for m, s, n, ev, per, ratio, *work in rows]))
    what = []
    if "jbd2" in models:
        what.append(f"jbd2-stall: {a.duration_ms} simulated ms, baseline, seed 0")
    if "lock" in models:
        what.append(f"lock loop: {a.iterations} iterations per process")
    print("\n" + "; ".join(what) + f"; thread CPU time of run(), minimum of {a.repeats} "
          f"interleaved repeats, one process")
    return 0


if __name__ == "__main__":
    sys.exit(main())
