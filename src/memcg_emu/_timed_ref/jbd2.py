"""fs/jbd2 for the timed engine's Python scheduler (the twin of ``_tjbd2``): one journal, its
running transaction, handles (per task, nesting by ``h_ref``), the commit (``T_LOCKED``,
drain, switch, commit I/O) and kjournald2's serial commits.  What is modelled and what is
not: the jbd2 item of :mod:`memcg_emu.timed`'s docstring."""
from collections import deque

from .base import A_COMMIT_DONE, A_COMMIT_TIMER, W_JOURNAL

# states of the running transaction (a commit in flight is Journal.committing)
J_NONE, J_RUNNING, J_LOCKED = range(3)


class Journal:
    """The journal of one TimedSim (``sim.journal``).  Its configuration is read when it
    is used (``sim.journal_config``, ``sim.costs.journal_commit_ns``), so a change made
    before a run applies to it."""

    def __init__(self, s, flags: int):
        self.s = s  # the scheduler
        self.flags = flags  # what journal_start's memalloc_flags_save() sets
        self.state = J_NONE
        self.tid = 0
        self.updates = 0
        self.blocks = 0
        self.handles = 0
        self.locked_since = 0
        self.waiters: deque = deque()  # j_wait_transaction_locked (FIFO)
        self.committing = False  # kjournald2 is committing a transaction
        self.request = False  # a commit of the running transaction was asked for meanwhile
        self.locked_max = 0
        self.commits = 0
        self.handle: list = []  # per task: None or [h_ref, saved flags]

    def grow(self, n: int) -> None:
        """Rows for tasks up to n."""
        while len(self.handle) < n:
            self.handle.append(None)

    def start(self, t: int, credits: int) -> bool:
        """fs/jbd2/transaction.c: start_this_handle(): join the running transaction, or
        block (D) while it is locked (``add_transaction_credits()`` -> ``wait_transaction_
        locked()``) or when the credits do not fit (the starter asks for its commit and waits
        on ``j_wait_transaction_locked`` too).  Both waits end when the locked transaction's
        handles have drained and the commit switches it out (``T_FLUSH``): the woken starters
        then open the next transaction while the old one commits.  Returns True once t holds
        a handle."""
        h = self.handle[t]
        if h is not None:  # nested: current->journal_info is set
            h[0] += 1
            return True
        s = self.s
        if self.state == J_LOCKED:
            self.waiters.append(t)
            s._block(t, W_JOURNAL)
            return False
        if self.state == J_NONE:  # jbd2_get_transaction(): a new running transaction
            self.tid += 1
            self.state = J_RUNNING
            self.updates = self.blocks = self.handles = 0
            self.request = False
            s._push(s.now + s.journal_config.commit_interval_ns, A_COMMIT_TIMER, self.tid)
            self.jlog("open")
        cfg = s.journal_config
        full = (cfg.max_transaction_blocks and self.blocks
                and self.blocks + credits > cfg.max_transaction_blocks) or \
            (cfg.max_handles and self.handles >= cfg.max_handles)
        if full:  # wait on j_wait_transaction_locked first: the commit may switch at once
            self.waiters.append(t)
            s._block(t, W_JOURNAL)
            self.log_start_commit()
            return False
        self.updates += 1
        self.handles += 1
        self.blocks += credits
        saved = int(s._eng.memalloc_flags_save(t, self.flags))
        if saved < 0:
            raise RuntimeError(f"task {t}: journal_start with too many nested flag scopes")
        self.handle[t] = [1, saved]
        return True

    def stop(self, t: int) -> int:
        """jbd2_journal_stop(); the outermost stop restores the saved flags.  -1 if the
        innermost flag scope is not the handle's."""
        h = self.handle[t]
        h[0] -= 1
        if h[0]:
            return 0
        if int(self.s._eng.memalloc_flags_restore(t, h[1])) < 0:
            h[0] += 1
            return -1
        self.handle[t] = None
        self.handle_put()
        return 0

    def handle_put(self) -> None:
        self.updates -= 1
        if self.state == J_LOCKED and self.updates == 0:
            self.commit_switch()

    def drop(self, t: int) -> None:
        """do_exit() with a handle open: drop it."""
        if self.handle[t] is not None:
            self.handle[t] = None
            self.handle_put()

    def log_start_commit(self) -> None:
        """__jbd2_log_start_commit(): ask kjournald2 to commit the running transaction.  The
        commit thread is serial: while it still commits the previous transaction the request
        waits (the running transaction keeps admitting handles that fit)."""
        if self.state != J_RUNNING:
            return
        if self.committing:
            self.request = True
            return
        self.commit_lock()

    def commit_lock(self) -> None:
        """jbd2_journal_commit_transaction(): T_LOCKED, then jbd2_journal_wait_updates()."""
        self.request = False
        self.state = J_LOCKED
        self.locked_since = self.s.now
        self.jlog("locked")
        if self.updates == 0:
            self.commit_switch()

    def commit_switch(self) -> None:
        """The locked transaction's handles drained: T_FLUSH, j_running_transaction = NULL,
        wake_up(j_wait_transaction_locked); its commit I/O takes journal_commit_ns."""
        s = self.s
        locked = s.now - self.locked_since
        if locked > self.locked_max:
            self.locked_max = locked
        self.state = J_NONE
        self.committing = True
        self.jlog("commit")
        s._push(s.now + s.costs.journal_commit_ns, A_COMMIT_DONE, self.tid)
        waiters = list(self.waiters)
        self.waiters.clear()
        for w in waiters:
            s._unblock(w, retry=True)

    def commit_done(self) -> None:
        """The commit I/O ended; a commit asked for meanwhile starts now."""
        self.commits += 1
        self.committing = False
        self.jlog("committed")
        if self.request and self.state == J_RUNNING:
            self.commit_lock()

    def timer(self, tid: int) -> None:
        """The commit timer of transaction ``tid`` fired (j_commit_interval)."""
        if tid == self.tid and self.state == J_RUNNING:
            self.log_start_commit()

    def jlog(self, what: str) -> None:
        s = self.s
        if s.trace is not None:
            s.journal_log.append((s.now, what, self.tid))
