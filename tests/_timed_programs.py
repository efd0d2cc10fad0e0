"""Generated timed simulations for tests/test_timed_backends.py: hypothesis strategies for
task programs (every TOp and every replay op a program may hold), threads, kills, locks,
nested journal handles, LOOPs, exits and control ops, and a builder that makes the same
simulation for any scheduler."""
from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st

from memcg_emu import (GFP_KERNEL, GFP_NOFS, PAGE_SIZE, PF_MEMALLOC_NOFS, PageKind,
                       __GFP_NOFAIL, __GFP_RETRY_MAYFAIL)
from memcg_emu.events import EventBuilder, Op
from memcg_emu.policy import Policy
from memcg_emu.timed import CostModel, FlusherConfig, JournalConfig, ProgramBuilder, TimedSim

US = 1_000
MS = 1_000_000
N_CG = 3  # "/", "/A", "/A/B"
GFPS = (GFP_KERNEL, GFP_NOFS, GFP_NOFS | __GFP_NOFAIL, GFP_KERNEL | __GFP_RETRY_MAYFAIL)
CHARGE_KINDS = (int(PageKind.ANON), int(PageKind.FILE), int(PageKind.FILE_DIRTY),
                int(PageKind.KERNEL), int(PageKind.UNEVICTABLE))
SMALL_NS = st.sampled_from((0, 20 * US, 100 * US, 700 * US, 3 * MS))

# one op: (name, args...)
OPS = st.one_of(
    st.tuples(st.just("compute"), SMALL_NS),
    st.tuples(st.just("sleep"), SMALL_NS),
    st.tuples(st.sampled_from(("mutex_lock", "mutex_unlock")), st.integers(0, 1)),
    st.tuples(st.sampled_from(("down_read", "up_read", "down_write", "up_write")),
              st.integers(-1, 0)),
    st.tuples(st.just("journal_start"), st.integers(0, 3)),
    st.tuples(st.just("journal_stop")),
    st.tuples(st.just("dirty"), st.integers(1, 30), st.sampled_from(GFPS),
              st.integers(-1, N_CG - 1)),
    st.tuples(st.just("charge"), st.integers(1, 60), st.sampled_from(CHARGE_KINDS),
              st.sampled_from(GFPS)),
    st.tuples(st.just("uncharge"), st.integers(1, 30), st.sampled_from(CHARGE_KINDS)),
    st.tuples(st.just("rtu")),
    st.tuples(st.just("flags_save")),
    st.tuples(st.just("flags_restore")),
    st.tuples(st.just("af_save")),
    st.tuples(st.just("af_restore")),
    st.tuples(st.just("set_active"), st.integers(-1, N_CG - 1)),
    st.tuples(st.just("kill"), st.integers(-1, 7)),
    st.tuples(st.just("limit"), st.sampled_from(("max", "high", "low", "min", "swap.max")),
              st.integers(1, N_CG - 1), st.integers(0, 400)),
    st.tuples(st.sampled_from(("set_dirty", "start_writeback", "end_writeback", "reclaim")),
              st.integers(1, N_CG - 1), st.integers(1, 20)),
    st.tuples(st.just("nop")),
    st.tuples(st.just("exit")),
    st.tuples(st.just("loop"), st.integers(0, 1000), st.sampled_from((-1, 0, 1, 2, 3))),
)


@dataclass
class TaskSpec:
    program: list
    cgroup: str = "A"
    thread_of: int = -1  # index of an earlier spec: a thread of that process
    same_group: bool = True
    kthread: bool = False
    start_ns: int = 0
    cpu: int = 0


@dataclass
class SimSpec:
    tasks: list
    policy: str = "baseline"
    costs: str = "default"
    max_pages: int = 300
    control: list = field(default_factory=list)  # (time_ns, name, args)
    late: list = field(default_factory=list)  # TaskSpecs added between the two runs
    write_between: int = 0  # a memory.max write between the runs (pages, 0: none)
    strict: bool = False
    flusher: bool = True
    t1: int = 15 * MS
    t2: int = 60 * MS
    background: bool = False  # add BACKGROUND's tasks: OOM victims in D state, writeback
    livelock_limit: int = 1 << 62  # the step API's 8 stops looping paths (OUT_LIVELOCK)


def _task(draw_program):
    return st.builds(
        TaskSpec, program=draw_program,
        cgroup=st.sampled_from(("A", "A/B")),
        thread_of=st.integers(-1, 3), same_group=st.booleans(),
        kthread=st.just(False), start_ns=st.sampled_from((0, 0, 1 * MS, 5 * MS)),
        cpu=st.integers(0, 1))


PROGRAMS = st.lists(OPS, min_size=1, max_size=14)
CONTROL = st.tuples(st.integers(0, 35 * MS), st.sampled_from(("kill", "max", "high")),
                    st.integers(0, 400))

