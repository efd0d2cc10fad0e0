"""The compiled replay loop's shortcuts (``_core._replay_fast``: charges ending at R0, direct
charge/uncharge calls, stats written once per call) against the full path through
``emu_replay_one`` and against the reference engine, field by field; and chunked replay
(an iterable of chunks, validation fused with the run) against one call; the branch-free
stock slot lookup with more memcgs than slots."""
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import memcg_emu as me
from _ops import assert_states_equal
from memcg_emu.events import EventBuilder

pytestmark = pytest.mark.skipif(me.BACKEND != "cython", reason="needs the compiled engine")

POLICIES = ["baseline", "accountforce-v1", "legacy-dying-bypass"]
_KINDS = [0, 1, 2, 4, 5]
_GFPS = [me.GFP_KERNEL, me.GFP_NOFS, me.GFP_NOWAIT, me.GFP_KERNEL | me.__GFP_NOFAIL]


def _machine(policy, backend, nr_cpus):
    emu = me.Emulator(policy=policy, backend=backend, nr_cpus=nr_cpus, livelock_limit=2)
    for p in ("A", "A/B", "A/C", "D"):
        emu.mkdir(p)
    emu.write("A", "memory.max", 150 * me.PAGE_SIZE)
    emu.write("A/C", "memory.high", 50 * me.PAGE_SIZE)
    for path, cpu in (("A/B", 0), ("A/C", nr_cpus - 1), ("D", 0), ("A/B", nr_cpus - 1)):
        emu.new_task(path, cpu=cpu)
    emu.new_task("/", kthread=True)
    return emu


def _events(spec):
    """Mostly small charges and kernel-page uncharges (stock hits and refills), with blocks,
    wakes, kills and exits so that the shortcut's state checks are exercised too, and
    page-state moves."""
    b = EventBuilder()
    for k, a, c, d in spec:
        t = a % 4
        if k <= 6:
            b.charge(t, 1 + c % 40, _GFPS[d % len(_GFPS)], _KINDS[d % 5],
                     memcg=-1 if d % 6 else 1 + d % 4)
        elif k <= 9:
            b.uncharge(t, 1 + c % 6, kind=[0, 4][d % 2])
        elif k == 10:
            b.return_to_user(t)
        elif k == 11:
            b.charge(4, 1 + c % 8, me.GFP_KERNEL, 1, memcg=1 + d % 4)  # kthread, remote
        elif k == 12:
            b.block(t)
        elif k == 13:
            b.wake(t)
        elif k == 14:
            b.kill(t)
        elif k == 15 and d % 9 == 0:
            b.exit(t)
        elif k == 16:  # page-state moves (a short source pool is refused by the full path)
            m = 1 + d % 4
            (b.set_dirty, b.start_writeback, b.end_writeback)[a % 3](m, 1 + c % 6)
    return b.build()


def _replay_both(policy, nr_cpus, ev, fast, backend="cython", **kw):
    from memcg_emu import _core

    emu = _machine(policy, backend, nr_cpus)
    old = _core.set_fast_paths(fast)
    try:
        try:
            return emu, emu.replay(ev, **kw), None
        except ValueError as exc:
            return emu, None, str(exc)
    finally:
        _core.set_fast_paths(old)


def _assert_same(a, b, where):
    (ea, ra, xa), (eb, rb, xb) = a, b
    assert xa == xb, where
    assert_states_equal(ea, eb, where)
    if ra is not None:
        np.testing.assert_array_equal(ra.rc, rb.rc)
        np.testing.assert_array_equal(ra.outcome, rb.outcome)
        np.testing.assert_array_equal(ra.sample_usage, rb.sample_usage)
        assert ra.counters == rb.counters


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(spec=st.lists(st.tuples(st.integers(0, 16), *[st.integers(0, 1 << 16)] * 3),
                     min_size=1, max_size=250),
       policy=st.sampled_from(POLICIES), nr_cpus=st.integers(1, 3),
       sample_every=st.integers(0, 5))
