"""Known answers: docs/model.md §16 E1-E12, the docs/model.md §6.2 delay table,
page-counter details.

Every number asserted here is derived in docs/model.md from the kernel source; the tests run
on both engines (the ``make`` fixture).
"""
import csv
from pathlib import Path

import pytest

import memcg_emu as me
from memcg_emu import (
    GFP_ATOMIC,
    GFP_KERNEL,
    GFP_NOWAIT,
    PAGE_SIZE,
    PF_MEMALLOC,
    PF_MEMALLOC_ACCOUNTFORCE,
    __GFP_NOFAIL,
    __GFP_NORETRY,
    __GFP_RETRY_MAYFAIL,
)

DATA = Path(__file__).parent / "data"
MiB = 1 << 20


def pages(emu, path, field="usage"):
    return emu.pages(path, field)


def ev(emu, path, key, local=False):
    return emu.events(path, local=local)[key]


# ---------------------------------------------------------------------------------------------
# E1 and its variants
# ---------------------------------------------------------------------------------------------
def _e1(make, policy="baseline"):
    emu = make(policy)
    emu.mkdir("P")
    emu.mkdir("P/A")
    emu.write("P", "memory.max", 100 * PAGE_SIZE)
    emu.write("P/A", "memory.max", 50 * PAGE_SIZE)
    return emu, emu.new_task("P/A")


def test_e1_enomem_after_18_passes(make):
    emu, t = _e1(make)
    before = emu.stats["reclaim_calls"]
    assert emu.charge(t, 60, GFP_KERNEL) == -me.ENOMEM
    assert pages(emu, "P/A") == pages(emu, "P") == 0
    assert ev(emu, "P/A", "max") == 18
    assert ev(emu, "P/A", "oom") == 0 and ev(emu, "P/A", "oom_kill") == 0
    assert ev(emu, "P", "max") == 18  # hierarchical
    assert ev(emu, "P", "max", local=True) == 0
    assert ev(emu, "P/A", "max", local=True) == 18
    assert emu.stats["reclaim_calls"] - before == 18
    assert pages(emu, "P/A", "watermark") == 0
    assert pages(emu, "P", "watermark") == 0


@pytest.mark.parametrize("gfp, rc, usage, max_events, reclaims", [
    (GFP_KERNEL | __GFP_NORETRY, -me.ENOMEM, 0, 2, 2),
    (GFP_KERNEL | __GFP_RETRY_MAYFAIL, -me.ENOMEM, 0, 18, 18),
    (GFP_KERNEL | __GFP_NOFAIL, 0, 60, 18, 18),
    (GFP_NOWAIT, -me.ENOMEM, 0, 0, 0),
    (GFP_ATOMIC, 0, 60, 1, 0),
])
def test_e1_variants(make, gfp, rc, usage, max_events, reclaims):
    emu, t = _e1(make)
    assert emu.charge(t, 60, gfp) == rc
    assert pages(emu, "P/A") == pages(emu, "P") == usage
    assert ev(emu, "P/A", "max") == max_events
    assert ev(emu, "P/A", "oom") == 0
    assert emu.stats["reclaim_calls"] == reclaims


@pytest.mark.parametrize("policy", ["baseline", "accountforce-v1"])
def test_e1_pf_memalloc_forces(make, policy):
    emu, t = _e1(make, policy)
    emu.memalloc_noreclaim_save(t)
    assert emu.charge(t, 60) == 0
    assert pages(emu, "P/A") == 60
    assert ev(emu, "P/A", "max") == 1
    assert t.memcg_nr_pages_over_max == 0


