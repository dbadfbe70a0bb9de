"""Static checks of the book: table of contents, notebook hygiene, Colab cell, parameters."""

from __future__ import annotations

import nbformat
import pytest
import yaml

import sync_colab_cell as colab
from mriqc_nb.profiles import PROFILES

from conftest import ROOT

CHAPTERS = colab.chapter_paths(ROOT)


def test_every_toc_entry_exists():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for p in toc["parts"] for c in p["chapters"]]
    for f in files:
        assert (ROOT / f"{f}.ipynb").exists() or (ROOT / f"{f}.md").exists(), f"missing {f}"


def test_every_notebook_in_book_dir_is_in_toc():
    on_disk = {p.resolve() for p in (ROOT / "book").glob("*.ipynb")}
    assert on_disk == {p.resolve() for p in CHAPTERS}


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_hygiene(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    # stored without outputs: the build executes them
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), path.name
    # first code cell: the Colab-only install, from the repository of _config.yml, with the
    # extras this chapter needs (tools/sync_colab_cell.py writes it)
    assert code[0].source == colab.expected_source(path, ROOT)
    assert code[0].metadata.get("tags") == ["remove-cell"]
    # a papermill `parameters` cell that sets `profile`
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and "profile = " in params[0].source
    # nbval markers are cell tags (tools/tidy_notebooks.py), not comments shown to readers
    assert not any("NBVAL_" in c.source for c in code)
    tags = [c.metadata.get("tags", []) for c in code]
    # TensorFlow, where imported, is imported in its own nbval-ignore-output cell
    for c, t in zip(code, tags):
        if "import tensorflow" in c.source or "import keras" in c.source:
            assert "nbval-ignore-output" in t
    # at least one seeded, checked output (nbval --nbval-lax compares only these)
    assert any("nbval-check-output" in t for t in tags)


def test_profiles_have_grids_divisible_by_32():
    for p in PROFILES.values():
        assert all(n % 32 == 0 for n in p.grid), p.name
