"""``memcg-emu sweep``: run a grid of runs (:mod:`memcg_emu.sweep`) and summarize it.

``memcg-emu sweep [SCENARIO] [--policy P ...] [--seeds 0-19] [--set KEY=V1,V2 ...]
[--duration-ms MS] [--out FILE.parquet] [--local | --scheduler ADDRESS] [--workers N]
[--baseline P] [--stall-ms MS] [--plot PATH.png]``
    A built-in timed scenario (default ``jbd2-stall``) under each policy, seed and
    combination of swept values.
``memcg-emu sweep replay --input DIR_OR_GLOB [--input ...] [--policy P ...] [--seeds N] ...``
    Workload files (``.npz`` with setup) replayed under each policy and seed.

Prints, per group of swept values, the median and interquartile range of the main figures per
policy and the fraction of runs showing each signature, each with its difference from the
baseline policy; a failed run is listed with its coordinates (exit code 1, the others are
kept).  A bad grid spec is refused before anything runs (exit code 2).
"""
from __future__ import annotations

import argparse
import math
import os
import sys

from ._output import fmt_num as _fmt

_STALL_MS = 1000


def _common(p: argparse.ArgumentParser, seeds_default: str, policies: list[str]) -> None:
    p.set_defaults(default_policies=policies)
    p.add_argument("--policy", action="append", default=None, metavar="P",
                   help=f"policy to run; repeat for several (default: {', '.join(policies)})")
    p.add_argument("--seeds", default=seeds_default, metavar="SPEC",
                   help=f"seeds: N, A-B (inclusive) or a comma list (default {seeds_default})")
    p.add_argument("--backend", choices=["cython", "python"], default=None,
                   help="engine (default: the compiled one when it is built)")
    p.add_argument("--out", metavar="FILE.parquet", default=None,
                   help="write one row per run (coordinates + every summary field) as Parquet "
                        "(or CSV if the name ends in .csv)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--local", action="store_true",
                       help="run the cells in this process, in order (no Dask needed)")
    where.add_argument("--scheduler", metavar="ADDRESS", default=None,
                       help="an existing Dask scheduler (tcp://host:8786); default: a "
                            "LocalCluster with one worker process per core")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes of the LocalCluster (default: one per core)")
    p.add_argument("--baseline", default=None, metavar="P",
                   help="policy the diff column compares with (default: baseline if swept, "
                        "else the first policy)")
    p.add_argument("--plot", metavar="PATH.png", default=None,
                   help="strip/box plots of the main figures per policy (needs matplotlib: "
                        "pip install 'memcg-emu[plot]')")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _scenario_parser() -> argparse.ArgumentParser:
    from .scenarios import DEFAULT_POLICIES, SCENARIOS

    p = argparse.ArgumentParser(
        prog="memcg-emu sweep",
        description="Run a built-in timed scenario over a grid of policies x seeds x "
                    "parameters (each cell one run, on Dask or in-process) and summarize the "
                    "distributions.  'memcg-emu sweep replay --help' for workload files.",
        epilog="--set keys: a field of the scenario's parameters (pod_procs, duration_ns, "
               "...; or params.FIELD), costs.FIELD (CostModel), journal.FIELD "
               "(JournalConfig), flusher.FIELD (FlusherConfig), memory.max/high/low/min/"
               "swap.max of the scenario's cgroup (or /PATH/memory.max).  Times take "
               "ns/us/ms/s suffixes; pairs are A:B.")
    p.add_argument("scenario", nargs="?", default="jbd2-stall", metavar="SCENARIO",
                   help=f"scenario: {', '.join(SCENARIOS)} (default jbd2-stall)")
    _common(p, "0-19", list(DEFAULT_POLICIES))
    p.add_argument("--set", action="append", default=[], metavar="KEY=V1,V2",
                   dest="sets", help="sweep KEY over the values; repeat for several keys")
    p.add_argument("--duration-ms", type=float, default=None, metavar="MS",
                   help="simulated time of every run (default: the scenario's)")
    p.add_argument("--stall-ms", type=float, default=_STALL_MS, metavar="MS",
                   help=f"threshold of the stall signatures (default {_STALL_MS})")
    return p


def _replay_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="memcg-emu sweep replay",
        description="Replay workload files (.npz with events and setup, as written by "
                    "'memcg-emu replay --save-events') under a grid of policies x seeds "
                    "(each cell one run) and summarize the distributions.")
    p.add_argument("--input", action="append", required=True, metavar="DIR_OR_GLOB",
                   help="a file, a directory (its *.npz) or a glob pattern; repeatable")
    _common(p, "0", ["baseline", "accountforce-v1"])
    p.add_argument("--cpus", type=int, default=None, metavar="N",
                   help="CPUs of the emulated machine (default: each workload's)")
    return p




