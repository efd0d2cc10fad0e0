"""Writeback for the timed engine's Python scheduler (the twin of ``_twriteback``): the
flusher kthread (fs/fs-writeback.c: wb_workfn(), a journal handle per batch) and the crude
mm/page-writeback.c: balance_dirty_pages().  What is modelled and what is not: the Flusher
and Dirty throttling items of :mod:`memcg_emu.timed`'s docstring."""
import numpy as np

from .._constants import PAGE_COUNTER_MAX, PageKind
from .base import M_READY

_FILE, _FILE_DIRTY, _FILE_WB = int(PageKind.FILE), int(PageKind.FILE_DIRTY), \
    int(PageKind.FILE_WRITEBACK)


class Flusher:
    """The flusher of one TimedSim (``sim.flusher``); ``pid`` is -1 until the first run
    makes its kthread (and stays -1 without one).  Its configuration is read when it is used
    (``sim.flusher_config``, ``sim.costs.writeback_page_ns``), so a change made before a run
    applies to it."""

    def __init__(self, s, journal):
        self.s = s  # the scheduler
        self.j = journal  # each batch takes a handle
        self.pid = -1
        self.idle = True
        self.io: tuple | None = None  # (memcg, pages) of the batch under writeback
        self.cursor = 0  # round-robin over the cgroups with dirty pages
        self.next_tick = 0  # the next periodic wake-up
        self.pages = 0  # pages written

    def schedule(self, when: int) -> None:
        s = self.s
        s._token[self.pid] += 1
        s._push(max(when, s.now), self.pid, s._token[self.pid])

    def sleep(self) -> None:
        """Nothing to write: sleep until the next periodic wake-up (or a reclaim wake-up)."""
        self.idle = True
        s = self.s
        while self.next_tick <= s.now:
            self.next_tick += s.flusher_config.interval_ns
        self.schedule(self.next_tick)

    def wake(self) -> None:
        """wakeup_flusher_threads() (direct reclaim, dirty throttling)."""
        if self.pid >= 0 and self.idle:
            self.idle = False
            self.schedule(self.s.now)

    def work(self) -> None:
        """One activation of wb_workfn: write batches until nothing is dirty."""
        s = self.s
        f = self.pid
        self.idle = False
        s._mode[f] = M_READY
        st = s._st
        eng = s._eng
        cfg = s.flusher_config
        while True:
            s._tick_instant()
            if self.io is not None:  # end_page_writeback of the last batch
                m, n = self.io
                self.io = None
                n = min(n, int(st.pool[m, _FILE_WB]))
                if n:
                    eng.emu_move_pages(m, _FILE_WB, _FILE, n)
                    self.pages += n
                    if s.trace is not None:
                        s.flusher_log.append((s.now, m, n))
            m = self.pick_dirty_memcg()
            if m < 0:
                self.sleep()
                return
            if not self.j.start(f, cfg.credits):
                return  # D state until the commit ends; then this runs again
            n = min(cfg.batch_pages, int(st.pool[m, _FILE_DIRTY]))
            if n:
                eng.emu_move_pages(m, _FILE_DIRTY, _FILE_WB, n)
            self.j.stop(f)
            if n:
                self.io = (m, n)
                delay = n * s.costs.writeback_page_ns
                if delay:
                    self.schedule(s.now + delay)
                    return

    def pick_dirty_memcg(self) -> int:
        dirty = self.s._st.pool[: self.s._n_cg, _FILE_DIRTY]
        idx = np.flatnonzero(dirty > 0)
        if not len(idx):
            return -1
        later = idx[idx > self.cursor]
        m = int(later[0]) if len(later) else int(idx[0])
        self.cursor = m
        return m

    def balance_dirty_pages(self, m: int) -> int:
        """mm/page-writeback.c: balance_dirty_pages(), crudely (FlusherConfig.dirty_ratio):
        the pause owed after dirtying pages of memcg m."""
        ratio = self.s.flusher_config.dirty_ratio
        st = self.s._st
        mx = st.max.item(m)
        if not ratio or mx >= PAGE_COUNTER_MAX:
            return 0
        pool = st.pool
        dirty = pool.item(m, _FILE_DIRTY) + pool.item(m, _FILE_WB)
        avail = pool.item(m, _FILE) + dirty + max(mx - st.usage.item(m), 0)
        if 100 * dirty <= ratio * avail:
            return 0
        self.wake()
        return self.s.flusher_config.dirty_pause_ns
