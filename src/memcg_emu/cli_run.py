"""``memcg-emu run FILE.toml [--set KEY=VALUE ...]``: run a scenario file
(:mod:`memcg_emu.scenario_file`): a timed scenario under each policy and seed (one table,
rows = measurements, columns = policies; over several seeds, the median and IQR of the main
figures and the fraction of seeds showing each signature), or a replay run (the ``replay --input``
what-if table).  ``memcg-emu run --list`` lists the shipped files of the built-in
scenarios."""
from __future__ import annotations

import argparse
import os
import sys

from ._output import FORMATS, Section, render, status, write_json


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="memcg-emu run",
                                description="Run a scenario file (TOML): a timed scenario or "
                                            "a replay of an imported workload.")
    p.add_argument("file", nargs="?", metavar="FILE.toml",
                   help="a scenario file, or the name of a built-in scenario")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="change one key first, e.g. run.duration_ms=500, "
                        "tasks.pod.count=32, cgroups.pod.max=64M (repeat)")
    p.add_argument("--policy", action="append", default=None,
                   help="run only these policies (repeat; default: the file's)")
    p.add_argument("--seed", action="append", type=int, default=None,
                   help="run only these seeds (repeat; default: the file's)")
    p.add_argument("--backend", choices=["cython", "python"], default=None)
    p.add_argument("--format", choices=FORMATS, default="table",
                   help="output format on stdout (default table)")
    p.add_argument("--json", metavar="PATH", default=None,
                   help="also write the results as JSON to PATH ('-': stdout)")
    p.add_argument("--list", action="store_true", help="list the shipped scenario files")
    return p


def run_main(argv: list[str]) -> int:
    """``memcg-emu run``: see the module docstring."""
    from . import __version__, scenario_file, scenarios
    from .errors import EmuError
    from .policy import resolve_policy

    parser = _parser()
    args = parser.parse_args(argv)
    if args.list:
        rows = [[n, scenario_file.builtin_path(n)] for n in scenarios.SCENARIOS]
        render([Section("Shipped scenario files (memcg-emu run NAME or PATH)",
                        ["name", "file"], rows)], args.format)
        return 0
    if not args.file:
        parser.error("give a scenario file (or --list)")
    path = args.file
    if not os.path.exists(path) and path in scenarios.SCENARIOS:
        path = scenario_file.builtin_path(path)
    for pol in args.policy or []:
        try:
            resolve_policy(pol, "--policy")
        except ValueError as e:
            parser.error(str(e))
    try:
        sf = scenario_file.load(path, args.set)
    except EmuError as e:
        print(f"memcg-emu run: error: {e}", file=sys.stderr)
        return 2
    if sf.kind == "replay":
        from .cli_import import replay_input

        r = sf.doc["replay"]
        inp = r["input"]
        if not os.path.isabs(inp):
            inp = os.path.join(os.path.dirname(os.path.abspath(path)), inp)
        return replay_input(inp, args.policy or sf.policies, r.get("set", []), args.format,
                            args.json, args.backend, (args.seed or [r.get("seed", 0)])[0],
                            r.get("nr_cpus"))
    status(f"{sf.name}: {sf.doc.get('description', '')} ({path})")
    try:
        results = {}
        for seed in args.seed or sf.seeds:
            for pol in args.policy or sf.policies:
                status(f"running {sf.name} under {pol}, seed {seed} ...")
                results.update(scenario_file.run(sf, backend=args.backend, policies=[pol],
                                                 seeds=[seed]))
    except EmuError as e:
        print(f"memcg-emu run: error: {e}", file=sys.stderr)
        return 1
    doc = {"memcg_emu_version": __version__, "file": path, "set": args.set,
           "scenario": sf.doc,
           "runs": [{"policy": p, "seed": s, "summary": r.summary}
                    for (p, s), r in results.items()]}
    if len({s for _, s in results}) > 1:  # several seeds: distributions, as the sweep's
        from .sweep import _flatten, seed_tables

        by_policy: dict[str, list] = {}
        for (p, _), r in results.items():
            by_policy.setdefault(p, []).append(_flatten(r.summary))
        render(seed_tables(sf.name, by_policy), args.format, doc=doc)
    else:
        cols = [""] + [p for p, _ in results]
        rows = [[label] + [fmt(results[k].summary[key]) for k in results]
                for label, key, fmt in scenarios.SUMMARY_ROWS]
        title = f"{sf.name}: policies side by side (times simulated unless 'wall')"
        render([Section(title, cols, rows)], args.format, doc=doc)
    if args.json:
        write_json(doc, args.json)
    return 0


__all__ = ["run_main"]
