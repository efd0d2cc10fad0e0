# memcg_emu._tsched: the compiled timed scheduler, the twin of timed.TimedSim's run loop.
#
# This file is the contract (docs/style.md item 22).  TimedSim does every set-up step in Python
# (tasks, programs, control ops, validation, result assembly); for run() it hands its
# scheduler state to a TimedCore (load), which runs the event loop without the GIL over the
# compiled Engine's stepped paths and gives the state back (store).  Each method below is the
# Python twin's method of the same name (timed.py); the kernel function each one models is
# cited there and in docs/design.md §3.3.
#
# Layout by subsystem, as the kernel keeps it (one .pxd contract each):
#   _tbase.pxd       what a subsystem may ask of the scheduler (SchedBase: clock, queue, D state)
#   _tqueue.pxd      the event heap and growable int stacks (header only)
#   _tcost.pxd       the cost model: a struct and the inline step cost (header only)
#   _tlocking.pxd    kernel/locking: mutex, rwsem, mmap_lock, FIFO waiters
#   _tjbd2.pxd       fs/jbd2: handles, the running transaction, commits
#   _twriteback.pxd  the flusher (wb_workfn) and balance_dirty_pages()
#   _treaper.pxd     mm/oom_kill.c: the oom_reaper kthread
#   this module      kernel/sched + the program interpreter + the stepped kernel paths + the
#                    task lifecycle (signals, unwinding, exit), D state, sampling

from libc.stdint cimport int64_t, uint8_t

from memcg_emu._core cimport Engine
from memcg_emu._tbase cimport SchedBase
from memcg_emu._tcost cimport cost_t
from memcg_emu._tjbd2 cimport Journal
from memcg_emu._tlocking cimport Locks
from memcg_emu._tqueue cimport heap_t, ivec_t
from memcg_emu._treaper cimport Reaper
from memcg_emu._twriteback cimport Flusher


