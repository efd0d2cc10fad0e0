"""Print the headline ratios from one pytest-benchmark JSON run.

    python -m pytest benchmarks --benchmark-json=bench.json
    python benchmarks/ratios.py bench.json

Cython vs reference (same 2*10^4-event slice), Cython replay of the 10^6 mixed stream vs the
minimal C loop over the same array, and the mixed stream's events/s; all from one run, each
row from the best round of its target (thread CPU time; loop rows: the best round's time
inside the engine loop).  ``memcg-emu bench`` measures the same ratios with the targets
interleaved round by round, which is steadier on a shared machine.
"""
import json
import sys


def main(path):
    bench = {b["name"]: b for b in json.load(open(path))["benchmarks"]}

    def eps(name, key="events_per_sec"):
        return bench[name]["extra_info"][key]

    rows = []
    for policy in ("baseline", "accountforce-v1"):
        cy = eps(f"test_replay_mixed_slice[cython-{policy}]", "loop_events_per_sec")
        py = eps(f"test_replay_mixed_slice[python-{policy}]", "loop_events_per_sec")
        rows.append((f"cython / reference, 2e4 slice, {policy} (loop)", cy / py))
        cyc = eps(f"test_replay_mixed_slice[cython-{policy}]")
        pyc = eps(f"test_replay_mixed_slice[python-{policy}]")
        rows.append((f"cython / reference, 2e4 slice, {policy} (whole replay() call)",
                     cyc / pyc))
        mixed = eps(f"test_replay_mixed[1e6-{policy}]", "loop_events_per_sec")
        rows.append((f"mixed 1e6 {policy}: loop events/s (M)", mixed / 1e6))
        rows.append((f"mixed 1e6 {policy}: replay() events/s (M)",
                     eps(f"test_replay_mixed[1e6-{policy}]") / 1e6))
        rows.append((f"C floor loop / mixed replay loop, {policy}",
                     eps("test_floor_c_loop[1e6]") / mixed))
    rows.append(("C floor loop events/s (M)", eps("test_floor_c_loop[1e6]") / 1e6))
    rows.append(("numpy bincount floor events/s (M)", eps("test_floor_bincount[1e6]") / 1e6))
    for name, value in rows:
        print(f"{name:62s} {value:10.1f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench.json")
