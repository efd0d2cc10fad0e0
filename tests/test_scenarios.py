"""Built-in timed scenarios (memcg_emu.scenarios): the direction of each effect, computed by
running the model under several policies (or with and without the ingredient), never
hard-coded outcomes; determinism; the plot.  The full-size runs use the compiled engine; one
small jbd2-stall runs on the pure-Python engine."""
from dataclasses import replace

import numpy as np
import pytest

import memcg_emu as me
from memcg_emu import scenarios
from memcg_emu.timed import CostModel

MS = 1_000_000
POLICIES = list(scenarios.DEFAULT_POLICIES)
_VOLATILE = {"wall_seconds", "events_per_sec", "ops_per_sec"}


def need_cython():
    if me.BACKEND != "cython":
        pytest.skip("compiled engine memcg_emu._core not built (or MEMCG_EMU_PUREPYTHON=1)")


def stable(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in _VOLATILE}


@pytest.fixture(scope="module")
def jbd2():
    """The default jbd2-stall under the three policies (about 6 s on the compiled engine)."""
    need_cython()
    return scenarios.run("jbd2-stall", POLICIES, backend="cython")


def test_registry_and_builders():
    assert list(scenarios.SCENARIOS) == ["jbd2-stall", "mmap-lock-reclaim",
                                         "high-throttle-storm"]
    with pytest.raises(ValueError, match="unknown scenario"):
        scenarios.build("nope")
    sim = scenarios.build("jbd2-stall", "baseline", backend="python")
    p = scenarios.Jbd2StallParams()
    assert sim.duration_ns == p.duration_ns and sim.scenario_cgroup == "/pod"
    assert sim.read("pod", "memory.max").strip() == str(p.pod_max_pages * me.PAGE_SIZE)
    # the set-up task, the pod tasks and the tasks outside
    assert len(sim._prog_of) == 1 + p.pod_tasks + p.outside_tasks


def test_jbd2_stall_journal_and_d_state_worse_under_baseline(jbd2):
    base, af = jbd2["baseline"].summary, jbd2["accountforce-v1"].summary
    assert base["journal_locked_max_ns"] > af["journal_locked_max_ns"]
    assert base["d_state_task_seconds"] > af["d_state_task_seconds"]
    assert base["reclaim_while_holding_max_ns"] > af["reclaim_while_holding_max_ns"]
    assert base["file_ops"] < af["file_ops"]  # the machine's file work stalls
    assert base["journal_commits"] < af["journal_commits"]
    # under baseline the handle holder's NOFAIL charge is still looping at the end
    assert base["livelocks"] > af["livelocks"]


def test_jbd2_stall_accountforce_goes_over_max_far_more_than_baseline(jbd2):
    """accountforce-v1 forces every deferred charge; baseline forces only the NOFAIL
    charges of dying tasks that keep running their system call after the kill
    (mm/memcontrol.c: try_charge_memcg(): ``passed_oom && task_is_dying()`` -> ``nomem:``,
    where __GFP_NOFAIL goes on to ``force:``), so it overshoots by a few pages at most."""
    base, af = jbd2["baseline"].summary, jbd2["accountforce-v1"].summary
    assert af["over_max_peak_pages"] > 0 and af["forced_charges"] > 0
    assert base["forced_charges"] < af["forced_charges"]
    assert base["over_max_peak_pages"] < af["over_max_peak_pages"] // 10
    assert base["forced_charges"] <= base["oom_kills"]
    # the time series agrees with the summary
    for pol, r in jbd2.items():
        j = r.cgroups.index("/pod")
        over = (r.series["usage"][:, j] - r.series["max"][:, j]).max()
        assert over <= r.summary["over_max_peak_pages"]


def test_jbd2_stall_series_show_the_stall(jbd2):
    base, af = jbd2["baseline"].series, jbd2["accountforce-v1"].series
    # the journal is locked for more of the run, with more tasks in D, under baseline
    assert base["journal_locked"].sum() > af["journal_locked"].sum()
    assert base["d_state_tasks"].mean() > af["d_state_tasks"].mean()
    assert base["d_state_tasks"][-1] > af["d_state_tasks"][-1]


def test_jbd2_stall_legacy_bypass_compared(jbd2):
    """legacy-dying-bypass forces only dying tasks' charges: never more than accountforce-v1
    in this scenario, and its stall is no shorter than accountforce-v1's."""
    leg, af = jbd2["legacy-dying-bypass"].summary, jbd2["accountforce-v1"].summary
    assert leg["forced_charges"] < af["forced_charges"]
    assert leg["journal_locked_max_ns"] >= af["journal_locked_max_ns"]


