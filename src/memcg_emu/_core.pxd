# memcg_emu._core: the compiled engine, a line-by-line translation of _reference.Engine.
#
# This file is the contract (docs/style.md item 22): typedefs, the enums shared with _constants.py,
# the replay event record, and every kernel path of `Engine` with its kernel provenance.
# _reference.py is the specification; where this engine must compute differently to agree
# with it bit for bit (u64 wrapping, int64 two's complement), the declaration says so.

cimport cython
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t

# ---- typedefs (docs/style.md item 7) -------------------------------------------------------------
# Everything lives in MemcgState's int64 arrays, so ids are int64 too: no narrowing on load.
ctypedef int64_t pages_t    # base pages; signed so that an underflow shows (page_counter.h)
ctypedef int64_t cg_id_t    # cgroup index: 0 = root, -1 = none / "not charged"
ctypedef int64_t task_id_t  # task index: -1 = a context with no task of interest
ctypedef int64_t gfp_t      # gfp mask; the kernel's gfp_t is unsigned int, always >= 0 here
ctypedef uint64_t u64       # the kernel's unsigned long / u64: wraps mod 2**64 like `& U64`

# ---- enums twinned with _constants.py / events.py (checked by tests/test_constants.py) ------
# Named `cpdef enum`s are IntEnums from Python (`_core.Label.RETRY`).  Enums that index arrays
# (PageKind, Stat, Cfg) are anonymous `cpdef enum`s, exported as module ints (`_core.ANON`),
# because Cython 3 refuses a named enum as a memoryview index.  C names carry a prefix where
# the bare name would be too generic or collide (STAT_ENOMEM vs -ENOMEM): Stat -> STAT_,
# Cfg -> CFG_, Knob -> KNOB_, Site -> SITE_, TaskState -> TASK_, Op -> OP_.  Label,
# PageKind and MemcgEvent keep the reference's spelling.

cpdef enum MemcgEvent:  # enum memcg_memory_event (memcontrol.h); columns of events[]
    MEMCG_LOW = 0
    MEMCG_HIGH = 1
    MEMCG_MAX = 2
    MEMCG_OOM = 3
    MEMCG_OOM_KILL = 4
    MEMCG_OOM_GROUP_KILL = 5
    MEMCG_SWAP_HIGH = 6
    MEMCG_SWAP_MAX = 7
    MEMCG_SWAP_FAIL = 8

cpdef enum:  # PageKind: emulator page pools (docs/design.md §2.6); columns of pool[] and owned[]
    ANON = 0
    FILE = 1  # clean page cache
    FILE_DIRTY = 2
    FILE_WRITEBACK = 3
    KERNEL = 4  # objcg-charged kmem, never reclaimable
    UNEVICTABLE = 5  # mlocked anon
    SWAP = 6  # swapped-out anon: in swap_usage, not in usage

cpdef enum TaskState:  # state[]
    TASK_RUNNING = 0
    TASK_BLOCKED = 1  # D state: cannot die or free memory until woken
    TASK_EXITED = 2

cpdef enum Site:  # livelock_site[]: where a bounded livelock was stopped
    SITE_NONE = 0
    SITE_TRY_CHARGE = 1
    SITE_HANDLE_OVER_MAX = 2
    SITE_MEMORY_MAX_WRITE = 3

cpdef enum Label:  # tc_label / hh_label / hm_label: states of the resumable paths
    IDLE = 0
    RETRY = 1  # try_charge_memcg `retry:` (R0)
    RECLAIMED = 2  # just after try_to_free_mem_cgroup_pages() returned (R10)
    NOMEM = 3  # `nomem:`
    FORCE = 4  # `force:`
    DONE_RESTOCK = 5  # `done_restock:`
    DONE = 6  # the path has finished
    HIGH_LOOP = 7  # mem_cgroup_handle_over_high `retry_reclaim:`
    MAX_RETRY = 8  # mem_cgroup_handle_over_max `retry:` (the patch)

cpdef enum:  # Stat: engine-wide counters, indices of stats[]
    STAT_CHARGES = 0
    STAT_STOCK_HITS = 1
    STAT_DRAINS = 2  # drain_all_stock calls that drained at least one CPU
    STAT_CPU_DRAINS = 3
    STAT_RECLAIM_CALLS = 4
    STAT_RECLAIM_SCANNED = 5
    STAT_RECLAIM_RECLAIMED = 6
    STAT_OOM_CALLS = 7
    STAT_OOM_KILLS = 8
    STAT_FORCED_CHARGES = 9
    STAT_FORCED_PAGES_OVER_MAX = 10
    STAT_LIVELOCKS = 11
    STAT_ENOMEM = 12
    STAT_UNDERFLOWS = 13
    STAT_FLUSHER_WAKEUPS = 14
    STAT_THROTTLE_JIFFIES = 15
    STAT_HIGH_RECLAIMS = 16
    STAT_REAPED_PAGES = 17
    STAT_OVER_MAX_OOM_SKIPPED = 18  # handle_over_max OOMs refused for order > 3

