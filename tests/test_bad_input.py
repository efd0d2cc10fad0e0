"""docs/design.md §5: every public entry validates first and names the field and value; nothing is
half-applied."""
import numpy as np
import pytest

import memcg_emu as me
from memcg_emu.events import EventBuilder


@pytest.fixture
def emu(make):
    e = make()
    e.mkdir("A")
    e.write("A", "memory.max", "1M")
    e.new_task("A")
    return e


def snapshot(emu):
    return {n: getattr(emu.state, n).copy() for n in emu.state.field_names()}


def assert_untouched(emu, snap):
    for n, arr in snap.items():
        np.testing.assert_array_equal(getattr(emu.state, n), arr, err_msg=n)


@pytest.mark.parametrize("value, match", [
    ("30Q", "memory.max: invalid value '30Q'"),
    ("-5", "invalid value"),
    ("0x", "invalid value"),
    ("08", "invalid value"),
    ("\u0967", "invalid value"),
    ("12M extra", "invalid value"),
    (-4096, "negative"),
    (1.5, "expected bytes"),
])
def test_malformed_limits(emu, value, match):
    snap = snapshot(emu)
    with pytest.raises((ValueError, TypeError), match=match):
        emu.write("A", "memory.max", value)
    assert_untouched(emu, snap)


def test_limit_strings_parse_like_memparse(emu):
    for text, pages in [("max", me.PAGE_COUNTER_MAX), ("30M", 7680), ("4k", 1), ("4095", 0),
                        ("1G", 262144), (" 8K\n", 2), ("0x2000", 2),
                        ("0100000", 8), ("0x1G", 262144), ("0x1E", 0), ("", 0), ("K", 0)]:
        emu.write("A", "memory.high", text, nonblock=True)
        assert emu.pages("A", "high") == pages, text


@pytest.mark.parametrize("call, match", [
    (lambda e: e.mkdir("X/Y"), "parent cgroup '/X' does not exist"),
    (lambda e: e.mkdir("A"), "exists"),
    (lambda e: e.mkdir("/"), "root"),
    (lambda e: e.mkdir("A/../B"), r"'\.' and '\.\.'"),
    (lambda e: e.rmdir("/"), "root"),
    (lambda e: e.rmdir("A"), "task pid 0 is still in it"),
    (lambda e: e.read("nope", "memory.current"), "no such cgroup: 'nope'"),
    (lambda e: e.read("/", "memory.current"), "root"),
    (lambda e: e.read("A", "memory.bogus"), "memory.bogus"),
    (lambda e: e.write("A", "memory.bogus", "1"), "memory.bogus"),
    (lambda e: e.write("A", "memory.oom.group", "2"), "only 0 or 1"),
    (lambda e: e.write("A", "memory.reclaim", "1M bogus=1"), "unsupported option"),
    (lambda e: e.new_task("A", cpu=9), "cpu = 9 is above"),
    (lambda e: e.new_task("A", oom_score_adj=1001), "oom_score_adj = 1001"),
    (lambda e: e.new_task("A", kthread=True), "kernel threads live in the root"),
    (lambda e: e.charge(0, 0), "nr_pages = 0 is below 1"),
    (lambda e: e.charge(0, -3), "nr_pages = -3"),
    (lambda e: e.charge(0, 1, gfp=1 << 30), "gfp"),
    (lambda e: e.charge(0, 1, kind="swap"), "kind must be one of"),
    (lambda e: e.charge(7, 1), "no task with pid 7"),
    (lambda e: e.charge(0, 1, memcg="Z"), "no such cgroup: 'Z'"),
    (lambda e: e.uncharge(0, 1, kind="file"), "holds 0 file pages, fewer than nr_pages=1"),
    (lambda e: e.uncharge(0, 1), "holds 0 anon pages"),
    (lambda e: e.set_dirty("A", 3), "holds 0 file pages"),
    (lambda e: e.memalloc_flags_restore(0, 0), "no open scope"),
    (lambda e: e.memalloc_account_force_restore(0), "no open scope"),
    (lambda e: e.memalloc_flags_save(0, -1), "flags = -1"),
    (lambda e: e.wake(0), "not blocked"),
    (lambda e: Emulator_bad_policy(), "policy must be one of"),
])
def test_bad_calls_raise_and_change_nothing(emu, call, match):
    snap = snapshot(emu)
    with pytest.raises((ValueError, TypeError), match=match):
        call(emu)
    assert_untouched(emu, snap)


def Emulator_bad_policy():
    return me.Emulator(policy="accountforce-v9")


def test_restore_must_match_innermost_save(emu):
    outer = emu.memalloc_nofs_save(0)
    emu.memalloc_account_force_save(0)
    snap = snapshot(emu)
    with pytest.raises(ValueError, match="does not match the innermost save"):
        emu.memalloc_flags_restore(0, outer)
    assert_untouched(emu, snap)


