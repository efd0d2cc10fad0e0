"""Task lifecycle and threads: a kill marks, it does not end a task; threads share an mm.

Known answers from mm/oom_kill.c (oom_kill_process, __oom_kill_process, oom_badness,
task_will_free_mem) and kernel/exit.c (do_exit, exit_mm), in both engines.
"""
import re

import pytest

import memcg_emu as me

BACKENDS = ["python"] + (["cython"] if me.BACKEND == "cython" else [])
MB = 256  # pages per MiB


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def _alloc(emu, task, nr_pages):
    """A user-space allocation touched page by page: one fault (order-0 charge) per page."""
    for _ in range(nr_pages):
        rc = emu.charge(task, 1)
        if rc:
            return rc
    return 0


def _group_g(backend, h1_mib):
    emu = me.Emulator(backend=backend)
    emu.mkdir("G")
    emu.write("G", "memory.max", "40M")
    emu.write("G", "memory.oom.group", "1")
    h1, h2 = emu.new_task("G"), emu.new_task("G")
    u = emu.new_task("G", oom_score_adj=-1000)
    x = emu.new_task("G")
    assert _alloc(emu, h1, h1_mib * MB) == 0
    assert _alloc(emu, h2, MB) == 0
    assert _alloc(emu, u, MB) == 0
    return emu, h1, h2, u, x


def _x_allocates_50m(emu, x):
    for _ in range(25):  # 50 MiB in 2 MiB steps, returning to user space after each
        if x.view().state == "exited":
            break
        _alloc(emu, x, 2 * MB)
        emu.return_to_user(x)


def test_group_kill_counts_the_victim_twice(backend):
    """H1 is killed, then the oom.group scan kills H1 again (it has not exited: a kill marks),
    H2 and X; U (-1000) is spared.  The real kernel reports oom_kill 4."""
    emu, h1, h2, u, x = _group_g(backend, 25)
    _x_allocates_50m(emu, x)
    ev = emu.events("G")
    assert ev["oom"] == 1
    assert ev["oom_kill"] == 4
    assert ev["oom_group_kill"] == 1
    assert [t.view().state for t in (h1, h2, u, x)] == ["exited", "exited", "running", "exited"]
    assert emu.stats["oom_kills"] == 4


def test_group_kill_with_the_allocator_largest(backend):
    """X is the victim: X, H1, H2, then X again (the caller has not exited either)."""
    emu, h1, h2, u, x = _group_g(backend, 5)
    _x_allocates_50m(emu, x)
    ev = emu.events("G")
    assert (ev["oom_kill"], ev["oom_group_kill"]) == (4, 1)
    assert u.view().state == "running"
    assert x.view().state == "exited"


def test_killed_tasks_exit_only_after_the_whole_kill(backend):
    """Inside the kill every member still has its mm: the group scan finds and counts them;
    afterwards the user-space victims are gone, the caller is dying until it returns."""
    emu, h1, h2, u, x = _group_g(backend, 25)
    rc = _alloc(emu, x, 40 * MB)
    st = emu.state
    assert st.sigkill[x.pid] and x.view().state == "dying"
    assert h1.view().state == "exited" and h2.view().state == "exited"
    assert rc in (0, -me.ENOMEM)
    emu.return_to_user(x)
    assert x.view().state == "exited"


def test_blocked_victim_exits_when_woken(backend):
    emu, h1, h2, u, x = _group_g(backend, 25)
    emu.block(h1)
    _alloc(emu, x, 14 * MB)
    assert h1.view().state == "blocked" and emu.state.sigkill[h1.pid]
    emu.wake(h1)
    assert h1.view().state == "exited"


