# memcg_emu._twriteback: writeback for the compiled timed engine: the flusher kthread
# (fs/fs-writeback.c: wb_workfn(), a journal handle per batch) and the crude
# mm/page-writeback.c: balance_dirty_pages() (Python twin: _timed_ref/writeback.py, Flusher:
# sim.flusher).

from libc.stdint cimport int64_t

from memcg_emu._tbase cimport SchedBase
from memcg_emu._tjbd2 cimport Journal


cdef class Flusher:
    cdef SchedBase s
    cdef Journal j
    cdef int64_t pid  # the flusher kthread, -1 without one
    cdef int64_t interval, batch, credits, dirty_ratio, dirty_pause, page_ns, n_cg
    cdef bint idle
    cdef bint io_set  # a batch is under writeback: (io_m, io_n)
    cdef int64_t io_m, io_n, cursor, next_tick, pages
    cdef object log

    # nothing to write: sleep until the next periodic wake-up (or a reclaim wake-up)
    cdef void sleep(self) noexcept nogil
    # wakeup_flusher_threads() (direct reclaim, dirty throttling)
    cdef void wake(self) noexcept nogil
    # one activation of wb_workfn: write batches until nothing is dirty
    cdef int work(self) noexcept nogil  # -1: an error stops the run
    cdef int64_t pick_dirty_memcg(self) noexcept nogil
    # the pause owed after dirtying pages of memcg m (0: none)
    cdef int64_t balance_dirty_pages(self, int64_t m) noexcept nogil
