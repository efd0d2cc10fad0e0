"""Timed simulation (memcg_emu.timed): replay equivalence at zero cost, and known answers for
each modelled mechanism, derived from the model's parameters (CostModel, JournalConfig,
FlusherConfig) and the kernel constants (OOM_REAPER_DELAY, MAX_OOM_REAP_RETRIES, the
docs/model.md §6.2
delay arithmetic).  Every test runs on both engines (the ``backend`` fixture)."""
from dataclasses import replace

import numpy as np
import pytest

import memcg_emu as me
from memcg_emu.policy import Policy
from memcg_emu import (
    GFP_KERNEL,
    GFP_NOFS,
    HZ,
    MAX_OOM_REAP_RETRIES,
    MAX_RECLAIM_RETRIES,
    OOM_REAPER_DELAY,
    OUT_THROTTLED,
    PAGE_SIZE,
    PF_MEMALLOC_ACCOUNTFORCE,
    PF_MEMALLOC_NOFS,
    PageKind,
    __GFP_RETRY_MAYFAIL,
)
from memcg_emu import workloads
from memcg_emu._constants import Cfg
from memcg_emu.events import EventBuilder, Op
from memcg_emu.timed import (
    NS_PER_JIFFY,
    NS_PER_SEC,
    CostModel,
    FlusherConfig,
    JournalConfig,
    ProgramBuilder,
    TimedSim,
    TOp,
    incident_scenario,
    split_events,
)

# every test on both timed schedulers (the compiled one and its Python twin)
pytestmark = pytest.mark.usefixtures("both_schedulers")

MS = 1_000_000
ZERO = CostModel.zero()
NO_FLUSHER = FlusherConfig(enabled=False)
ANON, FILE = int(PageKind.ANON), int(PageKind.FILE)


def costs(**kw) -> CostModel:
    """Every cost 0 except the ones named."""
    return replace(ZERO, **kw)


def done_times(sim, pid, op=None):
    """Completion times of pid's ops (optionally only op code ``op``), from the trace."""
    return [(t, i) for (t, p, i, o, _rc) in sim.trace if p == pid and (op is None or o == op)]


# =============================================================================================
# zero costs, no contention: the timed engine gives exactly the replay results
# =============================================================================================
def _assert_same_state(a: me.MemcgState, b: me.MemcgState):
    for name in a.field_names():
        x, y = getattr(a, name), getattr(b, name)
        if name == "config":  # only the timed sim sets TIMED_LIFECYCLE
            x, y = x.copy(), y.copy()
            x[Cfg.TIMED_LIFECYCLE] = y[Cfg.TIMED_LIFECYCLE] = 0
        np.testing.assert_array_equal(x, y, err_msg=f"state field {name!r} differs")


def _timed_replay(emu, events, livelock_limit=8):
    """Run ``events`` through TimedSim at zero cost; return (sim, result, split)."""
    sim = TimedSim.from_emulator(emu, costs=ZERO, flusher=NO_FLUSHER,
                                 livelock_limit=livelock_limit)
    split = split_events(events)
    for pid, prog in split.programs.items():
        sim.set_program(pid, prog)
    sim.add_control_ops(split.control)
    res = sim.run(int(events["time"].max()) + 1)
    return sim, res, split


def _rc_per_event(res, split):
    n = len(split.owner)
    rc = np.zeros(n, np.int64)
    out = np.zeros(n, np.uint8)
    for i in range(n):
        p, j = int(split.owner[i]), int(split.position[i])
        if p < 0:
            rc[i], out[i] = res.control_rc[j], res.control_outcome[j]
        else:
            rc[i], out[i] = res.rc[p][j], res.outcome[p][j]
    return rc, out


@pytest.mark.parametrize("policy", ["baseline", "accountforce-v1"])
def test_zero_cost_mixed_workload_equals_replay(backend, policy):
    wl = workloads.mixed(3000, seed=3)
    replayed = wl.build(policy=policy, backend=backend)
    r = replayed.replay(wl.events)
    sim, res, split = _timed_replay(wl.build(policy=policy, backend=backend), wl.events)
    _assert_same_state(replayed.state, sim.state)
    rc, out = _rc_per_event(res, split)
    np.testing.assert_array_equal(rc, r.rc)
    np.testing.assert_array_equal(out, r.outcome)
    assert res.summary["ops_completed"] == sum(len(p) for p in split.programs.values())


