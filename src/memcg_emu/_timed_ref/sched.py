"""The timed engine's Python scheduler: the reference twin of the compiled scheduler
``memcg_emu._tsched`` (docs/design.md §3.3), which translates each of its methods line by
line.  :class:`memcg_emu.timed.TimedSim` is a :class:`Scheduler` (the set-up API, the checks
before a run and the results are in ``timed.py``, and serve both schedulers).

It holds the event queue, the per-task state, the program interpreter, the stepped charge and
return-to-user paths, D state, signal delivery, unwinding and exit, the over-max figures and
sampling, and calls into the subsystems it owns (``self.locks``, ``self.journal``,
``self.flusher``, ``self.reaper``: the modules beside this one), which call back only through
the methods ``base`` lists.  What is modelled and what is not: :mod:`memcg_emu.timed`'s
docstring.
"""
import heapq
import time as _time

import numpy as np

from .._constants import (
    ENOMEM,
    OUT_LIVELOCK,
    OUT_STOCK_HIT,
    OUT_THROTTLED,
    PAGE_COUNTER_MAX,
    PF_EXITING,
    PF_KTHREAD,
    PF_MEMALLOC_ACCOUNTFORCE,
    PF_MEMALLOC_NOFS,
    AF_OFF,
    Cfg,
    Knob,
    Label,
    RW_5X,
    RW_OFF,
    RW_V6,
    PageKind,
    Stat,
    TaskState,
)
from ..events import ERR_MESSAGES, Op
from .base import (
    A_COMMIT_DONE,
    A_COMMIT_TIMER,
    A_CONTROL,
    A_REAP_TIMER,
    A_REAPER,
    M_BLOCKED,
    M_DEAD,
    M_DONE_OP,
    M_EXITING,
    M_IDLE,
    M_PATH,
    M_READY,
    NS_PER_JIFFY,
    NS_PER_SEC,
    W_MMAP_LOCK,
    W_MUTEX,
    W_RECLAIM,
    W_RWSEM,
    WAIT_NAMES,
    TOp,
)
from .jbd2 import J_LOCKED, Journal
from .locking import Locks, RWSem
from .reaper import Reaper
from .writeback import Flusher

_NO_USAGE_CHANGE = frozenset(int(o) for o in (Op.FLAGS_SAVE, Op.FLAGS_RESTORE,
                                              Op.ACCOUNT_FORCE_SAVE, Op.ACCOUNT_FORCE_RESTORE,
                                              Op.SET_ACTIVE_MEMCG, Op.ATTACH, Op.NOP,
                                              Op.SET_DIRTY, Op.START_WRITEBACK,
                                              Op.END_WRITEBACK, Op.SET_LOW, Op.SET_MIN,
                                              Op.SET_SWAP_MAX))
_FILE_KINDS = (int(PageKind.FILE), int(PageKind.FILE_DIRTY))

# where a task's program is (signal delivery and unwinding): in user space, inside a system
# call (the ops up to the next RETURN_TO_USER), or unwinding the rest of that system call
SYS_USER, SYS_KERNEL, SYS_UNWIND = range(3)
EINTR = 4
# ops that do not enter a system call from user space (SLEEP is a call of its own)
_STAY_USER_OPS = frozenset({int(TOp.COMPUTE), int(TOp.LOOP), int(TOp.SLEEP)})
# kernel path kinds
P_NONE, P_CHARGE, P_DIRTY, P_RTU = range(4)
# op-handler results
_CONTINUE, _SUSPEND = 0, 1

_S_RC, _S_SCAN, _S_RECL = int(Stat.RECLAIM_CALLS), int(Stat.RECLAIM_SCANNED), \
    int(Stat.RECLAIM_RECLAIMED)
_S_OOM, _S_KILL, _S_DRAIN = int(Stat.OOM_CALLS), int(Stat.OOM_KILLS), int(Stat.CPU_DRAINS)
_S_FLUSH, _S_LIVELOCK = int(Stat.FLUSHER_WAKEUPS), int(Stat.LIVELOCKS)
_LABEL_DONE, _LABEL_RETRY = int(Label.DONE), int(Label.RETRY)
# labels a step may return without having changed any usage (unless it reclaimed, drained
# or OOM-killed, which the stat deltas show): a failed try_charge is cancelled
_NO_CHANGE_LABELS = frozenset(int(x) for x in (Label.RETRY, Label.RECLAIMED, Label.NOMEM,
                                               Label.HIGH_LOOP, Label.MAX_RETRY))
_EXITED, _BLOCKED = int(TaskState.EXITED), int(TaskState.BLOCKED)
_OP_CHARGE, _OP_RTU, _OP_EXIT = int(Op.CHARGE), int(Op.RETURN_TO_USER), int(Op.EXIT)
_FILE, _FILE_DIRTY, _FILE_WB = int(PageKind.FILE), int(PageKind.FILE_DIRTY), \
    int(PageKind.FILE_WRITEBACK)
_ANON = int(PageKind.ANON)
_LABEL_MAX_RETRY = int(Label.MAX_RETRY)


