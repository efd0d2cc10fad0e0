# memcg_emu._twriteback: the flusher kthread (wb_workfn) and balance_dirty_pages() of the
# compiled timed engine.  Line-by-line translation of _timed_ref/writeback.py (contract:
# _twriteback.pxd).

from libc.stdint cimport int64_t

from memcg_emu._core cimport FILE, FILE_DIRTY, FILE_WRITEBACK
from memcg_emu._tbase cimport SchedBase, M_READY
from memcg_emu._tjbd2 cimport Journal

cdef int64_t PAGE_COUNTER_MAX = 2251799813685247  # LONG_MAX / PAGE_SIZE


cdef class Flusher:
    """The flusher of one TimedCore run."""

    def load(self, SchedBase s, Journal j, sim):
        fl = sim.flusher
        self.s = s
        self.j = j
        fc = sim.flusher_config
        self.pid = fl.pid
        self.interval = fc.interval_ns
        self.batch = fc.batch_pages
        self.credits = fc.credits
        self.dirty_ratio = fc.dirty_ratio
        self.dirty_pause = fc.dirty_pause_ns
        self.page_ns = sim.costs.writeback_page_ns
        self.n_cg = sim._n_cg
        self.log = sim.flusher_log
        self.idle = fl.idle
        self.io_set = fl.io is not None
        self.io_m, self.io_n = fl.io if fl.io is not None else (0, 0)
        self.cursor = fl.cursor
        self.next_tick = fl.next_tick
        self.pages = fl.pages

    def store(self, sim):
        fl = sim.flusher
        fl.idle = bool(self.idle)
        fl.io = (self.io_m, self.io_n) if self.io_set else None
        fl.cursor = self.cursor
        fl.next_tick = self.next_tick
        fl.pages = self.pages
        self.s = None
        self.j = None

    cdef void sleep(self) noexcept nogil:
        self.idle = True
        while self.next_tick <= self.s.now:
            self.next_tick += self.interval
        self.s.schedule(self.pid, self.next_tick)

    cdef void wake(self) noexcept nogil:
        if self.pid >= 0 and self.idle:
            self.idle = False
            self.s.schedule(self.pid, self.s.now)

    cdef int work(self) noexcept nogil:
        cdef int64_t f = self.pid, m, n, wb, delay
        cdef int r
        self.idle = False
        self.s.mode[f] = M_READY
        while True:
            if self.s.tick_instant() < 0:
                return -1
            if self.io_set:  # end_page_writeback of the last batch
                m = self.io_m
                n = self.io_n
                self.io_set = False
                wb = self.s.eng.pool[m, FILE_WRITEBACK]
                if wb < n:
                    n = wb
                if n:
                    self.s.eng.emu_move_pages(m, FILE_WRITEBACK, FILE, n)
                    self.pages += n
                    if self.s.tracing:
                        with gil:
                            self.log.append((self.s.now, m, n))
            m = self.pick_dirty_memcg()
            if m < 0:
                self.sleep()
                return 0
            r = self.j.start(f, self.credits)
            if r <= 0:
                return r  # D state until the commit switches; then this runs again
            n = self.s.eng.pool[m, FILE_DIRTY]
            if self.batch < n:
                n = self.batch
            if n:
                self.s.eng.emu_move_pages(m, FILE_DIRTY, FILE_WRITEBACK, n)
            self.j.stop(f)
            if n:
                self.io_set = True
                self.io_m = m
                self.io_n = n
                delay = n * self.page_ns
                if delay:
                    self.s.schedule(f, self.s.now + delay)
                    return 0

    cdef int64_t pick_dirty_memcg(self) noexcept nogil:
        # round-robin over the cgroups with dirty pages
        cdef int64_t c, first = -1, m = -1
        for c in range(self.n_cg):
            if self.s.eng.pool[c, FILE_DIRTY] > 0:
                if first < 0:
                    first = c
                if c > self.cursor:
                    m = c
                    break
        if first < 0:
            return -1
        if m < 0:
            m = first
        self.cursor = m
        return m

    cdef int64_t balance_dirty_pages(self, int64_t m) noexcept nogil:
        cdef int64_t mx = self.s.eng.max[m], dirty, avail, head
        if not self.dirty_ratio or mx >= PAGE_COUNTER_MAX:
            return 0
        dirty = self.s.eng.pool[m, FILE_DIRTY] + self.s.eng.pool[m, FILE_WRITEBACK]
        head = mx - self.s.eng.usage[m]
        avail = self.s.eng.pool[m, FILE] + dirty + (head if head > 0 else 0)
        if 100 * dirty <= self.dirty_ratio * avail:
            return 0
        self.wake()
        return self.dirty_pause
