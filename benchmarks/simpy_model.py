"""The SimPy-equivalent model: N processes loop ``iterations`` times over
lock / compute / unlock / sleep on one shared mutex, written twice:

(a) in SimPy: a ``simpy.Resource`` of capacity 1 (FIFO), ``env.timeout`` for compute and
    sleep (``with res.request() as req: yield req; yield env.timeout(c)``, then
    ``yield env.timeout(s)``);
(b) as memcg-emu timed programs: ``ProgramBuilder().mutex_lock(0).compute(c).mutex_unlock(0)
    .sleep(s).loop(0, iterations)``, one task each (no memory is charged; the flusher is off
    and one sample is taken per run, so the scheduler alone is measured).

Process i's compute and sleep times (integer ns) are drawn once from ``seed`` and used by both.
Both mutexes are FIFO with direct hand-off (a release grants the lock to the head waiter at
the same instant), and both simulators run same-time events in the order they were scheduled,
so the two runs grant the lock to the same process at the same simulated time, every time:
``test_bench_simpy.py::test_same_model`` checks the full list of (time, process) lock
acquisitions and the end time on a small N.

Scheduler events (what each simulator's event loop pops and handles):

* SimPy: the events processed by ``env.step()``: per process one ``Initialize`` and the
  ``Process`` event at its end, per iteration four (the ``Request``, the compute
  ``Timeout``, the ``Release``, the sleep ``Timeout``), whether or not the lock was free:
  ``4 N K + 2 N`` for N processes of K iterations.
* memcg-emu: ``summary["events"]``: heap entries that ran a task or a kernel thread (stale
  entries skipped): per process one start, per iteration two (the end of the compute and of
  the sleep) plus one when the lock was contended (the hand-off wakes the waiter, which runs
  as its own event): ``N + 2 N K + contended``.

So an iteration costs 4 SimPy events and 2-3 memcg-emu events: events/s are not the same
unit of work.  The tables give both simulators' events/s by their own definitions and the
simulated iterations per CPU second, which is the same work in both; the speed ratio quoted
is the one of iterations/s (``events_per_iteration`` converts).

    python benchmarks/simpy_model.py                  # N = 1000, README table
    python benchmarks/simpy_model.py --procs 200 --iterations 10 --repeats 3
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, replace

import numpy as np

try:
    import simpy
except ImportError:  # the benchmark extra: pip install '.[benchmark]'
    simpy = None

import timed_common as tc

from memcg_emu import scenarios
from memcg_emu.timed import FlusherConfig, ProgramBuilder, TimedSim, TOp

US = 1_000
MS = 1_000_000


@dataclass(frozen=True)
class LockLoopParams:
    """Sizes of the model; durations in ns, drawn per process uniformly from [lo, hi)."""

    procs: int = 1000
    iterations: int = 100
    compute_ns: tuple = (2 * US, 8 * US)
    sleep_ns: tuple = (5 * MS, 15 * MS)
    seed: int = 0

    def durations(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        c = rng.integers(*self.compute_ns, self.procs)
        s = rng.integers(*self.sleep_ns, self.procs)
        return c, s

    def bound_ns(self) -> int:
        """A simulated time by which every process has finished (the lock serialises the
        computes at worst)."""
        return self.iterations * (self.sleep_ns[1] + self.procs * self.compute_ns[1]) + 1

    def scaled(self, procs: int) -> LockLoopParams:
        """The same model with ``procs`` processes and the sleeps scaled with the count, so
        that the lock's load (and the share of contended acquisitions) stays the same."""
        f = procs / self.procs
        return replace(self, procs=procs, sleep_ns=(int(self.sleep_ns[0] * f),
                                                    int(self.sleep_ns[1] * f)))


