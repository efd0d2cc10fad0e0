"""Timed simulation (docs/design.md §3.3): virtual time, tasks running programs, locks, a jbd2
journal, the flusher and the OOM reaper, so that stalls such as the jbd2 incident *emerge*.

The kernel paths are not written here.  A charge runs as ``engine.charge_start`` followed by
``engine.charge_step`` calls, return-to-user work as ``engine.rtu_start``/``rtu_step``; between
two steps the task is suspended for the time the step cost (computed from the engine's stat
deltas across the step, :class:`CostModel`), holding whatever it holds.  Every other replay op
is applied through the engine's own replay loop (``engine.replay_loop`` on a one-event slice),
so it means exactly what it means in :meth:`memcg_emu.Emulator.replay`.  What this module adds
is time, waiting and the kernel threads:

* a discrete-event scheduler: a heap of ``(time_ns, seq, actor, arg)``; ``seq`` grows with
  every push, so equal times run in push order and a run is deterministic for a seed;
* programs: per-task arrays of :data:`PROGRAM_DTYPE` (the replay event layout, with the timed
  op codes of :class:`TOp` added), stored flat, so thousands of them can be made with numpy;
* mutexes and rwsems with FIFO waiters; a waiter is in D state (``engine.block_task``) and is
  woken with ``engine.wake_task``;
* a jbd2 journal (one running transaction; ``journal_start``/``journal_stop``; commit on the
  commit interval or when the transaction is full; the commit locks the transaction
  (``T_LOCKED``), waits for its handles to stop, then switches it out: new handles open the
  next transaction while the old one's commit takes the commit time; commits are serial);
* the flusher kthread (``wb_workfn``): each batch of dirty pages needs a journal handle;
* the OOM reaper kthread (``oom_reaper``/``oom_reap_task``) with OOM_REAPER_DELAY and
  MAX_OOM_REAP_RETRIES attempts HZ/10 apart.

Time is in nanoseconds; HZ = 1000, so a jiffy is 1 ms.

The Python scheduler (``TimedSim.run()`` on ``scheduler="python"``) is the reference twin of
the compiled scheduler ``memcg_emu._tsched`` (``TimedSim(scheduler=...)``; docs/design.md
§3.3), laid out as the compiled one is, one module of :mod:`memcg_emu._timed_ref` per
compiled module: the scheduler itself (``_timed_ref.sched.Scheduler``, which ``TimedSim``
extends; twin of ``_tsched``) and the kernel subsystems it calls into, each an object owning
its state and its waiters: ``sim.locks`` (``_timed_ref.locking``, twin of ``_tlocking``),
``sim.journal`` (``_timed_ref.jbd2``, ``_tjbd2``), ``sim.flusher`` (``_timed_ref.writeback``,
``_twriteback``) and ``sim.reaper`` (``_timed_ref.reaper``, ``_treaper``).  Each of their
methods is translated line by line in the compiled module, and everything here (set-up,
validation, the checks before a run, results) serves both schedulers.

Program semantics
-----------------
A program row is one op.  ``time`` is the earliest time (ns, absolute) at which the op may
start (0: as soon as the previous op is done); ``task`` is unused except by ``Op.KILL``, where
it names the target (-1: the task itself).  Replay ops (:class:`memcg_emu.events.Op`) keep their
meaning; ``CHARGE`` and ``RETURN_TO_USER`` are stepped kernel paths with costs, the others
apply at once (plus the cost of any reclaim/OOM they ran, e.g. a ``SET_MAX`` write), through
the same engine methods as replay.  ``BLOCK``, ``WAKE`` and ``OOM_REAP`` are not allowed: the
scheduler owns D state and the reaper.  Timed ops (``arg`` unless stated):

=================  ==========================================================================
COMPUTE            run for ``arg`` ns
SLEEP              sleep for ``arg`` ns (killable, so not D state)
MUTEX_LOCK/UNLOCK  mutex ``arg`` (ids >= 0)
DOWN_READ/UP_READ  rwsem ``arg``; ``-1`` is the task's own ``mmap_lock``
DOWN_WRITE/UP_...  as above, exclusive
JOURNAL_START      ``jbd2_journal_start`` with ``arg`` credits (0 means 1); nests (``h_ref``)
JOURNAL_STOP       ``jbd2_journal_stop``
DIRTY              ``arg`` pages of page cache: charge them (kind file, ``gfp``, ``memcg``
                   -1 = resolve) as a stepped path, then mark them dirty (file -> file_dirty)
LOOP               jump back to program index ``arg``; ``memcg`` = how many times the body
                   runs in total (-1: forever; 0 or 1: once, i.e. no jump)
EXIT               ``do_exit`` (same as ``Op.EXIT``; takes the exit time)
=================  ==========================================================================

A task whose program ends stays alive and idle (holding what it holds), as a replayed task
does at the end of its events.

Modelling simplifications (everything the timed model leaves out or approximates)
---------------------------------------------------------------------------------
* **CPUs.** No CPU contention: every runnable task runs at once (as if there were a CPU per
  task).  A task's ``cpu`` only selects its per-CPU charge stock.  COMPUTE and SLEEP differ
  only in name.
* **When things happen.** A step's effects (charges, reclaim, kills) happen at the instant
  the step starts; its cost is then waited, so a victim is killed (and its reaper timer armed)
  at the start of the OOM step.  A DIRTY op dirties its pages when its charge completes,
  before any memory.high throttle sleep the charge owes.  A charge that misses the per-CPU
  stock at its start (``charge_start``) waits ``charge_fast_path_ns``, and its first step
  looks the stock up again (``retry:``) before the page counters; the kernel looks once per
  pass, so a stock another task on the same CPU refilled in that window is hit here.
* **Costs.** A stepped path's cost is linear in the engine's stat deltas across the step
  (:class:`CostModel`); one page-counter walk (``levels x page_counter_level_ns``) is charged
  per charge step that starts at the ``retry:`` label (the batch-shrink retry inside the same
  step walks again for free).  Non-stepped ops (uncharge, scope changes, limit writes, ...)
  cost nothing beyond the reclaim/OOM/drain work they did.  Remote per-CPU stock drains stay
  synchronous (the engine has no asynchronous drain; docs/model.md E12).  Reclaim costs time
  and sleeps only as the policy's ``reclaim_wait`` knob says (see *Reclaim waits*).
* **Reclaim waits** (``mm/vmscan.c: shrink_node()``).  After a reclaim step of a charge or
  return-to-user path, the memcg being charged counts as congested when it has pages under
  writeback and none dirty-but-unqueued (the kernel's ``nr.dirty == nr.congested`` over the
  folios it scanned; PG_reclaim marking is not modelled: every writeback page counts).
  ``v6`` (v5.16+): ``reclaim_throttle(VMSCAN_THROTTLE_CONGESTED)``, 1 jiffy in D state
  (``reclaim_throttle``), skipped as ``skip_throttle_noprogress()`` does while the machine's
  write-pending pages are at most half its reclaimable ones (one node; kswapd's failure count
  is not modelled); ``5.x``: ``wait_iff_congested()``, which never sleeps (blk-mq marks no
  bdi congested); ``congestion-wait``: 100 ms; ``off``: never.  ``VMSCAN_THROTTLE_WRITEBACK``
  (kswapd and cgroup v1 only) and ``VMSCAN_THROTTLE_ISOLATED`` are not modelled.
* **Dirty throttling** (``balance_dirty_pages``), crude: see ``FlusherConfig.dirty_ratio``
  (a fixed pause, not the kernel's rate-limit control loop; per memcg domain only).
* **The task lifecycle.** A kill (OOM or ``KILL``) only sets the fatal signal (the engine runs
  with ``Cfg.TIMED_LIFECYCLE`` = 1); the scheduler delivers it.  A task is in user space at
  the start of its program, after a ``RETURN_TO_USER`` completes, and while it runs
  ``COMPUTE``/``LOOP`` ops there; any other op enters the kernel, and the ops up to the next
  ``RETURN_TO_USER`` are one system call (``SLEEP`` in user space is a system call of its own,
  nanosleep-like).  The end of a program returns to user space for good.  A killed task in
  user space exits at once.  In the kernel it runs on, charging as it goes (a charge path it
  is suspended in continues), until it returns to user space (``exit_to_user_mode_loop``:
  the signal first, and again after the notify-resume work) or enters a killable wait.
  Killable waits: ``SLEEP`` (``schedule_timeout_killable``), waits for an mmap_lock (``-1``:
  ``mmap_read_lock_killable``/``mmap_write_lock_killable``, as the fault path and mmap take
  it), and the memory.high throttle sleep; a fatal signal ends them (the op returns -EINTR,
  -4), and the call unwinds.  A killable lock wait is counted as D state (``ps`` shows
  ``TASK_KILLABLE`` as D).  Mutexes, plain rwsems (ids >= 0) and ``journal_start`` wait
  uninterruptibly: a killed waiter waits on, then finishes its call.
* **Unwinding.** A charge (or DIRTY) that fails with -ENOMEM, or an -EINTR from a killable
  wait, makes the task unwind the rest of its system call: it runs only releasing ops
  (``JOURNAL_STOP`` of a handle it holds, ``MUTEX_UNLOCK``/``UP_READ``/``UP_WRITE`` of locks
  it holds, ``FLAGS_RESTORE``/``ACCOUNT_FORCE_RESTORE`` of scopes it opened, and
  ``SET_ACTIVE_MEMCG`` to none), skipping the others (``LOOP`` included: the call's remaining
  iterations are abandoned; a skipped save or ``JOURNAL_START`` makes its matching restore or
  stop skipped too), up to the ``RETURN_TO_USER``, which ends the unwinding (and delivers the
  signal).  Skipped ops leave their rc at 0 and are counted in ``ops_skipped_unwinding``.
  What can still be held afterwards: locks, a handle or a scope a program keeps across its
  return to user space, and the kernel pages of a skipped ``UNCHARGE``.  **Exit releases**
  any lock or handle still held (in reverse order of taking) so the system can progress.
  A return to user space stopped as a livelock (bounded ``livelock_limit``) does not deliver
  the signal (the kernel would still be looping in it).
* **Exit takes time.** ``do_exit``: ``PF_EXITING`` at once; if the task is the last user of
  its mm, ``exit_mmap`` costs ``CostModel.exit_page_ns`` per anon/mlocked page, and the pages
  stay charged until it ends; then they are freed and the task is gone.  The reaper may reap
  the mm meanwhile; pages are freed once (by whichever comes first).  A ``memory.max`` write
  (not stepped, one instant) cannot wait for an exit: while it runs, victims in user space
  exit inside the kill, without exit time, as in step mode (``Cfg.TIMED_LIFECYCLE`` = 2).
* **D state** is counted for tasks waiting on a mutex, an rwsem or the journal (including the
  flusher) and for ``reclaim_throttle`` sleeps, split by what they wait on
  (``d_state_peak_by_wait``, ``d_state_at_peak_by_wait``: the split at the total's peak,
  ``d_state_task_seconds_by_wait``; series ``d_state_by_wait``).  A ``reclaim_throttle``
  sleep is counted by the scheduler only (the engine sees the task ``RUNNING``).  The
  memory.high throttle sleep and the ``balance_dirty_pages`` pause are killable
  (``schedule_timeout_killable``, ``io_schedule_timeout`` in ``TASK_KILLABLE``): the task
  stays ``RUNNING`` for the engine and they are reported separately
  (``throttle_sleep_task_seconds``, ``dirty_pause_task_seconds``), not as D state.
* **mmap_lock** is one rwsem per mm, shared by the threads of a process
  (:meth:`TimedSim.add_thread`); ``arg`` -1 names it.  The OOM reaper uses
  ``mmap_read_trylock``, which fails while a writer holds the lock or anyone waits for it;
  ``state.mmap_locked[mm]`` is kept equal to exactly that.  A read holder alone does not
  stop the reaper (as in the kernel).  Tasks of another mm cannot take it.
* **Locks** are not recursive: a task taking a mutex it holds, or its own mmap_lock for
  write while holding it, waits forever (the kernel would deadlock too).
* **rwsem fairness:** FIFO; a reader gets the lock only if no writer holds it and nobody
  waits; on release, the head writer, or the run of readers at the head of the queue, is
  woken (the kernel's ``rwsem_mark_wake`` can also wake readers queued behind a writer).
* **jbd2** (``fs/jbd2/transaction.c: start_this_handle()``, ``fs/jbd2/commit.c:
  jbd2_journal_commit_transaction()``).  One journal for the whole machine.
  ``journal_start`` blocks (D) while the running transaction is ``T_LOCKED``
  (``wait_transaction_locked()``); once the locked transaction's handles have stopped it is
  switched out (``T_FLUSH``), the waiters are woken and open the *next* transaction while the
  old one commits (``journal_locked_max_ns`` is the longest ``T_LOCKED`` phase, lock to
  drain).  Commits are serial (one kjournald2): a commit asked for while the previous one is
  still being written waits for it, and the running transaction keeps admitting handles
  meanwhile.  A transaction opens at the first ``journal_start`` after a switch (lazily, so
  an idle journal does not commit), and its commit timer is armed then
  (``j_commit_interval``).  "Full" means that adding the starter's credits would exceed
  ``max_transaction_blocks`` or that ``max_handles`` handles have joined: the starter asks
  for the commit and waits for the switch (``add_transaction_credits()``; a transaction with
  no blocks always admits one handle).  Not modelled: log space and checkpointing
  (``__jbd2_log_wait_for_space()``), reserved credits (``j_wait_reserved``), the commit's
  ``T_FLUSH``/``T_COMMIT`` phases' own waits (ordered-data writeback), credit extension.
  Credits are the only block accounting: dirty data pages do not add journal blocks, and
  ordered-mode data writeback before commit is not modelled.  The commit takes
  ``CostModel.journal_commit_ns`` whatever its size.  ``journal_start`` enters
  ``memalloc_flags_save(PF_MEMALLOC_NOFS | PF_MEMALLOC_ACCOUNTFORCE)`` when the policy's
  ``accountforce`` knob is on (patch 2/2, as one save), ``PF_MEMALLOC_NOFS`` otherwise, after the
  handle joined; the outermost ``journal_stop`` restores the saved value.  Nested
  ``journal_start`` only counts a reference.
* **Flusher.** One flusher for every cgroup (no per-memcg wb); woken by direct reclaim (each
  increment of the engine's ``FLUSHER_WAKEUPS``) and every ``FlusherConfig.interval_ns``.  It
  writes every dirty page it finds (no dirty-expire age, no background thresholds; dirtiers
  are throttled only by the crude ``balance_dirty_pages`` above): per batch (round-robin over cgroups with
  dirty pages) it takes a journal handle, moves up to ``batch_pages`` pages dirty ->
  writeback, stops the handle, waits ``batch x writeback_page_ns`` for the I/O (which
  serialises the I/O like a disk would), and the pages become clean (reclaimable).
* **OOM reaper.** One reaper kthread, as in the kernel: each victim's timer fires the
  policy's ``oom_reaper_delay`` (OOM_REAPER_DELAY, 2 s, by default) after the scheduler
  first sees ``reap_queued`` set (the kill); fired victims
  are pushed on a list that the reaper pops from the head (LIFO, like ``oom_reaper_list``);
  the reaper works on one victim at a time: up to MAX_OOM_REAP_RETRIES attempts HZ/10 apart,
  and after the last failed attempt it sleeps HZ/10 once more, then sets ``MMF_OOM_SKIP``
  (``engine.oom_reap_task(t, True)``).  Reaping costs no time.
* **Livelock bound.** The engine's ``LIVELOCK_LIMIT`` is set to ``livelock_limit`` (default
  2**62): in time, the kernel's loops keep looping while time passes.  A ``memory.max`` write
  is not stepped, so while it runs (program op, control op or :meth:`TimedSim.write`) the
  bound is ``write_livelock_limit`` (default 8, the step API's); otherwise a pending victim
  would make it loop forever at one instant.
* **Zero time.** Paths are stepped without suspension while steps cost nothing, so with
  :meth:`CostModel.zero` a charge is atomic, as in replay.  More than ``max_ops_per_instant``
  ops/steps at one instant raise ``RuntimeError`` (a zero-cost livelock cannot advance time).
* **Measures.** ``oom_invocations`` counts ``mem_cgroup_out_of_memory`` calls (an order > 3
  charge's OOM step returns before it).  A "file op" is a completed DIRTY op or page-cache
  charge of a program.  ``reclaim_while_holding_max_ns`` is the length of the longest charge
  or return-to-user path that reclaimed and whose task held a journal handle or its own
  mmap_lock (any mode) when the path started (a path cannot drop either).  ``livelocks``
  counts the paths still running at the end that invoked the OOM killer (the kernel's
  reclaim -> OOM -> retry loop), plus the engine's bounded livelocks (memory.max writes).
* **The flusher** kthread is created at the first ``run`` (its pid follows the tasks made
  before), only if ``FlusherConfig.enabled``.
* **Samples** at time T show the state after every event at times <= T.  The over-max
  figures are evaluated after each scheduler event (one task's run of ops, or one kernel
  thread's action), so an overshoot that starts and ends inside one event, at one instant,
  is not seen (it lasts no time).
"""
from __future__ import annotations

