"""Event files: .npy, .npz (versioned), workload archives, Arrow and Parquet round trips."""
import sys

import numpy as np
import pytest

from memcg_emu import io, workloads
from memcg_emu.events import EVENT_DTYPE, FORMAT_VERSION, EventBuilder


@pytest.fixture(scope="module")
def wl():
    return workloads.mixed(3_000, seed=4)


@pytest.fixture
def events(wl):
    return wl.events


def same(a, b):
    return a.dtype == EVENT_DTYPE and b.dtype == EVENT_DTYPE and a.tobytes() == b.tobytes()


# ---- numpy ---------------------------------------------------------------------------------
def test_npy_round_trip(tmp_path, events):
    p = tmp_path / "ev.npy"
    io.save_npy(p, events)
    assert same(io.load_npy(p), events)
    mm = io.load_npy(p, mmap_mode="r")
    assert isinstance(mm, np.memmap) and same(np.asarray(mm), events)


def test_npy_refuses_other_dtype(tmp_path):
    p = tmp_path / "x.npy"
    np.save(p, np.arange(10))
    with pytest.raises(ValueError, match="EVENT_DTYPE"):
        io.load_npy(p)


def test_npz_round_trip(tmp_path, events):
    for compress in (False, True):
        p = tmp_path / f"ev{compress}.npz"
        io.save_npz(p, events, compress=compress)
        assert same(io.load_npz(p), events)
        with np.load(p) as z:
            assert int(z["format_version"]) == FORMAT_VERSION
        assert io.load_npz_setup(p) is None


def test_npz_accepts_builder_output(tmp_path):
    ev = EventBuilder().charge(0, 4).return_to_user(0).build()
    io.save_npz(tmp_path / "b.npz", ev)
    assert same(io.load_npz(tmp_path / "b.npz"), ev)


def test_npz_refuses_other_version(tmp_path, events):
    p = tmp_path / "v2.npz"
    np.savez(p, events=events, format_version=np.int64(FORMAT_VERSION + 1))
    with pytest.raises(ValueError, match=f"version {FORMAT_VERSION + 1} is not supported"):
        io.load_npz(p)
    with pytest.raises(ValueError, match="not supported"):
        io.load_npz_setup(p)


def test_npz_refuses_missing_version(tmp_path, events):
    p = tmp_path / "nov.npz"
    np.savez(p, events=events)
    with pytest.raises(ValueError, match="format_version"):
        io.load_npz(p)


def test_npz_refuses_other_dtype(tmp_path):
    p = tmp_path / "bad.npz"
    np.savez(p, events=np.zeros(3, [("op", "u1")]), format_version=np.int64(FORMAT_VERSION))
    with pytest.raises(ValueError, match="EVENT_DTYPE"):
        io.load_npz(p)


def test_save_accepts_field_compatible_arrays_only(tmp_path, events):
    wrong = np.zeros(3, [("op", "u1"), ("task", "<i8")])
    with pytest.raises(ValueError, match="missing field"):
        io.save_npz(tmp_path / "w.npz", wrong)
    with pytest.raises(TypeError):
        io.save_npy(tmp_path / "w.npy", np.arange(3))


def test_workload_round_trip(tmp_path, wl):
    p = tmp_path / "w.npz"
    io.save_workload(p, wl)
    w2 = io.load_workload(p)
    assert same(w2.events, wl.events)
    assert w2.cgroups == wl.cgroups and w2.tasks == wl.tasks and w2.params == wl.params
    r1 = wl.build(backend="python").replay(wl.events)
    r2 = w2.build(backend="python").replay(w2.events)
    np.testing.assert_array_equal(r1.rc, r2.rc)
    assert r1.counters == r2.counters


def test_load_workload_needs_setup(tmp_path, events):
    io.save_npz(tmp_path / "e.npz", events)
    with pytest.raises(ValueError, match="no workload setup"):
        io.load_workload(tmp_path / "e.npz")