def _oom_stream_setup(backend, policy):
    emu = me.Emulator(policy=policy, backend=backend, nr_cpus=2)
    for path in ("P", "P/A", "B", "C"):
        emu.mkdir(path)
    emu.write("P", "memory.max", 200 * PAGE_SIZE)
    emu.write("P/A", "memory.max", 100 * PAGE_SIZE)
    emu.write("C", "memory.max", 50 * PAGE_SIZE)
    for path, cpu in (("P/A", 0), ("P/A", 1), ("B", 0), ("B", 1), ("C", 0)):
        emu.new_task(path, cpu=cpu)
    emu.new_task("/", kthread=True)
    return emu


def _oom_stream():
    """OOM kills of running tasks, the patch's deferral and its E3 livelock (bounded at 8),
    synchronous and return-to-user memory.high work, limit writes that OOM, a kill from
    outside, page-state changes and memory.reclaim.  Times are the event indices."""
    A, B = 2, 3  # cgroup indices (1: P, 4: C)
    b = EventBuilder()
    b.charge(0, 65).charge(1, 30).charge(1, 8)  # A over max, order 3: OOM kills t0 (running)
    b.charge(2, 350, kind=FILE).set_limit("high", B, 300)
    b.charge(2, 100)  # over high by > 64 pages: synchronous handle_over_high
    b.flags_save(3, PF_MEMALLOC_NOFS).charge(3, 5, GFP_KERNEL, kind=FILE).flags_restore(3)
    b.account_force_save(1).charge(1, 70).account_force_restore(1).return_to_user(1)
    b.charge(4, 50).account_force_save(4).charge(4, 4).flags_restore(4).return_to_user(4)
    b.set_dirty(B, 10).start_writeback(B, 5).end_writeback(B, 5).reclaim(B, 50)
    b.return_to_user(2)
    b.set_limit("max", A, 20)  # memory.max write: reclaim, then OOM kills t1
    b.kill(3)
    b.charge(2, 3, kind=int(PageKind.KERNEL)).uncharge(2, 3, kind=int(PageKind.KERNEL))
    return b.build()


@pytest.mark.parametrize("policy", ["baseline", "accountforce-v1", "legacy-dying-bypass"])
def test_zero_cost_oom_stream_equals_replay(backend, policy):
    # replay has no OOM reaper: the 2 s delay keeps the timed one out of this short run
    # (legacy-dying-bypass, a 5.15 kernel, reaps at once: oom_reaper_delay = 0)
    policy = Policy(base=policy, oom_reaper_delay=OOM_REAPER_DELAY, name=policy)
    events = _oom_stream()
    replayed = _oom_stream_setup(backend, policy)
    r = replayed.replay(events)
    assert r.counters["oom_kills"] >= 3  # the stream does exercise the OOM killer
    sim, res, split = _timed_replay(_oom_stream_setup(backend, policy), events)
    assert sim.oom_log[0] == (2, 0, False)  # event 2 killed t0, which was not in D state
    assert int(sim.state.state[0]) == me.TaskState.EXITED
    _assert_same_state(replayed.state, sim.state)
    rc, out = _rc_per_event(res, split)
    np.testing.assert_array_equal(rc, r.rc)
    np.testing.assert_array_equal(out, r.outcome)