import time as _time
from dataclasses import asdict, dataclass, field

import numpy as np

from ._constants import (
    GFP_KERNEL,
    GFP_MASK_ALL,
    GFP_NOFS,
    PF_KTHREAD,
    __GFP_NOFAIL,
    Cfg,
    Knob,
    NR_KINDS,
    PageKind,
    Stat,
)
from .events import EVENT_DTYPE, Op, check_row
from . import _backend
from .sim import Emulator, _check_int
from ._api import name_public_calls, named
from .errors import InvalidProgramError, LimitError
from ._timed_ref.base import M_BLOCKED, M_IDLE, M_READY, NS_PER_JIFFY, NS_PER_SEC, TOp, WAIT_NAMES
from ._timed_ref.jbd2 import J_LOCKED
from ._timed_ref.sched import (
    P_NONE,
    _BLOCKED,
    _EXITED,
    _FILE,
    _S_FLUSH,
    _S_KILL,
    _S_LIVELOCK,
    _S_OOM,
    _S_RC,
    _S_RECL,
    _S_SCAN,
    Scheduler,
)
# the scheduler's constants, named here as the compiled twin's are (_tsched._TIMED_CONSTANTS)
from ._constants import PAGE_COUNTER_MAX, RW_5X, RW_OFF, RW_V6  # noqa: F401
from ._timed_ref.base import (  # noqa: F401
    A_COMMIT_DONE,
    A_COMMIT_TIMER,
    A_CONTROL,
    A_REAP_TIMER,
    A_REAPER,
    M_DEAD,
    M_DONE_OP,
    M_EXITING,
    M_PATH,
    W_JOURNAL,
    W_MMAP_LOCK,
    W_MUTEX,
    W_RECLAIM,
    W_RWSEM,
)
from ._timed_ref.jbd2 import J_NONE, J_RUNNING  # noqa: F401
from ._timed_ref.sched import (  # noqa: F401
    P_CHARGE,
    P_DIRTY,
    P_RTU,
    SYS_KERNEL,
    SYS_UNWIND,
    SYS_USER,
)

