"""tools/checks_on_benchmark.py: the checks' calls override the network on test only where
they fire, the threshold stays the one chosen on validation by the network, and the scans it
measures are the database's scans before conforming."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import checks_on_benchmark as cob
from mriqc_nb import native, scans
from mriqc_nb.comparison import method_row
from mriqc_nb.data.cache import materialise
from mriqc_nb.data.synthetic import make_table
from mriqc_nb.profiles import get_profile

KINDS = ["motion", "spike", "noise", "blur"]


def _preds(split, n_clean=300, n_art=24, seed=0):
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(n_clean, int), np.ones(n_art, int)]
    logit = rng.normal(size=y.size) + 1.5 * y - 3.0
    return pd.DataFrame({
        "scan_id": [f"{split}{i:04d}" for i in range(y.size)], "split": split,
        "artifact_kind": ["" if v == 0 else KINDS[i % len(KINDS)] for i, v in enumerate(y)],
        "y": y, "p_artifact": 1 / (1 + np.exp(-logit)),
        "mutual_information": rng.uniform(0, 0.1, y.size)})


def _measures(preds, called_ids=(), kind="kspace_peak"):
    m = pd.DataFrame({"scan_id": preds["scan_id"], "split": preds["split"],
                      "kspace_peak": 0.5, "noise": -4.0, "kspace_comb": np.nan})
    m.loc[m["scan_id"].isin(called_ids), kind] = 3.0
    return m


def test_checks_override_only_where_they_call_and_the_threshold_is_validations():
    valid, test = _preds("valid", seed=1), _preds("test", seed=2)
    preds = pd.concat([valid, test], ignore_index=True)
    t_net = method_row(valid.assign(kind=valid["artifact_kind"]),
                       test.assign(kind=test["artifact_kind"]))["threshold"]
    missed = test[(test["y"] == 1) & (test["p_artifact"] <= t_net)]["scan_id"].tolist()
    assert missed, "the fixture needs artifacts that the network misses"
    clean_low = test[(test["y"] == 0) & (test["p_artifact"] <= t_net)]["scan_id"].iloc[0]
    meas = _measures(preds, missed + [clean_low])
    net, both = cob.seed_rows(preds, meas, seed=3)
    assert (net["screen"], both["screen"]) == ("network", "network+checks")
    assert net["threshold"] == both["threshold"] == pytest.approx(t_net)
    n_art = int(test["y"].sum())
    # every missed artifact is now found; the called clean scan is one more false positive
    assert both["sensitivity"] == pytest.approx(1.0)
    assert net["sensitivity"] == pytest.approx(1 - len(missed) / n_art)
    n_clean = int((test["y"] == 0).sum())
    assert both["specificity"] == pytest.approx(net["specificity"] - 1 / n_clean)
    assert (both["test_called"], both["test_clean_called"]) == (len(missed) + 1, 1)
    # validation measures never move the threshold (it is the network's)
    meas_v = _measures(preds, missed + [clean_low] + valid["scan_id"].tolist()[:50],
                       kind="noise")
    assert cob.seed_rows(preds, meas_v, seed=3)[1]["threshold"] == pytest.approx(t_net)


def test_a_scan_without_measures_is_an_error():
    preds = pd.concat([_preds("valid", seed=1), _preds("test", seed=2)], ignore_index=True)
    meas = _measures(preds).iloc[1:]
    with pytest.raises(ValueError, match="have no measures"):
        cob.seed_rows(preds, meas, seed=0)


@pytest.mark.parametrize("label", ["artifact", "clean"])
def test_raw_image_conformed_is_the_databases_volume(label):
    p = get_profile("smoke")
    table = make_table(p)
    row = table[table["label"].astype(str) == label].iloc[0]
    img = cob.raw_image(json.loads(row["recipe"]), p.grid, p.spacing_mm)
    got = scans.conform(img, tuple(p.grid), tuple(p.spacing_mm), normalise=True)
    want = materialise(row.to_dict(), p.grid, p.spacing_mm)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert set(native.measure(np.asarray(img.dataobj))) == set(native.CALLS)


def test_committed_table_is_what_its_measures_and_predictions_give(repo_root):
    # results/laptop-checks.tsv: its network rows are results/laptop.tsv's recipe rows, and
    # every row is recomputed from the committed per-scan measures and predictions
    results = repo_root / "results"
    table = pd.read_csv(results / "laptop-checks.tsv", sep="\t")
    measures = pd.read_csv(results / "laptop-scans" / "checks.tsv.gz", sep="\t")
    ref = pd.read_csv(results / "laptop.tsv", sep="\t")
    ref = ref[ref["method"] == "recipe"].set_index("seed")
    cols = ["auc", "f1", "sensitivity", "specificity", "threshold", "subtle_sensitivity"]
    for seed in sorted(table["seed"].unique()):
        preds = pd.read_csv(results / "laptop-scans" / f"recipe_seed-{seed}.tsv.gz", sep="\t")
        again = pd.DataFrame(cob.seed_rows(preds, measures, seed))
        mine = table[table["seed"] == seed].reset_index(drop=True)
        assert again["screen"].tolist() == mine["screen"].tolist()
        for c in cols + ["test_called", "test_clean_called", "sens_spike"]:
            np.testing.assert_allclose(again[c], mine[c], atol=1e-5, err_msg=f"{seed} {c}")
        net = mine[mine["screen"] == "network"].iloc[0]
        for c in cols:
            assert net[c] == pytest.approx(ref.loc[seed, c], abs=1e-5), (seed, c)


def test_with_checks_marks_called_scans_as_screening_decides_them():
    preds = _preds("test", seed=4)
    ids = preds["scan_id"].tolist()
    meas = _measures(preds, ids[:2] + ids[-3:], kind="noise")
    out = cob.with_checks(preds, meas)
    assert out["called"].tolist() == [i in ids[:2] + ids[-3:] for i in ids]
    called = out["called"].to_numpy()
    assert (out.loc[called, "p_artifact"] == 1.0).all()
    assert (out.loc[called, "mutual_information"] == 0.0).all()  # kept, not referred
    pd.testing.assert_frame_equal(out.loc[~called, preds.columns], preds.loc[~called])
    assert not cob.with_checks(preds, meas, thresholds={"kspace_peak": 1.0})["called"].any()
    with pytest.raises(ValueError, match="have no measures"):
        cob.with_checks(preds, meas.iloc[3:])
    # measures of an older version of the checks (no column for a check now applied)
    with pytest.raises(ValueError, match="no column kspace_comb"):
        cob.with_checks(preds, meas.drop(columns="kspace_comb"))


def test_measures_are_reused_only_for_the_same_database_and_code(tmp_path, monkeypatch):
    stamp, made = {"database_id": "a", "native_sha256": "x"}, []

    def fake_measure(profile, workers, progress=True):
        made.append(dict(stamp))
        return pd.DataFrame({"scan_id": ["s1"], "split": ["test"], "kspace_peak": [0.5],
                             "noise": [float(len(made))]})

    monkeypatch.setattr(cob, "ROOT", tmp_path)
    monkeypatch.setattr(cob, "measures_stamp", lambda profile: dict(stamp))
    monkeypatch.setattr(cob, "measure_splits", fake_measure)
    first = cob.load_measures("smoke")
    assert len(made) == 1 and (tmp_path / "results" / "smoke-scans" / "checks.json").exists()
    again = cob.load_measures("smoke")  # reused
    pd.testing.assert_frame_equal(again, first, check_dtype=False)
    assert len(made) == 1
    stamp["database_id"] = "b"  # another database: measured again
    assert cob.load_measures("smoke")["noise"].iloc[0] == 2.0 and len(made) == 2
    stamp["native_sha256"] = "y"  # another version of the checks' code
    cob.load_measures("smoke")
    assert len(made) == 3
    cob.load_measures("smoke", remeasure=True)
    assert len(made) == 4


def test_measures_can_be_made_without_writing_them(tmp_path, monkeypatch):
    monkeypatch.setattr(cob, "ROOT", tmp_path)
    monkeypatch.setattr(cob, "measures_stamp", lambda profile: {"database_id": "a"})
    monkeypatch.setattr(cob, "measure_splits", lambda profile, workers, progress=True:
                        pd.DataFrame({"scan_id": ["s1"], "split": ["test"],
                                      "kspace_peak": [0.5], "noise": [-4.0]}))
    assert len(cob.load_measures("smoke", write=False)) == 1
    assert not (tmp_path / "results").exists()
