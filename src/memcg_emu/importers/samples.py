"""cgroupfs samples (``samples.csv`` of the capture script) -> a replayable workload.

Input: one header line, then one row per (sample, cgroup) with ``seq``, ``t_us``, ``cgroup``,
``current`` and the ``memory.stat`` keys (bytes; ``pgsteal`` in pages), ``ev_*`` =
memory.events; optional ``max``/``high``/``low`` (bytes or "max": the limits the project's
capture script records).  Every memory.stat/memory.current/memory.events value of cgroup v2
is hierarchical, so each cgroup's own pages are its values minus those of its children
recorded in the same sample.

How a change between two samples becomes events (per cgroup, pages):

* kinds: ``anon`` = anon + shmem (shmem is swap-backed and sits on the anon LRU:
  mm/shmem.c, mm/swap.c ``folio_add_lru``), ``file`` (clean) = file - shmem - file_dirty -
  file_writeback, ``file_dirty``, ``file_writeback``, ``kernel`` = kernel + sock;
* anon and kernel: an increase is charged (anon from the cgroup's task with
  GFP_HIGHUSER_MOVABLE as a fault does, mm/memory.c ``do_anonymous_page()``; kernel with
  GFP_KERNEL_ACCOUNT), a decrease uncharged;
* page cache: ``pgsteal`` counts what reclaim took in the interval.  Reclaim happens inside
  the emulator when a charge meets a limit, so it is not replayed as uncharges: the file
  charged in the interval is the net change plus what was stolen, ``n = dF + steal``
  (charged dirty as far as dirty + writeback grew, the rest clean), and a negative ``n`` is
  an uncharge of clean pages (files removed or truncated);
* dirty/writeback state: the fewest transitions that turn the old (clean, dirty, writeback)
  split plus the charges into the new one: ``x`` dirty -> writeback
  (``folio_start_writeback``), ``y`` writeback -> clean (``folio_end_writeback``), ``z``
  clean -> dirty (re-dirtied), with ``x = max(0, D0 + n_dirty - D1, W1 - W0)``;
* order within one interval: anon/kernel uncharges, charges, dirty/writeback transitions,
  page-cache uncharges, then a return to user space of the cgroup's task (memory.high is
  enforced there, ``mem_cgroup_handle_over_high()``).

Charges come from one task per cgroup (its CPU is the cgroup index modulo ``nr_cpus``); when
the recorded ``oom_kill`` count of a cgroup rises, its later charges come from a new task (the
killed process is gone).  Uncharges and the starting state come from a kernel thread with an
explicit target memcg (they must not depend on which task the emulator's OOM killer chose).
Events carry at most ``pages_per_event`` pages (default 1: the kernel charges one order-0
folio at a time), so a short uncharge in a lenient replay skips little.

Starting state: the first sample's own pages per kind are charged at the start by the kernel
thread (writeback pages as dirty, then ``START_WRITEBACK``).  A cgroup that disappears from
the samples (rmdir) has its remaining pages uncharged; the kernel reparents what an offlined
memcg still holds (``memcg_reparent_objcgs()``), which the parent's own pages then show.

Not reproducible from samples: what happens inside one interval (a charge and an uncharge of
the same kind in one interval cancel out), the per-CPU stock (memory.current minus the
memory.stat sizes; the emulator has its own stock), and reclaim outside memcg limits
(kswapd), whose pgsteal is treated as memcg reclaim.
"""
from __future__ import annotations

import os

import numpy as np

from .._constants import GFP_HIGHUSER_MOVABLE, GFP_KERNEL, PAGE_SIZE, PageKind, __GFP_ACCOUNT
from ..errors import InvalidFileError
from ..events import Op
from ..workloads import CgroupSpec, TaskSpec, Workload
from ._common import (
    EVENT_KEYS,
    START_KINDS,
    EventList,
    add_starting_state,
    check_snapshot,
    ImportedWorkload,
    LineReport,
    apply_limits,
    open_text,
)

GFP_KERNEL_ACCOUNT = GFP_KERNEL | __GFP_ACCOUNT
_WRITE_GFP = GFP_HIGHUSER_MOVABLE  # filemap_add_folio for a write() (mapping gfp)
REQUIRED = ("seq", "t_us", "cgroup", "current", "anon", "file", "kernel", "shmem",
            "file_dirty", "file_writeback", "pgsteal") + tuple(f"ev_{k}" for k in EVENT_KEYS)
OPTIONAL = ("sock", "max", "high", "low")
_K = ("anon", "file", "file_dirty", "file_writeback", "kernel")  # kinds, PageKind order 0..4


