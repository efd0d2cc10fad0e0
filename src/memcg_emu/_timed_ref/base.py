"""What the timed subsystems share with the scheduler: the twin of ``_tbase.pxd``.

The subsystems (:mod:`.locking`, :mod:`.jbd2`, :mod:`.writeback`, :mod:`.reaper`) each hold
the scheduler (:class:`memcg_emu.timed.TimedSim`) as ``self.s`` and call only these of its
methods, as the compiled ones call ``SchedBase``'s: ``_push(when, actor, arg)`` (an event;
``seq`` grows with every push), ``_schedule(t, when)`` (task t at ``max(when, now)``; its
older events become stale), ``_block(t, why)`` (D state waiting on ``why``, a ``W_*``),
``_unblock(t, retry)`` (wake t: retry its op, or its op completed) and ``_tick_instant()``
(one more op/step at this instant).  They read ``now``, ``trace``, ``_eng``, ``_st``,
``_mode``, ``_token`` and set ``_usage_dirty``.
"""
import enum

from .._constants import HZ

NS_PER_SEC = 1_000_000_000
NS_PER_JIFFY = NS_PER_SEC // HZ

# scheduler modes of a task
M_IDLE, M_READY, M_PATH, M_DONE_OP, M_BLOCKED, M_DEAD, M_EXITING = range(7)
# special actors in the heap (tasks are >= 0)
A_COMMIT_TIMER, A_COMMIT_DONE, A_REAPER, A_REAP_TIMER, A_CONTROL = -1, -2, -3, -4, -5
# what a task in D state waits on (d_state_peak_by_wait)
W_JOURNAL, W_MMAP_LOCK, W_RWSEM, W_MUTEX, W_RECLAIM = range(5)
WAIT_NAMES = ("journal", "mmap_lock", "rwsem", "mutex", "reclaim_throttle")


class TOp(enum.IntEnum):
    """Timed op codes (``op`` field of a program row), after the replay ops (0..23)."""

    COMPUTE = 32
    SLEEP = 33
    MUTEX_LOCK = 34
    MUTEX_UNLOCK = 35
    DOWN_READ = 36
    UP_READ = 37
    DOWN_WRITE = 38
    UP_WRITE = 39
    JOURNAL_START = 40
    JOURNAL_STOP = 41
    DIRTY = 42
    LOOP = 43
    EXIT = 44
