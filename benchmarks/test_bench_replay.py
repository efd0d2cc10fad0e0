"""Ordered replay of the realistic mixed stream (docs/design.md §6 headline: events/s), the same
stream's first 2*10^4 events on both engines (the Cython/Python ratio), and a numpy floor
loop that only sums pages per cgroup over the same array."""
import numpy as np
import pytest

import memcg_emu as me
from memcg_emu import workloads

POLICIES = ["baseline", "accountforce-v1"]
SLICE = 20_000
_cache: dict = {}


def mixed_workload(n_events: int) -> workloads.Workload:
    """The mixed workload of ``n_events`` (seed 0), generated once per session."""
    if n_events not in _cache:
        _cache[n_events] = workloads.mixed(n_events, seed=0)
    return _cache[n_events]


def _check(emu, res, n):
    """What every replay of a mixed stream must show."""
    c = res.counters
    assert res.n_events == n
    assert c["oom_kills"] == 0 and c["enomem"] == 0 and c["livelocks"] == 0
    assert c["underflows"] == 0
    assert c["charges"] > n // 4 and c["stock_hits"] > c["charges"] // 2
    emu.check_invariants()


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("n_events", [pytest.param(10**6, id="1e6"),
                                      pytest.param(10**7, id="1e7")])
def test_replay_mixed(benchmark, bench, policy, n_events):
    """The full mixed stream on the compiled engine: the headline events/s figure."""
    if me.BACKEND != "cython":
        pytest.skip("compiled engine memcg_emu._core not built (or MEMCG_EMU_PUREPYTHON=1)")
    if n_events > 10**6 and not bench.LARGE:
        pytest.skip("set MEMCG_EMU_BENCH_LARGE=1 for the 10^7-event run")
    w = mixed_workload(n_events)

    def setup():
        return (w.build(policy=policy, backend="cython"),), {}

    timed = bench.Timed(lambda emu: (emu, emu.replay(w.events)))
    benchmark.pedantic(timed, setup=setup, rounds=3 if n_events > 10**6 else 5, iterations=1)
    bench.report(benchmark, timed, n_events, "cython")
    emu, res = timed.result
    benchmark.extra_info["stock_hit_rate"] = res.summary["stock_hit_rate"]
    _check(emu, res, n_events)
    assert res.counters["reclaim_reclaimed"] > 0  # the limits were reached
    if policy == "accountforce-v1":
        assert res.counters["forced_charges"] > 0


@pytest.mark.parametrize("policy", POLICIES)
def test_replay_mixed_slice(benchmark, bench, backend, policy):
    """The first 2*10^4 events of the 10^6 stream, on each engine: compare the two rows for
    the compiled/reference speed ratio.  Both must end in the same state."""
    w = mixed_workload(10**6)
    events = w.events[:SLICE]

    def setup():
        return (w.build(policy=policy, backend=backend),), {}

    timed = bench.Timed(lambda emu: (emu, emu.replay(events)))
    benchmark.pedantic(timed, setup=setup, rounds=3 if backend == "python" else 10,
                       iterations=1)
    bench.report(benchmark, timed, SLICE, backend)
    emu, res = timed.result
    _check(emu, res, SLICE)
    # checksum against the reference engine (computed once, outside the timing)
    key = ("slice-ref", policy)
    if key not in _cache:
        ref = w.build(policy=policy, backend="python")
        ref_res = ref.replay(events)
        _cache[key] = (ref.state.usage.copy(), ref.state.watermark.copy(), ref_res.rc.copy(),
                       ref_res.counters)
    usage, watermark, rc, counters = _cache[key]
    np.testing.assert_array_equal(emu.state.usage, usage)
    np.testing.assert_array_equal(emu.state.watermark, watermark)
    np.testing.assert_array_equal(res.rc, rc)
    assert res.counters == counters


@pytest.mark.parametrize("n_events", [pytest.param(10**6, id="1e6"),
                                      pytest.param(10**7, id="1e7")])
def test_floor_bincount(benchmark, bench, n_events):
    """A C-speed floor: one pass over the same array summing ``arg`` per cgroup with
    ``np.bincount`` (no kernel logic at all).  The replay rows are read against this."""
    if n_events > 10**6 and not bench.LARGE:
        pytest.skip("set MEMCG_EMU_BENCH_LARGE=1 for the 10^7-event run")
    w = mixed_workload(n_events)
    memcg_of_event = w.memcg_of_events()
    arg = w.events["arg"]
    n_cg = len(w.paths)

    def run():
        return np.bincount(memcg_of_event, weights=arg, minlength=n_cg)

    timed = bench.Timed(run)
    benchmark.pedantic(timed, rounds=5, iterations=1)
    bench.report(benchmark, timed, n_events)
    sums = timed.result
    assert sums.shape == (n_cg,)
    assert sums.sum() == float(arg.sum())
    leaves = np.setdiff1d(np.arange(1, n_cg), w.parent)
    assert (sums[leaves] > 0).all()  # every leaf cgroup saw events


@pytest.mark.parametrize("n_events", [pytest.param(10**6, id="1e6"),
                                      pytest.param(10**7, id="1e7")])
def test_floor_c_loop(benchmark, bench, n_events):
    """The minimal C loop over the same event array (``Engine.emu_floor_loop``, nogil): reads
    each 32-byte event and adds the pages of every charge to its cgroup (explicit memcg, else
    the task's).  The replay rows are read against this."""
    if me.BACKEND != "cython":
        pytest.skip("compiled engine memcg_emu._core not built (or MEMCG_EMU_PUREPYTHON=1)")
    if n_events > 10**6 and not bench.LARGE:
        pytest.skip("set MEMCG_EMU_BENCH_LARGE=1 for the 10^7-event run")
    w = mixed_workload(n_events)
    emu = w.build(policy="baseline", backend="cython")
    out = np.zeros(emu.state.n_cgroups, np.int64)

    def run():
        out[:] = 0
        emu.engine.unchecked.emu_floor_loop(w.events, out)  # the raw loop: no checks
        return out

    timed = bench.Timed(run)
    benchmark.pedantic(timed, rounds=5, iterations=1)
    bench.report(benchmark, timed, n_events)
    ev = w.events
    charge = ev["op"] == 0
    assert timed.result.sum() == int(ev["arg"][charge].sum())
