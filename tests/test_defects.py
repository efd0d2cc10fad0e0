"""KERNEL_SPEC §17: each defect of the PF_MEMALLOC_ACCOUNTFORCE v1 patch the emulator can show,
demonstrated under ``accountforce-v1`` and shown absent under ``baseline``."""
import pytest

import memcg_emu as me
from memcg_emu import GFP_KERNEL, GFP_NOWAIT, PAGE_SIZE, PF_MEMALLOC_ACCOUNTFORCE, __GFP_NORETRY

POLICIES = ["baseline", "accountforce-v1"]


def _full(make, policy, max_pages=50, kind="anon", **kw):
    """Cgroup A at its limit with T's unreclaimable pages; returns (emu, T)."""
    emu = make(policy, **kw)
    emu.mkdir("A")
    emu.write("A", "memory.max", max_pages * PAGE_SIZE)
    t = emu.new_task("A")
    assert emu.charge(t, max_pages, kind=kind) == 0
    return emu, t


def _flag(emu, t):
    """Enter the scope the way jbd2 does under the patch (the bit is inert under baseline)."""
    return emu.memalloc_flags_save(t, PF_MEMALLOC_ACCOUNTFORCE)


@pytest.mark.parametrize("policy", POLICIES)
def test_17_1_unbounded_overshoot(make, policy):
    emu, t = _full(make, policy)
    _flag(emu, t)
    rcs = [emu.charge(t, 8, GFP_KERNEL) for _ in range(100)]
    over = emu.pages("A") - emu.pages("A", "max")
    if policy == "accountforce-v1":
        assert rcs == [0] * 100 and over == 800
        assert emu.pages("A", "watermark") == 850 and t.memcg_nr_pages_over_max == 800
        assert int(emu.read("A", "memory.peak")) > int(emu.read("A", "memory.max"))
    else:
        assert over <= 0 and 0 not in rcs  # reclaim, OOM kills T, then ENOMEM


@pytest.mark.parametrize("policy", POLICIES)
def test_17_2_no_oom_above_8_pages(make, policy):
    emu, t = _full(make, policy)
    saved = _flag(emu, t)
    rc = emu.charge(t, 9)
    emu.memalloc_flags_restore(t, saved)
    emu.return_to_user(t)
    if policy == "accountforce-v1":
        assert rc == 0 and emu.pages("A") == 59  # over max, and it stays so
        assert emu.events("A")["oom"] == 0
    else:
        assert rc == -me.ENOMEM and emu.pages("A") <= 50
        assert emu.events("A")["oom"] == 0  # order 4: try_charge cannot OOM either


@pytest.mark.parametrize("policy", POLICIES)
def test_17_3_livelock_without_dying_check(make, policy):
    emu, t = _full(make, policy, kind="kernel")  # the reaper cannot free kmem
    _flag(emu, t)
    emu.charge(t, 4, kind="kernel")
    emu.return_to_user(t)
    if policy == "accountforce-v1":
        assert emu.stats["livelocks"] == 1 and t.livelock_site == "handle_over_max"
        assert emu.oom_reaper() == 0 and emu.pages("A") == 54
    else:
        assert emu.stats["livelocks"] == 0
        assert t.state == "exited"  # R16 let the killed task fail the charge and die


@pytest.mark.parametrize("policy", POLICIES)
def test_17_4_deferral_charged_to_mm_memcg_not_active_memcg(make, policy):
    emu = make(policy)
    emu.mkdir("A")
    emu.mkdir("B")
    emu.write("B", "memory.max", 50 * PAGE_SIZE)
    t = emu.new_task("A")  # its mm is in A, which has no limit
    filler = emu.new_task("B")
    assert emu.charge(filler, 50, kind="kernel") == 0
    _flag(emu, t)
    emu.set_active_memcg(t, "B")  # remote charging into B
    rc = emu.charge(t, 4, kind="file")
    emu.set_active_memcg(t, None)
    emu.return_to_user(t)
    if policy == "accountforce-v1":
        assert rc == 0 and emu.pages("B") == 54  # forced into B ...
        assert emu.stats["reclaim_calls"] == 0  # ... and A, not B, was checked on return
        assert filler.state == "running"
    else:
        # the limit is enforced where the charge lands: reclaim, then OOM in B
        assert emu.pages("B") <= 50 and emu.events("B")["oom_kill"] == 1
        assert filler.state == "exited"


@pytest.mark.parametrize("policy", POLICIES)
def test_17_5_kthread_never_pays_back(make, policy):
    emu = make(policy)
    emu.mkdir("B")
    emu.write("B", "memory.max", 50 * PAGE_SIZE)
    filler = emu.new_task("B")
    assert emu.charge(filler, 50, kind="kernel") == 0
    k = emu.new_task("/", kthread=True)
    _flag(emu, k)
    emu.set_active_memcg(k, "B")
    rc = emu.charge(k, 4, kind="file")
    with pytest.raises(ValueError, match="kernel thread"):
        emu.return_to_user(k)
    if policy == "accountforce-v1":
        assert rc == 0 and emu.pages("B") == 54
        assert k.memcg_nr_pages_over_max == 4  # stays forever
    else:
        assert emu.pages("B") <= 50 and emu.events("B")["oom_kill"] == 1
        assert k.memcg_nr_pages_over_max == 0


