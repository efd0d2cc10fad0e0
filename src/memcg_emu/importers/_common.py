"""What both importers share: the imported-workload container, the report of unreadable
lines, limit overrides (``memory.max:/pod=4G``), and saving/loading an import as ``.npz``."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

import numpy as np

from .._constants import PAGE_COUNTER_MAX
from ..errors import InvalidArgumentError, InvalidFileError
from ..events import EVENT_DTYPE, FORMAT_VERSION, Op, empty
from ..workloads import Workload

IMPORT_FORMAT_VERSION = 1
#: memory.events keys in the order of ``recorded_events``' last axis
EVENT_KEYS = ("low", "high", "max", "oom", "oom_kill", "oom_group_kill")
LIMIT_FILES = ("memory.max", "memory.high", "memory.low")


@dataclass
class BadLine:
    """One line (1-based) of one file the importer could not use, and why."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


class LineReport:
    """Every input line is counted as used, ignored (with a reason class) or bad (listed)."""

    def __init__(self, strict: bool):
        self.strict = strict
        self.lines: dict[str, int] = {}  # file -> lines read
        self.used: dict[str, int] = {}
        self.ignored: dict[str, dict[str, int]] = {}  # file -> reason -> count
        self.bad: list[BadLine] = []

    def read(self, file: str, n: int = 1) -> None:
        self.lines[file] = self.lines.get(file, 0) + n

    def use(self, file: str, n: int = 1) -> None:
        self.used[file] = self.used.get(file, 0) + n

    def ignore(self, file: str, reason: str, n: int = 1) -> None:
        d = self.ignored.setdefault(file, {})
        d[reason] = d.get(reason, 0) + n

    def bad_line(self, file: str, line: int, reason: str) -> None:
        if self.strict:
            raise InvalidFileError(f"{file}:{line}: {reason}")
        self.bad.append(BadLine(file, line, reason))

    def accounted(self, file: str) -> int:
        """used + ignored + bad: equals ``lines[file]`` when every line is accounted for."""
        return (self.used.get(file, 0) + sum(self.ignored.get(file, {}).values())
                + sum(1 for b in self.bad if b.file == file))

    def as_dict(self) -> dict:
        return {"lines": self.lines, "used": self.used, "ignored": self.ignored,
                "bad": [{"file": b.file, "line": b.line, "reason": b.reason}
                        for b in self.bad]}

    def summary_lines(self, max_bad: int = 20) -> list[str]:
        out = []
        for f, n in self.lines.items():
            ign = self.ignored.get(f, {})
            nbad = sum(1 for b in self.bad if b.file == f)
            out.append(f"{f}: {n} lines: {self.used.get(f, 0)} used, "
                       f"{sum(ign.values())} ignored"
                       + "".join(f" ({k}: {v})" for k, v in sorted(ign.items()))
                       + f", {nbad} unreadable")
        out += [f"  unreadable: {b}" for b in self.bad[:max_bad]]
        if len(self.bad) > max_bad:
            out.append(f"  ... and {len(self.bad) - max_bad} more unreadable lines")
        return out


@dataclass(eq=False)
class ImportedWorkload:
    """A workload read from a recording: a replayable :class:`~memcg_emu.workloads.Workload`
    plus what was recorded beside it.

    ``interval_end[k]`` is the number of events that belong to samples ``0..k`` (the events
    of sample ``k`` are ``events[interval_end[k-1]:interval_end[k]]``; those of sample 0 are
    the starting state), so a replay can be stopped exactly where sample ``k`` was taken.
    ``recorded_usage[k, c]`` is memory.current of cgroup index ``c`` (pages, hierarchical),
    ``recorded_events[k, c]`` its memory.events (``EVENT_KEYS`` order), -1 where the cgroup
    was not recorded.  ``annotations`` (trace imports) is a structured array of marks
    (reclaim, OOM, ...) that are not replayed.
    """

    kind: str  # "samples" or "trace"
    workload: Workload
    report: LineReport
    sample_time: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    interval_end: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    recorded_usage: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int64))
    recorded_events: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 6), np.int64))
    annotations: np.ndarray = field(default_factory=lambda: np.zeros(0, ANNOTATION_DTYPE))
    meta: dict = field(default_factory=dict)

    @property
    def events(self) -> np.ndarray:
        return self.workload.events

    def with_limits(self, overrides: dict[str, dict[str, int]]) -> "ImportedWorkload":
        """A copy whose setup has other limits: ``{path: {"max"|"high"|"low": pages}}``."""
        return replace(self, workload=apply_limits(self.workload, overrides))


