"""The committed results table is what its committed per-scan predictions give.

``results/laptop.tsv`` is written by ``make experiments`` (and its recipe rows by
``experiments/adopt_rounds.py``) from per-scan predictions that are committed beside it in
``results/laptop-scans/``. Recomputing every row from those predictions guards the book's
numbers against a hand-edited or stale row: a row that no prediction file supports fails.
"""

from __future__ import annotations

import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "experiments"))

import adopt_rounds  # noqa: E402

RESULTS = ROOT / "results"


@pytest.mark.skipif(not (RESULTS / "laptop.tsv").exists(), reason="no committed laptop results")
def test_every_committed_row_is_what_its_predictions_give(capsys):
    ok = adopt_rounds.check(RESULTS, "laptop")
    assert ok, capsys.readouterr().out


def test_the_check_fails_on_an_edited_row(tmp_path):
    import shutil

    import pandas as pd

    shutil.copytree(RESULTS, tmp_path / "results")
    tsv = tmp_path / "results" / "laptop.tsv"
    df = pd.read_csv(tsv, sep="\t")
    df = df[df["method"] == "recipe"].copy()  # fewer rows: a quicker check
    df.loc[df.index[0], "auc"] += 0.01
    df.to_csv(tsv, sep="\t", index=False)
    assert not adopt_rounds.check(tmp_path / "results", "laptop")
