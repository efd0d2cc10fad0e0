"""Sweeps: one run per cell of a grid (policies x seeds x parameters, or policies x seeds x
workload files), results in one pandas DataFrame.

One run of one seed answers little: the outcome of ``jbd2-stall`` is bimodal across seeds and
turns on the cost model.  A sweep runs every cell of a grid and collects one row per run:
the cell's coordinates (``scenario`` or ``input``, ``policy``, ``seed`` and one column per
swept key) and every summary field of the run (:meth:`memcg_emu.timed.TimedSim.run` for
timed scenarios, :attr:`memcg_emu.replay.ReplayResult.summary` for replays).

Grids
-----
:class:`ScenarioGrid`
    A built-in timed scenario (:mod:`memcg_emu.scenarios`) under each policy and seed, with
    swept ``params``, each a key and its values:

    - ``FIELD`` or ``params.FIELD``: a field of the scenario's ``*Params`` class
      (``pod_procs``, ``duration_ns``, ...);
    - ``costs.FIELD``: a :class:`~memcg_emu.timed.CostModel` field, applied on top of the
      scenario's own cost model (so ``costs.writeback_page_ns`` overrides the value
      ``jbd2-stall`` derives from its ``writeback_page_ns`` parameter);
    - ``journal.FIELD`` / ``flusher.FIELD``: a :class:`~memcg_emu.timed.JournalConfig` /
      :class:`~memcg_emu.timed.FlusherConfig` field, on top of the scenario's;
    - ``memory.max`` (``.high``, ``.low``, ``.min``, ``.swap.max``): written to the scenario's
      limited cgroup after it is built (``"32M"``, ``"max"``, or bytes), or ``/PATH/memory.max``
      for another cgroup.

    Values given as strings are parsed by the field's type: integers (``1_000``, ``1e6``;
    fields ending in ``_ns`` also take ``ns``/``us``/``ms``/``s`` suffixes: ``200ms``),
    floats, booleans (``true``/``false``), ``A:B`` pairs (``pod_think_ns=1ms:5ms``).
:class:`ReplayGrid`
    Workload files (``.npz`` written by ``memcg-emu replay --save-events`` or
    :func:`memcg_emu.io.save_workload`: events and setup) under each policy and seed (the
    engine seed).

Every spec is checked before any cell runs (:meth:`ScenarioGrid.cells`): an unknown policy,
scenario or key, a bad seed or value raises :class:`~memcg_emu.errors.InvalidConfigError`
naming it; a scenario parameter value is tried by building the scenario with it.

Running
-------
:func:`run` runs the cells on Dask (``dask.distributed``, the optional ``sweep`` extra): a
``LocalCluster`` of one single-threaded worker process per core by default, or an existing
cluster (``scheduler="tcp://host:8786"`` or a ``distributed.Client``; its workers need
memcg-emu installed and, for replays, the workload files at the same paths).  ``local=True``
runs them in this process, in order, without Dask.  Cells are independent and deterministic
(every random draw comes from the cell's seed), so both give the same rows, in grid order;
only the wall-clock fields (:data:`WALL_CLOCK_COLUMNS`) differ.  A cell that raises does not
stop the sweep: its row has the coordinates and ``error`` (``"TypeName: message"``); the
summary fields of that row are missing (NaN).

:func:`summarize` turns the rows into per-policy statistics: median and interquartile range
of the main figures, the fraction of runs in which each signature appears (e.g. the journal
locked for 1 s or more), each with its difference from the baseline policy.
"""
from __future__ import annotations

import functools
import glob as _glob
import itertools
import math
import operator
import os
import re
from dataclasses import dataclass, field, fields, replace
from typing import Callable, Iterable, Mapping, Sequence

from .errors import InvalidConfigError, LimitError

__all__ = [
    "MAX_CELLS",
    "REPLAY_FIGURES",
    "REPLAY_SIGNATURES",
    "WALL_CLOCK_COLUMNS",
    "Cell",
    "Figure",
    "ReplayGrid",
    "ScenarioGrid",
    "Signature",
    "SweepResult",
    "local_cluster",
    "parse_seeds",
    "parse_set",
    "plot",
    "policy_label",
    "run",
    "run_cell",
    "scenario_figures",
    "scenario_signatures",
    "summarize",
    "swept_keys",
]

#: A grid may have at most this many cells.
MAX_CELLS = 1_000_000
#: Summary fields measured on the wall clock: they differ between two runs of one cell.
WALL_CLOCK_COLUMNS = ("wall_seconds", "events_per_sec", "ops_per_sec", "elapsed_s")
MS = 1_000_000
NS_PER_SEC = 1_000_000_000
_LIMIT_FILES = ("memory.swap.max", "memory.max", "memory.high", "memory.low", "memory.min")
_CONFIG_NAMESPACES = ("costs", "journal", "flusher")
_TIME_UNITS = {"ns": 1, "us": 1_000, "ms": MS, "s": NS_PER_SEC}
_NUMBER = re.compile(r"^\s*([+-]?[0-9][0-9_]*(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?)\s*"
                     r"(ns|us|ms|s)?\s*$")
_MAX_INT = (1 << 62)


def _err(spec: str, msg: str) -> InvalidConfigError:
    return InvalidConfigError(f"sweep: {spec}: {msg}")


