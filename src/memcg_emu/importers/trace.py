"""A tracefs kprobe/tracepoint trace (``trace.txt`` + ``memcg_map.txt`` of the capture
script) -> charge/uncharge events per task.

Lines (``trace_pipe`` text: ``COMM-PID [CPU] FLAGS TIMESTAMP: EVENT: FIELDS``) and what each
becomes:

============================  ===============================================================
``try_charge``                CHARGE of ``nr_pages`` with its ``gfp`` by the line's task, to
                              the mapped cgroup of ``memcg`` (explicit target).  Kind: KERNEL
                              when the same task's next event on that memcg is
                              ``account_kmem`` of +``nr_pages`` (``obj_cgroup_charge_pages()``
                              / ``__memcg_kmem_charge_page()`` account right after charging) or
                              ``gfp`` has ``__GFP_ACCOUNT``; FILE (clean page cache) when
                              ``gfp`` has ``__GFP_WRITE``; ANON otherwise (anon faults, shmem)
``account_kmem`` < 0          UNCHARGE of KERNEL pages (``obj_cgroup_uncharge_pages()``; also
                              the kmem part of ``uncharge_batch``)
``uncharge_batch``            UNCHARGE of ``nr_memory - nr_kmem`` user pages: anon up to what
                              this task charged as anon to that cgroup and has not freed, then
                              page cache up to what the cgroup holds, then anon
``reclaim_high``              RETURN_TO_USER of the task (memory.high is enforced there) and an
                              annotation
``cgroup_attach_task``        ATTACH of the task to ``dst_path``; ``sched_process_fork``
                              attaches a child to its parent's cgroup
``reclaim``/``reclaim_ret``,  annotations (``ImportedWorkload.annotations``): the emulator
``memcg_oom(_ret)``,          reclaims and OOM-kills by itself when a charge meets a limit
``mark_victim``,
``pc_charge_ret``,
``try_charge_ret``
``pc_charge``,                ignored: page-counter level, the per-CPU stock's own traffic,
``pc_uncharge``,              which the emulator models itself (``consume_stock()``,
``refill_stock``              ``refill_stock()``, ``drain_stock()``)
``tracing_mark_write``        ``memcg_sample seq=N`` places sample N of samples.csv between
                              events; ``memcg_map`` markers and ``map_read`` give pointers
============================  ===============================================================

Pages freed by memcg reclaim (``uncharge_batch`` between a task's ``reclaim`` and
``reclaim_ret``) are by default not replayed (see ``reclaim_frees``).

Everything else (``sched_process_exec/exit``, ``css_*``, vmscan tracepoints, ...) is counted
as ignored by name.  Events on a memcg pointer that is not in the map (cgroups outside the
recorded subtree) are ignored and counted.  Process exit is not replayed as ``EXIT``: the
trace has the exit's uncharges (``uncharge_batch``), which would be counted twice.  The trace
has no dirty/writeback events, so page cache is charged clean.  Kernel threads (``kworker``,
``kswapd``, ``ksoftirqd``, ``jbd2``, ``kthreadd``, ``rcu*``, ``migration``) are kernel-thread
tasks in the root cgroup.
"""
from __future__ import annotations

import os
import re
from dataclasses import replace

import numpy as np

from .._constants import (
    GFP_MASK_ALL,
    PAGE_COUNTER_MAX,
    PAGE_SIZE,
    PageKind,
    __GFP_ACCOUNT,
    __GFP_WRITE,
)
from ..errors import InvalidArgumentError, InvalidFileError
from ..events import Op
from ..workloads import CgroupSpec, TaskSpec, Workload
from ._common import (
    ANN_CHARGE_FAILED,
    ANN_OOM,
    ANN_OOM_VICTIM,
    ANN_RECLAIM,
    ANN_RECLAIM_FREED,
    ANN_RECLAIM_HIGH,
    ANN_TRY_CHARGE_ENOMEM,
    ANNOTATION_DTYPE,
    EVENT_KEYS,
    EventList,
    ImportedWorkload,
    LineReport,
    add_starting_state,
    apply_limits,
    check_snapshot,
    open_text,
)

