"""Bad input as a user meets it: every example of the robustness report is a test here.
A call either returns or raises an error from memcg_emu.errors that names the call, the field
(or event, or file) and the reason, before anything is applied; no call hangs, wraps or
crashes.  (The property-based sweep over the same surfaces is tests/test_fuzz.py.)"""
import json
import os
import random
import zipfile

import numpy as np
import pytest

import memcg_emu as me
from memcg_emu import cli, io, timed, workloads
from memcg_emu.errors import (MAX_NR_PAGES, MAX_TOTAL_PAGES, EmuError, InvalidArgumentError,
                              InvalidEventError, InvalidFileError, InvalidProgramError,
                              InvalidTypeError, LimitError)
from memcg_emu.events import EVENT_DTYPE, EventBuilder
from memcg_emu.timed import MAX_SAMPLES, ProgramBuilder, TimedSim


def snapshot(emu):
    return {n: getattr(emu.state, n).copy() for n in emu.state.field_names()}


def assert_untouched(emu, snap):
    for n, arr in snap.items():
        np.testing.assert_array_equal(getattr(emu.state, n), arr, err_msg=n)


@pytest.fixture
def emu(make):
    e = make()
    e.mkdir("A")
    e.new_task("A")
    return e


# =============================================================================================
# the error family
# =============================================================================================
def test_every_error_is_a_value_error_and_type_errors_stay_type_errors():
    for cls in (InvalidArgumentError, InvalidEventError, InvalidFileError, InvalidProgramError,
                LimitError, InvalidTypeError):
        assert issubclass(cls, EmuError) and issubclass(cls, ValueError)
    assert issubclass(InvalidTypeError, TypeError)
    import ast
    import inspect

    import memcg_emu.errors as errors
    tree = ast.parse(inspect.getsource(errors))
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert all(isinstance(n, ast.ImportFrom) and n.module == "__future__" for n in imports)


@pytest.mark.parametrize("call, cls, text", [
    (lambda e: e.charge(0, 0), InvalidArgumentError, "Emulator.charge: nr_pages = 0"),
    (lambda e: e.charge(0, 1.5), InvalidTypeError, "Emulator.charge: nr_pages must be an int"),
    (lambda e: e.charge(0, 1, kind=3), InvalidArgumentError, "Emulator.charge: kind must be"),
    (lambda e: e.mkdir(5), InvalidTypeError, "Emulator.mkdir: cgroup path must be a str"),
    (lambda e: e.write("A", "memory.max", "1Q"), InvalidArgumentError,
     "Emulator.write: memory.max: invalid value '1Q'"),
    (lambda e: e.read("Z", "memory.max"), InvalidArgumentError,
     "Emulator.read: no such cgroup: 'Z'"),
    (lambda e: e.memalloc_nofs_save(9), InvalidArgumentError,
     "Emulator.memalloc_nofs_save: task: no task with pid 9"),  # the outer call is named
    (lambda e: e.open("A", "memory.max"), InvalidArgumentError, "Emulator.open: only"),
    (lambda e: e.replay(np.zeros(2)), InvalidTypeError, "Emulator.replay: events must be"),
    (lambda e: me.Emulator(nr_cpus=0), InvalidArgumentError, "Emulator: nr_cpus = 0"),
    (lambda e: e.engine.charge(7, 1, 0, 0, -1), InvalidArgumentError, "engine.charge: t = 7"),
])
def test_messages_name_the_call_and_field(emu, call, cls, text):
    snap = snapshot(emu)
    with pytest.raises(cls) as info:
        call(emu)
    assert str(info.value).startswith(text), str(info.value)
    assert_untouched(emu, snap)


# =============================================================================================
# hangs: every loop bounded, checked before it starts
# =============================================================================================
@pytest.mark.parametrize("max_samples", [10, None])
def test_replay_time_sampling_over_a_huge_span_is_refused(emu, max_samples):
    ev = EventBuilder().charge(0, 1, time=0).charge(0, 1, time=10**15).build()
    snap = snapshot(emu)
    with pytest.raises(LimitError, match="MAX_SAMPLE_POINTS"):
        emu.replay(ev, sample_dt=1, max_samples=max_samples)
    assert_untouched(emu, snap)
    r = emu.replay(ev, sample_dt=10**9, max_samples=max_samples)  # 10**6 points: fine
    assert r.n_events == 2


def test_timed_run_of_2_62_is_refused_even_with_no_tasks(backend):
    sim = TimedSim(backend=backend)
    with pytest.raises(LimitError, match="MAX_SAMPLES"):
        sim.run(2**62)
    with pytest.raises(LimitError, match="MAX_PERIODIC_WAKEUPS"):
        TimedSim(backend=backend, sample_dt_ns=2**62).run(2**62)
    assert sim.now == 0 and sim.run(10**9).summary["sim_time_ns"] == 10**9


