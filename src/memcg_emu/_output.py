"""Rendering command results: one data model (titled sections of rows), four formats.

``--format table`` prints rich tables on a terminal and plain aligned text when stdout is a
pipe or file (no colour, no forced width); ``csv`` prints one CSV block per section (a
``# title`` line first, blank line between sections); ``json`` prints one JSON document;
``markdown`` prints GitHub pipe tables.  ``--json PATH`` writes the JSON document to a file,
``--json -`` to stdout.
"""
from __future__ import annotations

import csv
import io
import json
import math
import sys
from dataclasses import dataclass, field

FORMATS = ("table", "csv", "json", "markdown")


@dataclass
class Section:
    """One table: a title, column names, rows of plain values (str/int/float/None)."""

    title: str
    columns: list[str]
    rows: list[list] = field(default_factory=list)
    note: str = ""

    def as_dict(self) -> dict:
        return {"title": self.title, "columns": self.columns,
                "rows": [dict(zip(self.columns, r)) for r in self.rows],
                **({"note": self.note} if self.note else {})}


def finite(obj):
    """JSON has no inf/nan: such floats become null (recursively)."""
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {str(k): finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return finite(obj.item())
    return obj


def fmt_num(x) -> str:
    """A figure for a table: ``-`` for none/NaN, whole numbers with thousands separators,
    two decimals from 1, three significant digits below."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    a = abs(x)
    if a >= 100 or x == int(x):
        return f"{x:,.0f}"
    if a >= 1:
        return f"{x:,.2f}"
    return f"{x:.3g}"


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _plain(sec: Section) -> str:
    cells = [[_cell(v) for v in r] for r in sec.rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(sec.columns)]
    out = [sec.title]
    line = "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                     for i, (c, w) in enumerate(zip(sec.columns, widths)))
    out += [line, "-" * len(line)]
    for r in cells:
        out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(r, widths))))
    if sec.note:
        out.append(sec.note)
    return "\n".join(out) + "\n"


def _markdown(sec: Section) -> str:
    def esc(s: str) -> str:
        return s.replace("|", "\\|").replace("\n", " ")

    out = [f"**{esc(sec.title)}**", "", "| " + " | ".join(esc(c) for c in sec.columns) + " |",
           "|" + "|".join("---" if i == 0 else "---:" for i in range(len(sec.columns))) + "|"]
    out += ["| " + " | ".join(esc(_cell(v)) for v in r) + " |" for r in sec.rows]
    if sec.note:
        out += ["", esc(sec.note)]
    return "\n".join(out) + "\n"


def _csv(sec: Section) -> str:
    buf = io.StringIO()
    buf.write(f"# {sec.title}\n")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(sec.columns)
    for r in sec.rows:
        w.writerow(["" if v is None else v for v in r])
    return buf.getvalue()


def render(sections: list[Section], fmt: str = "table", doc: dict | None = None,
           file=None) -> None:
    """Print ``sections`` in ``fmt`` to ``file`` (stdout).  ``json`` prints ``doc`` (the
    full results) with the sections added under ``"tables"``."""
    file = sys.stdout if file is None else file
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, not {fmt!r}")
    if fmt == "json":
        out = dict(doc or {})
        out["tables"] = [s.as_dict() for s in sections]
        json.dump(finite(out), file, indent=2, allow_nan=False)
        file.write("\n")
    elif fmt == "csv":
        file.write("\n".join(_csv(s) for s in sections))
    elif fmt == "markdown":
        file.write("\n".join(_markdown(s) for s in sections))
    elif file.isatty():
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        console = Console(file=file)
        for s in sections:  # text, not markup: "[q1-q3]" must print as it is
            t = Table(title=escape(s.title), title_justify="left",
                      caption=escape(s.note) if s.note else None)
            for i, c in enumerate(s.columns):
                t.add_column(c, justify="left" if i == 0 else "right",
                             no_wrap=(i == 0))
            for r in s.rows:
                t.add_row(*[escape(_cell(v)) for v in r])
            console.print(t)
    else:
        file.write("\n".join(_plain(s) for s in sections))


def write_json(doc: dict, dest: str) -> None:
    """Write ``doc`` as JSON to ``dest``; ``-`` is stdout."""
    text = json.dumps(finite(doc), indent=2, allow_nan=False) + "\n"
    if dest == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        with open(dest, "w", encoding="utf-8") as f:
            f.write(text)


def status(text: str) -> None:
    """A progress/status line: stderr, so stdout stays machine-readable."""
    print(text, file=sys.stderr)


__all__ = ["FORMATS", "Section", "finite", "fmt_num", "render", "status", "write_json"]