# ---- (a) SimPy ---------------------------------------------------------------------------
def _worker(env, res, i, c, s, k, log, contended):
    for _ in range(k):
        with res.request() as req:
            if log is not None and not req.triggered:  # queued behind the holder
                contended.append((env.now, i))
            yield req
            if log is not None:
                log.append((env.now, i))
            yield env.timeout(c)
        yield env.timeout(s)


def simpy_env(p: LockLoopParams, log: list | None = None, contended: list | None = None):
    """The SimPy model, built, not run (``log`` collects (time, process) per acquisition,
    ``contended`` (time, process) per request that had to queue; both or neither).
    Returns (env, processes)."""
    if simpy is None:
        raise RuntimeError("simpy is not installed: pip install '.[benchmark]'")
    env = simpy.Environment()
    res = simpy.Resource(env, capacity=1)
    c, s = p.durations()
    procs = [env.process(_worker(env, res, i, int(c[i]), int(s[i]), p.iterations, log,
                                 contended))
             for i in range(p.procs)]
    return env, procs


def run_simpy(built) -> float:
    """Run to the end (``env.run()``, as a SimPy user would); returns the end time."""
    env, procs = built
    env.run()
    if any(pr.is_alive for pr in procs):  # pragma: no cover - the model always ends
        raise RuntimeError("a SimPy process did not finish")
    return env.now


def count_simpy_events(p: LockLoopParams) -> int:
    """The events ``env.step()`` processes in a whole run (a separate, untimed run: the model
    is deterministic)."""
    env, _ = simpy_env(p)
    n = 0
    try:
        while True:
            env.step()
            n += 1
    except simpy.core.EmptySchedule:
        return n


# ---- (b) memcg-emu timed programs ----------------------------------------------------------
def timed_sim(p: LockLoopParams, scheduler: str = "python", backend: str | None = None,
              trace: bool = False) -> TimedSim:
    """The timed model, built, not run (``scheduler``: see ``timed_common.sched_kwargs``)."""
    bound = p.bound_ns()
    sim = TimedSim(policy="baseline", backend=backend, sample_dt_ns=bound,
                   flusher=FlusherConfig(enabled=False), trace=trace,
                   **tc.sched_kwargs(scheduler))
    sim.mkdir("job")
    c, s = p.durations()
    sim.model_pids = []  # process i's pid
    for i in range(p.procs):
        prog = (ProgramBuilder().mutex_lock(0).compute(int(c[i])).mutex_unlock(0)
                .sleep(int(s[i])).loop(0, p.iterations).build())
        sim.model_pids.append(sim.add_task("job", prog))
    sim.duration_ns = bound
    return sim


def run_timed(sim: TimedSim):
    """Run to a time by which every process has finished."""
    return sim.run(sim.duration_ns)


def timed_acquisitions(sim: TimedSim) -> list[tuple[int, int]]:
    """(time, process index) of every mutex_lock completion of a ``trace=True`` run."""
    index = {pid: i for i, pid in enumerate(sim.model_pids)}
    return [(t, index[pid]) for t, pid, _pc, op, _rc in sim.trace if op == TOp.MUTEX_LOCK]


def timed_end_ns(sim: TimedSim) -> int:
    """When the last op of a ``trace=True`` run completed (the last sleep's end)."""
    return max(t for t, *_ in sim.trace)


