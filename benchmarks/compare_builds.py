"""Replay speed of two builds of memcg-emu, interleaved subprocesses (thread CPU time).

    python benchmarks/compare_builds.py OTHER_SRC [--events N] [--rounds R] [--repeats K]

OTHER_SRC is the ``src`` directory of another checkout whose extension is built in place
(e.g. ``git archive <commit> | tar -x -C /tmp/other && (cd /tmp/other && python setup.py
build_ext --inplace)``).  Each round starts one subprocess per build, alternating; each
subprocess generates the ``mixed`` workload (seed 0) once and replays it ``K`` times on a
fresh emulator per repeat, under each policy, timing only ``emu.replay`` with
``time.thread_time_ns``.  The figure per build is the minimum over every repeat of every
round; the ratio is this checkout's / OTHER's (below 1: this one is faster).
"""
import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, sys, time
import memcg_emu as me
from memcg_emu import workloads
assert me.BACKEND == "cython", me.BACKEND
n, k = int(sys.argv[1]), int(sys.argv[2])
w = workloads.mixed(n, seed=0)
out = {}
for policy in ("baseline", "accountforce-v1"):
    best = None
    for _ in range(k):
        emu = w.build(policy=policy, backend="cython")
        t0 = time.thread_time_ns()
        res = emu.replay(w.events)
        dt = time.thread_time_ns() - t0
        best = dt if best is None else min(best, dt)
    out[policy] = {"ns": best, "usage": int(emu.state.usage.sum()),
                   "forced": int(res.counters["forced_charges"])}
print(json.dumps(out))
"""


def _run(src, n, k):
    env = dict(os.environ, PYTHONPATH=src, MEMCG_EMU_REQUIRE_EXT="1")
    env.pop("MEMCG_EMU_PUREPYTHON", None)
    p = subprocess.run([sys.executable, "-c", CHILD, str(n), str(k)], env=env,
                       capture_output=True, text=True, check=True)
    return json.loads(p.stdout)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("other_src")
    ap.add_argument("--events", type=int, default=10**6)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args(argv)
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    builds = {"this": os.path.abspath(here), "other": os.path.abspath(a.other_src)}
    best: dict = {}
    check: dict = {}
    for r in range(a.rounds):
        for name in (("this", "other") if r % 2 else ("other", "this")):
            res = _run(builds[name], a.events, a.repeats)
            for pol, d in res.items():
                key = (name, pol)
                best[key] = min(best.get(key, d["ns"]), d["ns"])
                check.setdefault(pol, {})[name] = (d["usage"], d["forced"])
    for pol in ("baseline", "accountforce-v1"):
        t, o = best[("this", pol)], best[("other", pol)]
        same = check[pol]["this"] == check[pol]["other"]
        print(f"{pol:16s} this {a.events / t * 1e3:7.2f} M ev/s  other "
              f"{a.events / o * 1e3:7.2f} M ev/s  ratio this/other time {t / o:.3f}  "
              f"same result: {same}")


if __name__ == "__main__":
    main()
