"""docs/model.md §17: each defect of the PF_MEMALLOC_ACCOUNTFORCE v1 patch the emulator can show,
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


# =============================================================================================
# Fixed twins: the same scenario under the knob that fixes the defect (memcg_emu.policy),
# everything else as posted (base accountforce-v1).
# =============================================================================================
def _v1(**knobs):
    return me.Policy(base="accountforce-v1", **knobs)


def test_17_1_fixed_over_max_cap(make):
    """over_max_cap=N: a flagged charge that would take any ancestor more than N pages over
    its memory.max is not deferred but takes try_charge_memcg()'s normal path (reclaim, OOM,
    -ENOMEM), so the breach of memory.max is bounded by N instead of by the number of handle
    cycles before the next return to user."""
    emu, t = _full(make, _v1(over_max_cap=64))
    _flag(emu, t)
    rcs = [emu.charge(t, 8, GFP_KERNEL) for _ in range(100)]
    assert rcs[:8] == [0] * 8  # 8 x 8 = 64 pages forced: the cap
    assert emu.pages("A", "watermark") == 50 + 64
    assert emu.pages("A") - emu.pages("A", "max") <= 64
    assert -me.ENOMEM in rcs or emu.events("A")["oom_kill"] == 1  # past it: the normal path
    assert t.memcg_nr_pages_over_max == 64


def test_17_2_fixed_oom_order_zero(make):
    """over_max_oom_order=zero: the deferred pages are already charged, so the OOM that
    repays them is not an allocation of get_order(deficit); like memory_max_write() it asks
    order 0, which mem_cgroup_oom() accepts (order <= PAGE_ALLOC_COSTLY_ORDER)."""
    for policy in ("accountforce-v1", _v1(over_max_oom_order="zero")):
        emu = make(policy)
        emu.mkdir("A")
        emu.write("A", "memory.max", 50 * PAGE_SIZE)
        u = emu.new_task("A")
        t = emu.new_task("A")
        assert emu.charge(u, 40) == 0 and emu.charge(t, 10, kind="kernel") == 0
        saved = _flag(emu, t)
        assert emu.charge(t, 9, kind="kernel") == 0
        emu.memalloc_flags_restore(t, saved)
        emu.return_to_user(t)
        if policy == "accountforce-v1":
            assert emu.events("A")["oom"] == 0 and emu.pages("A") == 59
        else:
            assert emu.events("A")["oom_kill"] == 1 and u.state == "exited"
            assert emu.stats["over_max_oom_skipped"] == 0
            assert emu.pages("A") <= 50 and t.state == "running"


def test_17_2_as_posted_counts_the_skipped_oom(make):
    emu, t = _full(make, "accountforce-v1")
    saved = _flag(emu, t)
    emu.charge(t, 9)
    emu.memalloc_flags_restore(t, saved)
    emu.return_to_user(t)
    assert emu.stats["over_max_oom_skipped"] == 1 and emu.events("A")["oom"] == 0


def test_17_3_fixed_dying_task_leaves_the_loop(make):
    """over_max_dying=exit: mem_cgroup_handle_over_max() checks task_is_dying() at each pass,
    as mem_cgroup_handle_over_high() does, so a task the OOM killer chose (itself) leaves the
    loop and dies on its way out instead of looping reclaim -> OOM with nothing to kill."""
    emu, t = _full(make, _v1(over_max_dying="exit"), kind="kernel")
    _flag(emu, t)
    emu.charge(t, 4, kind="kernel")
    emu.return_to_user(t)
    assert emu.stats["livelocks"] == 0
    assert emu.events("A")["oom_kill"] == 1
    # the SIGKILL raised during the return-to-user work is delivered on the same way out:
    # kernel/entry/common.c: exit_to_user_mode_loop() reads the thread flags again
    assert t.state == "exited"


def test_17_4_fixed_over_max_target_charged(make):
    """over_max_target=charged: the task remembers the memcg its pages were forced into (the
    remote set_active_memcg() target B), so the deferred reclaim and OOM run where the limit
    was exceeded, not in the memcg of current->mm."""
    emu = make(_v1(over_max_target="charged"))
    emu.mkdir("A")
    emu.mkdir("B")
    emu.write("B", "memory.max", 50 * PAGE_SIZE)
    t = emu.new_task("A")
    filler = emu.new_task("B")
    assert emu.charge(filler, 50, kind="kernel") == 0
    _flag(emu, t)
    emu.set_active_memcg(t, "B")
    rc = emu.charge(t, 4, kind="file")
    emu.set_active_memcg(t, None)
    emu.return_to_user(t)
    assert rc == 0
    assert emu.stats["reclaim_calls"] > 0  # B was checked on return ...
    assert emu.pages("B") <= 50  # ... and repaid: the 4 clean page-cache pages reclaimed
    assert filler.state == "running"  # (under baseline the charge's OOM killed the filler)


def test_17_4_fixed_target_two_memcgs_meet_at_common_ancestor(make):
    emu = make(_v1(over_max_target="charged"))
    for p in ("P", "P/B", "P/C", "A"):
        emu.mkdir(p)
    emu.write("P", "memory.max", 50 * PAGE_SIZE)
    t = emu.new_task("A")
    filler = emu.new_task("P/B")
    assert emu.charge(filler, 50, kind="file") == 0
    _flag(emu, t)
    for target in ("P/B", "P/C"):
        emu.set_active_memcg(t, target)
        assert emu.charge(t, 4, kind="file") == 0
    emu.set_active_memcg(t, None)
    emu.return_to_user(t)
    assert emu.pages("P") <= 50  # reclaimed from P's subtree (the common ancestor)


def test_17_5_fixed_kthread_refused(make):
    """accountforce_kthread=refused: a kernel thread never runs resume_user_mode_work(), so
    a deferral could never be repaid; its flagged charges take the normal path and the
    limit is enforced at once (as without the patch)."""
    emu = make(_v1(accountforce_kthread="refused"))
    emu.mkdir("B")
    emu.write("B", "memory.max", 50 * PAGE_SIZE)
    filler = emu.new_task("B")
    assert emu.charge(filler, 50, kind="kernel") == 0
    k = emu.new_task("/", kthread=True)
    _flag(emu, k)
    emu.set_active_memcg(k, "B")
    emu.charge(k, 4, kind="file")
    assert emu.pages("B") <= 50 and emu.events("B")["oom_kill"] == 1
    assert k.memcg_nr_pages_over_max == 0


def test_17_6_fixed_nesting_safe_restore(make):
    """accountforce_restore=nesting-safe: the helper restores what the matching save
    returned (memalloc_flags_restore(saved), as the jbd2 patch itself does), so an inner
    scope's restore leaves the outer scope flagged."""
    emu, t = _full(make, _v1(accountforce_restore="nesting-safe"))
    outer = emu.memalloc_account_force_save(t)
    inner = emu.memalloc_account_force_save(t)
    assert outer == PF_MEMALLOC_ACCOUNTFORCE and inner == 0
    emu.memalloc_account_force_restore(t)  # inner: clears nothing
    assert t.flags & PF_MEMALLOC_ACCOUNTFORCE
    assert emu.charge(t, 1, GFP_KERNEL) == 0 and emu.last_outcome & me.OUT_DEFERRED
    emu.memalloc_account_force_restore(t)  # outer: clears the flag
    assert not t.flags & PF_MEMALLOC_ACCOUNTFORCE


