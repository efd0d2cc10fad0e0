"""The SimPy-equivalent model (``simpy_model.py``): SimPy and the timed schedulers on the same
lock / compute / sleep loops.  ``test_same_model`` checks that the two are one model (same lock
acquisitions at the same simulated times, same end time, event counts as documented); the
benchmarks report events/s (each simulator's own events) and iterations/s (the same work).
SimPy comes with the benchmark extra (``pip install '.[benchmark]'``); without it the SimPy
parts are skipped."""
import pytest
import simpy_model as sm
import timed_common as tc

SMALL = [sm.LockLoopParams(procs=40, iterations=6, seed=1),
         # the lock is the bottleneck: almost every acquisition queues
         sm.LockLoopParams(procs=30, iterations=4, compute_ns=(50_000, 200_000),
                           sleep_ns=(100_000, 300_000), seed=2)]
BENCH = sm.LockLoopParams(procs=1000, iterations=50)


def _scheduler(name):
    if name == "cython":
        ok, why = tc.compiled_scheduler_status()
        if not ok:
            pytest.skip(why)
    return name


@pytest.mark.parametrize("scheduler", tc.SCHEDULERS)
@pytest.mark.parametrize("p", SMALL, ids=["light", "saturated"])
def test_same_model(p, scheduler):
    pytest.importorskip("simpy")
    _scheduler(scheduler)
    log, contended = [], []
    end = sm.run_simpy(sm.simpy_env(p, log, contended))
    sim = sm.timed_sim(p, scheduler, backend=tc.engine_backend(), trace=True)
    res = sm.run_timed(sim)
    assert tc.scheduler_ran(res) == scheduler
    n, k = p.procs, p.iterations
    assert len(log) == n * k
    assert sm.timed_acquisitions(sim) == log  # every grant: same process, same time
    assert sm.timed_end_ns(sim) == end
    assert 0 < len(contended) < n * k
    # the event definitions of simpy_model's docstring
    assert sm.count_simpy_events(p) == 4 * n * k + 2 * n
    assert res.summary["events"] == n + 2 * n * k + len(contended)
    assert res.summary["ops_completed"] == 4 * n * k


def _report(benchmark, timed, events, iterations, scheduler):
    benchmark.extra_info.update(scheduler=scheduler, events=events, iterations=iterations)
    if 0 < timed.best < float("inf"):
        benchmark.extra_info["events_per_sec"] = events / timed.best
        benchmark.extra_info["iterations_per_sec"] = iterations / timed.best


def test_lock_loop_simpy(benchmark, bench):
    pytest.importorskip("simpy")
    timed = bench.Timed(sm.run_simpy)
    benchmark.pedantic(timed, setup=lambda: ((sm.simpy_env(BENCH),), {}), rounds=3,
                       iterations=1)
    _report(benchmark, timed, sm.count_simpy_events(BENCH), BENCH.procs * BENCH.iterations,
            "SimPy")


@pytest.mark.parametrize("scheduler", tc.SCHEDULERS)
def test_lock_loop_timed(benchmark, bench, scheduler):
    _scheduler(scheduler)
    backend = tc.engine_backend()
    timed = bench.Timed(sm.run_timed)
    benchmark.pedantic(timed, rounds=3, iterations=1,
                       setup=lambda: ((sm.timed_sim(BENCH, scheduler, backend),), {}))
    s = timed.result.summary
    iters = BENCH.procs * BENCH.iterations
    assert s["ops_completed"] == 4 * iters
    assert tc.scheduler_ran(timed.result) == scheduler
    _report(benchmark, timed, s["events"], iters, scheduler)