# ---------------------------------------------------------------------------------------------
# E2 / E3: the patch
# ---------------------------------------------------------------------------------------------
def test_e2_deferred_charge_never_ooms_above_order_3(make):
    emu, t = _e1(make, "accountforce-v1")
    emu.memalloc_account_force_save(t)
    assert emu.charge(t, 60) == 0
    assert pages(emu, "P/A") == pages(emu, "P") == 60
    assert ev(emu, "P/A", "max") == 1
    assert t.memcg_nr_pages_over_max == 60 and t.notify_resume
    assert emu.last_outcome & me.OUT_DEFERRED and emu.last_outcome & me.OUT_FORCED
    before = emu.stats["reclaim_calls"]
    emu.return_to_user(t)
    assert emu.stats["reclaim_calls"] - before == 17
    assert pages(emu, "P/A") == 60  # 10 over max, indefinitely
    assert t.memcg_nr_pages_over_max == 0 and not t.notify_resume
    assert ev(emu, "P/A", "oom") == 0 and ev(emu, "P/A", "max") == 1


def _e3(make, policy, livelock_limit=8):
    emu = make(policy, livelock_limit=livelock_limit)
    emu.mkdir("A")
    emu.write("A", "memory.max", 50 * PAGE_SIZE)
    t = emu.new_task("A")
    assert emu.charge(t, 50) == 0  # unreclaimable anon, no swap
    return emu, t


@pytest.mark.parametrize("limit", [1, 3, 8])
def test_e3_oom_livelock_is_bounded_and_reported(make, limit):
    emu, t = _e3(make, "accountforce-v1", limit)
    emu.memalloc_account_force_save(t)
    assert emu.charge(t, 4) == 0
    assert pages(emu, "A") == 54 and t.memcg_nr_pages_over_max == 4
    before = emu.stats["reclaim_calls"]
    emu.return_to_user(t)
    # OOM #1 kills T; every later OOM returns true without a kill (T "will free memory");
    # the emulator stops after `limit` of those.
    assert ev(emu, "A", "oom") == 1 + limit
    assert ev(emu, "A", "oom_kill") == 1
    assert emu.stats["reclaim_calls"] - before == 17 * (1 + limit)
    assert emu.stats["livelocks"] == 1
    assert t.livelocks == 1 and t.livelock_site == "handle_over_max"
    assert t.state == "dying" and t.fatal_signal_pending  # it never reached signal delivery
    assert pages(emu, "A") == 54
    # only something that uncharges A ends it: the OOM reaper frees T's anon pages
    assert emu.oom_reaper() == 54
    assert pages(emu, "A") == 0


def test_e3_baseline_has_no_deferral(make):
    emu, t = _e3(make, "baseline")
    emu.memalloc_flags_save(t, PF_MEMALLOC_ACCOUNTFORCE)  # the bit means nothing here
    assert emu.charge(t, 4) == -me.ENOMEM  # E4's path: reclaim, OOM kills T, R16
    assert t.memcg_nr_pages_over_max == 0
    assert emu.stats["livelocks"] == 0


# ---------------------------------------------------------------------------------------------
# E4, E5
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("policy", ["baseline", "accountforce-v1"])
def test_e4_oom_kills_current_then_enomem(make, policy):
    emu, t = _e3(make, policy)
    assert emu.charge(t, 1) == -me.ENOMEM
    assert pages(emu, "A") == 50
    assert ev(emu, "A", "max") == 35
    assert ev(emu, "A", "oom") == 1 and ev(emu, "A", "oom_kill") == 1
    assert t.oom_victim and t.fatal_signal_pending
    assert emu.read("A", "cgroup.procs") == f"{t.pid}\n"
    emu.return_to_user(t)  # the fault returns; SIGKILL is delivered
    assert t.state == "exited"
    assert emu.read("A", "cgroup.procs") == ""
    assert pages(emu, "A") == 0


