"""Kernel constants and emulator enums shared by both engines.

Values are the kernel's (docs/model.md §1).  Every enum here has a twin ``cdef enum`` in
``_core.pxd``; ``tests/test_constants.py`` checks that they agree.
"""
from __future__ import annotations

import enum

import numpy as np

PAGE_SIZE = 4096
PAGE_SHIFT = 12
HZ = 1000

# ---- memcontrol.h / memcontrol.c / internal.h ---------------------------------------------
MEMCG_CHARGE_BATCH = 64
NR_MEMCG_STOCK = 7
MAX_RECLAIM_RETRIES = 16
PAGE_ALLOC_COSTLY_ORDER = 3
SWAP_CLUSTER_MAX = 32
DEF_PRIORITY = 12
MEMCG_MAX_HIGH_DELAY_JIFFIES = 2 * HZ
MEMCG_DELAY_PRECISION_SHIFT = 20
MEMCG_DELAY_SCALING_SHIFT = 14
PAGE_COUNTER_MAX = (2**63 - 1) // PAGE_SIZE  # LONG_MAX / PAGE_SIZE = 2251799813685247
OOM_REAPER_DELAY = 2 * HZ
MAX_OOM_REAP_RETRIES = 10
OOM_SCORE_ADJ_MIN = -1000
OOM_SCORE_ADJ_MAX = 1000
LONG_MIN = -(2**63)

ENOMEM = 12
EAGAIN = 11
EBUSY = 16
EINVAL = 22

# ---- gfp_types.h ----------------------------------------------------------------------------
__GFP_DMA = 0x1
__GFP_HIGHMEM = 0x2
__GFP_DMA32 = 0x4
__GFP_MOVABLE = 0x8
__GFP_RECLAIMABLE = 0x10
__GFP_HIGH = 0x20
__GFP_IO = 0x40
__GFP_FS = 0x80
__GFP_ZERO = 0x100
__GFP_DIRECT_RECLAIM = 0x400
__GFP_KSWAPD_RECLAIM = 0x800
__GFP_WRITE = 0x1000
__GFP_NOWARN = 0x2000
__GFP_RETRY_MAYFAIL = 0x4000
__GFP_NOFAIL = 0x8000
__GFP_NORETRY = 0x10000
__GFP_MEMALLOC = 0x20000
__GFP_COMP = 0x40000
__GFP_NOMEMALLOC = 0x80000
__GFP_HARDWALL = 0x100000
__GFP_THISNODE = 0x200000
__GFP_ACCOUNT = 0x400000
__GFP_ZEROTAGS = 0x800000
__GFP_RECLAIM = __GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM

GFP_ATOMIC = __GFP_HIGH | __GFP_KSWAPD_RECLAIM
GFP_KERNEL = __GFP_RECLAIM | __GFP_IO | __GFP_FS
GFP_KERNEL_ACCOUNT = GFP_KERNEL | __GFP_ACCOUNT
GFP_NOWAIT = __GFP_KSWAPD_RECLAIM | __GFP_NOWARN
GFP_NOIO = __GFP_RECLAIM
GFP_NOFS = __GFP_RECLAIM | __GFP_IO
GFP_USER = __GFP_RECLAIM | __GFP_IO | __GFP_FS | __GFP_HARDWALL
GFP_HIGHUSER = GFP_USER | __GFP_HIGHMEM
GFP_HIGHUSER_MOVABLE = GFP_HIGHUSER | __GFP_MOVABLE
GFP_MASK_ALL = 0xFFFFFF  # every defined bit up to ZEROTAGS

# ---- sched.h PF_* ---------------------------------------------------------------------------
PF_VCPU = 0x1
PF_IDLE = 0x2
PF_EXITING = 0x4
PF_POSTCOREDUMP = 0x8
PF_IO_WORKER = 0x10
PF_WQ_WORKER = 0x20
PF_FORKNOEXEC = 0x40
PF_MCE_PROCESS = 0x80
PF_SUPERPRIV = 0x100
PF_DUMPCORE = 0x200
PF_SIGNALED = 0x400
PF_MEMALLOC = 0x800
PF_NPROC_EXCEEDED = 0x1000
PF_USED_MATH = 0x2000
PF_USER_WORKER = 0x4000
PF_NOFREEZE = 0x8000
PF_KCOMPACTD = 0x10000
PF_KSWAPD = 0x20000
PF_MEMALLOC_NOFS = 0x40000
PF_MEMALLOC_NOIO = 0x80000
PF_LOCAL_THROTTLE = 0x100000
PF_KTHREAD = 0x200000
PF_RANDOMIZE = 0x400000
PF_NO_SETAFFINITY = 0x4000000
PF_MCE_EARLY = 0x8000000
PF_MEMALLOC_PIN = 0x10000000
PF_BLOCK_TS = 0x20000000
PF_MEMALLOC_ACCOUNTFORCE = 0x40000000  # the v1 patch (docs/model.md §13)
PF_SUSPEND_TASK = 0x80000000
PF_MASK_ALL = 0xFFFFFFFF