# ---- threads ----------------------------------------------------------------------------------
def test_threads_share_the_mm_and_are_scored_once(backend):
    emu = me.Emulator(backend=backend)
    emu.mkdir("A")
    emu.write("A", "memory.max", 1000 * me.PAGE_SIZE)
    p = emu.new_task("A")
    t1, t2 = emu.new_thread(p), emu.new_thread(p)
    q = emu.new_task("A")
    for t in (p, t1, t2):
        assert _alloc(emu, t, 200) == 0  # 600 pages on p's mm
    assert _alloc(emu, q, 350) == 0
    st = emu.state
    assert int(st.owned[p.pid, me.PageKind.ANON]) == 600
    assert int(st.owned[t1.pid, me.PageKind.ANON]) == 0  # t1's row holds no mm of its own
    assert t1.view().owned["anon"] == 600
    # per-thread scoring would pick q (350 > 200); per process p's mm (600) is the victim
    _alloc(emu, q, 100)
    assert [t.view().state for t in (p, t1, t2)] == ["exited"] * 3
    assert q.view().state == "running"
    assert emu.events("A")["oom_kill"] == 1  # one kill of one process, however many threads
    assert int(st.owned[p.pid, me.PageKind.ANON]) == 0
    assert int(st.pool[emu.cgroup_id("A"), me.PageKind.ANON]) == 450
    emu.check_invariants()


def test_thread_group_killed_together_and_mm_freed_by_the_last(backend):
    emu = me.Emulator(backend=backend)
    emu.mkdir("A")
    p = emu.new_task("A")
    t1 = emu.new_thread(p)
    _alloc(emu, t1, 64)
    emu.block(t1)
    emu.kill(p)
    assert p.view().state == "exited"
    assert t1.view().state == "blocked" and emu.state.sigkill[t1.pid]
    # the mm lives while t1 uses it: the pages are still charged
    assert int(emu.state.usage[emu.cgroup_id("A")]) == 64
    emu.wake(t1)
    assert t1.view().state == "exited"
    assert int(emu.state.usage[emu.cgroup_id("A")]) == 0
    emu.check_invariants()


def test_process_sharing_the_mm_is_killed_with_it(backend):
    """__oom_kill_process: every other user process sharing the victim's mm gets SIGKILL
    (it is not counted as a kill)."""
    emu = me.Emulator(backend=backend)
    emu.mkdir("A")
    emu.mkdir("B")
    emu.write("A", "memory.max", 300 * me.PAGE_SIZE)
    p = emu.new_task("A")
    v = emu.new_thread(p, same_thread_group=False)  # vfork-like: own process, p's mm
    emu.attach(v, "B")
    a = emu.new_task("A")
    assert _alloc(emu, v, 250) == 0  # charged to the mm owner's memcg A
    assert int(emu.state.usage[emu.cgroup_id("B")]) == 0
    _alloc(emu, a, 100)
    assert p.view().state == "exited" and v.view().state == "exited"
    assert emu.events("A")["oom_kill"] == 1
    assert emu.events("B")["oom_kill"] == 0


def test_reaper_fails_on_a_contended_mmap_lock(backend):
    emu = me.Emulator(backend=backend)
    emu.mkdir("A")
    emu.write("A", "memory.max", 300 * me.PAGE_SIZE)
    p = emu.new_task("A")
    t1 = emu.new_thread(p)
    a = emu.new_task("A")
    assert _alloc(emu, p, 250) == 0
    emu.block(p)
    emu.block(t1)
    emu.mmap_lock(t1)  # a thread holds the process's mmap_lock for write
    _alloc(emu, a, 100)
    assert emu.state.reap_queued[p.pid]
    assert emu.oom_reaper() == 0  # every trylock fails
    assert emu.state.mm_oom_skip[p.pid]
    assert int(emu.state.owned[p.pid, me.PageKind.ANON]) == 250
    emu.wake(p)
    emu.wake(t1)  # the last user's exit_mmap frees the mm
    assert int(emu.state.owned[p.pid, me.PageKind.ANON]) == 0
    emu.check_invariants()