cdef class TimedCore(SchedBase):
    cdef object sim
    cdef cost_t c
    cdef Locks locks
    cdef Journal j
    cdef Flusher fl
    cdef Reaper rp
    cdef int64_t n_cg, reclaim_wait
    cdef bint strict
    cdef object trace, exit_log, oom_log
    # configuration (TimedSim's, copied at load)
    cdef int64_t sample_dt, livelock_limit, write_livelock_limit, max_ops_per_instant

    # program rows (flat; pcs are global indices) and control ops
    cdef int64_t[::1] p_time, p_op, p_arg, p_task, p_memcg, p_gfp, p_kind, p_lock
    cdef int64_t[::1] loop_left, rc
    cdef uint8_t[::1] outcome
    cdef int64_t[::1] c_op, c_task, c_arg, c_memcg, c_gfp, c_kind, ctl_rc
    cdef uint8_t[::1] ctl_outcome
    cdef int64_t[::1] levels

    # per-task scheduler state (timed.py's lists of the same names)
    cdef int64_t[::1] pc, end, alive, prog_start, path, plabel, ptarget, pnr
    cdef int64_t[::1] pstart, preclaims, pooms, pholding, plivelocks
    cdef int64_t[::1] victim_seen, reap_seen, sys, sig_seen, wait_of, d_since, rwait
    cdef int64_t[::1] dpause, sleep_from, sleep_until, unw_saves, unw_js

    # machine-wide
    cdef int64_t seq, same_instant, next_sample, events
    cdef int64_t oom_gen_seen  # Engine.oom_gen when scan_oom() last walked the tasks
    cdef int err_code  # the error that stopped the run (E_* of _tbase), 0 none
    cdef int64_t err_a, err_b, err_c
    cdef heap_t heap
    cdef ivec_t dead
    cdef ivec_t oom_seen  # (time, pid, blocked) of victims seen this run: the oom_log

    # measurements
    cdef int64_t n_d, d_peak, d_ns, n_in_path, over_sum, over_peak, over_page_ns
    cdef int64_t n_d_by[5]
    cdef int64_t d_peak_by[5]
    cdef int64_t d_at_peak[5]
    cdef int64_t d_ns_by[5]
    cdef int64_t[::1] over_peak_by, over_ps, over_now_c, over_now_o, limited
    cdef int64_t n_over_now, n_limited
    cdef int64_t hold_max, throttle_ns, rthrottle_ns
    cdef int64_t dirty_pause_ns, dirty_pauses, rthrottles, over_max_ns, file_ops
    cdef int64_t ops_completed, op_errors, victims_unable, exits, unwinds, ops_skipped
    cdef int64_t f_jwait_ns, oom_nokill, f_jwait_max
    cdef int64_t[::1] stats0

    # samples, preallocated for one run
    cdef int64_t ns, cap
    cdef int64_t[::1] s_time, s_d, s_jl, s_handles, s_inpath, s_kills, s_ops, s_scan, s_recl
    cdef int64_t[:, ::1] s_usage, s_max, s_dby, s_alive
    cdef int64_t[:, :, ::1] s_pool

    # ---- the event loop ----------------------------------------------------------------------
    cdef int run_loop(self, int64_t until) noexcept nogil
    cdef void prefetch_task(self, int64_t t) noexcept nogil
    cdef int advance(self, int64_t when) noexcept nogil
    cdef int sample(self, int64_t t) noexcept nogil
    cdef void find_limited(self) noexcept nogil
    cdef void update_over_max(self) noexcept nogil

    # ---- tasks: the program interpreter -------------------------------------------------------
    cdef int dispatch(self, int64_t t) noexcept nogil
    cdef int run_program(self, int64_t t) noexcept nogil
    cdef int complete(self, int64_t t) noexcept nogil
    cdef int complete_rc(self, int64_t t, int64_t rc, int64_t outcome) noexcept nogil
    cdef int delay_complete(self, int64_t t, int64_t delay) noexcept nogil
    cdef int exec_op(self, int64_t t, int64_t pc, int64_t op) noexcept nogil
    cdef int op_error(self, int64_t t, int64_t pc, int code, int64_t a) noexcept nogil
    cdef int replay_one(self, bint ctl, int64_t i, int64_t op, int64_t* rc,
                        int64_t* outcome) noexcept nogil
    cdef int exec_replay_op(self, int64_t t, int64_t pc, int64_t op) noexcept nogil
    cdef void mark_user_space(self) noexcept nogil
    cdef void unmark_user_space(self) noexcept nogil

    # ---- stepped kernel paths -----------------------------------------------------------------
    cdef bint holds_handle_or_mmap(self, int64_t t) noexcept nogil
    cdef void path_begin(self, int64_t t, int64_t kind, int64_t* s0) noexcept nogil
    cdef void path_end(self, int64_t t, int64_t end_ns) noexcept nogil
    cdef int start_charge(self, int64_t t, int64_t pc, int64_t kind) noexcept nogil
    cdef int start_rtu(self, int64_t t, int64_t pc) noexcept nogil
    cdef int path_continue(self, int64_t t, int64_t cost) noexcept nogil
    cdef void reclaim_throttle(self, int64_t t) noexcept nogil
    cdef int path_done(self, int64_t t, int64_t cost) noexcept nogil

    # ---- D state ------------------------------------------------------------------------------
    cdef int64_t rwsem_of(self, int64_t t, int64_t pc) noexcept nogil
    cdef void d_enter(self, int64_t t, int64_t why) noexcept nogil
    cdef void d_leave(self, int64_t t) noexcept nogil

    # ---- the kernel threads' events, control ops -----------------------------------------------
    cdef int dispatch_special(self, int64_t actor, int64_t arg) noexcept nogil
    cdef int control(self, int64_t i) noexcept nogil

    # ---- deaths, victims, signals -------------------------------------------------------------
    cdef void after_engine(self, int64_t* s0, int64_t* s1, int64_t t) noexcept nogil
    cdef void check_exit(self, int64_t t) noexcept nogil
    cdef void scan_oom(self) noexcept nogil
    cdef void deliver_signals(self) noexcept nogil
    cdef void signal(self, int64_t p) noexcept nogil
    cdef int interrupted(self, int64_t t, int64_t pc) noexcept nogil
    cdef void abort_killable_wait(self, int64_t p, int64_t lk) noexcept nogil
    cdef bint unwind_skip(self, int64_t t, int64_t pc, int64_t op) noexcept nogil
    cdef void program_end(self, int64_t t) noexcept nogil
    cdef void begin_exit(self, int64_t t) noexcept nogil
    cdef void finish_exit(self, int64_t t) noexcept nogil
    cdef void process_dead(self) noexcept nogil
