"""MemcgState: every piece of emulator state as plain numpy arrays (struct-of-arrays).

Both engines (``_reference.Engine`` and ``_core.Engine``) mutate one ``MemcgState`` in place,
so Python can inspect, copy and compare it field by field.  All quantities are base pages in
signed int64 (the kernel's ``usage`` is a signed ``atomic_long_t`` so underflow shows).

Hierarchy: ``parent[c] < c`` and ``parent[0] == -1`` (0 is the root).  ``preorder`` lists the
live cgroups in pre-order; ``pos[c]`` is c's index in it and ``subtree_end[c]`` the index one
past its last descendant, so ``preorder[pos[c]:subtree_end[c]]`` is c's subtree.
"""
from __future__ import annotations

import numpy as np

from ._constants import (
    NR_CFG,
    NR_KINDS,
    NR_KNOBS,
    NR_MEMCG_EVENTS,
    NR_MEMCG_STOCK,
    NR_STATS,
    OOM_REAPER_DELAY,
    PAGE_COUNTER_MAX,
    Cfg,
    Knob,
)

MAX_SCOPE_DEPTH = 32

# name -> (default fill, trailing shape)
CGROUP_FIELDS: dict[str, tuple[int, tuple[int, ...]]] = {
    "parent": (-1, ()),
    "online": (0, ()),
    "pos": (-1, ()),
    "subtree_end": (-1, ()),
    "preorder": (-1, ()),  # indexed by position, not by cgroup
    # struct page_counter (memory)
    "usage": (0, ()),
    "max": (PAGE_COUNTER_MAX, ()),
    "high": (PAGE_COUNTER_MAX, ()),
    "low": (0, ()),
    "min": (0, ()),
    "emin": (0, ()),
    "elow": (0, ()),
    "min_usage": (0, ()),
    "low_usage": (0, ()),
    "children_min_usage": (0, ()),
    "children_low_usage": (0, ()),
    "watermark": (0, ()),
    "local_watermark": (0, ()),
    "failcnt": (0, ()),
    # struct page_counter (swap); no protection support
    "swap_usage": (0, ()),
    "swap_max": (PAGE_COUNTER_MAX, ()),
    "swap_high": (PAGE_COUNTER_MAX, ()),
    "swap_watermark": (0, ()),
    "oom_group": (0, ()),
    "events": (0, (NR_MEMCG_EVENTS,)),
    "events_local": (0, (NR_MEMCG_EVENTS,)),
    "pool": (0, (NR_KINDS,)),  # pages charged to this memcg itself, by PageKind
    "pgscan": (0, ()),
    "pgsteal": (0, ()),
    "cg_livelocks": (0, ()),
}

