"""Property-based fuzzing of the public surface (hypothesis, derandomized, bounded example
counts): replay arrays, step calls, cgroupfs writes, the checked engine, event files and timed
programs.  Every call must either return or raise an error from memcg_emu.errors; after an
error the state is exactly what it was; after a result the state invariants hold; and every
call returns within a wall-clock bound (a guard against hangs, generous enough for a loaded
machine; nothing here measures speed)."""
from __future__ import annotations

import contextlib
import re
import signal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import memcg_emu as me
from memcg_emu import io
from memcg_emu.errors import EmuError, InvalidFileError
from memcg_emu.events import EVENT_DTYPE, NR_OPS, EventBuilder
from memcg_emu.timed import CostModel, ProgramBuilder, TimedSim, TOp

BOUND_S = 30  # no single call may take longer (the slowest legitimate one here takes ~0.1 s)
FUZZ = settings(derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class Hang(Exception):
    pass


@contextlib.contextmanager
def bounded(seconds: int = BOUND_S):
    def fire(signum, frame):
        raise Hang(f"a call took longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


NAMED = re.compile(r"^(Emulator|PeakFile|TimedSim|engine|memcg_emu)\.?[\w.]*: \S")


def snapshot(emu):
    return ({n: getattr(emu.state, n).copy() for n in emu.state.field_names()},
            dict(emu._paths), len(emu._tasks))


def assert_unchanged(emu, snap):
    arrays, paths, n_tasks = snap
    for n, arr in arrays.items():
        np.testing.assert_array_equal(getattr(emu.state, n), arr, err_msg=n)
    assert emu._paths == paths and len(emu._tasks) == n_tasks


def machine(backend=None):
    emu = me.Emulator(backend=backend, nr_cpus=2)
    emu.mkdir("A")
    emu.mkdir("A/B")
    emu.write("A", "memory.max", "256K")
    emu.new_task("A")
    emu.new_task("A/B")
    emu.new_task("/", kthread=True)
    emu.charge(0, 8)
    emu.charge(1, 4, kind="file")
    return emu


def call_checked(emu, fn, *args, **kwargs):
    """fn(*args): a result, or an EmuError with the state untouched."""
    snap = snapshot(emu)
    try:
        with bounded():
            out = fn(*args, **kwargs)
    except EmuError as e:
        assert NAMED.match(str(e)), f"the message does not name the call: {e}"
        assert_unchanged(emu, snap)
        return e
    return out


BACKENDS = ["cython", "python"] if me.BACKEND == "cython" else ["python"]

# =============================================================================================
# replay arrays
# =============================================================================================
INT_EDGES = [-(2**63), -(2**31) - 1, -2, -1, 0, 1, 2, 3, 7, 64, 255, 256, 2**31 - 1, 2**32,
             2**40, 2**40 + 1, 2**46, 2**62, 2**63 - 1]
_TASK_OPS = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 18, 19, 20}
_NEEDS_MEMCG = {8, 10, 11, 12, 13, 14, 15, 16, 17, 22}
# mostly plausible events (so most replays run), each array poisoned with probability ~1/3
event = st.tuples(st.integers(0, NR_OPS - 1), st.sampled_from([0, 0, 1]),
                  st.sampled_from([-1, 1, 2]), st.integers(1, 24),
                  st.sampled_from([0, 0, 1, 2, 4, 5]),
                  st.sampled_from([me.GFP_KERNEL, me.GFP_NOFS | me.__GFP_NOFAIL, me.GFP_ATOMIC,
                                   me.GFP_NOWAIT]),
                  st.integers(0, 50))
poison = st.one_of(st.none(), st.none(), st.tuples(
    st.integers(0, 20), st.sampled_from(["op", "task", "memcg", "arg", "gfp", "kind", "time"]),
    st.one_of(st.sampled_from(INT_EDGES), st.sampled_from([NR_OPS, 255, 4294967295]))))


def build_events(rows, poison_spec, wide):
    out = []
    for op, task, memcg, arg, kind, gfp, t in rows:
        if op not in _TASK_OPS:
            task = -1
        if op in _NEEDS_MEMCG and memcg < 0:
            memcg = 1
        if op in (10, 11, 12, 13, 14):
            arg *= 4
        out.append({"op": op, "task": task, "memcg": memcg, "arg": arg, "kind": kind,
                    "gfp": gfp if op == 0 else 0, "time": t})
    if poison_spec is not None and out:
        i, f, v = poison_spec
        out[i % len(out)][f] = v
    if wide:  # another layout: int64 fields, values not forced to fit
        ev = np.zeros(len(out), [(n, "<i8") for n in EVENT_DTYPE.names])
        for i, r in enumerate(out):
            for k, v in r.items():
                ev[k][i] = v if -(2**63) <= v < 2**63 else -1
        return ev
    ev = np.zeros(len(out), EVENT_DTYPE)
    for i, r in enumerate(out):
        for k, v in r.items():
            ev[k][i] = np.array(v).astype(np.uint64 if v >= 2**63 else np.int64).astype(
                EVENT_DTYPE[k], casting="unsafe")
    return ev


@pytest.mark.parametrize("backend", BACKENDS)
@FUZZ
@given(rows=st.lists(event, max_size=12), poison_spec=poison, sorted_time=st.booleans(),
       sample_every=st.sampled_from([0, 0, 1, 3, 2**63 - 1, 2**63, -1]),
       sample_dt=st.sampled_from([0, 0, 1, 10, 10**9, 2**62]),
       max_samples=st.sampled_from([None, None, 0, 5, -1, 2**64]), wide=st.booleans())
def test_replay_arrays(backend, rows, poison_spec, sorted_time, sample_every, sample_dt,
                       max_samples, wide):
    emu = machine(backend)
    ev = build_events(rows, poison_spec, wide)
    if sorted_time:
        ev["time"] = np.sort(ev["time"])
    out = call_checked(emu, emu.replay, ev, sample_every=sample_every, sample_dt=sample_dt,
                       max_samples=max_samples)
    if not isinstance(out, EmuError):
        assert out.n_events == len(ev)
        emu.check_invariants()


# =============================================================================================
# step calls
# =============================================================================================
EDGES = st.sampled_from([-1, 2**40 + 1, 2**63, 2**64, 1.5, True, None, "Z", "", "\u0967",
                         "swap", "memory.bogus", "__class__", 7])
TASK = st.sampled_from([0, 0, 1, 2])
PATH = st.sampled_from(["A", "A", "A/B", "/"])
NR = st.integers(1, 40)
KIND = st.sampled_from(["anon", "anon", "file", "file_dirty", "kernel", "unevictable"])
FILES = st.sampled_from(["memory.max", "memory.high", "memory.low", "memory.min",
                         "memory.current", "memory.peak", "memory.events", "memory.stat",
                         "memory.oom.group", "memory.reclaim", "cgroup.procs",
                         "memory.swap.max"])
VALUE = st.sampled_from(["max", "0", "64K", "128K", "1M", "4096", "1", "0x10000"])
STEP_ARGS = {
    "charge": st.tuples(TASK, NR, st.sampled_from([me.GFP_KERNEL, me.GFP_NOFS,
                                                   me.GFP_KERNEL | me.__GFP_NOFAIL]), KIND),
    "uncharge": st.tuples(TASK, st.integers(1, 8), KIND),
    "new_task": st.tuples(PATH), "attach": st.tuples(TASK, PATH), "kill": st.tuples(TASK),
    "exit": st.tuples(TASK), "block": st.tuples(TASK), "wake": st.tuples(TASK),
    "return_to_user": st.tuples(TASK), "mmap_lock": st.tuples(TASK),
    "mmap_unlock": st.tuples(TASK), "memalloc_account_force_save": st.tuples(TASK),
    "memalloc_account_force_restore": st.tuples(TASK), "task_view": st.tuples(TASK),
    "charge_outcome": st.tuples(TASK), "task": st.tuples(TASK),
    "write": st.tuples(PATH, FILES, VALUE), "read": st.tuples(PATH, FILES),
    "mkdir": st.tuples(st.sampled_from(["A/C", "D", "A/B/E"])), "rmdir": st.tuples(PATH),
    "set_dirty": st.tuples(PATH, st.integers(1, 4)),
    "start_writeback": st.tuples(PATH, st.integers(1, 4)),
    "end_writeback": st.tuples(PATH, st.integers(1, 4)),
    "memalloc_flags_save": st.tuples(TASK, st.sampled_from([me.PF_MEMALLOC_NOFS,
                                                            me.PF_MEMALLOC_ACCOUNTFORCE])),
    "memalloc_flags_restore": st.tuples(TASK, st.sampled_from([0, me.PF_MEMALLOC_NOFS])),
    "set_active_memcg": st.tuples(TASK, st.sampled_from(["A/B", None])),
    "pages": st.tuples(PATH, st.sampled_from(["usage", "max", "watermark"])),
    "events": st.tuples(PATH), "pool": st.tuples(PATH),
    "open": st.tuples(PATH, st.just("memory.peak")), "set_cpu": st.tuples(TASK, TASK),
    "oom_reaper": st.tuples(), "cgroup_id": st.tuples(PATH),
}
STEP = st.sampled_from(sorted(STEP_ARGS)).flatmap(
    lambda name: st.tuples(st.just(name), STEP_ARGS[name],
                           st.one_of(st.none(), st.none(), st.tuples(st.integers(0, 3), EDGES))))


@pytest.mark.parametrize("backend", BACKENDS)
@FUZZ
@given(calls=st.lists(STEP, min_size=1, max_size=14))
def test_step_calls(backend, calls):
    emu = machine(backend)
    for name, args, mutate in calls:
        args = list(args)
        if mutate is not None:  # one argument replaced by an edge value (or one too many)
            i, v = mutate
            args[i:i + 1] = [v]
        out = call_checked(emu, getattr(emu, name), *args)
        if not isinstance(out, EmuError):
            emu.check_invariants()


# =============================================================================================
# cgroupfs writes, against an independent reading of memparse()
# =============================================================================================
U64 = (1 << 64) - 1
_REF = re.compile(r"(0[xX](?=[0-9a-fA-F])[0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*|)([KkMmGgTtPpEe]?)")


def ref_memparse_pages(text: str):
    s = text.strip(" \t\n\v\f\r")
    if s == "max":
        return me.PAGE_COUNTER_MAX
    m = _REF.fullmatch(s)
    if m is None:
        return None
    num, suffix = m.groups()
    if num[:2].lower() == "0x":
        v = int(num[2:], 16)
    elif num.startswith("0"):
        v = int(num, 8)
    else:
        v = int(num or "0")
    shift = {"": 0, "k": 10, "m": 20, "g": 30, "t": 40, "p": 50, "e": 60}[suffix.lower()]
    return min(((v & U64) << shift & U64) // me.PAGE_SIZE, me.PAGE_COUNTER_MAX)


LIMITS = {"memory.max": "max", "memory.high": "high", "memory.low": "low",
          "memory.min": "min", "memory.swap.max": "swap_max", "memory.swap.high": "swap_high"}
TEXT = st.text(alphabet="0123456789xXaAfFkKmMgGeEtp max+-. \n\t\u0967", max_size=14)


@FUZZ
@given(writes=st.lists(st.tuples(st.sampled_from([*LIMITS, "memory.oom.group",
                                                  "memory.reclaim", "cgroup.procs",
                                                  "memory.peak", "memory.bogus"]),
                                 st.sampled_from(["A", "A/B", "/"]), TEXT),
                       min_size=1, max_size=10))
def test_cgroupfs_writes(writes):
    emu = machine()
    for file, path, text in writes:
        out = call_checked(emu, emu.write, path, file, text, nonblock=True)
        if file in LIMITS and path != "/":
            want = ref_memparse_pages(text)
            if want is None:
                assert isinstance(out, EmuError), (text, out)
            elif not isinstance(out, EmuError):
                assert emu.pages(path, LIMITS[file]) == want, text
        if not isinstance(out, EmuError):
            emu.check_invariants()


# =============================================================================================
# the checked engine
# =============================================================================================
ENGINE_CALLS = {
    "charge": 5, "charge_start": 5, "charge_step": 1, "uncharge": 4, "emu_move_pages": 4,
    "emu_charge_target": 2, "drain_all_stock": 1, "return_to_user": 1, "rtu_start": 1,
    "rtu_step": 1, "memalloc_flags_save": 2, "memalloc_flags_restore": 2,
    "memalloc_account_force_restore": 1, "set_active_memcg": 2, "attach_task": 2,
    "block_task": 1, "wake_task": 1, "kill_task": 1, "exit_task": 1, "oom_reap_task": 2,
    "oom_reaper": 0, "memory_max_write": 3, "memory_high_write": 3, "memory_min_write": 2,
    "memory_low_write": 2, "memory_reclaim": 3, "effective_protection": 6, "get_order": 1,
    "calculate_overage": 2, "calculate_high_delay": 2, "emu_scan_count": 4,
}
ENGINE_ARGS = st.one_of(st.integers(0, 2), st.integers(0, 2), st.integers(-1, 70),
                        st.sampled_from([3, 7, 99, 2**31, 10**7, 2**40, 2**63 - 1, 2**63,
                                         -(2**63), 1.5, None]))


@pytest.mark.parametrize("backend", BACKENDS)
@FUZZ
@given(calls=st.lists(st.tuples(st.sampled_from(sorted(ENGINE_CALLS)),
                                st.lists(ENGINE_ARGS, min_size=6, max_size=6)),
                      min_size=1, max_size=12))
def test_checked_engine(backend, calls):
    emu = machine(backend)
    eng = emu.engine
    for name, args in calls:
        call_checked(emu, getattr(eng, name), *args[:ENGINE_CALLS[name]])
    # whatever ran, the process is alive and the arrays are intact
    assert emu.state.n_tasks == 3 and emu.state.n_cgroups == 3


# =============================================================================================
# files
# =============================================================================================
@pytest.fixture(scope="module")
def good_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("good")
    ev = EventBuilder().charge(0, 3).charge(1, 2, kind=1).uncharge(0, 1).build()
    io.save_npz(d / "e.npz", ev, compress=True)
    io.save_npy(d / "e.npy", ev)
    io.write_parquet(d / "e.parquet", ev)
    return {p.suffix: p.read_bytes() for p in d.iterdir()}


@FUZZ
@given(suffix=st.sampled_from([".npz", ".npy", ".parquet"]),
       cut=st.floats(0, 1), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)),
                                           max_size=8))