__all__ = ["PROGRAM_DTYPE", "TOp", "CostModel", "JournalConfig", "FlusherConfig", "TimedSim",
           "TimedResult", "ProgramBuilder", "split_events", "SplitEvents",
           "incident_scenario", "NS_PER_JIFFY", "NS_PER_SEC"]

#: Program rows: the replay event layout (``memcg_emu.events.EVENT_DTYPE``) reused.
PROGRAM_DTYPE = EVENT_DTYPE

#: The most samples one TimedSim keeps (over all its run() calls), checked before a run
#: starts: 10**6 samples are 2.8 simulated hours at the default 10 ms.
MAX_SAMPLES = 1_000_000
#: The most periodic flusher wake-ups one run() may step through, checked before it starts
#: (5.8 simulated days at the default 5 s interval).
MAX_PERIODIC_WAKEUPS = 100_000


_REPLAY_OPS_ALLOWED = frozenset(int(o) for o in Op) - {int(Op.BLOCK), int(Op.WAKE),
                                                        int(Op.OOM_REAP)}
_TIMED_OPS = frozenset(int(o) for o in TOp)
_MEMCG_ONLY_OPS = frozenset(int(o) for o in (Op.SET_MAX, Op.SET_HIGH, Op.SET_LOW, Op.SET_MIN,
                                             Op.SET_SWAP_MAX, Op.SET_DIRTY, Op.START_WRITEBACK,
                                             Op.END_WRITEBACK, Op.RECLAIM, Op.NOP))
# =============================================================================================
# configuration
# =============================================================================================
@dataclass(frozen=True)
class CostModel:
    """What kernel work costs, in nanoseconds of the acting task's time.

    The cost of one step of a stepped path (charge, return-to-user) is::

        walk   * page_counter_level_ns * levels(memcg)      (step starting at retry:)
        + d(RECLAIM_CALLS)    * reclaim_call_ns
        + d(RECLAIM_SCANNED)  * page_scanned_ns
        + d(RECLAIM_RECLAIMED)* page_reclaimed_ns
        + d(CPU_DRAINS)       * stock_drain_cpu_ns
        + d(OOM_CALLS)        * oom_invocation_ns
        + d(OOM_KILLS)        * oom_kill_ns

    with ``d(X)`` the change of engine stat X across the step and ``levels`` the memcg's depth
    plus one (the root counter is walked too); ``charge_fast_path_ns`` is added once per charge
    (the stock lookup, or the whole charge on a stock hit).  The defaults are order-of-
    magnitude figures for a current x86 server, not measurements.

    Attributes
    ----------
    charge_fast_path_ns : int
        ``consume_stock`` and the call overhead of a charge (50).
    page_counter_level_ns : int
        One level of ``page_counter_try_charge`` (an atomic on a shared line; 25).
    reclaim_call_ns : int
        Fixed part of one ``try_to_free_mem_cgroup_pages`` call (5 us).
    page_scanned_ns : int
        Per page scanned (isolate, check references; 100).
    page_reclaimed_ns : int
        Per page reclaimed, on top of the scan (unmap, free; 1000).
    stock_drain_cpu_ns : int
        Per CPU stock drained by ``drain_all_stock`` (2 us).
    oom_invocation_ns : int
        One ``mem_cgroup_out_of_memory`` (oom_lock, task scan, the OOM report; 200 us).
    oom_kill_ns : int
        Per task killed (SIGKILL delivery, accounting; 50 us).
    writeback_page_ns : int
        Write I/O per page, for the flusher (10 us: 400 MB/s).
    journal_commit_ns : int
        One jbd2 commit after the last handle stopped (10 ms).
    exit_page_ns : int
        Per anon/mlocked page the last user of an mm frees in ``exit_mm`` -> ``exit_mmap``
        (unmap, uncharge, free; 100).  The pages stay charged until the exit ends.
    """

    charge_fast_path_ns: int = 50
    page_counter_level_ns: int = 25
    reclaim_call_ns: int = 5_000
    page_scanned_ns: int = 100
    page_reclaimed_ns: int = 1_000
    stock_drain_cpu_ns: int = 2_000
    oom_invocation_ns: int = 200_000
    oom_kill_ns: int = 50_000
    writeback_page_ns: int = 10_000
    journal_commit_ns: int = 10_000_000
    exit_page_ns: int = 100

    def __post_init__(self):
        for name, value in asdict(self).items():
            _check_int(value, f"CostModel.{name}", 0, 1 << 50)

    @classmethod
    def zero(cls) -> "CostModel":
        """Every cost 0: the timed engine then reproduces replay exactly."""
        return cls(**{k: 0 for k in asdict(cls())})


@dataclass(frozen=True)
class JournalConfig:
    """The jbd2 journal.

    Attributes
    ----------
    commit_interval_ns : int
        ``j_commit_interval``: a transaction commits this long after it opened (5 s, jbd2's
        JBD2_DEFAULT_MAX_COMMIT_AGE).
    max_transaction_blocks : int
        Credits a transaction may hold before a starter forces its commit (8192: a 128 MiB
        journal / 4 KiB / 4, ext4's default ``j_max_transaction_buffers``).  0: unlimited.
    max_handles : int
        Handles a transaction may admit before it commits; 0: unlimited (jbd2 has no such
        limit; for experiments).
    """

    commit_interval_ns: int = 5 * NS_PER_SEC
    max_transaction_blocks: int = 8192
    max_handles: int = 0

    def __post_init__(self):
        _check_int(self.commit_interval_ns, "JournalConfig.commit_interval_ns", 1, 1 << 62)
        _check_int(self.max_transaction_blocks, "JournalConfig.max_transaction_blocks", 0)
        _check_int(self.max_handles, "JournalConfig.max_handles", 0)


@dataclass(frozen=True)
class FlusherConfig:
    """The flusher kthread (``wb_workfn``).

    Attributes
    ----------
    enabled : bool
        Create the flusher (a kernel thread in the root cgroup, made at the first ``run``).
    interval_ns : int
        Periodic wake-up (``dirty_writeback_centisecs`` = 500: 5 s).
    batch_pages : int
        Pages written per journal handle (1024, ``MAX_WRITEBACK_PAGES``).
    credits : int
        Journal credits per batch.
    dirty_ratio : int
        ``vm.dirty_ratio`` (20) for a crude ``balance_dirty_pages()``: a DIRTY op that leaves
        its memcg's dirty + writeback pages above ``dirty_ratio`` % of the memcg's dirtyable
        memory (its file pages plus its headroom below memory.max, as
        ``mem_cgroup_wb_stats()``' domain) pauses its task ``dirty_pause_ns`` (killable, like
        the kernel's ``io_schedule_timeout()`` in ``TASK_KILLABLE``).  Only memcgs with a
        memory.max are throttled, and only DIRTY ops made outside a journal handle (the
        write(2) and fault paths call ``balance_dirty_pages_ratelimited()`` once the page is
        dirtied; a metadata buffer dirtied under a handle is not throttled); 0 turns it
        off.
    dirty_pause_ns : int
        The pause (``MAX_PAUSE``: HZ/5 = 200 ms, the longest the kernel pauses a dirtier).
    """

    enabled: bool = True
    interval_ns: int = 5 * NS_PER_SEC
    batch_pages: int = 1024
    credits: int = 1
    dirty_ratio: int = 20
    dirty_pause_ns: int = NS_PER_SEC // 5

    def __post_init__(self):
        _check_int(self.interval_ns, "FlusherConfig.interval_ns", 1, 1 << 62)
        _check_int(self.batch_pages, "FlusherConfig.batch_pages", 1, 1 << 40)
        _check_int(self.credits, "FlusherConfig.credits", 1, 1 << 30)
        _check_int(self.dirty_ratio, "FlusherConfig.dirty_ratio", 0, 100)
        _check_int(self.dirty_pause_ns, "FlusherConfig.dirty_pause_ns", 0, 1 << 40)


