"""Built-in timed scenarios (docs/design.md §3.3).  Nothing in the engine knows them: each one only
creates cgroups, limits and task programs (:class:`~memcg_emu.timed.ProgramBuilder`) for a
:class:`~memcg_emu.timed.TimedSim`; every outcome emerges from the model.

``jbd2-stall``
    Modelled on the 2025 jbd2 incident, scaled to run in seconds.  An anon-heavy pod cgroup
    ``/pod`` (processes of many threads, heaps growing) sits at its ``memory.max``; its dirty
    page cache can only be cleaned by the flusher, which needs a journal handle per batch.
    Pod threads create files (the directory's ``i_rwsem``, a journal handle around the
    ``GFP_NOFS | __GFP_NOFAIL`` ``sb_getblk`` page of the inode table), write them (no handle:
    delalloc), fault under ``mmap_lock`` read, write a shared mapping (``page_mkwrite``'s
    handle under ``mmap_lock`` read) and fork (``vm_area_dup``'s kmem charge under
    ``mmap_lock`` write) (:func:`jbd2_pod_programs`).  Many tasks outside the pod
    (``/system``, no limit) do ordinary file work through the same journal.  The flusher runs
    and the journal commits periodically.
``mmap-lock-reclaim``
    One effect: a task that holds ``mmap_lock`` for write while it charges memory in a full
    cgroup whose only reclaimable pages are clean page cache (so every charge reclaims, and
    reclaim costs time).  Threads of the same process (:meth:`TimedSim.add_thread`) fault
    (``down_read`` of the process's ``mmap_lock``) and sit in D state (a killable wait) for as
    long as the holder reclaims; the OOM reaper's ``mmap_read_trylock`` on that mm fails
    meanwhile.
``high-throttle-storm``
    One effect: many tasks allocate anon memory (no swap: nothing reclaimable) in a cgroup far
    above ``memory.high``; each return to user sleeps the kernel's throttle penalty
    (killable, so not D state: ``throttle_sleep_task_seconds``).

Every builder returns a ready :class:`~memcg_emu.timed.TimedSim` with two extra attributes
set here: ``duration_ns`` (the scenario's default run length) and ``scenario_cgroup`` (the
path of its limited cgroup, for plots).  :func:`run` runs a scenario under several policies
and returns ``{policy: TimedResult}``; :func:`comparison` turns that into table rows.

Sizes and costs were chosen so that one run of ``jbd2-stall`` takes a few seconds on the
compiled engine and 20 seeds x 3 policies a few minutes on 2 cores (see each ``*Params``
class); the kernel's 5 s commit interval and flusher period are scaled down to 200 ms / 500
ms for a 4 s simulated run.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import timed
from ._constants import (
    GFP_HIGHUSER_MOVABLE,
    GFP_KERNEL,
    GFP_NOFS,
    PAGE_SIZE,
    PageKind,
    __GFP_FS,
    __GFP_NOFAIL,
)
from .timed import FlusherConfig, JournalConfig, ProgramBuilder, TimedSim

__all__ = ["DEFAULT_POLICIES", "SCENARIOS", "Scenario", "Jbd2StallParams",
           "MmapLockReclaimParams", "HighThrottleStormParams", "jbd2_stall",
           "mmap_lock_reclaim", "high_throttle_storm", "build", "run", "comparison",
           "scenario_cgroup_figures", "jbd2_pod_programs", "jbd2_outside_programs",
           "SUMMARY_ROWS"]

MS = 1_000_000
US = 1_000
DEFAULT_POLICIES = ("baseline", "accountforce-v1", "legacy-dying-bypass")
_ANON = int(PageKind.ANON)
_KERNEL = int(PageKind.KERNEL)
_META_GFP = GFP_NOFS | __GFP_NOFAIL  # sb_getblk -> grow_dev_page
_WRITE_GFP = GFP_HIGHUSER_MOVABLE & ~__GFP_FS  # write_begin's page cache charge


# =============================================================================================
# jbd2-stall
# =============================================================================================
@dataclass(frozen=True)
class Jbd2StallParams:
    """Sizes of ``jbd2-stall`` (pages unless named otherwise).

    The pod (``/pod``) has ``memory.max`` = ``pod_max_pages``; a set-up task leaves
    ``pod_dirty_fraction`` of it as dirty page cache.  The pod runs ``pod_procs`` processes of
    ``pod_threads`` threads each (:meth:`TimedSim.add_thread`: one mm, one ``mmap_lock``, one
    OOM kill per process).  Each process's leader faults in ``proc_anon_pages`` of heap, then
    loops as a forker (``vm_area_dup`` under ``mmap_lock`` write, a ``vma_pages`` kmem
    charge); the next ``mkwrite_threads`` threads write a shared file mapping
    (``page_mkwrite`` under ``mmap_lock`` read); the others create files, write them and
    fault anon (:func:`jbd2_pod_programs` cites the kernel function of every step).
    Outside tasks (``/system``, no limit) loop: handle, one NOFS kernel page, stop, one dirty
    page, think, free the kernel page.  Think times and start times are drawn from ``seed``.
    """

    pod_max_pages: int = 8192  # 32 MiB
    pod_dirty_fraction: float = 0.10  # 819 pages of dirty page cache
    pod_procs: int = 16
    pod_threads: int = 16  # 256 pod tasks
    mkwrite_threads: int = 2  # per process
    proc_anon_pages: int = 435  # per process: 6960 pages (85% of memory.max)
    grow_pages: int = 4  # per fork cycle and process: ~1,000 pages/s (4 MiB/s) for the pod
    file_pages: int = 2  # per write(2)
    fault_pages: int = 4
    vma_pages: int = 2  # vm_area_dup + anon_vma_fork slab, per fork
    create_credits: int = 8
    pod_think_ns: tuple = (5 * MS, 25 * MS)
    fork_think_ns: tuple = (20 * MS, 100 * MS)
    outside_tasks: int = 744  # 1000 tasks in all
    outside_think_ns: tuple = (5 * MS, 50 * MS)
    commit_interval_ns: int = 200 * MS
    flusher_interval_ns: int = 500 * MS
    duration_ns: int = 4_000 * MS
    nr_cpus: int = 8
    # CostModel.writeback_page_ns: a slow disk (40 MB/s, not the default 400 MB/s), so the
    # pod dirties pages faster than the flusher can clean them
    writeback_page_ns: int = 100 * US


_KMEM_GFP = GFP_KERNEL  # vm_area_cachep is SLAB_ACCOUNT: a GFP_KERNEL kmem charge
_FILE = int(PageKind.FILE)


def jbd2_pod_programs(threads: int, mkwrite_threads: int, proc_anon_pages: int,
                      file_pages: int, fault_pages: int, vma_pages: int, create_credits: int,
                      think_ns, fork_think_ns, count: int, rng, grow_pages: int = 0) -> list:
    """The programs of ``count`` pod processes x ``threads`` threads (process-major order):
    thread 0 the forker, threads 1..``mkwrite_threads`` the mmap writers, the rest file
    creators.  Random draws: one think time per task, in that order (then the forkers' fork
    think times).  Rwsem ``i`` is process i's working directory's ``i_rwsem``.

    Every step and the kernel function it stands for:

    * heap: ``charge(proc_anon_pages)`` -- anon faults (``do_anonymous_page``); after each
      fork the leader's heap grows by ``grow_pages`` (faults under ``mmap_lock`` read, never
      freed), so the pod keeps running into its limit;
    * fork: ``down_write(mmap_lock)`` (``dup_mmap``: ``mmap_write_lock_killable``), a
      ``GFP_KERNEL`` kmem charge (``vm_area_dup`` -> ``kmem_cache_alloc(vm_area_cachep)``,
      ``anon_vma_fork``) that reclaims and OOMs under the lock, ``up_write``; the child's
      exit frees the pages later (``uncharge``);
    * create (``open(O_CREAT)``): ``down_write(dir i_rwsem)`` (``open_last_lookups`` ->
      ``inode_lock``), ``journal_start(create_credits)`` (``ext4_create`` ->
      ``__ext4_new_inode`` -> ``ext4_journal_start_sb``), one ``GFP_NOFS | __GFP_NOFAIL``
      page of the block device's page cache, dirtied (``ext4_mark_inode_dirty`` ->
      ``__ext4_get_inode_loc`` -> ``sb_getblk`` -> ``grow_dev_page``; a cache miss every
      time), ``journal_stop``, ``up_write``;
    * write(2): ``file_pages`` dirty page-cache pages with no handle (``ext4_da_write_begin``
      -> ``__filemap_get_folio(FGP_WRITEBEGIN)``: delalloc reserves, takes no handle);
    * fault: ``down_read(mmap_lock)`` (``lock_mm_and_find_vma``), ``fault_pages`` anon,
      ``up_read``; free: ``down_read`` (``madvise(MADV_DONTNEED)``), ``uncharge``,
      ``up_read``;
    * page_mkwrite: ``down_read(mmap_lock)``, ``journal_start(2)`` / ``journal_stop``
      (``do_page_mkwrite`` -> ``ext4_page_mkwrite`` -> ``file_update_time`` ->
      ``ext4_dirty_inode``), ``up_read``, then the page charged and dirtied, where
      ``fault_dirty_shared_page()`` throttles the dirtier (``balance_dirty_pages``) after
      ``maybe_unlock_mmap_for_io()`` dropped the lock (the page's charge in
      ``filemap_fault``, under the lock, is moved after it: a simplification).

    Each system call ends with a return to user space; a thread thinks between calls.
    """
    from .timed import ProgramBuilder

    def forker():
        b = (ProgramBuilder().charge(proc_anon_pages, GFP_HIGHUSER_MOVABLE, _ANON)
             .return_to_user())
        head = len(b)
        b.down_write(-1).charge(vma_pages, _KMEM_GFP, _KERNEL).up_write(-1).return_to_user()
        if grow_pages:  # the heap grows (never freed): faults under mmap_lock read
            b.down_read(-1).charge(grow_pages, GFP_HIGHUSER_MOVABLE, _ANON).up_read(-1)
            b.return_to_user()
        sleep = len(b)
        b.sleep(0).uncharge(vma_pages, _KERNEL).return_to_user().loop(head)
        return b.build(), sleep

    def mkwriter():
        b = (ProgramBuilder().down_read(-1).journal_start(2).journal_stop().up_read(-1)
             .dirty(1, gfp=_WRITE_GFP).return_to_user())
        sleep = len(b)
        b.sleep(0).loop(0)
        return b.build(), sleep

    def creator(proc):
        b = (ProgramBuilder().down_write(proc).journal_start(create_credits)
             .dirty(1, gfp=_META_GFP).journal_stop().up_write(proc).return_to_user()
             .dirty(file_pages, gfp=_WRITE_GFP).return_to_user()
             .down_read(-1).charge(fault_pages, GFP_HIGHUSER_MOVABLE, _ANON).up_read(-1)
             .return_to_user())
        sleep = len(b)
        b.sleep(0).down_read(-1).uncharge(fault_pages, _ANON).up_read(-1).return_to_user()
        b.loop(0)
        return b.build(), sleep

    n = count * threads
    think = rng.integers(*think_ns, n)
    fork_think = rng.integers(*fork_think_ns, count)
    progs = []
    for i in range(count):
        for j in range(threads):
            if j == 0:
                prog, k = forker()
                prog[k]["arg"] = fork_think[i]
            elif j <= mkwrite_threads:
                prog, k = mkwriter()
                prog[k]["arg"] = think[i * threads + j]
            else:
                prog, k = creator(i)
                prog[k]["arg"] = think[i * threads + j]
            progs.append(prog)
    return progs


def jbd2_outside_programs(think_ns, count: int, rng) -> np.ndarray:
    """Tasks outside the pod: ordinary file work through the same journal."""
    out = (ProgramBuilder()
           .journal_start(1)                                               # 0
           .charge(1, GFP_NOFS, _KERNEL)                                   # 1 metadata
           .journal_stop()                                                 # 2
           .dirty(1, gfp=_WRITE_GFP)                                       # 3 data
           .return_to_user()                                               # 4
           .sleep(0)                                                       # 5 think
           .uncharge(1, _KERNEL)                                           # 6
           .loop(0)                                                        # 7
           .build())
    progs = np.tile(out, (count, 1))
    progs[:, 5]["arg"] = rng.integers(*think_ns, count)
    return progs


def jbd2_stall(policy: str = "baseline", *, seed: int = 0, backend: str | None = None,
               params: Jbd2StallParams | None = None, costs: timed.CostModel | None = None,
               sample_dt_ns: int = 7 * MS, **sim_kwargs) -> TimedSim:
    """Build ``jbd2-stall`` (see the module docstring and :class:`Jbd2StallParams`).  The
    default sampling period (7 ms) is prime to the 200 ms commit interval's multiples of 10
    ms, so the samples do not alias the commit period."""
    p = params or Jbd2StallParams()
    if costs is None:
        costs = timed.CostModel(writeback_page_ns=p.writeback_page_ns)
    rng = np.random.default_rng(seed)
    sim_kwargs.setdefault("strict", False)  # an uncharge of reaped pages is skipped, counted
    sim = TimedSim(policy=policy, nr_cpus=p.nr_cpus, seed=seed, costs=costs, backend=backend,
                   sample_dt_ns=sample_dt_ns,
                   journal=JournalConfig(commit_interval_ns=p.commit_interval_ns),
                   flusher=FlusherConfig(interval_ns=p.flusher_interval_ns), **sim_kwargs)
    sim.mkdir("pod")
    sim.mkdir("system")
    sim.write("pod", "memory.max", p.pod_max_pages * PAGE_SIZE)
    dirty = int(p.pod_max_pages * p.pod_dirty_fraction)
    # a set-up task leaves the pod's page cache behind, dirty (written, not yet written back)
    sim.add_task("pod", ProgramBuilder().dirty(dirty, gfp=GFP_KERNEL).exit().build())

    progs = jbd2_pod_programs(p.pod_threads, p.mkwrite_threads, p.proc_anon_pages,
                              p.file_pages, p.fault_pages, p.vma_pages, p.create_credits,
                              p.pod_think_ns, p.fork_think_ns, p.pod_procs, rng,
                              grow_pages=p.grow_pages)
    n = p.pod_procs * p.pod_threads
    starts = rng.integers(0, 20 * MS, n)
    for i in range(p.pod_procs):
        leader = -1
        for j in range(p.pod_threads):
            k = i * p.pod_threads + j
            if j == 0:
                leader = sim.add_task("pod", progs[k], cpu=k % p.nr_cpus,
                                      start_ns=int(starts[k]))
            else:
                sim.add_thread(leader, progs[k], cpu=k % p.nr_cpus, start_ns=int(starts[k]))

    progs = jbd2_outside_programs(p.outside_think_ns, p.outside_tasks, rng)
    starts = rng.integers(0, 20 * MS, p.outside_tasks)
    for i in range(p.outside_tasks):
        sim.add_task("system", progs[i], cpu=i % p.nr_cpus, start_ns=int(starts[i]))
    sim.duration_ns = p.duration_ns
    sim.scenario_cgroup = "/pod"
    return sim


# =============================================================================================
# mmap-lock-reclaim
# =============================================================================================
@dataclass(frozen=True)
class MmapLockReclaimParams:
    """Sizes of ``mmap-lock-reclaim`` (pages unless named otherwise).

    ``/app`` has ``memory.max`` = ``max_pages``, filled to ``fill_pages`` with clean page
    cache.  The holder loops: take ``mmap_lock`` (write), charge ``chunks`` x ``chunk_pages``
    anon (each charge reclaims clean cache), drop it, return to user, sleep, free the anon and
    read as much clean page cache back in.  ``readers`` threads loop: fault
    (``down_read`` of the shared lock), compute, ``up_read``, sleep.  Reclaim is made slow
    (``page_scanned_ns``/``page_reclaimed_ns``) so the effect is visible.
    """

    max_pages: int = 4096
    fill_pages: int = 4000
    chunks: int = 16
    chunk_pages: int = 64
    readers: int = 32
    holder_sleep_ns: int = 5 * MS
    reader_sleep_ns: int = 1 * MS
    page_scanned_ns: int = 2 * US
    page_reclaimed_ns: int = 20 * US
    duration_ns: int = 500 * MS


def mmap_lock_reclaim(policy: str = "baseline", *, seed: int = 0, backend: str | None = None,
                      params: MmapLockReclaimParams | None = None,
                      costs: timed.CostModel | None = None, sample_dt_ns: int = 5 * MS,
                      **sim_kwargs) -> TimedSim:
    """Build ``mmap-lock-reclaim`` (see the module docstring)."""
    p = params or MmapLockReclaimParams()
    if costs is None:
        costs = timed.CostModel(page_scanned_ns=p.page_scanned_ns,
                                page_reclaimed_ns=p.page_reclaimed_ns)
    sim = TimedSim(policy=policy, nr_cpus=4, seed=seed, costs=costs, backend=backend,
                   sample_dt_ns=sample_dt_ns, **sim_kwargs)
    sim.mkdir("app")
    sim.write("app", "memory.max", p.max_pages * PAGE_SIZE)
    sim.add_task("app", ProgramBuilder().charge(p.fill_pages, GFP_KERNEL, PageKind.FILE)
                 .exit().build())
    b = ProgramBuilder().down_write(-1)
    for _ in range(p.chunks):
        b.charge(p.chunk_pages, GFP_HIGHUSER_MOVABLE, _ANON)
    b.up_write(-1).return_to_user().sleep(p.holder_sleep_ns)
    # free the anon, then read files back in (clean page cache): the cgroup is full again
    b.uncharge(p.chunks * p.chunk_pages, _ANON)
    b.charge(p.chunks * p.chunk_pages, GFP_KERNEL, PageKind.FILE).return_to_user().loop(0)
    holder = sim.add_task("app", b.build(), start_ns=1 * MS)
    reader = (ProgramBuilder().down_read(-1).compute(50 * US).up_read(-1)
              .return_to_user().sleep(p.reader_sleep_ns).loop(0).build())
    for i in range(p.readers):
        sim.add_thread(holder, reader, cpu=i % 4, start_ns=i * 10 * US)
    sim.duration_ns = p.duration_ns
    sim.scenario_cgroup = "/app"
    return sim


# =============================================================================================
# high-throttle-storm
# =============================================================================================
@dataclass(frozen=True)
class HighThrottleStormParams:
    """Sizes of ``high-throttle-storm``: ``/batch`` with ``memory.high`` = ``high_pages``;
    ``tasks`` tasks each charge ``chunk_pages`` anon then return to user, ``rounds`` times,
    with ``compute_ns`` of work between (no swap: nothing is reclaimable)."""

    high_pages: int = 2048
    tasks: int = 64
    chunk_pages: int = 64
    rounds: int = 40
    compute_ns: int = 100 * US
    duration_ns: int = 2_000 * MS


def high_throttle_storm(policy: str = "baseline", *, seed: int = 0,
                        backend: str | None = None,
                        params: HighThrottleStormParams | None = None,
                        costs: timed.CostModel | None = None, sample_dt_ns: int = 10 * MS,
                        **sim_kwargs) -> TimedSim:
    """Build ``high-throttle-storm`` (see the module docstring)."""
    p = params or HighThrottleStormParams()
    sim = TimedSim(policy=policy, nr_cpus=4, seed=seed, costs=costs, backend=backend,
                   sample_dt_ns=sample_dt_ns, **sim_kwargs)
    sim.mkdir("batch")
    sim.write("batch", "memory.high", p.high_pages * PAGE_SIZE)
    body = (ProgramBuilder().charge(p.chunk_pages, GFP_HIGHUSER_MOVABLE, _ANON)
            .return_to_user().compute(p.compute_ns).loop(0, p.rounds).build())
    for i in range(p.tasks):
        sim.add_task("batch", body, cpu=i % 4, start_ns=i * 100 * US)
    sim.duration_ns = p.duration_ns
    sim.scenario_cgroup = "/batch"
    return sim


# =============================================================================================
# registry, running, comparing
# =============================================================================================
@dataclass(frozen=True)
class Scenario:
    name: str
    builder: object
    description: str
    params: type = field(default=None)


SCENARIOS = {
    "jbd2-stall": Scenario(
        "jbd2-stall", jbd2_stall,
        "the jbd2 incident: an anon-heavy pod (16 processes x 16 threads) at memory.max "
        "creating files (journal handles, NOFAIL sb_getblk charges), writing, faulting and "
        "forking under mmap_lock; 744 tasks outside sharing the journal, flusher, periodic "
        "commits", Jbd2StallParams),
    "mmap-lock-reclaim": Scenario(
        "mmap-lock-reclaim", mmap_lock_reclaim,
        "an mmap_lock writer reclaiming in a full cgroup; the process's other threads wait "
        "in D state", MmapLockReclaimParams),
    "high-throttle-storm": Scenario(
        "high-throttle-storm", high_throttle_storm,
        "many allocators far above memory.high with nothing reclaimable: throttle sleeps",
        HighThrottleStormParams),
}


def build(name: str, policy: str = "baseline", **kw) -> TimedSim:
    """Build scenario ``name`` for ``policy`` (``kw``: the builder's keyword arguments)."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
    return SCENARIOS[name].builder(policy, **kw)


def run(name: str, policies=DEFAULT_POLICIES, *, seed: int = 0, backend: str | None = None,
        duration_ns: int | None = None, **kw) -> dict:
    """Run scenario ``name`` under each policy (a fresh simulation each); returns
    ``{policy name: TimedResult}`` in the order given (a policy is a preset name, a
    :class:`~memcg_emu.policy.Policy` or ``"FILE.toml:NAME"``).  Each result's ``summary``
    gets ``scenario_cgroup`` (the limited cgroup's path) and
    :func:`scenario_cgroup_figures` added."""
    out = {}
    for policy in policies:
        sim = build(name, policy, seed=seed, backend=backend, **kw)
        if sim.policy in out:
            continue
        res = sim.run(sim.duration_ns if duration_ns is None else duration_ns)
        res.summary["scenario"] = name
        res.summary["scenario_cgroup"] = sim.scenario_cgroup
        res.summary.update(scenario_cgroup_figures(res, sim.scenario_cgroup))
        out[sim.policy] = res
    return out


def scenario_cgroup_figures(res, cgroup: str) -> dict:
    """Figures of a timed run's limited cgroup (the pod): ``pod_tasks_alive_end`` (its
    tasks not exited at the end), ``pod_tasks_at_start``, ``over_max_peak_pct`` (its peak
    usage - memory.max in % of memory.max), ``pod_over_max_page_seconds`` and the time of
    its first OOM kill (``first_oom_kill_s``, -1 if none)."""
    s = res.summary
    j = res.cgroups.index(cgroup)
    mx = int(res.series["max"][-1, j]) if len(res.series["max"]) else 0
    peak = s["over_max_peak_pages_by_cgroup"].get(cgroup, 0)
    kills = res.series["oom_kills"]
    first = np.flatnonzero(kills > 0)
    return {
        "d_state_at_peak_mmap_lock": s["d_state_at_peak_by_wait"]["mmap_lock"],
        "d_state_at_peak_journal": s["d_state_at_peak_by_wait"]["journal"],
        "pod_tasks_alive_end": s["tasks_alive_end_by_cgroup"][cgroup],
        "pod_tasks_at_start": int(res.series["tasks_alive"][:, j].max())
        if len(res.series["tasks_alive"]) else 0,
        "over_max_peak_pct": 100.0 * peak / mx if 0 < mx < (1 << 50) else 0.0,
        "pod_over_max_page_seconds": s["over_max_page_seconds_by_cgroup"].get(cgroup, 0.0),
        "first_oom_kill_s": (res.series["time_ns"][first[0]] / timed.NS_PER_SEC if len(first)
                             else -1.0),
    }


def _ms(ns) -> str:
    return f"{ns / MS:,.1f}"


#: (label, summary key, formatter) of the comparison table, in order.
SUMMARY_ROWS = [
    ("simulated time (ms)", "sim_time_ns", _ms),
    ("D-state tasks, peak", "d_state_peak", "{:,}".format),
    ("  of which on mmap_lock (at the peak)", "d_state_at_peak_mmap_lock", "{:,}".format),
    ("  of which on the journal (at the peak)", "d_state_at_peak_journal", "{:,}".format),
    ("D-state task-seconds", "d_state_task_seconds", "{:,.2f}".format),
    ("journal locked, longest (ms)", "journal_locked_max_ns", _ms),
    ("journal commits", "journal_commits", "{:,}".format),
    ("reclaim while holding handle/mmap_lock, longest (ms)",
     "reclaim_while_holding_max_ns", _ms),
    ("over memory.max, peak (pages)", "over_max_peak_pages", "{:,}".format),
    ("over memory.max (page-seconds)", "over_max_page_seconds", "{:,.2f}".format),
    ("reclaim passes", "reclaim_passes", "{:,}".format),
    ("reclaim scanned (pages)", "reclaim_scanned", "{:,}".format),
    ("reclaim reclaimed (pages)", "reclaim_reclaimed", "{:,}".format),
    ("OOM invocations", "oom_invocations", "{:,}".format),
    ("deferred OOMs skipped (order > 3)", "deferred_oom_skipped", "{:,}".format),
    ("OOM kills", "oom_kills", "{:,}".format),
    ("pod tasks alive at end", "pod_tasks_alive_end", "{:,}".format),
    ("OOM invocations that killed nobody", "oom_invocations_no_kill", "{:,}".format),
    ("in mem_cgroup_handle_over_max (task-s)", "handle_over_max_task_seconds",
     "{:,.2f}".format),
    ("reclaim_throttle sleeps (task-s)", "reclaim_throttle_task_seconds", "{:,.2f}".format),
    ("balance_dirty_pages pauses (task-s)", "dirty_pause_task_seconds", "{:,.2f}".format),
    ("victims unable to exit", "victims_unable_to_exit", "{:,}".format),
    ("victims pending at end", "victims_pending", "{:,}".format),
    ("reaper gave up", "reaper_gave_up", "{:,}".format),
    ("livelocks (looping at end)", "livelocks", "{:,}".format),
    ("paths unfinished at end", "paths_unfinished", "{:,}".format),
    ("forced charges", "forced_charges", "{:,}".format),
    ("-ENOMEM charges", "enomem", "{:,}".format),
    ("throttle sleep (task-seconds)", "throttle_sleep_task_seconds", "{:,.2f}".format),
    ("file ops", "file_ops", "{:,}".format),
    ("file ops / simulated s", "file_ops_per_sec", "{:,.0f}".format),
    ("ops completed", "ops_completed", "{:,}".format),
    ("flusher pages written", "flusher_pages_written", "{:,}".format),
    ("scheduler events", "events", "{:,}".format),
    ("wall time (s)", "wall_seconds", "{:,.2f}".format),
    ("scheduler events / s", "events_per_sec", "{:,.0f}".format),
]


def comparison(results: dict) -> list[tuple[str, list[str]]]:
    """``[(label, [cell per policy])]`` for :data:`SUMMARY_ROWS` (rows = metrics)."""
    return [(label, [fmt(r.summary[key]) if key in r.summary else "-"
                     for r in results.values()])
            for label, key, fmt in SUMMARY_ROWS]


def _name_calls() -> None:
    from ._api import named

    for fn in (build, run, jbd2_stall, mmap_lock_reclaim, high_throttle_storm):
        globals()[fn.__name__] = named(f"memcg_emu.scenarios.{fn.__name__}")(fn)


_name_calls()
