# memcg_emu._tcost: the timed cost model (timed.CostModel) as a C struct and the step cost.
# Header only (inline): cimported by the compiled timed scheduler, no module of its own.

from libc.stdint cimport int64_t

from memcg_emu._core cimport (STAT_CPU_DRAINS, STAT_OOM_CALLS, STAT_OOM_KILLS,
                              STAT_RECLAIM_CALLS, STAT_RECLAIM_RECLAIMED,
                              STAT_RECLAIM_SCANNED)


cdef struct cost_t:
    int64_t charge_fast_path_ns
    int64_t page_counter_level_ns
    int64_t reclaim_call_ns
    int64_t page_scanned_ns
    int64_t page_reclaimed_ns
    int64_t stock_drain_cpu_ns
    int64_t oom_invocation_ns
    int64_t oom_kill_ns
    int64_t writeback_page_ns
    int64_t journal_commit_ns
    int64_t exit_page_ns


# TimedSim._step_cost: linear in the engine's stat deltas across one step (s0 before, s1
# after, both NR_STATS long), plus `walk_levels` page-counter levels.
cdef inline int64_t step_cost(const cost_t* c, const int64_t* s0, const int64_t* s1,
                              int64_t walk_levels) noexcept nogil:
    return (walk_levels * c.page_counter_level_ns
            + (s1[STAT_RECLAIM_CALLS] - s0[STAT_RECLAIM_CALLS]) * c.reclaim_call_ns
            + (s1[STAT_RECLAIM_SCANNED] - s0[STAT_RECLAIM_SCANNED]) * c.page_scanned_ns
            + (s1[STAT_RECLAIM_RECLAIMED] - s0[STAT_RECLAIM_RECLAIMED]) * c.page_reclaimed_ns
            + (s1[STAT_CPU_DRAINS] - s0[STAT_CPU_DRAINS]) * c.stock_drain_cpu_ns
            + (s1[STAT_OOM_CALLS] - s0[STAT_OOM_CALLS]) * c.oom_invocation_ns
            + (s1[STAT_OOM_KILLS] - s0[STAT_OOM_KILLS]) * c.oom_kill_ns)