def test_event_files(good_files, tmp_path_factory, suffix, cut, flips):
    data = bytearray(good_files[suffix])
    for where, byte in flips:
        data[min(int(where * len(data)), len(data) - 1)] = byte
    data = data[: max(int(cut * len(data)), 1) if cut < 1 else len(data)]
    p = tmp_path_factory.mktemp("f") / f"x{suffix}"
    p.write_bytes(bytes(data))
    try:
        with bounded():
            ev = io.load_events(p)
    except InvalidFileError as e:
        assert str(p) in str(e)
        return
    assert ev.dtype == EVENT_DTYPE
    m = machine()
    call_checked(m, m.replay, ev)  # loaded garbage is still validated


# =============================================================================================
# timed programs
# =============================================================================================
PROGRAM_OPS = st.sampled_from([
    ("charge", 1), ("uncharge", 1), ("return_to_user", 0), ("flags_save", 1),
    ("flags_restore", 0), ("compute", 1), ("sleep", 1), ("mutex_lock", 1),
    ("mutex_unlock", 1), ("down_read", 1), ("up_read", 1), ("down_write", 1), ("up_write", 1),
    ("journal_start", 1), ("journal_stop", 0), ("dirty", 1), ("loop", 2), ("exit", 0),
    ("kill", 1)])
