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
_VOLATILE = {"wall_seconds", "events_per_sec", "ops_per_sec", "scheduler"}


def need_cython():
    if me.BACKEND != "cython":
        pytest.skip("compiled engine memcg_emu._core not built (or MEMCG_EMU_PUREPYTHON=1)")


def stable(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in _VOLATILE}


# the jbd2-stall tests run a smaller machine (fewer tasks outside the pod) for 2 s: the
# directions they assert are computed from runs, never hard-coded
SMALL = replace(scenarios.Jbd2StallParams(), outside_tasks=200, duration_ns=2_000 * MS)
SEEDS = (0, 1)


@pytest.fixture(scope="module")
def jbd2():
    """jbd2-stall (SMALL) under the three policies and SEEDS: {seed: {policy: result}}."""
    need_cython()
    return {seed: scenarios.run("jbd2-stall", POLICIES, seed=seed, backend="cython",
                                params=SMALL) for seed in SEEDS}


def test_registry_and_builders():
    assert list(scenarios.SCENARIOS) == ["jbd2-stall", "mmap-lock-reclaim",
                                         "high-throttle-storm"]
    with pytest.raises(ValueError, match="unknown scenario"):
        scenarios.build("nope")
    sim = scenarios.build("jbd2-stall", "baseline", backend="python")
    p = scenarios.Jbd2StallParams()
    assert sim.duration_ns == p.duration_ns and sim.scenario_cgroup == "/pod"
    assert sim.read("pod", "memory.max").strip() == str(p.pod_max_pages * me.PAGE_SIZE)
    # the set-up task, the pod's processes x threads and the tasks outside
    n_pod = p.pod_procs * p.pod_threads
    assert len(sim._prog_of) == 1 + n_pod + p.outside_tasks
    # each process's threads share one mm (one mmap_lock); processes do not
    mm = sim.state.mm[1:1 + n_pod].reshape(p.pod_procs, p.pod_threads)
    assert (mm == mm[:, :1]).all() and len(set(mm[:, 0].tolist())) == p.pod_procs


def test_jbd2_stall_accountforce_never_stalls_longer_than_baseline(jbd2):
    """accountforce-v1 forces the NOFAIL sb_getblk charge made under the handle, so the
    holder cannot loop in reclaim -> OOM: per seed, the journal is locked no longer and the
    handle holder reclaims no longer than under baseline."""
    for seed, runs in jbd2.items():
        base, af = runs["baseline"].summary, runs["accountforce-v1"].summary
        assert af["journal_locked_max_ns"] <= base["journal_locked_max_ns"], seed
        assert af["reclaim_while_holding_max_ns"] <= base["reclaim_while_holding_max_ns"] \
            or af["oom_invocations"] == 0, seed
        # the patch's price is reported: every forced page is counted somewhere
        assert af["deferred_oom_skipped"] >= 0 and af["over_max_peak_pages"] >= 0
        assert base["deferred_oom_skipped"] == 0  # no deferral without the patch


def test_jbd2_stall_pod_kills_are_process_kills(jbd2):
    """An OOM kill takes a whole process (16 threads): the pod's tasks alive at the end are
    its tasks at the start minus 16 per killed process, as the series and summary say."""
    p = SMALL
    for runs in jbd2.values():
        for r in runs.values():
            j = r.cgroups.index("/pod")
            alive = r.series["tasks_alive"][:, j]
            assert alive[-1] == r.summary["tasks_alive_end_by_cgroup"]["/pod"]
            assert (np.diff(alive) <= 0).all()  # nobody is born
            lost = p.pod_procs * p.pod_threads - alive[-1]  # (the set-up task exits)
            assert lost % p.pod_threads == 0
            assert r.series["oom_kills"][-1] >= lost // p.pod_threads


def test_jbd2_stall_series_are_consistent(jbd2):
    for runs in jbd2.values():
        for r in runs.values():
            s = r.series
            np.testing.assert_array_equal(s["d_state_by_wait"].sum(axis=1), s["d_state_tasks"])
            peak = r.summary["d_state_at_peak_by_wait"]
            assert sum(peak.values()) == r.summary["d_state_peak"]
            j = r.cgroups.index("/pod")
            assert (s["usage"][:, j] - s["max"][:, j]).max() <= r.summary["over_max_peak_pages"]
            assert (s["reclaim_reclaimed"] <= s["reclaim_scanned"]).all()


def test_jbd2_stall_legacy_reaps_at_once(jbd2):
    """5.15 (legacy-dying-bypass) has no OOM_REAPER_DELAY: its victims' pages are reaped
    or freed without the 2 s wait, so no victim is still pending 2 s after its kill."""
    for runs in jbd2.values():
        leg = runs["legacy-dying-bypass"]
        if leg.summary["oom_kills"]:
            assert leg.summary["victims_pending"] == 0 or leg.summary["reaped_pages"] > 0


