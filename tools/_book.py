"""What the book's tools share: the repository root, the book's settings, reading and writing
chapters as Jupyter stores them (JSON, indent 1, non-ASCII kept, trailing newline)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def book_config(root: Path = ROOT) -> dict:
    """``_config.yml`` of the book, parsed."""
    return yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))


def chapter_paths(root: Path = ROOT) -> list[Path]:
    """The .ipynb chapters listed in ``_toc.yml``, in book order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                files.append(e["file"])
            walk(e.get("sections"))
            walk(e.get("chapters"))

    walk(toc.get("parts"))
    walk(toc.get("chapters"))
    return [root / f"{f}.ipynb" for f in files if (root / f"{f}.ipynb").exists()]


def load_notebook(path: Path) -> dict:
    """A notebook as its JSON dictionary (nbformat 4)."""
    return json.loads(path.read_text(encoding="utf-8"))


def save_notebook(nb: dict, path: Path) -> None:
    """Write ``nb`` the way Jupyter does, so that an unchanged notebook stays byte-identical."""
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def cell_source(cell: dict) -> str:
    """A cell's source as one string."""
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def set_cell_source(cell: dict, text: str) -> None:
    """Set a cell's source, stored as a list of lines as Jupyter does."""
    cell["source"] = text.splitlines(keepends=True)


def notebook_arguments(doc: str, check_help: str) -> argparse.ArgumentParser:
    """Command line of a tool that rewrites chapters: notebooks (default: all) and ``--check``."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("notebooks", nargs="*", type=Path, help="default: the chapters of _toc.yml")
    ap.add_argument("--check", action="store_true", help=check_help)
    return ap