_LINE = re.compile(r"^\s*(?P<comm>.*?)-(?P<pid>\d+)\s+(?:\(\s*[-\d]+\)\s+)?\[(?P<cpu>\d+)\]"
                   r"\s+(?P<flags>\S{4,5}\s+)?(?P<ts>\d+\.\d+):\s+(?P<event>[\w]+):\s?"
                   r"(?P<rest>.*)$")
_FIELD = re.compile(r"(\w+)=(\"[^\"]*\"|\S+)")
_KTHREAD = re.compile(r"^(kworker|kswapd|ksoftirqd|jbd2|kthreadd|rcu|migration|khugepaged|"
                      r"kcompactd|oom_reaper|cpuhp|watchdog)")
_IGNORED_PC = ("pc_charge", "pc_uncharge", "refill_stock")
_MAP_LINE = re.compile(r"^memcg=(0x[0-9a-fA-F]+)\s+ino=(\d+)\s+path=(\S+)")


def read_memcg_map(path, rep: LineReport) -> dict[int, str]:
    name = os.fspath(path)
    out: dict[int, str] = {}
    f = open_text(path)
    with f:
        for n, line in enumerate(f, 1):
            rep.read(name)
            if not line.strip() or line.lstrip().startswith("#"):
                rep.ignore(name, "empty or comment")
                continue
            m = _MAP_LINE.match(line.strip())
            if not m:
                rep.bad_line(name, n, "expected 'memcg=0x... ino=N path=P'")
                continue
            out[int(m.group(1), 16)] = "/" + "/".join(x for x in m.group(3).split("/") if x)
            rep.use(name)
    return out


def _beside(d: str, name: str):
    for n in (name, name + ".gz"):
        if os.path.exists(os.path.join(d, n)):
            return os.path.join(d, n)
    return None


def _int(v: str) -> int:
    return int(v, 0)


