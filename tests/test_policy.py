"""Policies as sets of knobs (memcg_emu.policy): the API, TOML files, the CLI, the timed
reaper-delay knob, and both engines compared field by field under every knob value."""
import json

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import memcg_emu as me
from memcg_emu import PAGE_SIZE, Knob, Policy
from memcg_emu.events import EventBuilder
from memcg_emu.errors import InvalidConfigError, InvalidFileError
from memcg_emu.policy import KNOBS, PRESETS, load_policies, resolve_policy

from _ops import assert_states_equal, random_ops
from test_differential import _run  # both engines, every field after every op

needs_ext = pytest.mark.skipif(me.BACKEND != "cython", reason="compiled engine not built")

# knobs only the timed simulation reads (test_timed_only_knobs_leave_replay_alone)
TIMED_ONLY = ("oom_reaper_delay", "reclaim_wait")
# every value of every engine knob (the cap: none, tight, loose)
KNOB_VALUES = {k: list(s.values) if s.values else [0, 8, 64, 1024]
               for k, s in KNOBS.items() if k not in TIMED_ONLY}


# ---- the API ---------------------------------------------------------------------------------
def test_presets_reproduce_the_former_policy_ids():
    """The three former hard-wired policies: exactly one knob each (or none)."""
    assert PRESETS["baseline"].diff("accountforce-v1") == {"accountforce": ("off", "v1")}
    # 5.15 also predates OOM_REAPER_DELAY (v5.18) and reclaim_throttle() (v5.16)
    assert PRESETS["baseline"].diff("legacy-dying-bypass") == {
        "dying_bypass": ("off", "5.15"), "oom_reaper_delay": (me.OOM_REAPER_DELAY, 0),
        "reclaim_wait": ("v6", "5.x")}
    assert PRESETS["baseline"]["oom_reaper_delay"] == me.OOM_REAPER_DELAY
    assert (PRESETS["baseline"].as_array()[:Knob.OOM_REAPER_DELAY] == 0).all()


def test_policy_from_python_keywords():
    p = Policy(base="baseline", accountforce="v1", over_max_oom_order="zero")
    assert p.knobs["accountforce"] == "v1" and p["over_max_oom_order"] == "zero"
    assert p.name == "baseline+accountforce=v1,over_max_oom_order=zero"
    assert p == Policy(base="accountforce-v1", over_max_oom_order="zero", name="other")
    assert Policy(base="accountforce-v1").name == "accountforce-v1"
    assert Policy(base=p, over_max_cap=32)["over_max_cap"] == 32
    with pytest.raises(AttributeError):
        p.name = "x"
    emu = me.Emulator(policy=p)
    assert emu.policy == p.name and emu.policy_spec is p
    np.testing.assert_array_equal(emu.state.knobs, p.as_array())


@pytest.mark.parametrize("kw, match", [
    ({"accountforce": "v2"}, r"knob 'accountforce' = 'v2' is not one of 'off', 'v1', 'nofail'"),
    ({"over_max_cap": -1}, r"knob 'over_max_cap' = -1 must be an integer in \[0, "),
    ({"over_max_cap": "big"}, r"over_max_cap.*or 'none'"),
    ({"oom_reaper_delay": 1.5}, r"knob 'oom_reaper_delay' = 1.5 must be an integer"),
    ({"dying_bypass": True}, r"knob 'dying_bypass' = True is not one of 'off', '5.15'"),
    ({"over_max_targte": "mm"}, r"unknown knob 'over_max_targte'; knobs are accountforce, "),
    ({"base": "v1"}, r"base 'v1' is not a preset"),
])
def test_bad_knobs_are_refused_naming_the_knob_and_values(kw, match):
    with pytest.raises(InvalidConfigError, match=match):
        Policy(**kw)


def test_bad_policy_name_everywhere():
    from memcg_emu.timed import TimedSim

    with pytest.raises(InvalidConfigError, match="policy must be one of"):
        me.Emulator(policy="accountforce-v2")
    with pytest.raises(InvalidConfigError, match="policy must be one of"):
        TimedSim(policy="nope")


