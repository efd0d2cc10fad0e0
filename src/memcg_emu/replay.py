"""Replay: run an event array (or an iterable of chunks) through one engine loop, report
(docs/design.md §3.2).

Events are validated by the loop itself, piece by piece, just before each runs (a rule table
per op; the readable numpy rules in :mod:`memcg_emu.events` word the error).  Errors are
reported in stream order: a bad event, or one the evolving state cannot take (uncharging more
than a pool holds, a restore with no open scope, an event for an exited task), stops the loop;
the wrapper then restores the snapshot taken before the run, so a rejected replay leaves the
engine untouched.  ``on_error="count"`` skips and counts such events instead.
"""
from __future__ import annotations

import time as _time
from dataclasses import dataclass, field

import numpy as np

from ._constants import (
    GFP_MASK_ALL,
    NR_KINDS,
    NR_MEMCG_EVENTS,
    PAGE_COUNTER_MAX,
    PF_KTHREAD,
    PF_MASK_ALL,
    PageKind,
    Stat,
)
from .errors import (MAX_NR_PAGES, MAX_TOTAL_PAGES, InvalidArgumentError, InvalidEventError,
                     InvalidTypeError, LimitError)
from .events import (
    ERR_INVALID,
    ERR_MESSAGES,
    EVENT_DTYPE,
    LIMIT_OPS,
    MEMCG_OPS,
    NR_OPS,
    PAGES_OPS,
    TASK_OPS,
    Op,
    fit_field,
)

_CHARGE_KINDS = np.array([PageKind.ANON, PageKind.FILE, PageKind.FILE_DIRTY, PageKind.KERNEL,
                          PageKind.UNEVICTABLE])
#: The most sample points one replay may step through: the time-based sampler visits every
#: multiple of ``sample_dt`` between the first and the last event's time (even past
#: ``max_samples``, which only caps what is stored), so the span / sample_dt is bounded.
MAX_SAMPLE_POINTS = 10_000_000


def as_events(events) -> np.ndarray:
    """Return ``events`` as a C-contiguous one-dimensional EVENT_DTYPE array (fields matched
    by name).  Another structured dtype is accepted when every value of every field fits the
    event format's type for it exactly; otherwise InvalidEventError names the event and
    field."""
    if isinstance(events, (str, bytes)) or events is None:
        raise InvalidEventError(f"events must be a structured numpy array with dtype "
                                f"memcg_emu.events.EVENT_DTYPE, not {type(events).__name__}")
    try:
        arr = np.asarray(events)
    except (ValueError, TypeError) as e:
        raise InvalidEventError(f"events cannot be made an array: {e}") from None
    if arr.dtype.names is None:
        raise InvalidTypeError(f"events must be a structured array with dtype memcg_emu."
                                f"events.EVENT_DTYPE, not {arr.dtype}")
    if arr.ndim != 1:
        raise InvalidEventError(f"events must be one-dimensional, not shape {arr.shape}")
    if arr.dtype == EVENT_DTYPE:
        return np.ascontiguousarray(arr)
    out = np.zeros(arr.shape[0], dtype=EVENT_DTYPE)
    for name in EVENT_DTYPE.names:
        if name == "pad":
            continue
        if name not in arr.dtype.names:
            raise InvalidEventError(f"events: missing field {name!r} (have "
                                    f"{arr.dtype.names})")
        out[name] = fit_field(arr[name], name, EVENT_DTYPE.fields[name][0])
    return out


_SUM_UP_FRONT = 1 << 22
#: replay_loop()'s sample arguments when nothing is sampled
_ZERO_SAMPLES = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 0), np.int64),
                 np.zeros((0, 0), np.int64), np.zeros((0, 0, NR_MEMCG_EVENTS), np.int64))


def check_totals(ev: np.ndarray, usage_now: int, where: str = "events") -> None:
    """LimitError if the charges of ``ev`` could take the machine past MAX_TOTAL_PAGES."""
    arg = ev["arg"][ev["op"] == Op.CHARGE]
    total = usage_now
    for lo in range(0, arg.shape[0], 1 << 20):  # <= 2**20 * 2**40 per chunk: no int64 wrap
        total += int(arg[lo:lo + (1 << 20)].sum())
    if total > MAX_TOTAL_PAGES:
        raise LimitError(f"{where}: the charge events add up to {total - usage_now} pages "
                         f"and the machine holds {usage_now}; the emulator's bound on the "
                         f"total is MAX_TOTAL_PAGES = 2**46 pages (memcg_emu.errors), so "
                         f"that no counter can overflow int64")