def _signed(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return ("+" if x > 0 else "") + _fmt(x) if x else "0"


def _tables(stats, keys: list[str], baseline: str):
    """One figures table and one signatures table per group of swept values."""
    from rich.markup import escape
    from rich.table import Table

    tables = []
    keys = [k for k in keys if stats[k].nunique(dropna=False) > 1]  # the others: one value
    groups = stats.groupby(keys, sort=False, dropna=False) if keys else [((), stats)]
    for gkey, g in groups:
        gkey = gkey if isinstance(gkey, tuple) else (gkey,)
        where = ", ".join(f"{k}={v}" for k, v in zip(keys, gkey))
        suffix = escape(f" ({where})") if where else ""
        fig = g[g["kind"] == "figure"]
        t = Table(title=f"Main figures per policy: median and IQR over runs{suffix}",
                  title_justify="left")
        for col, just in (("measure", "left"), ("policy", "left"), ("runs", "right"),
                          ("median", "right"), ("IQR (q1-q3)", "right"),
                          (f"median - {baseline}", "right")):
            t.add_column(col, justify=just)
        last = None
        for r in fig.itertuples():
            t.add_row(r.measure if r.measure != last else "", r.policy,
                      f"{r.runs}" + (f" ({r.failed} failed)" if r.failed else ""),
                      _fmt(r.median), f"{_fmt(r.q1)} - {_fmt(r.q3)}",
                      "" if r.policy == baseline else _signed(r.diff_vs_baseline),
                      end_section=False)
            last = r.measure
        tables.append(t)
        sig = g[g["kind"] == "signature"]
        t = Table(title=f"Signatures: fraction of runs showing each{suffix}",
                  title_justify="left")
        for col, just in (("signature", "left"), ("policy", "left"), ("runs", "right"),
                          ("fraction", "right"), (f"fraction - {baseline}", "right")):
            t.add_column(col, justify=just)
        last = None
        for r in sig.itertuples():
            diff = r.diff_vs_baseline
            t.add_row(r.measure if r.measure != last else "", r.policy, f"{r.runs}",
                      "-" if math.isnan(r.fraction) else f"{r.fraction:.0%}",
                      "" if r.policy == baseline or math.isnan(diff)
                      else f"{diff:+.0%}" if diff else "0")
            last = r.measure
        tables.append(t)
    return tables


def _check_out(path: str) -> str | None:
    """An error message if ``path`` cannot be written (checked before anything runs)."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".parquet", ".pq", ".csv"):
        return f"--out {path}: expected a .parquet (or .csv) file name"
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        return f"--out {path}: directory {parent} does not exist"
    if ext != ".csv":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            return f"--out {path}: Parquet needs pyarrow: pip install 'memcg-emu[sweep]'"
    return None


def sweep_main(argv: list[str]) -> int:
    """``memcg-emu sweep``: run a sweep, print its summary; returns the exit code."""
    from rich.console import Console
    from rich.markup import escape

    from . import sweep
    from .errors import EmuError

    argv = list(argv)
    replay = bool(argv) and argv[0] == "replay"
    parser = _replay_parser() if replay else _scenario_parser()
    args = parser.parse_args(argv[1:] if replay else argv)
    console = Console(width=None if sys.stdout.isatty() else 200)
    err = Console(stderr=True)
    prog = parser.prog

    def fail(msg: str) -> int:
        err.print(f"{prog}: error: {msg}", markup=False, highlight=False)
        return 2

    if args.workers is not None and args.workers < 1:
        return fail(f"--workers must be at least 1, not {args.workers}")
    if args.workers is not None and (args.local or args.scheduler):
        return fail("--workers sizes the LocalCluster; not with --local or --scheduler")
    if args.out and (msg := _check_out(args.out)):
        return fail(msg)
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return fail("--plot needs matplotlib: pip install 'memcg-emu[plot]'")
    try:
        import pandas  # noqa: F401
    except ImportError:
        return fail("sweeps need pandas: pip install 'memcg-emu[sweep]'")
    if not args.local:
        try:
            import distributed  # noqa: F401
        except ImportError:
            return fail("running on Dask needs dask.distributed: pip install "
                        "'memcg-emu[sweep]', or pass --local to run in this process")
    policies = list(args.policy or args.default_policies)
    try:
        if replay:
            grid = sweep.ReplayGrid(args.input, policies, args.seeds, backend=args.backend,
                                    nr_cpus=args.cpus)
        else:
            params = {}
            for text in args.sets:
                key, values = sweep.parse_set(text)
                if key in params:
                    return fail(f"--set {key}: given twice (put all values in one --set "
                                "KEY=V1,V2)")
                params[key] = values
            duration_ns = None
            if args.duration_ms is not None:
                if not (args.duration_ms > 0 and math.isfinite(args.duration_ms)):
                    return fail(f"--duration-ms must be positive, not {args.duration_ms}")
                duration_ns = int(args.duration_ms * 1_000_000)
            if not (args.stall_ms > 0 and math.isfinite(args.stall_ms)):
                return fail(f"--stall-ms must be positive, not {args.stall_ms}")
            grid = sweep.ScenarioGrid(args.scenario, policies, args.seeds, params,
                                      backend=args.backend, duration_ns=duration_ns)
        cells = grid.cells()  # every spec checked here, before anything runs
        labels = list(dict.fromkeys(sweep.policy_label(c.policy) for c in cells))
        baseline = args.baseline
        if baseline is not None and baseline not in labels:
            return fail(f"--baseline {baseline}: not a swept policy ({', '.join(labels)})")
    except EmuError as e:
        return fail(str(e))
    baseline = baseline or ("baseline" if "baseline" in labels else labels[0])

    n_seeds = len({c.seed for c in cells})
    what = (f"{len({c.target for c in cells})} workload files" if replay
            else args.scenario)
    if args.local:
        where = "in this process"
    elif args.scheduler:
        where = f"on the Dask cluster at {args.scheduler}"
    else:
        where = (f"on a Dask LocalCluster of {args.workers or os.cpu_count() or 1} worker "
                 "processes")
    n_combos = len(cells) // (len(labels) * n_seeds)
    other = f" x {n_combos} files" if replay else (
        f" x {n_combos} combinations of swept values" if n_combos > 1 else "")
    console.print(f"[bold]sweep[/] {escape(what)}: {len(cells)} runs ({len(labels)} policies x "
                  f"{n_seeds} seeds{other}), {escape(where)}")
    fixed = {k: v for k, v in cells[0].overrides
             if len({dict(c.overrides)[k] for c in cells}) == 1}
    if fixed:
        console.print(escape("set: " + ", ".join(f"{k}={v}" for k, v in fixed.items())))

    show = not args.no_progress and console.is_terminal
    bar = None
    progress_cb = None
    if show:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        bar = Progress(TextColumn("runs"), BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn(), TimeRemainingColumn(), console=console,
                       transient=True)
        task = bar.add_task("runs", total=len(cells))

        def progress_cb(done, total, row):
            bar.update(task, completed=done)

        bar.start()
    try:
        result = sweep.run(cells, local=args.local, scheduler=args.scheduler,
                           n_workers=args.workers, progress=progress_cb)
    except (ImportError, OSError) as e:  # no Dask, or the scheduler cannot be reached
        return fail(str(e))
    finally:
        if bar is not None:
            bar.stop()
    df = result.df
    console.print(f"{len(df)} runs in {result.wall_seconds:,.1f} s (wall clock)")

    failures = result.failures
    if len(failures):
        from rich.table import Table

        coord = [c for c in df.columns[: list(df.columns).index("error")] if c != "cell"]
        t = Table(title=f"[red]{len(failures)} failed runs[/] (the others are kept)",
                  title_justify="left")
        for c in [*coord, "error"]:
            t.add_column(c)
        for _, r in failures.iterrows():
            t.add_row(*[str(r[c]) for c in coord], str(r["error"]))
        console.print(t)

    if len(failures) < len(df):
        if replay:
            stats = sweep.summarize(df, baseline=baseline)
        else:
            sigs = sweep.scenario_signatures(int(args.stall_ms * 1_000_000))
            stats = sweep.summarize(df, signatures=sigs, baseline=baseline)
        for t in _tables(stats, sweep.swept_keys(df), baseline):
            console.print(t)
    if args.out:
        if args.out.lower().endswith(".csv"):
            df.to_csv(args.out, index=False)
        else:
            result.to_parquet(args.out)
        console.print(f"results written to {args.out} ({len(df)} rows)")
    if args.plot:
        sweep.plot(df, args.plot)
        console.print(f"plot written to {args.plot}")
    return 1 if len(failures) else 0
