"""Sweeps (memcg_emu.sweep, memcg-emu sweep): a small grid on a Dask LocalCluster equals the
in-process run row for row and each row equals a direct run of the scenario; swept keys take
effect (checked against the scenario parameter that feeds the same setting); a failing cell is
reported with its coordinates and the others land; bad specs are refused before anything
runs; the summary statistics on known data; the command line (Dask and --local, Parquet,
plots, replay of workload files, no Dask installed)."""
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from memcg_emu import cli, io, scenarios, sweep, workloads
from memcg_emu.cli_sweep import sweep_main
from memcg_emu.errors import EmuError, InvalidConfigError, LimitError

MS = 1_000_000
# jbd2-stall scaled down (about 0.1 s of wall clock per run on the compiled engine)
SMALL = {"pod_procs": [4], "pod_threads": [4], "proc_anon_pages": [200],
         "outside_tasks": [100], "duration_ns": ["200ms"], "pod_max_pages": [1024]}
SMALL_PARAMS = replace(scenarios.Jbd2StallParams(), pod_procs=4, pod_threads=4,
                       proc_anon_pages=200, outside_tasks=100, duration_ns=200 * MS,
                       pod_max_pages=1024)
SMALL_ARGS = [f"--set={k}={','.join(map(str, v))}" for k, v in SMALL.items()]
POLICIES = ["baseline", "accountforce-v1"]


def stable(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=[c for c in sweep.WALL_CLOCK_COLUMNS if c in df.columns])


@pytest.fixture(scope="module")
def client():
    """A quiet two-worker LocalCluster on the loopback interface, closed after the module."""
    distributed = pytest.importorskip("distributed")
    with sweep.local_cluster(2) as cluster, distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def small_grid():
    return sweep.ScenarioGrid("jbd2-stall", POLICIES, "0-2", SMALL)


@pytest.fixture(scope="module")
def small_local(small_grid):
    return sweep.run(small_grid, local=True)


@pytest.fixture(scope="module")
def workload_dir(tmp_path_factory):
    """Two small workload files and one corrupt file."""
    d = tmp_path_factory.mktemp("workloads")
    io.save_workload(d / "a.npz", workloads.steady_growth(3000, seed=1))
    io.save_workload(d / "b.npz", workloads.bursts(3000, seed=2))
    (d / "c.npz").write_bytes(b"not a workload")
    return d


# =============================================================================================
# one row per run, the same on Dask as in-process
# =============================================================================================
def test_local_cluster_equals_in_process_row_for_row(small_grid, small_local, client):
    local = small_local.df
    assert len(local) == 6 and local["error"].isna().all()
    assert list(local["policy"]) == ["baseline"] * 3 + ["accountforce-v1"] * 3
    assert list(local["seed"]) == [0, 1, 2] * 2
    assert list(local["cell"]) == list(range(6))
    for k in SMALL:
        assert k in local.columns
    assert (local["sim_time_ns"] == 200 * MS).all()
    # the runs differ across seeds: the seed reaches the scenario
    assert local["file_ops"].nunique() > 1

    on_dask = sweep.run(small_grid, scheduler=client)
    assert on_dask.mode == "dask" and small_local.mode == "local"
    pd.testing.assert_frame_equal(stable(on_dask.df), stable(local))


def test_each_row_is_the_run_of_its_cell(small_local):
    df = small_local.df
    for i in (0, 4):
        row = df.iloc[i]
        sim = scenarios.build("jbd2-stall", row["policy"], seed=int(row["seed"]),
                              params=SMALL_PARAMS)
        s = sim.run(sim.duration_ns).summary
        for k, v in s.items():
            if k in ("policy", *sweep.WALL_CLOCK_COLUMNS):
                continue
            if isinstance(v, dict):
                for sub, x in v.items():
                    assert row[f"{k}:{sub}"] == x, (k, sub)
            else:
                assert row[k] == v, k
        assert row["scenario_cgroup"] == "/pod" and row["engine"] == sim.emu.backend


