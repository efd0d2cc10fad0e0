"""Stubs for the compiled engine ``memcg_emu._core`` (the def/cpdef surface of ``_core.pyx``).

C types are given in trailing comments (pandas style).  Pages are base pages; ids are indices
into the MemcgState arrays (cgroup 0 is the root, -1 means "none").
"""
import enum

import numpy as np

from ._state import MemcgState

# ---- enums twinned with _constants.py / events.py --------------------------------------------
class MemcgEvent(enum.IntEnum):
    MEMCG_LOW = 0
    MEMCG_HIGH = 1
    MEMCG_MAX = 2
    MEMCG_OOM = 3
    MEMCG_OOM_KILL = 4
    MEMCG_OOM_GROUP_KILL = 5
    MEMCG_SWAP_HIGH = 6
    MEMCG_SWAP_MAX = 7
    MEMCG_SWAP_FAIL = 8

class TaskState(enum.IntEnum):
    TASK_RUNNING = 0
    TASK_BLOCKED = 1
    TASK_EXITED = 2

class Site(enum.IntEnum):
    SITE_NONE = 0
    SITE_TRY_CHARGE = 1
    SITE_HANDLE_OVER_MAX = 2
    SITE_MEMORY_MAX_WRITE = 3

class Label(enum.IntEnum):
    IDLE = 0
    RETRY = 1
    RECLAIMED = 2
    NOMEM = 3
    FORCE = 4
    DONE_RESTOCK = 5
    DONE = 6
    HIGH_LOOP = 7
    MAX_RETRY = 8

class Op(enum.IntEnum):
    OP_CHARGE = 0
    OP_UNCHARGE = 1
    OP_RETURN_TO_USER = 2
    OP_FLAGS_SAVE = 3
    OP_FLAGS_RESTORE = 4
    OP_ACCOUNT_FORCE_SAVE = 5
    OP_ACCOUNT_FORCE_RESTORE = 6
    OP_SET_ACTIVE_MEMCG = 7
    OP_ATTACH = 8
    OP_EXIT = 9
    OP_SET_MAX = 10
    OP_SET_HIGH = 11
    OP_SET_LOW = 12
    OP_SET_MIN = 13
    OP_SET_SWAP_MAX = 14
    OP_SET_DIRTY = 15
    OP_START_WRITEBACK = 16
    OP_END_WRITEBACK = 17
    OP_KILL = 18
    OP_BLOCK = 19
    OP_WAKE = 20
    OP_OOM_REAP = 21
    OP_RECLAIM = 22
    OP_NOP = 23

# anonymous cpdef enums: PageKind, Stat, Cfg (array columns), exported as module ints
ANON: int
FILE: int
FILE_DIRTY: int
FILE_WRITEBACK: int
KERNEL: int
UNEVICTABLE: int
SWAP: int
STAT_CHARGES: int
STAT_STOCK_HITS: int
STAT_DRAINS: int
STAT_CPU_DRAINS: int
STAT_RECLAIM_CALLS: int
STAT_RECLAIM_SCANNED: int
STAT_RECLAIM_RECLAIMED: int
STAT_OOM_CALLS: int
STAT_OOM_KILLS: int
STAT_FORCED_CHARGES: int
STAT_FORCED_PAGES_OVER_MAX: int
STAT_LIVELOCKS: int
STAT_ENOMEM: int
STAT_UNDERFLOWS: int
STAT_FLUSHER_WAKEUPS: int
STAT_THROTTLE_JIFFIES: int
STAT_HIGH_RECLAIMS: int
STAT_REAPED_PAGES: int
STAT_OVER_MAX_OOM_SKIPPED: int
CFG_POLICY: int
CFG_NR_CPUS: int
CFG_RECURSIVEPROT: int
CFG_LOCALEVENTS: int
CFG_TOTAL_SWAP: int
CFG_SWAPPINESS: int
CFG_LIVELOCK_LIMIT: int
CFG_RNG: int
CFG_N_CGROUPS: int
CFG_N_TASKS: int
CFG_TIMED_LIFECYCLE: int
KNOB_ACCOUNTFORCE: int
KNOB_ACCOUNTFORCE_RESTORE: int
KNOB_ACCOUNTFORCE_NOWAIT: int
KNOB_ACCOUNTFORCE_KTHREAD: int
KNOB_ACCOUNTFORCE_HIGH: int
KNOB_OVER_MAX_CAP: int
KNOB_OVER_MAX_TARGET: int
KNOB_OVER_MAX_RECLAIM: int
KNOB_OVER_MAX_DYING: int
KNOB_OVER_MAX_OOM_ORDER: int
KNOB_DYING_BYPASS: int
KNOB_OOM_REAPER_DELAY: int
NR_KNOBS: int
AF_OFF: int
AF_V1: int
AF_NOFAIL: int

