"""Importers on real recordings (Debian 6.1 kernel, tests/data/traces: gzip copies of a
cgroupfs sample run and of a kprobe/tracepoint trace run, with their meta files).

Tolerances (pages) and why:

* STOCK = MEMCG_CHARGE_BATCH x nr_cpus = 128: the kernel keeps up to one charge batch per CPU
  pre-charged in the per-CPU stock (mm/memcontrol.c: ``consume_stock()``/``refill_stock()``,
  one cached memcg per CPU on 6.1).  Those pages are in memory.current but are no charge
  request and in no memory.stat size, and the emulator keeps its own stock, so neither the
  trace's charge requests nor a replay can place them; each is off by at most STOCK.
* A sample's files are not read atomically (about 11 ms for all cgroups on the recording
  VM): the trace check compares a sample with the charge tally anywhere between its marker
  and the next sample's marker.
"""
import gzip
import os

import numpy as np
import pytest

import memcg_emu as me
from memcg_emu.errors import InvalidFileError
from memcg_emu.events import Op
from memcg_emu.importers import (
    events_side_by_side,
    import_samples,
    import_trace,
    load_imported,
    replay_imported,
    save_imported,
    usage_error,
)

DATA = os.path.join(os.path.dirname(__file__), "data", "traces")
SAMPLER = os.path.join(DATA, "sampler-run", "samples.csv.gz")
TRACE = os.path.join(DATA, "trace-run", "trace.txt.gz")
TRACE_SAMPLES = os.path.join(DATA, "trace-run", "samples.csv.gz")
NR_CPUS = 2  # meta.txt of both runs
STOCK = me.MEMCG_CHARGE_BATCH * NR_CPUS
MIB = (1 << 20) // me.PAGE_SIZE
# the limits the workload set (samples.csv of this capture has no limit columns)
LIMITS = {"/W/anon": {"max": 12 * MIB}, "/W/file": {"max": 8 * MIB},
          "/W/high": {"high": 6 * MIB}}


def _n_lines(path):
    with gzip.open(path, "rt") as f:
        return sum(1 for _ in f)


@pytest.fixture(scope="module")
def sampler():
    return import_samples(SAMPLER, limits=LIMITS)


@pytest.fixture(scope="module")
def trace():
    return import_trace(TRACE)


@pytest.mark.parametrize("path", [SAMPLER, TRACE_SAMPLES])
def test_samples_every_line_accounted_for(path):
    imp = import_samples(path, limits=LIMITS)
    rep = imp.report
    name = os.fspath(path)
    assert rep.lines[name] == _n_lines(path)
    assert rep.accounted(name) == rep.lines[name]
    assert rep.bad == []
    assert imp.recorded_usage.shape[0] == int(imp.meta["capture_meta"]["samples"])


def test_trace_every_line_accounted_for(trace):
    rep = trace.report
    assert rep.lines[TRACE] == _n_lines(TRACE) == 29285
    for f in rep.lines:
        assert rep.accounted(f) == rep.lines[f], f
    assert rep.bad == []
    # what was used and ignored, by class: every charge request is an event (the last task
    # is the kernel thread that charges the starting state)
    ev = trace.events
    loader = len(trace.workload.tasks) - 1
    assert trace.workload.tasks[loader].kthread
    assert int(((ev["op"] == Op.CHARGE) & (ev["task"] != loader)).sum()) == 13480
    assert rep.ignored[TRACE]["page-counter/stock level (modelled by the emulator)"] == \
        7149 + 574 + 633


def test_unreadable_lines_are_reported_with_line_numbers_and_strict_refuses(tmp_path):
    with gzip.open(SAMPLER, "rt") as f:
        lines = f.readlines()[:40]
    lines[5] = lines[5].replace(",", ",,", 1)  # one field too many
    lines[9] = lines[9].split(",", 3)[0] + ",x" + lines[9][lines[9].index(",", 2):]
    lines[12] = ",".join("" if i == 7 else v for i, v in enumerate(lines[12].split(",")))
    bad = tmp_path / "samples.csv"
    bad.write_text("".join(lines) + "1,2,3")  # and a truncated last line
    imp = import_samples(bad)
    assert [b.line for b in imp.report.bad] == [6, 10, 13, 41]
    assert imp.report.accounted(str(bad)) == imp.report.lines[str(bad)] == 41
    with pytest.raises(InvalidFileError, match=r"samples\.csv:6: "):
        import_samples(bad, strict=True)


