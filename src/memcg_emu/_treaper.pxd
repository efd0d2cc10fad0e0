# memcg_emu._treaper: mm/oom_kill.c's oom_reaper kthread for the compiled timed engine: a
# victim's timer fires OOM_REAPER_DELAY after its kill, fired victims go on a LIFO list, the
# reaper works on one at a time, MAX_OOM_REAP_RETRIES attempts HZ/10 apart, then
# MMF_OOM_SKIP (Python twin: _timed_ref/reaper.py, Reaper: sim.reaper).

from libc.stdint cimport int64_t

from memcg_emu._tbase cimport SchedBase
from memcg_emu._tqueue cimport ivec_t


cdef class Reaper:
    cdef SchedBase s
    cdef ivec_t fired  # oom_reaper_list (popped from the end)
    cdef int64_t cur, attempts, token, delay_ns, gave_up
    cdef object log

    # queue_oom_reaper(): arm victim p's timer
    cdef void arm(self, int64_t p) noexcept nogil
    # p's timer fired: onto the list; wake the reaper if idle
    cdef void fire(self, int64_t p) noexcept nogil
    # the reaper's event (stale unless `token` is current)
    cdef void run(self, int64_t token) noexcept nogil
    cdef void next(self) noexcept nogil