PROGRAM_ARGS = st.one_of(st.integers(-2, 5), st.sampled_from([1000, 10**6, 2**40, 2**62, 1.5]))


@FUZZ
@given(progs=st.lists(st.lists(st.tuples(PROGRAM_OPS, st.lists(PROGRAM_ARGS, min_size=2,
                                                               max_size=2)),
                               min_size=1, max_size=6), min_size=1, max_size=3),
       start=st.sampled_from([0, 1000, -1, 2**63, 1.5]), until=st.sampled_from([0, 10**6,
                                                                                2 * 10**7]))
def test_timed_programs(progs, start, until):
    sim = TimedSim(costs=CostModel(), strict=False, max_ops_per_instant=5000, trace=False)
    sim.mkdir("A")
    sim.write("A", "memory.max", "64K")
    for ops in progs:
        b = ProgramBuilder()
        try:
            for (name, nargs), args in ops:
                getattr(b, name)(*args[:nargs])
            prog = b.build()
        except EmuError:
            continue
        n_before = sim.emu.state.n_tasks
        try:
            with bounded():
                sim.add_task("A", prog, start_ns=start)
        except EmuError:
            assert sim.emu.state.n_tasks == n_before  # nothing half-applied
    try:
        with bounded():
            res = sim.run(until)
    except EmuError:
        return
    except RuntimeError as e:  # a zero-time loop cannot advance the simulation: reported
        assert "without time passing" in str(e)
        return
    assert res.summary["sim_time_ns"] == until
    sim.emu.check_invariants()


def test_timed_loops_are_refused_before_they_start():
    for op in (TOp.COMPUTE, TOp.SLEEP):
        assert int(op) >= 32  # timed ops live above the replay ops
    with pytest.raises(EmuError, match="MAX_SAMPLES"):
        TimedSim(sample_dt_ns=1000).run(2**40)
