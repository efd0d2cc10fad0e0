# memcg_emu._tsched: the compiled timed scheduler (contract and layout: _tsched.pxd).
#
# Every method is a line-by-line translation of the timed.TimedSim method of the same name
# (with a leading underscore there); timed.py is the specification and the reference twin,
# and tests/test_timed_backends.py compares the two field by field.  Kernel provenance of each
# step is cited in timed.py's docstrings and in docs/design.md §3.3.  The subsystems it drives
# live in their own modules (_tlocking, _tjbd2, _twriteback, _treaper; see _tsched.pxd).

from libc.stdint cimport int64_t, uint8_t
from libc.stdlib cimport free, malloc

cdef extern from *:
    void __builtin_prefetch(const void* addr) nogil

import numpy as np

from memcg_emu._core cimport (
    Engine, Label, ANON, FILE, FILE_DIRTY, FILE_WRITEBACK, UNEVICTABLE, NR_KINDS, NR_STATS,
    TASK_BLOCKED, TASK_EXITED, STAT_RECLAIM_CALLS, STAT_RECLAIM_SCANNED,
    STAT_RECLAIM_RECLAIMED, STAT_OOM_CALLS, STAT_OOM_KILLS, STAT_CPU_DRAINS,
    STAT_FLUSHER_WAKEUPS, STAT_LIVELOCKS, CFG_LIVELOCK_LIMIT, CFG_TIMED_LIFECYCLE,
    CFG_TOTAL_SWAP, OP_CHARGE, OP_UNCHARGE, OP_RETURN_TO_USER, OP_FLAGS_SAVE,
    OP_FLAGS_RESTORE, OP_ACCOUNT_FORCE_SAVE, OP_ACCOUNT_FORCE_RESTORE, OP_SET_ACTIVE_MEMCG,
    OP_ATTACH, OP_EXIT, OP_SET_MAX, OP_SET_LOW, OP_SET_MIN, OP_SET_SWAP_MAX, OP_SET_DIRTY,
    OP_START_WRITEBACK, OP_END_WRITEBACK, OP_KILL, OP_NOP, PF_EXITING, PF_KTHREAD,
    ENOMEM, OUT_STOCK_HIT, OUT_THROTTLED, OUT_LIVELOCK)
from memcg_emu._tbase cimport (
    SchedBase, W_JOURNAL, W_MMAP_LOCK, W_RWSEM, W_MUTEX, W_RECLAIM, NR_WAITS, M_IDLE, M_READY,
    M_PATH, M_DONE_OP, M_BLOCKED, M_DEAD, M_EXITING, A_COMMIT_TIMER, A_COMMIT_DONE, A_REAPER,
    A_REAP_TIMER, A_CONTROL, NS_PER_SEC, NS_PER_JIFFY, E_INSTANT, E_SAMPLES, E_SCOPES,
    E_UNHANDLED, E_CONTROL, E_OP, E_NOMEM, T_COMPUTE, T_SLEEP, T_MUTEX_LOCK, T_MUTEX_UNLOCK,
    T_DOWN_READ, T_UP_READ, T_DOWN_WRITE, T_UP_WRITE, T_JOURNAL_START, T_JOURNAL_STOP, T_DIRTY,
    T_LOOP)
from memcg_emu._tjbd2 cimport Journal, J_NONE, J_RUNNING, J_LOCKED
from memcg_emu._tlocking cimport Locks
from memcg_emu._treaper cimport Reaper
from memcg_emu._twriteback cimport Flusher
from memcg_emu._tcost cimport cost_t, step_cost
from memcg_emu._tqueue cimport (heap_t, hent_t, ivec_t, heap_push, heap_pop, heap_free,
                                ivec_push, ivec_pop, ivec_free)

# ---- constants twinned with timed.py (checked by tests/test_timed_backends.py) --------------
cdef enum:
    SYS_USER = 0
    SYS_KERNEL = 1
    SYS_UNWIND = 2
    EINTR = 4
    P_NONE = 0
    P_CHARGE = 1
    P_DIRTY = 2
    P_RTU = 3
    CONTINUE = 0
    SUSPEND = 1
    RW_V6 = 0
    RW_5X = 1
    RW_OFF = 3
    # op_error codes
    E_JSTOP_NO_HANDLE = 1
    E_JSTOP_SCOPE = 2
    E_MUTEX_UNLOCK = 3
    E_UP_RWSEM = 4
    E_KILL_NO_TASK = 5
    E_REPLAY = 100  # + events.ERR_*

cdef int64_t PAGE_COUNTER_MAX = 2251799813685247  # LONG_MAX / PAGE_SIZE
_TIMED_CONSTANTS = dict(
    COMPUTE=T_COMPUTE, SLEEP=T_SLEEP, MUTEX_LOCK=T_MUTEX_LOCK, MUTEX_UNLOCK=T_MUTEX_UNLOCK,
    DOWN_READ=T_DOWN_READ, UP_READ=T_UP_READ, DOWN_WRITE=T_DOWN_WRITE, UP_WRITE=T_UP_WRITE,
    JOURNAL_START=T_JOURNAL_START, JOURNAL_STOP=T_JOURNAL_STOP, DIRTY=T_DIRTY, LOOP=T_LOOP,
    M_IDLE=M_IDLE, M_READY=M_READY, M_PATH=M_PATH, M_DONE_OP=M_DONE_OP, M_BLOCKED=M_BLOCKED,
    M_DEAD=M_DEAD, M_EXITING=M_EXITING, SYS_USER=SYS_USER, SYS_KERNEL=SYS_KERNEL,
    SYS_UNWIND=SYS_UNWIND, P_NONE=P_NONE, P_CHARGE=P_CHARGE, P_DIRTY=P_DIRTY, P_RTU=P_RTU,
    A_COMMIT_TIMER=A_COMMIT_TIMER, A_COMMIT_DONE=A_COMMIT_DONE, A_REAPER=A_REAPER,
    A_REAP_TIMER=A_REAP_TIMER, A_CONTROL=A_CONTROL, J_NONE=J_NONE, J_RUNNING=J_RUNNING,
    J_LOCKED=J_LOCKED, W_JOURNAL=W_JOURNAL, W_MMAP_LOCK=W_MMAP_LOCK, W_RWSEM=W_RWSEM,
    W_MUTEX=W_MUTEX, W_RECLAIM=W_RECLAIM, RW_V6=RW_V6, RW_5X=RW_5X, RW_OFF=RW_OFF,
    PAGE_COUNTER_MAX=PAGE_COUNTER_MAX, NS_PER_JIFFY=NS_PER_JIFFY)


def _col(arr, name):
    return np.ascontiguousarray(arr[name], dtype=np.int64)


cdef inline bint _nomem(TimedCore c) noexcept nogil:
    """An allocation failed since the run began (a push the queue dropped, or a subsystem's);
    the loop checks it after every event (E_NOMEM)."""
    return (c.alloc_failed or c.heap.failed or c.dead.failed or c.oom_seen.failed
            or c.rp.fired.failed)


