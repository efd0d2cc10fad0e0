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


@pytest.fixture(params=["default", "python"])
def both_schedulers(request, monkeypatch):
    """Run a timed test on each timed scheduler: the default one (the compiled scheduler on
    the compiled engine) and, on the compiled engine, the Python reference twin too
    (``TimedSim(scheduler=None)`` then means "python")."""
    if request.param == "python":
        from memcg_emu import _backend

        real = _backend.timed_scheduler
        monkeypatch.setattr(_backend, "timed_scheduler",
                            lambda scheduler, engine: real(scheduler or "python", engine))
    return request.param


def pytest_collection_modifyitems(config, items):
    """Drop the both_schedulers="python" copy of a test on the Python engine: that engine
    always runs the Python scheduler, so it would repeat the "default" one."""
    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("both_schedulers") == "python" and params.get("backend") == "python":
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
