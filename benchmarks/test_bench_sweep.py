"""A 40-cell sweep (jbd2-stall scaled down: 2 policies x 20 seeds) on a 2-worker Dask
LocalCluster versus in-process (``local=True``), on the compiled engine.

What is measured, and how:

- the speed-up of a parallel run is a wall-clock figure, so both runs are timed with
  ``time.perf_counter`` (wall), in one process, interleaved (in-process, Dask, in-process,
  Dask, ...), and the minimum of each is kept: ``speedup = wall(in-process) / wall(Dask)``;
- the Dask run is timed on a cluster already started (``speedup``, the steady state of a
  long sweep) and, separately, with the start and stop of its LocalCluster included
  (``speedup_with_startup``, what one ``memcg-emu sweep`` command sees);
- CPU: the in-process run's thread CPU time (``time.thread_time``: the cells' own work), and
  for the Dask run the CPU time the two worker processes spent (``time.process_time`` read on
  each worker before and after) and this process's (the client: submitting, collecting);
  ``cpu_efficiency`` = in-process CPU / worker CPU (1.0: no overhead from running remotely).

Rounds: 3 (``MEMCG_EMU_BENCH_ROUNDS``); with ``--benchmark-disable`` (CI's smoke run) one,
without the start-up timing.  On a shared machine the figures depend on the load: the
``load_avg_1min`` recorded beside them says how busy it was.
"""
import os
import time

import pytest

import memcg_emu as me
from memcg_emu import sweep

POLICIES = ["baseline", "accountforce-v1"]
# about 0.2 s of CPU per cell, 9 s for the 40
PARAMS = {"pod_procs": [4], "pod_threads": [8], "proc_anon_pages": [400],
          "outside_tasks": [200], "duration_ns": ["300ms"], "pod_max_pages": [2048]}
WORKERS = 2


def _worker_cpu(client) -> float:
    return sum(client.run(time.process_time).values())


def test_sweep_40_cells_dask_vs_in_process(benchmark):
    if me.BACKEND != "cython":
        pytest.skip("compiled engine memcg_emu._core not built (or MEMCG_EMU_PUREPYTHON=1)")
    distributed = pytest.importorskip("distributed")
    grid = sweep.ScenarioGrid("jbd2-stall", POLICIES, "0-19", PARAMS)
    cells = grid.cells()
    assert len(cells) == 40
    rounds = 1 if benchmark.disabled else int(os.environ.get("MEMCG_EMU_BENCH_ROUNDS", "3"))

    local_wall, local_cpu, dask_wall, worker_cpu, client_cpu = [], [], [], [], []
    ref = None
    with sweep.local_cluster(WORKERS) as cluster, distributed.Client(cluster) as client:
        sweep.run(cells[:WORKERS], scheduler=client)  # workers import memcg_emu once

        def on_dask():
            w0, c0, t0 = _worker_cpu(client), time.thread_time(), time.perf_counter()
            res = sweep.run(cells, scheduler=client)
            dask_wall.append(time.perf_counter() - t0)
            client_cpu.append(time.thread_time() - c0)
            worker_cpu.append(_worker_cpu(client) - w0)
            return res

        for i in range(rounds):
            c0, t0 = time.thread_time(), time.perf_counter()
            res_local = sweep.run(cells, local=True)
            local_wall.append(time.perf_counter() - t0)
            local_cpu.append(time.thread_time() - c0)
            if i == rounds - 1:  # pytest-benchmark records one of the Dask runs
                res_dask = benchmark.pedantic(on_dask, rounds=1, iterations=1)
            else:
                res_dask = on_dask()
            cols = [c for c in res_local.df.columns if c not in sweep.WALL_CLOCK_COLUMNS]
            assert res_dask.df[cols].equals(res_local.df[cols])
            ref = res_local.df
    startup_wall = []
    if not benchmark.disabled:  # the whole thing: start 2 workers, run, stop
        for _ in range(rounds):
            t0 = time.perf_counter()
            sweep.run(cells, n_workers=WORKERS)
            startup_wall.append(time.perf_counter() - t0)

    assert ref["error"].isna().all() and len(ref) == 40
    info = benchmark.extra_info
    info.update(cells=40, workers=WORKERS, cpus=os.cpu_count(), rounds=rounds,
                load_avg_1min=os.getloadavg()[0],
                in_process_wall_s=min(local_wall), in_process_cpu_s=min(local_cpu),
                dask_wall_s=min(dask_wall), dask_worker_cpu_s=min(worker_cpu),
                dask_client_cpu_s=min(client_cpu),
                speedup=min(local_wall) / min(dask_wall),
                cpu_efficiency=min(local_cpu) / min(worker_cpu))
    if startup_wall:
        info["dask_wall_with_startup_s"] = min(startup_wall)
        info["speedup_with_startup"] = min(local_wall) / min(startup_wall)
    print("\n" + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in info.items()))
