"""Parsing and printing at the cgroupfs edge: bytes in, pages inside (KERNEL_SPEC §2.7)."""
from __future__ import annotations

import re

from ._constants import PAGE_COUNTER_MAX, PAGE_SIZE

_SUFFIX = {"": 0, "K": 10, "M": 20, "G": 30, "T": 40, "P": 50, "E": 60}
_MEMPARSE = re.compile(r"^(0[xX][0-9a-fA-F]+|[0-9]+)([KkMmGgTtPpEe]?)$")


def memparse_pages(value, field: str) -> int:
    """page_counter_memparse(): "max" or bytes with an optional K/M/G/T/P/E suffix, floored to
    pages and clamped to PAGE_COUNTER_MAX.  Ints are bytes.  Raises ValueError naming field."""
    if isinstance(value, bool):
        raise TypeError(f"{field}: expected bytes (int) or a string like '30M' or 'max', "
                        f"not {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{field}: negative value {value}")
        return min(value // PAGE_SIZE, PAGE_COUNTER_MAX)
    if not isinstance(value, str):
        raise TypeError(f"{field}: expected bytes (int) or a string like '30M' or 'max', "
                        f"not {type(value).__name__}")
    s = value.strip()
    if s == "max":
        return PAGE_COUNTER_MAX
    m = _MEMPARSE.match(s)
    if not m:
        raise ValueError(f"{field}: invalid value {value!r} (expected bytes with optional "
                         f"K/M/G/T/P/E suffix, or 'max')")
    nbytes = int(m.group(1), 0) << _SUFFIX[m.group(2).upper()]
    return min(nbytes // PAGE_SIZE, PAGE_COUNTER_MAX)


def tunable(pages: int) -> str:
    """seq_puts_memcg_tunable()."""
    return "max\n" if pages == PAGE_COUNTER_MAX else f"{pages * PAGE_SIZE}\n"


def normalize_path(path: str) -> str:
    if not isinstance(path, str):
        raise TypeError(f"cgroup path must be a str, not {type(path).__name__}")
    parts = [p for p in path.strip().split("/") if p]
    for p in parts:
        if p in (".", ".."):
            raise ValueError(f"cgroup path {path!r}: '.' and '..' are not allowed")
    return "/".join(parts)
