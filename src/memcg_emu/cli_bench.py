"""``memcg-emu bench``: replay speed as machine-independent ratios, and a regression gate.

``memcg-emu bench``                           measure and print every row
``memcg-emu bench --json OUT.json``           also write them (the baseline format)
``memcg-emu bench --compare BASELINE.json``   exit 1 if a ratio regressed beyond --tolerance

How it measures: every target runs ``--rounds`` times, the targets interleaved round by round
(so a burst of load on a shared machine hits all of them alike), each timed by the thread's
CPU time (``time.thread_time_ns``); a row is the minimum over its rounds.  Ratios of such
minima, taken in one process, depend little on the machine: the baseline stores ratios only.

Rows (ns/event of a target over ns/event of a reference loop, lower is better):

* ``mixed_loop/floor``: the compiled replay loop over the mixed stream (``workloads.mixed``,
  baseline policy) against the minimal C loop over the same array (``emu_floor_loop``);
* ``mixed_loop/pairs``: the same loop against the stock-hit pair stream (one task charging
  and uncharging one kernel page: every charge is a per-CPU stock hit);
* ``replay_call/mixed_loop``: the whole ``Emulator.replay()`` call (validation, snapshot,
  chunking) against the bare loop;
* ``generator/mixed_loop``: ``workloads.mixed_chunks`` producing a stream of
  max(N, 10^7) events (its steady state: chunks after the first five are relabelled copies),
  per event, against replaying the mixed stream;
* ``mixed_loop/reference``: compiled over reference engine on a 2*10^4-event slice (the
  reference ratio is its inverse; higher ratios here are regressions).

A regression is a row whose ratio exceeds its baseline by more than ``--tolerance``
(a fraction: 0.5 allows 1.5x).  Absolute events/s are printed for information only.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

#: rows compared by --compare (all "lower is better")
RATIO_ROWS = ("mixed_loop/floor", "mixed_loop/pairs", "replay_call/mixed_loop",
              "generator/mixed_loop", "mixed_loop/reference")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="memcg-emu bench",
        description="Measure replay speed as ratios to reference loops (thread CPU time, "
                    "minimum over interleaved rounds); optionally compare with a baseline.")
    p.add_argument("--events", type=int, default=1_000_000, metavar="N",
                   help="events of the mixed stream (default 10^6)")
    p.add_argument("--rounds", type=int, default=7, metavar="R",
                   help="interleaved rounds per target (default 7)")
    p.add_argument("--json", metavar="OUT.json", default=None,
                   help="write the rows to OUT.json (the --compare format)")
    p.add_argument("--compare", metavar="BASELINE.json", default=None,
                   help="exit 1 if a ratio is worse than the baseline's by more than "
                        "--tolerance")
    p.add_argument("--tolerance", type=float, default=0.25, metavar="F",
                   help="allowed relative increase of a ratio (default 0.25 = 1.25x)")
    return p


def _thread_ns(fn) -> int:
    t0 = time.thread_time_ns()
    fn()
    return time.thread_time_ns() - t0


def measure(n_events: int = 1_000_000, rounds: int = 7) -> dict:
    """Measure every target; returns ``{"ns_per_event": {...}, "ratios": {...}}``."""
    import memcg_emu
    from memcg_emu import workloads
    from memcg_emu.events import Op, from_columns
    from memcg_emu.replay import _ZERO_SAMPLES

    if memcg_emu.BACKEND != "cython":
        raise RuntimeError("memcg-emu bench needs the compiled engine (memcg_emu._core)")
    w = workloads.mixed(n_events, seed=0)
    ev = w.events
    emu = w.build(policy="baseline", backend="cython")
    eng = emu.engine.unchecked
    snap = emu.state.copy()
    rc = np.zeros(n_events, np.int64)
    out = np.zeros(n_events, np.uint8)

    # stock-hit pairs: one task in a leaf, CHARGE/UNCHARGE one kernel page
    pemu = memcg_emu.Emulator(backend="cython")
    pemu.mkdir("/a")
    t = pemu.new_task("/a").pid
    op = np.empty(n_events, np.uint8)
    op[0::2] = Op.CHARGE
    op[1::2] = Op.UNCHARGE
    pairs = from_columns(op, task=t, arg=1, gfp=0xCC0, kind=4)
    peng = pemu.engine.unchecked
    psnap = pemu.state.copy()

    n_slice = min(20_000, n_events)
    ref = w.build(policy="baseline", backend="python")
    rsnap = ref.state.copy()
    cslice = ev[:n_slice]
    floor_out = np.zeros(emu.state.n_cgroups, np.int64)

    def loop():
        emu.state.restore_from(snap)
        return _thread_ns(lambda: eng.replay_loop(ev, rc, out, 0, 0, *_ZERO_SAMPLES, True))

    def replay_call():
        emu.state.restore_from(snap)
        return _thread_ns(lambda: emu.replay(ev))

    def floor():
        floor_out[:] = 0
        return _thread_ns(lambda: eng.emu_floor_loop(ev, floor_out))

    def pair_loop():
        pemu.state.restore_from(psnap)
        return _thread_ns(lambda: peng.replay_loop(pairs, rc, out, 0, 0, *_ZERO_SAMPLES, True))

    def slice_loop():
        emu.state.restore_from(snap)
        return _thread_ns(lambda: eng.replay_loop(cslice, rc, out, 0, 0, *_ZERO_SAMPLES, True))

    def ref_loop():
        ref.state.restore_from(rsnap)
        return _thread_ns(lambda: ref.engine.unchecked.replay_loop(
            cslice, rc, out, 0, 0, *_ZERO_SAMPLES, True))

    n_gen = max(n_events, 10**7)  # the chunked generator's steady state (see its pool)

    def generator():
        def run():
            for _ in workloads.mixed_chunks(n_gen, seed=0).chunks(reuse=True):
                pass
        return _thread_ns(run)

    targets = {"floor": (floor, n_events), "mixed_loop": (loop, n_events),
               "pairs": (pair_loop, n_events), "replay_call": (replay_call, n_events),
               "generator": (generator, n_gen), "slice_loop": (slice_loop, n_slice),
               "reference": (ref_loop, n_slice)}
    best = {k: float("inf") for k in targets}
    for r in range(rounds):
        for name, (fn, n) in targets.items():
            if name == "reference" and r >= 2:
                continue  # two rounds of the slow reference engine are enough
            best[name] = min(best[name], fn() / n)
    emu.state.restore_from(snap)
    ns = {k: float(v) for k, v in best.items()}
    ratios = {
        "mixed_loop/floor": ns["mixed_loop"] / ns["floor"],
        "mixed_loop/pairs": ns["mixed_loop"] / ns["pairs"],
        "replay_call/mixed_loop": ns["replay_call"] / ns["mixed_loop"],
        "generator/mixed_loop": ns["generator"] / ns["mixed_loop"],
        "mixed_loop/reference": ns["slice_loop"] / ns["reference"],
    }
    return {"events": n_events, "rounds": rounds, "ns_per_event": ns, "ratios": ratios}


def compare(result: dict, baseline: dict, tolerance: float) -> list[str]:
    """The rows of ``result`` worse than ``baseline`` by more than ``tolerance``."""
    bad = []
    for row in RATIO_ROWS:
        if row not in baseline.get("ratios", {}):
            continue
        now, then = result["ratios"][row], baseline["ratios"][row]
        if now > then * (1 + tolerance):
            bad.append(f"{row}: {now:.3f} vs baseline {then:.3f} (+{now / then - 1:.0%}, "
                       f"tolerance {tolerance:.0%})")
    return bad


def bench_main(argv: list[str]) -> int:
    """Run ``memcg-emu bench``; returns the exit code (1 on a regression)."""
    args = _parser().parse_args(argv)
    if args.events < 40_000 or args.rounds < 1 or args.tolerance < 0:
        print("memcg-emu bench: error: --events >= 40000, --rounds >= 1, --tolerance >= 0",
              file=sys.stderr)
        return 2
    baseline = None
    if args.compare:
        with open(args.compare) as f:
            baseline = json.load(f)
    res = measure(args.events, args.rounds)
    ns = res["ns_per_event"]
    print(f"{res['events']:,} events, min over {res['rounds']} interleaved rounds, "
          f"thread CPU time")
    for name, v in ns.items():
        print(f"  {name:24s} {v:8.2f} ns/event  {1e3 / v:8.1f} M events/s")
    print("ratios (lower is better)" + ("" if baseline is None else "          baseline"))
    for row in RATIO_ROWS:
        line = f"  {row:24s} {res['ratios'][row]:9.4g}"
        if baseline is not None and row in baseline.get("ratios", {}):
            line += f"   {baseline['ratios'][row]:9.4g}"
        print(line)
    print(f"  reference ratio (compiled speed-up) {1 / res['ratios']['mixed_loop/reference']:.0f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
            f.write("\n")
    if baseline is not None:
        bad = compare(res, baseline, args.tolerance)
        for line in bad:
            print(f"memcg-emu bench: regression: {line}", file=sys.stderr)
        return 1 if bad else 0
    return 0
