"""Parsing and printing at the cgroupfs edge: bytes in, pages inside (mm/page_counter.c,
lib/cmdline.c, lib/kstrtox.c, mm/memcontrol.c).

The parsers follow the kernel's, character by character, on ASCII only (the kernel reads
bytes: a Unicode digit such as ``"१"`` is not a digit there either):

* :func:`memparse_pages` is ``page_counter_memparse()`` (mm/page_counter.c) over ``memparse()``
  (lib/cmdline.c), which reads the number with ``simple_strtoull(ptr, &end, 0)``: base 0, so
  ``"0x1f"`` is hex and ``"010"`` is octal (8 bytes).  As in the kernel, the number wraps
  modulo 2**64 (``simple_strtoull`` ignores overflow, the suffix shifts are u64 shifts), a
  string with no digits reads as 0 (``""`` and ``"K"`` are 0 bytes), and anything left after
  the optional suffix is ``-EINVAL`` (here :class:`~memcg_emu.errors.InvalidArgumentError`).
* :func:`kstrtoint` is ``kstrtoint(s, 0, &v)`` (lib/kstrtox.c) on the stripped string, as
  ``cgroup.procs`` and ``memory.oom.group`` use it: an optional sign, base 0, at least one
  digit, nothing after it, and the value must fit an int.
"""
from __future__ import annotations

from ._constants import PAGE_COUNTER_MAX, PAGE_SIZE
from .errors import InvalidArgumentError, InvalidFileError, InvalidTypeError

_U64 = (1 << 64) - 1
_SHIFT = {"k": 10, "m": 20, "g": 30, "t": 40, "p": 50, "e": 60}
_WS = " \t\n\v\f\r"  # the kernel's isspace() on ASCII, what strstrip() removes
_HEX = "0123456789abcdefABCDEF"


def _strtoull(s: str, i: int = 0) -> tuple[int, int, int]:
    """simple_strtoull(s + i, &end, 0): (value, index of end, digits read).  The value is
    not reduced: the caller wraps it (memparse) or range-checks it (kstrto*)."""
    base = 10
    if s.startswith("0", i):
        if s[i + 1:i + 2] in ("x", "X") and s[i + 2:i + 3] != "" and s[i + 2] in _HEX:
            base, i = 16, i + 2
        else:
            base = 8
    value, n = 0, 0
    while i < len(s):
        ch = s[i]
        if "0" <= ch <= "9":
            d = ord(ch) - 48
        elif base == 16 and ch in _HEX:
            d = ord(ch.lower()) - 87
        else:
            break
        if d >= base:
            break
        value = value * base + d
        i += 1
        n += 1
    return value, i, n


def memparse_pages(value, field: str) -> int:
    """page_counter_memparse(): "max", or bytes as ``memparse()`` reads them (base 0 number,
    optional K/M/G/T/P/E suffix), floored to pages and clamped to PAGE_COUNTER_MAX.  Python
    ints are bytes.  Raises InvalidArgumentError naming ``field``."""
    if isinstance(value, bool) or (not isinstance(value, (int, str))
                                   and not hasattr(value, "__index__")):
        raise InvalidTypeError(f"{field}: expected bytes (int) or a string like '30M' or "
                               f"'max', not {type(value).__name__} {value!r}")
    if not isinstance(value, str):
        value = int(value.__index__()) if not isinstance(value, int) else value
        if value < 0:
            raise InvalidArgumentError(f"{field}: negative value {value}")
        return min(value // PAGE_SIZE, PAGE_COUNTER_MAX)
    s = value.strip(_WS)
    if s == "max":
        return PAGE_COUNTER_MAX
    nbytes, end, _ = _strtoull(s)
    nbytes &= _U64
    shift = _SHIFT.get(s[end:end + 1].lower(), 0) if end < len(s) else 0
    if shift:
        nbytes = (nbytes << shift) & _U64
        end += 1
    if end != len(s):
        raise InvalidArgumentError(
            f"{field}: invalid value {value!r} at {s[end:]!r} (expected a number of bytes as "
            f"the kernel's memparse() reads it: decimal, 0x hex or 0 octal, optional "
            f"K/M/G/T/P/E suffix; or 'max')")
    return min(nbytes // PAGE_SIZE, PAGE_COUNTER_MAX)


def kstrtoint(value, field: str) -> int:
    """kstrtoint(strstrip(value), 0): a C int in base 0, optional sign (lib/kstrtox.c)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InvalidTypeError(f"{field}: expected an int or a string, not "
                               f"{type(value).__name__} {value!r}")
    if isinstance(value, int):
        v = value
    else:
        s = value.strip(_WS)
        neg = s.startswith("-")
        i = 1 if s[:1] in ("-", "+") else 0
        v, end, n = _strtoull(s, i)
        if n == 0 or end != len(s):
            raise InvalidArgumentError(f"{field}: invalid integer {value!r} (kstrtoint base "
                                       f"0: decimal, 0x hex or 0 octal)")
        v = -v if neg else v
    if not -(1 << 31) <= v < (1 << 31):
        raise InvalidArgumentError(f"{field}: {v} does not fit a C int (-ERANGE)")
    return v


def tunable(pages: int) -> str:
    """seq_puts_memcg_tunable()."""
    return "max\n" if pages == PAGE_COUNTER_MAX else f"{pages * PAGE_SIZE}\n"


def normalize_path(path: str) -> str:
    if not isinstance(path, str):
        raise InvalidTypeError(f"cgroup path must be a str, not {type(path).__name__}")
    parts = [p for p in path.strip().split("/") if p]
    for p in parts:
        if p in (".", ".."):
            raise InvalidArgumentError(f"cgroup path {path!r}: '.' and '..' are not allowed")
    return "/".join(parts)


def read_toml(path) -> dict:
    """The TOML document in ``path`` (tomllib, or tomli before Python 3.11).

    Raises
    ------
    InvalidFileError
        The file cannot be read or is not valid TOML (names the file and the problem).
    """
    import os
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise InvalidFileError(f"{name}: cannot read ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidFileError(f"{name}: not valid TOML: {exc}") from None