# ---- replay and the event format ----------------------------------------------------------------
def _g_stream():
    from memcg_emu.events import EventBuilder

    b = EventBuilder()
    for t, pages in ((0, 25 * MB), (1, MB), (2, MB)):
        for _ in range(pages // 64):
            b.charge(t, 64)
    for _ in range(25):
        for _ in range(2 * MB // 8):
            b.charge(3, 8)
        b.return_to_user(3)
    return b.build()


def _g_machine(backend):
    emu = me.Emulator(backend=backend)
    emu.mkdir("G")
    emu.write("G", "memory.max", "40M")
    emu.write("G", "memory.oom.group", "1")
    for adj in (0, 0, -1000, 0):
        emu.new_task("G", oom_score_adj=adj)
    return emu


def test_group_kill_in_replay(backend):
    ev = _g_stream()
    # X's events after its fatal return to user space are rejected: replay up to there
    with pytest.raises(ValueError, match="has exited") as exc:
        _g_machine(backend).replay(ev)
    n = int(re.search(r"event (\d+)", str(exc.value)).group(1))
    assert ev[n - 1]["op"] == me.events.Op.RETURN_TO_USER and ev[n - 1]["task"] == 3
    emu = _g_machine(backend)
    emu.replay(ev[:n])
    assert emu.events("G")["oom_kill"] == 4
    assert emu.events("G")["oom_group_kill"] == 1
    assert [emu.task(p).view().state for p in range(4)] == \
        ["exited", "exited", "running", "exited"]


def test_version_1_files_still_load(tmp_path):
    import numpy as np

    from memcg_emu import io
    from memcg_emu.events import FORMAT_VERSION, READABLE_VERSIONS

    assert FORMAT_VERSION == 2 and 1 in READABLE_VERSIONS
    ev = _g_stream()[:50]
    p = tmp_path / "old.npz"
    np.savez(p, events=ev, format_version=np.int64(1))
    np.testing.assert_array_equal(io.load_npz(p), ev)
    with pytest.raises(ValueError, match="version 3 is not supported"):
        np.savez(p, events=ev, format_version=np.int64(3))
        io.load_npz(p)


def test_workload_with_threads_round_trips(tmp_path, backend):
    from memcg_emu import io
    from memcg_emu.workloads import CgroupSpec, TaskSpec, Workload
    from memcg_emu.events import EventBuilder

    ev = EventBuilder().charge(1, 10).charge(0, 5).kill(1).build()
    w = Workload(name="threads", cgroups=(CgroupSpec("/A", max=100),),
                 tasks=(TaskSpec("/A"), TaskSpec("/A", thread_of=0)), events=ev, nr_cpus=1)
    io.save_workload(tmp_path / "w.npz", w)
    w2 = io.load_workload(tmp_path / "w.npz")
    assert w2.tasks == w.tasks
    emu = w2.build(backend=backend)
    assert int(emu.state.tgid[1]) == 0 and int(emu.state.mm[1]) == 0
    emu.replay(w2.events)
    assert [emu.task(p).view().state for p in range(2)] == ["exited", "exited"]
    assert int(emu.state.pool[1, me.PageKind.ANON]) == 0


def test_cgroup_procs_lists_processes_and_attach_moves_the_group(backend):
    emu = me.Emulator(backend=backend)
    emu.mkdir("A")
    emu.mkdir("B")
    p = emu.new_task("A")
    t1 = emu.new_thread(p)
    q = emu.new_task("A")
    assert emu.read("A", "cgroup.procs") == f"{p.pid}\n{q.pid}\n"
    assert emu.read("A", "cgroup.threads") == f"{p.pid}\n{t1.pid}\n{q.pid}\n"
    emu.write("B", "cgroup.procs", str(t1.pid))  # writing any thread's pid moves its process
    assert emu.read("B", "cgroup.procs") == f"{p.pid}\n"
    assert emu.read("A", "cgroup.procs") == f"{q.pid}\n"
    assert t1.view().tgid == p.pid and t1.view().mm == p.pid


def test_process_whose_leader_exited_is_still_found_and_killed(backend):
    """mem_cgroup_scan_tasks(CSS_TASK_ITER_PROCS) still visits a process whose leader has
    exited while a thread lives; find_lock_task_mm() picks that thread for the badness (the
    mm's pages) and for the kill."""
    emu = me.Emulator(backend=backend)
    emu.mkdir("A")
    emu.write("A", "memory.max", 300 * me.PAGE_SIZE)
    p = emu.new_task("A")
    t1 = emu.new_thread(p)
    a = emu.new_task("A")
    assert _alloc(emu, t1, 200) == 0
    emu.exit(p)  # the leader leaves; the mm lives on in t1
    assert int(emu.state.mm_users[p.pid]) == 1 and int(emu.state.owned[p.pid, 0]) == 200
    assert emu.read("A", "cgroup.procs") == f"{p.pid}\n{a.pid}\n"
    _alloc(emu, a, 150)
    assert t1.view().state == "exited" and t1.view().oom_victim
    assert emu.events("A")["oom_kill"] == 1
    assert int(emu.state.owned[p.pid, 0]) == 0
    emu.check_invariants()


# ---- the OOM scan's order (mm/oom_kill.c: select_bad_process, mem_cgroup_scan_tasks) ---------

def _scan_machine(backend, leaves=("X", "Y")):
    emu = me.Emulator(backend=backend)
    emu.mkdir("P")
    emu.write("P", "memory.max", 300 * me.PAGE_SIZE)
    for leaf in leaves:
        emu.mkdir(f"P/{leaf}")
    return emu


def test_scan_ties_go_to_the_later_memcg_in_preorder_then_the_later_pid(backend):
    """A candidate replaces the choice unless its badness is strictly lower, and the domain is
    walked memcg by memcg in pre-order (css_for_each_descendant_pre), each memcg's processes
    in pid order: of equal scores the last one walked is killed, not the highest pid."""
    emu = _scan_machine(backend)
    y = emu.new_task("P/Y")  # lower pid, later memcg
    x1, x2 = emu.new_task("P/X"), emu.new_task("P/X")
    z = emu.new_task("P", oom_score_adj=-1000)
    for t in (y, x1, x2):
        assert _alloc(emu, t, 90) == 0
    _alloc(emu, z, 40)
    assert [t.view().state for t in (y, x1, x2)] == ["exited", "running", "running"]
    assert emu.events("P")["oom_kill"] == 1
    # the same tie inside one memcg: the later pid
    emu2 = _scan_machine(backend)
    a1, a2 = emu2.new_task("P/X"), emu2.new_task("P/X")
    z2 = emu2.new_task("P", oom_score_adj=-1000)
    for t in (a1, a2):
        assert _alloc(emu2, t, 130) == 0
    _alloc(emu2, z2, 50)
    assert [t.view().state for t in (a1, a2)] == ["running", "exited"]
    emu.check_invariants()
    emu2.check_invariants()


def test_pending_victim_whose_leader_exited_stops_every_later_scan(backend):
    """While a victim has not freed its mm (signal->oom_mm set, no MMF_OOM_SKIP), each OOM
    scan that reaches it aborts and kills nobody, also when its leader has exited and only a
    blocked thread is left; once that thread exits, the next OOM kills again."""
    emu = _scan_machine(backend)
    p = emu.new_task("P/X")
    t1 = emu.new_thread(p)
    q = emu.new_task("P/Y")
    z = emu.new_task("P", oom_score_adj=-1000)
    assert _alloc(emu, t1, 150) == 0
    assert _alloc(emu, q, 100) == 0
    emu.exit(p)  # the leader leaves; t1 keeps the mm
    emu.block(t1)
    emu.mmap_lock(t1)  # the reaper cannot free it either
    _alloc(emu, z, 80)
    assert emu.events("P")["oom_kill"] == 1 and emu.state.sigkill[t1.pid]
    ooms = emu.events("P")["oom"]
    _alloc(emu, z, 5)
    _alloc(emu, z, 5)
    assert emu.events("P")["oom"] > ooms  # OOM invoked again ...
    assert emu.events("P")["oom_kill"] == 1  # ... and aborted on the pending victim
    assert q.view().state == "running"
    emu.wake(t1)
    assert t1.view().state == "exited"
    assert int(emu.state.owned[p.pid, me.PageKind.ANON]) == 0  # exit_mmap() freed it
    _alloc(emu, z, 300)
    assert q.view().state == "exited" and emu.events("P")["oom_kill"] == 2
    emu.check_invariants()