def test_fast_path_equals_full_path_and_reference(spec, policy, nr_cpus, sample_every):
    ev = _events(spec)
    # the raw stream (may be rejected: all three must agree on the message and the state)
    runs = [_replay_both(policy, nr_cpus, ev, fast, sample_every=sample_every)
            for fast in (True, False)]
    _assert_same(runs[0], runs[1], "fast vs full, raw stream")
    ref = _replay_both(policy, nr_cpus, ev, True, backend="python", sample_every=sample_every)
    _assert_same(runs[0], ref, "fast vs reference, raw stream")
    # repaired to validity, then compared again (the long runs are where the stock matters)
    for _ in range(len(ev)):
        _, _, err = _replay_both(policy, nr_cpus, ev, True)
        if err is None:
            break
        ev = np.delete(ev, int(re.search(r"event (\d+)", err).group(1)))
    fast = _replay_both(policy, nr_cpus, ev, True, sample_every=sample_every)
    _assert_same(fast, _replay_both(policy, nr_cpus, ev, False, sample_every=sample_every),
                 "fast vs full, repaired stream")
    _assert_same(fast, _replay_both(policy, nr_cpus, ev, True, backend="python",
                                    sample_every=sample_every), "fast vs reference")


def test_fast_path_is_taken_on_the_mixed_stream():
    """The mixed stream's slice: fast and full path end in the same state, and the shortcut
    does serve most charges (stock hits)."""
    from memcg_emu import _core, workloads

    w = workloads.mixed(20_000, seed=3)
    out = []
    for fast in (True, False):
        emu = w.build(policy="accountforce-v1", backend="cython")
        old = _core.set_fast_paths(fast)
        try:
            out.append((emu, emu.replay(w.events), None))
        finally:
            _core.set_fast_paths(old)
    _assert_same(out[0], out[1], "mixed slice, fast vs full")
    c = out[0][1].counters
    assert c["stock_hits"] > c["charges"] // 2 and c["reclaim_reclaimed"] > 0


_EDGES = {"task": [-2, -1, 0, 4, 5, 6, 1 << 30], "memcg": [-2, -1, 0, 1, 4, 5, 6, 7],
          "arg": [-1, 0, 1, 1 << 40, (1 << 40) + 1, 2**63 // 4096, 2**63 // 4096 + 1,
                  0xFFFFFFFF, 1 << 32],
          "gfp": [0, 0xFFFFFF, 0x1000000], "kind": [0, 1, 2, 3, 4, 5, 6, 7, 63, 64, 255],
          "time": [0]}
_ROW = st.tuples(st.integers(0, 25), st.sampled_from([None, *_EDGES]), st.integers(0, 10))


def _valid_row(op):
    """A valid event for op (task 0 is a user task in A/B, task 4 the kernel thread)."""
    from memcg_emu.events import LIMIT_OPS, MEMCG_OPS, TASK_OPS

    task = 0 if op in TASK_OPS else -1
    memcg = 2 if op in LIMIT_OPS else 1 if op in MEMCG_OPS else -1
    return dict(time=1000, arg=1, task=task, memcg=memcg, gfp=0, op=op, kind=0, pad=0)


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(_ROW, min_size=1, max_size=6), sorted_time=st.booleans())
def test_rule_table_validation_equals_validate_events(rows, sorted_time):
    """The compiled first_invalid_event (per-op rule table, also used inside replay_loop)
    returns the first event that breaks any readable rule of replay.validate_events: valid
    events of every op with one field set to an edge value."""
    from memcg_emu.events import EVENT_DTYPE

    emu, ref = _machine("baseline", "cython", 2), _machine("baseline", "python", 2)
    for m in (emu, ref):  # cgroup 5 is removed (offline): memcg = 5 must be refused
        m.mkdir("E")
        m.rmdir("E")
    ev = np.zeros(len(rows), EVENT_DTYPE)
    for i, (op, field, pick) in enumerate(rows):
        row = _valid_row(op) if op < 24 else dict(_valid_row(0), op=op)
        if field is not None:
            row[field] = _EDGES[field][pick % len(_EDGES[field])]
        ev[i] = tuple(row[k] for k in EVENT_DTYPE.names)
    from memcg_emu.replay import validate_events

    st_ = ref.state

    def bad(i):  # event i alone against the readable rules, and its time after event i-1
        try:
            validate_events(ev[i:i + 1], st_.n_tasks, st_.online[:st_.n_cgroups],
                            st_.flags[:st_.n_tasks])
        except ValueError:
            return True
        return bool(sorted_time and i and ev["time"][i] < ev["time"][i - 1])

    want = next((i for i in range(len(ev)) if bad(i)), -1)
    assert emu.engine.unchecked.first_invalid_event(ev, sorted_time) == want


