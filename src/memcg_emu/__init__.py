"""memcg-emu: a fast, faithful emulator of the Linux memory-cgroup charge path.

The public surface: :class:`Emulator` (the step API), the kernel constants (``GFP_*``,
``__GFP_*``, ``PF_*``, ``MEMCG_*`` events) with kernel values, and ``BACKEND`` naming the
engine in use ("cython" or "python"); :class:`Policy` (kernel variants as sets of knobs,
:mod:`memcg_emu.policy`).
"""
from . import _constants
from ._backend import BACKEND
from ._constants import (
    Cfg,
    Label,
    EMU_LIVELOCK,
    ENOMEM,
    PAGE_SIZE,
    MemcgEvent,
    Knob,
    PageKind,
    Site,
    Stat,
    TaskState,
)
from ._state import MemcgState
from .policy import PRESETS, Policy
from .sim import Emulator, PeakFile, Task, TaskView

__version__ = "0.1.0"

# Submodules load on first use, so ``import memcg_emu`` stays light and
# ``memcg_emu.scenarios.run(...)`` works after it.
_SUBMODULES = ("cli", "errors", "events", "io", "plots", "replay", "scenarios", "timed",
               "workloads")


def __getattr__(name):
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

# Kernel constants with kernel values: GFP_*, __GFP_*, PF_*, MEMCG_* events, limits, OUT_*.
_EXPORT_PREFIXES = ("GFP_", "__GFP_", "PF_", "MEMCG_", "OUT_", "NR_", "MAX_", "PAGE_",
                    "SWAP_CLUSTER", "OOM_", "DEF_PRIORITY", "HZ", "E")
CONSTANTS = [n for n in dir(_constants) if n.isupper() or n.startswith("__GFP_")]
CONSTANTS = [n for n in CONSTANTS if n.startswith(_EXPORT_PREFIXES) and n != "E"]
globals().update({n: getattr(_constants, n) for n in CONSTANTS})

__all__ = [
    "BACKEND",
    "Cfg",
    "Label",
    "EMU_LIVELOCK",
    "ENOMEM",
    "PAGE_SIZE",
    "Emulator",
    "MemcgEvent",
    "MemcgState",
    "PageKind",
    "Knob",
    "PeakFile",
    "Policy",
    "PRESETS",
    "Site",
    "Stat",
    "Task",
    "TaskState",
    "TaskView",
    "__version__",
    *CONSTANTS,
]