def test_trace_bad_lines(tmp_path):
    with gzip.open(TRACE, "rt") as f:
        lines = f.readlines()[:300]
    lines[100] = "garbage\n"
    lines[200] = lines[200].replace("nr_pages=", "nr_pages=zz") if "nr_pages=" in \
        lines[200] else "CPU:0 [LOST 12 EVENTS]\n"
    p = tmp_path / "trace.txt"
    p.write_text("".join(lines))
    with open(os.path.join(DATA, "trace-run", "memcg_map.txt")) as f:
        (tmp_path / "memcg_map.txt").write_text(f.read())
    imp = import_trace(p)
    assert [b.line for b in imp.report.bad] == [101, 201]
    assert imp.report.accounted(str(p)) == 300
    with pytest.raises(InvalidFileError, match=r"trace\.txt:101: "):
        import_trace(p, strict=True)


@pytest.fixture(scope="module")
def trace_replayed_frees():
    return import_trace(TRACE, reclaim_frees="replay")


def test_trace_charges_match_recorded_current(trace_replayed_frees):
    """Charged minus uncharged pages per cgroup subtree (the trace's charge requests and
    uncharges, with the pages memcg reclaim freed replayed as uncharges) against the change
    of the recorded memory.current since the first sample: within STOCK at every sample,
    allowing for the sample's read window.  Measured on this recording: worst |error| 126
    pages (/W/high), 96 (/W/anon), 74 (/W/file), 122 (/W)."""
    trace = trace_replayed_frees
    ev, wl = trace.events, trace.workload
    nc = len(wl.paths)
    sign = np.where(ev["op"] == Op.CHARGE, 1, np.where(ev["op"] == Op.UNCHARGE, -1, 0))
    m = ev["memcg"]
    contrib = np.zeros((ev.shape[0], nc), np.int64)
    ok = (m >= 0) & (sign != 0)
    contrib[np.nonzero(ok)[0], m[ok]] = (sign * ev["arg"])[ok]
    par = wl.parent
    for c in range(nc - 1, 0, -1):  # subtree sums: memory.current is hierarchical
        contrib[:, par[c]] += contrib[:, c]
    cum = np.zeros((ev.shape[0] + 1, nc), np.int64)
    cum[1:] = np.cumsum(contrib, axis=0)
    ends = np.append(trace.interval_end, ev.shape[0])
    rec = trace.recorded_usage
    assert rec.shape[0] == 559
    for c in range(1, nc):
        rows = np.nonzero(rec[:, c] >= 0)[0]
        k0 = rows[0]
        worst = 0
        for k in rows:
            seg = cum[ends[k]:ends[k + 1] + 1, c] - cum[ends[k0], c]
            d = rec[k, c] - rec[k0, c]
            err = 0 if seg.min() <= d <= seg.max() else min(abs(d - seg.min()),
                                                             abs(d - seg.max()))
            worst = max(worst, err)
        assert worst <= STOCK, (wl.paths[c], worst)


def test_reclaim_frees_left_to_the_emulator(trace, trace_replayed_frees):
    """By default the pages the kernel's memcg reclaim freed are annotations, not uncharges;
    together they are exactly the "replay" import, and their sum is the recorded pgsteal of
    the only cgroup that reclaimed (W/file)."""
    a = trace.annotations
    freed = a[a["what"] == 6]
    ev, ev2 = trace.events, trace_replayed_frees.events
    unch = ev["op"] == Op.UNCHARGE
    unch2 = ev2["op"] == Op.UNCHARGE
    assert int(ev2["arg"][unch2].sum()) - int(ev["arg"][unch].sum()) == \
        int(freed["value"].sum())
    assert {trace.workload.paths[m] for m in freed["memcg"]} == {"/W/file"}
    with gzip.open(TRACE_SAMPLES, "rt") as f:
        cols = f.readline().rstrip().split(",")
        last = [r.rstrip().split(",") for r in f if ",W/file," in r][-1]
    assert int(freed["value"].sum()) == int(last[cols.index("pgsteal")]) == 3449


def test_starting_state(trace, tmp_path):
    """The first sample's own pages (less what the trace did before its marker) are charged
    first; without them an early uncharge has nothing to uncharge and is skipped."""
    assert trace.meta["starting_state"]["/W"]["kernel"] > 0
    bare = import_trace(TRACE, start=None)
    assert bare.meta["starting_state"] == {}
    assert replay_imported(bare)["skipped"] == {
        "uncharge kernel: the cgroup holds fewer pages of that kind than the event asks for":
        1}
    assert not any(k.startswith("uncharge kernel") for k in replay_imported(trace)["skipped"])
    snap = import_samples(SAMPLER, start={"/W/file": {"file": 100, "file_writeback": 8}})
    ev = snap.events[:snap.interval_end[0]]
    assert int(ev["arg"][ev["op"] == Op.CHARGE].sum()) == 108
    assert int(ev["arg"][ev["op"] == Op.START_WRITEBACK].sum()) == 8
    with pytest.raises(ValueError, match=r"start: /W/file\.dirty: not one of"):
        import_samples(SAMPLER, start={"/W/file": {"dirty": 1}})
    with pytest.raises(ValueError, match="cgroup '/X' is not in the recording"):
        import_samples(SAMPLER, start={"/X": {"anon": 1}})