@pytest.mark.parametrize("gfp", [GFP_NOWAIT, me.GFP_ATOMIC & ~me.__GFP_HIGH,
                                 GFP_KERNEL | __GFP_NORETRY,
                                 GFP_KERNEL | me.__GFP_RETRY_MAYFAIL])
def test_17_7_fixed_fail_fast_charges_refused(make, gfp):
    """accountforce_nowait=refused: the hook takes only charges that may block and would
    loop to OOM; a charge whose caller asked to fail fast (no __GFP_DIRECT_RECLAIM,
    __GFP_NORETRY, __GFP_RETRY_MAYFAIL) still fails, which keeps the readahead fixes
    (bdev_getblk() without direct reclaim) meaningful inside a flagged scope."""
    emu, t = _full(make, _v1(accountforce_nowait="refused"))
    _flag(emu, t)
    assert emu.charge(t, 1, gfp) == -me.ENOMEM and emu.pages("A") == 50
    assert emu.charge(t, 1, GFP_KERNEL | me.__GFP_NOFAIL) == 0  # a blocking one is deferred
    assert emu.last_outcome & me.OUT_DEFERRED


def test_17_8_fixed_reclaims_only_the_excess(make):
    """over_max_reclaim=excess: memory_max_write()'s loop: reclaim usage - max, re-checked
    before each call, so 5 pages over asks for 5 (SWAP_CLUSTER_MAX at least), not 100."""
    emu = make(_v1(over_max_reclaim="excess"))
    emu.mkdir("A")
    emu.write("A", "memory.max", 1000 * PAGE_SIZE)
    t = emu.new_task("A")
    u = emu.new_task("A")
    assert emu.charge(u, 900, kind="file") == 0
    assert emu.charge(t, 100, kind="kernel") == 0
    _flag(emu, t)
    assert emu.charge(t, 100, kind="kernel") == 0
    emu.uncharge(t, 95, kind="kernel", memcg="A")
    emu.state.stock_pages[:] = 0
    emu.return_to_user(t)
    assert 1000 - me.SWAP_CLUSTER_MAX <= emu.pages("A") <= 1000


