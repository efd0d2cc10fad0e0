"""mm/oom_kill.c's oom_reaper kthread for the timed engine's Python scheduler (the twin of
``_treaper``): a victim's timer fires OOM_REAPER_DELAY after its kill, fired victims go on a
LIFO list, the reaper works on one at a time, MAX_OOM_REAP_RETRIES attempts HZ/10 apart,
then MMF_OOM_SKIP."""
from .._constants import MAX_OOM_REAP_RETRIES
from .base import A_REAP_TIMER, A_REAPER, NS_PER_SEC


class Reaper:
    """The OOM reaper of one TimedSim (``sim.reaper``)."""

    def __init__(self, s, delay_ns: int):
        self.s = s  # the scheduler
        self.delay_ns = delay_ns  # OOM_REAPER_DELAY, ns
        self.fired: list[int] = []  # oom_reaper_list: fired victims, popped from the end
        self.cur = -1  # the victim being worked on
        self.attempts = 0
        self.token = 0  # the current reaper event (older ones are stale)
        self.gave_up = 0  # victims given up on (MMF_OOM_SKIP)

    def arm(self, p: int) -> None:
        """queue_oom_reaper(): arm victim p's timer."""
        s = self.s
        s._push(s.now + self.delay_ns, A_REAP_TIMER, p)

    def fire(self, p: int) -> None:
        """p's timer fired: onto the list; wake the reaper if idle."""
        self.fired.append(p)
        if self.cur < 0:
            self.token += 1
            self.s._push(self.s.now, A_REAPER, self.token)

    def run(self, token: int) -> None:
        """The reaper's event: oom_reaper(), oom_reap_task() on one victim at a time."""
        if token != self.token:
            return
        s = self.s
        if self.cur < 0:
            if not self.fired:
                return
            self.cur = self.fired.pop()  # oom_reaper_list is LIFO
            self.attempts = 0
        t = self.cur
        if self.attempts < MAX_OOM_REAP_RETRIES:
            self.attempts += 1
            freed = int(s._eng.oom_reap_task(t, False))
            if s.trace is not None:
                s.reaper_log.append((s.now, t, self.attempts, freed))
            if freed >= 0:
                s._usage_dirty = True
                self.next()
                return
            self.token += 1
            s._push(s.now + NS_PER_SEC // 10, A_REAPER, self.token)
            return
        # the HZ/10 sleep after the last failed attempt is over: give up, MMF_OOM_SKIP
        st = s._st
        if st.mmap_locked[t]:
            s._eng.oom_reap_task(t, True)
        else:  # the lock was dropped during that last sleep; the kernel does not retry
            st.mm_oom_skip[t] = 1
            st.reap_queued[t] = 0
        if s.trace is not None:
            s.reaper_log.append((s.now, t, self.attempts + 1, -1))
        self.gave_up += 1
        self.next()

    def next(self) -> None:
        self.cur = -1
        if self.fired:
            self.token += 1
            self.s._push(self.s.now, A_REAPER, self.token)
