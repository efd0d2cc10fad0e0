# memcg_emu._tbase: the scheduler interface of the compiled timed subsystems (_tbase.pxd).
# Every method is overridden by _tsched.TimedCore; these bodies are never run.

from libc.stdint cimport int64_t


cdef class SchedBase:
    cdef void push(self, int64_t when, int64_t actor, int64_t arg) noexcept nogil:
        pass

    cdef void schedule(self, int64_t t, int64_t when) noexcept nogil:
        pass

    cdef void block(self, int64_t t, int64_t why) noexcept nogil:
        pass

    cdef void unblock(self, int64_t t, bint retry) noexcept nogil:
        pass

    cdef int tick_instant(self) noexcept nogil:
        return 0

    cdef int fail(self, int code, int64_t a, int64_t b, int64_t c) noexcept nogil:
        return -1