# ---- TOML ------------------------------------------------------------------------------------
TOML = """
[policy.v1-order0]
base = "accountforce-v1"
over_max_oom_order = "zero"

[policy.v1-order0-capped]
base = "v1-order0"
over_max_cap = 256
oom_reaper_delay = 0
"""


def test_toml_policies(tmp_path):
    f = tmp_path / "pols.toml"
    f.write_text(TOML)
    pols = load_policies(f)
    assert list(pols) == ["v1-order0", "v1-order0-capped"]
    assert pols["v1-order0"] == Policy(base="accountforce-v1", over_max_oom_order="zero")
    capped = resolve_policy(f"{f}:v1-order0-capped")
    assert capped.name == "v1-order0-capped"
    assert capped.diff("accountforce-v1") == {"over_max_cap": (256, "none"),
                                             "over_max_oom_order": ("zero", "as-posted"),
                                             "oom_reaper_delay": (0, 2000)}
    assert me.Emulator(policy=f"{f}:v1-order0").policy == "v1-order0"


@pytest.mark.parametrize("text, err, match", [
    ("[policy.x]\nover_max_cap = 'lots'\n", InvalidConfigError,
     r"pols.toml: \[policy.x\]: knob 'over_max_cap' = 'lots'"),
    ("[policy.x]\nbase = 'y'\n", InvalidConfigError, r"\[policy.x\]: base 'y' is not a preset"),
    ("[policies.x]\n", InvalidConfigError, r"unknown top-level key\(s\) \['policies'\]"),
    ("[policy.x\n", InvalidFileError, r"pols.toml: not valid TOML"),
])
def test_bad_toml_is_refused_naming_file_table_and_knob(tmp_path, text, err, match):
    f = tmp_path / "pols.toml"
    f.write_text(text)
    with pytest.raises(err, match=match):
        load_policies(f)


def test_toml_missing_file_or_name(tmp_path):
    with pytest.raises(InvalidFileError, match="cannot read"):
        resolve_policy(str(tmp_path / "none.toml") + ":x")
    f = tmp_path / "pols.toml"
    f.write_text(TOML)
    with pytest.raises(InvalidConfigError, match="defines no policy 'x'"):
        resolve_policy(f"{f}:x")


def test_to_toml_round_trip(tmp_path):
    p = Policy(base="accountforce-fixed", name="mine", over_max_cap=77)
    f = tmp_path / "p.toml"
    f.write_text(p.to_toml())
    assert load_policies(f)["mine"] == p


# ---- the CLI ---------------------------------------------------------------------------------
def test_cli_policies_lists_presets_and_knobs(capsys):
    from memcg_emu.cli import main

    assert main(["policies"]) == 0
    out = capsys.readouterr().out
    for name in (*PRESETS, *KNOBS, "memalloc_account_force_restore"):
        assert name in out


def test_cli_policies_diff(capsys, tmp_path):
    from memcg_emu.cli import main

    assert main(["policies", "--diff", "accountforce-v1", "accountforce-fixed"]) == 0
    out = capsys.readouterr().out
    assert "9 knob(s) differ" in out and "over_max_target" in out and "dying_bypass" not in out
    f = tmp_path / "p.toml"
    f.write_text(TOML)
    assert main(["policies", "--diff", f"{f}:v1-order0", "accountforce-v1"]) == 0
    assert "1 knob(s) differ" in capsys.readouterr().out
    assert main(["policies", "--diff", "baseline", "nope"]) == 2
    assert "policy must be one of" in capsys.readouterr().err


def test_cli_scenario_with_a_toml_policy(tmp_path, capsys):
    from memcg_emu.cli import main

    f = tmp_path / "p.toml"
    f.write_text(TOML)
    js = tmp_path / "out.json"
    rc = main(["scenario", "high-throttle-storm", "--policy", f"{f}:v1-order0",
               "--policy", "baseline", "--duration-ms", "20", "--json", str(js)])
    assert rc == 0
    doc = json.loads(js.read_text())
    assert list(doc["policies"]) == ["v1-order0", "baseline"]
    with pytest.raises(SystemExit):
        main(["scenario", "--policy", f"{f}:missing"])
    assert "defines no policy 'missing'" in capsys.readouterr().err