def test_timed_sampling_every_ns_is_refused(monkeypatch):
    sim = TimedSim(sample_dt_ns=1)
    with pytest.raises(LimitError, match=f"MAX_SAMPLES = {MAX_SAMPLES:,}"):
        sim.run(200_000_000)
    monkeypatch.setattr(timed, "MAX_SAMPLES", 1000)
    sim.run(999)  # samples at 0..999: exactly the bound
    assert len(sim._samples["time_ns"]) == 1000
    with pytest.raises(LimitError, match="would keep 1,005 samples"):
        sim.run(1004)  # the bound holds over all run() calls
    assert sim.now == 999


def test_memory_reclaim_swappiness_is_match_int(emu):
    emu.charge(0, 8, kind="file")
    assert emu.write("A", "memory.reclaim", "4K swappiness=0x0") in (0, -11)
    with pytest.raises(InvalidArgumentError, match="swappiness: invalid integer"):
        emu.write("A", "memory.reclaim", "4K swappiness=\u0967")
    with pytest.raises(InvalidArgumentError, match="unsupported option"):
        emu.write("A", "memory.reclaim", "4K swappiness=201")


def test_from_columns_refuses_values_that_do_not_fit():
    from memcg_emu.events import from_columns

    assert from_columns([0, 1], task=0, arg=[1, 2])["arg"].tolist() == [1, 2]
    with pytest.raises(InvalidEventError, match="event 1: field 'op' = 256"):
        from_columns([0, 256])
    with pytest.raises(InvalidEventError, match="field 'arg' = 1.5"):
        from_columns([0], arg=1.5)


# =============================================================================================
# wrapping: totals bounded
# =============================================================================================
def test_nofail_charges_cannot_wrap_usage(emu):
    t = emu.tasks[0]
    gfp = me.GFP_KERNEL | me.__GFP_NOFAIL
    n = 0
    with pytest.raises(LimitError, match="MAX_TOTAL_PAGES"):
        for n in range(2**23 + 64):
            emu.charge(t, MAX_NR_PAGES, gfp=gfp)
    assert n == MAX_TOTAL_PAGES // MAX_NR_PAGES
    assert int(emu.read("A", "memory.current")) == MAX_TOTAL_PAGES * me.PAGE_SIZE
    with pytest.raises(InvalidArgumentError, match="nr_pages"):
        emu.charge(t, MAX_NR_PAGES + 1, gfp=gfp)


