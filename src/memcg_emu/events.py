"""The replay event format, version 2 (docs/design.md §3.2): a fixed-size numpy structured dtype.

One event is 32 bytes, little-endian, no Python objects, so an array of them can be saved as
``.npy``/``.npz``, memory-mapped, or converted to and from Arrow/Parquet column by column:

=======  =======  ========================================================================
field    dtype    meaning
=======  =======  ========================================================================
time     <i8      nanoseconds; only used to sample time series every ``sample_dt``
arg      <i8      pages for charge/uncharge/page-state ops and limits; PF_* bits for
                  flags_save; 0 otherwise
task     <i4      task pid (index) for task ops, -1 for memcg-only ops
memcg    <i4      cgroup index: explicit remote target for charge/uncharge (-1 = resolve as
                  docs/model.md §3), target of attach/set_active (-1 = clear), limit writes,
                  page-state changes and memory.reclaim
gfp      <u4      gfp mask for charge
op       u1       an :class:`Op`
kind     u1       a :class:`~memcg_emu.PageKind` for charge/uncharge
pad      <u2      zero
=======  =======  ========================================================================

Limits (``arg`` of SET_MAX/HIGH/LOW/MIN/SWAP_MAX) are in pages; ``PAGE_COUNTER_MAX`` is "max".
``FLAGS_RESTORE`` carries no value: it restores what the task's innermost ``FLAGS_SAVE``
returned (replay has no return values to pass around).

Versions.  Version 2 has the layout of version 1; what changed is what a stream means and what
a workload setup can say.  (1) A kill marks, it does not end a task: an OOM victim in user space
exits only after the whole kill, oom.group scan included (so the scan kills and counts it
again, as ``mm/oom_kill.c: oom_kill_process()`` does); ``KILL`` reaches every thread of the
target's process.  (2) A setup task may be a thread (``TaskSpec.thread_of``).  Version 1 files
still load (:data:`READABLE_VERSIONS`) and replay with version 2 semantics; a version 1 stream
has no threads, so only its oom.group kill counts can differ.
"""
from __future__ import annotations

import enum

import numpy as np

from .errors import InvalidEventError

FORMAT_VERSION = 2
#: Versions the loaders accept (files are always written as FORMAT_VERSION).
READABLE_VERSIONS = (1, 2)

EVENT_DTYPE = np.dtype(
    [
        ("time", "<i8"),
        ("arg", "<i8"),
        ("task", "<i4"),
        ("memcg", "<i4"),
        ("gfp", "<u4"),
        ("op", "u1"),
        ("kind", "u1"),
        ("pad", "<u2"),
    ],
    align=False,
)
assert EVENT_DTYPE.itemsize == 32


class Op(enum.IntEnum):
    CHARGE = 0
    UNCHARGE = 1
    RETURN_TO_USER = 2
    FLAGS_SAVE = 3  # memalloc_flags_save(arg)
    FLAGS_RESTORE = 4  # memalloc_flags_restore(<innermost saved value>)
    ACCOUNT_FORCE_SAVE = 5  # the patch's memalloc_account_force_save()
    ACCOUNT_FORCE_RESTORE = 6  # the patch's v1 memalloc_account_force_restore() (no argument)
    SET_ACTIVE_MEMCG = 7
    ATTACH = 8
    EXIT = 9
    SET_MAX = 10
    SET_HIGH = 11
    SET_LOW = 12
    SET_MIN = 13
    SET_SWAP_MAX = 14
    SET_DIRTY = 15  # file -> file_dirty
    START_WRITEBACK = 16  # file_dirty -> file_writeback
    END_WRITEBACK = 17  # file_writeback -> file
    KILL = 18
    BLOCK = 19
    WAKE = 20
    OOM_REAP = 21
    RECLAIM = 22  # memory.reclaim (arg pages)
    NOP = 23


NR_OPS = 24

#: What ``ReplayResult.rc[i]`` holds for each op (0 for the ops not listed).
RC_MEANING = {
    Op.CHARGE: "0, -ENOMEM, or EMU_LIVELOCK",
    Op.RETURN_TO_USER: "memory.high penalty slept, in jiffies",
    Op.FLAGS_SAVE: "the value memalloc_flags_save() returned (bits newly set)",
    Op.ACCOUNT_FORCE_SAVE: "the value memalloc_account_force_save() returned",
    Op.SET_ACTIVE_MEMCG: "the previous active memcg index, -1 for none",
    Op.OOM_REAP: "pages the OOM reaper freed",
    Op.RECLAIM: "0 or -EAGAIN (memory.reclaim)",
}

