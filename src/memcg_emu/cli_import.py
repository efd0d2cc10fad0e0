"""``memcg-emu import``: recordings -> replayable workloads; and ``memcg-emu replay --input``.

``memcg-emu import samples SAMPLES.csv[.gz] -o OUT.npz [--set memory.max:/cg=12M ...]``
    cgroupfs samples (:func:`memcg_emu.importers.import_samples`).
``memcg-emu import trace TRACE.txt[.gz] [--map memcg_map.txt] [--samples samples.csv] -o OUT.npz``
    a kprobe/tracepoint trace (:func:`memcg_emu.importers.import_trace`).
``memcg-emu import script [-o PATH]``
    write the capture script (POSIX sh) that records both, to PATH or stdout.

Unreadable lines are counted and listed with their line numbers (``--strict``: the first one
is an error and nothing is written).
"""
from __future__ import annotations

import argparse
import sys

from ._output import Section, render, status, write_json


def _import_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="memcg-emu import",
        description="Turn a recording (cgroupfs samples or a kprobe/tracepoint trace, as the "
                    "capture script writes them) into a workload file for "
                    "'memcg-emu replay --input'.")
    sub = p.add_subparsers(dest="what", required=True, metavar="samples|trace|script")
    s = sub.add_parser("samples", help="cgroupfs samples (samples.csv)")
    s.add_argument("file", metavar="SAMPLES.csv")
    s.add_argument("--meta", default=None, metavar="meta.txt",
                   help="the capture's meta.txt (default: next to the file)")
    s.add_argument("--pages-per-event", type=int, default=1, metavar="N",
                   help="pages per charge/uncharge event (default 1: one folio each)")
    t = sub.add_parser("trace", help="a kprobe/tracepoint trace (trace.txt)")
    t.add_argument("file", metavar="TRACE.txt")
    t.add_argument("--map", default=None, metavar="memcg_map.txt",
                   help="memcg pointer -> cgroup map (default: next to the trace)")
    t.add_argument("--samples", default=None, metavar="samples.csv",
                   help="the run's samples, for comparison (default: next to the trace)")
    t.add_argument("--reclaim-frees", choices=["emulate", "replay"], default="emulate",
                   help="pages the kernel's memcg reclaim freed: leave them to the "
                        "emulator's reclaim (default) or replay them as uncharges")
    for q in (s, t):
        q.add_argument("-o", "--output", required=True, metavar="OUT.npz")
        q.add_argument("--set", action="append", default=[], metavar="FILE:CGROUP=VALUE",
                       help="a limit of the setup, e.g. memory.max:/W/anon=12M (repeat)")
        q.add_argument("--nr-cpus", type=int, default=None, metavar="N",
                       help="CPUs of the emulated machine (default: the capture's)")
        q.add_argument("--start", default="first-sample", metavar="first-sample|none|FILE.json",
                       help="starting state: the first sample's pages (default), none, or a "
                            "JSON snapshot {cgroup: {kind: pages}} (kinds: anon, file, "
                            "file_dirty, file_writeback, kernel)")
        q.add_argument("--strict", action="store_true",
                       help="an unreadable line is an error (default: count and report)")
    c = sub.add_parser("script", help="write the capture script")
    c.add_argument("-o", "--output", default="-", metavar="PATH",
                   help="where to write it (default: stdout)")
    return p


def import_main(argv: list[str]) -> int:
    """``memcg-emu import``: see the module docstring."""
    from .errors import EmuError
    from .importers import (
        capture_script_path,
        import_samples,
        import_trace,
        limit_overrides,
        save_imported,
    )

    args = _import_parser().parse_args(argv)
    if args.what == "script":
        with open(capture_script_path(), encoding="utf-8") as f:
            text = f.read()
        if args.output == "-":
            sys.stdout.write(text)
        else:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(text)
            status(f"capture script written to {args.output} (run it as root: "
                   f"sh {args.output} -h)")
        return 0
    try:
        from .importers._common import load_snapshot

        limits = limit_overrides(args.set)
        start = {"first-sample": "first-sample", "none": None}.get(args.start)
        if args.start not in ("first-sample", "none"):
            start = load_snapshot(args.start)
        if args.what == "samples":
            imp = import_samples(args.file, limits=limits, nr_cpus=args.nr_cpus,
                                 strict=args.strict, meta_path=args.meta,
                                 pages_per_event=args.pages_per_event,
                                 start=None if start == "first-sample" else start or {})
        else:
            imp = import_trace(args.file, memcg_map=args.map, samples=args.samples,
                               limits=limits, nr_cpus=args.nr_cpus, strict=args.strict,
                               reclaim_frees=args.reclaim_frees, start=start)
    except (EmuError, OSError) as e:
        print(f"memcg-emu import: error: {e}", file=sys.stderr)
        return 1
    save_imported(args.output, imp)
    d = imp.workload.describe()
    for line in imp.report.summary_lines():
        status(line)
    status(f"{args.what}: {d['events']:,} events, {d['cgroups']} cgroups, {d['tasks']} tasks, "
           f"{imp.recorded_usage.shape[0]} recorded samples, {imp.annotations.shape[0]} "
           f"annotations -> {args.output}")
    return 0


# =============================================================================================
# memcg-emu replay --input FILE
# =============================================================================================
def _mib(pages) -> float | None:
    from ._constants import PAGE_SIZE

    return None if pages is None else round(pages * PAGE_SIZE / (1 << 20), 1)