def test_e5_failure_at_ancestor(make):
    emu = make()
    emu.mkdir("P")
    emu.mkdir("P/A")
    emu.write("P", "memory.max", 50 * PAGE_SIZE)
    u = emu.new_task("P/A")
    t = emu.new_task("P/A")
    assert emu.charge(u, 50) == 0
    assert emu.charge(t, 1) == 0  # U is killed, exits, its pages free, the retry succeeds
    assert pages(emu, "P/A", "watermark") == 114  # the failed 64-page batch left its mark
    assert pages(emu, "P", "watermark") == 50
    assert ev(emu, "P", "max") == 18 and ev(emu, "P/A", "max") == 0
    assert ev(emu, "P", "max", local=True) == 18
    assert ev(emu, "P", "oom") == 1 and ev(emu, "P/A", "oom") == 0
    assert ev(emu, "P/A", "oom_kill") == 1 and ev(emu, "P", "oom_kill") == 1
    assert ev(emu, "P/A", "oom_kill", local=True) == 1
    assert ev(emu, "P", "oom_kill", local=True) == 0
    assert u.state == "exited" and t.state == "running"
    assert pages(emu, "P/A") == 1


# ---------------------------------------------------------------------------------------------
# E6: memory.high accounting
# ---------------------------------------------------------------------------------------------
def test_e6_high_accounting_and_sync_enforcement(make):
    emu = make()
    emu.mkdir("A")
    emu.write("A", "memory.high", 100 * PAGE_SIZE)
    t = emu.new_task("A")
    assert emu.charge(t, 100) == 0
    assert t.memcg_nr_pages_over_high == 0  # 100 is not above 100
    assert emu.charge(t, 1) == 0
    assert pages(emu, "A") == 164 and pages(emu, "A", "watermark") == 164
    assert t.memcg_nr_pages_over_high == 64 and t.notify_resume
    assert ev(emu, "A", "high") == 0
    for _ in range(63):
        assert emu.charge(t, 1) == 0
        assert emu.last_outcome & me.OUT_STOCK_HIT
    assert t.memcg_nr_pages_over_high == 64
    assert emu.charge(t, 1) == 0  # page counter again: 128 > 64 -> synchronous
    assert emu.last_outcome & me.OUT_THROTTLED
    assert ev(emu, "A", "high") == 17  # the first call plus 16 zero-progress retries
    assert t.memcg_nr_pages_over_high == 0
    assert t.throttle_jiffies == 2000  # clamped to 2*HZ


# ---------------------------------------------------------------------------------------------
# E7: memory.max write
# ---------------------------------------------------------------------------------------------
def _e7(make, kind="anon"):
    emu = make()
    emu.mkdir("A")
    t = emu.new_task("A")
    assert emu.charge(t, 80, kind=kind) == 0
    return emu, t


def test_e7_max_write_kills_and_succeeds(make):
    emu, t = _e7(make)
    before = emu.stats["reclaim_calls"]
    assert emu.write("A", "memory.max", 50 * PAGE_SIZE) == 0
    assert emu.stats["reclaim_calls"] - before == 16
    assert ev(emu, "A", "oom") == 1 and ev(emu, "A", "oom_kill") == 1
    assert t.state == "exited" and pages(emu, "A") == 0


def test_e7_max_write_without_tasks_stops_after_one_oom(make):
    emu, t = _e7(make)
    emu.mkdir("B")
    emu.attach(t, "B")  # the pages stay charged to A
    assert emu.write("A", "memory.max", 50 * PAGE_SIZE) == 0
    assert ev(emu, "A", "oom") == 1 and ev(emu, "A", "oom_kill") == 0
    assert pages(emu, "A") == 80
    assert emu.read("A", "memory.max") == f"{50 * PAGE_SIZE}\n"


def test_e7_max_write_with_blocked_victim_is_bounded(make):
    emu, t = _e7(make)
    emu.block(t)  # the victim sits in D state and cannot exit
    assert emu.write("A", "memory.max", 50 * PAGE_SIZE) == 0
    limit = int(emu.state.config[me.Cfg.LIVELOCK_LIMIT])
    assert ev(emu, "A", "oom") == 1 + limit  # victim pending: true without a kill
    assert ev(emu, "A", "oom_kill") == 1
    assert emu.stats["livelocks"] == 1
    assert pages(emu, "A") == 80
    emu.wake(t)  # it runs again, dies, frees
    assert t.state == "exited" and pages(emu, "A") == 0