# Which fields an op uses (for validation).
TASK_OPS = frozenset({Op.CHARGE, Op.UNCHARGE, Op.RETURN_TO_USER, Op.FLAGS_SAVE,
                      Op.FLAGS_RESTORE, Op.ACCOUNT_FORCE_SAVE, Op.ACCOUNT_FORCE_RESTORE,
                      Op.SET_ACTIVE_MEMCG, Op.ATTACH, Op.EXIT, Op.KILL, Op.BLOCK, Op.WAKE})
MEMCG_OPS = frozenset({Op.ATTACH, Op.SET_MAX, Op.SET_HIGH, Op.SET_LOW, Op.SET_MIN,
                       Op.SET_SWAP_MAX, Op.SET_DIRTY, Op.START_WRITEBACK, Op.END_WRITEBACK,
                       Op.RECLAIM})
PAGES_OPS = frozenset({Op.CHARGE, Op.UNCHARGE, Op.SET_DIRTY, Op.START_WRITEBACK,
                       Op.END_WRITEBACK, Op.RECLAIM})
LIMIT_OPS = frozenset({Op.SET_MAX, Op.SET_HIGH, Op.SET_LOW, Op.SET_MIN, Op.SET_SWAP_MAX})

# Errors the replay loop can only see while running (the state decides); the wrapper maps
# them to exceptions after restoring the snapshot.
ERR_NONE = 0
ERR_POOL_SHORT = 1
ERR_NO_SCOPE = 2
ERR_SCOPE_DEPTH = 3
ERR_TASK_EXITED = 4
ERR_TASK_BLOCKED = 5
ERR_NOT_BLOCKED = 6
# replay_loop(..., validate=True): the event breaks a static rule of replay.validate_events
# (the wrapper words it with validate_events; never counted by on_error="count")
ERR_INVALID = 7
ERR_MESSAGES = {
    ERR_POOL_SHORT: "the cgroup holds fewer pages of that kind than the event asks for",
    ERR_NO_SCOPE: "restore without a matching save (the task has no open scope)",
    ERR_SCOPE_DEPTH: "too many nested flag scopes",
    ERR_TASK_EXITED: "the task has exited",
    ERR_TASK_BLOCKED: "the task is blocked (D state) and cannot run",
    ERR_NOT_BLOCKED: "wake of a task that is not blocked",
}


_FIELD_RANGES = {name: (int(np.iinfo(dt).min), int(np.iinfo(dt).max))
                 for name, (dt, _) in EVENT_DTYPE.fields.items()}


def check_row(row: tuple, what: str, index: int, error=InvalidEventError) -> None:
    """Refuse a builder row (in EVENT_DTYPE field order) with a value that is not an int or
    does not fit its field, naming the row and field (numpy would cast 1.5 to 1, or fail with
    an OverflowError naming neither)."""
    for name, v in zip(EVENT_DTYPE.names, row):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise error(f"{what} {index}: field {name!r} = {v!r} is not an int")
        lo, hi = _FIELD_RANGES[name]
        if not lo <= v <= hi:
            raise error(f"{what} {index}: field {name!r} = {v} does not fit "
                        f"{EVENT_DTYPE.fields[name][0]}")


def fit_field(col: np.ndarray, name: str, want: np.dtype) -> np.ndarray:
    """``col`` cast to ``want`` only if every value fits exactly; otherwise InvalidEventError
    naming the first event and the field (no unsafe numpy casts: 256 is not op 0)."""
    if col.ndim != 1 or col.dtype.names is not None or col.dtype.subdtype is not None:
        raise InvalidEventError(f"field {name!r} has dtype {col.dtype} (a subarray or nested "
                                f"field); it must be one integer per event ({want})")
    kind = col.dtype.kind
    if kind not in "biuf":
        raise InvalidEventError(f"field {name!r} has dtype {col.dtype}; it must be an integer "
                                f"type ({want})")
    info = np.iinfo(want)
    if kind == "f":
        bad = ~np.isfinite(col) | (col != np.floor(col)) | (col < info.min) | (col > info.max)
        # float64 cannot tell 2**63 - 1 from 2**63: refuse what rounds to the edge
        bad |= col >= float(info.max)
    elif kind == "b":
        bad = np.zeros(col.shape, bool)
    elif col.dtype.kind == "u" and np.iinfo(col.dtype).max > info.max:
        bad = col > info.max
    elif col.dtype.kind == "i" and want.kind == "u":
        bad = (col < 0) | (col.astype(np.uint64) > info.max)
    else:
        ci = np.iinfo(col.dtype)
        bad = np.zeros(col.shape, bool)
        if ci.min < info.min:
            bad |= col < info.min
        if ci.max > info.max:
            bad |= col > info.max
    if bad.any():
        i = int(np.argmax(bad))
        raise InvalidEventError(f"event {i}: field {name!r} = {col[i].item()!r} does not fit "
                                f"{want} (the event format's type for it)")
    return col.astype(want)


