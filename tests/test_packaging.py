"""Packaging: the sdist is complete (a wheel builds from it alone), carries the license, and
the metadata says MIT with an SPDX expression.  Building compiles the core (about a minute),
so it runs only with MEMCG_EMU_TEST_PACKAGING=1 (.ci/run sets it)."""
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.packaging,
    pytest.mark.skipif(os.environ.get("MEMCG_EMU_TEST_PACKAGING") != "1",
                       reason="set MEMCG_EMU_TEST_PACKAGING=1 (slow: builds sdist and wheel)"),
]


def test_sdist_builds_a_wheel(tmp_path):
    out = tmp_path / "dist"
    # sdist first, then the wheel from the unpacked sdist (what `python -m build` does)
    subprocess.run([sys.executable, "-m", "build", "--sdist", "--outdir", str(out), str(ROOT)],
                   check=True, capture_output=True, timeout=900)
    (sdist,) = out.glob("memcg_emu-*.tar.gz")
    with tarfile.open(sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
        pkg_info = tf.extractfile(f"{tf.getnames()[0].split('/')[0]}/PKG-INFO").read().decode()
    for need in ("LICENSE", "README.md", "setup.py", "pyproject.toml",
                 "src/memcg_emu/_core.pyx", "src/memcg_emu/_core.pxd",
                 "src/memcg_emu/errors.py"):
        assert need in names, need
    assert not any(n.endswith(".so") for n in names)
    assert "License-Expression: MIT" in pkg_info
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(sdist)],
                   check=True, capture_output=True, timeout=900)
    (wheel,) = out.glob("memcg_emu-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        wnames = zf.namelist()
    assert any(n.startswith("memcg_emu/_core.") and n.endswith(".so") for n in wnames)
    for mod in ("_tbase", "_tlocking", "_tjbd2", "_twriteback", "_treaper", "_tsched"):
        assert f"src/memcg_emu/{mod}.pyx" in names and f"src/memcg_emu/{mod}.pxd" in names
        assert any(n.startswith(f"memcg_emu/{mod}.") and n.endswith(".so") for n in wnames), mod
    assert any(n.endswith("licenses/LICENSE") for n in wnames)
    assert "memcg_emu/_checked.py" in wnames
    for mod in ("__init__", "base", "sched", "locking", "jbd2", "writeback", "reaper"):
        # the timed engine's Python twin (the pure-Python fallback needs it)
        assert f"src/memcg_emu/_timed_ref/{mod}.py" in names, mod
        assert f"memcg_emu/_timed_ref/{mod}.py" in wnames, mod