def policy_label(policy) -> str:
    """The name of a policy for tables and the ``policy`` column: the string itself, or a
    policy object's ``name``."""
    if isinstance(policy, str):
        return policy
    name = getattr(policy, "name", None)
    return name if isinstance(name, str) else str(policy)


# =============================================================================================
# grid specs: seeds, --set values
# =============================================================================================
def parse_seeds(text: str) -> list[int]:
    """``"0-19"``, ``"3"``, ``"0,5,9"``, ``"0-4,10-14"`` -> the seeds, inclusive ranges, in
    order.  Raises InvalidConfigError naming the bad part."""
    if not isinstance(text, str) or not text.strip():
        raise _err(f"--seeds {text!r}", "expected seeds like '0-19', '7' or '0,5,9'")
    seeds: list[int] = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*([0-9]+)\s*(?:-\s*([0-9]+)\s*)?", part)
        if not m:
            raise _err(f"--seeds {text!r}", f"bad seed or range {part.strip()!r} (expected N "
                                             "or A-B with 0 <= A <= B)")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise _err(f"--seeds {text!r}", f"empty range {part.strip()!r} ({hi} < {lo})")
        if hi >= _MAX_INT:
            raise _err(f"--seeds {text!r}", f"seed {hi} is too large (at most {_MAX_INT - 1})")
        if hi - lo + 1 + len(seeds) > MAX_CELLS:
            raise LimitError(f"sweep: --seeds {text!r}: more than {MAX_CELLS:,} seeds")
        seeds.extend(range(lo, hi + 1))
    return seeds


def parse_set(text: str) -> tuple[str, list[str]]:
    """``"KEY=V1,V2"`` -> ``("KEY", ["V1", "V2"])`` (values still strings)."""
    key, eq, values = text.partition("=")
    key = key.strip()
    if not eq or not key:
        raise _err(f"--set {text!r}", "expected KEY=V1,V2,...")
    vals = [v.strip() for v in values.split(",")]
    if not values.strip() or any(not v for v in vals):
        raise _err(f"--set {text!r}", "empty value (expected KEY=V1,V2,...)")
    return key, vals


def _parse_int(text: str, ns: bool) -> int:
    m = _NUMBER.match(text)
    if not m or (m.group(2) and not ns):
        raise ValueError("not an integer" + (" (or a time like 200ms)" if ns else ""))
    num = m.group(1).replace("_", "")
    scale = _TIME_UNITS[m.group(2) or "ns"]
    if re.fullmatch(r"[+-]?[0-9]+", num):
        return int(num) * scale
    x = float(num) * scale
    if not math.isfinite(x) or x != int(x):
        raise ValueError("not an integer" + (" number of ns" if ns else ""))
    return int(x)


def _coerce(spec: str, name: str, default, value):
    """A value for a field whose default is ``default``: parse strings by the default's type,
    check Python values' types; integers and floats must be non-negative and finite."""
    ns = name.endswith("_ns")
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                low = value.strip().lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError("expected true or false")
            if isinstance(value, bool):
                return value
            raise ValueError(f"expected a bool, not {type(value).__name__}")
        if isinstance(default, int):
            if isinstance(value, str):
                value = _parse_int(value, ns)
            elif isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"expected an integer, not {type(value).__name__}")
            value = int(value)
            if not 0 <= value < _MAX_INT:
                raise ValueError(f"{value} is out of range [0, 2**62)")
            return value
        if isinstance(default, float):
            if isinstance(value, str):
                value = float(value)
            elif isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"expected a number, not {type(value).__name__}")
            value = float(value)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{value} is not a finite non-negative number")
            return value
        if isinstance(default, tuple):
            parts = value.split(":") if isinstance(value, str) else value
            if not isinstance(parts, (tuple, list)) or len(parts) != len(default):
                raise ValueError(f"expected {len(default)} values separated by ':' (like "
                                 f"{':'.join(map(str, default))})")
            return tuple(_coerce(spec, name, d, v) for d, v in zip(default, parts))
    except InvalidConfigError:
        raise
    except (ValueError, TypeError, OverflowError) as e:
        raise _err(spec, f"bad value {value!r} for {name}: {e}") from None
    raise _err(spec, f"{name} cannot be swept (type {type(default).__name__})")


def _dataclass_defaults(cls) -> dict:
    obj = cls()
    return {f.name: getattr(obj, f.name) for f in fields(cls)}


def _config_classes() -> dict:
    from .timed import CostModel, FlusherConfig, JournalConfig

    return {"costs": CostModel, "journal": JournalConfig, "flusher": FlusherConfig}


def _resolve_key(scenario: str, key: str):
    """``key`` -> (namespace, field or (path, file), default value or None)."""
    from .scenarios import SCENARIOS

    spec = f"--set {key}"
    if not isinstance(key, str) or not key:
        raise _err(f"--set {key!r}", "a key must be a non-empty string")
    for file in _LIMIT_FILES:
        if key == file or key.endswith("/" + file):
            path = key[: -len(file)].rstrip("/") or None
            return "limit", (path, file), None
    ns, dot, name = key.partition(".")
    if dot and ns in _CONFIG_NAMESPACES:
        known = _dataclass_defaults(_config_classes()[ns])
        if name not in known:
            raise _err(spec, f"unknown key; {ns}.* is one of {', '.join(known)}")
        return ns, name, known[name]
    if dot and ns == "params":
        key = name
    elif dot:
        raise _err(spec, "unknown key (expected FIELD or params.FIELD of the scenario's "
                         "parameters, costs.FIELD, journal.FIELD, flusher.FIELD, or a "
                         f"limit file: {', '.join(_LIMIT_FILES)})")
    params_cls = SCENARIOS[scenario].params
    known = _dataclass_defaults(params_cls) if params_cls is not None else {}
    if key not in known:
        raise _err(spec, f"unknown key for {scenario}; its parameters are "
                         f"{', '.join(known) or '(none)'}; other keys: costs.*, journal.*, "
                         f"flusher.*, {', '.join(_LIMIT_FILES)}")
    return "params", key, known[key]


