"""The step API: cgroupfs formats, charge-target resolution (docs/model.md §3), scopes
(docs/model.md §12), constants."""
import pytest

import memcg_emu as me
from memcg_emu import PAGE_SIZE


def test_constants_have_kernel_values():
    assert me.GFP_KERNEL == 0xCC0 and me.GFP_NOFS == 0xC40 and me.GFP_NOIO == 0xC00
    assert me.GFP_ATOMIC == 0x820 and me.GFP_NOWAIT == 0x2800
    assert me.GFP_KERNEL_ACCOUNT == 0x400CC0 and me.__GFP_NOFAIL == 0x8000
    assert me.PF_MEMALLOC == 0x800 and me.PF_MEMALLOC_NOFS == 0x40000
    assert me.PF_KTHREAD == 0x200000 and me.PF_MEMALLOC_ACCOUNTFORCE == 0x40000000
    assert me.MEMCG_CHARGE_BATCH == 64 and me.PAGE_COUNTER_MAX == 2251799813685247
    assert [e.value for e in me.MemcgEvent] == list(range(9))
    assert me.MEMCG_OOM_KILL == 4


def test_file_formats(make):
    emu = make()
    emu.mkdir("A")
    assert emu.read("A", "memory.max") == "max\n"
    assert emu.read("A", "memory.low") == "0\n"
    emu.write("A", "memory.max", "1M")
    assert emu.read("A", "memory.max") == "1048576\n"
    emu.write("A", "memory.max", "5000")  # floored to whole pages
    assert emu.read("A", "memory.max") == "4096\n"
    assert emu.read("A", "memory.events") == (
        "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n")
    assert emu.read("A", "memory.swap.events") == "high 0\nmax 0\nfail 0\n"
    assert emu.read("A", "memory.oom.group") == "0\n"
    emu.write("A", "memory.max", "max")
    t = emu.new_task("A")
    emu.charge(t, 1, kind="file")
    keys = [line.split()[0] for line in emu.read("A", "memory.stat").splitlines()]
    assert keys == ["anon", "file", "kernel", "file_dirty", "file_writeback", "unevictable",
                    "pgscan", "pgsteal"]
    assert "file 4096\n" in emu.read("A", "memory.stat")
    assert emu.read("A", "memory.current") == f"{64 * PAGE_SIZE}\n"  # batch of 64
    assert emu.read("A", "cgroup.procs") == f"{t.pid}\n"
    assert "file 4096\n" in emu.read("/", "memory.stat")  # hierarchical


def test_stat_dirty_and_writeback(make):
    emu = make()
    emu.mkdir("A")
    t = emu.new_task("A")
    emu.charge(t, 10, kind="file")
    emu.set_dirty("A", 6)
    emu.start_writeback("A", 4)
    stat = dict(line.split() for line in emu.read("A", "memory.stat").splitlines())
    assert int(stat["file"]) == 10 * PAGE_SIZE
    assert int(stat["file_dirty"]) == 2 * PAGE_SIZE
    assert int(stat["file_writeback"]) == 4 * PAGE_SIZE
    emu.end_writeback("A", 4)
    assert emu.pool("A")["file"] == 8


def test_dirty_pages_are_not_reclaimed(make):
    emu = make()
    emu.mkdir("A")
    emu.write("A", "memory.max", 100 * PAGE_SIZE)
    t = emu.new_task("A")
    assert emu.charge(t, 100, kind="file") == 0
    emu.set_dirty("A", 100)
    assert emu.charge(t, 1, me.GFP_NOFS) == -me.ENOMEM
    assert emu.stats["flusher_wakeups"] > 0 and emu.stats["reclaim_reclaimed"] == 0
    emu.start_writeback("A", 100)
    emu.end_writeback("A", 100)  # now clean
    assert emu.charge(t, 1, me.GFP_NOFS) == 0
    assert emu.stats["reclaim_reclaimed"] >= 32


def test_noio_scope_prevents_swap_out(make):
    emu = make(swap="1M")
    emu.mkdir("A")
    emu.write("A", "memory.max", 100 * PAGE_SIZE)
    t = emu.new_task("A")
    assert emu.charge(t, 100) == 0
    emu.memalloc_noio_save(t)
    assert emu.charge(t, 1) == -me.ENOMEM  # anon needs IO to go to swap: OOM, R16
    assert emu.pool("A")["swap"] == 0 and emu.stats["reclaim_reclaimed"] == 0
    assert emu.events("A")["oom_kill"] == 1


def test_swap_out_with_swap(make):
    emu = make(swap="1M")
    emu.mkdir("A")
    emu.write("A", "memory.max", 100 * PAGE_SIZE)
    t = emu.new_task("A")
    assert emu.charge(t, 100) == 0
    assert emu.charge(t, 1) == 0
    assert emu.pool("A")["swap"] >= 32
    assert int(emu.read("A", "memory.swap.current")) == emu.pool("A")["swap"] * PAGE_SIZE
    emu.write("A", "memory.swap.max", "0")
    before = emu.pool("A")["swap"]
    assert emu.charge(t, 50, me.GFP_KERNEL | me.__GFP_RETRY_MAYFAIL) == -me.ENOMEM
    assert emu.pool("A")["swap"] == before
    emu.check_invariants()


