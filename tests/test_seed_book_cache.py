"""tools/seed_book_cache.py: chapters executed by the tests stand in for the book build's
execution only when their code is the chapter's code."""

from __future__ import annotations

import nbformat
import pytest

import seed_book_cache as sbc

jupyter_cache = pytest.importorskip("jupyter_cache")


def _chapter():
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# A chapter"),
                nbformat.v4.new_code_cell("profile = None", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("print(1 + 1)", metadata={"tags": ["hide-input"]})]
    return nb


def _executed(chapter, code="print(1 + 1)"):
    """What papermill writes: an injected parameters cell, its own metadata, outputs."""
    nb = nbformat.v4.new_notebook(metadata={**chapter.metadata, "papermill": {"duration": 3.5}})
    nb.cells = [nbformat.from_dict(c) for c in chapter.cells]
    nb.cells.insert(2, nbformat.v4.new_code_cell(
        'profile = "smoke"', metadata={"tags": ["injected-parameters"]}))
    nb.cells[3].source = code
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        cell.execution_count = i + 1
        cell.metadata["papermill"] = {"duration": 1.0}
    nb.cells[3].outputs = [nbformat.v4.new_output("stream", name="stdout", text="2\n")]
    return nb


def test_a_matching_chapter_is_served_from_the_cache_with_its_outputs(tmp_path):
    book, executed = tmp_path / "book", tmp_path / "executed"
    book.mkdir(), executed.mkdir()
    chapter = _chapter()
    nbformat.write(chapter, book / "01_a.ipynb")
    nbformat.write(_executed(chapter), executed / "01_a.ipynb")
    changed = _chapter()  # edited after the tests ran (or another chapter's copy)
    changed.cells[2].source = "print(2 + 2)"
    nbformat.write(changed, book / "02_b.ipynb")
    nbformat.write(_executed(chapter), executed / "02_b.ipynb")
    nbformat.write(_executed(chapter), executed / "03_gone.ipynb")

    cached, left = sbc.seed(executed, book, tmp_path / "cache")

    assert cached == ["01_a.ipynb"]
    assert len(left) == 2 and "02_b.ipynb: its code differs" in left[0] and "03_gone" in left[1]
    cache = jupyter_cache.get_cache(str(tmp_path / "cache"))
    _, merged = cache.merge_match_into_notebook(nbformat.read(book / "01_a.ipynb", 4))
    code = [c for c in merged.cells if c.cell_type == "code"]
    assert [c.source for c in code] == ["profile = None", "print(1 + 1)"]  # no injected cell
    assert code[1].outputs[0]["text"] == "2\n"
    assert code[1].metadata == {"tags": ["hide-input"]}  # the chapter's tags, not papermill's
    with pytest.raises(KeyError):  # the changed chapter is not matched: the build executes it
        cache.match_cache_notebook(nbformat.read(book / "02_b.ipynb", 4))


def test_a_missing_folder_caches_nothing_and_is_not_an_error(tmp_path, capsys):
    assert sbc.main([str(tmp_path / "nowhere"), "--cache", str(tmp_path / "cache")]) == 0
    assert "nothing cached" in capsys.readouterr().out
