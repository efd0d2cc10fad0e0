"""Compiled engine: bodies only.  The contract (types, fields, what each path returns) is in
``_core.pxd``; the specification is ``_reference.py``, which this file follows method by method,
branch by branch, with the same names, labels and stores into the task arrays.

Directives are set once in setup.py (docs/style.md item 5).  Arithmetic notes:
- the reference's ``& U64`` (kernel unsigned long / u64) is ``u64`` (uint64_t) arithmetic here;
- its ``& 0xFFFFFFFF`` (unsigned int counters) is the same mask on int64 values >= 0;
- ``//`` only ever sees a non-negative dividend and a positive divisor, so cdivision agrees.
"""
cimport cython
from libc.stdint cimport INT64_MAX, INT64_MIN
from libc.stdlib cimport abort, calloc, free

from ._state import CGROUP_FIELDS, TASK_FIELDS

# validation bounds of replay.validate_events (too wide for the int enums of _core.pxd)
cdef int64_t PF_MASK_ALL = 0xFFFFFFFF
cdef int64_t GFP_MASK_ALL = 0xFFFFFF
cdef int64_t MAX_NR_PAGES = 1 << 40
cdef int64_t PAGE_COUNTER_MAX = INT64_MAX // 4096

# replay_loop()'s shortcuts (see _replay_fast): on by default; set_fast_paths(False)
# sends every event through emu_replay_one(), for the differential tests of the shortcut.
cdef bint _FAST_PATHS = True


def set_fast_paths(bint on):
    """set_fast_paths(on) -> the previous setting.  Whether replay_loop() takes its documented
    shortcut for charges that end at R0 (a per-CPU stock hit, or a target that is never
    charged).  Results are the same either way (tests/test_differential.py); for tests."""
    global _FAST_PATHS
    cdef bint old = _FAST_PATHS
    _FAST_PATHS = on
    return old