class Scheduler:
    """The scheduler half of :class:`memcg_emu.timed.TimedSim` (its state is made by
    ``_init_scheduler``; ``run()`` calls ``_run_python``)."""

    def _init_scheduler(self, knobs) -> None:
        # per-task scheduler state (grown by _grow_tasks)
        self._pc: list[int] = []
        self._end: list[int] = []
        self._mode: list[int] = []
        self._token: list[int] = []
        self._alive: list[bool] = []
        self._start_ns: list[int] = []
        self._path: list[int] = []
        self._plabel: list[int] = []
        self._ptarget: list[int] = []
        self._pnr: list[int] = []
        self._pstart: list[int] = []
        self._preclaims: list[int] = []
        self._pooms: list[int] = []
        self._pholding: list[bool] = []
        self._plivelocks: list[int] = []
        self._victim_seen: list[bool] = []
        self._reap_seen: list[bool] = []
        # lifecycle: SYS_* of each task, whether its fatal signal was seen, the rwsem of the
        # killable wait it is in, when its killable memory.high sleep starts (-1: none),
        # saves / journal starts skipped while unwinding (their restores / stops are too)
        self._sys: list[int] = []
        self._sig_seen: list[bool] = []
        self._wait_of: list[int] = []  # W_* of a task in D state
        self._d_since: list[int] = []  # when it entered D state
        # reclaim_throttle() owed after the current step (> 0, ns), or being slept (-1)
        self._rwait: list[int] = []
        self._dpause: list[int] = []  # the balance_dirty_pages() part of a killable sleep
        self._sleep_from: list[int] = []
        self._sleep_until: list[int] = []
        self._unw_saves: list[int] = []
        self._unw_js: list[int] = []

        # machine-wide
        self.now = 0
        self._seq = 0
        self._heap: list[tuple] = []
        self._started = False
        self._dead: list[int] = []
        self.locks = Locks(self)  # mutexes, rwsems, mmap_locks; what each task holds
        # the journal (its running transaction, handles, kjournald2)
        self.journal = Journal(self, PF_MEMALLOC_NOFS | (
            PF_MEMALLOC_ACCOUNTFORCE if knobs[Knob.ACCOUNTFORCE] != AF_OFF else 0))
        # the flusher kthread (made at the first run)
        self.flusher = Flusher(self, self.journal)
        # the oom_reaper kthread
        self.reaper = Reaper(self, int(knobs[Knob.OOM_REAPER_DELAY]) * NS_PER_JIFFY)

        # measurements
        self._n_d = 0
        self._n_d_by = [0] * len(WAIT_NAMES)
        self._d_peak_by = [0] * len(WAIT_NAMES)
        self._d_at_peak = [0] * len(WAIT_NAMES)
        self._d_ns_by = [0] * len(WAIT_NAMES)
        self._d_peak = 0
        self._d_ns = 0
        self._n_in_path = 0
        self._over_sum = 0
        self._over_peak = 0
        self._over_peak_by: dict[int, int] = {}  # cgroup -> its peak overage (pages)
        self._over_page_ns = 0
        self._over_ps: dict[int, int] = {}  # cgroup -> integral of its overage (page-ns)
        self._over_now: list[tuple[int, int]] = []  # (cgroup, pages over) right now
        self._limited: list[int] = []  # cgroups whose memory.max is below PAGE_COUNTER_MAX
        self._usage_dirty = True
        self._hold_max = 0
        self._throttle_ns = 0
        self._rthrottle_ns = 0  # reclaim_throttle() sleeps
        self._dirty_pause_ns = 0  # balance_dirty_pages() pauses
        self._dirty_pauses = 0
        self._rthrottles = 0
        self._over_max_ns = 0  # time in mem_cgroup_handle_over_max()
        self._file_ops = 0
        self._ops_completed = 0
        self._op_errors = 0
        self._victims_unable = 0
        self._exits = 0
        self._unwinds = 0
        self._ops_skipped = 0
        self._f_jwait_ns = 0  # the flusher's waits in journal_start
        self._oom_nokill = 0  # OOM invocations of charge/return paths that killed nobody
        self._f_jwait_max = 0
        self._events = 0
        self._wall = 0.0
        self._same_instant = 0
        self._stats0 = None
        self._next_sample = 0
        self._samples: dict[str, list] = {k: [] for k in (
            "time_ns", "d_state_tasks", "usage", "max", "journal_locked", "handles",
            "in_kernel_path", "oom_kills", "ops_completed", "d_state_by_wait", "pool",
            "reclaim_scanned", "reclaim_reclaimed", "tasks_alive")}

    def _grow_tasks(self) -> None:
        n = self.emu.state.n_tasks
        self.journal.grow(n)
        self.locks.grow(n)
        while len(self._pc) < n:
            self._pc.append(0)
            self._end.append(0)
            self._mode.append(M_IDLE)
            self._token.append(0)
            self._alive.append(int(self.emu.state.state[len(self._alive)]) != _EXITED)
            self._start_ns.append(0)
            self._path.append(P_NONE)
            self._plabel.append(0)
            self._ptarget.append(-1)
            self._pnr.append(0)
            self._pstart.append(0)
            self._preclaims.append(0)
            self._pooms.append(0)
            self._pholding.append(False)
            self._plivelocks.append(0)
            self._victim_seen.append(False)
            self._reap_seen.append(False)
            self._sys.append(SYS_USER)
            self._sig_seen.append(False)
            self._wait_of.append(0)
            self._d_since.append(0)
            self._rwait.append(0)
            self._dpause.append(0)
            self._sleep_from.append(-1)
            self._sleep_until.append(0)
            self._unw_saves.append(0)
            self._unw_js.append(0)

    def _mark_user_space(self) -> None:
        """Before a synchronous memory.max write: it runs at one instant and cannot wait for
        an OOM victim's exit, so the victims that are in user space exit inside the kill, as
        in step mode (without exit time); the others run on as usual."""
        st = self.emu.state
        n = st.n_tasks
        self._grow_tasks()
        in_user = st.in_user
        in_user[:n] = 0
        for p in range(n):
            if self._alive[p] and self._sys[p] == SYS_USER and p != self.flusher.pid:
                mode = self._mode[p]
                if mode == M_IDLE or mode == M_READY or (
                        mode == M_DONE_OP and self._p_op[self._pc[p]] == TOp.COMPUTE):
                    in_user[p] = 1
        st.config[Cfg.TIMED_LIFECYCLE] = 2

    def _unmark_user_space(self) -> None:
        st = self.emu.state
        st.in_user[: st.n_tasks] = 0
        st.config[Cfg.TIMED_LIFECYCLE] = 1

    # =========================================================================================
    # the event loop
    # =========================================================================================
    def _push(self, when: int, actor: int, arg: int) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, actor, arg))

    def _schedule(self, t: int, when: int) -> None:
        """(Re)schedule task t; any earlier heap entry of t becomes stale."""
        self._token[t] += 1
        self._push(max(when, self.now), t, self._token[t])

    def _run_python(self, until_ns: int) -> None:
        """run()'s event loop, up to ``until_ns``."""
        self._scan_oom()  # kills made between runs (a memory.max write through write())
        self._update_over_max()
        t0 = _time.perf_counter()
        heap = self._heap
        heappop = heapq.heappop
        token = self._token
        fpid = self.flusher.pid
        flusher_work = self.flusher.work
        events = 0
        while heap and heap[0][0] <= until_ns:
            when, _seq, actor, arg = heappop(heap)
            if when > self.now:
                self._advance(when)
            if actor >= 0:
                if arg != token[actor]:
                    continue  # stale: rescheduled, blocked or dead since
                events += 1
                if actor == fpid:
                    flusher_work()
                else:
                    self._dispatch(actor)
            else:
                events += 1
                self._dispatch_special(actor, arg)
            if self._dead:
                self._process_dead()
            if self._usage_dirty:
                self._update_over_max()
        self._advance(until_ns)
        if self._next_sample == until_ns:
            self._sample(until_ns)
            self._next_sample += self.sample_dt_ns
        self._events += events
        self._wall += _time.perf_counter() - t0

    def _advance(self, when: int) -> None:
        """Time passes from now to ``when``: integrals, then samples in [now, when)."""
        dt = when - self.now
        if dt <= 0:
            return
        while self._next_sample < when:
            self._sample(self._next_sample)
            self._next_sample += self.sample_dt_ns
        if self._n_d:
            self._d_ns += self._n_d * dt
            d_ns_by = self._d_ns_by
            for w, n in enumerate(self._n_d_by):
                if n:
                    d_ns_by[w] += n * dt
        if self._over_sum:
            self._over_page_ns += self._over_sum * dt
            ps = self._over_ps
            for c, o in self._over_now:
                ps[c] = ps.get(c, 0) + o * dt
        self.now = when
        self._same_instant = 0

    def _sample(self, t: int) -> None:
        s = self._samples
        st = self._st
        n = self._n_cg
        s["time_ns"].append(t)
        s["d_state_tasks"].append(self._n_d)
        s["usage"].append(st.usage[:n].copy())
        s["max"].append(st.max[:n].copy())
        j = self.journal
        s["journal_locked"].append(int(j.state == J_LOCKED))
        s["handles"].append(j.updates)
        s["in_kernel_path"].append(self._n_in_path)
        s["oom_kills"].append(int(self._stats[_S_KILL] - self._stats0[_S_KILL]))
        s["ops_completed"].append(self._ops_completed)
        s["d_state_by_wait"].append(list(self._n_d_by))
        s["pool"].append(st.pool[:n].copy())
        s["reclaim_scanned"].append(int(self._stats[_S_SCAN] - self._stats0[_S_SCAN]))
        s["reclaim_reclaimed"].append(int(self._stats[_S_RECL] - self._stats0[_S_RECL]))
        s["tasks_alive"].append(self._alive_by_cgroup())

    def _alive_by_cgroup(self) -> np.ndarray:
        """User tasks not yet exited, per cgroup (kernel threads not counted)."""
        st = self._st
        n = st.n_tasks
        live = (st.state[:n] != _EXITED) & ((st.flags[:n] & PF_KTHREAD) == 0)
        return np.bincount(st.memcg[:n][live], minlength=self._n_cg)[:self._n_cg]

    def _find_limited(self) -> None:
        """The cgroups that can be over their memory.max (after limit writes)."""
        st = self._st
        n = self._n_cg
        self._limited = np.flatnonzero(st.max[1:n] < PAGE_COUNTER_MAX).tolist()
        self._limited = [c + 1 for c in self._limited]
        self._usage_dirty = True

    def _update_over_max(self) -> None:
        """Recompute which cgroups are over memory.max, by how much (after usage changed)."""
        self._usage_dirty = False
        usage = self._st.usage
        mx = self._st.max
        over_now = []
        total = 0
        for c in self._limited:
            o = usage.item(c) - mx.item(c)
            if o > 0:
                over_now.append((c, o))
                total += o
                if o > self._over_peak:
                    self._over_peak = o
                if o > self._over_peak_by.get(c, 0):
                    self._over_peak_by[c] = o
        self._over_now = over_now
        self._over_sum = total

    def _tick_instant(self) -> None:
        self._same_instant += 1
        if self._same_instant > self.max_ops_per_instant:
            raise RuntimeError(
                f"more than {self.max_ops_per_instant} ops/steps at t = {self.now} ns without "
                f"time passing: a zero-cost loop (e.g. an OOM livelock with CostModel.zero(), "
                f"or a LOOP whose body takes no time) cannot advance the simulation")

    # =========================================================================================
    # tasks
    # =========================================================================================
    def _dispatch(self, t: int) -> None:
        mode = self._mode[t]
        if mode == M_EXITING:
            self._finish_exit(t)
            return
        if mode == M_PATH:
            w = self._rwait[t]
            if w:
                if w > 0:  # the reclaim step's work is done: reclaim_throttle() sleeps (D)
                    self._rwait[t] = -1
                    self._d_enter(t, W_RECLAIM)
                    self._schedule(t, self.now + w)
                    return
                self._rwait[t] = 0
                self._d_leave(t)
            if self._path_continue(t, 0) == _SUSPEND:
                return
        elif mode == M_DONE_OP:
            self._complete(t)
        elif mode != M_READY:
            return
        self._run_program(t)

    def _run_program(self, t: int) -> None:
        """Execute t's ops at the current time until one takes time or blocks."""
        p_time, p_op = self._p_time, self._p_op
        sys = self._sys
        while True:
            pc = self._pc[t]
            if pc >= self._end[t]:
                self._program_end(t)
                return
            op = p_op[pc]
            where = sys[t]
            if where == SYS_UNWIND and self._unwind_skip(t, pc, op):
                continue
            when = p_time[pc]
            if when > self.now:
                self._mode[t] = M_READY
                self._schedule(t, when)
                return
            if where == SYS_USER:
                if self._sig_seen[t]:  # the signal is delivered in user space: do_exit
                    self._begin_exit(t)
                    return
                if op not in _STAY_USER_OPS:
                    sys[t] = SYS_KERNEL
            self._tick_instant()
            if self._exec_op(t, pc, op) == _SUSPEND:
                return

    def _complete(self, t: int, rc: int | None = None, outcome: int = 0) -> None:
        """The op at t's pc completed (its rc/outcome may have been stored already)."""
        pc = self._pc[t]
        if rc is not None:
            self._rc[pc] = rc
            self._outcome[pc] = outcome
        self._ops_completed += 1
        if self.trace is not None:
            self.trace.append((self.now, t, pc - self._prog_of[t][0], self._p_op[pc],
                               int(self._rc[pc])))
        self._pc[t] = pc + 1
        self._mode[t] = M_READY
        self._sleep_from[t] = -1

    def _delay_complete(self, t: int, delay: int) -> int:
        """The op at pc takes ``delay`` more ns, then completes."""
        if delay > 0:
            self._mode[t] = M_DONE_OP
            self._schedule(t, self.now + delay)
            return _SUSPEND
        self._complete(t)
        return _CONTINUE

    def _exec_op(self, t: int, pc: int, op: int) -> int:
        if op < 32:
            if op == _OP_CHARGE:
                return self._start_charge(t, pc, P_CHARGE)
            if op == _OP_RTU:
                return self._start_rtu(t, pc)
            if op == _OP_EXIT:  # do_exit, with its exit time
                self._rc[pc] = 0
                self._begin_exit(t)
                return _SUSPEND
            return self._exec_replay_op(t, pc, op)
        arg = self._p_arg[pc]
        if op == TOp.COMPUTE:
            return self._delay_complete(t, arg)
        if op == TOp.SLEEP:  # killable: a pending fatal signal ends it at once
            if self._st.sigkill.item(t) and self._sys[t] != SYS_USER:
                return self._interrupted(t, pc)
            return self._delay_complete(t, arg)
        if op == TOp.DIRTY:
            return self._start_charge(t, pc, P_DIRTY)
        if op == TOp.LOOP:
            total = self._p_memcg[pc]
            left = self._loop_left[pc]
            if total == -1:
                self._pc[t] = self._prog_of[t][0] + arg
                return _CONTINUE
            if left == -2:
                left = total - 1
            if left > 0:
                self._loop_left[pc] = left - 1
                self._pc[t] = self._prog_of[t][0] + arg
            else:
                self._loop_left[pc] = -2
                self._pc[t] = pc + 1
            return _CONTINUE
        if op == TOp.JOURNAL_START:
            if self.journal.start(t, max(arg, 1)):
                self._complete(t, 0)
                return _CONTINUE
            return _SUSPEND
        if op == TOp.JOURNAL_STOP:
            if self.journal.handle[t] is None:
                return self._op_error(t, pc, "journal_stop without a running handle")
            if self.journal.stop(t) < 0:
                return self._op_error(t, pc, "journal_stop: the innermost flag scope is not "
                                             "the handle's (memalloc_flags_restore mismatch)")
            self._complete(t, 0)
            return _CONTINUE
        locks = self.locks
        if op == TOp.MUTEX_LOCK:
            if locks.mutex_lock(arg, t):
                self._complete(t, 0)
                return _CONTINUE
            self._block(t, W_MUTEX)
            return _SUSPEND
        if op == TOp.MUTEX_UNLOCK:
            if not locks.mutex_held_by(arg, t):
                return self._op_error(t, pc, f"mutex_unlock of mutex {arg}, which task {t} "
                                             f"does not hold")
            locks.release(t, locks.mutexes[arg], True)
            self._complete(t, 0)
            return _CONTINUE
        if op == TOp.DOWN_READ or op == TOp.DOWN_WRITE:
            sem = locks.rwsem(t, arg)
            write = op == TOp.DOWN_WRITE
            if locks.down_trylock(sem, t, write):
                self._complete(t, 0)
                return _CONTINUE
            if arg == -1 and self._st.sigkill.item(t):  # mmap_*_lock_killable: -EINTR
                return self._interrupted(t, pc)
            locks.down_wait(sem, t, write)
            self._block(t, W_MMAP_LOCK if arg == -1 else W_RWSEM)
            if arg == -1:
                locks.kwait[t] = sem
            return _SUSPEND
        if op == TOp.UP_READ or op == TOp.UP_WRITE:
            sem = locks.rwsem(t, arg)
            write = op == TOp.UP_WRITE
            if (write and sem.writer != t) or (not write and t not in sem.readers):
                return self._op_error(t, pc, f"{TOp(op).name.lower()} of rwsem {arg}, which "
                                             f"task {t} does not hold that way")
            locks.release(t, sem, write)
            self._complete(t, 0)
            return _CONTINUE
        raise AssertionError(f"unhandled op {op}")  # pragma: no cover

    def _op_error(self, t: int, pc: int, msg: str) -> int:
        start = self._prog_of[t][0]
        if self.strict:
            raise RuntimeError(f"task {t}, program op {pc - start} at t = {self.now} ns: {msg}")
        self._op_errors += 1
        self._complete(t, -22)
        return _CONTINUE

    # ---- instant replay ops ----------------------------------------------------------------
    def _replay_one(self, rows: np.ndarray, i: int, op: int) -> tuple[int, int, int]:
        """Apply one replay op through the engine's replay loop; (err, rc, outcome)."""
        if op == Op.SET_MAX:
            cfg = self._st.config
            cfg[Cfg.LIVELOCK_LIMIT] = self.write_livelock_limit
            self._mark_user_space()
        try:
            _, err, _, _ = self._eng.replay_loop(rows[i:i + 1], self._rc1, self._out1, 0, 0,
                                                 self._z1, self._z1, self._z2, self._z2,
                                                 self._z3, False)
        finally:
            if op == Op.SET_MAX:
                cfg[Cfg.LIVELOCK_LIMIT] = self.livelock_limit
                self._unmark_user_space()
        return err, int(self._rc1[0]), int(self._out1[0])

    def _exec_replay_op(self, t: int, pc: int, op: int) -> int:
        target = self._p_task[pc]
        if op == Op.KILL:
            if target >= self._st.n_tasks or target < 0:
                return self._op_error(t, pc, f"KILL of task {target}, which does not exist")
            if int(self._tstate[target]) == _EXITED:
                self._complete(t, 0)
                return _CONTINUE
        s0 = self._stats.tolist()
        err, rc, outcome = self._replay_one(self._exec, pc, op)
        s1 = self._stats.tolist()
        if err:
            return self._op_error(t, pc, ERR_MESSAGES[err])
        self._rc[pc] = rc
        self._outcome[pc] = outcome
        if op == Op.SET_MAX:
            self._find_limited()
        elif op not in _NO_USAGE_CHANGE:
            self._usage_dirty = True
        self._after_engine(s0, s1, t)
        if op == Op.KILL:
            self._deliver_signals()
        if not self._alive[t]:
            return _SUSPEND
        cost = self._step_cost(s0, s1, 0)
        if op == Op.KILL or s1[_S_KILL] != s0[_S_KILL]:  # the victims' exits come first
            self._mode[t] = M_DONE_OP
            self._schedule(t, self.now + cost)
            return _SUSPEND
        return self._delay_complete(t, cost)

    # ---- stepped kernel paths ----------------------------------------------------------------
    def _step_cost(self, s0: list, s1: list, walk_levels: int) -> int:
        c = self.costs
        return (walk_levels * c.page_counter_level_ns
                + (s1[_S_RC] - s0[_S_RC]) * c.reclaim_call_ns
                + (s1[_S_SCAN] - s0[_S_SCAN]) * c.page_scanned_ns
                + (s1[_S_RECL] - s0[_S_RECL]) * c.page_reclaimed_ns
                + (s1[_S_DRAIN] - s0[_S_DRAIN]) * c.stock_drain_cpu_ns
                + (s1[_S_OOM] - s0[_S_OOM]) * c.oom_invocation_ns
                + (s1[_S_KILL] - s0[_S_KILL]) * c.oom_kill_ns)

    def _holds_handle_or_mmap(self, t: int) -> bool:
        if self.journal.handle[t] is not None:
            return True
        sem = self.locks.mm_locks.get(int(self._st.mm[t]))  # Locks.holds_mm(), inlined
        return sem is not None and (sem.writer == t or t in sem.readers)

    def _path_begin(self, t: int, kind: int, s0: list) -> None:
        self._path[t] = kind
        self._pstart[t] = self.now
        self._preclaims[t] = 0
        self._pooms[t] = 0
        self._plivelocks[t] = s0[_S_LIVELOCK]
        self._pholding[t] = self._holds_handle_or_mmap(t)
        self._n_in_path += 1

    def _path_account(self, t: int, s0: list, s1: list) -> None:
        self._preclaims[t] += s1[_S_RC] - s0[_S_RC]
        self._pooms[t] += s1[_S_OOM] - s0[_S_OOM]

    def _path_end(self, t: int, end_ns: int) -> None:
        if self._pholding[t] and self._preclaims[t]:
            held = end_ns - self._pstart[t]
            if held > self._hold_max:
                self._hold_max = held
        self._path[t] = P_NONE
        self._n_in_path -= 1

    def _start_charge(self, t: int, pc: int, kind: int) -> int:
        eng = self._eng
        nr = self._p_arg[pc]
        gfp = self._p_gfp[pc]
        memcg = self._p_memcg[pc]
        page_kind = self._p_kind[pc] if kind == P_CHARGE else _FILE
        if kind == P_DIRTY:
            self._ptarget[t] = memcg if memcg >= 0 else int(eng.emu_charge_target(t, _FILE))
            self._pnr[t] = nr
        s0 = self._stats.tolist()
        label = int(eng.charge_start(t, nr, gfp, page_kind, memcg))
        s1 = self._stats.tolist()
        self._path_begin(t, kind, s0)
        self._path_account(t, s0, s1)
        cost = self.costs.charge_fast_path_ns + self._step_cost(s0, s1, 0)
        if label == _LABEL_DONE:
            if not (int(self._st.tc_outcome[t]) & OUT_STOCK_HIT):
                self._usage_dirty = True
            return self._path_done(t, cost)
        self._usage_dirty = True
        self._plabel[t] = label
        return self._path_continue(t, cost)

    def _start_rtu(self, t: int, pc: int) -> int:
        if self._st.sigkill.item(t):  # exit_to_user_mode_loop(): the signal first: do_exit
            self._rc[pc] = 0
            self._begin_exit(t)
            return _SUSPEND
        s0 = self._stats.tolist()
        label = int(self._eng.rtu_start(t))
        s1 = self._stats.tolist()
        self._usage_dirty = True
        self._after_engine(s0, s1, t)
        if not self._alive[t]:
            return _SUSPEND  # the fatal signal was delivered: do_exit
        self._path_begin(t, P_RTU, s0)
        self._path_account(t, s0, s1)
        cost = self._step_cost(s0, s1, 0)
        if label == _LABEL_DONE:
            return self._path_done(t, cost)
        self._plabel[t] = label
        return self._path_continue(t, cost)

    def _path_continue(self, t: int, cost: int) -> int:
        """Step t's kernel path while steps take no time; suspend for a step's cost.

        The hot loop of a run: _step_cost, _path_account and _after_engine inlined."""
        eng = self._eng
        stats = self._stats
        c = self.costs
        rtu = self._path[t] == P_RTU
        step = eng.rtu_step if rtu else eng.charge_step
        yield_now = False
        while True:
            if cost > 0 or yield_now:  # after a kill, the victims' exits come first
                self._mode[t] = M_PATH
                self._schedule(t, self.now + cost)
                return _SUSPEND
            self._tick_instant()
            prev = self._plabel[t]
            s0 = stats.tolist()
            label = step(t)
            s1 = stats.tolist()
            d_rc = s1[_S_RC] - s0[_S_RC]
            d_recl = s1[_S_RECL] - s0[_S_RECL]
            d_drain = s1[_S_DRAIN] - s0[_S_DRAIN]
            d_oom = s1[_S_OOM] - s0[_S_OOM]
            d_kill = s1[_S_KILL] - s0[_S_KILL]
            cost = (d_rc * c.reclaim_call_ns + (s1[_S_SCAN] - s0[_S_SCAN]) * c.page_scanned_ns
                    + d_recl * c.page_reclaimed_ns + d_drain * c.stock_drain_cpu_ns
                    + d_oom * c.oom_invocation_ns + d_kill * c.oom_kill_ns)
            if not rtu and prev == _LABEL_RETRY:
                cost += self._levels[self._st.tc_memcg.item(t)] * c.page_counter_level_ns
            elif rtu and prev == _LABEL_MAX_RETRY:
                self._over_max_ns += cost
            if d_rc:
                self._preclaims[t] += d_rc
                if label != _LABEL_DONE and self._reclaim_wait != RW_OFF:
                    self._reclaim_throttle(t)
            if d_recl or d_drain or label == _LABEL_DONE or label not in _NO_CHANGE_LABELS:
                self._usage_dirty = True
            if d_oom or d_kill:
                self._pooms[t] += d_oom
                if not d_kill:  # a victim is pending: the charge retries (nr_retries reset)
                    self._oom_nokill += d_oom
                self._scan_oom()
                if not self._alive[t]:
                    return _SUSPEND
                yield_now = d_kill > 0
            if s1[_S_FLUSH] != s0[_S_FLUSH]:
                self.flusher.wake()
            if label == _LABEL_DONE:
                return self._path_done(t, cost)
            self._plabel[t] = label

    def _reclaim_throttle(self, t: int) -> None:
        """mm/vmscan.c: shrink_node() after a cgroup reclaim pass: the lruvec is congested
        when the dirty folios reclaim met were all under writeback (``nr.dirty ==
        nr.congested``; here: the charged memcg has pages under writeback and none dirty
        and not yet queued); the direct reclaimer then sleeps per ``reclaim_wait``."""
        mode = self._reclaim_wait
        if mode == RW_5X:  # wait_iff_congested(): no congested bdi on blk-mq: cond_resched()
            return
        m = int(self._st.tc_memcg[t]) if self._path[t] != P_RTU else int(self._st.memcg[t])
        pool = self._st.pool
        if m < 0 or not pool[m, _FILE_WB] or pool[m, _FILE_DIRTY]:
            return
        if mode == RW_V6:
            # reclaim_throttle(VMSCAN_THROTTLE_CONGESTED): skip_throttle_noprogress() skips
            # it while the node's write-pending pages are at most half its reclaimable ones
            n = self._n_cg
            pending = int(pool[:n, _FILE_DIRTY].sum() + pool[:n, _FILE_WB].sum())
            reclaimable = pending + int(pool[:n, _FILE].sum())
            if self._st.config[Cfg.TOTAL_SWAP]:
                reclaimable += int(pool[:n, _ANON].sum())
            if 2 * pending <= reclaimable:
                return
            sleep = NS_PER_JIFFY
        else:  # congestion_wait(BLK_RW_ASYNC, HZ/10): the full timeout
            sleep = NS_PER_SEC // 10
        self._rwait[t] = sleep
        self._rthrottle_ns += sleep
        self._rthrottles += 1

    def _path_done(self, t: int, cost: int) -> int:
        """The path reached DONE (its last step costs ``cost``); then the throttle sleep."""
        st = self._st
        pc = self._pc[t]
        kind = self._path[t]
        penalty = 0
        dirty_pause = 0
        if kind == P_RTU:
            self._unw_saves[t] = self._unw_js[t] = 0
            rc = int(st.hh_penalty[t])
            outcome = OUT_THROTTLED if rc else 0
            if int(self._stats[_S_LIVELOCK]) != self._plivelocks[t]:
                # stopped as a livelock (bounded livelock_limit): the kernel would still be
                # looping in it, so it does not reach user space (no signal delivery)
                outcome |= OUT_LIVELOCK
                self._sys[t] = SYS_KERNEL
            else:
                self._sys[t] = SYS_USER  # back in user space once the op completes
            penalty = rc
        else:
            rc = int(st.tc_rc[t])
            outcome = int(st.tc_outcome[t])
            if outcome & OUT_THROTTLED:
                penalty = int(st.hh_penalty[t])
            if rc == 0:
                if kind == P_DIRTY:
                    target = self._ptarget[t]
                    if target > 0:
                        self._eng.emu_move_pages(target, _FILE, _FILE_DIRTY, self._pnr[t])
                        if self.journal.handle[t] is None:  # never inside a transaction
                            dirty_pause = self.flusher.balance_dirty_pages(target)
                    self._file_ops += 1
                elif self._p_kind[pc] in _FILE_KINDS:
                    self._file_ops += 1
            elif rc == -ENOMEM:  # the system call fails: unwind the rest of it
                self._sys[t] = SYS_UNWIND
                self._unwinds += 1
        self._rc[pc] = rc
        self._outcome[pc] = outcome
        self._path_end(t, self.now + cost)
        sleep = penalty * NS_PER_JIFFY
        if (sleep or dirty_pause) and self._sig_seen[t]:  # killable sleeps return at once
            sleep = dirty_pause = 0
        self._throttle_ns += sleep
        self._dirty_pause_ns += dirty_pause
        self._dirty_pauses += dirty_pause > 0
        self._dpause[t] = dirty_pause
        sleep += dirty_pause
        self._sleep_from[t] = self.now + cost if sleep else -1
        self._sleep_until[t] = self.now + cost + sleep
        return self._delay_complete(t, cost + sleep)

    # =========================================================================================
    # D state, locks
    # =========================================================================================
    def _block(self, t: int, why: int) -> None:
        """t waits for a resource (``why``: a W_* reason): D state."""
        self._eng.block_task(t)
        self._mode[t] = M_BLOCKED
        self._token[t] += 1
        self._d_enter(t, why)

    def _d_enter(self, t: int, why: int) -> None:
        self._wait_of[t] = why
        self._d_since[t] = self.now
        self._n_d += 1
        n = self._n_d_by[why] + 1
        self._n_d_by[why] = n
        if n > self._d_peak_by[why]:
            self._d_peak_by[why] = n
        if self._n_d > self._d_peak:
            self._d_peak = self._n_d
            self._d_at_peak = list(self._n_d_by)

    def _d_leave(self, t: int) -> None:
        self._n_d -= 1
        why = self._wait_of[t]
        self._n_d_by[why] -= 1
        if t == self.flusher.pid:
            waited = self.now - self._d_since[t]
            self._f_jwait_ns += waited
            if waited > self._f_jwait_max:
                self._f_jwait_max = waited

    def _unblock(self, t: int, retry: bool) -> None:
        """Wake t; ``retry``: it runs its op again (journal_start), else the op completed
        (it was granted the lock).  A task killed while it slept exits now."""
        self._d_leave(t)
        self._mode[t] = M_READY
        self.locks.kwait[t] = None
        self._eng.wake_task(t)
        if int(self._tstate[t]) == _EXITED:
            self._usage_dirty = True
            if self._alive[t]:
                self._dead.append(t)
            return
        if t == self.flusher.pid:
            self.flusher.schedule(self.now)
            return
        if retry:
            self._mode[t] = M_READY
        else:
            self._mode[t] = M_DONE_OP
            self._rc[self._pc[t]] = 0
        self._schedule(t, self.now)

    # =========================================================================================
    # kernel threads and control ops
    # =========================================================================================
    def _dispatch_special(self, actor: int, arg: int) -> None:
        if actor == A_COMMIT_TIMER:
            self.journal.timer(arg)
        elif actor == A_COMMIT_DONE:
            self.journal.commit_done()
        elif actor == A_REAP_TIMER:
            self.reaper.fire(arg)
        elif actor == A_REAPER:
            self.reaper.run(arg)
        elif actor == A_CONTROL:
            self._control(arg)

    def _control(self, i: int) -> None:
        op = int(self._ctl["op"][i])
        target = int(self._ctl["task"][i])
        if op == Op.KILL and int(self._tstate[target]) == _EXITED:
            return
        self._tick_instant()
        s0 = self._stats.tolist()
        err, rc, outcome = self._replay_one(self._ctl, i, op)
        s1 = self._stats.tolist()
        if err:
            if self.strict:
                raise RuntimeError(f"control op {i} at t = {self.now} ns: {ERR_MESSAGES[err]}")
            self._op_errors += 1
            rc = -22
        self._ctl_rc[i] = rc
        self._ctl_outcome[i] = outcome
        if op == Op.SET_MAX:
            self._find_limited()
        self._usage_dirty = True
        self._after_engine(s0, s1, -1)
        if op == Op.KILL:
            self._deliver_signals()

    # =========================================================================================
    # deaths, victims
    # =========================================================================================
    def _after_engine(self, s0: list, s1: list, t: int) -> None:
        """Bookkeeping after an engine call made by t (-1: none)."""
        if s1[_S_OOM] != s0[_S_OOM] or s1[_S_KILL] != s0[_S_KILL]:
            self._scan_oom()
        if s1[_S_FLUSH] != s0[_S_FLUSH]:
            self.flusher.wake()
        if t >= 0:
            self._check_exit(t)

    def _check_exit(self, t: int) -> None:
        if self._alive[t] and int(self._tstate[t]) == _EXITED:
            self._usage_dirty = True
            self._dead.append(t)
            self._process_dead()

    def _scan_oom(self) -> None:
        """New OOM victims (reap timers; those that cannot exit) and tasks that exited."""
        st = self._st
        n = st.n_tasks
        state = self._tstate[:n]
        alive = self._alive
        for p in np.flatnonzero(state == _EXITED).tolist():
            if alive[p]:
                self._dead.append(p)
        for p in np.flatnonzero(st.oom_victim[:n]).tolist():
            if not self._victim_seen[p]:
                self._victim_seen[p] = True
                blocked = int(state[p]) == _BLOCKED
                self.oom_log.append((self.now, p, blocked))
                if blocked:
                    self._victims_unable += 1
        for p in np.flatnonzero(st.reap_queued[:n]).tolist():
            if not self._reap_seen[p]:
                self._reap_seen[p] = True
                self.reaper.arm(p)
        self._usage_dirty = True
        self._deliver_signals()
        if self._dead:
            self._process_dead()

    # ---- the task lifecycle: signals, unwinding, exit ------------------------------------------
    def _deliver_signals(self) -> None:
        """Act on fatal signals sent since the last look (OOM kills, KILL ops)."""
        st = self._st
        n = st.n_tasks
        for p in np.flatnonzero(st.sigkill[:n]).tolist():
            if self._sig_seen[p] or not self._alive[p]:
                continue
            self._sig_seen[p] = True
            self._signal(p)

    def _signal(self, p: int) -> None:
        """A fatal signal reached p.  In user space it exits now; in a killable wait the
        wait ends and its system call unwinds; in D state, or running kernel code, it runs
        on until it returns to user space (or sleeps killably)."""
        mode = self._mode[p]
        if p == self.flusher.pid or mode == M_DEAD or mode == M_EXITING or mode == M_PATH:
            return
        if mode == M_BLOCKED:
            sem = self.locks.kwait[p]
            if sem is not None:
                self._abort_killable_wait(p, sem)
            return
        pc = self._pc[p]
        if mode == M_DONE_OP:
            op = self._p_op[pc]
            if op == TOp.SLEEP:
                if self._sys[p] == SYS_USER:
                    self._rc[pc] = -EINTR
                    self._schedule(p, self.now)  # completes now, then exits in user space
                else:
                    self._token[p] += 1
                    self._interrupted(p, pc)
                    self._schedule(p, self.now)
            elif op == TOp.COMPUTE and self._sys[p] == SYS_USER:
                self._begin_exit(p)
            elif self._sleep_from[p] >= 0:  # a memory.high throttle sleep (killable)
                end = max(self.now, self._sleep_from[p])
                unslept = self._sleep_until[p] - end  # not slept: the dirty pause comes last
                cut = min(unslept, self._dpause[p])
                self._dirty_pause_ns -= cut
                self._throttle_ns -= unslept - cut
                self._schedule(p, end)
                self._sleep_from[p] = -1
            return
        if (mode == M_READY or mode == M_IDLE) and self._sys[p] == SYS_USER:
            self._begin_exit(p)

    def _interrupted(self, t: int, pc: int) -> int:
        """A killable wait of op pc ended by the fatal signal: -EINTR, unwind the call."""
        self._rc[pc] = -EINTR
        self._pc[t] = pc + 1
        self._mode[t] = M_READY
        self._sys[t] = SYS_UNWIND
        self._unwinds += 1
        return _CONTINUE

    def _abort_killable_wait(self, p: int, sem: RWSem) -> None:
        """rwsem_down_*_slowpath(TASK_KILLABLE) sees the signal: leave the queue, -EINTR."""
        locks = self.locks
        locks.wq_remove(sem, p)
        locks.kwait[p] = None
        self._d_leave(p)
        self._eng.wake_task(p)
        self._interrupted(p, self._pc[p])
        self._schedule(p, self.now)
        locks.rwsem_wake(sem)
        locks.mm_lock_update(sem)

    def _unwind_skip(self, t: int, pc: int, op: int) -> bool:
        """While unwinding, only releasing ops run: JOURNAL_STOP of a handle it holds,
        unlocks of locks it holds, flag-scope restores and ``SET_ACTIVE_MEMCG`` to none; the
        return to user space (or exit) ends the unwinding.  True if op pc is skipped."""
        if op == Op.RETURN_TO_USER or op == Op.EXIT:
            return False
        run = False
        if op == TOp.JOURNAL_STOP:
            if self._unw_js[t]:
                self._unw_js[t] -= 1
            else:
                run = self.journal.handle[t] is not None
        elif op == TOp.MUTEX_UNLOCK:
            run = self.locks.mutex_held_by(self._p_arg[pc], t)
        elif op == TOp.UP_READ or op == TOp.UP_WRITE:
            sem = self.locks.rwsem(t, self._p_arg[pc])
            run = sem.writer == t if op == TOp.UP_WRITE else t in sem.readers
        elif op == Op.FLAGS_RESTORE or op == Op.ACCOUNT_FORCE_RESTORE:
            if self._unw_saves[t]:
                self._unw_saves[t] -= 1
            else:
                run = self._st.scope_depth.item(t) > 0
        elif op == Op.SET_ACTIVE_MEMCG:
            run = self._p_memcg[pc] == -1
        elif op == Op.FLAGS_SAVE or op == Op.ACCOUNT_FORCE_SAVE:
            self._unw_saves[t] += 1
        elif op == TOp.JOURNAL_START:
            self._unw_js[t] += 1
        elif op == TOp.LOOP:
            self._loop_left[pc] = -2  # the call's remaining iterations are abandoned
        if run:
            return False
        self._pc[t] = pc + 1
        self._ops_skipped += 1
        return True

    def _program_end(self, t: int) -> None:
        """The end of a program returns to user space for good: idle, or exit if killed.
        (After a return to user space stopped as a livelock it stays where it is.)"""
        self._mode[t] = M_IDLE
        pc = self._pc[t] - 1
        if pc >= self._prog_of[t][0] and self._p_op[pc] == Op.RETURN_TO_USER \
                and self._sys[t] == SYS_KERNEL:
            return
        self._sys[t] = SYS_USER
        if self._st.sigkill.item(t):
            self._begin_exit(t)

    def _begin_exit(self, t: int) -> None:
        """do_exit(): PF_EXITING now; exit_mm() takes time when t is the mm's last user
        (exit_mmap frees its anon and mlocked pages: ``exit_page_ns`` each), then the pages
        are uncharged and the task is gone (_finish_exit).  The reaper may free the same
        mm meanwhile: whatever it freed is not freed again."""
        st = self._st
        if self._mode[t] == M_EXITING or not self._alive[t]:
            return
        if self._path[t] != P_NONE:
            self._path_end(t, self.now)
        st.flags[t] |= PF_EXITING
        mm = st.mm.item(t)
        cost = 0
        if st.has_mm.item(t) and st.mm_users.item(mm) == 1:
            cost = (st.owned.item(mm, int(PageKind.ANON))
                    + st.owned.item(mm, int(PageKind.UNEVICTABLE))) * self.costs.exit_page_ns
        self._mode[t] = M_EXITING
        self._exits += 1
        self._schedule(t, self.now + cost)

    def _finish_exit(self, t: int) -> None:
        if self.trace is not None:
            self.exit_log.append((self.now, t))
        self._eng.exit_task(t)
        self._usage_dirty = True
        self._check_exit(t)

    def _process_dead(self) -> None:
        """do_exit() in the scheduler: release what the dead tasks held."""
        while self._dead:
            t = self._dead.pop()
            if not self._alive[t]:
                continue
            self._alive[t] = False
            self._token[t] += 1
            self._mode[t] = M_DEAD
            if self._path[t] != P_NONE:
                self._path_end(t, self.now)
            self.journal.drop(t)
            locks = self.locks
            locks.release_all(t)
            sem = locks.mm_locks.get(int(self._st.mm[t]))
            if sem is not None:
                locks.wq_remove(sem, t)
