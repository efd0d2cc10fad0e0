"""Scenario files: a timed scenario or a replay run described in TOML.

A timed scenario::

    format = 1
    kind = "timed"
    name = "my-pod"
    description = "..."

    [run]                      # all optional
    policies = ["baseline", "accountforce-v1"]
    seeds = [0]                # one run per policy and seed
    duration_ms = 1500
    sample_dt_ms = 10
    nr_cpus = 8
    strict = false             # TimedSim(strict=...): skip (count) impossible uncharges
    swap = "0"

    [costs]                    # memcg_emu.timed.CostModel fields (ns); absent: defaults
    writeback_page_ns = 100000
    [journal]                  # JournalConfig fields
    commit_interval_ns = 200_000_000
    [flusher]                  # FlusherConfig fields
    interval_ns = 500_000_000

    [[cgroups]]                # created in order (parents first), then limits written
    path = "pod"
    max = "32M"                # memory.max/high/low/min: bytes, "32M" or "max"

    [[tasks]]                  # task groups, created in order
    name = "pod"
    cgroup = "pod"
    count = 16
    threads = 16
    program = "jbd2-pod"       # a named program template (PROGRAM_TEMPLATES)
    params = { proc_anon_pages = 435, file_pages = 2,
               think_ns = [5_000_000, 25_000_000], mkwrite_threads = 2 }
    cpu = "spread"             # task i on CPU i % nr_cpus; or a CPU number (default 0)
    start_ns = [0, 20_000_000] # a start time, or [lo, hi): drawn per task from the seed
    # start_step_ns = 10_000   # or task i starts at i * step
    # thread_of = "holder"     # each task a thread of that earlier group's first process
    #                          # (shares its mm and mmap_lock; same cgroup)
    # threads = 16             # each of the `count` tasks is a process of 16 threads
    #                          # (count x threads tasks, process-major; draws per task)

Random draws (think times, start times) come from one ``numpy.random.default_rng(seed)``, in
file order: for each task group its template's draws, then its start times.

A replay run::

    format = 1
    kind = "replay"
    [replay]
    input = "samples.npz"      # relative to the TOML file
    set = ["memory.max:/W/file=4M"]
    policies = ["baseline"]
    seed = 0

Every key is checked before anything runs: an unknown key, a wrong type or a bad value
raises :class:`~memcg_emu.errors.InvalidConfigError` naming the file, the key and the
reason.  ``memcg-emu run FILE.toml [--set KEY=VALUE ...]`` runs a file; ``--set`` changes
one key first (``run.duration_ms=500``, ``tasks.pod.count=32``,
``tasks.pod.params.file_pages=16``, ``cgroups.pod.max=64M``, ``costs.writeback_page_ns=0``).
The built-in scenarios ship as files (:func:`builtin_path`).
"""
from __future__ import annotations

import copy
import os
import sys
from dataclasses import dataclass, fields
from importlib import resources

import numpy as np

from . import _constants
from ._constants import GFP_HIGHUSER_MOVABLE, GFP_KERNEL, KIND_NAMES
from ._parse import read_toml
from .errors import InvalidConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FORMAT = 1
MS = 1_000_000


def _err(where: str, key: str, reason: str) -> InvalidConfigError:
    return InvalidConfigError(f"{where}: {key}: {reason}")


# =============================================================================================
# program templates
# =============================================================================================
def _gfp(value, where, key) -> int:
    if isinstance(value, bool):
        raise _err(where, key, f"expected a gfp mask (int or names joined by '|'), not {value!r}")
    if isinstance(value, int):
        if not 0 <= value <= _constants.GFP_MASK_ALL:
            raise _err(where, key, f"gfp {value:#x} has undefined bits")
        return value
    if not isinstance(value, str):
        raise _err(where, key, f"expected a gfp mask, not {type(value).__name__}")
    out = 0
    for name in value.replace(" ", "").split("|"):
        neg = name.startswith("~")
        v = getattr(_constants, name.lstrip("~"), None)
        if not (name.lstrip("~").startswith(("GFP_", "__GFP_")) and isinstance(v, int)):
            raise _err(where, key, f"unknown gfp flag {name!r}")
        out = out & ~v if neg else out | v
    return out


