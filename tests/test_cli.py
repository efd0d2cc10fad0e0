"""The memcg-emu command: the replay subcommand (a tiny default-ish run, JSON output, saved
events, errors), the old flag-style replay invocation, and the timed-scenario subcommands
(the no-argument main job runs jbd2-stall)."""
import json
from dataclasses import replace

import pytest

import memcg_emu as me
from memcg_emu import cli, io, scenarios, workloads

MS = 1_000_000


def run(capsys, *argv):
    code = cli.main(["replay", "--backend", "python", "--no-progress", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_default_run_prints_the_comparison(capsys):
    code, out, _ = run(capsys, "--events", "3000")
    assert code == 0
    assert "mixed: 3,000 events" in out
    for text in ("baseline", "accountforce-v1", "/jobs/job0", "/jobs/job1/task0", "Summary",
                 "stock hit rate", "OOM kills", "forced charges", "pages forced over max",
                 "livelocks", "reclaim reclaimed"):
        assert text in out, text


def test_json_has_both_policies(tmp_path, capsys):
    p = tmp_path / "r.json"
    code, out, _ = run(capsys, "--events", "4000", "--seed", "3", "--json", str(p))
    assert code == 0 and str(p) in out
    doc = json.loads(p.read_text())
    assert list(doc["policies"]) == ["baseline", "accountforce-v1"]
    assert doc["backend"] == "python" and doc["seed"] == 3
    assert doc["workload"]["events"] == 4000
    for pol, r in doc["policies"].items():
        assert r["summary"]["events"] == 4000
        assert r["summary"]["oom_kills"] == 0
        assert 0.0 < r["summary"]["stock_hit_rate"] <= 1.0
        row = r["cgroups"]["/jobs/job1/task0"]
        assert row["max"] is not None and row["peak"] <= row["max"] + 64
        assert set(row["events"]) >= {"max", "oom", "oom_kill"}
    # the same run reproduced through the library gives the same numbers
    w = workloads.mixed(4000, seed=3)
    res = w.build(policy="baseline", backend="python", seed=3).replay(w.events)
    assert doc["policies"]["baseline"]["counters"] == res.counters


def test_one_policy_and_saved_events(tmp_path, capsys):
    pj, pe = tmp_path / "r.json", tmp_path / "w.npz"
    code, out, _ = run(capsys, "--events", "2000", "--policy", "accountforce-v1", "--cpus", "2",
                       "--json", str(pj), "--save-events", str(pe))
    assert code == 0
    doc = json.loads(pj.read_text())
    assert list(doc["policies"]) == ["accountforce-v1"]
    assert doc["nr_cpus"] == 2
    w = io.load_workload(pe)
    assert w.n_events == 2000 and w.nr_cpus == 2
    assert w.events.tobytes() == workloads.mixed(2000, seed=0, nr_cpus=2).events.tobytes()


def test_other_workload(capsys):
    code, out, _ = run(capsys, "--events", "1500", "--workload", "steady_growth")
    assert code == 0 and "/app" in out and "steady_growth" in out


def test_python_default_is_scaled_down(monkeypatch, capsys):
    monkeypatch.setattr(cli, "DEFAULT_EVENTS_PYTHON", 1200)
    code, out, _ = run(capsys, "--policy", "baseline")
    assert code == 0
    assert "scaled down" in out and "1,200" in out


def test_bad_arguments(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["replay", "--events", "0", "--backend", "python"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        cli.main(["replay", "--policy", "nope"])
    assert e.value.code == 2


@pytest.mark.skipif(me.BACKEND == "cython", reason="the compiled engine is available")
def test_cython_backend_unavailable(capsys):
    assert cli.main(["replay", "--backend", "cython", "--events", "10"]) == 2
    assert "not available" in capsys.readouterr().err
    assert cli.main(["scenario", "--backend", "cython"]) == 2
    assert "not available" in capsys.readouterr().err


def test_flag_style_invocation_is_still_a_replay(capsys):
    code = cli.main(["--backend", "python", "--no-progress", "--events", "1000"])
    out = capsys.readouterr().out
    assert code == 0 and "mixed: 1,000 events" in out and "Summary" in out


def test_help_and_unknown_subcommand(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for text in ("replay", "scenario", "scenarios", "jbd2-stall"):
        assert text in out
    assert cli.main(["frobnicate"]) == 2
    assert "unknown subcommand" in capsys.readouterr().err


def test_scenarios_lists_them(capsys):
    assert cli.main(["scenarios"]) == 0
    out = capsys.readouterr().out
    for name in scenarios.SCENARIOS:
        assert name in out


def test_no_arguments_runs_jbd2_stall_across_the_policies(monkeypatch, capsys, tmp_path):
    original = scenarios.jbd2_stall
    small = replace(scenarios.Jbd2StallParams(), pod_max_pages=1024, pod_procs=2,
                    pod_threads=4, proc_anon_pages=50, mkwrite_threads=1, outside_tasks=24,
                    duration_ns=80 * MS)

    def builder(policy, **kw):
        kw.setdefault("params", small)
        return original(policy, **kw)

    monkeypatch.setitem(scenarios.SCENARIOS, "jbd2-stall",
                        replace(scenarios.SCENARIOS["jbd2-stall"], builder=builder))
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert "jbd2-stall" in out and "10 seeds (0..9) x 3 policies" in out
    for text in (*scenarios.DEFAULT_POLICIES, "D-state task-seconds",
                 "journal locked, longest (ms)", "over memory.max, peak (pages)", "OOM kills",
                 "median [q1-q3] over 10 seeds", "fraction of the 10 seeds",
                 "retry-reset loop (OOM with a victim pending)"):
        assert text in out, text
    # one seed: every measurement of each run, the simulated time included
    assert cli.main(["scenario", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "seed 3" in out and "80.0" in out and "median" not in out

    # several seeds: the JSON holds each run's summary, as the library computes it, and the
    # table's medians are those of the runs
    pj = tmp_path / "seeds.json"
    assert cli.main(["scenario", "--seeds", "2,5-6", "--policy", "baseline",
                     "--json", str(pj)]) == 0
    out = capsys.readouterr().out
    doc = json.loads(pj.read_text())
    assert doc["seeds"] == [2, 5, 6]
    runs = doc["policies"]["baseline"]["runs"]
    assert [r["seed"] for r in runs] == [2, 5, 6]
    for r in runs:
        res = scenarios.run("jbd2-stall", ["baseline"], seed=r["seed"])["baseline"]
        for key in ("ops_completed", "oom_kills", "d_state_peak", "events"):
            assert r[key] == res.summary[key], (r["seed"], key)
    kills = sorted(r["oom_kills"] for r in runs)
    line = next(x for x in out.splitlines() if x.lstrip("│ ").startswith("OOM kills"))
    assert f"{kills[1]:,}" in line


def test_scenario_json_and_plot(tmp_path, capsys):
    pj, pp = tmp_path / "r.json", tmp_path / "r.png"
    argv = ["scenario", "high-throttle-storm", "--backend", "python", "--seed", "2",
            "--duration-ms", "50", "--policy", "baseline", "--policy", "accountforce-v1",
            "--json", str(pj)]
    try:
        import matplotlib  # noqa: F401
        argv += ["--plot", str(pp)]
    except ImportError:
        pp = None
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "high-throttle-storm" in out and "throttle sleep" in out
    doc = json.loads(pj.read_text())
    assert doc["scenario"] == "high-throttle-storm" and doc["seed"] == 2
    assert list(doc["policies"]) == ["baseline", "accountforce-v1"]
    # the JSON holds what the library computes for the same run
    res = scenarios.run("high-throttle-storm", ["baseline"], seed=2, backend="python",
                        duration_ns=50 * MS)["baseline"]
    got = doc["policies"]["baseline"]
    assert got["summary"]["ops_completed"] == res.summary["ops_completed"]
    assert got["summary"]["sim_time_ns"] == 50 * MS
    assert got["series"]["usage:/batch"] == res.series["usage"][:, 1].tolist()
    if pp is not None:
        assert pp.read_bytes()[:4] == b"\x89PNG"


def test_scenario_bad_arguments(capsys):
    for argv in (["scenario", "nope"], ["scenario", "--duration-ms", "0"],
                 ["scenario", "--policy", "nope"], ["scenario", "--seed", "-1"],
                 ["scenario", "--seeds", "3-1"], ["scenario", "--seeds", "x"],
                 ["scenario", "--seed", "1", "--seeds", "0-3"]):
        with pytest.raises(SystemExit) as e:
            cli.main(argv)
        assert e.value.code == 2, argv