def test_jbd2_stall_is_deterministic():
    need_cython()
    kw = dict(seed=3, backend="cython", duration_ns=300 * MS)
    a = scenarios.run("jbd2-stall", ["baseline"], **kw)["baseline"]
    b = scenarios.run("jbd2-stall", ["baseline"], **kw)["baseline"]
    assert stable(a.summary) == stable(b.summary)
    for k in a.series:
        np.testing.assert_array_equal(a.series[k], b.series[k])
    c = scenarios.run("jbd2-stall", ["baseline"], **{**kw, "seed": 4})["baseline"]
    assert stable(c.summary) != stable(a.summary)


def test_jbd2_stall_small_on_the_python_engine():
    """jbd2-stall with 100 tasks outside the pod, 400 ms, on the reference engine: it is
    deterministic and shows the same directions as the full run."""
    params = replace(scenarios.Jbd2StallParams(), outside_tasks=100)
    runs = [scenarios.run("jbd2-stall", ["baseline", "accountforce-v1"], backend="python",
                          params=params, duration_ns=400 * MS) for _ in range(2)]
    for pol in ("baseline", "accountforce-v1"):
        assert stable(runs[0][pol].summary) == stable(runs[1][pol].summary)
        assert runs[0][pol].summary["ops_completed"] > 0
    base, af = runs[0]["baseline"].summary, runs[0]["accountforce-v1"].summary
    assert base["journal_locked_max_ns"] > af["journal_locked_max_ns"]
    assert base["d_state_task_seconds"] > af["d_state_task_seconds"]
    assert af["over_max_peak_pages"] > 0 and base["over_max_peak_pages"] == 0


def test_mmap_lock_reclaim_readers_wait_for_the_reclaiming_writer():
    need_cython()
    slow = scenarios.run("mmap-lock-reclaim", ["baseline"], backend="cython")["baseline"]
    fast = scenarios.run("mmap-lock-reclaim", ["baseline"], backend="cython",
                         costs=CostModel(page_scanned_ns=0, page_reclaimed_ns=0,
                                         reclaim_call_ns=0))["baseline"]
    s, f = slow.summary, fast.summary
    assert s["reclaim_reclaimed"] > 0 and s["oom_kills"] == 0
    assert s["reclaim_while_holding_max_ns"] > f["reclaim_while_holding_max_ns"]
    assert s["d_state_task_seconds"] > f["d_state_task_seconds"]
    assert s["d_state_peak"] >= f["d_state_peak"]
    # no journal: the policies do not differ here
    pols = scenarios.run("mmap-lock-reclaim", POLICIES, backend="cython")
    assert len({r.summary["d_state_task_seconds"] for r in pols.values()}) == 1


def test_high_throttle_storm_sleeps_not_d_state():
    need_cython()
    p = scenarios.HighThrottleStormParams()
    storm = scenarios.run("high-throttle-storm", ["baseline"], backend="cython")["baseline"]
    calm = scenarios.run("high-throttle-storm", ["baseline"], backend="cython",
                         params=replace(p, high_pages=p.tasks * p.chunk_pages * p.rounds))
    calm = calm["baseline"]
    s, c = storm.summary, calm.summary
    assert s["throttle_sleep_task_seconds"] > c["throttle_sleep_task_seconds"]
    assert s["ops_completed"] < c["ops_completed"]
    assert s["d_state_peak"] == 0  # the throttle sleep is killable
    assert s["oom_kills"] == 0 and s["over_max_peak_pages"] == 0


def test_comparison_rows(jbd2):
    rows = scenarios.comparison(jbd2)
    labels = [label for label, _ in rows]
    assert len(labels) == len(scenarios.SUMMARY_ROWS)
    assert all(len(cells) == 3 for _, cells in rows)
    d = dict(rows)
    assert d["journal commits"][1] == f"{jbd2['accountforce-v1'].summary['journal_commits']:,}"


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    from memcg_emu.plots import plot_scenario

    params = replace(scenarios.Jbd2StallParams(), pod_max_pages=1024, pod_tasks=8,
                     pod_mkwrite_tasks=2, outside_tasks=16)
    res = scenarios.run("jbd2-stall", ["baseline", "accountforce-v1"], params=params,
                        duration_ns=60 * MS)
    path = tmp_path / "jbd2.png"
    plot_scenario(res, path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
