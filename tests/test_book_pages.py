"""The tools that keep the book's pages legible, tested on tiny inputs.

- ``tools/check_pages.py`` on two tiny pages, one that fits and one that overflows: the checker
  measures layout in headless Chromium, and these tests show that it passes the first and
  fails the second, so that the check of the built book (``.ci/run``) fails when it should.
- ``tools/tidy_notebooks.py``: nbval comments become the tags nbval reads, ``# plumbing`` cells
  get ``hide-input``, long lines are reported, and a tidy notebook is left as it is.
"""

from __future__ import annotations

import json
import struct

import pytest

import check_pages
import tidy_notebooks

needs_chromium = pytest.mark.skipif(
    check_pages.find_chromium() is None,
    reason="needs Chromium (apt-get install -y chromium); .ci/run installs it",
)

STYLE = """<style>
  body { margin: 0; font: 16px sans-serif; }
  article { width: 600px; margin: 0 auto; padding: 0 24px; }
  pre { overflow: auto; }
  .pst-scrollable-table-container { overflow-x: auto; }
</style>"""

FITS = f"""<!DOCTYPE html><html><head>{STYLE}</head><body><article>
<section><h1>A page that fits</h1>
<div class="pst-scrollable-table-container"><table>
  <tr><th>method</th><th>accuracy</th><th>F1</th></tr>
  <tr><td>baseline</td><td>0.893</td><td>0.230</td></tr>
</table></div>
<div class="highlight"><pre>print("a line of code within 79 characters")</pre></div>
<div class="cell_output"><pre>a short output</pre></div>
</section></article></body></html>"""

WIDE_ROW = "".join(f"<td>column {i} 0.123456</td>" for i in range(14))
LONG_LINE = "x = " + " + ".join(f"value_{i}" for i in range(30))
OVERFLOWS = f"""<!DOCTYPE html><html><head>{STYLE}</head><body><article>
<section><h1>A page that overflows</h1>
<section><h2>Wide table</h2>
<div class="pst-scrollable-table-container"><table><tr>{WIDE_ROW}</tr></table></div>
</section>
<section><h2>Long code</h2>
<div class="highlight"><pre>{LONG_LINE}</pre></div>
</section>
<section><h2>Long output</h2>
<div class="cell_output"><pre>{"0.5 " * 80}</pre></div>
</section>
<section><h2>Hidden</h2>
<pre style="display: none">{"hidden " * 60}</pre>
</section>
</section></article></body></html>"""


def _png_size(path):
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    d = tmp_path_factory.mktemp("pages")
    (d / "fits.html").write_text(FITS)
    (d / "overflows.html").write_text(OVERFLOWS)
    shots = d / "shots"
    res = check_pages.check_pages([d / "fits.html", d / "overflows.html"], shots, root=d)
    return {r.page.stem: r for r in res}


@needs_chromium
def test_a_page_that_fits_passes(results):
    assert results["fits"].overflows == []


@needs_chromium
def test_a_page_that_overflows_fails_once_per_element(results):
    found = results["overflows"].overflows
    assert sorted(o.kind for o in found) == ["code", "output", "table"]
    by_kind = {o.kind: o for o in found}
    assert by_kind["table"].section == "Wide table"
    assert by_kind["code"].section == "Long code"
    assert by_kind["output"].text.startswith("0.5 0.5")
    for o in found:
        assert o.column == 600 and o.width > o.column and o.overflow > 0


@needs_chromium
def test_screenshots_are_full_pages_1280_px_wide(results):
    for r in results.values():
        width, height = _png_size(r.screenshot)
        assert width == check_pages.WIDTH and height == max(r.height, check_pages.HEIGHT)


@needs_chromium
def test_command_line_exit_status(tmp_path):
    (tmp_path / "fits.html").write_text(FITS)
    (tmp_path / "overflows.html").write_text(OVERFLOWS)
    assert check_pages.main([str(tmp_path), "fits.html", "--no-screenshots"]) == 0
    assert check_pages.main([str(tmp_path), "--no-screenshots"]) == 1
    assert check_pages.main([str(tmp_path), "missing.html", "--no-screenshots"]) == 2


def _code(source, tags=None):
    cell = {"cell_type": "code", "execution_count": None, "id": "x", "metadata": {},
            "outputs": [], "source": source.splitlines(keepends=True)}
    if tags is not None:
        cell["metadata"]["tags"] = tags
    return cell


def test_nbval_comments_become_the_tags_nbval_reads():
    from nbval.plugin import find_comment_markers, find_metadata_tags

    for comment in tidy_notebooks.NBVAL_TAGS:
        cell = _code(f"# {comment}\nx = 1\nprint(x)")
        before = dict(find_comment_markers("".join(cell["source"])))
        tags, hidden = tidy_notebooks.tidy_cell(cell)
        assert tags == [tidy_notebooks.NBVAL_TAGS[comment]] and not hidden
        assert "".join(cell["source"]) == "x = 1\nprint(x)"
        assert dict(find_metadata_tags(cell["metadata"])) == before  # same meaning to nbval


def test_plumbing_cells_get_hide_input_and_keep_their_comment():
    cell = _code("# plumbing: load the trained runs\nruns = load()", tags=["parameters"])
    assert tidy_notebooks.tidy_cell(cell) == ([], True)
    assert cell["metadata"]["tags"] == ["parameters", "hide-input"]
    assert "".join(cell["source"]) == "# load the trained runs\nruns = load()"
    bare = _code("# Plumbing\nimport os")
    tidy_notebooks.tidy_cell(bare)
    assert "".join(bare["source"]) == "import os"
    other = _code("# not plumbing here\nx = 1")
    assert tidy_notebooks.tidy_cell(other) == ([], False) and other["metadata"] == {}


def test_tidy_notebook_reports_long_lines_and_leaves_a_tidy_notebook_alone(tmp_path):
    nb = {"cells": [_code("# NBVAL_CHECK_OUTPUT\nprint(1)"),
                    _code("import os\nimport sys"),
                    _code("y = " + "1 + " * 30 + "1")],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "ch.ipynb"
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    assert tidy_notebooks.main([str(path), "--check"]) == 1  # would change; long line
    first = tidy_notebooks.tidy_notebook(path)
    assert first.tagged == [(0, "nbval-check-output")] and first.import_only == [1]
    assert first.long_lines == [(2, 1, len("y = " + "1 + " * 30 + "1"))]
    tidy = path.read_bytes()
    again = tidy_notebooks.tidy_notebook(path)
    assert not again.changed and path.read_bytes() == tidy
    assert json.loads(tidy)["cells"][0]["metadata"]["tags"] == ["nbval-check-output"]
    assert tidy_notebooks.main([str(path), "--check", "--max-length", "200"]) == 0