def _op_table(ops) -> np.ndarray:
    """A 256-entry boolean table indexed by op code (u1), so a mask is one gather."""
    table = np.zeros(256, dtype=bool)
    table[[int(o) for o in ops]] = True
    return table


_IS_TASK_OP = _op_table(TASK_OPS)
_NEEDS_MEMCG = _op_table(MEMCG_OPS)
_MAY_MEMCG = _op_table([Op.CHARGE, Op.UNCHARGE, Op.SET_ACTIVE_MEMCG])
_IS_PAGES_OP = _op_table(PAGES_OPS)
_IS_LIMIT_OP = _op_table(LIMIT_OPS)
_NOT_FOR_KTHREAD = _op_table([Op.RETURN_TO_USER, Op.ATTACH])
_CHARGEABLE = np.zeros(256, dtype=bool)
_CHARGEABLE[_CHARGE_KINDS] = True


def _first_bad(mask: np.ndarray) -> int | None:
    i = int(np.argmax(mask)) if mask.size else 0
    return i if mask.size and mask[i] else None


def validate_events(ev: np.ndarray, n_tasks: int, online: np.ndarray, task_flags: np.ndarray,
                    require_sorted_time: bool = False, offset: int = 0) -> None:
    """Raise ValueError naming the first offending event index and field.

    Each rule is one vectorised mask (table lookups by op code), so validation costs a few
    passes over the array."""
    op = ev["op"]
    task = ev["task"]
    memcg = ev["memcg"]
    arg = ev["arg"]
    kind = ev["kind"]
    n_cg = online.shape[0]

    def fail(mask, what):
        i = _first_bad(mask)
        if i is not None:
            raise InvalidEventError(f"event {offset + i}: {what(i)}")

    fail(op >= NR_OPS, lambda i: f"field 'op' = {op[i]} is not a known op (0..{NR_OPS - 1})")
    is_task_op = _IS_TASK_OP[op]
    fail(is_task_op & ((task < 0) | (task >= n_tasks)),
         lambda i: f"field 'task' = {task[i]} out of range [0, {n_tasks}) for op "
                   f"{Op(op[i]).name}")
    fail(~is_task_op & (task != -1),
         lambda i: f"field 'task' = {task[i]} must be -1 for op {Op(op[i]).name}, which acts "
                   f"on no task")
    needs_memcg = _NEEDS_MEMCG[op]
    uses_memcg = needs_memcg | _MAY_MEMCG[op]
    fail(uses_memcg & ((memcg >= n_cg) | (memcg < -1) | (needs_memcg & (memcg < 0))),
         lambda i: f"field 'memcg' = {memcg[i]} out of range for op {Op(op[i]).name} "
                   f"({n_cg} cgroups)")
    online_ext = np.append(online.astype(bool), True)  # index -1 -> "resolve", always fine
    fail(uses_memcg & ~online_ext[np.where(uses_memcg, memcg, -1)],
         lambda i: f"field 'memcg' = {memcg[i]} is a removed cgroup")
    fail(_IS_LIMIT_OP[op] & (memcg == 0),
         lambda i: f"field 'memcg' = 0: {Op(op[i]).name} does not exist on the root cgroup")
    fail(_IS_PAGES_OP[op] & ((arg < 1) | (arg > MAX_NR_PAGES)),
         lambda i: f"field 'arg' (pages) = {arg[i]} must be in [1, 2**40] for "
                   f"{Op(op[i]).name}")
    fail(_IS_LIMIT_OP[op] & ((arg < 0) | (arg > PAGE_COUNTER_MAX)),
         lambda i: f"field 'arg' (limit pages) = {arg[i]} must be in [0, PAGE_COUNTER_MAX]")
    fail((op == Op.FLAGS_SAVE) & ((arg < 0) | (arg > PF_MASK_ALL)),
         lambda i: f"field 'arg' (PF_* flags) = {arg[i]:#x} out of range")
    is_charge = op == Op.CHARGE
    fail(is_charge & (ev["gfp"] > GFP_MASK_ALL),
         lambda i: f"field 'gfp' = {int(ev['gfp'][i]):#x} has undefined bits")
    fail(is_charge & ~_CHARGEABLE[kind],
         lambda i: f"field 'kind' = {kind[i]} cannot be charged (anon, file, file_dirty, "
                   f"kernel, unevictable)")
    fail((op == Op.UNCHARGE) & (kind >= NR_KINDS),
         lambda i: f"field 'kind' = {kind[i]} is not a page kind")
    if n_tasks:
        kthread = np.append((task_flags & PF_KTHREAD) != 0, False)  # task -1 -> False
        fail(_NOT_FOR_KTHREAD[op] & kthread[np.where(is_task_op, task, -1)],
             lambda i: f"field 'task' = {task[i]} is a kernel thread; {Op(op[i]).name} is "
                       f"not possible for it")
    if require_sorted_time and ev.shape[0] > 1:
        t = ev["time"]
        fail(np.append(False, t[1:] < t[:-1]),
             lambda i: f"field 'time' = {t[i]} goes backwards (event {offset + i - 1} has "
                       f"{t[i - 1]}); sample_dt needs non-decreasing times")