class Engine:
    """Compiled twin of ``memcg_emu._reference.Engine``; mutates ``st`` in place."""

    @property
    def st(self) -> MemcgState: ...  # the state whose arrays the engine's views alias
    def __init__(self, state: MemcgState) -> None: ...
    def bind(self, state: MemcgState) -> None: ...  # re-take the int64_t[::1] views after growth
    def load_knobs(self) -> None: ...  # copy state.knobs (int64_t[NR_KNOBS]) into emu_knobs_t

    # ---- charge / uncharge -------------------------------------------------------------------
    def charge(
        self,
        t: int,  # task_id_t (int64_t)
        nr_pages: int,  # pages_t (int64_t)
        gfp: int,  # gfp_t (int64_t), kernel gfp bits
        kind: int,  # int64_t, PageKind
        memcg: int,  # cg_id_t (int64_t); -1 = resolve the target (docs/model.md §3)
    ) -> int: ...  # int64_t: 0, -ENOMEM or EMU_LIVELOCK
    def uncharge(self, t: int, nr_pages: int, kind: int, memcg: int) -> int: ...  # 0 or -1
    def emu_move_pages(self, memcg: int, src: int, dst: int, nr_pages: int) -> int: ...  # 0/-1
    def emu_charge_target(self, t: int, kind: int) -> int: ...  # cg_id_t, -1 = not charged
    def drain_all_stock(self, root: int) -> None: ...
    def return_to_user(self, t: int) -> int: ...  # int64_t: jiffies slept

    # ---- tasks and scopes ----------------------------------------------------------------------
    def memalloc_flags_save(self, t: int, flags: int) -> int: ...  # int64_t saved bits or -1
    def memalloc_flags_restore(self, t: int, saved: int) -> int: ...  # 0 or -1
    def memalloc_account_force_restore(self, t: int) -> int: ...  # 0 or -1
    def set_active_memcg(self, t: int, memcg: int) -> int: ...  # cg_id_t: previous, -1 = none
    def attach_task(self, t: int, memcg: int) -> None: ...
    def block_task(self, t: int) -> None: ...
    def wake_task(self, t: int) -> None: ...
    def kill_task(self, t: int) -> None: ...
    def exit_task(self, t: int) -> None: ...
    def oom_reaper(self) -> int: ...  # int64_t: pages freed

    # ---- control files -------------------------------------------------------------------------
    def memory_max_write(self, memcg: int, nr: int, nonblock: bool) -> int: ...  # always 0
    def memory_high_write(self, memcg: int, nr: int, nonblock: bool) -> int: ...  # always 0
    def memory_min_write(self, memcg: int, nr: int) -> None: ...
    def memory_low_write(self, memcg: int, nr: int) -> None: ...
    def memory_reclaim(self, memcg: int, nr_to_reclaim: int, swappiness_zero: int
                       ) -> int: ...  # 0 or -EAGAIN

    # ---- pure helpers (the reference's staticmethods) -------------------------------------------
    def effective_protection(self, usage: int, parent_usage: int, setting: int,
                             parent_effective: int, siblings_protected: int,
                             recursive: int) -> int: ...  # pages_t
    def get_order(self, nr_pages: int) -> int: ...  # int
    def calculate_overage(self, usage: int, high: int) -> int: ...  # u64 (uint64_t)
    def calculate_high_delay(self, nr_pages: int, max_overage: int  # max_overage: u64
                             ) -> int: ...  # u64, jiffies before the 2*HZ clamp
    def emu_scan_count(self, lru_size: int, protection: int, cgroup_size: int,
                       priority: int) -> int: ...  # pages_t

    # ---- replay --------------------------------------------------------------------------------
    def replay_loop(
        self,
        events: np.ndarray,  # const event_t[::1] (events.EVENT_DTYPE)
        rc_out: np.ndarray,  # int32_t[::1], len >= len(events)
        outcome_out: np.ndarray,  # uint8_t[::1], len >= len(events)
        sample_every: int,  # int64_t, 0 = off
        sample_dt: int,  # int64_t, ns; 0 = off
        sample_idx: np.ndarray,  # int64_t[::1], [cap]
        sample_time: np.ndarray,  # int64_t[::1], [cap]
        sample_usage: np.ndarray,  # int64_t[:, ::1], [cap, n_cg]
        sample_max: np.ndarray,  # int64_t[:, ::1], [cap, n_cg]
        sample_events: np.ndarray,  # int64_t[:, :, ::1], [cap, n_cg, <= NR_MEMCG_EVENTS]
        checked: bool = ...,  # the caller validated the events (skip the index pre-check)
        validate: bool = ...,  # check each event as the loop reaches it (ERR_INVALID)
    ) -> tuple[int, int, int, int]: ...  # (n_done, err, err_index, n_samples)


def set_fast_paths(on: bool) -> bool: ...  # replay_loop's shortcuts on/off; returns the old