def _kind(value, where, key) -> int:
    if value not in KIND_NAMES:
        raise _err(where, key, f"kind must be one of {sorted(KIND_NAMES)}, not {value!r}")
    return KIND_NAMES[value]


def _range(value, where, key):
    if not (isinstance(value, list) and len(value) == 2 and
            all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
            and value[0] < value[1]):
        raise _err(where, key, f"expected [lo, hi] with 0 <= lo < hi (ns), not {value!r}")
    return value


@dataclass(frozen=True)
class Template:
    """A named program template: ``build(params, count, rng)`` returns one program (for all
    tasks of the group) or ``count`` programs (``[count, length]``)."""

    name: str
    params: dict  # name -> (default or REQUIRED, checker)
    build: object
    doc: str
    threaded: bool = False  # build() also gets params["threads"] (the group's key)


REQUIRED = object()


def _pages(v, where, key):
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 1 << 40:
        raise _err(where, key, f"expected pages in [1, 2**40], not {v!r}")
    return v


def _ns(v, where, key):
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 1 << 62:
        raise _err(where, key, f"expected nanoseconds in [0, 2**62], not {v!r}")
    return v


def _count(v, where, key):
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 1 << 30:
        raise _err(where, key, f"expected a count in [0, 2**30], not {v!r}")
    return v


def _t_charge_exit(p, count, rng):
    from .timed import ProgramBuilder

    return ProgramBuilder().charge(p["pages"], p["gfp"], p["kind"]).exit().build()


def _t_dirty_exit(p, count, rng):
    from .timed import ProgramBuilder

    return ProgramBuilder().dirty(p["pages"], gfp=p["gfp"]).exit().build()