@dataclass
class ReplayResult:
    """What a replay returns: per-event codes and outcome bits, counters, samples."""

    rc: np.ndarray  # int32 per event; its meaning depends on the op (events.RC_MEANING)
    outcome: np.ndarray  # uint8 per event: OUT_* bits
    elapsed: float  # seconds inside the engine loop (thread CPU time)
    counters: dict  # engine Stat deltas over this replay
    sample_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    sample_time: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    sample_usage: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int64))
    sample_max: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int64))
    sample_events: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0), np.int64))
    cgroups: list = field(default_factory=list)
    # on_error="count": events the state could not take, skipped (index, ERR_* code)
    skipped_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    skipped_err: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    skipped: dict = field(default_factory=dict)  # "op kind: reason" -> count
    n: int = -1  # events replayed, when rc is not kept (replay(..., per_event=False))

    @property
    def n_events(self) -> int:
        return int(self.rc.shape[0]) if self.n < 0 else self.n

    @property
    def events_per_sec(self) -> float:
        return self.n_events / self.elapsed if self.elapsed > 0 else float("inf")

    @property
    def summary(self) -> dict:
        c = self.counters
        charges = c["charges"]
        return {
            "events": self.n_events,
            "events_per_sec": self.events_per_sec,
            "stock_hit_rate": c["stock_hits"] / charges if charges else 0.0,
            "drains": c["drains"],
            "reclaim_scanned": c["reclaim_scanned"],
            "reclaim_reclaimed": c["reclaim_reclaimed"],
            "oom_kills": c["oom_kills"],
            "forced_charges": c["forced_charges"],
            "pages_forced_over_max": c["forced_pages_over_max"],
            "livelocks": c["livelocks"],
            "enomem": c["enomem"],
            "oom_calls": c["oom_calls"],
            "throttle_jiffies": c["throttle_jiffies"],
            "high_reclaims": c["high_reclaims"],
            "flusher_wakeups": c["flusher_wakeups"],
            "skipped_events": int(self.skipped_index.shape[0]),
        }

    def to_pandas(self):
        """Samples as a long DataFrame: one row per (sample, cgroup)."""
        import pandas as pd

        ns, n_cg = self.sample_usage.shape
        from ._constants import MEMORY_EVENTS_KEYS

        data = {
            "sample": np.repeat(np.arange(ns), n_cg),
            "event_index": np.repeat(self.sample_index, n_cg),
            "time": np.repeat(self.sample_time, n_cg),
            "cgroup": np.tile(np.array(self.cgroups[:n_cg], dtype=object), ns),
            "usage_pages": self.sample_usage.reshape(-1),
            "max_pages": self.sample_max.reshape(-1),
        }
        for k, name in enumerate(MEMORY_EVENTS_KEYS):
            data[name] = self.sample_events[:, :, k].reshape(-1)
        return pd.DataFrame(data)


#: Events validated and replayed per engine call: large enough that the per-call cost (a few
#: microseconds) vanishes, small enough that a piece's outputs and a chunked stream's memory
#: stay small (validation is fused with the loop: each event is checked just before it runs,
#: so the piece need not fit in a cache).  The reference engine takes smaller chunks
#: (progress updates).
CHUNK_EVENTS = 1 << 18
_PY_CHUNK_EVENTS = 1 << 13


