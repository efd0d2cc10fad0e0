"""The memcg-emu command: a tiny default-ish run, JSON output, saved events, errors."""
import json

import pytest

import memcg_emu as me
from memcg_emu import cli, io, workloads


def run(capsys, *argv):
    code = cli.main(["--backend", "python", "--no-progress", *argv])
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
        cli.main(["--events", "0", "--backend", "python"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        cli.main(["--policy", "nope"])
    assert e.value.code == 2


@pytest.mark.skipif(me.BACKEND == "cython", reason="the compiled engine is available")
def test_cython_backend_unavailable(capsys):
    assert cli.main(["--backend", "cython", "--events", "10"]) == 2
    assert "not available" in capsys.readouterr().err