def test_by_suffix(tmp_path, events):
    for name in ("a.npy", "a.npz"):
        io.save_events(tmp_path / name, events)
        assert same(io.load_events(tmp_path / name), events)
    with pytest.raises(ValueError, match="unknown event file type"):
        io.save_events(tmp_path / "a.csv", events)
    with pytest.raises(ValueError, match="unknown event file type"):
        io.load_events(tmp_path / "a.csv")


# ---- Arrow / Parquet ---------------------------------------------------------------------
def test_missing_pyarrow_names_the_extra(monkeypatch, events):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(ImportError, match=r"memcg-emu\[arrow\]"):
        io.to_arrow(events)


def test_arrow_schema_and_round_trip(events):
    pa = pytest.importorskip("pyarrow")
    t = io.to_arrow(events)
    assert t.column_names == list(EVENT_DTYPE.names)
    for name in EVENT_DTYPE.names:
        assert t.schema.field(name).type == pa.from_numpy_dtype(EVENT_DTYPE[name])
        assert not t.schema.field(name).nullable
    assert t.schema.metadata[io.FORMAT_METADATA_KEY.encode()] == str(FORMAT_VERSION).encode()
    assert t.num_rows == len(events)
    assert same(io.from_arrow(t), events)
    assert same(io.from_arrow(t.to_batches()[0]), events[: t.to_batches()[0].num_rows])
    assert isinstance(t, pa.Table)


def test_parquet_round_trip(tmp_path, events):
    pytest.importorskip("pyarrow")
    p = tmp_path / "ev.parquet"
    io.write_parquet(p, events)
    assert same(io.read_parquet(p), events)
    io.save_events(tmp_path / "b.parquet", events)
    assert same(io.load_events(tmp_path / "b.parquet"), events)
    import pyarrow.parquet as pq

    meta = pq.read_schema(p).metadata
    assert meta[io.FORMAT_METADATA_KEY.encode()] == str(FORMAT_VERSION).encode()


def test_arrow_refuses_other_version(events):
    pytest.importorskip("pyarrow")
    t = io.to_arrow(events)
    t2 = t.replace_schema_metadata({io.FORMAT_METADATA_KEY: "99"})
    with pytest.raises(ValueError, match="version 99 is not supported"):
        io.from_arrow(t2)


def test_arrow_from_foreign_table(events):
    """A trace built elsewhere: wider integer types, no pad, no metadata, extra columns."""
    pa = pytest.importorskip("pyarrow")
    cols = {name: pa.array(events[name].astype(np.int64)) for name in EVENT_DTYPE.names
            if name != "pad"}
    cols["host"] = pa.array(["a"] * len(events))
    t = pa.table(cols)
    assert same(io.from_arrow(t), events)


def test_arrow_rejects_bad_columns(events):
    pa = pytest.importorskip("pyarrow")
    base = {name: events[name][:3].astype(np.int64) for name in EVENT_DTYPE.names}
    with pytest.raises(ValueError, match="missing column 'op'"):
        io.from_arrow(pa.table({k: v for k, v in base.items() if k != "op"}))
    overflow = dict(base, task=np.array([0, 1, 2**40]))
    with pytest.raises(ValueError, match="'task' does not fit int32"):
        io.from_arrow(pa.table(overflow))
    negative_op = dict(base, op=np.array([0, -1, 0]))
    with pytest.raises(ValueError, match="'op' does not fit uint8"):
        io.from_arrow(pa.table(negative_op))
    nulls = {k: pa.array(v) for k, v in base.items()}
    nulls["arg"] = pa.array([1, None, 2], type=pa.int64())
    with pytest.raises(ValueError, match="'arg' has 1 nulls"):
        io.from_arrow(pa.table(nulls))
    floats = dict(base, time=np.array([0.0, 1.0, 2.0]))
    with pytest.raises(TypeError, match="'time' has type double"):
        io.from_arrow(pa.table(floats))
    with pytest.raises(TypeError, match="pyarrow.Table"):
        io.from_arrow(events)
