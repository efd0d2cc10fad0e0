"""The timed simulation on the jbd2-stall scenario (memcg_emu.scenarios, ~1000 tasks, 4 s
simulated) on the compiled engine: scheduler events/s per policy and timed scheduler (the
Python one; the compiled one when it exists, see ``timed_common.py``).  Each round builds a
fresh simulation in ``setup`` and times only ``run``.  For the two schedulers side by side
(interleaved repeats, one process) run ``python benchmarks/simpy_model.py``."""
import pytest
import timed_common as tc

import memcg_emu as me
from memcg_emu import scenarios

POLICIES = ["baseline", "accountforce-v1"]


@pytest.mark.parametrize("scheduler", tc.SCHEDULERS)
@pytest.mark.parametrize("policy", POLICIES)
def test_timed_jbd2_stall(benchmark, bench, policy, scheduler):
    if me.BACKEND != "cython":
        pytest.skip("compiled engine memcg_emu._core not built (or MEMCG_EMU_PUREPYTHON=1)")
    if scheduler == "cython" and not tc.compiled_scheduler_status()[0]:
        pytest.skip(tc.compiled_scheduler_status()[1])

    def setup():
        return (scenarios.build("jbd2-stall", policy, backend="cython",
                                **tc.sched_kwargs(scheduler)),), {}

    timed = bench.Timed(lambda sim: sim.run(sim.duration_ns))
    benchmark.pedantic(timed, setup=setup, rounds=3, iterations=1)
    res = timed.result
    s = res.summary
    n = s["events"]
    benchmark.extra_info["backend"] = "cython"
    benchmark.extra_info["scheduler"] = tc.scheduler_ran(res)
    assert tc.scheduler_ran(res) == scheduler
    p = scenarios.Jbd2StallParams()
    benchmark.extra_info["tasks"] = 1 + p.pod_procs * p.pod_threads + p.outside_tasks
    benchmark.extra_info["scheduler_events"] = n
    benchmark.extra_info["ops_completed"] = s["ops_completed"]
    if timed.best > 0 and timed.best != float("inf"):
        benchmark.extra_info["events_per_sec"] = n / timed.best
        benchmark.extra_info["ops_per_sec"] = s["ops_completed"] / timed.best
    assert s["sim_time_ns"] == scenarios.Jbd2StallParams().duration_ns
    assert n > 10_000 and s["ops_completed"] > n
    assert s["journal_commits"] >= 1 and s["d_state_peak"] > 0
    if policy == "accountforce-v1":  # an overshoot only through forced charges
        assert s["over_max_peak_pages"] == 0 or s["forced_charges"] > 0
    else:  # only NOFAIL charges of killed tasks are forced (passed_oom && task_is_dying)
        assert s["forced_charges"] <= s["oom_kills"]
