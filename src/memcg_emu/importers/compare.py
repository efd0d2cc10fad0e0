"""Replay an imported workload and set the emulator's curves beside the recorded ones."""
from __future__ import annotations

import numpy as np

from .._constants import MEMORY_EVENTS_KEYS
from ._common import EVENT_KEYS, ImportedWorkload


def replay_imported(imp: ImportedWorkload, policy: str = "baseline",
                    backend: str | None = None, seed: int = 0, on_error: str = "count",
                    nr_cpus: int | None = None) -> dict:
    """Replay ``imp`` on a fresh emulator (``imp.workload.build``), stopping at every
    recorded sample to read memory.current and memory.events of every cgroup.

    Returns a dict: ``emu`` (the emulator at the end), ``usage`` [samples, cgroups] (pages,
    the emulator's), ``events`` [samples, cgroups, 6], ``skipped`` (per op/kind/reason),
    ``n_skipped``, ``counters`` (engine statistics summed over the run)."""
    wl = imp.workload
    emu = wl.build(policy=policy, backend=backend, seed=seed, nr_cpus=nr_cpus)
    ev = wl.events
    ends = imp.interval_end if imp.interval_end.size else np.array([ev.shape[0]])
    ns, nc = ends.shape[0], len(wl.paths)
    usage = np.zeros((ns, nc), np.int64)
    events = np.zeros((ns, nc, len(EVENT_KEYS)), np.int64)
    skipped: dict[str, int] = {}
    counters: dict[str, int] = {}
    start = 0
    st = emu.state
    for k, end in enumerate(ends):
        end = int(end)
        if end > start:
            res = emu.replay(ev[start:end], on_error=on_error)
            for key, n in res.skipped.items():
                skipped[key] = skipped.get(key, 0) + n
            for key, n in res.counters.items():
                counters[key] = counters.get(key, 0) + n
        usage[k] = st.usage[:nc]
        events[k] = st.events[:nc, :len(EVENT_KEYS)]
        start = end
    return {"emu": emu, "usage": usage, "events": events, "skipped": skipped,
            "n_skipped": sum(skipped.values()), "counters": counters}


def usage_error(imp: ImportedWorkload, usage: np.ndarray) -> dict[str, dict]:
    """Per recorded cgroup: mean and max absolute difference between the emulator's and the
    recorded memory.current over the samples where the cgroup was recorded, in pages and as
    a fraction of the recorded peak."""
    rec = imp.recorded_usage
    out = {}
    for c, path in enumerate(imp.workload.paths):
        if c == 0:
            continue
        m = rec[:, c] >= 0
        if not m.any():
            continue
        d = np.abs(usage[m, c] - rec[m, c])
        peak = int(rec[m, c].max())
        out[path] = {"samples": int(m.sum()), "recorded_peak": peak,
                     "emulated_peak": int(usage[m, c].max()),
                     "mean_abs_error": float(d.mean()), "max_abs_error": int(d.max()),
                     "mean_abs_error_of_peak": float(d.mean() / peak) if peak else 0.0,
                     "max_abs_error_of_peak": float(d.max() / peak) if peak else 0.0}
    return out


def events_side_by_side(imp: ImportedWorkload, events: np.ndarray) -> dict[str, dict]:
    """Final memory.events per cgroup: ``{path: {key: (recorded, emulated)}}`` (the last
    sample in which the cgroup was recorded)."""
    rec = imp.recorded_events
    out = {}
    for c, path in enumerate(imp.workload.paths):
        if c == 0 or rec.shape[0] == 0:
            continue
        m = np.nonzero(rec[:, c, 0] >= 0)[0]
        if m.size == 0:
            continue
        s = int(m[-1])
        out[path] = {key: (int(rec[s, c, i]), int(events[s, c, i]))
                     for i, key in enumerate(EVENT_KEYS)}
    return out


assert tuple(MEMORY_EVENTS_KEYS) == EVENT_KEYS
__all__ = ["replay_imported", "usage_error", "events_side_by_side"]