@pytest.mark.parametrize("up_front", [False, True])
def test_replay_past_the_total_is_rejected(emu, monkeypatch, up_front):
    from memcg_emu import replay

    if up_front:  # long arrays sum their charges before running
        monkeypatch.setattr(replay, "_SUM_UP_FRONT", 0)
    b = EventBuilder()
    for _ in range(MAX_TOTAL_PAGES // MAX_NR_PAGES + 1):
        b.charge(0, MAX_NR_PAGES, gfp=me.GFP_KERNEL | me.__GFP_NOFAIL)
    snap = snapshot(emu)
    with pytest.raises(LimitError, match="MAX_TOTAL_PAGES"):
        emu.replay(b.build())
    assert_untouched(emu, snap)


# =============================================================================================
# half-applied
# =============================================================================================
@pytest.mark.parametrize("start_ns", [-1, 1.5, 2**63])
def test_add_task_validates_before_creating_the_task(start_ns):
    sim = TimedSim()
    sim.mkdir("A")
    snap = snapshot(sim.emu)
    with pytest.raises(EmuError, match="TimedSim.add_task: start_ns"):
        sim.add_task("A", ProgramBuilder().compute(10).build(), start_ns=start_ns)
    assert sim.emu.state.n_tasks == 0
    assert_untouched(sim.emu, snap)
    assert sim.add_task("A", ProgramBuilder().compute(10).build()) == 0


# =============================================================================================
# silently wrong: non-standard dtypes
# =============================================================================================
def _wide(fields, **values):
    dt = [(n, fields.get(n, "<i8")) for n in EVENT_DTYPE.names]
    a = np.zeros(1, dt)
    a["task"], a["memcg"], a["arg"], a["gfp"] = 0, -1, 1, me.GFP_KERNEL
    for k, v in values.items():
        a[k] = v
    return a


@pytest.mark.parametrize("field, value", [("op", 256), ("task", 2**32), ("gfp", 2**32),
                                          ("kind", 257), ("op", -1), ("memcg", 2**31)])
def test_values_that_do_not_fit_are_refused(emu, field, value):
    snap = snapshot(emu)
    with pytest.raises(InvalidEventError, match=f"event 0: field '{field}' = {value}"):
        emu.replay(_wide({}, **{field: value}))
    assert_untouched(emu, snap)


def test_float_arg_must_be_integral(emu):
    with pytest.raises(InvalidEventError, match="field 'arg' = 1.5"):
        emu.replay(_wide({"arg": "<f8"}, arg=1.5))
    r = emu.replay(_wide({"arg": "<f8"}, arg=2.0))  # an integral float fits
    assert r.rc.tolist() == [0] and emu.pages("A") >= 2


def test_a_wide_layout_that_fits_gives_the_standard_result(make):
    ev = EventBuilder().charge(0, 3).charge(0, 2, kind=1).uncharge(0, 1).build()
    wide = np.zeros(len(ev), [(n, "<i8") for n in EVENT_DTYPE.names][::-1])
    for n in EVENT_DTYPE.names:
        wide[n] = ev[n]
    a, b = make(), make()
    for e in (a, b):
        e.mkdir("A")
        e.new_task("A")
    assert a.replay(ev).rc.tolist() == b.replay(wide).rc.tolist()
    assert a.pool("A") == b.pool("A")


@pytest.mark.parametrize("dtype", [[("op", "<i8", (2,))], [("op", "U3")], [("op", "O")]])
def test_subarray_string_and_object_op_fields(emu, dtype):
    dt = dtype + [(n, "<i8") for n in EVENT_DTYPE.names if n != "op"]
    with pytest.raises(InvalidEventError, match="Emulator.replay: field 'op' has dtype"):
        emu.replay(np.zeros(1, dt))


def test_builders_refuse_values_numpy_would_cast():
    with pytest.raises(InvalidEventError, match="event 0: field 'arg' = 1.5 is not an int"):
        EventBuilder().charge(0, 1.5)
    with pytest.raises(InvalidEventError, match="field 'arg' = 18446744073709551616"):
        EventBuilder().charge(0, 2**64)
    with pytest.raises(InvalidProgramError, match="ProgramBuilder.charge: ProgramBuilder: op 1"):
        ProgramBuilder().compute(1).charge(1, gfp=2**40)


# =============================================================================================
# unclear errors
# =============================================================================================
def test_sample_every_beyond_int64(emu):
    with pytest.raises(InvalidArgumentError, match="Emulator.replay: sample_every = "
                                                   "18446744073709551616 is above"):
        emu.replay(EventBuilder().charge(0, 1).build(), sample_every=2**64)


@pytest.mark.parametrize("text, pages", [("010", 0), ("0100000", 8), ("0x4000", 4),
                                         ("0X1m", 256), ("", 0), ("4k", 1),
                                         ("18446744073709551616", 0)])
def test_memparse_reads_like_the_kernel(emu, text, pages):
    emu.write("A", "memory.high", text, nonblock=True)
    assert emu.pages("A", "high") == pages


@pytest.mark.parametrize("text", ["0x", "08", "1 2", "+1", "1KB", "\u0967", "\uff11", "1e3x"])
def test_memparse_rejects_like_the_kernel(emu, text):
    snap = snapshot(emu)
    with pytest.raises(InvalidArgumentError, match="Emulator.write: memory.max: invalid value"):
        emu.write("A", "memory.max", text)
    assert_untouched(emu, snap)


def test_pids_and_oom_group_are_kstrtoint(emu):
    emu.mkdir("B")
    emu.write("B", "cgroup.procs", "0x0\n")  # kstrtoint base 0
    assert emu.read("B", "cgroup.procs") == "0\n"
    emu.write("B", "memory.oom.group", "01")
    assert emu.read("B", "memory.oom.group") == "1\n"
    for bad in ("\u0967", "-1", "1.0", "", "99999999999"):
        with pytest.raises(InvalidArgumentError, match="Emulator.write: cgroup.procs pid"):
            emu.write("A", "cgroup.procs", bad)
    assert emu.read("B", "cgroup.procs") == "0\n"


def test_pages_field_is_a_known_counter(emu):
    with pytest.raises(InvalidArgumentError, match="unknown per-cgroup field '__class__'"):
        emu.pages("A", "__class__")
    with pytest.raises(InvalidArgumentError, match="unknown per-cgroup field"):
        emu.pages("A", "preorder")
    assert emu.pages("A", "max") == me.PAGE_COUNTER_MAX


# ---- files -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("files")
    wl = workloads.mixed(500, seed=2)
    io.save_workload(d / "w.npz", wl)
    io.save_npz(d / "c.npz", wl.events, compress=True)
    io.save_npy(d / "e.npy", wl.events)
    io.write_parquet(d / "e.parquet", wl.events)
    return d


LOADERS = [("w.npz", io.load_workload), ("c.npz", io.load_npz), ("e.npy", io.load_npy),
           ("e.parquet", io.read_parquet), ("w.npz", io.load_npz_setup),
           ("c.npz", io.load_events), ("e.parquet", io.load_events)]


@pytest.mark.parametrize("name, loader", LOADERS, ids=[f"{n}-{f.__name__}" for n, f in LOADERS])
def test_corrupt_and_truncated_files(files, tmp_path, name, loader):
    data = (files / name).read_bytes()
    rng = random.Random(name + loader.__name__)
    suffix = os.path.splitext(name)[1]
    refused = 0
    for k in range(40):
        b = bytearray(data)
        if k % 2:
            b = b[: rng.randrange(len(b))]
        else:
            for _ in range(rng.randrange(1, 40)):
                b[rng.randrange(len(b))] = rng.randrange(256)
        p = tmp_path / f"x{k}{suffix}"
        p.write_bytes(bytes(b))
        try:
            loader(p)
        except InvalidFileError as e:
            assert str(p) in str(e), e
            refused += 1
    assert refused >= 20  # every truncation is refused, with the file named
    with pytest.raises(InvalidFileError, match="no such file"):
        loader(tmp_path / f"missing{suffix}")


def test_bad_workload_setup_json(files, tmp_path):
    with zipfile.ZipFile(files / "w.npz") as z:
        entries = {n: z.read(n) for n in z.namelist()}
    for setup in (b"{not json", json.dumps({"cgroups": 5}).encode(), b"[1, 2]"):
        p = tmp_path / "bad.npz"
        ev = np.load(files / "w.npz")["events"]
        np.savez(p, events=ev, format_version=np.int64(1), setup=np.array(setup.decode()))
        with pytest.raises(InvalidFileError, match=str(p)):
            io.load_workload(p)
    assert entries  # the good file was a zip with entries


def test_files_that_cannot_be_written(tmp_path):
    with pytest.raises(InvalidFileError, match="no such file"):
        io.save_npz(tmp_path / "no" / "dir.npz", EventBuilder().charge(0, 1).build())


# =============================================================================================
# crashes: the engine behind a checking proxy
# =============================================================================================
@pytest.mark.parametrize("call, text", [
    (lambda g: g.charge(10**7, 1, me.GFP_KERNEL, 0, -1), "engine.charge: t = 10000000"),
    (lambda g: g.charge(0, 1, me.GFP_KERNEL, 99, -1), "engine.charge: kind = 99"),
    (lambda g: g.charge(0, 1, me.GFP_KERNEL, 0, 99), "engine.charge: memcg = 99"),
    (lambda g: g.uncharge(10**7, 1, 0, -1), "engine.uncharge: t = 10000000"),
    (lambda g: g.uncharge(0, 1, 7, -1), "engine.uncharge: kind = 7"),
    (lambda g: g.emu_move_pages(10**7, 1, 2, 1), "engine.emu_move_pages: memcg = 10000000"),
    (lambda g: g.emu_move_pages(1, 1, 9, 1), "engine.emu_move_pages: dst = 9"),
    (lambda g: g.drain_all_stock(-1), "engine.drain_all_stock: root = -1"),
    (lambda g: g.return_to_user(-1), "engine.return_to_user: t = -1"),
    (lambda g: g.charge_step(0), "engine.charge_step: task 0 has no charge path"),
    (lambda g: g.memory_max_write(0, 1, False), "engine.memory_max_write: memcg = 0"),
    (lambda g: g.set_active_memcg(0, 5), "engine.set_active_memcg: memcg = 5"),
    (lambda g: g.emu_scan_count(1, 0, 1, 64), "engine.emu_scan_count: priority = 64"),
    (lambda g: g.bind(None), "engine.bind: not part of the checked engine"),
])
def test_engine_refuses_bad_indices(emu, call, text):
    snap = snapshot(emu)
    with pytest.raises((InvalidArgumentError, AttributeError)) as info:
        call(emu.engine)
    assert str(info.value).startswith(text), str(info.value)
    assert_untouched(emu, snap)


def test_engine_replay_loop_checks_events_and_arrays(emu):
    def loop(ev, n_rc=None, n_cg=1):
        n = len(ev) if n_rc is None else n_rc
        z = np.zeros
        return emu.engine.replay_loop(ev, z(n, np.int64), z(n, np.uint8), 0, 0,
                                      z(1, np.int64), z(1, np.int64), z((1, n_cg), np.int64),
                                      z((1, n_cg), np.int64), z((1, n_cg, 1), np.int64), True)

    with pytest.raises(InvalidEventError, match="engine.replay_loop: event 0: field 'task' = 5"):
        loop(EventBuilder().charge(5, 1).build())
    with pytest.raises(InvalidArgumentError, match="rc_out has 0 slots"):
        loop(EventBuilder().charge(0, 1).build(), n_rc=0)
    with pytest.raises(InvalidArgumentError, match="sample arrays"):
        loop(EventBuilder().charge(0, 1).build(), n_cg=50)
    assert loop(EventBuilder().charge(0, 1).build())[:2] == (1, 0)


def test_engine_results_are_the_engines(make):
    a, b = make(), make()
    for e in (a, b):
        e.mkdir("A")
        e.write("A", "memory.max", "64K")
        e.new_task("A")
    rc = [a.engine.charge(0, 20, me.GFP_KERNEL, 0, -1), a.engine.return_to_user(0)]
    assert rc == [b.engine.unchecked.charge(0, 20, me.GFP_KERNEL, 0, -1),
                  b.engine.unchecked.return_to_user(0)]
    for n in a.state.field_names():
        np.testing.assert_array_equal(getattr(a.state, n), getattr(b.state, n), err_msg=n)


# =============================================================================================
# the command line
# =============================================================================================
def _cli(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("argv, text", [
    (["scenario", "--duration-ms", "inf"], "--duration-ms: 'inf' must be a positive finite"),
    (["scenario", "--duration-ms", "nan"], "positive finite"),
    (["scenario", "--seed", str(2**64)], "--seed: 18446744073709551616 is out of range"),
    (["replay", "--events", "1e23"], "--events must be in [1, 100,000,000], not 1e+23"),
    (["replay", "--events", "1.5"], "not a whole number"),
    (["scenario", "--plot", "x.txt"], "--plot x.txt: unsupported file type"),
    (["scenario", "--json", "/nonexistent-dir/r.json"], "folder /nonexistent-dir does not"),
    (["replay", "--save-events", "/nonexistent-dir/w.npz"], "does not exist"),
    (["replay", "--save-events", "w.txt"], "unsupported file type (use .npz)"),
])
def test_cli_refuses_before_any_work(capsys, argv, text):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    out = capsys.readouterr()
    assert text in out.err and "Traceback" not in out.err
    assert out.out == ""  # nothing was run


def test_cli_duration_past_the_sample_bound_is_one_line(capsys):
    code, out, err = _cli(capsys, "scenario", "mmap-lock-reclaim", "--duration-ms", "1e9",
                          "--policy", "baseline")
    assert code == 1
    assert err.count("\n") == 1 and "MAX_SAMPLES" in err and "Traceback" not in err


def test_cli_version_and_ctrl_c(capsys, monkeypatch):
    assert _cli(capsys, "--version")[:2] == (0, f"memcg-emu {me.__version__}\n")

    def interrupted(argv):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "replay_main", interrupted)
    code, out, err = _cli(capsys, "replay")
    assert code == 130 and err == "memcg-emu: interrupted\n"


def test_cli_json_to_stdout(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = _cli(capsys, "replay", "--backend", "python", "--no-progress",
                          "--events", "500", "--policy", "baseline", "--json", "-")
    assert code == 0 and not (tmp_path / "-").exists()
    doc = json.loads(out)  # stdout is the JSON alone; the tables went to stderr
    assert doc["policies"]["baseline"]["summary"]["events"] == 500
    assert "Summary" in err


def test_cli_dispatch_table_lists_the_subcommands():
    assert {"replay", "scenario", "scenarios"} <= set(cli._commands())


# =============================================================================================
# docs
# =============================================================================================
def test_submodules_after_import_memcg_emu():
    import subprocess
    import sys

    code = "import memcg_emu; print(memcg_emu.scenarios.run.__name__, memcg_emu.io.__name__)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert r.stdout.split() == ["run", "memcg_emu.io"], r.stderr


def test_generators_and_scenarios_name_the_call():
    with pytest.raises(LimitError, match=r"memcg_emu.workloads.mixed: n_events = 1(0){23} is "
                                         r"more than MAX_EVENTS"):
        workloads.mixed(10**23)
    with pytest.raises(InvalidTypeError, match="memcg_emu.workloads.bursts: n_events must be"):
        workloads.bursts(1.5)
    with pytest.raises(InvalidArgumentError, match="memcg_emu.scenarios.run: unknown scenario"):
        me.scenarios.run("nope")