# =============================================================================================
# building programs
# =============================================================================================
class ProgramBuilder:
    """Append program ops one by one, then ``build()`` one :data:`PROGRAM_DTYPE` array.

    Every method returns the builder; ``at`` is the op's earliest start time in ns.

    Examples
    --------
    >>> p = (ProgramBuilder().journal_start().dirty(4, gfp=GFP_NOFS).compute(10_000)
    ...      .journal_stop().return_to_user().loop(0, 100).build())
    """

    def __init__(self):
        self._rows: list[tuple] = []

    def __len__(self) -> int:
        return len(self._rows)

    def op(self, op, arg=0, memcg=-1, gfp=0, kind=0, at=0, task=-1) -> "ProgramBuilder":
        row = (at, arg, task, memcg, gfp, int(op), kind, 0)
        check_row(row, "ProgramBuilder: op", len(self._rows), InvalidProgramError)
        self._rows.append(row)
        return self

    # replay ops
    def charge(self, nr_pages, gfp=GFP_KERNEL, kind=0, memcg=-1, at=0):
        return self.op(Op.CHARGE, nr_pages, memcg, gfp, int(kind), at)

    def uncharge(self, nr_pages, kind=0, memcg=-1, at=0):
        return self.op(Op.UNCHARGE, nr_pages, memcg, 0, int(kind), at)

    def return_to_user(self, at=0):
        return self.op(Op.RETURN_TO_USER, at=at)

    def flags_save(self, flags, at=0):
        return self.op(Op.FLAGS_SAVE, flags, at=at)

    def flags_restore(self, at=0):
        return self.op(Op.FLAGS_RESTORE, at=at)

    def kill(self, target=-1, at=0):
        return self.op(Op.KILL, at=at, task=target)

    def set_limit(self, which: str, memcg: int, pages: int, at=0):
        op = {"max": Op.SET_MAX, "high": Op.SET_HIGH, "low": Op.SET_LOW, "min": Op.SET_MIN,
              "swap.max": Op.SET_SWAP_MAX}[which]
        return self.op(op, pages, memcg, at=at)

    # timed ops
    def compute(self, ns, at=0):
        return self.op(TOp.COMPUTE, ns, at=at)

    def sleep(self, ns, at=0):
        return self.op(TOp.SLEEP, ns, at=at)

    def mutex_lock(self, lock_id, at=0):
        return self.op(TOp.MUTEX_LOCK, lock_id, at=at)

    def mutex_unlock(self, lock_id, at=0):
        return self.op(TOp.MUTEX_UNLOCK, lock_id, at=at)

    def down_read(self, lock_id=-1, at=0):
        return self.op(TOp.DOWN_READ, lock_id, at=at)

    def up_read(self, lock_id=-1, at=0):
        return self.op(TOp.UP_READ, lock_id, at=at)

    def down_write(self, lock_id=-1, at=0):
        return self.op(TOp.DOWN_WRITE, lock_id, at=at)

    def up_write(self, lock_id=-1, at=0):
        return self.op(TOp.UP_WRITE, lock_id, at=at)

    def journal_start(self, credits=1, at=0):
        return self.op(TOp.JOURNAL_START, credits, at=at)

    def journal_stop(self, at=0):
        return self.op(TOp.JOURNAL_STOP, at=at)

    def dirty(self, nr_pages, gfp=GFP_KERNEL, memcg=-1, at=0):
        return self.op(TOp.DIRTY, nr_pages, memcg, gfp, _FILE, at)

    def loop(self, to: int, count: int = -1, at=0):
        return self.op(TOp.LOOP, to, count, at=at)

    def exit(self, at=0):
        return self.op(TOp.EXIT, at=at)

    def build(self) -> np.ndarray:
        return np.array(self._rows, dtype=PROGRAM_DTYPE)


@dataclass
class SplitEvents:
    """A replay stream cut into per-task programs and timed control ops.

    Attributes
    ----------
    programs : dict
        pid -> program (PROGRAM_DTYPE, ``task`` = -1): that task's events in order.
    control : numpy array of EVENT_DTYPE
        Memcg ops (task -1) and ``KILL`` (task = target), run by nobody at their times.
    owner : numpy int64 array
        Per event: the pid whose program holds it, or -1 for a control op.
    position : numpy int64 array
        Per event: its index in that program (or in ``control``).
    """

    programs: dict
    control: np.ndarray
    owner: np.ndarray
    position: np.ndarray


def split_events(events) -> SplitEvents:
    """Cut a replay stream (:data:`memcg_emu.events.EVENT_DTYPE`) into programs and control
    ops for :class:`TimedSim`.

    Each event keeps its ``time`` as the earliest start of its op, so with zero costs, no
    contention and strictly increasing times the timed run applies the events in the replay's
    order.

    Raises
    ------
    ValueError
        For ``BLOCK``, ``WAKE`` or ``OOM_REAP`` events (the timed scheduler owns D state and
        the reaper).
    """
    from .replay import as_events

    ev = as_events(events)
    op = ev["op"]
    bad = np.isin(op, [Op.BLOCK, Op.WAKE, Op.OOM_REAP])
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"event {i}: op {Op(int(op[i])).name} has no timed counterpart (the "
                         f"scheduler owns D state and the OOM reaper; use locks)")
    control_mask = np.isin(op, sorted(_MEMCG_ONLY_OPS | {int(Op.KILL)})) | (ev["task"] < 0)
    owner = np.where(control_mask, -1, ev["task"]).astype(np.int64)
    position = np.zeros(len(ev), dtype=np.int64)
    order = np.argsort(owner, kind="stable")
    sorted_owner = owner[order]
    starts = np.flatnonzero(np.r_[True, sorted_owner[1:] != sorted_owner[:-1]]) \
        if len(ev) else np.zeros(0, np.int64)
    bounds = np.r_[starts, len(ev)]
    programs = {}
    control = np.zeros(0, dtype=EVENT_DTYPE)
    for a, b in zip(bounds[:-1], bounds[1:]):
        idx = order[a:b]
        position[idx] = np.arange(b - a)
        pid = int(sorted_owner[a])
        if pid < 0:
            control = ev[idx].copy()
        else:
            prog = ev[idx].copy()
            prog["task"] = -1
            programs[pid] = prog
    return SplitEvents(programs=programs, control=control, owner=owner, position=position)


# =============================================================================================
# the result
# =============================================================================================
@dataclass
class TimedResult:
    """What :meth:`TimedSim.run` returns: a summary, sampled series, per-op results.

    Attributes
    ----------
    summary : dict
        Whole-run measurements since the first ``run`` (see :meth:`TimedSim.run`).
    series : dict of numpy arrays
        Sampled every ``sample_dt_ns``: ``time_ns``, ``d_state_tasks``, ``usage`` and
        ``max`` (``[n_samples, n_cgroups]``, pages), ``journal_locked`` (0/1), ``handles``
        (running handles), ``in_kernel_path`` (tasks inside a charge or return-to-user path),
        ``oom_kills`` and ``ops_completed`` (cumulative).
    cgroups : list of str
        Cgroup paths, the columns of ``usage``/``max``.
    rc, outcome : dict
        pid -> numpy array as long as its program: the result of the op's last completed
        execution (what ``ReplayResult.rc``/``outcome`` hold for the same op in replay).
    control_rc, control_outcome : numpy arrays
        The same for the control ops.
    """

    summary: dict
    series: dict
    cgroups: list
    rc: dict = field(default_factory=dict)
    outcome: dict = field(default_factory=dict)
    control_rc: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    control_outcome: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))

    def to_pandas(self):
        """The series as a DataFrame indexed by ``time_ns``: the scalar series as columns,
        then ``usage:<cgroup>`` and ``max:<cgroup>`` (pages)."""
        import pandas as pd

        s = self.series
        data = {k: s[k] for k in ("d_state_tasks", "journal_locked", "handles",
                                  "in_kernel_path", "oom_kills", "ops_completed",
                                  "reclaim_scanned", "reclaim_reclaimed")}
        for w, name in enumerate(WAIT_NAMES):
            data[f"d_state:{name}"] = s["d_state_by_wait"][:, w]
        for j, name in enumerate(self.cgroups):
            data[f"usage:{name}"] = s["usage"][:, j]
            data[f"max:{name}"] = s["max"][:, j]
        return pd.DataFrame(data, index=pd.Index(s["time_ns"], name="time_ns"))


