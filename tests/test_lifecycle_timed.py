"""The task lifecycle in time: a killed task runs its kernel path on, keeps charging, and
dies at its return to user space (or in a killable wait); a failed call unwinds; exit takes
time; threads share an mm and its mmap_lock.

mm/memcontrol.c: try_charge_memcg() (``task_is_dying``, ``passed_oom``, ``nomem:``/``force:``),
mm/oom_kill.c: __oom_kill_process(), oom_reap_task_mm(), kernel/exit.c: do_exit(), exit_mm(),
kernel/entry/common.c: exit_to_user_mode_loop().
"""
from dataclasses import replace

import pytest

import memcg_emu as me
from memcg_emu.policy import Policy
from memcg_emu import GFP_KERNEL, GFP_NOFS, PAGE_SIZE, __GFP_NOFAIL
from memcg_emu.events import Op
from memcg_emu.timed import (
    NS_PER_SEC,
    CostModel,
    FlusherConfig,
    JournalConfig,
    ProgramBuilder,
    TimedSim,
)

# every test on both timed schedulers (the compiled one and its Python twin)
pytestmark = pytest.mark.usefixtures("both_schedulers")

MS = 1_000_000
US = 1_000
NO_FLUSHER = FlusherConfig(enabled=False)
ANON = int(me.PageKind.ANON)
OUT_FORCED = 2
COSTS = replace(CostModel.zero(), reclaim_call_ns=10 * US, oom_invocation_ns=100 * US,
                exit_page_ns=1 * US)
SLOW_OOM = replace(COSTS, reclaim_call_ns=1 * MS, oom_invocation_ns=20 * MS)  # for long runs


@pytest.fixture(params=["python"] + (["cython"] if me.BACKEND == "cython" else []))
def backend(request):
    return request.param


def completions(sim, pid):
    """[(time, program index, op, rc)] of pid's completed ops."""
    return [(t, i, o, rc) for (t, p, i, o, rc) in sim.trace if p == pid]