def _crowded(backend, nr_cpus):
    """Ten cgroups sharing one or two CPUs: more memcgs than a CPU's NR_MEMCG_STOCK (7) slots,
    so refill_stock() evicts a random slot and consume_stock() misses evicted ones."""
    emu = me.Emulator(backend=backend, nr_cpus=nr_cpus, livelock_limit=2)
    emu.mkdir("A")
    emu.write("A", "memory.max", 40_000 * me.PAGE_SIZE)  # no OOM: every uncharge is valid
    for i in range(10):
        emu.mkdir(f"A/c{i}")
        emu.new_task(f"A/c{i}", cpu=i % nr_cpus)
    emu.write("A/c0", "memory.low", 40 * me.PAGE_SIZE)
    return emu


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 400), nr_cpus=st.integers(1, 2))
def test_stock_slots_with_more_memcgs_than_slots(seed, n, nr_cpus):
    """The branch-free stock slot lookup (consume_stock(), refill_stock() and the loop's
    shortcut) against the full path and the reference engine: kernel pages (charged through
    the stock, uncharged through refill_stock(): a hit, a refill past MEMCG_CHARGE_BATCH
    that drains, an empty slot, a random eviction) and anon pages from ten cgroups on one
    or two CPUs, including charges above the batch and misses after an eviction."""
    rng = np.random.default_rng(seed)
    spec = zip(*(rng.integers(lo, hi, n) for lo, hi in ((0, 10), (0, 10), (1, 81), (0, 4))))
    b = EventBuilder()
    held = [[0, 0] for _ in range(10)]  # pages of kind 0/4 each task holds
    for t, u, n, k in spec:
        kind = 4 if k % 2 else 0
        if k < 2 or held[u][kind == 4] < 1:
            b.charge(t, n, me.GFP_KERNEL, kind)
            held[t][kind == 4] += n
        else:
            m = 1 + (n - 1) % held[u][kind == 4]
            b.uncharge(u, m, kind=kind)
            held[u][kind == 4] -= m
    ev = b.build()
    from memcg_emu import _core

    runs = []
    for backend, fast in (("cython", True), ("cython", False), ("python", True)):
        emu = _crowded(backend, nr_cpus)
        old = _core.set_fast_paths(fast)
        try:
            try:
                runs.append((emu, emu.replay(ev), None))
            except ValueError as exc:  # a charge that failed leaves its uncharge short
                runs.append((emu, None, str(exc)))
        finally:
            _core.set_fast_paths(old)
    _assert_same(runs[0], runs[1], "fast vs full")
    _assert_same(runs[0], runs[2], "fast vs reference")
    st_ = runs[0][0].state
    assert st_.check_invariants() is None


def _tight(backend, policy, nr_cpus):
    """Small limits under the stock's batch: most charges miss the per-CPU stock and go on to
    try_charge_memcg()'s batch charge, its over-high check, reclaim and the force paths."""
    emu = me.Emulator(policy=policy, backend=backend, nr_cpus=nr_cpus, livelock_limit=2)
    for p in ("A", "A/B", "A/C"):
        emu.mkdir(p)
    emu.write("A", "memory.max", 500 * me.PAGE_SIZE)
    emu.write("A/B", "memory.high", 120 * me.PAGE_SIZE)
    emu.write("A/C", "memory.low", 100 * me.PAGE_SIZE)
    for path, cpu in (("A/B", 0), ("A/C", nr_cpus - 1), ("A/B", nr_cpus - 1)):
        emu.new_task(path, cpu=cpu)
    return emu


