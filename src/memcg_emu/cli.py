"""The ``memcg-emu`` command.

``memcg-emu`` (no arguments)
    The main job: the timed ``jbd2-stall`` scenario under ``baseline``, ``accountforce-v1``
    and ``legacy-dying-bypass``, seeds 0-9, as distributions (same as ``memcg-emu scenario``).
``memcg-emu scenario [NAME] [--policy P ...] [--seeds SPEC | --seed N] [--duration-ms MS]
[--backend B] [--json PATH] [--plot PATH.png]``
    Run a built-in timed scenario (:mod:`memcg_emu.scenarios`) under each policy: over
    several seeds (default 0-9), the median and IQR of the main figures and the fraction of
    seeds showing each signature; with one seed, every measurement of each run (rows =
    summary metrics, columns = policies).
``memcg-emu scenarios``
    List the built-in scenarios.
``memcg-emu replay [options]``
    Generate a workload, replay it under each policy, compare: the built-in ``mixed``
    workload (docs/design.md §6; 2,000,000 events with the compiled engine, fewer with the
    pure-Python one) under ``baseline`` and ``accountforce-v1``, each on a fresh emulator, one
    table per cgroup and a summary.  Options given without a subcommand (``memcg-emu
    --events N ...``) still mean ``replay``.
"""
from __future__ import annotations

import argparse
import inspect
import math
import os
import sys

from ._constants import PAGE_COUNTER_MAX, PAGE_SIZE
from .cli_policies import policies_main
from .policy import PRESETS, resolve_policy

DEFAULT_EVENTS = 2_000_000
# The reference engine runs ~10^5 events/s: keep the default run well under two minutes.
DEFAULT_EVENTS_PYTHON = 500_000
MAX_TABLE_ROWS = 40
#: The most events ``--events`` may ask for (32 bytes each: 3.2 GB of events).
MAX_EVENTS = 100_000_000
_SEED_MAX = (1 << 63) - 1
# The seeds of a timed scenario run (the main job's): a timed outcome depends on the seed, so
# it is reported over seeds (median, IQR, fraction of seeds showing a signature).
DEFAULT_SEEDS = "0-9"
#: Image formats ``--plot`` can write (matplotlib's, by file suffix).
PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg", ".eps", ".ps", ".tif", ".tiff",
                 ".webp")


