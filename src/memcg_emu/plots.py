"""Plots of timed-scenario results (matplotlib, the optional ``plot`` extra).

:func:`plot_scenario` draws, per policy (one column each), three stacked panels over
simulated time: usage vs ``memory.max`` of the scenario's limited cgroup, tasks in D state,
and the journal (locked 0/1, running handles).
"""
from __future__ import annotations

import numpy as np

from ._constants import PAGE_COUNTER_MAX, PAGE_SIZE

__all__ = ["plot_scenario"]

_PAGE_MIB = PAGE_SIZE / (1 << 20)
_BOX = {"facecolor": "white", "alpha": 0.8, "linewidth": 0}


def _pyplot():
    try:
        import matplotlib
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib: pip install 'memcg-emu[plot]'") from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _limited_cgroup(res) -> int:
    """Column of the scenario's limited cgroup (``summary['scenario_cgroup']``), else the
    first cgroup whose memory.max is set, else the root."""
    name = res.summary.get("scenario_cgroup")
    if name in res.cgroups:
        return res.cgroups.index(name)
    mx = res.series["max"]
    for j in range(1, len(res.cgroups)):
        if len(mx) and (mx[:, j] < PAGE_COUNTER_MAX).any():
            return j
    return 0


def plot_scenario(results: dict, path, title: str | None = None) -> None:
    """Write a PNG (or any format matplotlib infers from ``path``) comparing ``results``
    (``{policy: TimedResult}``, e.g. from :func:`memcg_emu.scenarios.run`)."""
    plt = _pyplot()
    policies = list(results)
    if not policies:
        raise ValueError("plot_scenario: no results")
    n = len(policies)
    fig, axes = plt.subplots(3, n, figsize=(5.2 * n, 8.5), sharex=True, squeeze=False)
    d_max = max(int(r.series["d_state_tasks"].max(initial=0)) for r in results.values())
    h_max = max(int(r.series["handles"].max(initial=0)) for r in results.values())
    for k, pol in enumerate(policies):
        r = results[pol]
        s = r.series
        t = s["time_ns"] / 1e6
        j = _limited_cgroup(r)
        cg = r.cgroups[j]
        usage = s["usage"][:, j] * _PAGE_MIB
        mx = s["max"][:, j]
        ax = axes[0, k]
        ax.plot(t, usage, color="tab:blue", lw=1.2, label=f"usage {cg}")
        if (mx < PAGE_COUNTER_MAX).any():
            ax.plot(t, np.where(mx < PAGE_COUNTER_MAX, mx, np.nan) * _PAGE_MIB,
                    color="tab:red", ls="--", lw=1.2, label="memory.max")
        ax.set_title(pol, fontsize=12, fontweight="bold")
        ax.set_ylabel("MiB")
        ax.legend(loc="lower right", fontsize=8)
        over = r.summary.get("over_max_peak_pages", 0)
        ax.text(0.02, 0.05, f"peak over max: {over:,} pages", transform=ax.transAxes,
                fontsize=8, bbox=_BOX)

        ax = axes[1, k]
        ax.plot(t, s["d_state_tasks"], color="tab:purple", lw=1.0)
        ax.set_ylabel("tasks in D state")
        ax.set_ylim(0, max(d_max, 1) * 1.05)
        ax.text(0.02, 0.9, f"{r.summary.get('d_state_task_seconds', 0):,.1f} task-s in D",
                transform=ax.transAxes, fontsize=8, bbox=_BOX)

        ax = axes[2, k]
        ax.fill_between(t, 0, s["journal_locked"] * max(h_max, 1), step="post",
                        color="tab:orange", alpha=0.3, label="transaction locked/committing")
        ax.plot(t, s["handles"], color="tab:green", lw=1.0, drawstyle="steps-post",
                label="running handles")
        ax.set_ylabel("journal")
        ax.set_ylim(0, max(h_max, 1) * 1.05)
        ax.set_xlabel("simulated time (ms)")
        ax.legend(loc="upper right", fontsize=8)
        ax.text(0.02, 0.9, f"longest locked: "
                f"{r.summary.get('journal_locked_max_ns', 0) / 1e6:,.1f} ms",
                transform=ax.transAxes, fontsize=8, bbox=_BOX)
    if title is None:
        name = next(iter(results.values())).summary.get("scenario")
        title = f"memcg-emu scenario {name}" if name else "memcg-emu timed simulation"
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