TASK_FIELDS: dict[str, tuple[int, tuple[int, ...]]] = {
    "memcg": (0, ()),  # cgroup the task is in; kthreads sit in root
    # Threads and mms.  A task row t doubles as the row of the mm it created (mm[t] == t for
    # a process's first task): the per-mm fields below (marked "per mm") are read at row
    # mm[t].  Thread-group-wide fields (signal_struct) are read at the leader's row tgid[t].
    "tgid": (-1, ()),  # thread group leader's pid (the task itself for a process)
    "mm": (-1, ()),  # row of the mm it uses (kept after exit_mm, then has_mm = 0)
    "mm_users": (0, ()),  # per mm: tasks whose ->mm is this mm (mm_users)
    "oom_mm": (-1, ()),  # per thread group (leader row): signal->oom_mm, -1 = none
    "exit_pending": (0, ()),  # step mode: killed in user space; exits when the kill is done
    "in_user": (0, ()),  # timed, in a synchronous write (TIMED_LIFECYCLE 2): in user space
    "has_mm": (0, ()),  # 0 for a kernel thread
    "flags": (0, ()),  # PF_* bits
    "cpu": (0, ()),
    "oom_score_adj": (0, ()),
    "state": (0, ()),  # TaskState
    "sigkill": (0, ()),  # fatal signal pending (SIGNAL_GROUP_EXIT)
    "oom_victim": (0, ()),  # TIF_MEMDIE: mark_oom_victim() chose this thread
    "mm_oom_skip": (0, ()),  # per mm: MMF_OOM_SKIP
    "mmap_locked": (0, ()),  # per mm: mmap_lock held for write or waited on (trylock fails)
    "reap_queued": (0, ()),  # per mm: queued for the OOM reaper
    "memcg_nr_pages_over_high": (0, ()),
    "memcg_nr_pages_over_max": (0, ()),
    "memcg_over_max_target": (-1, ()),  # over_max_target=charged: memcg to repay, -1 = none
    "active_memcg": (-1, ()),
    "notify_resume": (0, ()),  # TIF_NOTIFY_RESUME
    "page_memcg": (-1, ()),  # per mm: memcg its owned pages are charged to
    "owned": (0, (NR_KINDS,)),  # per mm: pages it owns by kind (anon: resident + swapped)
    "scope_depth": (0, ()),
    "scope_stack": (0, (MAX_SCOPE_DEPTH,)),
    "livelock_site": (0, ()),  # Site of its last bounded livelock
    "livelocks": (0, ()),
    "throttle_jiffies": (0, ()),  # memory.high penalty slept, total
    # try_charge_memcg locals (resumable state machine, docs/design.md §3)
    "tc_label": (0, ()),
    "tc_memcg": (-1, ()),
    "tc_gfp": (0, ()),
    "tc_kind": (0, ()),  # PageKind of the pending charge (committed at DONE)
    "tc_nr_pages": (0, ()),
    "tc_batch": (0, ()),
    "tc_retries": (0, ()),
    "tc_drained": (0, ()),
    "tc_passed_oom": (0, ()),
    "tc_raised_max": (0, ()),
    "tc_may_swap": (0, ()),
    "tc_mem_over_limit": (-1, ()),
    "tc_reclaimed": (0, ()),
    "tc_oom_nokill": (0, ()),
    "tc_outcome": (0, ()),
    "tc_rc": (0, ()),
    # mem_cgroup_handle_over_high locals
    "hh_label": (0, ()),
    "hh_memcg": (-1, ()),
    "hh_gfp": (0, ()),
    "hh_nr_pages": (0, ()),
    "hh_retries": (0, ()),
    "hh_in_retry": (0, ()),
    "hh_penalty": (0, ()),
    # mem_cgroup_handle_over_max locals (patch)
    "hm_label": (0, ()),
    "hm_memcg": (-1, ()),
    "hm_over": (-1, ()),
    "hm_nr_pages": (0, ()),
    "hm_reclaimed": (0, ()),
    "hm_retries": (0, ()),
    "hm_oom_nokill": (0, ()),
    "hm_drained": (0, ()),  # over_max_reclaim=excess: drain_all_stock done
}


def _alloc(fields: dict, n: int) -> dict[str, np.ndarray]:
    return {
        name: np.full((n, *shape), fill, dtype=np.int64) for name, (fill, shape) in fields.items()
    }


