"""End to end at any length: generate the mixed stream chunk by chunk to a ``.npy`` file,
replay it memory-mapped, chunk by chunk, and report thread CPU time per event and peak RSS.

    python benchmarks/scale.py 100000000 /tmp/mixed-1e8.npy      # 10^8 events, ~3.2 GB file
    python benchmarks/scale.py 100000 /tmp/m.npy 1000000 10000000  # several sizes, one process

Each size runs in a fresh child process so that its peak RSS (``ru_maxrss``) is its own.
Peak RSS beyond the mapped file: the replay reads the file through the page cache, so the
resident pages of the mapping count in RSS; they are clean, file-backed pages that the kernel
can drop at any time.  The script reports RssAnon (private memory) at the end of the replay
and the peak RSS, and ``VmHWM`` minus the mapped file's size as an upper bound.
"""
import json
import os
import resource
import subprocess
import sys
import time

#: chunk size of the generated stream: its limits are reached after ~1/4 of the first chunk,
#: so the same chunk size at every length keeps the per-event mix comparable
CHUNK = 1 << 18


def _status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return -1


def child(n, path):
    import numpy as np

    from memcg_emu import workloads

    out = {"events": n}
    w = workloads.mixed_chunks(n, seed=0, chunk_events=CHUNK)
    t0 = time.thread_time()
    w.save(path)
    out["generate_ns_per_event"] = (time.thread_time() - t0) * 1e9 / n
    out["generate_peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["file_mib"] = os.path.getsize(path) / 2**20
    ev = np.load(path, mmap_mode="r")
    emu = w.build(backend="cython")
    t0 = time.thread_time()
    res = emu.replay(ev, per_event=False)
    out["replay_ns_per_event"] = (time.thread_time() - t0) * 1e9 / n
    out["loop_ns_per_event"] = res.elapsed * 1e9 / n
    out["rss_anon_mib"] = _status("RssAnon") / 2**20
    out["rss_file_mib"] = _status("RssFile") / 2**20
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    c = res.counters
    out["oom_kills"], out["enomem"] = c["oom_kills"], c["enomem"]
    out["stock_hit_rate"] = c["stock_hits"] / c["charges"]
    emu.check_invariants()
    print(json.dumps(out))


def main(argv):
    if argv and argv[0] == "--child":
        return child(int(argv[1]), argv[2])
    sizes = [int(float(a)) for a in argv[:1] + argv[2:]]
    path = argv[1]
    for n in sizes:
        r = subprocess.run([sys.executable, __file__, "--child", str(n), path],
                           capture_output=True, text=True, check=True)
        print(r.stdout.strip(), flush=True)
    os.unlink(path)


if __name__ == "__main__":
    main(sys.argv[1:])
