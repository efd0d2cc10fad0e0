"""The reference engine and the Cython core, compared field by field after every operation.

Operation sequences come from hypothesis (derandomized, so runs are reproducible) and from
seeded numpy generators for longer runs; both policies, 1-4 CPUs, swap on and off.
"""
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import memcg_emu as me

from _ops import OP_NAMES, apply, assert_states_equal, random_ops

pytestmark = pytest.mark.skipif(me.BACKEND != "cython", reason="compiled engine not built")
POLICIES = ["baseline", "accountforce-v1", "legacy-dying-bypass"]


def _pair(policy, nr_cpus, swap, seed):
    kw = dict(policy=policy, nr_cpus=nr_cpus, swap=swap, seed=seed, livelock_limit=3)
    return me.Emulator(backend="python", **kw), me.Emulator(backend="cython", **kw)


def _run(ops, policy, nr_cpus, swap, seed):
    py, cy = _pair(policy, nr_cpus, swap, seed)
    for i, op in enumerate(ops):
        r1, r2 = apply(py, op), apply(cy, op)
        assert r1 == r2, f"op {i} {op}: python returned {r1!r}, cython {r2!r}"
        assert_states_equal(py, cy, f"after op {i} {op}")
        py.check_invariants()
    return py


op_strategy = st.tuples(st.sampled_from(OP_NAMES),
                        *[st.integers(0, 1 << 16) for _ in range(5)])


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(op_strategy, min_size=1, max_size=120),
       policy=st.sampled_from(POLICIES),
       nr_cpus=st.integers(1, 4), swap=st.sampled_from([0, 256 * me.PAGE_SIZE]),
       seed=st.integers(0, 2**32))
def test_hypothesis_sequences(ops, policy, nr_cpus, swap, seed):
    _run(ops, policy, nr_cpus, swap, seed)


@pytest.mark.parametrize("seed", range(18))
def test_long_seeded_sequences(seed):
    rng = np.random.default_rng(seed)
    policy = POLICIES[seed % 3]
    ops = random_ops(rng, 600)
    emu = _run(ops, policy, 1 + seed % 4, (seed % 3) * 128 * me.PAGE_SIZE, seed)
    # the sequences must exercise the interesting paths, or the comparison proves little
    if seed == 0:
        s = emu.stats
        assert s["charges"] > 50


def test_sequences_cover_the_paths():
    """Across the seeded runs every major path is taken at least once."""
    totals = {}
    for seed in range(18):
        rng = np.random.default_rng(seed)
        emu, _ = _pair(POLICIES[seed % 3], 1 + seed % 4,
                       (seed % 3) * 128 * me.PAGE_SIZE, seed)
        for op in random_ops(rng, 600):
            apply(emu, op)
        for k, v in emu.stats.items():
            totals[k] = totals.get(k, 0) + v
    for key in ("stock_hits", "drains", "reclaim_reclaimed", "oom_kills", "forced_charges",
                "forced_pages_over_max", "enomem", "throttle_jiffies", "livelocks"):
        assert totals[key] > 0, f"no run exercised {key}: {totals}"
    assert totals["underflows"] == 0


# ---- replay: generated event arrays through both engines' loops ------------------------------
from memcg_emu.events import EventBuilder  # noqa: E402

_EV_KINDS = [0, 1, 2, 4, 5]
_EV_GFPS = [me.GFP_KERNEL, me.GFP_NOFS, me.GFP_NOWAIT, me.GFP_ATOMIC,
            me.GFP_KERNEL | me.__GFP_NOFAIL, me.GFP_KERNEL | me.__GFP_NORETRY]
event_strategy = st.tuples(st.integers(0, 15), *[st.integers(0, 1 << 16) for _ in range(4)])


