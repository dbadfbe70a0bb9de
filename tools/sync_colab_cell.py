"""Write the Colab install cell, built from ``_config.yml``'s repository URL, into every chapter.

The first code cell of each chapter installs this package on Colab only (Colab keeps its own
TensorFlow: the package does not depend on it). The repository URL lives in one place,
``_config.yml``; run ``python tools/sync_colab_cell.py`` after changing it.
``tests/test_book.py`` checks that every chapter agrees.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
MARKER = "# Colab only: install the mriqc-nb package"


def repository_url(root: Path = ROOT) -> str:
    cfg = yaml.safe_load((root / "_config.yml").read_text())
    return cfg["repository"]["url"].rstrip("/")


def colab_cell_source(url: str) -> str:
    return (
        f"{MARKER} (Colab's own TensorFlow is kept).\n"
        "import subprocess\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        f'    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "mriqc-nb @ git+{url}"], check=True)'
    )


def chapter_paths(root: Path = ROOT) -> list[Path]:
    """The .ipynb chapters listed in ``_toc.yml``, in book order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
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


def sync(path: Path, url: str) -> bool:
    nb = nbformat.read(path, as_version=4)
    cell = next((c for c in nb.cells if c.cell_type == "code"), None)
    source = colab_cell_source(url)
    if cell is not None and cell.source.startswith(MARKER):
        if cell.source == source and cell.metadata.get("tags") == ["remove-cell"]:
            return False
        cell.source = source
    else:
        idx = nb.cells.index(cell) if cell is not None else len(nb.cells)
        cell = nbformat.v4.new_code_cell(source)
        nb.cells.insert(idx, cell)
    # the cell matters on Colab only: keep it out of the rendered pages
    cell.metadata["tags"] = ["remove-cell"]
    nbformat.write(nb, path)
    return True


if __name__ == "__main__":
    url = repository_url()
    changed = [p for p in chapter_paths() if sync(p, url)]
    print(f"{len(changed)} chapter(s) updated" + "".join(f"\n  {p.relative_to(ROOT)}" for p in changed))
    sys.exit(0)
