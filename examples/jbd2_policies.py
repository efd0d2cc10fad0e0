"""jbd2-stall under every policy preset, over several seeds: a table and a plot.

    PYTHONPATH=src python examples/jbd2_policies.py [--seeds 10] [--out docs/policies]

Writes ``jbd2_stall_runs.csv`` (one row per preset and seed), ``jbd2_stall.csv`` (per preset:
median and min-max of each figure over the seeds) and ``jbd2_stall.png`` (one panel per
figure: every seed as a dot, the median as a bar).  A run of the default scenario (4
simulated seconds) takes about 4-5 s of CPU on the compiled engine.
"""
import argparse
import csv
import os
import statistics
import time

from memcg_emu import scenarios
from memcg_emu.policy import PRESETS

#: (column, summary key, scale, label): the figures compared.
FIGURES = [
    ("journal_locked_max_ms", "journal_locked_max_ns", 1e-6, "journal locked, longest (ms)"),
    ("d_state_peak", "d_state_peak", 1, "D-state tasks, peak"),
    ("d_state_at_peak_mmap_lock", "d_state_at_peak_mmap_lock", 1,
     "of which on mmap_lock (at the peak)"),
    ("d_state_task_s", "d_state_task_seconds", 1, "D state, task-seconds"),
    ("reclaim_holding_max_ms", "reclaim_while_holding_max_ns", 1e-6,
     "reclaim under handle/mmap_lock, longest (ms)"),
    ("over_max_peak_pct", "over_max_peak_pct", 1, "overshoot of memory.max, peak (% of max)"),
    ("over_max_page_s", "over_max_page_seconds", 1, "overshoot, page-seconds"),
    ("deferred_oom_skipped", "deferred_oom_skipped", 1, "deferred OOMs skipped (order > 3)"),
    ("handle_over_max_s", "handle_over_max_task_seconds", 1,
     "in mem_cgroup_handle_over_max (task-s)"),
    ("oom_kills", "oom_kills", 1, "OOM kills"),
    ("pod_tasks_alive_end", "pod_tasks_alive_end", 1, "pod tasks alive at the end (of 256)"),
    ("file_ops", "file_ops", 1, "work done: file ops completed"),
]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--out", default=os.path.join("docs", "policies"))
    ap.add_argument("--backend", default=None)
    a = ap.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    runs = []
    for seed in range(a.seeds):
        for name in PRESETS:
            t0 = time.perf_counter()
            res = scenarios.run("jbd2-stall", [name], seed=seed, backend=a.backend)[name]
            row = {"policy": name, "seed": seed}
            row.update({col: res.summary[key] * scale for col, key, scale, _ in FIGURES})
            runs.append(row)
            print(f"seed {seed} {name:20s} {time.perf_counter() - t0:5.1f} s", flush=True)
    cols = ["policy", "seed"] + [f[0] for f in FIGURES]
    with open(os.path.join(a.out, "jbd2_stall_runs.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, cols)
        w.writeheader()
        w.writerows(runs)
    with open(os.path.join(a.out, "jbd2_stall.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["figure"] + [f"{p} median [min, max]" for p in PRESETS])
        for col, _, _, label in FIGURES:
            cells = []
            for p in PRESETS:
                v = [r[col] for r in runs if r["policy"] == p]
                cells.append(f"{statistics.median(v):.4g} [{min(v):.4g}, {max(v):.4g}]")
            w.writerow([label] + cells)
    plot(runs, os.path.join(a.out, "jbd2_stall.png"), a.seeds)
    print("written to", a.out)


def plot(runs, path, n_seeds):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(PRESETS)
    fig, axes = plt.subplots(2, 6, figsize=(24, 8))
    for ax, (col, _, _, label) in zip(axes.flat, FIGURES):
        for i, p in enumerate(names):
            v = [r[col] for r in runs if r["policy"] == p]
            ax.bar(i, statistics.median(v), color=f"C{i}", alpha=0.5)
            ax.plot([i] * len(v), v, "k.", ms=4)
        ax.set_xticks(range(len(names)), names, rotation=40, ha="right", fontsize=8)
        ax.set_title(label, fontsize=9)
    fig.suptitle(f"jbd2-stall under the policy presets: median (bar) and each of {n_seeds} "
                 f"seeds (dots)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


if __name__ == "__main__":
    main()