def _machine(policy, backend, nr_cpus, threads=False):
    emu = me.Emulator(policy=policy, backend=backend, nr_cpus=nr_cpus, livelock_limit=2,
                      swap="256K")
    for p in ("A", "A/B", "A/C", "D"):
        emu.mkdir(p)
    emu.write("A", "memory.max", 200 * me.PAGE_SIZE)
    emu.write("A/C", "memory.high", 60 * me.PAGE_SIZE)
    if threads:  # pid 1 a thread of 0; pid 3 a process sharing 2's mm; A kills as a group
        emu.write("A", "memory.oom.group", "1")
        p0 = emu.new_task("A/B", cpu=0)
        emu.new_thread(p0, cpu=nr_cpus - 1)
        p2 = emu.new_task("A/C", cpu=0)
        emu.new_thread(p2, cpu=nr_cpus - 1, same_thread_group=False)
    else:
        for path, cpu in (("A/B", 0), ("A/C", nr_cpus - 1), ("D", 0), ("A/B", nr_cpus - 1)):
            emu.new_task(path, cpu=cpu)
    emu.new_task("/", kthread=True)
    return emu


def _events(spec):
    """Turn generated tuples into a valid-by-construction stream (scopes balanced per task,
    no events for tasks after EXIT); page-state and uncharge events may still be rejected by
    the state, which both engines must then agree on."""
    b = EventBuilder()
    depth = [0] * 5
    exited = set()
    for kind, a, c, d, e in spec:
        t = a % 4
        if t in exited:
            continue
        if kind <= 5:
            b.charge(t, 1 + c % 70, _EV_GFPS[d % len(_EV_GFPS)], _EV_KINDS[e % 5],
                     memcg=-1 if e % 7 else 1 + e % 4)
        elif kind == 6:
            b.uncharge(t, 1 + c % 8, kind=[0, 4][d % 2])
        elif kind == 7:
            b.return_to_user(t)
        elif kind == 8:
            b.account_force_save(t) if d % 2 else b.flags_save(t, me.PF_MEMALLOC_NOFS)
            depth[t] += 1
        elif kind == 9 and depth[t]:
            b.flags_restore(t) if d % 3 else b.account_force_restore(t)
            depth[t] -= 1
        elif kind == 10:
            b.set_limit(["max", "high", "low", "min", "swap.max"][d % 5], 1 + c % 4, c % 300)
        elif kind == 11:
            b.set_dirty(1 + c % 4, 1 + d % 4)
        elif kind == 12:
            b.oom_reap()
        elif kind == 13:
            b.reclaim(1 + c % 4, 1 + d % 64)
        elif kind == 14:
            b.charge(4, 1 + c % 8, me.GFP_KERNEL, 1, memcg=1 + d % 4)  # kthread, remote
        elif kind == 15 and d % 5 == 0 and not depth[t]:
            b.exit(t)
            exited.add(t)
    return b.build()


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(spec=st.lists(event_strategy, min_size=1, max_size=300),
       policy=st.sampled_from(POLICIES), nr_cpus=st.integers(1, 3),
       sample_every=st.integers(0, 7))
def test_hypothesis_replay_streams(spec, policy, nr_cpus, sample_every):
    ev = _events(spec)
    # 1. the raw stream: both engines accept it, or both reject it with the same message and
    #    leave the state untouched
    py, cy = _machine(policy, "python", nr_cpus), _machine(policy, "cython", nr_cpus)
    try:
        py.replay(ev, sample_every=sample_every)
        rejected = None
    except ValueError as exc:
        rejected = str(exc)
    if rejected is None:
        cy.replay(ev, sample_every=sample_every)
    else:
        with pytest.raises(ValueError) as exc2:
            cy.replay(ev, sample_every=sample_every)
        assert str(exc2.value) == rejected
    assert_states_equal(py, cy, "after the raw stream")
    # 2. the stream repaired to validity (drop each event the state rejects), compared in full
    for _ in range(len(ev)):
        try:
            _machine(policy, "cython", nr_cpus).replay(ev)
            break
        except ValueError as exc:
            ev = np.delete(ev, int(re.search(r"event (\d+)", str(exc)).group(1)))
    py, cy = _machine(policy, "python", nr_cpus), _machine(policy, "cython", nr_cpus)
    r1 = py.replay(ev, sample_every=sample_every)
    r2 = cy.replay(ev, sample_every=sample_every)
    assert_states_equal(py, cy, "after replay")
    np.testing.assert_array_equal(r1.rc, r2.rc)
    np.testing.assert_array_equal(r1.outcome, r2.outcome)
    np.testing.assert_array_equal(r1.sample_usage, r2.sample_usage)
    np.testing.assert_array_equal(r1.sample_events, r2.sample_events)
    assert r1.counters == r2.counters
    py.check_invariants()


