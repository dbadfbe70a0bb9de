"""Tidy the chapters for readers: nbval markers as cell tags, plumbing collapsed, short lines.

What it does to every chapter of ``_toc.yml`` (or the notebooks named):

- an nbval comment line (``# NBVAL_CHECK_OUTPUT``, ``# NBVAL_IGNORE_OUTPUT``, ``# NBVAL_SKIP``,
  ``# NBVAL_RAISES_EXCEPTION``) becomes the cell tag nbval reads instead (``nbval-check-output``,
  ``nbval-ignore-output``, ``nbval-skip``, ``raises-exception``; see ``nbval.plugin.metadata_tags``)
  and leaves the source, so that readers no longer see it; ``--nbval-lax`` checks the cells
  tagged ``nbval-check-output`` exactly as it checked the commented ones;
- a cell whose first line is a ``# plumbing`` comment (``# plumbing`` alone, or
  ``# plumbing: what the cell does``) gets the ``hide-input`` tag: the page shows its output and a
  button to show the code. ``# plumbing: load the runs`` becomes ``# load the runs``;
- it reports code lines longer than 79 characters (``--max-length``), and cells that only import
  (candidates for ``# plumbing``).

``--check`` changes nothing and exits with status 1 if a notebook would change or has a line
that is too long (for CI). Notebooks are written back as Jupyter stores them (JSON, indent 1,
non-ASCII kept, trailing newline), so a tidy notebook is left byte-for-byte as it was.

Usage::

    python tools/tidy_notebooks.py            # tidy every chapter, report long lines
    python tools/tidy_notebooks.py --check    # CI: fail on what is left to do
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from _book import (ROOT, cell_source, chapter_paths, load_notebook, notebook_arguments,
                   save_notebook, set_cell_source)

MAX_LENGTH = 79
#: nbval's comment markers and the cell tags that mean the same (nbval.plugin.metadata_tags)
NBVAL_TAGS = {
    "NBVAL_CHECK_OUTPUT": "nbval-check-output",
    "NBVAL_IGNORE_OUTPUT": "nbval-ignore-output",
    "NBVAL_SKIP": "nbval-skip",
    "NBVAL_RAISES_EXCEPTION": "raises-exception",
}
HIDE_TAG = "hide-input"
_NBVAL_LINE = re.compile(r"^\s*#\s*(%s)\s*$" % "|".join(NBVAL_TAGS))
_PLUMBING_LINE = re.compile(r"^(\s*#\s*)plumbing\b\s*:?\s*(.*)$", re.IGNORECASE)
_IMPORT_LINE = re.compile(r"^\s*(import\s|from\s+\S+\s+import\s|$|#)")


@dataclass
class Report:
    """What tidying one notebook found and changed.

    Attributes
    ----------
    path : Path
    tagged : list of (int, str)
        (cell index, tag) for every nbval comment turned into a tag.
    hidden : list of int
        Cells tagged ``hide-input`` because they were marked ``# plumbing``.
    long_lines : list of (int, int, int)
        (cell index, line number from 1, length in characters) of every code line longer
        than the limit.
    import_only : list of int
        Code cells that only import (candidates for ``# plumbing``).
    """

    path: Path
    tagged: list[tuple[int, str]] = field(default_factory=list)
    hidden: list[int] = field(default_factory=list)
    long_lines: list[tuple[int, int, int]] = field(default_factory=list)
    import_only: list[int] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.tagged or self.hidden)


def _add_tag(cell: dict, tag: str) -> bool:
    tags = cell.setdefault("metadata", {}).setdefault("tags", [])
    if tag in tags:
        return False
    tags.append(tag)
    return True


def tidy_cell(cell: dict) -> tuple[list[str], bool]:
    """Turn a code cell's nbval comments into tags and its ``# plumbing`` line into ``hide-input``.

    Parameters
    ----------
    cell : dict
        A code cell (nbformat 4 JSON), changed in place.

    Returns
    -------
    tags : list of str
        The nbval tags added.
    hidden : bool
        Whether ``hide-input`` was added.
    """
    lines = cell_source(cell).splitlines()
    tags, kept = [], []
    for line in lines:
        m = _NBVAL_LINE.match(line)
        if m:
            tag = NBVAL_TAGS[m.group(1)]
            _add_tag(cell, tag)
            if tag not in tags:
                tags.append(tag)
        else:
            kept.append(line)
    hidden = False
    first = next((i for i, line in enumerate(kept) if line.strip()), None)
    if first is not None and (m := _PLUMBING_LINE.match(kept[first])):
        if m.group(2):
            kept[first] = m.group(1) + m.group(2)
        else:
            del kept[first]
        _add_tag(cell, HIDE_TAG)
        hidden = True
    if tags or hidden:
        set_cell_source(cell, "\n".join(kept).strip("\n"))
    return tags, hidden


def tidy_notebook(path: Path, write: bool = True, max_length: int = MAX_LENGTH) -> Report:
    """Tidy one notebook (see the module docstring) and report what is left to fix.

    Parameters
    ----------
    path : Path
        The ``.ipynb`` file.
    write : bool
        Write the tidied notebook back (only if something changed).
    max_length : int
        Longest code line allowed, in characters.

    Returns
    -------
    Report
    """
    nb = load_notebook(path)
    report = Report(path)
    for i, cell in enumerate(nb["cells"]):
        if cell.get("cell_type") != "code":
            continue
        tags, hidden = tidy_cell(cell)
        report.tagged += [(i, t) for t in tags]
        if hidden:
            report.hidden.append(i)
        src = cell_source(cell)
        for n, line in enumerate(src.splitlines(), 1):
            if len(line) > max_length:
                report.long_lines.append((i, n, len(line)))
        tags_now = cell.get("metadata", {}).get("tags", [])
        if (src.strip() and all(_IMPORT_LINE.match(line) for line in src.splitlines())
                and HIDE_TAG not in tags_now and "remove-cell" not in tags_now):
            report.import_only.append(i)
    if write and report.changed:
        save_notebook(nb, path)
    return report


def main(argv: list[str] | None = None) -> int:
    ap = notebook_arguments(
        __doc__, "change nothing; exit 1 if a notebook would change or has long lines")
    ap.add_argument("--max-length", type=int, default=MAX_LENGTH)
    args = ap.parse_args(argv)

    paths = args.notebooks or chapter_paths(ROOT)
    failed = False
    for path in paths:
        r = tidy_notebook(path, write=not args.check, max_length=args.max_length)
        name = path.name
        verb = "would tag" if args.check else "tagged"
        if r.tagged:
            print(f"{name}: {verb} {len(r.tagged)} cell(s) for nbval "
                  f"({', '.join(sorted({t for _, t in r.tagged}))})")
        if r.hidden:
            print(f"{name}: {'would hide' if args.check else 'hid'} the input of cells {r.hidden}")
        for i, n, length in r.long_lines:
            print(f"{name}: cell {i} line {n}: {length} characters (> {args.max_length})")
        if r.import_only:
            print(f"{name}: cells {r.import_only} only import: mark them '# plumbing'?")
        failed |= args.check and (bool(r.long_lines) or r.changed)
    if args.check and failed:
        print("tidy_notebooks: run `python tools/tidy_notebooks.py` and shorten the long lines",
              file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