def _is_chunk_iterable(events) -> bool:
    """An iterable of event chunks (a generator, an iterator, or a list/tuple of arrays) as
    opposed to one event array."""
    if isinstance(events, np.ndarray) or events is None or isinstance(events, (str, bytes)):
        return False
    if isinstance(events, (list, tuple)):
        return len(events) > 0 and all(isinstance(c, np.ndarray) and c.dtype.names
                                       for c in events)
    return hasattr(events, "__next__") or (hasattr(events, "__iter__")
                                           and not hasattr(events, "__array__")
                                           and not hasattr(events, "__len__"))


class _Runner:
    """Validates and replays pieces of one stream in order; keeps the stream's global
    position, the sampling grid and the outputs.  Every piece is checked by the engine's
    ``first_invalid_event`` just before the loop runs it (the same rules as
    :func:`validate_events`, which words the error)."""

    def __init__(self, emu, sample_every, sample_dt, cap, per_event, n_hint):
        self.emu = emu
        self.st = emu.state
        self.eng = emu._engine
        self.se = sample_every
        self.dt = sample_dt
        self.cap = cap  # samples still to store (None: no bound)
        self.per_event = per_event
        self.pos = 0
        self.t0 = None  # the first event's time (the sample_dt grid origin)
        self.last_time = None
        self.elapsed = 0.0
        self.samples: list[tuple] = []
        n_cg = self.st.n_cgroups
        self.n_cg = n_cg
        if n_hint is not None and per_event:
            # not zeroed: the loop writes every entry up to self.pos (see outputs()), and a
            # call that stops early raises before anything is returned
            self.rc = np.empty(n_hint, np.int64)
            self.outcome = np.empty(n_hint, np.uint8)
        else:
            self.rc_parts: list[np.ndarray] = []
            self.out_parts: list[np.ndarray] = []
            self.rc = self.outcome = None
            self._scratch = (np.zeros(0, np.int64), np.zeros(0, np.uint8))

    def _outputs(self, n):
        if self.rc is not None:
            return self.rc[self.pos:self.pos + n], self.outcome[self.pos:self.pos + n]
        if self.per_event:
            rc, out = np.zeros(n, np.int64), np.zeros(n, np.uint8)
            self.rc_parts.append(rc)
            self.out_parts.append(out)
            return rc, out
        if self._scratch[0].shape[0] < n:
            self._scratch = (np.zeros(n, np.int64), np.zeros(n, np.uint8))
        return self._scratch[0][:n], self._scratch[1][:n]

    def validate(self, piece, pos=None):
        """Raise the error of the first bad event of ``piece`` (at ``pos`` in the stream),
        worded by :func:`validate_events`."""
        st = self.st
        pos = self.pos if pos is None else pos
        bad = self.eng.first_invalid_event(piece, self.dt > 0)
        if bad >= 0:  # word the error from the readable rules, on the neighbourhood of `bad`
            lo = max(bad - 1, 0)
            validate_events(piece[lo:bad + 1], st.n_tasks, st.online[: st.n_cgroups],
                            st.flags[: st.n_tasks], require_sorted_time=self.dt > 0,
                            offset=pos + lo)
            raise AssertionError(f"event {pos + bad} failed validation in the engine "
                                 f"but not in replay.validate_events")  # pragma: no cover
        self.validate_boundary(piece)

    def validate_boundary(self, piece):
        """Time order across the boundary with the previous piece (sample_dt)."""
        if self.dt > 0 and self.last_time is not None and piece.shape[0]:
            t = int(piece["time"][0])
            if t < self.last_time:
                raise InvalidEventError(
                    f"event {self.pos}: field 'time' = {t} goes backwards (event "
                    f"{self.pos - 1} has {self.last_time}); sample_dt needs non-decreasing "
                    f"times")

    def _prefix(self, piece):
        """NOP events that put the loop's sampling phase where one uninterrupted run has it:
        ``pos % sample_every`` NOPs, or one NOP at the last ``sample_dt`` grid point passed
        (see :func:`_run_counting`); never sampled themselves."""
        from .events import empty

        if self.pos == 0 or not (self.se or self.dt):
            return 0, piece
        if self.se:
            p = self.pos % self.se
            if not p:
                return 0, piece
            pre = empty(p)
            pre["time"] = piece["time"][0] if piece.shape[0] else 0
        else:
            p = 1
            pre = empty(1)
            pre["time"] = self.t0 + self.dt * ((self.last_time - self.t0) // self.dt)
        return p, np.concatenate([pre, piece])

    def _sample_cap(self, n):
        cap = 0
        if self.se:
            cap += (self.pos % self.se + n) // self.se + 1
        if self.dt and n:
            first = self.t0 if self.pos == 0 else self.last_time
            span = self.piece_tmax - first
            cap += max(span, 0) // self.dt + 2
        if self.cap is not None:
            cap = min(cap, self.cap)
        return cap

    def run(self, piece):
        """Validate ``piece``, run it; returns (err, index in the piece) -- err != 0: the
        engine stopped at that event (the caller restores the state)."""
        n = piece.shape[0]
        if n == 0:
            return 0, -1
        self.validate_boundary(piece)
        if self.t0 is None:
            self.t0 = int(piece["time"][0])
        self.piece_tmax = int(piece["time"][-1]) if self.dt else 0
        if self.dt and (self.piece_tmax - self.t0) // self.dt + 1 > MAX_SAMPLE_POINTS:
            raise LimitError(f"sample_dt = {self.dt}: the events up to event "
                             f"{self.pos + n - 1} span {self.piece_tmax - self.t0} ns, so time "
                             f"sampling would step through more than MAX_SAMPLE_POINTS = "
                             f"{MAX_SAMPLE_POINTS:,} sample points (memcg_emu.replay); use a "
                             f"larger sample_dt")
        p, seg = self._prefix(piece)
        rc, out = self._outputs(n)
        if p:
            rc_seg, out_seg = np.zeros(n + p, np.int64), np.zeros(n + p, np.uint8)
        else:
            rc_seg, out_seg = rc, out
        cap = self._sample_cap(n)
        n_cg = self.n_cg
        s = (np.zeros(cap, np.int64), np.zeros(cap, np.int64), np.zeros((cap, n_cg), np.int64),
             np.zeros((cap, n_cg), np.int64), np.zeros((cap, n_cg, NR_MEMCG_EVENTS), np.int64))
        t0 = _time.thread_time()
        done, err, err_i, ns = self.eng.replay_loop(seg, rc_seg, out_seg, self.se, self.dt,
                                                    *s, True, True)
        self.elapsed += _time.thread_time() - t0
        if p:
            stop = err_i if err else done
            rc[:max(stop - p, 0)] = rc_seg[p:stop]
            out[:max(stop - p, 0)] = out_seg[p:stop]
        if ns:
            self.samples.append((s[0][:ns] + self.pos - p,) + tuple(a[:ns] for a in s[1:]))
            if self.cap is not None:
                self.cap -= ns
        if err == ERR_INVALID:  # the loop stopped on it: word it (the caller restores)
            self.validate(piece[max(err_i - p - 1, 0):err_i - p + 1],
                          self.pos + max(err_i - p - 1, 0))
            raise AssertionError(f"event {self.pos + err_i - p} failed validation in the "
                                 f"engine but not in replay.validate_events")  # pragma: no cover
        if err:
            return err, err_i - p
        if int(self.st.usage[0]) > MAX_TOTAL_PAGES:
            return -1, n - 1
        self.pos += n
        if self.dt:
            self.last_time = int(piece["time"][-1])
        return 0, -1

    def outputs(self):
        if self.rc is not None:
            return self.rc[:self.pos], self.outcome[:self.pos]
        if self.per_event and self.rc_parts:
            return np.concatenate(self.rc_parts), np.concatenate(self.out_parts)
        return np.zeros(0, np.int64), np.zeros(0, np.uint8)

    def sample_arrays(self):
        n_cg = self.n_cg
        if not self.samples:
            return (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, n_cg), np.int64),
                    np.zeros((0, n_cg), np.int64),
                    np.zeros((0, n_cg, NR_MEMCG_EVENTS), np.int64))
        return tuple(np.concatenate([s[k] for s in self.samples]) for k in range(5))