# =============================================================================================
# jbd2: T_LOCKED drains the handles, then the next transaction opens while the old commits
# =============================================================================================
@pytest.mark.parametrize("trigger", ["interval", "full"])
def test_locked_transaction_drains_then_next_opens(backend, trigger):
    """A journal_start while the transaction is locked blocks (D state) until the locked
    transaction's last handle stops (T_FLUSH: wake_up(j_wait_transaction_locked)); it then
    joins the next transaction while the old one commits (fs/jbd2/commit.c:
    jbd2_journal_commit_transaction())."""
    interval, hold, start_b, commit = 10 * MS, 50 * MS, 20 * MS, 7 * MS
    journal = (JournalConfig(commit_interval_ns=interval) if trigger == "interval"
               else JournalConfig(commit_interval_ns=10 * NS_PER_SEC, max_handles=1))
    sim = TimedSim(backend=backend, costs=costs(journal_commit_ns=commit), journal=journal,
                   flusher=NO_FLUSHER, trace=True)
    sim.mkdir("A")
    a = sim.add_task("A", ProgramBuilder().journal_start().compute(hold).journal_stop()
                     .build())
    b = sim.add_task("A", ProgramBuilder().journal_start(at=start_b).journal_stop().build())
    res = sim.run(200 * MS)
    locked_at = interval if trigger == "interval" else start_b  # B's start fills it
    assert done_times(sim, a, TOp.JOURNAL_STOP) == [(hold, 2)]
    assert done_times(sim, b, TOp.JOURNAL_START) == [(hold, 0)]  # drained: next transaction
    s = res.summary
    assert s["journal_locked_max_ns"] == hold - locked_at
    assert s["d_state_peak"] == 1
    assert s["d_state_peak_by_wait"]["journal"] == 1
    assert s["d_state_task_seconds"] == pytest.approx((hold - start_b) / NS_PER_SEC)
    t = res.series["time_ns"]
    waiting = (t >= start_b) & (t < hold)
    assert (res.series["d_state_tasks"][waiting] == 1).all()
    assert (res.series["d_state_tasks"][~waiting] == 0).all()
    assert (res.series["journal_locked"][(t >= locked_at) & (t < hold)] == 1).all()
    # the old transaction commits from the drain on; B's transaction is the next one
    events = [(w, e) for w, e, _ in sim.journal_log]
    assert (hold, "commit") in events and (hold + commit, "committed") in events
    tids = {e: tid for w, e, tid in sim.journal_log if w == hold}
    assert tids["open"] == tids["commit"] + 1


def test_commits_are_serial(backend):
    """kjournald2 commits one transaction at a time: a commit asked for while the previous
    one is still being written waits for it; the running transaction keeps admitting
    handles meanwhile."""
    commit = 30 * MS
    sim = TimedSim(backend=backend, costs=costs(journal_commit_ns=commit),
                   journal=JournalConfig(commit_interval_ns=10 * MS), flusher=NO_FLUSHER,
                   trace=True)
    sim.mkdir("A")
    sim.add_task("A", ProgramBuilder().journal_start().journal_stop().return_to_user()
                 .sleep(1 * MS).loop(0).build())
    sim.run(200 * MS)
    log = sim.journal_log
    commits = [w for w, e, _ in log if e == "commit"]
    done = [w for w, e, _ in log if e == "committed"]
    assert len(commits) >= 3
    for i in range(1, len(commits)):
        assert commits[i] >= done[i - 1]  # the next commit starts after the previous ended


@pytest.mark.parametrize("policy, flags", [
    ("baseline", PF_MEMALLOC_NOFS),
    ("accountforce-v1", PF_MEMALLOC_NOFS | PF_MEMALLOC_ACCOUNTFORCE),
])
def test_journal_start_enters_the_scopes_of_patch_2(backend, policy, flags):
    sim = TimedSim(policy=policy, backend=backend, flusher=NO_FLUSHER)
    sim.mkdir("A")
    held = sim.add_task("A", ProgramBuilder().journal_start().journal_start().build())
    ended = sim.add_task("A", ProgramBuilder().journal_start().journal_start().journal_stop()
                         .journal_stop().build())
    res = sim.run(1 * MS)
    assert int(sim.state.flags[held]) & (PF_MEMALLOC_NOFS | PF_MEMALLOC_ACCOUNTFORCE) == flags
    assert int(sim.state.flags[ended]) == 0
    assert res.series["handles"][-1] == 1  # a nested start is one handle


