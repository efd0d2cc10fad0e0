"""Pure-Python reference engine: the oracle the Cython core is tested against.

Written for reading, not speed: one method per kernel step, kernel names, kernel branch order,
arithmetic on Python ``int`` (values are read with ``int(arr[i])``), with explicit 64-bit
wrapping only where the kernel computes in ``unsigned long``/``u64``.  Every section points to
``docs/model.md``.  ``_core.pyx`` mirrors this file function by function.

"current" is the task index ``t`` passed to each path; ``t = -1`` means "a context with no
task of interest" (a cgroupfs writer outside the emulated tasks).
"""
from __future__ import annotations

from ._constants import (
    __GFP_DIRECT_RECLAIM as _GFP_DIRECT_RECLAIM,
    __GFP_FS as _GFP_FS,
    __GFP_HIGH as _GFP_HIGH,
    __GFP_IO as _GFP_IO,
    __GFP_MOVABLE as _GFP_MOVABLE,
    __GFP_NOFAIL as _GFP_NOFAIL,
    __GFP_NORETRY as _GFP_NORETRY,
    __GFP_RECLAIM as _GFP_RECLAIM,
    __GFP_RETRY_MAYFAIL as _GFP_RETRY_MAYFAIL,
    DEF_PRIORITY,
    EMU_LIVELOCK,
    ENOMEM,
    EAGAIN,
    GFP_KERNEL,
    HZ,
    LONG_MIN,
    MAX_RECLAIM_RETRIES,
    MEMCG_CHARGE_BATCH,
    MEMCG_DELAY_PRECISION_SHIFT,
    MEMCG_DELAY_SCALING_SHIFT,
    MEMCG_HIGH,
    MEMCG_LOW,
    MEMCG_MAX,
    MEMCG_MAX_HIGH_DELAY_JIFFIES,
    MEMCG_OOM,
    MEMCG_OOM_GROUP_KILL,
    MEMCG_OOM_KILL,
    MEMCG_SWAP_HIGH,
    NR_MEMCG_STOCK,
    OOM_SCORE_ADJ_MIN,
    OUT_DEFERRED,
    OUT_FORCED,
    OUT_LIVELOCK,
    OUT_OOM,
    OUT_RECLAIMED,
    OUT_STOCK_HIT,
    OUT_THROTTLED,
    PAGE_ALLOC_COSTLY_ORDER,
    PF_EXITING,
    PF_KTHREAD,
    PF_MEMALLOC,
    PF_MEMALLOC_ACCOUNTFORCE,
    PF_MEMALLOC_NOFS,
    PF_MEMALLOC_NOIO,
    PF_MEMALLOC_PIN,
    SWAP_CLUSTER_MAX,
    AF_NOFAIL,
    AF_OFF,
    AF_V1,
    NR_KNOBS,
    Cfg,
    Knob,
    Label,
    Site,
    Stat,
    TaskState,
)
from ._state import MAX_SCOPE_DEPTH, MemcgState
from .events import (
    ERR_INVALID,
    ERR_NO_SCOPE,
    ERR_NOT_BLOCKED,
    ERR_POOL_SHORT,
    ERR_SCOPE_DEPTH,
    ERR_TASK_BLOCKED,
    ERR_TASK_EXITED,
)
from .events import Op as _Op

OP_CHARGE, OP_UNCHARGE, OP_RETURN_TO_USER = _Op.CHARGE, _Op.UNCHARGE, _Op.RETURN_TO_USER
OP_FLAGS_SAVE, OP_FLAGS_RESTORE = _Op.FLAGS_SAVE, _Op.FLAGS_RESTORE
OP_ACCOUNT_FORCE_SAVE, OP_ACCOUNT_FORCE_RESTORE = _Op.ACCOUNT_FORCE_SAVE, _Op.ACCOUNT_FORCE_RESTORE
OP_SET_ACTIVE_MEMCG, OP_ATTACH, OP_EXIT = _Op.SET_ACTIVE_MEMCG, _Op.ATTACH, _Op.EXIT
OP_SET_MAX, OP_SET_HIGH, OP_SET_LOW, OP_SET_MIN = _Op.SET_MAX, _Op.SET_HIGH, _Op.SET_LOW, _Op.SET_MIN
OP_SET_SWAP_MAX, OP_SET_DIRTY = _Op.SET_SWAP_MAX, _Op.SET_DIRTY
OP_START_WRITEBACK, OP_END_WRITEBACK = _Op.START_WRITEBACK, _Op.END_WRITEBACK
OP_KILL, OP_BLOCK, OP_WAKE = _Op.KILL, _Op.BLOCK, _Op.WAKE
OP_OOM_REAP, OP_RECLAIM = _Op.OOM_REAP, _Op.RECLAIM

U64 = (1 << 64) - 1
ANON, FILE, FILE_DIRTY, FILE_WRITEBACK, KERNEL, UNEVICTABLE, SWAP = range(7)


