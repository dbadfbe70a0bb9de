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


def test_the_laptop_book_loads_every_network_it_ships():
    """Every stage of the ``laptop`` profile is shipped (``results/laptop-runs/``), trained
    with the stage's configuration on the database this code builds, and every file has its
    recorded SHA-256. Otherwise ``make book`` would train it again, for hours. After a change
    to the simulators, the table or a stage: train the runs again and export them with
    ``python tools/ship_runs.py --profile laptop`` (docs/ARCHITECTURE.md)."""
    import json

    import ship_runs

    from mriqc_nb.data.cache import database_id
    from mriqc_nb.data.synthetic import make_table
    from mriqc_nb.model import shipped
    from mriqc_nb.model.runs import STAGES, Run
    from mriqc_nb.profiles import get_profile

    laptop = get_profile("laptop")
    ident = database_id(make_table(laptop))  # the table alone: no volume is made
    for stage in STAGES:
        src = shipped.shipped_dir(laptop, stage)
        assert src == RESULTS / "laptop-runs" / stage, f"{stage}: not shipped"
        why = ship_runs.problem(Run(src), stage, laptop, ident)
        assert why is None, f"results/laptop-runs/{stage}: {why}; see this test's docstring"
        meta = json.loads((src / shipped.SHIPPED_FILE).read_text())
        shipped._verify(src, meta)
        assert meta["seed"] == laptop.seed and meta["profile"] == "laptop"
