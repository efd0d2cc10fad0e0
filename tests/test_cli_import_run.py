"""memcg-emu import / replay --input / run, end to end through the CLI entry point."""
import json
import os

import pytest

from memcg_emu.cli import main

DATA = os.path.join(os.path.dirname(__file__), "data", "traces")
SAMPLES = os.path.join(DATA, "sampler-run", "samples.csv.gz")
TRACE = os.path.join(DATA, "trace-run", "trace.txt.gz")
LIMITS = ["--set", "memory.max:/W/anon=12M", "--set", "memory.max:/W/file=8M",
          "--set", "memory.high:/W/high=6M"]


@pytest.fixture(scope="module")
def samples_npz(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("imp") / "s.npz")
    assert main(["import", "samples", SAMPLES, "-o", out, *LIMITS]) == 0
    return out


def test_import_reports_lines(samples_npz, tmp_path, capsys):
    out = str(tmp_path / "t.npz")
    assert main(["import", "trace", TRACE, "-o", out]) == 0
    err = capsys.readouterr().err
    assert "trace.txt.gz: 29285 lines" in err and "0 unreadable" in err


def test_import_strict_names_file_and_line(tmp_path, capsys):
    bad = tmp_path / "samples.csv"
    import gzip

    with gzip.open(SAMPLES, "rt") as f:
        head = [next(f) for _ in range(4)]
    bad.write_text("".join(head) + "1,2\n")
    assert main(["import", "samples", str(bad), "-o", str(tmp_path / "x.npz"),
                 "--strict"]) == 1
    assert "samples.csv:5:" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()
    assert main(["import", "samples", str(bad), "-o", str(tmp_path / "x.npz")]) == 0
    assert "unreadable: " in capsys.readouterr().err


def test_replay_input_json_whatif(samples_npz, capsys):
    rc = main(["replay", "--input", samples_npz, "--policy", "baseline",
               "--set", "memory.max:/W/file=4M", "--format", "json", "--backend", "python"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["limits_pages"]["/W/file"]["max"] == 1024
    assert doc["policies"]["baseline"]["peak_pages"]["/W/file"] <= 1024
    rec = doc["recorded_vs_emulated"]["memory_events"]["/W/file"]["max"]
    assert rec["kernel"] == 77
    titles = [t["title"] for t in doc["tables"]]
    assert any(t.startswith("Recorded kernel vs emulator") for t in titles)


@pytest.mark.parametrize("fmt, first", [("csv", "# What-if"), ("markdown", "**What-if"),
                                        ("table", "What-if")])
def test_formats_plain_on_a_pipe(samples_npz, capsys, fmt, first):
    assert main(["replay", "--input", samples_npz, "--format", fmt]) == 0
    out = capsys.readouterr().out
    assert out.startswith(first)
    assert "\x1b[" not in out  # no colour codes when stdout is not a terminal


def test_json_dash_is_stdout(samples_npz, capsys):
    assert main(["replay", "--input", samples_npz, "--format", "csv", "--json", "-"]) == 0
    out = capsys.readouterr().out
    doc = json.loads(out[out.index("\n{") + 1:])
    assert doc["kind"] == "samples"


def test_set_unknown_cgroup(samples_npz, capsys):
    assert main(["replay", "--input", samples_npz, "--set", "memory.max:/nope=1G"]) == 1
    assert "no cgroup '/nope'" in capsys.readouterr().err


def test_run_file_errors_and_replay_file(samples_npz, tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("format = 1\n[run]\nduraton_ms = 5\n")
    assert main(["run", str(bad)]) == 2
    assert "bad.toml: run.duraton_ms: unknown key" in capsys.readouterr().err
    rep = tmp_path / "whatif.toml"
    rep.write_text(f'format = 1\nkind = "replay"\n[replay]\ninput = "{samples_npz}"\n'
                   f'set = ["memory.max:/W/anon=8M"]\npolicies = ["baseline"]\n')
    assert main(["run", str(rep), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["limits_pages"]["/W/anon"]["max"] == 2048


def test_run_builtin_by_name(capsys):
    assert main(["run", "high-throttle-storm", "--set", "run.duration_ms=50", "--policy",
                 "baseline", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["runs"][0]["summary"]["sim_time_ns"] == 50_000_000


def test_run_several_seeds_gives_distributions(capsys):
    """Over several seeds the table is the sweep's: the median [q1-q3] of each main figure
    and the fraction of seeds showing each signature, computed from the runs it reports."""
    import numpy as np

    assert main(["run", "jbd2-stall", "--set", "run.duration_ms=300", "--set",
                 "tasks.pod.count=2", "--policy", "baseline", "--seed", "0", "--seed", "1",
                 "--seed", "4", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["seed"] for r in doc["runs"]] == [0, 1, 4]
    figs, sigs = doc["tables"]
    assert "over 3 seeds" in figs["title"] and "fraction of the 3 seeds" in sigs["title"]
    ops = [r["summary"]["ops_completed"] for r in doc["runs"]]
    peak = [r["summary"]["d_state_peak"] for r in doc["runs"]]
    row = {r[""]: r["baseline"] for r in figs["rows"]}
    med, q1, q3 = np.percentile(peak, [50, 25, 75])
    fmt = (lambda x: f"{x:,.0f}" if x == int(x) or abs(x) >= 100 else f"{x:,.2f}")
    assert row["D-state tasks, peak"] == (fmt(med) if q1 == q3
                                          else f"{fmt(med)} [{fmt(q1)}-{fmt(q3)}]")
    kills = [r["summary"]["oom_kills"] for r in doc["runs"]]
    sig = {r[""]: r["baseline"] for r in sigs["rows"]}
    assert sig["OOM kill"] == f"{np.mean(np.array(kills) >= 1):.0%}"
    assert len(set(ops)) > 1  # the seeds differ: a distribution, not one run thrice
