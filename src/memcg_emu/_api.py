"""Naming the public call in error messages (one place, applied to whole classes).

Validation code raises :mod:`memcg_emu.errors` types (or, in older code, a plain
``ValueError``/``TypeError``) with a message naming the field and the reason.  The public
entry points are wrapped so that the message also names the call the user made
(``"Emulator.charge: nr_pages = 0 is below 1"``) and so that only :class:`~memcg_emu.errors.
EmuError` escapes for bad input: a plain ``ValueError`` becomes ``InvalidArgumentError`` and a
plain ``TypeError`` becomes ``InvalidTypeError`` (also a ``TypeError``).  When public calls
nest, the outermost one is named.  Other exceptions pass through untouched.
"""
from __future__ import annotations

import functools

from .errors import EmuError, InvalidArgumentError, InvalidTypeError

_PREFIX = "_emu_call"


def _renamed(exc: BaseException, name: str) -> EmuError:
    msg = getattr(exc, "_emu_msg", None)
    if msg is None:
        msg = str(exc.args[0]) if exc.args else ""
        short = name.rsplit(".", 1)[-1] + ": "
        if msg.startswith(short):  # "open: only ..." -> "Emulator.open: only ..."
            msg = msg[len(short):]
    if isinstance(exc, EmuError):
        exc._emu_msg = msg
        exc.args = (f"{name}: {msg}",) + tuple(exc.args[1:])
        return exc
    cls = InvalidTypeError if isinstance(exc, TypeError) else InvalidArgumentError
    new = cls(f"{name}: {msg}")
    new._emu_msg = msg
    return new


def named(name: str):
    """Decorator: errors for bad input raised inside ``fn`` name ``name``."""
    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except EmuError as exc:
                raise _renamed(exc, name)
            except (ValueError, TypeError) as exc:
                if type(exc) not in (ValueError, TypeError):
                    raise  # a library's own subclass (numpy, pyarrow...): not ours to rename
                raise _renamed(exc, name).with_traceback(exc.__traceback__) from None
        wrapper.__emu_named__ = name
        return wrapper
    return deco


def name_public_calls(cls, skip: tuple[str, ...] = ()):
    """Wrap every public method (and ``__init__``) of ``cls`` with :func:`named`."""
    for attr, value in list(vars(cls).items()):
        if attr in skip or (attr.startswith("_") and attr != "__init__"):
            continue
        label = cls.__name__ if attr == "__init__" else f"{cls.__name__}.{attr}"
        if isinstance(value, (staticmethod, classmethod)):
            setattr(cls, attr, type(value)(named(label)(value.__func__)))
        elif callable(value) and not isinstance(value, type):
            setattr(cls, attr, named(label)(value))
    return cls