def _pieces(source, step):
    """Event arrays of at most ``step`` events from an array or an iterable of chunks."""
    if isinstance(source, np.ndarray):
        for lo in range(0, source.shape[0], step):
            yield source[lo:lo + step]
        return
    for i, chunk in enumerate(source):
        try:
            ev = as_events(chunk)
        except ValueError as e:
            raise type(e)(f"chunk {i}: {e}") from None
        for lo in range(0, ev.shape[0], step):
            yield ev[lo:lo + step]


def _sample_points(ev: np.ndarray, sample_every: int, sample_dt: int) -> int:
    """How many samples sampling ``ev`` can take (every ``sample_every`` events, every
    ``sample_dt`` of event time); a time span of more than MAX_SAMPLE_POINTS steps is refused
    before anything runs (the catch-up loop would step through each)."""
    n = ev.shape[0]
    cap = 0
    if n and sample_every:
        cap += n // sample_every + 1
    if n and sample_dt:
        span = int(ev["time"].max()) - int(ev["time"][0])
        points = max(span, 0) // sample_dt + 1
        if points > MAX_SAMPLE_POINTS:
            raise LimitError(f"sample_dt = {sample_dt}: the events span {span} ns, so time "
                             f"sampling would step through {points} sample points, more than "
                             f"MAX_SAMPLE_POINTS = {MAX_SAMPLE_POINTS:,} "
                             f"(memcg_emu.replay); use a larger sample_dt")
        cap += points
    return cap