def import_trace(path, *, memcg_map=None, samples=None, limits=None, nr_cpus: int | None = None,
                 strict: bool = False, reclaim_frees: str = "emulate",
                 start="first-sample") -> ImportedWorkload:
    """Read a kprobe/tracepoint trace into an :class:`ImportedWorkload` (module docstring).

    Parameters
    ----------
    memcg_map : path, optional
        ``memcg_map.txt`` (default: next to the trace).  ``memcg_map`` markers in the trace
        add to it.
    samples : path, optional
        ``samples.csv`` of the same run (default: next to the trace, if there): its rows are
        placed at the trace's ``memcg_sample seq=N`` markers, so the recorded memory.current
        and memory.events can be compared with a replay, and its ``max``/``high``/``low``
        columns (if any) give the limits.
    reclaim_frees : {"emulate", "replay"}
        Pages that memcg reclaim freed (``uncharge_batch`` of a task between its ``reclaim``
        and ``reclaim_ret``: ``shrink_folio_list()`` uncharges what it frees).  "emulate"
        (default) leaves them out of the events, so the emulator's own reclaim frees pages
        when a charge meets a limit, as a what-if under other limits needs; they are kept
        as ``reclaim_freed`` annotations.  "replay" replays them as uncharges: the events
        then reproduce the recorded memory.current (the emulator's reclaim finds the
        recorded state already under the limit).
    start : "first-sample", None or {path: {kind: pages}}
        The starting state charged before the first event (by an extra kernel-thread task,
        explicit targets), so uncharges of pages charged before the trace began have
        something to uncharge.  "first-sample" (default; nothing without samples): the own
        pages of each cgroup in the first sample, less what the trace charged and uncharged
        before that sample's marker; dirty and writeback pages are charged as clean page
        cache (the trace has no dirty/writeback events).
    """
    if not (start is None or start == "first-sample" or isinstance(start, dict)):
        raise InvalidArgumentError(f"import_trace: start must be 'first-sample', None or a "
                                   f"snapshot dict, not {start!r}")
    if reclaim_frees not in ("emulate", "replay"):
        raise InvalidArgumentError(f"import_trace: reclaim_frees must be 'emulate' or "
                                   f"'replay', not {reclaim_frees!r}")
    from ..sim import _check_int
    from .samples import import_samples, read_meta

    name = os.fspath(path)
    rep = LineReport(strict)
    d = os.path.dirname(name)
    if memcg_map is None:
        memcg_map = _beside(d, "memcg_map.txt")
    ptr = read_memcg_map(memcg_map, rep) if memcg_map else {}
    meta_path = os.path.join(d, "meta.txt")
    meta = read_meta(meta_path) if os.path.exists(meta_path) else {}
    if nr_cpus is None:
        nr_cpus = int(meta.get("nr_cpus", 2) or 2)
    nr_cpus = _check_int(nr_cpus, "nr_cpus", 1, 4096)

    # ---- pass 1: parse every line ---------------------------------------------------------
    recs = []  # (lineno, comm, pid, cpu, t_ns, event, fields)
    f = open_text(path)
    with f:
        lineno = 0
        while True:
            try:
                line = f.readline()
            except UnicodeDecodeError:
                rep.read(name)
                rep.bad_line(name, lineno + 1, "not UTF-8 text; the rest is not read")
                break
            if not line:
                break
            lineno += 1
            rep.read(name)
            if not line.strip():
                rep.ignore(name, "empty line")
                continue
            if line.startswith("#"):
                rep.ignore(name, "comment/header")
                continue
            if line.startswith("CPU:") and "LOST" in line:
                rep.bad_line(name, lineno, "the ring buffer lost events here")
                continue
            m = _LINE.match(line.rstrip("\n"))
            if not m:
                rep.bad_line(name, lineno, "not a trace_pipe event line")
                continue
            rest = m.group("rest")
            fields = dict(_FIELD.findall(rest))
            ts = m.group("ts")
            sec, _, frac = ts.partition(".")
            t_ns = int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])
            recs.append((lineno, m.group("comm").strip(), int(m.group("pid")),
                         int(m.group("cpu")), t_ns, m.group("event"), fields, rest))

    # pointers from the trace's own markers
    pending_map: dict[int, str] = {}
    for lineno, comm, pid, cpu, t, ev, fl, rest in recs:
        if ev == "tracing_mark_write" and rest.startswith("memcg_map"):
            p = re.search(r"path=(\S+)", rest)
            if p:
                pending_map[pid] = "/" + "/".join(x for x in p.group(1).split("/") if x)
        elif ev == "map_read" and pid in pending_map and "memcg" in fl:
            ptr.setdefault(_int(fl["memcg"]), pending_map.pop(pid))
    if not ptr:
        raise InvalidFileError(f"{name}: no memcg pointer -> cgroup mapping (no memcg_map.txt "
                               f"beside it and no memcg_map markers in the trace)")

    paths = set(ptr.values())
    for p in list(paths):
        parts = p.strip("/").split("/")
        for i in range(1, len(parts)):
            paths.add("/" + "/".join(parts[:i]))
    paths = sorted(paths, key=lambda p: (p.count("/"), p))
    c_of = {p: i + 1 for i, p in enumerate(paths)}
    cg_of_ptr = {k: c_of[v] for k, v in ptr.items()}

    # ---- pass 2: tasks --------------------------------------------------------------------
    task_of: dict[int, int] = {}
    tasks: list[TaskSpec] = []
    kthread_pid: dict[int, bool] = {}

    def task(pid: int, comm: str) -> int:
        if pid not in task_of:
            kt = bool(_KTHREAD.match(comm)) or pid in (0, 2)
            kthread_pid[pid] = kt
            task_of[pid] = len(tasks)
            tasks.append(TaskSpec(cgroup="/", cpu=0, kthread=kt))
        return task_of[pid]

    cg_of_pid: dict[int, int] = {}
    out = EventList()
    ann = []
    anon_of: dict[tuple[int, int], int] = {}  # (task, cgroup) -> anon pages outstanding
    held = np.zeros((len(paths) + 1, 3), np.int64)  # per cgroup: anon, file, kernel (tally)
    seq_at: dict[int, int] = {}  # sample seq -> events before it
    seq_time: dict[int, int] = {}
    first_cpu: dict[int, int] = {}
    in_reclaim: set[int] = set()  # pids between reclaim and reclaim_ret
    t0 = recs[0][4] if recs else 0
    n_recs = len(recs)
    for i, (lineno, comm, pid, cpu, t, ev, fl, rest) in enumerate(recs):
        tt = t - t0
        try:
            if ev == "try_charge":
                m = cg_of_ptr.get(_int(fl["memcg"]))
                if m is None:
                    rep.ignore(name, "memcg outside the mapped cgroups")
                    continue
                gfp, nr = _int(fl["gfp"]), _int(fl["nr_pages"])
                if nr < 1:
                    raise ValueError(f"nr_pages = {nr}")
                kind = PageKind.ANON
                if gfp & __GFP_ACCOUNT:
                    kind = PageKind.KERNEL
                else:
                    for j in range(i + 1, min(i + 8, n_recs)):
                        r2 = recs[j]
                        if r2[2] != pid or r2[5] not in ("account_kmem", "try_charge",
                                                         "uncharge_batch"):
                            continue
                        if r2[5] == "account_kmem" and _int(r2[6]["nr_pages"]) == nr and \
                                cg_of_ptr.get(_int(r2[6]["memcg"])) == m:
                            kind = PageKind.KERNEL
                        break
                    if kind == PageKind.ANON and gfp & __GFP_WRITE:
                        kind = PageKind.FILE
                tk = task(pid, comm)
                first_cpu.setdefault(tk, cpu)
                out.add(Op.CHARGE, tt, task=tk, memcg=m, pages=nr, kind=int(kind),
                        gfp=gfp & GFP_MASK_ALL)
                col = {PageKind.ANON: 0, PageKind.FILE: 1, PageKind.KERNEL: 2}[kind]
                held[m, col] += nr
                if kind == PageKind.ANON:
                    anon_of[(tk, m)] = anon_of.get((tk, m), 0) + nr
                rep.use(name)
            elif ev == "account_kmem":
                m = cg_of_ptr.get(_int(fl["memcg"]))
                nr = _int(fl["nr_pages"])
                if m is None:
                    rep.ignore(name, "memcg outside the mapped cgroups")
                    continue
                if nr >= 0:
                    rep.ignore(name, "account_kmem > 0 (the charge is its try_charge)")
                    continue
                tk = task(pid, comm)
                out.add(Op.UNCHARGE, tt, task=tk, memcg=m, pages=-nr, kind=int(PageKind.KERNEL))
                held[m, 2] -= -nr
                rep.use(name)
            elif ev == "uncharge_batch":
                m = cg_of_ptr.get(_int(fl["memcg"]))
                if m is None:
                    rep.ignore(name, "memcg outside the mapped cgroups")
                    continue
                user = _int(fl["nr_memory"]) - _int(fl["nr_kmem"])
                if user <= 0:
                    rep.ignore(name, "uncharge_batch without user pages")
                    continue
                tk = task(pid, comm)
                if pid in in_reclaim and reclaim_frees == "emulate":
                    ann.append((tt, ANN_RECLAIM_FREED, m, tk, user, 0))
                    held[m, 1] -= user
                    rep.use(name)
                    continue
                a = min(user, anon_of.get((tk, m), 0))
                fpages = min(user - a, max(int(held[m, 1]), 0))
                a2 = user - a - fpages
                if a:
                    anon_of[(tk, m)] -= a
                for pages, kind, col in ((a + a2, PageKind.ANON, 0), (fpages, PageKind.FILE, 1)):
                    if pages:
                        out.add(Op.UNCHARGE, tt, task=tk, memcg=m, pages=pages, kind=int(kind))
                        held[m, col] -= pages
                rep.use(name)
            elif ev == "reclaim_high":
                m = cg_of_ptr.get(_int(fl["memcg"]))
                if m is None:
                    rep.ignore(name, "memcg outside the mapped cgroups")
                    continue
                tk = task(pid, comm)
                if not kthread_pid[pid]:
                    out.add(Op.RETURN_TO_USER, tt, task=tk)
                ann.append((tt, ANN_RECLAIM_HIGH, m, tk, _int(fl["nr_pages"]), -1))
                rep.use(name)
            elif ev == "cgroup_attach_task":
                p = "/" + "/".join(x for x in fl["dst_path"].split("/") if x)
                child = _int(fl["pid"])
                comm2 = fl.get("comm", comm)
                tk = task(child, comm2)
                m = c_of.get(p, 0)
                cg_of_pid[child] = m
                if not kthread_pid[child]:
                    out.add(Op.ATTACH, tt, task=tk, memcg=m)
                rep.use(name)
            elif ev == "sched_process_fork":
                parent, child = pid, _int(fl["child_pid"])
                if cg_of_pid.get(parent, 0) > 0:
                    tk = task(child, fl.get("child_comm", comm))
                    cg_of_pid[child] = cg_of_pid[parent]
                    out.add(Op.ATTACH, tt, task=tk, memcg=cg_of_pid[parent])
                    rep.use(name)
                else:
                    rep.ignore(name, "fork outside the recorded cgroups")
            elif ev == "reclaim":
                m = cg_of_ptr.get(_int(fl["memcg"]), -1)
                ann.append((tt, ANN_RECLAIM, m, task(pid, comm), _int(fl["nr_pages"]), -1))
                in_reclaim.add(pid)
                rep.use(name)
            elif ev == "reclaim_ret":
                in_reclaim.discard(pid)
                for j in range(len(ann) - 1, -1, -1):  # the same task's open reclaim
                    if ann[j][1] == ANN_RECLAIM and ann[j][3] == task_of.get(pid) and \
                            ann[j][5] == -1:
                        ann[j] = ann[j][:5] + (_int(fl["reclaimed"]),)
                        break
                rep.use(name)
            elif ev == "memcg_oom":
                m = cg_of_ptr.get(_int(fl["memcg"]), -1)
                ann.append((tt, ANN_OOM, m, task(pid, comm), 0, -1))
                rep.use(name)
            elif ev == "memcg_oom_ret":
                for j in range(len(ann) - 1, -1, -1):
                    if ann[j][1] == ANN_OOM and ann[j][3] == task_of.get(pid):
                        ann[j] = ann[j][:5] + (_int(fl["killed"]),)
                        break
                rep.use(name)
            elif ev == "mark_victim":
                victim = _int(fl["pid"])
                ann.append((tt, ANN_OOM_VICTIM, cg_of_pid.get(victim, -1),
                            task(victim, fl.get("comm", comm)), 0, 0))
                rep.use(name)
            elif ev == "pc_charge_ret":
                if _int(fl["ok"]) == 0:
                    ann.append((tt, ANN_CHARGE_FAILED, -1, task(pid, comm), 0, 0))
                rep.use(name)
            elif ev == "try_charge_ret":
                if _int(fl["ret"]) != 0:
                    ann.append((tt, ANN_TRY_CHARGE_ENOMEM, -1, task(pid, comm),
                                _int(fl["ret"]), 0))
                rep.use(name)
            elif ev == "tracing_mark_write":
                ms = re.match(r"memcg_sample seq=(\d+)", rest)
                if ms:
                    seq_at[int(ms.group(1))] = out.n
                    seq_time[int(ms.group(1))] = tt
                    rep.use(name)
                elif rest.startswith("memcg_map"):
                    rep.use(name)
                else:
                    rep.ignore(name, "other trace marker")
            elif ev == "map_read":
                rep.use(name)
            elif ev in _IGNORED_PC:
                rep.ignore(name, "page-counter/stock level (modelled by the emulator)")
            else:
                rep.ignore(name, f"event {ev}")
        except (KeyError, ValueError) as e:
            rep.bad_line(name, lineno, f"{ev}: missing or bad field ({e})")

    events = out.build()
    # a task's CPU: the one it first charged on (modulo the emulated CPUs)
    tasks = [TaskSpec(cgroup="/", cpu=0 if tk.kthread else first_cpu.get(i, 0) % nr_cpus,
                      kthread=tk.kthread) for i, tk in enumerate(tasks)]
    wl = Workload(name="trace", cgroups=tuple(CgroupSpec(path=p) for p in paths),
                  tasks=tuple(tasks), events=events, nr_cpus=nr_cpus,
                  params={"source": os.path.basename(name)})
    imp_kw = {}
    if samples is None:
        samples = _beside(d, "samples.csv")
    if samples is not None:
        simp = import_samples(samples, nr_cpus=nr_cpus, strict=strict)
        rep.lines.update(simp.report.lines)
        rep.used.update(simp.report.used)
        rep.ignored.update(simp.report.ignored)
        rep.bad += simp.report.bad
        # the sample rows the trace has a marker for, in the trace's cgroup numbering
        seqs = sorted(seq_at)
        sp = simp.workload.paths
        rows = [int(s) - 1 for s in seqs]  # samples.csv seq is 1-based and dense here
        ok = [k for k, r in enumerate(rows) if 0 <= r < simp.recorded_usage.shape[0]]
        ncg = len(paths) + 1
        usage = np.full((len(ok), ncg), -1, np.int64)
        evs = np.full((len(ok), ncg, len(EVENT_KEYS)), -1, np.int64)
        for j, p in enumerate(sp):
            if p in c_of:
                usage[:, c_of[p]] = simp.recorded_usage[[rows[k] for k in ok], j]
                evs[:, c_of[p]] = simp.recorded_events[[rows[k] for k in ok], j]
        imp_kw = dict(sample_time=np.array([seq_time[seqs[k]] for k in ok], np.int64),
                      interval_end=np.array([seq_at[seqs[k]] for k in ok], np.int64),
                      recorded_usage=usage, recorded_events=evs)
        rl = simp.meta.get("recorded_limits") or {}
        if rl:
            wl = apply_limits(wl, {p: {k: (v // PAGE_SIZE if v is not None else
                                           (0 if k == "low" else PAGE_COUNTER_MAX))
                                       for k, v in lim.items()} for p, lim in rl.items()})
    # ---- starting state --------------------------------------------------------------------
    state = None
    if isinstance(start, dict):
        state = check_snapshot(start, wl.paths, "import_trace: start")
    elif start == "first-sample" and samples is not None and simp.meta.get("starting_state"):
        first = imp_kw["interval_end"][0] if imp_kw["interval_end"].size else events.shape[0]
        pre = events[:first]
        state = {}
        for p, kinds in simp.meta["starting_state"].items():
            if p not in c_of:
                continue
            c = c_of[p]
            mine = pre[pre["memcg"] == c]
            sign = np.where(mine["op"] == Op.CHARGE, 1, np.where(mine["op"] == Op.UNCHARGE,
                                                                   -1, 0))
            net = {k: int((sign * mine["arg"])[mine["kind"] == kind].sum()) for k, kind in
                   (("anon", PageKind.ANON), ("file", PageKind.FILE),
                    ("kernel", PageKind.KERNEL))}
            folded = kinds["file"] + kinds["file_dirty"] + kinds["file_writeback"]
            state[c] = {"anon": max(kinds["anon"] - net["anon"], 0),
                        "file": max(folded - net["file"], 0),
                        "kernel": max(kinds["kernel"] - net["kernel"], 0)}
    elif start not in (None, "first-sample"):
        raise InvalidArgumentError(f"import_trace: start must be 'first-sample', None or a "
                                   f"snapshot dict, not {start!r}")
    if state:
        pre_ev = EventList()
        loader = len(wl.tasks)
        add_starting_state(pre_ev, state, loader, 1 << 20, fold_dirty=True)
        wl = replace(wl, tasks=wl.tasks + (TaskSpec(cgroup="/", cpu=0, kthread=True),),
                     events=np.concatenate([pre_ev.build(), wl.events]))
        if imp_kw:
            imp_kw["interval_end"] = imp_kw["interval_end"] + pre_ev.n
    if limits:
        wl = apply_limits(wl, limits)
    annotations = np.array(ann, dtype=ANNOTATION_DTYPE)
    return ImportedWorkload(kind="trace", workload=wl, report=rep, annotations=annotations,
                            meta={"sources": [name] + ([os.fspath(memcg_map)] if memcg_map
                                                       else []),
                                  "capture_meta": meta,
                                  "memcg_pointers": {hex(k): v for k, v in ptr.items()},
                                  "tasks": {str(pid): tk for pid, tk in task_of.items()},
                                  "starting_state": {wl.paths[c]: v for c, v in
                                                     (state or {}).items()}},
                            **imp_kw)
