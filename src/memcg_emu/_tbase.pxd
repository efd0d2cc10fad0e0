# memcg_emu._tbase: what the timed subsystems may ask of the scheduler (kernel/sched), at the
# bottom of the compiled timed engine so that no subsystem cimports the scheduler (no cycles).
#
# _tsched.TimedCore implements every method; the subsystems (_tlocking, _tjbd2, _twriteback,
# _treaper) hold a SchedBase and call through its vtable.  The fields are the machine-wide
# state every subsystem reads: the engine, the clock, per-task mode and wake-up token.

from libc.stdint cimport int64_t

from memcg_emu._core cimport Engine

# the timed op codes (timed.TOp): the program interpreter's and the lock ops
cdef enum:
    T_COMPUTE = 32
    T_SLEEP = 33
    T_MUTEX_LOCK = 34
    T_MUTEX_UNLOCK = 35
    T_DOWN_READ = 36
    T_UP_READ = 37
    T_DOWN_WRITE = 38
    T_UP_WRITE = 39
    T_JOURNAL_START = 40
    T_JOURNAL_STOP = 41
    T_DIRTY = 42
    T_LOOP = 43

# what a task in D state waits on (timed.W_*; d_state_peak_by_wait)
cdef enum:
    W_JOURNAL = 0
    W_MMAP_LOCK = 1
    W_RWSEM = 2
    W_MUTEX = 3
    W_RECLAIM = 4
    NR_WAITS = 5
    # scheduler modes of a task (timed.M_*)
    M_IDLE = 0
    M_READY = 1
    M_PATH = 2
    M_DONE_OP = 3
    M_BLOCKED = 4
    M_DEAD = 5
    M_EXITING = 6
    # special actors of the event queue (tasks are >= 0; timed.A_*)
    A_COMMIT_TIMER = -1
    A_COMMIT_DONE = -2
    A_REAPER = -3
    A_REAP_TIMER = -4
    A_CONTROL = -5
    NS_PER_SEC = 1000000000
    NS_PER_JIFFY = 1000000
    # errors that stop a run (TimedCore.run() words them as the twin does)
    E_INSTANT = 1  # too many ops/steps at one instant
    E_SAMPLES = 2  # the sample buffer is full (cannot happen after the run's bound check)
    E_SCOPES = 3  # journal_start with too many nested flag scopes (a: task)
    E_UNHANDLED = 4  # an op code no handler takes (a: op)
    E_CONTROL = 5  # strict: a control op the state refuses (a: index, b: events.ERR_*)
    E_OP = 6  # strict: a program op impossible when it runs (a: task, b: pc, c: what)
    E_NOMEM = 7  # an allocation of the compiled engine failed (MemoryError)


cdef class SchedBase:
    cdef Engine eng
    cdef int64_t now
    cdef bint tracing
    cdef int64_t n_tasks
    cdef int64_t[::1] mode
    cdef int64_t[::1] token
    cdef bint usage_dirty  # usage may have changed: re-evaluate the over-max figures
    cdef bint alloc_failed  # a subsystem's allocation failed: the loop stops (E_NOMEM)

    # push an event (time, seq, actor, arg); seq grows with every push
    cdef void push(self, int64_t when, int64_t actor, int64_t arg) noexcept nogil
    # (re)schedule task t at max(when, now); its older queue entries become stale
    cdef void schedule(self, int64_t t, int64_t when) noexcept nogil
    # t waits (D state, engine block_task) for `why` (W_*)
    cdef void block(self, int64_t t, int64_t why) noexcept nogil
    # wake t: retry its op (journal_start), or its op completed (it was granted the lock)
    cdef void unblock(self, int64_t t, bint retry) noexcept nogil
    # one more op/step at this instant: -1 past max_ops_per_instant (an error is recorded)
    cdef int tick_instant(self) noexcept nogil
    # record error `code` (E_* of _tbase) with its values; returns -1.  The loop stops and
    # TimedCore.run() raises after leaving nogil (docs/style.md items 15-16)
    cdef int fail(self, int code, int64_t a, int64_t b, int64_t c) noexcept nogil