def _one(params, policy="accountforce-v1", seed=3):
    df = sweep.run(sweep.ScenarioGrid("jbd2-stall", [policy], [seed], {**SMALL, **params}),
                   local=True).df
    assert len(df) == 1 and df["error"].isna().all(), df["error"].tolist()
    return df.iloc[0]


def _same_run(a, b):
    """The same summary (every field after the coordinates and ``error``)."""
    cols = [c for c in list(a.index)[list(a.index).index("error") + 1:]
            if c not in sweep.WALL_CLOCK_COLUMNS]
    assert "journal_locked_max_ns" in cols and "flusher_pages_written" in cols
    return all(a.get(c) == b.get(c) for c in cols)


@pytest.mark.parametrize("config_key, param_key, value, changes", [
    ("costs.writeback_page_ns", "writeback_page_ns", "20us", True),
    ("journal.commit_interval_ns", "commit_interval_ns", "50ms", True),
    # the periodic wake-up writes what balance_dirty_pages() leaves below its threshold
    ("flusher.interval_ns", "flusher_interval_ns", "100ms", True),
])
def test_config_keys_take_effect(config_key, param_key, value, changes):
    """A CostModel/JournalConfig/FlusherConfig key gives the same run as the scenario
    parameter jbd2-stall derives that setting from (and, where it matters, not the default
    run)."""
    via_config = _one({config_key: [value]})
    via_param = _one({param_key: [value]})
    default = _one({})
    assert _same_run(via_config, via_param)
    assert _same_run(via_config, default) is not changes
    if config_key.startswith("flusher"):
        off = _one({"flusher.enabled": ["false"]})
        assert default["flusher_pages_written"] > 0 and off["flusher_pages_written"] == 0


def test_limit_keys_take_effect():
    default = _one({}, policy="baseline")
    assert default["reclaim_passes"] > 0
    unlimited = _one({"memory.max": ["max"]}, policy="baseline")
    assert unlimited["reclaim_passes"] == 0 and unlimited["oom_kills"] == 0
    assert unlimited["memory.max"] == "max"
    # another cgroup by path: /system gets a limit its 100 tasks' kernel pages exceed
    limited = _one({"/system/memory.max": ["64K"]}, policy="baseline")
    assert limited["oom_kills"] > default["oom_kills"] + 16  # more than the pod's 16 tasks
    assert limited["reclaim_passes"] > default["reclaim_passes"]


# =============================================================================================
# failures
# =============================================================================================
def test_failing_cell_is_reported_and_the_others_land(workload_dir, client):
    grid = sweep.ReplayGrid(str(workload_dir), POLICIES, [0])
    local = sweep.run(grid, local=True)
    df = local.df
    assert len(df) == 6
    assert [p.rsplit("/", 1)[-1] for p in df["input"]] == ["a.npz", "b.npz", "c.npz"] * 2
    bad = local.failures
    assert list(bad["cell"]) == [2, 5]
    assert list(bad["policy"]) == POLICIES and (bad["seed"] == 0).all()
    assert all("c.npz" in e for e in bad["error"])
    good = df[df["error"].isna()]
    assert len(good) == 4 and (good["events"] == 3000).all()
    assert bad["events"].isna().all()
    # a replay row is the replay of its file
    w = io.load_workload(workload_dir / "b.npz")
    res = w.build(policy="accountforce-v1", seed=0).replay(w.events)
    row = df.iloc[4]
    for k, v in res.summary.items():
        if k not in sweep.WALL_CLOCK_COLUMNS:
            assert row[k] == v, k

    on_dask = sweep.run(grid, scheduler=client)
    pd.testing.assert_frame_equal(stable(on_dask.df), stable(df))