# =============================================================================================
# cells
# =============================================================================================
@dataclass(frozen=True)
class Cell:
    """One run of a sweep.

    ``kind`` is ``"scenario"`` (``target`` a scenario name) or ``"replay"`` (``target`` a
    workload file).  ``policy`` is carried as given (a name, or a policy object) into the
    run.  ``overrides`` are ``(key, value)`` pairs, parsed and checked.
    """

    index: int
    kind: str
    target: str
    policy: object
    seed: int
    overrides: tuple = ()
    backend: str | None = None
    duration_ns: int | None = None
    nr_cpus: int | None = None

    def coords(self) -> dict:
        """The grid coordinates of this cell, as columns of the result."""
        out = {"cell": self.index,
               "scenario" if self.kind == "scenario" else "input": self.target,
               "policy": policy_label(self.policy), "seed": self.seed}
        for key, value in self.overrides:
            out[key] = ":".join(map(str, value)) if isinstance(value, tuple) else value
        return out


def _flatten(summary: dict) -> dict:
    out = {}
    for k, v in summary.items():
        if isinstance(v, dict):
            for sub, x in v.items():
                out[f"{k}:{sub}"] = x
        else:
            out[k] = v
    return out


def _run_scenario_cell(cell: Cell) -> dict:
    from . import scenarios

    groups: dict[str, dict] = {"params": {}, "costs": {}, "journal": {}, "flusher": {}}
    limits = []
    for key, value in cell.overrides:
        ns, name, _ = _resolve_key(cell.target, key)
        if ns == "limit":
            limits.append((name, value))
        else:
            groups[ns][name] = value
    sc = scenarios.SCENARIOS[cell.target]
    kw = {}
    if groups["params"]:
        kw["params"] = replace(sc.params(), **groups["params"])
    sim = scenarios.build(cell.target, cell.policy, seed=cell.seed, backend=cell.backend, **kw)
    # the configurations are read when the simulation runs: override them on top of the
    # scenario's own (which the builders derive from their parameters)
    for ns, attr in (("costs", "costs"), ("journal", "journal_config"),
                     ("flusher", "flusher_config")):
        if groups[ns]:
            setattr(sim, attr, replace(getattr(sim, attr), **groups[ns]))
    for (path, file), value in limits:
        sim.write(path or sim.scenario_cgroup, file, value)
    duration = cell.duration_ns if cell.duration_ns is not None else sim.duration_ns
    res = sim.run(duration)
    summary = dict(res.summary)
    summary.pop("policy", None)  # a coordinate
    summary["scenario_cgroup"] = sim.scenario_cgroup
    summary.update(scenarios.scenario_cgroup_figures(res, sim.scenario_cgroup))
    summary["engine"] = sim.emu.backend  # where the cell ran: "cython" or "python"
    return _flatten(summary)


