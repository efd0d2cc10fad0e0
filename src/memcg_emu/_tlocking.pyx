# memcg_emu._tlocking: kernel/locking (mutex, rwsem, mmap_lock) of the compiled timed engine.
# Line-by-line translation of _timed_ref/locking.py (contract: _tlocking.pxd).

from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc, realloc

import numpy as np

from memcg_emu._tbase cimport (SchedBase, T_DOWN_READ, T_DOWN_WRITE, T_MUTEX_LOCK,
                               T_MUTEX_UNLOCK, T_UP_READ, T_UP_WRITE)


cdef class Locks:
    """The locks of one TimedCore run (load/store translate the twin's lock objects)."""

    def __cinit__(self):
        self.held = NULL
        self.held_n = NULL
        self.held_cap = NULL
        self.held_rows = 0

    def __dealloc__(self):
        self._free_held()

    cdef void _free_held(self):
        cdef int64_t t
        if self.held != NULL:
            for t in range(self.held_rows):
                free(self.held[t])
            free(self.held)
        free(self.held_n)
        free(self.held_cap)
        self.held = NULL
        self.held_n = NULL
        self.held_cap = NULL
        self.held_rows = 0

    def load(self, SchedBase s, sim, p_op, p_arg):
        """Take the twin's locks; returns the lock index of each program row (-1: none, or
        the task's own mmap_lock, resolved when the op runs)."""
        cdef int64_t t, lk, n = len(sim._pc)
        L = sim.locks
        self.s = s
        self.n_tasks = n
        op = np.asarray(p_op)
        arg = np.asarray(p_arg)
        is_mutex = (op == T_MUTEX_LOCK) | (op == T_MUTEX_UNLOCK)
        is_rw = ((op == T_DOWN_READ) | (op == T_UP_READ) | (op == T_DOWN_WRITE)
                 | (op == T_UP_WRITE)) & (arg >= 0)
        mutex_ids = np.unique(np.concatenate(
            [arg[is_mutex], np.array(sorted(L.mutexes), dtype=np.int64)])).astype(np.int64)
        rw_ids = np.unique(np.concatenate(
            [arg[is_rw], np.array(sorted(L.rwsems), dtype=np.int64)])).astype(np.int64)
        self.ids = (mutex_ids, rw_ids)
        self.n_mutex = len(mutex_ids)
        self.n_rwsem = len(rw_ids)
        self.mm_base = self.n_mutex + self.n_rwsem
        self.n_locks = self.mm_base + n
        p_lock = np.full(len(op), -1, np.int64)
        p_lock[is_mutex] = np.searchsorted(mutex_ids, arg[is_mutex])
        p_lock[is_rw] = self.n_mutex + np.searchsorted(rw_ids, arg[is_rw])
        self.owner = np.full(self.n_locks, -1, np.int64)
        self.rcount = np.zeros(self.n_locks, np.int64)
        self.head = np.full(self.n_locks, -1, np.int64)
        self.tail = np.full(self.n_locks, -1, np.int64)
        self.exists = np.zeros(self.n_locks, np.int64)
        self.wnext = np.full(n, -1, np.int64)
        self.wwrite = np.zeros(n, np.int64)
        self.kwait = np.full(n, -1, np.int64)
        index = {}
        for key, m in L.mutexes.items():
            lk = int(np.searchsorted(mutex_ids, key))
            index[id(m)] = lk
            self.exists[lk] = 1
            self.owner[lk] = m.owner
            for w in m.waiters:
                self.wq_append(lk, int(w))
        for base, ids, d in ((self.n_mutex, rw_ids, L.rwsems), (self.mm_base, None,
                                                                 L.mm_locks)):
            for key, sem in d.items():
                lk = base + (int(np.searchsorted(ids, key)) if ids is not None else int(key))
                index[id(sem)] = lk
                self.exists[lk] = 1
                self.owner[lk] = sem.writer
                self.rcount[lk] = sum(sem.readers.values())
                for w, wr in sem.waiters:
                    self.wq_append(lk, int(w))
                    self.wwrite[w] = bool(wr)
        self._free_held()
        self.held = <int64_t**>malloc(max(n, 1) * sizeof(int64_t*))
        self.held_n = <int64_t*>malloc(max(n, 1) * sizeof(int64_t))
        self.held_cap = <int64_t*>malloc(max(n, 1) * sizeof(int64_t))
        if self.held == NULL or self.held_n == NULL or self.held_cap == NULL:
            raise MemoryError()
        self.held_rows = n
        for t in range(n):
            self.held[t] = NULL
            self.held_n[t] = 0
            self.held_cap[t] = 0
        for t in range(n):
            for lock, write in L.held[t]:
                self.held_push(t, index[id(lock)], bool(write))
            k = L.kwait[t]
            if k is not None:
                self.kwait[t] = index[id(k)]
        return p_lock

    def store(self, sim):
        """Remake the twin's lock objects, holders, waiters and killable waits."""
        cdef int64_t t, i, lk, k, e
        from collections import deque
        from ._timed_ref.locking import Mutex, RWSem
        mutex_ids, rw_ids = self.ids
        readers = {}
        for t in range(self.n_tasks):
            for i in range(self.held_n[t]):
                e = self.held[t][i]
                if not (e & 1) and (e >> 1) >= self.n_mutex:
                    d = readers.setdefault(e >> 1, {})
                    d[t] = d.get(t, 0) + 1
        objs = {}
        mutexes, rwsems, mm_locks = {}, {}, {}
        for lk in range(self.n_locks):
            if not self.exists[lk]:
                continue
            waiters = []
            k = self.head[lk]
            while k >= 0:
                waiters.append(k)
                k = self.wnext[k]
            if lk < self.n_mutex:
                obj = Mutex()
                obj.owner = self.owner[lk]
                obj.waiters = deque(waiters)
                mutexes[int(mutex_ids[lk])] = obj
            else:
                mm = lk >= self.mm_base
                obj = RWSem(mm_of=lk - self.mm_base if mm else -1)
                obj.writer = self.owner[lk]
                obj.readers = readers.get(lk, {})
                obj.waiters = deque((w, bool(self.wwrite[w])) for w in waiters)
                if mm:
                    mm_locks[lk - self.mm_base] = obj
                else:
                    rwsems[int(rw_ids[lk - self.n_mutex])] = obj
            objs[lk] = obj
        L = sim.locks
        L.mutexes = mutexes
        L.rwsems = rwsems
        L.mm_locks = mm_locks
        L.held = [[(objs[self.held[t][i] >> 1], bool(self.held[t][i] & 1))
                      for i in range(self.held_n[t])] for t in range(self.n_tasks)]
        L.kwait = [objs[k] if k >= 0 else None for k in np.asarray(self.kwait).tolist()]
        self.s = None

    cdef int64_t mm_lock(self, int64_t mm) noexcept nogil:
        return self.mm_base + mm

    cdef int64_t touch(self, int64_t lk) noexcept nogil:
        self.exists[lk] = 1
        return lk

    cdef bint reads(self, int64_t t, int64_t lk) noexcept nogil:
        cdef int64_t i, e = lk * 2
        for i in range(self.held_n[t]):
            if self.held[t][i] == e:
                return True
        return False

    cdef bint holds_mm(self, int64_t t, int64_t mm) noexcept nogil:
        cdef int64_t lk = self.mm_base + mm
        if not self.exists[lk]:
            return False
        return self.owner[lk] == t or self.reads(t, lk)

    cdef void held_push(self, int64_t t, int64_t lk, bint write) noexcept nogil:
        cdef int64_t* d
        cdef int64_t cap
        if self.held_n[t] == self.held_cap[t]:
            cap = self.held_cap[t] * 2 if self.held_cap[t] else 4
            d = <int64_t*>realloc(self.held[t], cap * sizeof(int64_t))
            if d == NULL:
                self.s.alloc_failed = True  # the loop stops after this event (E_NOMEM)
                return
            self.held[t] = d
            self.held_cap[t] = cap
        self.held[t][self.held_n[t]] = lk * 2 + write
        self.held_n[t] += 1

    cdef void held_remove(self, int64_t t, int64_t lk, bint write) noexcept nogil:
        cdef int64_t i, j, e = lk * 2 + write
        cdef int64_t* h = self.held[t]
        for i in range(self.held_n[t] - 1, -1, -1):
            if h[i] == e:
                for j in range(i, self.held_n[t] - 1):
                    h[j] = h[j + 1]
                self.held_n[t] -= 1
                return

    cdef void wq_append(self, int64_t lk, int64_t t) noexcept nogil:
        self.wnext[t] = -1
        if self.tail[lk] >= 0:
            self.wnext[self.tail[lk]] = t
        else:
            self.head[lk] = t
        self.tail[lk] = t

    cdef int64_t wq_popleft(self, int64_t lk) noexcept nogil:
        cdef int64_t t = self.head[lk]
        self.head[lk] = self.wnext[t]
        if self.head[lk] < 0:
            self.tail[lk] = -1
        self.wnext[t] = -1
        return t

    cdef void wq_remove(self, int64_t lk, int64_t t) noexcept nogil:
        cdef int64_t prev = -1, k = self.head[lk]
        while k >= 0:
            if k == t:
                if prev < 0:
                    self.head[lk] = self.wnext[k]
                else:
                    self.wnext[prev] = self.wnext[k]
                if self.tail[lk] == k:
                    self.tail[lk] = prev
                self.wnext[k] = -1
                return
            prev = k
            k = self.wnext[k]

    cdef bint mutex_lock(self, int64_t lk, int64_t t) noexcept nogil:
        self.exists[lk] = 1
        if self.owner[lk] == -1 and self.head[lk] < 0:
            self.owner[lk] = t
            self.held_push(t, lk, True)
            return True
        self.wq_append(lk, t)
        return False

    cdef bint mutex_held_by(self, int64_t lk, int64_t t) noexcept nogil:
        return self.exists[lk] and self.owner[lk] == t

    cdef bint down_trylock(self, int64_t lk, int64_t t, bint write) noexcept nogil:
        cdef bint ok
        if write:
            ok = self.owner[lk] == -1 and self.rcount[lk] == 0 and self.head[lk] < 0
        else:
            ok = self.owner[lk] == -1 and self.head[lk] < 0
        if ok:
            self.rwsem_take(lk, t, write)
        return ok

    cdef void down_wait(self, int64_t lk, int64_t t, bint write) noexcept nogil:
        self.wq_append(lk, t)
        self.wwrite[t] = write
        self.mm_lock_update(lk)

    cdef void rwsem_take(self, int64_t lk, int64_t t, bint write) noexcept nogil:
        if write:
            self.owner[lk] = t
        else:
            self.rcount[lk] += 1
        self.held_push(t, lk, write)
        self.mm_lock_update(lk)

    cdef void mm_lock_update(self, int64_t lk) noexcept nogil:
        cdef int64_t p
        if lk < self.mm_base:
            return
        p = lk - self.mm_base
        if self.s.eng.mm_users[p] > 0:
            self.s.eng.mmap_locked[p] = 1 if (self.owner[lk] != -1 or self.head[lk] >= 0) else 0

    cdef void release(self, int64_t t, int64_t lk, bint write) noexcept nogil:
        cdef int64_t w
        self.held_remove(t, lk, write)
        if lk < self.n_mutex:
            self.owner[lk] = -1
            if self.head[lk] >= 0:
                w = self.wq_popleft(lk)
                self.owner[lk] = w
                self.held_push(w, lk, True)
                self.s.unblock(w, False)
            return
        if write:
            self.owner[lk] = -1
        else:
            self.rcount[lk] -= 1
        self.rwsem_wake(lk)

    cdef void rwsem_wake(self, int64_t lk) noexcept nogil:
        cdef int64_t w
        while self.head[lk] >= 0:
            w = self.head[lk]
            if self.wwrite[w]:
                if self.owner[lk] == -1 and self.rcount[lk] == 0:
                    self.wq_popleft(lk)
                    self.rwsem_take(lk, w, True)
                    self.s.unblock(w, False)
                break
            if self.owner[lk] != -1:
                break
            self.wq_popleft(lk)
            self.rwsem_take(lk, w, False)
            self.s.unblock(w, False)
        self.mm_lock_update(lk)

    cdef void release_all(self, int64_t t) noexcept nogil:
        cdef int64_t i, e, n = self.held_n[t]
        cdef int64_t* copy
        if n:
            copy = <int64_t*>malloc(n * sizeof(int64_t))
            if copy == NULL:
                self.s.alloc_failed = True  # the loop stops after this event (E_NOMEM)
                return
            for i in range(n):
                copy[i] = self.held[t][i]
            for i in range(n - 1, -1, -1):
                e = copy[i]
                self.release(t, e >> 1, e & 1)
            free(copy)
        self.held_n[t] = 0
