"""kernel/locking for the timed engine's Python scheduler (the twin of ``_tlocking``):
mutexes, rwsems and each mm's mmap_lock, with FIFO waiters.  What is modelled and what is
not: the mmap_lock, Locks and rwsem fairness items of :mod:`memcg_emu.timed`'s docstring.

A lock is an object (``Mutex``, ``RWSem``), made the first time a program op names it;
``held[t]`` lists what task t holds, ``(lock, is_write)`` in order of taking.  Granting a lock
to a waiter wakes it through the scheduler (``_unblock``: its op completed)."""
from collections import deque


class Mutex:
    __slots__ = ("owner", "waiters")

    def __init__(self):
        self.owner = -1
        self.waiters: deque = deque()


class RWSem:
    __slots__ = ("writer", "readers", "waiters", "mm_of")

    def __init__(self, mm_of: int = -1):
        self.writer = -1
        self.readers: dict[int, int] = {}
        self.waiters: deque = deque()  # (pid, is_write)
        self.mm_of = mm_of  # the mm whose mmap_lock this is, -1 for a plain rwsem


class Locks:
    """The locks of one TimedSim (``sim.locks``)."""

    def __init__(self, s):
        self.s = s  # the scheduler
        self.mutexes: dict[int, Mutex] = {}
        self.rwsems: dict[int, RWSem] = {}
        self.mm_locks: dict[int, RWSem] = {}  # mm -> its mmap_lock
        self.held: list[list] = []  # per task: [(lock, is_write)] in order of taking
        self.kwait: list = []  # per task: the mmap_lock of its killable wait, or None

    def grow(self, n: int) -> None:
        """Rows for tasks up to n."""
        while len(self.held) < n:
            self.held.append([])
            self.kwait.append(None)

    # ---- mutex ---------------------------------------------------------------------------
    def mutex_lock(self, lock_id: int, t: int) -> bool:
        """mutex_lock(): True if t took it; else t is queued (the caller blocks it)."""
        m = self.mutexes.get(lock_id)
        if m is None:
            m = self.mutexes[lock_id] = Mutex()
        if m.owner == -1 and not m.waiters:
            m.owner = t
            self.held[t].append((m, True))
            return True
        m.waiters.append(t)
        return False

    def mutex_held_by(self, lock_id: int, t: int) -> bool:
        m = self.mutexes.get(lock_id)
        return m is not None and m.owner == t

    # ---- rwsem, mmap_lock ----------------------------------------------------------------
    def rwsem(self, t: int, lock_id: int) -> RWSem:
        """rwsem ``lock_id``, or (-1) the mmap_lock of t's mm (shared by its threads)."""
        if lock_id == -1:
            mm = int(self.s._st.mm[t])
            sem = self.mm_locks.get(mm)
            if sem is None:
                sem = self.mm_locks[mm] = RWSem(mm_of=mm)
            return sem
        sem = self.rwsems.get(lock_id)
        if sem is None:
            sem = self.rwsems[lock_id] = RWSem()
        return sem

    def down_trylock(self, sem: RWSem, t: int, write: bool) -> bool:
        """down_read()/down_write()'s fast path: True if t took it."""
        if write:
            ok = sem.writer == -1 and not sem.readers and not sem.waiters
        else:
            ok = sem.writer == -1 and not sem.waiters
        if ok:
            self.rwsem_take(sem, t, write)
        return ok

    def down_wait(self, sem: RWSem, t: int, write: bool) -> None:
        """t queues for ``sem`` (the caller blocks it)."""
        sem.waiters.append((t, write))
        self.mm_lock_update(sem)

    def rwsem_take(self, sem: RWSem, t: int, write: bool) -> None:
        if write:
            sem.writer = t
        else:
            sem.readers[t] = sem.readers.get(t, 0) + 1
        self.held[t].append((sem, write))
        self.mm_lock_update(sem)

    def holds_mm(self, t: int, mm: int) -> bool:
        """t holds the mmap_lock of ``mm`` (any mode)."""
        sem = self.mm_locks.get(mm)
        return sem is not None and (sem.writer == t or t in sem.readers)

    def mm_lock_update(self, sem: RWSem) -> None:
        """mmap_read_trylock() (the reaper's) fails iff a writer holds it or anyone waits."""
        p = sem.mm_of
        st = self.s._st
        if p >= 0 and st.mm_users.item(p) > 0:
            st.mmap_locked[p] = 1 if (sem.writer != -1 or sem.waiters) else 0

    @staticmethod
    def wq_remove(sem: RWSem, t: int) -> None:
        """t leaves ``sem``'s queue (a killable wait interrupted, or t is dead)."""
        sem.waiters = deque(w for w in sem.waiters if w[0] != t)

    # ---- release ---------------------------------------------------------------------------
    def release(self, t: int, lock, write: bool) -> None:
        """t drops one hold of ``lock``; hand it to the waiters in FIFO order."""
        held = self.held[t]
        for i in range(len(held) - 1, -1, -1):
            if held[i][0] is lock and held[i][1] == write:
                del held[i]
                break
        if isinstance(lock, Mutex):
            lock.owner = -1
            if lock.waiters:
                w = lock.waiters.popleft()
                lock.owner = w
                self.held[w].append((lock, True))
                self.s._unblock(w, retry=False)
            return
        if write:
            lock.writer = -1
        else:
            n = lock.readers[t] - 1
            if n:
                lock.readers[t] = n
            else:
                del lock.readers[t]
        self.rwsem_wake(lock)

    def rwsem_wake(self, lock: RWSem) -> None:
        """Grant the rwsem to the head writer or the run of readers at the head."""
        unblock = self.s._unblock
        while lock.waiters:
            w, w_write = lock.waiters[0]
            if w_write:
                if lock.writer == -1 and not lock.readers:
                    lock.waiters.popleft()
                    self.rwsem_take(lock, w, True)
                    unblock(w, retry=False)
                break
            if lock.writer != -1:
                break
            lock.waiters.popleft()
            self.rwsem_take(lock, w, False)
            unblock(w, retry=False)
        self.mm_lock_update(lock)

    def release_all(self, t: int) -> None:
        """do_exit(): release everything t holds, in reverse order of taking."""
        for lock, write in reversed(list(self.held[t])):
            self.release(t, lock, write)
        self.held[t] = []