# =============================================================================================
# writeback
# =============================================================================================
def test_flusher_blocked_by_locked_transaction(backend):
    """The periodic flusher finds dirty pages while a locked transaction waits for a handle:
    its journal_start blocks (D state) until that handle stops (the transaction drained), then
    the batch is written in the next transaction while the old one commits."""
    interval, tick, hold, commit, wb, n = 100 * MS, 200 * MS, 300 * MS, 7 * MS, 10_000, 100
    sim = TimedSim(backend=backend, costs=costs(journal_commit_ns=commit, writeback_page_ns=wb),
                   journal=JournalConfig(commit_interval_ns=interval),
                   flusher=FlusherConfig(interval_ns=tick), trace=True)
    sim.mkdir("A")
    sim.add_task("A", ProgramBuilder().journal_start().compute(hold).journal_stop().build())
    sim.add_task("A", ProgramBuilder().dirty(n).build())
    res = sim.run(500 * MS)
    clean_at = hold + n * wb
    assert sim.flusher_log == [(clean_at, 1, n)]
    assert res.summary["d_state_task_seconds"] == pytest.approx((hold - tick)
                                                                / NS_PER_SEC)
    t = res.series["time_ns"]
    assert (res.series["d_state_tasks"][(t >= tick) & (t < hold)] == 1).all()
    assert res.summary["d_state_peak_by_wait"]["journal"] == 1
    pool = sim.emu.pool("A")
    assert (pool["file"], pool["file_dirty"], pool["file_writeback"]) == (n, 0, 0)


def test_direct_reclaim_wakes_the_flusher(backend):
    """Reclaim cannot write dirty pages; it wakes the flusher, whose written pages become
    clean and reclaimable, so the charge succeeds once the I/O is done."""
    r, wb, n, start = 200_000, 10_000, 100, 1 * MS
    sim = TimedSim(backend=backend, costs=costs(reclaim_call_ns=r, writeback_page_ns=wb),
                   flusher=FlusherConfig(dirty_ratio=0),  # no balance_dirty_pages() kick
                   trace=True)  # the flusher's periodic wake-up (5 s) is far away
    sim.mkdir("A")
    sim.write("A", "memory.max", n * PAGE_SIZE)
    w = sim.add_task("A", ProgramBuilder().dirty(n).charge(10, GFP_KERNEL, at=start).build())
    res = sim.run(50 * MS)
    io_done = start + n * wb  # woken by the first reclaim pass at `start`
    assert sim.flusher_log == [(io_done, 1, n)]
    [(t_done, _)] = done_times(sim, w, Op.CHARGE)
    # the reclaim pass after the I/O frees room; passes that met only writeback pages slept
    # one jiffy each (v6: reclaim_throttle(VMSCAN_THROTTLE_CONGESTED))
    assert io_done <= t_done <= io_done + 2 * r + NS_PER_JIFFY
    assert res.rc[w][1] == 0
    assert res.summary["flusher_wakeups"] > 0 and res.summary["oom_invocations"] == 0


