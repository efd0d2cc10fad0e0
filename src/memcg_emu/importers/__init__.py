"""Importers: a user's own recordings as replayable workloads.

* :func:`import_samples`: cgroupfs samples (memory.current / memory.stat / memory.events
  every few ms, ``samples.csv`` of the capture script) -> charge/uncharge events per cgroup
  and page kind, with the recorded memory.current and memory.events kept for comparison;
* :func:`import_trace`: a tracefs kprobe/tracepoint trace (``trace.txt`` + ``memcg_map.txt``)
  -> charge/uncharge events per task, with reclaim and OOM marks as annotations;
* :func:`capture_script_path`: the capture script (POSIX sh) that records both.

``memcg-emu import samples|trace FILE... -o OUT.npz`` runs them from the command line; the
result replays with ``memcg-emu replay --input OUT.npz``.
"""
from __future__ import annotations

from importlib import resources

from ._common import (
    ANNOTATION_DTYPE,
    ANNOTATION_NAMES,
    BadLine,
    ImportedWorkload,
    LineReport,
    apply_limits,
    limit_overrides,
    load_imported,
    save_imported,
)
from .compare import events_side_by_side, replay_imported, usage_error
from .samples import import_samples


def import_trace(*args, **kwargs):
    from .trace import import_trace as _it

    return _it(*args, **kwargs)


def capture_script_path() -> str:
    """Path of the shipped capture script ``memcg-capture.sh``."""
    return str(resources.files(__name__).joinpath("memcg-capture.sh"))


__all__ = ["ANNOTATION_DTYPE", "ANNOTATION_NAMES", "BadLine", "ImportedWorkload",
           "LineReport", "apply_limits", "capture_script_path", "events_side_by_side",
           "import_samples", "import_trace", "limit_overrides", "load_imported",
           "replay_imported", "save_imported", "usage_error"]
