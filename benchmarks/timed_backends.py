"""Scheduler events per second of jbd2-stall on the two timed schedulers, in one process.

Both run on the compiled engine: ``scheduler="python"`` (timed.py, the reference twin) and
``scheduler="cython"`` (memcg_emu._tsched).  Each repeat builds a fresh simulation (not
timed) and times ``run()`` by thread CPU time (``time.thread_time_ns``); the rounds
interleave the schedulers, and the figure kept is the minimum CPU time over the rounds.
``run()`` includes the compiled scheduler's hand-over of the state (load/store), so these are
end-to-end figures; ``--loop-only`` also times the compiled loop alone.

    PYTHONPATH=src python benchmarks/timed_backends.py [--rounds 5] [--seconds 1.0]
        [--policy baseline] [--seed 0]
"""
import argparse
import statistics
import time

from memcg_emu import _backend, scenarios


def _run(scheduler: str, policy: str, seed: int, until_ns: int):
    sim = scenarios.build("jbd2-stall", policy, seed=seed, scheduler=scheduler)
    t0 = time.thread_time_ns()
    res = sim.run(until_ns)
    return time.thread_time_ns() - t0, res.summary["events"]


def _loop_only(policy: str, seed: int, until_ns: int):
    """The compiled event loop alone (TimedSim.run without the load/store hand-over)."""
    sim = scenarios.build("jbd2-stall", policy, seed=seed, scheduler="cython")
    sim._check_run_bounds(until_ns)
    sim._start()
    sim._bind()
    core = _backend._tsched.TimedCore()
    core.load(sim, until_ns)
    t0 = time.thread_time_ns()
    core.run(until_ns)
    dt = time.thread_time_ns() - t0
    return dt, core.store(sim)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.0, help="simulated seconds per run")
    ap.add_argument("--policy", default="baseline")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--loop-only", action="store_true")
    a = ap.parse_args(argv)
    until = int(a.seconds * 1e9)
    kinds = ["python", "cython"] + (["cython-loop"] if a.loop_only else [])
    times = {k: [] for k in kinds}
    events = {}
    for _ in range(a.rounds):
        for k in kinds:
            if k == "cython-loop":
                dt, n = _loop_only(a.policy, a.seed, until)
            else:
                dt, n = _run(k, a.policy, a.seed, until)
            times[k].append(dt)
            assert events.setdefault(k if k != "cython-loop" else "cython", n) == n
    n = events["python"]
    assert events["cython"] == n, "the schedulers ran different event counts"
    print(f"jbd2-stall, policy {a.policy}, seed {a.seed}, {a.seconds} simulated s, {n:,} "
          f"scheduler events; thread CPU time over {a.rounds} interleaved rounds")
    for k in kinds:
        best, med = min(times[k]) / 1e9, statistics.median(times[k]) / 1e9
        print(f"  {k:12s} min {best * 1e3:9.1f} ms  median {med * 1e3:9.1f} ms  "
              f"{n / best:14,.0f} events/s (at the min)")
    ratio = min(times["python"]) / min(times["cython"])
    print(f"  compiled / Python speed-up (minima): {ratio:.1f}x")


if __name__ == "__main__":
    main()