# =============================================================================================
# the simulator
# =============================================================================================
class TimedSim(Scheduler):
    """A timed simulation over one :class:`~memcg_emu.Emulator`.

    Parameters
    ----------
    policy : str or Policy
        A preset name, a :class:`~memcg_emu.policy.Policy` or ``"FILE.toml:NAME"``; its
        ``oom_reaper_delay`` knob times the reaper, its ``accountforce`` knob decides what
        ``journal_start`` saves.
    nr_cpus : int
        CPUs (per-CPU charge stocks; there is no CPU contention).
    seed : int
        Seeds the engine (refill_stock's slot choice); the scheduler itself is deterministic.
    costs : CostModel, optional
        Defaults to ``CostModel()``.
    swap : int or str
        Swap space (see Emulator).
    backend : {"cython", "python", None}
    scheduler : {"cython", "python", None}
        The event loop of :meth:`run`: "cython" is the compiled scheduler
        (``memcg_emu._tsched``, compiled engine only), "python" this module's, its reference
        twin (same results, about 20x slower); None picks the engine's kind.
        ``summary["scheduler"]`` names the one that ran.
    sample_dt_ns : int
        Period of the sampled series (10 ms).
    journal : JournalConfig, optional
    flusher : FlusherConfig, optional
    livelock_limit : int
        The engine's LIVELOCK_LIMIT during the run (2**62: unbounded in practice).  Use the
        step API's 8 to reproduce replay results exactly.
    write_livelock_limit : int
        The bound while a ``memory.max`` write (not stepped) runs.
    strict : bool
        An op that is impossible when it runs (uncharging more than a pool holds, a restore
        without a save, unlocking a lock not held) raises RuntimeError; with ``strict=False`` it
        is skipped, its rc is -EINVAL (-22), and ``summary["op_errors"]`` counts it.
    trace : bool
        Record ``sim.trace``: (time_ns, pid, program index, op, rc) of every completed op, and
        ``sim.reaper_log``/``sim.journal_log``/``sim.flusher_log``/``sim.exit_log`` (small
        runs only).
    max_ops_per_instant : int
        Ops and path steps allowed at one instant before RuntimeError.
    emulator : Emulator, optional
        Wrap this emulator (its cgroups, limits and tasks) instead of making one; ``policy``,
        ``nr_cpus``, ``seed``, ``swap``, ``backend`` and ``emulator_kwargs`` are then ignored.
    **emulator_kwargs
        Passed to :class:`~memcg_emu.Emulator` (``swappiness``, ``memory_recursiveprot``, ...).

    Examples
    --------
    >>> sim = TimedSim(policy="accountforce-v1", costs=CostModel())
    >>> sim.mkdir("A"); sim.write("A", "memory.max", "4M")
    >>> prog = (ProgramBuilder().journal_start().dirty(8, gfp=GFP_NOFS | __GFP_NOFAIL)
    ...         .journal_stop().return_to_user().compute(50_000).loop(0).build())
    >>> pid = sim.add_task("A", prog)
    >>> res = sim.run(2 * NS_PER_SEC)
    >>> res.summary["d_state_peak"]  # doctest: +SKIP
    """

    def __init__(self, policy="baseline", nr_cpus: int = 4, seed: int = 0,
                 costs: CostModel | None = None, swap=0, backend: str | None = None,
                 sample_dt_ns: int = 10_000_000, journal: JournalConfig | None = None,
                 flusher: FlusherConfig | None = None, livelock_limit: int = 1 << 62,
                 write_livelock_limit: int = 8, strict: bool = True, trace: bool = False,
                 max_ops_per_instant: int = 1 << 20, emulator: Emulator | None = None,
                 scheduler: str | None = None, **emulator_kwargs):
        if costs is not None and not isinstance(costs, CostModel):
            raise TypeError(f"costs must be a CostModel, not {type(costs).__name__}")
        if journal is not None and not isinstance(journal, JournalConfig):
            raise TypeError(f"journal must be a JournalConfig, not {type(journal).__name__}")
        if flusher is not None and not isinstance(flusher, FlusherConfig):
            raise TypeError(f"flusher must be a FlusherConfig, not {type(flusher).__name__}")
        self.costs = costs or CostModel()
        self.journal_config = journal or JournalConfig()
        self.flusher_config = flusher or FlusherConfig()
        self.sample_dt_ns = _check_int(sample_dt_ns, "sample_dt_ns", 1, 1 << 62)
        self.livelock_limit = _check_int(livelock_limit, "livelock_limit", 1, 1 << 62)
        self.write_livelock_limit = _check_int(write_livelock_limit, "write_livelock_limit",
                                               1, 1 << 30)
        self.max_ops_per_instant = _check_int(max_ops_per_instant, "max_ops_per_instant", 1)
        self.strict = bool(strict)
        self.emu = emulator if emulator is not None else Emulator(
            policy=policy, nr_cpus=nr_cpus, seed=seed, swap=swap, backend=backend,
            **emulator_kwargs)
        self.policy = self.emu.policy
        self.scheduler = _backend.timed_scheduler(scheduler, self.emu._engine)
        self.emu.state.config[Cfg.LIVELOCK_LIMIT] = self.livelock_limit
        # the scheduler delivers fatal signals (at return to user space, in killable waits)
        self.emu.state.config[Cfg.TIMED_LIFECYCLE] = 1
        knobs = self.emu.state.knobs
        self._reclaim_wait = int(knobs[Knob.RECLAIM_WAIT])

        # programs, flat (append-only; pcs are global indices)
        self._pending_progs: list[np.ndarray] = []
        self._n_rows = 0  # program rows installed (flushed or pending)
        self._exec = np.zeros(0, dtype=EVENT_DTYPE)  # program rows as replay events
        self._p_time: list[int] = []
        self._p_op: list[int] = []
        self._p_arg: list[int] = []
        self._p_task: list[int] = []
        self._p_memcg: list[int] = []
        self._p_gfp: list[int] = []
        self._p_kind: list[int] = []
        self._loop_left: list[int] = []
        self._rc = np.zeros(0, np.int64)
        self._outcome = np.zeros(0, np.uint8)
        self._prog_of: dict[int, tuple[int, int]] = {}  # pid -> (start, end) in the flat rows

        # control ops
        self._pending_ctl: list[np.ndarray] = []
        self._ctl = np.zeros(0, dtype=EVENT_DTYPE)
        self._ctl_rc = np.zeros(0, np.int64)
        self._ctl_outcome = np.zeros(0, np.uint8)

        self._init_scheduler(knobs)
        self.trace: list[tuple] | None = [] if trace else None
        self.reaper_log: list[tuple] = []  # (time_ns, pid, attempt, pages freed or -1)
        self.journal_log: list[tuple] = []  # (time_ns, event, tid)
        self.flusher_log: list[tuple] = []  # (time_ns, memcg, pages) per finished batch
        self.exit_log: list[tuple] = []  # (time_ns, pid) of each finished exit (trace)
        self.oom_log: list[tuple] = []  # (time_ns, victim pid, in D state when killed)
        self._grow_tasks()

    # =========================================================================================
    # set-up
    # =========================================================================================
    @classmethod
    def from_emulator(cls, emu: Emulator, **kwargs) -> "TimedSim":
        """Wrap an existing Emulator (e.g. ``workload.build()``); see the class parameters."""
        return cls(emulator=emu, **kwargs)

    @property
    def flusher_pid(self) -> int:
        """The flusher kthread's pid (-1 before the first run, or without a flusher)."""
        return self.flusher.pid

    @property
    def engine(self):
        return self.emu.engine

    @property
    def state(self):
        return self.emu.state

    def mkdir(self, path: str) -> int:
        """``Emulator.mkdir`` (set-up; cgroups cannot be made once the simulation started)."""
        if self._started:
            raise RuntimeError("mkdir: the simulation has started; make cgroups before run()")
        return self.emu.mkdir(path)

    def write(self, path: str, file: str, value, nonblock: bool = False) -> int:
        """``Emulator.write``, with the ``memory.max`` write loop bounded by
        ``write_livelock_limit`` (it is not stepped)."""
        rc = self._bounded(lambda: self.emu.write(path, file, value, nonblock=nonblock))
        if self._started:
            self._find_limited()
        return rc

    def read(self, path: str, file: str) -> str:
        return self.emu.read(path, file)

    def _bounded(self, fn):
        cfg = self.emu.state.config
        cfg[Cfg.LIVELOCK_LIMIT] = self.write_livelock_limit
        self._mark_user_space()
        try:
            return fn()
        finally:
            cfg[Cfg.LIVELOCK_LIMIT] = self.livelock_limit
            self._unmark_user_space()

    def add_task(self, path: str, program, kthread: bool = False, cpu: int = 0,
                 oom_score_adj: int = 0, start_ns: int = 0) -> int:
        """Create a task in cgroup ``path`` running ``program``.

        Parameters
        ----------
        path : str
            Its cgroup (kernel threads live in "/").
        program : array-like of PROGRAM_DTYPE
            Validated at once (ValueError naming the op index and field).
        kthread, cpu, oom_score_adj
            As ``Emulator.new_task``.
        start_ns : int
            When it starts (>= the current time).

        Returns
        -------
        int
            The pid.
        """
        start_ns = _check_int(start_ns, "start_ns", 0, 1 << 62)  # before the task exists
        prog = self._validated_program(program, kthread=kthread)
        if self._started and start_ns < self.now:
            raise ValueError(f"start_ns = {start_ns} is before the current time {self.now}")
        task = self.emu.new_task(path, kthread=kthread, cpu=cpu, oom_score_adj=oom_score_adj)
        self._grow_tasks()
        if self._started:
            self._bind()  # the task arrays may have been reallocated
        self._install(task.pid, prog, start_ns)
        return task.pid

    def add_thread(self, pid: int, program, cpu: int | None = None, start_ns: int = 0,
                   same_thread_group: bool = True) -> int:
        """Create a thread of process ``pid`` (``Emulator.new_thread``) running ``program``.

        It shares the process's mm: ``DOWN_READ``/``DOWN_WRITE`` with ``arg`` -1 take the
        one ``mmap_lock`` of that mm, its anon charges go to the mm owner's memcg, and an OOM
        kill takes the whole thread group (``same_thread_group=False``: a separate process
        sharing the mm, killed with it).

        Returns
        -------
        int
            The new pid.
        """
        prog = self._validated_program(program, kthread=False)
        if self._started and start_ns < self.now:
            raise ValueError(f"start_ns = {start_ns} is before the current time {self.now}")
        task = self.emu.new_thread(pid, cpu=cpu, same_thread_group=same_thread_group)
        self._grow_tasks()
        if self._started:
            self._bind()
        self._install(task.pid, prog, start_ns)
        return task.pid

    def set_program(self, pid: int, program, start_ns: int = 0) -> None:
        """Give an existing task (with no program yet) a program."""
        pid = self.emu._live_task(pid, "pid", runnable=False)
        self._grow_tasks()
        if pid in self._prog_of or pid == self.flusher.pid:
            raise ValueError(f"set_program: task pid {pid} already has a program")
        if int(self.emu.state.state[pid]) == _BLOCKED:
            raise ValueError(f"set_program: task pid {pid} is blocked; wake it first")
        kthread = bool(int(self.emu.state.flags[pid]) & PF_KTHREAD)
        start_ns = _check_int(start_ns, "start_ns", 0, 1 << 62)
        prog = self._validated_program(program, kthread=kthread)
        if self._started and start_ns < self.now:
            raise ValueError(f"start_ns = {start_ns} is before the current time {self.now}")
        self._install(pid, prog, start_ns)

    def _install(self, pid: int, prog: np.ndarray, start_ns: int) -> None:
        start_ns = _check_int(start_ns, "start_ns", 0, 1 << 62)
        exec_rows = prog.copy()
        op = exec_rows["op"]
        # the row as the replay loop needs it: task = the actor for task ops, -1 for memcg
        # ops, the target for KILL; TOp.EXIT is Op.EXIT
        is_memcg = np.isin(op, sorted(_MEMCG_ONLY_OPS))
        is_kill = op == Op.KILL
        exec_rows["task"] = np.where(is_memcg, -1,
                                     np.where(is_kill & (prog["task"] >= 0), prog["task"], pid))
        exec_rows["op"] = np.where(op == TOp.EXIT, Op.EXIT, op)
        base = self._n_rows
        self._n_rows += len(prog)
        self._pending_progs.append(exec_rows)
        self._prog_of[pid] = (base, base + len(prog))
        self._pc[pid] = base
        self._end[pid] = base + len(prog)
        self._start_ns[pid] = start_ns
        self._mode[pid] = M_READY
        if self._started:
            self._flush_programs()
            self._schedule(pid, start_ns)

    def _validated_program(self, program, kthread: bool) -> np.ndarray:
        from .replay import as_events, validate_events

        prog = as_events(program)
        n = len(prog)
        op = prog["op"].astype(np.int64)
        arg = prog["arg"]
        memcg = prog["memcg"]
        st = self.emu.state
        n_cg = st.n_cgroups

        def fail(mask, what):
            if mask.any():
                i = int(np.argmax(mask))
                raise ValueError(f"program op {i}: {what(i)}")

        known = np.isin(op, sorted(_REPLAY_OPS_ALLOWED | _TIMED_OPS))
        fail(~known, lambda i: f"field 'op' = {op[i]} is not a replay op (BLOCK, WAKE and "
                               f"OOM_REAP excluded) or a TOp")
        fail(prog["time"] < 0, lambda i: f"field 'time' = {prog['time'][i]} is negative")
        kill = op == Op.KILL
        fail(~kill & (prog["task"] != -1),
             lambda i: f"field 'task' = {prog['task'][i]} must be -1 (only KILL names a task)")
        fail(kill & (prog["task"] < -1), lambda i: f"field 'task' = {prog['task'][i]} < -1")
        # replay ops: the replay rules, with task = a valid stand-in
        rep = op < 32
        if rep.any():
            ev = prog[rep].copy()
            ev["task"] = np.where(np.isin(ev["op"], sorted(_MEMCG_ONLY_OPS)), -1, 0)
            flags = np.array([PF_KTHREAD if kthread else 0], dtype=np.int64)
            try:
                validate_events(ev, 1, st.online[:n_cg], flags)
            except ValueError as exc:
                msg = str(exc)
                j = int(msg.split(":", 1)[0].split()[1])
                raise ValueError(f"program op {int(np.flatnonzero(rep)[j])}: "
                                 f"{msg.split(':', 1)[1].strip()}") from None
        timed_nonneg = np.isin(op, [TOp.COMPUTE, TOp.SLEEP, TOp.MUTEX_LOCK, TOp.MUTEX_UNLOCK,
                                    TOp.JOURNAL_START])
        fail(timed_nonneg & (arg < 0), lambda i: f"field 'arg' = {arg[i]} must be >= 0 for "
                                                 f"{TOp(op[i]).name}")
        rw = np.isin(op, [TOp.DOWN_READ, TOp.UP_READ, TOp.DOWN_WRITE, TOp.UP_WRITE])
        fail(rw & (arg < -1), lambda i: f"field 'arg' = {arg[i]}: rwsem ids are >= 0, or -1 "
                                        f"for the task's own mmap_lock")
        fail(rw & (arg == -1) & kthread,
             lambda i: "a kernel thread has no mm, so no mmap_lock (arg -1)")
        dirty = op == TOp.DIRTY
        fail(dirty & ((arg < 1) | (arg > 1 << 40)),
             lambda i: f"field 'arg' (pages) = {arg[i]} must be in [1, 2**40] for DIRTY")
        fail(dirty & (prog["gfp"] > GFP_MASK_ALL),
             lambda i: f"field 'gfp' = {int(prog['gfp'][i]):#x} has undefined bits")
        fail(dirty & ((memcg < -1) | (memcg >= n_cg)),
             lambda i: f"field 'memcg' = {memcg[i]} out of range ({n_cg} cgroups)")
        if dirty.any():
            ok = np.append(st.online[:n_cg].astype(bool), True)
            fail(dirty & ~ok[np.where(dirty, memcg, -1)],
                 lambda i: f"field 'memcg' = {memcg[i]} is a removed cgroup")
        loop = op == TOp.LOOP
        idx = np.arange(n)
        fail(loop & ((arg < 0) | (arg >= idx)),
             lambda i: f"field 'arg' = {arg[i]}: LOOP jumps back to an earlier op (0..{i - 1})")
        fail(loop & (memcg < -1), lambda i: f"field 'memcg' (count) = {memcg[i]} must be "
                                            f">= -1 (-1: forever)")
        fail((op == Op.RETURN_TO_USER) & kthread,
             lambda i: "a kernel thread never returns to user space")
        return prog

    def add_control_ops(self, events) -> None:
        """Schedule memcg ops (task -1: limit writes, page-state changes, memory.reclaim)
        and ``KILL`` (task = target) at their ``time``, run by no emulated task (a cgroupfs
        writer or ``kill`` from outside).  Their costs are not waited by anyone."""
        from .replay import as_events, validate_events

        ev = as_events(events).copy()
        op = ev["op"]
        ok = np.isin(op, sorted(_MEMCG_ONLY_OPS | {int(Op.KILL)}))
        if not ok.all():
            i = int(np.argmax(~ok))
            raise ValueError(f"control op {i}: op {int(op[i])} is not a memcg op or KILL")
        st = self.emu.state
        validate_events(ev, st.n_tasks, st.online[: st.n_cgroups], st.flags[: st.n_tasks])
        if (ev["time"] < (self.now if self._started else 0)).any():
            raise ValueError("control ops cannot be scheduled in the past")
        base = len(self._ctl) + sum(len(c) for c in self._pending_ctl)
        self._pending_ctl.append(ev)
        if self._started:
            self._flush_control()
            for i in range(len(ev)):
                self._push(int(ev["time"][i]), A_CONTROL, base + i)

    # =========================================================================================
    # compiling the flat program store
    # =========================================================================================
    def _flush_programs(self) -> None:
        if not self._pending_progs:
            return
        new = np.concatenate(self._pending_progs)
        self._pending_progs = []
        self._exec = np.concatenate([self._exec, new]) if len(self._exec) else new
        self._exec = np.ascontiguousarray(self._exec)
        self._p_time += new["time"].tolist()
        self._p_op += new["op"].tolist()
        self._p_arg += new["arg"].tolist()
        self._p_task += new["task"].tolist()
        self._p_memcg += new["memcg"].tolist()
        self._p_gfp += new["gfp"].tolist()
        self._p_kind += new["kind"].tolist()
        self._loop_left += [-2] * len(new)
        self._rc = np.concatenate([self._rc, np.zeros(len(new), np.int64)])
        self._outcome = np.concatenate([self._outcome, np.zeros(len(new), np.uint8)])

    def _flush_control(self) -> None:
        if not self._pending_ctl:
            return
        new = np.concatenate(self._pending_ctl)
        self._pending_ctl = []
        self._ctl = np.ascontiguousarray(np.concatenate([self._ctl, new]))
        self._ctl_rc = np.concatenate([self._ctl_rc, np.zeros(len(new), np.int64)])
        self._ctl_outcome = np.concatenate([self._ctl_outcome, np.zeros(len(new), np.uint8)])

    def _start(self) -> None:
        """First run(): make the flusher, bind arrays, schedule every actor."""
        st = self.emu.state
        fl = self.flusher
        if self.flusher_config.enabled and fl.pid < 0:
            fl.pid = self.emu.new_task("/", kthread=True).pid
            self._grow_tasks()
            self._mode[fl.pid] = M_IDLE
        self._flush_programs()
        self._flush_control()
        self._started = True
        self._stats0 = st.stats.copy()
        for pid in self._prog_of:
            if self._alive[pid] and self._mode[pid] == M_READY:
                self._schedule(pid, self._start_ns[pid])
        for i in range(len(self._ctl)):
            self._push(int(self._ctl["time"][i]), A_CONTROL, i)
        if fl.pid >= 0:
            fl.next_tick = self.flusher_config.interval_ns
            fl.sleep()
        self._next_sample = 0
        self._bind()
        self._deliver_signals()  # tasks killed before the first run

    def _bind(self) -> None:
        """Cache the engine and the state arrays (they are not reallocated during a run)."""
        st = self.emu.state
        self._eng = self.emu._engine  # the unchecked engine: every row was validated
        self._st = st
        self._stats = st.stats
        self._tstate = st.state
        self._n_cg = st.n_cgroups
        depth = [1] * self._n_cg
        for c in range(1, self._n_cg):
            depth[c] = depth[int(st.parent[c])] + 1
        self._levels = depth
        self._rc1 = np.zeros(1, np.int64)
        self._out1 = np.zeros(1, np.uint8)
        self._z1 = np.zeros(0, np.int64)
        self._z2 = np.zeros((0, 1), np.int64)
        self._z3 = np.zeros((0, 1, 1), np.int64)
        self._find_limited()

    # =========================================================================================
    # the event loop
    # =========================================================================================
    def run(self, until_ns: int) -> TimedResult:
        """Run the simulation up to time ``until_ns`` (every event at times <= until_ns).

        It can be called again with a later time to continue.

        Returns
        -------
        TimedResult
            ``summary`` keys: ``sim_time_ns``; ``d_state_peak`` and ``d_state_task_seconds``
            (tasks in D state); ``journal_locked_max_ns`` (longest ``T_LOCKED`` phase of a
            transaction, from lock until its handles have drained, or to now) and
            ``journal_commits``; ``reclaim_while_holding_max_ns`` (longest charge or
            return-to-user path that reclaimed while its task held a journal handle or its
            mmap_lock, from path start to path end or to now); ``over_max_peak_pages`` (max
            over time and cgroups of usage - memory.max) and ``over_max_page_seconds`` (sum over
            cgroups of its time integral; ``..._by_cgroup`` splits it); ``reclaim_passes``,
            ``reclaim_scanned``, ``reclaim_reclaimed``, ``oom_invocations``, ``oom_kills``;
            ``victims_unable_to_exit`` (OOM victims in D state when the kill was seen) and
            ``victims_pending`` (killed, not exited by the end); ``exits`` (exits begun),
            ``syscalls_unwound`` and ``ops_skipped_unwinding``; ``livelocks``
            (paths still looping reclaim -> OOM at the end, plus the engine's bounded
            livelocks) and ``paths_unfinished``; ``throttle_sleep_task_seconds``;
            ``file_ops`` (completed DIRTY ops and page-cache charges of the programs),
            ``file_ops_per_sec`` (per simulated second), ``ops_completed``, ``op_errors``;
            ``flusher_pages_written``, ``flusher_wakeups``, ``reaped_pages``,
            ``reaper_gave_up``; ``forced_charges``, ``enomem``, ``over_max_oom_skipped``
            (deferred OOMs that mem_cgroup_oom() refused for order > 3); ``events``,
            ``wall_seconds``, ``events_per_sec``,
            ``ops_per_sec`` (wall-clock).
        """
        until_ns = _check_int(until_ns, "until_ns", 0, 1 << 62)
        if until_ns < self.now:
            raise ValueError(f"until_ns = {until_ns} is before the current time {self.now}")
        self._check_run_bounds(until_ns)
        if not self._started:
            self._start()
        self._bind()
        if self.scheduler == "cython":
            return self._run_compiled(until_ns)
        self._run_python(until_ns)
        return self._result()

    def _run_compiled(self, until_ns: int) -> TimedResult:
        """run() on the compiled scheduler: the same loop (memcg_emu._tsched.TimedCore) over
        this object's state, handed over before and taken back after (also on an error)."""
        core = _backend._tsched.TimedCore()
        core.load(self, until_ns)
        t0 = _time.perf_counter()
        try:
            core.run(until_ns)
        finally:
            events = core.store(self)
        self._events += events
        self._wall += _time.perf_counter() - t0
        return self._result()

    def _check_run_bounds(self, until_ns: int) -> None:
        """Refuse, before anything runs, a run whose fixed-period work has no useful bound:
        the sampled series (one sample per ``sample_dt_ns``, kept in memory) and the
        flusher's periodic wake-ups (one per ``FlusherConfig.interval_ns``)."""
        have = len(self._samples["time_ns"])
        first = self._next_sample if self._started else 0
        new = (until_ns - first) // self.sample_dt_ns + 1 if until_ns >= first else 0
        if have + new > MAX_SAMPLES:
            raise LimitError(
                f"until_ns = {until_ns}: sampling every sample_dt_ns = {self.sample_dt_ns} ns "
                f"would keep {have + new:,} samples, more than MAX_SAMPLES = {MAX_SAMPLES:,} "
                f"(memcg_emu.timed); run less simulated time or sample less often")
        if self.flusher_config.enabled:
            ticks = (until_ns - self.now) // self.flusher_config.interval_ns
            if ticks > MAX_PERIODIC_WAKEUPS:
                raise LimitError(
                    f"until_ns = {until_ns}: the flusher would wake {ticks:,} times "
                    f"(every FlusherConfig.interval_ns = {self.flusher_config.interval_ns} ns), "
                    f"more than MAX_PERIODIC_WAKEUPS = {MAX_PERIODIC_WAKEUPS:,} per run "
                    f"(memcg_emu.timed); run less simulated time")

    # =========================================================================================
    # results
    # =========================================================================================
    def _result(self) -> TimedResult:
        st = self._st
        now = self.now
        d = st.stats - self._stats0
        n = st.n_tasks
        hold = self._hold_max
        unfinished = 0
        looping = 0
        for t in range(len(self._path)):
            if self._path[t] != P_NONE and self._alive[t]:
                unfinished += 1
                if self._pooms[t]:
                    looping += 1
                if self._pholding[t] and self._preclaims[t]:
                    hold = max(hold, now - self._pstart[t])
        fpid = self.flusher.pid
        j = self.journal
        j_locked = j.locked_max
        if j.state == J_LOCKED:
            j_locked = max(j_locked, now - j.locked_since)
        pending = int(((st.oom_victim[:n] == 1) & (st.state[:n] != _EXITED)).sum())
        secs = now / NS_PER_SEC
        cgroups = [self.emu.cgroup_path(c) for c in range(self._n_cg)]
        summary = {
            "policy": self.policy,
            "scheduler": self.scheduler,
            "sim_time_ns": now,
            "d_state_peak": self._d_peak,
            "d_state_task_seconds": self._d_ns / NS_PER_SEC,
            "d_state_peak_by_wait": dict(zip(WAIT_NAMES, self._d_peak_by)),
            "d_state_at_peak_by_wait": dict(zip(WAIT_NAMES, self._d_at_peak)),
            "d_state_task_seconds_by_wait": {
                w: ns / NS_PER_SEC for w, ns in zip(WAIT_NAMES, self._d_ns_by)},
            "dirty_pauses": self._dirty_pauses,
            "dirty_pause_task_seconds": self._dirty_pause_ns / NS_PER_SEC,
            "reclaim_throttles": self._rthrottles,
            "reclaim_throttle_task_seconds": self._rthrottle_ns / NS_PER_SEC,
            "handle_over_max_task_seconds": self._over_max_ns / NS_PER_SEC,
            "journal_locked_max_ns": j_locked,
            "journal_commits": j.commits,
            "reclaim_while_holding_max_ns": hold,
            "over_max_peak_pages": self._over_peak,
            "over_max_page_seconds": self._over_page_ns / NS_PER_SEC,
            "over_max_page_seconds_by_cgroup": {
                cgroups[c]: self._over_ps[c] / NS_PER_SEC for c in sorted(self._over_ps)},
            "over_max_peak_pages_by_cgroup": {
                cgroups[c]: v for c, v in sorted(self._over_peak_by.items())},
            "tasks_alive_end_by_cgroup": {
                cgroups[c]: int(v) for c, v in enumerate(self._alive_by_cgroup().tolist())},
            "reclaim_passes": int(d[_S_RC]),
            "reclaim_scanned": int(d[_S_SCAN]),
            "reclaim_reclaimed": int(d[_S_RECL]),
            "oom_invocations": int(d[_S_OOM]),
            "oom_kills": int(d[_S_KILL]),
            "oom_invocations_no_kill": self._oom_nokill,
            "victims_unable_to_exit": self._victims_unable,
            "exits": self._exits,
            "syscalls_unwound": self._unwinds,
            "ops_skipped_unwinding": self._ops_skipped,
            "victims_pending": pending,
            "livelocks": looping + int(d[_S_LIVELOCK]),
            "paths_unfinished": unfinished,
            "throttle_sleep_task_seconds": self._throttle_ns / NS_PER_SEC,
            "file_ops": self._file_ops,
            "file_ops_per_sec": self._file_ops / secs if secs else 0.0,
            "ops_completed": self._ops_completed,
            "op_errors": self._op_errors,
            "flusher_pages_written": self.flusher.pages,
            "flusher_journal_wait_max_ns": max(self._f_jwait_max, (
                now - self._d_since[fpid]) if fpid >= 0
                and self._mode[fpid] == M_BLOCKED else 0),
            "flusher_journal_wait_seconds": self._f_jwait_ns / NS_PER_SEC,
            "flusher_wakeups": int(d[_S_FLUSH]),
            "reaped_pages": int(d[Stat.REAPED_PAGES]),
            "reaper_gave_up": self.reaper.gave_up,
            "forced_charges": int(d[Stat.FORCED_CHARGES]),
            "enomem": int(d[Stat.ENOMEM]),
            "over_max_oom_skipped": int(d[Stat.OVER_MAX_OOM_SKIPPED]),
            "deferred_oom_skipped": int(d[Stat.OVER_MAX_OOM_SKIPPED]),
            "events": self._events,
            "wall_seconds": self._wall,
            "events_per_sec": self._events / self._wall if self._wall else 0.0,
            "ops_per_sec": self._ops_completed / self._wall if self._wall else 0.0,
        }
        s = self._samples
        n_cg = self._n_cg
        series = {
            "time_ns": np.array(s["time_ns"], np.int64),
            "d_state_tasks": np.array(s["d_state_tasks"], np.int64),
            "usage": np.array(s["usage"], np.int64).reshape(-1, n_cg),
            "max": np.array(s["max"], np.int64).reshape(-1, n_cg),
            "journal_locked": np.array(s["journal_locked"], np.int64),
            "handles": np.array(s["handles"], np.int64),
            "in_kernel_path": np.array(s["in_kernel_path"], np.int64),
            "oom_kills": np.array(s["oom_kills"], np.int64),
            "ops_completed": np.array(s["ops_completed"], np.int64),
            "d_state_by_wait": np.array(s["d_state_by_wait"], np.int64).reshape(
                -1, len(WAIT_NAMES)),
            "pool": np.array(s["pool"], np.int64).reshape(-1, n_cg, NR_KINDS),
            "reclaim_scanned": np.array(s["reclaim_scanned"], np.int64),
            "reclaim_reclaimed": np.array(s["reclaim_reclaimed"], np.int64),
            "tasks_alive": np.array(s["tasks_alive"], np.int64).reshape(-1, n_cg),
        }
        rc = {pid: self._rc[a:b].copy() for pid, (a, b) in self._prog_of.items()}
        outcome = {pid: self._outcome[a:b].copy() for pid, (a, b) in self._prog_of.items()}
        return TimedResult(summary=summary, series=series, cgroups=cgroups, rc=rc,
                           outcome=outcome, control_rc=self._ctl_rc.copy(),
                           control_outcome=self._ctl_outcome.copy())


