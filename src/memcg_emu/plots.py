"""Plots of timed-scenario results (matplotlib, the optional ``plot`` extra).

:func:`plot_scenario` draws, per policy (one column each), stacked panels over simulated
time: usage - ``memory.max`` of the scenario's limited cgroup, its anon/file/dirty/writeback
pages, reclaim scanned vs reclaimed, OOM kills with the tasks alive, tasks in D state by what
they wait on, and the journal (locked, running handles).
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


_ROWS = ("over", "pool", "reclaim", "kills", "dstate", "journal")
_WAIT_COLORS = {"journal": "tab:orange", "mmap_lock": "tab:blue", "rwsem": "tab:green",
                "mutex": "tab:brown", "reclaim_throttle": "tab:red"}


def _end_label(ax, t, y, text, color):
    """Name a line at its right end (no legend box over the data)."""
    if len(t):
        ax.annotate(text, (t[-1], y[-1]), xytext=(4, 0), textcoords="offset points",
                    color=color, fontsize=7, va="center", annotation_clip=False)


def plot_scenario(results: dict, path, title: str | None = None) -> None:
    """Write a PNG (or any format matplotlib infers from ``path``) comparing ``results``
    (``{policy: TimedResult}``, e.g. from :func:`memcg_emu.scenarios.run`).

    One column per policy; rows over simulated time: usage - memory.max of the limited
    cgroup (pages, its own axis: the overshoot is never hidden under the limit), the cgroup's
    anon / file / dirty / writeback pages, reclaim scanned vs reclaimed per sample period,
    OOM kills (cumulative) with the cgroup's tasks alive, tasks in D state by wait reason
    (stacked), and the journal (locked, running handles).  Lines are named at their right
    end, not in a legend box.  Sample the run at a period that does not divide the commit
    interval (the scenarios' default 7 ms against 200 ms), or the locked phases alias.
    """
    from ._constants import PageKind

    plt = _pyplot()
    policies = list(results)
    if not policies:
        raise ValueError("plot_scenario: no results")
    n = len(policies)
    fig, axes = plt.subplots(len(_ROWS), n, figsize=(5.6 * n, 15), sharex=True,
                             squeeze=False)
    for k, pol in enumerate(policies):
        r = results[pol]
        s = r.series
        t = s["time_ns"] / 1e6
        j = _limited_cgroup(r)
        cg = r.cgroups[j]
        mx = s["max"][:, j]
        limited = mx < PAGE_COUNTER_MAX
        axes[0, k].set_title(pol, fontsize=12, fontweight="bold")

        ax = axes[0, k]
        over = np.where(limited, s["usage"][:, j] - mx, np.nan)
        ax.axhline(0, color="tab:red", ls="--", lw=1.0)
        ax.plot(t, over, color="tab:blue", lw=1.0)
        ax.set_ylabel(f"{cg}: usage - max\n(pages)")
        ax.text(0.02, 0.9, f"peak {r.summary.get('over_max_peak_pages', 0):,} pages over, "
                f"{r.summary.get('over_max_page_seconds', 0):,.1f} page-s",
                transform=ax.transAxes, fontsize=8, bbox=_BOX)

        ax = axes[1, k]
        if "pool" in s and len(s["pool"]):
            for kind, color in ((PageKind.ANON, "tab:purple"), (PageKind.FILE, "tab:green"),
                                (PageKind.FILE_DIRTY, "tab:orange"),
                                (PageKind.FILE_WRITEBACK, "tab:red"),
                                (PageKind.KERNEL, "tab:gray")):
                y = s["pool"][:, j, int(kind)]
                ax.plot(t, y, color=color, lw=1.0)
                _end_label(ax, t, y, kind.name.lower(), color)
        ax.set_ylabel(f"{cg} pages")

        ax = axes[2, k]
        for key, color in (("reclaim_scanned", "tab:blue"), ("reclaim_reclaimed", "tab:green")):
            if key in s and len(s[key]):
                y = np.diff(s[key], prepend=0)
                ax.plot(t, y, color=color, lw=0.8, drawstyle="steps-post")
                _end_label(ax, t, y, key.split("_")[1], color)
        ax.set_ylabel("reclaim (pages /\nsample period)")

        ax = axes[3, k]
        ax.plot(t, s["oom_kills"], color="tab:red", lw=1.0, drawstyle="steps-post")
        _end_label(ax, t, s["oom_kills"], "OOM kills", "tab:red")
        ax.set_ylabel("OOM kills (cumulative)")
        if "tasks_alive" in s and len(s["tasks_alive"]):
            ax2 = ax.twinx()
            alive = s["tasks_alive"][:, j]
            ax2.plot(t, alive, color="tab:gray", lw=1.0)
            ax2.set_ylim(0, max(int(alive.max(initial=0)), 1) * 1.05)
            ax2.set_ylabel(f"tasks alive in {cg}", color="tab:gray")

        ax = axes[4, k]
        if "d_state_by_wait" in s and len(s["d_state_by_wait"]):
            from .timed import WAIT_NAMES

            ys = [s["d_state_by_wait"][:, w] for w in range(len(WAIT_NAMES))]
            ax.stackplot(t, *ys, colors=[_WAIT_COLORS[w] for w in WAIT_NAMES], step="post")
            top = np.cumsum(ys, axis=0)
            for w, name in enumerate(WAIT_NAMES):
                if ys[w].any():
                    _end_label(ax, t, top[w], name, _WAIT_COLORS[name])
        else:
            ax.plot(t, s["d_state_tasks"], color="tab:purple", lw=1.0)
        ax.set_ylabel("tasks in D state")
        ax.text(0.02, 0.9, f"{r.summary.get('d_state_task_seconds', 0):,.1f} task-s in D",
                transform=ax.transAxes, fontsize=8, bbox=_BOX)

        ax = axes[5, k]
        h_max = max(int(s["handles"].max(initial=0)), 1)
        ax.fill_between(t, 0, s["journal_locked"] * h_max, step="post", color="tab:orange",
                        alpha=0.3)
        ax.plot(t, s["handles"], color="tab:green", lw=1.0, drawstyle="steps-post")
        _end_label(ax, t, s["handles"], "handles", "tab:green")
        ax.set_ylabel("journal: running handles\n(shaded: T_LOCKED)")
        ax.set_xlabel("simulated time (ms)")
        ax.text(0.02, 0.9, f"longest locked: "
                f"{r.summary.get('journal_locked_max_ns', 0) / 1e6:,.1f} ms",
                transform=ax.transAxes, fontsize=8, bbox=_BOX)
    if title is None:
        name = next(iter(results.values())).summary.get("scenario")
        title = f"memcg-emu scenario {name}" if name else "memcg-emu timed simulation"
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