# =============================================================================================
# pure helpers (the reference's @staticmethods)
# =============================================================================================
cdef pages_t effective_protection(pages_t usage, pages_t parent_usage, pages_t setting,
                                  pages_t parent_effective, pages_t siblings_protected,
                                  bint recursive) noexcept nogil:
    cdef pages_t protected = min(usage, setting)
    cdef pages_t ep
    cdef u64 unclaimed
    if siblings_protected > parent_effective:
        return <pages_t>((<u64>protected * <u64>parent_effective) // <u64>siblings_protected)
    ep = protected
    if not recursive:
        return ep
    if (parent_effective > siblings_protected and parent_usage > siblings_protected
            and usage > protected):
        unclaimed = <u64>(parent_effective - siblings_protected)
        unclaimed = unclaimed * <u64>(usage - protected)
        unclaimed //= <u64>(parent_usage - siblings_protected)
        ep += <pages_t>unclaimed
    return ep


cdef int get_order(pages_t nr_pages) noexcept nogil:
    cdef int order = 0
    # u64 shift: the loop ends at order 63 at the latest for any int64 nr_pages
    while (<u64>1 << order) < <u64>max(nr_pages, 0):
        order += 1
    return order


cdef u64 calculate_overage(pages_t usage, pages_t high) noexcept nogil:
    cdef u64 overage
    if usage <= high:
        return 0
    high = max(high, 1)
    overage = <u64>(usage - high) << MEMCG_DELAY_PRECISION_SHIFT
    return overage // <u64>high


cdef u64 calculate_high_delay(u64 nr_pages, u64 max_overage) noexcept nogil:
    cdef u64 penalty
    if not max_overage:
        return 0
    penalty = max_overage * max_overage * HZ
    penalty >>= MEMCG_DELAY_PRECISION_SHIFT
    penalty >>= MEMCG_DELAY_SCALING_SHIFT
    return (penalty * nr_pages) // MEMCG_CHARGE_BATCH


cdef pages_t emu_scan_count(pages_t lru_size, pages_t protection, pages_t cgroup_size,
                            int priority) noexcept nogil:
    cdef pages_t scan
    cdef u64 protected_part
    if protection:
        cgroup_size = max(cgroup_size, protection)
        protected_part = (<u64>lru_size * <u64>protection) // <u64>(cgroup_size + 1)
        # the reference subtracts in exact arithmetic: a negative result becomes the floor
        if protected_part > <u64>lru_size:
            scan = SWAP_CLUSTER_MAX
        else:
            scan = max(lru_size - <pages_t>protected_part, SWAP_CLUSTER_MAX)
    else:
        scan = lru_size
    return min(scan >> priority, lru_size)


# ---- first_invalid_event()'s rule table: bits of each op's rules (replay.validate_events) -----
cdef enum:
    R_VALID = 1  # a known op
    R_TASK = 2  # acts on a task (events.TASK_OPS); other ops need task == -1
    R_NEEDS_MEMCG = 4  # needs a memcg >= 0 (events.MEMCG_OPS)
    R_USES_MEMCG = 8  # reads its memcg field (-1 allowed unless R_NEEDS_MEMCG)
    R_LIMIT = 16  # a limit write (events.LIMIT_OPS)
    R_PAGES = 32  # arg is a page count (events.PAGES_OPS)
    R_FLAGS_SAVE = 64
    R_CHARGE = 128
    R_UNCHARGE = 256
    R_NOT_KTHREAD = 512  # impossible for a kernel thread

cdef int64_t _OP_RULES[256]


cdef void _init_op_rules() noexcept:
    cdef int op
    for op in range(256):
        _OP_RULES[op] = 0
    for op in range(NR_OPS):
        _OP_RULES[op] = R_VALID
        if op <= OP_EXIT or op == OP_KILL or op == OP_BLOCK or op == OP_WAKE:
            _OP_RULES[op] |= R_TASK
        if op == OP_ATTACH or OP_SET_MAX <= op <= OP_END_WRITEBACK or op == OP_RECLAIM:
            _OP_RULES[op] |= R_NEEDS_MEMCG | R_USES_MEMCG
        if op == OP_CHARGE or op == OP_UNCHARGE or op == OP_SET_ACTIVE_MEMCG:
            _OP_RULES[op] |= R_USES_MEMCG
        if OP_SET_MAX <= op <= OP_SET_SWAP_MAX:
            _OP_RULES[op] |= R_LIMIT
        if (op == OP_CHARGE or op == OP_UNCHARGE or op == OP_RECLAIM
                or OP_SET_DIRTY <= op <= OP_END_WRITEBACK):
            _OP_RULES[op] |= R_PAGES
        if op == OP_FLAGS_SAVE:
            _OP_RULES[op] |= R_FLAGS_SAVE
        if op == OP_CHARGE:
            _OP_RULES[op] |= R_CHARGE
        if op == OP_UNCHARGE:
            _OP_RULES[op] |= R_UNCHARGE
        if op == OP_RETURN_TO_USER or op == OP_ATTACH:
            _OP_RULES[op] |= R_NOT_KTHREAD


_init_op_rules()


# Per-call form of the rules (_fill_rules): for each op, the bits its task and memcg must have
# in the per-call state tables (_fill_tables), the range its arg must lie in (an op's unused
# arg gets the whole int64 range), its largest gfp and the page kinds it accepts (bit k;
# kinds >= 63 test bit 63).  An unknown op needs a task bit no task has.
cdef enum:
    T_NONE = 1  # task == -1
    T_TASK = 2  # a task of the state
    T_USER = 4  # ... and not a kernel thread
    T_NEVER = 8
    M_MAY = 1  # memcg == -1 ("resolve"), or an online cgroup
    M_NEED = 2  # an online cgroup
    M_LIMIT = 4  # an online cgroup other than the root

cdef struct rule_t:
    int64_t alo  # arg >= alo
    uint64_t arange  # ... and arg - alo <= arange (u64: one comparison for the range)
    int64_t gmax  # gfp
    uint64_t kinds
    int64_t need  # T_* bits the task must have | M_* bits the memcg must have << 8


cdef void _fill_rules(rule_t* rules) noexcept nogil:
    cdef int op
    cdef int64_t f, tneed, mneed, alo, ahi
    cdef rule_t* r
    for op in range(256):
        r = &rules[op]
        f = _OP_RULES[op]
        tneed = T_TASK if f & R_TASK else T_NONE
        if f & R_NOT_KTHREAD:
            tneed = T_TASK | T_USER
        if not f & R_VALID:
            tneed = T_NEVER  # always bad
        mneed = 0
        if f & R_USES_MEMCG:
            mneed = M_LIMIT if f & R_LIMIT else M_NEED if f & R_NEEDS_MEMCG else M_MAY
        r.need = tneed | (mneed << 8)
        alo = INT64_MIN
        ahi = INT64_MAX
        if f & R_PAGES:
            alo = 1
            ahi = MAX_NR_PAGES
        elif f & R_LIMIT:
            alo = 0
            ahi = PAGE_COUNTER_MAX
        elif f & R_FLAGS_SAVE:
            alo = 0
            ahi = PF_MASK_ALL
        r.alo = alo
        r.arange = <uint64_t>ahi - <uint64_t>alo
        r.gmax = GFP_MASK_ALL if f & R_CHARGE else INT64_MAX
        r.kinds = ~(<uint64_t>0)
        if f & R_CHARGE:
            r.kinds = ((1 << ANON) | (1 << FILE) | (1 << FILE_DIRTY) | (1 << KERNEL)
                       | (1 << UNEVICTABLE))
        elif f & R_UNCHARGE:
            r.kinds = (1 << NR_KINDS) - 1
    return


# The state tables of one call: tok[task + 1] (T_* bits; index 0 is task -1, the last index
# every task out of range) and mok[memcg + 1] (M_* bits, the same layout).
cdef void _fill_tables(Engine self, uint8_t[::1] tok, uint8_t[::1] mok, int64_t n_tasks,
                       int64_t n_cg) noexcept nogil:
    cdef int64_t i
    tok[0] = T_NONE
    for i in range(n_tasks):
        tok[i + 1] = T_TASK | (0 if self.flags[i] & PF_KTHREAD else T_USER)
    tok[n_tasks + 1] = 0
    mok[0] = M_MAY
    for i in range(n_cg):
        mok[i + 1] = (M_MAY | M_NEED | (M_LIMIT if i > 0 else 0)) if self.online[i] else 0
    mok[n_cg + 1] = 0


# Whether event e breaks a static rule of replay.validate_events (prev_time: the previous
# event's time, INT64_MIN for the first), by its op's rule_t and the state tables: two
# clamped table lookups and range comparisons, no branch that depends on the op mix.
cdef inline bint _event_bad(const event_t* e, const rule_t* rules, const uint8_t* tok,
                            const uint8_t* mok, int64_t prev_time, bint sorted_time,
                            int64_t n_tasks, int64_t n_cg) noexcept nogil:
    cdef const rule_t* r = &rules[e.op]
    # indices into the tables: -1 -> 0, out of range (either side) -> the last entry
    cdef uint64_t ti = min(<uint64_t>(<int64_t>e.task + 1), <uint64_t>n_tasks + 1)
    cdef uint64_t mi = min(<uint64_t>(<int64_t>e.memcg + 1), <uint64_t>n_cg + 1)
    cdef int64_t have = tok[ti] | (<int64_t>mok[mi] << 8)
    cdef uint64_t kind = min(<uint64_t>e.kind, <uint64_t>63)
    return (((have & r.need) != r.need)
            | ((<uint64_t>e.arg - <uint64_t>r.alo) > r.arange)
            | (<int64_t>e.gfp > r.gmax)
            | (((r.kinds >> kind) & 1) == 0)
            | (sorted_time & (e.time < prev_time)))


# emu_charge_target()'s answer for each PageKind: 0 the mm's memcg (anon, unevictable),
# 1 the objcg's (kernel), 2 the page cache's (file, file_dirty, file_writeback, swap)
cdef int64_t _KIND_CLASS[NR_KINDS]
_KIND_CLASS[:] = [0, 2, 2, 2, 1, 0, 2]


# emu_charge_target()'s body (docs/model.md §3), a module-level function that the C compiler
# may inline (it does into uncharge()).
cdef inline cg_id_t _charge_target(Engine self, task_id_t t, int64_t kind) noexcept nogil:
    cdef cg_id_t target[3]
    # The three answers, then one picked by the kind's row of _KIND_CLASS (a table
    # lookup: no branch on the kind, whose mix a replay cannot predict).
    target[0] = self.get_mem_cgroup_from_mm(t)
    target[1] = _objcg_target(self, t)
    target[2] = _cache_target(self, t)
    return target[_KIND_CLASS[kind]]


# _charge_target()'s answer 1: kernel (objcg): the active memcg, else the task's own; never
# root, never a kthread.  (Answer 0, anon and unevictable: get_mem_cgroup_from_mm().)
cdef inline cg_id_t _objcg_target(Engine self, task_id_t t) noexcept nogil:
    cdef cg_id_t active = self.active_memcg[t]
    cdef cg_id_t m
    if active >= 0:
        return active if active > 0 else -1
    if not self.has_mm[t] or (self.flags[t] & PF_KTHREAD):
        return -1
    m = self.memcg[t]
    return m if m > 0 else -1


# _charge_target()'s answer 2: page cache (FILE, FILE_DIRTY, ...): the active memcg, else the
# task's cgroup
cdef inline cg_id_t _cache_target(Engine self, task_id_t t) noexcept nogil:
    cdef cg_id_t active = self.active_memcg[t]
    if active >= 0:
        return active
    return self.memcg[t] if self.has_mm[t] else 0


# The slot of `memcg` among one CPU's NR_MEMCG_STOCK cached memcgs (`slots`), -1 if it is not
# cached: the first match in slot order, as the kernel's loops in consume_stock() and
# refill_stock() find it, but compared without branches (memcg > 0; an empty slot is -1).
cdef inline int64_t _stock_slot(const int64_t* slots, cg_id_t memcg) noexcept nogil:
    cdef int64_t j = -1
    j = 6 if slots[6] == memcg else j  # NR_MEMCG_STOCK == 7 slots
    j = 5 if slots[5] == memcg else j
    j = 4 if slots[4] == memcg else j
    j = 3 if slots[3] == memcg else j
    j = 2 if slots[2] == memcg else j
    j = 1 if slots[1] == memcg else j
    j = 0 if slots[0] == memcg else j
    return j


# ---- replay_loop()'s shortcuts -----------------------------------------------------------------
# _replay_fast() takes the commonest ops out of emu_replay_one()'s dispatch and does what
# emu_replay_one() does for them, nothing else; it returns 0 (nothing changed) whenever the
# event needs the full path, which then runs as before.
# - CHARGE that ends at R0 of try_charge_memcg() -- the per-CPU stock covers it
#   (consume_stock() succeeds), or the target is the root / no memcg -- touches only the stock
#   slot, the task's tc_rc/tc_outcome and the pools.  The stock search is _stock_slot(), as in
#   consume_stock() (the first match in slot order); STAT_CHARGES and STAT_STOCK_HITS are counted
#   in the caller's locals and written once per replay_loop() call.  Any other charge by a
#   running task continues where charge() would after charge_start()'s R0 (whose stock lookup
#   it has just made on the same state): try_charge_memcg_begin(), then charge_step() to DONE.
# - UNCHARGE by a running task goes to uncharge() directly; a short pool returns 0 (uncharge()
#   changed nothing) and emu_replay_one() reports ERR_POOL_SHORT.
# - RETURN_TO_USER of a running task with no fatal signal and no notify-resume work owed
#   (nothing over memory.high/max was charged since) only clears hh_penalty (rtu_start()).
# - SET_DIRTY / START_WRITEBACK / END_WRITEBACK of a cgroup (task -1) go to emu_move_pages()
#   directly, the pools by table; a short source pool returns 0 (nothing changed) and
#   emu_replay_one() reports ERR_POOL_SHORT.
# A blocked or exited task always takes the full path (its error codes live there).
# It must be inlined into the loops (a call per event costs about 1.3 ns on the mixed stream):
# see the always_inline redeclaration below; longer work stays out of line
# (_charge_after_r0(), uncharge()).
cdef extern from *:
    # GCC and clang decide by size whether to inline _replay_fast() into the loops, and a
    # call per event costs about 1.3 ns on the mixed stream: this redeclaration of its C
    # name (Cython's mangling of memcg_emu._core._replay_fast) asks for always_inline.  Should
    # the name ever differ, it declares an unused function and nothing else changes.
    """
    #if defined(__GNUC__)
    struct __pyx_obj_9memcg_emu_5_core_Engine;
    struct __pyx_t_9memcg_emu_5_core_event_t;
    static __inline__ int __pyx_f_9memcg_emu_5_core__replay_fast(
        struct __pyx_obj_9memcg_emu_5_core_Engine *,
        struct __pyx_t_9memcg_emu_5_core_event_t const *, int64_t *, int64_t *, int64_t *,
        int64_t *) __attribute__((always_inline));
    static __inline__ void __pyx_f_9memcg_emu_5_core_6Engine_emu_commit_pages(
        struct __pyx_obj_9memcg_emu_5_core_Engine *, int64_t, int64_t, int64_t, int64_t)
        __attribute__((always_inline));
    #endif
    """


# Branch hints for the rare exits of the replay paths (Cython's own C macros over GCC's and
# clang's __builtin_expect; plain conditions elsewhere).  They change code layout only.
cdef extern from *:
    bint unlikely(bint) nogil


cdef inline int _replay_fast(Engine self, const event_t* e, int64_t* rc, int64_t* outcome,
                             int64_t* n_charges, int64_t* n_hits) noexcept nogil:
    cdef task_id_t t = e.task
    cdef cg_id_t memcg = e.memcg
    cdef int64_t kind = e.kind
    cdef pages_t nr_pages = e.arg
    cdef int64_t* pages
    cdef int64_t j
    cdef int64_t op = e.op
    if op > OP_RETURN_TO_USER:
        # a page-state move of a cgroup (no task): emu_move_pages(), pools by table
        if OP_SET_DIRTY <= op <= OP_END_WRITEBACK and t < 0:
            if unlikely(self.emu_move_pages(memcg, _MOVE_SRC[op - OP_SET_DIRTY],
                                            _MOVE_DST[op - OP_SET_DIRTY], nr_pages) < 0):
                return 0
            rc[0] = 0
            outcome[0] = 0
            return 1
        return 0
    if unlikely(self.state[t] != TASK_RUNNING):  # ops 0-2 are task ops
        return 0
    if op == OP_UNCHARGE:
        if unlikely(self.uncharge(t, nr_pages, kind, memcg) < 0):
            return 0
        rc[0] = 0
        outcome[0] = 0
        return 1
    if op == OP_RETURN_TO_USER:
        # nothing to do on the way out: no fatal signal, no TIF_NOTIFY_RESUME work (rtu_start)
        if unlikely(self.sigkill[t] or self.notify_resume[t]):
            return 0
        self.hh_penalty[t] = 0
        rc[0] = 0
        outcome[0] = 0
        return 1
    if memcg < 0:
        memcg = _charge_target(self, t, kind)
    if unlikely(memcg <= 0):  # root (or no objcg): never charged (charge_start)
        self.tc_outcome[t] = 0
        self.tc_rc[t] = 0
        n_charges[0] += 1
        rc[0] = 0
        outcome[0] = 0
        return 1
    if nr_pages <= MEMCG_CHARGE_BATCH:
        j = _stock_slot(&self.stock_memcg[self.cpu[t], 0], memcg)
        pages = &self.stock_pages[self.cpu[t], 0]
        if j >= 0 and pages[j] >= nr_pages:
            pages[j] -= nr_pages
            self.tc_outcome[t] = OUT_STOCK_HIT
            self.tc_rc[t] = 0
            n_charges[0] += 1
            n_hits[0] += 1
            self.emu_commit_pages(t, memcg, kind, nr_pages)
            rc[0] = 0
            outcome[0] = OUT_STOCK_HIT
            return 1
    n_charges[0] += 1
    rc[0] = _charge_after_r0(self, t, nr_pages, e.gfp, kind, memcg)
    outcome[0] = self.tc_outcome[t]
    return 1


# A charge the per-CPU stock did not cover continues as charge() does after charge_start()'s
# R0: try_charge_memcg_begin(), then the steps to DONE.  The first step's R0 would find what
# _replay_fast()'s lookup found (the same state; a missed consume_stock() changes nothing), so
# the first pass starts past it (try_charge_past_r0()) and runs on into DONE_RESTOCK when R3
# charged the batch, as charge_step() would in two calls; any other label goes on through
# charge_step().  Out of line: the loops stay compact.
cdef int64_t _charge_after_r0(Engine self, task_id_t t, pages_t nr_pages, gfp_t gfp,
                              int64_t kind, cg_id_t memcg) noexcept nogil:
    cdef Label label
    self.tc_outcome[t] = 0
    self.tc_rc[t] = 0
    self.tc_kind[t] = kind
    self.try_charge_memcg_begin(t, memcg, gfp, nr_pages)
    label = self.try_charge_past_r0(t, memcg, gfp, nr_pages)
    if label == DONE_RESTOCK:
        # try_charge_done_restock() always ends in DONE with tc_rc[t] == 0: charge_step()'s end
        self.try_charge_done_restock(t, memcg, gfp, nr_pages)
        self.tc_label[t] = IDLE
        self.emu_commit_pages(t, memcg, kind, nr_pages)
        return 0
    self.tc_label[t] = label
    while self.charge_step(t) != DONE:
        pass
    return self.tc_rc[t]


# the page-state moves by op - OP_SET_DIRTY: SET_DIRTY (FILE -> FILE_DIRTY), START_WRITEBACK
# (FILE_DIRTY -> FILE_WRITEBACK), END_WRITEBACK (FILE_WRITEBACK -> FILE), as emu_replay_one()
cdef int64_t _MOVE_SRC[3]
cdef int64_t _MOVE_DST[3]
_MOVE_SRC[:] = [FILE, FILE_DIRTY, FILE_WRITEBACK]
_MOVE_DST[:] = [FILE_DIRTY, FILE_WRITEBACK, FILE]


# names of the arrays bind() takes, by MemcgState attribute
cdef tuple _CG_NAMES = tuple(CGROUP_FIELDS)
cdef tuple _TASK_NAMES = tuple(TASK_FIELDS)


@cython.final
cdef class Engine:
    """Runs kernel paths over a :class:`~memcg_emu.MemcgState` (mutated in place).

    The compiled twin of ``memcg_emu._reference.Engine``: same methods, same results, same
    state after every call.

    Parameters
    ----------
    state : MemcgState
        Every array must be int64 and C-contiguous (MemcgState makes them so).

    Raises
    ------
    ValueError
        If an array has the wrong dtype, layout or shape.

    Examples
    --------
    >>> from memcg_emu import MemcgState
    >>> st = MemcgState(nr_cpus=1)
    >>> st.config[8] = 1  # one cgroup: the root
    >>> eng = Engine(st)
    >>> eng.get_order(9)
    4
    """

    def __init__(self, state):
        self.bind(state)

    def bind(self, state):
        """Take typed views of every array of ``state``; call again after it grows.

        Parameters
        ----------
        state : MemcgState

        Raises
        ------
        ValueError
            If an array is not int64, not C-contiguous, or has an inconsistent shape.
        """
        self.parent = state.parent
        self.online = state.online
        self.pos = state.pos
        self.subtree_end = state.subtree_end
        self.preorder = state.preorder
        self.usage = state.usage
        self.max = state.max
        self.high = state.high
        self.low = state.low
        self.min = state.min
        self.emin = state.emin
        self.elow = state.elow
        self.min_usage = state.min_usage
        self.low_usage = state.low_usage
        self.children_min_usage = state.children_min_usage
        self.children_low_usage = state.children_low_usage
        self.watermark = state.watermark
        self.local_watermark = state.local_watermark
        self.failcnt = state.failcnt
        self.swap_usage = state.swap_usage
        self.swap_max = state.swap_max
        self.swap_high = state.swap_high
        self.swap_watermark = state.swap_watermark
        self.oom_group = state.oom_group
        self.events = state.events
        self.events_local = state.events_local
        self.pool = state.pool
        self.pgscan = state.pgscan
        self.pgsteal = state.pgsteal
        self.cg_livelocks = state.cg_livelocks

        self.memcg = state.memcg
        self.has_mm = state.has_mm
        self.tgid = state.tgid
        self.mm = state.mm
        self.mm_users = state.mm_users
        self.oom_mm = state.oom_mm
        self.exit_pending = state.exit_pending
        self.in_user = state.in_user
        self.flags = state.flags
        self.cpu = state.cpu
        self.oom_score_adj = state.oom_score_adj
        self.state = state.state
        self.sigkill = state.sigkill
        self.oom_victim = state.oom_victim
        self.mm_oom_skip = state.mm_oom_skip
        self.mmap_locked = state.mmap_locked
        self.reap_queued = state.reap_queued
        self.memcg_nr_pages_over_high = state.memcg_nr_pages_over_high
        self.memcg_nr_pages_over_max = state.memcg_nr_pages_over_max
        self.active_memcg = state.active_memcg
        self.notify_resume = state.notify_resume
        self.page_memcg = state.page_memcg
        self.owned = state.owned
        self.scope_depth = state.scope_depth
        self.scope_stack = state.scope_stack
        self.livelock_site = state.livelock_site
        self.livelocks = state.livelocks
        self.throttle_jiffies = state.throttle_jiffies
        self.tc_label = state.tc_label
        self.tc_memcg = state.tc_memcg
        self.tc_gfp = state.tc_gfp
        self.tc_kind = state.tc_kind
        self.tc_nr_pages = state.tc_nr_pages
        self.tc_batch = state.tc_batch
        self.tc_retries = state.tc_retries
        self.tc_drained = state.tc_drained
        self.tc_passed_oom = state.tc_passed_oom
        self.tc_raised_max = state.tc_raised_max
        self.tc_may_swap = state.tc_may_swap
        self.tc_mem_over_limit = state.tc_mem_over_limit
        self.tc_reclaimed = state.tc_reclaimed
        self.tc_oom_nokill = state.tc_oom_nokill
        self.tc_outcome = state.tc_outcome
        self.tc_rc = state.tc_rc
        self.hh_label = state.hh_label
        self.hh_memcg = state.hh_memcg
        self.hh_gfp = state.hh_gfp
        self.hh_nr_pages = state.hh_nr_pages
        self.hh_retries = state.hh_retries
        self.hh_in_retry = state.hh_in_retry
        self.hh_penalty = state.hh_penalty
        self.hm_label = state.hm_label
        self.hm_memcg = state.hm_memcg
        self.hm_over = state.hm_over
        self.hm_nr_pages = state.hm_nr_pages
        self.hm_reclaimed = state.hm_reclaimed
        self.hm_retries = state.hm_retries
        self.hm_oom_nokill = state.hm_oom_nokill
        self.hm_drained = state.hm_drained
        self.memcg_over_max_target = state.memcg_over_max_target

        self.stock_memcg = state.stock_memcg
        self.stock_pages = state.stock_pages
        self.config = state.config
        self.stats = state.stats
        self.st = state
        self._check_shapes()
        self.load_knobs()

    def load_knobs(self):
        """Copy the policy (``state.knobs``) into the engine's knob struct; bind() does it.

        Raises
        ------
        ValueError
            If ``state.knobs`` is shorter than NR_KNOBS.
        """
        cdef const int64_t[::1] k = self.st.knobs
        if k.shape[0] < NR_KNOBS:
            raise ValueError(f"state.knobs has {k.shape[0]} entries, expected {NR_KNOBS}")
        self.kn.accountforce = k[KNOB_ACCOUNTFORCE]
        self.kn.accountforce_restore = k[KNOB_ACCOUNTFORCE_RESTORE]
        self.kn.accountforce_nowait = k[KNOB_ACCOUNTFORCE_NOWAIT]
        self.kn.accountforce_kthread = k[KNOB_ACCOUNTFORCE_KTHREAD]
        self.kn.accountforce_high = k[KNOB_ACCOUNTFORCE_HIGH]
        self.kn.over_max_cap = k[KNOB_OVER_MAX_CAP]
        self.kn.over_max_target = k[KNOB_OVER_MAX_TARGET]
        self.kn.over_max_reclaim = k[KNOB_OVER_MAX_RECLAIM]
        self.kn.over_max_dying = k[KNOB_OVER_MAX_DYING]
        self.kn.over_max_oom_order = k[KNOB_OVER_MAX_OOM_ORDER]
        self.kn.dying_bypass = k[KNOB_DYING_BYPASS]

    def _check_shapes(self):
        # The kernel paths index without bounds checks: every row they may touch must exist.
        st = self.st
        n_cg, n_t = self.parent.shape[0], self.memcg.shape[0]
        for names, n in ((_CG_NAMES, n_cg), (_TASK_NAMES, n_t)):
            for name in names:
                if getattr(st, name).shape[0] != n:
                    raise ValueError(f"state.{name} has {getattr(st, name).shape[0]} rows, "
                                     f"expected {n} like its siblings")
        widths = (("events", self.events.shape[1], NR_MEMCG_EVENTS),
                  ("events_local", self.events_local.shape[1], NR_MEMCG_EVENTS),
                  ("pool", self.pool.shape[1], NR_KINDS),
                  ("owned", self.owned.shape[1], NR_KINDS),
                  ("scope_stack", self.scope_stack.shape[1], MAX_SCOPE_DEPTH),
                  ("stock_memcg", self.stock_memcg.shape[1], NR_MEMCG_STOCK),
                  ("stock_pages", self.stock_pages.shape[1], NR_MEMCG_STOCK))
        for name, have, want in widths:
            if have != want:
                raise ValueError(f"state.{name} has {have} columns, expected {want}")
        if self.config.shape[0] < NR_CFG or self.stats.shape[0] < NR_STATS:
            raise ValueError(f"state.config/stats are too short "
                             f"({self.config.shape[0]}/{self.stats.shape[0]})")
        if self.stock_memcg.shape[0] != self.stock_pages.shape[0] or \
                self.stock_memcg.shape[0] < self._cfg(CFG_NR_CPUS):
            raise ValueError(f"state.stock_* have {self.stock_memcg.shape[0]} rows for "
                             f"config[NR_CPUS] = {self._cfg(CFG_NR_CPUS)}")
        if not (0 <= self._cfg(CFG_N_CGROUPS) <= n_cg and 0 <= self._cfg(CFG_N_TASKS) <= n_t):
            raise ValueError(f"config[N_CGROUPS/N_TASKS] = {self._cfg(CFG_N_CGROUPS)}/"
                             f"{self._cfg(CFG_N_TASKS)} exceed the capacity {n_cg}/{n_t}")

    # =========================================================================================
    # small helpers
    # =========================================================================================
    cdef int64_t _cfg(self, int key) noexcept nogil:
        return self.config[key]

    cdef void _stat(self, int key, int64_t n) noexcept nogil:
        self.stats[key] += n

    cdef u64 emu_random_u64(self) noexcept nogil:
        cdef u64 x = <u64>self.config[CFG_RNG] + 0x9E3779B97F4A7C15ULL
        self.config[CFG_RNG] = <int64_t>x  # two's complement, as the reference stores it
        cdef u64 z = x
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL
        return z ^ (z >> 31)

    cdef cg_id_t parent_mem_cgroup(self, cg_id_t m) noexcept nogil:
        return self.parent[m]

    cdef bint mem_cgroup_is_descendant(self, cg_id_t m, cg_id_t root) noexcept nogil:
        return self.pos[root] <= self.pos[m] < self.subtree_end[root]

    cdef bint task_is_dying(self, task_id_t t) noexcept nogil:
        if t < 0:
            return False
        return (self.oom_victim[t] != 0 or self.sigkill[t] != 0
                or (self.flags[t] & PF_EXITING) != 0)

    # =========================================================================================
    # page counters (docs/model.md §2)
    # =========================================================================================
    cdef inline void propagate_protected_usage(self, cg_id_t c, pages_t usage) noexcept nogil:
        cdef cg_id_t p = self.parent[c]
        cdef pages_t protected, old
        if p < 0:
            return
        protected = min(usage, self.min[c])
        old = self.min_usage[c]
        if protected != old:
            self.min_usage[c] = protected
            self.children_min_usage[p] += protected - old
        protected = min(usage, self.low[c])
        old = self.low_usage[c]
        if protected != old:
            self.low_usage[c] = protected
            self.children_low_usage[p] += protected - old

    cdef void page_counter_charge(self, cg_id_t c, pages_t nr_pages) noexcept nogil:
        cdef pages_t new
        while c >= 0:
            new = self.usage[c] + nr_pages
            self.usage[c] = new
            self.propagate_protected_usage(c, new)
            if new > self.local_watermark[c]:
                self.local_watermark[c] = new
                if new > self.watermark[c]:
                    self.watermark[c] = new
            c = self.parent[c]

    cdef cg_id_t page_counter_try_charge(self, cg_id_t counter, pages_t nr_pages) noexcept nogil:
        cdef cg_id_t c = counter
        cdef cg_id_t fail
        cdef pages_t new
        while c >= 0:
            new = self.usage[c] + nr_pages
            if new > self.max[c]:
                # lower levels are cancelled; their watermarks stay raised (docs/model.md §2.4)
                fail = c
                c = counter
                while c != fail:
                    self.page_counter_cancel(c, nr_pages)
                    c = self.parent[c]
                return fail
            self.usage[c] = new
            self.propagate_protected_usage(c, new)
            if new > self.local_watermark[c]:
                self.local_watermark[c] = new
                if new > self.watermark[c]:
                    self.watermark[c] = new
            c = self.parent[c]
        return -1

    cdef inline void page_counter_cancel(self, cg_id_t c, pages_t nr_pages) noexcept nogil:
        cdef pages_t new = self.usage[c] - nr_pages
        if unlikely(new < 0):
            self._stat(STAT_UNDERFLOWS, 1)
            new = 0
        self.usage[c] = new
        self.propagate_protected_usage(c, new)

    cdef inline void page_counter_uncharge(self, cg_id_t c, pages_t nr_pages) noexcept nogil:
        while c >= 0:
            self.page_counter_cancel(c, nr_pages)
            c = self.parent[c]

    cdef void swap_counter_charge(self, cg_id_t c, pages_t nr_pages) noexcept nogil:
        cdef pages_t new
        while c >= 0:
            new = self.swap_usage[c] + nr_pages
            self.swap_usage[c] = new
            if new > self.swap_watermark[c]:
                self.swap_watermark[c] = new
            c = self.parent[c]

    cdef void swap_counter_uncharge(self, cg_id_t c, pages_t nr_pages) noexcept nogil:
        cdef pages_t new
        while c >= 0:
            new = self.swap_usage[c] - nr_pages
            if new < 0:
                self._stat(STAT_UNDERFLOWS, 1)
                new = 0
            self.swap_usage[c] = new
            c = self.parent[c]

    cdef void page_counter_set_protection(self, cg_id_t c) noexcept nogil:
        while c >= 0:
            self.propagate_protected_usage(c, self.usage[c])
            c = self.parent[c]

    cdef void page_counter_calculate_protection(self, cg_id_t root, cg_id_t c) noexcept nogil:
        cdef pages_t usage, parent_usage
        cdef cg_id_t p
        cdef bint recursive
        if c == root:
            return
        usage = self.usage[c]
        if not usage:
            return
        p = self.parent[c]
        if p == root:
            self.emin[c] = self.min[c]
            self.elow[c] = self.low[c]
            return
        parent_usage = self.usage[p]
        recursive = self._cfg(CFG_RECURSIVEPROT) != 0
        self.emin[c] = effective_protection(usage, parent_usage, self.min[c], self.emin[p],
                                            self.children_min_usage[p], recursive)
        self.elow[c] = effective_protection(usage, parent_usage, self.low[c], self.elow[p],
                                            self.children_low_usage[p], recursive)

    # =========================================================================================
    # memory.events (docs/model.md §8)
    # =========================================================================================
    cdef void memcg_memory_event(self, cg_id_t m, int event) noexcept nogil:
        cdef bint localevents
        self.events_local[m, event] += 1
        localevents = self._cfg(CFG_LOCALEVENTS) != 0
        while True:
            self.events[m, event] += 1
            if localevents:
                break
            m = self.parent[m]
            if m <= 0:  # stop at (before) the root
                break

    # =========================================================================================
    # per-CPU stock (docs/model.md §4)
    # =========================================================================================
    cdef bint consume_stock(self, int64_t cpu, cg_id_t memcg, pages_t nr_pages) noexcept nogil:
        cdef int64_t i
        cdef pages_t stock_pages
        if nr_pages > MEMCG_CHARGE_BATCH:
            return False
        i = _stock_slot(&self.stock_memcg[cpu, 0], memcg)
        if i < 0:
            return False
        stock_pages = self.stock_pages[cpu, i]
        if stock_pages >= nr_pages:
            self.stock_pages[cpu, i] = stock_pages - nr_pages
            return True
        return False

    cdef void drain_stock(self, int64_t cpu, int64_t i) noexcept nogil:
        cdef cg_id_t old = self.stock_memcg[cpu, i]
        cdef pages_t stock_pages
        if old < 0:
            return
        stock_pages = self.stock_pages[cpu, i]
        if stock_pages:
            self.page_counter_uncharge(old, stock_pages)
            self.stock_pages[cpu, i] = 0
        self.stock_memcg[cpu, i] = -1

    cdef void drain_local_stock(self, int64_t cpu) noexcept nogil:
        cdef int64_t i
        for i in range(NR_MEMCG_STOCK):
            self.drain_stock(cpu, i)
        self._stat(STAT_CPU_DRAINS, 1)

    cdef inline void refill_stock(self, int64_t cpu, cg_id_t memcg, pages_t nr_pages) noexcept nogil:
        cdef int64_t i, empty_slot
        cdef pages_t stock_pages
        if nr_pages > MEMCG_CHARGE_BATCH:
            self.page_counter_uncharge(memcg, nr_pages)
            return
        # The kernel's one loop notes the first empty slot and stops at the cached memcg's;
        # the empty slot only matters when memcg is not cached, so that slot is looked up
        # first (without branches) and the empty one only when it is needed.
        i = _stock_slot(&self.stock_memcg[cpu, 0], memcg)
        if i >= 0:
            stock_pages = self.stock_pages[cpu, i] + nr_pages
            self.stock_pages[cpu, i] = stock_pages
            if stock_pages > MEMCG_CHARGE_BATCH:
                self.drain_stock(cpu, i)
            return
        empty_slot = -1
        for i in range(NR_MEMCG_STOCK):
            if self.stock_memcg[cpu, i] < 0:
                empty_slot = i
                break
        i = empty_slot
        if i == -1:
            i = <int64_t>(self.emu_random_u64() % NR_MEMCG_STOCK)
            self.drain_stock(cpu, i)
        self.stock_memcg[cpu, i] = memcg
        self.stock_pages[cpu, i] = nr_pages

    cdef bint is_memcg_drain_needed(self, int64_t cpu, cg_id_t root) noexcept nogil:
        cdef Py_ssize_t i
        cdef cg_id_t m
        for i in range(NR_MEMCG_STOCK):
            m = self.stock_memcg[cpu, i]
            if m < 0:
                continue
            if self.stock_pages[cpu, i] and self.mem_cgroup_is_descendant(m, root):
                return True
        return False

    cpdef void drain_all_stock(self, cg_id_t root) noexcept nogil:
        """drain_all_stock(root): drain every CPU's stock that caches memcgs under ``root``."""
        cdef bint drained = False
        cdef int64_t cpu
        for cpu in range(self._cfg(CFG_NR_CPUS)):
            if self.is_memcg_drain_needed(cpu, root):
                self.drain_local_stock(cpu)
                drained = True
        if drained:
            self._stat(STAT_DRAINS, 1)

    # =========================================================================================
    # charge target (docs/model.md §3)
    # =========================================================================================
    cdef cg_id_t get_mem_cgroup_from_mm(self, task_id_t t) noexcept nogil:
        cdef cg_id_t active
        if self.has_mm[t]:
            return self.memcg[self.mm[t]]
        active = self.active_memcg[t]
        return active if active >= 0 else 0

    cpdef cg_id_t emu_charge_target(self, task_id_t t, int64_t kind) noexcept nogil:
        """emu_charge_target(t, kind) -> memcg a charge of ``kind`` by t goes to, -1 = none."""
        return _charge_target(self, t, kind)

    # =========================================================================================
    # charge / uncharge entry points
    # =========================================================================================
    cpdef int64_t charge(self, task_id_t t, pages_t nr_pages, gfp_t gfp, int64_t kind,
                         cg_id_t memcg) noexcept nogil:
        """charge(t, nr_pages, gfp, kind, memcg) -> 0, -ENOMEM or EMU_LIVELOCK.

        OUT_* bits of the charge are left in ``state.tc_outcome[t]``.
        """
        cdef Label label = self.charge_start(t, nr_pages, gfp, kind, memcg)
        while label != DONE:
            label = self.charge_step(t)
        return self.tc_rc[t]

    cpdef Label charge_start(self, task_id_t t, pages_t nr_pages, gfp_t gfp, int64_t kind,
                             cg_id_t memcg) noexcept nogil:
        """charge_start(t, nr_pages, gfp, kind, memcg) -> Label (DONE if finished)."""
        self._stat(STAT_CHARGES, 1)
        self.tc_outcome[t] = 0
        self.tc_rc[t] = 0
        if memcg < 0:
            memcg = self.emu_charge_target(t, kind)
        if memcg <= 0:  # root (or no objcg): never charged (docs/model.md §3)
            return DONE
        # R0 of the first pass, before the path's locals are set up (see _reference.py)
        if self.consume_stock(self.cpu[t], memcg, nr_pages):
            self.tc_outcome[t] |= OUT_STOCK_HIT
            self._stat(STAT_STOCK_HITS, 1)
            self.emu_commit_pages(t, memcg, kind, nr_pages)
            return DONE
        self.tc_kind[t] = kind
        self.try_charge_memcg_begin(t, memcg, gfp, nr_pages)
        return RETRY

    cpdef Label charge_step(self, task_id_t t) noexcept nogil:
        """charge_step(t) -> the next Label; commits the pages when it ends with 0."""
        cdef Label label = self.try_charge_step(t, <Label>self.tc_label[t])
        if label != DONE:
            self.tc_label[t] = label
            return label
        self.tc_label[t] = IDLE
        if self.tc_rc[t] == 0:
            self.emu_commit_pages(t, self.tc_memcg[t], self.tc_kind[t], self.tc_nr_pages[t])
        return label

    cdef inline void emu_commit_pages(self, task_id_t t, cg_id_t memcg, int64_t kind,
                                      pages_t nr_pages) noexcept nogil:
        cdef task_id_t mm = self.mm[t]
        self.pool[memcg, kind] += nr_pages
        if ((FREE_EXIT >> kind) & 1 and self.has_mm[t]  # anon, unevictable, kernel: a mask
                and memcg == self.memcg[mm]):
            if self.page_memcg[mm] != memcg:
                self.page_memcg[mm] = memcg
            self.owned[mm, kind] += nr_pages

    cpdef int64_t uncharge(self, task_id_t t, pages_t nr_pages, int64_t kind,
                           cg_id_t memcg) noexcept nogil:
        """uncharge(t, nr_pages, kind, memcg) -> 0, or -1 if the pool is short."""
        cdef int64_t k
        cdef task_id_t mm
        if memcg < 0:
            memcg = _charge_target(self, t, kind if kind != SWAP else ANON)
        if unlikely(memcg <= 0):
            return 0
        if unlikely(self.pool[memcg, kind] < nr_pages):
            return -1
        self.pool[memcg, kind] -= nr_pages
        if kind == SWAP:
            self.swap_counter_uncharge(memcg, nr_pages)
        elif kind == KERNEL:
            self.refill_stock(self.cpu[t], memcg, nr_pages)
        else:
            self.page_counter_uncharge(memcg, nr_pages)
        mm = self.mm[t] if t >= 0 else -1
        if mm >= 0 and memcg == self.page_memcg[mm]:
            k = ANON if kind == SWAP else kind
            self.owned[mm, k] -= min(nr_pages, self.owned[mm, k])
        return 0

    cpdef int64_t emu_move_pages(self, cg_id_t memcg, int64_t src, int64_t dst,
                                 pages_t nr_pages) noexcept nogil:
        """emu_move_pages(memcg, src, dst, nr_pages) -> 0, or -1 if ``src`` is short."""
        if self.pool[memcg, src] < nr_pages:
            return -1
        self.pool[memcg, src] -= nr_pages
        self.pool[memcg, dst] += nr_pages
        return 0

    # =========================================================================================
    # try_charge_memcg (docs/model.md §5) as a resumable state machine
    # =========================================================================================
    cdef pages_t mem_cgroup_margin(self, cg_id_t m) noexcept nogil:
        cdef pages_t count = self.usage[m]
        cdef pages_t limit = self.max[m]
        return limit - count if count < limit else 0

    cdef void try_charge_memcg_begin(self, task_id_t t, cg_id_t memcg, gfp_t gfp,
                                     pages_t nr_pages) noexcept nogil:
        self.tc_memcg[t] = memcg
        self.tc_gfp[t] = gfp
        self.tc_nr_pages[t] = nr_pages
        self.tc_batch[t] = max(<pages_t>MEMCG_CHARGE_BATCH, nr_pages)
        self.tc_retries[t] = MAX_RECLAIM_RETRIES
        self.tc_drained[t] = 0
        self.tc_passed_oom[t] = 0
        self.tc_raised_max[t] = 0
        self.tc_may_swap[t] = 1
        self.tc_mem_over_limit[t] = -1
        self.tc_reclaimed[t] = 0
        self.tc_oom_nokill[t] = 0
        self.tc_rc[t] = 0
        self.tc_label[t] = RETRY

    cdef Label try_charge_step(self, task_id_t t, Label label) noexcept nogil:
        cdef cg_id_t memcg = self.tc_memcg[t]
        cdef gfp_t gfp = self.tc_gfp[t]
        cdef pages_t nr_pages = self.tc_nr_pages[t]
        cdef cg_id_t mem_over_limit, m
        cdef int64_t retries, kills
        cdef int order
        cdef bint legacy = self.kn.dying_bypass != 0

        if label == RETRY:
            # R0
            if self.consume_stock(self.cpu[t], memcg, nr_pages):
                self.tc_outcome[t] |= OUT_STOCK_HIT
                self._stat(STAT_STOCK_HITS, 1)
                self.tc_rc[t] = 0
                return DONE
            return self.try_charge_past_r0(t, memcg, gfp, nr_pages)

        if label == RECLAIMED:
            mem_over_limit = self.tc_mem_over_limit[t]
            # R10
            if self.mem_cgroup_margin(mem_over_limit) >= nr_pages:
                return RETRY
            # R11
            if not self.tc_drained[t]:
                self.drain_all_stock(mem_over_limit)
                self.tc_drained[t] = 1
                return RETRY
            # R12
            if gfp & _GFP_NORETRY:
                return NOMEM
            # R13
            if self.tc_reclaimed[t] and nr_pages <= (1 << PAGE_ALLOC_COSTLY_ORDER):
                return RETRY
            # R14: nr_retries-- (post-decrement)
            retries = self.tc_retries[t]
            self.tc_retries[t] = retries - 1
            if retries:
                return RETRY
            # R15
            if gfp & _GFP_RETRY_MAYFAIL:
                return NOMEM
            if legacy:
                # before a4ebf1b6: a task with a fatal signal forces instead of OOMing
                if self.sigkill[t]:
                    return FORCE
            # R16
            elif self.tc_passed_oom[t] and self.task_is_dying(t):
                return NOMEM
            # R17
            kills = self.stats[STAT_OOM_KILLS]
            order = get_order(nr_pages)
            if self.mem_cgroup_oom(t, mem_over_limit, gfp, order):
                self.tc_outcome[t] |= OUT_OOM
                self.tc_passed_oom[t] = 1
                self.tc_retries[t] = MAX_RECLAIM_RETRIES
                if self.emu_livelock_check(t, &self.tc_oom_nokill[t], kills, mem_over_limit,
                                           SITE_TRY_CHARGE):
                    self.tc_outcome[t] |= OUT_LIVELOCK
                    self.tc_rc[t] = EMU_LIVELOCK
                    return DONE
                return RETRY
            # legacy: OOM_FAILED (no victim found) forces the charge; OOM_SKIPPED (order > 3)
            # still fails it
            if legacy and order <= PAGE_ALLOC_COSTLY_ORDER:
                return FORCE
            return NOMEM

        if label == NOMEM:
            if not (gfp & (_GFP_NOFAIL | _GFP_HIGH)):
                self._stat(STAT_ENOMEM, 1)
                self.tc_rc[t] = -ENOMEM
                return DONE
            return FORCE

        if label == FORCE:
            if not self.tc_raised_max[t]:
                self.memcg_memory_event(self.tc_mem_over_limit[t], MEMCG_MAX)
            self.page_counter_charge(memcg, nr_pages)
            self.tc_outcome[t] |= OUT_FORCED
            self._stat(STAT_FORCED_CHARGES, 1)
            if self.kn.accountforce_high and self.tc_outcome[t] & OUT_DEFERRED:
                # accountforce_high=armed: done_restock's over-high check, no sync reclaim
                m = memcg
                while m >= 0:
                    if self.usage[m] > self.high[m] or self.swap_usage[m] > self.swap_high[m]:
                        self.memcg_nr_pages_over_high[t] = \
                            (self.memcg_nr_pages_over_high[t] + nr_pages) & 0xFFFFFFFFLL
                        self.notify_resume[t] = 1
                        break
                    m = self.parent[m]
            self.tc_rc[t] = 0
            return DONE

        # DONE_RESTOCK
        return self.try_charge_done_restock(t, memcg, gfp, nr_pages)

    # try_charge_step()'s RETRY segment after R0 (consume_stock() missed): R1 to R9.  Its own
    # method so that replay's charge shortcut, whose stock lookup was R0, can start here.
    cdef Label try_charge_past_r0(self, task_id_t t, cg_id_t memcg, gfp_t gfp,
                                  pages_t nr_pages) noexcept nogil:
        cdef pages_t batch, reclaimed
        cdef cg_id_t fail, mem_over_limit
        cdef int64_t flags
        cdef bint legacy = self.kn.dying_bypass != 0
        # R1: no reclaim bits at all (bpf nolock): no batching
        if not (gfp & _GFP_RECLAIM):
            self.tc_batch[t] = nr_pages
        batch = self.tc_batch[t]
        # R3 (v2)
        fail = self.page_counter_try_charge(memcg, batch)
        if fail < 0:
            return DONE_RESTOCK
        self.tc_mem_over_limit[t] = fail
        # R4
        if batch > nr_pages:
            self.tc_batch[t] = nr_pages
            return RETRY
        flags = self.flags[t]
        # dying_bypass=5.15 (before a4ebf1b6): should_force_charge()
        if legacy and self.task_is_dying(t):
            return FORCE
        # R5
        if flags & PF_MEMALLOC:
            return FORCE
        # the patch's hook: after PF_MEMALLOC, before every retry-policy check
        # (docs/model.md §13)
        if (self.kn.accountforce != AF_OFF and flags & PF_MEMALLOC_ACCOUNTFORCE
                and self.emu_accountforce_applies(t, memcg, gfp, nr_pages, flags)):
            if self.kn.accountforce == AF_NOFAIL:
                return FORCE  # what NOFAIL ends in anyway, without the loop
            self.memcg_nr_pages_over_max[t] = \
                (self.memcg_nr_pages_over_max[t] + nr_pages) & 0xFFFFFFFFLL
            if self.kn.over_max_target:
                self.emu_note_over_max_target(t, memcg)
            self.notify_resume[t] = 1
            self.tc_outcome[t] |= OUT_DEFERRED
            self._stat(STAT_FORCED_PAGES_OVER_MAX, nr_pages)
            return FORCE
        # R6: task_in_memcg_oom() is always false on v2
        # R7
        if not (gfp & _GFP_DIRECT_RECLAIM):
            return NOMEM
        # R8
        mem_over_limit = fail
        self.memcg_memory_event(mem_over_limit, MEMCG_MAX)
        self.tc_raised_max[t] = 1
        # R9
        reclaimed = self.try_to_free_mem_cgroup_pages(
            t, mem_over_limit, nr_pages, gfp, self.tc_may_swap[t] != 0, 0)
        self.tc_reclaimed[t] = reclaimed
        if reclaimed:
            self.tc_outcome[t] |= OUT_RECLAIMED
        return RECLAIMED

    # try_charge_step()'s DONE_RESTOCK segment (`done_restock:` of try_charge_memcg()).
    cdef Label try_charge_done_restock(self, task_id_t t, cg_id_t memcg, gfp_t gfp,
                                       pages_t nr_pages) noexcept nogil:
        cdef pages_t batch
        cdef cg_id_t m
        cdef bint mem_high, swap_high
        batch = self.tc_batch[t]
        if batch > nr_pages:
            self.refill_stock(self.cpu[t], memcg, batch - nr_pages)
        # task context: the first over-high level arms return-to-user reclaim
        m = memcg
        while m >= 0:
            mem_high = self.usage[m] > self.high[m]
            swap_high = self.swap_usage[m] > self.swap_high[m]
            if mem_high or swap_high:
                self.memcg_nr_pages_over_high[t] = \
                    (self.memcg_nr_pages_over_high[t] + batch) & 0xFFFFFFFFLL
                self.notify_resume[t] = 1
                break
            m = self.parent[m]
        if (self.memcg_nr_pages_over_high[t] > MEMCG_CHARGE_BATCH
                and not (self.flags[t] & PF_MEMALLOC)
                and gfp & _GFP_DIRECT_RECLAIM):
            if self.mem_cgroup_handle_over_high(t, gfp):
                self.tc_outcome[t] |= OUT_THROTTLED
        self.tc_rc[t] = 0
        return DONE

    cdef bint emu_livelock_check(self, task_id_t t, int64_t* nokill, int64_t kills_before,
                                 cg_id_t memcg, int site) noexcept nogil:
        if self.stats[STAT_OOM_KILLS] != kills_before:
            nokill[0] = 0
            return False
        nokill[0] += 1
        if nokill[0] < self._cfg(CFG_LIVELOCK_LIMIT):
            return False
        self.emu_record_livelock(t, memcg, site)
        return True

    cdef void emu_record_livelock(self, task_id_t t, cg_id_t memcg, int site) noexcept nogil:
        self._stat(STAT_LIVELOCKS, 1)
        self.cg_livelocks[memcg] += 1
        if t >= 0:
            self.livelocks[t] += 1
            self.livelock_site[t] = site

    cdef bint emu_accountforce_applies(self, task_id_t t, cg_id_t memcg, gfp_t gfp,
                                       pages_t nr_pages, int64_t flags) noexcept nogil:
        cdef cg_id_t m
        if self.kn.accountforce == AF_NOFAIL and not (gfp & _GFP_NOFAIL):
            return False
        if self.kn.accountforce_nowait and (
                not (gfp & _GFP_DIRECT_RECLAIM) or gfp & (_GFP_NORETRY | _GFP_RETRY_MAYFAIL)):
            return False  # a charge that may fail fast keeps failing fast
        if (self.kn.accountforce_kthread and self.kn.accountforce == AF_V1
                and flags & PF_KTHREAD):
            return False  # never runs resume_user_mode_work: could never repay
        if self.kn.over_max_cap:
            m = memcg
            while m >= 0:
                if self.usage[m] + nr_pages > self.max[m] + self.kn.over_max_cap:
                    return False
                m = self.parent[m]
        return True

    cdef void emu_note_over_max_target(self, task_id_t t, cg_id_t memcg) noexcept nogil:
        cdef cg_id_t cur = self.memcg_over_max_target[t]
        if cur < 0:
            self.memcg_over_max_target[t] = memcg
            return
        while cur > 0 and not self.mem_cgroup_is_descendant(memcg, cur):
            cur = self.parent[cur]
        self.memcg_over_max_target[t] = cur

    # =========================================================================================
    # memory.high (docs/model.md §6)
    # =========================================================================================
    cdef pages_t reclaim_high(self, task_id_t t, cg_id_t memcg, pages_t nr_pages,
                              gfp_t gfp) noexcept nogil:
        cdef pages_t nr_reclaimed = 0
        while True:
            if self.usage[memcg] > self.high[memcg]:
                self.memcg_memory_event(memcg, MEMCG_HIGH)
                self._stat(STAT_HIGH_RECLAIMS, 1)
                nr_reclaimed += self.try_to_free_mem_cgroup_pages(t, memcg, nr_pages, gfp,
                                                                  True, 0)
            memcg = self.parent[memcg]
            if memcg <= 0:
                break
        return nr_reclaimed

    cdef u64 mem_find_max_overage(self, cg_id_t memcg) noexcept nogil:
        cdef u64 overage, max_overage = 0
        while True:
            overage = calculate_overage(self.usage[memcg], self.high[memcg])
            max_overage = max(overage, max_overage)
            memcg = self.parent[memcg]
            if memcg <= 0:
                break
        return max_overage

    cdef u64 swap_find_max_overage(self, cg_id_t memcg) noexcept nogil:
        cdef u64 overage, max_overage = 0
        while True:
            overage = calculate_overage(self.swap_usage[memcg], self.swap_high[memcg])
            if overage:
                self.memcg_memory_event(memcg, MEMCG_SWAP_HIGH)
            max_overage = max(overage, max_overage)
            memcg = self.parent[memcg]
            if memcg <= 0:
                break
        return max_overage

    cdef int64_t mem_cgroup_handle_over_high(self, task_id_t t, gfp_t gfp) noexcept nogil:
        cdef Label label = self.handle_over_high_begin(t, gfp)
        while label != DONE:
            label = self.handle_over_high_next(t)
        return self.hh_penalty[t]

    cdef Label handle_over_high_begin(self, task_id_t t, gfp_t gfp) noexcept nogil:
        cdef pages_t nr_pages = self.memcg_nr_pages_over_high[t]
        self.hh_penalty[t] = 0
        if not nr_pages:
            return DONE
        self.hh_memcg[t] = self.get_mem_cgroup_from_mm(t)
        self.memcg_nr_pages_over_high[t] = 0
        self.hh_gfp[t] = gfp
        self.hh_nr_pages[t] = nr_pages
        self.hh_retries[t] = MAX_RECLAIM_RETRIES
        self.hh_in_retry[t] = 0
        self.hh_label[t] = HIGH_LOOP
        return HIGH_LOOP

    cdef Label handle_over_high_next(self, task_id_t t) noexcept nogil:
        cdef Label label = self.handle_over_high_step(t, <Label>self.hh_label[t])
        self.hh_label[t] = label if label != DONE else IDLE
        return label

    cdef Label handle_over_high_step(self, task_id_t t, Label label) noexcept nogil:
        cdef cg_id_t memcg = self.hh_memcg[t]
        cdef pages_t nr_pages = self.hh_nr_pages[t]
        cdef pages_t nr_reclaimed
        cdef u64 penalty
        cdef int64_t retries
        if self.task_is_dying(t):
            return DONE
        nr_reclaimed = self.reclaim_high(
            t, memcg, SWAP_CLUSTER_MAX if self.hh_in_retry[t] else nr_pages, self.hh_gfp[t])
        penalty = calculate_high_delay(<u64>nr_pages, self.mem_find_max_overage(memcg))
        penalty = penalty + calculate_high_delay(<u64>nr_pages,
                                                 self.swap_find_max_overage(memcg))
        penalty = min(penalty, <u64>MEMCG_MAX_HIGH_DELAY_JIFFIES)
        if penalty <= HZ // 100:
            return DONE
        retries = self.hh_retries[t]
        if nr_reclaimed:
            self.hh_in_retry[t] = 1
            return HIGH_LOOP
        self.hh_retries[t] = retries - 1
        if retries:
            self.hh_in_retry[t] = 1
            return HIGH_LOOP
        # schedule_timeout_killable(penalty): in step mode the sleep is recorded, not waited
        self.hh_penalty[t] = <int64_t>penalty
        self.throttle_jiffies[t] += <int64_t>penalty
        self._stat(STAT_THROTTLE_JIFFIES, <int64_t>penalty)
        return DONE

    # =========================================================================================
    # the patch: mem_cgroup_handle_over_max (docs/model.md §13)
    # =========================================================================================
    cdef cg_id_t get_over_limit_memcg(self, cg_id_t memcg) noexcept nogil:
        while memcg >= 0:
            if self.usage[memcg] > self.max[memcg]:
                return memcg
            memcg = self.parent[memcg]
        return -1

    cdef void mem_cgroup_handle_over_max(self, task_id_t t, gfp_t gfp) noexcept nogil:
        cdef Label label = self.handle_over_max_begin(t, gfp)
        while label != DONE:
            label = self.handle_over_max_next(t)

    cdef Label handle_over_max_begin(self, task_id_t t, gfp_t gfp) noexcept nogil:
        cdef pages_t nr_pages = self.memcg_nr_pages_over_max[t]
        if not nr_pages:
            return DONE
        cdef cg_id_t target = self.memcg_over_max_target[t]
        if self.kn.over_max_target and target >= 0:
            self.hm_memcg[t] = target  # over_max_target=charged
            self.memcg_over_max_target[t] = -1
        else:
            self.hm_memcg[t] = self.get_mem_cgroup_from_mm(t)
        self.memcg_nr_pages_over_max[t] = 0
        self.hm_nr_pages[t] = nr_pages
        self.hm_reclaimed[t] = 0
        self.hm_retries[t] = MAX_RECLAIM_RETRIES
        self.hm_oom_nokill[t] = 0
        self.hm_drained[t] = 0
        self.hm_label[t] = MAX_RETRY
        return MAX_RETRY

    cdef Label handle_over_max_next(self, task_id_t t) noexcept nogil:
        cdef Label label = self.handle_over_max_step(t, <Label>self.hm_label[t])
        self.hm_label[t] = label if label != DONE else IDLE
        return label

    cdef Label handle_over_max_step(self, task_id_t t, Label label) noexcept nogil:
        cdef pages_t nr_pages = self.hm_nr_pages[t]
        cdef cg_id_t over = self.get_over_limit_memcg(self.hm_memcg[t])
        cdef pages_t reclaimed, got, deficit
        cdef int64_t retries, kills
        cdef int order
        self.hm_over[t] = over
        if over < 0:
            return DONE
        if self.kn.over_max_dying and self.task_is_dying(t):
            return DONE  # over_max_dying=exit
        reclaimed = self.hm_reclaimed[t]
        if self.kn.over_max_reclaim:
            # over_max_reclaim=excess: memory_max_write()'s loop
            if not self.hm_drained[t]:
                self.drain_all_stock(over)
                self.hm_drained[t] = 1
            while self.usage[over] > self.max[over]:
                if not self.hm_retries[t]:
                    break
                got = self.try_to_free_mem_cgroup_pages(
                    t, over, self.usage[over] - self.max[over], GFP_KERNEL, True, 0)
                if not got:
                    self.hm_retries[t] -= 1
                reclaimed += got
            deficit = self.usage[over] - self.max[over]
        else:
            while reclaimed < nr_pages:
                # the full nr_pages every time, GFP_KERNEL hard-coded, no drain, no PSI
                # (docs/model.md §17.8-11)
                got = self.try_to_free_mem_cgroup_pages(t, over, nr_pages, GFP_KERNEL, True, 0)
                if not got:
                    retries = self.hm_retries[t]
                    self.hm_retries[t] = retries - 1
                    if not retries:
                        break
                reclaimed += got
            deficit = nr_pages - reclaimed
        self.hm_reclaimed[t] = reclaimed
        if deficit > 0 and self.usage[over] > self.max[over]:
            kills = self.stats[STAT_OOM_KILLS]
            order = 0 if self.kn.over_max_oom_order else get_order(deficit)
            if order > PAGE_ALLOC_COSTLY_ORDER:
                self._stat(STAT_OVER_MAX_OOM_SKIPPED, 1)  # mem_cgroup_oom() will refuse
            if self.mem_cgroup_oom(t, over, GFP_KERNEL, order):
                self.hm_retries[t] = MAX_RECLAIM_RETRIES
                if self.emu_livelock_check(t, &self.hm_oom_nokill[t], kills, over,
                                           SITE_HANDLE_OVER_MAX):
                    return DONE
                return MAX_RETRY
        return DONE

    # =========================================================================================
    # return to user (docs/model.md §12)
    # =========================================================================================
    cpdef int64_t return_to_user(self, task_id_t t) noexcept nogil:
        """return_to_user(t) -> jiffies slept for memory.high (the fatal signal comes first)."""
        cdef int64_t livelocks = self.livelocks[t]
        cdef Label label = self.rtu_start(t)
        while label != DONE:
            label = self.rtu_step(t)
        # flags read again (unless stopped as a livelock), as in the reference
        if self.sigkill[t] and self.state[t] != TASK_EXITED and self.livelocks[t] == livelocks:
            self.exit_task(t)
        return self.hh_penalty[t]

    cpdef Label rtu_start(self, task_id_t t) noexcept nogil:
        """rtu_start(t) -> Label: signal delivery, then the first notify-resume step."""
        cdef Label label
        self.hh_penalty[t] = 0
        if self.sigkill[t]:  # signals are handled before TIF_NOTIFY_RESUME work
            self.exit_task(t)
            return DONE
        if not self.notify_resume[t]:
            return DONE
        self.notify_resume[t] = 0
        if self.kn.accountforce == AF_V1:
            label = self.handle_over_max_begin(t, GFP_KERNEL)
            if label != DONE:
                return label
        return self.handle_over_high_begin(t, GFP_KERNEL)

    cpdef Label rtu_step(self, task_id_t t) noexcept nogil:
        """rtu_step(t) -> Label: one handle_over_max round, then handle_over_high rounds."""
        cdef Label label
        if self.hm_label[t] != IDLE:
            label = self.handle_over_max_next(t)
            if label != DONE:
                return label
            return self.handle_over_high_begin(t, GFP_KERNEL)
        if self.hh_label[t] != IDLE:
            return self.handle_over_high_next(t)
        return DONE

    # =========================================================================================
    # reclaim (docs/model.md §11): abstract model over the per-memcg pools
    # =========================================================================================
    cdef gfp_t current_gfp_context(self, task_id_t t, gfp_t gfp) noexcept nogil:
        cdef int64_t flags
        if t < 0:
            return gfp
        flags = self.flags[t]
        if flags & PF_MEMALLOC_NOIO:
            gfp &= ~(_GFP_IO | _GFP_FS)
        elif flags & PF_MEMALLOC_NOFS:
            gfp &= ~_GFP_FS
        if flags & PF_MEMALLOC_PIN:
            gfp &= ~_GFP_MOVABLE
        return gfp

    cdef pages_t mem_cgroup_get_nr_swap_pages(self, cg_id_t memcg) noexcept nogil:
        cdef pages_t nr = self._cfg(CFG_TOTAL_SWAP) - self.swap_usage[0]
        while memcg > 0:
            nr = min(nr, self.swap_max[memcg] - self.swap_usage[memcg])
            memcg = self.parent[memcg]
        return nr

    cdef pages_t shrink_lruvec(self, cg_id_t m, cg_id_t target, int priority,
                               pages_t nr_to_reclaim, pages_t nr_reclaimed, bint low_reclaim,
                               bint may_swap, bint* low_skipped) noexcept nogil:
        cdef pages_t protection = 0
        cdef pages_t emin, elow, size, clean, file_lru, anon_lru, swap_room
        cdef pages_t scan_file, scan_anon, need, freed_file, freed_anon, scanned
        low_skipped[0] = False
        if m != target and m != 0:
            emin = self.emin[m]
            elow = self.elow[m]
            if not low_reclaim and elow > emin:
                protection = elow
                low_skipped[0] = True
            else:
                protection = emin
        size = self.usage[m]
        clean = self.pool[m, FILE]
        file_lru = clean + self.pool[m, FILE_DIRTY] + self.pool[m, FILE_WRITEBACK]
        anon_lru = 0
        swap_room = 0
        if may_swap and self._cfg(CFG_SWAPPINESS):
            swap_room = max(self.mem_cgroup_get_nr_swap_pages(m), 0)
            if swap_room > 0:
                anon_lru = self.pool[m, ANON]
        scan_file = emu_scan_count(file_lru, protection, size, priority)
        scan_anon = emu_scan_count(anon_lru, protection, size, priority)
        need = nr_to_reclaim - nr_reclaimed
        freed_file = min(scan_file, clean, need)
        scanned = scan_file if freed_file < need else freed_file
        if freed_file < need and scan_file > clean:
            # dirty/writeback pages at the LRU tail: direct reclaim cannot write them, it
            # can only wake the flusher
            self._stat(STAT_FLUSHER_WAKEUPS, 1)
        if freed_file:
            self.pool[m, FILE] -= freed_file
            self.page_counter_uncharge(m, freed_file)
        need -= freed_file
        freed_anon = min(scan_anon, swap_room, need) if need > 0 else 0
        scanned += scan_anon if freed_anon < need else freed_anon
        if freed_anon:
            self.pool[m, ANON] -= freed_anon
            self.pool[m, SWAP] += freed_anon
            self.page_counter_uncharge(m, freed_anon)
            self.swap_counter_charge(m, freed_anon)
        self.pgscan[m] += scanned
        self.pgsteal[m] += freed_file + freed_anon
        self._stat(STAT_RECLAIM_SCANNED, scanned)
        return freed_file + freed_anon

    cdef pages_t shrink_node_memcgs(self, cg_id_t target, int priority, pages_t nr_to_reclaim,
                                    pages_t nr_reclaimed, bint low_reclaim, bint may_swap,
                                    bint* low_skipped) noexcept nogil:
        cdef int64_t i
        cdef cg_id_t m
        cdef bint unprotected, skipped
        cdef pages_t usage, freed
        low_skipped[0] = False
        for i in range(self.pos[target], self.subtree_end[target]):
            m = self.preorder[i]
            self.page_counter_calculate_protection(target, m)
            unprotected = m == target or m == 0
            usage = self.usage[m]
            if not unprotected and self.emin[m] >= usage:
                continue  # below min: hard protection
            if not unprotected and self.elow[m] >= usage:
                if not low_reclaim:
                    low_skipped[0] = True
                    continue
                self.memcg_memory_event(m, MEMCG_LOW)
            freed = self.shrink_lruvec(m, target, priority, nr_to_reclaim, nr_reclaimed,
                                       low_reclaim, may_swap, &skipped)
            nr_reclaimed += freed
            low_skipped[0] = low_skipped[0] or skipped
            if nr_reclaimed >= nr_to_reclaim:
                break
        return nr_reclaimed

    cdef pages_t try_to_free_mem_cgroup_pages(self, task_id_t t, cg_id_t target,
                                              pages_t nr_pages, gfp_t gfp, bint may_swap,
                                              int64_t swappiness_zero) noexcept nogil:
        cdef pages_t nr_to_reclaim = max(nr_pages, <pages_t>SWAP_CLUSTER_MAX)
        cdef int64_t saved = 0
        cdef pages_t nr_reclaimed
        cdef bint low_reclaim, low_skipped, skipped
        cdef int priority
        gfp = self.current_gfp_context(t, gfp)
        # adding an anon page to swap needs IO (shrink_folio_list); swappiness=0 asks none
        may_swap = may_swap and (gfp & _GFP_IO) != 0 and not swappiness_zero
        if t >= 0:  # memalloc_noreclaim_save()
            saved = self.flags[t] & PF_MEMALLOC
            self.flags[t] |= PF_MEMALLOC
        self._stat(STAT_RECLAIM_CALLS, 1)
        nr_reclaimed = 0
        low_reclaim = False
        while True:
            low_skipped = False
            for priority in range(DEF_PRIORITY, -1, -1):
                nr_reclaimed = self.shrink_node_memcgs(target, priority, nr_to_reclaim,
                                                       nr_reclaimed, low_reclaim, may_swap,
                                                       &skipped)
                low_skipped = low_skipped or skipped
                if nr_reclaimed >= nr_to_reclaim:
                    break
            if nr_reclaimed or low_reclaim or not low_skipped:
                break
            low_reclaim = True  # retry ignoring memory.low (sc->memcg_low_reclaim)
        if t >= 0:  # memalloc_noreclaim_restore()
            self.flags[t] = (self.flags[t] & ~PF_MEMALLOC) | saved
        self._stat(STAT_RECLAIM_RECLAIMED, nr_reclaimed)
        return nr_reclaimed

    # =========================================================================================
    # OOM (docs/model.md §7)
    # =========================================================================================
    cdef bint mem_cgroup_oom(self, task_id_t t, cg_id_t memcg, gfp_t gfp,
                             int order) noexcept nogil:
        if order > PAGE_ALLOC_COSTLY_ORDER:
            return False
        self.memcg_memory_event(memcg, MEMCG_OOM)
        # memcg1_oom_prepare() always proceeds on v2
        return self.mem_cgroup_out_of_memory(t, memcg, gfp, order)

    cdef bint mem_cgroup_out_of_memory(self, task_id_t t, cg_id_t memcg, gfp_t gfp,
                                       int order) noexcept nogil:
        # oom_lock is uncontended in step/replay mode, so mutex_lock_killable never fails
        self._stat(STAT_OOM_CALLS, 1)
        if self.mem_cgroup_margin(memcg) >= (<pages_t>1 << order):
            return True
        # legacy-dying-bypass: `ret = should_force_charge() || out_of_memory(&oc)`
        if self.kn.dying_bypass and self.task_is_dying(t):
            return True
        return self.out_of_memory(t, memcg)

    cdef task_id_t find_lock_task_mm(self, task_id_t p) noexcept nogil:
        cdef task_id_t leader = self.tgid[p]
        cdef task_id_t k
        if self.has_mm[leader]:
            return leader
        for k in range(leader + 1, self._cfg(CFG_N_TASKS)):
            if self.tgid[k] == leader and self.has_mm[k]:
                return k
        return -1

    cdef bint emu_thread_group_empty(self, task_id_t t) noexcept nogil:
        cdef task_id_t leader = self.tgid[t]
        cdef task_id_t k
        for k in range(leader, self._cfg(CFG_N_TASKS)):
            if k != t and self.tgid[k] == leader and self.state[k] != TASK_EXITED:
                return False
        return True

    cdef bint _task_will_free_mem(self, task_id_t t) noexcept nogil:
        if self.sigkill[t]:
            return True
        return (self.flags[t] & PF_EXITING) != 0 and self.emu_thread_group_empty(t)

    cdef bint task_will_free_mem(self, task_id_t t) noexcept nogil:
        cdef task_id_t mm, k
        if t < 0 or not self.has_mm[t]:
            return False
        if not self._task_will_free_mem(t):
            return False
        mm = self.mm[t]
        if self.mm_oom_skip[mm]:
            return False
        if self.mm_users[mm] <= 1:
            return True
        for k in range(self._cfg(CFG_N_TASKS)):
            if self.has_mm[k] and self.mm[k] == mm and self.tgid[k] != self.tgid[t]:
                if not self._task_will_free_mem(k):
                    return False
        return True

    cdef void mark_oom_victim(self, task_id_t t) noexcept nogil:
        cdef task_id_t mm = self.mm[t]
        cdef task_id_t leader = self.tgid[t]
        self.oom_gen += 1
        self.oom_victim[t] = 1
        if self.oom_mm[leader] < 0:
            self.oom_mm[leader] = mm
        if not self.mm_oom_skip[mm]:
            self.reap_queued[mm] = 1

    cdef pages_t mem_cgroup_get_max(self, cg_id_t memcg) noexcept nogil:
        cdef pages_t mx = self.max[memcg]
        if self._cfg(CFG_SWAPPINESS):
            mx += min(self.swap_max[memcg], self._cfg(CFG_TOTAL_SWAP))
        return mx

    cdef int64_t oom_badness(self, task_id_t t, pages_t totalpages) noexcept nogil:
        cdef task_id_t p = self.find_lock_task_mm(t)
        cdef int64_t adj, points
        cdef task_id_t mm
        if p < 0:
            return INT64_MIN
        adj = self.oom_score_adj[self.tgid[t]]
        mm = self.mm[p]
        if adj == OOM_SCORE_ADJ_MIN or self.mm_oom_skip[mm]:
            return INT64_MIN
        points = self.owned[mm, ANON] + self.owned[mm, UNEVICTABLE]
        return points + adj * (totalpages // 1000)

    cdef bint emu_oom_killable(self, task_id_t t) noexcept nogil:
        if self.tgid[t] != t or (self.flags[t] & PF_KTHREAD):
            return False
        if self.state[t] != TASK_EXITED:
            return True
        return not self.emu_thread_group_empty(t)

    cdef task_id_t select_bad_process(self, cg_id_t memcg, pages_t totalpages) noexcept nogil:
        # The reference's scan (memcgs of the subtree in pre-order, each memcg's processes in pid
        # order, ties to the later one) in one pass over the task table: the scan has no side
        # effects, so the choice is the candidate with the largest (points, pos[memcg], pid),
        # and -2 if any candidate is a pending victim.  thread_group_empty() and
        # find_lock_task_mm() of the leaders that need them (an exited leader, a leader past
        # exit_mm()) come from one more pass that tabulates each group's live threads and
        # first thread with an mm, so a scan costs O(tasks), as css_task_iter does.
        cdef int64_t n = self._cfg(CFG_N_TASKS)
        cdef int64_t lo = self.pos[memcg], hi = self.subtree_end[memcg]
        cdef task_id_t chosen = -1
        cdef int64_t chosen_points = INT64_MIN, chosen_pos = -1
        cdef int64_t points, adj, at
        cdef int64_t* live = NULL  # live[leader]: threads of the group not TASK_EXITED
        cdef int64_t* first_mm = NULL  # first_mm[leader]: find_lock_task_mm(leader) + 1
        cdef cg_id_t m
        cdef task_id_t t, k, p, mm
        t = self.oom_witness  # still a pending victim of this domain: -2, whoever else is
        k = self.oom_witness_thread  # (an exited leader is visited while a thread lives)
        if 0 <= t < n and self.tgid[t] == t and not (self.flags[t] & PF_KTHREAD) and \
                self.memcg[t] >= 0 and lo <= self.pos[self.memcg[t]] < hi and \
                self.oom_mm[t] >= 0 and not self.mm_oom_skip[self.oom_mm[t]] and (
                    self.state[t] != TASK_EXITED or (
                        t < k < n and self.tgid[k] == t and self.state[k] != TASK_EXITED)):
            return -2
        for t in range(n):
            if self.tgid[t] != t or (self.flags[t] & PF_KTHREAD):
                continue
            m = self.memcg[t]
            if m < 0:
                continue
            at = self.pos[m]
            if at < lo or at >= hi:
                continue
            if (self.state[t] == TASK_EXITED or not self.has_mm[t]) and live == NULL:
                live = <int64_t*>calloc(n, sizeof(int64_t))
                first_mm = <int64_t*>calloc(n, sizeof(int64_t))
                if live == NULL or first_mm == NULL:
                    abort()
                for k in range(n):
                    if self.state[k] != TASK_EXITED:
                        live[self.tgid[k]] += 1
                    if self.has_mm[k] and first_mm[self.tgid[k]] == 0:
                        first_mm[self.tgid[k]] = k + 1
            if self.state[t] == TASK_EXITED and live[t] == 0:  # emu_oom_killable()
                continue
            if self.oom_mm[t] >= 0:  # tsk_is_oom_victim()
                if self.mm_oom_skip[self.oom_mm[t]]:
                    continue
                chosen = -2
                self.oom_witness = t
                if self.state[t] == TASK_EXITED:
                    for k in range(t + 1, n):
                        if self.tgid[k] == t and self.state[k] != TASK_EXITED:
                            self.oom_witness_thread = k
                            break
                break
            # oom_badness(t, totalpages)
            p = t if self.has_mm[t] else first_mm[t] - 1
            if p < 0:
                continue
            adj = self.oom_score_adj[t]
            mm = self.mm[p]
            if adj == OOM_SCORE_ADJ_MIN or self.mm_oom_skip[mm]:
                continue
            points = self.owned[mm, ANON] + self.owned[mm, UNEVICTABLE] + adj * (totalpages // 1000)
            if points < chosen_points or (points == chosen_points and at < chosen_pos):
                continue
            chosen = t
            chosen_points = points
            chosen_pos = at
        free(live)
        free(first_mm)
        return chosen

    cdef bint out_of_memory(self, task_id_t t, cg_id_t memcg) noexcept nogil:
        cdef pages_t totalpages
        cdef task_id_t victim
        if self.task_will_free_mem(t):
            self.mark_oom_victim(t)
            return True
        totalpages = self.mem_cgroup_get_max(memcg)
        if not totalpages:  # `or 1`
            totalpages = 1
        victim = self.select_bad_process(memcg, totalpages)
        if victim == -1:
            return False
        if victim == -2:
            return True
        self.oom_kill_process(t, victim, memcg)
        return True

    cdef cg_id_t mem_cgroup_get_oom_group(self, task_id_t victim,
                                          cg_id_t oom_domain) noexcept nogil:
        cdef cg_id_t m = self.memcg[victim]
        cdef cg_id_t oom_group
        if m == 0 or not self.mem_cgroup_is_descendant(m, oom_domain):
            return -1
        oom_group = -1
        while m >= 0:
            if self.oom_group[m]:
                oom_group = m
            if m == oom_domain:
                break
            m = self.parent[m]
        return oom_group

    cdef void oom_kill_process(self, task_id_t t, task_id_t victim, cg_id_t memcg) noexcept nogil:
        cdef cg_id_t oom_group, m
        cdef int64_t i, lo, width, at, nc
        cdef int64_t n = self._cfg(CFG_N_TASKS)
        cdef int64_t* cand
        cdef int64_t* start
        cdef int64_t* order
        cdef task_id_t k
        if self.task_will_free_mem(victim):
            self.mark_oom_victim(victim)
            return
        oom_group = self.mem_cgroup_get_oom_group(victim, memcg)
        self._oom_kill_process(t, victim)
        if oom_group >= 0:
            self.memcg_memory_event(oom_group, MEMCG_OOM_GROUP_KILL)
            # The reference's order (memcgs in pre-order, pids ascending in each) from one pass
            # over the task table and a counting sort by pre-order position: the kills change
            # none of what selects the members (memcg, tgid, state, flags, oom_score_adj).
            lo = self.pos[oom_group]
            width = self.subtree_end[oom_group] - lo
            cand = <int64_t*>calloc(n + 1, sizeof(int64_t))
            order = <int64_t*>calloc(n + 1, sizeof(int64_t))
            start = <int64_t*>calloc(width + 1, sizeof(int64_t))
            if cand == NULL or order == NULL or start == NULL:
                abort()
            nc = 0
            for k in range(n):
                if self.tgid[k] != k or self.memcg[k] < 0:
                    continue
                at = self.pos[self.memcg[k]] - lo
                if at < 0 or at >= width or not self.emu_oom_killable(k):
                    continue
                if self.oom_score_adj[k] == OOM_SCORE_ADJ_MIN:
                    continue
                cand[nc] = k
                nc += 1
                start[at + 1] += 1
            for i in range(1, width):
                start[i] += start[i - 1]
            for i in range(nc):
                at = self.pos[self.memcg[cand[i]]] - lo
                order[start[at]] = cand[i]
                start[at] += 1
            for i in range(nc):
                self._oom_kill_process(t, order[i])
            free(cand)
            free(order)
            free(start)
        self.emu_exit_killed()

    cdef void _oom_kill_process(self, task_id_t t, task_id_t victim) noexcept nogil:
        # kernel __oom_kill_process(); as documented in the reference
        cdef task_id_t p = self.find_lock_task_mm(victim)
        cdef task_id_t mm, leader, k
        if p < 0:
            return
        mm = self.mm[p]
        self.memcg_memory_event(self.memcg[mm], MEMCG_OOM_KILL)
        self._stat(STAT_OOM_KILLS, 1)
        leader = self.tgid[p]
        self.emu_send_sigkill(t, leader)
        self.mark_oom_victim(p)
        if self.mm_users[mm] > 1:
            for k in range(self._cfg(CFG_N_TASKS)):
                if (self.has_mm[k] and self.mm[k] == mm and self.tgid[k] != leader
                        and not (self.flags[k] & PF_KTHREAD) and not self.sigkill[k]):
                    self.emu_send_sigkill(t, self.tgid[k])

    cdef void emu_send_sigkill(self, task_id_t t, task_id_t leader) noexcept nogil:
        cdef int64_t lifecycle = self._cfg(CFG_TIMED_LIFECYCLE)
        cdef task_id_t k
        for k in range(leader, self._cfg(CFG_N_TASKS)):
            if self.tgid[k] != leader or self.state[k] == TASK_EXITED:
                continue
            self.sigkill[k] = 1
            self.oom_gen += 1
            if k != t and self.state[k] == TASK_RUNNING and (
                    lifecycle == 0 or (lifecycle == 2 and self.in_user[k])):
                self.exit_pending[k] = 1

    cdef void emu_exit_killed(self) noexcept nogil:
        cdef task_id_t k
        for k in range(self._cfg(CFG_N_TASKS)):
            if self.exit_pending[k]:
                self.exit_pending[k] = 0
                self.exit_task(k)

    cdef pages_t emu_free_owned(self, task_id_t t, int kinds) noexcept nogil:
        cdef cg_id_t m = self.page_memcg[t]
        cdef pages_t freed = 0
        cdef pages_t n, resident, swapped
        cdef int j, k
        for j in range(3):
            k = ANON if j == 0 else (UNEVICTABLE if j == 1 else KERNEL)
            if not (kinds & (1 << k)):
                continue
            if m <= 0:
                self.owned[t, k] = 0
                continue
            n = self.owned[t, k]
            if not n:
                continue
            resident = min(n, self.pool[m, k])
            if resident:
                self.pool[m, k] -= resident
                self.page_counter_uncharge(m, resident)
            if k == ANON:
                swapped = min(n - resident, self.pool[m, SWAP])
                if swapped:
                    self.pool[m, SWAP] -= swapped
                    self.swap_counter_uncharge(m, swapped)
            self.owned[t, k] = 0
            freed += resident
        return freed

    cpdef void exit_task(self, task_id_t t) noexcept nogil:
        """exit_task(t): do_exit(); frees anon/mlocked/kernel pages, drops per-task debts."""
        cdef task_id_t mm
        cdef bint last = True
        if self.state[t] == TASK_EXITED:
            return
        self.oom_gen += 1
        self.flags[t] |= PF_EXITING
        mm = self.mm[t]
        if self.has_mm[t]:
            self.has_mm[t] = 0
            self.mm_users[mm] -= 1
            last = self.mm_users[mm] == 0
        if last:  # exit_mmap()
            self.emu_free_owned(mm, FREE_EXIT)
            self.mm_oom_skip[mm] = 1
            self.reap_queued[mm] = 0
            self.mmap_locked[mm] = 0
        self.state[t] = TASK_EXITED
        self.exit_pending[t] = 0
        self.memcg_nr_pages_over_high[t] = 0
        self.memcg_nr_pages_over_max[t] = 0
        self.notify_resume[t] = 0

    cpdef int64_t oom_reap_task(self, task_id_t t, bint final_attempt) noexcept nogil:
        """oom_reap_task(t, final_attempt) -> pages freed, or -1 if its mmap_lock is held."""
        cdef pages_t freed
        if not self.reap_queued[t]:
            return 0
        if not self.mm_users[t]:
            self.reap_queued[t] = 0
            return 0
        if self.mmap_locked[t]:
            if final_attempt:
                self.reap_queued[t] = 0
                self.mm_oom_skip[t] = 1
            return -1
        self.reap_queued[t] = 0
        freed = self.emu_free_owned(t, FREE_REAP)
        self.mm_oom_skip[t] = 1
        self._stat(STAT_REAPED_PAGES, freed)
        return freed

    cpdef int64_t oom_reaper(self) noexcept nogil:
        """oom_reaper() -> pages freed from every queued victim."""
        cdef pages_t freed = 0
        cdef task_id_t t
        for t in range(self._cfg(CFG_N_TASKS)):
            if not self.reap_queued[t]:
                continue
            self.reap_queued[t] = 0
            if not self.mm_users[t]:
                continue
            if not self.mmap_locked[t]:
                freed += self.emu_free_owned(t, FREE_REAP)
            # else: every one of the MAX_OOM_REAP_RETRIES trylocks fails while it is held
            self.mm_oom_skip[t] = 1
        self._stat(STAT_REAPED_PAGES, freed)
        return freed

    # =========================================================================================
    # tasks and scopes (docs/model.md §12)
    # =========================================================================================
    cpdef int64_t memalloc_flags_save(self, task_id_t t, int64_t flags) noexcept nogil:
        """memalloc_flags_save(t, flags) -> the bits newly set, or -1 when too deep."""
        cdef int64_t depth = self.scope_depth[t]
        cdef int64_t saved
        if depth >= MAX_SCOPE_DEPTH:
            return -1
        saved = ~self.flags[t] & flags
        self.flags[t] |= flags
        self.scope_stack[t, depth] = saved
        self.scope_depth[t] = depth + 1
        return saved

    cpdef int64_t memalloc_flags_restore(self, task_id_t t, int64_t saved) noexcept nogil:
        """memalloc_flags_restore(t, saved) -> 0, or -1 (nothing changed) on a mismatch."""
        cdef int64_t depth = self.scope_depth[t]
        if depth == 0 or self.scope_stack[t, depth - 1] != saved:
            return -1
        self.scope_depth[t] = depth - 1
        self.flags[t] &= ~saved
        return 0

    cpdef int64_t memalloc_account_force_restore(self, task_id_t t) noexcept nogil:
        """memalloc_account_force_restore(t) -> 0, or -1 without an open scope."""
        cdef int64_t depth = self.scope_depth[t]
        if depth == 0:
            return -1
        self.scope_depth[t] = depth - 1
        if self.kn.accountforce_restore:  # nesting-safe: memalloc_flags_restore(saved)
            self.flags[t] &= ~self.scope_stack[t, depth - 1]
        else:
            self.flags[t] &= ~PF_MEMALLOC_ACCOUNTFORCE
        return 0

    cpdef cg_id_t set_active_memcg(self, task_id_t t, cg_id_t memcg) noexcept nogil:
        """set_active_memcg(t, memcg) -> the previous active memcg (-1 = none)."""
        cdef cg_id_t old = self.active_memcg[t]
        self.active_memcg[t] = memcg
        return old

    cpdef void attach_task(self, task_id_t t, cg_id_t memcg) noexcept nogil:
        """attach_task(t, memcg): cgroup.procs write (the whole thread group); charges stay."""
        cdef task_id_t leader = self.tgid[t]
        cdef task_id_t k
        for k in range(leader, self._cfg(CFG_N_TASKS)):
            if self.tgid[k] == leader:
                self.memcg[k] = memcg

    cpdef void block_task(self, task_id_t t) noexcept nogil:
        """block_task(t): uninterruptible sleep (D state)."""
        self.state[t] = TASK_BLOCKED

    cpdef void wake_task(self, task_id_t t) noexcept nogil:
        """wake_task(t): a blocked task runs again (step mode: exits if SIGKILLed meanwhile)."""
        if self.state[t] != TASK_BLOCKED:
            return
        self.state[t] = TASK_RUNNING
        if self.sigkill[t] and not self._cfg(CFG_TIMED_LIFECYCLE):
            self.exit_task(t)

    cpdef void kill_task(self, task_id_t t) noexcept nogil:
        """kill_task(t): SIGKILL to t's process; step mode: its running threads exit at once,
        a blocked one when woken; timed mode: only the signal."""
        if self.state[t] == TASK_EXITED:
            return
        self.emu_send_sigkill(-1, self.tgid[t])
        self.emu_exit_killed()

    # =========================================================================================
    # control files (docs/model.md §10)
    # =========================================================================================
    cpdef int64_t memory_max_write(self, cg_id_t memcg, pages_t nr, bint nonblock) noexcept nogil:
        """memory_max_write(memcg, nr, nonblock) -> 0; drains, reclaims, then OOM-kills."""
        cdef bint drained = False
        cdef int64_t nr_reclaims = MAX_RECLAIM_RETRIES
        cdef int64_t nokill = 0
        cdef int64_t kills
        cdef pages_t nr_pages
        self.max[memcg] = nr
        if nonblock:
            return 0
        while True:
            nr_pages = self.usage[memcg]
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
            kills = self.stats[STAT_OOM_KILLS]
            if not self.mem_cgroup_out_of_memory(-1, memcg, GFP_KERNEL, 0):
                break
            if self.stats[STAT_OOM_KILLS] != kills:
                nokill = 0
            else:
                nokill += 1
                if nokill >= self._cfg(CFG_LIVELOCK_LIMIT):
                    self.emu_record_livelock(-1, memcg, SITE_MEMORY_MAX_WRITE)
                    break
        return 0

    cpdef int64_t memory_high_write(self, cg_id_t memcg, pages_t nr,
                                    bint nonblock) noexcept nogil:
        """memory_high_write(memcg, nr, nonblock) -> 0; drains, then reclaims (no OOM)."""
        cdef bint drained = False
        cdef int64_t nr_retries = MAX_RECLAIM_RETRIES
        cdef int64_t retries
        cdef pages_t nr_pages, reclaimed
        self.high[memcg] = nr
        if nonblock:
            return 0
        while True:
            nr_pages = self.usage[memcg]
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

    cpdef void memory_min_write(self, cg_id_t memcg, pages_t nr) noexcept nogil:
        """memory_min_write(memcg, nr): set memory.min and re-propagate protection."""
        self.min[memcg] = nr
        self.page_counter_set_protection(memcg)

    cpdef void memory_low_write(self, cg_id_t memcg, pages_t nr) noexcept nogil:
        """memory_low_write(memcg, nr): set memory.low and re-propagate protection."""
        self.low[memcg] = nr
        self.page_counter_set_protection(memcg)

    cpdef int64_t memory_reclaim(self, cg_id_t memcg, pages_t nr_to_reclaim,
                                 int64_t swappiness_zero) noexcept nogil:
        """memory_reclaim(memcg, nr_to_reclaim, swappiness_zero) -> 0 or -EAGAIN."""
        cdef pages_t nr_reclaimed = 0
        cdef int64_t nr_retries = MAX_RECLAIM_RETRIES
        cdef int64_t retries
        cdef pages_t batch_size, reclaimed
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
    # pure helpers, callable from Python (the reference's @staticmethods)
    # =========================================================================================
    def effective_protection(self, pages_t usage, pages_t parent_usage, pages_t setting,
                             pages_t parent_effective, pages_t siblings_protected,
                             recursive):
        """effective_protection(usage, parent_usage, setting, parent_effective,
        siblings_protected, recursive) -> effective min/low in pages."""
        return effective_protection(usage, parent_usage, setting, parent_effective,
                                    siblings_protected, bool(recursive))

    def get_order(self, pages_t nr_pages):
        """get_order(nr_pages) -> smallest order with (1 << order) >= nr_pages."""
        return get_order(nr_pages)

    def calculate_overage(self, pages_t usage, pages_t high):
        """calculate_overage(usage, high) -> u64 overage, fixed point with 20 fraction bits."""
        return calculate_overage(usage, high)

    def calculate_high_delay(self, pages_t nr_pages, u64 max_overage):
        """calculate_high_delay(nr_pages, max_overage) -> jiffies (u64, before the clamp)."""
        return calculate_high_delay(<u64>nr_pages, max_overage)

    def emu_scan_count(self, pages_t lru_size, pages_t protection, pages_t cgroup_size,
                       int priority):
        """emu_scan_count(lru_size, protection, cgroup_size, priority) -> pages to scan."""
        return emu_scan_count(lru_size, protection, cgroup_size, priority)

    # =========================================================================================
    # replay (docs/design.md §3.2): one loop over an event array, the same paths as the step API
    # =========================================================================================
    cdef int emu_replay_one(self, int64_t op, task_id_t t, int64_t arg, cg_id_t memcg,
                            gfp_t gfp, int64_t kind, int64_t* rc,
                            int64_t* outcome) noexcept nogil:
        cdef int64_t state, livelocks, ooms, depth, src, dst
        rc[0] = 0
        outcome[0] = 0
        if t >= 0:
            state = self.state[t]
            if state == TASK_EXITED:
                return ERR_TASK_EXITED
            if state == TASK_BLOCKED and not (op == OP_ATTACH or op == OP_KILL
                                              or op == OP_WAKE):
                return ERR_TASK_BLOCKED
        if op == OP_CHARGE:
            rc[0] = self.charge(t, arg, gfp, kind, memcg)
            outcome[0] = self.tc_outcome[t]
        elif op == OP_UNCHARGE:
            if self.uncharge(t, arg, kind, memcg) < 0:
                return ERR_POOL_SHORT
        elif op == OP_RETURN_TO_USER:
            livelocks = self.stats[STAT_LIVELOCKS]
            rc[0] = self.return_to_user(t)
            if rc[0]:
                outcome[0] |= OUT_THROTTLED
            if self.stats[STAT_LIVELOCKS] != livelocks:
                outcome[0] |= OUT_LIVELOCK
        elif op == OP_FLAGS_SAVE or op == OP_ACCOUNT_FORCE_SAVE:
            if self.scope_depth[t] >= MAX_SCOPE_DEPTH:
                return ERR_SCOPE_DEPTH
            rc[0] = self.memalloc_flags_save(
                t, arg if op == OP_FLAGS_SAVE else PF_MEMALLOC_ACCOUNTFORCE)
        elif op == OP_FLAGS_RESTORE:
            depth = self.scope_depth[t]
            if depth == 0:
                return ERR_NO_SCOPE
            self.memalloc_flags_restore(t, self.scope_stack[t, depth - 1])
        elif op == OP_ACCOUNT_FORCE_RESTORE:
            if self.scope_depth[t] == 0:
                return ERR_NO_SCOPE
            self.memalloc_account_force_restore(t)
        elif op == OP_SET_ACTIVE_MEMCG:
            rc[0] = self.set_active_memcg(t, memcg)
        elif op == OP_ATTACH:
            self.attach_task(t, memcg)
        elif op == OP_EXIT:
            self.exit_task(t)
        elif op == OP_KILL:
            self.kill_task(t)
        elif op == OP_BLOCK:
            self.block_task(t)
        elif op == OP_WAKE:
            if self.state[t] != TASK_BLOCKED:
                return ERR_NOT_BLOCKED
            self.wake_task(t)
        elif op == OP_SET_MAX:
            ooms = self.stats[STAT_OOM_CALLS]
            livelocks = self.stats[STAT_LIVELOCKS]
            self.memory_max_write(memcg, arg, False)
            if self.stats[STAT_OOM_CALLS] != ooms:
                outcome[0] |= OUT_OOM
            if self.stats[STAT_LIVELOCKS] != livelocks:
                outcome[0] |= OUT_LIVELOCK
        elif op == OP_SET_HIGH:
            self.memory_high_write(memcg, arg, False)
        elif op == OP_SET_LOW:
            self.memory_low_write(memcg, arg)
        elif op == OP_SET_MIN:
            self.memory_min_write(memcg, arg)
        elif op == OP_SET_SWAP_MAX:
            self.swap_max[memcg] = arg
        elif op == OP_SET_DIRTY or op == OP_START_WRITEBACK or op == OP_END_WRITEBACK:
            if op == OP_SET_DIRTY:
                src, dst = FILE, FILE_DIRTY
            elif op == OP_START_WRITEBACK:
                src, dst = FILE_DIRTY, FILE_WRITEBACK
            else:
                src, dst = FILE_WRITEBACK, FILE
            if self.emu_move_pages(memcg, src, dst, arg) < 0:
                return ERR_POOL_SHORT
        elif op == OP_OOM_REAP:
            rc[0] = self.oom_reaper()
        elif op == OP_RECLAIM:
            rc[0] = self.memory_reclaim(memcg, arg, 0)
        return ERR_NONE

    def replay_loop(self, const event_t[::1] events, int64_t[::1] rc_out,
                    uint8_t[::1] outcome_out, int64_t sample_every, int64_t sample_dt,
                    int64_t[::1] sample_idx, int64_t[::1] sample_time,
                    int64_t[:, ::1] sample_usage, int64_t[:, ::1] sample_max,
                    int64_t[:, :, ::1] sample_events, bint checked=False,
                    bint validate=False):
        """Run ``events`` in order, in one ``nogil`` loop.

        Parameters
        ----------
        events : ndarray of memcg_emu.events.EVENT_DTYPE, C-contiguous (read-only is fine)
        rc_out : int64 ndarray, len >= len(events)
            Per-event return code (charge rc, jiffies slept, saved flags, ...).
        outcome_out : uint8 ndarray, len >= len(events)
            Per-event OUT_* bits.
        sample_every, sample_dt : int
            Sample after every ``sample_every`` events and/or whenever an event's time reaches
            the next multiple of ``sample_dt`` past the first event's time (0 = off).
        sample_idx, sample_time : int64 ndarray [cap]
        sample_usage, sample_max : int64 ndarray [cap, n_cg]
        sample_events : int64 ndarray [cap, n_cg, k]
            At most ``cap = len(sample_idx)`` samples of the first ``n_cg`` cgroups.
        checked : bool
            The caller ran ``first_invalid_event`` (a superset of the index checks done
            here), or passes ``validate``; skip the extra pass.
        validate : bool
            Check each event against the rules of ``first_invalid_event`` (time order when
            ``sample_dt > 0``) just before running it, in the same loop: the first bad event
            stops the loop with ``ERR_INVALID`` (nothing of it applied).

        Returns
        -------
        (n_done, err, err_index, n_samples) : tuple of int
            ``err`` is an events.ERR_* code; on error, events from ``err_index`` on were not
            applied (the caller restores its snapshot).

        Raises
        ------
        ValueError
            Before anything is applied, if an output array is too small or an event's task,
            memcg or kind is outside the state (replay.validate_events checks more).

        Examples
        --------
        >>> import numpy as np, memcg_emu
        >>> from memcg_emu.events import EventBuilder
        >>> emu = memcg_emu.Emulator(backend="cython"); t = emu.new_task("/")
        >>> ev = EventBuilder().charge(t.pid, 4, kind=1).build()
        >>> rc, out = np.zeros(1, np.int64), np.zeros(1, np.uint8)
        >>> z1, z2 = np.zeros(0, np.int64), np.zeros((0, 1), np.int64)
        >>> emu.engine.replay_loop(ev, rc, out, 0, 0, z1, z1, z2, z2,
        ...                        np.zeros((0, 1, 9), np.int64))
        (1, 0, -1, 0)
        """
        cdef Py_ssize_t n = events.shape[0]
        cdef Py_ssize_t n_cg = sample_usage.shape[1]
        cdef Py_ssize_t cap = sample_idx.shape[0]
        cdef Py_ssize_t n_ev = sample_events.shape[2]
        cdef Py_ssize_t i, c, k, bad
        cdef Py_ssize_t ns = 0
        cdef Py_ssize_t n_done = n
        cdef Py_ssize_t err_index = -1
        cdef int err = ERR_NONE
        cdef int64_t rc = 0, outcome = 0
        cdef int64_t t, next_time = 0
        cdef bint take
        cdef bint time_past_int64 = False  # the reference's next_time left the int64 range
        cdef int field = 0
        cdef const event_t* e
        cdef int64_t n_charges = 0, n_hits = 0  # the shortcut's STAT_CHARGES/STOCK_HITS
        cdef bint fast = _FAST_PATHS
        cdef int64_t prev_time = INT64_MIN
        cdef bint sorted_time = sample_dt > 0
        cdef int64_t n_tasks = self._cfg(CFG_N_TASKS)
        cdef int64_t n_cgs = self._cfg(CFG_N_CGROUPS)
        cdef rule_t rules[256]
        cdef uint8_t[::1] tok, mok  # validate only (timed.py calls this once per event)

        # ---- validate: every output row the loop may write, every index it may follow ----
        if rc_out.shape[0] < n or outcome_out.shape[0] < n:
            raise ValueError(f"rc_out/outcome_out hold {rc_out.shape[0]}/"
                             f"{outcome_out.shape[0]} entries for {n} events")
        if (sample_time.shape[0] < cap or sample_usage.shape[0] < cap
                or sample_max.shape[0] < cap or sample_events.shape[0] < cap):
            raise ValueError(f"sample arrays hold fewer than len(sample_idx) = {cap} rows")
        if sample_max.shape[1] < n_cg or sample_events.shape[1] < n_cg:
            raise ValueError(f"sample_max/sample_events have fewer than {n_cg} cgroup columns")
        if n_cg > self.usage.shape[0] or n_ev > self.events.shape[1]:
            raise ValueError(f"samples of {n_cg} cgroups x {n_ev} events exceed the state "
                             f"({self.usage.shape[0]} x {self.events.shape[1]})")
        if validate:
            tok = bytearray(n_tasks + 2)
            mok = bytearray(n_cgs + 2)
        # memory safety for direct callers; replay() has run first_invalid_event already
        bad = -1 if (checked or validate) else self._first_unsafe_event(events, &field)
        if bad >= 0:
            e = &events[bad]
            op_name = Op(e.op).name.removeprefix("OP_") if e.op < NR_OPS else str(e.op)
            value = (e.task, e.memcg, e.kind)[field]
            raise ValueError(f"event {bad}: field {('task', 'memcg', 'kind')[field]!r} = "
                             f"{value} is outside the engine state for op {op_name} "
                             f"({self._cfg(CFG_N_TASKS)} tasks, {self._cfg(CFG_N_CGROUPS)} "
                             f"cgroups, {self.memcg.shape[0]} task rows)")

        with nogil:
            if validate:
                _fill_rules(rules)
                _fill_tables(self, tok, mok, n_tasks, n_cgs)
            if n and sample_dt > 0:
                if events[0].time > INT64_MAX - sample_dt:
                    time_past_int64 = True
                else:
                    next_time = events[0].time + sample_dt
            if sample_every <= 0 and sample_dt <= 0:  # no sampling: the bare loop
                for i in range(n):
                    e = &events[i]
                    if validate:
                        if unlikely(_event_bad(e, rules, &tok[0], &mok[0], prev_time,
                                               sorted_time, n_tasks, n_cgs)):
                            err = ERR_INVALID
                            n_done = i
                            err_index = i
                            break
                        prev_time = e.time
                    if not (fast and _replay_fast(self, e, &rc, &outcome, &n_charges,
                                                  &n_hits)):
                        err = self.emu_replay_one(e.op, e.task, e.arg, e.memcg, e.gfp,
                                                  e.kind, &rc, &outcome)
                    if unlikely(err != ERR_NONE):
                        n_done = i
                        err_index = i
                        break
                    rc_out[i] = rc
                    outcome_out[i] = <uint8_t>outcome
                n = 0  # skip the sampling loop
            for i in range(n):
                e = &events[i]
                t = e.time
                if validate:
                    if _event_bad(e, rules, &tok[0], &mok[0], prev_time, sorted_time,
                                      n_tasks, n_cgs):
                        err = ERR_INVALID
                        n_done = i
                        err_index = i
                        break
                    prev_time = t
                if not (fast and _replay_fast(self, e, &rc, &outcome, &n_charges, &n_hits)):
                    err = self.emu_replay_one(e.op, e.task, e.arg, e.memcg, e.gfp, e.kind,
                                              &rc, &outcome)
                if err:
                    n_done = i
                    err_index = i
                    break
                rc_out[i] = rc
                outcome_out[i] = <uint8_t>outcome
                take = sample_every > 0 and (i + 1) % sample_every == 0
                if sample_dt > 0 and not time_past_int64 and t >= next_time:
                    take = True
                    while next_time <= t:
                        if next_time > INT64_MAX - sample_dt:
                            time_past_int64 = True  # beyond every int64 time: no more
                            break
                        next_time += sample_dt
                if take and ns < cap:
                    sample_idx[ns] = i
                    sample_time[ns] = t
                    for c in range(n_cg):
                        sample_usage[ns, c] = self.usage[c]
                        sample_max[ns, c] = self.max[c]
                        for k in range(n_ev):
                            sample_events[ns, c, k] = self.events[c, k]
                    ns += 1
            self.stats[STAT_CHARGES] += n_charges
            self.stats[STAT_STOCK_HITS] += n_hits
        return n_done, err, err_index, ns

    def first_invalid_event(self, const event_t[::1] events, bint sorted_time=False):
        """Index of the first event that breaks a static rule of replay.validate_events
        (the same rules, in one nogil pass), or -1.  The caller words the error."""
        cdef Py_ssize_t i, bad = -1
        cdef int64_t n_tasks = self._cfg(CFG_N_TASKS)
        cdef int64_t n_cg = self._cfg(CFG_N_CGROUPS)
        cdef int64_t prev_time = INT64_MIN
        cdef rule_t rules[256]
        cdef uint8_t[::1] tok = bytearray(n_tasks + 2)
        cdef uint8_t[::1] mok = bytearray(n_cg + 2)
        with nogil:
            _fill_rules(rules)
            _fill_tables(self, tok, mok, n_tasks, n_cg)
            for i in range(events.shape[0]):
                if _event_bad(&events[i], rules, &tok[0], &mok[0], prev_time, sorted_time,
                              n_tasks, n_cg):
                    bad = i
                    break
                prev_time = events[i].time
        return bad

    def emu_floor_loop(self, const event_t[::1] events, int64_t[::1] out):
        """The speed floor for benchmarks: one pass that only sums charged pages per cgroup
        (explicit memcg, else the task's cgroup) into ``out``.  No kernel semantics."""
        cdef Py_ssize_t i
        cdef int64_t m
        cdef const event_t* e
        with nogil:
            for i in range(events.shape[0]):
                e = &events[i]
                if e.op == OP_CHARGE:
                    m = e.memcg if e.memcg >= 0 else self.memcg[e.task]
                    out[m] += e.arg
        return None

    cdef Py_ssize_t _first_unsafe_event(self, const event_t[::1] events,
                                        int* field) noexcept nogil:
        # Memory safety only: indices the kernel paths would follow without bounds checks.
        # Task ops need a live task row; other ops read state[task] when task >= 0.
        cdef Py_ssize_t i
        cdef int64_t op, task, memcg
        cdef int64_t n_tasks = self._cfg(CFG_N_TASKS)
        cdef int64_t n_cg = self._cfg(CFG_N_CGROUPS)
        cdef int64_t task_rows = self.memcg.shape[0]
        cdef bint task_op, needs_memcg, may_memcg
        for i in range(events.shape[0]):
            op = events[i].op
            task = events[i].task
            memcg = events[i].memcg
            task_op = (op <= OP_EXIT or op == OP_KILL or op == OP_BLOCK or op == OP_WAKE)
            needs_memcg = (op == OP_ATTACH or (OP_SET_MAX <= op <= OP_END_WRITEBACK)
                           or op == OP_RECLAIM)
            may_memcg = op == OP_CHARGE or op == OP_UNCHARGE or op == OP_SET_ACTIVE_MEMCG
            if (task_op and not (0 <= task < n_tasks)) or task >= task_rows:
                field[0] = 0
                return i
            if ((needs_memcg and not (0 <= memcg < n_cg))
                    or (may_memcg and not (-1 <= memcg < n_cg))):
                field[0] = 1
                return i
            if (op == OP_CHARGE or op == OP_UNCHARGE) and events[i].kind >= NR_KINDS:
                field[0] = 2
                return i
        return -1