def test_a_task_that_cannot_run_on_the_cluster_is_a_failed_row(client):
    """A cell whose task itself fails on the worker (not inside the run) is reported too."""
    good = sweep.ScenarioGrid("mmap-lock-reclaim", ["baseline"], [0],
                              {"duration_ns": ["20ms"]}).cells()[0]
    broken = replace(good, index=1, kind="scenario", target="no-such-scenario")
    res = sweep.run([good, broken], scheduler=client)
    assert list(res.df["error"].isna()) == [True, False]
    assert "no-such-scenario" in res.df["error"].iloc[1]
    assert res.df["scenario"].iloc[1] == "no-such-scenario"


# =============================================================================================
# bad specs: refused before anything runs
# =============================================================================================
@pytest.fixture
def nothing_runs(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("a cell ran")

    monkeypatch.setattr(sweep, "run_cell", boom)
    monkeypatch.setattr(sweep, "_dask_client", boom)


@pytest.mark.parametrize("kwargs, match", [
    ({"policies": ["baseline", "no-such-policy"]}, r"--policy no-such-policy"),
    ({"policies": []}, r"no policy"),
    ({"policies": ["baseline", "baseline"]}, r"--policy baseline: given twice"),
    ({"seeds": "19-0"}, r"--seeds '19-0'.*empty range"),
    ({"seeds": "0-x"}, r"--seeds '0-x'.*bad seed or range '0-x'"),
    ({"seeds": "-1"}, r"--seeds '-1'"),
    ({"seeds": ""}, r"--seeds ''"),
    ({"seeds": [0, 1, 0]}, r"seeds = 0: seed given twice"),
    ({"seeds": [0, -3]}, r"seeds\[1\] = -3"),
    ({"seeds": [0, 1.0]}, r"seeds\[1\] = 1.0"),
    ({"seeds": "0-5,3"}, r"seeds = 3: seed given twice"),
    ({"scenario": "nope"}, r"scenario 'nope'.*unknown scenario"),
    ({"params": {"pod_procz": [1]}}, r"--set pod_procz: unknown key for jbd2-stall"),
    ({"params": {"costs.nope": [1]}}, r"--set costs.nope: unknown key; costs\.\* is one of"),
    ({"params": {"foo.bar": [1]}}, r"--set foo.bar: unknown key"),
    ({"params": {"pod_procs": ["abc"]}}, r"--set pod_procs=abc: bad value 'abc'"),
    ({"params": {"pod_procs": ["-4"]}}, r"--set pod_procs=-4: bad value"),
    ({"params": {"pod_procs": ["10ms"]}}, r"--set pod_procs=10ms: bad value"),
    ({"params": {"pod_procs": [1.5]}}, r"--set pod_procs=1.5: bad value"),
    ({"params": {"pod_procs": []}}, r"--set pod_procs: no value"),
    ({"params": {"pod_procs": ["8", "8"]}}, r"--set pod_procs: a value is given twice"),
    ({"params": {"duration_ns": ["0"]}}, r"--set duration_ns=0: must be positive"),
    ({"params": {"pod_dirty_fraction": ["nan"]}}, r"--set pod_dirty_fraction=nan"),
    ({"params": {"pod_think_ns": ["5ms:1ms"]}}, r"--set pod_think_ns=5ms:1ms"),
    ({"params": {"pod_think_ns": ["5ms"]}}, r"--set pod_think_ns=5ms: bad value.*':'"),
    ({"params": {"journal.commit_interval_ns": ["0"]}},
     r"--set journal.commit_interval_ns=0: .*commit_interval_ns"),
    ({"params": {"flusher.enabled": ["maybe"]}}, r"--set flusher.enabled=maybe"),
    ({"params": {"memory.max": ["30Q"]}}, r"--set memory.max=30Q"),
    ({"params": {"/nope/memory.max": ["1M"]}}, r"--set /nope/memory.max: no cgroup '/nope'"),
])
def test_bad_specs_are_refused_before_anything_runs(nothing_runs, kwargs, match):
    spec = {"scenario": "jbd2-stall", "policies": POLICIES, "seeds": "0-2", "params": {},
            **kwargs}
    grid = sweep.ScenarioGrid(spec.pop("scenario"), spec.pop("policies"), spec.pop("seeds"),
                              spec.pop("params"))
    with pytest.raises(InvalidConfigError, match=match):
        sweep.run(grid, local=True)
    with pytest.raises(InvalidConfigError, match=match):
        sweep.run(grid)


def test_bad_replay_specs_and_limits(nothing_runs, tmp_path):
    with pytest.raises(InvalidConfigError, match=r"--input .*missing.npz: no such file"):
        sweep.run(sweep.ReplayGrid(str(tmp_path / "missing.npz"), POLICIES), local=True)
    with pytest.raises(InvalidConfigError, match=r"--input .*\*.npz: pattern matches no"):
        sweep.run(sweep.ReplayGrid(str(tmp_path / "*.npz"), POLICIES), local=True)
    with pytest.raises(InvalidConfigError, match=r"directory holds no .npz"):
        sweep.run(sweep.ReplayGrid(str(tmp_path), POLICIES), local=True)
    with pytest.raises(LimitError, match="more than 1,000,000 seeds"):
        sweep.parse_seeds("0-1000000")
    with pytest.raises(LimitError, match="cells, more than"):
        sweep.run(sweep.ScenarioGrid("jbd2-stall", POLICIES, "0-999999",
                                     {"pod_procs": ["1", "2"]}), local=True)


def test_spec_parsing():
    assert sweep.parse_seeds("0-3") == [0, 1, 2, 3]
    assert sweep.parse_seeds(" 7 ") == [7]
    assert sweep.parse_seeds("0-1,10,20-21") == [0, 1, 10, 20, 21]
    cells = sweep.ScenarioGrid("mmap-lock-reclaim", ["baseline"], np.arange(3)).cells()
    assert [c.seed for c in cells] == [0, 1, 2] and type(cells[0].seed) is int
    assert sweep.parse_set("costs.writeback_page_ns=20us, 1ms") == (
        "costs.writeback_page_ns", ["20us", "1ms"])
    for bad in ("novalue", "=1", "k=", "k=1,,2"):
        with pytest.raises(InvalidConfigError, match=r"--set"):
            sweep.parse_set(bad)
    cells = sweep.ScenarioGrid("jbd2-stall", ["accountforce-v1"], [5], {
        "pod_think_ns": ["1ms:2ms"], "commit_interval_ns": ["1.5e8", "0.25s"],
        "pod_dirty_fraction": ["0.5"], "flusher.enabled": ["false"],
        "memory.high": ["30M"]}).cells()
    assert len(cells) == 2
    assert dict(cells[1].overrides) == {
        "pod_think_ns": (MS, 2 * MS), "commit_interval_ns": 250 * MS,
        "pod_dirty_fraction": 0.5, "flusher.enabled": False, "memory.high": "30M"}
    assert cells[0].coords()["pod_think_ns"] == f"{MS}:{2 * MS}"
    assert dict(cells[0].overrides)["commit_interval_ns"] == 150 * MS
    assert all(issubclass(e, EmuError) for e in (InvalidConfigError, LimitError))


def test_policy_objects_are_carried_as_given():
    """The policy reaches the run as the value given (a name today); its label names it."""

    class Named:
        name = "baseline"

    assert sweep.policy_label("accountforce-v1") == "accountforce-v1"
    assert sweep.policy_label(Named()) == "baseline"
    cell = sweep.ScenarioGrid("jbd2-stall", ["baseline"], [0]).cells()[0]
    assert cell.policy == "baseline" and cell.coords()["policy"] == "baseline"


# =============================================================================================
# summaries
# =============================================================================================
def test_summarize_known_answers():
    rows = []
    for i, (pol, stall_ms, over) in enumerate(
            [("baseline", x, 0) for x in (100, 200, 1200, 1300, 1400)]
            + [("accountforce-v1", x, o) for x, o in ((10, 5), (10, 0), (20, 7), (30, 9))]):
        rows.append({"cell": i, "scenario": "jbd2-stall", "policy": pol, "seed": i,
                     "error": None, "journal_locked_max_ns": stall_ms * MS,
                     "over_max_peak_pages": over})
    rows.append({"cell": 9, "scenario": "jbd2-stall", "policy": "accountforce-v1", "seed": 9,
                 "error": "RuntimeError: x"})
    df = pd.DataFrame(rows)
    figs = [sweep.Figure("journal (ms)", "journal_locked_max_ns", 1e-6),
            sweep.Figure("over", "over_max_peak_pages")]
    sigs = [sweep.Signature("stall", "journal_locked_max_ns", 1_000 * MS),
            sweep.Signature("over", "over_max_peak_pages", 1)]
    st = sweep.summarize(df, figs, sigs).set_index(["kind", "measure", "policy"])
    b = st.loc[("figure", "journal (ms)", "baseline")]
    assert (b["runs"], b["failed"], b["median"], b["q1"], b["q3"]) == (5, 0, 1200, 200, 1300)
    a = st.loc[("figure", "journal (ms)", "accountforce-v1")]
    assert (a["runs"], a["failed"], a["median"], a["q1"], a["q3"]) == (4, 1, 15, 10, 22.5)
    assert a["diff_vs_baseline"] == 15 - 1200 and b["diff_vs_baseline"] == 0
    assert st.loc[("signature", "stall", "baseline"), "fraction"] == 0.6
    assert st.loc[("signature", "stall", "accountforce-v1"), "fraction"] == 0.0
    assert st.loc[("signature", "over", "accountforce-v1"), "fraction"] == 0.75
    assert st.loc[("signature", "over", "accountforce-v1"), "diff_vs_baseline"] == 0.75
    # another baseline
    st2 = sweep.summarize(df, figs, sigs, baseline="accountforce-v1")
    row = st2[(st2["measure"] == "journal (ms)") & (st2["policy"] == "baseline")].iloc[0]
    assert row["diff_vs_baseline"] == 1200 - 15
    with pytest.raises(InvalidConfigError, match="--baseline nope"):
        sweep.summarize(df, figs, sigs, baseline="nope")


def test_summarize_groups_by_swept_values(small_local):
    df = small_local.df.copy()
    df2 = df.copy()
    df2["pod_procs"] = 32
    df2["journal_locked_max_ns"] += 5 * MS
    both = pd.concat([df, df2], ignore_index=True)
    st = sweep.summarize(both)
    assert set(st["pod_procs"]) == {4, 32}
    j = st[st["measure"] == "journal locked, longest (ms)"].set_index(["pod_procs", "policy"])
    for pol in POLICIES:
        x = df.loc[df["policy"] == pol, "journal_locked_max_ns"] / 1e6
        assert j.loc[(4, pol), "median"] == pytest.approx(np.median(x))
        assert j.loc[(32, pol), "median"] == pytest.approx(np.median(x) + 5)


# =============================================================================================
# the command
# =============================================================================================
def _cli(capsys, *argv):
    code = cli.main(["sweep", *argv, "--no-progress"])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_local_parquet_and_plot(tmp_path, capsys, small_local):
    pytest.importorskip("matplotlib")
    out_file, png = tmp_path / "s.parquet", tmp_path / "s.png"
    code, out, err = _cli(capsys, "jbd2-stall", "--policy", "baseline", "--policy",
                          "accountforce-v1", "--seeds", "0-2", *SMALL_ARGS, "--local",
                          "--out", str(out_file), "--plot", str(png))
    assert code == 0, err
    assert "6 runs (2 policies x 3 seeds), in this process" in out
    for text in ("Main figures per policy", "journal locked, longest (ms)", "median - baseline",
                 "Signatures", "journal locked >= 1 s", "fraction - baseline",
                 "results written to", "plot written to"):
        assert text in out, text
    df = pd.read_parquet(out_file)
    pd.testing.assert_frame_equal(stable(df), stable(small_local.df), check_dtype=False)
    assert png.stat().st_size > 10_000


def test_cli_on_a_local_cluster_same_rows(tmp_path, capsys, small_local):
    pytest.importorskip("distributed")
    out_file = tmp_path / "s.csv"
    code, out, err = _cli(capsys, "--policy", "baseline", "--policy", "accountforce-v1",
                          "--seeds", "0-2", *SMALL_ARGS, "--workers", "2", "--out",
                          str(out_file))
    assert code == 0, err
    assert "on a Dask LocalCluster of 2 worker processes" in out
    df = pd.read_csv(out_file)
    mine = stable(small_local.df)
    cols = [c for c in mine.columns if not c.startswith("over_max_page_seconds:")
            and mine[c].dtype != object]
    pd.testing.assert_frame_equal(stable(df)[cols], mine[cols], check_dtype=False)


def test_cli_replay_reports_the_failed_run(workload_dir, tmp_path, capsys):
    out_file = tmp_path / "r.parquet"
    code, out, err = _cli(capsys, "replay", "--input", str(workload_dir / "*.npz"),
                          "--seeds", "0-1", "--local", "--out", str(out_file))
    assert code == 1
    assert "12 runs (2 policies x 2 seeds x 3 files)" in out
    assert "4 failed runs" in out and "c.npz" in out
    assert "charge forced over memory.max" in out  # the summary of the others
    df = pd.read_parquet(out_file)
    assert len(df) == 12 and df["error"].notna().sum() == 4


@pytest.mark.parametrize("argv, match", [
    (["--policy", "nope"], "--policy nope"),
    (["--seeds", "5-1"], "--seeds '5-1'"),
    (["--set", "bogus=1"], "--set bogus"),
    (["--set", "pod_procs=1", "--set", "pod_procs=2"], "given twice"),
    (["--set", "pod_procs"], "expected KEY=V1,V2"),
    (["--out", "x.txt"], "expected a .parquet"),
    (["--workers", "0"], "--workers must be at least 1"),
    (["--baseline", "legacy-dying-bypass", "--policy", "baseline"], "--baseline"),
    (["--duration-ms", "0"], "--duration-ms must be positive"),
    (["nope"], "unknown scenario"),
])
def test_cli_bad_specs(nothing_runs, capsys, argv, match):
    code, out, err = _cli(capsys, *argv, "--local")
    assert code == 2
    assert match in err
    assert "runs" not in out


def test_without_dask_local_still_runs(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    grid = sweep.ScenarioGrid("mmap-lock-reclaim", ["baseline"], [0], {"duration_ns": ["20ms"]})
    with pytest.raises(ImportError, match=r"memcg-emu\[sweep\].*--local"):
        sweep.run(grid)
    assert len(sweep.run(grid, local=True).df) == 1
    code, _, err = _cli(capsys, "mmap-lock-reclaim", "--seeds", "0", "--set", "duration_ns=20ms")
    assert code == 2 and "--local" in err
    code, out, _ = _cli(capsys, "mmap-lock-reclaim", "--seeds", "0", "--set",
                        "duration_ns=20ms", "--local")
    assert code == 0 and "3 runs (3 policies x 1 seeds), in this process" in out


def test_usage_names_sweep(capsys):
    assert cli.main(["--help"]) == 0
    assert "memcg-emu sweep" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        sweep_main(["--help"])
    assert "--set" in capsys.readouterr().out


def test_every_signature_and_figure_has_its_column(small_local):
    """The incident signatures and main figures name columns that a scenario run fills (a
    misspelt column would leave a signature silently at 0%)."""
    df = small_local.df
    for m in [*sweep.scenario_signatures(), *sweep.scenario_figures()]:
        assert m.column in df.columns, m.column
        assert df[m.column].notna().all(), m.column