def test_blocked_and_exited_tasks_cannot_run(emu):
    t = emu.tasks[0]
    emu.block(t)
    with pytest.raises(ValueError, match="blocked"):
        emu.charge(t, 1)
    emu.wake(t)
    emu.exit(t)
    with pytest.raises(ValueError, match="has exited"):
        emu.charge(t, 1)
    with pytest.raises(ValueError, match="has exited"):
        emu.return_to_user(t)


def test_foreign_task_handle(emu, make):
    other = make()
    t = other.new_task("/")
    t2 = other.new_task("/")
    with pytest.raises(ValueError, match="belongs to another Emulator"):
        emu.charge(t2, 1)
    assert t.pid == 0


# ---- replay: bad events name the index and field; the engine is untouched --------------------
def _bad(emu, mutate, match):
    b = EventBuilder()
    for _ in range(5):
        b.charge(0, 1)
    ev = b.build()
    mutate(ev)
    snap = snapshot(emu)
    with pytest.raises((ValueError, TypeError), match=match):
        emu.replay(ev)
    assert_untouched(emu, snap)


@pytest.mark.parametrize("mutate, match", [
    (lambda ev: ev["op"].__setitem__(3, 99), "event 3: field 'op' = 99"),
    (lambda ev: ev["task"].__setitem__(2, 5), r"event 2: field 'task' = 5 out of range"),
    (lambda ev: ev["arg"].__setitem__(4, -1), r"event 4: field 'arg' \(pages\) = -1"),
    (lambda ev: ev["memcg"].__setitem__(1, 42), "event 1: field 'memcg' = 42"),
    (lambda ev: ev["kind"].__setitem__(1, 6), "event 1: field 'kind' = 6 cannot be charged"),
    (lambda ev: ev["gfp"].__setitem__(0, 1 << 31), "event 0: field 'gfp'"),
])
def test_replay_static_errors(emu, mutate, match):
    _bad(emu, mutate, match)


def test_replay_dynamic_error_restores_state(emu):
    b = EventBuilder()
    for _ in range(10):
        b.charge(0, 3)
    b.uncharge(0, 1000)  # more anon than the pool holds, only visible while running
    b.charge(0, 1)
    snap = snapshot(emu)
    with pytest.raises(ValueError, match=r"event 10 \(op UNCHARGE.*fewer pages"):
        emu.replay(b.build())
    assert_untouched(emu, snap)


@pytest.mark.parametrize("build, match", [
    (lambda b: b.flags_restore(0), "event 0 .*restore without a matching save"),
    (lambda b: b.account_force_restore(0), "restore without a matching save"),
    (lambda b: b.wake(0), "not blocked"),
    (lambda b: (b.exit(0), b.charge(0, 1)), "event 1 .*has exited"),
    (lambda b: (b.block(0), b.charge(0, 1)), "event 1 .*blocked"),
])
def test_replay_dynamic_errors(emu, build, match):
    b = EventBuilder()
    build(b)
    snap = snapshot(emu)
    with pytest.raises(ValueError, match=match):
        emu.replay(b.build())
    assert_untouched(emu, snap)


def test_replay_wrong_dtype(emu):
    with pytest.raises(TypeError, match="EVENT_DTYPE"):
        emu.replay(np.zeros(3))
    with pytest.raises(ValueError, match="missing field 'gfp'"):
        emu.replay(np.zeros(3, dtype=[("op", "u1"), ("task", "i4"), ("arg", "i8"),
                                      ("memcg", "i4"), ("kind", "u1"), ("time", "i8")]))


def test_replay_kthread_return_to_user(make):
    emu = make()
    k = emu.new_task("/", kthread=True)
    b = EventBuilder().return_to_user(k.pid)
    with pytest.raises(ValueError, match="kernel thread"):
        emu.replay(b.build())


def test_replay_memcg_op_with_a_task_is_rejected(emu):
    ev = EventBuilder().set_limit("max", 1, 10).build()
    ev["task"][0] = 0
    snap = snapshot(emu)
    with pytest.raises(ValueError, match="event 0: field 'task' = 0 must be -1 for op SET_MAX"):
        emu.replay(ev)
    assert_untouched(emu, snap)


def test_replay_rc_is_wide_enough(emu):
    b = EventBuilder().flags_save(0, me.PF_SUSPEND_TASK).flags_restore(0)
    r = emu.replay(b.build())
    assert r.rc[0] == me.PF_SUSPEND_TASK and r.rc.dtype == np.int64


def test_replay_time_must_not_go_backwards_when_sampling_by_time(emu):
    b = EventBuilder().charge(0, 1, time=10).charge(0, 1, time=5)
    with pytest.raises(ValueError, match="event 1: field 'time' = 5 goes backwards"):
        emu.replay(b.build(), sample_dt=3)
    assert emu.replay(b.build()).n_events == 2  # fine without time sampling