def run_replay(emu, events, sample_every: int = 0, sample_dt: int = 0,
               max_samples: int | None = None, progress: bool = False,
               chunk: int | None = None, on_error: str = "raise",
               per_event: bool = True) -> ReplayResult:
    """Validate and run ``events`` chunk by chunk; return a result, or restore and raise.

    ``events`` is one event array (memory-mapped is fine) or an iterable of event chunks
    (e.g. ``workloads.mixed_chunks(...).chunks()``): either way the stream is validated and
    replayed ``CHUNK_EVENTS`` at a time, each piece checked just before the loop runs it.  A
    bad event raises after the state has been restored to the snapshot taken before the
    call, so nothing is applied, as before; errors are reported in stream order.
    ``per_event=False`` keeps no per-event rc/outcome (``ReplayResult.rc`` is empty and
    ``n_events`` counts the events): memory stays bounded whatever the stream's length.

    ``on_error="count"``: an event the evolving state cannot take (see ``ERR_MESSAGES``) is
    skipped instead; see :func:`_run_counting`."""
    from .sim import _check_int

    chunked = _is_chunk_iterable(events)
    ev = None if chunked else as_events(events)
    sample_every = _check_int(sample_every, "sample_every", 0)
    sample_dt = _check_int(sample_dt, "sample_dt", 0)
    if on_error not in ("raise", "count"):
        raise InvalidArgumentError(f"replay: on_error must be 'raise' or 'count', not "
                                   f"{on_error!r}")
    if on_error == "count" and sample_every and sample_dt:
        raise InvalidArgumentError("replay: on_error='count' samples by sample_every or by "
                                   "sample_dt, not both")
    if chunked and sample_every and sample_dt:
        raise InvalidArgumentError("replay: an iterable of chunks is sampled by sample_every "
                                   "or by sample_dt, not both")
    if chunked and on_error == "count" and (sample_every or sample_dt):
        raise InvalidArgumentError("replay: on_error='count' on an iterable of chunks does "
                                   "not sample")
    if max_samples is not None:
        max_samples = _check_int(max_samples, "max_samples", 0, MAX_SAMPLE_POINTS)
    st = emu.state
    n_cg = st.n_cgroups
    if not chunked and on_error == "count":
        return _run_counting_array(emu, ev, sample_every, sample_dt, max_samples)
    cap = None
    if not chunked:
        cap = _sample_points(ev, sample_every, sample_dt)
    if max_samples is not None:
        cap = max_samples if cap is None else min(cap, max_samples)
    if cap is not None and cap * max(n_cg, 1) * (2 + NR_MEMCG_EVENTS) > 1 << 29:
        raise LimitError(f"{cap:,} samples of {n_cg} cgroups would need "
                         f"{cap * n_cg * (2 + NR_MEMCG_EVENTS) * 8 / 2**30:,.0f} GiB; pass "
                         f"max_samples (or sample less often)")
    snapshot = st.copy()
    stats_before = st.stats.copy()
    if chunk is None:
        chunk = CHUNK_EVENTS if emu.backend == "cython" else _PY_CHUNK_EVENTS
    step = max(1, min(int(chunk), _SUM_UP_FRONT))  # < 2**22: no int64 wrap within a piece
    if not chunked and sample_every and sample_dt:
        step = max(ev.shape[0], 1)  # both grids at once: one piece (no phase prefix)
    if not chunked and sample_every and step % sample_every:  # whole periods: no prefix
        step = max(step - step % sample_every, sample_every)
    runner = _Runner(emu, sample_every, sample_dt, cap, per_event,
                     None if chunked else ev.shape[0])
    skipped_i: list[int] = []
    skipped_e: list[int] = []
    skipped_lbl: dict[str, int] = {}
    bar = None
    if progress and not chunked and ev.shape[0] > step:
        from rich.progress import Progress

        bar = Progress(transient=True)
        task_id = bar.add_task("replay", total=ev.shape[0])
        bar.start()
    try:
        for piece in _pieces(events if chunked else ev, step):
            if on_error == "count":  # iterables only (arrays took _run_counting_array)
                runner.validate(piece)
                r = _run_counting(emu, piece, 0, 0, *_ZERO_SAMPLES,
                                  *runner._outputs(piece.shape[0]), snapshot, stats_before)
                skipped_i.extend(int(i) + runner.pos for i in r.skipped_index)
                skipped_e.extend(int(e) for e in r.skipped_err)
                for key, c in r.skipped.items():
                    skipped_lbl[key] = skipped_lbl.get(key, 0) + c
                runner.elapsed += r.elapsed
                runner.pos += piece.shape[0]
                if int(st.usage[0]) > MAX_TOTAL_PAGES:
                    err, err_i = -1, 0
                else:
                    continue
            else:
                err, err_i = runner.run(piece)
            if err == -1:
                total = int(st.usage[0])
                raise LimitError(f"the events would take the machine to {total} pages "
                                 f"charged, past MAX_TOTAL_PAGES = 2**46 (memcg_emu.errors); "
                                 f"replay rejected, engine state restored")
            if err:
                i = runner.pos + err_i
                e = piece[err_i]
                raise InvalidEventError(
                    f"event {i} (op {Op(int(e['op'])).name}, task {int(e['task'])}, memcg "
                    f"{int(e['memcg'])}, arg {int(e['arg'])}): {ERR_MESSAGES[err]}; "
                    f"replay rejected, engine state restored")
            if bar is not None:
                bar.update(task_id, completed=runner.pos)
    except BaseException:
        st.restore_from(snapshot)  # nothing is half-applied, whatever went wrong
        raise
    finally:
        if bar is not None:
            bar.stop()
    delta = st.stats - stats_before
    counters = {s.name.lower(): int(delta[s]) for s in Stat}
    rc, outcome = runner.outputs()
    s_idx, s_time, s_usage, s_max, s_events = runner.sample_arrays()
    return ReplayResult(rc=rc, outcome=outcome, elapsed=runner.elapsed, counters=counters,
                        sample_index=s_idx, sample_time=s_time, sample_usage=s_usage,
                        sample_max=s_max, sample_events=s_events,
                        cgroups=[emu.cgroup_path(c) for c in range(n_cg)],
                        skipped_index=np.array(skipped_i, np.int64),
                        skipped_err=np.array(skipped_e, np.int64), skipped=skipped_lbl,
                        n=-1 if (per_event and not chunked) else runner.pos)