def replay_input(path: str, policies: list[str], settings: list[str], fmt: str,
                 json_dest: str | None, backend: str | None, seed: int,
                 nr_cpus: int | None) -> int:
    """Replay an imported (or saved) workload under each policy, with ``settings`` (limit
    overrides) applied: the what-if table; for imports with recorded samples, also the
    recorded kernel's memory.events and memory.current beside the emulator's under
    ``baseline`` with the recorded (unchanged) limits."""
    import numpy as np

    from . import __version__, io
    from ._constants import PAGE_COUNTER_MAX
    from .errors import EmuError
    from .importers import (
        ImportedWorkload,
        LineReport,
        events_side_by_side,
        limit_overrides,
        load_imported,
        replay_imported,
        usage_error,
    )
    from .importers._common import EVENT_KEYS, limits_of

    try:
        imp = load_imported(path)
        if imp is None:  # a plain saved workload (memcg-emu replay --save-events)
            imp = ImportedWorkload(kind="workload", workload=io.load_workload(path),
                                   report=LineReport(False))
        overrides = limit_overrides(settings)
        whatif = imp.with_limits(overrides) if overrides else imp
    except (EmuError, OSError) as e:
        print(f"memcg-emu replay: error: {e}", file=sys.stderr)
        return 1
    wl = whatif.workload
    results = {}
    for pol in policies:
        status(f"replaying {path} under {pol} ...")
        results[pol] = replay_imported(whatif, pol, backend=backend, seed=seed,
                                       nr_cpus=nr_cpus)
    lim = limits_of(wl)
    final = {pol: r for pol, r in results.items()}

    def peak_of(r, c):
        return int(r["usage"][:, c].max()) if r["usage"].size else 0

    cols = ["cgroup", "memory.max MiB", "memory.high MiB"]
    for pol in policies:
        cols += [f"{pol} peak MiB", f"{pol} max/oom/oom_kill", f"{pol} high"]
    rows = []
    for c, p in enumerate(wl.paths):
        if c == 0:
            continue
        row = [p, _mib(lim[p]["max"]) if lim[p]["max"] is not None else "max",
               _mib(lim[p]["high"]) if lim[p]["high"] is not None else "max"]
        for pol in policies:
            r = final[pol]
            e = r["events"][-1, c] if r["events"].size else np.zeros(6, np.int64)
            row += [_mib(peak_of(r, c)), f"{e[2]}/{e[3]}/{e[4]}", int(e[1])]
        rows.append(row)
    changed = ", ".join(settings) if settings else "none"
    sections = [Section(f"What-if on {path} ({imp.kind} import; limits changed: {changed})",
                        cols, rows,
                        note="peak = highest memory.current at a recorded sample; events "
                             "are memory.events (hierarchical) at the end")]
    srows = []
    keys = [("events", lambda r: wl.n_events),
            ("skipped events", lambda r: r["n_skipped"]),
            ("reclaimed pages", lambda r: r["counters"].get("reclaim_reclaimed", 0)),
            ("OOM kills", lambda r: r["counters"].get("oom_kills", 0)),
            ("forced charges", lambda r: r["counters"].get("forced_charges", 0)),
            ("-ENOMEM charges", lambda r: r["counters"].get("enomem", 0)),
            ("throttle jiffies", lambda r: r["counters"].get("throttle_jiffies", 0))]
    for name, f in keys:
        srows.append([name] + [f(final[pol]) for pol in policies])
    sections.append(Section("Summary", [""] + policies, srows))
    doc = {"memcg_emu_version": __version__, "input": path, "kind": imp.kind,
           "set": settings, "limits_pages": {p: {k: (v if v != PAGE_COUNTER_MAX else None)
                                                  for k, v in d.items()}
                                              for p, d in lim.items()},
           "policies": {pol: {"skipped": r["skipped"], "counters": r["counters"],
                              "peak_pages": {p: peak_of(r, c) for c, p in
                                             enumerate(wl.paths) if c},
                              "memory_events_end": {p: dict(zip(EVENT_KEYS,
                                                                r["events"][-1, c].tolist()))
                                                    for c, p in enumerate(wl.paths) if c}}
                        for pol, r in final.items()}}
    if imp.recorded_usage.size:
        ref = results.get("baseline") if not overrides and "baseline" in results else \
            replay_imported(imp, "baseline", backend=backend, seed=seed, nr_cpus=nr_cpus)
        side = events_side_by_side(imp, ref["events"])
        uerr = usage_error(imp, ref["usage"])
        ecols = ["cgroup"] + [f"{k} kernel/emu" for k in ("high", "max", "oom", "oom_kill")] \
            + ["current peak kernel/emu MiB", "mean |err| MiB", "max |err| MiB"]
        erows = []
        for p, ev in side.items():
            u = uerr.get(p, {})
            erows.append([p] + [f"{ev[k][0]}/{ev[k][1]}" for k in
                                ("high", "max", "oom", "oom_kill")]
                         + [f"{_mib(u.get('recorded_peak'))}/{_mib(u.get('emulated_peak'))}",
                            _mib(u.get("mean_abs_error")), _mib(u.get("max_abs_error"))])
        sections.append(Section(
            "Recorded kernel vs emulator (baseline, recorded limits)", ecols, erows,
            note=f"{ref['n_skipped']} events skipped in this replay; memory.current compared "
                 f"at {imp.recorded_usage.shape[0]} recorded samples"))
        doc["recorded_vs_emulated"] = {
            "memory_events": {p: {k: {"kernel": v[0], "emulator": v[1]}
                                  for k, v in ev.items()} for p, ev in side.items()},
            "usage_error_pages": uerr, "skipped": ref["skipped"]}
    render(sections, fmt, doc=doc)
    if json_dest:
        write_json(doc, json_dest)
        if json_dest != "-":
            status(f"results written to {json_dest}")
    return 0


__all__ = ["import_main", "replay_input"]
