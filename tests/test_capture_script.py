"""The shipped capture script: valid POSIX sh, cleans up on exit, and its sample
post-processing writes what the samples importer reads (run on a synthetic raw stream, since
recording needs root, cgroup v2 and tracefs)."""
import os
import re
import shutil
import subprocess

import pytest

from memcg_emu.importers import capture_script_path, import_samples

SCRIPT = capture_script_path()


def _text():
    with open(SCRIPT, encoding="utf-8") as f:
        return f.read()


def test_shipped_and_posix_syntax():
    assert os.path.exists(SCRIPT)
    shells = [s for s in ("dash", "sh", "busybox") if shutil.which(s)]
    assert shells
    for sh in shells:
        cmd = [sh, "sh", "-n", SCRIPT] if sh == "busybox" else [sh, "-n", SCRIPT]
        subprocess.run(cmd, check=True)


def test_removes_its_probes_and_instance_on_exit():
    text = _text()
    assert "trap teardown EXIT" in text and "trap 'QUIT=1' INT TERM HUP" in text
    body = text[text.index("teardown() {"):text.index("trap teardown EXIT")]
    assert 'remove_probe "$G/$n"' in body and 'rmdir "$INST"' in body
    # only tracefs and cgroupfs: no bpftrace/perf/trace-cmd
    assert not re.search(r"\b(bpftrace|perf |trace-cmd)\b", text)


def _sample_block(seq, t, cgroups):
    out = [f"@ {seq} {t} {seq / 100:.2f}"]
    for path, cur, anon, limit in cgroups:
        d = f"/sys/fs/cgroup/{path}"
        out += [f"==> {d}/memory.current <==", str(cur), "",
                f"==> {d}/memory.stat <==", f"anon {anon}", "file 0", "kernel 0",
                "shmem 0", "file_dirty 0", "file_writeback 0", "sock 0", "pgsteal 0", "",
                f"==> {d}/memory.events <==", "low 0", "high 0", "max 0", "oom 0",
                "oom_kill 0", "oom_group_kill 0", "",
                f"==> {d}/memory.max <==", limit, "",
                f"==> {d}/memory.high <==", "max", "",
                f"==> {d}/memory.low <==", "0", ""]
    out.append(f"@@ {seq} {t + 500}")
    return out


@pytest.mark.skipif(not shutil.which("awk"), reason="no awk")
def test_postprocessing_feeds_the_importer(tmp_path):
    text = _text()
    prog = text[text.index("<<'AWK'\n") + 8:text.index("\nAWK\n")]
    raw = tmp_path / "samples.raw"
    lines = []
    for s in range(1, 6):
        lines += _sample_block(s, 1_000_000 + s * 10_000,
                               [("P", 4096 * 10 * s, 4096 * 10 * s, "max"),
                                ("P/a", 4096 * 10 * s, 4096 * 10 * s, str(4096 * 100))])
    raw.write_text("\n".join(lines) + "\n")
    csv = tmp_path / "samples.csv"
    with open(csv, "w") as out:
        subprocess.run(["awk", "-v", "mnt=/sys/fs/cgroup", prog, str(raw)], stdout=out,
                       check=True)
    imp = import_samples(csv)
    assert imp.report.bad == []
    assert imp.recorded_usage.shape == (5, 3)
    spec = {c.path: c for c in imp.workload.cgroups}
    assert spec["/P/a"].max == 100 and spec["/P"].max is None
    assert imp.recorded_usage[:, 2].tolist() == [10, 20, 30, 40, 50]
