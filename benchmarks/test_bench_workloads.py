"""Workload generation speed: the mixed stream is built with vectorised numpy."""
import numpy as np
import pytest

from memcg_emu import workloads
from memcg_emu.events import EVENT_DTYPE


@pytest.mark.parametrize("n_events", [pytest.param(10**6, id="1e6"),
                                      pytest.param(10**7, id="1e7")])
def test_generate_mixed(benchmark, bench, n_events):
    if n_events > 10**6 and not bench.LARGE:
        pytest.skip("set MEMCG_EMU_BENCH_LARGE=1 for the 10^7-event run")
    timed = bench.Timed(lambda: workloads.mixed(n_events, seed=7))
    benchmark.pedantic(timed, rounds=3, iterations=1)
    bench.report(benchmark, timed, n_events)
    w = timed.result
    assert w.events.dtype == EVENT_DTYPE and w.n_events == n_events
    assert np.all(np.diff(w.events["time"]) >= 0)


@pytest.mark.parametrize("n_events", [pytest.param(10**6, id="1e6"),
                                      pytest.param(10**7, id="1e7")])
def test_generate_mixed_chunks(benchmark, bench, n_events):
    """The chunked generator (bounded memory): events/s of producing every chunk."""
    if n_events > 10**6 and not bench.LARGE:
        pytest.skip("set MEMCG_EMU_BENCH_LARGE=1 for the 10^7-event run")

    def run():
        n = 0
        for c in workloads.mixed_chunks(n_events, seed=7).chunks():
            assert c.dtype == EVENT_DTYPE
            n += c.shape[0]
        return n

    timed = bench.Timed(run)
    benchmark.pedantic(timed, rounds=3, iterations=1)
    bench.report(benchmark, timed, n_events)
    assert timed.result == n_events