cpdef enum:  # Cfg: engine configuration scalars, indices of config[]
    CFG_POLICY = 0  # unused: the policy is knobs[] (emu_knobs_t)
    CFG_NR_CPUS = 1
    CFG_RECURSIVEPROT = 2
    CFG_LOCALEVENTS = 3
    CFG_TOTAL_SWAP = 4  # pages
    CFG_SWAPPINESS = 5
    CFG_LIVELOCK_LIMIT = 6
    CFG_RNG = 7  # splitmix64 state, int64 two's complement of the u64
    CFG_N_CGROUPS = 8
    CFG_N_TASKS = 9
    CFG_TIMED_LIFECYCLE = 10  # 0 step/replay; 1 timed; 2 timed, in a write: in_user[] exit

cpdef enum:  # Knob: indices of state.knobs (memcg_emu.policy documents each knob)
    KNOB_ACCOUNTFORCE = 0
    KNOB_ACCOUNTFORCE_RESTORE = 1
    KNOB_ACCOUNTFORCE_NOWAIT = 2
    KNOB_ACCOUNTFORCE_KTHREAD = 3
    KNOB_ACCOUNTFORCE_HIGH = 4
    KNOB_OVER_MAX_CAP = 5
    KNOB_OVER_MAX_TARGET = 6
    KNOB_OVER_MAX_RECLAIM = 7
    KNOB_OVER_MAX_DYING = 8
    KNOB_OVER_MAX_OOM_ORDER = 9
    KNOB_DYING_BYPASS = 10
    KNOB_OOM_REAPER_DELAY = 11  # read by the timed simulation, not by the engine
    KNOB_RECLAIM_WAIT = 12  # read by the timed simulation, not by the engine
    NR_KNOBS = 13

cpdef enum:  # values of knobs[KNOB_ACCOUNTFORCE]
    AF_OFF = 0
    AF_V1 = 1  # flagged charges forced, repaid by mem_cgroup_handle_over_max (the patch)
    AF_NOFAIL = 2  # flagged __GFP_NOFAIL charges forced at once, nothing deferred

# ---- the policy as the kernel paths read it (docs/style.md item 35) ------------------------------
# A copy of state.knobs taken by bind() (the policy is frozen for the engine's life): each
# path reads the fields it needs, never a policy name, like numpy's bitgen_t handed to its
# distributions.  0 is always the unpatched / as-posted behaviour.
cdef struct emu_knobs_t:
    int64_t accountforce  # AF_*: the patch's hook in try_charge_memcg()
    int64_t accountforce_restore  # 1: memalloc_account_force_restore() clears only what save set
    int64_t accountforce_nowait  # 1: fail-fast charges (no DIRECT_RECLAIM, NORETRY,
                                 # RETRY_MAYFAIL) skip the hook
    int64_t accountforce_kthread  # 1: PF_KTHREAD charges skip the AF_V1 hook (they never repay)
    int64_t accountforce_high  # 1: a deferred forced charge arms memory.high like done_restock
    int64_t over_max_cap  # 0 none, else pages any ancestor may be forced above its max
    int64_t over_max_target  # 1: repay the memcg that was charged, not the mm's
    int64_t over_max_reclaim  # 1: drain, then reclaim the excess, as memory_max_write()
    int64_t over_max_dying  # 1: a dying task leaves handle_over_max
    int64_t over_max_oom_order  # 1: the deferred OOM asks order 0
    int64_t dying_bypass  # 1: 5.15's should_force_charge() and OOM-failure forcing

cpdef enum Op:  # events.Op: the replay event opcodes
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