# ---- timed: the reaper delay -------------------------------------------------------------------
@pytest.mark.parametrize("delay", [0, 500])
def test_oom_reaper_delay_knob(backend, delay):
    from memcg_emu.timed import NS_PER_JIFFY, FlusherConfig, ProgramBuilder, TimedSim

    sim = TimedSim(policy=Policy(oom_reaper_delay=delay), backend=backend,
                   flusher=FlusherConfig(enabled=False), trace=True)
    sim.mkdir("A")
    sim.write("A", "memory.max", 100 * PAGE_SIZE)
    sim.add_task("/", ProgramBuilder().mutex_lock(0).build())
    v = sim.add_task("A", ProgramBuilder().charge(60).mutex_lock(0).build())
    sim.add_task("A", ProgramBuilder().charge(40).charge(1, at=1_000_000).build())
    sim.run(3 * 10**9)
    [(t_kill, _, _)] = sim.oom_log
    assert sim.reaper_log[0][:2] == (t_kill + delay * NS_PER_JIFFY, v)


# ---- both engines, every knob value --------------------------------------------------------------
knobs_strategy = st.fixed_dictionaries({k: st.sampled_from(v) for k, v in KNOB_VALUES.items()})


@needs_ext
@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(knobs=knobs_strategy, seed=st.integers(0, 2**16), nr_cpus=st.integers(1, 3),
       swap=st.sampled_from([0, 128 * PAGE_SIZE]))
def test_hypothesis_knob_combinations(knobs, seed, nr_cpus, swap):
    rng = np.random.default_rng(seed)
    _run(random_ops(rng, 250), Policy(**knobs), nr_cpus, swap, seed)


def _stream(rng, n=250, policies=("baseline",)):
    """A replay stream from test_differential's generator, repaired to validity under every
    one of ``policies``."""
    from test_differential import _events, _machine

    spec = [tuple(int(x) for x in (rng.integers(16), *rng.integers(0, 1 << 16, 4)))
            for _ in range(n)]
    ev = _events(spec)
    # the kernel thread (task 4, remote charges) runs flagged, as a kthread_use_mm() worker
    # inside a journal handle would
    ev = np.concatenate([EventBuilder().account_force_save(4).build(), ev])
    for _ in range(len(ev)):
        try:
            for policy in policies:
                _machine(policy, "cython", 2).replay(ev)
            break
        except ValueError as exc:
            ev = np.delete(ev, int(re.search(r"event (\d+)", str(exc)).group(1)))
    return ev


def _replay_both(policy, ev, nr_cpus=2):
    from test_differential import _machine

    py, cy = _machine(policy, "python", nr_cpus), _machine(policy, "cython", nr_cpus)
    r1, r2 = py.replay(ev, sample_every=5), cy.replay(ev, sample_every=5)
    assert_states_equal(py, cy, f"after replay under {policy}")
    np.testing.assert_array_equal(r1.rc, r2.rc)
    np.testing.assert_array_equal(r1.outcome, r2.outcome)
    assert r1.counters == r2.counters
    return cy


@needs_ext
@pytest.mark.parametrize("knob, value", [(k, v) for k, vs in KNOB_VALUES.items()
                                         for v in vs[1:] if v != 1024
                                         and k != "over_max_dying"])
def test_every_knob_value_matters_and_engines_agree(knob, value):
    """Flipping one knob away from accountforce-v1 (baseline for accountforce and
    dying_bypass) changes the outcome of at least one generated replay stream -- no knob
    does nothing -- and both engines agree field by field under it.  (over_max_dying needs
    the OOM to pick current: test_dying_task_in_handle_over_max_engines_agree.)"""
    base = "baseline" if knob in ("accountforce", "dying_bypass") else "accountforce-v1"
    pol = Policy(base=base, **{knob: value})
    changed = 0
    rng = np.random.default_rng(11)
    for _ in range(6):
        ev = _stream(rng, policies=(pol, base))
        a = _replay_both(pol, ev)
        b = _replay_both(base, ev)
        changed += any(not np.array_equal(getattr(a.state, f), getattr(b.state, f))
                       for f in a.state.field_names() if f != "knobs")
    assert changed, f"{knob}={value} changed nothing in 6 generated streams"