SIMS = st.builds(
    SimSpec,
    tasks=st.lists(_task(PROGRAMS), min_size=1, max_size=6),
    policy=st.sampled_from(("baseline", "accountforce-v1", "legacy-dying-bypass",
                            "accountforce-fixed", "nofail-bypass", "fast-reaper")),
    costs=st.sampled_from(("default", "slow", "zero")),
    max_pages=st.integers(40, 400),
    control=st.lists(CONTROL, max_size=3),
    late=st.lists(_task(PROGRAMS), max_size=2),
    write_between=st.sampled_from((0, 0, 60, 250)),
    strict=st.booleans(),
    flusher=st.booleans(),
    background=st.booleans(),
    livelock_limit=st.sampled_from((1 << 62, 1 << 62, 8)),
)

# memory pressure in /A: a mutex holder, a big waiter behind it (the OOM victim, in D state,
# so the reaper has work), a grower (the OOMs), a dirtier (writeback under reclaim)
BACKGROUND = (
    ProgramBuilder().mutex_lock(5).compute(6 * MS).mutex_unlock(5).return_to_user()
    .sleep(1 * MS).loop(0),
    ProgramBuilder().charge(30).return_to_user().mutex_lock(5).charge(2).mutex_unlock(5)
    .return_to_user().uncharge(2).sleep(2 * MS).loop(1),
    ProgramBuilder().charge(8).return_to_user().compute(300 * US).loop(0, -1),
    ProgramBuilder().dirty(12).return_to_user().sleep(4 * MS).loop(0),
    ProgramBuilder().down_write(1).compute(1 * MS).up_write(1).return_to_user()
    .sleep(2 * MS).loop(0),
    ProgramBuilder().down_read(1).compute(2 * MS).up_read(1).return_to_user()
    .sleep(500 * US).loop(0),
)
# a process whose threads share its mmap_lock: a writer, and a faulting reader
BACKGROUND_MM = (
    ProgramBuilder().down_write(-1).charge(4).compute(2 * MS).up_write(-1).return_to_user()
    .compute(1 * MS).loop(0),
    ProgramBuilder().down_read(-1).charge(1).up_read(-1).return_to_user().compute(500 * US)
    .loop(0),
)

COSTS = {
    "default": CostModel(),
    "slow": CostModel(reclaim_call_ns=50 * US, page_scanned_ns=1 * US, writeback_page_ns=200 * US,
                      journal_commit_ns=2 * MS, oom_invocation_ns=1 * MS, exit_page_ns=10 * US),
    "zero": CostModel.zero(),
}


def build_program(ops, n_tasks):
    b = ProgramBuilder()
    for op in ops:
        name, args = op[0], op[1:]
        i = len(b)
        if name == "compute":
            b.compute(args[0])
        elif name == "sleep":
            b.sleep(args[0])
        elif name in ("mutex_lock", "mutex_unlock", "down_read", "up_read", "down_write",
                      "up_write"):
            getattr(b, name)(args[0])
        elif name == "journal_start":
            b.journal_start(args[0])
        elif name == "journal_stop":
            b.journal_stop()
        elif name == "dirty":
            b.dirty(args[0], gfp=args[1], memcg=args[2])
        elif name == "charge":
            b.charge(args[0], gfp=args[2], kind=args[1])
        elif name == "uncharge":
            b.uncharge(args[0], kind=args[1])
        elif name == "rtu":
            b.return_to_user()
        elif name == "flags_save":
            b.flags_save(PF_MEMALLOC_NOFS)
        elif name == "flags_restore":
            b.flags_restore()
        elif name == "af_save":
            b.op(Op.ACCOUNT_FORCE_SAVE)
        elif name == "af_restore":
            b.op(Op.ACCOUNT_FORCE_RESTORE)
        elif name == "set_active":
            b.op(Op.SET_ACTIVE_MEMCG, memcg=args[0])
        elif name == "kill":
            b.kill(args[0] if args[0] < 0 else args[0] % n_tasks)
        elif name == "limit":
            b.set_limit(args[0], args[1], args[2])
        elif name in ("set_dirty", "start_writeback", "end_writeback", "reclaim"):
            code = {"set_dirty": Op.SET_DIRTY, "start_writeback": Op.START_WRITEBACK,
                    "end_writeback": Op.END_WRITEBACK, "reclaim": Op.RECLAIM}[name]
            b.op(code, args[1], args[0])
        elif name == "nop":
            b.op(Op.NOP)
        elif name == "exit":
            b.exit()
        elif name == "loop":
            if args[1] == -1:  # forever: a body that takes time (else: a zero-time loop)
                b.compute(400 * US)
                i += 1
            if i == 0:
                b.compute(10 * US)
            else:
                b.loop(args[0] % i, args[1])
    return b.build()


