"""The compiled timed scheduler (memcg_emu._tsched) against its reference twin (timed.py's
Python scheduler), both on the compiled engine: every summary field (but the wall-clock
rates and the ``scheduler`` name), every sampled series, the per-op rc/outcome arrays, the
trace and logs, the engine's state arrays field by field, and the scheduler's own state
after each run.  On every built-in timed scenario (small sizes, several seeds, every policy
preset, continued runs, control ops, strict and lenient), and on hypothesis-generated
programs."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import memcg_emu as me
from memcg_emu import PAGE_SIZE, scenarios, timed
from memcg_emu.errors import InvalidArgumentError
from memcg_emu.events import EventBuilder
from memcg_emu.policy import PRESETS
from memcg_emu.scenarios import Jbd2StallParams
from memcg_emu.timed import CostModel, FlusherConfig, ProgramBuilder, TimedSim

from _timed_programs import SIMS, make_sim, run_twice, scheduler_state

pytestmark = pytest.mark.skipif(me.BACKEND != "cython", reason="compiled engine not built")

MS = 1_000_000
VOLATILE = {"wall_seconds", "events_per_sec", "ops_per_sec", "scheduler"}
LOGS = ("trace", "reaper_log", "journal_log", "flusher_log", "exit_log", "oom_log")


def assert_results_equal(a, b, where=""):
    sa = {k: v for k, v in a.summary.items() if k not in VOLATILE}
    sb = {k: v for k, v in b.summary.items() if k not in VOLATILE}
    assert sa.keys() == sb.keys(), where
    for k in sa:
        assert sa[k] == sb[k], f"{where}: summary[{k!r}]: {sa[k]!r} != {sb[k]!r}"
    assert a.series.keys() == b.series.keys()
    for k in a.series:
        x, y = a.series[k], b.series[k]
        assert x.shape == y.shape and np.array_equal(x, y), f"{where}: series[{k!r}]"
    assert a.cgroups == b.cgroups
    assert a.rc.keys() == b.rc.keys()
    for p in a.rc:
        assert np.array_equal(a.rc[p], b.rc[p]), f"{where}: rc of task {p}"
        assert np.array_equal(a.outcome[p], b.outcome[p]), f"{where}: outcome of task {p}"
    assert np.array_equal(a.control_rc, b.control_rc)
    assert np.array_equal(a.control_outcome, b.control_outcome)


def assert_sims_equal(py: TimedSim, cy: TimedSim, where="", names=True):
    if names:
        assert py.scheduler == "python" and cy.scheduler == "cython"
    for name in LOGS:
        assert getattr(py, name) == getattr(cy, name), f"{where}: {name}"
    for name in py.state.field_names():
        x, y = getattr(py.state, name), getattr(cy.state, name)
        assert x.shape == y.shape and np.array_equal(x, y), f"{where}: state field {name!r}"
    a, b = scheduler_state(py), scheduler_state(cy)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == b[k], f"{where}: scheduler state {k!r}"


def run_both(build, *durations):
    """build(scheduler) -> TimedSim; run both to each of ``durations`` in turn, comparing
    after every run.  Returns the compiled side's last result."""
    py, cy = build("python"), build("cython")
    res = None
    for i, until in enumerate(durations):
        rp, res = py.run(until), cy.run(until)
        assert rp.summary["scheduler"] == "python" and res.summary["scheduler"] == "cython"
        assert_results_equal(rp, res, f"run {i}")
        assert_sims_equal(py, cy, f"run {i}")
    return res


# ---- the built-in scenarios ------------------------------------------------------------------
# a smaller pod, closer to its memory.max and growing faster: OOM kills within 400 ms
SMALL_JBD2 = Jbd2StallParams(pod_procs=4, pod_threads=6, outside_tasks=60, pod_max_pages=1850,
                             grow_pages=48, fork_think_ns=(2 * MS, 10 * MS),
                             commit_interval_ns=50 * MS, flusher_interval_ns=120 * MS)