def empty(n: int) -> np.ndarray:
    """``n`` zeroed events (all NOP with task = memcg = -1)."""
    ev = np.zeros(n, dtype=EVENT_DTYPE)
    ev["op"] = Op.NOP
    ev["task"] = -1
    ev["memcg"] = -1
    return ev


def from_columns(op, task=-1, arg=0, memcg=-1, gfp=0, kind=0, time=None) -> np.ndarray:
    """Build an event array from numpy columns (scalars broadcast)."""
    op = np.asarray(op)
    if op.ndim != 1:
        raise InvalidEventError(f"from_columns: op must be one-dimensional, not shape "
                                f"{op.shape}")
    n = op.shape[0]
    ev = empty(n)
    cols = {"op": op, "task": task, "arg": arg, "memcg": memcg, "gfp": gfp, "kind": kind,
            "time": np.arange(n, dtype=np.int64) if time is None else time}
    for name, col in cols.items():  # every value must fit its field: no unsafe casts
        try:
            col = np.broadcast_to(np.asarray(col), (n,))
        except ValueError:
            raise InvalidEventError(f"from_columns: {name} has shape {np.shape(col)}, not "
                                    f"({n},) or a scalar") from None
        ev[name] = fit_field(col, name, EVENT_DTYPE.fields[name][0])
    return ev


class EventBuilder:
    """Append events one by one from Python, then ``build()`` one array.

    >>> b = EventBuilder(); b.charge(0, 4); b.return_to_user(0); ev = b.build()
    """

    def __init__(self):
        self._rows: list[tuple] = []

    def _add(self, op, task=-1, arg=0, memcg=-1, gfp=0, kind=0, time=None):
        row = (len(self._rows) if time is None else time, arg, task, memcg, gfp, int(op),
               kind, 0)
        check_row(row, "EventBuilder: event", len(self._rows))
        self._rows.append(row)
        return self

    def charge(self, task, nr_pages, gfp=0xCC0, kind=0, memcg=-1, time=None):
        return self._add(Op.CHARGE, task, nr_pages, memcg, gfp, kind, time)

    def uncharge(self, task, nr_pages, kind=0, memcg=-1, time=None):
        return self._add(Op.UNCHARGE, task, nr_pages, memcg, 0, kind, time)

    def return_to_user(self, task, time=None):
        return self._add(Op.RETURN_TO_USER, task, time=time)

    def flags_save(self, task, flags, time=None):
        return self._add(Op.FLAGS_SAVE, task, flags, time=time)

    def flags_restore(self, task, time=None):
        return self._add(Op.FLAGS_RESTORE, task, time=time)

    def account_force_save(self, task, time=None):
        return self._add(Op.ACCOUNT_FORCE_SAVE, task, time=time)

    def account_force_restore(self, task, time=None):
        return self._add(Op.ACCOUNT_FORCE_RESTORE, task, time=time)

    def set_active_memcg(self, task, memcg, time=None):
        return self._add(Op.SET_ACTIVE_MEMCG, task, 0, memcg, time=time)

    def attach(self, task, memcg, time=None):
        return self._add(Op.ATTACH, task, 0, memcg, time=time)

    def exit(self, task, time=None):
        return self._add(Op.EXIT, task, time=time)

    def kill(self, task, time=None):
        return self._add(Op.KILL, task, time=time)

    def block(self, task, time=None):
        return self._add(Op.BLOCK, task, time=time)

    def wake(self, task, time=None):
        return self._add(Op.WAKE, task, time=time)

    def set_limit(self, which: str, memcg, pages, time=None):
        op = {"max": Op.SET_MAX, "high": Op.SET_HIGH, "low": Op.SET_LOW, "min": Op.SET_MIN,
              "swap.max": Op.SET_SWAP_MAX}[which]
        return self._add(op, -1, pages, memcg, time=time)

    def set_dirty(self, memcg, pages, time=None):
        return self._add(Op.SET_DIRTY, -1, pages, memcg, time=time)

    def start_writeback(self, memcg, pages, time=None):
        return self._add(Op.START_WRITEBACK, -1, pages, memcg, time=time)

    def end_writeback(self, memcg, pages, time=None):
        return self._add(Op.END_WRITEBACK, -1, pages, memcg, time=time)

    def oom_reap(self, time=None):
        return self._add(Op.OOM_REAP, time=time)

    def reclaim(self, memcg, pages, time=None):
        return self._add(Op.RECLAIM, -1, pages, memcg, time=time)

    def build(self) -> np.ndarray:
        return np.array(self._rows, dtype=EVENT_DTYPE)
