"""The compiled engine must be the one in use when CI says so (docs/style.md item 3)."""
import os

import pytest

import memcg_emu


def test_backend_is_compiled_when_required():
    if os.environ.get("MEMCG_EMU_REQUIRE_EXT") != "1":
        pytest.skip("MEMCG_EMU_REQUIRE_EXT is not set")
    assert memcg_emu.BACKEND == "cython", (
        "memcg_emu._core did not build or is not the engine in use")
    emu = memcg_emu.Emulator()
    assert type(emu.engine.unchecked).__module__ == "memcg_emu._core"


def test_pure_python_override_selects_reference():
    if os.environ.get("MEMCG_EMU_PUREPYTHON") != "1":
        pytest.skip("MEMCG_EMU_PUREPYTHON is not set")
    assert memcg_emu.BACKEND == "python"
    assert type(memcg_emu.Emulator().engine.unchecked).__module__ == "memcg_emu._reference"


def test_timed_scheduler_is_compiled_when_required():
    if os.environ.get("MEMCG_EMU_REQUIRE_EXT") != "1":
        pytest.skip("MEMCG_EMU_REQUIRE_EXT is not set")
    from memcg_emu import _backend
    from memcg_emu.timed import TimedSim

    assert _backend._tsched is not None, "memcg_emu._tsched did not build"
    assert TimedSim().scheduler == "cython"