def _read_csv(path: str, rep: LineReport):
    """rows: list of (line_no, dict col -> str) of the readable rows."""
    name = os.fspath(path)
    f = open_text(path)
    rows = []
    with f:
        try:
            header = f.readline()
        except UnicodeDecodeError:
            raise InvalidFileError(f"{name}:1: not UTF-8 text") from None
        rep.read(name)
        cols = header.rstrip("\n").split(",")
        missing = [c for c in REQUIRED if c not in cols]
        if missing:
            raise InvalidFileError(f"{name}:1: not a samples.csv header (missing columns "
                                   f"{', '.join(missing)})")
        rep.use(name)
        idx = {c: i for i, c in enumerate(cols)}
        want = [c for c in REQUIRED + OPTIONAL if c in idx]
        lineno = 1
        while True:
            try:
                line = f.readline()
            except UnicodeDecodeError:
                rep.read(name)
                rep.bad_line(name, lineno + 1, "not UTF-8 text; the rest of the file is not "
                                               "read")
                break
            if not line:
                break
            lineno += 1
            rep.read(name)
            text = line.rstrip("\n")
            if not text.strip():
                rep.ignore(name, "empty line")
                continue
            parts = text.split(",")
            if len(parts) != len(cols):
                rep.bad_line(name, lineno, f"{len(parts)} fields, the header has {len(cols)}"
                             + ("" if line.endswith("\n") else " (truncated last line)"))
                continue
            row = {c: parts[idx[c]] for c in want}
            bad = [c for c in want if row[c] == ""]
            if bad:
                rep.bad_line(name, lineno, f"empty field(s) {', '.join(bad)} (file not "
                                           f"readable in that sample)")
                continue
            try:
                rec = {"seq": int(row["seq"]), "t_us": int(row["t_us"]),
                       "cgroup": row["cgroup"]}
                for c in want:
                    if c in ("seq", "t_us", "cgroup"):
                        continue
                    v = row[c]
                    if c in ("max", "high", "low"):
                        rec[c] = None if v == "max" else int(v)
                    else:
                        rec[c] = int(v)
                        if rec[c] < 0:
                            raise ValueError(f"{c} = {v} is negative")
            except ValueError as e:
                rep.bad_line(name, lineno, f"not a number: {e}")
                continue
            if not rec["cgroup"].strip("/"):
                rep.bad_line(name, lineno, "empty cgroup path")
                continue
            rows.append((lineno, rec))
    return name, rows