def test_charge_targets(make):
    """docs/model.md §3: anon follows the mm, page cache the active memcg, kmem the objcg rules."""
    emu = make()
    for p in ("A", "B"):
        emu.mkdir(p)
    t = emu.new_task("A")
    k = emu.new_task("/", kthread=True)
    emu.charge(k, 5, kind="file")  # kthread, no active memcg: root, unaccounted
    emu.charge(k, 5, kind="kernel")  # kthread: no objcg
    assert emu.pages("/") == 0
    assert emu.set_active_memcg(t, "B") is None
    emu.charge(t, 3, kind="anon")  # the fault's mm: A
    emu.charge(t, 3, kind="file")  # page cache: the active memcg
    emu.charge(t, 3, kind="kernel")  # objcg of the active memcg
    assert emu.pool("A")["anon"] == 3
    assert emu.pool("B")["file"] == 3 and emu.pool("B")["kernel"] == 3
    assert emu.set_active_memcg(t, None) == "/B"
    emu.set_active_memcg(k, "A")
    emu.charge(k, 2, kind="kernel")
    assert emu.pool("A")["kernel"] == 2
    emu.charge(t, 2, kind="anon", memcg="B")  # explicit remote target (swap-in)
    assert emu.pool("B")["anon"] == 2
    emu.check_invariants()


def test_flags_save_restore_semantics(make):
    emu = make()
    t = emu.new_task("/")
    a = emu.memalloc_nofs_save(t)
    b = emu.memalloc_nofs_save(t)
    assert (a, b) == (me.PF_MEMALLOC_NOFS, 0)
    emu.memalloc_nofs_restore(t, b)
    assert t.flags & me.PF_MEMALLOC_NOFS
    emu.memalloc_nofs_restore(t, a)
    assert not t.flags & me.PF_MEMALLOC_NOFS


def test_rmdir_leaves_zombie_charges(make):
    emu = make()
    emu.mkdir("P")
    emu.mkdir("P/C")
    t = emu.new_task("P/C")
    emu.charge(t, 10, kind="file")
    emu.attach(t, "P")
    emu.rmdir("P/C")  # its stock is drained; its page cache stays charged
    assert "/P/C" not in emu.cgroups
    assert emu.pages("P") == 10
    with pytest.raises(ValueError, match="no such cgroup"):
        emu.read("P/C", "memory.current")
    emu.mkdir("P/C")  # a new cgroup with the same name
    assert emu.pages("P/C") == 0
    emu.check_invariants()


def test_peak_fd_semantics(make):
    emu = make()
    emu.mkdir("A")
    t = emu.new_task("A")
    emu.charge(t, 100, kind="kernel")
    f, g = emu.open("A", "memory.peak"), emu.open("A", "memory.peak")
    assert f.read() == f"{100 * PAGE_SIZE}\n"  # never written: the global watermark
    emu.uncharge(t, 100, kind="kernel")
    f.write("reset")
    assert int(f.read()) < 100 * PAGE_SIZE
    assert g.read() == f"{100 * PAGE_SIZE}\n"
    g.write("reset")
    emu.charge(t, 10, kind="kernel")
    assert int(f.read()) >= 10 * PAGE_SIZE and int(g.read()) >= 10 * PAGE_SIZE
    assert emu.read("A", "memory.peak") == f"{100 * PAGE_SIZE}\n"
    f.close()
    g.close()
    with pytest.raises(ValueError, match="closed"):
        f.read()


def test_write_cgroup_procs(make):
    emu = make()
    emu.mkdir("A")
    t = emu.new_task("/")
    emu.write("A", "cgroup.procs", str(t.pid))
    assert t.cgroup == "/A"


def test_dying_state_and_kill(make):
    emu = make()
    emu.mkdir("A")
    t = emu.new_task("A")
    emu.charge(t, 10)
    emu.block(t)
    emu.kill(t)
    assert t.state == "blocked" and t.fatal_signal_pending
    assert emu.pool("A")["anon"] == 10  # D state: it cannot free anything
    emu.wake(t)
    assert t.state == "exited" and emu.pool("A")["anon"] == 0


def test_reaper_blocked_by_mmap_lock(make):
    emu = make()
    emu.mkdir("A")
    emu.write("A", "memory.max", 50 * PAGE_SIZE)
    v = emu.new_task("A")
    t = emu.new_task("A")
    emu.charge(v, 50)
    emu.block(v)
    emu.mmap_lock(v)
    assert emu.charge(t, 1, me.GFP_KERNEL | me.__GFP_NOFAIL) == me.EMU_LIVELOCK
    assert t.livelock_site == "try_charge"
    assert emu.oom_reaper() == 0  # trylock on mmap_lock fails; MMF_OOM_SKIP set anyway
    assert emu.charge(t, 1, me.GFP_KERNEL | me.__GFP_NOFAIL) == 0  # no victim left: forced
    assert emu.pages("A") == 51
    emu.mmap_unlock(v)
    emu.wake(v)
    assert v.state == "exited" and emu.pages("A") == 1


def test_reaper_frees_unlocked_victim(make):
    emu = make()
    emu.mkdir("A")
    emu.write("A", "memory.max", 50 * PAGE_SIZE)
    v = emu.new_task("A")
    t = emu.new_task("A")
    emu.charge(v, 50)
    emu.block(v)
    assert emu.charge(t, 1, me.GFP_KERNEL | me.__GFP_NOFAIL) == me.EMU_LIVELOCK
    assert emu.oom_reaper() == 50
    assert emu.charge(t, 1) == 0