class MemcgState:
    """All arrays of one emulated machine.  Attributes are the field names above plus
    ``stock_memcg``/``stock_pages`` (``[nr_cpus, NR_MEMCG_STOCK]``), ``config``, ``stats`` and ``knobs``."""

    def __init__(self, nr_cpus: int, cg_capacity: int = 16, task_capacity: int = 16):
        self.cg_capacity = cg_capacity
        self.task_capacity = task_capacity
        for name, arr in _alloc(CGROUP_FIELDS, cg_capacity).items():
            setattr(self, name, arr)
        for name, arr in _alloc(TASK_FIELDS, task_capacity).items():
            setattr(self, name, arr)
        self.stock_memcg = np.full((nr_cpus, NR_MEMCG_STOCK), -1, dtype=np.int64)
        self.stock_pages = np.zeros((nr_cpus, NR_MEMCG_STOCK), dtype=np.int64)
        self.config = np.zeros(NR_CFG, dtype=np.int64)
        self.stats = np.zeros(NR_STATS, dtype=np.int64)
        self.config[Cfg.NR_CPUS] = nr_cpus
        # the policy (memcg_emu.policy); engines read it when they bind; baseline by default
        self.knobs = np.zeros(NR_KNOBS, dtype=np.int64)
        self.knobs[Knob.OOM_REAPER_DELAY] = OOM_REAPER_DELAY

    # ---- bookkeeping ------------------------------------------------------------------------
    @property
    def n_cgroups(self) -> int:
        return int(self.config[Cfg.N_CGROUPS])

    @property
    def n_tasks(self) -> int:
        return int(self.config[Cfg.N_TASKS])

    def field_names(self) -> list[str]:
        return [*CGROUP_FIELDS, *TASK_FIELDS, "stock_memcg", "stock_pages", "config", "stats",
                "knobs"]

    def _grow(self, fields: dict, attr: str, need: int) -> bool:
        cap = getattr(self, attr)
        if need <= cap:
            return False
        new_cap = max(need, 2 * cap)
        for name, (fill, shape) in fields.items():
            old = getattr(self, name)
            new = np.full((new_cap, *shape), fill, dtype=np.int64)
            new[:cap] = old
            setattr(self, name, new)
        setattr(self, attr, new_cap)
        return True

    def reserve(self, n_cgroups: int, n_tasks: int) -> bool:
        """Grow capacity; returns True if any array was reallocated (engines must rebind)."""
        a = self._grow(CGROUP_FIELDS, "cg_capacity", n_cgroups)
        b = self._grow(TASK_FIELDS, "task_capacity", n_tasks)
        return a or b

    def copy(self) -> "MemcgState":
        other = MemcgState.__new__(MemcgState)
        other.cg_capacity = self.cg_capacity
        other.task_capacity = self.task_capacity
        for name in self.field_names():
            setattr(other, name, getattr(self, name).copy())
        return other

    def restore_from(self, snapshot: "MemcgState") -> None:
        """Copy every array of ``snapshot`` back into this state's arrays in place."""
        for name in self.field_names():
            getattr(self, name)[...] = getattr(snapshot, name)

    def view(self) -> dict[str, np.ndarray]:
        """Live-sized views: cgroup fields cut to n_cgroups, task fields to n_tasks."""
        n, t = self.n_cgroups, self.n_tasks
        out = {name: getattr(self, name)[:n] for name in CGROUP_FIELDS}
        out.update({name: getattr(self, name)[:t] for name in TASK_FIELDS})
        for name in ("stock_memcg", "stock_pages", "config", "stats", "knobs"):
            out[name] = getattr(self, name)
        return out

    def rebuild_preorder(self) -> None:
        """Recompute preorder/pos/subtree_end for the online cgroups (children in id order)."""
        n = self.n_cgroups
        children: list[list[int]] = [[] for _ in range(n)]
        for c in range(1, n):
            if self.online[c]:
                children[int(self.parent[c])].append(c)
        order: list[int] = []
        end = np.full(n, -1, dtype=np.int64)
        stack: list[tuple[int, bool]] = [(0, False)]
        while stack:
            c, done = stack.pop()
            if done:
                end[c] = len(order)
                continue
            self.pos[c] = len(order)
            order.append(c)
            stack.append((c, True))
            stack.extend((k, False) for k in reversed(children[c]))
        self.preorder[:] = -1
        self.preorder[: len(order)] = order
        self.subtree_end[:n] = end
        for c in range(n):
            if not self.online[c]:
                self.pos[c] = -1

    # ---- invariants (docs/style.md item 18) ------------------------------------------------------
    def check_invariants(self) -> None:
        """Raise AssertionError naming the field and index of the first broken invariant."""
        n = self.n_cgroups
        usage = self.usage[:n]
        own = self.pool[:n, :6].sum(axis=1)
        stocked = np.zeros(n, dtype=np.int64)
        for cpu in range(self.stock_memcg.shape[0]):
            for s in range(NR_MEMCG_STOCK):
                m = int(self.stock_memcg[cpu, s])
                if m >= 0:
                    stocked[m] += self.stock_pages[cpu, s]
        own = own + stocked
        swap_own = self.pool[:n, 6].copy()
        # bottom-up sums: children have larger ids than parents
        tot, swap_tot = own.copy(), swap_own.copy()
        for c in range(n - 1, 0, -1):
            p = int(self.parent[c])
            tot[p] += tot[c]
            swap_tot[p] += swap_tot[c]
        for c in range(n):
            if usage[c] < 0:
                raise AssertionError(f"usage[{c}] = {usage[c]} < 0")
            if c > 0 and usage[c] != tot[c]:
                raise AssertionError(f"usage[{c}] = {usage[c]} != pools+stock of subtree {tot[c]}")
            if c > 0 and self.swap_usage[c] != swap_tot[c]:
                raise AssertionError(f"swap_usage[{c}] = {self.swap_usage[c]} != {swap_tot[c]}")
            if self.watermark[c] < usage[c]:
                raise AssertionError(f"watermark[{c}] < usage[{c}]")
            if (self.pool[c] < 0).any():
                raise AssertionError(f"pool[{c}] has a negative entry: {self.pool[c]}")
        n_t = self.n_tasks
        users = np.zeros(max(n_t, 1), dtype=np.int64)
        for t in range(n_t):
            if (self.owned[t] < 0).any():
                raise AssertionError(f"owned[{t}] negative: {self.owned[t]}")
            g, m = int(self.tgid[t]), int(self.mm[t])
            if not (0 <= g <= t and int(self.tgid[g]) == g):
                raise AssertionError(f"tgid[{t}] = {g} is not a leader at or before it")
            if not 0 <= m < n_t:
                raise AssertionError(f"mm[{t}] = {m} is not a task row")
            if self.has_mm[t]:
                users[m] += 1
        for m in range(n_t):
            if int(self.mm_users[m]) != int(users[m]):
                raise AssertionError(f"mm_users[{m}] = {int(self.mm_users[m])}, but "
                                     f"{int(users[m])} tasks use that mm")
        if self.stats[13]:
            raise AssertionError(f"{self.stats[13]} page counter underflows")