def test_17_9_fixed_drains_the_stock_first(make):
    """over_max_reclaim=excess drains the per-CPU stocks before reclaiming (as try_charge's
    R11 and memory_max_write() do): the stocked 60 pages bring the cgroup under max."""
    emu = make(_v1(over_max_reclaim="excess"), nr_cpus=2)
    emu.mkdir("A")
    emu.write("A", "memory.max", 100 * PAGE_SIZE)
    u = emu.new_task("A", cpu=1)
    t = emu.new_task("A", cpu=0)
    assert emu.charge(u, 4) == 0
    emu.uncharge(u, 4)
    assert emu.charge(t, 40, kind="kernel") == 0
    _flag(emu, t)
    assert emu.charge(t, 4, kind="kernel") == 0
    emu.return_to_user(t)
    assert emu.events("A")["oom"] == 0 and emu.stats["drains"] == 1
    assert emu.pages("A") <= 100


def test_17_10_fixed_sixteen_zero_progress_calls(make):
    """over_max_reclaim=excess counts zero-progress calls as memory_max_write() does:
    MAX_RECLAIM_RETRIES (16) of them, then the OOM."""
    emu, t = _full(make, _v1(over_max_reclaim="excess"))
    _flag(emu, t)
    emu.charge(t, 60)
    before = emu.stats["reclaim_calls"]
    emu.return_to_user(t)
    assert emu.stats["reclaim_calls"] - before == 16


def test_17_11_fixed_forced_charge_arms_high(make):
    """accountforce_high=armed: a deferred forced charge adds to memcg_nr_pages_over_high
    when the cgroup is over memory.high, as done_restock does, so return to user throttles
    it (without reclaiming inside the flagged scope)."""
    emu, t = _full(make, _v1(accountforce_high="armed"))
    emu.write("A", "memory.high", 10 * PAGE_SIZE, nonblock=True)
    _flag(emu, t)
    emu.charge(t, 4, GFP_KERNEL)
    assert t.memcg_nr_pages_over_high == 4


def test_nofail_bypass_forces_only_nofail_at_once(make):
    """nofail-bypass (the review's alternative): inside the scope a __GFP_NOFAIL charge skips
    direct reclaim and OOM and is forced at once -- where NOFAIL ends anyway -- while other
    charges take the normal path; nothing is deferred to return to user."""
    emu, t = _full(make, "nofail-bypass", kind="kernel")
    _flag(emu, t)
    assert emu.charge(t, 4, me.GFP_NOFS | me.__GFP_NOFAIL, kind="kernel") == 0
    assert emu.last_outcome & me.OUT_FORCED and not emu.last_outcome & me.OUT_DEFERRED
    assert emu.stats["reclaim_calls"] == 0 and emu.stats["oom_calls"] == 0
    assert t.memcg_nr_pages_over_max == 0
    assert emu.charge(t, 1, GFP_NOWAIT) == -me.ENOMEM  # not NOFAIL: the normal path


def test_accountforce_fixed_preset_fixes_every_defect(make):
    """The accountforce-fixed preset carries each fixing knob value above."""
    fixed = me.PRESETS["accountforce-fixed"]
    diff = me.PRESETS["accountforce-v1"].diff(fixed)
    assert set(diff) == {"accountforce_restore", "accountforce_nowait", "accountforce_kthread",
                         "accountforce_high", "over_max_cap", "over_max_target",
                         "over_max_reclaim", "over_max_dying", "over_max_oom_order"}
    emu, t = _full(make, "accountforce-fixed", kind="kernel")
    _flag(emu, t)
    emu.charge(t, 4, kind="kernel")
    emu.return_to_user(t)
    assert emu.stats["livelocks"] == 0