def _t_jbd2_pod(p, count, rng):
    from .scenarios import jbd2_pod_programs

    # count is processes x threads (the group's `threads`), process-major
    threads = p["threads"]
    return jbd2_pod_programs(threads, p["mkwrite_threads"], p["proc_anon_pages"],
                             p["file_pages"], p["fault_pages"], p["vma_pages"],
                             p["create_credits"], p["think_ns"], p["fork_think_ns"],
                             count // threads, rng, grow_pages=p["grow_pages"])


def _t_jbd2_outside(p, count, rng):
    from .scenarios import jbd2_outside_programs

    return jbd2_outside_programs(p["think_ns"], count, rng)


def _t_mmap_holder(p, count, rng):
    from .timed import ProgramBuilder

    anon = KIND_NAMES["anon"]
    b = ProgramBuilder().down_write(-1)  # its process's mmap_lock
    for _ in range(p["chunks"]):
        b.charge(p["chunk_pages"], GFP_HIGHUSER_MOVABLE, anon)
    b.up_write(-1).return_to_user().sleep(p["sleep_ns"])
    b.uncharge(p["chunks"] * p["chunk_pages"], anon)
    b.charge(p["chunks"] * p["chunk_pages"], GFP_KERNEL, KIND_NAMES["file"])
    return b.return_to_user().loop(0).build()


def _t_mmap_reader(p, count, rng):
    from .timed import ProgramBuilder

    # a page fault of a thread of the holder's process (thread_of): down_read(mmap_lock)
    return (ProgramBuilder().down_read(-1).compute(p["compute_ns"]).up_read(-1)
            .return_to_user().sleep(p["sleep_ns"]).loop(0).build())


def _t_charge_loop(p, count, rng):
    from .timed import ProgramBuilder

    return (ProgramBuilder().charge(p["pages"], p["gfp"], p["kind"]).return_to_user()
            .compute(p["compute_ns"]).loop(0, p["rounds"]).build())


PROGRAM_TEMPLATES = {t.name: t for t in [
    Template("charge-exit", {"pages": (REQUIRED, _pages), "gfp": (GFP_KERNEL, _gfp),
                             "kind": ("anon", _kind)}, _t_charge_exit,
             "charge `pages` of `kind` with `gfp`, then exit (leaves the pages charged)"),
    Template("dirty-exit", {"pages": (REQUIRED, _pages), "gfp": (GFP_KERNEL, _gfp)},
             _t_dirty_exit, "charge `pages` of dirty page cache, then exit"),
    Template("jbd2-pod", {"proc_anon_pages": (435, _pages), "grow_pages": (4, _count),
                          "file_pages": (2, _pages), "fault_pages": (4, _pages),
                          "vma_pages": (2, _pages), "create_credits": (8, _pages),
                          "think_ns": ([5 * MS, 25 * MS], _range),
                          "fork_think_ns": ([20 * MS, 100 * MS], _range),
                          "mkwrite_threads": (2, _count)}, _t_jbd2_pod,
             "processes of `threads` threads (the group's key; memcg_emu.scenarios."
             "jbd2_pod_programs): thread 0 faults `proc_anon_pages`, then forks (vm_area_dup "
             "kmem under mmap_lock write) and grows its heap by `grow_pages`; threads "
             "1..`mkwrite_threads` write a shared mapping (page_mkwrite's handle under "
             "mmap_lock read); the others create files (dir i_rwsem, handle, NOFAIL "
             "sb_getblk page), write `file_pages` (no handle) and fault `fault_pages` under "
             "mmap_lock read", threaded=True),
    Template("jbd2-outside", {"think_ns": ([2 * MS, 20 * MS], _range)}, _t_jbd2_outside,
             "loop: handle, one NOFS kernel page, stop, one dirty page, think, free the "
             "kernel page"),
    Template("mmap-holder", {"chunks": (16, _pages), "chunk_pages": (64, _pages),
                             "sleep_ns": (5 * MS, _ns)}, _t_mmap_holder,
             "loop: mmap_lock for write, charge `chunks` x `chunk_pages` anon, unlock, "
             "sleep, free the anon and read as much page cache back in"),
    Template("mmap-reader", {"compute_ns": (50_000, _ns), "sleep_ns": (MS, _ns)},
             _t_mmap_reader, "loop: down_read(mmap_lock), compute, up_read, sleep"),
    Template("charge-loop", {"pages": (REQUIRED, _pages), "gfp": (GFP_HIGHUSER_MOVABLE, _gfp),
                             "kind": ("anon", _kind), "compute_ns": (0, _ns),
                             "rounds": (-1, lambda v, w, k: v if v == -1 else
                                        _count(v, w, k))},
             _t_charge_loop, "`rounds` times (-1: forever): charge, return to user, compute"),
]}


# =============================================================================================
# the schema
# =============================================================================================
def _int(lo=None, hi=None):
    def check(v, where, key):
        if isinstance(v, bool) or not isinstance(v, int) or (lo is not None and v < lo) or \
                (hi is not None and v > hi):
            raise _err(where, key, f"expected an integer in [{lo}, {hi}], not {v!r}")
        return v
    return check


def _num(lo, hi):
    def check(v, where, key):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo < v <= hi:
            raise _err(where, key, f"expected a number in ({lo}, {hi}], not {v!r}")
        return v
    return check


def _str(v, where, key):
    if not isinstance(v, str):
        raise _err(where, key, f"expected a string, not {v!r}")
    return v


def _bool(v, where, key):
    if not isinstance(v, bool):
        raise _err(where, key, f"expected true or false, not {v!r}")
    return v


def _policies(v, where, key):
    if not (isinstance(v, list) and v and all(isinstance(p, str) for p in v)):
        raise _err(where, key, f"expected a non-empty list of policy names, not {v!r}")
    from .policy import resolve_policy
    for p in v:
        try:
            resolve_policy(p, f"{where}: {key}")
        except ValueError as e:
            raise _err(where, key, f"unknown policy {p!r}: {e}") from None
    return v


def _seeds(v, where, key):
    if not (isinstance(v, list) and v and all(isinstance(s, int) and not isinstance(s, bool)
                                              and 0 <= s < 2**63 for s in v)):
        raise _err(where, key, f"expected a non-empty list of seeds >= 0, not {v!r}")
    return v


def _size(v, where, key):
    from ._parse import memparse_pages

    try:
        memparse_pages(v, key)
    except (TypeError, ValueError) as e:
        raise _err(where, key, str(e)) from None
    return v


def _strlist(v, where, key):
    if not (isinstance(v, list) and all(isinstance(s, str) for s in v)):
        raise _err(where, key, f"expected a list of strings, not {v!r}")
    return v


RUN_KEYS = {"policies": _policies, "seeds": _seeds, "duration_ms": _num(0, 1e9),
            "sample_dt_ms": _num(0, 1e9), "nr_cpus": _int(1, 4096), "strict": _bool,
            "swap": _size}
CGROUP_KEYS = {"path": _str, "max": _size, "high": _size, "low": _size, "min": _size}
TASK_KEYS = {"name": _str, "cgroup": _str, "count": _int(1, 1 << 20), "program": _str,
             "params": None, "cpu": None, "start_ns": None, "start_step_ns": _int(0, 1 << 62),
             "kthread": _bool, "thread_of": _str, "threads": _int(1, 1 << 16)}
REPLAY_KEYS = {"input": _str, "set": _strlist, "policies": _policies, "seed": _int(0),
               "nr_cpus": _int(1, 4096)}
TOP_KEYS = {"format", "kind", "name", "description", "scenario_cgroup", "run", "costs",
            "journal", "flusher", "cgroups", "tasks", "replay"}


def _dc_fields(cls, table, where, key):
    if not isinstance(table, dict):
        raise _err(where, key, f"expected a table, not {table!r}")
    names = {f.name: f for f in fields(cls)}
    for k, v in table.items():
        if k not in names:
            raise _err(where, f"{key}.{k}", f"unknown key (known: {', '.join(names)})")
        if names[k].type in ("bool", bool):
            _bool(v, where, f"{key}.{k}")
        else:
            _int(0, 1 << 62)(v, where, f"{key}.{k}")
    try:
        return cls(**table)
    except (TypeError, ValueError) as e:
        raise _err(where, key, str(e)) from None


def _check_table(table, schema, where, key):
    if not isinstance(table, dict):
        raise _err(where, key, f"expected a table, not {table!r}")
    for k, v in table.items():
        if k not in schema:
            raise _err(where, f"{key}.{k}" if key else k,
                       f"unknown key (known: {', '.join(schema)})")
        if schema[k] is not None:
            schema[k](v, where, f"{key}.{k}" if key else k)


@dataclass
class ScenarioFile:
    """A checked scenario file (``doc`` is the TOML document after ``--set`` overrides)."""

    path: str
    doc: dict

    @property
    def kind(self) -> str:
        return self.doc.get("kind", "timed")

    @property
    def name(self) -> str:
        return self.doc.get("name", os.path.splitext(os.path.basename(self.path))[0])

    @property
    def policies(self) -> list[str]:
        sect = self.doc.get("replay" if self.kind == "replay" else "run", {})
        return list(sect.get("policies", ["baseline"] if self.kind == "replay" else
                             ["baseline", "accountforce-v1", "legacy-dying-bypass"]))

    @property
    def seeds(self) -> list[int]:
        return list(self.doc.get("run", {}).get("seeds", [0]))

    @property
    def duration_ns(self) -> int:
        return int(self.doc.get("run", {}).get("duration_ms", 1000) * MS)

    def build(self, policy: str = "baseline", seed: int = 0, backend: str | None = None):
        """A ready :class:`~memcg_emu.timed.TimedSim` (timed files only)."""
        from .timed import CostModel, FlusherConfig, JournalConfig, TimedSim

        if self.kind != "timed":
            raise InvalidConfigError(f"{self.path}: kind = {self.kind!r} has nothing to build")
        d = self.doc
        run = d.get("run", {})
        rng = np.random.default_rng(seed)
        kw = {}
        if "costs" in d:
            kw["costs"] = CostModel(**d["costs"])
        if "journal" in d:
            kw["journal"] = JournalConfig(**d["journal"])
        if "flusher" in d:
            kw["flusher"] = FlusherConfig(**d["flusher"])
        if "strict" in run:
            kw["strict"] = run["strict"]
        if "swap" in run:
            kw["swap"] = run["swap"]
        nr_cpus = run.get("nr_cpus", 4)
        sim = TimedSim(policy=policy, nr_cpus=nr_cpus, seed=seed, backend=backend,
                       sample_dt_ns=int(run.get("sample_dt_ms", 10) * MS), **kw)
        cgroups = d.get("cgroups", [])
        for cg in cgroups:
            sim.mkdir(cg["path"])
        for cg in cgroups:
            for which in ("min", "low", "high", "max"):
                if which in cg:
                    sim.write(cg["path"], f"memory.{which}", cg[which])
        group_pids: dict = {}
        for g in d.get("tasks", []):
            t = PROGRAM_TEMPLATES[g["program"]]
            params = {k: (g.get("params", {}).get(k, dflt)) for k, (dflt, _) in
                      t.params.items()}
            for k, (_, check) in t.params.items():
                params[k] = check(params[k], self.path, f"tasks.{g.get('name', '?')}.params.{k}")
            threads = g.get("threads", 1)
            count = g.get("count", 1) * threads  # tasks: processes x threads
            if t.threaded:
                params["threads"] = threads
            progs = t.build(params, count, rng)
            start = g.get("start_ns", 0)
            if isinstance(start, list):
                starts = rng.integers(start[0], start[1], count)
            else:
                step = g.get("start_step_ns", 0)
                starts = [start + i * step for i in range(count)]
            cpu = g.get("cpu", 0)
            pids = group_pids.setdefault(g.get("name"), [])
            for i in range(count):
                prog = progs if isinstance(progs, np.ndarray) and progs.ndim == 1 else progs[i]
                c = (i % nr_cpus) if cpu == "spread" else cpu
                if "thread_of" in g:  # a thread of the named group's first process
                    pids.append(sim.add_thread(group_pids[g["thread_of"]][0], prog, cpu=c,
                                               start_ns=int(starts[i])))
                elif i % threads:  # a thread of this group's process i // threads
                    pids.append(sim.add_thread(pids[i - i % threads], prog, cpu=c,
                                               start_ns=int(starts[i])))
                else:
                    pids.append(sim.add_task(g["cgroup"], prog,
                                             kthread=g.get("kthread", False), cpu=c,
                                             start_ns=int(starts[i])))
        sim.duration_ns = self.duration_ns
        sim.scenario_cgroup = d.get("scenario_cgroup", "/" + cgroups[0]["path"].strip("/")
                                    if cgroups else "/")
        return sim


def check(doc: dict, where: str) -> None:
    """Raise InvalidConfigError (file, key, reason) for anything the runner cannot use."""
    from .timed import CostModel, FlusherConfig, JournalConfig

    for k in doc:
        if k not in TOP_KEYS:
            raise _err(where, k, f"unknown key (known: {', '.join(sorted(TOP_KEYS))})")
    if doc.get("format", FORMAT) != FORMAT:
        raise _err(where, "format", f"scenario file format {doc.get('format')!r} is not "
                                    f"{FORMAT}")
    kind = doc.get("kind", "timed")
    if kind not in ("timed", "replay"):
        raise _err(where, "kind", f"expected 'timed' or 'replay', not {kind!r}")
    for k in ("name", "description", "scenario_cgroup"):
        if k in doc:
            _str(doc[k], where, k)
    if kind == "replay":
        for k in ("run", "costs", "journal", "flusher", "cgroups", "tasks"):
            if k in doc:
                raise _err(where, k, "not used by a replay file (kind = 'replay')")
        if "replay" not in doc:
            raise _err(where, "replay", "missing (a replay file needs [replay] input = ...)")
        _check_table(doc["replay"], REPLAY_KEYS, where, "replay")
        if "input" not in doc["replay"]:
            raise _err(where, "replay.input", "missing")
        from .importers import limit_overrides

        try:
            limit_overrides(doc["replay"].get("set", []))
        except ValueError as e:
            raise _err(where, "replay.set", str(e)) from None
        return
    if "replay" in doc:
        raise _err(where, "replay", "only in a file with kind = 'replay'")
    _check_table(doc.get("run", {}), RUN_KEYS, where, "run")
    for key, cls in (("costs", CostModel), ("journal", JournalConfig),
                     ("flusher", FlusherConfig)):
        if key in doc:
            _dc_fields(cls, doc[key], where, key)
    cgs = doc.get("cgroups", [])
    if not isinstance(cgs, list):
        raise _err(where, "cgroups", "expected an array of tables ([[cgroups]])")
    seen = {""}
    for i, cg in enumerate(cgs):
        _check_table(cg, CGROUP_KEYS, where, f"cgroups[{i}]")
        if "path" not in cg:
            raise _err(where, f"cgroups[{i}].path", "missing")
        p = cg["path"].strip("/")
        if not p or p in seen:
            raise _err(where, f"cgroups[{i}].path", f"{cg['path']!r} is empty or repeated")
        if p.rsplit("/", 1)[0] not in seen and "/" in p:
            raise _err(where, f"cgroups[{i}].path", f"parent of {cg['path']!r} must come "
                                                    f"first")
        seen.add(p)
    tasks = doc.get("tasks", [])
    if not isinstance(tasks, list):
        raise _err(where, "tasks", "expected an array of tables ([[tasks]])")
    nr_cpus = doc.get("run", {}).get("nr_cpus", 4)
    names = set()
    for i, g in enumerate(tasks):
        key = f"tasks[{i}]"
        _check_table(g, TASK_KEYS, where, key)
        for req in ("cgroup", "program"):
            if req not in g:
                raise _err(where, f"{key}.{req}", "missing")
        if g.get("name") in names:
            raise _err(where, f"{key}.name", f"{g['name']!r} repeated")
        names.add(g.get("name"))
        if g["cgroup"].strip("/") not in seen:
            raise _err(where, f"{key}.cgroup", f"{g['cgroup']!r} is not in [[cgroups]]")
        if g.get("kthread") and g["cgroup"].strip("/"):
            raise _err(where, f"{key}.kthread", "kernel threads live in the root cgroup '/'")
        if "threads" in g and ("thread_of" in g or g.get("kthread")):
            raise _err(where, f"{key}.threads", "not with thread_of or kthread")
        if "thread_of" in g:
            owner = next((h for h in tasks[:i] if h.get("name") == g["thread_of"]), None)
            if owner is None:
                raise _err(where, f"{key}.thread_of", f"{g['thread_of']!r} names no earlier "
                                                      "task group")
            if owner.get("kthread") or g.get("kthread"):
                raise _err(where, f"{key}.thread_of", "kernel threads have no mm to share")
            if owner["cgroup"].strip("/") != g["cgroup"].strip("/"):
                raise _err(where, f"{key}.cgroup", "threads live in their process's cgroup "
                                                   f"({owner['cgroup']!r})")
        t = PROGRAM_TEMPLATES.get(g["program"])
        if t is None:
            raise _err(where, f"{key}.program", f"unknown template {g['program']!r} (known: "
                                                f"{', '.join(PROGRAM_TEMPLATES)})")
        params = g.get("params", {})
        if not isinstance(params, dict):
            raise _err(where, f"{key}.params", "expected a table")
        for k, v in params.items():
            if k not in t.params:
                raise _err(where, f"{key}.params.{k}", f"unknown parameter of {t.name!r} "
                                                       f"(known: {', '.join(t.params)})")
            t.params[k][1](v, where, f"{key}.params.{k}")
        for k, (dflt, _) in t.params.items():
            if dflt is REQUIRED and k not in params:
                raise _err(where, f"{key}.params.{k}", f"required by {t.name!r}")
        cpu = g.get("cpu", 0)
        if cpu != "spread" and (isinstance(cpu, bool) or not isinstance(cpu, int) or
                                not 0 <= cpu < nr_cpus):
            raise _err(where, f"{key}.cpu", f"expected 'spread' or a CPU in [0, {nr_cpus}), "
                                            f"not {cpu!r}")
        st = g.get("start_ns", 0)
        if isinstance(st, list):
            _range(st, where, f"{key}.start_ns")
            if "start_step_ns" in g:
                raise _err(where, f"{key}.start_step_ns", "not with a random start_ns range")
        else:
            _ns(st, where, f"{key}.start_ns")


# =============================================================================================
# loading, overriding
# =============================================================================================
def _parse_value(text: str):
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_set(doc: dict, setting: str, where: str) -> None:
    """``KEY=VALUE``: dotted KEY; a list of tables is indexed by position or by its
    ``name``/``path``; VALUE is a TOML value (a bare word is a string)."""
    key, sep, value = setting.partition("=")
    if not sep or not key.strip():
        raise _err(where, setting, "--set expects KEY=VALUE")
    parts = key.strip().split(".")
    node = doc
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            match = [x for x in node if isinstance(x, dict) and
                     (x.get("name") == part or str(x.get("path", "")).strip("/") ==
                      part.strip("/"))]
            if part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            elif len(match) == 1:
                node = match[0]
            else:
                raise _err(where, key, f"no entry {part!r} in {'.'.join(parts[:i]) or 'file'}")
        elif isinstance(node, dict):
            node = node.setdefault(part, {})
        else:
            raise _err(where, key, f"{'.'.join(parts[:i + 1])} is not a table")
    if not isinstance(node, dict):
        raise _err(where, key, "not a table")
    node[parts[-1]] = _parse_value(value.strip())


def load(path, settings: list[str] | None = None) -> ScenarioFile:
    """Read, override (``settings``), check; raise InvalidConfigError before anything runs."""
    name = os.fspath(path)
    doc = read_toml(path)
    doc = copy.deepcopy(doc)
    for s in settings or []:
        apply_set(doc, s, name)
    check(doc, name)
    return ScenarioFile(name, doc)


def builtin_path(name: str) -> str:
    """The shipped file of built-in scenario ``name`` (``scenario_files/NAME.toml``)."""
    return str(resources.files("memcg_emu").joinpath("scenario_files", f"{name}.toml"))


def run(sf: ScenarioFile, backend: str | None = None, policies=None, seeds=None) -> dict:
    """Run a timed file: ``{(policy, seed): TimedResult}``."""
    out = {}
    for seed in seeds or sf.seeds:
        for pol in policies or sf.policies:
            sim = sf.build(pol, seed=seed, backend=backend)
            res = sim.run(sim.duration_ns)
            res.summary["scenario"] = sf.name
            res.summary["scenario_cgroup"] = sim.scenario_cgroup
            if sim.scenario_cgroup in res.cgroups:
                from .scenarios import scenario_cgroup_figures

                res.summary.update(scenario_cgroup_figures(res, sim.scenario_cgroup))
            out[(pol, seed)] = res
    return out


__all__ = ["FORMAT", "PROGRAM_TEMPLATES", "ScenarioFile", "apply_set", "builtin_path",
           "check", "load", "run"]
