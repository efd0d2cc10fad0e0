# memcg_emu._tjbd2: fs/jbd2 for the compiled timed engine: one journal, its running
# transaction, handles (per task, nesting by h_ref), the commit (T_LOCKED, drain, switch,
# commit I/O) and kjournald2's serial commits (Python twin: _timed_ref/jbd2.py, Journal:
# sim.journal).  Waiters of j_wait_transaction_locked are a FIFO through next[].

from libc.stdint cimport int64_t

from memcg_emu._tbase cimport SchedBase

cdef enum:  # states of the running transaction (timed.J_*)
    J_NONE = 0
    J_RUNNING = 1
    J_LOCKED = 2


cdef class Journal:
    cdef SchedBase s
    cdef int64_t state, tid, updates, blocks, handles, locked_since
    cdef bint committing  # kjournald2 is committing a transaction
    cdef bint request  # a commit of the running transaction was asked for meanwhile
    cdef int64_t head, tail
    cdef int64_t[::1] next
    cdef int64_t[::1] h_ref  # per task: handle references (0: no handle)
    cdef int64_t[::1] h_saved  # per task: what memalloc_flags_save() returned
    cdef int64_t commit_interval, max_blocks, max_handles, flags, commit_ns
    cdef int64_t locked_max, commits
    cdef object log

    cdef void _append(self, int64_t t) noexcept nogil  # onto j_wait_transaction_locked
    # start_this_handle(): 1 once t holds a handle, 0 if t now waits (D state), -1 error
    cdef int start(self, int64_t t, int64_t credits) noexcept nogil
    # jbd2_journal_stop(): 0, or -1 if the innermost flag scope is not the handle's
    cdef int stop(self, int64_t t) noexcept nogil
    cdef void handle_put(self) noexcept nogil
    # do_exit() with a handle open: drop it
    cdef void drop(self, int64_t t) noexcept nogil
    cdef void log_start_commit(self) noexcept nogil
    cdef void commit_lock(self) noexcept nogil
    cdef void commit_switch(self) noexcept nogil
    cdef void commit_done(self) noexcept nogil
    # the commit timer of transaction `tid` fired
    cdef void timer(self, int64_t tid) noexcept nogil
    cdef void jlog(self, int what) noexcept nogil
