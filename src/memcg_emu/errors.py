"""The error types every public entry point raises for bad input.

Simulated failure (a charge that fails with ``-ENOMEM``, an OOM kill) is data, never an
exception.  Bad input is an exception, raised before anything is applied, whose message names
the call, the field (or file and line) and the reason.  Every class here is a ``ValueError``,
so ``except ValueError`` keeps working for callers written before this module existed.

This module sits at the bottom of the package: it imports nothing from it.
"""
from __future__ import annotations

__all__ = ["EmuError", "InvalidArgumentError", "InvalidTypeError", "InvalidEventError",
           "InvalidFileError", "InvalidConfigError", "InvalidProgramError", "LimitError",
           "MAX_NR_PAGES", "MAX_TOTAL_PAGES"]

#: The most pages one operation may move (a charge, an uncharge, a page-state change, a
#: memory.reclaim request, a DIRTY op): 2**40 pages (4 PiB of 4 KiB pages).
MAX_NR_PAGES = 1 << 40

#: The most pages the whole emulated machine may hold charged at once (the root cgroup's
#: usage, which includes every descendant's), and the most swap it may have: 2**46 pages
#: (256 PiB).  A charge that could take the total past it is refused with LimitError before
#: anything is applied (a replay that would pass it is rejected with the state restored; an
#: array of 2**22 events or more is checked up front, current usage plus its charges).  So
#: usage, pools and byte counts (usage * 4096 < 2**58) stay far from int64 overflow.
MAX_TOTAL_PAGES = 1 << 46


class EmuError(ValueError):
    """Base class of every error memcg-emu raises for bad input."""


class InvalidArgumentError(EmuError):
    """A call's argument is out of range, of the wrong type or malformed (names the call and
    the argument)."""


class InvalidTypeError(InvalidArgumentError, TypeError):
    """An argument of the wrong type (also a ``TypeError``, for callers that catch that)."""


class InvalidEventError(EmuError):
    """A replay event (or event array) that cannot be replayed (names the event index and
    field)."""


class InvalidFileError(EmuError):
    """A file that cannot be read: missing, corrupt, truncated or of the wrong format (names
    the file and, where known, the line or member)."""


class InvalidConfigError(EmuError):
    """A scenario, policy or sweep description that cannot be used (names the file or key)."""


class InvalidProgramError(EmuError):
    """A timed-simulation task program that cannot run (names the task, op index and
    field)."""


class LimitError(EmuError):
    """A request beyond a documented bound of the emulator (a run length, a sample count, a
    page count whose sums could overflow); the message names the bound."""