def read_meta(path) -> dict[str, str]:
    """``key=value`` lines of a capture's meta.txt."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            k, sep, v = line.rstrip("\n").partition("=")
            if sep:
                out[k.strip()] = v
    return out


def import_samples(path, *, limits: dict[str, dict[str, int]] | None = None,
                   nr_cpus: int | None = None, pages_per_event: int = 1,
                   strict: bool = False, meta_path=None,
                   start: dict | None = None) -> ImportedWorkload:
    """Read a samples.csv into an :class:`ImportedWorkload` (see the module docstring).

    Parameters
    ----------
    limits : {path: {"max"|"high"|"low": pages}}, optional
        Limits of the setup, for recordings without ``max``/``high``/``low`` columns (they
        override the recorded ones).
    nr_cpus : int, optional
        Default: ``nr_cpus`` of the ``meta.txt`` next to the file, else 2.
    strict : bool
        Raise :class:`~memcg_emu.errors.InvalidFileError` on the first unreadable row
        instead of counting it.
    start : {path: {kind: pages}}, optional
        An explicit starting state (kinds: ``START_KINDS``) instead of the first sample's
        own pages.
    """
    from ..sim import _check_int

    pages_per_event = _check_int(pages_per_event, "pages_per_event", 1, 1 << 20)
    rep = LineReport(strict)
    name, rows = _read_csv(path, rep)
    if meta_path is None:
        cand = os.path.join(os.path.dirname(os.fspath(path)), "meta.txt")
        meta_path = cand if os.path.exists(cand) else None
    meta = read_meta(meta_path) if meta_path else {}
    if nr_cpus is None:
        nr_cpus = int(meta.get("nr_cpus", 2) or 2)
    nr_cpus = _check_int(nr_cpus, "nr_cpus", 1, 4096)
    if meta.get("page_size") and int(meta["page_size"]) != PAGE_SIZE:
        raise InvalidFileError(f"{meta_path}: page_size {meta['page_size']} is not the "
                               f"emulator's {PAGE_SIZE}")
    if not rows:
        raise InvalidFileError(f"{name}: no readable sample rows")

    # ---- pivot: samples x cgroups ---------------------------------------------------------
    seqs = sorted({r["seq"] for _, r in rows})
    s_of = {s: i for i, s in enumerate(seqs)}
    paths = sorted({"/" + "/".join(x for x in r["cgroup"].split("/") if x) for _, r in rows},
                   key=lambda p: (p.count("/"), p))
    # every ancestor of a recorded cgroup must be in the setup too
    allp = set(paths)
    for p in list(paths):
        parts = p.strip("/").split("/")
        for i in range(1, len(parts)):
            allp.add("/" + "/".join(parts[:i]))
    paths = sorted(allp, key=lambda p: (p.count("/"), p))
    c_of = {p: i + 1 for i, p in enumerate(paths)}  # emulator index (0 = root)
    ns, nc = len(seqs), len(paths) + 1
    fields = ("current", "anon", "file", "kernel", "shmem", "file_dirty", "file_writeback",
              "pgsteal", "sock")
    H = {f: np.zeros((ns, nc), np.int64) for f in fields}
    present = np.zeros((ns, nc), bool)
    ev = np.full((ns, nc, len(EVENT_KEYS)), -1, np.int64)
    t_us = np.zeros(ns, np.int64)
    rec_limits: dict[str, dict[str, int | None]] = {}
    for lineno, r in rows:
        s = s_of[r["seq"]]
        c = c_of["/" + "/".join(x for x in r["cgroup"].split("/") if x)]
        if present[s, c]:
            rep.bad_line(name, lineno, f"cgroup {r['cgroup']} appears twice in sample "
                                       f"{r['seq']}")
            continue
        rep.use(name)
        present[s, c] = True
        t_us[s] = r["t_us"] if t_us[s] == 0 else min(t_us[s], r["t_us"])
        for f in fields:
            H[f][s, c] = r.get(f, 0)
        for k, key in enumerate(EVENT_KEYS):
            ev[s, c, k] = r[f"ev_{key}"]
        for which in ("max", "high", "low"):
            if which in r:
                rec_limits.setdefault(paths[c - 1], {})[which] = r[which]
    # Gaps (a cgroup missing from a sample between two it appears in) carry the last values.
    first = np.where(present.any(0), present.argmax(0), ns)
    last = np.where(present.any(0), ns - 1 - present[::-1].argmax(0), -1)
    for c in range(1, nc):
        for s in range(first[c] + 1, last[c] + 1):
            if not present[s, c]:
                for f in fields:
                    H[f][s, c] = H[f][s - 1, c]
                ev[s, c] = ev[s - 1, c]
                present[s, c] = True
    parent = np.array([-1] + [c_of.get(p.rsplit("/", 1)[0] or "/", 0) if p.count("/") > 1
                              else 0 for p in paths], np.int64)

    # ---- own (local) values: hierarchical minus recorded children -------------------------
    def local(h):
        out = np.where(present, h, 0).copy()
        for c in range(1, nc):
            out[:, parent[c]] -= np.where(present[:, c], h[:, c], 0)
        out[:, 0] = 0
        return out

    L = {f: local(H[f]) for f in fields}
    clean = L["file"] - L["shmem"] - L["file_dirty"] - L["file_writeback"]
    own = np.stack([L["anon"] + L["shmem"], clean, L["file_dirty"], L["file_writeback"],
                    L["kernel"] + L["sock"]], axis=-1)  # bytes, [ns, nc, 5]
    negative = int((own < 0).sum())
    own = np.maximum(own, 0) // PAGE_SIZE
    steal = np.maximum(L["pgsteal"], 0)
    oomk = np.where(ev[:, :, 4] >= 0, ev[:, :, 4], 0)
    oomk_local = oomk.copy()
    for c in range(1, nc):
        oomk_local[:, parent[c]] -= oomk[:, c]

    # ---- tasks ----------------------------------------------------------------------------
    tasks = [TaskSpec(cgroup="/", cpu=0, kthread=True)]  # 0: uncharges, starting state
    charger = {}
    generations: dict[int, list[int]] = {}
    for c in range(1, nc):
        kills = int(max(oomk_local[:, c].max(), 0)) if ns else 0
        generations[c] = []
        for g in range(kills + 1):
            generations[c].append(len(tasks))
            tasks.append(TaskSpec(cgroup=paths[c - 1], cpu=(c - 1) % nr_cpus))
        charger[c] = generations[c][0]

    # ---- events ---------------------------------------------------------------------------
    out = EventList()
    ppe = pages_per_event
    t0 = int(t_us[0])
    interval_end = np.zeros(ns, np.int64)
    alive = present[0].copy()
    if start is None:  # starting state: the first sample's own pages
        state = {c: dict(zip(START_KINDS, (int(v) for v in own[0, c])))
                 for c in range(1, nc) if present[0, c]}
    else:
        state = check_snapshot(start, ["/"] + paths, "import_samples: start")
    add_starting_state(out, state, 0, ppe)
    interval_end[0] = out.n
    for s in range(1, ns):
        t = (int(t_us[s]) - t0) * 1000
        now = present[s]
        prev = np.where(alive, 1, 0)
        o0 = np.where(alive[:, None], own[s - 1], 0)
        o1 = np.where(now[:, None], own[s], 0)
        plan = []
        for c in range(1, nc):
            if not (alive[c] or now[c]):
                continue
            if now[c] and oomk_local[s, c] > oomk_local[s - 1, c] and prev[c]:
                gen = generations[c]
                i = gen.index(charger[c])
                charger[c] = gen[min(i + int(oomk_local[s, c] - oomk_local[s - 1, c]),
                                     len(gen) - 1)]
            A0, C0, D0, W0, K0 = (int(v) for v in o0[c])
            A1, C1, D1, W1, K1 = (int(v) for v in o1[c])
            st = int(steal[s, c] - steal[s - 1, c]) if (now[c] and alive[c]) else 0
            st = max(st, 0) // 1  # pgsteal is in pages
            F0, F1 = C0 + D0 + W0, C1 + D1 + W1
            n = F1 - F0 + st
            n_f, f_f = max(n, 0), max(-n, 0)
            n_d = min(n_f, max(0, D1 - D0) + max(0, W1 - W0))
            n_c = n_f - n_d
            x = max(0, D0 + n_d - D1, W1 - W0)
            z = D1 - D0 - n_d + x
            y = W0 + x - W1
            plan.append((c, A1 - A0, K1 - K0, n_c, n_d, x, y, z, f_f))
        for c, da, dk, *_ in plan:
            out.add_pages(Op.UNCHARGE, t, -da, ppe, task=0, memcg=c, kind=PageKind.ANON)
            out.add_pages(Op.UNCHARGE, t, -dk, ppe, task=0, memcg=c, kind=PageKind.KERNEL)
        for c, da, dk, n_c, n_d, *_ in plan:
            tk = charger[c]
            out.add_pages(Op.CHARGE, t, da, ppe, task=tk, memcg=c, kind=PageKind.ANON,
                          gfp=GFP_HIGHUSER_MOVABLE)
            out.add_pages(Op.CHARGE, t, dk, ppe, task=tk, memcg=c, kind=PageKind.KERNEL,
                          gfp=GFP_KERNEL_ACCOUNT)
            out.add_pages(Op.CHARGE, t, n_c, ppe, task=tk, memcg=c, kind=PageKind.FILE,
                          gfp=_WRITE_GFP)
            out.add_pages(Op.CHARGE, t, n_d, ppe, task=tk, memcg=c,
                          kind=PageKind.FILE_DIRTY, gfp=_WRITE_GFP)
        for c, _a, _k, _nc, _nd, x, y, z, f_f in plan:
            out.add_pages(Op.SET_DIRTY, t, z, ppe, memcg=c)
            out.add_pages(Op.START_WRITEBACK, t, x, ppe, memcg=c)
            out.add_pages(Op.END_WRITEBACK, t, y, ppe, memcg=c)
            out.add_pages(Op.UNCHARGE, t, f_f, ppe, task=0, memcg=c, kind=PageKind.FILE)
        for c, da, dk, n_c, n_d, *_ in plan:
            if now[c] and (da > 0 or dk > 0 or n_c or n_d):
                out.add(Op.RETURN_TO_USER, t, task=charger[c])
        alive = now.copy()
        interval_end[s] = out.n
    events = out.build()

    setup_limits = {}
    for p in paths:
        setup_limits[p] = dict(rec_limits.get(p, {}))
    cgroups = []
    for p in paths:
        lim = setup_limits.get(p, {})
        cgroups.append(CgroupSpec(
            path=p,
            max=None if lim.get("max") is None else lim["max"] // PAGE_SIZE,
            high=None if lim.get("high") is None else lim["high"] // PAGE_SIZE,
            low=None if not lim.get("low") else lim["low"] // PAGE_SIZE))
    wl = Workload(name="samples", cgroups=tuple(cgroups), tasks=tuple(tasks), events=events,
                  nr_cpus=nr_cpus,
                  params={"source": os.path.basename(name), "pages_per_event": ppe})
    if limits:
        wl = apply_limits(wl, limits)
    rec_usage = np.where(present, H["current"] // PAGE_SIZE, -1)
    rec_usage[:, 0] = -1
    ev[:, 0] = -1
    return ImportedWorkload(
        kind="samples", workload=wl, report=rep,
        sample_time=(t_us - t0) * 1000, interval_end=interval_end,
        recorded_usage=rec_usage, recorded_events=ev,
        meta={"sources": [name], "negative_own_values_clipped": negative,
              "starting_state": {paths[c - 1]: v for c, v in state.items()},
              "capture_meta": meta, "recorded_limits": {p: v for p, v in
                                                        rec_limits.items()}})
