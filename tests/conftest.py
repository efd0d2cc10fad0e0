"""Shared fixtures: every behavioural test runs on both engines."""
import os

import pytest

import memcg_emu

BACKENDS = ["python", "cython"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    if request.param == "cython" and memcg_emu.BACKEND != "cython":
        if os.environ.get("MEMCG_EMU_REQUIRE_EXT") == "1":
            pytest.fail("the compiled engine is required (MEMCG_EMU_REQUIRE_EXT=1) but "
                        "memcg_emu._core is not in use")
        pytest.skip("compiled engine not built")
    return request.param


@pytest.fixture
def make(backend):
    """make(policy="baseline", **kw) -> Emulator on the parametrized backend."""

    def _make(policy="baseline", **kw):
        return memcg_emu.Emulator(policy=policy, backend=backend, **kw)

    return _make
