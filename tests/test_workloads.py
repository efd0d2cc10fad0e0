"""Workload generators: determinism, shape, and validity of the streams under both policies."""
import numpy as np
import pytest

import memcg_emu as me
from memcg_emu import workloads as W
from memcg_emu.events import EVENT_DTYPE, Op

POLICIES = ["baseline", "accountforce-v1"]
# small but with limit pressure: every generator reaches its memory.max at these sizes
SMALL = {
    "mixed": dict(n_events=20_000),
    "steady_growth": dict(n_events=5_000),
    "bursts": dict(n_events=10_000, burst_every=1000, burst_pages=256),
    "many_small_cgroups": dict(n_events=10_000, n_cgroups=12),
}


def make(name, seed=0, **kw):
    args = {**SMALL[name], **kw}
    return W.GENERATORS[name](seed=seed, **args)


@pytest.fixture(scope="module")
def mixed_small():
    return make("mixed", seed=5)


# ---- determinism --------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(W.GENERATORS))
def test_same_seed_same_workload(name):
    a, b = make(name, seed=3), make(name, seed=3)
    assert a.events.dtype == EVENT_DTYPE
    assert a.events.tobytes() == b.events.tobytes()
    assert a.cgroups == b.cgroups and a.tasks == b.tasks and a.params == b.params


@pytest.mark.parametrize("name", sorted(W.GENERATORS))
def test_different_seed_different_events(name):
    a, b = make(name, seed=3), make(name, seed=4)
    assert a.events.tobytes() != b.events.tobytes()


@pytest.mark.parametrize("name", sorted(W.GENERATORS))
@pytest.mark.parametrize("n", [1, 2, 17, 999])
def test_exact_length_any_size(name, n):
    w = make(name, n_events=n)
    assert w.events.shape == (n,)
    assert w.events.dtype == EVENT_DTYPE
    assert w.events.flags.c_contiguous
    assert np.all(np.diff(w.events["time"]) >= 0)
    assert np.all(w.events["pad"] == 0)


# ---- validity: replay under both policies ---------------------------------------------------
@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("name", sorted(W.GENERATORS))
def test_stream_replays_without_error(name, policy, backend):
    """The whole stream is accepted (replay raises on any dynamically invalid event), reclaim
    makes room at the limits, and nothing is ever OOM-killed or refused."""
    w = make(name, seed=11)
    emu = w.build(policy=policy, backend=backend)
    res = emu.replay(w.events)
    c = res.counters
    assert res.n_events == w.n_events
    assert c["oom_calls"] == 0 and c["oom_kills"] == 0
    assert c["enomem"] == 0 and c["livelocks"] == 0 and c["underflows"] == 0
    assert c["reclaim_reclaimed"] > 0  # the limits were reached and reclaim made room
    charge = w.events["op"] == Op.CHARGE
    assert not np.any(res.rc[charge])  # every charge succeeded
    emu.check_invariants()
    maxed = [cg.path for cg in w.cgroups if cg.max is not None
             and emu.events(cg.path)["max"] > 0]
    assert maxed, "no cgroup ever hit its memory.max"


def test_prefixes_are_valid_too(mixed_small):
    """Any prefix of a stream is a valid stream (the cut is only a length choice)."""
    for n in (1, 100, 4321):
        emu = mixed_small.build(policy="accountforce-v1", backend="python")
        assert emu.replay(mixed_small.events[:n]).n_events == n


def test_mixed_policies_differ_only_by_forcing(mixed_small):
    results = {}
    for policy in POLICIES:
        emu = mixed_small.build(policy=policy, backend="python")
        results[policy] = emu.replay(mixed_small.events).counters
    assert results["baseline"]["forced_charges"] == 0
    assert results["accountforce-v1"]["forced_charges"] > 0
    assert results["accountforce-v1"]["forced_pages_over_max"] > 0


def test_mixed_is_mostly_stock_hits(mixed_small):
    res = mixed_small.build(backend="python").replay(mixed_small.events)
    assert res.summary["stock_hit_rate"] > 0.6
    assert res.counters["reclaim_reclaimed"] > 0


# ---- shape of the mixed stream ----------------------------------------------------------
def test_mixed_tree_and_tasks(mixed_small):
    d = mixed_small.describe()
    assert 25 <= d["cgroups"] <= 40
    assert d["levels"] >= 3
    assert d["nr_cpus"] == 4
    assert d["tasks"] >= 50 and d["kthreads"] == 4
    assert d["limited_cgroups"] >= 5
    for op in ("charge", "uncharge", "return_to_user", "flags_save", "flags_restore",
               "account_force_save", "set_active_memcg", "set_dirty", "start_writeback",
               "end_writeback"):
        assert d["ops"].get(op, 0) > 0, op
    assert set(d["charged_pages"]) == {"anon", "file", "kernel"}
    ev = mixed_small.events
    charges = ev[ev["op"] == Op.CHARGE]
    assert np.mean(charges["arg"] <= 4) > 0.9  # mostly small charges


def test_mixed_limits_cover_unreclaimable(mixed_small):
    """memory.max of each limited cgroup exceeds the anon it can ever hold (from the stream)."""
    w = mixed_small
    ev = w.events
    tm = w.task_memcg
    anon = ((ev["op"] == Op.CHARGE) | (ev["op"] == Op.UNCHARGE)) & \
        (ev["kind"] == me.PageKind.ANON)
    sign = np.where(ev["op"][anon] == Op.CHARGE, 1, -1)
    cg = tm[ev["task"][anon]]
    parent = w.parent
    for spec in w.cgroups:
        if spec.max is None:
            continue
        c = w.cgroup_index(spec.path)
        inside = np.zeros(len(parent), bool)
        for k in range(len(parent)):
            m = k
            while m >= 0 and m != c:
                m = parent[m]
            inside[k] = m == c
        peak = np.max(np.cumsum(sign * ev["arg"][anon] * inside[cg]), initial=0)
        assert peak < spec.max, spec.path