# ---- plain constants, kernel values (docs/model.md §1) -------------------------------------------
cdef enum:
    HZ = 1000
    MEMCG_CHARGE_BATCH = 64
    NR_MEMCG_STOCK = 7
    MAX_RECLAIM_RETRIES = 16
    PAGE_ALLOC_COSTLY_ORDER = 3
    SWAP_CLUSTER_MAX = 32
    DEF_PRIORITY = 12
    MEMCG_MAX_HIGH_DELAY_JIFFIES = 2 * HZ
    MEMCG_DELAY_PRECISION_SHIFT = 20
    MEMCG_DELAY_SCALING_SHIFT = 14
    MAX_OOM_REAP_RETRIES = 10
    OOM_SCORE_ADJ_MIN = -1000
    ENOMEM = 12
    EAGAIN = 11
    EMU_LIVELOCK = -1024  # emulator-invented return code, never a kernel errno
    # array widths
    NR_MEMCG_EVENTS = 9
    NR_KINDS = 7
    NR_STATS = 19
    NR_CFG = 11
    NR_OPS = 24
    MAX_SCOPE_DEPTH = 32  # _state.MAX_SCOPE_DEPTH
    # gfp_types.h (spelled `_GFP_*` as in _reference.py, which avoids Python name mangling)
    _GFP_HIGH = 0x20
    _GFP_IO = 0x40
    _GFP_FS = 0x80
    _GFP_MOVABLE = 0x8
    _GFP_DIRECT_RECLAIM = 0x400
    _GFP_KSWAPD_RECLAIM = 0x800
    _GFP_RETRY_MAYFAIL = 0x4000
    _GFP_NOFAIL = 0x8000
    _GFP_NORETRY = 0x10000
    _GFP_RECLAIM = _GFP_DIRECT_RECLAIM | _GFP_KSWAPD_RECLAIM
    GFP_KERNEL = _GFP_RECLAIM | _GFP_IO | _GFP_FS
    # sched.h PF_*
    PF_EXITING = 0x4
    PF_MEMALLOC = 0x800
    PF_MEMALLOC_NOFS = 0x40000
    PF_MEMALLOC_NOIO = 0x80000
    PF_KTHREAD = 0x200000
    PF_MEMALLOC_PIN = 0x10000000
    PF_MEMALLOC_ACCOUNTFORCE = 0x40000000  # the v1 patch (docs/model.md §13)
    # outcome bits of one charge / replay event
    OUT_STOCK_HIT = 1
    OUT_FORCED = 2
    OUT_RECLAIMED = 4
    OUT_OOM = 8
    OUT_LIVELOCK = 16
    OUT_DEFERRED = 32
    OUT_THROTTLED = 64
    # events.ERR_*: replay errors the state decides (the wrapper restores and raises)
    ERR_NONE = 0
    ERR_POOL_SHORT = 1
    ERR_NO_SCOPE = 2
    ERR_SCOPE_DEPTH = 3
    ERR_TASK_EXITED = 4
    ERR_TASK_BLOCKED = 5
    ERR_NOT_BLOCKED = 6
    ERR_INVALID = 7  # replay_loop(validate=True): a static rule of replay.validate_events
    # emu_free_owned() kind masks (bit 1 << PageKind)
    FREE_EXIT = (1 << ANON) | (1 << UNEVICTABLE) | (1 << KERNEL)  # exit_mm()
    FREE_REAP = (1 << ANON) | (1 << UNEVICTABLE)  # the OOM reaper

# ---- replay event record: events.EVENT_DTYPE, version 1, 32 bytes, no padding ----------------
cdef packed struct event_t:
    int64_t time  # ns; only drives time-based sampling
    int64_t arg  # pages / limit pages / PF_* bits, by op
    int32_t task  # task index, -1 for memcg-only ops
    int32_t memcg  # cgroup index, -1 = resolve (charge/uncharge) or clear (set_active)
    uint32_t gfp  # gfp mask of a charge
    uint8_t op  # an Op
    uint8_t kind  # a PageKind for charge/uncharge
    uint16_t pad  # zero

# ---- pure helpers (the reference's @staticmethods; u64 arithmetic as the kernel's) ------------
# mm/page_counter.c: effective_protection().  Returns the effective min/low; the products are
# u64 (`& U64` in the reference); every divisor is > 0 by the guarding comparison.
cdef pages_t effective_protection(pages_t usage, pages_t parent_usage, pages_t setting,
                                  pages_t parent_effective, pages_t siblings_protected,
                                  bint recursive) noexcept nogil
# include/asm-generic/getorder.h: get_order(), taking pages: the smallest order with
# (1 << order) >= nr_pages (0 for nr_pages <= 1).
cdef int get_order(pages_t nr_pages) noexcept nogil
# mm/memcontrol.c: calculate_overage(): 0 at or below high, else u64 fixed point (<< 20) / high.
cdef u64 calculate_overage(pages_t usage, pages_t high) noexcept nogil
# mm/memcontrol.c: calculate_high_delay(): penalty in jiffies before the 2*HZ clamp (u64).
cdef u64 calculate_high_delay(u64 nr_pages, u64 max_overage) noexcept nogil
# mm/vmscan.c: get_scan_count()'s proportional protection, then >> priority, capped at lru_size.
# Deviation kept from the reference: the u64 quotient is subtracted in exact (signed)
# arithmetic, so an overflowed product clamps to SWAP_CLUSTER_MAX instead of wrapping.
cdef pages_t emu_scan_count(pages_t lru_size, pages_t protection, pages_t cgroup_size,
                            int priority) noexcept nogil


