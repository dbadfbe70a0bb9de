"""Put chapters that the tests already executed into the book build's execution cache.

``.ci/run`` executes every chapter under the ``smoke`` profile in the notebook tests
(papermill, then nbval), and then builds the book under the same profile, with the same
``$MRIQC_NB_HOME``. Jupyter Book would execute each chapter a third time (about five minutes
on 2 cores). Its cache (jupyter-cache, ``execute_notebooks: cache``) matches a chapter by a
hash of its code cells' sources and its kernelspec, so a chapter executed by papermill can
stand in for that third execution once papermill's injected parameters cell is taken out:
the outputs are those of the same code, under the same profile, in the same CI run. They are
put into the chapter's own cells (papermill's timing metadata would change the hash).

    make book PROFILE=smoke EXECUTED=EXECUTED_DIR   # what .ci/run does: then the build
    python tools/seed_book_cache.py EXECUTED_DIR [--book book] [--cache _build/.jupyter_cache]

Only a notebook whose hash then matches its chapter's source is cached (the check is done
here, with jupyter-cache's own hash); any other is reported and left to the book build to
execute. Never seed from notebooks executed under another profile than the build's: the
hash does not see the profile (``make book`` clears ``_build`` when the profile changes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

#: papermill's tag of the cell it inserts after ``parameters``.
INJECTED = "injected-parameters"


def with_outputs(source, executed):
    """A copy of the chapter ``source`` whose code cells carry the outputs and execution
    counts of ``executed`` (papermill's copy of it), or None if their code differs.

    The cache's hash covers the code cells' sources and metadata and the notebook's
    kernelspec, and papermill adds metadata of its own (timings) and a parameters cell: the
    outputs go into the source's cells instead, matched in order, sources compared."""
    import copy

    ran = [c for c in executed.cells if c.cell_type == "code"
           and INJECTED not in c.get("metadata", {}).get("tags", [])]
    out = copy.deepcopy(source)
    code = [c for c in out.cells if c.cell_type == "code"]
    if len(code) != len(ran) or any(a.source != b.source for a, b in zip(code, ran)):
        return None
    for cell, done in zip(code, ran):
        cell.outputs = copy.deepcopy(done.outputs)
        cell.execution_count = done.execution_count
    return out


def seed(executed_dir: Path, book_dir: Path, cache_dir: Path) -> tuple[list[str], list[str]]:
    """Cache every executed chapter of ``executed_dir`` that matches its source in
    ``book_dir``; return the names cached and the names left out (with the reason)."""
    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    cache = get_cache(str(cache_dir))
    cached, left = [], []
    for executed in sorted(Path(executed_dir).glob("*.ipynb")):
        source = book_dir / executed.name
        if not source.exists():
            left.append(f"{executed.name}: no chapter of that name in {book_dir}")
            continue
        ran = nbformat.read(executed, as_version=4)
        src = nbformat.read(source, as_version=4)
        nb = with_outputs(src, ran)
        if nb is None or cache.create_hashed_notebook(nb)[1] != cache.create_hashed_notebook(src)[1]:
            left.append(f"{executed.name}: its code differs from {source} (not cached)")
            continue
        seconds = float(ran.metadata.get("papermill", {}).get("duration") or 0)
        cache.cache_notebook_bundle(
            CacheBundleIn(nb, str(source.resolve()), data={"execution_seconds": seconds}),
            check_validity=False, overwrite=True)
        cached.append(executed.name)
    return cached, left


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("executed_dir", type=Path)
    ap.add_argument("--book", type=Path, default=Path("book"))
    ap.add_argument("--cache", type=Path, default=Path("_build/.jupyter_cache"))
    args = ap.parse_args(argv)
    if not args.executed_dir.is_dir():
        print(f"seed_book_cache: {args.executed_dir} is not a folder; nothing cached")
        return 0
    cached, left = seed(args.executed_dir, args.book, args.cache)
    print(f"seed_book_cache: {len(cached)} executed chapters cached in {args.cache}")
    for line in left:
        print(f"  left to the build: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
