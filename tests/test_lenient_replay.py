"""replay(on_error="count"): skip what the state cannot take, count it, keep going.

The skip is done by the replay wrapper around the engines' common loop, so both engines must
skip the same events and end in the same state; a lenient replay must equal a strict replay
of the same events with the skipped ones removed, and sampling must stay on the grid of an
uninterrupted run."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as hs

import memcg_emu as me
from memcg_emu.errors import InvalidArgumentError
from memcg_emu.events import EventBuilder, Op

from _ops import assert_states_equal


def _emu(backend):
    emu = me.Emulator(nr_cpus=2, backend=backend)
    emu.mkdir("A")
    emu.mkdir("A/B")
    emu.write("A", "memory.max", 200 * me.PAGE_SIZE)
    emu.new_task("A/B", cpu=0)
    emu.new_task("A", cpu=1)
    return emu


def _events(seed, n=400):
    """Random charges/uncharges of several kinds, many of which uncharge too much."""
    rng = np.random.default_rng(seed)
    b = EventBuilder()
    for i in range(n):
        t = int(rng.integers(2))
        kind = int(rng.choice([0, 1, 2, 4]))
        pages = int(rng.integers(1, 40))
        r = rng.integers(10)
        if r < 5:
            b.charge(t, pages, me.GFP_KERNEL, kind=kind, time=i * 10)
        elif r < 8:
            b.uncharge(t, pages, kind=kind, time=i * 10)
        elif r < 9:
            b.start_writeback(1 + t, pages, time=i * 10)
        else:
            b.return_to_user(t, time=i * 10)
    return b.build()


def test_strict_default_still_rejects_and_restores():
    emu = _emu("python")
    before = emu.state.copy()
    ev = EventBuilder().charge(0, 4).uncharge(0, 10).build()
    with pytest.raises(ValueError, match="event 1"):
        emu.replay(ev)
    assert (emu.state.usage == before.usage).all() and (emu.state.pool == before.pool).all()


def test_counts_each_skipped_kind():
    ev = (EventBuilder().charge(0, 4).uncharge(0, 10).uncharge(0, 3, kind=1)
          .uncharge(0, 2).start_writeback(1, 5).uncharge(0, 1, kind=1).build())
    res = _emu("python").replay(ev, on_error="count")
    assert res.skipped_index.tolist() == [1, 2, 4, 5]
    assert res.skipped == {
        "uncharge anon: the cgroup holds fewer pages of that kind than the event asks for": 1,
        "uncharge file: the cgroup holds fewer pages of that kind than the event asks for": 2,
        "start_writeback: the cgroup holds fewer pages of that kind than the event asks for": 1,
    }
    assert res.summary["skipped_events"] == 4


def test_bad_on_error_is_refused():
    with pytest.raises(InvalidArgumentError, match="on_error"):
        _emu("python").replay(EventBuilder().charge(0, 1).build(), on_error="ignore")


@settings(max_examples=12, deadline=None, derandomize=True)
@given(seed=hs.integers(0, 2**32 - 1), every=hs.sampled_from([0, 1, 7]),
       dt=hs.sampled_from([0, 25, 130]))
def test_lenient_equals_strict_without_the_skipped_events(seed, every, dt):
    if every and dt:
        dt = 0
    ev = _events(seed)
    results = {}
    for backend in [b for b in ("python", "cython") if b == "python" or me.BACKEND == "cython"]:
        emu = _emu(backend)
        res = emu.replay(ev, sample_every=every, sample_dt=dt, on_error="count")
        results[backend] = (emu, res)
        # the same run, strict, on the events that were not skipped turned into NOPs
        keep = ev.copy()
        keep["op"][res.skipped_index] = Op.NOP
        keep["task"][res.skipped_index] = -1
        keep["memcg"][res.skipped_index] = -1
        keep["arg"][res.skipped_index] = 0
        keep["kind"][res.skipped_index] = 0
        ref = _emu(backend)
        rres = ref.replay(keep, sample_every=every, sample_dt=dt)
        assert_states_equal(emu, ref, "lenient vs strict")
        np.testing.assert_array_equal(res.rc, rres.rc)
        np.testing.assert_array_equal(res.outcome, rres.outcome)
        np.testing.assert_array_equal(res.sample_index, rres.sample_index)
        np.testing.assert_array_equal(res.sample_time, rres.sample_time)
        np.testing.assert_array_equal(res.sample_usage, rres.sample_usage)
        np.testing.assert_array_equal(res.sample_events, rres.sample_events)
        assert res.counters == rres.counters
    if len(results) == 2:
        (e1, r1), (e2, r2) = results["python"], results["cython"]
        assert_states_equal(e1, e2, "python vs cython")
        np.testing.assert_array_equal(r1.skipped_index, r2.skipped_index)
        np.testing.assert_array_equal(r1.skipped_err, r2.skipped_err)
        np.testing.assert_array_equal(r1.sample_usage, r2.sample_usage)
        np.testing.assert_array_equal(r1.rc, r2.rc)