@pytest.mark.parametrize("policy", list(PRESETS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_jbd2_stall_small_every_policy(policy, seed):
    res = run_both(lambda s: scenarios.build("jbd2-stall", policy, seed=seed, scheduler=s,
                                             params=SMALL_JBD2, trace=seed == 0),
                   150 * MS, 400 * MS)
    assert res.summary["events"] > 1000 and res.summary["syscalls_unwound"] > 0


def test_jbd2_stall_default_size_is_stressed():
    """The default jbd2-stall, short: OOM kills, exits, unwinding, a locked journal."""
    res = run_both(lambda s: scenarios.build("jbd2-stall", "baseline", seed=3, scheduler=s),
                   1500 * MS)
    s = res.summary
    assert s["oom_kills"] > 0 and s["exits"] > 0 and s["journal_commits"] > 0
    assert s["d_state_peak"] > 0


@pytest.mark.parametrize("policy", ["baseline", "accountforce-v1", "legacy-dying-bypass"])
def test_mmap_lock_reclaim(policy):
    run_both(lambda s: scenarios.build("mmap-lock-reclaim", policy, seed=1, scheduler=s,
                                       trace=True), 200 * MS, 600 * MS)


@pytest.mark.parametrize("policy", ["baseline", "accountforce-fixed"])
def test_high_throttle_storm(policy):
    res = run_both(lambda s: scenarios.build("high-throttle-storm", policy, seed=2,
                                             scheduler=s, trace=True), 300 * MS, 900 * MS)
    assert res.summary["throttle_sleep_task_seconds"] > 0


@pytest.mark.parametrize("policy", ["baseline", "accountforce-v1"])
def test_incident_scenario(policy):
    def build(s):
        return timed.incident_scenario(policy, n_tasks=120, seed=5, limit_mib=4,
                                       scheduler=s, trace=True, sample_dt_ns=3 * MS)
    run_both(build, 80 * MS, 200 * MS)


def test_control_ops_writes_and_late_tasks_between_runs():
    """Runs continued after write(), add_task(), add_thread(), add_control_ops() (a KILL, a
    memory.max cut that kills) on a scenario in full swing."""
    def build(s):
        return scenarios.build("jbd2-stall", "accountforce-v1", seed=4, scheduler=s,
                               params=SMALL_JBD2, trace=True)

    py, cy = build("python"), build("cython")
    for sim in (py, cy):
        sim.run(120 * MS)
        sim.write("pod", "memory.high", 6000 * PAGE_SIZE)
        p = sim.add_task("system", ProgramBuilder().journal_start(2).dirty(20).compute(MS)
                         .journal_stop().return_to_user().sleep(2 * MS).loop(0).build(),
                         start_ns=sim.now + MS)
        sim.add_thread(p, ProgramBuilder().down_write(-1).charge(30).compute(3 * MS)
                       .up_write(-1).return_to_user().loop(0, 5).build(), start_ns=sim.now)
        sim.add_control_ops(EventBuilder().kill(3, time=sim.now + 5 * MS)
                            .set_limit("max", 1, 4000, time=sim.now + 20 * MS)
                            .set_limit("max", 1, 8192, time=sim.now + 60 * MS).build())
    for until in (200 * MS, 320 * MS):
        assert_results_equal(py.run(until), cy.run(until))
        assert_sims_equal(py, cy)


@pytest.mark.parametrize("first, second", [("python", "cython"), ("cython", "python")])
def test_switching_scheduler_between_runs(first, second):
    """The state one scheduler leaves is the state the other continues from (load/store in
    both directions): a run switched half-way equals a run on the Python scheduler only."""
    def build():
        return scenarios.build("jbd2-stall", "accountforce-v1", seed=5, scheduler="python",
                               params=SMALL_JBD2, trace=True)

    ref, mixed = build(), build()
    mixed.scheduler = first
    assert_results_equal(ref.run(150 * MS), mixed.run(150 * MS))
    mixed.scheduler = second
    res = mixed.run(400 * MS)
    assert res.summary["scheduler"] == second
    assert_results_equal(ref.run(400 * MS), res)
    assert_sims_equal(ref, mixed, names=False)
    assert res.summary["oom_kills"] > 0


def test_strict_errors_have_the_same_text():
    def build(s):
        sim = TimedSim(scheduler=s, costs=CostModel(), flusher=FlusherConfig(enabled=False))
        sim.mkdir("A")
        sim.add_task("A", ProgramBuilder().compute(MS).mutex_unlock(3).build())
        return sim

    errors = []
    for s in ("python", "cython"):
        with pytest.raises(RuntimeError) as exc:
            build(s).run(10 * MS)
        errors.append(str(exc.value))
    assert errors[0] == errors[1] and "mutex_unlock of mutex 3" in errors[0]


def test_zero_time_loop_error_has_the_same_text():
    def build(s):
        sim = TimedSim(scheduler=s, costs=CostModel.zero(), max_ops_per_instant=300,
                       flusher=FlusherConfig(enabled=False))
        sim.add_task("/", ProgramBuilder().compute(0).loop(0).build())
        return sim

    errors = []
    for s in ("python", "cython"):
        with pytest.raises(RuntimeError) as exc:
            build(s).run(MS)
        errors.append(str(exc.value))
    assert errors[0] == errors[1] and "without time passing" in errors[0]


# ---- generated programs ----------------------------------------------------------------------
COVERED = ("oom_kills", "exits", "syscalls_unwound", "op_errors", "ops_skipped_unwinding",
           "journal_commits", "reaped_pages", "flusher_pages_written", "reclaim_throttles",
           "dirty_pauses", "enomem", "victims_unable_to_exit", "livelocks")


def test_generated_programs_agree():
    """Both schedulers on hypothesis-generated simulations (two runs each, with a write, late
    tasks and control ops between); then the examples, summed, must have reached every part
    of the model (else the comparison proves little)."""
    totals = dict.fromkeys(COVERED, 0)
    waits = dict.fromkeys(timed.WAIT_NAMES, 0)
    outcomes = {"raised": 0, "ran": 0}

    @settings(max_examples=500, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(spec=SIMS)
    def check(spec):
        py, cy = make_sim(spec, "python"), make_sim(spec, "cython")
        rp, ep = run_twice(py, spec)
        rc, ec = run_twice(cy, spec)
        assert ep == ec
        assert len(rp) == len(rc)
        for i, (a, b) in enumerate(zip(rp, rc)):
            assert_results_equal(a, b, f"run {i}")
        assert_sims_equal(py, cy)
        outcomes["raised" if ec else "ran"] += 1
        if rc:
            s = rc[-1].summary
            for k in totals:
                totals[k] += s[k]
            for w, v in s["d_state_peak_by_wait"].items():
                waits[w] += v

    check()
    assert all(v > 0 for v in totals.values()), str(totals)
    assert all(v > 0 for v in waits.values()), str(waits)
    assert outcomes["ran"] > outcomes["raised"] > 0, outcomes


# ---- pure-Python engine and scheduler; selection ---------------------------------------------
def test_matches_the_pure_python_engine_and_scheduler():
    def build(backend, s):
        return scenarios.build("mmap-lock-reclaim", "baseline", seed=0, backend=backend,
                               scheduler=s, trace=True)

    py, cy = build("python", None), build("cython", None)
    assert py.scheduler == "python" and cy.scheduler == "cython"
    for until in (100 * MS, 250 * MS):
        assert_results_equal(py.run(until), cy.run(until))
    for name in LOGS:
        assert getattr(py, name) == getattr(cy, name), name
    for name in py.state.field_names():
        assert np.array_equal(getattr(py.state, name), getattr(cy.state, name)), name


def test_scheduler_selection():
    assert TimedSim().scheduler == "cython"
    assert TimedSim(scheduler="python").scheduler == "python"
    assert TimedSim(backend="python").scheduler == "python"
    with pytest.raises(InvalidArgumentError, match="needs the compiled engine"):
        TimedSim(backend="python", scheduler="cython")
    with pytest.raises(InvalidArgumentError, match="scheduler must be"):
        TimedSim(scheduler="fast")
    assert TimedSim().run(MS).summary["scheduler"] == "cython"


def test_constants_are_twinned():
    from memcg_emu import _tsched

    c = _tsched._TIMED_CONSTANTS
    for op in timed.TOp:
        if op.name != "EXIT":
            assert c[op.name] == int(op), op
    for name in ("M_IDLE", "M_READY", "M_PATH", "M_DONE_OP", "M_BLOCKED", "M_DEAD",
                 "M_EXITING", "SYS_USER", "SYS_KERNEL", "SYS_UNWIND", "P_NONE", "P_CHARGE",
                 "P_DIRTY", "P_RTU", "A_COMMIT_TIMER", "A_COMMIT_DONE", "A_REAPER",
                 "A_REAP_TIMER", "A_CONTROL", "J_NONE", "J_RUNNING", "J_LOCKED", "W_JOURNAL",
                 "W_MMAP_LOCK", "W_RWSEM", "W_MUTEX", "W_RECLAIM", "RW_V6", "RW_5X", "RW_OFF",
                 "PAGE_COUNTER_MAX", "NS_PER_JIFFY"):
        assert c[name] == getattr(timed, name), name