def _add(sim, spec, pids, n_tasks):
    prog = build_program(spec.program, n_tasks)
    if spec.thread_of >= 0 and spec.thread_of < len(pids):
        return sim.add_thread(pids[spec.thread_of], prog, cpu=spec.cpu,
                              start_ns=max(spec.start_ns, sim.now),
                              same_thread_group=spec.same_group)
    return sim.add_task(spec.cgroup, prog, cpu=spec.cpu, start_ns=max(spec.start_ns, sim.now))


# a reaper 3 ms after the kill (the runs are short) and congestion_wait() reclaim waits
POLICIES = {"fast-reaper": Policy(base="accountforce-v1", oom_reaper_delay=3,
                                  reclaim_wait="congestion-wait")}


def make_sim(spec: SimSpec, scheduler=None, backend=None) -> TimedSim:
    sim = TimedSim(policy=POLICIES.get(spec.policy, spec.policy), nr_cpus=2,
                   costs=COSTS[spec.costs], backend=backend, scheduler=scheduler,
                   strict=spec.strict, trace=True, sample_dt_ns=1 * MS,
                   journal=JournalConfig(commit_interval_ns=5 * MS, max_transaction_blocks=6),
                   flusher=FlusherConfig(enabled=spec.flusher, interval_ns=7 * MS,
                                         batch_pages=16),
                   max_ops_per_instant=5000, livelock_limit=spec.livelock_limit)
    sim.mkdir("A")
    sim.mkdir("A/B")
    sim.write("A", "memory.max", spec.max_pages * PAGE_SIZE)
    n_tasks = len(spec.tasks) + len(spec.late)
    pids = []
    for t in spec.tasks:
        pids.append(_add(sim, t, pids, n_tasks))
    if spec.background:
        for b in BACKGROUND:
            sim.add_task("A", b.build())
        p = sim.add_task("A", BACKGROUND_MM[0].build())
        sim.add_thread(p, BACKGROUND_MM[1].build())
    eb = EventBuilder()
    for when, name, arg in spec.control:
        if name == "kill":
            eb.kill(arg % len(pids), time=when)
        else:
            eb.set_limit(name, 1, arg, time=when)
    if spec.control:
        sim.add_control_ops(eb.build())
    sim._pids = pids
    return sim


def run_twice(sim: TimedSim, spec: SimSpec):
    """run(t1); a write, late tasks, a control op; run(t2).  Returns the results and the
    error text of the first run that raised (or None)."""
    out = []
    try:
        out.append(sim.run(spec.t1))
        if spec.write_between:
            sim.write("A", "memory.high", spec.write_between * PAGE_SIZE)
            sim.write("A", "memory.max", spec.write_between * PAGE_SIZE)
        n_tasks = len(spec.tasks) + len(spec.late)
        for t in spec.late:
            try:
                sim._pids.append(_add(sim, t, sim._pids, n_tasks))
            except ValueError:  # a thread of a process that has exited
                pass
        sim.add_control_ops(EventBuilder().set_limit("max", 2, 50, time=sim.now + 3 * MS)
                            .build())
        out.append(sim.run(spec.t2))
    except RuntimeError as exc:
        return out, f"{type(exc).__name__}: {exc}"
    return out, None


def scheduler_state(sim: TimedSim) -> dict:
    """The scheduler's own state (TimedSim attributes), normalised for comparison: lock
    objects by content, the heap sorted, numpy arrays as lists."""
    from collections import deque

    from memcg_emu._timed_ref.locking import Mutex, RWSem

    skip = {"emu", "_eng", "_st", "_stats", "_tstate", "_wall", "_rc1", "_out1", "_z1", "_z2",
            "_z3", "scheduler", "_pids", "costs", "journal_config", "flusher_config", "policy",
            "_levels", "trace", "reaper_log", "journal_log", "flusher_log", "exit_log",
            "oom_log"}  # the logs are compared as they are

    def norm(v):
        if isinstance(v, np.ndarray):
            return ("nd", v.shape, v.tolist())
        if isinstance(v, Mutex):
            return ("mutex", v.owner, list(v.waiters))
        if isinstance(v, RWSem):
            return ("rwsem", v.mm_of, v.writer, sorted(v.readers.items()),
                    [(w, bool(x)) for w, x in v.waiters])
        if isinstance(v, (list, tuple, deque)):
            return [norm(x) for x in v]
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        if isinstance(v, (bool, np.bool_)):
            return int(v)
        if isinstance(v, (int, np.integer)):
            return int(v)
        return v

    out = {}
    for k, v in vars(sim).items():
        if k in skip:
            continue
        if getattr(v, "s", None) is sim:  # a subsystem (sim.locks, sim.journal, ...)
            for name, x in vars(v).items():
                if name not in ("s", "j", "log"):
                    out[f"{k}.{name}"] = norm(x)
            continue
        out[k] = norm(v)
    out["_heap"] = sorted(map(tuple, out["_heap"]))
    return out
