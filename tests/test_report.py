"""The HTML report (mriqc_nb.report): structure, order, escaping, self-containment, pictures."""

from __future__ import annotations

import base64
import importlib.util
import io
import shutil
from html.parser import HTMLParser

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mriqc_nb import report
from mriqc_nb.sources import printable

EVIL = "<script>alert(1)</script>&.nii.gz"


class _Page(HTMLParser):
    """Tags with their attributes, the text of each section, and the rows of each table."""

    def __init__(self):
        super().__init__()
        self.tags, self.sections, self.rows = [], {}, {}
        self._section, self._row, self._cell = None, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "section":
            self._section = attrs["id"]
            self.sections[self._section], self.rows[self._section] = "", []
        elif tag == "tr":
            self._row = []
        elif tag == "td":
            self._cell = ""

    def handle_endtag(self, tag):
        if tag == "td" and self._row is not None:
            self._row.append(self._cell)
            self._cell = None
        elif tag == "tr" and self._row:
            self.rows[self._section].append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._section:
            self.sections[self._section] += data
        if self._cell is not None:
            self._cell += data


def _parse(path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _head(seed=0, shape=(32, 32, 32)):
    rng = np.random.default_rng(seed)
    g = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    return ((np.sum(g**2, axis=0) < 0.6) * 3.0 - 1.5 + rng.normal(0, 0.2, shape)).astype(np.float32)


def _row(path, decision, p=np.nan, unc=np.nan, error=""):
    ok = decision != "error"
    return {"path": path, "status": "ok" if ok else "error", "error": error,
            "decision": decision, "p_artifact": p, "entropy": p / 2 if ok else np.nan,
            "mutual_information": p / 4 if ok else np.nan, "variance": np.nan,
            "scaled_uncertainty": unc, "referred": decision == "refer" if ok else pd.NA,
            "needs_person": decision != "clean"}


@pytest.fixture
def table():
    rows = [_row("/d/c1.nii.gz", "clean", 0.05, 0.1), _row("/d/a_low.nii.gz", "artifact", 0.7, 0.2),
            _row("/d/r_mid.nii.gz", "refer", 0.5, 0.6), _row("/d/c2.nii.gz", "clean", 0.1, 0.1),
            _row("/d/a_high.nii.gz", "artifact", 0.95, 0.1), _row("/d/r_top.nii.gz", "refer", 0.4, 0.9),
            _row(f"/d/{EVIL}", "error", error=f"/d/{EVIL}: is a FIFO, not a scan file"),
            _row("/d/b_missing.nii.gz", "error", error="/d/b_missing.nii.gz: file not found")]
    return pd.DataFrame(rows)


def test_worklist_order(table):
    order = list(report.worklist(table)["path"])
    assert order == [f"/d/{EVIL}", "/d/b_missing.nii.gz",               # errors, by path
                     "/d/r_top.nii.gz", "/d/r_mid.nii.gz",               # most uncertain first
                     "/d/a_high.nii.gz", "/d/a_low.nii.gz"]              # most probable first
    with pytest.raises(ValueError, match="p_artifact"):
        report.worklist(table.drop(columns="p_artifact"))


def test_report_structure_counts_and_self_containment(table, tmp_path):
    volumes = {p: _head(i) for i, p in enumerate(table["path"])}
    out = report.write_report(table, tmp_path / "sub" / "report.html", views=volumes,
                              spacing_mm=(8, 8, 6), meta={"bundle": "<b>x</b>"})
    page = _parse(out)
    assert list(page.sections) == ["summary", "worklist", "views", "errors"]
    summary = " ".join(page.sections["summary"].split())
    for text in ["8 scans", "6 screened", "2 clean", "2 artifact", "2 refer", "2 error",
                 "6 need a person"]:
        assert text in summary
    # worklist rows in order, with a link to the view of each drawn scan
    assert [r[1] for r in page.rows["worklist"]] == list(report.worklist(table)["path"])
    assert [r[-1] for r in page.rows["worklist"]] == ["", "", "view", "view", "view", "view"]
    # errors with their messages, escaped: no tag ever comes from the data
    assert {tag for tag, _ in page.tags} <= {"html", "head", "meta", "title", "style", "body",
                                             "main", "h1", "h2", "p", "section", "div", "span",
                                             "table", "thead", "tbody", "tr", "th", "td", "a",
                                             "figure", "img", "figcaption", "br", "b"}
    raw = out.read_text()
    assert "<script>" not in raw and "&lt;script&gt;alert(1)&lt;/script&gt;&amp;" in raw
    assert "&lt;b&gt;x&lt;/b&gt;" in raw
    assert [r[0] for r in page.rows["errors"]] == [f"/d/{EVIL}", "/d/b_missing.nii.gz"]
    assert page.rows["errors"][0][1] == f"/d/{EVIL}: is a FIFO, not a scan file"
    # self-contained: every image inline, every link inside the page, nothing fetched
    imgs = [a for tag, a in page.tags if tag == "img"]
    assert len(imgs) == 4
    for a in imgs:
        assert a["src"].startswith("data:image/png;base64,")
        png = Image.open(io.BytesIO(base64.b64decode(a["src"].split(",", 1)[1])))
        pixels = np.asarray(png.convert("L"), dtype=float)
        assert png.size[0] >= 800 and pixels.std() > 10          # a picture, not a blank
    assert all(a["href"].startswith("#") for tag, a in page.tags if tag == "a")
    assert not any(k in ("src", "href") and not str(v).startswith(("data:", "#"))
                   for _, attrs in page.tags for k, v in attrs.items())
    assert "http://" not in raw and "https://" not in raw and "@import" not in raw
    # each figure names its scan, probability and uncertainty
    views = page.sections["views"]
    assert "/d/r_top.nii.gz" in views and "p(artifact) = 0.400" in views
    assert "scaled uncertainty = 0.900" in views and "mutual information (bits) = 0.100" in views


def test_views_from_disk_callable_and_failures(table, tmp_path):
    # a file on disk for one flagged scan, whose name is not valid UTF-8
    import os
    name = os.fsdecode(b"a_h\xe9ad.nii.gz")
    rng = np.random.default_rng(0)
    g = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in (80, 96, 80)], indexing="ij"))
    data = ((np.sum(g**2, axis=0) < 0.7) * 100 + rng.normal(0, 5, g.shape[1:])).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.2, 2.0, 1.0])), os.path.join(tmp_path, name))
    table.loc[table["path"] == "/d/a_high.nii.gz", "path"] = printable(os.path.join(tmp_path, name))
    # the dict covers two scans; the rest fall back to disk: one found, two missing
    given = {"/d/r_top.nii.gz": _head(1), "/d/r_mid.nii.gz": _head(2)[..., None]}
    out = report.write_report(table, tmp_path / "r.html", views=given, spacing_mm=(8, 8, 6))
    page = _parse(out)
    assert len([1 for tag, _ in page.tags if tag == "img"]) == 3
    assert page.sections["views"].count("views unavailable") == 1
    assert "a_low.nii.gz: file not found" in page.sections["views"]

    def broken(path):
        raise RuntimeError(f"no volume for {path} <here>")
    out = report.write_report(table, tmp_path / "r2.html", views=broken, max_views=2)
    page = _parse(out)
    assert page.sections["views"].count("views unavailable") == 2
    assert "The first 2 are drawn" in page.sections["views"]
    assert "&lt;here&gt;" in out.read_text()


