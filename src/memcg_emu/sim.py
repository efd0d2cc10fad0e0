"""The step API: one Python call per kernel operation (docs/design.md §3.1).

Validation, units and names live here; the kernel paths live in the engines.  Every public
method validates all its arguments before changing anything.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _backend
from ._api import name_public_calls
from ._constants import (
    EMU_LIVELOCK,
    GFP_KERNEL,
    GFP_MASK_ALL,
    KIND_NAMES,
    MEMORY_EVENTS_KEYS,
    NR_KINDS,
    OOM_SCORE_ADJ_MAX,
    OOM_SCORE_ADJ_MIN,
    PAGE_COUNTER_MAX,
    PAGE_SIZE,
    PF_EXITING,
    PF_KTHREAD,
    PF_MASK_ALL,
    PF_MEMALLOC,
    PF_MEMALLOC_ACCOUNTFORCE,
    PF_MEMALLOC_NOFS,
    PF_MEMALLOC_NOIO,
    SWAP_EVENTS_KEYS,
    Cfg,
    PageKind,
    Site,
    Stat,
    TaskState,
)
from ._parse import kstrtoint, memparse_pages, normalize_path, tunable
from ._state import MAX_SCOPE_DEPTH, MemcgState
from .policy import resolve_policy
from .errors import (MAX_NR_PAGES, MAX_TOTAL_PAGES, InvalidArgumentError, InvalidTypeError,
                     LimitError)

_CHARGE_KINDS = ("anon", "file", "file_dirty", "kernel", "unevictable")
_UNCHARGE_KINDS = ("anon", "file", "file_dirty", "file_writeback", "kernel", "unevictable",
                   "swap")
_TASK_STATE_NAMES = {0: "running", 1: "blocked", 2: "exited"}
_SITE_NAMES = {int(s): s.name.lower() for s in Site}


def _check_int(value, field: str, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` as an int in [lo, hi]; every int the emulator stores must fit int64, so an
    unbounded ``hi`` means 2**63 - 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidTypeError(f"{field} must be an int, not {type(value).__name__}")
    value = int(value)
    if lo is not None and value < lo:
        raise InvalidArgumentError(f"{field} = {value} is below {lo}")
    if hi is None:
        hi = (1 << 63) - 1
    if value > hi:
        raise InvalidArgumentError(f"{field} = {value} is above {hi}")
    return value


@dataclass(frozen=True)
class TaskView:
    """A read-only snapshot of one task's kernel-visible fields."""

    pid: int
    cgroup: str
    flags: int
    memcg_nr_pages_over_high: int
    memcg_nr_pages_over_max: int
    active_memcg: str | None
    notify_resume: bool
    state: str  # "running", "dying" (fatal signal pending), "exiting" (PF_EXITING, timed
    #             exit in progress), "blocked" (D state), "exited"
    kthread: bool
    cpu: int
    oom_score_adj: int
    oom_victim: bool
    fatal_signal_pending: bool
    livelocks: int
    livelock_site: str
    throttle_jiffies: int
    owned: dict  # pages its mm owns (shared by the threads of the process)
    tgid: int = -1  # thread group leader's pid
    mm: int = -1  # pid whose row holds its mm (the mm's creator)


class Task:
    """Handle to an emulated task.  Attribute reads are live views of the engine state."""

    __slots__ = ("_emu", "pid")

    def __init__(self, emu: "Emulator", pid: int):
        self._emu = emu
        self.pid = pid

    def __repr__(self) -> str:
        v = self.view()
        return f"Task(pid={self.pid}, cgroup={v.cgroup!r}, state={v.state}, flags={v.flags:#x})"

    def view(self) -> TaskView:
        return self._emu.task_view(self)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.view(), name)


