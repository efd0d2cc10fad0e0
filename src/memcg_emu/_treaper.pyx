# memcg_emu._treaper: the oom_reaper kthread of the compiled timed engine.  Line-by-line
# translation of _timed_ref/reaper.py (contract: _treaper.pxd).

from libc.stdint cimport int64_t

from memcg_emu._core cimport MAX_OOM_REAP_RETRIES
from memcg_emu._tbase cimport SchedBase, A_REAPER, A_REAP_TIMER, NS_PER_SEC
from memcg_emu._tqueue cimport ivec_free, ivec_pop, ivec_push


cdef class Reaper:
    """The OOM reaper of one TimedCore run."""

    def __dealloc__(self):
        ivec_free(&self.fired)

    def load(self, SchedBase s, sim):
        rp = sim.reaper
        self.s = s
        self.delay_ns = rp.delay_ns
        self.log = sim.reaper_log
        ivec_free(&self.fired)
        for p in rp.fired:
            ivec_push(&self.fired, p)
        self.cur = rp.cur
        self.attempts = rp.attempts
        self.token = rp.token
        self.gave_up = rp.gave_up

    def store(self, sim):
        rp = sim.reaper
        rp.fired = [self.fired.d[i] for i in range(self.fired.n)]
        rp.cur = self.cur
        rp.attempts = self.attempts
        rp.token = self.token
        rp.gave_up = self.gave_up
        self.s = None

    cdef void arm(self, int64_t p) noexcept nogil:
        self.s.push(self.s.now + self.delay_ns, A_REAP_TIMER, p)

    cdef void fire(self, int64_t p) noexcept nogil:
        ivec_push(&self.fired, p)
        if self.cur < 0:
            self.token += 1
            self.s.push(self.s.now, A_REAPER, self.token)

    cdef void run(self, int64_t token) noexcept nogil:
        # oom_reaper(): oom_reap_task() on one victim at a time
        cdef int64_t t, freed
        if token != self.token:
            return
        if self.cur < 0:
            if not self.fired.n:
                return
            self.cur = ivec_pop(&self.fired)  # oom_reaper_list is LIFO
            self.attempts = 0
        t = self.cur
        if self.attempts < MAX_OOM_REAP_RETRIES:
            self.attempts += 1
            freed = self.s.eng.oom_reap_task(t, False)
            if self.s.tracing:
                with gil:
                    self.log.append((self.s.now, t, self.attempts, freed))
            if freed >= 0:
                self.s.usage_dirty = True
                self.next()
                return
            self.token += 1
            self.s.push(self.s.now + NS_PER_SEC // 10, A_REAPER, self.token)
            return
        # the HZ/10 sleep after the last failed attempt is over: give up, MMF_OOM_SKIP
        if self.s.eng.mmap_locked[t]:
            self.s.eng.oom_reap_task(t, True)
        else:  # the lock was dropped during that last sleep; the kernel does not retry
            self.s.eng.mm_oom_skip[t] = 1
            self.s.eng.reap_queued[t] = 0
        if self.s.tracing:
            with gil:
                self.log.append((self.s.now, t, self.attempts + 1, -1))
        self.gave_up += 1
        self.next()

    cdef void next(self) noexcept nogil:
        self.cur = -1
        if self.fired.n:
            self.token += 1
            self.s.push(self.s.now, A_REAPER, self.token)