class MemcgEvent(enum.IntEnum):
    """enum memcg_memory_event (memcontrol.h)."""

    MEMCG_LOW = 0
    MEMCG_HIGH = 1
    MEMCG_MAX = 2
    MEMCG_OOM = 3
    MEMCG_OOM_KILL = 4
    MEMCG_OOM_GROUP_KILL = 5
    MEMCG_SWAP_HIGH = 6
    MEMCG_SWAP_MAX = 7
    MEMCG_SWAP_FAIL = 8


NR_MEMCG_EVENTS = 9
MEMCG_LOW, MEMCG_HIGH, MEMCG_MAX, MEMCG_OOM, MEMCG_OOM_KILL, MEMCG_OOM_GROUP_KILL = range(6)
MEMCG_SWAP_HIGH, MEMCG_SWAP_MAX, MEMCG_SWAP_FAIL = 6, 7, 8
MEMORY_EVENTS_KEYS = ("low", "high", "max", "oom", "oom_kill", "oom_group_kill")
SWAP_EVENTS_KEYS = ("high", "max", "fail")


class PageKind(enum.IntEnum):
    """Emulator page pools per memcg (docs/design.md §2.6).  ``SWAP`` holds swapped-out anon."""

    ANON = 0
    FILE = 1  # clean page cache
    FILE_DIRTY = 2
    FILE_WRITEBACK = 3
    KERNEL = 4  # kmem (objcg-charged), never reclaimable here
    UNEVICTABLE = 5  # mlocked anon
    SWAP = 6  # swap entries (not in memory.current; in memory.swap.current)


NR_KINDS = 7
NR_MEM_KINDS = 6  # kinds that live in memory (everything but SWAP)
KIND_NAMES = {"anon": 0, "file": 1, "file_dirty": 2, "file_writeback": 3, "kernel": 4,
              "unevictable": 5, "swap": 6}


class Knob(enum.IntEnum):
    """Indices of ``state.knobs``: one policy as the kernel paths read it.

    ``memcg_emu.policy`` documents every knob (the kernel code it stands for, its values);
    value 0 is always the unpatched/as-posted behaviour.  The compiled engine copies the array
    into a struct once per bind (``_core.pxd``: ``emu_knobs_t``).
    """

    ACCOUNTFORCE = 0  # AF_*: the patch's hook in try_charge_memcg
    ACCOUNTFORCE_RESTORE = 1  # 0 as posted (clears the flag), 1 nesting-safe
    ACCOUNTFORCE_NOWAIT = 2  # 0 fail-fast charges forced, 1 refused (normal path)
    ACCOUNTFORCE_KTHREAD = 3  # 0 kthreads deferred, 1 refused (normal path)
    ACCOUNTFORCE_HIGH = 4  # 0 forced charges skip the memory.high check, 1 armed
    OVER_MAX_CAP = 5  # 0 none, else pages a memcg may be forced above its max
    OVER_MAX_TARGET = 6  # 0 the mm's memcg, 1 the memcg that was charged
    OVER_MAX_RECLAIM = 7  # 0 as posted, 1 the excess, as memory_max_write()
    OVER_MAX_DYING = 8  # 0 ignored, 1 a dying task leaves the loop
    OVER_MAX_OOM_ORDER = 9  # 0 get_order(deficit) as posted, 1 order 0
    DYING_BYPASS = 10  # 0 off (v6.x), 1 5.15 (before a4ebf1b6)
    OOM_REAPER_DELAY = 11  # jiffies (timed simulation only)
    RECLAIM_WAIT = 12  # RW_*: how direct reclaim sleeps on writeback (timed simulation only)


NR_KNOBS = 13

# values of Knob.RECLAIM_WAIT
RW_V6 = 0  # reclaim_throttle(VMSCAN_THROTTLE_CONGESTED): 1 jiffy, unless the node is clean
RW_5X = 1  # wait_iff_congested(): no bdi is congested on blk-mq, so it never sleeps
RW_CONGESTION_WAIT = 2  # congestion_wait(HZ/10): the full timeout whenever congested
RW_OFF = 3  # reclaim never sleeps

