"""The README's code blocks run as written, each on its own (a fresh namespace, nothing
imported beforehand); shell blocks are checked by ``bash -n`` (running them installs the
package, which is .ci/run's job)."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```(\w*)\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S)
PYTHON = [(i, code) for i, (lang, code) in enumerate(BLOCKS) if lang == "python"]
SHELL = [(i, code) for i, (lang, code) in enumerate(BLOCKS) if lang in ("sh", "bash")]


def test_the_readme_has_blocks():
    assert len(PYTHON) >= 4 and len(SHELL) >= 2


@pytest.mark.parametrize("index, code", PYTHON, ids=[f"python-block-{i}" for i, _ in PYTHON])
def test_python_block_runs_on_its_own(index, code):
    exec(compile(code, f"README.md block {index}", "exec"), {"__name__": "__readme__"})


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
@pytest.mark.parametrize("index, code", SHELL, ids=[f"shell-block-{i}" for i, _ in SHELL])
def test_shell_block_parses(index, code):
    r = subprocess.run(["bash", "-n"], input=code, text=True, capture_output=True)
    assert r.returncode == 0, r.stderr


def test_first_two_commands_are_the_install_and_test_commands():
    assert SHELL[0][1].strip() == "python -m pip install . && memcg-emu"
    ci = (README.parent / ".ci" / "run").read_text()
    assert SHELL[1][1].strip() in ci