class PeakFile:
    """An open ``memory.peak`` file: read() and write("reset") with per-fd semantics
    (docs/model.md §10)."""

    def __init__(self, emu: "Emulator", cg: int):
        self._emu, self._cg, self.value, self.closed = emu, cg, None, False

    def read(self) -> str:
        if self.closed:
            raise ValueError("I/O operation on closed memory.peak file")
        st = self._emu.state
        if self.value is None:
            peak = int(st.watermark[self._cg])
        else:
            peak = max(self.value, int(st.local_watermark[self._cg]))
        return f"{peak * PAGE_SIZE}\n"

    def write(self, text: str = "reset\n") -> None:
        if self.closed:
            raise ValueError("I/O operation on closed memory.peak file")
        st = self._emu.state
        usage = int(st.usage[self._cg])
        st.local_watermark[self._cg] = usage
        watchers = self._emu._peak_watchers.setdefault(self._cg, [])
        for peer in watchers:
            if usage > peer.value:
                peer.value = usage
        if self.value is None:
            watchers.append(self)
        self.value = usage

    def close(self) -> None:
        if not self.closed and self.value is not None:
            self._emu._peak_watchers[self._cg].remove(self)
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Emulator:
    """An emulated machine: a cgroup-v2 memory hierarchy, tasks, per-CPU stocks, one policy.

    Parameters
    ----------
    policy : str or Policy
        Kernel variant: a preset name (``"baseline"``, ``"accountforce-v1"``, ...; see
        :mod:`memcg_emu.policy`), a :class:`~memcg_emu.policy.Policy`, or
        ``"FILE.toml:NAME"``.  ``emu.policy`` is its name, ``emu.policy_spec`` the Policy.
    nr_cpus : int
        Number of CPUs (per-CPU charge stocks).
    seed : int
        Seeds the generator behind refill_stock's random slot eviction.
    swap : int or str
        Total swap space (bytes, or "512M"); 0 means no swap, so anon is unreclaimable.
    memory_recursiveprot, memory_localevents : bool
        cgroup2 mount options.
    swappiness : int
        0 disables anon reclaim.
    livelock_limit : int
        A path whose OOM returns true without killing anyone this many times in a row is
        stopped and reported as a livelock (the kernel would loop forever).
    backend : {"cython", "python", None}
        Engine; None picks the compiled core when it is available.

    Examples
    --------
    >>> emu = Emulator()
    >>> emu.mkdir("A"); emu.write("A", "memory.max", "30M")
    >>> t = emu.new_task("A")
    >>> emu.charge(t, 10)
    0
    >>> emu.read("A", "memory.current")
    '40960\\n'
    """

    def __init__(self, policy="baseline", nr_cpus: int = 2, seed: int = 0, swap=0,
                 memory_recursiveprot: bool = False, memory_localevents: bool = False,
                 swappiness: int = 60, livelock_limit: int = 8, backend: str | None = None):
        policy_spec = resolve_policy(policy, "Emulator(policy)")
        nr_cpus = _check_int(nr_cpus, "nr_cpus", 1, 4096)
        seed = _check_int(seed, "seed", 0, 2**63 - 1)
        swappiness = _check_int(swappiness, "swappiness", 0, 200)
        livelock_limit = _check_int(livelock_limit, "livelock_limit", 1, 1 << 30)
        swap_pages = memparse_pages(swap, "swap")
        if swap_pages == PAGE_COUNTER_MAX:
            raise ValueError("swap: give a size, not 'max'")
        if swap_pages > MAX_TOTAL_PAGES:
            raise LimitError(f"swap = {swap!r}: more than MAX_TOTAL_PAGES = 2**46 pages")
        self.policy_spec = policy_spec
        self.policy = policy_spec.name
        self.backend = backend or _backend.BACKEND
        self.state = MemcgState(nr_cpus)
        cfg = self.state.config
        self.state.knobs[:] = policy_spec.as_array()
        cfg[Cfg.RECURSIVEPROT] = int(bool(memory_recursiveprot))
        cfg[Cfg.LOCALEVENTS] = int(bool(memory_localevents))
        cfg[Cfg.TOTAL_SWAP] = swap_pages
        cfg[Cfg.SWAPPINESS] = swappiness
        cfg[Cfg.LIVELOCK_LIMIT] = livelock_limit
        cfg[Cfg.RNG] = seed
        self._engine = _backend.engine_class(self.backend)(self.state)
        self._paths: dict[str, int] = {}
        self._names: list[str] = []
        self._peak_watchers: dict[int, list[PeakFile]] = {}
        self._tasks: list[Task] = []
        self.last_outcome = 0  # OUT_* bits of the last charge()
        self._add_cgroup("", -1)

    # =========================================================================================
    # plumbing
    # =========================================================================================
    @property
    def engine(self):
        """The engine behind this emulator, behind a checking proxy
        (:class:`memcg_emu._checked.CheckedEngine`): every index, kind and page count is
        validated against the state before the call reaches the engine, which trusts its
        caller (the compiled one has no bounds checks).  Bad input raises
        :class:`~memcg_emu.errors.InvalidArgumentError`."""
        from ._checked import CheckedEngine

        return CheckedEngine(self)

    @property
    def nr_cpus(self) -> int:
        return int(self.state.config[Cfg.NR_CPUS])

    def _ensure_capacity(self, n_cgroups: int, n_tasks: int) -> None:
        if self.state.reserve(n_cgroups, n_tasks):
            self._engine.bind(self.state)

    def _add_cgroup(self, path: str, parent: int) -> int:
        st = self.state
        c = st.n_cgroups
        self._ensure_capacity(c + 1, st.n_tasks)
        st.parent[c] = parent
        st.online[c] = 1
        st.config[Cfg.N_CGROUPS] = c + 1
        st.rebuild_preorder()
        self._paths[path] = c
        self._names.append(path)
        return c

    def cgroup_id(self, path: str) -> int:
        """Index of the online cgroup at ``path`` ("" or "/" is the root)."""
        p = normalize_path(path)
        try:
            return self._paths[p]
        except KeyError:
            raise ValueError(f"no such cgroup: {path!r}") from None

    def cgroup_path(self, cg: int) -> str:
        return "/" + self._names[cg]

    def _task_id(self, task, field: str = "task") -> int:
        if isinstance(task, Task):
            if task._emu is not self:
                raise ValueError(f"{field}: task pid {task.pid} belongs to another Emulator")
            return task.pid
        pid = _check_int(task, field, 0)
        if pid >= self.state.n_tasks:
            raise ValueError(f"{field}: no task with pid {pid} (have {self.state.n_tasks})")
        return pid

    def _live_task(self, task, field: str = "task", *, user: bool = False,
                   runnable: bool = True) -> int:
        t = self._task_id(task, field)
        st = self.state
        if int(st.state[t]) == TaskState.EXITED:
            raise ValueError(f"{field}: task pid {t} has exited")
        if runnable and int(st.state[t]) == TaskState.BLOCKED:
            raise ValueError(f"{field}: task pid {t} is blocked (D state) and cannot run; "
                             f"wake() it first")
        if user and int(st.flags[t]) & PF_KTHREAD:
            raise ValueError(f"{field}: task pid {t} is a kernel thread; kernel threads never "
                             f"return to user space")
        return t

    def task(self, pid: int) -> Task:
        return self._tasks[self._task_id(pid, "pid")]

    @property
    def tasks(self) -> list[Task]:
        return list(self._tasks)

    # =========================================================================================
    # cgroup tree
    # =========================================================================================
    def mkdir(self, path: str) -> int:
        """Create a cgroup; its parent must exist.  Returns its index."""
        p = normalize_path(path)
        if not p:
            raise ValueError("mkdir: the root cgroup already exists")
        if p in self._paths:
            raise ValueError(f"mkdir {path!r}: cgroup exists")
        parent = p.rsplit("/", 1)[0] if "/" in p else ""
        if parent not in self._paths:
            raise ValueError(f"mkdir {path!r}: parent cgroup {'/' + parent!r} does not exist")
        return self._add_cgroup(p, self._paths[parent])

    def rmdir(self, path: str) -> None:
        """Remove an empty cgroup (no children, no live tasks).  Its remaining charges stay
        (an offline "zombie" memcg, still counted in its ancestors)."""
        p = normalize_path(path)
        c = self.cgroup_id(p)
        if c == 0:
            raise ValueError("rmdir: cannot remove the root cgroup")
        st = self.state
        for other, oc in self._paths.items():
            if oc != c and st.parent[oc] == c:
                raise ValueError(f"rmdir {path!r}: cgroup has child {'/' + other!r} (EBUSY)")
        for t in range(st.n_tasks):
            if st.memcg[t] == c and st.state[t] != TaskState.EXITED:
                raise ValueError(f"rmdir {path!r}: task pid {t} is still in it (EBUSY)")
            if st.active_memcg[t] == c:
                raise ValueError(f"rmdir {path!r}: task pid {t} uses it as active memcg (EBUSY)")
        self._engine.drain_all_stock(c)
        st.online[c] = 0
        del self._paths[p]
        st.rebuild_preorder()

    @property
    def cgroups(self) -> list[str]:
        return ["/" + p for p in self._paths]

    # =========================================================================================
    # tasks
    # =========================================================================================
    def new_task(self, path: str = "/", kthread: bool = False, cpu: int = 0,
                 oom_score_adj: int = 0) -> Task:
        """Create a task in cgroup ``path``.  A kernel thread has no mm and PF_KTHREAD, and
        lives in the root cgroup."""
        c = self.cgroup_id(path)
        cpu = _check_int(cpu, "cpu", 0, int(self.state.config[Cfg.NR_CPUS]) - 1)
        adj = _check_int(oom_score_adj, "oom_score_adj", OOM_SCORE_ADJ_MIN, OOM_SCORE_ADJ_MAX)
        if kthread and c != 0:
            raise ValueError(f"new_task: kernel threads live in the root cgroup, not {path!r}")
        st = self.state
        t = st.n_tasks
        self._ensure_capacity(st.n_cgroups, t + 1)
        st.memcg[t] = c
        st.has_mm[t] = 0 if kthread else 1
        st.tgid[t] = t
        st.mm[t] = t  # a kthread's row is an mm with no users
        st.mm_users[t] = 0 if kthread else 1
        st.flags[t] = PF_KTHREAD if kthread else 0
        st.cpu[t] = cpu
        st.oom_score_adj[t] = adj
        st.state[t] = TaskState.RUNNING
        st.config[Cfg.N_TASKS] = t + 1
        task = Task(self, t)
        self._tasks.append(task)
        return task

    def new_thread(self, task, cpu: int | None = None, same_thread_group: bool = True) -> Task:
        """clone(CLONE_VM | CLONE_THREAD ...): a new thread of ``task``'s process.

        It shares the process's mm (one ``mmap_lock``, one set of owned anon pages, charges
        to the memcg of the mm's owner), its thread group (a kill takes all threads; the OOM
        killer scores the process once) and its cgroup and ``oom_score_adj``.  With
        ``same_thread_group=False`` it is a new process that shares the mm (``CLONE_VM``
        without ``CLONE_THREAD``, as vfork does): ``__oom_kill_process`` kills it with the mm.

        Parameters
        ----------
        task : Task or int
            A live user task (not a kernel thread).
        cpu : int, optional
            Its CPU (default: the parent's).
        same_thread_group : bool
            False for a separate process sharing the mm.

        Returns
        -------
        Task

        Raises
        ------
        ValueError
            If ``task`` is not a live user task or ``cpu`` is out of range.

        Example
        -------
        >>> emu = Emulator(); emu.mkdir("A"); p = emu.new_task("A"); th = emu.new_thread(p)
        >>> emu.state.mm[th.pid] == p.pid
        True
        """
        parent = self._live_task(task, runnable=False)
        st = self.state
        if int(st.flags[parent]) & PF_KTHREAD or not st.has_mm[parent]:
            raise ValueError(f"new_thread: task pid {parent} has no mm (a kernel thread or "
                             "past exit_mm)")
        if cpu is None:
            cpu = int(st.cpu[parent])
        cpu = _check_int(cpu, "cpu", 0, int(st.config[Cfg.NR_CPUS]) - 1)
        t = st.n_tasks
        self._ensure_capacity(st.n_cgroups, t + 1)
        st = self.state
        mm = int(st.mm[parent])
        st.memcg[t] = st.memcg[parent]
        st.has_mm[t] = 1
        st.tgid[t] = st.tgid[parent] if same_thread_group else t
        st.mm[t] = mm
        st.mm_users[mm] += 1
        st.flags[t] = 0
        st.cpu[t] = cpu
        st.oom_score_adj[t] = st.oom_score_adj[int(st.tgid[parent])]
        st.state[t] = TaskState.RUNNING
        st.config[Cfg.N_TASKS] = t + 1
        task = Task(self, t)
        self._tasks.append(task)
        return task

    def task_view(self, task) -> TaskView:
        t = self._task_id(task)
        st = self.state
        active = int(st.active_memcg[t])
        return TaskView(
            pid=t,
            cgroup=self.cgroup_path(int(st.memcg[t])),
            flags=int(st.flags[t]),
            memcg_nr_pages_over_high=int(st.memcg_nr_pages_over_high[t]),
            memcg_nr_pages_over_max=int(st.memcg_nr_pages_over_max[t]),
            active_memcg=None if active < 0 else self.cgroup_path(active),
            notify_resume=bool(st.notify_resume[t]),
            state=("exiting" if int(st.flags[t]) & PF_EXITING
                   and int(st.state[t]) == TaskState.RUNNING
                   else "dying" if st.sigkill[t] and int(st.state[t]) == TaskState.RUNNING
                   else _TASK_STATE_NAMES[int(st.state[t])]),
            kthread=bool(int(st.flags[t]) & PF_KTHREAD),
            cpu=int(st.cpu[t]),
            oom_score_adj=int(st.oom_score_adj[t]),
            oom_victim=bool(st.oom_victim[t]),
            fatal_signal_pending=bool(st.sigkill[t]),
            livelocks=int(st.livelocks[t]),
            livelock_site=_SITE_NAMES[int(st.livelock_site[t])],
            throttle_jiffies=int(st.throttle_jiffies[t]),
            owned={k: int(st.owned[int(st.mm[t]), v]) for k, v in KIND_NAMES.items()
                   if k in ("anon", "kernel", "unevictable")},
            tgid=int(st.tgid[t]),
            mm=int(st.mm[t]),
        )

    def attach(self, task, path: str) -> None:
        """Move a task's process, all its threads, to another cgroup (cgroup.procs write).
        Charges do not move."""
        t = self._live_task(task, runnable=False)
        c = self.cgroup_id(path)
        if int(self.state.flags[t]) & PF_KTHREAD:
            raise ValueError(f"attach: task pid {t} is a kernel thread")
        self._engine.attach_task(t, c)

    def exit(self, task) -> None:
        """do_exit() of this task: it drops its mm (exit_mm); the mm's last user frees the
        mm's anon, mlocked and kernel pages (exit_mmap); per-task debts are dropped."""
        t = self._live_task(task)
        self._engine.exit_task(t)

    def kill(self, task) -> None:
        """SIGKILL to the task's process: its running threads exit now; a blocked one when
        woken."""
        t = self._live_task(task, runnable=False)
        self._engine.kill_task(t)

    def block(self, task) -> None:
        """Put the task to sleep uninterruptibly (D state)."""
        t = self._live_task(task)
        self._engine.block_task(t)

    def wake(self, task) -> None:
        t = self._live_task(task, runnable=False)
        if int(self.state.state[t]) != TaskState.BLOCKED:
            raise ValueError(f"wake: task pid {t} is not blocked")
        self._engine.wake_task(t)

    def mmap_lock(self, task) -> None:
        """Hold the mmap_lock of the task's mm for write (the OOM reaper's trylock then
        fails); any thread of the process may take or drop it."""
        t = self._live_task(task, runnable=False)
        self.state.mmap_locked[int(self.state.mm[t])] = 1

    def mmap_unlock(self, task) -> None:
        t = self._live_task(task, runnable=False)
        self.state.mmap_locked[int(self.state.mm[t])] = 0

    def set_cpu(self, task, cpu: int) -> None:
        t = self._live_task(task, runnable=False)
        self.state.cpu[t] = _check_int(cpu, "cpu", 0, int(self.state.config[Cfg.NR_CPUS]) - 1)

    def oom_reaper(self) -> int:
        """Let the OOM reaper run for every queued victim (as if OOM_REAPER_DELAY passed).
        Returns pages freed."""
        return int(self._engine.oom_reaper())

    # =========================================================================================
    # the charge path
    # =========================================================================================
    def _kind(self, kind: str, allowed: tuple[str, ...], field: str = "kind") -> int:
        if not isinstance(kind, str) or kind not in allowed:
            raise ValueError(f"{field} must be one of {allowed}, not {kind!r}")
        return KIND_NAMES[kind]

    def _check_total(self, nr_pages: int) -> None:
        """Refuse a charge that could take the machine's total past MAX_TOTAL_PAGES."""
        if int(self.state.usage[0]) + nr_pages > MAX_TOTAL_PAGES:
            raise LimitError(f"nr_pages = {nr_pages}: the machine holds "
                             f"{int(self.state.usage[0])} pages; the emulator's bound on the "
                             f"total is MAX_TOTAL_PAGES = 2**46 (memcg_emu.errors), so that "
                             f"no counter can overflow int64")

    def _memcg_arg(self, memcg) -> int:
        if memcg is None:
            return -1
        return self.cgroup_id(memcg)

    def charge(self, task, nr_pages: int, gfp: int = GFP_KERNEL, kind: str = "anon",
               memcg: str | None = None) -> int:
        """Charge ``nr_pages`` for ``task`` through try_charge_memcg (docs/model.md §5).

        ``memcg`` names an explicit target (remote charging, swap-in); otherwise the target
        follows docs/model.md §3 for ``kind``.  Returns 0, ``-ENOMEM``, or ``EMU_LIVELOCK``
        when the kernel would have looped forever (bounded by ``livelock_limit``).
        ``last_outcome`` holds the OUT_* bits of this charge.
        """
        t = self._live_task(task)
        nr_pages = _check_int(nr_pages, "nr_pages", 1, MAX_NR_PAGES)
        gfp = _check_int(gfp, "gfp", 0, GFP_MASK_ALL)
        k = self._kind(kind, _CHARGE_KINDS)
        m = self._memcg_arg(memcg)
        self._check_total(nr_pages)
        rc = int(self._engine.charge(t, nr_pages, gfp, k, m))
        self.last_outcome = int(self.state.tc_outcome[t])
        return rc

    def charge_outcome(self, task) -> int:
        """OUT_* bits of ``task``'s last charge."""
        return int(self.state.tc_outcome[self._task_id(task)])

    def uncharge(self, task, nr_pages: int, kind: str = "anon", memcg: str | None = None) -> None:
        """Free pages: folios go straight to the page counters, kernel pages through the
        per-CPU stock of the task's CPU (objcg uncharge, §4/§9)."""
        t = self._live_task(task)
        nr_pages = _check_int(nr_pages, "nr_pages", 1, MAX_NR_PAGES)
        k = self._kind(kind, _UNCHARGE_KINDS)
        m = self._memcg_arg(memcg)
        target = m if m >= 0 else self._engine.emu_charge_target(t, k if k != PageKind.SWAP
                                                                  else PageKind.ANON)
        if target > 0 and int(self.state.pool[target, k]) < nr_pages:
            raise ValueError(f"uncharge: {self.cgroup_path(target)} holds "
                             f"{int(self.state.pool[target, k])} {kind} pages, fewer than "
                             f"nr_pages={nr_pages}")
        rc = self._engine.uncharge(t, nr_pages, k, m)
        assert rc == 0

    def _move(self, path: str, nr_pages: int, src: PageKind, dst: PageKind, what: str) -> None:
        c = self.cgroup_id(path)
        nr_pages = _check_int(nr_pages, "nr_pages", 1, MAX_NR_PAGES)
        have = int(self.state.pool[c, src])
        if have < nr_pages:
            raise ValueError(f"{what}: {path!r} holds {have} {src.name.lower()} pages, fewer "
                             f"than nr_pages={nr_pages}")
        self._engine.emu_move_pages(c, int(src), int(dst), nr_pages)

    def set_dirty(self, path: str, nr_pages: int) -> None:
        """Clean page-cache pages of ``path`` become dirty."""
        self._move(path, nr_pages, PageKind.FILE, PageKind.FILE_DIRTY, "set_dirty")

    def start_writeback(self, path: str, nr_pages: int) -> None:
        self._move(path, nr_pages, PageKind.FILE_DIRTY, PageKind.FILE_WRITEBACK,
                   "start_writeback")

    def end_writeback(self, path: str, nr_pages: int) -> None:
        """Writeback completes: the pages are clean (reclaimable) again."""
        self._move(path, nr_pages, PageKind.FILE_WRITEBACK, PageKind.FILE, "end_writeback")

    def return_to_user(self, task) -> int:
        """The exit-to-user path: fatal signal first, then resume_user_mode_work()
        (handle_over_max under accountforce-v1, then handle_over_high).  Returns the
        memory.high penalty slept, in jiffies."""
        t = self._live_task(task, user=True)
        return int(self._engine.return_to_user(t))

    # ---- scoped flags (docs/model.md §12) --------------------------------------------------------
    def memalloc_flags_save(self, task, flags: int) -> int:
        t = self._live_task(task)
        flags = _check_int(flags, "flags", 0, PF_MASK_ALL)
        if int(self.state.scope_depth[t]) >= MAX_SCOPE_DEPTH:
            raise ValueError(f"memalloc_flags_save: task pid {t} has {MAX_SCOPE_DEPTH} nested "
                             f"scopes open")
        return int(self._engine.memalloc_flags_save(t, flags))

    def memalloc_flags_restore(self, task, saved: int) -> None:
        t = self._live_task(task)
        saved = _check_int(saved, "saved", 0, PF_MASK_ALL)
        st = self.state
        depth = int(st.scope_depth[t])
        if depth == 0:
            raise ValueError(f"memalloc_flags_restore: task pid {t} has no open scope "
                             f"(restore without a matching save)")
        top = int(st.scope_stack[t, depth - 1])
        if top != saved:
            raise ValueError(f"memalloc_flags_restore: saved={saved:#x} does not match the "
                             f"innermost save of task pid {t}, which returned {top:#x}")
        self._engine.memalloc_flags_restore(t, saved)

    def memalloc_nofs_save(self, task) -> int:
        return self.memalloc_flags_save(task, PF_MEMALLOC_NOFS)

    def memalloc_noio_save(self, task) -> int:
        return self.memalloc_flags_save(task, PF_MEMALLOC_NOIO)

    def memalloc_noreclaim_save(self, task) -> int:
        return self.memalloc_flags_save(task, PF_MEMALLOC)

    memalloc_nofs_restore = memalloc_flags_restore
    memalloc_noio_restore = memalloc_flags_restore
    memalloc_noreclaim_restore = memalloc_flags_restore

    def memalloc_account_force_save(self, task) -> int:
        """The patch's helper: memalloc_flags_save(PF_MEMALLOC_ACCOUNTFORCE)."""
        return self.memalloc_flags_save(task, PF_MEMALLOC_ACCOUNTFORCE)

    def memalloc_account_force_restore(self, task) -> None:
        """The patch's v1 helper, as posted: takes no argument and clears the flag
        unconditionally, which breaks nesting (docs/model.md §17.6)."""
        t = self._live_task(task)
        if int(self.state.scope_depth[t]) == 0:
            raise ValueError(f"memalloc_account_force_restore: task pid {t} has no open scope "
                             f"(restore without a matching save)")
        self._engine.memalloc_account_force_restore(t)

    def set_active_memcg(self, task, path: str | None) -> str | None:
        """Install ``path`` (None to clear) as the task's active memcg; returns the old one."""
        t = self._live_task(task)
        m = -1 if path is None else self.cgroup_id(path)
        old = int(self._engine.set_active_memcg(t, m))
        return None if old < 0 else self.cgroup_path(old)

    # =========================================================================================
    # cgroupfs
    # =========================================================================================
    def open(self, path: str, file: str) -> PeakFile:
        """Open a file with per-fd state; only ``memory.peak`` has any."""
        c = self.cgroup_id(path)
        if file != "memory.peak":
            raise ValueError(f"open: only memory.peak keeps per-open-file state, not {file!r}")
        if c == 0:
            raise ValueError("memory.peak does not exist on the root cgroup")
        return PeakFile(self, c)

    def write(self, path: str, file: str, value, nonblock: bool = False) -> int:
        """Write a control file the way the kernel's handler does (docs/model.md §10).

        Returns 0, or a negative errno the kernel's write() would return (memory.reclaim's
        -EAGAIN).  Malformed values raise ValueError before anything changes.
        """
        c = self.cgroup_id(path)
        st = self.state
        eng = self._engine
        if c == 0 and file not in ("memory.reclaim", "cgroup.procs"):
            raise ValueError(f"{file} does not exist on the root cgroup (or is read-only)")
        if file == "memory.max":
            eng.memory_max_write(c, memparse_pages(value, file), bool(nonblock))
        elif file == "memory.high":
            eng.memory_high_write(c, memparse_pages(value, file), bool(nonblock))
        elif file == "memory.low":
            eng.memory_low_write(c, memparse_pages(value, file))
        elif file == "memory.min":
            eng.memory_min_write(c, memparse_pages(value, file))
        elif file == "memory.swap.max":
            st.swap_max[c] = memparse_pages(value, file)
        elif file == "memory.swap.high":
            st.swap_high[c] = memparse_pages(value, file)
        elif file == "memory.oom.group":
            s = kstrtoint(value, file)  # memory_oom_group_write(): kstrtoint(buf, 0)
            if s not in (0, 1):
                raise ValueError(f"memory.oom.group: only 0 or 1 are accepted, not {value!r}")
            st.oom_group[c] = s
        elif file == "memory.peak":
            with PeakFile(self, c) as f:
                f.write(str(value))
        elif file == "memory.reclaim":
            nr, swappiness_zero = self._parse_reclaim(value)
            return int(eng.memory_reclaim(c, nr, swappiness_zero))
        elif file == "cgroup.procs":
            # cgroup_procs_write_start(): kstrtoint(strstrip(buf), 0, &pid), pid >= 0
            pid = _check_int(kstrtoint(value, "cgroup.procs pid")
                             if isinstance(value, str) else value, "cgroup.procs pid", 0)
            self.attach(pid, path)
        else:
            raise ValueError(f"{file!r} is not a writable memory controller file")
        return 0

    @staticmethod
    def _parse_reclaim(value) -> tuple[int, int]:
        if isinstance(value, int) and not isinstance(value, bool):
            return memparse_pages(value, "memory.reclaim"), 0
        if not isinstance(value, str):
            raise TypeError(f"memory.reclaim: expected a str or int, not {type(value).__name__}")
        parts = value.split()
        if not parts:
            raise ValueError("memory.reclaim: empty value")
        nr = memparse_pages(parts[0], "memory.reclaim")
        if nr == PAGE_COUNTER_MAX:
            raise ValueError("memory.reclaim: 'max' is not a byte count")
        swappiness_zero = 0
        for opt in parts[1:]:
            key, _, arg = opt.partition("=")
            # match_int(): base 0, ASCII digits only
            value = kstrtoint(arg, "memory.reclaim swappiness") if key == "swappiness" \
                and arg else -1
            if not 0 <= value <= 200:
                raise ValueError(f"memory.reclaim: unsupported option {opt!r} "
                                 f"(swappiness=0..200 is understood)")
            swappiness_zero = int(value == 0)
        return nr, swappiness_zero

    def read(self, path: str, file: str) -> str:
        """Read a control file, printed exactly as the kernel prints it."""
        c = self.cgroup_id(path)
        st = self.state
        not_on_root = {"memory.current", "memory.peak", "memory.max", "memory.high",
                       "memory.low", "memory.min", "memory.events", "memory.events.local",
                       "memory.oom.group", "memory.swap.current", "memory.swap.max",
                       "memory.swap.high", "memory.swap.events", "memory.swap.peak"}
        if c == 0 and file in not_on_root:
            raise ValueError(f"{file} does not exist on the root cgroup")
        if file == "memory.current":
            return f"{int(st.usage[c]) * PAGE_SIZE}\n"
        if file == "memory.peak":
            return f"{int(st.watermark[c]) * PAGE_SIZE}\n"
        if file in ("memory.max", "memory.high", "memory.low", "memory.min"):
            return tunable(int(getattr(st, file.split(".")[1])[c]))
        if file == "memory.swap.max":
            return tunable(int(st.swap_max[c]))
        if file == "memory.swap.high":
            return tunable(int(st.swap_high[c]))
        if file == "memory.swap.current":
            return f"{int(st.swap_usage[c]) * PAGE_SIZE}\n"
        if file == "memory.swap.peak":
            return f"{int(st.swap_watermark[c]) * PAGE_SIZE}\n"
        if file in ("memory.events", "memory.events.local"):
            ev = st.events[c] if file == "memory.events" else st.events_local[c]
            return "".join(f"{k} {int(ev[i])}\n" for i, k in enumerate(MEMORY_EVENTS_KEYS))
        if file == "memory.swap.events":
            return "".join(f"{k} {int(st.events[c, 6 + i])}\n"
                           for i, k in enumerate(SWAP_EVENTS_KEYS))
        if file == "memory.oom.group":
            return f"{int(st.oom_group[c])}\n"
        if file == "memory.stat":
            return self._memory_stat(c)
        if file in ("cgroup.procs", "cgroup.threads"):
            live = [t for t in range(st.n_tasks)
                    if st.memcg[t] == c and st.state[t] != TaskState.EXITED
                    and not int(st.flags[t]) & PF_KTHREAD]
            if file == "cgroup.procs":  # one line per process (thread group), by tgid
                live = sorted({int(st.tgid[t]) for t in live})
            return "".join(f"{t}\n" for t in live)
        raise ValueError(f"{file!r} is not a readable memory controller file here")

    def _memory_stat(self, c: int) -> str:
        """Hierarchical memory.stat (bytes) for the pools the emulator models, in the kernel's
        key order; pgscan/pgsteal are event counts.  anon includes mlocked (unevictable)
        anon, file includes dirty and writeback pages, as in the kernel."""
        st = self.state
        lo, hi = int(st.pos[c]), int(st.subtree_end[c])
        sub = [int(x) for x in st.preorder[lo:hi]]
        pool = st.pool[sub].sum(axis=0)
        pgscan = int(st.pgscan[sub].sum())
        pgsteal = int(st.pgsteal[sub].sum())
        P = PageKind
        rows = [
            ("anon", pool[P.ANON] + pool[P.UNEVICTABLE]),
            ("file", pool[P.FILE] + pool[P.FILE_DIRTY] + pool[P.FILE_WRITEBACK]),
            ("kernel", pool[P.KERNEL]),
            ("file_dirty", pool[P.FILE_DIRTY]),
            ("file_writeback", pool[P.FILE_WRITEBACK]),
            ("unevictable", pool[P.UNEVICTABLE]),
        ]
        out = "".join(f"{k} {int(v) * PAGE_SIZE}\n" for k, v in rows)
        return out + f"pgscan {pgscan}\npgsteal {pgsteal}\n"

    # =========================================================================================
    # replay (docs/design.md §3.2)
    # =========================================================================================
    def replay(self, events, sample_every: int = 0, sample_dt: int = 0,
               max_samples: int | None = None, progress: bool = False,
               on_error: str = "raise", per_event: bool = True):
        """Run an event array (``memcg_emu.events.EVENT_DTYPE``) through the engine's loop.

        Parameters
        ----------
        events : numpy structured array, or an iterable of them (chunks)
            One array (memory-mapped is fine: ``np.load(path, mmap_mode="r")``) or an
            iterable of event chunks (``workloads.mixed_chunks(...).chunks()``); validated
            and run chunk by chunk.  A bad event raises ValueError naming its index and
            field, an event that turns out impossible while running (e.g. uncharging more
            than a pool holds) raises too; either way the state is first restored to what
            it was before the call, so nothing is applied.
        sample_every, sample_dt : int
            Sample usage/max/events of every cgroup after every N events and/or every
            ``sample_dt`` nanoseconds of event time.
        progress : bool
            Show a progress bar (rich) on long runs.
        on_error : {"raise", "count"}
            "count" skips an event the state cannot take (an uncharge of pages the cgroup
            does not hold, ...) instead of rejecting the replay; ``ReplayResult.skipped``
            counts the skips per op, kind and reason, ``skipped_index`` lists them.
        per_event : bool
            False: keep no per-event ``rc``/``outcome`` (``ReplayResult.rc`` is empty and
            ``n_events`` counts the events), so memory does not grow with the stream.

        Returns
        -------
        ReplayResult
        """
        from .replay import run_replay

        return run_replay(self, events, sample_every, sample_dt, max_samples, progress,
                          on_error=on_error, per_event=per_event)

    # =========================================================================================
    # whole-machine views
    # =========================================================================================
    @property
    def stats(self) -> dict[str, int]:
        return {s.name.lower(): int(self.state.stats[s]) for s in Stat}

    def events(self, path: str, local: bool = False) -> dict[str, int]:
        """memory.events (or .local) of ``path`` as a dict, all nine kernel indices."""
        c = self.cgroup_id(path)
        arr = self.state.events_local if local else self.state.events
        names = list(MEMORY_EVENTS_KEYS) + ["swap_high", "swap_max", "swap_fail"]
        return {k: int(arr[c, i]) for i, k in enumerate(names)}

    def pages(self, path: str, field: str = "usage") -> int:
        """A page-counter field of ``path`` in pages (usage, max, high, watermark, ...)."""
        from ._state import CGROUP_FIELDS

        c = self.cgroup_id(path)
        names = [n for n in CGROUP_FIELDS
                 if n != "preorder" and getattr(self.state, n).ndim == 1]
        if not isinstance(field, str) or field not in names:
            raise ValueError(f"unknown per-cgroup field {field!r} (one of {', '.join(names)})")
        return int(getattr(self.state, field)[c])

    def pool(self, path: str) -> dict[str, int]:
        c = self.cgroup_id(path)
        return {k: int(self.state.pool[c, v]) for k, v in KIND_NAMES.items()}

    def check_invariants(self) -> None:
        self.state.check_invariants()


name_public_calls(Emulator)
name_public_calls(PeakFile)

__all__ = ["Emulator", "Task", "TaskView", "PeakFile", "EMU_LIVELOCK", "NR_KINDS"]
