"""Write the Colab install cell, built from ``_config.yml``'s repository, into every chapter.

The first code cell of each chapter runs on Colab only (it is tagged ``remove-cell``, so the
rendered book does not show it). It

- installs this package from the repository and branch set in ``_config.yml``
  (``repository.url``, ``repository.branch``: the one place to change for a fork), with the
  extras that the chapter needs (``ratings`` where it imports ``mriqc_nb.ratings``), and
  without touching Colab's own TensorFlow (the package does not depend on it);
- says what to do when the installation fails;
- makes ``colab`` the default profile there (``MRIQC_NB_PROFILE``; a profile set in the
  parameters cell still wins), and warns when the runtime has no GPU;
- offers to keep the package home (databases, trained models) on Google Drive, so that the
  models of earlier chapters survive a Colab session reset (``KEEP_MODELS_ON_DRIVE = True``).

Run ``python tools/sync_colab_cell.py`` after changing the repository in ``_config.yml``;
``--check`` changes nothing and exits with status 1 if a chapter is out of date.
``tests/test_book.py`` checks that every chapter agrees.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from _book import (ROOT, book_config, cell_source, chapter_paths, load_notebook,
                   notebook_arguments, save_notebook)

__all__ = ["ROOT", "chapter_paths", "repository_url", "repository_branch", "chapter_extras",
           "colab_cell_source", "expected_source", "sync"]

MARKER = "# Colab only: install the mriqc-nb package"
TAGS = ["remove-cell"]
#: Where the package home goes on Google Drive when the learner asks for it.
DRIVE_HOME = "/content/drive/MyDrive/mriqc-nb"
#: Extras of pyproject.toml, and the package modules whose import means a chapter needs them.
EXTRAS_BY_MODULE = {"ratings": "ratings"}
_OLD_COLAB_CELL = re.compile(r"^# Colab only\b.*\n(?:.*\n)*.*pip\b.*install", re.MULTILINE)


def repository_url(root: Path = ROOT) -> str:
    """``repository.url`` of ``_config.yml``, without a trailing slash."""
    return book_config(root)["repository"]["url"].rstrip("/")


def repository_branch(root: Path = ROOT) -> str:
    """``repository.branch`` of ``_config.yml`` (default ``main``)."""
    return book_config(root)["repository"].get("branch") or "main"


def chapter_extras(nb: dict) -> tuple[str, ...]:
    """The extras of the package that a chapter needs, from the modules its code imports.

    Parameters
    ----------
    nb : dict
        The notebook (nbformat 4 JSON).

    Returns
    -------
    tuple of str
        Sorted extra names, e.g. ``("ratings",)``; empty when the core package suffices.
    """
    code = "\n".join(cell_source(c) for c in nb["cells"] if c.get("cell_type") == "code")
    extras = set()
    for module, extra in EXTRAS_BY_MODULE.items():
        imported = (
            re.search(rf"\bmriqc_nb\.{module}\b", code)
            or re.search(rf"^\s*from\s+mriqc_nb\s+import\s+\(?[^)\n]*\b{module}\b", code,
                         re.MULTILINE)
        )
        if imported:
            extras.add(extra)
    return tuple(sorted(extras))


def colab_cell_source(url: str, branch: str = "main", extras: tuple[str, ...] = ()) -> str:
    """Source of the Colab-only first cell of a chapter (every line within 79 characters).

    Parameters
    ----------
    url : str
        The git repository to install from (``_config.yml`` ``repository.url``).
    branch : str
        Its branch (``repository.branch``).
    extras : tuple of str
        Extras of the package that the chapter needs.

    Returns
    -------
    str
    """
    name = "mriqc-nb" + (f"[{','.join(extras)}]" if extras else "")
    return f'''{MARKER} (Colab's own TensorFlow is kept).
# Written by tools/sync_colab_cell.py from _config.yml: edit that file instead.
import os
import subprocess
import sys

# True: keep databases and trained models on your Google Drive, so that the
# models trained by earlier chapters survive a session reset (asks for access).
KEEP_MODELS_ON_DRIVE = False

if "google.colab" in sys.modules:
    REPOSITORY = "{url}"
    PACKAGE = f"{name} @ git+{{REPOSITORY}}@{branch}"
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", PACKAGE],
        capture_output=True, text=True)
    if pip.returncode != 0:
        print(pip.stdout[-2000:], pip.stderr[-4000:], sep="\\n")
        raise RuntimeError(
            "Installing mriqc-nb failed; pip's messages are above. Check the "
            "internet connection, then Runtime > Restart session and run this "
            "cell again. If it still fails, install by hand in a new cell: "
            f"!pip install '{{PACKAGE}}' and report pip's messages at "
            f"{{REPOSITORY}}/issues")
    # the colab profile by default (a profile set in the parameters cell wins)
    os.environ.setdefault("MRIQC_NB_PROFILE", "colab")
    if not os.path.exists("/dev/nvidia0"):
        print("No GPU: choose Runtime > Change runtime type > T4 GPU, or the "
              "colab profile will be very slow.")
    if KEEP_MODELS_ON_DRIVE:
        from google.colab import drive

        drive.mount("/content/drive")
        os.environ["MRIQC_NB_HOME"] = "{DRIVE_HOME}"
    home = os.environ.get("MRIQC_NB_HOME", "~/.cache/mriqc-nb")
    print(f"mriqc-nb installed; profile {{os.environ['MRIQC_NB_PROFILE']}}; "
          f"models under {{home}}")'''


def expected_source(path: Path, root: Path = ROOT) -> str:
    """The Colab cell that the chapter at ``path`` should start with."""
    return colab_cell_source(repository_url(root), repository_branch(root),
                             chapter_extras(load_notebook(path)))


def sync(path: Path, url: str, branch: str = "main", write: bool = True) -> list[str]:
    """Make the chapter's first code cell the Colab cell; drop older Colab-only install cells.

    Parameters
    ----------
    path : Path
        The chapter (.ipynb).
    url, branch : str
        The repository to install from.
    write : bool
        Write the chapter back if it changed.

    Returns
    -------
    list of str
        What changed (empty if the chapter was up to date).
    """
    nb = load_notebook(path)
    source = colab_cell_source(url, branch, chapter_extras(nb))
    code = [c for c in nb["cells"] if c.get("cell_type") == "code"]
    changes = []
    first = code[0] if code else None
    if first is not None and cell_source(first).startswith(MARKER):
        if cell_source(first) != source:
            first["source"] = source.splitlines(keepends=True)
            changes.append("updated the Colab cell")
    else:
        idx = nb["cells"].index(first) if first is not None else len(nb["cells"])
        first = {"cell_type": "code", "execution_count": None, "id": "colab-install",
                 "metadata": {}, "outputs": [], "source": source.splitlines(keepends=True)}
        nb["cells"].insert(idx, first)
        changes.append("inserted the Colab cell")
    if first.get("metadata", {}).get("tags") != TAGS:
        first.setdefault("metadata", {})["tags"] = list(TAGS)
        changes.append(f"tagged it {TAGS}")
    # an older, second Colab-only install cell (e.g. chapter 10's mriqc-learn): now an extra
    for cell in [c for c in code[1:] if _OLD_COLAB_CELL.match(cell_source(c))]:
        nb["cells"].remove(cell)
        changes.append("removed an older Colab install cell: "
                       + cell_source(cell).splitlines()[0])
    if changes and write:
        save_notebook(nb, path)
    return changes


def main(argv: list[str] | None = None) -> int:
    ap = notebook_arguments(__doc__, "change nothing; exit 1 if a chapter is out of date")
    args = ap.parse_args(argv)
    url, branch = repository_url(), repository_branch()
    stale = 0
    for path in args.notebooks or chapter_paths():
        changes = sync(path, url, branch, write=not args.check)
        for change in changes:
            print(f"{path.name}: {'would have ' if args.check else ''}{change}")
        stale += bool(changes)
    print(f"{stale} chapter(s) {'out of date' if args.check else 'updated'}; "
          f"installing from {url}@{branch}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
