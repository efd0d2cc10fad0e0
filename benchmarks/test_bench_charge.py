"""The hot charge path: a per-CPU stock hit, and stock misses through hierarchies of depth
1, 4 and 8 (docs/design.md §6: "a stock-hit charge in the low nanoseconds")."""
import pytest

import memcg_emu as me
from memcg_emu import PageKind

SIZES = {"python": 20_000, "cython": 2_000_000}
ROUNDS = {"python": 3, "cython": 5}


def test_stock_hit(benchmark, backend, bench):
    """Charge 1 kernel page, uncharge it, repeat.  Kernel pages are uncharged through the
    per-CPU stock (objcg), so after the first charge every charge is a stock hit."""
    n = SIZES[backend]
    events = bench.alternating(n, task=0, nr_pages=1, kind=PageKind.KERNEL,
                         gfp=me.GFP_KERNEL_ACCOUNT)

    def setup():
        emu = me.Emulator(backend=backend, nr_cpus=1)
        emu.mkdir("A")
        emu.write("A", "memory.max", "64M")
        emu.new_task("A")
        return (emu,), {}

    timed = bench.Timed(lambda emu: (emu, emu.replay(events)))
    benchmark.pedantic(timed, setup=setup, rounds=ROUNDS[backend], iterations=1)
    bench.report(benchmark, timed, n, backend)
    emu, res = timed.result
    charges = n // 2
    assert res.counters["charges"] == charges
    assert res.counters["stock_hits"] == charges - 1  # only the very first charge misses
    assert not res.rc.any()
    # everything was freed; the 64-page batch sits in the stock, still charged
    assert emu.pages("A") == me.MEMCG_CHARGE_BATCH
    assert emu.pool("A")["kernel"] == 0


@pytest.mark.parametrize("depth", [1, 4, 8])
def test_stock_miss(benchmark, backend, depth, bench):
    """Charge 65 anon pages (more than MEMCG_CHARGE_BATCH, so never from the stock) in a
    cgroup ``depth`` levels below the root, each level limited; uncharge them; repeat."""
    n = SIZES[backend] // 4
    events = bench.alternating(n, task=0, nr_pages=65, kind=PageKind.ANON,
                         gfp=me.GFP_HIGHUSER_MOVABLE)
    path = "/".join(f"l{i}" for i in range(depth))

    def setup():
        emu = me.Emulator(backend=backend, nr_cpus=1)
        for i in range(1, depth + 1):
            p = "/".join(f"l{k}" for k in range(i))
            emu.mkdir(p)
            emu.write(p, "memory.max", f"{512 - i}M")
        emu.new_task(path)
        return (emu,), {}

    timed = bench.Timed(lambda emu: (emu, emu.replay(events)))
    benchmark.pedantic(timed, setup=setup, rounds=ROUNDS[backend], iterations=1)
    bench.report(benchmark, timed, n, backend)
    benchmark.extra_info["depth"] = depth
    emu, res = timed.result
    assert res.counters["charges"] == n // 2
    assert res.counters["stock_hits"] == 0
    assert res.counters["reclaim_calls"] == 0
    assert not res.rc.any()
    for i in range(1, depth + 1):
        p = "/".join(f"l{k}" for k in range(i))
        assert emu.pages(p) == 0
        assert emu.pages(p, "watermark") == 65