ANNOTATION_DTYPE = np.dtype([("time", "<i8"), ("what", "u1"), ("memcg", "<i4"),
                             ("task", "<i4"), ("value", "<i8"), ("value2", "<i8")])
#: annotation ``what`` codes
ANN_RECLAIM = 0  # value = pages asked, value2 = pages reclaimed (-1 unknown)
ANN_RECLAIM_HIGH = 1  # value = pages over high
ANN_OOM = 2  # value2 = killed (1/0, -1 unknown)
ANN_OOM_VICTIM = 3  # task = the victim
ANN_CHARGE_FAILED = 4  # page_counter_try_charge failed (a level at its max); value = pages
ANN_TRY_CHARGE_ENOMEM = 5
ANN_RECLAIM_FREED = 6  # value = pages memcg reclaim freed (uncharge_batch inside a reclaim)
ANNOTATION_NAMES = {ANN_RECLAIM_FREED: "reclaim_freed", ANN_RECLAIM: "reclaim", ANN_RECLAIM_HIGH: "reclaim_high",
                    ANN_OOM: "oom", ANN_OOM_VICTIM: "oom_victim",
                    ANN_CHARGE_FAILED: "charge_failed_at_max",
                    ANN_TRY_CHARGE_ENOMEM: "try_charge_enomem"}


def open_text(path):
    """Open a recording for reading as text; ``.gz`` files are decompressed on the fly."""
    import gzip
    import os

    name = os.fspath(path)
    try:
        if name.endswith(".gz"):
            return gzip.open(path, "rt", encoding="utf-8", errors="strict")
        return open(path, encoding="utf-8", errors="strict")
    except OSError as e:
        raise InvalidFileError(f"{name}: cannot open ({e.strerror or e})") from None


# =============================================================================================
# limits: "memory.max:/W/anon=12M"
# =============================================================================================
def parse_size_pages(text: str, what: str) -> int:
    """Pages of a size as cgroupfs takes it: bytes with an optional K/M/G/T suffix, or
    "max"."""
    from .._parse import memparse_pages

    try:
        return int(memparse_pages(text, what))
    except ValueError as e:
        raise InvalidArgumentError(str(e)) from None


def parse_limit_setting(text: str) -> tuple[str, str, int]:
    """``memory.max:/pod=4G`` -> ("/pod", "max", pages); also ``memory.high:pod=max``."""
    key, sep, value = text.partition("=")
    file, sep2, path = key.partition(":")
    if not sep or not sep2 or not path.strip("/"):
        raise InvalidArgumentError(f"--set {text!r}: expected FILE:CGROUP=VALUE, e.g. "
                                   f"memory.max:/pod=4G")
    if file not in LIMIT_FILES:
        raise InvalidArgumentError(f"--set {text!r}: {file!r} is not one of "
                                   f"{', '.join(LIMIT_FILES)}")
    path = "/" + "/".join(x for x in path.split("/") if x)
    return path, file.split(".", 1)[1], parse_size_pages(value.strip(), f"--set {text}")