@pytest.mark.parametrize("policy", POLICIES)
def test_17_6_v1_restore_helper_breaks_nesting(make, policy):
    emu, t = _full(make, policy)
    outer = emu.memalloc_account_force_save(t)
    inner = emu.memalloc_account_force_save(t)
    assert outer == PF_MEMALLOC_ACCOUNTFORCE and inner == 0
    emu.memalloc_account_force_restore(t)  # inner restore, as posted: clears the flag
    assert not t.flags & PF_MEMALLOC_ACCOUNTFORCE  # the outer scope now runs unflagged
    rc_broken = emu.charge(t, 1, GFP_NOWAIT)
    emu.memalloc_account_force_restore(t)
    # the same nesting with memalloc_flags_restore(saved) keeps the outer scope flagged
    emu2, t2 = _full(make, policy)
    o2 = emu2.memalloc_account_force_save(t2)
    i2 = emu2.memalloc_account_force_save(t2)
    emu2.memalloc_flags_restore(t2, i2)
    assert t2.flags & PF_MEMALLOC_ACCOUNTFORCE
    rc_nested = emu2.charge(t2, 1, GFP_NOWAIT)
    emu2.memalloc_flags_restore(t2, o2)
    assert rc_broken == -me.ENOMEM
    assert rc_nested == (0 if policy == "accountforce-v1" else -me.ENOMEM)


@pytest.mark.parametrize("gfp", [GFP_NOWAIT, me.GFP_ATOMIC & ~me.__GFP_HIGH,
                                 GFP_KERNEL | __GFP_NORETRY,
                                 GFP_KERNEL | me.__GFP_RETRY_MAYFAIL])
@pytest.mark.parametrize("policy", POLICIES)
def test_17_7_fail_fast_charges_are_forced(make, policy, gfp):
    emu, t = _full(make, policy)
    _flag(emu, t)
    rc = emu.charge(t, 1, gfp)
    if policy == "accountforce-v1":
        assert rc == 0 and emu.pages("A") == 51
        assert emu.events("A")["max"] == 1
    else:
        assert rc == -me.ENOMEM and emu.pages("A") == 50


def test_17_8_over_reclaim(make):
    emu = make("accountforce-v1")
    emu.mkdir("A")
    emu.write("A", "memory.max", 1000 * PAGE_SIZE)
    t = emu.new_task("A")
    u = emu.new_task("A")
    assert emu.charge(u, 900, kind="file") == 0  # clean, reclaimable
    assert emu.charge(t, 100, kind="kernel") == 0
    _flag(emu, t)
    assert emu.charge(t, 100, kind="kernel") == 0  # forced: 1100
    emu.uncharge(t, 95, kind="kernel", memcg="A")  # others bring it to 5 over max
    emu.state.stock_pages[:] = 0  # (keep the arithmetic about page counters only)
    emu.return_to_user(t)
    # it asks for the full 100 pages, although 5 would do
    assert emu.pages("A") <= 1000 - 95


@pytest.mark.parametrize("policy", POLICIES)
def test_17_9_no_stock_drain_before_oom(make, policy):
    emu = make(policy, nr_cpus=2)
    emu.mkdir("A")
    emu.write("A", "memory.max", 100 * PAGE_SIZE)
    u = emu.new_task("A", cpu=1)
    t = emu.new_task("A", cpu=0)
    assert emu.charge(u, 4) == 0  # 64 charged, 60 parked in CPU1's stock
    emu.uncharge(u, 4)
    assert emu.charge(t, 40, kind="kernel") == 0  # 60 stocked + 40 = 100
    _flag(emu, t)
    rc = emu.charge(t, 4, kind="kernel")
    emu.return_to_user(t)
    assert rc == 0
    if policy == "accountforce-v1":
        assert emu.events("A")["oom"] > 0  # reclaim + OOM although a drain would do
        assert emu.state.stock_pages.sum() == 60
    else:
        assert emu.events("A")["oom"] == 0 and emu.stats["drains"] == 1


def test_17_10_seventeen_zero_progress_calls(make):
    emu, t = _full(make, "accountforce-v1")
    _flag(emu, t)
    emu.charge(t, 60)
    before = emu.stats["reclaim_calls"]
    emu.return_to_user(t)
    assert emu.stats["reclaim_calls"] - before == 17


@pytest.mark.parametrize("policy", POLICIES)
def test_17_11_forced_charge_skips_high_check(make, policy):
    emu, t = _full(make, policy)
    emu.write("A", "memory.high", 10 * PAGE_SIZE, nonblock=True)
    _flag(emu, t)
    emu.charge(t, 4, GFP_NOWAIT)
    assert t.memcg_nr_pages_over_high == 0
