"""Seeded workload generators: a cgroup/task setup plus a replayable event array.

Every generator returns a :class:`Workload`: the cgroups to create (with ``memory.max``,
``memory.high`` and ``memory.low`` in pages), the tasks to create (cgroup, CPU, kernel-thread
flag) and an ``EVENT_DTYPE`` array (format v1, :mod:`memcg_emu.events`).
``workload.build(policy=...)`` makes a fresh :class:`~memcg_emu.Emulator` in which cgroup
``workload.cgroups[i]`` has index ``i + 1`` (0 is the root) and ``workload.tasks[p]`` has pid
``p``, which is what the events refer to.

The streams are built with vectorised numpy (no per-event Python loop), so ten million events
take a few seconds.  They are always valid to replay under every policy, whatever reclaim
does, because of how they are put together:

* anon and kernel pages are freed only by the task that charged them, and only after it did
  (each charge has its own later uncharge); swap is off by default, so reclaim cannot take them
  away behind the stream's back;
* page cache (file pages) is never uncharged by the stream: reclaim drops it.  File pages are
  charged with a gfp that allows direct reclaim;
* dirty/writeback transitions move exactly the pages that the same unit just charged and
  dirtied, so the pools they take from always hold enough;
* flag scopes (``ACCOUNT_FORCE_SAVE``/``FLAGS_SAVE`` ... ``FLAGS_RESTORE``) are contiguous
  runs of one task's events, balanced, and never contain ``RETURN_TO_USER``;
* the limits are derived from the generated stream itself: every limited cgroup's
  ``memory.max`` exceeds the peak of its unreclaimable pages (anon + kernel + dirty +
  writeback, summed over its subtree) plus room for the per-CPU stocks, so reclaim can always
  make room and the OOM killer never runs.  The page-cache part of the limit is the subtree's
  total page-cache inflow divided by ``pressure``, so the limit is reached after roughly
  ``1/pressure`` of the stream and reclaim keeps usage at ``memory.max`` from then on.

How streams are assembled: a stream is a sequence of *units* (slots).  A unit is a short,
contiguous run of events of one task (a page fault, a ``write()`` inside a jbd2 handle, ...).
A unit may schedule *delayed* events (the matching uncharge, writeback start/end) that land
between later units.  Sorting by slot interleaves everything; the result is cut to exactly
``n_events`` at a unit boundary and padded with ``RETURN_TO_USER`` events.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from ._constants import (
    GFP_HIGHUSER_MOVABLE,
    GFP_KERNEL,
    GFP_KERNEL_ACCOUNT,
    GFP_NOFS,
    MEMCG_CHARGE_BATCH,
    PAGE_SIZE,
    PF_MEMALLOC_NOFS,
    PageKind,
)
from .events import EVENT_DTYPE, FORMAT_VERSION, Op

__all__ = ["CgroupSpec", "TaskSpec", "Workload", "ChunkedWorkload", "mixed", "mixed_chunks",
           "steady_growth", "bursts", "many_small_cgroups", "GENERATORS"]

ANON, FILE, KERNEL = int(PageKind.ANON), int(PageKind.FILE), int(PageKind.KERNEL)
_PAGES_PER_MIB = (1 << 20) // PAGE_SIZE


# =============================================================================================
# the setup description
# =============================================================================================
@dataclass(frozen=True)
class CgroupSpec:
    """One cgroup: absolute path and limits in pages (None leaves the kernel default)."""

    path: str
    max: int | None = None
    high: int | None = None
    low: int | None = None


@dataclass(frozen=True)
class TaskSpec:
    """One task: its cgroup, its CPU, and whether it is a kernel thread (which lives in the
    root cgroup and has no mm).  ``thread_of`` >= 0 makes it a thread of that earlier pid's
    process (event format v2; its cgroup is then the process's)."""

    cgroup: str = "/"
    cpu: int = 0
    kthread: bool = False
    thread_of: int = -1


@dataclass(eq=False)
class Workload:
    """A generated workload: setup + events.

    Attributes
    ----------
    name : str
        Generator name.
    cgroups : tuple of CgroupSpec
        Created in this order, parents first; ``cgroups[i]`` gets cgroup index ``i + 1``.
    tasks : tuple of TaskSpec
        Created in this order after all cgroups and limits; ``tasks[p]`` gets pid ``p``.
    events : numpy structured array of ``EVENT_DTYPE``
    nr_cpus : int
        CPUs the setup uses (``build`` defaults to it).
    params : dict
        The generator's arguments (JSON-serialisable), for provenance.
    """

    name: str
    cgroups: tuple[CgroupSpec, ...]
    tasks: tuple[TaskSpec, ...]
    events: np.ndarray
    nr_cpus: int
    params: dict = field(default_factory=dict)

    # ---- views ---------------------------------------------------------------------------
    @property
    def n_events(self) -> int:
        return int(self.events.shape[0])

    @property
    def paths(self) -> list[str]:
        """Cgroup paths by index (index 0 is the root, "/")."""
        return ["/"] + [c.path for c in self.cgroups]

    def cgroup_index(self, path: str) -> int:
        p = "/" + "/".join(x for x in path.split("/") if x)
        try:
            return self.paths.index(p)
        except ValueError:
            raise ValueError(f"workload {self.name!r} has no cgroup {path!r}") from None

    @property
    def parent(self) -> np.ndarray:
        """Parent index per cgroup (root: -1)."""
        return _parents(self.paths)

    @property
    def task_memcg(self) -> np.ndarray:
        """Cgroup index of each task's own cgroup (kernel threads: 0)."""
        idx = {p: i for i, p in enumerate(self.paths)}
        return np.array([0 if t.kthread else idx[_norm(t.cgroup)] for t in self.tasks],
                        dtype=np.int32)

    def memcg_of_events(self) -> np.ndarray:
        """The cgroup each event is attributed to: its ``memcg`` field when set, else its
        task's cgroup, else the root.  (Charges of a kernel thread through
        ``SET_ACTIVE_MEMCG`` are attributed to the root here.)"""
        ev = self.events
        tm = self.task_memcg
        t = ev["task"]
        own = np.where(t >= 0, tm[np.clip(t, 0, max(len(tm) - 1, 0))] if len(tm) else 0, 0)
        return np.where(ev["memcg"] >= 0, ev["memcg"], own).astype(np.intp)

    def describe(self) -> dict:
        """Counts that characterise the workload (for reports and tests)."""
        ev = self.events
        op = ev["op"]
        charge = op == Op.CHARGE
        depth = max(p.count("/") for p in self.paths[1:]) if self.cgroups else 0
        return {
            "name": self.name,
            "events": self.n_events,
            "cgroups": len(self.cgroups),
            "levels": depth,
            "tasks": len(self.tasks),
            "kthreads": sum(t.kthread for t in self.tasks),
            "nr_cpus": self.nr_cpus,
            "limited_cgroups": sum(c.max is not None for c in self.cgroups),
            "ops": {Op(o).name.lower(): int(n) for o, n in
                    enumerate(np.bincount(op, minlength=len(Op))) if n},
            "charged_pages": {PageKind(k).name.lower(): int(n) for k, n in
                              enumerate(np.bincount(ev["kind"][charge],
                                                    weights=ev["arg"][charge],
                                                    minlength=3).astype(np.int64)) if n},
        }

    # ---- building an emulator ------------------------------------------------------------
    def build(self, policy: str = "baseline", backend: str | None = None,
              nr_cpus: int | None = None, seed: int = 0, **emulator_kwargs):
        """A fresh Emulator with this workload's cgroups, limits and tasks.

        Order (deterministic, so indices match the events): ``mkdir`` every cgroup in
        ``cgroups`` order; then, per cgroup in the same order, write ``memory.low``,
        ``memory.high``, ``memory.max`` (all empty, so no reclaim runs); then create every
        task in ``tasks`` order.

        Parameters
        ----------
        policy, backend, seed, **emulator_kwargs
            Passed to :class:`~memcg_emu.Emulator`.
        nr_cpus : int, optional
            Defaults to ``self.nr_cpus``; must cover every task's CPU.

        Raises
        ------
        ValueError
            If ``nr_cpus`` is too small for the tasks' CPUs.
        """
        from .sim import Emulator

        nr_cpus = self.nr_cpus if nr_cpus is None else nr_cpus
        need = 1 + max((t.cpu for t in self.tasks), default=0)
        if nr_cpus < need:
            raise ValueError(f"nr_cpus = {nr_cpus}: workload {self.name!r} has tasks on CPU "
                             f"{need - 1}, so it needs at least {need}")
        emu = Emulator(policy=policy, nr_cpus=nr_cpus, seed=seed, backend=backend,
                       **emulator_kwargs)
        for i, cg in enumerate(self.cgroups, start=1):
            got = emu.mkdir(cg.path)
            if got != i:  # pragma: no cover - Emulator numbering changed under us
                raise RuntimeError(f"mkdir {cg.path!r} returned index {got}, expected {i}")
        for cg in self.cgroups:
            for file, pages in (("memory.low", cg.low), ("memory.high", cg.high),
                                ("memory.max", cg.max)):
                if pages is not None:
                    emu.write(cg.path, file, int(pages) * PAGE_SIZE)
        for pid, t in enumerate(self.tasks):
            if t.thread_of >= 0:
                if not 0 <= t.thread_of < pid:
                    raise ValueError(f"workload {self.name!r}: tasks[{pid}].thread_of = "
                                     f"{t.thread_of} does not name an earlier task")
                task = emu.new_thread(t.thread_of, cpu=t.cpu)
            else:
                task = emu.new_task("/" if t.kthread else t.cgroup, kthread=t.kthread,
                                    cpu=t.cpu)
            if task.pid != pid:  # pragma: no cover
                raise RuntimeError(f"task {pid} got pid {task.pid}")
        return emu

    # ---- serialisation of the setup (the events go through memcg_emu.io) ----------------
    def setup_dict(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "nr_cpus": self.nr_cpus,
            "params": self.params,
            "cgroups": [asdict(c) for c in self.cgroups],
            "tasks": [asdict(t) for t in self.tasks],
        }

    def setup_json(self) -> str:
        return json.dumps(self.setup_dict(), sort_keys=True)

    @classmethod
    def from_setup(cls, setup: dict | str, events: np.ndarray) -> "Workload":
        """Rebuild a Workload from :meth:`setup_dict` (or its JSON) and an event array."""
        d = json.loads(setup) if isinstance(setup, str) else setup
        return cls(name=d["name"], cgroups=tuple(CgroupSpec(**c) for c in d["cgroups"]),
                   tasks=tuple(TaskSpec(**t) for t in d["tasks"]), events=events,
                   nr_cpus=int(d["nr_cpus"]), params=dict(d.get("params", {})))


def _norm(path: str) -> str:
    return "/" + "/".join(x for x in path.split("/") if x)


def _parents(paths: list[str]) -> np.ndarray:
    idx = {p: i for i, p in enumerate(paths)}
    par = np.full(len(paths), -1, dtype=np.int64)
    for i, p in enumerate(paths[1:], start=1):
        head = p.rsplit("/", 1)[0]
        par[i] = idx[head or "/"]
    return par


def _round_up(pages: float, quantum: int) -> int:
    return int(-(-int(np.ceil(pages)) // quantum) * quantum)


# =============================================================================================
# stream assembly (vectorised)
# =============================================================================================
_COLS = ("op", "task", "arg", "memcg", "gfp", "kind", "tgt", "dun", "dfile")
_COL_DTYPES = (np.uint8, np.int32, np.int64, np.int32, np.uint32, np.uint8, np.int32, np.int64,
               np.int64)
_EVENT_COLS = ("op", "task", "arg", "memcg", "gfp", "kind")


class _Stream:
    """Collects units (contiguous, keyed by slot) and delayed events, then lays them out.

    Layout: slot by slot, the unit's own events (in their ``pos`` order), then the delayed
    events scheduled after that slot (in the order they were added).  Positions are computed
    with counts and prefix sums; only the delayed events need a (stable) sort.

    Besides the event fields each row carries bookkeeping for the limit derivation:
    ``tgt`` (the cgroup whose pools the event changes), ``dun`` (change of that cgroup's
    unreclaimable pages: anon, kernel, dirty, writeback) and ``dfile`` (page cache charged).
    """

    def __init__(self):
        self._slot: list[np.ndarray] = []
        self._sub: list[np.ndarray] = []  # position in its unit, -1 for a delayed event
        self._cols: dict[str, list[np.ndarray]] = {c: [] for c in _COLS}

    def _add(self, slots, sub: int, values):
        slots = np.asarray(slots, dtype=np.int64)
        n = slots.shape[0]
        self._slot.append(slots)
        self._sub.append(np.full(n, sub, np.int32))
        for name, dt in zip(_COLS, _COL_DTYPES):
            v = values.get(name, -1 if name in ("task", "memcg", "tgt") else 0)
            self._cols[name].append(np.broadcast_to(np.asarray(v, dtype=dt), (n,)))

    def inline(self, slots, pos: int, **values):
        """Event number ``pos`` (0-based) of the unit at each of ``slots``; a unit's events
        must use positions 0, 1, ... without gaps."""
        self._add(slots, pos, values)

    def delayed(self, slots, **values):
        """An event that runs after the unit at slot ``slots`` (and before the next one)."""
        self._add(slots, -1, values)

    def assemble(self, n_events: int, pad_tasks: np.ndarray, rng: np.random.Generator,
                 ns_per_event: int = 1000) -> tuple[np.ndarray, dict] | None:
        """Lay out, cut to ``n_events`` at a unit boundary, pad with RETURN_TO_USER.

        Returns (events, bookkeeping columns), or None when fewer than ``n_events`` events
        were generated (the caller generates more slots).
        """
        if not self._slot:
            return None
        slot = np.concatenate(self._slot)
        sub = np.concatenate(self._sub)
        total = slot.shape[0]
        if total < n_events:
            return None
        inl = sub >= 0
        n_slots = int(slot[inl].max()) + 1 if inl.any() else 0
        dl = np.flatnonzero(~inl)
        dslot = np.minimum(slot[dl], n_slots)  # after the last unit: one bucket at the end
        n_inline = np.bincount(slot[inl], minlength=n_slots + 1)
        n_delayed = np.bincount(dslot, minlength=n_slots + 1)
        block = np.zeros(n_slots + 2, np.int64)
        np.cumsum(n_inline + n_delayed, out=block[1:])
        pos = np.empty(total, np.int64)
        pos[inl] = block[slot[inl]] + sub[inl]
        order = np.argsort(dslot, kind="stable")
        first = np.zeros(n_slots + 2, np.int64)
        np.cumsum(n_delayed, out=first[1:])
        rank = np.empty(dl.shape[0], np.int64)
        rank[order] = np.arange(dl.shape[0]) - first[dslot[order]]
        pos[dl] = block[dslot] + n_inline[dslot] + rank
        # unit boundaries: each unit's event 0 and every delayed event
        is_start = np.zeros(total + 1, bool)
        is_start[pos[sub <= 0]] = True
        is_start[total] = True
        cut = int(np.flatnonzero(is_start[: n_events + 1])[-1])
        keep = np.flatnonzero(pos < cut)
        src = np.empty(cut, np.int64)  # src[i]: the generated row that becomes event i
        src[pos[keep]] = keep
        ev = np.zeros(n_events, dtype=EVENT_DTYPE)
        for c in _EVENT_COLS:
            ev[c][:cut] = np.concatenate(self._cols[c])[src]
        book = {}
        for c in ("tgt", "dun", "dfile"):
            col = np.concatenate(self._cols[c])
            book[c] = np.zeros(n_events, col.dtype)
            book[c][:cut] = col[src]
        n_pad = n_events - cut
        ev["op"][cut:] = Op.RETURN_TO_USER
        ev["task"][cut:] = pad_tasks[rng.integers(0, len(pad_tasks), n_pad)] if n_pad else 0
        ev["memcg"][cut:] = -1
        book["tgt"][cut:] = -1
        gaps = rng.integers(ns_per_event // 4, 2 * ns_per_event - ns_per_event // 4 + 1,
                            n_events, dtype=np.int64)
        ev["time"] = np.cumsum(gaps) - gaps[0]
        return ev, book


def _generate(make_stream, n_events: int, slots_guess: int, pad_tasks, seed: int):
    """Call ``make_stream(rng, n_slots)`` with enough slots to fill ``n_events``.

    Deterministic: the attempt number is part of the seed sequence."""
    n_slots = max(int(slots_guess), 16)
    for attempt in range(8):
        rng = np.random.default_rng([seed, attempt])
        stream = make_stream(rng, n_slots)
        got = stream.assemble(n_events, pad_tasks, rng)
        if got is not None:
            return got
        n_slots = n_slots * 3 // 2 + 64
    raise RuntimeError("could not generate enough events")  # pragma: no cover


def _peak_unreclaimable(book: dict, n_cg: int, parent: np.ndarray) -> np.ndarray:
    """Upper bound on each cgroup's subtree unreclaimable pages over the whole stream.

    Per cgroup: the running maximum of its own unreclaimable pages (exact, from the
    bookkeeping); per subtree: the sum of those maxima (>= the maximum of the sum)."""
    sel = book["dun"] != 0
    m = book["tgt"][sel]
    d = book["dun"][sel]
    own = np.zeros(n_cg, np.int64)
    if m.size:
        order = np.argsort(m.astype(np.uint16 if n_cg < 65536 else np.int64), kind="stable")
        ms, ds = m[order], d[order]
        cs = np.cumsum(ds)
        starts = np.flatnonzero(np.r_[True, ms[1:] != ms[:-1]])
        base = np.r_[0, cs[starts[1:] - 1]]
        lens = np.diff(np.r_[starts, ms.shape[0]])
        local = cs - np.repeat(base, lens)
        own[ms[starts]] = np.maximum(np.maximum.reduceat(local, starts), 0)
    sub = own.copy()
    for c in range(n_cg - 1, 0, -1):  # parent[c] < c: one reverse pass
        sub[parent[c]] += sub[c]
    return sub


def _subtree_sum(values: np.ndarray, parent: np.ndarray) -> np.ndarray:
    out = values.astype(np.int64).copy()
    for c in range(len(out) - 1, 0, -1):
        out[parent[c]] += out[c]
    return out


def _limit(unrecl: int, stock_pairs: int, file_in: int, pressure: float,
           quantum: int = _PAGES_PER_MIB) -> int:
    """memory.max (or high) for a subtree: its unreclaimable peak, room for its per-CPU stocks
    and one more batch, plus its page-cache inflow over ``pressure``; rounded up to MiB."""
    slack = MEMCG_CHARGE_BATCH * (stock_pairs + 2)
    return _round_up(unrecl + slack + file_in / pressure, quantum)


def _units(rng, n, lo, hi):
    return rng.integers(lo, hi + 1, n, dtype=np.int64)


# unit types, shared by the generators
_ANON, _KERN, _FILE, _RA, _DIRTY, _JBD2, _NOFS, _RTU, _REMOTE = range(9)
_TYPE_NAMES = ("anon", "kernel", "file", "readahead", "dirty", "jbd2", "nofs", "rtu", "remote")


def _emit(s: _Stream, typ: int, slots: np.ndarray, task: np.ndarray, home: np.ndarray,
          rng: np.random.Generator, *, anon_delay, kern_delay, wb_delay: float,
          remote_target=None):
    """Emit the events of ``slots`` (all of unit type ``typ``) for tasks ``task`` whose own
    cgroup is ``home``.  Delays are per-unit mean numbers of slots (arrays or scalars)."""
    n = slots.shape[0]
    if n == 0:
        return

    def geo(mean):
        return rng.geometric(np.clip(1.0 / np.asarray(mean, dtype=np.float64), 1e-9, 1.0), n)

    if typ == _ANON:  # a page fault; the page is freed later (munmap/exit of the range)
        k = _units(rng, n, 1, 4)
        s.inline(slots, 0, op=Op.CHARGE, task=task, arg=k, gfp=GFP_HIGHUSER_MOVABLE,
                 kind=ANON, tgt=home, dun=k)
        s.delayed(slots + geo(anon_delay), op=Op.UNCHARGE, task=task, arg=k, kind=ANON,
                  tgt=home, dun=-k)
    elif typ == _KERN:  # slab object: charged, freed later through the per-CPU stock
        k = _units(rng, n, 1, 2)
        s.inline(slots, 0, op=Op.CHARGE, task=task, arg=k, gfp=GFP_KERNEL_ACCOUNT,
                 kind=KERNEL, tgt=home, dun=k)
        s.delayed(slots + geo(kern_delay), op=Op.UNCHARGE, task=task, arg=k, kind=KERNEL,
                  tgt=home, dun=-k)
    elif typ in (_FILE, _RA):  # read(): page cache, left for reclaim to drop
        k = _units(rng, n, 1, 4) if typ == _FILE else _units(rng, n, 16, 32)
        s.inline(slots, 0, op=Op.CHARGE, task=task, arg=k, gfp=GFP_HIGHUSER_MOVABLE,
                 kind=FILE, tgt=home, dfile=k)
    elif typ == _DIRTY:  # buffered write(): new page cache, dirtied, written back later
        k = _units(rng, n, 1, 4)
        d1 = geo(wb_delay)
        d2 = geo(wb_delay / 4)
        s.inline(slots, 0, op=Op.CHARGE, task=task, arg=k, gfp=GFP_HIGHUSER_MOVABLE,
                 kind=FILE, tgt=home, dfile=k)
        s.inline(slots, 1, op=Op.SET_DIRTY, arg=k, memcg=home, tgt=home, dun=k)
        s.delayed(slots + d1, op=Op.START_WRITEBACK, arg=k, memcg=home, tgt=home)
        s.delayed(slots + d1 + d2, op=Op.END_WRITEBACK, arg=k, memcg=home, tgt=home, dun=-k)
    elif typ == _JBD2:
        # a jbd2 handle (jbd2__journal_start: memalloc_nofs_save, and the patch's
        # memalloc_account_force_save): write_begin page cache + a journal slab object,
        # the buffer dirtied; closed in reverse order.
        k = _units(rng, n, 1, 4)
        d1 = geo(wb_delay)
        d2 = geo(wb_delay / 4)
        one = np.ones(n, np.int64)
        s.inline(slots, 0, op=Op.ACCOUNT_FORCE_SAVE, task=task)
        s.inline(slots, 1, op=Op.FLAGS_SAVE, task=task, arg=PF_MEMALLOC_NOFS)
        s.inline(slots, 2, op=Op.CHARGE, task=task, arg=k, gfp=GFP_NOFS, kind=FILE, tgt=home,
                 dfile=k)
        s.inline(slots, 3, op=Op.SET_DIRTY, arg=k, memcg=home, tgt=home, dun=k)
        s.inline(slots, 4, op=Op.CHARGE, task=task, arg=one, gfp=GFP_KERNEL_ACCOUNT,
                 kind=KERNEL, tgt=home, dun=one)
        s.inline(slots, 5, op=Op.FLAGS_RESTORE, task=task)  # NOFS
        s.inline(slots, 6, op=Op.FLAGS_RESTORE, task=task)  # ACCOUNTFORCE
        s.delayed(slots + d1, op=Op.START_WRITEBACK, arg=k, memcg=home, tgt=home)
        s.delayed(slots + d1 + d2, op=Op.END_WRITEBACK, arg=k, memcg=home, tgt=home, dun=-k)
        s.delayed(slots + geo(kern_delay), op=Op.UNCHARGE, task=task, arg=one, kind=KERNEL,
                  tgt=home, dun=-one)
    elif typ == _NOFS:  # a filesystem path under memalloc_nofs_save(): slab allocations
        k = _units(rng, n, 1, 2)
        s.inline(slots, 0, op=Op.FLAGS_SAVE, task=task, arg=PF_MEMALLOC_NOFS)
        s.inline(slots, 1, op=Op.CHARGE, task=task, arg=k, gfp=GFP_KERNEL_ACCOUNT,
                 kind=KERNEL, tgt=home, dun=k)
        s.inline(slots, 2, op=Op.FLAGS_RESTORE, task=task)
        s.delayed(slots + geo(kern_delay), op=Op.UNCHARGE, task=task, arg=k, kind=KERNEL,
                  tgt=home, dun=-k)
    elif typ == _RTU:
        s.inline(slots, 0, op=Op.RETURN_TO_USER, task=task)
    elif typ == _REMOTE:
        # a kworker reading into some cgroup's page cache via set_active_memcg()
        k = _units(rng, n, 1, 4)
        m = remote_target
        s.inline(slots, 0, op=Op.SET_ACTIVE_MEMCG, task=task, memcg=m)
        s.inline(slots, 1, op=Op.CHARGE, task=task, arg=k, gfp=GFP_KERNEL, kind=FILE, tgt=m,
                 dfile=k)
        s.inline(slots, 2, op=Op.SET_ACTIVE_MEMCG, task=task, memcg=-1)
    else:  # pragma: no cover
        raise AssertionError(typ)


# events per unit type (inline + delayed), for sizing the slot count
_EVENTS_PER_TYPE = np.array([2, 2, 1, 1, 4, 10, 4, 1, 3], dtype=np.float64)


def _random_units(s: _Stream, rng, slots: np.ndarray, weights: np.ndarray,
                  profile_of_task: np.ndarray, type_probs: np.ndarray, home: np.ndarray,
                  *, open_anon: float, open_kern: float, wb_delay: float,
                  density: float = 1.0, remote_targets: dict | None = None) -> None:
    """One unit at each of ``slots``: task drawn by ``weights``, unit type by the task's
    profile row of ``type_probs``.  The uncharge delay of each task is chosen so that it
    holds about ``open_anon`` (``open_kern``) not-yet-freed anon (kernel) units at a time,
    whatever its activity rate (``density``: fraction of all slots that are these units)."""
    slots = np.asarray(slots, dtype=np.int64)
    n_slots = slots.shape[0]
    p = weights / weights.sum()
    task = rng.choice(len(p), size=n_slots, p=p).astype(np.int32)
    u = rng.random(n_slots)
    prof = profile_of_task[task]
    cum = np.cumsum(type_probs, axis=1)
    cum[:, -1] = 1.0 + 1e-12
    typ = np.empty(n_slots, np.int64)
    for pr in range(type_probs.shape[0]):
        sel = prof == pr
        typ[sel] = np.searchsorted(cum[pr], u[sel], side="right")
    rate = p * density  # units of each task per slot
    pa = type_probs[profile_of_task, _ANON]
    pk = type_probs[profile_of_task, _KERN] + type_probs[profile_of_task, _JBD2] \
        + type_probs[profile_of_task, _NOFS]
    with np.errstate(divide="ignore"):
        anon_delay = np.where(pa > 0, open_anon / np.maximum(rate * pa, 1e-12), 1.0)
        kern_delay = np.where(pk > 0, open_kern / np.maximum(rate * pk, 1e-12), 1.0)
    for t in range(len(_TYPE_NAMES)):
        sel = np.flatnonzero(typ == t)
        if not sel.size:
            continue
        tk = task[sel]
        remote = None
        if t == _REMOTE:
            remote = np.zeros(sel.size, np.int32)
            for kt, cands in (remote_targets or {}).items():
                m = tk == kt
                remote[m] = np.asarray(cands, np.int32)[rng.integers(0, len(cands), m.sum())]
        _emit(s, t, slots[sel], tk, home[tk], rng, anon_delay=anon_delay[tk],
              kern_delay=kern_delay[tk], wb_delay=wb_delay, remote_target=remote)


def _slots_for(n_events: int, weights, profile_of_task, type_probs, fixed: int = 0) -> int:
    p = weights / weights.sum()
    per_profile = type_probs @ _EVENTS_PER_TYPE
    mean = float(p @ per_profile[profile_of_task])
    return int((n_events - fixed) / mean * 1.04) + 64


def _check_n(n_events) -> int:
    if isinstance(n_events, bool) or not isinstance(n_events, (int, np.integer)):
        raise TypeError(f"n_events must be an int, not {type(n_events).__name__}")
    if n_events < 1:
        raise ValueError(f"n_events = {n_events} must be at least 1")
    if n_events > MAX_EVENTS:
        from .errors import LimitError

        raise LimitError(f"n_events = {n_events} is more than MAX_EVENTS = {MAX_EVENTS:,} "
                         f"(memcg_emu.workloads; the event array alone would take "
                         f"{n_events * 32 / 2**30:,.0f} GiB)")
    return int(n_events)


# =============================================================================================
# mixed: the realistic default
# =============================================================================================
# unit-type probabilities per profile; columns as _TYPE_NAMES
_MIXED_PROBS = np.array([
    # anon kern  file  ra    dirty jbd2  nofs  rtu   remote
    [0.22, 0.10, 0.28, 0.05, 0.10, 0.07, 0.04, 0.14, 0.00],  # io: page-cache heavy
    [0.44, 0.20, 0.08, 0.00, 0.03, 0.02, 0.03, 0.20, 0.00],  # svc: anon/slab churn
    [0.35, 0.20, 0.10, 0.00, 0.05, 0.02, 0.03, 0.25, 0.00],  # sys daemons
    [0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 1.00],  # kworker
])
_IO, _SVC, _SYS, _KTHREAD = range(4)
_SYS_NAMES = ("journald", "sshd", "cron", "udevd", "dbus", "logrotate")


def _mixed_model(nr_cpus, n_jobs, leaves_per_job, procs_per_leaf, n_sys, pressure, wb_delay):
    """The mixed stream's tree, tasks, unit maker and limit rule (shared by :func:`mixed`
    and :func:`mixed_chunks`)."""
    # ---- tree ------------------------------------------------------------------------------
    paths = ["/"]
    kind_of: dict[str, str] = {}
    leaves: list[tuple[str, int]] = []  # (path, profile)
    if n_sys:
        paths.append("/sys")
        for i in range(n_sys):
            p = f"/sys/{_SYS_NAMES[i]}"
            paths.append(p)
            leaves.append((p, _SYS))
    paths.append("/jobs")
    for j in range(n_jobs):
        jp = f"/jobs/job{j}"
        paths.append(jp)
        kind_of[jp] = ("io-job", "io-leaf", "service")[j % 3]
        for m in range(leaves_per_job):
            p = f"{jp}/task{m}"
            paths.append(p)
            leaves.append((p, _SVC if j % 3 == 2 else _IO))
    index = {p: i for i, p in enumerate(paths)}
    parent = _parents(paths)
    n_cg = len(paths)

    # ---- tasks -----------------------------------------------------------------------------
    tasks: list[TaskSpec] = []
    profile: list[int] = []
    weight: list[float] = []
    leaf_cpu: dict[str, int] = {}
    for li, (p, prof) in enumerate(leaves):
        cpu = li % nr_cpus
        leaf_cpu[p] = cpu
        for _ in range(2 if prof == _SYS else procs_per_leaf):
            tasks.append(TaskSpec(p, cpu, False))
            profile.append(prof)
            weight.append(3.0 if prof == _SVC else 1.0)
    n_user = len(tasks)
    user_w = float(sum(weight))
    io_leaves = [p for p, prof in leaves if prof == _IO]
    remote_targets: dict[int, list[int]] = {}
    for c in range(nr_cpus):
        tasks.append(TaskSpec("/", c, True))
        profile.append(_KTHREAD)
        weight.append(0.02 * user_w / 0.98 / nr_cpus)
        own = [index[p] for p in io_leaves if leaf_cpu[p] == c] or \
              [index[p] for p in io_leaves] or [index[leaves[0][0]]]
        remote_targets[len(tasks) - 1] = own
    prof_arr = np.array(profile, np.int64)
    w_arr = np.array(weight, np.float64)
    home = np.array([0 if t.kthread else index[t.cgroup] for t in tasks], np.int32)
    user_pids = np.arange(n_user, dtype=np.int32)

    # ---- stream ----------------------------------------------------------------------------
    def make(rng, n_slots, working_set=True):
        s = _Stream()
        n_ws = min(n_user, n_slots) if working_set else 0
        ws = _units(rng, n_ws, 16, 64)  # each user task faults in its working set first
        s.inline(np.arange(n_ws), 0, op=Op.CHARGE, task=user_pids[:n_ws], arg=ws,
                 gfp=GFP_HIGHUSER_MOVABLE, kind=ANON, tgt=home[:n_ws], dun=ws)
        _random_units(s, rng, np.arange(n_ws, n_slots), w_arr, prof_arr, _MIXED_PROBS,
                      home, open_anon=6.0, open_kern=3.0, wb_delay=wb_delay,
                      remote_targets=remote_targets)
        return s

    # (cpu, cgroup) pairs whose per-CPU stock can hold pages of a subtree
    stock_pairs = {(leaf_cpu[p], index[p]) for p, _ in leaves}
    stock_pairs |= {(tasks[kt].cpu, m) for kt, ms in remote_targets.items() for m in ms}
    pairs = _subtree_sum(np.bincount([m for _, m in stock_pairs], minlength=n_cg), parent)

    def limits_for(unrecl, file_in):
        limits: dict[str, dict] = {p: {} for p in paths[1:]}
        jobs_total = 0
        for j in range(n_jobs):
            jp = f"/jobs/job{j}"
            c = index[jp]
            lim = _limit(unrecl[c], pairs[c], file_in[c], pressure)
            if kind_of[jp] == "io-job":
                limits[jp]["max"] = lim
                first = index[f"{jp}/task0"]
                share = file_in[first] / pressure / 2
                limits[f"{jp}/task0"]["low"] = _round_up(unrecl[first] + share, _PAGES_PER_MIB)
                jobs_total += lim
            elif kind_of[jp] == "io-leaf":
                sub = 0
                for m in range(leaves_per_job):
                    lp = f"{jp}/task{m}"
                    lc = index[lp]
                    limits[lp]["max"] = _limit(unrecl[lc], pairs[lc], file_in[lc], pressure)
                    sub += limits[lp]["max"]
                jobs_total += sub
            else:
                limits[jp]["high"] = lim
                jobs_total += lim + _limit(unrecl[c], pairs[c], 0, pressure)
        limits["/jobs"]["max"] = _round_up(jobs_total * 1.5, _PAGES_PER_MIB)
        return tuple(CgroupSpec(p, **limits[p]) for p in paths[1:])

    return dict(paths=paths, parent=parent, n_cg=n_cg, tasks=tasks, make=make,
                w_arr=w_arr, prof_arr=prof_arr, n_user=n_user, user_pids=user_pids,
                limits_for=limits_for, home=home)



def _check_mixed_shape(nr_cpus, n_jobs, leaves_per_job, procs_per_leaf, n_sys,
                       pressure) -> None:
    """The machine shape of the mixed stream (shared by mixed and mixed_chunks)."""
    for name, v, lo in (("nr_cpus", nr_cpus, 1), ("n_jobs", n_jobs, 1),
                        ("leaves_per_job", leaves_per_job, 1),
                        ("procs_per_leaf", procs_per_leaf, 1), ("n_sys", n_sys, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name} = {v!r} must be an int >= {lo}")
    if n_sys > len(_SYS_NAMES):
        raise ValueError(f"n_sys = {n_sys} must be at most {len(_SYS_NAMES)}")
    if not pressure > 1.0:
        raise ValueError(f"pressure = {pressure!r} must be > 1")

def mixed(n_events: int = 2_000_000, seed: int = 0, *, nr_cpus: int = 4, n_jobs: int = 6,
          leaves_per_job: int = 3, procs_per_leaf: int = 4, n_sys: int = 3,
          pressure: float = 4.0, wb_delay: float = 4000.0) -> Workload:
    """The realistic mixed stream (docs/design.md §6): tens of cgroups, three levels, several CPUs,
    mostly per-CPU stock hits, regular reclaim against ``memory.max``.

    Shape (defaults in brackets):

    * **Tree** (30 cgroups, 3 levels): ``/sys`` with ``n_sys`` [3] daemon leaves
      (``/sys/journald`` ...; no limits); ``/jobs`` (``memory.max`` = 1.5x the sum of its
      jobs' limits, a guard that is never reached) with ``n_jobs`` [6] jobs
      ``/jobs/jobN``, each with ``leaves_per_job`` [3] leaves ``/jobs/jobN/taskM``.  Jobs come
      in three kinds, by ``N % 3``:

      - 0, *io, limited at the job*: ``memory.max`` on ``/jobs/jobN`` (pressure on a mid-level
        cgroup), ``memory.low`` on its first leaf (a protected sibling);
      - 1, *io, limited per leaf*: ``memory.max`` on each leaf;
      - 2, *service*: ``memory.high`` on ``/jobs/jobN`` only (throttling and high reclaim,
        never OOM).
    * **Tasks** (82): ``procs_per_leaf`` [4] per job leaf, 2 per ``/sys`` leaf, and one
      kworker (kernel thread) per CPU.  Each leaf is pinned to CPU ``leaf_number % nr_cpus``
      (so with 4 CPUs every CPU serves at most 6 leaves: fewer than the 7 stock slots); a
      kworker serves the io leaves of its own CPU.
    * **Activity**: a service task is 3x as active as an io or daemon task; kworkers run 2%
      of the units.  Unit mix per profile (io / service / daemon): anon fault 1-4 pages
      (22/44/35%), slab object 1-2 pages (10/20/20%), page-cache read 1-4 pages (28/8/10%),
      readahead 16-32 pages (5/0/0%), buffered write dirtying 1-4 pages (10/3/5%), a jbd2
      handle (7/2/2%), a NOFS slab path (4/3/3%), return to user (14/20/25%).  Kworker units
      are ``SET_ACTIVE_MEMCG``, a 1-4 page page-cache charge, ``SET_ACTIVE_MEMCG(-1)``.
    * **A jbd2 handle** is ``ACCOUNT_FORCE_SAVE, FLAGS_SAVE(PF_MEMALLOC_NOFS), CHARGE file
      (GFP_NOFS), SET_DIRTY, CHARGE kernel 1 page (GFP_KERNEL_ACCOUNT), FLAGS_RESTORE,
      FLAGS_RESTORE`` (the patch's forced charges happen here under ``accountforce-v1``; the
      debt is paid at the task's next ``RETURN_TO_USER``).
    * **Freeing**: each anon/slab charge is freed by its task after a geometric delay chosen so
      that a task holds ~6 anon and ~3 slab charges at a time; dirty pages start writeback
      after ~``wb_delay`` units and finish ~``wb_delay/4`` later.  Each user task first
      faults in a 16-64 page working set that it keeps.
    * **Limits** (pages, rounded up to MiB) are derived from the stream (module docstring):
      ``unreclaimable peak + stock room + page-cache inflow / pressure``; the memory.low of a
      protected leaf is half its share of its job's limit.

    Parameters
    ----------
    n_events : int
        Exact length of the event array.
    seed : int
        Everything is a function of (arguments, seed).
    nr_cpus, n_jobs, leaves_per_job, procs_per_leaf, n_sys : int
        Shape of the machine and the tree.
    pressure : float
        Page-cache inflow over the page-cache room of each limit (> 1: the limits are reached
        after about 1/pressure of the stream).
    wb_delay : float
        Mean number of units between dirtying and writeback start.

    Returns
    -------
    Workload

    Examples
    --------
    >>> w = mixed(20_000, seed=1)
    >>> emu = w.build(policy="accountforce-v1", backend="python")
    >>> res = emu.replay(w.events)
    """
    n_events = _check_n(n_events)
    _check_mixed_shape(nr_cpus, n_jobs, leaves_per_job, procs_per_leaf, n_sys, pressure)
    params = dict(n_events=n_events, seed=int(seed), nr_cpus=int(nr_cpus), n_jobs=int(n_jobs),
                  leaves_per_job=int(leaves_per_job), procs_per_leaf=int(procs_per_leaf),
                  n_sys=int(n_sys), pressure=float(pressure), wb_delay=float(wb_delay))

    m = _mixed_model(int(nr_cpus), int(n_jobs), int(leaves_per_job), int(procs_per_leaf),
                     int(n_sys), float(pressure), float(wb_delay))
    n_user, user_pids, make, parent, n_cg = (m["n_user"], m["user_pids"], m["make"],
                                             m["parent"], m["n_cg"])
    w_arr, prof_arr = m["w_arr"], m["prof_arr"]

    guess = _slots_for(n_events, w_arr, prof_arr, _MIXED_PROBS, fixed=n_user) + n_user
    events, book = _generate(make, n_events, guess, user_pids, int(seed))

    # ---- limits from the stream --------------------------------------------------------------
    unrecl = _peak_unreclaimable(book, n_cg, parent)
    file_in = _subtree_sum(np.bincount(book["tgt"][book["tgt"] >= 0],
                                       weights=book["dfile"][book["tgt"] >= 0],
                                       minlength=n_cg).astype(np.int64), parent)
    cgroups = m["limits_for"](unrecl, file_in)
    return Workload("mixed", cgroups, tuple(m["tasks"]), events, int(nr_cpus), params)


# =============================================================================================
# mixed, chunk by chunk: bounded memory at any length
# =============================================================================================
class ChunkedWorkload:
    """A workload whose events are produced chunk by chunk (:func:`mixed_chunks`): the setup
    (``cgroups``, ``tasks``, ``nr_cpus``, ``build()``) as a :class:`Workload`'s, and the
    events from :meth:`chunks` (a generator of ``EVENT_DTYPE`` arrays) or :meth:`save`
    (a ``.npy`` file written chunk by chunk).  Memory is bounded by the chunk size, whatever
    ``n_events`` is."""

    def __init__(self, name, cgroups, tasks, nr_cpus, params, chunk_fn, n_events):
        self.name = name
        self.cgroups = cgroups
        self.tasks = tasks
        self.nr_cpus = nr_cpus
        self.params = params
        self.n_events = n_events
        self._chunk_fn = chunk_fn

    def build(self, policy: str = "baseline", backend: str | None = None, **kwargs):
        """A fresh Emulator with this workload's setup (see :meth:`Workload.build`)."""
        return Workload(self.name, self.cgroups, self.tasks, np.zeros(0, EVENT_DTYPE),
                        self.nr_cpus, self.params).build(policy, backend, **kwargs)

    def chunks(self, reuse: bool = False):
        """The events, chunk by chunk (``n_events`` in all).  Each chunk is a new array,
        or with ``reuse=True`` possibly a view of one buffer that the next chunk overwrites
        (for consumers done with a chunk before asking for the next, like ``replay`` and
        :meth:`save`: no fresh memory to fault in per chunk)."""
        return self._chunk_fn(reuse)

    def save(self, path) -> None:
        """Write the events to ``path`` as a ``.npy`` file, one chunk at a time (memory:
        one chunk); ``np.load(path, mmap_mode="r")`` reads it back without loading it."""
        header = {"descr": np.lib.format.dtype_to_descr(EVENT_DTYPE), "fortran_order": False,
                  "shape": (self.n_events,)}
        with open(path, "wb") as f:
            np.lib.format.write_array_header_2_0(f, header)
            for c in self.chunks(reuse=True):  # sequential writes: no mapping to fault in
                f.write(memoryview(np.ascontiguousarray(c).view(np.uint8)))


def mixed_chunks(n_events: int = 10_000_000, seed: int = 0, *, chunk_events: int = 1 << 18,
                 pool: int = 4, nr_cpus: int = 4, n_jobs: int = 6, leaves_per_job: int = 3,
                 procs_per_leaf: int = 4, n_sys: int = 3, pressure: float = 4.0,
                 wb_delay: float = 4000.0) -> ChunkedWorkload:
    """The mixed stream of :func:`mixed` (same tree, tasks, unit mix), produced chunk by chunk
    in bounded memory: for streams too long to hold (10^8 events), or to replay as they are
    made (``emu.replay(w.chunks(), per_event=False)``).

    How the stream stays valid and the limits stay meaningful without seeing the whole
    stream (:func:`mixed` derives its limits from all of it):

    * every chunk is *closed*: it is laid out in full (no cut), so each anon/slab charge's
      uncharge and each dirty page's writeback start and end land in the same chunk, and every
      flag scope is inside one unit.  Only the working set faulted in by chunk 0 stays
      charged across chunks;
    * the limits come from chunk 0 with headroom: the unreclaimable part of each limit is the
      working set plus twice chunk 0's own peak; every later chunk's unreclaimable peak
      (exact, from its bookkeeping, on top of the working set) is checked against that
      budget before the chunk is handed out, and a chunk over budget is drawn again
      (attempt number in its seed sequence; deterministic).  So reclaim can always make
      room and the OOM killer never runs, as in :func:`mixed`;
    * the page-cache part of each limit is chunk 0's page-cache inflow divided by
      ``pressure``: the limits are reached after about ``1/pressure`` of the first chunk
      and reclaim keeps usage at ``memory.max`` from then on;
    * ``pool`` > 0: chunks 1 to ``pool`` are drawn as above and kept; every later chunk is
      one of them, picked at random, with its tasks relabelled by a random
      permutation within each class of interchangeable tasks (same cgroup, CPU, profile and
      kind) and its times shifted.  A relabelled closed chunk is exactly as valid as the
      original and changes every cgroup's usage exactly as it did (each task frees what it
      charged), so the limits hold without a check; producing it costs a copy, not a draw
      (memory: ``pool`` chunks).  ``pool=0`` draws every chunk afresh (slower: numpy
      generation runs at a few M events/s);
    * the last chunk is cut at a unit boundary and padded with ``RETURN_TO_USER`` events to
      make exactly ``n_events`` (what is cut is only frees at the very end).

    Chunks hold about ``chunk_events`` events each (units are never split, so sizes vary a
    little); event times continue across chunks.  The stream is a function of
    (arguments, seed, chunk_events); it is not the same stream as ``mixed(n_events, seed)``
    (whose limits see the whole stream), which stays as it was.

    Examples
    --------
    >>> w = mixed_chunks(200_000, seed=1, chunk_events=50_000)
    >>> emu = w.build(backend="python")
    >>> sum(c.shape[0] for c in w.chunks())
    200000
    """
    n_events = _check_n(n_events)
    if isinstance(chunk_events, bool) or not isinstance(chunk_events, (int, np.integer)) \
            or chunk_events < 10_000:
        raise ValueError(f"chunk_events = {chunk_events!r} must be an int >= 10000")
    _check_mixed_shape(nr_cpus, n_jobs, leaves_per_job, procs_per_leaf, n_sys, pressure)
    if isinstance(pool, bool) or not isinstance(pool, (int, np.integer)) or not 0 <= pool <= 64:
        raise ValueError(f"pool = {pool!r} must be an int in [0, 64]")
    chunk_events = int(chunk_events)
    params = dict(n_events=n_events, seed=int(seed), chunk_events=chunk_events, pool=int(pool),
                  nr_cpus=int(nr_cpus), n_jobs=int(n_jobs), leaves_per_job=int(leaves_per_job),
                  procs_per_leaf=int(procs_per_leaf), n_sys=int(n_sys),
                  pressure=float(pressure), wb_delay=float(wb_delay))
    m = _mixed_model(int(nr_cpus), int(n_jobs), int(leaves_per_job), int(procs_per_leaf),
                     int(n_sys), float(pressure), float(wb_delay))
    n_user, user_pids, make, parent, n_cg = (m["n_user"], m["user_pids"], m["make"],
                                             m["parent"], m["n_cg"])
    per_slot = 1.04e6 / (_slots_for(1_000_000, m["w_arr"], m["prof_arr"], _MIXED_PROBS) - 64)

    def draw(k, attempt):
        rng = np.random.default_rng([int(seed), k, attempt, 1 << 30])
        n_slots = int(chunk_events / per_slot) if k else n_user + int(
            (chunk_events - n_user) / per_slot)
        s = make(rng, max(n_slots, 16), working_set=(k == 0))
        total = sum(a.shape[0] for a in s._slot)
        ev, book = s.assemble(total, user_pids, rng)
        return ev, book, rng

    def own_peaks(book):
        return _peak_unreclaimable(book, n_cg, parent)

    ev0, book0, _ = draw(0, 0)
    sel = book0["tgt"] >= 0
    carry_own = np.bincount(book0["tgt"][sel], weights=book0["dun"][sel],
                            minlength=n_cg).astype(np.int64)  # what chunk 0 leaves charged
    carry = _subtree_sum(carry_own, parent)
    peak0 = own_peaks(book0)
    budget = carry + 2 * np.maximum(peak0 - carry, 0) + 2 * MEMCG_CHARGE_BATCH
    file_in = _subtree_sum(np.bincount(book0["tgt"][sel], weights=book0["dfile"][sel],
                                       minlength=n_cg).astype(np.int64), parent)
    cgroups = m["limits_for"](np.maximum(budget, peak0), file_in)

    # classes of interchangeable tasks: same cgroup, CPU, profile, kind
    classes: dict[tuple, list[int]] = {}
    for pid, (t, prof) in enumerate(zip(m["tasks"], m["prof_arr"])):
        classes.setdefault((t.cgroup, t.cpu, t.kthread, int(prof)), []).append(pid)
    n_tasks = len(m["tasks"])

    def relabel(rng):
        """pid + 1 -> new pid (index 0: task -1 stays -1)."""
        new = np.empty(n_tasks + 1, np.int32)
        new[0] = -1
        for pids in classes.values():
            new[np.asarray(pids) + 1] = rng.permutation(pids)
        return new

    def chunk_fn(reuse):
        pos = 0
        t_next = 0
        k = 0
        kept: list[tuple[np.ndarray, np.ndarray]] = []
        buf = None
        while pos < n_events:
            if pool and k > pool:
                rng = np.random.default_rng([int(seed), k, 1 << 29])
                base, tidx = kept[int(rng.integers(pool))]
                if reuse:
                    if buf is None:
                        buf = np.empty(max(b.shape[0] for b, _ in kept), EVENT_DTYPE)
                    ev = buf[:base.shape[0]]
                    np.copyto(ev.view(np.int64), base.view(np.int64))
                else:
                    ev = _copy_events(base)
                ev["task"] = np.take(relabel(rng), tidx)
            elif k == 0:
                ev = _copy_events(ev0)
            else:
                for attempt in range(16):
                    ev, book, _ = draw(k, attempt)
                    book["tgt"] = np.concatenate([np.arange(n_cg, dtype=book["tgt"].dtype),
                                                  book["tgt"]])
                    book["dun"] = np.concatenate([carry_own, book["dun"]])
                    if (own_peaks(book) <= budget).all():
                        break
                else:  # pragma: no cover - a 2x budget is never exceeded 16 times in a row
                    raise RuntimeError(f"mixed_chunks: chunk {k} exceeds the budget")
            if 1 <= k <= pool and pos + ev.shape[0] < n_events:
                # times from 0, as drawn (chunk 0, with the working set, is never reused)
                kept.append((_copy_events(ev), (ev["task"] + 1).astype(np.intp)))
            ev["time"] += t_next
            if pos + ev.shape[0] >= n_events:  # the last chunk: cut at a unit boundary, pad
                ev = _cut_and_pad(ev, n_events - pos, user_pids,
                                  np.random.default_rng([int(seed), k, 1 << 31]))
            t_next = int(ev["time"][-1]) + 1000
            pos += ev.shape[0]
            k += 1
            yield ev

    return ChunkedWorkload("mixed", cgroups, tuple(m["tasks"]), int(nr_cpus), params,
                           chunk_fn, n_events)


def _copy_events(ev: np.ndarray) -> np.ndarray:
    """A copy of a contiguous event array as raw 8-byte words (numpy copies structured
    arrays field by field, several times slower)."""
    return ev.view(np.int64).copy().view(EVENT_DTYPE)


def _cut_and_pad(ev: np.ndarray, n: int, pad_tasks: np.ndarray, rng) -> np.ndarray:
    """The first ``n`` events of a closed chunk, cut before the last unit that does not fit
    whole (a unit starts with an event of a task that differs from its predecessor's or
    after a RETURN_TO_USER) and padded with RETURN_TO_USER events of random tasks.  The cut
    may drop frees (uncharges, writeback ends) scheduled after it: harmless at the end."""
    out = ev[:n].copy()
    # units are contiguous runs of one task's events; scopes and kworker pairs never span
    # two tasks, so a task change is always a safe place to cut
    change = np.flatnonzero(out["task"][1:] != out["task"][:-1]) + 1
    cut = int(change[-1]) if change.size and n < ev.shape[0] else n
    if cut < n:
        t = out["time"][cut - 1] if cut else out["time"][0]
        out[cut:] = np.zeros(n - cut, EVENT_DTYPE)
        out["op"][cut:] = Op.RETURN_TO_USER
        out["task"][cut:] = pad_tasks[rng.integers(0, len(pad_tasks), n - cut)]
        out["memcg"][cut:] = -1
        out["time"][cut:] = t
    return out


# =============================================================================================
# simple shapes
# =============================================================================================
def steady_growth(n_events: int = 100_000, seed: int = 0, *, limit_pages: int | None = None,
                  rtu_every: int = 16) -> Workload:
    """One cgroup ``/app`` with one task (CPU 0) reading files: its usage grows linearly with
    page cache (1-4 pages per charge, ``GFP_HIGHUSER_MOVABLE``) until ``memory.max``, then
    reclaim drops clean cache so usage stays at the limit.  One event in ``rtu_every`` is a
    ``RETURN_TO_USER``.

    ``limit_pages`` defaults to a quarter of the total page cache charged (rounded up to MiB),
    so the first quarter of the stream is growth and the rest is steady state at the limit.
    """
    n_events = _check_n(n_events)
    if rtu_every < 2:
        raise ValueError(f"rtu_every = {rtu_every} must be at least 2")

    def make(rng, n_slots):
        s = _Stream()
        slots = np.arange(n_slots, dtype=np.int64)
        rtu = rng.random(n_slots) < 1.0 / rtu_every
        for typ, sel in ((_FILE, slots[~rtu]), (_RTU, slots[rtu])):
            _emit(s, typ, sel, np.zeros(sel.shape[0], np.int32), np.ones(sel.shape[0], np.int32),
                  rng, anon_delay=1.0, kern_delay=1.0, wb_delay=1.0)
        return s

    events, book = _generate(make, n_events, n_events + 16, np.zeros(1, np.int32), int(seed))
    if limit_pages is None:
        total = int(book["dfile"].sum())
        limit_pages = _round_up(max(total / 4, 4 * MEMCG_CHARGE_BATCH), _PAGES_PER_MIB // 4)
    elif limit_pages < 1:
        raise ValueError(f"limit_pages = {limit_pages} must be positive")
    params = dict(n_events=n_events, seed=int(seed), limit_pages=int(limit_pages),
                  rtu_every=int(rtu_every))
    return Workload("steady_growth", (CgroupSpec("/app", max=int(limit_pages)),),
                    (TaskSpec("/app", 0, False),), events, 1, params)


_BURST_PROBS = np.array([
    # anon kern  file  ra    dirty jbd2  nofs  rtu   remote
    [0.40, 0.15, 0.25, 0.00, 0.00, 0.00, 0.00, 0.20, 0.00],
])


def bursts(n_events: int = 100_000, seed: int = 0, *, n_cgroups: int = 4, nr_cpus: int = 2,
           burst_every: int = 2000, burst_pages: int = 1024, pressure: float = 3.0) -> Workload:
    """Quiet background with periodic allocation bursts.

    ``n_cgroups`` [4] leaves ``/burst/gN`` (2 tasks each, CPU ``N % nr_cpus``), each with
    ``memory.max``; the even ones also with ``memory.high`` = 3/4 of it.  Background units:
    anon faults (40%), slab (15%), page-cache reads (25%), return to user (20%), freed as in
    :func:`mixed`.  About
    every ``burst_every`` events one random task runs a burst: it faults in ``burst_pages``
    anon pages and reads as much page cache, in 32-page charges, returns to user, and frees
    the anon part ~``burst_every/4`` units later.  In the even cgroups usage spikes above
    ``memory.high`` (high reclaim, throttling); in the odd ones it reaches ``memory.max``
    (page cache reclaimed in the charge path).  Limits are derived from the stream (as in
    :func:`mixed`) so the OOM killer never runs.
    """
    n_events = _check_n(n_events)
    if n_cgroups < 1 or burst_every < 64 or burst_pages < 32:
        raise ValueError("bursts: need n_cgroups >= 1, burst_every >= 64, burst_pages >= 32")
    chunks = int(burst_pages) // 32
    paths = ["/", "/burst"] + [f"/burst/g{i}" for i in range(n_cgroups)]
    parent = _parents(paths)
    tasks = tuple(TaskSpec(f"/burst/g{i}", i % nr_cpus, False)
                  for i in range(n_cgroups) for _ in range(2))
    home = np.array([2 + i for i in range(n_cgroups) for _ in range(2)], np.int32)
    n_t = len(tasks)
    w = np.ones(n_t)
    prof = np.zeros(n_t, np.int64)

    def make(rng, n_slots):
        s = _Stream()
        # a burst every burst_every events: about burst_every/2 background slots apart
        period = max(burst_every // 2, 8)
        is_burst = (np.arange(n_slots) % period) == period - 1
        bslots = np.flatnonzero(is_burst).astype(np.int64)
        qslots = np.flatnonzero(~is_burst).astype(np.int64)
        _random_units(s, rng, qslots, w, prof, _BURST_PROBS, home, open_anon=4.0,
                      open_kern=2.0, wb_delay=100.0, density=qslots.shape[0] / n_slots)
        # bursts
        nb = bslots.shape[0]
        bt = rng.integers(0, n_t, nb).astype(np.int32)
        bh = home[bt]
        hold = rng.geometric(1.0 / max(burst_every / 4, 1.0), nb)
        c32 = np.full(nb, 32, np.int64)
        for i in range(chunks):
            s.inline(bslots, 2 * i, op=Op.CHARGE, task=bt, arg=c32, gfp=GFP_HIGHUSER_MOVABLE,
                     kind=ANON, tgt=bh, dun=c32)
            s.inline(bslots, 2 * i + 1, op=Op.CHARGE, task=bt, arg=c32,
                     gfp=GFP_HIGHUSER_MOVABLE, kind=FILE, tgt=bh, dfile=c32)
            s.delayed(bslots + hold, op=Op.UNCHARGE, task=bt, arg=c32, kind=ANON, tgt=bh,
                      dun=-c32)
        s.inline(bslots, 2 * chunks, op=Op.RETURN_TO_USER, task=bt)
        return s

    mean_bg = float(_BURST_PROBS[0] @ _EVENTS_PER_TYPE)
    period = max(burst_every // 2, 8)
    per_period = (period - 1) * mean_bg + 3 * chunks + 1
    guess = int(n_events / per_period * period * 1.05) + 64
    events, book = _generate(make, n_events, guess, np.arange(n_t, dtype=np.int32), int(seed))
    n_cg = len(paths)
    unrecl = _peak_unreclaimable(book, n_cg, parent)
    file_in = _subtree_sum(np.bincount(book["tgt"][book["tgt"] >= 0],
                                       weights=book["dfile"][book["tgt"] >= 0],
                                       minlength=n_cg).astype(np.int64), parent)
    cgs = [CgroupSpec("/burst")]
    for i in range(n_cgroups):
        c = 2 + i
        mx = _limit(unrecl[c], 1, file_in[c], pressure, _PAGES_PER_MIB // 4)
        cgs.append(CgroupSpec(f"/burst/g{i}", max=mx, high=mx * 3 // 4 if i % 2 == 0 else None))
    params = dict(n_events=n_events, seed=int(seed), n_cgroups=int(n_cgroups),
                  nr_cpus=int(nr_cpus), burst_every=int(burst_every),
                  burst_pages=int(burst_pages), pressure=float(pressure))
    return Workload("bursts", tuple(cgs), tasks, events, int(nr_cpus), params)


_SMALL_PROBS = np.array([
    # anon kern  file  ra    dirty jbd2  nofs  rtu   remote
    [0.40, 0.15, 0.30, 0.00, 0.00, 0.00, 0.00, 0.15, 0.00],
])


def many_small_cgroups(n_events: int = 100_000, seed: int = 0, *, n_cgroups: int = 1000,
                       nr_cpus: int = 4, pressure: float = 3.0) -> Workload:
    """Many small pods: ``/pods`` with ``n_cgroups`` [1000] leaves ``/pods/podN``, one task
    each on a random CPU, every leaf with its own small ``memory.max`` (derived from the
    stream as in :func:`mixed`).  Activity is skewed (log-normal task weights: a few hot pods,
    a long tail); units: anon faults (40%), slab (15%), page-cache reads (30%), return to user
    (15%).  With far more cgroups per CPU than the 7 stock slots, most charges miss the
    per-CPU stock and evict a random slot: this stresses ``refill_stock``/``drain_stock``
    rather than the hit path.
    """
    n_events = _check_n(n_events)
    if n_cgroups < 1 or nr_cpus < 1:
        raise ValueError("many_small_cgroups: need n_cgroups >= 1 and nr_cpus >= 1")
    params = dict(n_events=n_events, seed=int(seed), n_cgroups=int(n_cgroups),
                  nr_cpus=int(nr_cpus), pressure=float(pressure))
    setup_rng = np.random.default_rng([seed, 1 << 20])
    cpus = setup_rng.integers(0, nr_cpus, n_cgroups)
    w = setup_rng.lognormal(0.0, 1.0, n_cgroups)
    paths = ["/", "/pods"] + [f"/pods/pod{i}" for i in range(n_cgroups)]
    parent = _parents(paths)
    tasks = tuple(TaskSpec(f"/pods/pod{i}", int(cpus[i]), False) for i in range(n_cgroups))
    home = np.arange(2, 2 + n_cgroups, dtype=np.int32)
    prof = np.zeros(n_cgroups, np.int64)

    def make(rng, n_slots):
        s = _Stream()
        _random_units(s, rng, np.arange(n_slots), w, prof, _SMALL_PROBS, home,
                      open_anon=4.0, open_kern=2.0, wb_delay=100.0)
        return s

    guess = _slots_for(n_events, w, prof, _SMALL_PROBS)
    events, book = _generate(make, n_events, guess, np.arange(n_cgroups, dtype=np.int32),
                             int(seed))
    n_cg = len(paths)
    unrecl = _peak_unreclaimable(book, n_cg, parent)
    file_in = np.bincount(book["tgt"][book["tgt"] >= 0], weights=book["dfile"][book["tgt"] >= 0],
                          minlength=n_cg).astype(np.int64)
    cgs = [CgroupSpec("/pods")]
    for i in range(n_cgroups):
        c = 2 + i
        cgs.append(CgroupSpec(f"/pods/pod{i}",
                              max=_limit(unrecl[c], 1, file_in[c], pressure, 64)))
    return Workload("many_small_cgroups", tuple(cgs), tasks, events, int(nr_cpus), params)


#: The most events a generator makes (32 GB of events).
MAX_EVENTS = 1_000_000_000


def _name_calls() -> None:
    from ._api import name_public_calls, named

    name_public_calls(Workload)
    for fn in (mixed, mixed_chunks, steady_growth, bursts, many_small_cgroups):
        globals()[fn.__name__] = named(f"memcg_emu.workloads.{fn.__name__}")(fn)


_name_calls()

GENERATORS = {
    "mixed": mixed,
    "steady_growth": steady_growth,
    "bursts": bursts,
    "many_small_cgroups": many_small_cgroups,
}