def _count(text: str) -> int:
    """An argparse type: a whole number, also written like ``1e6`` (but not 1.5 or inf)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value != int(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
    return int(value)


def _seed(text: str) -> int:
    value = _count(text)
    if not 0 <= value <= _SEED_MAX:
        raise argparse.ArgumentTypeError(f"{text} is out of range [0, 2**63 - 1]")
    return value


def _duration_ms(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive finite number of ms")
    if value * 1_000_000 > 1 << 62:
        raise argparse.ArgumentTypeError(f"{text} ms is more than 2**62 ns")
    return value


def _check_output(parser, option: str, path: str | None, suffixes=None) -> None:
    """Refuse an output path before any work: its folder must exist and be writable, and
    its suffix (if ``suffixes``) one of them.  ``-`` (stdout) is always fine."""
    if path is None or path == "-":
        return
    if suffixes and os.path.splitext(path)[1].lower() not in suffixes:
        parser.error(f"{option} {path}: unsupported file type (use {', '.join(suffixes)})")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        parser.error(f"{option} {path}: folder {folder} does not exist")
    if os.path.isdir(path):
        parser.error(f"{option} {path}: is a folder")
    if not os.access(folder, os.W_OK):
        parser.error(f"{option} {path}: folder {folder} is not writable")

_POLICIES = list(PRESETS)


def _policy_arg(text: str) -> str:
    """argparse type of --policy: a preset name or FILE.toml:NAME (checked, kept as given)."""
    try:
        resolve_policy(text, "--policy")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


_DEFAULT_POLICIES = ["baseline", "accountforce-v1"]  # the comparison the main job is about


def _parser() -> argparse.ArgumentParser:
    from .workloads import GENERATORS

    p = argparse.ArgumentParser(
        prog="memcg-emu replay",
        description="Replay a generated memory-cgroup workload under kernel policies and "
                    "compare them (usage, peak, overshoot of memory.max, memory.events, "
                    "reclaim, OOM, forced charges).")
    p.add_argument("--events", type=_count, default=None, metavar="N",
                   help=f"number of events (default {DEFAULT_EVENTS:,}; "
                        f"{DEFAULT_EVENTS_PYTHON:,} with the pure-Python engine)")
    p.add_argument("--seed", type=_seed, default=0,
                   help="workload and emulator seed (default 0)")
    p.add_argument("--policy", action="append", type=_policy_arg, default=None,
                   metavar="POLICY",
                   help=f"policy to run: a preset ({', '.join(_POLICIES)}) or FILE.toml:NAME; "
                        "repeat for several (default: all of "
                        f"{', '.join(_DEFAULT_POLICIES)})")
    p.add_argument("--cpus", type=_count, default=None, metavar="N",
                   help="CPUs of the emulated machine (default: the workload's, 4 for mixed)")
    p.add_argument("--backend", choices=["cython", "python"], default=None,
                   help="engine (default: the compiled one when it is built)")
    p.add_argument("--workload", choices=sorted(GENERATORS), default="mixed",
                   help="built-in workload generator (default mixed)")
    p.add_argument("--json", metavar="PATH", default=None,
                   help="also write the results as JSON to PATH ('-': stdout, and the tables "
                        "go to stderr)")
    p.add_argument("--save-events", metavar="PATH", default=None,
                   help="save the generated workload (events + setup) as .npz")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--input", metavar="FILE.npz", default=None,
                   help="replay this workload (memcg-emu import ..., or --save-events) "
                        "instead of generating one")
    p.add_argument("--set", action="append", default=[], metavar="FILE:CGROUP=VALUE",
                   help="with --input: change a limit, e.g. memory.max:/pod=4G (repeat)")
    p.add_argument("--format", choices=["table", "csv", "json", "markdown"], default="table",
                   help="with --input: output format on stdout (default table)")
    return p


# =============================================================================================
# collecting results
# =============================================================================================
def _events_file(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        out[k] = int(v)
    return out


def _cgroup_rows(emu, workload) -> dict[str, dict]:
    """Per-cgroup results read through the cgroupfs interface (values in pages)."""
    rows = {}
    for cg in workload.cgroups:
        path = cg.path
        current = int(emu.read(path, "memory.current")) // PAGE_SIZE
        peak = int(emu.read(path, "memory.peak")) // PAGE_SIZE
        mx = emu.read(path, "memory.max").strip()
        max_pages = None if mx == "max" else int(mx) // PAGE_SIZE
        if max_pages is None and peak == 0:
            continue  # neither limited nor ever charged
        ev = _events_file(emu.read(path, "memory.events"))
        rows[path] = {
            "current": current,
            "peak": peak,
            "max": max_pages,
            "over_max": max(current - max_pages, 0) if max_pages is not None else 0,
            "peak_over_max": max(peak - max_pages, 0) if max_pages is not None else 0,
            "events": ev,
        }
    return rows


def run(workload, policies, backend: str | None, nr_cpus: int | None, seed: int,
        progress: bool, console=None) -> dict:
    """Replay ``workload`` under each policy on a fresh emulator; return a JSON-able dict."""
    out = {}
    for policy in policies:
        emu = workload.build(policy=policy, backend=backend, nr_cpus=nr_cpus, seed=seed)
        if console is not None:
            console.print(f"[bold]replaying[/] under [cyan]{policy}[/] "
                          f"({emu.backend} engine) ...")
        res = emu.replay(workload.events, progress=progress)
        n_bad = int((res.rc != 0).sum())
        out[emu.policy] = {
            "summary": res.summary,
            "elapsed_s": res.elapsed,
            "counters": res.counters,
            "events_with_nonzero_rc": n_bad,
            "cgroups": _cgroup_rows(emu, workload),
        }
    return out


# =============================================================================================
# printing
# =============================================================================================
def _mib(pages: int) -> str:
    return f"{pages * PAGE_SIZE / (1 << 20):,.1f}"


def _cgroup_table(results: dict, workload):
    from rich.table import Table

    policies = list(results)
    paths = []
    for pol in policies:
        for p in results[pol]["cgroups"]:
            if p not in paths:
                paths.append(p)
    order = {c.path: i for i, c in enumerate(workload.cgroups)}
    paths.sort(key=lambda p: order.get(p, 1 << 30))
    hidden = 0
    if len(paths) > MAX_TABLE_ROWS:
        # keep the limited cgroups first, then the biggest peaks
        first = policies[0]

        def rank(p):
            r = results[first]["cgroups"].get(p, {})
            return (r.get("max") is None, -r.get("peak", 0))

        keep = set(sorted(paths, key=rank)[:MAX_TABLE_ROWS])
        hidden = len(paths) - len(keep)
        paths = [p for p in paths if p in keep]

    t = Table(title="Per cgroup at the end of the replay (MiB; 'over max' in pages; "
                    "memory.events max/oom/oom_kill counts)", title_justify="left")
    t.add_column("cgroup", no_wrap=True)
    t.add_column("memory.max", justify="right")
    highs = {c.path: c.high for c in workload.cgroups if c.high is not None}
    if highs:
        t.add_column("memory.high", justify="right")
    for pol in policies:
        for col in ("current", "peak", "over max", "max/oom/kill"):
            t.add_column(f"{pol}\n{col}", justify="right", min_width=max(len(pol), len(col)))
    for p in paths:
        first = next(results[pol]["cgroups"][p] for pol in policies
                     if p in results[pol]["cgroups"])
        cells = [p, "max" if first["max"] is None else _mib(first["max"])]
        if highs:
            cells.append(_mib(highs[p]) if p in highs else "max")
        for pol in policies:
            r = results[pol]["cgroups"].get(p)
            if r is None:
                cells += ["-"] * 4
                continue
            over = r["over_max"]
            ev = r["events"]
            cells += [_mib(r["current"]), _mib(r["peak"]),
                      f"[bold red]{over:,}[/]" if over else "0",
                      f"{ev['max']:,}/{ev['oom']:,}/{ev['oom_kill']:,}"]
        t.add_row(*cells)
    if hidden:
        t.caption = f"{hidden} more cgroups not shown (see --json)"
    return t


def _summary_table(results: dict):
    from rich.table import Table

    t = Table(title="Summary", title_justify="left")
    t.add_column("")
    policies = list(results)
    for pol in policies:
        t.add_column(pol, justify="right")
    rows = [
        ("events", lambda r: f"{r['summary']['events']:,}"),
        ("events/s", lambda r: f"{r['summary']['events_per_sec']:,.0f}"),
        ("replay time (s)", lambda r: f"{r['elapsed_s']:.2f}"),
        ("stock hit rate", lambda r: f"{r['summary']['stock_hit_rate']:.1%}"),
        ("stock drains", lambda r: f"{r['summary']['drains']:,}"),
        ("reclaim scanned (pages)", lambda r: f"{r['summary']['reclaim_scanned']:,}"),
        ("reclaim reclaimed (pages)", lambda r: f"{r['summary']['reclaim_reclaimed']:,}"),
        ("OOM kills", lambda r: f"{r['summary']['oom_kills']:,}"),
        ("forced charges", lambda r: f"{r['summary']['forced_charges']:,}"),
        ("pages forced over max", lambda r: f"{r['summary']['pages_forced_over_max']:,}"),
        ("livelocks", lambda r: f"{r['summary']['livelocks']:,}"),
        ("-ENOMEM charges", lambda r: f"{r['summary']['enomem']:,}"),
        ("max peak over memory.max (pages)",
         lambda r: f"{max((c['peak_over_max'] for c in r['cgroups'].values()), default=0):,}"),
    ]
    for name, fmt in rows:
        t.add_row(name, *[fmt(results[pol]) for pol in policies])
    return t


def _finite(obj):
    """JSON has no inf/nan: a rate over a zero-length run becomes null."""
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


# =============================================================================================
# entry point
# =============================================================================================
_USAGE = """usage: memcg-emu [--version] [SUBCOMMAND] ...

  memcg-emu                      run jbd2-stall under baseline, accountforce-v1 and
                                 legacy-dying-bypass, seeds 0-9 (the main job)
  memcg-emu scenario [NAME] ...  run a timed scenario under several policies, one table
  memcg-emu scenarios            list the timed scenarios
  memcg-emu sweep [NAME] ...     a grid of policies x seeds x parameters, on Dask (or replay)
  memcg-emu replay [options]     replay a generated workload under each policy
                                 (options without a subcommand mean replay)
  memcg-emu policies [--diff A B]  list the policy presets and knobs, or compare two
  memcg-emu import samples|trace|script ...  import a recording (replay --input FILE)
  memcg-emu run FILE.toml [--set KEY=VALUE]  run a scenario file (run --list: built-ins)
  memcg-emu bench [--compare BASELINE.json]  replay speed as ratios; exit 1 on a regression

