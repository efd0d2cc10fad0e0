"""``Emulator.engine``: the engine behind a checking proxy.

The engines trust their caller: the compiled one runs without bounds checks, so an index out
of range (a task or cgroup that does not exist, a page kind past the pool row) reads or writes
outside the state arrays.  The step API and replay validate before they call the engine and use
the engine directly (``Emulator._engine``).  A user who reaches for the engine itself gets this
proxy: each method validates its arguments against the current state (indices in range and
online, kinds valid for the operation, page counts within :data:`~memcg_emu.errors.
MAX_NR_PAGES` and the machine total within :data:`~memcg_emu.errors.MAX_TOTAL_PAGES`, a task
that runs is not exited, a step continues a path that was started) and then calls the real
engine with the same arguments, so results are the engine's.  Bad input raises
:class:`~memcg_emu.errors.InvalidArgumentError` (or :class:`~memcg_emu.errors.
InvalidEventError` for ``replay_loop``) naming the method, the argument and the reason.

``unchecked`` is the engine itself, for code that has validated its input (no checks at all).
"""
from __future__ import annotations

import numpy as np

from ._constants import (
    DEF_PRIORITY,
    GFP_MASK_ALL,
    NR_KINDS,
    NR_MEM_KINDS,
    NR_MEMCG_EVENTS,
    PAGE_COUNTER_MAX,
    PF_MASK_ALL,
    PageKind,
    TaskState,
)
from .errors import (MAX_NR_PAGES, MAX_TOTAL_PAGES, InvalidArgumentError, InvalidEventError,
                     LimitError)
from .events import EVENT_DTYPE

_I64 = (-(1 << 63), (1 << 63) - 1)
_CHARGEABLE = (PageKind.ANON, PageKind.FILE, PageKind.FILE_DIRTY, PageKind.KERNEL,
               PageKind.UNEVICTABLE)
_IDLE = 0  # Label.IDLE