def _run_counting_array(emu, ev, sample_every, sample_dt, max_samples) -> ReplayResult:
    """on_error="count" on one array: validate it (in chunks), then :func:`_run_counting`."""
    st = emu.state
    n = ev.shape[0]
    runner = _Runner(emu, 0, sample_dt, None, False, None)
    for lo in range(0, n, CHUNK_EVENTS):
        runner.pos = lo
        runner.validate(ev[lo:lo + CHUNK_EVENTS])
        if sample_dt and lo:
            runner.last_time = int(ev["time"][lo - 1])
    n_cg = st.n_cgroups
    cap = _sample_points(ev, sample_every, sample_dt)
    if max_samples is not None:
        cap = min(cap, max_samples)
    if cap * max(n_cg, 1) * (2 + NR_MEMCG_EVENTS) > 1 << 29:
        raise LimitError(f"{cap:,} samples of {n_cg} cgroups would need "
                         f"{cap * n_cg * (2 + NR_MEMCG_EVENTS) * 8 / 2**30:,.0f} GiB; pass "
                         f"max_samples (or sample less often)")
    if n > _SUM_UP_FRONT:
        check_totals(ev, int(st.usage[0]))
    s = (np.zeros(cap, np.int64), np.zeros(cap, np.int64), np.zeros((cap, n_cg), np.int64),
         np.zeros((cap, n_cg), np.int64), np.zeros((cap, n_cg, NR_MEMCG_EVENTS), np.int64))
    return _run_counting(emu, ev, sample_every, sample_dt, *s, np.zeros(n, np.int64),
                         np.zeros(n, np.uint8), st.copy(), st.stats.copy())


