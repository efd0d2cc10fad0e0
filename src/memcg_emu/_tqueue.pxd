# memcg_emu._tqueue: the timed scheduler's event queue (a binary min-heap of (time, seq,
# actor, arg) ordered by (time, seq), as timed.py's heapq of tuples: seq is unique, so the
# pop order is the same whatever the layout) and a growable int64 stack.  Header only.
# An allocation failure drops the push and sets the structure's ``failed``: the scheduler's
# loop checks it after every event and stops with E_NOMEM (MemoryError from Python).

from libc.stdint cimport int64_t
from libc.stdlib cimport free, realloc


cdef struct hent_t:
    int64_t when
    int64_t seq
    int64_t actor
    int64_t arg


cdef struct heap_t:
    hent_t* d
    int64_t n
    int64_t cap
    bint failed  # a push found no memory (and was dropped)


cdef struct ivec_t:
    int64_t* d
    int64_t n
    int64_t cap
    bint failed  # a push found no memory (and was dropped)


cdef inline bint _hless(const hent_t* a, const hent_t* b) noexcept nogil:
    return a.when < b.when or (a.when == b.when and a.seq < b.seq)


cdef inline void heap_push(heap_t* h, int64_t when, int64_t seq, int64_t actor,
                           int64_t arg) noexcept nogil:
    cdef int64_t i, parent
    cdef hent_t e
    cdef hent_t* d
    cdef int64_t cap
    if h.n == h.cap:
        cap = h.cap * 2 if h.cap else 1024
        d = <hent_t*>realloc(h.d, cap * sizeof(hent_t))
        if d == NULL:
            h.failed = True
            return
        h.d = d
        h.cap = cap
    e.when = when
    e.seq = seq
    e.actor = actor
    e.arg = arg
    i = h.n
    h.n += 1
    while i > 0:
        parent = (i - 1) >> 1
        if not _hless(&e, &h.d[parent]):
            break
        h.d[i] = h.d[parent]
        i = parent
    h.d[i] = e


cdef inline hent_t heap_pop(heap_t* h) noexcept nogil:
    cdef hent_t top = h.d[0]
    cdef hent_t last
    cdef int64_t i = 0, child, n
    h.n -= 1
    n = h.n
    if n > 0:
        last = h.d[n]
        while True:
            child = 2 * i + 1
            if child >= n:
                break
            if child + 1 < n and _hless(&h.d[child + 1], &h.d[child]):
                child += 1
            if not _hless(&h.d[child], &last):
                break
            h.d[i] = h.d[child]
            i = child
        h.d[i] = last
    return top


cdef inline void heap_free(heap_t* h) noexcept nogil:
    free(h.d)
    h.d = NULL
    h.n = h.cap = 0
    h.failed = False


cdef inline void ivec_push(ivec_t* v, int64_t x) noexcept nogil:
    cdef int64_t* d
    cdef int64_t cap
    if v.n == v.cap:
        cap = v.cap * 2 if v.cap else 64
        d = <int64_t*>realloc(v.d, cap * sizeof(int64_t))
        if d == NULL:
            v.failed = True
            return
        v.d = d
        v.cap = cap
    v.d[v.n] = x
    v.n += 1


cdef inline int64_t ivec_pop(ivec_t* v) noexcept nogil:
    v.n -= 1
    return v.d[v.n]


cdef inline void ivec_free(ivec_t* v) noexcept nogil:
    free(v.d)
    v.d = NULL
    v.n = v.cap = 0
    v.failed = False