def test_e7_nonblocking_write_only_sets(make):
    emu, t = _e7(make)
    emu.write("A", "memory.max", 50 * PAGE_SIZE, nonblock=True)
    assert ev(emu, "A", "oom") == 0 and pages(emu, "A") == 80


# ---------------------------------------------------------------------------------------------
# E8: effective low
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("recursive", [False, True])
def test_e8_effective_low(make, recursive):
    emu = make(memory_recursiveprot=recursive)
    for p in ("A", "A/B", "A/B/C", "A/B/D", "A/B/E", "A/B/F"):
        emu.mkdir(p)
    for p in ("A/B/C", "A/B/D", "A/B/E"):
        assert emu.charge(emu.new_task(p), 12800, kind="kernel") == 0  # unreclaimable
    for p, v in (("A/B", "50M"), ("A/B/C", "75M"), ("A/B/D", "25M"), ("A/B/E", "0"),
                 ("A/B/F", "500M")):
        emu.write(p, "memory.low", v)
    assert pages(emu, "A/B", "children_low_usage") == 19200
    assert emu.write("A", "memory.reclaim", "1M") == -me.EAGAIN
    assert pages(emu, "A/B", "elow") == 12800
    assert pages(emu, "A/B/C", "elow") == 8533
    assert pages(emu, "A/B/D", "elow") == 4266
    assert pages(emu, "A/B/E", "elow") == 0
    assert pages(emu, "A/B/F", "elow") == 0  # never recomputed: usage 0
    # An empty cgroup is "below min" (0 >= 0) and skipped before the low check: no LOW event
    assert ev(emu, "A/B/F", "low") == 0
    assert ev(emu, "A/B/C", "low") == 0


# ---------------------------------------------------------------------------------------------
# E9: events stop before the root; memory_localevents
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("localevents", [False, True])
def test_e9_hierarchical_events(make, localevents):
    emu = make(memory_localevents=localevents)
    for p in ("A", "A/B", "A/B/C"):
        emu.mkdir(p)
    emu.write("A/B/C", "memory.max", 10 * PAGE_SIZE)
    v = emu.new_task("A/B/C")
    t = emu.new_task("A/B/C")
    assert emu.charge(v, 10) == 0
    assert emu.charge(t, 1) == 0  # OOM kills V
    assert ev(emu, "A/B/C", "oom_kill") == 1
    for p in ("A", "A/B"):
        assert ev(emu, p, "oom_kill") == (0 if localevents else 1)
        assert ev(emu, p, "oom_kill", local=True) == 0
    assert int(emu.state.events[0].sum()) == 0  # the root never counts


# ---------------------------------------------------------------------------------------------
# E10: group OOM counting (test_memcg_oom_group_score_events)
# ---------------------------------------------------------------------------------------------
def test_e10_group_oom_counts_three(make):
    emu = make()
    emu.mkdir("M")
    emu.write("M", "memory.max", "50M")
    emu.write("M", "memory.oom.group", "1")
    s = emu.new_task("M", oom_score_adj=-1000)
    x = emu.new_task("M")
    v = emu.new_task("M")
    assert emu.charge(s, 256) == 0 and emu.charge(x, 256) == 0
    for _ in range(100 * 256):
        if v.state == "exited":
            break
        emu.charge(v, 1)
        emu.return_to_user(v)
    assert v.state == "exited" and x.state == "exited" and s.state == "running"
    assert ev(emu, "M", "oom_kill") == 3
    assert ev(emu, "M", "oom_group_kill") == 1
    assert ev(emu, "M", "oom") == 1
    assert emu.read("M", "cgroup.procs") == f"{s.pid}\n"