# values of Knob.ACCOUNTFORCE
AF_OFF = 0
AF_V1 = 1  # flagged charges forced, deferred to mem_cgroup_handle_over_max (the patch)
AF_NOFAIL = 2  # flagged __GFP_NOFAIL charges forced at once, nothing deferred


class TaskState(enum.IntEnum):
    """Emulator task state."""

    RUNNING = 0
    BLOCKED = 1  # uninterruptible (D state): cannot die or free memory until woken
    EXITED = 2


class Site(enum.IntEnum):
    """Where a bounded livelock happened (docs/design.md §3: bound, stop, report)."""

    NONE = 0
    TRY_CHARGE = 1
    HANDLE_OVER_MAX = 2
    MEMORY_MAX_WRITE = 3


class Label(enum.IntEnum):
    """States of the resumable kernel paths; names are the kernel's labels/steps."""

    IDLE = 0
    # try_charge_memcg (docs/model.md §5)
    RETRY = 1  # the kernel's `retry:` label (R0)
    RECLAIMED = 2  # just after try_to_free_mem_cgroup_pages() returned (R10)
    NOMEM = 3
    FORCE = 4
    DONE_RESTOCK = 5
    DONE = 6
    # mem_cgroup_handle_over_high (docs/model.md §6.3): `retry_reclaim:`
    HIGH_LOOP = 7
    # mem_cgroup_handle_over_max (docs/model.md §13): `retry:`
    MAX_RETRY = 8


class Stat(enum.IntEnum):
    """Engine-wide counters (``state.stats``)."""

    CHARGES = 0
    STOCK_HITS = 1
    DRAINS = 2  # drain_all_stock calls that drained at least one CPU
    CPU_DRAINS = 3  # per-CPU stock drains (local or remote)
    RECLAIM_CALLS = 4
    RECLAIM_SCANNED = 5
    RECLAIM_RECLAIMED = 6
    OOM_CALLS = 7  # mem_cgroup_out_of_memory invocations
    OOM_KILLS = 8  # tasks SIGKILLed by the OOM killer
    FORCED_CHARGES = 9  # charges that went through FORCE
    FORCED_PAGES_OVER_MAX = 10  # pages charged by ACCOUNTFORCE deferral
    LIVELOCKS = 11
    ENOMEM = 12
    UNDERFLOWS = 13
    FLUSHER_WAKEUPS = 14
    THROTTLE_JIFFIES = 15  # total memory.high penalty slept
    HIGH_RECLAIMS = 16  # reclaim_high calls
    REAPED_PAGES = 17
    OVER_MAX_OOM_SKIPPED = 18  # handle_over_max OOMs refused for order > 3 (docs/model.md §17.2)


NR_STATS = 19


class Cfg(enum.IntEnum):
    """Engine configuration scalars (``state.config``)."""

    POLICY = 0  # unused: the engines read state.knobs (Knob); kept so the indices stay
    NR_CPUS = 1
    RECURSIVEPROT = 2  # cgroup2 mount option memory_recursiveprot
    LOCALEVENTS = 3  # cgroup2 mount option memory_localevents
    TOTAL_SWAP = 4  # total swap space in pages
    SWAPPINESS = 5
    LIVELOCK_LIMIT = 6  # OOM calls that kill nobody, in a row, before a path is declared livelocked
    RNG = 7  # splitmix64 state for refill_stock's random slot
    N_CGROUPS = 8
    N_TASKS = 9
    # 0: step/replay mode (killed tasks in user space exit once the kill is done); 1: timed
    # mode (the scheduler delivers fatal signals); 2: timed mode inside a synchronous
    # memory.max write: tasks with in_user[] set exit as in step mode (the write cannot wait)
    TIMED_LIFECYCLE = 10


NR_CFG = 11

# Return codes beyond the kernel's: an emulator-invented sentinel (never a kernel errno).
EMU_LIVELOCK = -1024

# Outcome bits of one charge (replay reports them per event).
OUT_STOCK_HIT = 1
OUT_FORCED = 2
OUT_RECLAIMED = 4
OUT_OOM = 8
OUT_LIVELOCK = 16
OUT_DEFERRED = 32  # ACCOUNTFORCE deferral (patch)
OUT_THROTTLED = 64  # memory.high penalty slept

PAGES_DTYPE = np.int64
CG_DTYPE = np.int32