def test_replay_streams_cover_the_paths():
    """The repaired generated streams exercise what they should (or they prove little)."""
    rng = np.random.default_rng(7)
    totals = {}
    for policy in ("baseline", "accountforce-v1"):
        for _ in range(30):
            spec = [tuple(int(x) for x in (rng.integers(16), *rng.integers(0, 1 << 16, 4)))
                    for _ in range(300)]
            ev = _events(spec)
            for _ in range(len(ev)):
                try:
                    r = _machine(policy, "cython", 2).replay(ev)
                    break
                except ValueError as exc:
                    ev = np.delete(ev, int(re.search(r"event (\d+)", str(exc)).group(1)))
            for k, v in r.counters.items():
                totals[k] = totals.get(k, 0) + v
    for key in ("stock_hits", "drains", "reclaim_reclaimed", "oom_kills", "forced_charges",
                "forced_pages_over_max", "enomem", "throttle_jiffies"):
        assert totals[key] > 0, f"no stream exercised {key}: {totals}"


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(spec=st.lists(event_strategy, min_size=1, max_size=300),
       policy=st.sampled_from(POLICIES), nr_cpus=st.integers(1, 3))
def test_hypothesis_replay_streams_with_threads(spec, policy, nr_cpus):
    """Threads, a shared mm and an oom.group cgroup: kills take thread groups and mm sharers,
    the mm is freed by its last user; both engines agree field by field."""
    ev = _events(spec)
    for _ in range(len(ev)):
        try:
            _machine(policy, "cython", nr_cpus, threads=True).replay(ev)
            break
        except ValueError as exc:
            ev = np.delete(ev, int(re.search(r"event (\d+)", str(exc)).group(1)))
    py = _machine(policy, "python", nr_cpus, threads=True)
    cy = _machine(policy, "cython", nr_cpus, threads=True)
    r1, r2 = py.replay(ev), cy.replay(ev)
    assert_states_equal(py, cy, "after replay")
    np.testing.assert_array_equal(r1.rc, r2.rc)
    np.testing.assert_array_equal(r1.outcome, r2.outcome)
    py.check_invariants()


@pytest.mark.parametrize("policy", POLICIES)
def test_seeded_thread_streams_both_engines(policy):
    """Seeded threaded streams, long enough to kill thread groups and mm sharers (the
    hypothesis examples above are short): both engines agree, and the kills do happen."""
    rng = np.random.default_rng(11)
    kills = group_kills = 0
    for _ in range(10):
        spec = [tuple(int(x) for x in (rng.integers(16), *rng.integers(0, 1 << 16, 4)))
                for _ in range(300)]
        ev = _events(spec)
        for _ in range(len(ev)):
            try:
                _machine(policy, "cython", 2, threads=True).replay(ev)
                break
            except ValueError as exc:
                ev = np.delete(ev, int(re.search(r"event (\d+)", str(exc)).group(1)))
        py = _machine(policy, "python", 2, threads=True)
        cy = _machine(policy, "cython", 2, threads=True)
        r1, r2 = py.replay(ev), cy.replay(ev)
        assert_states_equal(py, cy, "after a seeded threaded stream")
        np.testing.assert_array_equal(r1.rc, r2.rc)
        py.check_invariants()
        kills += cy.events("A")["oom_kill"]
        group_kills += cy.events("A")["oom_group_kill"]
    assert kills > 0 and group_kills > 0