# ---- the engine -----------------------------------------------------------------------------
@cython.final
cdef class Engine:
    # Typed views of every array of one MemcgState (mutated in place, nothing cached):
    # `bind()` re-takes them after the state grows.  Per-cgroup views have length
    # cg_capacity, per-task views task_capacity; only the first config[CFG_N_CGROUPS] /
    # config[CFG_N_TASKS] rows are live.  The def surface trusts its indices: sim.py validates
    # (docs/style.md item 17); replay_loop() checks its events itself before entering nogil.
    cdef readonly object st  # the MemcgState these views alias

    # -- hierarchy: parent[c] < c, parent[0] == -1; preorder[pos[c]:subtree_end[c]] = subtree
    cdef int64_t[::1] parent  # parent cg id, -1 for root
    cdef int64_t[::1] online  # 0 after rmdir (a zombie memcg keeps its charges)
    cdef int64_t[::1] pos  # index of c in preorder, -1 if offline
    cdef int64_t[::1] subtree_end  # one past the last descendant's preorder index
    cdef int64_t[::1] preorder  # online cgroups in pre-order (indexed by position)
    # -- struct page_counter (memory), pages; usage >= 0, watermark >= usage
    cdef int64_t[::1] usage
    cdef int64_t[::1] max  # memory.max
    cdef int64_t[::1] high  # memory.high
    cdef int64_t[::1] low  # memory.low
    cdef int64_t[::1] min  # memory.min
    cdef int64_t[::1] emin  # effective min, recomputed by page_counter_calculate_protection()
    cdef int64_t[::1] elow  # effective low
    cdef int64_t[::1] min_usage  # min(usage, min) as last propagated to the parent
    cdef int64_t[::1] low_usage  # min(usage, low) as last propagated to the parent
    cdef int64_t[::1] children_min_usage  # sum of the children's min_usage
    cdef int64_t[::1] children_low_usage  # sum of the children's low_usage
    cdef int64_t[::1] watermark  # memory.peak (global)
    cdef int64_t[::1] local_watermark  # memory.peak since the last per-fd reset
    cdef int64_t[::1] failcnt  # v1 only; never written by the v2 paths
    # -- struct page_counter (swap), pages; no protection
    cdef int64_t[::1] swap_usage
    cdef int64_t[::1] swap_max
    cdef int64_t[::1] swap_high
    cdef int64_t[::1] swap_watermark
    cdef int64_t[::1] oom_group  # memory.oom.group (0/1)
    cdef int64_t[:, ::1] events  # [cg, NR_MEMCG_EVENTS] hierarchical memory.events
    cdef int64_t[:, ::1] events_local  # [cg, NR_MEMCG_EVENTS] memory.events.local
    cdef int64_t[:, ::1] pool  # [cg, NR_KINDS] pages charged to the memcg itself, >= 0
    cdef int64_t[::1] pgscan  # pages scanned by reclaim in this memcg's own pools
    cdef int64_t[::1] pgsteal  # pages reclaimed from them
    cdef int64_t[::1] cg_livelocks  # livelocks reported against this memcg

    # -- per task: identity and kernel-visible fields
    cdef int64_t[::1] memcg  # the task's cgroup; kthreads sit in root
    cdef int64_t[::1] has_mm  # ->mm != NULL: 0 for a kernel thread and after exit_mm
    # Threads: row t doubles as the row of the mm t created (mm[t] == t for a process's first
    # task); fields marked "per mm" are read at row mm[t], "per group" at row tgid[t].
    cdef int64_t[::1] tgid  # thread group leader (lowest pid of its group)
    cdef int64_t[::1] mm  # row of its mm; kept after exit_mm
    cdef int64_t[::1] mm_users  # per mm: tasks using it; exit_mmap() when it drops to 0
    cdef int64_t[::1] oom_mm  # per group: signal->oom_mm, -1 = none
    cdef int64_t[::1] exit_pending  # step mode: killed in user space, exits after the kill
    cdef int64_t[::1] in_user  # timed: in user space (read only while TIMED_LIFECYCLE == 2)
    cdef int64_t[::1] flags  # PF_* bits
    cdef int64_t[::1] cpu  # CPU whose stock it uses, < config[CFG_NR_CPUS]
    cdef int64_t[::1] oom_score_adj  # [-1000, 1000]
    cdef int64_t[::1] state  # TaskState
    cdef int64_t[::1] sigkill  # fatal signal pending
    cdef int64_t[::1] oom_victim  # TIF_MEMDIE
    cdef int64_t[::1] mm_oom_skip  # per mm: MMF_OOM_SKIP
    cdef int64_t[::1] mmap_locked  # per mm: held for write or waited on: the trylock fails
    cdef int64_t[::1] reap_queued  # per mm: queued for the OOM reaper
    cdef int64_t[::1] memcg_nr_pages_over_high  # unsigned int in the kernel: kept in [0, 2**32)
    cdef int64_t[::1] memcg_nr_pages_over_max  # the patch; unsigned int, kept in [0, 2**32)
    cdef int64_t[::1] memcg_over_max_target  # over_max_target=charged: memcg to repay, -1 none
    cdef int64_t[::1] active_memcg  # set_active_memcg() target, -1 = none
    cdef int64_t[::1] notify_resume  # TIF_NOTIFY_RESUME
    cdef int64_t[::1] page_memcg  # per mm: memcg its owned pages are charged to, -1 = none yet
    cdef int64_t[:, ::1] owned  # per mm [task, NR_KINDS] pages it owns (anon: + swapped)
    cdef int64_t[::1] scope_depth  # open memalloc scopes, <= MAX_SCOPE_DEPTH
    cdef int64_t[:, ::1] scope_stack  # [task, MAX_SCOPE_DEPTH] what each save returned
    cdef int64_t[::1] livelock_site  # Site of its last livelock
    cdef int64_t[::1] livelocks  # livelocks it hit
    cdef int64_t[::1] throttle_jiffies  # memory.high penalty slept, total
    # -- try_charge_memcg locals (resumable state machine, docs/design.md §3)
    cdef int64_t[::1] tc_label  # Label; IDLE outside the path
    cdef int64_t[::1] tc_memcg
    cdef int64_t[::1] tc_gfp
    cdef int64_t[::1] tc_kind  # PageKind of the pending charge (committed at DONE)
    cdef int64_t[::1] tc_nr_pages
    cdef int64_t[::1] tc_batch
    cdef int64_t[::1] tc_retries  # nr_retries
    cdef int64_t[::1] tc_drained
    cdef int64_t[::1] tc_passed_oom
    cdef int64_t[::1] tc_raised_max  # raised_max_event
    cdef int64_t[::1] tc_may_swap
    cdef int64_t[::1] tc_mem_over_limit  # the failing ancestor (page_counter's @fail)
    cdef int64_t[::1] tc_reclaimed  # pages freed by the last reclaim pass
    cdef int64_t[::1] tc_oom_nokill  # OOMs in a row that killed nobody (livelock bound)
    cdef int64_t[::1] tc_outcome  # OUT_* bits of the last charge
    cdef int64_t[::1] tc_rc  # 0, -ENOMEM or EMU_LIVELOCK
    # -- mem_cgroup_handle_over_high locals
    cdef int64_t[::1] hh_label
    cdef int64_t[::1] hh_memcg
    cdef int64_t[::1] hh_gfp
    cdef int64_t[::1] hh_nr_pages
    cdef int64_t[::1] hh_retries
    cdef int64_t[::1] hh_in_retry
    cdef int64_t[::1] hh_penalty  # jiffies slept, <= MEMCG_MAX_HIGH_DELAY_JIFFIES
    # -- mem_cgroup_handle_over_max locals (the patch)
    cdef int64_t[::1] hm_label
    cdef int64_t[::1] hm_memcg
    cdef int64_t[::1] hm_over
    cdef int64_t[::1] hm_nr_pages
    cdef int64_t[::1] hm_reclaimed
    cdef int64_t[::1] hm_retries
    cdef int64_t[::1] hm_oom_nokill
    cdef int64_t[::1] hm_drained  # over_max_reclaim=excess: drain_all_stock() done

    # -- per CPU, and engine-wide
    cdef int64_t[:, ::1] stock_memcg  # [cpu, NR_MEMCG_STOCK] cached memcg, -1 = empty slot
    cdef int64_t[:, ::1] stock_pages  # [cpu, NR_MEMCG_STOCK] pre-charged pages, <= BATCH
    cdef int64_t[::1] config  # [NR_CFG] Cfg
    cdef int64_t[::1] stats  # [NR_STATS] Stat
    cdef emu_knobs_t kn  # the policy, copied from state.knobs by bind() / load_knobs()

    # ---- small helpers ---------------------------------------------------------------------
    cdef int64_t _cfg(self, int key) noexcept nogil
    cdef void _stat(self, int key, int64_t n) noexcept nogil
    # splitmix64 on config[CFG_RNG]; the same stream as the reference's emu_random_u64().
    cdef u64 emu_random_u64(self) noexcept nogil
    cdef cg_id_t parent_mem_cgroup(self, cg_id_t m) noexcept nogil
    cdef bint mem_cgroup_is_descendant(self, cg_id_t m, cg_id_t root) noexcept nogil
    cdef bint task_is_dying(self, task_id_t t) noexcept nogil

    # ---- page counters (docs/model.md §2), mm/page_counter.c -------------------------------------
    cdef inline void propagate_protected_usage(self, cg_id_t c, pages_t usage) noexcept nogil
    cdef void page_counter_charge(self, cg_id_t c, pages_t nr_pages) noexcept nogil
    # Returns -1 on success, else the failing counter (the kernel's @fail); levels below it are
    # cancelled (their watermarks stay raised).  v2: no failcnt.
    cdef cg_id_t page_counter_try_charge(self, cg_id_t counter, pages_t nr_pages) noexcept nogil
    # Clamps an underflow to 0 and counts it in STAT_UNDERFLOWS instead of warning.
    cdef inline void page_counter_cancel(self, cg_id_t c, pages_t nr_pages) noexcept nogil
    cdef inline void page_counter_uncharge(self, cg_id_t c, pages_t nr_pages) noexcept nogil
    cdef void swap_counter_charge(self, cg_id_t c, pages_t nr_pages) noexcept nogil
    cdef void swap_counter_uncharge(self, cg_id_t c, pages_t nr_pages) noexcept nogil
    # Tail of page_counter_set_min/low(): re-propagate from c up to the root (docs/model.md §2.7).
    cdef void page_counter_set_protection(self, cg_id_t c) noexcept nogil
    cdef void page_counter_calculate_protection(self, cg_id_t root, cg_id_t c) noexcept nogil

    # ---- memory.events (docs/model.md §8) --------------------------------------------------------
    cdef void memcg_memory_event(self, cg_id_t m, int event) noexcept nogil

    # ---- per-CPU stock (docs/model.md §4) --------------------------------------------------------
    cdef bint consume_stock(self, int64_t cpu, cg_id_t memcg, pages_t nr_pages) noexcept nogil
    cdef void drain_stock(self, int64_t cpu, int64_t i) noexcept nogil
    cdef void drain_local_stock(self, int64_t cpu) noexcept nogil
    cdef inline void refill_stock(self, int64_t cpu, cg_id_t memcg, pages_t nr_pages) noexcept nogil
    cdef bint is_memcg_drain_needed(self, int64_t cpu, cg_id_t root) noexcept nogil
    # Step/replay mode drains remote CPUs synchronously too (docs/model.md E12).
    cpdef void drain_all_stock(self, cg_id_t root) noexcept nogil

    # ---- charge target (docs/model.md §3) --------------------------------------------------------
    cdef cg_id_t get_mem_cgroup_from_mm(self, task_id_t t) noexcept nogil
    # Which memcg a charge of `kind` by t goes to; -1 = not charged (no objcg).
    cpdef cg_id_t emu_charge_target(self, task_id_t t, int64_t kind) noexcept nogil

    # ---- charge / uncharge entry points ------------------------------------------------------
    # Returns 0, -ENOMEM or EMU_LIVELOCK; OUT_* bits land in tc_outcome[t].  memcg >= 0 is an
    # explicit (remote) target, -1 resolves through emu_charge_target().
    cpdef int64_t charge(self, task_id_t t, pages_t nr_pages, gfp_t gfp, int64_t kind,
                         cg_id_t memcg) noexcept nogil
    # The same path in steps (timed simulation): start returns DONE if it finished (stock
    # hit, uncharged target), else RETRY; each step runs one segment to the next kernel label
    # (RECLAIMED right after a reclaim pass, RETRY after an OOM or a retry, NOMEM, FORCE,
    # DONE_RESTOCK) and commits the pages when it reaches DONE with tc_rc[t] == 0.
    cpdef Label charge_start(self, task_id_t t, pages_t nr_pages, gfp_t gfp, int64_t kind,
                             cg_id_t memcg) noexcept nogil
    cpdef Label charge_step(self, task_id_t t) noexcept nogil
    cdef inline void emu_commit_pages(self, task_id_t t, cg_id_t memcg, int64_t kind,
                                      pages_t nr_pages) noexcept nogil
    # Returns 0, or -1 if the pool holds fewer pages than asked (nothing changed).
    cpdef int64_t uncharge(self, task_id_t t, pages_t nr_pages, int64_t kind,
                           cg_id_t memcg) noexcept nogil
    # Page-state change inside one memcg; -1 if the source pool is short.
    cpdef int64_t emu_move_pages(self, cg_id_t memcg, int64_t src, int64_t dst,
                                 pages_t nr_pages) noexcept nogil

    # ---- try_charge_memcg (docs/model.md §5), a resumable state machine --------------------------
    cdef pages_t mem_cgroup_margin(self, cg_id_t m) noexcept nogil
    # mm/memcontrol.c: try_charge_memcg()'s locals, stored in t's record (label RETRY).
    cdef void try_charge_memcg_begin(self, task_id_t t, cg_id_t memcg, gfp_t gfp,
                                     pages_t nr_pages) noexcept nogil
    # Runs from `label` to the next suspension point; returns the next label.
    cdef Label try_charge_step(self, task_id_t t, Label label) noexcept nogil
    # Its RETRY segment after R0 (R1..R9) and its DONE_RESTOCK segment (always DONE).
    cdef Label try_charge_past_r0(self, task_id_t t, cg_id_t memcg, gfp_t gfp,
                                  pages_t nr_pages) noexcept nogil
    cdef Label try_charge_done_restock(self, task_id_t t, cg_id_t memcg, gfp_t gfp,
                                       pages_t nr_pages) noexcept nogil
    # `nokill` points at t's tc_oom_nokill / hm_oom_nokill slot (the reference passes the
    # field name).  Returns True (and records it) when the path is declared livelocked.
    cdef bint emu_livelock_check(self, task_id_t t, int64_t* nokill, int64_t kills_before,
                                 cg_id_t memcg, int site) noexcept nogil
    cdef void emu_record_livelock(self, task_id_t t, cg_id_t memcg, int site) noexcept nogil
    # Whether the patch's hook takes this flagged charge (the accountforce_* knobs and
    # over_max_cap); False sends it on to the normal retry policy (R6...).
    cdef bint emu_accountforce_applies(self, task_id_t t, cg_id_t memcg, gfp_t gfp,
                                       pages_t nr_pages, int64_t flags) noexcept nogil
    # over_max_target=charged: record memcg (a second memcg: their nearest common ancestor).
    cdef void emu_note_over_max_target(self, task_id_t t, cg_id_t memcg) noexcept nogil

    # ---- memory.high (docs/model.md §6) ----------------------------------------------------------
    cdef pages_t reclaim_high(self, task_id_t t, cg_id_t memcg, pages_t nr_pages,
                              gfp_t gfp) noexcept nogil
    cdef u64 mem_find_max_overage(self, cg_id_t memcg) noexcept nogil
    cdef u64 swap_find_max_overage(self, cg_id_t memcg) noexcept nogil
    # Returns the jiffies slept (0 if no sleep).
    cdef int64_t mem_cgroup_handle_over_high(self, task_id_t t, gfp_t gfp) noexcept nogil
    # begin: DONE if nothing is owed (hh_penalty[t] = 0), else HIGH_LOOP; next: one
    # retry_reclaim round from hh_label[t]; the throttle sleep ends the path (hh_penalty).
    cdef Label handle_over_high_begin(self, task_id_t t, gfp_t gfp) noexcept nogil
    cdef Label handle_over_high_next(self, task_id_t t) noexcept nogil
    cdef Label handle_over_high_step(self, task_id_t t, Label label) noexcept nogil

    # ---- the patch: mem_cgroup_handle_over_max (docs/model.md §13) -------------------------------
    cdef cg_id_t get_over_limit_memcg(self, cg_id_t memcg) noexcept nogil
    cdef void mem_cgroup_handle_over_max(self, task_id_t t, gfp_t gfp) noexcept nogil
    cdef Label handle_over_max_begin(self, task_id_t t, gfp_t gfp) noexcept nogil
    cdef Label handle_over_max_next(self, task_id_t t) noexcept nogil
    cdef Label handle_over_max_step(self, task_id_t t, Label label) noexcept nogil

    # ---- return to user (docs/model.md §12) ------------------------------------------------------
    # Returns the memory.high penalty slept, in jiffies.
    cpdef int64_t return_to_user(self, task_id_t t) noexcept nogil
    # The same work in steps: handle_over_max's MAX_RETRY rounds, then handle_over_high's
    # HIGH_LOOP rounds; DONE at the end (hh_penalty[t] = the sleep owed, in jiffies).
    cpdef Label rtu_start(self, task_id_t t) noexcept nogil
    cpdef Label rtu_step(self, task_id_t t) noexcept nogil

    # ---- reclaim (docs/model.md §11): abstract model over the per-memcg pools --------------------
    cdef gfp_t current_gfp_context(self, task_id_t t, gfp_t gfp) noexcept nogil
    cdef pages_t mem_cgroup_get_nr_swap_pages(self, cg_id_t memcg) noexcept nogil
    # The reference returns (freed, low_skipped); low_skipped comes back through the pointer.
    cdef pages_t shrink_lruvec(self, cg_id_t m, cg_id_t target, int priority,
                               pages_t nr_to_reclaim, pages_t nr_reclaimed, bint low_reclaim,
                               bint may_swap, bint* low_skipped) noexcept nogil
    # Returns the new nr_reclaimed; low_skipped through the pointer.
    cdef pages_t shrink_node_memcgs(self, cg_id_t target, int priority, pages_t nr_to_reclaim,
                                    pages_t nr_reclaimed, bint low_reclaim, bint may_swap,
                                    bint* low_skipped) noexcept nogil
    # Returns pages freed; 0 only if nothing at all was freed.
    cdef pages_t try_to_free_mem_cgroup_pages(self, task_id_t t, cg_id_t target,
                                              pages_t nr_pages, gfp_t gfp, bint may_swap,
                                              int64_t swappiness_zero) noexcept nogil

    # ---- OOM (docs/model.md §7) ------------------------------------------------------------------
    # Not state (never stored, never compared): oom_witness is a pid that was a pending victim in
    # an earlier select_bad_process() scan, tried first (one pending victim decides -2), and
    # oom_witness_thread a live thread of its group when the leader had exited;
    # oom_gen counts the stores that can make a task a victim, signalled or exited
    # (mark_oom_victim, emu_send_sigkill, exit_task): the timed scheduler's scan_oom() walks
    # the task table only when it moved.
    cdef task_id_t oom_witness, oom_witness_thread
    cdef int64_t oom_gen
    cdef bint mem_cgroup_oom(self, task_id_t t, cg_id_t memcg, gfp_t gfp, int order) noexcept nogil
    cdef bint mem_cgroup_out_of_memory(self, task_id_t t, cg_id_t memcg, gfp_t gfp,
                                       int order) noexcept nogil
    # First thread of p's group that still has an mm, -1 if none.
    cdef task_id_t find_lock_task_mm(self, task_id_t p) noexcept nogil
    cdef bint emu_thread_group_empty(self, task_id_t t) noexcept nogil
    cdef bint _task_will_free_mem(self, task_id_t t) noexcept nogil
    cdef bint task_will_free_mem(self, task_id_t t) noexcept nogil
    cdef void mark_oom_victim(self, task_id_t t) noexcept nogil
    cdef pages_t mem_cgroup_get_max(self, cg_id_t memcg) noexcept nogil
    # INT64_MIN (the kernel's LONG_MIN) for an unkillable task.
    cdef int64_t oom_badness(self, task_id_t t, pages_t totalpages) noexcept nogil
    cdef bint emu_oom_killable(self, task_id_t t) noexcept nogil
    # Returns the victim, -1 if none, -2 if the scan aborted on a pending victim.
    cdef task_id_t select_bad_process(self, cg_id_t memcg, pages_t totalpages) noexcept nogil
    cdef bint out_of_memory(self, task_id_t t, cg_id_t memcg) noexcept nogil
    cdef cg_id_t mem_cgroup_get_oom_group(self, task_id_t victim, cg_id_t oom_domain) noexcept nogil
    cdef void oom_kill_process(self, task_id_t t, task_id_t victim, cg_id_t memcg) noexcept nogil
    cdef void _oom_kill_process(self, task_id_t t, task_id_t victim) noexcept nogil
    cdef void emu_send_sigkill(self, task_id_t t, task_id_t leader) noexcept nogil
    cdef void emu_exit_killed(self) noexcept nogil
    # `kinds` is a FREE_EXIT / FREE_REAP mask, walked in the reference's tuple order
    # (ANON, UNEVICTABLE, KERNEL).  Returns resident pages freed.
    cdef pages_t emu_free_owned(self, task_id_t t, int kinds) noexcept nogil
    cpdef void exit_task(self, task_id_t t) noexcept nogil
    # Returns pages freed.
    cpdef int64_t oom_reaper(self) noexcept nogil
    # One attempt on victim t: pages freed, or -1 if its mmap_lock is held (then, on the
    # final attempt, MMF_OOM_SKIP is set anyway).
    cpdef int64_t oom_reap_task(self, task_id_t t, bint final_attempt) noexcept nogil

    # ---- tasks and scopes (docs/model.md §12) ----------------------------------------------------
    # Returns the bits newly set (what restore must be given), -1 at MAX_SCOPE_DEPTH.
    cpdef int64_t memalloc_flags_save(self, task_id_t t, int64_t flags) noexcept nogil
    # Returns 0, or -1 (nothing changed) without an open scope or on a mismatched `saved`.
    cpdef int64_t memalloc_flags_restore(self, task_id_t t, int64_t saved) noexcept nogil
    # The v1 helper: ignores what save returned, always clears the flag (docs/model.md §17.6).
    cpdef int64_t memalloc_account_force_restore(self, task_id_t t) noexcept nogil
    # Returns the previous active memcg.
    cpdef cg_id_t set_active_memcg(self, task_id_t t, cg_id_t memcg) noexcept nogil
    cpdef void attach_task(self, task_id_t t, cg_id_t memcg) noexcept nogil
    cpdef void block_task(self, task_id_t t) noexcept nogil
    cpdef void wake_task(self, task_id_t t) noexcept nogil
    cpdef void kill_task(self, task_id_t t) noexcept nogil

    # ---- control files (docs/model.md §10); each returns 0 like the kernel's write handler -------
    cpdef int64_t memory_max_write(self, cg_id_t memcg, pages_t nr, bint nonblock) noexcept nogil
    cpdef int64_t memory_high_write(self, cg_id_t memcg, pages_t nr, bint nonblock) noexcept nogil
    cpdef void memory_min_write(self, cg_id_t memcg, pages_t nr) noexcept nogil
    cpdef void memory_low_write(self, cg_id_t memcg, pages_t nr) noexcept nogil
    # Returns 0 or -EAGAIN.
    cpdef int64_t memory_reclaim(self, cg_id_t memcg, pages_t nr_to_reclaim,
                                 int64_t swappiness_zero) noexcept nogil

    # ---- replay (docs/design.md §3.2) ------------------------------------------------------------
    # Applies one event; returns an ERR_* code (nonzero: nothing was applied) and writes the
    # event's return code and OUT_* bits through rc / outcome.
    cdef int emu_replay_one(self, int64_t op, task_id_t t, int64_t arg, cg_id_t memcg,
                            gfp_t gfp, int64_t kind, int64_t* rc,
                            int64_t* outcome) noexcept nogil
    # replay_loop()'s pre-check: index of the first event whose task/memcg/kind would index
    # outside the state arrays (field: 0 task, 1 memcg, 2 kind), -1 if none.  Memory safety
    # only; replay.validate_events checks more.
    cdef Py_ssize_t _first_unsafe_event(self, const event_t[::1] events,
                                        int* field) noexcept nogil