def test_trace_annotations(trace):
    a = trace.annotations
    names = {0: "reclaim", 1: "reclaim_high", 2: "oom", 3: "oom_victim"}
    counts = {names[w]: int((a["what"] == w).sum()) for w in names}
    assert counts == {"reclaim": 202, "reclaim_high": 102, "oom": 1, "oom_victim": 1}
    oom = a[a["what"] == 2][0]
    assert trace.workload.paths[oom["memcg"]] == "/W/anon" and oom["value2"] == 1
    assert (a["value2"][a["what"] == 0] >= 0).all()  # every reclaim got its return value


def test_sample_replay_reproduces_the_recorded_usage_curve(sampler):
    """baseline, recorded limits: the emulator's memory.current per cgroup against the
    recorded one at every sample.  Tolerance: mean |error| <= STOCK (the two per-CPU stocks
    differ; see the module docstring).  Measured: mean |error| 45.9 (/W), 31.1 (/W/anon),
    10.1 (/W/file), 23.5 (/W/high), 2.3 (/W/late) pages; the worst single samples are larger
    (1580 pages on /W/anon, when the recorded OOM kill freed 12 MiB inside one interval,
    which a replay of that interval applies in a different order)."""
    res = replay_imported(sampler, "baseline")
    err = usage_error(sampler, res["usage"])
    assert set(err) == {"/W", "/W/anon", "/W/file", "/W/high", "/W/late"}
    for path, e in err.items():
        assert e["mean_abs_error"] <= STOCK, (path, e)
        assert abs(e["emulated_peak"] - e["recorded_peak"]) <= STOCK, (path, e)
    # the limits hold in the replay as they did in the kernel
    assert err["/W/anon"]["emulated_peak"] <= LIMITS["/W/anon"]["max"]
    assert err["/W/file"]["emulated_peak"] <= LIMITS["/W/file"]["max"]
    side = events_side_by_side(sampler, res["events"])
    assert side["/W/file"]["max"][0] == 77 and side["/W/file"]["max"][1] > 0
    assert side["/W/high"]["high"][0] == 119 and side["/W/high"]["high"][1] > 0


def test_trace_replay_under_recorded_limits(trace):
    """The trace import (reclaim left to the emulator) under baseline with the recorded
    limits: memory.current within STOCK on average, and the emulator's reclaim frees about
    what the kernel's did.  Measured: mean |error| 79.6 (/W), 40.2 (/W/anon), 6.6 (/W/file),
    10.2 (/W/high), 2.0 (/W/late) pages; reclaimed 3456 pages vs the kernel's 3449."""
    imp = trace.with_limits(LIMITS)
    res = replay_imported(imp, "baseline")
    for path, e in usage_error(imp, res["usage"]).items():
        assert e["mean_abs_error"] <= STOCK, (path, e)
    kernel = int(trace.annotations["value"][trace.annotations["what"] == 6].sum())
    assert abs(res["counters"]["reclaim_reclaimed"] - kernel) <= STOCK


@pytest.mark.parametrize("which", ["sampler", "trace"])
def test_both_engines_replay_an_import_identically(which, sampler, trace):
    if me.BACKEND != "cython":
        pytest.skip("compiled engine not built")
    imp = sampler if which == "sampler" else trace.with_limits(LIMITS)
    a = replay_imported(imp, "baseline", backend="python")
    b = replay_imported(imp, "baseline", backend="cython")
    np.testing.assert_array_equal(a["usage"], b["usage"])
    np.testing.assert_array_equal(a["events"], b["events"])
    assert a["skipped"] == b["skipped"] and a["counters"] == b["counters"]


def test_npz_round_trip(sampler, trace, tmp_path):
    for imp in (sampler, trace):
        p = tmp_path / f"{imp.kind}.npz"
        save_imported(p, imp)
        back = load_imported(p)
        assert back.kind == imp.kind
        np.testing.assert_array_equal(back.events, imp.events)
        np.testing.assert_array_equal(back.recorded_usage, imp.recorded_usage)
        np.testing.assert_array_equal(back.annotations, imp.annotations)
        assert back.workload.setup_dict() == imp.workload.setup_dict()
        assert back.report.as_dict() == imp.report.as_dict()