class CheckedEngine:
    """Validates every argument against the emulator's state, then delegates to the engine.
    See the module docstring; method signatures are the engine's (``memcg_emu/_core.pyi``)."""

    __slots__ = ("_emu",)

    def __init__(self, emu):
        self._emu = emu

    def __repr__(self) -> str:
        return f"CheckedEngine({type(self.unchecked).__module__}.Engine)"

    @property
    def unchecked(self):
        """The engine itself: no validation, undefined behaviour on bad indices."""
        return self._emu._engine

    @property
    def st(self):
        return self._emu.state

    def __getattr__(self, name):
        raise AttributeError(f"engine.{name}: not part of the checked engine interface (the "
                             f"unchecked engine is engine.unchecked)")

    # ---- argument checks -----------------------------------------------------------------------
    @staticmethod
    def _int(call, value, field, lo, hi) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise InvalidArgumentError(f"engine.{call}: {field} must be an int, not "
                                       f"{type(value).__name__}")
        value = int(value)
        if not lo <= value <= hi:
            raise InvalidArgumentError(f"engine.{call}: {field} = {value} out of range "
                                       f"[{lo}, {hi}]")
        return value

    def _task(self, call, t, *, live=True, field="t") -> int:
        st = self._emu.state
        t = self._int(call, t, field, 0, _I64[1])
        if t >= st.n_tasks:
            raise InvalidArgumentError(f"engine.{call}: {field} = {t}: no such task (have "
                                       f"{st.n_tasks})")
        if live and int(st.state[t]) == TaskState.EXITED:
            raise InvalidArgumentError(f"engine.{call}: {field} = {t}: the task has exited")
        return t

    def _cg(self, call, m, *, none_ok=False, root_ok=True, field="memcg") -> int:
        st = self._emu.state
        m = self._int(call, m, field, _I64[0], _I64[1])
        if none_ok and m == -1:
            return m
        lo = 0 if root_ok else 1
        if not lo <= m < st.n_cgroups:
            raise InvalidArgumentError(
                f"engine.{call}: {field} = {m}: no such cgroup (valid: "
                f"{'-1, ' if none_ok else ''}{lo}..{st.n_cgroups - 1})")
        if not int(st.online[m]):
            raise InvalidArgumentError(f"engine.{call}: {field} = {m} is a removed cgroup")
        return m

    def _pages(self, call, nr, field="nr_pages", lo=1, hi=MAX_NR_PAGES) -> int:
        return self._int(call, nr, field, lo, hi)

    def _kind(self, call, kind, allowed, field="kind") -> int:
        kind = self._int(call, kind, field, _I64[0], _I64[1])
        if kind not in allowed:
            raise InvalidArgumentError(f"engine.{call}: {field} = {kind} is not one of "
                                       f"{[int(k) for k in allowed]}")
        return kind

    def _total(self, call, nr) -> None:
        usage = int(self._emu.state.usage[0])
        if usage + nr > MAX_TOTAL_PAGES:
            raise LimitError(f"engine.{call}: nr_pages = {nr} on top of the {usage} pages held "
                             f"would pass MAX_TOTAL_PAGES = 2**46 (memcg_emu.errors)")

    def _idle(self, call, t) -> None:
        if int(self._emu.state.tc_label[t]) != _IDLE:
            raise InvalidArgumentError(f"engine.{call}: task {t} is in the middle of a charge "
                                       f"path (charge_step it to DONE first)")

    @property
    def _e(self):
        return self._emu._engine

    # ---- charge / uncharge -----------------------------------------------------------------------
    def _charge_args(self, call, t, nr_pages, gfp, kind, memcg):
        t = self._task(call, t)
        if int(self._emu.state.state[t]) == TaskState.BLOCKED:
            raise InvalidArgumentError(f"engine.{call}: t = {t}: the task is blocked (D state)")
        self._idle(call, t)
        nr_pages = self._pages(call, nr_pages)
        gfp = self._int(call, gfp, "gfp", 0, GFP_MASK_ALL)
        kind = self._kind(call, kind, _CHARGEABLE)
        memcg = self._cg(call, memcg, none_ok=True)
        self._total(call, nr_pages)
        return t, nr_pages, gfp, kind, memcg

    def charge(self, t, nr_pages, gfp, kind, memcg):
        return self._e.charge(*self._charge_args("charge", t, nr_pages, gfp, kind, memcg))

    def charge_start(self, t, nr_pages, gfp, kind, memcg):
        return self._e.charge_start(*self._charge_args("charge_start", t, nr_pages, gfp, kind,
                                                       memcg))

    def charge_step(self, t):
        t = self._task("charge_step", t)
        if int(self._emu.state.tc_label[t]) == _IDLE:
            raise InvalidArgumentError(f"engine.charge_step: task {t} has no charge path in "
                                       f"progress (charge_start returned DONE or was not "
                                       f"called)")
        return self._e.charge_step(t)

    def uncharge(self, t, nr_pages, kind, memcg):
        st = self._emu.state
        t = self._int("uncharge", t, "t", -1, _I64[1])
        if t >= 0:
            t = self._task("uncharge", t, live=False)
        nr_pages = self._pages("uncharge", nr_pages)
        kind = self._kind("uncharge", kind, range(NR_KINDS))
        memcg = self._cg("uncharge", memcg, none_ok=t >= 0)
        if t >= 0 and memcg < 0 and int(st.state[t]) == TaskState.EXITED:
            raise InvalidArgumentError("engine.uncharge: an exited task has no target to "
                                       "resolve; pass memcg")
        return self._e.uncharge(t, nr_pages, kind, memcg)

    def emu_move_pages(self, memcg, src, dst, nr_pages):
        memcg = self._cg("emu_move_pages", memcg)
        src = self._kind("emu_move_pages", src, range(NR_MEM_KINDS), "src")
        dst = self._kind("emu_move_pages", dst, range(NR_MEM_KINDS), "dst")
        nr_pages = self._pages("emu_move_pages", nr_pages)
        return self._e.emu_move_pages(memcg, src, dst, nr_pages)

    def emu_charge_target(self, t, kind):
        t = self._task("emu_charge_target", t, live=False)
        kind = self._kind("emu_charge_target", kind, range(NR_KINDS))
        return self._e.emu_charge_target(t, kind)

    def drain_all_stock(self, root):
        return self._e.drain_all_stock(self._cg("drain_all_stock", root, field="root"))

    def return_to_user(self, t):
        return self._e.return_to_user(self._user_task("return_to_user", t))

    def rtu_start(self, t):
        return self._e.rtu_start(self._user_task("rtu_start", t))

    def rtu_step(self, t):
        return self._e.rtu_step(self._task("rtu_step", t))

    def _user_task(self, call, t) -> int:
        t = self._task(call, t)
        st = self._emu.state
        if int(st.state[t]) == TaskState.BLOCKED:
            raise InvalidArgumentError(f"engine.{call}: t = {t}: the task is blocked (D state)")
        if not int(st.has_mm[t]):
            raise InvalidArgumentError(f"engine.{call}: t = {t} is a kernel thread")
        return t

    # ---- tasks and scopes ------------------------------------------------------------------------
    def memalloc_flags_save(self, t, flags):
        t = self._task("memalloc_flags_save", t)
        return self._e.memalloc_flags_save(
            t, self._int("memalloc_flags_save", flags, "flags", 0, PF_MASK_ALL))

    def memalloc_flags_restore(self, t, saved):
        t = self._task("memalloc_flags_restore", t)
        return self._e.memalloc_flags_restore(
            t, self._int("memalloc_flags_restore", saved, "saved", 0, PF_MASK_ALL))

    def memalloc_account_force_restore(self, t):
        return self._e.memalloc_account_force_restore(
            self._task("memalloc_account_force_restore", t))

    def set_active_memcg(self, t, memcg):
        t = self._task("set_active_memcg", t)
        return self._e.set_active_memcg(t, self._cg("set_active_memcg", memcg, none_ok=True))

    def attach_task(self, t, memcg):
        t = self._task("attach_task", t)
        return self._e.attach_task(t, self._cg("attach_task", memcg))

    def block_task(self, t):
        return self._e.block_task(self._task("block_task", t))

    def wake_task(self, t):
        return self._e.wake_task(self._task("wake_task", t, live=False))

    def kill_task(self, t):
        return self._e.kill_task(self._task("kill_task", t, live=False))

    def exit_task(self, t):
        return self._e.exit_task(self._task("exit_task", t, live=False))

    def oom_reap_task(self, t, final_attempt):
        return self._e.oom_reap_task(self._task("oom_reap_task", t, live=False),
                                     bool(final_attempt))

    def oom_reaper(self):
        return self._e.oom_reaper()

    # ---- control files ---------------------------------------------------------------------------
    def _limit(self, call, memcg, nr):
        return (self._cg(call, memcg, root_ok=False),
                self._pages(call, nr, "nr", 0, PAGE_COUNTER_MAX))

    def memory_max_write(self, memcg, nr, nonblock):
        return self._e.memory_max_write(*self._limit("memory_max_write", memcg, nr),
                                        bool(nonblock))

    def memory_high_write(self, memcg, nr, nonblock):
        return self._e.memory_high_write(*self._limit("memory_high_write", memcg, nr),
                                         bool(nonblock))

    def memory_min_write(self, memcg, nr):
        return self._e.memory_min_write(*self._limit("memory_min_write", memcg, nr))

    def memory_low_write(self, memcg, nr):
        return self._e.memory_low_write(*self._limit("memory_low_write", memcg, nr))

    def memory_reclaim(self, memcg, nr_to_reclaim, swappiness_zero):
        memcg = self._cg("memory_reclaim", memcg)
        nr = self._pages("memory_reclaim", nr_to_reclaim, "nr_to_reclaim")
        swz = self._int("memory_reclaim", swappiness_zero, "swappiness_zero", 0, 1)
        return self._e.memory_reclaim(memcg, nr, swz)

    # ---- pure helpers ----------------------------------------------------------------------------
    def effective_protection(self, usage, parent_usage, setting, parent_effective,
                             siblings_protected, recursive):
        args = [self._pages("effective_protection", v, f, 0, PAGE_COUNTER_MAX) for v, f in (
            (usage, "usage"), (parent_usage, "parent_usage"), (setting, "setting"),
            (parent_effective, "parent_effective"), (siblings_protected, "siblings_protected"))]
        recursive = self._int("effective_protection", int(recursive) if isinstance(
            recursive, bool) else recursive, "recursive", 0, 1)
        return self._e.effective_protection(*args, recursive)

    def get_order(self, nr_pages):
        return self._e.get_order(self._pages("get_order", nr_pages, lo=0, hi=MAX_NR_PAGES))

    def calculate_overage(self, usage, high):
        return self._e.calculate_overage(
            self._pages("calculate_overage", usage, "usage", 0, PAGE_COUNTER_MAX),
            self._pages("calculate_overage", high, "high", 0, PAGE_COUNTER_MAX))

    def calculate_high_delay(self, nr_pages, max_overage):
        return self._e.calculate_high_delay(
            self._pages("calculate_high_delay", nr_pages, lo=0, hi=MAX_NR_PAGES),
            self._int("calculate_high_delay", max_overage, "max_overage", 0, (1 << 64) - 1))

    def emu_scan_count(self, lru_size, protection, cgroup_size, priority):
        c = "emu_scan_count"
        return self._e.emu_scan_count(
            self._pages(c, lru_size, "lru_size", 0, PAGE_COUNTER_MAX),
            self._pages(c, protection, "protection", 0, PAGE_COUNTER_MAX),
            self._pages(c, cgroup_size, "cgroup_size", 0, PAGE_COUNTER_MAX),
            self._int(c, priority, "priority", 0, DEF_PRIORITY))

    # ---- replay ----------------------------------------------------------------------------------
    def _events(self, call, events, sorted_time=False) -> np.ndarray:
        from .replay import validate_events

        if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE \
                or events.ndim != 1 or not events.flags.c_contiguous:
            raise InvalidEventError(f"engine.{call}: events must be a C-contiguous 1-D array "
                                    f"of memcg_emu.events.EVENT_DTYPE (memcg_emu.replay."
                                    f"as_events makes one)")
        st = self._emu.state
        bad = self._e.first_invalid_event(events, bool(sorted_time))
        if bad >= 0:
            lo = max(bad - 1, 0)
            try:
                validate_events(events[lo:bad + 1], st.n_tasks, st.online[: st.n_cgroups],
                                st.flags[: st.n_tasks], require_sorted_time=sorted_time,
                                offset=lo)
            except InvalidEventError as e:
                raise InvalidEventError(f"engine.{call}: {e}") from None
            raise InvalidEventError(f"engine.{call}: event {bad} is invalid")
        return events

    def first_invalid_event(self, events, sorted_time=False):
        if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE \
                or events.ndim != 1 or not events.flags.c_contiguous:
            raise InvalidEventError("engine.first_invalid_event: events must be a C-contiguous "
                                    "1-D array of memcg_emu.events.EVENT_DTYPE")
        return self._e.first_invalid_event(events, bool(sorted_time))

    @staticmethod
    def _array(call, arr, name, dtype, ndim):
        if not isinstance(arr, np.ndarray) or arr.dtype != dtype or arr.ndim != ndim \
                or not arr.flags.c_contiguous or not arr.flags.writeable:
            raise InvalidArgumentError(f"engine.{call}: {name} must be a writable C-contiguous "
                                       f"{ndim}-D {np.dtype(dtype)} array")
        return arr

    def replay_loop(self, events, rc_out, outcome_out, sample_every, sample_dt, sample_idx,
                    sample_time, sample_usage, sample_max, sample_events, checked=True,
                    validate=False):  # every event is validated here first, either way
        from .replay import MAX_SAMPLE_POINTS, check_totals

        c = "replay_loop"
        sample_every = self._int(c, sample_every, "sample_every", 0, _I64[1])
        sample_dt = self._int(c, sample_dt, "sample_dt", 0, _I64[1])
        ev = self._events(c, events, sample_dt > 0)
        n = ev.shape[0]
        for name, arr, dt in (("rc_out", rc_out, np.int64), ("outcome_out", outcome_out,
                                                              np.uint8)):
            if self._array(c, arr, name, dt, 1).shape[0] < n:
                raise InvalidArgumentError(f"engine.{c}: {name} has {arr.shape[0]} slots for "
                                           f"{n} events")
        self._array(c, sample_idx, "sample_idx", np.int64, 1)
        self._array(c, sample_time, "sample_time", np.int64, 1)
        self._array(c, sample_usage, "sample_usage", np.int64, 2)
        self._array(c, sample_max, "sample_max", np.int64, 2)
        self._array(c, sample_events, "sample_events", np.int64, 3)
        cap = sample_idx.shape[0]
        n_cg = sample_usage.shape[1]
        st = self._emu.state
        if (sample_time.shape[0] < cap or sample_usage.shape[0] < cap
                or sample_max.shape[0] < cap or sample_events.shape[0] < cap
                or n_cg > st.n_cgroups or sample_max.shape[1] < n_cg
                or sample_events.shape[1] < n_cg
                or sample_events.shape[2] > NR_MEMCG_EVENTS):
            raise InvalidArgumentError(
                f"engine.{c}: sample arrays must hold len(sample_idx) = {cap} rows, "
                f"sample_usage.shape[1] = {n_cg} <= {st.n_cgroups} cgroups (and as many in "
                f"sample_max/sample_events), sample_events.shape[2] <= {NR_MEMCG_EVENTS}")
        if n and sample_dt:
            span = int(ev["time"].max()) - int(ev["time"][0])
            if max(span, 0) // sample_dt + 1 > MAX_SAMPLE_POINTS:
                raise LimitError(f"engine.{c}: sample_dt = {sample_dt} over a {span} ns span "
                                 f"passes more than MAX_SAMPLE_POINTS = {MAX_SAMPLE_POINTS:,} "
                                 f"sample points")
        check_totals(ev, int(st.usage[0]), f"engine.{c}")
        return self._e.replay_loop(ev, rc_out, outcome_out, sample_every, sample_dt,
                                   sample_idx, sample_time, sample_usage, sample_max,
                                   sample_events, True)

    def emu_floor_loop(self, events, out):
        ev = self._events("emu_floor_loop", events)
        out = self._array("emu_floor_loop", out, "out", np.int64, 1)
        if out.shape[0] < self._emu.state.n_cgroups:
            raise InvalidArgumentError(f"engine.emu_floor_loop: out needs "
                                       f"{self._emu.state.n_cgroups} slots")
        return self._e.emu_floor_loop(ev, out)