def test_flag_scopes_balanced_per_task(mixed_small):
    ev = mixed_small.events
    op = ev["op"]
    delta = np.zeros(len(ev), np.int64)
    delta[(op == Op.FLAGS_SAVE) | (op == Op.ACCOUNT_FORCE_SAVE)] = 1
    delta[(op == Op.FLAGS_RESTORE) | (op == Op.ACCOUNT_FORCE_RESTORE)] = -1
    for t in range(len(mixed_small.tasks)):
        mine = ev["task"] == t
        depth = np.cumsum(delta[mine])
        if depth.size:
            assert depth.min() >= 0 and depth[-1] == 0, t
            rtu = op[mine] == Op.RETURN_TO_USER
            assert not np.any(depth[rtu] > 0), f"task {t} returns to user inside a scope"


def test_uncharges_never_exceed_own_charges(mixed_small):
    ev = mixed_small.events
    for kind in (me.PageKind.ANON, me.PageKind.KERNEL):
        sel = (ev["kind"] == kind) & np.isin(ev["op"], [Op.CHARGE, Op.UNCHARGE])
        for t in np.unique(ev["task"][sel]):
            mine = sel & (ev["task"] == t)
            s = np.where(ev["op"][mine] == Op.CHARGE, 1, -1) * ev["arg"][mine]
            assert np.cumsum(s).min() >= 0, (kind, t)
    # page cache is never uncharged by the stream
    assert not np.any((ev["op"] == Op.UNCHARGE) & (ev["kind"] == me.PageKind.FILE))


def test_kthreads_never_return_to_user(mixed_small):
    ev = mixed_small.events
    kth = [p for p, t in enumerate(mixed_small.tasks) if t.kthread]
    assert kth
    assert not np.any(np.isin(ev["task"], kth) & (ev["op"] == Op.RETURN_TO_USER))


# ---- building ------------------------------------------------------------------------------
def test_build_matches_indices_and_limits(mixed_small):
    w = mixed_small
    emu = w.build(backend="python", seed=9)
    for i, spec in enumerate(w.cgroups, start=1):
        assert emu.cgroup_id(spec.path) == i
        for f, v in (("memory.max", spec.max), ("memory.high", spec.high),
                     ("memory.low", spec.low)):
            assert emu.read(spec.path, f) == (f"{v * me.PAGE_SIZE}\n" if v is not None else
                                              ("0\n" if f == "memory.low" else "max\n"))
    for pid, spec in enumerate(w.tasks):
        v = emu.task(pid).view()
        assert v.kthread == spec.kthread
        assert v.cpu == spec.cpu
        assert v.cgroup == ("/" if spec.kthread else spec.cgroup)
    assert emu.state.n_tasks == len(w.tasks)


def test_build_nr_cpus(mixed_small):
    emu = mixed_small.build(backend="python", nr_cpus=8)
    assert emu.state.config[me._constants.Cfg.NR_CPUS] == 8
    with pytest.raises(ValueError, match="needs at least 4"):
        mixed_small.build(backend="python", nr_cpus=2)


def test_setup_round_trip(mixed_small):
    w2 = W.Workload.from_setup(mixed_small.setup_json(), mixed_small.events)
    assert w2.cgroups == mixed_small.cgroups and w2.tasks == mixed_small.tasks
    assert w2.nr_cpus == mixed_small.nr_cpus and w2.name == "mixed"


def test_memcg_of_events(mixed_small):
    w = mixed_small
    m = w.memcg_of_events()
    ev = w.events
    user_charge = (ev["op"] == Op.CHARGE) & (ev["task"] < len(w.tasks) - w.nr_cpus)
    np.testing.assert_array_equal(m[user_charge], w.task_memcg[ev["task"][user_charge]])
    dirty = ev["op"] == Op.SET_DIRTY
    np.testing.assert_array_equal(m[dirty], ev["memcg"][dirty])
    assert w.cgroup_index("/jobs/job0") == w.paths.index("/jobs/job0")
    with pytest.raises(ValueError, match="no cgroup"):
        w.cgroup_index("/nope")


def test_steady_growth_reaches_and_holds_the_limit():
    w = W.steady_growth(4000, seed=2, limit_pages=512)
    emu = w.build(backend="python")
    res = emu.replay(w.events, sample_every=100)
    usage = res.sample_usage[:, 1]
    assert usage[0] < 512
    first = int(np.argmax(usage >= 512 - 8))
    assert 0 < first < len(usage) // 2
    assert np.all(usage[first:] >= 512 - 40) and np.all(usage <= 512)


# ---- bad arguments -----------------------------------------------------------------------
@pytest.mark.parametrize("kw, exc", [
    (dict(n_events=0), ValueError),
    (dict(n_events=10.0), TypeError),
    (dict(n_events=10, pressure=1.0), ValueError),
    (dict(n_events=10, nr_cpus=0), ValueError),
    (dict(n_events=10, n_sys=99), ValueError),
])
def test_mixed_rejects_bad_arguments(kw, exc):
    with pytest.raises(exc):
        W.mixed(**kw)