'memcg-emu SUBCOMMAND --help' describes each one's options.
"""


def _commands() -> dict:
    """Subcommand -> ``<name>_main(argv) -> exit code``.  A new subcommand lives in its own
    module and adds one line here (and one usage line above)."""
    return {
        "replay": replay_main,
        "scenario": scenario_main,
        "scenarios": scenarios_main,
        "import": _lazy("cli_import", "import_main"),
        "run": _lazy("cli_run", "run_main"),
        "policies": policies_main,
        "sweep": _lazy("cli_sweep", "sweep_main"),
        "bench": _lazy("cli_bench", "bench_main"),
    }


def _lazy(module: str, name: str):
    """``name`` of ``memcg_emu.<module>``, imported when the subcommand runs."""
    def run(argv: list[str]) -> int:
        import importlib

        return getattr(importlib.import_module(f".{module}", __package__), name)(argv)
    return run


def main(argv: list[str] | None = None) -> int:
    """Run the ``memcg-emu`` command; returns the exit code (0 on success, 1 on a rejected
    input, 2 on a usage error, 130 on Ctrl-C)."""
    from . import __version__
    from .errors import EmuError

    argv = list(sys.argv[1:] if argv is None else argv)
    commands = _commands()
    try:
        if not argv:
            return scenario_main([])
        first = argv[0]
        if first in ("-h", "--help"):
            print(_USAGE, end="")
            return 0
        if first in ("-V", "--version"):
            print(f"memcg-emu {__version__}")
            return 0
        if first in commands:
            return commands[first](argv[1:])
        if first.startswith("-"):  # the old flag-style invocation: a replay
            return replay_main(argv)
        print(_USAGE, end="", file=sys.stderr)
        print(f"memcg-emu: error: unknown subcommand {first!r} (choose from "
              f"{', '.join(commands)})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("memcg-emu: interrupted", file=sys.stderr)
        return 130
    except EmuError as e:  # bad input found after parsing: one line, no traceback
        print(f"memcg-emu: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # an output that could not be written after all
        print(f"memcg-emu: error: {e}", file=sys.stderr)
        return 1


def _check_backend(backend_arg, err):
    from ._backend import BACKEND

    backend = backend_arg or BACKEND
    if backend == "cython" and BACKEND != "cython":
        err.print("[red]error:[/] --backend cython: the compiled engine memcg_emu._core is not "
                  "available (not built, or MEMCG_EMU_PUREPYTHON=1 is set)")
        return None
    return backend


# =============================================================================================
# timed scenarios
# =============================================================================================
def _scenario_parser() -> argparse.ArgumentParser:
    from .scenarios import DEFAULT_POLICIES, SCENARIOS

    p = argparse.ArgumentParser(
        prog="memcg-emu scenario",
        description="Run a built-in timed scenario under several policies and compare them in "
                    "one table (rows = measurements, columns = policies).")
    p.add_argument("name", nargs="?", default="jbd2-stall", choices=list(SCENARIOS),
                   metavar="NAME", help=f"scenario: {', '.join(SCENARIOS)} "
                                        "(default jbd2-stall)")
    p.add_argument("--policy", action="append", type=_policy_arg, default=None,
                   metavar="POLICY",
                   help=f"policy to run: a preset ({', '.join(_POLICIES)}) or FILE.toml:NAME; "
                        "repeat for several (default: "
                        f"{', '.join(DEFAULT_POLICIES)})")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", default=None, metavar="SPEC",
                       help="seeds: N, A-B (inclusive) or a comma list; several seeds give "
                            f"distributions (median, IQR, fraction of seeds showing each "
                            f"signature) (default {DEFAULT_SEEDS})")
    seeds.add_argument("--seed", type=_seed, default=None,
                       help="one seed: every measurement of each run (the same as --seeds N)")
    p.add_argument("--duration-ms", type=_duration_ms, default=None, metavar="MS",
                   help="simulated time in ms (default: the scenario's)")
    p.add_argument("--backend", choices=["cython", "python"], default=None,
                   help="engine (default: the compiled one when it is built)")
    p.add_argument("--json", metavar="PATH", default=None,
                   help="also write the summaries and series as JSON to PATH ('-': stdout, "
                        "and the table goes to stderr); with several seeds, every run's "
                        "summary and the distributions (series: one --seed)")
    p.add_argument("--plot", metavar="PATH.png", default=None,
                   help="also plot usage vs memory.max, D-state tasks and the journal over "
                        "time, for the first seed (needs matplotlib: "
                        "pip install 'memcg-emu[plot]')")
    return p


def _scenario_table(name: str, results: dict):
    from rich.table import Table

    from .scenarios import comparison

    t = Table(title=f"{name}: policies side by side (times simulated unless 'wall')",
              title_justify="left")
    t.add_column("")
    for pol in results:
        t.add_column(pol, justify="right")
    for label, cells in comparison(results):
        t.add_row(label, *cells)
    return t


def _series_json(res) -> dict:
    out = {k: v.tolist() for k, v in res.series.items() if k not in ("usage", "max")}
    for j, cg in enumerate(res.cgroups):
        out[f"usage:{cg}"] = res.series["usage"][:, j].tolist()
        out[f"max:{cg}"] = res.series["max"][:, j].tolist()
    return out


def _scenario_seeds(args, sc, policies, seeds, backend, duration_ns, console) -> int:
    """``memcg-emu scenario --seeds``: every policy under every seed (in this process, each
    run a fresh simulation); distributions as :mod:`memcg_emu.sweep` summarizes them."""
    from . import __version__, scenarios
    from .sweep import _flatten

    console.print(f"[bold]{args.name}[/]: {sc.description}; {len(seeds)} seeds "
                  f"({seeds[0]}..{seeds[-1]}) x {len(policies)} policies; {backend} engine")
    rows: dict[str, list] = {}
    first: dict = {}
    for pol in policies:
        for i, seed in enumerate(seeds):
            with console.status(f"running {args.name} under {pol}, seed {seed} "
                                f"({i + 1}/{len(seeds)}) ..."):
                (label, res), = scenarios.run(args.name, [pol], seed=seed, backend=backend,
                                              duration_ns=duration_ns).items()
            rows.setdefault(label, []).append(_flatten(res.summary))
            if i == 0:
                first[label] = res
    from ._output import render
    from .sweep import seed_tables

    render(seed_tables(args.name, rows), file=console.file)
    if args.json:
        doc = {
            "memcg_emu_version": __version__,
            "scenario": args.name,
            "backend": backend,
            "seeds": seeds,
            "page_size": PAGE_SIZE,
            "units": "pages; times in ns unless named *_seconds",
            "policies": {pol: {"runs": [{"seed": s, **r} for s, r in zip(seeds, runs)]}
                         for pol, runs in rows.items()},
        }
    else:
        doc = None
    _scenario_outputs(args, doc, first, console, f"plot of seed {seeds[0]}")
    return 0


def _scenario_outputs(args, doc, results: dict, console, plot_what: str = "plot") -> None:
    """Write ``--json`` (``doc``) and ``--plot`` (of ``results``) of ``memcg-emu scenario``."""
    if args.json:
        from ._output import write_json

        write_json(_finite(doc), args.json)  # "-": stdout
        if args.json != "-":
            console.print(f"results written to {args.json}")
    if args.plot:
        from .plots import plot_scenario

        plot_scenario(results, args.plot)
        console.print(f"{plot_what} written to {args.plot}")


def scenario_main(argv: list[str]) -> int:
    """``memcg-emu scenario``: run one scenario under several policies; print one table."""
    from rich.console import Console

    from . import __version__, scenarios

    parser = _scenario_parser()
    args = parser.parse_args(argv)
    _check_output(parser, "--json", args.json)
    _check_output(parser, "--plot", args.plot, PLOT_SUFFIXES)
    if args.plot == "-":
        parser.error("--plot -: a plot needs a file name")
    console = Console(width=None if sys.stdout.isatty() else 200, stderr=args.json == "-")
    err = Console(stderr=True)
    backend = _check_backend(args.backend, err)
    if backend is None:
        return 2
    duration_ns = None
    if args.duration_ms is not None:
        duration_ns = int(args.duration_ms * 1_000_000)
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            err.print("[red]error:[/] --plot needs matplotlib: pip install 'memcg-emu[plot]'")
            return 2
    policies = list(dict.fromkeys(args.policy or scenarios.DEFAULT_POLICIES))
    if args.seed is not None:
        seeds = [args.seed]
    else:
        from .errors import EmuError
        from .sweep import parse_seeds

        try:
            seeds = parse_seeds(args.seeds or DEFAULT_SEEDS)
        except EmuError as e:
            parser.error(str(e))
    sc = scenarios.SCENARIOS[args.name]
    if len(seeds) > 1:
        return _scenario_seeds(args, sc, policies, seeds, backend, duration_ns, console)
    args.seed = seeds[0]
    console.print(f"[bold]{args.name}[/]: {sc.description}; seed {args.seed}; "
                  f"{backend} engine")
    results = {}
    for pol in policies:
        with console.status(f"running {args.name} under {pol} ..."):
            results.update(scenarios.run(args.name, [pol], seed=args.seed, backend=backend,
                                         duration_ns=duration_ns))
    console.print(_scenario_table(args.name, results))
    if args.json:
        doc = {
            "memcg_emu_version": __version__,
            "scenario": args.name,
            "backend": backend,
            "seed": args.seed,
            "page_size": PAGE_SIZE,
            "units": "pages; times in ns unless named *_seconds",
            "policies": {pol: {"summary": r.summary, "cgroups": r.cgroups,
                               "series": _series_json(r)} for pol, r in results.items()},
        }
    else:
        doc = None
    _scenario_outputs(args, doc, results, console)
    return 0


def scenarios_main(argv: list[str]) -> int:
    """``memcg-emu scenarios``: list the built-in timed scenarios."""
    from rich.console import Console
    from rich.table import Table

    from .scenarios import SCENARIOS

    argparse.ArgumentParser(prog="memcg-emu scenarios",
                            description="List the built-in timed scenarios.").parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 200)
    t = Table(title="Timed scenarios (memcg-emu scenario NAME)", title_justify="left")
    t.add_column("name", no_wrap=True)
    t.add_column("simulated", justify="right")
    t.add_column("what it models")
    for name, sc in SCENARIOS.items():
        dur = sc.params().duration_ns / 1e6 if sc.params else float("nan")
        t.add_row(name, f"{dur:,.0f} ms", sc.description)
    console.print(t)
    return 0


# =============================================================================================
# replay
# =============================================================================================
def replay_main(argv: list[str]) -> int:
    """``memcg-emu replay``: replay a generated workload under each policy."""
    from rich.console import Console

    from . import __version__, io
    from .workloads import GENERATORS

    parser = _parser()
    args = parser.parse_args(argv)
    _check_output(parser, "--json", args.json)
    _check_output(parser, "--save-events", args.save_events, (".npz",))
    if args.save_events == "-":
        parser.error("--save-events -: the workload needs a file name")
    if args.events is not None and not 1 <= args.events <= MAX_EVENTS:
        parser.error(f"--events must be in [1, {MAX_EVENTS:,}], not {args.events:.4g}")
    if args.cpus is not None and not 1 <= args.cpus <= 4096:
        parser.error(f"--cpus must be in [1, 4096], not {args.cpus}")
    console = Console(width=None if sys.stdout.isatty() else 200, stderr=args.json == "-")
    err = Console(stderr=True)

    backend = _check_backend(args.backend, err)
    if backend is None:
        return 2
    if args.input:
        from .cli_import import replay_input

        return replay_input(args.input, list(dict.fromkeys(args.policy or ["baseline"])),
                            args.set, args.format, args.json, backend, args.seed, args.cpus)
    if args.set:
        parser.error("--set needs --input")
    n_events = args.events
    if n_events is None:
        n_events = DEFAULT_EVENTS if backend == "cython" else DEFAULT_EVENTS_PYTHON
        if backend != "cython":
            console.print(f"[yellow]note:[/] the pure-Python reference engine is in use, so the "
                          f"default workload is scaled down from {DEFAULT_EVENTS:,} to "
                          f"{n_events:,} events (pass --events to choose; build the compiled "
                          f"engine for full speed)")
    if n_events < 1:
        parser.error(f"--events must be at least 1, not {n_events}")
    if args.cpus is not None and args.cpus < 1:
        parser.error(f"--cpus must be at least 1, not {args.cpus}")
    if args.seed < 0:
        parser.error(f"--seed must be non-negative, not {args.seed}")
    policies = list(dict.fromkeys(args.policy or _DEFAULT_POLICIES))

    gen = GENERATORS[args.workload]
    kwargs = {"seed": args.seed}
    if args.cpus is not None and "nr_cpus" in inspect.signature(gen).parameters:
        kwargs["nr_cpus"] = args.cpus
    with console.status(f"generating {args.workload} workload ({n_events:,} events) ..."):
        workload = gen(n_events, **kwargs)
    d = workload.describe()
    nr_cpus = args.cpus if args.cpus is not None else workload.nr_cpus
    console.print(
        f"[bold]{args.workload}[/]: {d['events']:,} events, {d['cgroups']} cgroups in "
        f"{d['levels']} levels ({d['limited_cgroups']} with memory.max), {d['tasks']} tasks "
        f"({d['kthreads']} kernel threads), {nr_cpus} CPUs, seed {args.seed}; "
        f"{backend} engine")
    if args.save_events:
        io.save_workload(args.save_events, workload)
        console.print(f"saved the workload to {args.save_events}")

    try:
        results = run(workload, policies, backend, nr_cpus, args.seed,
                      progress=not args.no_progress and console.is_terminal, console=console)
    except ValueError as e:  # a rejected replay or an impossible setup: report, don't trace
        err.print(f"[red]error:[/] {e}")
        return 1

    console.print(_cgroup_table(results, workload))
    console.print(_summary_table(results))
    if args.json:
        doc = {
            "memcg_emu_version": __version__,
            "backend": backend,
            "nr_cpus": nr_cpus,
            "seed": args.seed,
            "workload": {**d, "params": workload.params,
                         "setup": workload.setup_dict()},
            "page_size": PAGE_SIZE,
            "units": "pages",
            "page_counter_max": PAGE_COUNTER_MAX,
            "policies": results,
        }
        from ._output import write_json

        write_json(_finite(doc), args.json)  # "-": stdout
        if args.json != "-":
            console.print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
