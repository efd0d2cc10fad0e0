"""Every cdef enum of _core.pxd agrees with its Python twin (docs/style.md item 11)."""
import pytest

import memcg_emu as me
from memcg_emu import _backend, _constants, events

core = _backend._core
pytestmark = pytest.mark.skipif(core is None, reason="compiled engine not built")

PREFIX = {"TaskState": "TASK_", "Site": "SITE_", "Op": "OP_"}


@pytest.mark.parametrize("name", ["MemcgEvent", "TaskState", "Site", "Label"])
def test_named_enums(name):
    py = getattr(_constants, name)
    cy = getattr(core, name)
    prefix = PREFIX.get(name, "")
    assert {prefix + m.name: m.value for m in py} == {m.name: m.value for m in cy}


def test_op_enum():
    assert {"OP_" + m.name: m.value for m in events.Op} == {m.name: m.value for m in core.Op}


@pytest.mark.parametrize("enum, prefix", [(_constants.Stat, "STAT_"), (_constants.Cfg, "CFG_"),
                                          (_constants.Knob, "KNOB_"),
                                          (_constants.PageKind, "")])
def test_index_enums(enum, prefix):
    for m in enum:
        assert getattr(core, prefix + m.name) == m.value, m.name


def test_out_bits_and_livelock_code():
    assert me.EMU_LIVELOCK == -1024
    bits = [me.OUT_STOCK_HIT, me.OUT_FORCED, me.OUT_RECLAIMED, me.OUT_OOM, me.OUT_LIVELOCK,
            me.OUT_DEFERRED, me.OUT_THROTTLED]
    assert bits == [1 << i for i in range(7)]
