"""Policies as sets of kernel knobs.

A policy is a frozen set of named knobs.  Each knob is one decision in kernel code: the
PF_MEMALLOC_ACCOUNTFORCE v1 patch (mm: ``try_charge_memcg()`` hook,
``mem_cgroup_handle_over_max()``, ``memalloc_account_force_restore()``; jbd2:
``start_this_handle()``) or a difference between kernel versions.  Value 0 of every knob is the
unpatched or as-posted behaviour, so a fix is one knob value, not a new policy name.

The engines never see a policy name: :class:`Policy` becomes an int64 array
(``state.knobs``, indexed by :class:`~memcg_emu._constants.Knob`), which the compiled core
copies into a C struct when it binds (``_core.pxd``: ``emu_knobs_t``).

Presets
-------
``baseline``             v6.16 as released: every knob off.
``accountforce-v1``      the patch as posted (18 Jun 2025), both parts.
``legacy-dying-bypass``  5.15-era (before a4ebf1b6): dying tasks force their charges.
``accountforce-fixed``   the patch with every defect the emulator shows fixed (below).
``nofail-bypass``        an alternative from the review: flagged ``__GFP_NOFAIL`` charges
                         skip direct reclaim and OOM and are forced at once; nothing deferred.

Use a preset name, a :class:`Policy`, or ``"FILE.toml:NAME"`` wherever a policy goes
(``Emulator``, workloads, ``TimedSim``, scenarios, the CLI's ``--policy``).

Examples
--------
>>> p = Policy(base="baseline", accountforce="v1", over_max_oom_order="zero")
>>> p.knobs["accountforce"], p.knobs["over_max_cap"]
('v1', 'none')
>>> Policy(base="accountforce-v1").diff(PRESETS["accountforce-fixed"])["over_max_target"]
('mm', 'charged')

A TOML file holds one table per policy under ``[policy]``::

    [policy.v1-order0]
    base = "accountforce-v1"
    over_max_oom_order = "zero"
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ._constants import (AF_NOFAIL, AF_OFF, AF_V1, NR_KNOBS, OOM_REAPER_DELAY, RW_5X,
                         RW_CONGESTION_WAIT, RW_OFF, RW_V6, Knob)
from ._parse import read_toml
from .errors import InvalidConfigError

__all__ = ["Policy", "KnobSpec", "KNOBS", "PRESETS", "resolve_policy", "load_policies",
           "policy_names"]

_MAX_CAP = 1 << 40  # pages; keeps usage + nr_pages <= max + cap far from int64 overflow
_MAX_DELAY = 3600 * 1000  # jiffies (one hour)


@dataclass(frozen=True)
class KnobSpec:
    """One knob: its name, the kernel code it stands for, and its values.

    Attributes
    ----------
    name : str
    index : Knob
        Its slot in ``state.knobs``.
    kernel : str
        The kernel code it stands for.
    values : dict
        Named values -> (int stored in ``state.knobs``, what the value means).  Empty for an
        integer knob.
    int_range : tuple
        ``(lo, hi)`` for an integer knob; for ``over_max_cap`` the name ``"none"`` is 0.
    unit : str
        Unit of an integer knob.
    """

    name: str
    index: Knob
    kernel: str
    values: dict
    int_range: tuple = ()
    unit: str = ""

    def encode(self, value, where: str) -> int:
        """The int for ``value`` (a value name, or an int for integer knobs)."""
        if self.values:
            if isinstance(value, str) and value in self.values:
                return self.values[value][0]
            raise InvalidConfigError(
                f"{where}: knob {self.name!r} = {value!r} is not one of "
                f"{', '.join(repr(v) for v in self.values)}")
        lo, hi = self.int_range
        if self.name == "over_max_cap" and value == "none":
            return 0
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
                or not lo <= int(value) <= hi:
            extra = " or 'none'" if self.name == "over_max_cap" else ""
            raise InvalidConfigError(
                f"{where}: knob {self.name!r} = {value!r} must be an integer in "
                f"[{lo}, {hi}] ({self.unit}){extra}")
        return int(value)

    def decode(self, v: int):
        """The user-facing value (a value name, or the int)."""
        for name, (code, _) in self.values.items():
            if code == v:
                return name
        if self.name == "over_max_cap" and v == 0:
            return "none"
        return v


_AF = "PF_MEMALLOC_ACCOUNTFORCE hook"
KNOBS: dict[str, KnobSpec] = {k.name: k for k in (
    KnobSpec(
        "accountforce", Knob.ACCOUNTFORCE,
        "mm/memcontrol.c: try_charge_memcg(), the patch's hook after the PF_MEMALLOC check; "
        "resume_user_mode_work() -> mem_cgroup_handle_over_max(); fs/jbd2/transaction.c: "
        "start_this_handle() saves NOFS | ACCOUNTFORCE (patch 2/2)",
        {"off": (AF_OFF, "no hook, jbd2 saves NOFS only (unpatched)"),
         "v1": (AF_V1, "flagged charges are forced and counted in memcg_nr_pages_over_max, "
                       "repaid by mem_cgroup_handle_over_max() on return to user"),
         "nofail": (AF_NOFAIL, "flagged __GFP_NOFAIL charges skip direct reclaim and OOM and "
                               "are forced at once (what NOFAIL ends in anyway); other "
                               "charges take the normal path; nothing is deferred")}),
    KnobSpec(
        "accountforce_restore", Knob.ACCOUNTFORCE_RESTORE,
        "include/linux/sched/mm.h: memalloc_account_force_restore() (patch 1/2)",
        {"as-posted": (0, "takes no argument and clears the flag, so an inner scope's "
                          "restore unflags the outer scope"),
         "nesting-safe": (1, "memalloc_flags_restore(saved): clears only what the matching "
                             "save set")}),
    KnobSpec(
        "accountforce_nowait", Knob.ACCOUNTFORCE_NOWAIT,
        "mm/memcontrol.c: try_charge_memcg(), the hook's position before "
        "gfpflags_allow_blocking() and the __GFP_NORETRY / __GFP_RETRY_MAYFAIL checks",
        {"forced": (0, "every flagged charge is forced, even GFP_NOWAIT/ATOMIC, NORETRY and "
                       "RETRY_MAYFAIL ones (as posted)"),
         "refused": (1, "the hook takes only charges that may block and would loop to OOM; "
                        "fail-fast charges keep failing fast")}),
    KnobSpec(
        "accountforce_kthread", Knob.ACCOUNTFORCE_KTHREAD,
        "mm/memcontrol.c: try_charge_memcg() hook; kernel threads never run "
        "resume_user_mode_work()",
        {"deferred": (0, "kernel threads are forced and deferred like any task, and never "
                         "repay (as posted)"),
         "refused": (1, "PF_KTHREAD charges skip the v1 hook and take the normal path")}),
    KnobSpec(
        "accountforce_high", Knob.ACCOUNTFORCE_HIGH,
        "mm/memcontrol.c: try_charge_memcg(), `force:` returns before `done_restock:`'s "
        "memory.high check",
        {"skipped": (0, "deferred forced charges never arm memory.high throttling (as "
                        "posted)"),
         "armed": (1, "a deferred forced charge adds to memcg_nr_pages_over_high when over "
                      "high, as done_restock does (no synchronous reclaim in the scope)")}),
    KnobSpec(
        "over_max_cap", Knob.OVER_MAX_CAP,
        "mm/memcontrol.c: try_charge_memcg() hook (no bound in the patch)",
        {}, (0, _MAX_CAP), "pages; 'none' = unbounded (as posted); past the cap the flagged "
        "charge takes the normal path: reclaim, OOM, -ENOMEM or (NOFAIL) force"),
    KnobSpec(
        "over_max_target", Knob.OVER_MAX_TARGET,
        "mm/memcontrol.c: mem_cgroup_handle_over_max(): get_mem_cgroup_from_mm(current->mm)",
        {"mm": (0, "the memcg of current->mm at return to user (as posted): wrong for "
                   "set_active_memcg() remote charges, kmem via another objcg, migration"),
         "charged": (1, "the memcg the pages were forced into, remembered at the charge "
                        "(two memcgs: their nearest common ancestor)")}),
    KnobSpec(
        "over_max_reclaim", Knob.OVER_MAX_RECLAIM,
        "mm/memcontrol.c: mem_cgroup_handle_over_max()'s reclaim loop",
        {"as-posted": (0, "asks for the full n every call, never re-checks max, no stock "
                          "drain, 17 zero-progress calls"),
         "excess": (1, "memory_max_write()'s loop: drain_all_stock() once, then reclaim "
                       "usage - max, re-checked before each call, MAX_RECLAIM_RETRIES "
                       "zero-progress calls")}),
    KnobSpec(
        "over_max_dying", Knob.OVER_MAX_DYING,
        "mm/memcontrol.c: mem_cgroup_handle_over_max() (no fatal-signal check)",
        {"ignored": (0, "a dying task keeps looping reclaim -> OOM (as posted)"),
         "exit": (1, "each pass starts with task_is_dying(), as mem_cgroup_handle_over_high() "
                     "does")}),
    KnobSpec(
        "over_max_oom_order", Knob.OVER_MAX_OOM_ORDER,
        "mm/memcontrol.c: mem_cgroup_handle_over_max() -> mem_cgroup_oom(over, gfp, order)",
        {"as-posted": (0, "get_order(remaining deficit): above 8 pages mem_cgroup_oom() "
                          "refuses (order > PAGE_ALLOC_COSTLY_ORDER)"),
         "zero": (1, "order 0, as memory_max_write()'s OOM: the pages are already charged")}),
    KnobSpec(
        "dying_bypass", Knob.DYING_BYPASS,
        "mm/memcontrol.c before a4ebf1b6 (\"memcg: prohibit unconditional exceeding the limit "
        "of dying tasks\"): should_force_charge() in try_charge_memcg() and "
        "mem_cgroup_out_of_memory(); OOM failure forces",
        {"off": (0, "v6.x"),
         "5.15": (1, "dying and OOM-killed tasks force their charges; a failed OOM (no "
                     "victim) forces")}),
    KnobSpec(
        "oom_reaper_delay", Knob.OOM_REAPER_DELAY,
        "mm/oom_kill.c: queue_oom_reaper(): the victim is reaped OOM_REAPER_DELAY after the "
        "kill (2*HZ since \"oom_kill.c: futex: delay the OOM reaper to allow time for "
        "proper futex cleanup\", v5.18; 0 before); timed simulation only",
        {}, (0, _MAX_DELAY), "jiffies = ms"),
    KnobSpec(
        "reclaim_wait", Knob.RECLAIM_WAIT,
        "mm/vmscan.c: shrink_node(): a cgroup reclaim pass whose dirty folios were all under "
        "writeback and already marked for reclaim (nr.dirty == nr.congested) tags the lruvec "
        "congested, and the direct reclaimer sleeps; timed simulation only",
        {"v6": (RW_V6, "v5.16+: reclaim_throttle(VMSCAN_THROTTLE_CONGESTED): 1 jiffy in D "
                       "state, skipped (skip_throttle_noprogress()) while the node's "
                       "write-pending pages are at most half its reclaimable pages"),
         "5.x": (RW_5X, "5.15: wait_iff_congested(BLK_RW_ASYNC, HZ/10), which sleeps only "
                        "while a bdi is marked congested; blk-mq devices never are, so it "
                        "only yields"),
         "congestion-wait": (RW_CONGESTION_WAIT, "congestion_wait(BLK_RW_ASYNC, HZ/10): "
                                                 "100 ms in D state whenever the lruvec is "
                                                 "congested (5.x's other sleep, for "
                                                 "experiments)"),
         "off": (RW_OFF, "reclaim never sleeps (the model before this knob)")}),
)}

assert [k.index for k in KNOBS.values()] == list(range(NR_KNOBS))


class Policy:
    """A frozen set of kernel knobs (see :data:`KNOBS`).

    Parameters
    ----------
    base : str or Policy
        The preset (or policy) the unnamed knobs come from (default ``"baseline"``).
    name : str, optional
        Label used in tables and results (default: the base's name if no knob differs,
        else ``"<base>+<knob>=<value>..."``).
    **knobs
        Knob values by name: a value name (``accountforce="v1"``), or an int for
        ``over_max_cap`` (pages; ``"none"`` for no cap) and ``oom_reaper_delay`` (jiffies).

    Raises
    ------
    InvalidConfigError
        An unknown base, knob name or value (the message names the knob and the allowed
        values).

    Examples
    --------
    >>> Policy(base="accountforce-v1", over_max_cap=2048).knobs["over_max_cap"]
    2048
    """

    __slots__ = ("name", "_values")

    def __init__(self, base="baseline", name: str | None = None, **knobs):
        where = "Policy()"
        if isinstance(base, Policy):
            values = list(base._values)
            base_name = base.name
        elif isinstance(base, str) and base in PRESETS:
            values = list(PRESETS[base]._values)
            base_name = base
        else:
            raise InvalidConfigError(
                f"{where}: base {base!r} is not a preset ({', '.join(PRESETS)}) or a Policy")
        for key, value in knobs.items():
            spec = KNOBS.get(key)
            if spec is None:
                raise InvalidConfigError(
                    f"{where}: unknown knob {key!r}; knobs are {', '.join(KNOBS)}")
            values[spec.index] = spec.encode(value, where)
        if name is None:
            changed = [f"{k}={KNOBS[k].decode(values[KNOBS[k].index])}" for k in knobs
                       if values[KNOBS[k].index] != _preset_value(base, KNOBS[k].index)]
            name = base_name + ("+" + ",".join(changed) if changed else "")
        if not isinstance(name, str) or not name:
            raise InvalidConfigError(f"{where}: name must be a non-empty string, not {name!r}")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "_values", tuple(values))

    @classmethod
    def _raw(cls, name: str, values) -> "Policy":
        self = cls.__new__(cls)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "_values", tuple(int(v) for v in values))
        return self

    def __setattr__(self, key, value):
        raise AttributeError("Policy is frozen; make a new one with Policy(base=...)")

    def __eq__(self, other):
        return isinstance(other, Policy) and self._values == other._values

    def __hash__(self):
        return hash(self._values)

    def __repr__(self):
        return f"Policy({self.name!r}: {', '.join(f'{k}={v!r}' for k, v in self.knobs.items())})"

    def __str__(self):
        return self.name

    @property
    def knobs(self) -> dict:
        """Knob name -> value (value names; ints for integer knobs)."""
        return {k: s.decode(self._values[s.index]) for k, s in KNOBS.items()}

    def __getitem__(self, knob: str):
        if knob not in KNOBS:
            raise KeyError(knob)
        return KNOBS[knob].decode(self._values[KNOBS[knob].index])

    def as_array(self) -> np.ndarray:
        """The int64 array the engines read (``state.knobs``)."""
        return np.array(self._values, dtype=np.int64)

    def diff(self, other: "Policy") -> dict:
        """Knob name -> (this value, other value) for the knobs that differ."""
        other = resolve_policy(other)
        return {k: (self[k], other[k]) for k, s in KNOBS.items()
                if self._values[s.index] != other._values[s.index]}

    def to_toml(self) -> str:
        """This policy as a ``[policy.NAME]`` TOML table (every knob spelled out)."""
        lines = [f'[policy."{self.name}"]', 'base = "baseline"']
        for k, v in self.knobs.items():
            lines.append(f"{k} = {v!r}".replace("'", '"') if isinstance(v, str)
                         else f"{k} = {v}")
        return "\n".join(lines) + "\n"


def _preset_value(base, index: int) -> int:
    b = base if isinstance(base, Policy) else PRESETS[base]
    return b._values[index]


def _make(name: str, **knobs) -> Policy:
    values = [0] * NR_KNOBS
    values[Knob.OOM_REAPER_DELAY] = OOM_REAPER_DELAY
    for k, v in knobs.items():
        values[KNOBS[k].index] = KNOBS[k].encode(v, f"preset {name}")
    return Policy._raw(name, values)


#: The presets.  The first three reproduce the former hard-wired policies exactly.
PRESETS: dict[str, Policy] = {}
PRESETS["baseline"] = _make("baseline")
PRESETS["accountforce-v1"] = _make("accountforce-v1", accountforce="v1")
# 5.15: no OOM_REAPER_DELAY (v5.18), no reclaim_throttle() (v5.16)
PRESETS["legacy-dying-bypass"] = _make("legacy-dying-bypass", dying_bypass="5.15",
                                       oom_reaper_delay=0, reclaim_wait="5.x")
# Every defect of the v1 patch the emulator shows, fixed (README: "Policies as knobs" says
# why each value was chosen).
PRESETS["accountforce-fixed"] = _make(
    "accountforce-fixed", accountforce="v1", accountforce_restore="nesting-safe",
    accountforce_nowait="refused", accountforce_kthread="refused", accountforce_high="armed",
    over_max_cap=1024, over_max_target="charged", over_max_reclaim="excess",
    over_max_dying="exit", over_max_oom_order="zero")
PRESETS["nofail-bypass"] = _make("nofail-bypass", accountforce="nofail")


def policy_names() -> list[str]:
    """The preset names."""
    return list(PRESETS)


def load_policies(path) -> dict[str, Policy]:
    """Read every ``[policy.NAME]`` table of a TOML file.

    Each table has an optional ``base`` (a preset, or a policy defined earlier in the same
    file; default ``"baseline"``) and knob values.

    Raises
    ------
    InvalidFileError
        The file is missing or is not valid TOML (names the file).
    InvalidConfigError
        A table names an unknown base, knob or value (names the file, the table and the knob).
    """
    path = os.fspath(path)
    doc = read_toml(path)
    extra = sorted(set(doc) - {"policy"})
    if extra:
        raise InvalidConfigError(f"{path}: unknown top-level key(s) {extra}; policies go in "
                                 f"[policy.NAME] tables")
    tables = doc.get("policy", {})
    if not isinstance(tables, dict):
        raise InvalidConfigError(f"{path}: 'policy' must be a table of [policy.NAME] tables")
    out: dict[str, Policy] = {}
    for name, table in tables.items():
        where = f"{path}: [policy.{name}]"
        if not isinstance(table, dict):
            raise InvalidConfigError(f"{where} must be a table")
        table = dict(table)
        base = table.pop("base", "baseline")
        if isinstance(base, str) and base in out:
            base = out[base]
        try:
            out[name] = Policy(base=base, name=name, **table)
        except InvalidConfigError as exc:
            raise InvalidConfigError(f"{where}: {str(exc).removeprefix('Policy(): ')}") from None
    return out


def resolve_policy(policy, where: str = "policy") -> Policy:
    """A :class:`Policy` from a Policy, a preset name, or ``"FILE.toml:NAME"``.

    Raises
    ------
    InvalidConfigError, InvalidFileError
        Unknown preset, a file without that policy, or a bad file.
    """
    if isinstance(policy, Policy):
        return policy
    if isinstance(policy, str):
        if policy in PRESETS:
            return PRESETS[policy]
        path, sep, name = policy.rpartition(":")
        if sep and path.endswith(".toml"):
            pols = load_policies(path)
            if name not in pols:
                raise InvalidConfigError(f"{where}: {path} defines no policy {name!r} "
                                         f"(it has {', '.join(pols) or 'none'})")
            return pols[name]
    raise InvalidConfigError(f"{where}: policy must be one of {sorted(PRESETS)}, a Policy, "
                             f"or 'FILE.toml:NAME', not {policy!r}")
