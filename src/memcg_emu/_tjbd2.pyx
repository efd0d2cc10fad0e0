# memcg_emu._tjbd2: fs/jbd2/transaction.c: start_this_handle(), jbd2_journal_stop() and
# fs/jbd2/commit.c: jbd2_journal_commit_transaction() for the compiled timed engine.
# Line-by-line translation of _timed_ref/jbd2.py (contract: _tjbd2.pxd).

from libc.stdint cimport int64_t

import numpy as np

from memcg_emu._tbase cimport SchedBase, W_JOURNAL, A_COMMIT_TIMER, A_COMMIT_DONE, E_SCOPES

_EVENTS = ("open", "locked", "commit", "committed")
cdef enum:
    JL_OPEN = 0
    JL_LOCKED = 1
    JL_COMMIT = 2
    JL_COMMITTED = 3


cdef class Journal:
    """The journal of one TimedCore run."""

    def load(self, SchedBase s, sim):
        cdef int64_t n = len(sim._pc)
        j = sim.journal
        self.s = s
        jc = sim.journal_config
        self.commit_interval = jc.commit_interval_ns
        self.max_blocks = jc.max_transaction_blocks
        self.max_handles = jc.max_handles
        self.flags = j.flags
        self.commit_ns = sim.costs.journal_commit_ns
        self.log = sim.journal_log
        self.state = j.state
        self.tid = j.tid
        self.updates = j.updates
        self.blocks = j.blocks
        self.handles = j.handles
        self.locked_since = j.locked_since
        self.committing = j.committing
        self.request = j.request
        self.locked_max = j.locked_max
        self.commits = j.commits
        self.next = np.full(n, -1, np.int64)
        self.head = self.tail = -1
        for w in j.waiters:
            self._append(int(w))
        self.h_ref = np.array([0 if h is None else h[0] for h in j.handle],
                              dtype=np.int64).reshape(-1)
        self.h_saved = np.array([0 if h is None else h[1] for h in j.handle],
                                dtype=np.int64).reshape(-1)

    def store(self, sim):
        from collections import deque
        j = sim.journal
        j.state = self.state
        j.tid = self.tid
        j.updates = self.updates
        j.blocks = self.blocks
        j.handles = self.handles
        j.locked_since = self.locked_since
        j.committing = bool(self.committing)
        j.request = bool(self.request)
        j.locked_max = self.locked_max
        j.commits = self.commits
        waiters = []
        k = self.head
        while k >= 0:
            waiters.append(k)
            k = self.next[k]
        j.waiters = deque(waiters)
        j.handle = [[r, s] if r else None for r, s in
                    zip(np.asarray(self.h_ref).tolist(), np.asarray(self.h_saved).tolist())]
        self.s = None

    cdef void _append(self, int64_t t) noexcept nogil:
        self.next[t] = -1
        if self.tail >= 0:
            self.next[self.tail] = t
        else:
            self.head = t
        self.tail = t

    cdef int start(self, int64_t t, int64_t credits) noexcept nogil:
        cdef bint full
        cdef int64_t saved
        if self.h_ref[t]:  # nested: current->journal_info is set
            self.h_ref[t] += 1
            return 1
        if self.state == J_LOCKED:  # add_transaction_credits() -> wait_transaction_locked()
            self._append(t)
            self.s.block(t, W_JOURNAL)
            return 0
        if self.state == J_NONE:  # jbd2_get_transaction(): a new running transaction
            self.tid += 1
            self.state = J_RUNNING
            self.updates = 0
            self.blocks = 0
            self.handles = 0
            self.request = False
            self.s.push(self.s.now + self.commit_interval, A_COMMIT_TIMER, self.tid)
            self.jlog(JL_OPEN)
        full = ((self.max_blocks != 0 and self.blocks != 0
                 and self.blocks + credits > self.max_blocks)
                or (self.max_handles != 0 and self.handles >= self.max_handles))
        if full:  # wait on j_wait_transaction_locked first: the commit may switch at once
            self._append(t)
            self.s.block(t, W_JOURNAL)
            self.log_start_commit()
            return 0
        self.updates += 1
        self.handles += 1
        self.blocks += credits
        saved = self.s.eng.memalloc_flags_save(t, self.flags)
        if saved < 0:
            return self.s.fail(E_SCOPES, t, 0, 0)
        self.h_ref[t] = 1
        self.h_saved[t] = saved
        return 1

    cdef int stop(self, int64_t t) noexcept nogil:
        self.h_ref[t] -= 1
        if self.h_ref[t]:
            return 0
        if self.s.eng.memalloc_flags_restore(t, self.h_saved[t]) < 0:
            self.h_ref[t] += 1
            return -1
        self.h_saved[t] = 0
        self.handle_put()
        return 0

    cdef void handle_put(self) noexcept nogil:
        self.updates -= 1
        if self.state == J_LOCKED and self.updates == 0:
            self.commit_switch()

    cdef void drop(self, int64_t t) noexcept nogil:
        if self.h_ref[t]:
            self.h_ref[t] = 0
            self.h_saved[t] = 0
            self.handle_put()

    cdef void log_start_commit(self) noexcept nogil:
        # __jbd2_log_start_commit(): kjournald2 is serial; a request waits for the commit
        if self.state != J_RUNNING:
            return
        if self.committing:
            self.request = True
            return
        self.commit_lock()

    cdef void commit_lock(self) noexcept nogil:
        # jbd2_journal_commit_transaction(): T_LOCKED, then jbd2_journal_wait_updates()
        self.request = False
        self.state = J_LOCKED
        self.locked_since = self.s.now
        self.jlog(JL_LOCKED)
        if self.updates == 0:
            self.commit_switch()

    cdef void commit_switch(self) noexcept nogil:
        # the handles drained: T_FLUSH, j_running_transaction = NULL,
        # wake_up(j_wait_transaction_locked); the commit I/O takes journal_commit_ns
        cdef int64_t locked = self.s.now - self.locked_since
        cdef int64_t w, k
        if locked > self.locked_max:
            self.locked_max = locked
        self.state = J_NONE
        self.committing = True
        self.jlog(JL_COMMIT)
        self.s.push(self.s.now + self.commit_ns, A_COMMIT_DONE, self.tid)
        w = self.head
        self.head = self.tail = -1
        while w >= 0:
            k = self.next[w]
            self.next[w] = -1
            self.s.unblock(w, True)
            w = k

    cdef void commit_done(self) noexcept nogil:
        self.commits += 1
        self.committing = False
        self.jlog(JL_COMMITTED)
        if self.request and self.state == J_RUNNING:
            self.commit_lock()

    cdef void timer(self, int64_t tid) noexcept nogil:
        if tid == self.tid and self.state == J_RUNNING:
            self.log_start_commit()

    cdef void jlog(self, int what) noexcept nogil:
        if self.s.tracing:
            with gil:
                self.log.append((self.s.now, _EVENTS[what], self.tid))
