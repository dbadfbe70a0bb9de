"""Execute every chapter of ``_toc.yml`` under the ``smoke`` profile, then validate with nbval.

Papermill runs each chapter with ``profile = "smoke"`` injected after its ``parameters`` cell;
nbval (lax mode) then re-executes the executed notebook and compares the outputs of the cells
marked ``# NBVAL_CHECK_OUTPUT`` (seeded numbers: shapes, counts, checksums) with the ones that
papermill stored. A chapter that raises, or whose checked numbers are not reproducible, fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import sync_colab_cell as colab

from conftest import ROOT

CHAPTERS = colab.chapter_paths(ROOT)
pytestmark = pytest.mark.notebooks


@pytest.fixture(scope="module")
def executed_dir(tmp_path_factory):
    """Where papermill writes the executed chapters: a fresh temporary folder, unless
    ``MRIQC_NB_TEST_EXECUTED`` names one (``.ci/run`` then hands them to the book build's
    cache with ``tools/seed_book_cache.py``, so the build does not execute them again)."""
    given = os.environ.get("MRIQC_NB_TEST_EXECUTED")
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("executed")


@pytest.fixture(scope="module")
def nb_home(tmp_path_factory):
    """One package home (databases, trained runs) shared by the chapters, in order.

    A fresh temporary folder, unless ``MRIQC_NB_TEST_HOME`` names one: ``.ci/run`` points it
    at the run's own fresh ``MRIQC_NB_HOME``, so that the book build after the tests finds the
    smoke databases and trained runs the chapters made here instead of training them again
    (nbval's second execution of every chapter already takes that path)."""
    given = os.environ.get("MRIQC_NB_TEST_HOME")
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("mriqc_nb_home")


def _output_text(notebook, stream: str | None = None) -> str:
    """The text outputs of an executed chapter, joined; only those of ``stream`` ("stdout"
    or "stderr") when given."""
    import json

    cells = json.loads(notebook.read_text())["cells"]
    return "".join("".join(o.get("text", "")) for c in cells for o in c.get("outputs", [])
                   if stream is None or o.get("name") == stream)


def _library_warnings(text: str) -> list[str]:
    """Lines of a chapter's output text that are TensorFlow/Keras log warnings (such as
    tf.function retracing): noise on the page, and often a sign of slow code."""
    return [line[:120] for line in text.splitlines() if line.startswith("WARNING:tensorflow")]


# Printed text wider than this overflows the page's text column at 1280 px (sphinx-book-theme
# sets outputs at about 8.2 CSS px a character in a 688 px column; tools/check_pages.py
# measures the rendered page): a reader sees a scroll bar or a clipped line.
MAX_PRINTED = 78


def _long_lines(text: str) -> list[str]:
    """Lines of ``text`` longer than MAX_PRINTED."""
    return [line for line in text.splitlines() if len(line) > MAX_PRINTED]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_executes_and_validates(path, executed_dir, nb_home, monkeypatch):
    import papermill as pm

    monkeypatch.setenv("MRIQC_NB_PROFILE", "smoke")
    monkeypatch.setenv("MRIQC_NB_HOME", str(nb_home))
    # no MPLBACKEND: the kernel's inline backend draws the figures, as in the book build,
    # which can then reuse these executions (.ci/run, tools/seed_book_cache.py)
    monkeypatch.delenv("MPLBACKEND", raising=False)
    out = executed_dir / path.name
    pm.execute_notebook(
        str(path), str(out), parameters={"profile": "smoke"}, kernel_name="python3",
        cwd=str(path.parent), progress_bar=False,
    )
    noise = _library_warnings(_output_text(out))
    assert not noise, f"{path.name} shows library warnings to its readers: {noise}"
    wide = _long_lines(_output_text(out, "stdout"))  # _config.yml removes stderr from pages
    assert not wide, (f"{path.name} prints lines wider than the page's column "
                      f"({MAX_PRINTED} characters); wrap them with textwrap: {wide}")
    env = dict(os.environ, MRIQC_NB_PROFILE="smoke", MPLBACKEND="Agg", MRIQC_NB_HOME=str(nb_home))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-p", "no:cacheprovider",
         "--rootdir", str(executed_dir), "--nbval-current-env", str(out)],
        cwd=str(executed_dir), env=env, capture_output=True, text=True, timeout=1800,
    )
    assert proc.returncode == 0, f"nbval failed for {path.name}:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"
