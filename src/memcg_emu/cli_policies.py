"""``memcg-emu policies``: the policy presets and their knobs, or how two policies differ.

``memcg-emu policies``                 one table of every knob (rows) by preset (columns),
                                       then each knob's kernel code and values
``memcg-emu policies --diff A B``      the knobs on which A and B differ
``memcg-emu policies --file F.toml``   also show the policies F defines

A and B are preset names or ``FILE.toml:NAME``.
"""
from __future__ import annotations

import argparse
import sys

from .policy import KNOBS, PRESETS, load_policies, resolve_policy


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="memcg-emu policies",
        description="List the policy presets and their kernel knobs, or show how two "
                    "policies differ.  A policy is a preset name or FILE.toml:NAME.")
    p.add_argument("--diff", nargs=2, metavar=("A", "B"), default=None,
                   help="show the knobs on which policies A and B differ")
    p.add_argument("--file", metavar="FILE.toml", action="append", default=[],
                   help="also list the policies this TOML file defines ([policy.NAME] tables)")
    return p


def policies_main(argv: list[str]) -> int:
    """Run ``memcg-emu policies``; returns the exit code."""
    from rich.console import Console
    from rich.table import Table

    args = _parser().parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 200)
    err = Console(stderr=True)
    try:
        if args.diff:
            a, b = (resolve_policy(x, "--diff") for x in args.diff)
            pols = {}
        else:
            pols = dict(PRESETS)
            for path in args.file:
                pols.update(load_policies(path))
    except ValueError as exc:
        err.print(f"[red]error:[/] {exc}")
        return 2

    if args.diff:
        d = a.diff(b)
        if not d:
            console.print(f"{a.name} and {b.name} have the same knobs")
            return 0
        t = Table(title=f"{a.name} vs {b.name}: {len(d)} knob(s) differ", title_justify="left")
        t.add_column("knob", no_wrap=True)
        t.add_column(a.name)
        t.add_column(b.name)
        t.add_column("kernel code")
        for k, (va, vb) in d.items():
            t.add_row(k, str(va), str(vb), KNOBS[k].kernel)
        console.print(t)
        return 0

    t = Table(title="Policies (memcg-emu ... --policy NAME); rows are knobs",
              title_justify="left")
    t.add_column("knob", no_wrap=True)
    for name in pols:
        t.add_column(name, no_wrap=True)
    for k in KNOBS:
        t.add_row(k, *(str(p[k]) for p in pols.values()))
    console.print(t)
    k_t = Table(title="Knobs (value 0 = unpatched / as posted)", title_justify="left")
    k_t.add_column("knob", no_wrap=True)
    k_t.add_column("kernel code")
    k_t.add_column("values")
    for k, spec in KNOBS.items():
        if spec.values:
            vals = "\n".join(f"{v}: {doc}" for v, (_, doc) in spec.values.items())
        else:
            vals = f"integer {spec.int_range[0]}..{spec.int_range[1]} ({spec.unit})"
        k_t.add_row(k, spec.kernel, vals)
    console.print(k_t)
    return 0
