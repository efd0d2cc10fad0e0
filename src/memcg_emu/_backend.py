"""Pick the engine: the compiled ``_core`` unless ``MEMCG_EMU_PUREPYTHON=1`` or it is missing.

This is the only module that imports ``_core`` (docs/style.md item 2).
"""
from __future__ import annotations

import os

from . import _reference

if os.environ.get("MEMCG_EMU_PUREPYTHON") == "1":
    _core = None
else:
    try:
        from . import _core  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - depends on the build
        _core = None
# the compiled timed scheduler (timed.py's twin); it needs the compiled engine
_tsched = None
if _core is not None:
    try:
        from . import _tsched  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - depends on the build
        _tsched = None

BACKEND = "cython" if _core is not None else "python"


def engine_class(backend: str | None = None):
    """Return the Engine class for ``backend`` ("cython", "python" or None for the default)."""
    backend = backend or BACKEND
    if backend == "python":
        return _reference.Engine
    if backend == "cython":
        if _core is None:
            raise ImportError(
                "the compiled engine memcg_emu._core is not available "
                "(not built, or MEMCG_EMU_PUREPYTHON=1 is set)"
            )
        return _core.Engine
    raise ValueError(f"backend must be 'cython' or 'python', not {backend!r}")


def timed_scheduler(scheduler: str | None, engine) -> str:
    """Which timed scheduler runs on ``engine``: "cython" (memcg_emu._tsched) or "python"
    (timed.py's twin).  None picks the engine's own kind: the compiled scheduler on the
    compiled engine when it is built, the Python one otherwise."""
    compiled = _core is not None and isinstance(engine, _core.Engine)
    if scheduler is None:
        return "cython" if compiled and _tsched is not None else "python"
    if scheduler == "python":
        return "python"
    if scheduler == "cython":
        if not compiled:
            from .errors import InvalidArgumentError

            raise InvalidArgumentError(
                "TimedSim: scheduler = 'cython' needs the compiled engine (backend='cython'); "
                "the engine in use is the pure-Python one")
        if _tsched is None:
            raise ImportError("the compiled timed scheduler memcg_emu._tsched is not available "
                              "(not built)")
        return "cython"
    from .errors import InvalidArgumentError

    raise InvalidArgumentError(
        f"TimedSim: scheduler must be 'cython', 'python' or None, not {scheduler!r}")