@needs_ext
@pytest.mark.parametrize("knob, value", [("oom_reaper_delay", 0),
                                         ("reclaim_wait", "5.x"),
                                         ("reclaim_wait", "congestion-wait"),
                                         ("reclaim_wait", "off")])
def test_timed_only_knobs_leave_replay_alone(knob, value):
    """The timing knobs change nothing outside the timed simulation: a replay stream ends in
    the same state (every field but the knobs) in both engines."""
    pol = Policy(base="baseline", **{knob: value})
    rng = np.random.default_rng(11)
    for _ in range(3):
        ev = _stream(rng, policies=(pol, "baseline"))
        a, b = _replay_both(pol, ev), _replay_both("baseline", ev)
        for f in a.state.field_names():
            if f != "knobs":
                np.testing.assert_array_equal(getattr(a.state, f), getattr(b.state, f),
                                              err_msg=f"{knob}={value}: {f}")


@needs_ext
@pytest.mark.parametrize("policy", ["accountforce-fixed", "nofail-bypass"])
def test_replay_streams_new_presets(policy):
    """Generated replay streams (test_differential's generator) under the new presets."""
    rng = np.random.default_rng(3)
    for _ in range(6):
        _replay_both(policy, _stream(rng, policies=(policy,)))


@needs_ext
@pytest.mark.parametrize("policy", ["accountforce-v1", Policy(base="accountforce-v1",
                                                              over_max_dying="exit"),
                                    "accountforce-fixed"])
def test_dying_task_in_handle_over_max_engines_agree(policy):
    """The over_max_dying path (current is the OOM victim, kmem the reaper cannot free),
    both engines, field by field after every step."""
    emus = [me.Emulator(policy=policy, backend=b, livelock_limit=4) for b in ("python", "cython")]
    steps = [
        lambda e: e.mkdir("A"),
        lambda e: e.write("A", "memory.max", 50 * PAGE_SIZE),
        lambda e: e.new_task("A").pid,
        lambda e: e.charge(0, 50, kind="kernel"),
        lambda e: e.memalloc_account_force_save(0),
        lambda e: e.charge(0, 4, me.GFP_KERNEL | me.__GFP_NOFAIL, kind="kernel"),
        lambda e: e.return_to_user(0),
        # a second return to user delivers the SIGKILL if the first could not (a livelock
        # stopped its work); otherwise the first already did and the task has exited
        lambda e: e.return_to_user(0) if e.task(0).state != "exited" else "exited",
    ]
    for i, step in enumerate(steps):
        r = [step(e) for e in emus]
        assert r[0] == r[1], f"step {i}: {r}"
        assert_states_equal(*emus, f"after step {i}")
    assert emus[0].stats["livelocks"] == (1 if policy == "accountforce-v1" else 0)


def test_cli_replay_with_a_toml_policy(tmp_path):
    from memcg_emu.cli import main

    f = tmp_path / "p.toml"
    f.write_text(TOML)
    js = tmp_path / "out.json"
    assert main(["replay", "--events", "3000", "--no-progress", "--policy", f"{f}:v1-order0",
                 "--policy", "accountforce-fixed", "--json", str(js)]) == 0
    doc = json.loads(js.read_text())
    assert list(doc["policies"]) == ["v1-order0", "accountforce-fixed"]


@needs_ext
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(knobs=knobs_strategy, seed=st.integers(0, 2**16))
def test_hypothesis_knob_combinations_replay(knobs, seed):
    """Random knob combinations over generated replay streams: both engines, every field."""
    pol = Policy(**knobs)
    _replay_both(pol, _stream(np.random.default_rng(seed), 200, policies=(pol,)))