def test_jbd2_stall_without_dirty_throttling_massacres():
    """The ablation: without balance_dirty_pages (dirty_ratio = 0) the pod dirties pages
    faster than the disk writes them, so more of its memory is unreclaimable and the OOM
    killer takes more of the pod than with the throttle (computed on SEEDS)."""
    need_cython()
    more = 0
    for seed in SEEDS:
        with_t = scenarios.run("jbd2-stall", ["baseline"], seed=seed, backend="cython",
                               params=SMALL)["baseline"].summary
        sim = scenarios.build("jbd2-stall", "baseline", seed=seed, backend="cython",
                              params=SMALL)
        sim.flusher_config = replace(sim.flusher_config, dirty_ratio=0)
        without = sim.run(sim.duration_ns).summary
        assert without["dirty_pauses"] == 0 < with_t["dirty_pauses"]
        more += without["oom_kills"] > with_t["oom_kills"]
    assert more == len(SEEDS)


@pytest.mark.parametrize("knob, factor", [("oom_invocation_ns", 10), ("oom_invocation_ns", 0.1),
                                          ("page_scanned_ns", 10), ("page_scanned_ns", 0.1),
                                          ("writeback_page_ns", 2), ("writeback_page_ns", 0.5)])
def test_jbd2_stall_sensitivity_to_the_cost_model(knob, factor):
    """The cost model's main knobs, 10x (disk: 2x) either way, seed 0, 1.5 s: the directions
    hold (accountforce-v1 never stalls longer than baseline) and the run stays sane (the pod
    is never over memory.max without the patch or a forced NOFAIL charge)."""
    need_cython()
    params = replace(SMALL, duration_ns=1_500 * MS)
    base_costs = CostModel(writeback_page_ns=params.writeback_page_ns)
    costs = replace(base_costs, **{knob: max(1, int(getattr(base_costs, knob) * factor))})
    runs = scenarios.run("jbd2-stall", ["baseline", "accountforce-v1"], seed=0,
                         backend="cython", params=params, costs=costs)
    base, af = runs["baseline"].summary, runs["accountforce-v1"].summary
    assert af["journal_locked_max_ns"] <= base["journal_locked_max_ns"]
    assert base["over_max_peak_pages"] <= base["forced_charges"]


def test_jbd2_stall_is_deterministic():
    need_cython()
    kw = dict(seed=3, backend="cython", duration_ns=300 * MS, params=SMALL)
    a = scenarios.run("jbd2-stall", ["baseline"], **kw)["baseline"]
    b = scenarios.run("jbd2-stall", ["baseline"], **kw)["baseline"]
    assert stable(a.summary) == stable(b.summary)
    for k in a.series:
        np.testing.assert_array_equal(a.series[k], b.series[k])
    c = scenarios.run("jbd2-stall", ["baseline"], **{**kw, "seed": 4})["baseline"]
    assert stable(c.summary) != stable(a.summary)


def test_jbd2_stall_small_on_the_python_engine():
    """jbd2-stall with 50 tasks outside the pod, 300 ms, on the reference engine equals the
    compiled engine's run field by field (when it is built) and is deterministic."""
    params = replace(scenarios.Jbd2StallParams(), outside_tasks=50)
    runs = [scenarios.run("jbd2-stall", ["baseline", "accountforce-v1"], backend="python",
                          params=params, duration_ns=300 * MS) for _ in range(2)]
    for pol in ("baseline", "accountforce-v1"):
        assert stable(runs[0][pol].summary) == stable(runs[1][pol].summary)
        assert runs[0][pol].summary["ops_completed"] > 0
    if me.BACKEND == "cython":
        cy = scenarios.run("jbd2-stall", ["baseline", "accountforce-v1"], backend="cython",
                           params=params, duration_ns=300 * MS)
        for pol in cy:
            assert stable(cy[pol].summary) == stable(runs[0][pol].summary)


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
    jbd2 = jbd2[SEEDS[0]]
    rows = scenarios.comparison(jbd2)
    labels = [label for label, _ in rows]
    assert len(labels) == len(scenarios.SUMMARY_ROWS)
    assert all(len(cells) == 3 for _, cells in rows)
    d = dict(rows)
    assert d["journal commits"][1] == f"{jbd2['accountforce-v1'].summary['journal_commits']:,}"


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    from memcg_emu.plots import plot_scenario

    params = replace(scenarios.Jbd2StallParams(), pod_max_pages=1024, pod_procs=2,
                     pod_threads=4, proc_anon_pages=50, mkwrite_threads=1, outside_tasks=16)
    res = scenarios.run("jbd2-stall", ["baseline", "accountforce-v1"], params=params,
                        duration_ns=60 * MS)
    path = tmp_path / "jbd2.png"
    plot_scenario(res, path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