def _run_replay_cell(cell: Cell) -> dict:
    from . import io
    from ._constants import PAGE_COUNTER_MAX, PAGE_SIZE

    workload = io.load_workload(cell.target)
    emu = workload.build(policy=cell.policy, backend=cell.backend, nr_cpus=cell.nr_cpus,
                         seed=cell.seed)
    res = emu.replay(workload.events)
    summary = dict(res.summary)
    summary["elapsed_s"] = res.elapsed
    summary["events_with_nonzero_rc"] = int((res.rc != 0).sum())
    # memory.peak / memory.max of every limited cgroup, read through cgroupfs
    peak_over = over = 0
    for cg in workload.cgroups:
        mx = emu.read(cg.path, "memory.max").strip()
        if mx == "max":
            continue
        max_pages = min(int(mx) // PAGE_SIZE, PAGE_COUNTER_MAX)
        peak = int(emu.read(cg.path, "memory.peak")) // PAGE_SIZE
        cur = int(emu.read(cg.path, "memory.current")) // PAGE_SIZE
        peak_over = max(peak_over, peak - max_pages)
        over = max(over, cur - max_pages)
    summary["peak_over_max_pages"] = peak_over
    summary["over_max_pages_at_end"] = over
    summary["engine"] = emu.backend
    return _flatten(summary)


def run_cell(cell: Cell) -> dict:
    """Run one cell; return its row: the coordinates, ``error`` (None, or
    ``"TypeName: message"`` if the run raised) and the flattened summary fields."""
    row = cell.coords()
    try:
        fn = _run_scenario_cell if cell.kind == "scenario" else _run_replay_cell
        result = fn(cell)
    except Exception as e:  # a failed cell is data for the sweep, not the end of it
        row["error"] = f"{type(e).__name__}: {e}"
        return row
    row["error"] = None
    for k, v in result.items():
        row.setdefault(k, v)
    return row


# =============================================================================================
# grids
# =============================================================================================
def _check_policies(policies, backend) -> list:
    from .sim import Emulator

    if isinstance(policies, (str, bytes)) or not isinstance(policies, Iterable):
        policies = [policies]
    policies = list(policies)
    if not policies:
        raise _err("--policy", "no policy given")
    seen = set()
    for p in policies:
        label = policy_label(p)
        if label in seen:
            raise _err(f"--policy {label}", "given twice")
        seen.add(label)
        try:  # whatever the engine accepts as a policy (names today)
            Emulator(policy=p, nr_cpus=1, backend=backend)
        except (ValueError, TypeError) as e:
            raise _err(f"--policy {label}", str(e)) from None
    return policies


def _check_seeds(seeds) -> list[int]:
    if isinstance(seeds, str):
        seeds = parse_seeds(seeds)
    elif isinstance(seeds, Iterable):
        seeds = list(seeds)
    else:
        seeds = [seeds]
    if not seeds:
        raise _err("--seeds", "no seed given")
    out, seen = [], set()
    for i, s in enumerate(seeds):
        try:
            if isinstance(s, bool):
                raise TypeError
            s = operator.index(s)  # int, numpy integers
        except TypeError:
            raise _err(f"seeds[{i}] = {s!r}", "a seed is an integer in [0, 2**62)") from None
        if not 0 <= s < _MAX_INT:
            raise _err(f"seeds[{i}] = {s!r}", "a seed is an integer in [0, 2**62)")
        if s in seen:
            raise _err(f"seeds = {s}", "seed given twice")
        seen.add(s)
        out.append(s)
    return out


def _check_backend(backend):
    if backend not in (None, "cython", "python"):
        raise _err(f"backend {backend!r}", "expected 'cython', 'python' or None")
    if backend == "cython":
        from ._backend import BACKEND

        if BACKEND != "cython":
            raise _err("backend 'cython'", "the compiled engine memcg_emu._core is not "
                                           "available (not built, or MEMCG_EMU_PUREPYTHON=1)")
    return backend


def _check_cell_count(n: int, what: str) -> None:
    if n > MAX_CELLS:
        raise LimitError(f"sweep: {what}: {n:,} cells, more than {MAX_CELLS:,}")


@dataclass(frozen=True)
class ScenarioGrid:
    """Policies x seeds x swept parameters of one built-in timed scenario.

    Parameters
    ----------
    scenario : str
        A name in :data:`memcg_emu.scenarios.SCENARIOS`.
    policies : sequence
        Policies (names, or policy objects the engine accepts).
    seeds : sequence of int, or str
        Seeds, or a spec like ``"0-19"`` (:func:`parse_seeds`).
    params : mapping
        ``{key: [values]}`` (see the module docstring); values may be strings.
    backend : {"cython", "python", None}
    duration_ns : int, optional
        Simulated time of every run (default: the scenario's, or a swept ``duration_ns``).

    Example
    -------
    >>> g = ScenarioGrid("jbd2-stall", ["baseline", "accountforce-v1"], "0-2",
    ...                  {"costs.writeback_page_ns": ["50us", "100us"]})
    >>> len(g.cells())
    12
    """

    scenario: str
    policies: Sequence
    seeds: Sequence[int] | str
    params: Mapping[str, Sequence] = field(default_factory=dict)
    backend: str | None = None
    duration_ns: int | None = None

    def cells(self) -> list[Cell]:
        """Check every spec, then list the cells: policy, then the swept keys in the order
        given, then the seed (the last varies fastest).  Raises InvalidConfigError (or
        LimitError for a grid over :data:`MAX_CELLS`) before anything runs."""
        from .scenarios import SCENARIOS

        if self.scenario not in SCENARIOS:
            raise _err(f"scenario {self.scenario!r}",
                       f"unknown scenario; choose from {', '.join(SCENARIOS)}")
        backend = _check_backend(self.backend)
        policies = _check_policies(self.policies, backend)
        seeds = _check_seeds(self.seeds)
        if self.duration_ns is not None:
            d = _coerce("duration", "duration_ns", 0, self.duration_ns)
            if d <= 0:
                raise _err(f"duration_ns = {d}", "must be positive")
        if not isinstance(self.params, Mapping):
            raise _err("params", f"expected a mapping of key -> values, not "
                                 f"{type(self.params).__name__}")
        axes = []
        n = len(policies) * len(seeds)
        for key, values in self.params.items():
            ns, name, default = _resolve_key(self.scenario, key)
            if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
                values = [values]
            values = list(values)
            if not values:
                raise _err(f"--set {key}", "no value given")
            parsed = [self._check_value(key, ns, name, default, v) for v in values]
            if len(set(map(repr, parsed))) != len(parsed):
                raise _err(f"--set {key}", "a value is given twice")
            axes.append([(key, v) for v in parsed])
            n *= len(parsed)
        _check_cell_count(n, f"scenario {self.scenario}")
        self._check_limit_paths(policies[0], seeds[0], backend)
        cells = []
        for policy in policies:
            for combo in itertools.product(*axes):
                for seed in seeds:
                    cells.append(Cell(len(cells), "scenario", self.scenario, policy, seed,
                                      tuple(combo), backend, self.duration_ns))
        return cells

    def _check_value(self, key, ns, name, default, value):
        from ._parse import memparse_pages

        spec = f"--set {key}={value}"
        if ns == "limit":
            try:
                memparse_pages(value, name[1])
            except (ValueError, TypeError) as e:
                raise _err(spec, str(e)) from None
            return str(value).strip()  # one column type (Parquet), whatever was given
        v = _coerce(spec, name, default, value)
        try:
            if ns in _CONFIG_NAMESPACES:
                _config_classes()[ns](**{name: v})  # the class checks its ranges
            else:
                if name == "duration_ns" and v <= 0:
                    raise ValueError("must be positive")
                # a value the scenario cannot be built with is refused now, not per cell
                _try_build(self.scenario, name, v, self.backend)
        except (ValueError, TypeError, OverflowError) as e:
            raise _err(spec, str(e)) from None
        return v

    def _check_limit_paths(self, policy, seed, backend) -> None:
        paths = {}
        for key in self.params:
            ns, name, _ = _resolve_key(self.scenario, key)
            if ns == "limit" and name[0] is not None:
                paths[key] = name[0]
        if not paths:
            return
        from . import scenarios

        sim = scenarios.build(self.scenario, policy, seed=seed, backend=backend)
        for key, path in paths.items():
            try:
                sim.emu.cgroup_id(path)
            except (ValueError, KeyError) as e:
                raise _err(f"--set {key}", f"no cgroup {path!r} in {self.scenario} ({e})") \
                    from None


@functools.lru_cache(maxsize=256)
def _try_build(scenario: str, name: str, value, backend) -> None:
    """Build ``scenario`` with parameter ``name`` = ``value`` (raises if it cannot be)."""
    from . import scenarios

    sc = scenarios.SCENARIOS[scenario]
    scenarios.build(scenario, "baseline", seed=0, backend=backend,
                    params=replace(sc.params(), **{name: value}))


def _expand_inputs(inputs) -> list[str]:
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    out: list[str] = []
    for spec in inputs:
        spec = os.fspath(spec)
        if os.path.isdir(spec):
            found = sorted(_glob.glob(os.path.join(spec, "*.npz")))
            if not found:
                raise _err(f"--input {spec}", "directory holds no .npz workload file")
        elif any(ch in spec for ch in "*?["):
            found = sorted(p for p in _glob.glob(spec) if os.path.isfile(p))
            if not found:
                raise _err(f"--input {spec}", "pattern matches no file")
        elif os.path.isfile(spec):
            found = [spec]
        else:
            raise _err(f"--input {spec}", "no such file or directory")
        out.extend(found)
    if not out:
        raise _err("--input", "no input given")
    seen = set()
    unique = []
    for p in out:
        key = os.path.abspath(p)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


@dataclass(frozen=True)
class ReplayGrid:
    """Policies x seeds x workload files (``.npz`` with events and setup).

    Parameters
    ----------
    inputs : str or sequence of str
        Files, directories (their ``*.npz``) or glob patterns.
    policies, seeds, backend
        As for :class:`ScenarioGrid`; the seed is the engine's (refill_stock's slot choice).
    nr_cpus : int, optional
        CPUs of the emulated machine (default: each workload's).
    """

    inputs: Sequence[str] | str
    policies: Sequence
    seeds: Sequence[int] | str = (0,)
    backend: str | None = None
    nr_cpus: int | None = None

    def cells(self) -> list[Cell]:
        """Check every spec, then list the cells (policy, file, seed; the last fastest).
        Files are found here; they are read by the cells."""
        backend = _check_backend(self.backend)
        policies = _check_policies(self.policies, backend)
        seeds = _check_seeds(self.seeds)
        if self.nr_cpus is not None:
            n = _coerce("--cpus", "nr_cpus", 0, self.nr_cpus)
            if n < 1:
                raise _err(f"--cpus {n}", "must be at least 1")
        files = _expand_inputs(self.inputs)
        _check_cell_count(len(policies) * len(files) * len(seeds), "replay")
        cells = []
        for policy in policies:
            for path in files:
                for seed in seeds:
                    cells.append(Cell(len(cells), "replay", path, policy, seed, (), backend,
                                      None, self.nr_cpus))
        return cells


# =============================================================================================
# running
# =============================================================================================
@dataclass
class SweepResult:
    """The rows of a sweep (:attr:`df`, one per cell, in grid order) and its cells."""

    df: object  # pandas.DataFrame
    cells: list
    wall_seconds: float = 0.0
    mode: str = "local"

    @property
    def failures(self):
        """The rows of the cells that raised (coordinates and ``error``)."""
        return self.df[self.df["error"].notna()]

    def to_parquet(self, path) -> None:
        """Write :attr:`df` as Parquet (needs pyarrow)."""
        self.df.to_parquet(path, index=False)


def _pandas():
    try:
        import pandas as pd
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("sweeps need pandas: pip install 'memcg-emu[sweep]'") from e
    return pd


def _frame(rows: list[dict]):
    """The rows in grid order (so the columns too come in the same order wherever the cells
    ran: each first appears in the first row that has it)."""
    pd = _pandas()
    if not rows:
        return pd.DataFrame(columns=["cell", "error"])
    return pd.DataFrame(sorted(rows, key=lambda r: r["cell"]))


def _failed_row(cell: Cell, exc: BaseException) -> dict:
    row = cell.coords()
    row["error"] = f"{type(exc).__name__}: {exc}"
    return row


def _dask_client(scheduler, n_workers):
    """(client, things to close): a given Client, a Client to an address, or a LocalCluster
    of single-threaded worker processes on the loopback interface, dashboard off."""
    try:
        import distributed
    except ImportError as e:
        raise ImportError("running cells on Dask needs dask.distributed: pip install "
                          "'memcg-emu[sweep]' (or run in-process: local=True / --local)") from e
    if isinstance(scheduler, distributed.Client):
        return scheduler, []
    if scheduler is not None:
        client = distributed.Client(scheduler)
        return client, [client]
    cluster = local_cluster(n_workers)
    client = distributed.Client(cluster)
    return client, [client, cluster]


def local_cluster(n_workers: int | None = None):
    """A quiet ``distributed.LocalCluster``: ``n_workers`` single-threaded worker processes
    (default: one per core) on the loopback interface, no dashboard, the scheduler's small
    HTTP server (health checks) on a free port rather than 8787, only errors logged.
    The caller closes it (``with local_cluster() as cluster: ...``)."""
    import logging

    import distributed

    n = n_workers if n_workers is not None else (os.cpu_count() or 1)
    return distributed.LocalCluster(
        n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, silence_logs=logging.ERROR,
        scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"})


def run(grid, *, local: bool = False, scheduler=None, n_workers: int | None = None,
        progress: Callable[[int, int, dict], None] | None = None) -> SweepResult:
    """Run every cell of ``grid`` (a :class:`ScenarioGrid`, :class:`ReplayGrid`, or a list
    of :class:`Cell`); return the rows.

    Parameters
    ----------
    grid
        Checked first (:meth:`ScenarioGrid.cells`): a bad spec raises before anything runs.
    local : bool
        Run the cells in this process, in order (no Dask needed).
    scheduler : str or distributed.Client, optional
        An existing Dask cluster (its address, or a client the caller keeps and closes).
        Default: a ``LocalCluster`` made here, closed at the end.
    n_workers : int, optional
        Worker processes of that LocalCluster (default: one per core).
    progress : callable, optional
        Called as ``progress(done, total, row)`` after each cell (in completion order).

    Returns
    -------
    SweepResult
        ``df`` has one row per cell in grid order: ``cell``, the coordinates, ``error``, the
        summary fields.  The same with ``local=True`` and on Dask, but for
        :data:`WALL_CLOCK_COLUMNS`.
    """
    import time

    cells = list(grid) if isinstance(grid, (list, tuple)) else grid.cells()
    _pandas()
    total = len(cells)
    rows: list[dict] = []
    t0 = time.perf_counter()
    if local:
        for cell in cells:
            rows.append(run_cell(cell))
            if progress is not None:
                progress(len(rows), total, rows[-1])
        return SweepResult(_frame(rows), cells, time.perf_counter() - t0, "local")

    client, to_close = _dask_client(scheduler, n_workers)
    try:
        from distributed import as_completed

        futures = {}
        for cell in cells:
            fut = client.submit(run_cell, cell, pure=False)
            futures[fut] = cell
        for fut in as_completed(list(futures)):
            try:
                row = fut.result()
            except Exception as e:  # the worker died, or the task could not run at all
                row = _failed_row(futures[fut], e)
            rows.append(row)
            fut.release()
            if progress is not None:
                progress(len(rows), total, row)
    finally:
        for obj in to_close:
            obj.close()
    return SweepResult(_frame(rows), cells, time.perf_counter() - t0, "dask")


# =============================================================================================
# summaries
# =============================================================================================
@dataclass(frozen=True)
class Figure:
    """A main figure: ``column`` of the rows times ``scale``, shown as ``label``."""

    label: str
    column: str
    scale: float = 1.0


@dataclass(frozen=True)
class Signature:
    """A signature: a run shows it when ``column >= threshold``."""

    label: str
    column: str
    threshold: float


def scenario_figures() -> list[Figure]:
    """The main figures of a timed-scenario sweep."""
    return [
        Figure("D-state tasks, peak", "d_state_peak"),
        Figure("  of which on mmap_lock, at the peak", "d_state_at_peak_by_wait:mmap_lock"),
        Figure("  of which on the journal, at the peak", "d_state_at_peak_by_wait:journal"),
        Figure("pod tasks alive at end", "pod_tasks_alive_end"),
        Figure("over memory.max, peak (% of max)", "over_max_peak_pct"),
        Figure("deferred OOMs skipped (order > 3)", "deferred_oom_skipped"),
        Figure("in mem_cgroup_handle_over_max (task-s)", "handle_over_max_task_seconds"),
        Figure("reclaim_throttle sleeps (task-s)", "reclaim_throttle_task_seconds"),
        Figure("D-state task-seconds", "d_state_task_seconds"),
        Figure("journal locked, longest (ms)", "journal_locked_max_ns", 1e-6),
        Figure("reclaim while holding handle/mmap_lock, longest (ms)",
               "reclaim_while_holding_max_ns", 1e-6),
        Figure("over memory.max, peak (pages)", "over_max_peak_pages"),
        Figure("over memory.max (page-seconds)", "over_max_page_seconds"),
        Figure("OOM kills", "oom_kills"),
        Figure("victims unable to exit", "victims_unable_to_exit"),
        Figure("livelocks (looping at end)", "livelocks"),
        Figure("file ops / simulated s", "file_ops_per_sec"),
    ]


def scenario_signatures(stall_ns: int = NS_PER_SEC) -> list[Signature]:
    """The signatures of a timed-scenario sweep; ``stall_ns`` is the stall threshold."""
    t = f"{stall_ns / MS:,.0f} ms" if stall_ns % NS_PER_SEC else f"{stall_ns // NS_PER_SEC} s"
    return [
        Signature(f"journal locked >= {t}", "journal_locked_max_ns", stall_ns),
        Signature(f"handle/mmap_lock holder looping in reclaim >= {t}",
                  "reclaim_while_holding_max_ns", stall_ns),
        Signature("retry-reset loop (OOM with a victim pending)", "oom_invocations_no_kill",
                  1),
        Signature("OOM victim unable to exit", "victims_unable_to_exit", 1),
        Signature("flusher blocked on the journal >= 100 ms",
                  "flusher_journal_wait_max_ns", 100 * MS),
        Signature("machine-wide D pile-up (>= 100 tasks)", "d_state_peak", 100),
        Signature("mmap_lock readers piled up (>= 16 in D)",
                  "d_state_peak_by_wait:mmap_lock", 16),
        Signature("usage >= 5% over memory.max", "over_max_peak_pct", 5),
        Signature("minutes-class stall (journal locked >= 60 s)", "journal_locked_max_ns",
                  60 * NS_PER_SEC),
        Signature("over memory.max", "over_max_peak_pages", 1),
        Signature("OOM kill", "oom_kills", 1),
        Signature("livelock at end", "livelocks", 1),
    ]


REPLAY_FIGURES = [
    Figure("OOM kills", "oom_kills"),
    Figure("forced charges", "forced_charges"),
    Figure("pages forced over max", "pages_forced_over_max"),
    Figure("peak over memory.max (pages)", "peak_over_max_pages"),
    Figure("reclaim scanned (pages)", "reclaim_scanned"),
    Figure("stock hit rate", "stock_hit_rate"),
    Figure("-ENOMEM charges", "enomem"),
    Figure("livelocks", "livelocks"),
]
REPLAY_SIGNATURES = [
    Signature("charge forced over memory.max", "pages_forced_over_max", 1),
    Signature("peak over memory.max", "peak_over_max_pages", 1),
    Signature("OOM kill", "oom_kills", 1),
    Signature("-ENOMEM charge", "enomem", 1),
    Signature("livelock", "livelocks", 1),
]


def figure_stats(values, scale: float = 1.0) -> tuple[int, float, float, float]:
    """``(runs, median, q1, q3)`` of one figure over runs (``values`` times ``scale``; NaN,
    i.e. a run without the figure, left out; NaNs if no run has it)."""
    import numpy as np

    x = np.asarray(values, dtype=float) * scale
    x = x[~np.isnan(x)]
    if not len(x):
        return 0, math.nan, math.nan, math.nan
    med, q1, q3 = np.percentile(x, [50, 25, 75])
    return len(x), float(med), float(q1), float(q3)


def signature_fraction(values, threshold: float) -> tuple[int, float]:
    """``(runs, fraction of them with value >= threshold)`` (NaN left out)."""
    import numpy as np

    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    return len(x), (float((x >= threshold).mean()) if len(x) else math.nan)


def seed_tables(name: str, rows: Mapping[str, Sequence[dict]]) -> list:
    """Two :class:`~memcg_emu._output.Section` tables over the runs of each policy
    (``rows``: policy -> one flat summary per seed, as :func:`run_cell` makes them; needs no
    pandas): the main figures, ``median [q1-q3]``, and the fraction of runs showing each
    signature (:func:`scenario_figures`, :func:`scenario_signatures`)."""
    from ._output import Section
    from ._output import fmt_num as _fmt

    n = max((len(r) for r in rows.values()), default=0)
    pols = list(rows)
    fig = Section(f"{name}: median [q1-q3] over {n} seeds (times simulated)", ["", *pols])
    sig = Section(f"{name}: fraction of the {n} seeds showing each signature", ["", *pols])
    for f in scenario_figures():
        cells = []
        for runs in rows.values():
            k, med, q1, q3 = figure_stats([r.get(f.column, math.nan) for r in runs], f.scale)
            cells.append("-" if not k else _fmt(med) if q1 == q3
                         else f"{_fmt(med)} [{_fmt(q1)}-{_fmt(q3)}]")
        fig.rows.append([f.label, *cells])
    for g in scenario_signatures():
        cells = []
        for runs in rows.values():
            k, frac = signature_fraction([r.get(g.column, math.nan) for r in runs],
                                         g.threshold)
            cells.append("-" if not k else f"{frac:.0%}")
        sig.rows.append([g.label, *cells])
    return [fig, sig]


def swept_keys(df) -> list[str]:
    """The columns of the swept keys: the coordinates but the cell index, the scenario or
    input, the policy and the seed."""
    fixed = {"cell", "scenario", "input", "policy", "seed", "error"}
    cols = list(df.columns)
    end = cols.index("error") if "error" in cols else len(cols)
    return [c for c in cols[:end] if c not in fixed]


def summarize(df, figures: Sequence[Figure] | None = None,
              signatures: Sequence[Signature] | None = None, baseline: str | None = None):
    """Per group of coordinates (all but policy and seed) and policy: the median and
    interquartile range of each figure, the fraction of runs showing each signature, and
    each one's difference from ``baseline`` (default: ``"baseline"`` if swept, else the first
    policy).  Failed runs are left out (``runs`` counts the others, ``failed`` them).

    Returns a long DataFrame: the group columns, ``kind`` (figure/signature), ``measure``,
    ``policy``, ``runs``, ``failed``, ``median``, ``q1``, ``q3``, ``fraction``,
    ``diff_vs_baseline`` (median minus the baseline's median, or fraction minus the
    baseline's fraction)."""
    pd = _pandas()
    import numpy as np

    if figures is None:
        figures = scenario_figures() if "scenario" in df.columns else REPLAY_FIGURES
    if signatures is None:
        signatures = scenario_signatures() if "scenario" in df.columns else REPLAY_SIGNATURES
    policies = list(dict.fromkeys(df["policy"]))
    if baseline is None:
        baseline = "baseline" if "baseline" in policies else (policies[0] if policies else None)
    elif baseline not in policies:
        raise _err(f"--baseline {baseline}", f"not a swept policy ({', '.join(policies)})")
    keys = swept_keys(df)
    out = []
    groups = df.groupby(keys, sort=False, dropna=False) if keys else [((), df)]
    for gkey, g in groups:
        gkey = gkey if isinstance(gkey, tuple) else (gkey,)
        base = dict(zip(keys, gkey))
        ok = g[g["error"].isna()]
        stats = {}
        for pol in policies:
            p_ok = ok[ok["policy"] == pol]
            failed = int(((g["policy"] == pol) & g["error"].notna()).sum())
            for f in figures:
                if f.column not in p_ok.columns:
                    continue
                n, med, q1, q3 = figure_stats(p_ok[f.column].to_numpy(), f.scale)
                stats[("figure", f.label, pol)] = dict(
                    base, kind="figure", measure=f.label, policy=pol, runs=n,
                    failed=failed, median=med, q1=q1, q3=q3, fraction=np.nan)
            for s in signatures:
                if s.column not in p_ok.columns:
                    continue
                n, frac = signature_fraction(p_ok[s.column].to_numpy(), s.threshold)
                stats[("signature", s.label, pol)] = dict(
                    base, kind="signature", measure=s.label, policy=pol, runs=n,
                    failed=failed, median=np.nan, q1=np.nan, q3=np.nan, fraction=frac)
        for (kind, label, pol), row in stats.items():
            ref = stats.get((kind, label, baseline))
            col = "median" if kind == "figure" else "fraction"
            row["diff_vs_baseline"] = (row[col] - ref[col]) if ref is not None else np.nan
            out.append(row)
    order = {("figure", f.label): i for i, f in enumerate(figures)}
    order.update({("signature", s.label): len(order) + i for i, s in enumerate(signatures)})
    res = pd.DataFrame(out)
    if len(res):
        res["_o"] = [order[(k, m)] for k, m in zip(res["kind"], res["measure"])]
        res["_p"] = [policies.index(p) for p in res["policy"]]
        res = res.sort_values([*keys, "_o", "_p"], kind="stable").drop(columns=["_o", "_p"])
        res = res.reset_index(drop=True)
    return res


# =============================================================================================
# plots
# =============================================================================================
def plot(df, path, figures: Sequence[Figure] | None = None) -> None:
    """Strip and box plots of the main figures (one panel each): per policy (and per group
    of swept values), one box over the runs and every run as a point.  Needs matplotlib (the
    ``plot`` extra)."""
    import numpy as np

    from .plots import _pyplot

    plt = _pyplot()
    if figures is None:
        figures = scenario_figures() if "scenario" in df.columns else REPLAY_FIGURES
    figures = [f for f in figures if f.column in df.columns]
    ok = df[df["error"].isna()] if "error" in df.columns else df
    keys = swept_keys(df)
    keys = [k for k in keys if df[k].nunique() > 1]
    cats = []
    for _, g in (ok.groupby([*keys, "policy"], sort=False, dropna=False)
                 if len(ok) else []):
        first = g.iloc[0]
        label = "\n".join([str(first["policy"]), *(f"{k}={first[k]}" for k in keys)])
        cats.append((label, g))
    ncol = min(3, max(len(figures), 1))
    nrow = max(1, -(-len(figures) // ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.2 * nrow), squeeze=False)
    rng = np.random.default_rng(0)  # the strip's jitter: the same picture every time
    for ax, f in zip(axes.flat, figures):
        data = [g[f.column].astype(float).to_numpy() * f.scale for _, g in cats]
        data = [d[~np.isnan(d)] for d in data]
        if cats:
            ax.boxplot(data, showfliers=False, widths=0.5)
            for i, d in enumerate(data, start=1):
                ax.scatter(i + rng.uniform(-0.15, 0.15, len(d)), d, s=10, alpha=0.6,
                           color="tab:blue", zorder=3)
            tilt = {"rotation": 30, "ha": "right"} if len(cats) > 3 else {}
            ax.set_xticks(range(1, len(cats) + 1), [c[0] for c in cats], fontsize=7, **tilt)
        ax.set_title(f.label, fontsize=9)
    for ax in list(axes.flat)[len(figures):]:
        ax.set_visible(False)
    what = ""
    if "scenario" in df and len(df):
        what = f" of {df['scenario'].iloc[0]}"
    elif "input" in df and len(df):
        what = f" of {df['input'].nunique()} workload files"
    fig.suptitle(f"{len(ok)} runs{what}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
