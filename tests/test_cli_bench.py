"""memcg-emu bench: the ratio rows, the baseline format and the --compare gate."""
import json

import pytest

import memcg_emu as me
from memcg_emu.cli import main
from memcg_emu.cli_bench import RATIO_ROWS, compare


def test_compare_flags_only_rows_beyond_the_tolerance():
    base = {"ratios": {r: 2.0 for r in RATIO_ROWS}}
    now = {"ratios": {r: 2.0 for r in RATIO_ROWS}}
    now["ratios"]["mixed_loop/floor"] = 2.9  # +45%
    assert compare(now, base, 0.5) == []
    bad = compare(now, base, 0.25)
    assert len(bad) == 1 and bad[0].startswith("mixed_loop/floor: 2.900 vs baseline 2.000")
    assert compare(now, {"ratios": {}}, 0.0) == []  # rows missing from the baseline: skipped


@pytest.mark.skipif(me.BACKEND != "cython", reason="needs the compiled engine")
def test_bench_cli_writes_and_compares(tmp_path, capsys):
    out = tmp_path / "b.json"
    assert main(["bench", "--events", "40000", "--rounds", "1", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert set(res["ratios"]) == set(RATIO_ROWS)
    assert all(v > 0 for v in res["ratios"].values())
    assert "mixed_loop/floor" in capsys.readouterr().out
    tight = {"ratios": {r: v / 100 for r, v in res["ratios"].items()}}
    (tmp_path / "tight.json").write_text(json.dumps(tight))
    assert main(["bench", "--events", "40000", "--rounds", "1", "--compare",
                 str(tmp_path / "tight.json")]) == 1
    assert "regression" in capsys.readouterr().err
    loose = {"ratios": {r: v * 100 for r, v in res["ratios"].items()}}
    (tmp_path / "loose.json").write_text(json.dumps(loose))
    assert main(["bench", "--events", "40000", "--rounds", "1", "--compare",
                 str(tmp_path / "loose.json")]) == 0


def test_committed_baseline_has_every_row():
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "baseline.json"
    base = json.loads(path.read_text())
    assert set(base["ratios"]) == set(RATIO_ROWS)