def _midcall(backend, policy, gfp):
    """A(max 120 pages).  V charges 60, returns to user space, then makes one long system
    call: 40 times (1 ms of kernel work, charge 1 page), then returns.  C charges 45, and
    at 10.5 ms 8 more: nothing is reclaimable, so the OOM killer kills V (the largest) in
    the middle of its call."""
    sim = TimedSim(policy=policy, backend=backend, nr_cpus=1, costs=COSTS, flusher=NO_FLUSHER,
                   trace=True)
    sim.mkdir("A")
    sim.write("A", "memory.max", 120 * PAGE_SIZE)
    v = sim.add_task("A", ProgramBuilder().charge(60).return_to_user()
                     .charge(1, gfp)  # 2: enters the kernel
                     .compute(1 * MS).charge(1, gfp).loop(3, 40)  # 3..5: still inside
                     .return_to_user().compute(1 * NS_PER_SEC).build())
    c = sim.add_task("A", ProgramBuilder().charge(45).charge(8, at=10 * MS + MS // 2)
                     .return_to_user().build())
    return sim, v, c


def _after_kill(sim, v):
    [(t_kill, victim, blocked)] = [x for x in sim.oom_log if x[1] == v]
    assert not blocked
    return t_kill, [x for x in completions(sim, v) if x[0] >= t_kill]


def test_killed_in_a_call_keeps_charging_past_max_under_legacy(backend):
    """5.x should_force_charge(): the dying task's charges are forced past memory.max.  (The
    reaper is held off by the v5.18 delay here, so the overshoot is the bypass's alone; the
    preset's own delay, 0, reaps the victim's anon at once.)"""
    sim, v, c = _midcall(backend, Policy(base="legacy-dying-bypass",
                                         oom_reaper_delay=me.OOM_REAPER_DELAY), GFP_KERNEL)
    res = sim.run(200 * MS)
    t_kill, after = _after_kill(sim, v)
    charges = [x for x in after if x[2] == Op.CHARGE]
    assert len(charges) > 20  # it ran its call on: every remaining iteration charged
    assert all(rc == 0 for (_, _, _, rc) in charges)
    assert res.summary["over_max_peak_pages"] > 0
    assert res.summary["syscalls_unwound"] == 0
    # the call's end: the return to user space delivers the signal; exit frees V's pages
    assert after[-1][1] == 4 and int(sim.state.state[v]) == me.TaskState.EXITED
    assert res.rc[c][1] == 0
    sim.emu.check_invariants()


def test_killed_in_a_call_gets_enomem_and_unwinds_under_baseline(backend):
    """v6.16: passed_oom && task_is_dying() -> -ENOMEM; the call unwinds (the rest of its
    ops are skipped up to the return to user space), where the signal kills it."""
    sim, v, c = _midcall(backend, "baseline", GFP_KERNEL)
    res = sim.run(200 * MS)
    t_kill, after = _after_kill(sim, v)
    charges = [x for x in after if x[2] == Op.CHARGE]
    assert charges and charges[-1][3] == -me.ENOMEM
    assert all(rc == 0 for (_, _, _, rc) in charges[:-1])
    # nothing of the call ran after the failed charge
    t_fail = charges[-1][0]
    assert [x for x in after if x[0] > t_fail] == []
    s = res.summary
    assert s["over_max_peak_pages"] == 0 and s["forced_charges"] == 0
    assert s["syscalls_unwound"] == 1 and s["ops_skipped_unwinding"] > 0
    assert int(sim.state.state[v]) == me.TaskState.EXITED
    assert res.rc[c][1] == 0  # C's charge went through once V's exit freed its pages
    sim.emu.check_invariants()


def test_killed_in_a_call_nofail_is_forced_under_baseline(backend):
    sim, v, c = _midcall(backend, "baseline", GFP_KERNEL | __GFP_NOFAIL)
    res = sim.run(200 * MS)
    t_kill, after = _after_kill(sim, v)
    charges = [x for x in after if x[2] == Op.CHARGE]
    assert len(charges) > 20 and all(rc == 0 for (_, _, _, rc) in charges)
    assert res.summary["forced_charges"] > 0 and res.summary["over_max_peak_pages"] > 0
    assert res.summary["syscalls_unwound"] == 0
    assert int(sim.state.state[v]) == me.TaskState.EXITED


def test_d_state_victim_finishes_its_call_after_journal_start(backend):
    """V waits in jbd2 journal_start (D state: TASK_UNINTERRUPTIBLE) when the OOM killer
    picks it.  Woken when the locked transaction's last handle stops (T_FLUSH) it gets a
    handle in the next transaction, dirties its pages (a NOFAIL
    charge), stops the handle and returns to user space: only then does it exit."""
    costs = replace(COSTS, journal_commit_ns=7 * MS)
    sim = TimedSim(policy="baseline", backend=backend, nr_cpus=1, costs=costs,
                   flusher=NO_FLUSHER, trace=True,
                   journal=JournalConfig(commit_interval_ns=10 * MS))
    sim.mkdir("A")
    sim.write("A", "memory.max", 104 * PAGE_SIZE)
    sim.add_task("/", ProgramBuilder().journal_start().compute(50 * MS).journal_stop()
                 .build())  # holds a handle: the commit (locked at 10 ms) waits for it
    v = sim.add_task("A", ProgramBuilder().charge(60).return_to_user()
                     .journal_start(at=20 * MS).dirty(4, GFP_NOFS | __GFP_NOFAIL)
                     .journal_stop().return_to_user().build())
    sim.add_task("A", ProgramBuilder().charge(40).charge(8, at=30 * MS).build())
    res = sim.run(300 * MS)
    [(t_kill, victim, blocked)] = sim.oom_log
    assert (victim, blocked) == (v, True) and 30 * MS <= t_kill < 31 * MS
    assert res.summary["victims_unable_to_exit"] == 1
    done = {i: (t, rc) for (t, i, o, rc) in completions(sim, v)}
    drained = 50 * MS  # the holder's journal_stop: the locked transaction has drained
    assert done[2][0] == drained  # journal_start returns then, not at the commit's end
    assert done[3][1] == 0  # the dirtying went on (a NOFAIL charge cannot fail)
    assert done[4][0] >= done[3][0]  # journal_stop
    assert 5 not in done  # the return to user space delivers the signal: do_exit
    [(t_exit, _)] = [x for x in sim.exit_log if x[1] == v]
    assert t_exit >= done[4][0]
    assert int(sim.state.state[v]) == me.TaskState.EXITED
    assert res.summary["exits"] == 1
    sim.emu.check_invariants()


def test_exit_takes_time_then_frees(backend):
    """A victim in user space exits at once, but exit_mmap takes exit_page_ns per page:
    its pages stay charged until then."""
    sim = TimedSim(policy="baseline", backend=backend, nr_cpus=1,
                   costs=replace(COSTS, exit_page_ns=10 * US), flusher=NO_FLUSHER,
                   trace=True, sample_dt_ns=100 * US)
    sim.mkdir("A")
    sim.write("A", "memory.max", 100 * PAGE_SIZE)
    v = sim.add_task("A", ProgramBuilder().charge(64).return_to_user()
                     .compute(NS_PER_SEC).build())
    sim.add_task("A", ProgramBuilder().charge(30, at=1 * MS).charge(8).build())
    res = sim.run(5 * MS)
    [(t_kill, _, _)] = sim.oom_log
    assert 1 * MS <= t_kill < 2 * MS
    t = res.series["time_ns"]
    usage = res.series["usage"][:, 1]
    gone = t_kill + 64 * 10 * US
    assert sim.exit_log == [(gone, v)]
    assert (usage[(t > t_kill) & (t < gone)] >= 94).all()
    assert (usage[t >= gone] <= 40 + 64).all() and usage[-1] < 94
    assert int(sim.state.state[v]) == me.TaskState.EXITED


def test_reaper_and_exit_do_not_free_twice(backend):
    """The reaper frees a blocked victim's anon after OOM_REAPER_DELAY; when the victim is
    woken later and exits, exit_mmap frees only what is left."""
    sim = TimedSim(policy="baseline", backend=backend, nr_cpus=1, costs=SLOW_OOM,
                   flusher=NO_FLUSHER, trace=True)
    sim.mkdir("A")
    sim.write("A", "memory.max", 100 * PAGE_SIZE)
    sim.add_task("/", ProgramBuilder().mutex_lock(0).compute(3 * NS_PER_SEC).mutex_unlock(0)
                 .build())
    v = sim.add_task("A", ProgramBuilder().charge(60).mutex_lock(0, at=1 * MS)
                     .mutex_unlock(0).return_to_user().build())
    sim.add_task("A", ProgramBuilder().charge(40).charge(8, at=2 * MS).build())
    res = sim.run(4 * NS_PER_SEC)
    assert res.summary["reaped_pages"] == 60
    assert int(sim.state.state[v]) == me.TaskState.EXITED
    st = sim.state
    assert int(st.owned[v, ANON]) == 0 and int(st.pool[1, ANON]) == 48
    assert int(st.stats[me.Stat.UNDERFLOWS]) == 0
    sim.emu.check_invariants()


# ---- threads ----------------------------------------------------------------------------------
def test_thread_group_killed_together(backend):
    """One OOM kill (counted once) takes the whole process: the thread in user space exits
    at once, the one in D state when it is woken (and has finished its call), the one in a
    killable mmap_lock wait gets -EINTR and unwinds.  The mm is freed by its last user."""
    sim = TimedSim(policy="baseline", backend=backend, nr_cpus=2, costs=COSTS,
                   flusher=NO_FLUSHER, trace=True)
    sim.mkdir("A")
    sim.write("A", "memory.max", 100 * PAGE_SIZE)
    sim.add_task("/", ProgramBuilder().mutex_lock(0).compute(40 * MS).mutex_unlock(0).build())
    p = sim.add_task("A", ProgramBuilder().charge(30).down_write(-1)
                     .mutex_lock(0, at=1 * MS).mutex_unlock(0).up_write(-1)
                     .return_to_user().build())  # holds mmap_lock, then D on mutex 0
    t_user = sim.add_thread(p, ProgramBuilder().charge(20).return_to_user()
                            .compute(NS_PER_SEC).build())
    t_wait = sim.add_thread(p, ProgramBuilder().charge(10).down_read(-1, at=2 * MS)
                            .charge(5).up_read(-1).return_to_user().build())
    c = sim.add_task("A", ProgramBuilder().charge(40).charge(8, at=5 * MS).build())
    res = sim.run(100 * MS)
    st = sim.state
    assert res.summary["oom_kills"] == 1 and sim.emu.events("A")["oom_kill"] == 1
    assert [int(st.state[x]) for x in (p, t_user, t_wait)] == [me.TaskState.EXITED] * 3
    # the waiter's down_read was interrupted (-EINTR): the rest of its call was skipped
    w = {i: (t, rc) for (t, i, o, rc) in completions(sim, t_wait)}
    assert 2 not in w and res.rc[t_wait][1] == -4
    # the user-space thread and the interrupted waiter went at the kill (exit_mm only
    # drops their reference: no pages to free); the D-state one after the mutex, last
    [(t_kill, _, _)] = sim.oom_log
    exits = dict((pid, t) for (t, pid) in sim.exit_log)
    assert exits[t_user] == exits[t_wait] == t_kill
    assert exits[p] >= 40 * MS
    p_done = {i: t for (t, i, o, rc) in completions(sim, p)}
    assert p_done[3] >= 40 * MS and 4 in p_done  # it unlocked the mutex and the mmap_lock
    assert int(st.owned[p, ANON]) == 0 and res.rc[c][1] == 0
    sim.emu.check_invariants()


def test_reaper_fails_while_a_thread_holds_mmap_lock_for_write(backend):
    """A thread stuck in D state holding the mmap_lock for write (a vm_area_dup charge,
    say): every mmap_read_trylock of the reaper fails; it gives up (MMF_OOM_SKIP)."""
    sim = TimedSim(policy="baseline", backend=backend, nr_cpus=2, costs=SLOW_OOM,
                   flusher=NO_FLUSHER, trace=True)
    sim.mkdir("A")
    sim.write("A", "memory.max", 100 * PAGE_SIZE)
    sim.add_task("/", ProgramBuilder().mutex_lock(0).build())  # never unlocks
    p = sim.add_task("A", ProgramBuilder().charge(60).return_to_user()
                     .compute(NS_PER_SEC * 10).build())
    sim.add_thread(p, ProgramBuilder().down_write(-1).mutex_lock(0, at=1 * MS).build())
    sim.add_task("A", ProgramBuilder().charge(40).charge(8, at=2 * MS).build())
    res = sim.run(4 * NS_PER_SEC)
    st = sim.state
    assert int(st.mmap_locked[p]) == 1
    assert [x[3] for x in sim.reaper_log] == [-1] * (me.MAX_OOM_REAP_RETRIES + 1)
    assert res.summary["reaper_gave_up"] == 1 and res.summary["reaped_pages"] == 0
    assert int(st.mm_oom_skip[p]) == 1 and int(st.owned[p, ANON]) == 60
    assert int(st.state[p]) == me.TaskState.EXITED  # the user-space thread is gone...
    assert int(st.mm_users[p]) == 1  # ...but the D-state thread still pins the mm


# ---- both engines, bit for bit --------------------------------------------------------------
_VOLATILE = {"wall_seconds", "events_per_sec", "ops_per_sec", "scheduler"}


def _threaded_mix(backend, policy, seed):
    """Processes with threads sharing mms and mmap_locks, calls that fault under the lock,
    journal handles around NOFAIL dirtying, kills from outside: OOM kills, killable waits,
    unwinding, exits, the reaper."""
    import numpy as np

    rng = np.random.default_rng(seed)
    sim = TimedSim(policy=policy, backend=backend, nr_cpus=2, costs=COSTS, trace=True,
                   journal=JournalConfig(commit_interval_ns=5 * MS),
                   flusher=FlusherConfig(interval_ns=20 * MS))
    sim.mkdir("A")
    sim.write("A", "memory.max", 300 * PAGE_SIZE)
    sim.write("A", "memory.oom.group", str(seed % 2))
    for _ in range(4):
        a, b = (int(x) for x in rng.integers(1, 8, 2))
        fault = (ProgramBuilder().down_read(-1).charge(a).up_read(-1).return_to_user()
                 .compute(int(rng.integers(1, 500)) * US)
                 .journal_start().dirty(b, GFP_NOFS | __GFP_NOFAIL).journal_stop()
                 .return_to_user().sleep(int(rng.integers(1, 300)) * US).loop(0).build())
        split = (ProgramBuilder().down_write(-1).charge(b, kind=4).compute(200 * US)
                 .up_write(-1).return_to_user().compute(int(rng.integers(1, 900)) * US)
                 .loop(0).build())
        p = sim.add_task("A", fault)
        sim.add_thread(p, split)
        sim.add_thread(p, fault, same_thread_group=bool(rng.integers(2)))
    from memcg_emu.events import EventBuilder

    sim.add_control_ops(EventBuilder().kill(int(rng.integers(12)), time=40 * MS)
                        .set_limit("max", 1, 200, time=60 * MS).build())
    res = sim.run(150 * MS)
    return sim, res


@pytest.mark.skipif(me.BACKEND != "cython", reason="compiled engine not built")
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("policy", ["baseline", "legacy-dying-bypass"])
def test_timed_lifecycle_both_engines_agree(policy, seed):
    py, r1 = _threaded_mix("python", policy, seed)
    cy, r2 = _threaded_mix("cython", policy, seed)
    for name in py.state.field_names():
        a, b = getattr(py.state, name), getattr(cy.state, name)
        assert a.shape == b.shape and (a == b).all(), f"state field {name!r} differs"
    assert py.trace == cy.trace and py.exit_log == cy.exit_log
    assert py.reaper_log == cy.reaper_log and py.oom_log == cy.oom_log
    s1 = {k: v for k, v in r1.summary.items() if k not in _VOLATILE}
    s2 = {k: v for k, v in r2.summary.items() if k not in _VOLATILE}
    assert s1 == s2
    assert s1["oom_kills"] > 0 and s1["exits"] > 0  # the mix does kill and exit
    py.emu.check_invariants()


def test_timed_mix_covers_the_lifecycle():
    """Across the seeds the mix unwinds calls and interrupts killable waits."""
    unwound = eintr = 0
    for seed in range(4):
        sim, res = _threaded_mix("cython" if me.BACKEND == "cython" else "python",
                                 "baseline", seed)
        unwound += res.summary["syscalls_unwound"]
        eintr += sum(int((rc == -4).sum()) for rc in res.rc.values())
    assert unwound > 0 and eintr > 0


def test_exiting_is_a_state_of_its_own(backend):
    sim = TimedSim(policy="baseline", backend=backend, nr_cpus=1,
                   costs=replace(COSTS, exit_page_ns=100 * US), flusher=NO_FLUSHER)
    sim.mkdir("A")
    v = sim.add_task("A", ProgramBuilder().charge(50).return_to_user().exit().build())
    sim.run(1 * MS)  # exit_mmap of 50 pages takes 5 ms
    assert sim.emu.task(v).view().state == "exiting"
    assert sim.emu.pages("A") >= 50
    sim.run(10 * MS)
    assert sim.emu.task(v).view().state == "exited"
    assert int(sim.state.pool[1, ANON]) == 0


def test_memory_high_throttle_sleep_is_killable(backend):
    """mem_cgroup_handle_over_high() sleeps in schedule_timeout_killable(): a SIGKILL ends
    the sleep, and the return to user space delivers it at once."""
    from memcg_emu.events import EventBuilder

    sim = TimedSim(policy="baseline", backend=backend, nr_cpus=1, costs=COSTS,
                   flusher=NO_FLUSHER, trace=True)
    sim.mkdir("A")
    sim.write("A", "memory.high", 64 * PAGE_SIZE)
    v = sim.add_task("A", ProgramBuilder().charge(1024).return_to_user()
                     .compute(NS_PER_SEC).build())
    sim.add_control_ops(EventBuilder().kill(v, time=10 * MS).build())
    res = sim.run(3 * NS_PER_SEC)
    assert res.outcome[v][0] & 64  # OUT_THROTTLED: the charge slept the penalty...
    # ...until the kill at 10 ms; then the return to user space: do_exit, exit_mmap
    assert res.summary["throttle_sleep_task_seconds"] * NS_PER_SEC < 10 * MS
    assert sim.exit_log == [(10 * MS + 1024 * US, v)]
    assert res.summary["oom_kills"] == 0
