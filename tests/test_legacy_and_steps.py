"""The legacy-dying-bypass policy (the 5.15-era force charges of dying tasks, removed by
a4ebf1b6 "memcg: prohibit unconditional exceeding the limit of dying tasks"), and the stepped
form of the charge and return-to-user paths that timed simulation drives."""
import numpy as np
import pytest

import memcg_emu as me
from memcg_emu import Label, PAGE_SIZE

from _ops import assert_states_equal


def _full(make, policy, adj=0):
    emu = make(policy)
    emu.mkdir("A")
    emu.write("A", "memory.max", 50 * PAGE_SIZE)
    t = emu.new_task("A", oom_score_adj=adj)
    assert emu.charge(t, 50) == 0
    return emu, t


@pytest.mark.parametrize("policy", ["baseline", "legacy-dying-bypass"])
def test_killed_charger_forces_under_legacy(make, policy):
    emu, t = _full(make, policy)
    rc = emu.charge(t, 1)  # 18 passes, OOM kills T; the retry sees a dying task
    assert emu.events("A")["oom"] == 1 and emu.events("A")["oom_kill"] == 1
    if policy == "legacy-dying-bypass":
        assert rc == 0 and emu.pages("A") == 51  # should_force_charge(): over the limit
        assert emu.events("A")["max"] == 18
    else:
        assert rc == -me.ENOMEM and emu.pages("A") == 50  # R16
        assert emu.events("A")["max"] == 35
    # every further in-kernel charge of the dying task
    rcs = [emu.charge(t, 1) for _ in range(100)]
    if policy == "legacy-dying-bypass":
        assert rcs == [0] * 100 and emu.pages("A") == 151  # the overshoot grows unbounded
    else:
        assert set(rcs) == {-me.ENOMEM} and emu.pages("A") == 50


@pytest.mark.parametrize("policy", ["baseline", "legacy-dying-bypass"])
def test_oom_without_victim_forces_under_legacy(make, policy):
    emu, t = _full(make, policy, adj=-1000)  # nobody is killable
    rc = emu.charge(t, 1)
    assert emu.events("A")["oom"] == 1 and emu.events("A")["oom_kill"] == 0
    if policy == "legacy-dying-bypass":
        assert rc == 0 and emu.pages("A") == 51  # OOM_FAILED -> force
    else:
        assert rc == -me.ENOMEM and emu.pages("A") == 50
    assert emu.charge(t, 9) == -me.ENOMEM  # order 4: OOM_SKIPPED fails it in both


@pytest.mark.parametrize("policy", ["baseline", "accountforce-v1", "legacy-dying-bypass"])
def test_stepped_charge_equals_whole_charge(make, policy):
    a, b = _full(make, policy)[0], _full(make, policy)[0]
    ta, tb = a.tasks[0], b.tasks[0]
    if policy == "accountforce-v1":
        a.memalloc_account_force_save(ta)
        b.memalloc_account_force_save(tb)
    assert a.charge(ta, 4) in (0, -me.ENOMEM)
    labels = [b.engine.charge_start(tb.pid, 4, me.GFP_KERNEL, 0, -1)]
    while labels[-1] != Label.DONE:
        labels.append(b.engine.charge_step(tb.pid))
    assert_states_equal(a, b, "after the charge")
    if policy == "accountforce-v1":
        # batch attempt fails, nr_pages attempt fails, the patch's hook: FORCE, done
        assert labels == [Label.RETRY, Label.RETRY, Label.FORCE, Label.DONE]
    else:
        # 18 reclaim passes before the OOM, each a suspension point
        assert labels.count(Label.RECLAIMED) >= 18
    assert int(b.state.tc_label[tb.pid]) == Label.IDLE


def test_stepped_return_to_user_equals_whole(make):
    a, ta = _full(make, "accountforce-v1")
    b, tb = _full(make, "accountforce-v1")
    for emu, t in ((a, ta), (b, tb)):
        emu.memalloc_account_force_save(t)
        emu.charge(t, 4, kind="kernel")
    a.return_to_user(ta)
    labels = [b.engine.rtu_start(tb.pid)]
    while labels[-1] != Label.DONE:
        labels.append(b.engine.rtu_step(tb.pid))
    assert_states_equal(a, b, "after return to user")
    limit = int(b.state.config[me.Cfg.LIVELOCK_LIMIT])
    # one label per handle_over_max round: the first OOM kills, `limit` more kill nobody
    assert labels[:-1] == [Label.MAX_RETRY] * (1 + limit)


def test_oom_reap_task_attempts(make):
    emu, v = _full(make, "baseline")
    t = emu.new_task("A")
    emu.block(v)
    emu.mmap_lock(v)
    assert emu.charge(t, 1, me.GFP_KERNEL | me.__GFP_NOFAIL) == me.EMU_LIVELOCK
    eng, st = emu.engine, emu.state
    assert st.reap_queued[v.pid] == 1
    assert eng.oom_reap_task(v.pid, False) == -1 and st.mm_oom_skip[v.pid] == 0
    assert eng.oom_reap_task(v.pid, True) == -1 and st.mm_oom_skip[v.pid] == 1
    assert st.reap_queued[v.pid] == 0
    emu2, v2 = _full(make, "baseline")
    t2 = emu2.new_task("A")
    emu2.block(v2)
    emu2.charge(t2, 1, me.GFP_KERNEL | me.__GFP_NOFAIL)
    assert emu2.engine.oom_reap_task(v2.pid, False) == 50
    assert np.int64(emu2.state.mm_oom_skip[v2.pid]) == 1
