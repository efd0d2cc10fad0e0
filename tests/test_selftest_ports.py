"""tools/testing/selftests/cgroup/test_memcontrol.c, ported line by line (docs/model.md §18).

A child process is a task; ``alloc_anon`` faults pages one by one (charge, then return to
user, where a pending SIGKILL is delivered); ``alloc_pagecache`` reads a file page by page.
``values_close`` is the selftest's helper.
"""
import pytest

import memcg_emu as me

MB = 1 << 20
PAGES_PER_MB = MB // me.PAGE_SIZE


def values_close(a, b, err):
    return abs(a - b) <= (a + b) // 100 * err


def current(emu, path):
    return int(emu.read(path, "memory.current"))


def stat(emu, path, key):
    for line in emu.read(path, "memory.stat").splitlines():
        k, v = line.split()
        if k == key:
            return int(v)
    raise KeyError(key)


def event(emu, path, key):
    for line in emu.read(path, "memory.events").splitlines():
        k, v = line.split()
        if k == key:
            return int(v)
    raise KeyError(key)


def fault_in(emu, task, size, kind, gfp=me.GFP_HIGHUSER_MOVABLE):
    """Returns 0, or -1 if the task was killed on the way."""
    for _ in range(size // me.PAGE_SIZE):
        emu.charge(task, 1, gfp, kind=kind)
        emu.return_to_user(task)
        if task.state == "exited":
            return -1
    return 0


def cg_run(emu, path, fn, *args):
    """Run fn in a fresh task in ``path``; the task exits afterwards (page cache stays).
    Returns the exit status, or -1 if it was killed (as cg_run does for a signal)."""
    t = emu.new_task(path)
    rc = fn(emu, t, *args)
    if t.state == "exited":
        return -1
    emu.exit(t)
    return rc


def alloc_anon(emu, t, size):
    return fault_in(emu, t, size, "anon")


def alloc_pagecache(emu, t, size):
    return fault_in(emu, t, size, "file")


def alloc_pagecache_max_30M(emu, t, path):
    if fault_in(emu, t, 50 * MB, "file"):
        return -1
    return 0 if values_close(current(emu, path), 30 * MB, 5) else -1


def test_memcg_current_peak(make):
    emu = make()
    emu.mkdir("memcg_test")
    cg = "memcg_test"
    assert current(emu, cg) == 0 and int(emu.read(cg, "memory.peak")) == 0
    t = emu.new_task(cg)
    assert alloc_anon(emu, t, 50 * MB) == 0
    assert current(emu, cg) >= 50 * MB and values_close(50 * MB, current(emu, cg), 3)
    assert values_close(stat(emu, cg, "anon"), current(emu, cg), 3)
    emu.exit(t)
    assert int(emu.read(cg, "memory.peak")) >= 50 * MB
    fd1, fd2, fd3 = (emu.open(cg, "memory.peak") for _ in range(3))
    for fd in (fd1, fd2, fd3):
        fd.write("reset\n")
    assert int(emu.read(cg, "memory.peak")) >= 50 * MB
    fd2.close()
    fd4 = emu.open(cg, "memory.peak")
    fd4.write("reset\n")
    assert 0 <= int(fd1.read()) <= 30 * MB
    t = emu.new_task(cg)
    assert alloc_pagecache(emu, t, 50 * MB) == 0
    assert current(emu, cg) >= 50 * MB
    assert values_close(stat(emu, cg, "file"), current(emu, cg), 10)
    assert int(emu.read(cg, "memory.peak")) >= 50 * MB
    assert int(fd1.read()) >= 50 * MB and int(fd4.read()) >= 50 * MB
    fd3.close()
    fd4.close()
    fd1.close()


@pytest.mark.parametrize("attr", ["memory.min", "memory.low"])
def test_memcg_protection(make, attr):
    emu = make()
    for p in ("A", "A/B", "A/G", "A/B/C", "A/B/D", "A/B/E", "A/B/F"):
        emu.mkdir(p)
    emu.write("A", "memory.max", "200M")
    emu.write("A", "memory.swap.max", "0")
    children = ["A/B/C", "A/B/D", "A/B/E", "A/B/F"]
    noexit = [emu.new_task(c) for c in children[:3]]
    for t in noexit:
        assert alloc_pagecache(emu, t, 50 * MB) == 0
    for p, v in (("A/B", "50M"), ("A/B/C", "75M"), ("A/B/D", "25M"), ("A/B/E", "0"),
                 ("A/B/F", "500M")):
        emu.write(p, attr, v)
    assert values_close(current(emu, "A/B"), 150 * MB, 3)
    assert cg_run(emu, "A/G", alloc_anon, 148 * MB) == 0
    assert values_close(current(emu, "A/B"), 50 * MB, 3)
    c = [current(emu, p) for p in children]
    assert values_close(c[0], 29 * MB, 15)
    assert values_close(c[1], 21 * MB, 20)
    assert c[3] == 0
    rc = cg_run(emu, "A/G", alloc_anon, 170 * MB)
    if attr == "memory.min":
        assert rc != 0  # B's 50M is hard-protected: the allocator is OOM-killed
        assert values_close(current(emu, "A/B"), 50 * MB, 3)
    else:
        assert rc == 0  # the protection-ignoring pass reclaims B
        assert values_close(current(emu, "A/B"), 30 * MB, 3)
    # reclaim_until(C, 10M): memory.reclaim ignores the target's own protection
    goal = 10 * MB
    for _ in range(5):
        cur = current(emu, "A/B/C")
        if cur < goal or values_close(cur, goal, 3):
            break
        assert emu.write("A/B/C", "memory.reclaim", cur - goal) in (0, -me.EAGAIN)
    cur = current(emu, "A/B/C")
    assert cur < goal or values_close(cur, goal, 3)
    if attr == "memory.low":
        for i, p in enumerate(children):
            assert event(emu, p, "oom") == 0
            low = event(emu, p, "low")
            if i < 2:
                assert low > 0, p
            else:
                assert low == 0, p


def test_memcg_high(make):
    emu = make()
    emu.mkdir("memcg_test")
    cg = "memcg_test"
    assert emu.read(cg, "memory.high") == "max\n"
    emu.write(cg, "memory.swap.max", "0")
    emu.write(cg, "memory.high", "30M")
    assert cg_run(emu, cg, alloc_anon, 31 * MB) == 0
    t = emu.new_task(cg)
    assert alloc_pagecache(emu, t, 50 * MB) == 0
    assert current(emu, cg) < 50 * MB  # alloc_pagecache_50M_check fails
    emu.exit(t)
    assert cg_run(emu, cg, alloc_pagecache_max_30M, cg) == 0
    assert event(emu, cg, "high") > 0


def test_memcg_high_sync(make):
    """One syscall populates 200M of mlocked memory: the synchronous memory.high path must
    throttle before usage reaches memory.max, so `high` changes and `max` does not."""
    emu = make()
    emu.mkdir("memcg_test")
    cg = "memcg_test"
    emu.write(cg, "memory.swap.max", "0")
    emu.write(cg, "memory.high", "30M")
    emu.write(cg, "memory.max", "140M")
    t = emu.new_task(cg)
    for _ in range(200 * PAGES_PER_MB):  # no return to user in between (mlock)
        emu.charge(t, 1, me.GFP_HIGHUSER_MOVABLE, kind="unevictable")
        if event(emu, cg, "high"):
            break
    assert event(emu, cg, "high") > 0
    assert event(emu, cg, "max") == 0
    assert t.throttle_jiffies > 0


def test_memcg_max(make):
    emu = make()
    emu.mkdir("memcg_test")
    cg = "memcg_test"
    assert emu.read(cg, "memory.max") == "max\n"
    emu.write(cg, "memory.swap.max", "0")
    emu.write(cg, "memory.max", "30M")
    assert cg_run(emu, cg, alloc_anon, 100 * MB) != 0
    assert cg_run(emu, cg, alloc_pagecache_max_30M, cg) == 0
    assert 0 < current(emu, cg) <= 30 * MB
    assert event(emu, cg, "max") > 0


def test_memcg_reclaim(make):
    emu = make()
    emu.mkdir("memcg_test")
    cg = "memcg_test"
    assert current(emu, cg) == 0
    t = emu.new_task(cg)
    assert alloc_pagecache(emu, t, 50 * MB) == 0
    assert values_close(current(emu, cg), 50 * MB, 10)
    goal = 30 * MB
    for _ in range(5):
        cur = current(emu, cg)
        if cur < goal or values_close(cur, goal, 3):
            break
        assert emu.write(cg, "memory.reclaim", cur - goal) == 0
    cur = current(emu, cg)
    assert cur < goal or values_close(cur, goal, 3)


def test_memcg_oom_events(make):
    emu = make()
    emu.mkdir("memcg_test")
    cg = "memcg_test"
    emu.write(cg, "memory.max", "30M")
    emu.write(cg, "memory.swap.max", "0")
    assert cg_run(emu, cg, alloc_anon, 100 * MB) != 0
    assert emu.read(cg, "cgroup.procs") == ""
    assert event(emu, cg, "oom") == 1
    assert event(emu, cg, "oom_kill") == 1


@pytest.mark.parametrize("localevents", [False, True])
def test_memcg_oom_group_leaf_events(make, localevents):
    emu = make(memory_localevents=localevents)
    emu.mkdir("parent")
    emu.mkdir("parent/child")
    parent, child = "parent", "parent/child"
    emu.write(child, "memory.max", "50M")
    emu.write(child, "memory.swap.max", "0")
    emu.write(child, "memory.oom.group", "1")
    p60 = emu.new_task(parent)
    assert alloc_anon(emu, p60, 60 * MB) == 0
    small = [emu.new_task(child) for _ in range(2)]
    for t in small:
        assert alloc_anon(emu, t, 1 * MB) == 0
    assert cg_run(emu, child, alloc_anon, 100 * MB) != 0
    assert emu.read(child, "cgroup.procs") == ""
    assert event(emu, child, "oom_kill") > 0
    if localevents:
        assert event(emu, parent, "oom_kill") == 0
    else:
        assert event(emu, parent, "oom_kill") > 0
    assert p60.state == "running"


def test_memcg_oom_group_parent_events(make):
    emu = make()
    emu.mkdir("parent")
    emu.mkdir("parent/child")
    parent, child = "parent", "parent/child"
    emu.write(parent, "memory.max", "80M")
    emu.write(parent, "memory.swap.max", "0")
    emu.write(parent, "memory.oom.group", "1")
    p60 = emu.new_task(parent)
    assert alloc_anon(emu, p60, 60 * MB) == 0
    for _ in range(2):
        assert alloc_anon(emu, emu.new_task(child), 1 * MB) == 0
    assert cg_run(emu, child, alloc_anon, 100 * MB) != 0
    assert emu.read(child, "cgroup.procs") == ""
    assert emu.read(parent, "cgroup.procs") == ""


def test_memcg_oom_group_score_events(make):
    emu = make()
    emu.mkdir("memcg_test")
    cg = "memcg_test"
    emu.write(cg, "memory.max", "50M")
    emu.write(cg, "memory.swap.max", "0")
    emu.write(cg, "memory.oom.group", "1")
    safe = emu.new_task(cg, oom_score_adj=-1000)
    assert alloc_anon(emu, safe, 1 * MB) == 0
    assert alloc_anon(emu, emu.new_task(cg), 1 * MB) == 0
    assert cg_run(emu, cg, alloc_anon, 100 * MB) != 0
    assert event(emu, cg, "oom_kill") == 3
    assert safe.state == "running"
    emu.kill(safe)
    assert emu.read(cg, "cgroup.procs") == ""