# ---------------------------------------------------------------------------------------------
# E11: reclaim re-entrancy; PF_MEMALLOC wins over ACCOUNTFORCE
# ---------------------------------------------------------------------------------------------
def test_e11_pf_memalloc_before_accountforce(make):
    emu, t = _e1(make, "accountforce-v1")
    emu.memalloc_flags_save(t, PF_MEMALLOC | PF_MEMALLOC_ACCOUNTFORCE)
    assert emu.charge(t, 60) == 0
    assert ev(emu, "P/A", "max") == 1
    assert t.memcg_nr_pages_over_max == 0 and not t.notify_resume
    assert not emu.last_outcome & me.OUT_DEFERRED


# ---------------------------------------------------------------------------------------------
# E12: stock versus limits (step mode drains remote CPUs synchronously)
# ---------------------------------------------------------------------------------------------
def test_e12_drain_makes_room(make):
    emu = make(nr_cpus=2)
    emu.mkdir("A")
    emu.write("A", "memory.max", 200 * PAGE_SIZE)
    t0 = emu.new_task("A", cpu=0)
    t1 = emu.new_task("A", cpu=1)
    for t in (t0, t1):
        assert emu.charge(t, 4) == 0
        emu.uncharge(t, 4)
    assert pages(emu, "A") == 120
    assert emu.state.stock_pages.sum() == 120
    assert emu.charge(t0, 100) == 0
    assert ev(emu, "A", "max") == 1
    assert emu.stats["drains"] == 1 and emu.stats["cpu_drains"] == 2
    assert emu.state.stock_pages.sum() == 0
    assert pages(emu, "A") == 100


# ---------------------------------------------------------------------------------------------
# docs/model.md §6.2: memory.high delay table (kernel comment, HZ=1000, nr_pages=64)
# ---------------------------------------------------------------------------------------------
def _delay_rows():
    with open(DATA / "high_delay_table.csv") as f:
        return [(int(r["usage_mib"]), int(r["delay_ms"])) for r in csv.DictReader(f)]


@pytest.mark.parametrize("usage_mib, delay_ms", _delay_rows())
def test_high_delay_table(make, usage_mib, delay_ms):
    eng = make().engine
    high = 100 * 256
    overage = eng.calculate_overage(usage_mib * 256, high)
    delay = min(eng.calculate_high_delay(64, overage), me.MEMCG_MAX_HIGH_DELAY_JIFFIES)
    assert delay == delay_ms


def test_high_delay_worked_example(make):
    eng = make().engine
    assert eng.calculate_overage(25856, 25600) == 10485
    assert eng.calculate_overage(26112, 25600) == 20971
    assert eng.calculate_high_delay(64, 10485) == 6
    assert eng.calculate_high_delay(64, 20971) == 25
    assert eng.calculate_overage(25600, 25600) == 0
    assert eng.calculate_high_delay(64, 0) == 0
    assert eng.calculate_overage(5, 0) == 4 << 20  # high clamped to 1 page: (5 - 1) << 20


def test_get_order_table(make):
    eng = make().engine
    for n, order in [(1, 0), (2, 1), (3, 2), (4, 2), (5, 3), (8, 3), (9, 4), (16, 4),
                     (60, 6), (64, 6), (512, 9)]:
        assert eng.get_order(n) == order


def test_effective_protection_overcommit(make):
    eng = make().engine
    # protected * parent_eff / siblings when overcommitted (E8's C and D)
    assert eng.effective_protection(12800, 38400, 19200, 12800, 19200, False) == 8533
    assert eng.effective_protection(12800, 38400, 6400, 12800, 19200, False) == 4266
    # floating protection only with memory_recursiveprot
    assert eng.effective_protection(100, 300, 0, 200, 100, False) == 0
    assert eng.effective_protection(100, 300, 0, 200, 100, True) == 50