def _miss_stream(seed, n):
    """Charges of 1-80 pages (some above MEMCG_CHARGE_BATCH) of file, anon and kernel pages
    with GFP_KERNEL, GFP_NOWAIT and __GFP_NOFAIL, some under PF_MEMALLOC or an
    account-force scope, uncharges of what a task holds, returns to user and writeback."""
    rng = np.random.default_rng(seed)
    b = EventBuilder()
    held = [[0, 0, 0] for _ in range(3)]  # pages of kind 0 (anon), 1 (file), 4 (kernel)
    kinds = (0, 1, 4)
    for _ in range(n):
        t, r, k = int(rng.integers(3)), int(rng.integers(100)), int(rng.integers(3))
        if r < 45:
            gfp = (me.GFP_KERNEL, me.GFP_NOWAIT, me.GFP_KERNEL | me.__GFP_NOFAIL)[r % 3]
            scope = r % 5  # 0: PF_MEMALLOC, 1: account-force scope, else none
            if scope == 0:
                b.flags_save(t, me.PF_MEMALLOC)
            elif scope == 1:
                b.account_force_save(t)
            nr = int(rng.integers(1, 81))
            b.charge(t, nr, gfp, kinds[k])
            held[t][k] += nr  # if it fails, its uncharges are repaired away (below)
            if scope <= 1:
                b.flags_restore(t)
        elif r < 85 and held[t][k]:
            m = int(rng.integers(1, held[t][k] + 1))
            b.uncharge(t, m, kind=kinds[k])
            held[t][k] -= m
        elif r < 90:
            b.return_to_user(t)
        else:
            b.set_dirty(1 + int(rng.integers(3)), 1 + int(rng.integers(4)))
    return b.build()


def _replay_three(ev, policy, nr_cpus, engines=(("cython", True), ("cython", False),
                                               ("python", True))):
    from memcg_emu import _core

    runs = []
    for backend, fast in engines:
        emu = _tight(backend, policy, nr_cpus)
        old = _core.set_fast_paths(fast)
        try:
            try:
                runs.append((emu, emu.replay(ev), None))
            except ValueError as exc:
                runs.append((emu, None, str(exc)))
        finally:
            _core.set_fast_paths(old)
    return runs


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 300),
       policy=st.sampled_from(POLICIES), nr_cpus=st.integers(1, 2))
def test_stock_miss_continuation_equals_full_path(seed, n, policy, nr_cpus):
    """The loop's charge that missed the per-CPU stock starts past R0 of try_charge_memcg()
    (mm/memcontrol.c: consume_stock() missed, changing nothing) and runs on into
    `done_restock:` (refill_stock() of the batch's rest, the over-high check,
    mem_cgroup_handle_over_high()) without a second dispatch; every other label (reclaim,
    retry, force, -ENOMEM) goes on through charge_step().  Against the full path
    (charge_start(): R0 twice) and the reference engine, field by field."""
    ev = _miss_stream(seed, n)
    runs = _replay_three(ev, policy, nr_cpus)  # the raw stream (may be refused)
    _assert_same(runs[0], runs[1], "fast vs full, raw stream")
    _assert_same(runs[0], runs[2], "fast vs reference, raw stream")
    ev = _repaired(ev, policy, nr_cpus)
    runs = _replay_three(ev, policy, nr_cpus)
    _assert_same(runs[0], runs[1], "fast vs full")
    _assert_same(runs[0], runs[2], "fast vs reference")


def _repaired(ev, policy, nr_cpus):
    """ev without the uncharges that a failed charge left short (found by replaying)."""
    for _ in range(len(ev)):
        err = _replay_three(ev, policy, nr_cpus, (("cython", True),))[0][2]
        if err is None:
            break
        ev = np.delete(ev, int(re.search(r"event (\d+)", err).group(1)))
    return ev


def test_stock_miss_stream_reaches_every_continuation():
    """The stream of test_stock_miss_continuation_equals_full_path, repaired to validity,
    does reach what the continuation leads to: batch charges past the stock, reclaim,
    throttling over memory.high, forced charges and -ENOMEM."""
    ev = _repaired(_miss_stream(7, 1500), "accountforce-v1", 2)
    runs = _replay_three(ev, "accountforce-v1", 2)
    _assert_same(runs[0], runs[1], "fast vs full")
    _assert_same(runs[0], runs[2], "fast vs reference")
    c = runs[0][1].counters
    assert c["charges"] - c["stock_hits"] > 100
    assert c["reclaim_calls"] > 0 and c["high_reclaims"] > 0
    assert c["forced_charges"] > 0 and c["enomem"] > 0