class Engine:
    """Runs kernel paths over a :class:`MemcgState` (mutated in place)."""

    def __init__(self, state: MemcgState):
        self.bind(state)

    def bind(self, state: MemcgState) -> None:
        self.st = state
        self.load_knobs()

    def load_knobs(self) -> None:
        """Read the policy (``state.knobs``, :class:`~memcg_emu._constants.Knob`) once: the
        paths below read ``self.kn``, never a policy name."""
        if len(self.st.knobs) < NR_KNOBS:
            raise ValueError(f"state.knobs has {len(self.st.knobs)} entries, expected {NR_KNOBS}")
        self.kn = [int(v) for v in self.st.knobs[:NR_KNOBS]]

    # =========================================================================================
    # small helpers
    # =========================================================================================
    def _cfg(self, key: Cfg) -> int:
        return int(self.st.config[key])

    def _stat(self, key: Stat, n: int = 1) -> None:
        self.st.stats[key] += n

    def emu_random_u64(self) -> int:
        """splitmix64 step on config[RNG]; shared with _core so both engines draw alike."""
        st = self.st
        x = (int(st.config[Cfg.RNG]) + 0x9E3779B97F4A7C15) & U64
        st.config[Cfg.RNG] = x - (1 << 64) if x >= (1 << 63) else x
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & U64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & U64
        return z ^ (z >> 31)

    def parent_mem_cgroup(self, m: int) -> int:
        return int(self.st.parent[m])

    def mem_cgroup_is_descendant(self, m: int, root: int) -> bool:
        st = self.st
        return int(st.pos[root]) <= int(st.pos[m]) < int(st.subtree_end[root])

    def task_is_dying(self, t: int) -> bool:
        if t < 0:
            return False
        st = self.st
        return bool(st.oom_victim[t] or st.sigkill[t] or (int(st.flags[t]) & PF_EXITING))

    # =========================================================================================
    # page counters (docs/model.md §2)
    # =========================================================================================
    def propagate_protected_usage(self, c: int, usage: int) -> None:
        st = self.st
        p = int(st.parent[c])
        if p < 0:
            return
        protected = min(usage, int(st.min[c]))
        old = int(st.min_usage[c])
        if protected != old:
            st.min_usage[c] = protected
            st.children_min_usage[p] += protected - old
        protected = min(usage, int(st.low[c]))
        old = int(st.low_usage[c])
        if protected != old:
            st.low_usage[c] = protected
            st.children_low_usage[p] += protected - old

    def page_counter_charge(self, c: int, nr_pages: int) -> None:
        st = self.st
        while c >= 0:
            new = int(st.usage[c]) + nr_pages
            st.usage[c] = new
            self.propagate_protected_usage(c, new)
            if new > int(st.local_watermark[c]):
                st.local_watermark[c] = new
                if new > int(st.watermark[c]):
                    st.watermark[c] = new
            c = int(st.parent[c])

    def page_counter_try_charge(self, counter: int, nr_pages: int) -> int:
        """Returns -1 on success, else the failing counter (cgroup index); v2: no failcnt."""
        st = self.st
        c = counter
        while c >= 0:
            new = int(st.usage[c]) + nr_pages
            if new > int(st.max[c]):
                # lower levels are cancelled; their watermarks stay raised (docs/model.md §2.4)
                fail = c
                c = counter
                while c != fail:
                    self.page_counter_cancel(c, nr_pages)
                    c = int(st.parent[c])
                return fail
            st.usage[c] = new
            self.propagate_protected_usage(c, new)
            if new > int(st.local_watermark[c]):
                st.local_watermark[c] = new
                if new > int(st.watermark[c]):
                    st.watermark[c] = new
            c = int(st.parent[c])
        return -1

    def page_counter_cancel(self, c: int, nr_pages: int) -> None:
        st = self.st
        new = int(st.usage[c]) - nr_pages
        if new < 0:
            self._stat(Stat.UNDERFLOWS)
            new = 0
        st.usage[c] = new
        self.propagate_protected_usage(c, new)

    def page_counter_uncharge(self, c: int, nr_pages: int) -> None:
        while c >= 0:
            self.page_counter_cancel(c, nr_pages)
            c = int(self.st.parent[c])

    def swap_counter_charge(self, c: int, nr_pages: int) -> None:
        st = self.st
        while c >= 0:
            new = int(st.swap_usage[c]) + nr_pages
            st.swap_usage[c] = new
            if new > int(st.swap_watermark[c]):
                st.swap_watermark[c] = new
            c = int(st.parent[c])

    def swap_counter_uncharge(self, c: int, nr_pages: int) -> None:
        st = self.st
        while c >= 0:
            new = int(st.swap_usage[c]) - nr_pages
            if new < 0:
                self._stat(Stat.UNDERFLOWS)
                new = 0
            st.swap_usage[c] = new
            c = int(st.parent[c])

    def page_counter_set_protection(self, c: int) -> None:
        """Tail of page_counter_set_min/low: re-propagate from c up to the root
        (docs/model.md §2.7)."""
        st = self.st
        while c >= 0:
            self.propagate_protected_usage(c, int(st.usage[c]))
            c = int(st.parent[c])

    @staticmethod
    def effective_protection(usage, parent_usage, setting, parent_effective, siblings_protected,
                             recursive) -> int:
        protected = min(usage, setting)
        if siblings_protected > parent_effective:
            return ((protected * parent_effective) & U64) // siblings_protected
        ep = protected
        if not recursive:
            return ep
        if (parent_effective > siblings_protected and parent_usage > siblings_protected
                and usage > protected):
            unclaimed = parent_effective - siblings_protected
            unclaimed = (unclaimed * (usage - protected)) & U64
            unclaimed //= parent_usage - siblings_protected
            ep += unclaimed
        return ep

    def page_counter_calculate_protection(self, root: int, c: int) -> None:
        st = self.st
        if c == root:
            return
        usage = int(st.usage[c])
        if not usage:
            return
        p = int(st.parent[c])
        if p == root:
            st.emin[c] = st.min[c]
            st.elow[c] = st.low[c]
            return
        parent_usage = int(st.usage[p])
        recursive = self._cfg(Cfg.RECURSIVEPROT)
        st.emin[c] = self.effective_protection(usage, parent_usage, int(st.min[c]),
                                               int(st.emin[p]),
                                               int(st.children_min_usage[p]), recursive)
        st.elow[c] = self.effective_protection(usage, parent_usage, int(st.low[c]),
                                               int(st.elow[p]),
                                               int(st.children_low_usage[p]), recursive)

    # =========================================================================================
    # memory.events (docs/model.md §8)
    # =========================================================================================
    def memcg_memory_event(self, m: int, event: int) -> None:
        st = self.st
        st.events_local[m, event] += 1
        localevents = self._cfg(Cfg.LOCALEVENTS)
        while True:
            st.events[m, event] += 1
            if localevents:
                break
            m = int(st.parent[m])
            if m <= 0:  # stop at (before) the root
                break

    # =========================================================================================
    # per-CPU stock (docs/model.md §4)
    # =========================================================================================
    def consume_stock(self, cpu: int, memcg: int, nr_pages: int) -> bool:
        st = self.st
        if nr_pages > MEMCG_CHARGE_BATCH:
            return False
        for i in range(NR_MEMCG_STOCK):
            if int(st.stock_memcg[cpu, i]) != memcg:
                continue
            stock_pages = int(st.stock_pages[cpu, i])
            if stock_pages >= nr_pages:
                st.stock_pages[cpu, i] = stock_pages - nr_pages
                return True
            return False
        return False

    def drain_stock(self, cpu: int, i: int) -> None:
        st = self.st
        old = int(st.stock_memcg[cpu, i])
        if old < 0:
            return
        stock_pages = int(st.stock_pages[cpu, i])
        if stock_pages:
            self.page_counter_uncharge(old, stock_pages)
            st.stock_pages[cpu, i] = 0
        st.stock_memcg[cpu, i] = -1

    def drain_local_stock(self, cpu: int) -> None:
        for i in range(NR_MEMCG_STOCK):
            self.drain_stock(cpu, i)
        self._stat(Stat.CPU_DRAINS)

    def refill_stock(self, cpu: int, memcg: int, nr_pages: int) -> None:
        st = self.st
        if nr_pages > MEMCG_CHARGE_BATCH:
            self.page_counter_uncharge(memcg, nr_pages)
            return
        empty_slot = -1
        for i in range(NR_MEMCG_STOCK):
            cached = int(st.stock_memcg[cpu, i])
            if cached < 0 and empty_slot == -1:
                empty_slot = i
            if cached == memcg:
                stock_pages = int(st.stock_pages[cpu, i]) + nr_pages
                st.stock_pages[cpu, i] = stock_pages
                if stock_pages > MEMCG_CHARGE_BATCH:
                    self.drain_stock(cpu, i)
                return
        i = empty_slot
        if i == -1:
            i = self.emu_random_u64() % NR_MEMCG_STOCK
            self.drain_stock(cpu, i)
        st.stock_memcg[cpu, i] = memcg
        st.stock_pages[cpu, i] = nr_pages

    def is_memcg_drain_needed(self, cpu: int, root: int) -> bool:
        st = self.st
        for i in range(NR_MEMCG_STOCK):
            m = int(st.stock_memcg[cpu, i])
            if m < 0:
                continue
            if int(st.stock_pages[cpu, i]) and self.mem_cgroup_is_descendant(m, root):
                return True
        return False

    def drain_all_stock(self, root: int) -> None:
        """Step/replay mode: remote CPUs are drained synchronously too (docs/model.md E12)."""
        drained = False
        for cpu in range(self._cfg(Cfg.NR_CPUS)):
            if self.is_memcg_drain_needed(cpu, root):
                self.drain_local_stock(cpu)
                drained = True
        if drained:
            self._stat(Stat.DRAINS)

    # =========================================================================================
    # charge target (docs/model.md §3)
    # =========================================================================================
    def get_mem_cgroup_from_mm(self, t: int) -> int:
        """Memcg of current->mm (its owner's memcg); with no mm: the active memcg, else root."""
        st = self.st
        if st.has_mm[t]:
            return int(st.memcg[int(st.mm[t])])
        active = int(st.active_memcg[t])
        return active if active >= 0 else 0

    def emu_charge_target(self, t: int, kind: int) -> int:
        """Which memcg a charge of ``kind`` by task t goes to; -1 means "not charged".

        anon/unevictable: the fault's mm (``mem_cgroup_charge(folio, vma->vm_mm)``);
        file: page cache passes mm=NULL, so the active memcg wins, then current->mm, then root;
        kernel: ``current_obj_cgroup()``: active memcg's nearest non-root ancestor-or-self, else
        current's objcg, NULL for kthreads and tasks without mm.
        """
        st = self.st
        active = int(st.active_memcg[t])
        if kind == ANON or kind == UNEVICTABLE:
            return self.get_mem_cgroup_from_mm(t)
        if kind == KERNEL:
            if active >= 0:
                return active if active > 0 else -1
            if not st.has_mm[t] or (int(st.flags[t]) & PF_KTHREAD):
                return -1
            m = int(st.memcg[t])
            return m if m > 0 else -1
        # FILE, FILE_DIRTY
        if active >= 0:
            return active
        if st.has_mm[t]:
            return int(st.memcg[t])
        return 0

    # =========================================================================================
    # charge / uncharge entry points
    # =========================================================================================
    def charge(self, t: int, nr_pages: int, gfp: int, kind: int, memcg: int) -> int:
        """Charge nr_pages of ``kind`` for task t (``memcg`` >= 0: explicit remote target).

        Returns 0, -ENOMEM or EMU_LIVELOCK.  The outcome bits are in ``tc_outcome[t]``.
        The whole path runs here; timed simulation drives the same path with
        charge_start()/charge_step() and spends time between the steps.
        """
        label = self.charge_start(t, nr_pages, gfp, kind, memcg)
        while label != Label.DONE:
            label = self.charge_step(t)
        return int(self.st.tc_rc[t])

    def charge_start(self, t: int, nr_pages: int, gfp: int, kind: int, memcg: int) -> int:
        """Begin a charge: resolve the target (docs/model.md §3), try the stock, set up
        try_charge_memcg's
        locals.  Returns Label.DONE if it finished (``tc_rc[t]`` holds the result)."""
        st = self.st
        self._stat(Stat.CHARGES)
        st.tc_outcome[t] = 0
        st.tc_rc[t] = 0
        if memcg < 0:
            memcg = self.emu_charge_target(t, kind)
        if memcg <= 0:  # root (or no objcg): never charged (docs/model.md §3)
            return Label.DONE
        # R0 of the first pass, before the path's locals are set up: a stock hit needs none
        # of them (the common case).  On a miss the RETRY state repeats the lookup, which has
        # no side effects when it fails.
        if self.consume_stock(int(st.cpu[t]), memcg, nr_pages):
            st.tc_outcome[t] |= OUT_STOCK_HIT
            self._stat(Stat.STOCK_HITS)
            self.emu_commit_pages(t, memcg, kind, nr_pages)
            return Label.DONE
        st.tc_kind[t] = kind
        self.try_charge_memcg_begin(t, memcg, gfp, nr_pages)
        return Label.RETRY

    def charge_step(self, t: int) -> int:
        """Run one segment of the pending charge (from tc_label[t] to the next kernel label:
        RECLAIMED right after a reclaim pass, RETRY after an OOM or a retry, NOMEM, FORCE,
        DONE_RESTOCK); commit the pages when it reaches DONE with 0.  Returns the label."""
        st = self.st
        label = self.try_charge_step(t, int(st.tc_label[t]))
        if label != Label.DONE:
            st.tc_label[t] = label
            return label
        st.tc_label[t] = Label.IDLE
        if int(st.tc_rc[t]) == 0:
            self.emu_commit_pages(t, int(st.tc_memcg[t]), int(st.tc_kind[t]),
                                  int(st.tc_nr_pages[t]))
        return label

    def emu_commit_pages(self, t: int, memcg: int, kind: int, nr_pages: int) -> None:
        """The folio now belongs to memcg: account it in the pool (and to the task's mm)."""
        st = self.st
        st.pool[memcg, kind] += nr_pages
        mm = int(st.mm[t])
        if (kind == ANON or kind == UNEVICTABLE or kind == KERNEL) and st.has_mm[t] \
                and memcg == int(st.memcg[mm]):
            if int(st.page_memcg[mm]) != memcg:
                st.page_memcg[mm] = memcg
            st.owned[mm, kind] += nr_pages

    def uncharge(self, t: int, nr_pages: int, kind: int, memcg: int) -> int:
        """Free nr_pages of ``kind`` from memcg (or the memcg a charge would go to).

        Folio pages go straight to the page counters (docs/model.md §9); kernel pages go through
        refill_stock on t's CPU (objcg uncharge).  Returns 0, or -1 if the pool holds fewer
        pages than asked (nothing changed).
        """
        st = self.st
        if memcg < 0:
            memcg = self.emu_charge_target(t, kind if kind != SWAP else ANON)
        if memcg <= 0:
            return 0
        if int(st.pool[memcg, kind]) < nr_pages:
            return -1
        st.pool[memcg, kind] -= nr_pages
        if kind == SWAP:
            self.swap_counter_uncharge(memcg, nr_pages)
        elif kind == KERNEL:
            self.refill_stock(int(st.cpu[t]), memcg, nr_pages)
        else:
            self.page_counter_uncharge(memcg, nr_pages)
        mm = int(st.mm[t]) if t >= 0 else -1
        if mm >= 0 and memcg == int(st.page_memcg[mm]):
            k = ANON if kind == SWAP else kind
            st.owned[mm, k] -= min(nr_pages, int(st.owned[mm, k]))
        return 0

    def emu_move_pages(self, memcg: int, src: int, dst: int, nr_pages: int) -> int:
        """Page-state change inside one memcg (dirty, writeback start/end). -1 if short."""
        st = self.st
        if int(st.pool[memcg, src]) < nr_pages:
            return -1
        st.pool[memcg, src] -= nr_pages
        st.pool[memcg, dst] += nr_pages
        return 0

    # =========================================================================================
    # try_charge_memcg (docs/model.md §5) as a resumable state machine
    # =========================================================================================
    @staticmethod
    def get_order(nr_pages: int) -> int:
        order = 0
        while (1 << order) < nr_pages:
            order += 1
        return order

    def mem_cgroup_margin(self, m: int) -> int:
        st = self.st
        count, limit = int(st.usage[m]), int(st.max[m])
        return limit - count if count < limit else 0

    def try_charge_memcg_begin(self, t: int, memcg: int, gfp: int, nr_pages: int) -> None:
        """try_charge_memcg()'s locals, kept in the task's record so the path can be
        suspended and resumed (docs/design.md §3)."""
        st = self.st
        st.tc_memcg[t] = memcg
        st.tc_gfp[t] = gfp
        st.tc_nr_pages[t] = nr_pages
        st.tc_batch[t] = max(MEMCG_CHARGE_BATCH, nr_pages)
        st.tc_retries[t] = MAX_RECLAIM_RETRIES
        st.tc_drained[t] = 0
        st.tc_passed_oom[t] = 0
        st.tc_raised_max[t] = 0
        st.tc_may_swap[t] = 1
        st.tc_mem_over_limit[t] = -1
        st.tc_reclaimed[t] = 0
        st.tc_oom_nokill[t] = 0
        st.tc_rc[t] = 0
        st.tc_label[t] = Label.RETRY

    def try_charge_step(self, t: int, label: int) -> int:
        """Run try_charge_memcg from ``label`` to its next suspension point; return the next
        label.  Suspension points: after a reclaim pass (RECLAIMED) and after OOM (RETRY)."""
        st = self.st
        memcg = int(st.tc_memcg[t])
        gfp = int(st.tc_gfp[t])
        nr_pages = int(st.tc_nr_pages[t])

        if label == Label.RETRY:
            # R0
            if self.consume_stock(int(st.cpu[t]), memcg, nr_pages):
                st.tc_outcome[t] |= OUT_STOCK_HIT
                self._stat(Stat.STOCK_HITS)
                st.tc_rc[t] = 0
                return Label.DONE
            # R1: no reclaim bits at all (bpf nolock): no batching
            if not (gfp & _GFP_RECLAIM):
                st.tc_batch[t] = nr_pages
            batch = int(st.tc_batch[t])
            # R3 (v2)
            fail = self.page_counter_try_charge(memcg, batch)
            if fail < 0:
                return Label.DONE_RESTOCK
            st.tc_mem_over_limit[t] = fail
            # R4
            if batch > nr_pages:
                st.tc_batch[t] = nr_pages
                return Label.RETRY
            flags = int(st.flags[t])
            kn = self.kn
            # dying_bypass=5.15 (before a4ebf1b6): "Allow dying and OOM-killed tasks to
            # bypass the last charges so that they can exit quickly" -- should_force_charge()
            legacy = kn[Knob.DYING_BYPASS] != 0
            if legacy and self.task_is_dying(t):
                return Label.FORCE
            # R5
            if flags & PF_MEMALLOC:
                return Label.FORCE
            # the patch's hook: after PF_MEMALLOC, before every retry-policy check
            # (docs/model.md §13)
            if kn[Knob.ACCOUNTFORCE] != AF_OFF and flags & PF_MEMALLOC_ACCOUNTFORCE \
                    and self.emu_accountforce_applies(t, memcg, gfp, nr_pages, flags):
                if kn[Knob.ACCOUNTFORCE] == AF_NOFAIL:
                    return Label.FORCE  # what NOFAIL ends in anyway, without the loop
                st.memcg_nr_pages_over_max[t] = (int(st.memcg_nr_pages_over_max[t]) + nr_pages) \
                    & 0xFFFFFFFF
                if kn[Knob.OVER_MAX_TARGET]:
                    self.emu_note_over_max_target(t, memcg)
                st.notify_resume[t] = 1
                st.tc_outcome[t] |= OUT_DEFERRED
                self._stat(Stat.FORCED_PAGES_OVER_MAX, nr_pages)
                return Label.FORCE
            # R6: task_in_memcg_oom() is always false on v2
            # R7
            if not (gfp & _GFP_DIRECT_RECLAIM):
                return Label.NOMEM
            # R8
            mem_over_limit = fail
            self.memcg_memory_event(mem_over_limit, MEMCG_MAX)
            st.tc_raised_max[t] = 1
            # R9
            reclaimed = self.try_to_free_mem_cgroup_pages(
                t, mem_over_limit, nr_pages, gfp, bool(st.tc_may_swap[t]), 0)
            st.tc_reclaimed[t] = reclaimed
            if reclaimed:
                st.tc_outcome[t] |= OUT_RECLAIMED
            return Label.RECLAIMED

        if label == Label.RECLAIMED:
            mem_over_limit = int(st.tc_mem_over_limit[t])
            # R10
            if self.mem_cgroup_margin(mem_over_limit) >= nr_pages:
                return Label.RETRY
            # R11
            if not st.tc_drained[t]:
                self.drain_all_stock(mem_over_limit)
                st.tc_drained[t] = 1
                return Label.RETRY
            # R12
            if gfp & _GFP_NORETRY:
                return Label.NOMEM
            # R13
            if st.tc_reclaimed[t] and nr_pages <= (1 << PAGE_ALLOC_COSTLY_ORDER):
                return Label.RETRY
            # R14: nr_retries-- (post-decrement)
            retries = int(st.tc_retries[t])
            st.tc_retries[t] = retries - 1
            if retries:
                return Label.RETRY
            # R15
            if gfp & _GFP_RETRY_MAYFAIL:
                return Label.NOMEM
            legacy = self.kn[Knob.DYING_BYPASS] != 0
            if legacy:
                # before a4ebf1b6: a task with a fatal signal forces instead of OOMing
                if st.sigkill[t]:
                    return Label.FORCE
            # R16
            elif st.tc_passed_oom[t] and self.task_is_dying(t):
                return Label.NOMEM
            # R17
            kills = int(st.stats[Stat.OOM_KILLS])
            order = self.get_order(nr_pages)
            if self.mem_cgroup_oom(t, mem_over_limit, gfp, order):
                st.tc_outcome[t] |= OUT_OOM
                st.tc_passed_oom[t] = 1
                st.tc_retries[t] = MAX_RECLAIM_RETRIES
                if self.emu_livelock_check(t, "tc_oom_nokill", kills, mem_over_limit,
                                           Site.TRY_CHARGE):
                    st.tc_outcome[t] |= OUT_LIVELOCK
                    st.tc_rc[t] = EMU_LIVELOCK
                    return Label.DONE
                return Label.RETRY
            # legacy: OOM_FAILED (no victim found) forces the charge; OOM_SKIPPED (order > 3)
            # still fails it
            if legacy and order <= PAGE_ALLOC_COSTLY_ORDER:
                return Label.FORCE
            return Label.NOMEM

        if label == Label.NOMEM:
            if not (gfp & (_GFP_NOFAIL | _GFP_HIGH)):
                self._stat(Stat.ENOMEM)
                st.tc_rc[t] = -ENOMEM
                return Label.DONE
            return Label.FORCE

        if label == Label.FORCE:
            if not st.tc_raised_max[t]:
                self.memcg_memory_event(int(st.tc_mem_over_limit[t]), MEMCG_MAX)
            self.page_counter_charge(memcg, nr_pages)
            st.tc_outcome[t] |= OUT_FORCED
            self._stat(Stat.FORCED_CHARGES)
            if self.kn[Knob.ACCOUNTFORCE_HIGH] and int(st.tc_outcome[t]) & OUT_DEFERRED:
                # accountforce_high=armed: the over-high check done_restock would have made
                # (no synchronous handle_over_high: the task may hold a journal handle)
                m = memcg
                while m >= 0:
                    if int(st.usage[m]) > int(st.high[m]) \
                            or int(st.swap_usage[m]) > int(st.swap_high[m]):
                        st.memcg_nr_pages_over_high[t] = \
                            (int(st.memcg_nr_pages_over_high[t]) + nr_pages) & 0xFFFFFFFF
                        st.notify_resume[t] = 1
                        break
                    m = int(st.parent[m])
            st.tc_rc[t] = 0
            return Label.DONE

        # Label.DONE_RESTOCK
        batch = int(st.tc_batch[t])
        if batch > nr_pages:
            self.refill_stock(int(st.cpu[t]), memcg, batch - nr_pages)
        # task context: the first over-high level arms return-to-user reclaim
        m = memcg
        while m >= 0:
            mem_high = int(st.usage[m]) > int(st.high[m])
            swap_high = int(st.swap_usage[m]) > int(st.swap_high[m])
            if mem_high or swap_high:
                st.memcg_nr_pages_over_high[t] = (int(st.memcg_nr_pages_over_high[t]) + batch) \
                    & 0xFFFFFFFF
                st.notify_resume[t] = 1
                break
            m = int(st.parent[m])
        if (int(st.memcg_nr_pages_over_high[t]) > MEMCG_CHARGE_BATCH
                and not (int(st.flags[t]) & PF_MEMALLOC)
                and gfp & _GFP_DIRECT_RECLAIM):
            if self.mem_cgroup_handle_over_high(t, gfp):
                st.tc_outcome[t] |= OUT_THROTTLED
        st.tc_rc[t] = 0
        return Label.DONE

    def emu_livelock_check(self, t: int, field: str, kills_before: int, memcg: int,
                           site: int) -> bool:
        """An OOM that returned true but killed nobody, LIVELOCK_LIMIT times in a row inside
        one path: nothing can change while the path runs, so the kernel would loop forever.
        Stop, and report it (task, memcg, site)."""
        st = self.st
        arr = getattr(st, field)
        if int(st.stats[Stat.OOM_KILLS]) != kills_before:
            arr[t] = 0
            return False
        arr[t] += 1
        if int(arr[t]) < self._cfg(Cfg.LIVELOCK_LIMIT):
            return False
        self.emu_record_livelock(t, memcg, site)
        return True

    def emu_record_livelock(self, t: int, memcg: int, site: int) -> None:
        st = self.st
        self._stat(Stat.LIVELOCKS)
        st.cg_livelocks[memcg] += 1
        if t >= 0:
            st.livelocks[t] += 1
            st.livelock_site[t] = site

    def emu_accountforce_applies(self, t: int, memcg: int, gfp: int, nr_pages: int,
                                 flags: int) -> bool:
        """Whether the patch's hook takes this flagged charge (policy.py: the accountforce_*
        and over_max_cap knobs); otherwise it goes on to the normal retry policy."""
        st = self.st
        kn = self.kn
        if kn[Knob.ACCOUNTFORCE] == AF_NOFAIL and not gfp & _GFP_NOFAIL:
            return False
        if kn[Knob.ACCOUNTFORCE_NOWAIT] and (
                not gfp & _GFP_DIRECT_RECLAIM or gfp & (_GFP_NORETRY | _GFP_RETRY_MAYFAIL)):
            return False  # a charge that may fail fast keeps failing fast
        if kn[Knob.ACCOUNTFORCE_KTHREAD] and kn[Knob.ACCOUNTFORCE] == AF_V1 \
                and flags & PF_KTHREAD:
            return False  # never runs resume_user_mode_work: could never repay
        cap = kn[Knob.OVER_MAX_CAP]
        if cap:
            m = memcg
            while m >= 0:
                if int(st.usage[m]) + nr_pages > int(st.max[m]) + cap:
                    return False
                m = int(st.parent[m])
        return True

    def emu_note_over_max_target(self, t: int, memcg: int) -> None:
        """over_max_target=charged: remember the memcg the pages were forced into; a second
        memcg moves the target to the nearest common ancestor (one slot per task, as the
        kernel's one counter)."""
        st = self.st
        cur = int(st.memcg_over_max_target[t])
        if cur < 0:
            st.memcg_over_max_target[t] = memcg
            return
        while cur > 0 and not self.mem_cgroup_is_descendant(memcg, cur):
            cur = int(st.parent[cur])
        st.memcg_over_max_target[t] = cur

    # =========================================================================================
    # memory.high (docs/model.md §6)
    # =========================================================================================
    def reclaim_high(self, t: int, memcg: int, nr_pages: int, gfp: int) -> int:
        st = self.st
        nr_reclaimed = 0
        while True:
            if int(st.usage[memcg]) > int(st.high[memcg]):
                self.memcg_memory_event(memcg, MEMCG_HIGH)
                self._stat(Stat.HIGH_RECLAIMS)
                nr_reclaimed += self.try_to_free_mem_cgroup_pages(t, memcg, nr_pages, gfp, True, 0)
            memcg = int(st.parent[memcg])
            if memcg <= 0:
                break
        return nr_reclaimed

    @staticmethod
    def calculate_overage(usage: int, high: int) -> int:
        if usage <= high:
            return 0
        high = max(high, 1)
        overage = ((usage - high) << MEMCG_DELAY_PRECISION_SHIFT) & U64
        return overage // high

    def mem_find_max_overage(self, memcg: int) -> int:
        st = self.st
        max_overage = 0
        while True:
            overage = self.calculate_overage(int(st.usage[memcg]), int(st.high[memcg]))
            max_overage = max(overage, max_overage)
            memcg = int(st.parent[memcg])
            if memcg <= 0:
                break
        return max_overage

    def swap_find_max_overage(self, memcg: int) -> int:
        st = self.st
        max_overage = 0
        while True:
            overage = self.calculate_overage(int(st.swap_usage[memcg]), int(st.swap_high[memcg]))
            if overage:
                self.memcg_memory_event(memcg, MEMCG_SWAP_HIGH)
            max_overage = max(overage, max_overage)
            memcg = int(st.parent[memcg])
            if memcg <= 0:
                break
        return max_overage

    @staticmethod
    def calculate_high_delay(nr_pages: int, max_overage: int) -> int:
        if not max_overage:
            return 0
        penalty = (max_overage * max_overage * HZ) & U64
        penalty >>= MEMCG_DELAY_PRECISION_SHIFT
        penalty >>= MEMCG_DELAY_SCALING_SHIFT
        return ((penalty * nr_pages) & U64) // MEMCG_CHARGE_BATCH

    def mem_cgroup_handle_over_high(self, t: int, gfp: int) -> int:
        """Returns the jiffies slept (0 if no sleep)."""
        label = self.handle_over_high_begin(t, gfp)
        while label != Label.DONE:
            label = self.handle_over_high_next(t)
        return int(self.st.hh_penalty[t])

    def handle_over_high_begin(self, t: int, gfp: int) -> int:
        st = self.st
        st.hh_penalty[t] = 0
        nr_pages = int(st.memcg_nr_pages_over_high[t])
        if not nr_pages:
            return Label.DONE
        st.hh_memcg[t] = self.get_mem_cgroup_from_mm(t)
        st.memcg_nr_pages_over_high[t] = 0
        st.hh_gfp[t] = gfp
        st.hh_nr_pages[t] = nr_pages
        st.hh_retries[t] = MAX_RECLAIM_RETRIES
        st.hh_in_retry[t] = 0
        st.hh_label[t] = Label.HIGH_LOOP
        return Label.HIGH_LOOP

    def handle_over_high_next(self, t: int) -> int:
        st = self.st
        label = self.handle_over_high_step(t, int(st.hh_label[t]))
        st.hh_label[t] = label if label != Label.DONE else Label.IDLE
        return label

    def handle_over_high_step(self, t: int, label: int) -> int:
        """One retry_reclaim iteration; the throttle sleep ends the path (label DONE with
        hh_penalty set)."""
        st = self.st
        memcg = int(st.hh_memcg[t])
        nr_pages = int(st.hh_nr_pages[t])
        if self.task_is_dying(t):
            return Label.DONE
        nr_reclaimed = self.reclaim_high(
            t, memcg, SWAP_CLUSTER_MAX if st.hh_in_retry[t] else nr_pages, int(st.hh_gfp[t]))
        penalty = self.calculate_high_delay(nr_pages, self.mem_find_max_overage(memcg))
        penalty = (penalty + self.calculate_high_delay(nr_pages, self.swap_find_max_overage(memcg))) & U64
        penalty = min(penalty, MEMCG_MAX_HIGH_DELAY_JIFFIES)
        if penalty <= HZ // 100:
            return Label.DONE
        retries = int(st.hh_retries[t])
        if nr_reclaimed:
            st.hh_in_retry[t] = 1
            return Label.HIGH_LOOP
        st.hh_retries[t] = retries - 1
        if retries:
            st.hh_in_retry[t] = 1
            return Label.HIGH_LOOP
        # schedule_timeout_killable(penalty): in step mode the sleep is recorded, not waited
        st.hh_penalty[t] = penalty
        st.throttle_jiffies[t] += penalty
        self._stat(Stat.THROTTLE_JIFFIES, penalty)
        return Label.DONE

    # =========================================================================================
    # the patch: mem_cgroup_handle_over_max (docs/model.md §13)
    # =========================================================================================
    def get_over_limit_memcg(self, memcg: int) -> int:
        st = self.st
        while memcg >= 0:
            if int(st.usage[memcg]) > int(st.max[memcg]):
                return memcg
            memcg = int(st.parent[memcg])
        return -1

    def mem_cgroup_handle_over_max(self, t: int, gfp: int) -> None:
        label = self.handle_over_max_begin(t, gfp)
        while label != Label.DONE:
            label = self.handle_over_max_next(t)

    def handle_over_max_begin(self, t: int, gfp: int) -> int:
        st = self.st
        nr_pages = int(st.memcg_nr_pages_over_max[t])
        if not nr_pages:
            return Label.DONE
        target = int(st.memcg_over_max_target[t])
        if self.kn[Knob.OVER_MAX_TARGET] and target >= 0:
            st.hm_memcg[t] = target  # over_max_target=charged
            st.memcg_over_max_target[t] = -1
        else:
            st.hm_memcg[t] = self.get_mem_cgroup_from_mm(t)
        st.memcg_nr_pages_over_max[t] = 0
        st.hm_nr_pages[t] = nr_pages
        st.hm_reclaimed[t] = 0
        st.hm_retries[t] = MAX_RECLAIM_RETRIES
        st.hm_oom_nokill[t] = 0
        st.hm_drained[t] = 0
        st.hm_label[t] = Label.MAX_RETRY
        return Label.MAX_RETRY

    def handle_over_max_next(self, t: int) -> int:
        st = self.st
        label = self.handle_over_max_step(t, int(st.hm_label[t]))
        st.hm_label[t] = label if label != Label.DONE else Label.IDLE
        return label

    def handle_over_max_step(self, t: int, label: int) -> int:
        """MAX_RETRY: one pass of the `retry:` body (reclaim loop, then the OOM decision)."""
        st = self.st
        kn = self.kn
        nr_pages = int(st.hm_nr_pages[t])
        over = self.get_over_limit_memcg(int(st.hm_memcg[t]))
        st.hm_over[t] = over
        if over < 0:
            return Label.DONE
        if kn[Knob.OVER_MAX_DYING] and self.task_is_dying(t):
            return Label.DONE  # over_max_dying=exit: as handle_over_high's task_is_dying()
        reclaimed = int(st.hm_reclaimed[t])
        if kn[Knob.OVER_MAX_RECLAIM]:
            # over_max_reclaim=excess: memory_max_write()'s loop -- drain the stocks once,
            # then reclaim what is still above max, re-checked before every call; at most
            # MAX_RECLAIM_RETRIES calls without progress
            if not st.hm_drained[t]:
                self.drain_all_stock(over)
                st.hm_drained[t] = 1
            while int(st.usage[over]) > int(st.max[over]):
                if not int(st.hm_retries[t]):
                    break
                got = self.try_to_free_mem_cgroup_pages(
                    t, over, int(st.usage[over]) - int(st.max[over]), GFP_KERNEL, True, 0)
                if not got:
                    st.hm_retries[t] -= 1
                reclaimed += got
            deficit = int(st.usage[over]) - int(st.max[over])
        else:
            while reclaimed < nr_pages:
                # the full nr_pages every time, GFP_KERNEL hard-coded, no drain, no PSI
                # (docs/model.md §17.8-11)
                got = self.try_to_free_mem_cgroup_pages(t, over, nr_pages, GFP_KERNEL, True, 0)
                if not got:
                    retries = int(st.hm_retries[t])
                    st.hm_retries[t] = retries - 1
                    if not retries:
                        break
                reclaimed += got
            deficit = nr_pages - reclaimed
        st.hm_reclaimed[t] = reclaimed
        if deficit > 0 and int(st.usage[over]) > int(st.max[over]):
            kills = int(st.stats[Stat.OOM_KILLS])
            order = 0 if kn[Knob.OVER_MAX_OOM_ORDER] else self.get_order(deficit)
            if order > PAGE_ALLOC_COSTLY_ORDER:
                self._stat(Stat.OVER_MAX_OOM_SKIPPED)  # mem_cgroup_oom() will refuse
            if self.mem_cgroup_oom(t, over, GFP_KERNEL, order):
                st.hm_retries[t] = MAX_RECLAIM_RETRIES
                if self.emu_livelock_check(t, "hm_oom_nokill", kills, over,
                                           Site.HANDLE_OVER_MAX):
                    return Label.DONE
                return Label.MAX_RETRY
        return Label.DONE

    # =========================================================================================
    # return to user (docs/model.md §12)
    # =========================================================================================
    def return_to_user(self, t: int) -> int:
        """exit_to_user_mode_loop(): a fatal signal is delivered first (the task exits and
        its per-task debts are dropped); otherwise resume_user_mode_work() runs if
        TIF_NOTIFY_RESUME is set.  Kernel threads never get here (the API refuses them).
        Returns the memory.high penalty slept, in jiffies.  Timed simulation drives the same
        work with rtu_start()/rtu_step()."""
        st = self.st
        livelocks = int(st.livelocks[t])
        label = self.rtu_start(t)
        while label != Label.DONE:
            label = self.rtu_step(t)
        # exit_to_user_mode_loop() reads the thread flags again after the work: a fatal
        # signal that arrived meanwhile (an OOM kill of itself) is delivered now -- unless
        # the work was stopped as a livelock (the kernel would still be looping in it)
        if st.sigkill[t] and int(st.state[t]) != TaskState.EXITED \
                and int(st.livelocks[t]) == livelocks:
            self.exit_task(t)
        return int(st.hh_penalty[t])

    def rtu_start(self, t: int) -> int:
        st = self.st
        st.hh_penalty[t] = 0
        if st.sigkill[t]:  # signals are handled before TIF_NOTIFY_RESUME work
            self.exit_task(t)
            return Label.DONE
        if not st.notify_resume[t]:
            return Label.DONE
        st.notify_resume[t] = 0
        if self.kn[Knob.ACCOUNTFORCE] == AF_V1:
            label = self.handle_over_max_begin(t, GFP_KERNEL)
            if label != Label.DONE:
                return label
        return self.handle_over_high_begin(t, GFP_KERNEL)

    def rtu_step(self, t: int) -> int:
        """One step of resume_user_mode_work: handle_over_max's, then handle_over_high's."""
        st = self.st
        if int(st.hm_label[t]) != Label.IDLE:
            label = self.handle_over_max_next(t)
            if label != Label.DONE:
                return label
            return self.handle_over_high_begin(t, GFP_KERNEL)
        if int(st.hh_label[t]) != Label.IDLE:
            return self.handle_over_high_next(t)
        return Label.DONE

    # =========================================================================================
    # reclaim (docs/model.md §11): abstract model over the per-memcg pools
    # =========================================================================================
    def current_gfp_context(self, t: int, gfp: int) -> int:
        if t < 0:
            return gfp
        flags = int(self.st.flags[t])
        if flags & PF_MEMALLOC_NOIO:
            gfp &= ~(_GFP_IO | _GFP_FS)
        elif flags & PF_MEMALLOC_NOFS:
            gfp &= ~_GFP_FS
        if flags & PF_MEMALLOC_PIN:
            gfp &= ~_GFP_MOVABLE
        return gfp

    def mem_cgroup_get_nr_swap_pages(self, memcg: int) -> int:
        st = self.st
        nr = self._cfg(Cfg.TOTAL_SWAP) - int(st.swap_usage[0])
        while memcg > 0:
            nr = min(nr, int(st.swap_max[memcg]) - int(st.swap_usage[memcg]))
            memcg = int(st.parent[memcg])
        return nr

    @staticmethod
    def emu_scan_count(lru_size: int, protection: int, cgroup_size: int, priority: int) -> int:
        """get_scan_count()'s proportional protection scaling, then >> priority."""
        if protection:
            cgroup_size = max(cgroup_size, protection)
            scan = lru_size - ((lru_size * protection) & U64) // (cgroup_size + 1)
            scan = max(scan, SWAP_CLUSTER_MAX)
        else:
            scan = lru_size
        return min(scan >> priority, lru_size)

    def shrink_lruvec(self, m: int, target: int, priority: int, nr_to_reclaim: int,
                      nr_reclaimed: int, low_reclaim: bool, may_swap: bool) -> tuple[int, bool]:
        """Reclaim from one memcg's own pools: clean file first, then anon to swap.

        Returns (pages freed, whether low protection shaped the scan)."""
        st = self.st
        low_skipped = False
        protection = 0
        if m != target and m != 0:
            emin, elow = int(st.emin[m]), int(st.elow[m])
            if not low_reclaim and elow > emin:
                protection = elow
                low_skipped = True
            else:
                protection = emin
        size = int(st.usage[m])
        clean = int(st.pool[m, FILE])
        file_lru = clean + int(st.pool[m, FILE_DIRTY]) + int(st.pool[m, FILE_WRITEBACK])
        anon_lru = 0
        swap_room = 0
        if may_swap and self._cfg(Cfg.SWAPPINESS):
            swap_room = max(self.mem_cgroup_get_nr_swap_pages(m), 0)
            if swap_room > 0:
                anon_lru = int(st.pool[m, ANON])
        scan_file = self.emu_scan_count(file_lru, protection, size, priority)
        scan_anon = self.emu_scan_count(anon_lru, protection, size, priority)
        need = nr_to_reclaim - nr_reclaimed
        freed_file = min(scan_file, clean, need)
        scanned = scan_file if freed_file < need else freed_file
        if freed_file < need and scan_file > clean:
            # dirty/writeback pages at the LRU tail: direct reclaim cannot write them, it
            # can only wake the flusher
            self._stat(Stat.FLUSHER_WAKEUPS)
        if freed_file:
            st.pool[m, FILE] -= freed_file
            self.page_counter_uncharge(m, freed_file)
        need -= freed_file
        freed_anon = min(scan_anon, swap_room, need) if need > 0 else 0
        scanned += scan_anon if freed_anon < need else freed_anon
        if freed_anon:
            st.pool[m, ANON] -= freed_anon
            st.pool[m, SWAP] += freed_anon
            self.page_counter_uncharge(m, freed_anon)
            self.swap_counter_charge(m, freed_anon)
        st.pgscan[m] += scanned
        st.pgsteal[m] += freed_file + freed_anon
        self._stat(Stat.RECLAIM_SCANNED, scanned)
        return freed_file + freed_anon, low_skipped

    def shrink_node_memcgs(self, target: int, priority: int, nr_to_reclaim: int,
                           nr_reclaimed: int, low_reclaim: bool, may_swap: bool
                           ) -> tuple[int, bool]:
        st = self.st
        low_skipped = False
        for i in range(int(st.pos[target]), int(st.subtree_end[target])):
            m = int(st.preorder[i])
            self.page_counter_calculate_protection(target, m)
            unprotected = m == target or m == 0
            usage = int(st.usage[m])
            if not unprotected and int(st.emin[m]) >= usage:
                continue  # below min: hard protection
            if not unprotected and int(st.elow[m]) >= usage:
                if not low_reclaim:
                    low_skipped = True
                    continue
                self.memcg_memory_event(m, MEMCG_LOW)
            freed, skipped = self.shrink_lruvec(m, target, priority, nr_to_reclaim,
                                                nr_reclaimed, low_reclaim, may_swap)
            nr_reclaimed += freed
            low_skipped = low_skipped or skipped
            if nr_reclaimed >= nr_to_reclaim:
                break
        return nr_reclaimed, low_skipped

    def try_to_free_mem_cgroup_pages(self, t: int, target: int, nr_pages: int, gfp: int,
                                     may_swap: bool, swappiness_zero: int) -> int:
        """Abstract memcg reclaim.  Returns pages freed; 0 only if nothing at all was freed."""
        st = self.st
        nr_to_reclaim = max(nr_pages, SWAP_CLUSTER_MAX)
        gfp = self.current_gfp_context(t, gfp)
        # adding an anon page to swap needs IO (shrink_folio_list); swappiness=0 asks none
        may_swap = may_swap and bool(gfp & _GFP_IO) and not swappiness_zero
        saved = 0
        if t >= 0:  # memalloc_noreclaim_save()
            saved = int(st.flags[t]) & PF_MEMALLOC
            st.flags[t] |= PF_MEMALLOC
        self._stat(Stat.RECLAIM_CALLS)
        nr_reclaimed = 0
        low_reclaim = False
        while True:
            low_skipped = False
            for priority in range(DEF_PRIORITY, -1, -1):
                nr_reclaimed, skipped = self.shrink_node_memcgs(
                    target, priority, nr_to_reclaim, nr_reclaimed, low_reclaim, may_swap)
                low_skipped = low_skipped or skipped
                if nr_reclaimed >= nr_to_reclaim:
                    break
            if nr_reclaimed or low_reclaim or not low_skipped:
                break
            low_reclaim = True  # retry ignoring memory.low (sc->memcg_low_reclaim)
        if t >= 0:  # memalloc_noreclaim_restore()
            st.flags[t] = (int(st.flags[t]) & ~PF_MEMALLOC) | saved
        self._stat(Stat.RECLAIM_RECLAIMED, nr_reclaimed)
        return nr_reclaimed

    # =========================================================================================
    # OOM (docs/model.md §7)
    # =========================================================================================
    def mem_cgroup_oom(self, t: int, memcg: int, gfp: int, order: int) -> bool:
        if order > PAGE_ALLOC_COSTLY_ORDER:
            return False
        self.memcg_memory_event(memcg, MEMCG_OOM)
        # memcg1_oom_prepare() always proceeds on v2
        return self.mem_cgroup_out_of_memory(t, memcg, gfp, order)

    def mem_cgroup_out_of_memory(self, t: int, memcg: int, gfp: int, order: int) -> bool:
        # oom_lock is uncontended in step/replay mode, so mutex_lock_killable never fails
        self._stat(Stat.OOM_CALLS)
        if self.mem_cgroup_margin(memcg) >= (1 << order):
            return True
        # legacy-dying-bypass: `ret = should_force_charge() || out_of_memory(&oc)`
        if self.kn[Knob.DYING_BYPASS] and self.task_is_dying(t):
            return True
        return self.out_of_memory(t, memcg)

    def find_lock_task_mm(self, p: int) -> int:
        """The first thread of p's thread group that still has an mm (the leader has the
        lowest pid of its group), -1 if every thread has passed exit_mm()."""
        st = self.st
        leader = int(st.tgid[p])
        if st.has_mm[leader]:
            return leader
        for k in range(leader + 1, st.n_tasks):
            if int(st.tgid[k]) == leader and st.has_mm[k]:
                return k
        return -1

    def emu_thread_group_empty(self, t: int) -> bool:
        """thread_group_empty(): no other thread of t's group is still alive."""
        st = self.st
        leader = int(st.tgid[t])
        for k in range(leader, st.n_tasks):
            if k != t and int(st.tgid[k]) == leader and int(st.state[k]) != TaskState.EXITED:
                return False
        return True

    def _task_will_free_mem(self, t: int) -> bool:
        st = self.st
        if st.sigkill[t]:  # SIGNAL_GROUP_EXIT: a fatal signal reached the whole group
            return True
        return bool(int(st.flags[t]) & PF_EXITING) and self.emu_thread_group_empty(t)

    def task_will_free_mem(self, t: int) -> bool:
        """mm/oom_kill.c: task_will_free_mem(): t is dying and so is every process sharing
        its mm (so nobody pins the mm)."""
        st = self.st
        if t < 0 or not st.has_mm[t]:
            return False
        if not self._task_will_free_mem(t):
            return False
        mm = int(st.mm[t])
        if st.mm_oom_skip[mm]:
            return False
        if int(st.mm_users[mm]) <= 1:
            return True
        for k in range(st.n_tasks):  # for_each_process + process_shares_mm
            if st.has_mm[k] and int(st.mm[k]) == mm and int(st.tgid[k]) != int(st.tgid[t]):
                if not self._task_will_free_mem(k):
                    return False
        return True

    def mark_oom_victim(self, t: int) -> None:
        """mark_oom_victim() (TIF_MEMDIE, signal->oom_mm) and queue_oom_reaper() together:
        every caller in mm/oom_kill.c does both.  A reaped mm is not queued again."""
        st = self.st
        mm = int(st.mm[t])
        st.oom_victim[t] = 1
        leader = int(st.tgid[t])
        if int(st.oom_mm[leader]) < 0:
            st.oom_mm[leader] = mm
        if not st.mm_oom_skip[mm]:
            st.reap_queued[mm] = 1

    def mem_cgroup_get_max(self, memcg: int) -> int:
        st = self.st
        mx = int(st.max[memcg])
        if self._cfg(Cfg.SWAPPINESS):
            mx += min(int(st.swap_max[memcg]), self._cfg(Cfg.TOTAL_SWAP))
        return mx

    def oom_badness(self, t: int, totalpages: int) -> int:
        """mm/oom_kill.c: oom_badness() of process t: its mm's pages (counted once, however
        many threads use the mm), adjusted by the group's oom_score_adj."""
        st = self.st
        p = self.find_lock_task_mm(t)
        if p < 0:
            return LONG_MIN
        adj = int(st.oom_score_adj[int(st.tgid[t])])
        mm = int(st.mm[p])
        if adj == OOM_SCORE_ADJ_MIN or st.mm_oom_skip[mm]:
            return LONG_MIN
        points = int(st.owned[mm, ANON]) + int(st.owned[mm, UNEVICTABLE])
        return points + adj * (totalpages // 1000)

    def emu_oom_killable(self, t: int) -> bool:
        """mem_cgroup_scan_tasks() with CSS_TASK_ITER_PROCS visits each thread group once (its
        leader, while any thread of the group lives); oom_unkillable_task() drops kthreads."""
        st = self.st
        if int(st.tgid[t]) != t or (int(st.flags[t]) & PF_KTHREAD):
            return False
        if int(st.state[t]) != TaskState.EXITED:
            return True
        return not self.emu_thread_group_empty(t)

    def select_bad_process(self, memcg: int, totalpages: int) -> int:
        """Returns the victim, -1 if none, -2 if the scan aborted on a pending victim.

        Order: memcgs of the subtree in pre-order, processes of each memcg in pid order; a
        candidate replaces the choice unless its score is strictly lower (ties go later).
        The scan has no side effects, so it is one pass over the task table keeping the
        candidate with the largest (points, pre-order position of its memcg, pid), and -2 as
        soon as a candidate is a pending victim: O(tasks) per scan, as css_task_iter walks
        every task of the domain's css_sets.  emu_oom_killable() and oom_badness() of a
        leader that needs its other threads (exited, or past exit_mm()) read a table of the
        thread groups built once per scan (emu_thread_groups) instead of a walk per leader."""
        st = self.st
        n = st.n_tasks
        lo, hi = int(st.pos[memcg]), int(st.subtree_end[memcg])
        tgid, flags, cg = st.tgid[:n].tolist(), st.flags[:n].tolist(), st.memcg[:n].tolist()
        pos, state, has_mm = st.pos.tolist(), st.state[:n].tolist(), st.has_mm[:n].tolist()
        groups = None
        chosen, chosen_points, chosen_pos = -1, LONG_MIN, -1
        for t in range(n):
            if tgid[t] != t or flags[t] & PF_KTHREAD or cg[t] < 0:
                continue
            at = pos[cg[t]]
            if not lo <= at < hi:
                continue
            if groups is None and (state[t] == TaskState.EXITED or not has_mm[t]):
                groups = self.emu_thread_groups()
            if state[t] == TaskState.EXITED and not groups[0][t]:  # emu_oom_killable()
                continue
            oom_mm = int(st.oom_mm[t])  # tsk_is_oom_victim(): signal->oom_mm is set
            if oom_mm >= 0:
                if st.mm_oom_skip[oom_mm]:
                    continue
                return -2
            # oom_badness(t, totalpages), find_lock_task_mm() from the table
            p = t if has_mm[t] else groups[1][t]
            if p < 0:
                continue
            adj = int(st.oom_score_adj[t])
            mm = int(st.mm[p])
            if adj == OOM_SCORE_ADJ_MIN or st.mm_oom_skip[mm]:
                continue
            points = int(st.owned[mm, ANON]) + int(st.owned[mm, UNEVICTABLE]) \
                + adj * (totalpages // 1000)
            if points < chosen_points or (points == chosen_points and at < chosen_pos):
                continue
            chosen, chosen_points, chosen_pos = t, points, at
        return chosen

    def emu_thread_groups(self) -> tuple[list[int], list[int]]:
        """(live, first_mm) by leader pid: the group's threads not yet exited (so
        thread_group_empty() of an exited leader is ``live == 0``), and its first thread
        that still has an mm (find_lock_task_mm(), -1 if none)."""
        st = self.st
        n = st.n_tasks
        live, first_mm = [0] * n, [-1] * n
        for k, (g, s, h) in enumerate(zip(st.tgid[:n].tolist(), st.state[:n].tolist(),
                                          st.has_mm[:n].tolist())):
            if s != TaskState.EXITED:
                live[g] += 1
            if h and first_mm[g] < 0:
                first_mm[g] = k
        return live, first_mm

    def out_of_memory(self, t: int, memcg: int) -> bool:
        if self.task_will_free_mem(t):
            self.mark_oom_victim(t)
            return True
        totalpages = self.mem_cgroup_get_max(memcg) or 1
        victim = self.select_bad_process(memcg, totalpages)
        if victim == -1:
            return False
        if victim == -2:
            return True
        self.oom_kill_process(t, victim, memcg)
        return True

    def mem_cgroup_get_oom_group(self, victim: int, oom_domain: int) -> int:
        st = self.st
        m = int(st.memcg[victim])
        if m == 0 or not self.mem_cgroup_is_descendant(m, oom_domain):
            return -1
        oom_group = -1
        while m >= 0:
            if st.oom_group[m]:
                oom_group = m
            if m == oom_domain:
                break
            m = int(st.parent[m])
        return oom_group

    def oom_kill_process(self, t: int, victim: int, memcg: int) -> None:
        """mm/oom_kill.c: oom_kill_process().  The victim is killed, then (oom.group) every
        process of the group's subtree but the OOM_SCORE_ADJ_MIN ones, the victim again
        included: it has not exited yet, so it is killed and counted again.  In step mode the
        killed tasks that are in user space exit only after the whole kill."""
        st = self.st
        if self.task_will_free_mem(victim):
            self.mark_oom_victim(victim)
            return
        oom_group = self.mem_cgroup_get_oom_group(victim, memcg)
        self._oom_kill_process(t, victim)
        if oom_group >= 0:
            self.memcg_memory_event(oom_group, MEMCG_OOM_GROUP_KILL)
            # mem_cgroup_scan_tasks(oom_group, oom_kill_memcg_member): memcgs in pre-order,
            # pids ascending in each.  The kills change none of what selects the members
            # (memcg, tgid, state, flags, oom_score_adj), so they are chosen in one pass over
            # the task table and then killed in that order.
            lo, hi = int(st.pos[oom_group]), int(st.subtree_end[oom_group])
            members = []
            for k in range(st.n_tasks):
                m = int(st.memcg[k])
                if int(st.tgid[k]) != k or m < 0 or not lo <= int(st.pos[m]) < hi:
                    continue
                if not self.emu_oom_killable(k):
                    continue
                if int(st.oom_score_adj[k]) == OOM_SCORE_ADJ_MIN:
                    continue
                members.append((int(st.pos[m]), k))
            for _, k in sorted(members):
                self._oom_kill_process(t, k)
        self.emu_exit_killed()

    def _oom_kill_process(self, t: int, victim: int) -> None:
        """mm/oom_kill.c: __oom_kill_process(): count the kill (OOM_KILL on the memcg of the
        mm's owner), SIGKILL the victim's thread group, mark the thread that still has the mm,
        SIGKILL every other user process sharing the mm, queue the reaper.  A process whose
        threads have all passed exit_mm() is skipped and not counted."""
        st = self.st
        p = self.find_lock_task_mm(victim)
        if p < 0:
            return
        mm = int(st.mm[p])
        self.memcg_memory_event(int(st.memcg[mm]), MEMCG_OOM_KILL)
        self._stat(Stat.OOM_KILLS)
        leader = int(st.tgid[p])
        self.emu_send_sigkill(t, leader)
        self.mark_oom_victim(p)
        if int(st.mm_users[mm]) > 1:
            for k in range(st.n_tasks):
                if st.has_mm[k] and int(st.mm[k]) == mm and int(st.tgid[k]) != leader \
                        and not (int(st.flags[k]) & PF_KTHREAD) and not st.sigkill[k]:
                    self.emu_send_sigkill(t, int(st.tgid[k]))

    def emu_send_sigkill(self, t: int, leader: int) -> None:
        """do_send_sig_info(SIGKILL, ..., PIDTYPE_TGID): a fatal signal on every thread of
        the group.  Step mode: a thread in user space (running, not the caller t) is marked
        to exit once the whole kill is done (emu_exit_killed)."""
        st = self.st
        lifecycle = self._cfg(Cfg.TIMED_LIFECYCLE)
        for k in range(leader, st.n_tasks):
            if int(st.tgid[k]) != leader or int(st.state[k]) == TaskState.EXITED:
                continue
            st.sigkill[k] = 1
            if k != t and int(st.state[k]) == TaskState.RUNNING and (
                    lifecycle == 0 or (lifecycle == 2 and st.in_user[k])):
                st.exit_pending[k] = 1

    def emu_exit_killed(self) -> None:
        """Step mode: the tasks killed in user space take the signal now (do_exit)."""
        st = self.st
        for k in range(st.n_tasks):
            if st.exit_pending[k]:
                st.exit_pending[k] = 0
                self.exit_task(k)

    def emu_free_owned(self, t: int, kinds: tuple[int, ...]) -> int:
        """Free pages task t owns: anon resident first, then its swap entries."""
        st = self.st
        m = int(st.page_memcg[t])
        freed = 0
        if m <= 0:
            for k in kinds:
                st.owned[t, k] = 0
            return 0
        for k in kinds:
            n = int(st.owned[t, k])
            if not n:
                continue
            resident = min(n, int(st.pool[m, k]))
            if resident:
                st.pool[m, k] -= resident
                self.page_counter_uncharge(m, resident)
            if k == ANON:
                swapped = min(n - resident, int(st.pool[m, SWAP]))
                if swapped:
                    st.pool[m, SWAP] -= swapped
                    self.swap_counter_uncharge(m, swapped)
            st.owned[t, k] = 0
            freed += resident
        return freed

    def exit_task(self, t: int) -> None:
        """do_exit(): PF_EXITING, then exit_mm(): the task drops its mm; the last user's
        mmput() runs exit_mmap(), which frees the mm's anon/mlocked/kernel pages and sets
        MMF_OOM_SKIP.  Page cache stays charged.  Per-task reclaim debts are dropped
        (docs/model.md §12)."""
        st = self.st
        if int(st.state[t]) == TaskState.EXITED:
            return
        st.flags[t] |= PF_EXITING
        mm = int(st.mm[t])
        last = True
        if st.has_mm[t]:
            st.has_mm[t] = 0
            st.mm_users[mm] -= 1
            last = int(st.mm_users[mm]) == 0
        if last:  # exit_mmap()
            self.emu_free_owned(mm, (ANON, UNEVICTABLE, KERNEL))
            st.mm_oom_skip[mm] = 1
            st.reap_queued[mm] = 0
            st.mmap_locked[mm] = 0
        st.state[t] = TaskState.EXITED
        st.exit_pending[t] = 0
        st.memcg_nr_pages_over_high[t] = 0
        st.memcg_nr_pages_over_max[t] = 0
        st.notify_resume[t] = 0

    def oom_reap_task(self, t: int, final_attempt: bool) -> int:
        """One oom_reap_task_mm() attempt on mm row t (timed simulation calls it when the
        victim's OOM_REAPER_DELAY has passed, then every HZ/10).  Returns pages freed, or -1
        if its mmap_lock is held; after the last attempt MMF_OOM_SKIP is set either way."""
        st = self.st
        if not st.reap_queued[t]:
            return 0
        if not st.mm_users[t]:
            st.reap_queued[t] = 0
            return 0
        if st.mmap_locked[t]:
            if final_attempt:
                st.reap_queued[t] = 0
                st.mm_oom_skip[t] = 1
            return -1
        st.reap_queued[t] = 0
        freed = self.emu_free_owned(t, (ANON, UNEVICTABLE))
        st.mm_oom_skip[t] = 1
        self._stat(Stat.REAPED_PAGES, freed)
        return freed

    def oom_reaper(self) -> int:
        """Run the OOM reaper for every queued victim (its OOM_REAPER_DELAY has passed).
        A victim whose mmap_lock is held cannot be reaped: all MAX_OOM_REAP_RETRIES attempts
        fail in step mode.  MMF_OOM_SKIP is set either way.  Returns pages freed."""
        st = self.st
        freed = 0
        for t in range(st.n_tasks):
            if not st.reap_queued[t]:
                continue
            st.reap_queued[t] = 0
            if not st.mm_users[t]:
                continue
            if not st.mmap_locked[t]:
                freed += self.emu_free_owned(t, (ANON, UNEVICTABLE))
            # else: every one of the MAX_OOM_REAP_RETRIES trylocks fails while it is held
            st.mm_oom_skip[t] = 1
        self._stat(Stat.REAPED_PAGES, freed)
        return freed

    # =========================================================================================
    # tasks and scopes (docs/model.md §12)
    # =========================================================================================
    def memalloc_flags_save(self, t: int, flags: int) -> int:
        st = self.st
        depth = int(st.scope_depth[t])
        if depth >= MAX_SCOPE_DEPTH:
            return -1
        saved = ~int(st.flags[t]) & flags
        st.flags[t] |= flags
        st.scope_stack[t, depth] = saved
        st.scope_depth[t] = depth + 1
        return saved

    def memalloc_flags_restore(self, t: int, saved: int) -> int:
        """Clears the bits in ``saved``.  -1 (nothing changed) if no scope is open or
        ``saved`` is not what the innermost save returned."""
        st = self.st
        depth = int(st.scope_depth[t])
        if depth == 0 or int(st.scope_stack[t, depth - 1]) != saved:
            return -1
        st.scope_depth[t] = depth - 1
        st.flags[t] &= ~saved
        return 0

    def memalloc_account_force_restore(self, t: int) -> int:
        """The v1 helper: ignores what save returned and always clears the flag
        (docs/model.md §17.6).
        accountforce_restore=nesting-safe: clears only what the matching save set, i.e.
        memalloc_flags_restore(saved) with the innermost scope's saved value."""
        st = self.st
        depth = int(st.scope_depth[t])
        if depth == 0:
            return -1
        st.scope_depth[t] = depth - 1
        if self.kn[Knob.ACCOUNTFORCE_RESTORE]:
            st.flags[t] &= ~int(st.scope_stack[t, depth - 1])
        else:
            st.flags[t] &= ~PF_MEMALLOC_ACCOUNTFORCE
        return 0

    def set_active_memcg(self, t: int, memcg: int) -> int:
        st = self.st
        old = int(st.active_memcg[t])
        st.active_memcg[t] = memcg
        return old

    def attach_task(self, t: int, memcg: int) -> None:
        """cgroup.procs write: the whole thread group moves; charges stay where they are (v2
        does not move them), and the mm's pages stay attributed to it in the old memcg."""
        st = self.st
        leader = int(st.tgid[t])
        for k in range(leader, st.n_tasks):
            if int(st.tgid[k]) == leader:
                st.memcg[k] = memcg

    def block_task(self, t: int) -> None:
        self.st.state[t] = TaskState.BLOCKED

    def wake_task(self, t: int) -> None:
        """End an uninterruptible wait.  Step mode: a killed task was woken from its wait
        and exits (its kernel path has nothing left to do).  Timed mode: it runs on; the
        scheduler delivers the signal at its next return to user space or killable wait."""
        st = self.st
        if int(st.state[t]) != TaskState.BLOCKED:
            return
        st.state[t] = TaskState.RUNNING
        if st.sigkill[t] and not self._cfg(Cfg.TIMED_LIFECYCLE):
            self.exit_task(t)

    def kill_task(self, t: int) -> None:
        """kill(SIGKILL) from user space to t's process: every thread gets the fatal signal.
        Step mode: the running threads exit at once, a blocked one when woken.  Timed mode:
        only the signal; the scheduler delivers it."""
        st = self.st
        if int(st.state[t]) == TaskState.EXITED:
            return
        self.emu_send_sigkill(-1, int(st.tgid[t]))
        self.emu_exit_killed()

    # =========================================================================================
    # control files (docs/model.md §10)
    # =========================================================================================
    def memory_max_write(self, memcg: int, nr: int, nonblock: bool) -> int:
        st = self.st
        st.max[memcg] = nr
        if nonblock:
            return 0
        drained = False
        nr_reclaims = MAX_RECLAIM_RETRIES
        nokill = 0
        while True:
            nr_pages = int(st.usage[memcg])
            if nr_pages <= nr:
                break
            if not drained:
                self.drain_all_stock(memcg)
                drained = True
                continue
            if nr_reclaims:
                if not self.try_to_free_mem_cgroup_pages(-1, memcg, nr_pages - nr, GFP_KERNEL,
                                                         True, 0):
                    nr_reclaims -= 1
                continue
            self.memcg_memory_event(memcg, MEMCG_OOM)
            kills = int(st.stats[Stat.OOM_KILLS])
            if not self.mem_cgroup_out_of_memory(-1, memcg, GFP_KERNEL, 0):
                break
            if int(st.stats[Stat.OOM_KILLS]) != kills:
                nokill = 0
            else:
                nokill += 1
                if nokill >= self._cfg(Cfg.LIVELOCK_LIMIT):
                    self.emu_record_livelock(-1, memcg, Site.MEMORY_MAX_WRITE)
                    break
        return 0

    def memory_high_write(self, memcg: int, nr: int, nonblock: bool) -> int:
        st = self.st
        st.high[memcg] = nr
        if nonblock:
            return 0
        drained = False
        nr_retries = MAX_RECLAIM_RETRIES
        while True:
            nr_pages = int(st.usage[memcg])
            if nr_pages <= nr:
                break
            if not drained:
                self.drain_all_stock(memcg)
                drained = True
                continue
            reclaimed = self.try_to_free_mem_cgroup_pages(-1, memcg, nr_pages - nr, GFP_KERNEL,
                                                          True, 0)
            if not reclaimed:
                retries = nr_retries
                nr_retries -= 1
                if not retries:
                    break
        return 0

    def memory_min_write(self, memcg: int, nr: int) -> None:
        self.st.min[memcg] = nr
        self.page_counter_set_protection(memcg)

    def memory_low_write(self, memcg: int, nr: int) -> None:
        self.st.low[memcg] = nr
        self.page_counter_set_protection(memcg)

    def memory_reclaim(self, memcg: int, nr_to_reclaim: int, swappiness_zero: int) -> int:
        """memory.reclaim; returns 0 or -EAGAIN."""
        nr_reclaimed = 0
        nr_retries = MAX_RECLAIM_RETRIES
        while nr_reclaimed < nr_to_reclaim:
            batch_size = (nr_to_reclaim - nr_reclaimed) // 4
            # (lru_add_drain_all() before the last attempt has nothing to drain here)
            reclaimed = self.try_to_free_mem_cgroup_pages(-1, memcg, batch_size, GFP_KERNEL,
                                                          True, swappiness_zero)
            if not reclaimed:
                retries = nr_retries
                nr_retries -= 1
                if not retries:
                    return -EAGAIN
            nr_reclaimed += reclaimed
        return 0

    # =========================================================================================
    # replay (docs/design.md §3.2): one loop over an event array, the same paths as the step API
    # =========================================================================================
    def emu_replay_one(self, op: int, t: int, arg: int, memcg: int, gfp: int, kind: int
                       ) -> tuple[int, int, int]:
        """Apply one event.  Returns (err, rc, outcome); err != 0 means nothing was applied.
        Static validity (ranges, op/kind pairs) was checked before the loop."""
        st = self.st
        if t >= 0:
            state = int(st.state[t])
            if state == TaskState.EXITED:
                return ERR_TASK_EXITED, 0, 0
            if state == TaskState.BLOCKED and op not in (OP_ATTACH, OP_KILL, OP_WAKE):
                return ERR_TASK_BLOCKED, 0, 0
        rc = 0
        outcome = 0
        if op == OP_CHARGE:
            rc = self.charge(t, arg, gfp, kind, memcg)
            outcome = int(st.tc_outcome[t])
        elif op == OP_UNCHARGE:
            if self.uncharge(t, arg, kind, memcg) < 0:
                return ERR_POOL_SHORT, 0, 0
        elif op == OP_RETURN_TO_USER:
            livelocks = int(st.stats[Stat.LIVELOCKS])
            rc = self.return_to_user(t)
            if rc:
                outcome |= OUT_THROTTLED
            if int(st.stats[Stat.LIVELOCKS]) != livelocks:
                outcome |= OUT_LIVELOCK
        elif op == OP_FLAGS_SAVE or op == OP_ACCOUNT_FORCE_SAVE:
            if int(st.scope_depth[t]) >= MAX_SCOPE_DEPTH:
                return ERR_SCOPE_DEPTH, 0, 0
            rc = self.memalloc_flags_save(
                t, arg if op == OP_FLAGS_SAVE else PF_MEMALLOC_ACCOUNTFORCE)
        elif op == OP_FLAGS_RESTORE:
            depth = int(st.scope_depth[t])
            if depth == 0:
                return ERR_NO_SCOPE, 0, 0
            self.memalloc_flags_restore(t, int(st.scope_stack[t, depth - 1]))
        elif op == OP_ACCOUNT_FORCE_RESTORE:
            if int(st.scope_depth[t]) == 0:
                return ERR_NO_SCOPE, 0, 0
            self.memalloc_account_force_restore(t)
        elif op == OP_SET_ACTIVE_MEMCG:
            rc = self.set_active_memcg(t, memcg)
        elif op == OP_ATTACH:
            self.attach_task(t, memcg)
        elif op == OP_EXIT:
            self.exit_task(t)
        elif op == OP_KILL:
            self.kill_task(t)
        elif op == OP_BLOCK:
            self.block_task(t)
        elif op == OP_WAKE:
            if int(st.state[t]) != TaskState.BLOCKED:
                return ERR_NOT_BLOCKED, 0, 0
            self.wake_task(t)
        elif op == OP_SET_MAX:
            ooms = int(st.stats[Stat.OOM_CALLS])
            livelocks = int(st.stats[Stat.LIVELOCKS])
            self.memory_max_write(memcg, arg, False)
            if int(st.stats[Stat.OOM_CALLS]) != ooms:
                outcome |= OUT_OOM
            if int(st.stats[Stat.LIVELOCKS]) != livelocks:
                outcome |= OUT_LIVELOCK
        elif op == OP_SET_HIGH:
            self.memory_high_write(memcg, arg, False)
        elif op == OP_SET_LOW:
            self.memory_low_write(memcg, arg)
        elif op == OP_SET_MIN:
            self.memory_min_write(memcg, arg)
        elif op == OP_SET_SWAP_MAX:
            st.swap_max[memcg] = arg
        elif op == OP_SET_DIRTY or op == OP_START_WRITEBACK or op == OP_END_WRITEBACK:
            src, dst = {OP_SET_DIRTY: (FILE, FILE_DIRTY),
                        OP_START_WRITEBACK: (FILE_DIRTY, FILE_WRITEBACK),
                        OP_END_WRITEBACK: (FILE_WRITEBACK, FILE)}[op]
            if self.emu_move_pages(memcg, src, dst, arg) < 0:
                return ERR_POOL_SHORT, 0, 0
        elif op == OP_OOM_REAP:
            rc = self.oom_reaper()
        elif op == OP_RECLAIM:
            rc = self.memory_reclaim(memcg, arg, 0)
        return 0, rc, outcome

    def first_invalid_event(self, events, sorted_time: bool = False) -> int:
        """Index of the first event breaking a static rule of replay.validate_events, or -1."""
        from .replay import validate_events

        st = self.st
        try:
            validate_events(events, st.n_tasks, st.online[: st.n_cgroups],
                            st.flags[: st.n_tasks], require_sorted_time=sorted_time)
        except ValueError as exc:
            return int(str(exc).split(":", 1)[0].split()[1])
        return -1

    def replay_loop(self, events, rc_out, outcome_out, sample_every: int, sample_dt: int,
                    sample_idx, sample_time, sample_usage, sample_max, sample_events,
                    checked: bool = False, validate: bool = False
                    ) -> tuple[int, int, int, int]:
        """Run ``events`` in order.  Returns (n_done, err, err_index, n_samples).

        Sampling (after an event): every ``sample_every`` events, and/or whenever an event's
        time reaches the next multiple of ``sample_dt`` past the first event's time; at most
        ``len(sample_idx)`` samples, of the first ``sample_usage.shape[1]`` cgroups.
        ``checked``: the caller already ran first_invalid_event (Python indexing is safe
        either way, so the reference ignores it).  ``validate``: the first event that breaks
        a rule of first_invalid_event stops the loop with ERR_INVALID, nothing of it applied
        (the compiled loop checks each event as it reaches it; the same result)."""
        st = self.st
        n = len(events)
        bad = self.first_invalid_event(events, sample_dt > 0) if validate else -1
        if bad >= 0:
            n = bad
        n_cg = sample_usage.shape[1]
        cap = sample_idx.shape[0]
        ns = 0
        next_time = (int(events[0]["time"]) + sample_dt) if (n and sample_dt > 0) else 0
        for i in range(n):
            e = events[i]
            t = int(e["time"])
            err, rc, outcome = self.emu_replay_one(int(e["op"]), int(e["task"]), int(e["arg"]),
                                                   int(e["memcg"]), int(e["gfp"]),
                                                   int(e["kind"]))
            if err:
                return i, err, i, ns
            rc_out[i] = rc
            outcome_out[i] = outcome
            take = sample_every > 0 and (i + 1) % sample_every == 0
            if sample_dt > 0 and t >= next_time:
                take = True
                while next_time <= t:
                    next_time += sample_dt
            if take and ns < cap:
                sample_idx[ns] = i
                sample_time[ns] = t
                for c in range(n_cg):
                    sample_usage[ns, c] = st.usage[c]
                    sample_max[ns, c] = st.max[c]
                    for k in range(sample_events.shape[2]):
                        sample_events[ns, c, k] = st.events[c, k]
                ns += 1
        if bad >= 0:
            return bad, ERR_INVALID, bad, ns
        return n, 0, -1, ns