# ---- measurement -----------------------------------------------------------------------------
def measure(p: LockLoopParams, repeats: int, schedulers=None, jbd2: bool = True,
            jbd2_policy: str = "baseline") -> list[dict]:
    """Interleaved repeats of SimPy (when installed), each timed scheduler on the model, and
    (``jbd2``) each timed scheduler on the default jbd2-stall; one dict per row."""
    schedulers = schedulers or tc.available_schedulers()
    targets = {}
    if simpy is not None:
        targets["SimPy"] = (lambda: simpy_env(p), run_simpy)
    backend = tc.engine_backend()
    for sch in schedulers:
        targets[f"model/{sch}"] = (lambda sch=sch: timed_sim(p, sch, backend), run_timed)
    if jbd2:
        for sch in schedulers:
            targets[f"jbd2/{sch}"] = (
                lambda sch=sch: scenarios.build("jbd2-stall", jbd2_policy, backend=backend,
                                                **tc.sched_kwargs(sch)),
                lambda sim: sim.run(sim.duration_ns))
    best = tc.interleaved(targets, repeats)
    iters = p.procs * p.iterations
    rows = []
    for name, (ns, out) in best.items():
        sec = ns / 1e9
        if name == "SimPy":
            ev = count_simpy_events(p)
            rows.append({"target": name, "model": "lock loop", "scheduler": "SimPy",
                         "events": ev, "cpu_s": sec, "events_per_s": ev / sec,
                         "iterations": iters, "iterations_per_s": iters / sec})
            continue
        model, sch = name.split("/")
        s = out.summary
        row = {"target": name, "model": "lock loop" if model == "model" else "jbd2-stall",
               "scheduler": tc.scheduler_ran(out), "events": s["events"], "cpu_s": sec,
               "events_per_s": s["events"] / sec}
        if model == "model":
            if s["ops_completed"] != 4 * iters:  # lock, compute, unlock, sleep per iteration
                raise RuntimeError(f"{name}: {s['ops_completed']} ops completed, "
                                   f"expected {4 * iters}")
            row.update(iterations=iters, iterations_per_s=iters / sec)
        rows.append(row)
    return rows


def table(rows: list[dict], p: LockLoopParams, repeats: int) -> str:
    """The README table of :func:`measure`'s rows."""
    simpy_row = next((r for r in rows if r["scheduler"] == "SimPy"), None)
    out = []
    for r in rows:
        per_it = f"{r['events'] / r['iterations']:.2f}" if "iterations" in r else "-"
        it_s = tc.fmt_rate(r["iterations_per_s"]) if "iterations" in r else "-"
        vs = "-"
        if simpy_row is not None and "iterations" in r and r is not simpy_row:
            vs = f"{r['iterations_per_s'] / simpy_row['iterations_per_s']:.2f}x"
        out.append([r["model"], r["scheduler"], f"{r['events']:,}", per_it,
                    f"{r['cpu_s']:.3f}", tc.fmt_rate(r["events_per_s"]), it_s, vs])
    head = ["model", "scheduler", "events", "events/iteration", "CPU s (min)", "events/s",
            "iterations/s", "iterations/s vs SimPy"]
    note = (f"lock loop: {p.procs:,} processes x {p.iterations} iterations, compute "
            f"{p.compute_ns[0] // US}-{p.compute_ns[1] // US} us, sleep "
            f"{p.sleep_ns[0] // MS}-{p.sleep_ns[1] // MS} ms; "
            + ("jbd2-stall: the default scenario (4 simulated s), baseline; "
               if any(r["model"] == "jbd2-stall" for r in rows) else "")
            + f"thread CPU time, minimum of {repeats} interleaved repeats, one process")
    return tc.md_table(head, out) + "\n\n" + note


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--procs", type=int, default=LockLoopParams.procs)
    ap.add_argument("--iterations", type=int, default=LockLoopParams.iterations)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scheduler", action="append", choices=tc.SCHEDULERS,
                    help="repeatable; default: every available one")
    ap.add_argument("--no-jbd2", action="store_true", help="the lock-loop model only")
    a = ap.parse_args(argv)
    p = LockLoopParams(procs=a.procs, iterations=a.iterations, seed=a.seed)
    ok, why = tc.compiled_scheduler_status()
    if not ok:
        print(why, "- measuring the Python scheduler only", file=sys.stderr, flush=True)
    if simpy is None:
        print("simpy not installed (pip install '.[benchmark]') - no SimPy row", file=sys.stderr,
              flush=True)
    rows = measure(p, a.repeats, a.scheduler, jbd2=not a.no_jbd2)
    print(table(rows, p, a.repeats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