@pytest.mark.parametrize("wait, sleep_ns", [("v6", NS_PER_JIFFY), ("5.x", 0),
                                            ("congestion-wait", NS_PER_SEC // 10),
                                            ("off", 0)])
def test_reclaim_waits_on_writeback(backend, wait, sleep_ns):
    """mm/vmscan.c: shrink_node(): a cgroup reclaim pass that met only pages under writeback
    sleeps in D state per the reclaim_wait knob (v6: 1 jiffy; 5.x: wait_iff_congested()
    never sleeps on blk-mq; congestion_wait(): HZ/10); the sleeps are reported."""
    r, wb, n, start = 200_000, 10_000, 100, 1 * MS
    sim = TimedSim(policy=Policy(reclaim_wait=wait), backend=backend,
                   costs=costs(reclaim_call_ns=r, writeback_page_ns=wb),
                   flusher=FlusherConfig(dirty_ratio=0))
    sim.mkdir("A")
    sim.write("A", "memory.max", n * PAGE_SIZE)
    w = sim.add_task("A", ProgramBuilder().dirty(n).charge(10, GFP_KERNEL, at=start).build())
    res = sim.run(500 * MS)
    s = res.summary
    assert res.rc[w][1] == 0
    slept = s["reclaim_throttle_task_seconds"] * NS_PER_SEC
    assert slept == pytest.approx(s["reclaim_throttles"] * sleep_ns)
    assert (s["reclaim_throttles"] > 0) == (sleep_ns > 0)
    assert s["d_state_task_seconds_by_wait"]["reclaim_throttle"] == pytest.approx(
        slept / NS_PER_SEC)
    assert s["d_state_peak_by_wait"]["reclaim_throttle"] == (1 if sleep_ns else 0)


# =============================================================================================
# OOM in time
# =============================================================================================
def _victim_setup(backend, hold_ns, victim_prog, oom_ns=10 * MS, reclaim_ns=100_000):
    """A(max=100 pages).  H (in the root) holds mutex 0 for ``hold_ns`` (None: forever).
    V charges 60 anon pages, then blocks on mutex 0.  C charges 40, then 1 more at 1 ms:
    nothing is reclaimable (no swap), so C's charge OOMs and V, the largest, is killed."""
    sim = TimedSim(backend=backend, costs=costs(reclaim_call_ns=reclaim_ns,
                                                oom_invocation_ns=oom_ns),
                   flusher=NO_FLUSHER, trace=True)
    sim.mkdir("A")
    sim.write("A", "memory.max", 100 * PAGE_SIZE)
    h = ProgramBuilder().mutex_lock(0)
    if hold_ns is not None:
        h.compute(hold_ns).mutex_unlock(0)
    sim.add_task("/", h.build())
    v = sim.add_task("A", victim_prog)
    c = sim.add_task("A", ProgramBuilder().charge(40).charge(1, at=1 * MS).build())
    return sim, v, c


def test_blocked_victim_cannot_exit_until_woken(backend):
    hold, oom, r = 500 * MS, 10 * MS, 100_000
    sim, v, c = _victim_setup(backend, hold, ProgramBuilder().charge(60).mutex_lock(0).build(),
                              oom, r)
    res = sim.run(hold - 1)
    [(t_kill, victim, blocked)] = sim.oom_log
    assert (victim, blocked) == (v, True)
    st = sim.state
    assert int(st.state[v]) == me.TaskState.BLOCKED and int(st.sigkill[v]) == 1
    assert sim.emu.pages("A") == 100  # V's 60 pages stay charged while it is blocked
    t = res.series["time_ns"]
    assert (res.series["usage"][t >= t_kill, 1] == 100).all()
    s = res.summary
    assert s["oom_kills"] == 1 and s["victims_unable_to_exit"] == 1
    assert s["oom_invocations"] > 1  # later OOMs see the pending victim and kill nobody
    assert s["livelocks"] == 1 and s["victims_pending"] == 1
    res = sim.run(hold + 50 * MS)
    # H unlocks at `hold`; V is granted the mutex, runs, and exits (releasing it)
    assert int(st.state[v]) == me.TaskState.EXITED
    assert sim.emu.pages("A") == 41
    [(t_done, _)] = [x for x in done_times(sim, c, Op.CHARGE) if x[1] == 1]
    assert hold <= t_done <= hold + max(oom, r)  # the step in flight when V exits, then done
    assert res.rc[c][1] == 0
    assert res.summary["oom_kills"] == 1 and res.summary["victims_pending"] == 0
    assert res.summary["livelocks"] == 0
    sim.emu.check_invariants()


def test_oom_reaper_frees_a_blocked_victim_after_the_delay(backend):
    sim, v, c = _victim_setup(backend, None, ProgramBuilder().charge(60).mutex_lock(0).build())
    res = sim.run(3 * NS_PER_SEC)
    [(t_kill, _, _)] = sim.oom_log
    reap_at = t_kill + OOM_REAPER_DELAY * NS_PER_JIFFY  # 2 s
    assert sim.reaper_log == [(reap_at, v, 1, 60)]
    assert res.summary["reaped_pages"] == 60
    st = sim.state
    assert int(st.state[v]) == me.TaskState.BLOCKED  # still in D state, but its anon is gone
    assert int(st.owned[v, ANON]) == 0 and int(st.mm_oom_skip[v]) == 1
    [(t_done, _)] = [x for x in done_times(sim, c, Op.CHARGE) if x[1] == 1]
    assert reap_at <= t_done and res.rc[c][1] == 0
    t = res.series["time_ns"]
    assert (res.series["usage"][(t >= t_kill) & (t < reap_at), 1] == 100).all()


def test_oom_reaper_is_not_stopped_by_a_read_holder(backend):
    """mmap_read_trylock() succeeds while the victim only holds its mmap_lock for read."""
    prog = ProgramBuilder().charge(60).down_read(-1).mutex_lock(0).build()
    sim, v, c = _victim_setup(backend, None, prog)
    sim.run(3 * NS_PER_SEC)
    [(t_kill, _, _)] = sim.oom_log
    assert int(sim.state.mmap_locked[v]) == 0
    assert sim.reaper_log == [(t_kill + OOM_REAPER_DELAY * NS_PER_JIFFY, v, 1, 60)]


def test_oom_reaper_gives_up_while_mmap_lock_is_held(backend):
    """The victim blocks holding its mmap_lock for write: every mmap_read_trylock fails;
    after MAX_OOM_REAP_RETRIES attempts HZ/10 apart and one more HZ/10 sleep the reaper sets
    MMF_OOM_SKIP; the pages are never freed."""
    prog = ProgramBuilder().charge(60).down_write(-1).mutex_lock(0).build()
    sim, v, c = _victim_setup(backend, None, prog)
    res = sim.run(4 * NS_PER_SEC)
    [(t_kill, _, _), *_] = sim.oom_log
    first = t_kill + OOM_REAPER_DELAY * NS_PER_JIFFY
    step = NS_PER_SEC // 10  # HZ/10
    expected = [(first + k * step, v, k + 1, -1) for k in range(MAX_OOM_REAP_RETRIES)]
    expected.append((first + MAX_OOM_REAP_RETRIES * step, v, MAX_OOM_REAP_RETRIES + 1, -1))
    assert sim.reaper_log == expected
    st = sim.state
    assert int(st.mm_oom_skip[v]) == 1 and int(st.mmap_locked[v]) == 1
    assert int(st.owned[v, ANON]) == 60 and res.summary["reaped_pages"] == 0
    assert res.summary["reaper_gave_up"] == 1
    # with MMF_OOM_SKIP set, the next OOM passes V over and kills C (its own victim): R16
    give_up = expected[-1][0]
    [(t_done, _)] = [x for x in done_times(sim, c, Op.CHARGE) if x[1] == 1]
    assert t_done > give_up and res.rc[c][1] == -me.ENOMEM


def test_killed_waiter_exits_on_wake_and_passes_the_lock_on(backend):
    """Exit releases what the task holds: a SIGKILLed mutex waiter is granted the mutex,
    exits, and the next waiter gets it at the same instant."""
    hold = 5 * MS
    sim = TimedSim(backend=backend, costs=ZERO, flusher=NO_FLUSHER, trace=True)
    sim.mkdir("A")
    h = sim.add_task("A", ProgramBuilder().mutex_lock(0).compute(hold).mutex_unlock(0).build())
    k = sim.add_task("A", ProgramBuilder().journal_start().mutex_lock(0).build())
    w = sim.add_task("A", ProgramBuilder().mutex_lock(0).build())
    ev = EventBuilder().kill(k, time=1 * MS).build()
    sim.add_control_ops(ev)
    res = sim.run(10 * MS)
    assert int(sim.state.state[k]) == me.TaskState.EXITED
    assert done_times(sim, w, TOp.MUTEX_LOCK) == [(hold, 0)]
    assert res.series["handles"][-1] == 0  # k's journal handle went with it
    assert res.summary["d_state_task_seconds"] == pytest.approx(2 * hold / NS_PER_SEC)
    assert h >= 0


def test_rwsem_is_fifo(backend):
    """A writer queued behind a reader holds back later readers; on release the head writer
    gets the lock, then the readers queued behind it."""
    sim = TimedSim(backend=backend, costs=ZERO, flusher=NO_FLUSHER, trace=True)
    sim.mkdir("A")
    sim.add_task("A", ProgramBuilder().down_read(7).compute(10 * MS).up_read(7).build())
    w = sim.add_task("A", ProgramBuilder().down_write(7, at=1 * MS).compute(5 * MS)
                     .up_write(7).build())
    r2 = sim.add_task("A", ProgramBuilder().down_read(7, at=2 * MS).build())
    r3 = sim.add_task("A", ProgramBuilder().down_read(7, at=3 * MS).build())
    res = sim.run(20 * MS)
    assert done_times(sim, w, TOp.DOWN_WRITE) == [(10 * MS, 0)]
    assert done_times(sim, r2, TOp.DOWN_READ) == done_times(sim, r3, TOp.DOWN_READ) == \
        [(15 * MS, 0)]
    assert res.summary["d_state_peak"] == 3
    assert res.summary["d_state_task_seconds"] == pytest.approx((9 + 13 + 12) * MS / NS_PER_SEC)


def test_zero_time_loop_is_an_error(backend):
    sim = TimedSim(backend=backend, costs=ZERO, flusher=NO_FLUSHER, max_ops_per_instant=1000)
    sim.mkdir("A")
    sim.add_task("A", ProgramBuilder().compute(0).loop(0).build())
    with pytest.raises(RuntimeError, match="without time passing"):
        sim.run(1 * MS)


# =============================================================================================
# the memory.high throttle sleep
# =============================================================================================
def _kernel_penalty(nr_pages: int, usage: int, high: int) -> int:
    """docs/model.md §6.2, written out: overage, then the delay, clamped to 2*HZ."""
    overage = ((usage - high) << 20) // max(high, 1)
    p = ((overage * overage * HZ) % 2**64) >> 20 >> 14
    return min(p * nr_pages // 64, 2 * HZ)


@pytest.mark.parametrize("usage, golden_jiffies", [(26112, 25), (25856, 6)])
def test_throttle_sleep_length(backend, usage, golden_jiffies):
    """A(high = 25600 pages) at ``usage`` after a 64-page batch: the return-to-user path
    reclaims (nothing is reclaimable) and sleeps the docs/model.md §6.2 penalty, if above HZ/100."""
    high, r, rtu_at = 25600, 10_000, 3 * MS
    penalty = _kernel_penalty(64, usage, high)
    assert penalty == golden_jiffies  # the docs/model.md §6.2 worked example
    sim = TimedSim(backend=backend, costs=costs(reclaim_call_ns=r), flusher=NO_FLUSHER,
                   trace=True)
    sim.mkdir("A")
    t = sim.add_task("A", ProgramBuilder().charge(usage - 64).charge(1, at=2 * MS)
                     .return_to_user(at=rtu_at).build())
    sim.add_control_ops(EventBuilder().set_limit("high", 1, high, time=1 * MS).build())
    res = sim.run(100 * MS)
    sleeps = penalty > HZ // 100
    calls = 1 + MAX_RECLAIM_RETRIES if sleeps else 1  # no progress: 16 retries, then sleep
    [(t_done, _)] = done_times(sim, t, Op.RETURN_TO_USER)
    assert t_done == rtu_at + calls * r + (penalty * NS_PER_JIFFY if sleeps else 0)
    assert res.rc[t][2] == (penalty if sleeps else 0)
    assert bool(res.outcome[t][2] & OUT_THROTTLED) == sleeps
    assert res.summary["throttle_sleep_task_seconds"] == pytest.approx(
        (penalty * NS_PER_JIFFY if sleeps else 0) / NS_PER_SEC)


# =============================================================================================
# reclaim while holding a handle; whole runs
# =============================================================================================
def test_reclaim_while_holding_a_handle(backend):
    """A RETRY_MAYFAIL charge inside a handle with nothing reclaimable makes 18 reclaim
    passes (docs/model.md E1 variants) and fails; the handle is held all along, the commit
    (timer at 1 ms) waits for it."""
    r = 1 * MS
    sim = TimedSim(backend=backend, costs=costs(reclaim_call_ns=r),
                   journal=JournalConfig(commit_interval_ns=1 * MS), flusher=NO_FLUSHER)
    sim.mkdir("A")
    sim.write("A", "memory.max", 50 * PAGE_SIZE)
    sim.add_task("A", ProgramBuilder().charge(50).build())
    t = sim.add_task("A", ProgramBuilder().journal_start()
                     .charge(1, GFP_NOFS | __GFP_RETRY_MAYFAIL).journal_stop().build())
    res = sim.run(100 * MS)
    assert res.rc[t][1] == -me.ENOMEM
    assert res.summary["reclaim_passes"] == 18
    assert res.summary["reclaim_while_holding_max_ns"] == 18 * r
    assert res.summary["journal_locked_max_ns"] == 18 * r - 1 * MS  # commit time 0


@pytest.mark.parametrize("policy", ["baseline", "accountforce-v1"])
def test_incident_scenario_is_deterministic(backend, policy):
    runs = []
    for _ in range(2):
        sim = incident_scenario(policy, n_tasks=20, seed=7, backend=backend, limit_mib=2,
                                sample_dt_ns=5 * MS)
        runs.append((sim, sim.run(100 * MS)))
    (sim_a, a), (sim_b, b) = runs
    skip = {"wall_seconds", "events_per_sec", "ops_per_sec", "scheduler"}
    assert {k: v for k, v in a.summary.items() if k not in skip} == \
        {k: v for k, v in b.summary.items() if k not in skip}
    for k in a.series:
        np.testing.assert_array_equal(a.series[k], b.series[k])
    _assert_same_state(sim_a.state, sim_b.state)
    sim_a.emu.check_invariants()
    assert a.summary["ops_completed"] > 0 and a.summary["reclaim_passes"] > 0
    df = a.to_pandas()
    assert len(df) == len(a.series["time_ns"]) == 21
    assert "usage:/job" in df.columns


def test_bad_programs_are_rejected_with_the_op_index(backend):
    sim = TimedSim(backend=backend)
    sim.mkdir("A")
    cases = [
        (ProgramBuilder().compute(5).op(Op.BLOCK), "program op 1: field 'op'"),
        (ProgramBuilder().compute(5).loop(1), "program op 1: field 'arg' = 1: LOOP"),
        (ProgramBuilder().charge(0), "program op 0: field 'arg' (pages) = 0"),
        (ProgramBuilder().compute(1).dirty(3, memcg=9), "program op 1: field 'memcg' = 9"),
        (ProgramBuilder().compute(-1), "program op 0: field 'arg' = -1"),
    ]
    for builder, msg in cases:
        with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)")):
            sim.add_task("A", builder.build())
    with pytest.raises(ValueError, match="kernel thread"):
        sim.add_task("/", ProgramBuilder().return_to_user().build(), kthread=True)
    t = sim.add_task("A", ProgramBuilder().mutex_unlock(3).build())
    with pytest.raises(RuntimeError, match=f"task {t}, program op 0 .*mutex 3"):
        sim.run(1 * MS)


def test_balance_dirty_pages_pauses_dirtiers_outside_handles(backend):
    """A DIRTY op that leaves a limited memcg's dirty + writeback pages above dirty_ratio % of
    its dirtyable memory pauses its task dirty_pause_ns (and kicks the flusher); the same
    op inside a journal handle is not throttled (metadata dirtied in a transaction)."""
    pause = 50 * MS

    def run(in_handle, ratio):
        sim = TimedSim(backend=backend, costs=costs(writeback_page_ns=10_000),
                       flusher=FlusherConfig(dirty_ratio=ratio, dirty_pause_ns=pause))
        sim.mkdir("A")
        sim.write("A", "memory.max", 1000 * PAGE_SIZE)
        b = ProgramBuilder()
        if in_handle:
            b.journal_start()
        b.dirty(400)
        if in_handle:
            b.journal_stop()
        sim.add_task("A", b.build())
        return sim.run(500 * MS).summary, None

    s, _ = run(False, 20)
    assert s["dirty_pauses"] == 1
    assert s["dirty_pause_task_seconds"] == pytest.approx(pause / NS_PER_SEC)
    assert s["flusher_pages_written"] == 400  # kicked at once, not at the 5 s period
    s, _ = run(True, 20)
    assert s["dirty_pauses"] == 0
    s, _ = run(False, 0)
    assert s["dirty_pauses"] == 0 and s["flusher_pages_written"] == 0
