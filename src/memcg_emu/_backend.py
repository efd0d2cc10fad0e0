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
