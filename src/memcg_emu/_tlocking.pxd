# memcg_emu._tlocking: kernel/locking for the compiled timed engine: mutexes, rwsems and each
# mm's mmap_lock, with FIFO waiters (Python twin: _timed_ref/locking.py, Locks: sim.locks).
#
# Locks are indexed [mutex ids][rwsem ids][one mmap_lock per mm row] (the ids the programs
# and the twin's state name, sorted).  A task waits on at most one thing at a time, so each
# queue is an intrusive singly linked list through wnext[] (no allocation); held[t] is the
# stack of what t holds, lock * 2 + write, in order of taking.  Granting a lock to a waiter
# calls SchedBase.unblock (its op completed).

from libc.stdint cimport int64_t

from memcg_emu._tbase cimport SchedBase


cdef class Locks:
    cdef SchedBase s
    cdef int64_t n_mutex, n_rwsem, mm_base, n_locks, n_tasks
    cdef int64_t[::1] owner  # mutex owner / rwsem writer, -1 none
    cdef int64_t[::1] rcount  # rwsem read holds (all readers)
    cdef int64_t[::1] head, tail  # FIFO waiters
    cdef int64_t[::1] exists  # the twin has made this lock object (store() remakes it)
    cdef int64_t[::1] wnext, wwrite  # per task: next waiter, waits for write
    cdef int64_t[::1] kwait  # per task: the mmap_lock of its killable wait, -1 none
    cdef int64_t** held
    cdef int64_t* held_n
    cdef int64_t* held_cap
    cdef int64_t held_rows
    cdef object ids  # (mutex ids, rwsem ids)

    cdef void _free_held(self)
    cdef int64_t mm_lock(self, int64_t mm) noexcept nogil
    cdef int64_t touch(self, int64_t lk) noexcept nogil
    cdef bint reads(self, int64_t t, int64_t lk) noexcept nogil
    cdef bint holds_mm(self, int64_t t, int64_t mm) noexcept nogil
    cdef void held_push(self, int64_t t, int64_t lk, bint write) noexcept nogil
    cdef void held_remove(self, int64_t t, int64_t lk, bint write) noexcept nogil
    cdef void wq_append(self, int64_t lk, int64_t t) noexcept nogil
    cdef int64_t wq_popleft(self, int64_t lk) noexcept nogil
    cdef void wq_remove(self, int64_t lk, int64_t t) noexcept nogil
    # mutex_lock(): True if t took it; else t is queued (the caller blocks it)
    cdef bint mutex_lock(self, int64_t lk, int64_t t) noexcept nogil
    cdef bint mutex_held_by(self, int64_t lk, int64_t t) noexcept nogil
    # down_read()/down_write() fast path: True if t took it
    cdef bint down_trylock(self, int64_t lk, int64_t t, bint write) noexcept nogil
    cdef void down_wait(self, int64_t lk, int64_t t, bint write) noexcept nogil
    cdef void rwsem_take(self, int64_t lk, int64_t t, bint write) noexcept nogil
    # mmap_read_trylock() (the reaper's) fails iff a writer holds it or anyone waits
    cdef void mm_lock_update(self, int64_t lk) noexcept nogil
    # t drops one hold; the lock goes to the waiters in FIFO order
    cdef void release(self, int64_t t, int64_t lk, bint write) noexcept nogil
    cdef void rwsem_wake(self, int64_t lk) noexcept nogil
    # do_exit(): release everything t holds, in reverse order of taking
    cdef void release_all(self, int64_t t) noexcept nogil