def _skip_label(e) -> str:
    op = Op(int(e["op"]))
    name = op.name.lower()
    if op in (Op.CHARGE, Op.UNCHARGE):
        name += " " + PageKind(int(e["kind"])).name.lower()
    return name


def _run_counting(emu, ev, sample_every, sample_dt, s_idx, s_time, s_usage, s_max, s_events,
                  rc, outcome, snapshot, stats_before) -> ReplayResult:
    """Lenient replay without touching the engines: run the engine loop; when it stops on a
    state-dependent error at event ``e`` (it applies nothing of that event), record the
    skip, turn ``e`` into a NOP (same time) in a private copy of the array, and run the loop
    again from ``e``.  Both engines share the loop's contract, so they skip the same events.

    Sampling stays on the grid of one uninterrupted run: a restart is prefixed with NOP
    events that put the loop's ``sample_every`` phase (``e % sample_every`` NOPs) or its next
    ``sample_dt`` instant (one NOP at the last grid point passed) where the stopped run had
    them.  The NOP prefix is never sampled (fewer than ``sample_every`` NOPs; a time below
    the next grid point)."""
    from .events import empty

    st = emu.state
    eng = emu.engine
    n = ev.shape[0]
    work = ev  # copied on the first skip
    sampled = bool(sample_every or sample_dt)
    t0 = int(ev["time"][0]) if n else 0
    skipped_i: list[int] = []
    skipped_e: list[int] = []
    r = 0
    ns_total = 0
    elapsed = 0.0
    try:
        while r < n:
            if not sampled:
                seg, p = work[r:], 0
                rc_seg, out_seg = rc[r:], outcome[r:]
            else:
                if sample_every:
                    p = r % sample_every
                    pre = empty(p)
                    pre["time"] = work["time"][r]
                else:
                    p = 1 if r else 0
                    pre = empty(p)
                    if p:
                        last = int(work["time"][r - 1])
                        pre["time"] = t0 + sample_dt * ((last - t0) // sample_dt)
                seg = np.concatenate([pre, work[r:]]) if p else work[r:]
                rc_seg = np.zeros(seg.shape[0], np.int64)
                out_seg = np.zeros(seg.shape[0], np.uint8)
            t_start = _time.thread_time()
            done, err, err_i, ns = eng.replay_loop(
                seg, rc_seg, out_seg, sample_every, sample_dt, s_idx[ns_total:],
                s_time[ns_total:], s_usage[ns_total:], s_max[ns_total:],
                s_events[ns_total:], True)
            elapsed += _time.thread_time() - t_start
            if sampled:
                stop = done if not err else err_i
                rc[r:r + stop - p] = rc_seg[p:stop]
                outcome[r:r + stop - p] = out_seg[p:stop]
            s_idx[ns_total:ns_total + ns] += r - p
            ns_total += ns
            if not err:
                break
            e = r + err_i - p
            skipped_i.append(e)
            skipped_e.append(int(err))
            if work is ev:
                work = ev.copy()
            t_e = work["time"][e]
            work[e] = empty(1)[0]
            work["time"][e] = t_e
            rc[e] = 0
            outcome[e] = 0
            r = e
    except BaseException:
        st.restore_from(snapshot)
        raise
    delta = st.stats - stats_before
    counters = {s.name.lower(): int(delta[s]) for s in Stat}
    skipped: dict[str, int] = {}
    for i, code in zip(skipped_i, skipped_e):
        key = f"{_skip_label(ev[i])}: {ERR_MESSAGES[code]}"
        skipped[key] = skipped.get(key, 0) + 1
    n_cg = st.n_cgroups
    return ReplayResult(rc=rc, outcome=outcome, elapsed=elapsed, counters=counters,
                        sample_index=s_idx[:ns_total], sample_time=s_time[:ns_total],
                        sample_usage=s_usage[:ns_total], sample_max=s_max[:ns_total],
                        sample_events=s_events[:ns_total],
                        cgroups=[emu.cgroup_path(c) for c in range(n_cg)],
                        skipped_index=np.array(skipped_i, np.int64),
                        skipped_err=np.array(skipped_e, np.int64), skipped=skipped)
