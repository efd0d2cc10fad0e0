"""A minute-class incident run: ``jbd2-stall`` scaled to thousands of tasks, 60 simulated
seconds, one run per policy; prints the thread CPU seconds of each run and its main outcome
(a Markdown table, one column per policy).

The pod is ``--procs`` processes x ``--threads`` threads (default 64 x 64 = 4,096 tasks) with
``pod_max_pages`` scaled to keep the default's memory per process (8192 pages per 16
processes), ``--outside`` tasks in ``/system`` (default 744), so 4,841 tasks by default (plus
the flusher).  Everything else is ``Jbd2StallParams``' default.  The bounds of a timed run
allow it: 60 s sampled every 7 ms is 8,572 samples (``MAX_SAMPLES`` = 10^6), the flusher wakes
every 500 ms, 120 times (``MAX_PERIODIC_WAKEUPS`` = 10^5).

    python benchmarks/timed_incident.py                     # every available scheduler
    python benchmarks/timed_incident.py --scheduler python --duration-s 5 --policy baseline
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace

import timed_common as tc

from memcg_emu import scenarios


def params(procs: int, threads: int, outside: int, duration_s: float) -> scenarios.Jbd2StallParams:
    p = scenarios.Jbd2StallParams()
    max_pages = p.pod_max_pages * procs // p.pod_procs
    return replace(p, pod_procs=procs, pod_threads=threads, outside_tasks=outside,
                   pod_max_pages=max_pages, duration_ns=int(duration_s * 1e9),
                   mkwrite_threads=min(p.mkwrite_threads, threads - 1))


def run_one(p: scenarios.Jbd2StallParams, policy: str, scheduler: str, seed: int,
            sample_ms: float):
    """Build and run one policy; returns (build CPU s, run CPU s, TimedResult)."""
    t0 = time.thread_time_ns()
    sim = scenarios.build("jbd2-stall", policy, seed=seed, backend=tc.engine_backend(),
                          params=p, sample_dt_ns=int(sample_ms * 1e6),
                          **tc.sched_kwargs(scheduler))
    t1 = time.thread_time_ns()
    res = sim.run(sim.duration_ns)
    t2 = time.thread_time_ns()
    res.summary["scenario_cgroup"] = sim.scenario_cgroup
    res.summary.update(scenarios.scenario_cgroup_figures(res, sim.scenario_cgroup))
    return (t1 - t0) / 1e9, (t2 - t1) / 1e9, res


OUTCOME = [  # (label, summary key, format)
    ("OOM kills", "oom_kills", "{:,}"),
    ("pod tasks alive at end", "pod_tasks_alive_end", "{:,}"),
    ("pod tasks at start", "pod_tasks_at_start", "{:,}"),
    ("D-state tasks, peak", "d_state_peak", "{:,}"),
    ("D-state task-seconds", "d_state_task_seconds", "{:,.1f}"),
    ("journal locked, longest (ms)", "journal_locked_max_ns", "ms"),
    ("journal commits", "journal_commits", "{:,}"),
    ("reclaim while holding handle/mmap_lock, longest (ms)",
     "reclaim_while_holding_max_ns", "ms"),
    ("over memory.max, peak (% of max)", "over_max_peak_pct", "{:.2f}"),
    ("first OOM kill (s)", "first_oom_kill_s", "{:.3f}"),
    ("forced charges", "forced_charges", "{:,}"),
]


def _cell(s: dict, key: str, fmt: str) -> str:
    if key not in s:
        return "-"
    return f"{s[key] / 1e6:,.1f}" if fmt == "ms" else fmt.format(s[key])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--procs", type=int, default=64)
    ap.add_argument("--threads", type=int, default=64)
    ap.add_argument("--outside", type=int, default=744)
    ap.add_argument("--duration-s", type=float, default=60.0)
    ap.add_argument("--policy", action="append",
                    help=f"repeatable; default: {', '.join(scenarios.DEFAULT_POLICIES)}")
    ap.add_argument("--scheduler", action="append", choices=tc.SCHEDULERS,
                    help="repeatable; default: the compiled one if available, else Python")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sample-ms", type=float, default=7.0, help="sampling period")
    a = ap.parse_args(argv)
    if a.procs < 1 or a.threads < 2 or a.outside < 0 or a.duration_s <= 0:
        ap.error("--procs >= 1, --threads >= 2, --outside >= 0, --duration-s > 0")
    ok, why = tc.compiled_scheduler_status()
    if a.scheduler:
        schedulers = a.scheduler
    else:
        schedulers = ["cython"] if ok else ["python"]
        if not ok:
            print(why, "- running the Python scheduler", file=sys.stderr, flush=True)
    policies = a.policy or list(scenarios.DEFAULT_POLICIES)
    p = params(a.procs, a.threads, a.outside, a.duration_s)
    tasks = 1 + p.pod_procs * p.pod_threads + p.outside_tasks
    cols, results = [], []
    for sch in schedulers:
        for pol in policies:
            build_s, run_s, res = run_one(p, pol, sch, a.seed, a.sample_ms)
            cols.append(f"{pol} ({tc.scheduler_ran(res)})")
            results.append((build_s, run_s, res))
            s = res.summary
            print(f"{pol} / {tc.scheduler_ran(res)}: run {run_s:.1f} CPU s, build {build_s:.1f} "
                  f"CPU s, {s['events']:,} events, {s['events'] / run_s / 1e6:.3f} M events/s",
                  file=sys.stderr, flush=True)
    rows = [["run, CPU s"] + [f"{r[1]:.1f}" for r in results],
            ["build, CPU s"] + [f"{r[0]:.1f}" for r in results],
            ["scheduler events"] + [f"{r[2].summary['events']:,}" for r in results],
            ["events/s (CPU)"] + [tc.fmt_rate(r[2].summary["events"] / r[1]) for r in results]]
    rows += [[label] + [_cell(r[2].summary, key, fmt) for r in results]
             for label, key, fmt in OUTCOME]
    print(tc.md_table(["jbd2-stall"] + cols, rows))
    print(f"\n{tasks:,} tasks ({p.pod_procs} x {p.pod_threads} in /pod, memory.max "
          f"{p.pod_max_pages:,} pages; {p.outside_tasks} in /system), {a.duration_s:g} simulated "
          f"s, seed {a.seed}, sampled every {a.sample_ms:g} ms; thread CPU time, one run each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
