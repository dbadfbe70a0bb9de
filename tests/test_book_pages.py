"""The rendered-page check (tools/check_pages.py) on two tiny pages: one fits, one overflows.

The checker measures layout in headless Chromium; these tests show that it passes a page
that fits and fails one whose table and output are wider than the text column, so that the
check of the built book (``.ci/run``) is known to fail when it should.
"""

from __future__ import annotations

import struct

import pytest

import check_pages

pytestmark = pytest.mark.skipif(
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


def test_a_page_that_fits_passes(results):
    assert results["fits"].overflows == []


def test_a_page_that_overflows_fails_once_per_element(results):
    found = results["overflows"].overflows
    assert sorted(o.kind for o in found) == ["code", "output", "table"]
    by_kind = {o.kind: o for o in found}
    assert by_kind["table"].section == "Wide table"
    assert by_kind["code"].section == "Long code"
    assert by_kind["output"].text.startswith("0.5 0.5")
    for o in found:
        assert o.column == 600 and o.width > o.column and o.overflow > 0


def test_screenshots_are_full_pages_1280_px_wide(results):
    for r in results.values():
        width, height = _png_size(r.screenshot)
        assert width == check_pages.WIDTH and height == max(r.height, check_pages.HEIGHT)


def test_command_line_exit_status(tmp_path):
    (tmp_path / "fits.html").write_text(FITS)
    (tmp_path / "overflows.html").write_text(OVERFLOWS)
    assert check_pages.main([str(tmp_path), "fits.html", "--no-screenshots"]) == 0
    assert check_pages.main([str(tmp_path), "--no-screenshots"]) == 1
    assert check_pages.main([str(tmp_path), "missing.html", "--no-screenshots"]) == 2
