"""The pure-Python reference twin of the compiled timed engine's subsystems (docs/design.md
§3.3), one module per compiled module, so that each piece sits where the kernel keeps it:

=================  ===================  =====================================================
this package       compiled twin        kernel
=================  ===================  =====================================================
``sched``          ``_tsched``          kernel/sched, signal delivery, do_exit(): the event
                                        queue, programs, stepped paths, sampling
``base``           ``_tbase.pxd``       what every subsystem may ask of the scheduler
``locking``        ``_tlocking``        kernel/locking: mutex, rwsem, mmap_lock
``jbd2``           ``_tjbd2``           fs/jbd2: transactions, handles, kjournald2's commit
``writeback``      ``_twriteback``      fs/fs-writeback.c flusher, balance_dirty_pages()
``reaper``         ``_treaper``         mm/oom_kill.c: the oom_reaper kthread
=================  ===================  =====================================================

The scheduler (``sched.Scheduler``) is the base class of :class:`memcg_emu.timed.TimedSim`,
which adds the set-up API and the results; it owns one object of each subsystem
(``sim.locks``, ``sim.journal``, ``sim.flusher``, ``sim.reaper``) and calls into them; each
subsystem owns its state and its waiters and calls back into the scheduler only through the
methods ``base`` lists.  The compiled core's hand-over (``_tsched.TimedCore.load()/store()`` and
each compiled subsystem's ``load()/store()``) reads and writes these objects' attributes.
"""