cdef class TimedCore(SchedBase):
    """One run() of a TimedSim on the compiled scheduler: ``load(sim)``, ``run(until)``,
    ``store(sim)``.  Not for direct use: ``TimedSim(scheduler="cython")`` drives it."""

    def __dealloc__(self):
        heap_free(&self.heap)
        ivec_free(&self.dead)
        ivec_free(&self.oom_seen)

    # =========================================================================================
    # load / store: TimedSim's Python state <-> C arrays
    # =========================================================================================
    def load(self, sim, int64_t until):
        """Take the scheduler state of ``sim`` (after its _start/_bind) for a run to ``until``."""
        cdef int64_t i, n
        st = sim._st
        eng = sim._eng
        if not isinstance(eng, Engine):
            raise TypeError("the compiled timed scheduler needs the compiled engine")
        self.eng = <Engine>eng
        self.sim = sim
        c = sim.costs
        self.c.charge_fast_path_ns = c.charge_fast_path_ns
        self.c.page_counter_level_ns = c.page_counter_level_ns
        self.c.reclaim_call_ns = c.reclaim_call_ns
        self.c.page_scanned_ns = c.page_scanned_ns
        self.c.page_reclaimed_ns = c.page_reclaimed_ns
        self.c.stock_drain_cpu_ns = c.stock_drain_cpu_ns
        self.c.oom_invocation_ns = c.oom_invocation_ns
        self.c.oom_kill_ns = c.oom_kill_ns
        self.c.writeback_page_ns = c.writeback_page_ns
        self.c.journal_commit_ns = c.journal_commit_ns
        self.c.exit_page_ns = c.exit_page_ns
        self.sample_dt = sim.sample_dt_ns
        self.livelock_limit = sim.livelock_limit
        self.write_livelock_limit = sim.write_livelock_limit
        self.max_ops_per_instant = sim.max_ops_per_instant
        self.strict = sim.strict
        self.tracing = sim.trace is not None
        self.trace = sim.trace
        self.exit_log = sim.exit_log
        self.oom_log = sim.oom_log
        self.reclaim_wait = sim._reclaim_wait
        self.n_cg = sim._n_cg
        self.n_tasks = st.n_tasks
        n = len(sim._pc)
        if n != self.n_tasks:
            raise RuntimeError(f"scheduler has {n} task rows, the engine {self.n_tasks}")

        # program rows, control ops
        ex = sim._exec
        self.p_time = _col(ex, "time")
        self.p_op = _col(ex, "op")
        self.p_arg = _col(ex, "arg")
        self.p_task = _col(ex, "task")
        self.p_memcg = _col(ex, "memcg")
        self.p_gfp = _col(ex, "gfp")
        self.p_kind = _col(ex, "kind")
        self.loop_left = np.array(sim._loop_left, dtype=np.int64).reshape(-1)
        self.rc = sim._rc
        self.outcome = sim._outcome
        ctl = sim._ctl
        self.c_op = _col(ctl, "op")
        self.c_task = _col(ctl, "task")
        self.c_arg = _col(ctl, "arg")
        self.c_memcg = _col(ctl, "memcg")
        self.c_gfp = _col(ctl, "gfp")
        self.c_kind = _col(ctl, "kind")
        self.ctl_rc = sim._ctl_rc
        self.ctl_outcome = sim._ctl_outcome
        self.levels = np.array(sim._levels, dtype=np.int64)

        # per task
        def arr(values):
            return np.array(values, dtype=np.int64).reshape(-1)

        self.pc = arr(sim._pc)
        self.end = arr(sim._end)
        self.mode = arr(sim._mode)
        self.token = arr(sim._token)
        self.alive = arr([bool(v) for v in sim._alive])
        ps = np.full(n, -1, np.int64)
        for pid, (a, b) in sim._prog_of.items():
            ps[pid] = a
        self.prog_start = ps
        self.path = arr(sim._path)
        self.plabel = arr(sim._plabel)
        self.ptarget = arr(sim._ptarget)
        self.pnr = arr(sim._pnr)
        self.pstart = arr(sim._pstart)
        self.preclaims = arr(sim._preclaims)
        self.pooms = arr(sim._pooms)
        self.pholding = arr([bool(v) for v in sim._pholding])
        self.plivelocks = arr(sim._plivelocks)
        self.victim_seen = arr([bool(v) for v in sim._victim_seen])
        self.reap_seen = arr([bool(v) for v in sim._reap_seen])
        self.sys = arr(sim._sys)
        self.sig_seen = arr([bool(v) for v in sim._sig_seen])
        self.wait_of = arr(sim._wait_of)
        self.d_since = arr(sim._d_since)
        self.rwait = arr(sim._rwait)
        self.dpause = arr(sim._dpause)
        self.sleep_from = arr(sim._sleep_from)
        self.sleep_until = arr(sim._sleep_until)
        self.unw_saves = arr(sim._unw_saves)
        self.unw_js = arr(sim._unw_js)

        # the subsystems
        self.locks = Locks()
        self.p_lock = self.locks.load(self, sim, self.p_op, self.p_arg)
        self.j = Journal()
        self.j.load(self, sim)
        self.fl = Flusher()
        self.fl.load(self, self.j, sim)
        self.rp = Reaper()
        self.rp.load(self, sim)

        # machine-wide
        self.now = sim.now
        self.seq = sim._seq
        self.same_instant = sim._same_instant
        self.next_sample = sim._next_sample
        self.events = 0
        heap_free(&self.heap)
        for when, seq, actor, a in sim._heap:
            heap_push(&self.heap, when, seq, actor, a)
        ivec_free(&self.oom_seen)
        ivec_free(&self.dead)
        for x in sim._dead:
            ivec_push(&self.dead, x)
        self.usage_dirty = sim._usage_dirty

        # measurements
        self.n_d = sim._n_d
        for i in range(NR_WAITS):
            self.n_d_by[i] = sim._n_d_by[i]
            self.d_peak_by[i] = sim._d_peak_by[i]
            self.d_at_peak[i] = sim._d_at_peak[i]
            self.d_ns_by[i] = sim._d_ns_by[i]
        self.d_peak = sim._d_peak
        self.d_ns = sim._d_ns
        self.n_in_path = sim._n_in_path
        self.over_sum = sim._over_sum
        self.over_peak = sim._over_peak
        self.over_page_ns = sim._over_page_ns
        self.over_peak_by = np.zeros(self.n_cg, np.int64)
        for cg, v in sim._over_peak_by.items():
            self.over_peak_by[cg] = v
        self.over_ps = np.zeros(self.n_cg, np.int64)
        for cg, v in sim._over_ps.items():
            self.over_ps[cg] = v
        self.over_now_c = np.zeros(self.n_cg, np.int64)
        self.over_now_o = np.zeros(self.n_cg, np.int64)
        self.n_over_now = len(sim._over_now)
        for i, (cg, v) in enumerate(sim._over_now):
            self.over_now_c[i] = cg
            self.over_now_o[i] = v
        self.limited = np.zeros(self.n_cg, np.int64)
        self.n_limited = len(sim._limited)
        for i, cg in enumerate(sim._limited):
            self.limited[i] = cg
        self.hold_max = sim._hold_max
        self.throttle_ns = sim._throttle_ns
        self.rthrottle_ns = sim._rthrottle_ns
        self.dirty_pause_ns = sim._dirty_pause_ns
        self.dirty_pauses = sim._dirty_pauses
        self.rthrottles = sim._rthrottles
        self.over_max_ns = sim._over_max_ns
        self.file_ops = sim._file_ops
        self.ops_completed = sim._ops_completed
        self.op_errors = sim._op_errors
        self.victims_unable = sim._victims_unable
        self.exits = sim._exits
        self.unwinds = sim._unwinds
        self.ops_skipped = sim._ops_skipped
        self.f_jwait_ns = sim._f_jwait_ns
        self.oom_nokill = sim._oom_nokill
        self.f_jwait_max = sim._f_jwait_max
        self.stats0 = np.ascontiguousarray(sim._stats0, dtype=np.int64)

        # samples of this run: next_sample, +dt, ... <= until (TimedSim checked the bound)
        cap = (until - self.next_sample) // self.sample_dt + 1 if until >= self.next_sample \
            else 0
        self.cap = cap
        self.ns = 0
        ncg = self.n_cg
        self.s_time = np.zeros(cap, np.int64)
        self.s_d = np.zeros(cap, np.int64)
        self.s_jl = np.zeros(cap, np.int64)
        self.s_handles = np.zeros(cap, np.int64)
        self.s_inpath = np.zeros(cap, np.int64)
        self.s_kills = np.zeros(cap, np.int64)
        self.s_ops = np.zeros(cap, np.int64)
        self.s_scan = np.zeros(cap, np.int64)
        self.s_recl = np.zeros(cap, np.int64)
        self.s_usage = np.zeros((cap, ncg), np.int64)
        self.s_max = np.zeros((cap, ncg), np.int64)
        self.s_dby = np.zeros((cap, NR_WAITS), np.int64)
        self.s_alive = np.zeros((cap, ncg), np.int64)
        self.s_pool = np.zeros((cap, ncg, NR_KINDS), np.int64)
        if _nomem(self):
            raise MemoryError("compiled timed scheduler: no memory for the event queue or "
                              "the lock lists")

    def store(self, sim):
        """Give the state back to ``sim`` (its Python twin's attributes); returns the number of
        scheduler events of this run."""
        cdef int64_t i, k

        def lst(a):
            return np.asarray(a).tolist()

        def bools(a):
            return [bool(v) for v in np.asarray(a).tolist()]

        self.locks.store(sim)
        self.j.store(sim)
        self.fl.store(sim)
        self.rp.store(sim)
        sim._loop_left = lst(self.loop_left)
        sim._pc = lst(self.pc)
        sim._end = lst(self.end)
        sim._mode = lst(self.mode)
        sim._token = lst(self.token)
        sim._alive = bools(self.alive)
        sim._path = lst(self.path)
        sim._plabel = lst(self.plabel)
        sim._ptarget = lst(self.ptarget)
        sim._pnr = lst(self.pnr)
        sim._pstart = lst(self.pstart)
        sim._preclaims = lst(self.preclaims)
        sim._pooms = lst(self.pooms)
        sim._pholding = bools(self.pholding)
        sim._plivelocks = lst(self.plivelocks)
        sim._victim_seen = bools(self.victim_seen)
        sim._reap_seen = bools(self.reap_seen)
        sim._sys = lst(self.sys)
        sim._sig_seen = bools(self.sig_seen)
        sim._wait_of = lst(self.wait_of)
        sim._d_since = lst(self.d_since)
        sim._rwait = lst(self.rwait)
        sim._dpause = lst(self.dpause)
        sim._sleep_from = lst(self.sleep_from)
        sim._sleep_until = lst(self.sleep_until)
        sim._unw_saves = lst(self.unw_saves)
        sim._unw_js = lst(self.unw_js)

        sim.now = self.now
        sim._seq = self.seq
        sim._same_instant = self.same_instant
        sim._next_sample = self.next_sample
        sim._heap = sorted((self.heap.d[i].when, self.heap.d[i].seq, self.heap.d[i].actor,
                            self.heap.d[i].arg) for i in range(self.heap.n))
        sim._dead = [self.dead.d[i] for i in range(self.dead.n)]
        for i in range(0, self.oom_seen.n, 3):
            self.oom_log.append((self.oom_seen.d[i], self.oom_seen.d[i + 1],
                                 bool(self.oom_seen.d[i + 2])))
        ivec_free(&self.oom_seen)
        sim._usage_dirty = bool(self.usage_dirty)

        sim._n_d = self.n_d
        sim._n_d_by = [self.n_d_by[i] for i in range(NR_WAITS)]
        sim._d_peak_by = [self.d_peak_by[i] for i in range(NR_WAITS)]
        sim._d_at_peak = [self.d_at_peak[i] for i in range(NR_WAITS)]
        sim._d_ns_by = [self.d_ns_by[i] for i in range(NR_WAITS)]
        sim._d_peak = self.d_peak
        sim._d_ns = self.d_ns
        sim._n_in_path = self.n_in_path
        sim._over_sum = self.over_sum
        sim._over_peak = self.over_peak
        sim._over_page_ns = self.over_page_ns
        sim._over_peak_by = {c: v for c, v in enumerate(lst(self.over_peak_by)) if v > 0}
        sim._over_ps = {c: v for c, v in enumerate(lst(self.over_ps)) if v > 0}
        sim._over_now = [(self.over_now_c[i], self.over_now_o[i])
                         for i in range(self.n_over_now)]
        sim._limited = [self.limited[i] for i in range(self.n_limited)]
        sim._hold_max = self.hold_max
        sim._throttle_ns = self.throttle_ns
        sim._rthrottle_ns = self.rthrottle_ns
        sim._dirty_pause_ns = self.dirty_pause_ns
        sim._dirty_pauses = self.dirty_pauses
        sim._rthrottles = self.rthrottles
        sim._over_max_ns = self.over_max_ns
        sim._file_ops = self.file_ops
        sim._ops_completed = self.ops_completed
        sim._op_errors = self.op_errors
        sim._victims_unable = self.victims_unable
        sim._exits = self.exits
        sim._unwinds = self.unwinds
        sim._ops_skipped = self.ops_skipped
        sim._f_jwait_ns = self.f_jwait_ns
        sim._oom_nokill = self.oom_nokill
        sim._f_jwait_max = self.f_jwait_max

        k = self.ns
        s = sim._samples
        s["time_ns"].extend(np.asarray(self.s_time)[:k].tolist())
        s["d_state_tasks"].extend(np.asarray(self.s_d)[:k].tolist())
        s["usage"].extend(list(np.asarray(self.s_usage)[:k]))
        s["max"].extend(list(np.asarray(self.s_max)[:k]))
        s["journal_locked"].extend(np.asarray(self.s_jl)[:k].tolist())
        s["handles"].extend(np.asarray(self.s_handles)[:k].tolist())
        s["in_kernel_path"].extend(np.asarray(self.s_inpath)[:k].tolist())
        s["oom_kills"].extend(np.asarray(self.s_kills)[:k].tolist())
        s["ops_completed"].extend(np.asarray(self.s_ops)[:k].tolist())
        s["d_state_by_wait"].extend(np.asarray(self.s_dby)[:k].tolist())
        s["pool"].extend(list(np.asarray(self.s_pool)[:k]))
        s["reclaim_scanned"].extend(np.asarray(self.s_scan)[:k].tolist())
        s["reclaim_reclaimed"].extend(np.asarray(self.s_recl)[:k].tolist())
        s["tasks_alive"].extend(list(np.asarray(self.s_alive)[:k]))
        self.ns = 0
        self.sim = None
        self.locks = None
        self.j = None
        self.fl = None
        self.rp = None
        return self.events

    def run(self, int64_t until):
        """The event loop up to ``until`` (TimedSim.run's loop), without the GIL; an error
        that stops it is raised here, worded as the Python twin words it."""
        cdef int r
        self.err_code = 0
        self.alloc_failed = False
        with nogil:
            r = self.run_loop(until)
        if r < 0:
            self._raise()

    def _raise(self):
        from .events import ERR_MESSAGES
        code, a, b, c = self.err_code, self.err_a, self.err_b, self.err_c
        if code == E_INSTANT:
            raise RuntimeError(
                f"more than {self.max_ops_per_instant} ops/steps at t = {self.now} ns without "
                f"time passing: a zero-cost loop (e.g. an OOM livelock with CostModel.zero(), "
                f"or a LOOP whose body takes no time) cannot advance the simulation")
        if code == E_SCOPES:
            raise RuntimeError(f"task {a}: journal_start with too many nested flag scopes")
        if code == E_CONTROL:
            raise RuntimeError(f"control op {a} at t = {self.now} ns: {ERR_MESSAGES[b]}")
        if code == E_OP:
            t, pc = a, b
            arg = self.p_arg[pc]
            if c == E_JSTOP_NO_HANDLE:
                msg = "journal_stop without a running handle"
            elif c == E_JSTOP_SCOPE:
                msg = ("journal_stop: the innermost flag scope is not the handle's "
                       "(memalloc_flags_restore mismatch)")
            elif c == E_MUTEX_UNLOCK:
                msg = f"mutex_unlock of mutex {arg}, which task {t} does not hold"
            elif c == E_UP_RWSEM:
                name = "up_write" if self.p_op[pc] == T_UP_WRITE else "up_read"
                msg = f"{name} of rwsem {arg}, which task {t} does not hold that way"
            elif c == E_KILL_NO_TASK:
                msg = f"KILL of task {self.p_task[pc]}, which does not exist"
            else:
                msg = ERR_MESSAGES[c - E_REPLAY]
            raise RuntimeError(f"task {t}, program op {pc - self.prog_start[t]} at "
                               f"t = {self.now} ns: {msg}")
        if code == E_UNHANDLED:
            raise AssertionError(f"unhandled op {a}")
        if code == E_NOMEM:
            raise MemoryError(f"compiled timed scheduler: out of memory at t = {self.now} ns "
                              f"(the simulation cannot go on; make a new one)")
        raise RuntimeError(f"compiled timed scheduler: error {code}")  # E_SAMPLES

    cdef int fail(self, int code, int64_t a, int64_t b, int64_t c) noexcept nogil:
        self.err_code = code
        self.err_a = a
        self.err_b = b
        self.err_c = c
        return -1

    # =========================================================================================
    # the event loop (kernel/sched)
    # =========================================================================================
    cdef int run_loop(self, int64_t until) noexcept nogil:
        cdef hent_t e
        cdef int r = 0
        self.oom_gen_seen = self.eng.oom_gen - 1  # a full walk: the state may be new
        self.scan_oom()  # kills made between runs (a memory.max write through write())
        self.update_over_max()
        while self.heap.n > 0 and self.heap.d[0].when <= until:
            e = heap_pop(&self.heap)
            if self.heap.n > 0 and self.heap.d[0].actor >= 0:
                self.prefetch_task(self.heap.d[0].actor)
            if e.when > self.now:
                if self.advance(e.when) < 0:
                    return -1
            if e.actor >= 0:
                if e.arg != self.token[e.actor]:
                    continue  # stale: rescheduled, blocked or dead since
                self.events += 1
                if e.actor == self.fl.pid:
                    r = self.fl.work()
                else:
                    r = self.dispatch(e.actor)
            else:
                self.events += 1
                r = self.dispatch_special(e.actor, e.arg)
            if r < 0:
                return -1
            if _nomem(self):
                return self.fail(E_NOMEM, 0, 0, 0)
            if self.dead.n:
                self.process_dead()
            if self.usage_dirty:
                self.update_over_max()
        if self.advance(until) < 0:
            return -1
        if self.next_sample == until:
            if self.sample(until) < 0:
                return -1
            self.next_sample += self.sample_dt
        return 0

    cdef inline void prefetch_task(self, int64_t t) noexcept nogil:
        # The next event's task: its state is read first thing (token, mode, pc, then the
        # program row at pc), and at 10^4 tasks it is no longer in cache; start the loads now,
        # behind the current event's work, instead of one dependent miss after another then.
        __builtin_prefetch(&self.token[t])
        __builtin_prefetch(&self.mode[t])
        __builtin_prefetch(&self.pc[t])
        __builtin_prefetch(&self.end[t])
        __builtin_prefetch(&self.sys[t])

    cdef void push(self, int64_t when, int64_t actor, int64_t arg) noexcept nogil:
        self.seq += 1
        heap_push(&self.heap, when, self.seq, actor, arg)

    cdef void schedule(self, int64_t t, int64_t when) noexcept nogil:
        self.token[t] += 1
        self.push(when if when > self.now else self.now, t, self.token[t])

    cdef int advance(self, int64_t when) noexcept nogil:
        cdef int64_t dt = when - self.now
        cdef int64_t w, i
        if dt <= 0:
            return 0
        while self.next_sample < when:
            if self.sample(self.next_sample) < 0:
                return -1
            self.next_sample += self.sample_dt
        if self.n_d:
            self.d_ns += self.n_d * dt
            for w in range(NR_WAITS):
                if self.n_d_by[w]:
                    self.d_ns_by[w] += self.n_d_by[w] * dt
        if self.over_sum:
            self.over_page_ns += self.over_sum * dt
            for i in range(self.n_over_now):
                self.over_ps[self.over_now_c[i]] += self.over_now_o[i] * dt
        self.now = when
        self.same_instant = 0
        return 0

    cdef int sample(self, int64_t t) noexcept nogil:
        cdef int64_t k = self.ns, c, j, p
        if k >= self.cap:
            return self.fail(E_SAMPLES, 0, 0, 0)
        self.s_time[k] = t
        self.s_d[k] = self.n_d
        for c in range(self.n_cg):
            self.s_usage[k, c] = self.eng.usage[c]
            self.s_max[k, c] = self.eng.max[c]
            for j in range(NR_KINDS):
                self.s_pool[k, c, j] = self.eng.pool[c, j]
            self.s_alive[k, c] = 0
        self.s_jl[k] = self.j.state == J_LOCKED
        self.s_handles[k] = self.j.updates
        self.s_inpath[k] = self.n_in_path
        self.s_kills[k] = self.eng.stats[STAT_OOM_KILLS] - self.stats0[STAT_OOM_KILLS]
        self.s_ops[k] = self.ops_completed
        for j in range(NR_WAITS):
            self.s_dby[k, j] = self.n_d_by[j]
        self.s_scan[k] = self.eng.stats[STAT_RECLAIM_SCANNED] - self.stats0[STAT_RECLAIM_SCANNED]
        self.s_recl[k] = (self.eng.stats[STAT_RECLAIM_RECLAIMED]
                          - self.stats0[STAT_RECLAIM_RECLAIMED])
        for p in range(self.n_tasks):  # _alive_by_cgroup: user tasks not yet exited
            if self.eng.state[p] != TASK_EXITED and not (self.eng.flags[p] & PF_KTHREAD):
                self.s_alive[k, self.eng.memcg[p]] += 1
        self.ns = k + 1
        return 0

    cdef void find_limited(self) noexcept nogil:
        cdef int64_t c
        self.n_limited = 0
        for c in range(1, self.n_cg):
            if self.eng.max[c] < PAGE_COUNTER_MAX:
                self.limited[self.n_limited] = c
                self.n_limited += 1
        self.usage_dirty = True

    cdef void update_over_max(self) noexcept nogil:
        cdef int64_t i, c, o, total = 0
        self.usage_dirty = False
        self.n_over_now = 0
        for i in range(self.n_limited):
            c = self.limited[i]
            o = self.eng.usage[c] - self.eng.max[c]
            if o > 0:
                self.over_now_c[self.n_over_now] = c
                self.over_now_o[self.n_over_now] = o
                self.n_over_now += 1
                total += o
                if o > self.over_peak:
                    self.over_peak = o
                if o > self.over_peak_by[c]:
                    self.over_peak_by[c] = o
        self.over_sum = total

    cdef int tick_instant(self) noexcept nogil:
        self.same_instant += 1
        if self.same_instant > self.max_ops_per_instant:
            return self.fail(E_INSTANT, 0, 0, 0)
        return 0

    # =========================================================================================
    # tasks: the program interpreter
    # =========================================================================================
    cdef int dispatch(self, int64_t t) noexcept nogil:
        cdef int64_t mode = self.mode[t], w
        cdef int r
        if mode == M_EXITING:
            self.finish_exit(t)
            return 0
        if mode == M_PATH:
            w = self.rwait[t]
            if w:
                if w > 0:  # the reclaim step's work is done: reclaim_throttle() sleeps (D)
                    self.rwait[t] = -1
                    self.d_enter(t, W_RECLAIM)
                    self.schedule(t, self.now + w)
                    return 0
                self.rwait[t] = 0
                self.d_leave(t)
            r = self.path_continue(t, 0)
            if r < 0:
                return -1
            if r == SUSPEND:
                return 0
        elif mode == M_DONE_OP:
            self.complete(t)
        elif mode != M_READY:
            return 0
        return self.run_program(t)

    cdef int run_program(self, int64_t t) noexcept nogil:
        cdef int64_t pc, op, where, when
        cdef int r
        while True:
            pc = self.pc[t]
            if pc >= self.end[t]:
                self.program_end(t)
                return 0
            op = self.p_op[pc]
            where = self.sys[t]
            if where == SYS_UNWIND and self.unwind_skip(t, pc, op):
                continue
            when = self.p_time[pc]
            if when > self.now:
                self.mode[t] = M_READY
                self.schedule(t, when)
                return 0
            if where == SYS_USER:
                if self.sig_seen[t]:  # the signal is delivered in user space: do_exit
                    self.begin_exit(t)
                    return 0
                if not (op == T_COMPUTE or op == T_LOOP or op == T_SLEEP):
                    self.sys[t] = SYS_KERNEL
            if self.tick_instant() < 0:
                return -1
            r = self.exec_op(t, pc, op)
            if r != CONTINUE:
                return -1 if r < 0 else 0

    cdef int complete(self, int64_t t) noexcept nogil:
        cdef int64_t pc = self.pc[t]
        self.ops_completed += 1
        if self.tracing:
            with gil:
                self.trace.append((self.now, t, pc - self.prog_start[t], self.p_op[pc],
                                   self.rc[pc]))
        self.pc[t] = pc + 1
        self.mode[t] = M_READY
        self.sleep_from[t] = -1
        return 0

    cdef int complete_rc(self, int64_t t, int64_t rc, int64_t outcome) noexcept nogil:
        cdef int64_t pc = self.pc[t]
        self.rc[pc] = rc
        self.outcome[pc] = <uint8_t>outcome
        return self.complete(t)

    cdef int delay_complete(self, int64_t t, int64_t delay) noexcept nogil:
        if delay > 0:
            self.mode[t] = M_DONE_OP
            self.schedule(t, self.now + delay)
            return SUSPEND
        self.complete(t)
        return CONTINUE

    cdef int exec_op(self, int64_t t, int64_t pc, int64_t op) noexcept nogil:
        cdef int64_t arg, total, left, lk
        cdef bint write
        cdef int r
        if op < 32:
            if op == OP_CHARGE:
                return self.start_charge(t, pc, P_CHARGE)
            if op == OP_RETURN_TO_USER:
                return self.start_rtu(t, pc)
            if op == OP_EXIT:  # do_exit, with its exit time
                self.rc[pc] = 0
                self.begin_exit(t)
                return SUSPEND
            return self.exec_replay_op(t, pc, op)
        arg = self.p_arg[pc]
        if op == T_COMPUTE:
            return self.delay_complete(t, arg)
        if op == T_SLEEP:  # killable: a pending fatal signal ends it at once
            if self.eng.sigkill[t] and self.sys[t] != SYS_USER:
                return self.interrupted(t, pc)
            return self.delay_complete(t, arg)
        if op == T_DIRTY:
            return self.start_charge(t, pc, P_DIRTY)
        if op == T_LOOP:
            total = self.p_memcg[pc]
            left = self.loop_left[pc]
            if total == -1:
                self.pc[t] = self.prog_start[t] + arg
                return CONTINUE
            if left == -2:
                left = total - 1
            if left > 0:
                self.loop_left[pc] = left - 1
                self.pc[t] = self.prog_start[t] + arg
            else:
                self.loop_left[pc] = -2
                self.pc[t] = pc + 1
            return CONTINUE
        if op == T_JOURNAL_START:
            r = self.j.start(t, arg if arg > 1 else 1)
            if r < 0:
                return -1
            if r:
                self.complete_rc(t, 0, 0)
                return CONTINUE
            return SUSPEND
        if op == T_JOURNAL_STOP:
            if self.j.h_ref[t] == 0:
                return self.op_error(t, pc, E_JSTOP_NO_HANDLE, 0)
            if self.j.stop(t) < 0:
                return self.op_error(t, pc, E_JSTOP_SCOPE, 0)
            self.complete_rc(t, 0, 0)
            return CONTINUE
        if op == T_MUTEX_LOCK:
            if self.locks.mutex_lock(self.p_lock[pc], t):
                self.complete_rc(t, 0, 0)
                return CONTINUE
            self.block(t, W_MUTEX)
            return SUSPEND
        if op == T_MUTEX_UNLOCK:
            lk = self.p_lock[pc]
            if not self.locks.mutex_held_by(lk, t):
                return self.op_error(t, pc, E_MUTEX_UNLOCK, arg)
            self.locks.release(t, lk, True)
            self.complete_rc(t, 0, 0)
            return CONTINUE
        if op == T_DOWN_READ or op == T_DOWN_WRITE:
            lk = self.rwsem_of(t, pc)
            write = op == T_DOWN_WRITE
            if self.locks.down_trylock(lk, t, write):
                self.complete_rc(t, 0, 0)
                return CONTINUE
            if arg == -1 and self.eng.sigkill[t]:  # mmap_*_lock_killable: -EINTR
                return self.interrupted(t, pc)
            self.locks.down_wait(lk, t, write)
            self.block(t, W_MMAP_LOCK if arg == -1 else W_RWSEM)
            if arg == -1:
                self.locks.kwait[t] = lk
            return SUSPEND
        if op == T_UP_READ or op == T_UP_WRITE:
            lk = self.rwsem_of(t, pc)
            write = op == T_UP_WRITE
            if ((write and self.locks.owner[lk] != t)
                    or (not write and not self.locks.reads(t, lk))):
                return self.op_error(t, pc, E_UP_RWSEM, arg)
            self.locks.release(t, lk, write)
            self.complete_rc(t, 0, 0)
            return CONTINUE
        return self.fail(E_UNHANDLED, op, 0, 0)

    cdef int op_error(self, int64_t t, int64_t pc, int code, int64_t a) noexcept nogil:
        if self.strict:  # the message is worded after the loop (_raise)
            return self.fail(E_OP, t, pc, code)
        self.op_errors += 1
        self.complete_rc(t, -22, 0)
        return CONTINUE

    cdef int replay_one(self, bint ctl, int64_t i, int64_t op, int64_t* rc,
                        int64_t* outcome) noexcept nogil:
        cdef int err
        if op == OP_SET_MAX:
            self.eng.config[CFG_LIVELOCK_LIMIT] = self.write_livelock_limit
            self.mark_user_space()
        if ctl:
            err = self.eng.emu_replay_one(op, self.c_task[i], self.c_arg[i], self.c_memcg[i],
                                          self.c_gfp[i], self.c_kind[i], rc, outcome)
        else:
            err = self.eng.emu_replay_one(op, self.p_task[i], self.p_arg[i], self.p_memcg[i],
                                          self.p_gfp[i], self.p_kind[i], rc, outcome)
        if op == OP_SET_MAX:
            self.eng.config[CFG_LIVELOCK_LIMIT] = self.livelock_limit
            self.unmark_user_space()
        return err

    cdef int exec_replay_op(self, int64_t t, int64_t pc, int64_t op) noexcept nogil:
        cdef int64_t target = self.p_task[pc]
        cdef int64_t s0[NR_STATS]
        cdef int64_t s1[NR_STATS]
        cdef int64_t rc = 0, outcome = 0, cost, k
        cdef int err
        if op == OP_KILL:
            if target >= self.n_tasks or target < 0:
                return self.op_error(t, pc, E_KILL_NO_TASK, target)
            if self.eng.state[target] == TASK_EXITED:
                self.complete_rc(t, 0, 0)
                return CONTINUE
        for k in range(NR_STATS):
            s0[k] = self.eng.stats[k]
        err = self.replay_one(False, pc, op, &rc, &outcome)
        for k in range(NR_STATS):
            s1[k] = self.eng.stats[k]
        if err:
            return self.op_error(t, pc, E_REPLAY + err, 0)
        self.rc[pc] = rc
        self.outcome[pc] = <uint8_t>outcome
        if op == OP_SET_MAX:
            self.find_limited()
        elif not (op == OP_FLAGS_SAVE or op == OP_FLAGS_RESTORE
                  or op == OP_ACCOUNT_FORCE_SAVE or op == OP_ACCOUNT_FORCE_RESTORE
                  or op == OP_SET_ACTIVE_MEMCG or op == OP_ATTACH or op == OP_NOP
                  or op == OP_SET_DIRTY or op == OP_START_WRITEBACK
                  or op == OP_END_WRITEBACK or op == OP_SET_LOW or op == OP_SET_MIN
                  or op == OP_SET_SWAP_MAX):
            self.usage_dirty = True
        self.after_engine(s0, s1, t)
        if op == OP_KILL:
            self.deliver_signals()
        if not self.alive[t]:
            return SUSPEND
        cost = step_cost(&self.c, s0, s1, 0)
        if op == OP_KILL or s1[STAT_OOM_KILLS] != s0[STAT_OOM_KILLS]:
            self.mode[t] = M_DONE_OP  # the victims' exits come first
            self.schedule(t, self.now + cost)
            return SUSPEND
        return self.delay_complete(t, cost)

    cdef void mark_user_space(self) noexcept nogil:
        cdef int64_t p, mode
        for p in range(self.n_tasks):
            self.eng.in_user[p] = 0
        for p in range(self.n_tasks):
            if self.alive[p] and self.sys[p] == SYS_USER and p != self.fl.pid:
                mode = self.mode[p]
                if mode == M_IDLE or mode == M_READY or (
                        mode == M_DONE_OP and self.p_op[self.pc[p]] == T_COMPUTE):
                    self.eng.in_user[p] = 1
        self.eng.config[CFG_TIMED_LIFECYCLE] = 2

    cdef void unmark_user_space(self) noexcept nogil:
        cdef int64_t p
        for p in range(self.n_tasks):
            self.eng.in_user[p] = 0
        self.eng.config[CFG_TIMED_LIFECYCLE] = 1

    # =========================================================================================
    # stepped kernel paths (mm/memcontrol.c: try_charge_memcg, the return-to-user work)
    # =========================================================================================
    cdef bint holds_handle_or_mmap(self, int64_t t) noexcept nogil:
        if self.j.h_ref[t]:
            return True
        return self.locks.holds_mm(t, self.eng.mm[t])

    cdef void path_begin(self, int64_t t, int64_t kind, int64_t* s0) noexcept nogil:
        self.path[t] = kind
        self.pstart[t] = self.now
        self.preclaims[t] = 0
        self.pooms[t] = 0
        self.plivelocks[t] = s0[STAT_LIVELOCKS]
        self.pholding[t] = self.holds_handle_or_mmap(t)
        self.n_in_path += 1

    cdef void path_end(self, int64_t t, int64_t end_ns) noexcept nogil:
        cdef int64_t held
        if self.pholding[t] and self.preclaims[t]:
            held = end_ns - self.pstart[t]
            if held > self.hold_max:
                self.hold_max = held
        self.path[t] = P_NONE
        self.n_in_path -= 1

    cdef int start_charge(self, int64_t t, int64_t pc, int64_t kind) noexcept nogil:
        cdef int64_t nr = self.p_arg[pc], gfp = self.p_gfp[pc], memcg = self.p_memcg[pc]
        cdef int64_t page_kind = self.p_kind[pc] if kind == P_CHARGE else FILE
        cdef int64_t s0[NR_STATS]
        cdef int64_t s1[NR_STATS]
        cdef int64_t k, cost
        cdef int64_t label
        if kind == P_DIRTY:
            self.ptarget[t] = memcg if memcg >= 0 else self.eng.emu_charge_target(t, FILE)
            self.pnr[t] = nr
        for k in range(NR_STATS):
            s0[k] = self.eng.stats[k]
        label = self.eng.charge_start(t, nr, gfp, page_kind, memcg)
        for k in range(NR_STATS):
            s1[k] = self.eng.stats[k]
        self.path_begin(t, kind, s0)
        self.preclaims[t] += s1[STAT_RECLAIM_CALLS] - s0[STAT_RECLAIM_CALLS]
        self.pooms[t] += s1[STAT_OOM_CALLS] - s0[STAT_OOM_CALLS]
        cost = self.c.charge_fast_path_ns + step_cost(&self.c, s0, s1, 0)
        if label == Label.DONE:
            if not (self.eng.tc_outcome[t] & OUT_STOCK_HIT):
                self.usage_dirty = True
            return self.path_done(t, cost)
        self.usage_dirty = True
        self.plabel[t] = label
        return self.path_continue(t, cost)

    cdef int start_rtu(self, int64_t t, int64_t pc) noexcept nogil:
        cdef int64_t s0[NR_STATS]
        cdef int64_t s1[NR_STATS]
        cdef int64_t k, cost
        cdef int64_t label
        if self.eng.sigkill[t]:  # exit_to_user_mode_loop(): the signal first: do_exit
            self.rc[pc] = 0
            self.begin_exit(t)
            return SUSPEND
        for k in range(NR_STATS):
            s0[k] = self.eng.stats[k]
        label = self.eng.rtu_start(t)
        for k in range(NR_STATS):
            s1[k] = self.eng.stats[k]
        self.usage_dirty = True
        self.after_engine(s0, s1, t)
        if not self.alive[t]:
            return SUSPEND  # the fatal signal was delivered: do_exit
        self.path_begin(t, P_RTU, s0)
        self.preclaims[t] += s1[STAT_RECLAIM_CALLS] - s0[STAT_RECLAIM_CALLS]
        self.pooms[t] += s1[STAT_OOM_CALLS] - s0[STAT_OOM_CALLS]
        cost = step_cost(&self.c, s0, s1, 0)
        if label == Label.DONE:
            return self.path_done(t, cost)
        self.plabel[t] = label
        return self.path_continue(t, cost)

    cdef int path_continue(self, int64_t t, int64_t cost) noexcept nogil:
        cdef bint rtu = self.path[t] == P_RTU
        cdef bint yield_now = False
        cdef int64_t prev, label, d_rc, d_recl, d_drain, d_oom, d_kill, m
        cdef int64_t s0[NR_STATS]
        cdef int64_t s1[NR_STATS]
        cdef int64_t k
        while True:
            if cost > 0 or yield_now:  # after a kill, the victims' exits come first
                self.mode[t] = M_PATH
                self.schedule(t, self.now + cost)
                return SUSPEND
            if self.tick_instant() < 0:
                return -1
            prev = self.plabel[t]
            for k in range(NR_STATS):
                s0[k] = self.eng.stats[k]
            if rtu:
                label = self.eng.rtu_step(t)
            else:
                label = self.eng.charge_step(t)
            for k in range(NR_STATS):
                s1[k] = self.eng.stats[k]
            d_rc = s1[STAT_RECLAIM_CALLS] - s0[STAT_RECLAIM_CALLS]
            d_recl = s1[STAT_RECLAIM_RECLAIMED] - s0[STAT_RECLAIM_RECLAIMED]
            d_drain = s1[STAT_CPU_DRAINS] - s0[STAT_CPU_DRAINS]
            d_oom = s1[STAT_OOM_CALLS] - s0[STAT_OOM_CALLS]
            d_kill = s1[STAT_OOM_KILLS] - s0[STAT_OOM_KILLS]
            cost = step_cost(&self.c, s0, s1, 0)
            if not rtu and prev == Label.RETRY:
                m = self.eng.tc_memcg[t]
                if m < 0:
                    m += self.n_cg  # as the twin's list indexing
                cost += self.levels[m] * self.c.page_counter_level_ns
            elif rtu and prev == Label.MAX_RETRY:
                self.over_max_ns += cost
            if d_rc:
                self.preclaims[t] += d_rc
                if label != Label.DONE and self.reclaim_wait != RW_OFF:
                    self.reclaim_throttle(t)
            if (d_recl or d_drain or label == Label.DONE or not (
                    label == Label.RETRY or label == Label.RECLAIMED or label == Label.NOMEM
                    or label == Label.HIGH_LOOP or label == Label.MAX_RETRY)):
                self.usage_dirty = True
            if d_oom or d_kill:
                self.pooms[t] += d_oom
                if not d_kill:  # a victim is pending: the charge retries (nr_retries reset)
                    self.oom_nokill += d_oom
                self.scan_oom()
                if not self.alive[t]:
                    return SUSPEND
                yield_now = d_kill > 0
            if s1[STAT_FLUSHER_WAKEUPS] != s0[STAT_FLUSHER_WAKEUPS]:
                self.fl.wake()
            if label == Label.DONE:
                return self.path_done(t, cost)
            self.plabel[t] = label

    cdef void reclaim_throttle(self, int64_t t) noexcept nogil:
        cdef int64_t mode = self.reclaim_wait, m, c, pending, reclaimable, sleep
        if mode == RW_5X:
            return
        m = self.eng.tc_memcg[t] if self.path[t] != P_RTU else self.eng.memcg[t]
        if m < 0 or not self.eng.pool[m, FILE_WRITEBACK] or self.eng.pool[m, FILE_DIRTY]:
            return
        if mode == RW_V6:
            pending = 0
            reclaimable = 0
            for c in range(self.n_cg):
                pending += self.eng.pool[c, FILE_DIRTY] + self.eng.pool[c, FILE_WRITEBACK]
                reclaimable += self.eng.pool[c, FILE]
            reclaimable += pending
            if self.eng.config[CFG_TOTAL_SWAP]:
                for c in range(self.n_cg):
                    reclaimable += self.eng.pool[c, ANON]
            if 2 * pending <= reclaimable:
                return
            sleep = NS_PER_JIFFY
        else:
            sleep = NS_PER_SEC // 10
        self.rwait[t] = sleep
        self.rthrottle_ns += sleep
        self.rthrottles += 1

    cdef int path_done(self, int64_t t, int64_t cost) noexcept nogil:
        cdef int64_t pc = self.pc[t], kind = self.path[t]
        cdef int64_t penalty = 0, dirty_pause = 0, rc, outcome, target, sleep, pk
        if kind == P_RTU:
            self.unw_saves[t] = 0
            self.unw_js[t] = 0
            rc = self.eng.hh_penalty[t]
            outcome = OUT_THROTTLED if rc else 0
            if self.eng.stats[STAT_LIVELOCKS] != self.plivelocks[t]:
                outcome |= OUT_LIVELOCK
                self.sys[t] = SYS_KERNEL
            else:
                self.sys[t] = SYS_USER
            penalty = rc
        else:
            rc = self.eng.tc_rc[t]
            outcome = self.eng.tc_outcome[t]
            if outcome & OUT_THROTTLED:
                penalty = self.eng.hh_penalty[t]
            if rc == 0:
                if kind == P_DIRTY:
                    target = self.ptarget[t]
                    if target > 0:
                        self.eng.emu_move_pages(target, FILE, FILE_DIRTY, self.pnr[t])
                        if self.j.h_ref[t] == 0:  # never inside a transaction
                            dirty_pause = self.fl.balance_dirty_pages(target)
                    self.file_ops += 1
                else:
                    pk = self.p_kind[pc]
                    if pk == FILE or pk == FILE_DIRTY:
                        self.file_ops += 1
            elif rc == -ENOMEM:  # the system call fails: unwind the rest of it
                self.sys[t] = SYS_UNWIND
                self.unwinds += 1
        self.rc[pc] = rc
        self.outcome[pc] = <uint8_t>outcome
        self.path_end(t, self.now + cost)
        sleep = penalty * NS_PER_JIFFY
        if (sleep or dirty_pause) and self.sig_seen[t]:  # killable sleeps return at once
            sleep = 0
            dirty_pause = 0
        self.throttle_ns += sleep
        self.dirty_pause_ns += dirty_pause
        self.dirty_pauses += dirty_pause > 0
        self.dpause[t] = dirty_pause
        sleep += dirty_pause
        self.sleep_from[t] = self.now + cost if sleep else -1
        self.sleep_until[t] = self.now + cost + sleep
        return self.delay_complete(t, cost + sleep)

    # =========================================================================================
    # D state (the waits themselves: _tlocking, _tjbd2)
    # =========================================================================================
    cdef void block(self, int64_t t, int64_t why) noexcept nogil:
        self.eng.block_task(t)
        self.mode[t] = M_BLOCKED
        self.token[t] += 1
        self.d_enter(t, why)

    cdef int64_t rwsem_of(self, int64_t t, int64_t pc) noexcept nogil:
        # the rwsem of op pc: -1 is the mmap_lock of t's mm (shared by its threads)
        if self.p_arg[pc] == -1:
            return self.locks.touch(self.locks.mm_lock(self.eng.mm[t]))
        return self.locks.touch(self.p_lock[pc])

    cdef void d_enter(self, int64_t t, int64_t why) noexcept nogil:
        cdef int64_t n, w
        self.wait_of[t] = why
        self.d_since[t] = self.now
        self.n_d += 1
        n = self.n_d_by[why] + 1
        self.n_d_by[why] = n
        if n > self.d_peak_by[why]:
            self.d_peak_by[why] = n
        if self.n_d > self.d_peak:
            self.d_peak = self.n_d
            for w in range(NR_WAITS):
                self.d_at_peak[w] = self.n_d_by[w]

    cdef void d_leave(self, int64_t t) noexcept nogil:
        cdef int64_t waited
        self.n_d -= 1
        self.n_d_by[self.wait_of[t]] -= 1
        if t == self.fl.pid:
            waited = self.now - self.d_since[t]
            self.f_jwait_ns += waited
            if waited > self.f_jwait_max:
                self.f_jwait_max = waited

    cdef void unblock(self, int64_t t, bint retry) noexcept nogil:
        self.d_leave(t)
        self.mode[t] = M_READY
        self.locks.kwait[t] = -1
        self.eng.wake_task(t)
        if self.eng.state[t] == TASK_EXITED:
            self.usage_dirty = True
            if self.alive[t]:
                ivec_push(&self.dead, t)
            return
        if t == self.fl.pid:
            self.schedule(t, self.now)
            return
        if retry:
            self.mode[t] = M_READY
        else:
            self.mode[t] = M_DONE_OP
            self.rc[self.pc[t]] = 0
        self.schedule(t, self.now)

    # =========================================================================================
    # the kernel threads' events (kjournald2: _tjbd2, the OOM reaper: _treaper) and control ops
    # =========================================================================================
    cdef int dispatch_special(self, int64_t actor, int64_t arg) noexcept nogil:
        if actor == A_COMMIT_TIMER:
            self.j.timer(arg)
        elif actor == A_COMMIT_DONE:
            self.j.commit_done()
        elif actor == A_REAP_TIMER:
            self.rp.fire(arg)
        elif actor == A_REAPER:
            self.rp.run(arg)
        elif actor == A_CONTROL:
            return self.control(arg)
        return 0

    cdef int control(self, int64_t i) noexcept nogil:
        cdef int64_t op = self.c_op[i], target = self.c_task[i]
        cdef int64_t s0[NR_STATS]
        cdef int64_t s1[NR_STATS]
        cdef int64_t rc = 0, outcome = 0, k
        cdef int err
        if op == OP_KILL and self.eng.state[target] == TASK_EXITED:
            return 0
        if self.tick_instant() < 0:
            return -1
        for k in range(NR_STATS):
            s0[k] = self.eng.stats[k]
        err = self.replay_one(True, i, op, &rc, &outcome)
        for k in range(NR_STATS):
            s1[k] = self.eng.stats[k]
        if err:
            if self.strict:
                return self.fail(E_CONTROL, i, err, 0)
            self.op_errors += 1
            rc = -22
        self.ctl_rc[i] = rc
        self.ctl_outcome[i] = <uint8_t>outcome
        if op == OP_SET_MAX:
            self.find_limited()
        self.usage_dirty = True
        self.after_engine(s0, s1, -1)
        if op == OP_KILL:
            self.deliver_signals()
        return 0

    # =========================================================================================
    # deaths, victims, signals (kernel/exit.c, kernel/signal.c, mm/oom_kill.c)
    # =========================================================================================
    cdef void after_engine(self, int64_t* s0, int64_t* s1, int64_t t) noexcept nogil:
        if (s1[STAT_OOM_CALLS] != s0[STAT_OOM_CALLS]
                or s1[STAT_OOM_KILLS] != s0[STAT_OOM_KILLS]):
            self.scan_oom()
        if s1[STAT_FLUSHER_WAKEUPS] != s0[STAT_FLUSHER_WAKEUPS]:
            self.fl.wake()
        if t >= 0:
            self.check_exit(t)

    cdef void check_exit(self, int64_t t) noexcept nogil:
        if self.alive[t] and self.eng.state[t] == TASK_EXITED:
            self.usage_dirty = True
            ivec_push(&self.dead, t)
            self.process_dead()

    cdef void scan_oom(self) noexcept nogil:
        cdef int64_t p, n = self.n_tasks
        cdef bint blocked
        # Nothing to find unless the engine stored a victim, a signal or an exit since the last
        # walk began (Engine.oom_gen): every condition below becomes true only by such a store
        # (alive and the *_seen flags only ever go one way in a run), and a walk clears every
        # one it finds.  Most OOM invocations (a victim is pending) store nothing.
        if self.eng.oom_gen == self.oom_gen_seen:
            self.usage_dirty = True
            if self.dead.n:
                self.process_dead()
            return
        self.oom_gen_seen = self.eng.oom_gen
        # one pass first: most OOM invocations (a victim is pending) change nothing
        for p in range(n):
            if ((self.eng.state[p] == TASK_EXITED and self.alive[p])
                    or (self.eng.oom_victim[p] and not self.victim_seen[p])
                    or (self.eng.reap_queued[p] and not self.reap_seen[p])
                    or (self.eng.sigkill[p] and self.alive[p] and not self.sig_seen[p])):
                break
        else:
            self.usage_dirty = True
            if self.dead.n:
                self.process_dead()
            return
        for p in range(n):
            if self.eng.state[p] == TASK_EXITED and self.alive[p]:
                ivec_push(&self.dead, p)
        for p in range(n):
            if self.eng.oom_victim[p] and not self.victim_seen[p]:
                self.victim_seen[p] = True
                blocked = self.eng.state[p] == TASK_BLOCKED
                ivec_push(&self.oom_seen, self.now)  # oom_log, appended by store()
                ivec_push(&self.oom_seen, p)
                ivec_push(&self.oom_seen, blocked)
                if blocked:
                    self.victims_unable += 1
        for p in range(n):
            if self.eng.reap_queued[p] and not self.reap_seen[p]:
                self.reap_seen[p] = True
                self.rp.arm(p)
        self.usage_dirty = True
        self.deliver_signals()
        if self.dead.n:
            self.process_dead()

    cdef void deliver_signals(self) noexcept nogil:
        cdef int64_t p, i, m = 0, n = self.n_tasks
        cdef int64_t* todo
        # the tasks to signal as they are now (the twin's flatnonzero, less those it skips:
        # signal() changes no other task's sig_seen or alive)
        for p in range(n):
            if self.eng.sigkill[p] and self.alive[p] and not self.sig_seen[p]:
                m += 1
        if not m:
            return
        todo = <int64_t*>malloc(m * sizeof(int64_t))
        if todo == NULL:
            self.alloc_failed = True  # the loop stops after this event (E_NOMEM)
            return
        m = 0
        for p in range(n):
            if self.eng.sigkill[p] and self.alive[p] and not self.sig_seen[p]:
                todo[m] = p
                m += 1
        for i in range(m):
            p = todo[i]
            if self.sig_seen[p] or not self.alive[p]:
                continue
            self.sig_seen[p] = True
            self.signal(p)
        free(todo)

    cdef void signal(self, int64_t p) noexcept nogil:
        cdef int64_t mode = self.mode[p], pc, op, end, unslept, cut
        if p == self.fl.pid or mode == M_DEAD or mode == M_EXITING or mode == M_PATH:
            return
        if mode == M_BLOCKED:
            if self.locks.kwait[p] >= 0:
                self.abort_killable_wait(p, self.locks.kwait[p])
            return
        pc = self.pc[p]
        if mode == M_DONE_OP:
            op = self.p_op[pc]
            if op == T_SLEEP:
                if self.sys[p] == SYS_USER:
                    self.rc[pc] = -EINTR
                    self.schedule(p, self.now)  # completes now, then exits in user space
                else:
                    self.token[p] += 1
                    self.interrupted(p, pc)
                    self.schedule(p, self.now)
            elif op == T_COMPUTE and self.sys[p] == SYS_USER:
                self.begin_exit(p)
            elif self.sleep_from[p] >= 0:  # a memory.high throttle sleep (killable)
                end = self.now if self.now > self.sleep_from[p] else self.sleep_from[p]
                unslept = self.sleep_until[p] - end  # not slept: the dirty pause comes last
                cut = unslept if unslept < self.dpause[p] else self.dpause[p]
                self.dirty_pause_ns -= cut
                self.throttle_ns -= unslept - cut
                self.schedule(p, end)
                self.sleep_from[p] = -1
            return
        if (mode == M_READY or mode == M_IDLE) and self.sys[p] == SYS_USER:
            self.begin_exit(p)

    cdef int interrupted(self, int64_t t, int64_t pc) noexcept nogil:
        self.rc[pc] = -EINTR
        self.pc[t] = pc + 1
        self.mode[t] = M_READY
        self.sys[t] = SYS_UNWIND
        self.unwinds += 1
        return CONTINUE

    cdef void abort_killable_wait(self, int64_t p, int64_t lk) noexcept nogil:
        self.locks.wq_remove(lk, p)
        self.locks.kwait[p] = -1
        self.d_leave(p)
        self.eng.wake_task(p)
        self.interrupted(p, self.pc[p])
        self.schedule(p, self.now)
        self.locks.rwsem_wake(lk)
        self.locks.mm_lock_update(lk)

    cdef bint unwind_skip(self, int64_t t, int64_t pc, int64_t op) noexcept nogil:
        cdef bint run = False
        cdef int64_t lk
        if op == OP_RETURN_TO_USER or op == OP_EXIT:
            return False
        if op == T_JOURNAL_STOP:
            if self.unw_js[t]:
                self.unw_js[t] -= 1
            else:
                run = self.j.h_ref[t] != 0
        elif op == T_MUTEX_UNLOCK:
            lk = self.p_lock[pc]
            run = self.locks.mutex_held_by(lk, t)
        elif op == T_UP_READ or op == T_UP_WRITE:
            lk = self.rwsem_of(t, pc)
            run = self.locks.owner[lk] == t if op == T_UP_WRITE else self.locks.reads(t, lk)
        elif op == OP_FLAGS_RESTORE or op == OP_ACCOUNT_FORCE_RESTORE:
            if self.unw_saves[t]:
                self.unw_saves[t] -= 1
            else:
                run = self.eng.scope_depth[t] > 0
        elif op == OP_SET_ACTIVE_MEMCG:
            run = self.p_memcg[pc] == -1
        elif op == OP_FLAGS_SAVE or op == OP_ACCOUNT_FORCE_SAVE:
            self.unw_saves[t] += 1
        elif op == T_JOURNAL_START:
            self.unw_js[t] += 1
        elif op == T_LOOP:
            self.loop_left[pc] = -2  # the call's remaining iterations are abandoned
        if run:
            return False
        self.pc[t] = pc + 1
        self.ops_skipped += 1
        return True

    cdef void program_end(self, int64_t t) noexcept nogil:
        cdef int64_t pc
        self.mode[t] = M_IDLE
        pc = self.pc[t] - 1
        if (pc >= self.prog_start[t] and self.p_op[pc] == OP_RETURN_TO_USER
                and self.sys[t] == SYS_KERNEL):
            return
        self.sys[t] = SYS_USER
        if self.eng.sigkill[t]:
            self.begin_exit(t)

    cdef void begin_exit(self, int64_t t) noexcept nogil:
        cdef int64_t mm, cost = 0
        if self.mode[t] == M_EXITING or not self.alive[t]:
            return
        if self.path[t] != P_NONE:
            self.path_end(t, self.now)
        self.eng.flags[t] |= PF_EXITING
        mm = self.eng.mm[t]
        if self.eng.has_mm[t] and self.eng.mm_users[mm] == 1:
            cost = ((self.eng.owned[mm, ANON] + self.eng.owned[mm, UNEVICTABLE])
                    * self.c.exit_page_ns)
        self.mode[t] = M_EXITING
        self.exits += 1
        self.schedule(t, self.now + cost)

    cdef void finish_exit(self, int64_t t) noexcept nogil:
        if self.tracing:
            with gil:
                self.exit_log.append((self.now, t))
        self.eng.exit_task(t)
        self.usage_dirty = True
        self.check_exit(t)

    cdef void process_dead(self) noexcept nogil:
        cdef int64_t t, lk
        while self.dead.n:
            t = ivec_pop(&self.dead)
            if not self.alive[t]:
                continue
            self.alive[t] = False
            self.token[t] += 1
            self.mode[t] = M_DEAD
            if self.path[t] != P_NONE:
                self.path_end(t, self.now)
            self.j.drop(t)
            self.locks.release_all(t)
            lk = self.locks.mm_lock(self.eng.mm[t])
            if self.locks.exists[lk]:
                self.locks.wq_remove(lk, t)