def limit_overrides(settings: list[str]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for s in settings:
        path, which, pages = parse_limit_setting(s)
        out.setdefault(path, {})[which] = pages
    return out


def apply_limits(workload: Workload, overrides: dict[str, dict[str, int]]) -> Workload:
    """The workload with its CgroupSpec limits replaced (PAGE_COUNTER_MAX means "max")."""
    known = {c.path for c in workload.cgroups}
    for p in overrides:
        if p not in known:
            raise InvalidArgumentError(f"--set: the workload has no cgroup {p!r} (it has "
                                       f"{', '.join(sorted(known))})")
    cgs = []
    for c in workload.cgroups:
        o = overrides.get(c.path, {})
        kw = {}
        for which, pages in o.items():
            if which == "low":
                kw[which] = None if pages == 0 else pages
            else:
                kw[which] = None if pages == PAGE_COUNTER_MAX else pages
        cgs.append(replace(c, **kw))
    return replace(workload, cgroups=tuple(cgs))


def limits_of(workload: Workload) -> dict[str, dict[str, int | None]]:
    return {c.path: {"max": c.max, "high": c.high, "low": c.low} for c in workload.cgroups}


# =============================================================================================
# building events
# =============================================================================================
class EventList:
    """Blocks of identical events (op, task, memcg, kind, gfp) of ``count`` events of
    ``pages`` pages each, concatenated at the end (vectorised, so big imports stay fast)."""

    def __init__(self):
        self._blocks: list[np.ndarray] = []
        self.n = 0

    def add(self, op: int, time: int, task: int = -1, memcg: int = -1, pages: int = 0,
            kind: int = 0, gfp: int = 0, count: int = 1) -> None:
        if count <= 0:
            return
        b = empty(count)
        b["op"] = op
        b["time"] = time
        b["task"] = task
        b["memcg"] = memcg
        b["arg"] = pages
        b["kind"] = kind
        b["gfp"] = gfp
        self._blocks.append(b)
        self.n += count

    def add_pages(self, op: int, time: int, total: int, per_event: int, **kw) -> None:
        """``total`` pages as events of at most ``per_event`` pages."""
        if total <= 0:
            return
        full, rest = divmod(int(total), per_event)
        self.add(op, time, pages=per_event, count=full, **kw)
        if rest:
            self.add(op, time, pages=rest, count=1, **kw)

    def build(self) -> np.ndarray:
        if not self._blocks:
            return np.zeros(0, EVENT_DTYPE)
        return np.concatenate(self._blocks)


# =============================================================================================
# starting state
# =============================================================================================
#: page kinds of a starting-state snapshot, ``{cgroup path: {kind: pages}}``
START_KINDS = ("anon", "file", "file_dirty", "file_writeback", "kernel")


def check_snapshot(snapshot, paths: list[str], where: str) -> dict[int, dict[str, int]]:
    """A starting-state snapshot ``{path: {kind: pages}}`` (kinds: START_KINDS) as
    ``{cgroup index: {kind: pages}}``; InvalidArgumentError names the bad entry."""
    if not isinstance(snapshot, dict):
        raise InvalidArgumentError(f"{where}: a snapshot is {{cgroup path: {{kind: pages}}}}, "
                                   f"not {type(snapshot).__name__}")
    index = {p: i for i, p in enumerate(paths)}
    out: dict[int, dict[str, int]] = {}
    for path, kinds in snapshot.items():
        p = "/" + "/".join(x for x in str(path).split("/") if x)
        if p not in index or index[p] == 0:
            raise InvalidArgumentError(f"{where}: cgroup {path!r} is not in the recording "
                                       f"({', '.join(paths[1:])})")
        if not isinstance(kinds, dict):
            raise InvalidArgumentError(f"{where}: {path}: expected {{kind: pages}}")
        for k, v in kinds.items():
            if k not in START_KINDS:
                raise InvalidArgumentError(f"{where}: {path}.{k}: not one of "
                                           f"{', '.join(START_KINDS)}")
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 1 << 40:
                raise InvalidArgumentError(f"{where}: {path}.{k} = {v!r}: pages must be an "
                                           f"integer in [0, 2**40]")
        out[index[p]] = {k: int(kinds.get(k, 0)) for k in START_KINDS}
    return out


def load_snapshot(path) -> dict:
    """Read a JSON snapshot file ``{path: {kind: pages}}``."""
    import os

    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        raise InvalidFileError(f"{os.fspath(path)}: cannot open ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise InvalidFileError(f"{os.fspath(path)}:{e.lineno}: not JSON ({e.msg})") from None


def add_starting_state(out: "EventList", state: dict[int, dict[str, int]], task: int,
                       per_event: int, fold_dirty: bool = False) -> None:
    """Charge a starting state (time 0) from kernel thread ``task`` with explicit targets:
    writeback pages are charged dirty and then start writeback; ``fold_dirty`` charges dirty
    and writeback pages as clean page cache (for imports without dirty tracking)."""
    from .._constants import GFP_KERNEL, PageKind, __GFP_ACCOUNT

    for c in sorted(state):
        k = state[c]
        dirty, wb = k.get("file_dirty", 0), k.get("file_writeback", 0)
        clean = k.get("file", 0) + ((dirty + wb) if fold_dirty else 0)
        if fold_dirty:
            dirty = wb = 0
        out.add_pages(Op.CHARGE, 0, k.get("anon", 0), per_event, task=task, memcg=c,
                      kind=PageKind.ANON, gfp=GFP_KERNEL)
        out.add_pages(Op.CHARGE, 0, clean, per_event, task=task, memcg=c, kind=PageKind.FILE,
                      gfp=GFP_KERNEL)
        out.add_pages(Op.CHARGE, 0, dirty + wb, per_event, task=task, memcg=c,
                      kind=PageKind.FILE_DIRTY, gfp=GFP_KERNEL)
        out.add_pages(Op.START_WRITEBACK, 0, wb, per_event, memcg=c)
        out.add_pages(Op.CHARGE, 0, k.get("kernel", 0), per_event, task=task, memcg=c,
                      kind=PageKind.KERNEL, gfp=GFP_KERNEL | __GFP_ACCOUNT)


# =============================================================================================
# .npz
# =============================================================================================
def save_imported(path, imp: ImportedWorkload) -> None:
    """Write an import as ``.npz``: the entries of :func:`memcg_emu.io.save_workload`
    (``events``, ``format_version``, ``setup``) plus ``import_meta`` (JSON: kind, sources,
    line report, notes) and the recorded arrays."""
    meta = {"import_format_version": IMPORT_FORMAT_VERSION, "kind": imp.kind,
            "report": imp.report.as_dict(), **imp.meta}
    np.savez_compressed(
        path, events=imp.workload.events,
        format_version=np.array(FORMAT_VERSION, dtype=np.int64),
        setup=np.array(json.dumps(imp.workload.setup_dict(), sort_keys=True)),
        import_meta=np.array(json.dumps(meta, sort_keys=True)),
        sample_time=imp.sample_time, interval_end=imp.interval_end,
        recorded_usage=imp.recorded_usage, recorded_events=imp.recorded_events,
        annotations=imp.annotations)


def load_imported(path) -> ImportedWorkload | None:
    """Read a file written by :func:`save_imported`; None if it is a plain workload file
    (no ``import_meta``)."""
    from .. import io

    setup = io.load_npz_setup(path)
    if setup is None:
        raise InvalidFileError(f"{path}: holds events only, no workload setup")
    events = io.load_npz(path)
    with np.load(path, allow_pickle=False) as z:
        if "import_meta" not in z.files:
            return None
        meta = json.loads(str(z["import_meta"][()]))
        if meta.get("import_format_version") != IMPORT_FORMAT_VERSION:
            raise InvalidFileError(f"{path}: import format version "
                                   f"{meta.get('import_format_version')!r} is not "
                                   f"{IMPORT_FORMAT_VERSION}")
        arrays = {k: z[k] for k in ("sample_time", "interval_end", "recorded_usage",
                                    "recorded_events", "annotations")}
    rep = LineReport(strict=False)
    r = meta.pop("report")
    rep.lines, rep.used, rep.ignored = r["lines"], r["used"], r["ignored"]
    rep.bad = [BadLine(**b) for b in r["bad"]]
    kind = meta.pop("kind")
    meta.pop("import_format_version")
    return ImportedWorkload(kind=kind, workload=Workload.from_setup(setup, events), report=rep,
                            meta=meta, **arrays)


__all__ = ["ANNOTATION_DTYPE", "ANNOTATION_NAMES", "BadLine", "EVENT_KEYS", "EventList",
           "ImportedWorkload", "LineReport", "START_KINDS", "add_starting_state",
           "apply_limits", "check_snapshot", "limit_overrides", "limits_of", "load_imported",
           "load_snapshot", "open_text", "parse_limit_setting", "save_imported"]
