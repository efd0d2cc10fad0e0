"""Saving and loading event arrays (replay format v2, :mod:`memcg_emu.events`; v1 loads).

* ``.npy``: the bare ``EVENT_DTYPE`` array (``np.save``); memory-mappable.  A ``.npy`` file
  has no room for a version entry, so the structured dtype itself is the check: loading
  refuses any other dtype.
* ``.npz``: entries ``events`` (the array), ``format_version`` (an int: written as
  ``memcg_emu.events.FORMAT_VERSION``, read if in ``READABLE_VERSIONS``) and, optionally,
  ``setup`` (a JSON string: the cgroups and tasks of a :class:`~memcg_emu.workloads.Workload`,
  see :func:`save_workload`).  A file with another version, or none, is refused with a
  ``ValueError``.
* Arrow / Parquet: one column per ``EVENT_DTYPE`` field, same names and types (``time``,
  ``arg``: int64; ``task``, ``memcg``: int32; ``gfp``: uint32; ``op``, ``kind``: uint8;
  ``pad``: uint16), no nulls, and the format version in the schema metadata under
  ``memcg_emu.format_version``.  :func:`from_arrow` also accepts tables from elsewhere (a
  cluster trace): other integer column types are cast with overflow checks, ``pad`` may be
  missing, extra columns are ignored; a table whose metadata names another version is
  refused.  pyarrow is imported only when needed (``pip install 'memcg-emu[arrow]'``).

Every loader returns a C-contiguous ``EVENT_DTYPE`` array ready for ``Emulator.replay``.
A file that cannot be read (missing, truncated, corrupt, of another format or version) raises
:class:`~memcg_emu.errors.InvalidFileError` naming the file and the problem; a file that
cannot be written raises it too.  Nothing else escapes (no ``BadZipFile``, ``EOFError``,
``zlib.error``, ``KeyError``, ``JSONDecodeError`` or pyarrow error).
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import numpy as np

from ._api import named
from .errors import EmuError, InvalidEventError, InvalidFileError, InvalidTypeError
from .events import EVENT_DTYPE, FORMAT_VERSION, READABLE_VERSIONS


def _problem(e: BaseException) -> str:
    if isinstance(e, FileNotFoundError):
        return "no such file"
    if isinstance(e, IsADirectoryError):
        return "is a directory"
    if isinstance(e, PermissionError):
        return "permission denied"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    text = str(e) or type(e).__name__
    return f"{type(e).__name__}: {text}" if type(e).__module__ != "builtins" else text


@contextlib.contextmanager
def _file(path, doing: str):
    """Turn whatever goes wrong while reading or writing ``path`` into InvalidFileError
    naming the file (an EmuError raised inside gets the file name in front)."""
    try:
        yield
    except InvalidFileError:
        raise
    except EmuError as e:
        text = str(e)
        where = os.fspath(path)
        raise InvalidFileError(text if text.startswith(str(where)) else f"{where}: {text}"
                               ) from e
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as e:  # noqa: BLE001 - any failure to parse a file is a bad file
        raise InvalidFileError(f"{os.fspath(path)}: cannot {doing}: {_problem(e)}") from e

__all__ = [
    "FORMAT_METADATA_KEY",
    "save_npy",
    "load_npy",
    "save_npz",
    "load_npz",
    "load_npz_setup",
    "save_workload",
    "load_workload",
    "to_arrow",
    "from_arrow",
    "write_parquet",
    "read_parquet",
    "save_events",
    "load_events",
]

FORMAT_METADATA_KEY = "memcg_emu.format_version"
_ARROW_TYPES = {"time": "int64", "arg": "int64", "task": "int32", "memcg": "int32",
                "gfp": "uint32", "op": "uint8", "kind": "uint8", "pad": "uint16"}


def _as_v1(events) -> np.ndarray:
    """``events`` as a 1-D C-contiguous EVENT_DTYPE array (fields matched by name)."""
    from .replay import as_events

    arr = as_events(events)
    if arr.ndim != 1:
        raise ValueError(f"events must be one-dimensional, not shape {arr.shape}")
    return arr


def _check_version(version, where: str) -> None:
    try:
        v = int(version)
    except (TypeError, ValueError):
        raise InvalidFileError(f"{where}: format version {version!r} is not an integer") from None
    if v not in READABLE_VERSIONS:
        raise InvalidFileError(f"{where}: event format version {v} is not supported (this "
                               f"memcg-emu reads versions {', '.join(map(str, READABLE_VERSIONS))} "
                               f"and writes version {FORMAT_VERSION})")


def _check_dtype(arr: np.ndarray, where: str) -> np.ndarray:
    if arr.dtype != EVENT_DTYPE:
        raise InvalidFileError(f"{where}: array dtype {arr.dtype} is not the event format "
                               f"v{FORMAT_VERSION} dtype memcg_emu.events.EVENT_DTYPE")
    if arr.ndim != 1:
        raise InvalidFileError(f"{where}: events must be one-dimensional, not shape {arr.shape}")
    return arr


# =============================================================================================
# numpy
# =============================================================================================
def save_npy(path, events) -> None:
    """Write ``events`` as a ``.npy`` file (numpy appends ``.npy`` if the name lacks it)."""
    arr = _as_v1(events)
    with _file(path, "write it"):
        np.save(path, arr, allow_pickle=False)


def load_npy(path, mmap_mode: str | None = None) -> np.ndarray:
    """Read a ``.npy`` event file; ``mmap_mode="r"`` maps it instead of reading it.

    Raises
    ------
    ValueError
        If the array is not a 1-D ``EVENT_DTYPE`` array.
    """
    with _file(path, "read it as .npy"):
        arr = np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    if not isinstance(arr, np.ndarray):
        raise InvalidFileError(f"{path}: not a .npy array file")
    return _check_dtype(arr, str(path))


def save_npz(path, events, *, setup: dict | str | None = None, compress: bool = False
             ) -> None:
    """Write ``events`` (and an optional workload ``setup``) as a ``.npz`` file with a
    ``format_version`` entry.  numpy appends ``.npz`` if the name lacks it."""
    entries = {"events": _as_v1(events),
               "format_version": np.array(FORMAT_VERSION, dtype=np.int64)}
    if setup is not None:
        text = setup if isinstance(setup, str) else json.dumps(setup, sort_keys=True)
        entries["setup"] = np.array(text)
    with _file(path, "write it"):
        (np.savez_compressed if compress else np.savez)(path, **entries)


@contextlib.contextmanager
def _open_npz(path):
    """The archive, open while the block runs; the file is closed whatever happens (numpy
    leaves it open when a corrupt archive fails to load)."""
    with _file(path, "open it"):
        f = open(path, "rb")  # noqa: SIM115 - closed below
    try:
        with _file(path, "read it as .npz"):
            z = np.load(f, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise InvalidFileError(f"{path}: not a .npz archive")
        with z:
            yield z
    finally:
        f.close()


def load_npz(path) -> np.ndarray:
    """Read the events of a ``.npz`` event file.

    Raises
    ------
    ValueError
        If ``format_version`` is missing or not in ``READABLE_VERSIONS``, or the events entry is
        missing or of another dtype.
    """
    with _open_npz(path) as z, _file(path, "read it as .npz"):
        if "format_version" not in z.files:
            raise InvalidFileError(f"{path}: no 'format_version' entry; not a memcg-emu event "
                                   f"file (entries: {z.files})")
        _check_version(z["format_version"], str(path))
        if "events" not in z.files:
            raise InvalidFileError(f"{path}: no 'events' entry (entries: {z.files})")
        return np.ascontiguousarray(_check_dtype(z["events"], str(path)))


def load_npz_setup(path) -> dict | None:
    """The workload setup stored in a ``.npz`` event file, or None if it has none."""
    with _open_npz(path) as z, _file(path, "read its workload setup"):
        if "format_version" in z.files:
            _check_version(z["format_version"], str(path))
        if "setup" not in z.files:
            return None
        setup = json.loads(str(z["setup"][()]))
        if not isinstance(setup, dict):
            raise InvalidFileError(f"{path}: the setup entry is not a JSON object")
        return setup


def save_workload(path, workload, *, compress: bool = False) -> None:
    """Write a :class:`~memcg_emu.workloads.Workload` (events + setup) as ``.npz``."""
    save_npz(path, workload.events, setup=workload.setup_dict(), compress=compress)


def load_workload(path):
    """Read a Workload written by :func:`save_workload`.

    Raises
    ------
    ValueError
        If the file has no setup entry (only events), or on a version mismatch.
    """
    from .workloads import Workload

    setup = load_npz_setup(path)
    if setup is None:
        raise InvalidFileError(f"{path}: holds events only, no workload setup (use load_npz)")
    events = load_npz(path)
    with _file(path, "build the workload from its setup"):
        _check_version(setup.get("format_version", FORMAT_VERSION), f"{path} setup")
        return Workload.from_setup(setup, events)


# =============================================================================================
# Arrow / Parquet
# =============================================================================================
def _pyarrow():
    try:
        import pyarrow as pa
    except ImportError as e:
        raise ImportError("Arrow/Parquet support needs pyarrow, which is not installed; "
                          "install the 'arrow' extra: pip install 'memcg-emu[arrow]'") from e
    return pa


def _arrow_schema(pa):
    return pa.schema([pa.field(name, getattr(pa, t)(), nullable=False)
                      for name, t in _ARROW_TYPES.items()],
                     metadata={FORMAT_METADATA_KEY: str(FORMAT_VERSION)})


def to_arrow(events):
    """The events as a ``pyarrow.Table``: one column per EVENT_DTYPE field, same names and
    types, with the format version in the schema metadata."""
    pa = _pyarrow()
    ev = _as_v1(events)
    schema = _arrow_schema(pa)
    cols = [pa.array(np.ascontiguousarray(ev[name]), type=schema.field(name).type)
            for name in _ARROW_TYPES]
    return pa.Table.from_arrays(cols, schema=schema)


def from_arrow(table) -> np.ndarray:
    """Events from a ``pyarrow.Table`` (or RecordBatch).

    Raises
    ------
    ValueError
        If the schema metadata names another format version, a required column is missing or
        has nulls, or a value does not fit the field's type.
    TypeError
        If a column is not of an integer type.
    """
    pa = _pyarrow()
    import pyarrow.compute as pc

    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    if not isinstance(table, pa.Table):
        raise InvalidTypeError(f"from_arrow expects a pyarrow.Table, not {type(table).__name__}")
    meta = table.schema.metadata or {}
    key = FORMAT_METADATA_KEY.encode()
    if key in meta:
        _check_version(meta[key].decode(errors="replace"), "arrow table")
    n = table.num_rows
    out = np.zeros(n, dtype=EVENT_DTYPE)
    for name, tname in _ARROW_TYPES.items():
        if name not in table.column_names:
            if name == "pad":
                continue
            raise InvalidEventError(f"arrow table: missing column {name!r} (have "
                                    f"{table.column_names})")
        col = table.column(name)
        if col.null_count:
            raise InvalidEventError(f"arrow table: column {name!r} has {col.null_count} nulls")
        if not pa.types.is_integer(col.type):
            raise InvalidTypeError(f"arrow table: column {name!r} has type {col.type}, expected "
                                   f"an integer type ({tname})")
        want = getattr(pa, tname)()
        if col.type != want:
            try:
                col = pc.cast(col, want, safe=True)
            except (pa.ArrowInvalid, OverflowError) as e:
                raise InvalidEventError(f"arrow table: column {name!r} does not fit {tname}: {e}"
                                        ) from None
        out[name] = col.to_numpy()
    return out


def write_parquet(path, events, **kwargs) -> None:
    """Write the events as a Parquet file (``to_arrow`` schema); ``kwargs`` go to
    ``pyarrow.parquet.write_table`` (e.g. ``compression="zstd"``)."""
    _pyarrow()
    import pyarrow.parquet as pq

    table = to_arrow(events)
    with _file(path, "write it"):
        pq.write_table(table, os.fspath(path), **kwargs)


def read_parquet(path) -> np.ndarray:
    """Read events from a Parquet file (see :func:`from_arrow` for what is accepted)."""
    _pyarrow()
    import pyarrow.parquet as pq

    with _file(path, "read it as Parquet"):
        table = pq.read_table(os.fspath(path))
    with _file(path, "read its events"):
        return from_arrow(table)


# =============================================================================================
# by file name
# =============================================================================================
def save_events(path, events) -> None:
    """Save by suffix: ``.npy``, ``.npz`` or ``.parquet``."""
    suffix = Path(path).suffix.lower()
    if suffix == ".npy":
        save_npy(path, events)
    elif suffix == ".npz":
        save_npz(path, events)
    elif suffix in (".parquet", ".pq"):
        write_parquet(path, events)
    else:
        raise InvalidFileError(f"{path}: unknown event file type {suffix!r} (use .npy, .npz or "
                               f".parquet)")


def load_events(path) -> np.ndarray:
    """Load by suffix: ``.npy``, ``.npz`` or ``.parquet``."""
    suffix = Path(path).suffix.lower()
    if suffix == ".npy":
        return load_npy(path)
    if suffix == ".npz":
        return load_npz(path)
    if suffix in (".parquet", ".pq"):
        return read_parquet(path)
    raise InvalidFileError(f"{path}: unknown event file type {suffix!r} (use .npy, .npz or "
                           f".parquet)")


for _name in __all__:
    if _name != "FORMAT_METADATA_KEY":
        globals()[_name] = named(f"memcg_emu.io.{_name}")(globals()[_name])
del _name