def test_entity_columns_and_all_clean(tmp_path):
    t = pd.DataFrame([_row("/d/sub-01_T1w.nii.gz", "refer", 0.5, 0.8),
                      _row("/d/sub-02_T1w.nii.gz", "clean", 0.1, 0.1)])
    t["subject"], t["session"], t["run"] = ["01", "02"], ["", ""], ["1", ""]
    page = _parse(report.write_report(t, tmp_path / "e.html", views={p: _head() for p in t.path}))
    head = [a for tag, a in page.tags if tag == "th"]
    assert page.rows["worklist"][0][2:4] == ["01", "1"] and len(head) == 8   # no empty session
    clean = t[t.decision == "clean"]
    page = _parse(report.write_report(clean, tmp_path / "c.html"))
    assert "every scan was screened and called clean" in page.sections["worklist"]
    assert "None." in page.sections["errors"]


def _bench():
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_report.py"
    spec = importlib.util.spec_from_file_location("bench_report", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None and shutil.which("chromium-browser") is None,
                    reason="headless Chromium not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(table, tmp_path):
    bench = _bench()
    volumes = {p: _head(i) for i, p in enumerate(table["path"])}
    html_path = report.write_report(table, tmp_path / "report.html", views=volumes,
                                    spacing_mm=(8, 8, 6))
    png = bench.screenshot(html_path, tmp_path / "shot.png")
    problems = bench.check_screenshot(png)
    assert problems == [], problems