name_public_calls(TimedSim)
name_public_calls(ProgramBuilder)


# =============================================================================================
# a generated scenario: the jbd2 incident (docs/design.md §1), thousands of tasks from numpy
# =============================================================================================
def incident_scenario(policy: str = "baseline", n_tasks: int = 1000, seed: int = 0, *,
                      limit_mib: int = 64, working_set_pages: int = 64, costs=None,
                      backend: str | None = None, nr_cpus: int = 4,
                      sample_dt_ns: int = 10_000_000, **sim_kwargs) -> TimedSim:
    """The ByteDance jbd2 incident as a timed workload (programs generated with numpy).

    One cgroup ``/job`` with ``memory.max`` = ``limit_mib``; ``n_tasks`` tasks, each first
    faulting in ``working_set_pages`` of anon (its OOM badness), then looping forever over a
    file-system write: ``journal_start``; a metadata buffer charged NOFAIL under the handle
    (``sb_getblk`` -> ``grow_dev_page``: ``GFP_NOFS | __GFP_NOFAIL``, dirtied); some CPU work;
    ``journal_stop``; 1-8 dirty data pages (``GFP_HIGHUSER_MOVABLE`` minus FS, as
    ``write_begin``); return to user; think time.  Every tenth task instead maps memory under
    its ``mmap_lock`` (write), charging 8 anon pages while holding it, and frees them
    later.  ``strict`` defaults to False here (an uncharge of pages the OOM reaper already
    freed is skipped and counted in ``op_errors``).
    Dirty pages can only be cleaned by the flusher, which needs the journal; direct reclaim
    can only drop clean page cache.  Sizes, think times and CPU work are drawn per task from
    ``seed``.

    Returns
    -------
    TimedSim
        Ready to ``run``.
    """
    from ._constants import GFP_HIGHUSER_MOVABLE, __GFP_FS

    rng = np.random.default_rng(seed)
    sim_kwargs.setdefault("strict", False)
    sim = TimedSim(policy=policy, nr_cpus=nr_cpus, seed=seed, costs=costs, backend=backend,
                   sample_dt_ns=sample_dt_ns, **sim_kwargs)
    sim.mkdir("job")
    sim.write("job", "memory.max", f"{limit_mib}M")
    write_gfp = GFP_HIGHUSER_MOVABLE & ~__GFP_FS
    meta_gfp = GFP_NOFS | __GFP_NOFAIL
    # template of the writer loop (index 1 is the loop head)
    writer = (ProgramBuilder().charge(working_set_pages, GFP_HIGHUSER_MOVABLE, PageKind.ANON)
              .journal_start(4).dirty(1, gfp=meta_gfp).compute(0).journal_stop()
              .dirty(1, gfp=write_gfp).return_to_user().sleep(0).loop(1).build())
    mapper = (ProgramBuilder().charge(working_set_pages, GFP_HIGHUSER_MOVABLE, PageKind.ANON)
              .down_write(-1).charge(8, GFP_HIGHUSER_MOVABLE, PageKind.ANON).compute(0)
              .up_write(-1).return_to_user().sleep(0)
              .uncharge(8, PageKind.ANON).return_to_user().loop(1).build())
    n_map = n_tasks // 10
    n_wr = n_tasks - n_map
    progs_w = np.tile(writer, (n_wr, 1))
    progs_w[:, 3]["arg"] = rng.integers(5_000, 50_000, n_wr)  # CPU work under the handle
    progs_w[:, 5]["arg"] = rng.integers(1, 9, n_wr)  # data pages per write
    progs_w[:, 7]["arg"] = rng.integers(100_000, 2_000_000, n_wr)  # think time
    progs_m = np.tile(mapper, (n_map, 1))
    progs_m[:, 3]["arg"] = rng.integers(10_000, 100_000, n_map)
    progs_m[:, 6]["arg"] = rng.integers(1_000_000, 10_000_000, n_map)
    starts = rng.integers(0, 10_000_000, n_tasks)
    cpus = rng.integers(0, nr_cpus, n_tasks)
    order = rng.permutation(n_tasks)
    for i, k in enumerate(order.tolist()):
        prog = progs_m[k - n_wr] if k >= n_wr else progs_w[k]
        sim.add_task("job", prog, cpu=int(cpus[i]), start_ns=int(starts[i]))
    return sim


split_events = named("memcg_emu.timed.split_events")(split_events)
incident_scenario = named("memcg_emu.timed.incident_scenario")(incident_scenario)
