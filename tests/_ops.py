"""Random operation sequences applied identically to two emulators (differential tests)."""
from __future__ import annotations

import numpy as np

import memcg_emu as me

GFPS = [me.GFP_KERNEL, me.GFP_NOFS, me.GFP_NOIO, me.GFP_NOWAIT, me.GFP_ATOMIC,
        me.GFP_KERNEL | me.__GFP_NORETRY, me.GFP_KERNEL | me.__GFP_RETRY_MAYFAIL,
        me.GFP_KERNEL | me.__GFP_NOFAIL, me.GFP_NOFS | me.__GFP_NOFAIL, 0]
KINDS = ["anon", "file", "file_dirty", "kernel", "unevictable"]
LIMIT_FILES = ["memory.max", "memory.high", "memory.low", "memory.min", "memory.swap.max"]
FLAG_SETS = [me.PF_MEMALLOC_NOFS, me.PF_MEMALLOC_NOIO, me.PF_MEMALLOC,
             me.PF_MEMALLOC_ACCOUNTFORCE, me.PF_MEMALLOC_NOFS | me.PF_MEMALLOC_ACCOUNTFORCE]
OP_NAMES = ["mkdir", "limit", "limit", "new_task", "new_task", *["charge"] * 10,
            "uncharge", "uncharge", "uncharge", "rtu", "rtu", "rtu", "save", "restore",
            "af_save", "af_restore", "active", "attach", "kill", "block", "wake", "wake",
            "reap", "exit", "page_state", "page_state", "reclaim", "mmap_lock", "oom_group",
            "peak_reset", "set_cpu", "new_thread", "new_thread"]


def random_ops(rng: np.random.Generator, n: int) -> list[tuple]:
    """n operations as tuples of small ints; indices are resolved modulo live counts."""
    ops = []
    for _ in range(n):
        name = OP_NAMES[rng.integers(len(OP_NAMES))]
        ops.append((name, *[int(x) for x in rng.integers(0, 1 << 16, size=5)]))
    return ops


def apply(emu: me.Emulator, op: tuple):
    """Apply one op; returns its result or the text of the ValueError it raised."""
    name, a, b, c, d, e = op
    cgs = emu.cgroups
    tasks = emu.tasks
    try:
        if name == "mkdir":
            if len(cgs) >= 12:
                return None
            return emu.mkdir(f"{cgs[a % len(cgs)]}/c{len(cgs)}")
        if name == "limit":
            if len(cgs) < 2:
                return None
            path = cgs[1 + a % (len(cgs) - 1)]
            f = LIMIT_FILES[b % len(LIMIT_FILES)]
            value = "max" if c % 7 == 0 else (c % 400) * me.PAGE_SIZE
            return emu.write(path, f, value, nonblock=(d % 5 == 0))
        if name == "new_task":
            if len(tasks) >= 10:
                return None
            kthread = a % 6 == 0
            path = "/" if kthread else cgs[b % len(cgs)]
            return emu.new_task(path, kthread=kthread, cpu=c % emu.state.config[1],
                                oom_score_adj=[0, 0, 500, -1000, -500][d % 5]).pid
        if not tasks and name not in ("reap", "page_state", "reclaim", "oom_group",
                                      "peak_reset"):
            return None
        t = tasks[a % len(tasks)] if tasks else None
        if name == "charge":
            memcg = None if d % 4 else cgs[d % len(cgs)]
            return emu.charge(t, 1 + (b % 80 if b % 3 else b % 5), GFPS[c % len(GFPS)],
                              KINDS[e % len(KINDS)], memcg)
        if name == "uncharge":
            kind = ["anon", "file", "kernel", "unevictable", "swap", "file_dirty"][c % 6]
            return emu.uncharge(t, 1 + b % 40, kind)
        if name == "rtu":
            return emu.return_to_user(t)
        if name == "save":
            return emu.memalloc_flags_save(t, FLAG_SETS[b % len(FLAG_SETS)])
        if name == "restore":
            st = emu.state
            depth = int(st.scope_depth[t.pid])
            saved = int(st.scope_stack[t.pid, depth - 1]) if depth else 0
            return emu.memalloc_flags_restore(t, saved)
        if name == "af_save":
            return emu.memalloc_account_force_save(t)
        if name == "af_restore":
            return emu.memalloc_account_force_restore(t)
        if name == "active":
            return emu.set_active_memcg(t, None if b % 3 == 0 else cgs[b % len(cgs)])
        if name == "attach":
            return emu.attach(t, cgs[b % len(cgs)])
        if name == "kill":
            return emu.kill(t) if b % 3 == 0 else None
        if name == "block":
            return emu.block(t)
        if name == "wake":
            return emu.wake(t)
        if name == "reap":
            return emu.oom_reaper()
        if name == "exit":
            return emu.exit(t) if b % 4 == 0 else None
        if name == "page_state":
            path = cgs[a % len(cgs)]
            fn = [emu.set_dirty, emu.start_writeback, emu.end_writeback][b % 3]
            return fn(path, 1 + c % 30)
        if name == "reclaim":
            return emu.write(cgs[a % len(cgs)], "memory.reclaim", (1 + b % 100) * me.PAGE_SIZE)
        if name == "mmap_lock":
            return emu.mmap_lock(t) if b % 2 else emu.mmap_unlock(t)
        if name == "oom_group":
            if len(cgs) < 2:
                return None
            return emu.write(cgs[1 + a % (len(cgs) - 1)], "memory.oom.group", str(b % 2))
        if name == "peak_reset":
            if len(cgs) < 2:
                return None
            return emu.write(cgs[1 + a % (len(cgs) - 1)], "memory.peak", "reset")
        if name == "new_thread":
            if len(tasks) >= 10:
                return None
            return emu.new_thread(t, cpu=c % emu.state.config[1],
                                  same_thread_group=(d % 4 != 0)).pid
        if name == "set_cpu":
            return emu.set_cpu(t, b % emu.state.config[1])
    except ValueError as exc:
        return f"ValueError: {exc}"
    raise AssertionError(name)


def assert_states_equal(a: me.Emulator, b: me.Emulator, where: str) -> None:
    for name in a.state.field_names():
        x, y = getattr(a.state, name), getattr(b.state, name)
        if x.shape != y.shape or not np.array_equal(x, y):
            diff = np.argwhere(x != y) if x.shape == y.shape else "shape"
            raise AssertionError(f"{where}: field {name!r} differs at {diff[:5]}:\n"
                                 f"python={x[tuple(diff[0])] if x.shape == y.shape else x.shape}"
                                 f" cython={y[tuple(diff[0])] if x.shape == y.shape else y.shape}")
