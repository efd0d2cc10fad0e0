"""Replay chunk by chunk: an array cut into pieces of any size, or an iterable of chunks,
gives the same state, outputs and samples as one piece, on both engines; a bad event in a
later chunk still restores everything; workloads.mixed_chunks streams are valid, bounded and
reproducible."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import memcg_emu as me
from _ops import assert_states_equal
from memcg_emu import workloads
from memcg_emu.errors import InvalidArgumentError, InvalidEventError
from memcg_emu.replay import run_replay

BACKENDS = ["python"] + (["cython"] if me.BACKEND == "cython" else [])
_W = workloads.mixed(6_000, seed=4)


def _split(ev, cuts):
    cuts = sorted({c % (len(ev) + 1) for c in cuts})
    return [ev[a:b] for a, b in zip([0] + cuts, cuts + [len(ev)])]


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(0, 10**6), max_size=6), chunk=st.integers(1, 3000),
       backend=st.sampled_from(BACKENDS), sample=st.sampled_from(["", "every", "dt"]),
       policy=st.sampled_from(["baseline", "accountforce-v1"]))
def test_chunks_equal_one_piece(cuts, chunk, backend, sample, policy):
    ev = _W.events[:3000]
    kw = {"every": dict(sample_every=7), "dt": dict(sample_dt=50_000), "": {}}[sample]
    one = _W.build(policy=policy, backend=backend)
    r1 = run_replay(one, ev, chunk=10**6, **kw)
    pieces = _W.build(policy=policy, backend=backend)
    r2 = pieces.replay(iter(_split(ev, cuts)), **kw)  # an iterable of chunks
    small = _W.build(policy=policy, backend=backend)
    r3 = run_replay(small, ev, chunk=chunk, **kw)  # one array, small pieces
    for emu, r in ((pieces, r2), (small, r3)):
        assert_states_equal(one, emu, "chunked vs one piece")
        np.testing.assert_array_equal(r1.rc, r.rc)
        np.testing.assert_array_equal(r1.outcome, r.outcome)
        np.testing.assert_array_equal(r1.sample_index, r.sample_index)
        np.testing.assert_array_equal(r1.sample_time, r.sample_time)
        np.testing.assert_array_equal(r1.sample_usage, r.sample_usage)
        np.testing.assert_array_equal(r1.sample_events, r.sample_events)
        assert r1.counters == r.counters
    if sample:
        assert r1.sample_index.shape[0] > 10


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_event_in_a_later_chunk_restores_everything(backend):
    emu = _W.build(backend=backend)
    before = emu.state.copy()
    ev = _W.events[:4000].copy()
    ev["task"][3500] = 10_000  # static: out of range
    with pytest.raises(InvalidEventError, match=r"event 3500: field 'task' = 10000"):
        run_replay(emu, ev, chunk=1000)
    for name in before.field_names():
        np.testing.assert_array_equal(getattr(before, name), getattr(emu.state, name))
    chunks = [ev[:2000], ev[2000:]]
    with pytest.raises(InvalidEventError, match=r"event 3500: field 'task'"):
        emu.replay(chunks)
    for name in before.field_names():
        np.testing.assert_array_equal(getattr(before, name), getattr(emu.state, name))


@pytest.mark.parametrize("backend", BACKENDS)
def test_time_order_is_checked_across_chunks(backend):
    emu = _W.build(backend=backend)
    ev = _W.events[:200]
    first, second = ev[:100].copy(), ev[100:].copy()
    second["time"] = 0  # in order within the chunk, behind the first chunk
    with pytest.raises(InvalidEventError, match=r"event 100: field 'time' = 0 goes backwards"):
        emu.replay([first, second], sample_dt=1000)


@pytest.mark.parametrize("backend", BACKENDS)
def test_lenient_replay_of_chunks(backend):
    """on_error="count" on an iterable: the same skips as on the whole array."""
    ev = _W.events[:3000].copy()
    bad = np.flatnonzero(ev["op"] == 1)[[3, 40]]  # two uncharges of far too many pages
    ev["arg"][bad] = 1 << 30
    a, b = _W.build(backend=backend), _W.build(backend=backend)
    r1 = a.replay(ev, on_error="count")
    r2 = b.replay(iter([ev[:1000], ev[1000:]]), on_error="count")
    np.testing.assert_array_equal(r1.skipped_index, bad)
    np.testing.assert_array_equal(r2.skipped_index, bad)
    assert r1.skipped == r2.skipped and r1.counters == r2.counters
    assert_states_equal(a, b, "lenient, chunks vs array")


def test_chunk_iterables_reject_two_samplers():
    emu = _W.build(backend="python")
    with pytest.raises(InvalidArgumentError, match="not both"):
        emu.replay(iter([_W.events[:10]]), sample_every=2, sample_dt=5)


def test_per_event_false_keeps_no_outputs():
    emu = _W.build(backend=BACKENDS[-1])
    r = emu.replay(iter([_W.events[:500], _W.events[500:1000]]), per_event=False)
    assert r.n_events == 1000 and r.rc.shape == (0,)
    assert r.counters["charges"] > 0


def test_mixed_chunks_valid_bounded_reproducible(tmp_path):
    w = workloads.mixed_chunks(120_000, seed=3, chunk_events=30_000)
    sizes = [c.shape[0] for c in w.chunks()]
    assert sum(sizes) == 120_000 and len(sizes) >= 4 and max(sizes) < 40_000
    a = np.concatenate(list(w.chunks()))
    b = np.concatenate(list(workloads.mixed_chunks(120_000, seed=3,
                                                   chunk_events=30_000).chunks()))
    np.testing.assert_array_equal(a, b)
    assert np.all(np.diff(a["time"]) >= 0)
    w.save(tmp_path / "m.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "m.npy", mmap_mode="r"), a)
    emu = w.build(policy="accountforce-v1", backend=BACKENDS[-1])
    r = emu.replay(np.load(tmp_path / "m.npy", mmap_mode="r"))
    c = r.counters
    assert c["oom_kills"] == 0 and c["enomem"] == 0 and c["livelocks"] == 0
    assert c["reclaim_reclaimed"] > 0 and c["forced_charges"] > 0
    assert c["stock_hits"] > c["charges"] // 2
    emu.check_invariants()
