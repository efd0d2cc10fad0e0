"""Scenario files: every built-in scenario ships as a TOML file whose run equals the
Python-built one; bad files are refused with the file, key and reason before anything runs."""
import numpy as np
import pytest

from memcg_emu import scenario_file, scenarios
from memcg_emu.errors import InvalidConfigError, InvalidFileError

_VOLATILE = {"wall_seconds", "events_per_sec", "ops_per_sec", "scheduler"}  # wall-clock rates
SHORT_MS = {"jbd2-stall": 150, "mmap-lock-reclaim": 200, "high-throttle-storm": 400}


def _stable(summary):
    return {k: v for k, v in summary.items() if k not in _VOLATILE}


@pytest.mark.parametrize("name", list(scenarios.SCENARIOS))
def test_builtin_file_equals_python_scenario(name, backend):
    sf = scenario_file.load(scenario_file.builtin_path(name))
    assert sf.name == name
    assert sf.duration_ns == scenarios.build(name).duration_ns
    # a prefix of the run keeps the suite fast (the reference engine is ~20x slower)
    dur = SHORT_MS[name] * 1_000_000 // (1 if backend == "cython" else 4)
    for seed in (0, 3):
        a = scenarios.build(name, "baseline", seed=seed, backend=backend)
        b = sf.build("baseline", seed=seed, backend=backend)
        assert a.scenario_cgroup == b.scenario_cgroup
        ra, rb = a.run(dur), b.run(dur)
        assert _stable(ra.summary) == _stable(rb.summary)
        assert ra.series.keys() == rb.series.keys()
        for k in ra.series:
            np.testing.assert_array_equal(ra.series[k], rb.series[k])
        assert ra.summary["ops_completed"] > 0


def _write(tmp_path, text):
    p = tmp_path / "s.toml"
    p.write_text(text)
    return str(p)


GOOD = """
format = 1
[run]
duration_ms = 50
nr_cpus = 2
[[cgroups]]
path = "a"
max = "4M"
[[tasks]]
name = "t"
cgroup = "a"
count = 2
program = "charge-loop"
params = { pages = 8, rounds = 3 }
cpu = "spread"
"""


@pytest.mark.parametrize("patch, key", [
    ("bogus = 1\n", "bogus"),
    ("[costs]\nwriteback_page_ms = 3\n", "costs.writeback_page_ms"),
    ("[flusher]\ninterval_ns = -1\n", "flusher.interval_ns"),
])
def test_unknown_keys_and_bad_values_name_file_and_key(tmp_path, patch, key):
    path = _write(tmp_path, patch + GOOD if not patch.startswith("[") else GOOD + patch)
    with pytest.raises(InvalidConfigError, match=rf"s\.toml: {key}: "):
        scenario_file.load(path)


@pytest.mark.parametrize("old, new, key", [
    ('program = "charge-loop"', 'program = "nope"', r"tasks\[0\]\.program"),
    ("pages = 8", "pages = 0", r"tasks\[0\]\.params\.pages"),
    ("pages = 8", "pagez = 8", r"tasks\[0\]\.params\.pagez"),
    ('max = "4M"', 'max = "4Q"', r"cgroups\[0\]\.max"),
    ('cgroup = "a"', 'cgroup = "b"', r"tasks\[0\]\.cgroup"),
    ("nr_cpus = 2", "nr_cpus = 0", r"run\.nr_cpus"),
    ("duration_ms = 50", 'duration_ms = "long"', r"run\.duration_ms"),
])
def test_bad_values(tmp_path, old, new, key):
    with pytest.raises(InvalidConfigError, match=rf"s\.toml: {key}: "):
        scenario_file.load(_write(tmp_path, GOOD.replace(old, new)))


def test_not_toml(tmp_path):
    with pytest.raises(InvalidFileError, match=r"s\.toml: not valid TOML"):
        scenario_file.load(_write(tmp_path, "[run\n"))


def test_set_overrides_then_checks(tmp_path):
    path = _write(tmp_path, GOOD)
    sf = scenario_file.load(path, ["tasks.t.count=5", "cgroups.a.max=8M", "run.duration_ms=20"])
    assert sf.doc["tasks"][0]["count"] == 5 and sf.doc["cgroups"][0]["max"] == "8M"
    with pytest.raises(InvalidConfigError, match=r"tasks\[0\]\.count"):
        scenario_file.load(path, ["tasks.t.count=-1"])
    with pytest.raises(InvalidConfigError, match="no entry 'zz'"):
        scenario_file.load(path, ["tasks.zz.count=1"])
    res = scenario_file.run(sf, backend="python", policies=["baseline"])
    assert list(res) == [("baseline", 0)]
    assert res[("baseline", 0)].summary["ops_completed"] > 0
