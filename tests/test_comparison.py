"""Threshold rules, result rows, the summary over seeds, paired differences, the script."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mriqc_nb import comparison
from mriqc_nb.metrics import binary_metrics

KINDS = ["noise", "spike", "motion", "coverage"]


def _preds(n_clean=200, n_art=20, sep=3.0, seed=0, prefix="s"):
    """Per-scan predictions: artifact scores shifted by ``sep`` (logit scale)."""
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(n_clean, int), np.ones(n_art, int)]
    logit = rng.normal(size=y.size) + sep * y - 3.0
    return pd.DataFrame({
        "scan_id": [f"{prefix}{i:04d}" for i in range(y.size)],
        "artifact_kind": ["" if v == 0 else KINDS[i % len(KINDS)] for i, v in enumerate(y)],
        "y": y,
        "p_artifact": 1 / (1 + np.exp(-logit)),
        "mutual_information": rng.uniform(0, 0.1, y.size),
        "n_samples": 10,
    })


def test_threshold_rules_chosen_on_validation_only():
    valid, test = _preds(seed=1), _preds(seed=2, prefix="t")
    rules = comparison.threshold_rules(valid, test).set_index("criterion")
    assert rules.index.tolist() == ["youden", "f1"]
    for c in ("youden", "f1"):
        t = rules.loc[c, "threshold"]
        m = binary_metrics(test["y"], test["p_artifact"], t)
        assert rules.loc[c, "test_f1"] == pytest.approx(m["f1"])
        assert rules.loc[c, "valid_f1"] == pytest.approx(
            binary_metrics(valid["y"], valid["p_artifact"], t)["f1"])
    # each rule is best on validation for its own criterion
    assert rules.loc["f1", "valid_f1"] >= rules.loc["youden", "valid_f1"]
    assert rules.loc["youden", "valid_youden_j"] >= rules.loc["f1", "valid_youden_j"]
    # the test set does not move the thresholds
    shuffled = test.assign(p_artifact=test["p_artifact"].sample(frac=1, random_state=0)
                           .to_numpy())
    again = comparison.threshold_rules(valid, shuffled).set_index("criterion")
    assert again["threshold"].tolist() == rules["threshold"].tolist()


def test_method_row_columns_and_kinds():
    valid, test = _preds(seed=1), _preds(seed=2, prefix="t")
    subtle = _preds(n_clean=0, n_art=8, sep=1.0, seed=3, prefix="u")
    row = comparison.method_row(valid, test, subtle, n_boot=200)
    cols = comparison.result_columns()
    assert set(row) <= set(cols)
    assert row["n_test"] == 220 and row["n_test_artifacts"] == 20
    assert row["auc_low"] <= row["auc"] <= row["auc_high"]
    m = binary_metrics(test["y"], test["p_artifact"], row["threshold"])
    assert row["f1"] == pytest.approx(m["f1"])
    called = test["p_artifact"] >= row["threshold"]
    for kind in KINDS:
        sel = test["artifact_kind"] == kind
        assert row[f"sens_{kind}"] == pytest.approx(called[sel].mean())
    assert row["n_subtle"] == 8
    assert row["subtle_sensitivity"] == pytest.approx(
        (subtle["p_artifact"] >= row["threshold"]).mean())
    assert "sens_wraparound" not in row  # absent kind: NaN once reindexed
    assert row["n_valid_artifacts"] == 20


def test_seed_summary():
    df = pd.DataFrame({"method": ["a", "a", "a", "b"], "seed": [0, 1, 2, 0],
                       "auc": [0.8, 0.9, 1.0, 0.5], "f1": [0.1, 0.2, 0.3, 0.0]})
    s = comparison.seed_summary(df).set_index("method")
    assert s.loc["a", "n_seeds"] == 3
    assert s.loc["a", "auc_mean"] == pytest.approx(0.9)
    assert s.loc["a", "auc_sd"] == pytest.approx(0.1)
    assert s.loc["a", "f1_min"] == pytest.approx(0.1) and s.loc["a", "f1_max"] == 0.3
    assert np.isnan(s.loc["b", "auc_sd"])
    assert "accuracy_mean" not in s.columns


def test_differences_to_reference_paired():
    valid_a, test_a = _preds(seed=1, sep=1.0), _preds(seed=2, sep=1.0, prefix="t")
    valid_b, test_b = _preds(seed=1, sep=4.0), _preds(seed=2, sep=4.0, prefix="t")
    d = comparison.differences_to_reference(
        {"baseline": (valid_a, test_a), "better": (valid_b, test_b)}, n_boot=200)
    assert d["metric"].tolist() == ["auc", "f1", "balanced_accuracy"]
    auc = d.set_index("metric").loc["auc"]
    assert auc["diff"] == pytest.approx(auc["value"] - auc["reference_value"])
    assert auc["low"] > 0 and auc["p_le_0"] == 0.0
    # the same method against itself: zero difference in every replicate
    same = comparison.differences_to_reference(
        {"baseline": (valid_a, test_a), "copy": (valid_a, test_a)}, n_boot=50)
    assert (same[["diff", "low", "high"]].to_numpy() == 0).all()
    with pytest.raises(ValueError, match="test scans differ"):
        comparison.differences_to_reference(
            {"baseline": (valid_a, test_a), "other": (valid_b, test_b.iloc[::-1])},
            n_boot=10)


# --------------------------------------------------------------------------- the script


def test_experiments_script_resumes_and_keeps_seeds_apart(tmp_path, monkeypatch):
    """tools/experiments.py with training and prediction replaced (fast): rows, sidecar,
    per-seed run directories, resuming."""
    import experiments as ex

    monkeypatch.setenv("MRIQC_NB_HOME", str(tmp_path / "home"))
    trained = []

    def fake_train(method, profile, seed, *, progress=False):
        trained.append((method, seed))
        return ex.seed_runs_dir(profile, seed) / method

    def fake_predict(run, profile, *, progress=False):
        seed = int(run.parent.name.split("-")[1])
        sep = 1.0 + 2.0 * (run.name == "recipe") + 0.1 * seed
        return {"valid": _preds(seed=10 + seed, sep=sep),
                "test": _preds(seed=20 + seed, sep=sep, prefix="t"),
                "subtle": _preds(n_clean=0, n_art=6, seed=30, prefix="u")}

    monkeypatch.setattr(ex, "train_method", fake_train)
    monkeypatch.setattr(ex, "predict_method", fake_predict)
    out = tmp_path / "results"
    df = ex.run_experiments("smoke", [0, 1], ["baseline", "recipe"], out, n_boot=50,
                            log=lambda s: None)
    assert len(df) == 4 and trained == [("baseline", 0), ("recipe", 0), ("baseline", 1),
                                        ("recipe", 1)]
    tsv = pd.read_csv(out / "smoke.tsv", sep="\t")
    assert tsv.columns.tolist() == comparison.result_columns()
    assert set(zip(tsv["method"], tsv["seed"])) == {("baseline", 0), ("recipe", 0),
                                                     ("baseline", 1), ("recipe", 1)}
    assert (tsv["n_test_artifacts"] == 20).all() and (tsv["n_subtle"] == 6).all()
    raw = pd.read_csv(out / "smoke.tsv", sep="\t", dtype=str)
    assert raw["auc"].str.len().max() <= 8  # 6 significant digits
    meta = json.loads((out / "smoke.json").read_text())
    assert meta["seeds"] == [0, 1] and meta["profile"]["name"] == "smoke"
    assert meta["cpu"] and set(meta["wall_seconds"]) == {"baseline", "recipe"}
    assert set(meta["wall_seconds"]["recipe"]) == {"0", "1"}
    # seeds train into their own folders
    assert ex.seed_runs_dir("smoke", 0) != ex.seed_runs_dir("smoke", 1)
    # resuming: nothing done twice, a new seed added
    trained.clear()
    df = ex.run_experiments("smoke", [0, 1, 2], ["baseline", "recipe"], out, n_boot=50,
                            log=lambda s: None)
    assert trained == [("baseline", 2), ("recipe", 2)] and len(df) == 6
    assert json.loads((out / "smoke.json").read_text())["seeds"] == [0, 1, 2]
    # rows of another version of the profile are never stamped with this one
    side = json.loads((out / "smoke.json").read_text())
    side["profile"]["recipe"]["onto_clean"] += 1
    (out / "smoke.json").write_text(json.dumps(side))
    with pytest.raises(ValueError, match="onto_clean") as err:
        ex.run_experiments("smoke", [3], ["baseline"], out, n_boot=50, log=lambda s: None)
    assert "smoke.json" in str(err.value) and ("baseline", 3) not in trained
    side["profile"]["recipe"]["onto_clean"] -= 1
    side["profile"]["description"] = "older words about the same settings"
    (out / "smoke.json").write_text(json.dumps(side))  # prose is not a setting: accepted
    ex.run_experiments("smoke", [0], ["baseline"], out, n_boot=50, log=lambda s: None)
    s = comparison.seed_summary(out / "smoke.tsv").set_index("method")
    assert s.loc["recipe", "n_seeds"] == 3
    assert s.loc["recipe", "auc_mean"] > s.loc["baseline", "auc_mean"]
    # the Markdown page section: every number read from the table, methods not run named
    md = (out / "smoke.md").read_text()
    assert "Profile `smoke`" in md and "training seeds 0, 1, 2" in md and meta["cpu"] in md
    r = s.loc["recipe"]
    assert (f"| recipe | 3 | {r['auc_mean']:.3f} ({r['auc_min']:.3f}-{r['auc_max']:.3f}) |"
            in md)
    first = tsv.iloc[0]
    assert f"| {first['method']} | {first['seed']} | {first['auc']:.3f} [" in md
    assert (f"| {first['method']} | {first['seed']} | {first['threshold_f1rule']:.3f} | "
            f"{first['f1_f1rule']:.3f} |") in md
    assert "Not run for this table: focal, prime, ramp, primed_baseline" in md
    # the subtle set per kind and method, mean over seeds, read from the table's columns
    final = pd.read_csv(out / "smoke.tsv", sep="\t")
    sub_cols = [c for c in final.columns
                if c.startswith("subtle_sens_") and final[c].notna().all()]
    assert sub_cols and "separate set of 6 *subtle* artifacts" in md
    kind = sub_cols[0]
    means = final.groupby("method", sort=False)[kind].mean()
    assert (f"| {kind[12:]} | " + " | ".join(f"{v:.2f}" for v in means) + " |") in md
    chance = 1 - final.groupby("method", sort=False)["specificity"].mean()
    assert ("| *clean test scans called artifacts* | "
            + " | ".join(f"{v:.2f}" for v in chance) + " |") in md
    # per-scan predictions behind every row (reproducible bytes), and the headline figure
    scans = sorted(p.name for p in (out / "smoke-scans").iterdir())
    assert scans == [f"{m}_seed-{s}.tsv.gz" for m in ("baseline", "recipe") for s in (0, 1, 2)]
    per = pd.read_csv(out / "smoke-scans" / "recipe_seed-1.tsv.gz", sep="\t")
    assert list(per.columns) == list(ex.SCAN_COLUMNS)
    test = per[per["split"] == "test"]
    assert len(test) == first["n_test"] and test["y"].sum() == first["n_test_artifacts"]
    assert np.isclose(comparison.safe_auc(test["y"], test["p_artifact"]),
                      tsv.set_index(["method", "seed"]).loc[("recipe", 1), "auc"], atol=1e-5)
    again = ex.write_scans(fake_predict(ex.seed_runs_dir("smoke", 1) / "recipe", "smoke"),
                           tmp_path / "again.tsv.gz")
    assert again.read_bytes() == (out / "smoke-scans" / "recipe_seed-1.tsv.gz").read_bytes()
    assert (out / "smoke.png").read_bytes()[:4] == b"\x89PNG"
    # the paired differences to the baseline of each seed, from those per-scan files
    diffs = comparison.seed_differences(out / "smoke-scans")
    assert sorted(diffs["seed"].unique()) == [0, 1, 2] and set(diffs["method"]) == {"recipe"}
    d = diffs[(diffs["seed"] == 1) & (diffs["metric"] == "auc")].iloc[0]
    assert d["diff"] == pytest.approx(
        tsv.set_index(["method", "seed"]).loc[("recipe", 1), "auc"]
        - tsv.set_index(["method", "seed"]).loc[("baseline", 1), "auc"], abs=1e-5)
    assert f"| recipe | 1 | {d['diff']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] |" in md
    assert "| recipe | all | above 0 |" in md
    with pytest.raises(ValueError, match="unknown methods"):
        ex.run_experiments("smoke", [0], ["nope"], out)


def test_experiments_script_times_a_resumed_run_by_its_epochs(tmp_path, monkeypatch):
    """A run found finished returns at once; its row gets its epochs' time, not that wait."""
    import types

    import experiments as ex

    monkeypatch.setenv("MRIQC_NB_HOME", str(tmp_path / "home"))
    finished = types.SimpleNamespace(
        history=pd.DataFrame({"epoch": [1, 2, 3], "seconds": [400.0, 500.0, 600.0]}))
    monkeypatch.setattr(ex, "train_method", lambda *a, **k: finished)
    monkeypatch.setattr(ex, "predict_method", lambda run, profile, **k: {
        "valid": _preds(seed=10), "test": _preds(seed=20, prefix="t"),
        "subtle": _preds(n_clean=0, n_art=6, seed=30, prefix="u")})
    out = tmp_path / "results"
    df = ex.run_experiments("smoke", [0], ["baseline"], out, n_boot=50, log=lambda s: None)
    assert 1500.0 <= df["seconds_train"].iloc[0] < 1560.0
    meta = json.loads((out / "smoke.json").read_text())
    assert 1500.0 <= meta["wall_seconds"]["baseline"]["0"]["train"] < 1560.0
    assert ex.training_seconds(tmp_path) == 0.0  # no history: nothing to add


def test_seed_figure_legend_lists_every_seed_once():
    """The first method may have fewer seeds than the others: the legend still names them all."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mriqc_nb import plots

    rows = [{"method": "baseline", "seed": 0, "auc": 0.6, "f1": 0.1}]
    rows += [{"method": "recipe", "seed": s, "auc": 0.9 + s / 100, "f1": 0.3} for s in (0, 1, 2)]
    axes = plots.plot_seed_results(rows)
    legend = axes[0].figure.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["seed 0", "seed 1", "seed 2", "mean over seeds"]
    plt.close("all")


def _write_scans(folder, method, seed, valid, test):
    """A per-scan file as ``tools/experiments.py`` writes it (validation and test rows)."""
    df = pd.concat([valid.assign(split="valid"), test.assign(split="test")], ignore_index=True)
    df[["scan_id", "split", "artifact_kind", "y", "p_artifact", "mutual_information"]].to_csv(
        folder / f"{method}_seed-{seed}.tsv.gz", sep="\t", index=False)


def test_seed_differences_pair_each_seed_with_the_same_seeds_reference(tmp_path):
    valid = {s: _preds(seed=10 + s, prefix="v") for s in range(2)}
    test = {s: _preds(seed=20 + s, prefix="t") for s in range(2)}
    for s in range(2):  # "good" ranks better than the baseline of its seed, "weak" worse
        _write_scans(tmp_path, "baseline", s, valid[s], test[s])
        good = lambda t: t.assign(p_artifact=np.clip(t["p_artifact"] + 0.5 * t["y"], 0, 1))  # noqa: E731
        weak = lambda t: t.assign(p_artifact=t["p_artifact"].sample(frac=1, random_state=s).to_numpy())  # noqa: E731
        _write_scans(tmp_path, "good", s, good(valid[s]), good(test[s]))
        _write_scans(tmp_path, "weak", s, weak(valid[s]), weak(test[s]))
    _write_scans(tmp_path, "good", 2, valid[0], test[0])  # no baseline of seed 2: skipped

    d = comparison.seed_differences(tmp_path, n_boot=200)
    assert sorted(d["seed"].unique()) == [0, 1]
    assert set(d["method"]) == {"good", "weak"} and (d["reference"] == "baseline").all()
    # each seed's rows are differences_to_reference on that seed's tables, nothing else
    one = d[d["seed"] == 1].drop(columns="seed").reset_index(drop=True)
    tables = {"baseline": (valid[1], test[1]),
              "good": (good(valid[1]), good(test[1])), "weak": (weak(valid[1]), weak(test[1]))}
    tables = {k: tuple(t.drop(columns="n_samples") for t in v) for k, v in tables.items()}
    direct = comparison.differences_to_reference(tables, n_boot=200)
    pd.testing.assert_frame_equal(one[direct.columns], direct, check_dtype=False, atol=1e-6)

    table = comparison.seed_difference_table(d, "auc")
    assert list(table.columns) == ["seed 0", "seed 1", "every seed"]
    assert table.loc["good", "every seed"] == "above 0"
    assert table.loc["weak", "every seed"] == "below 0"
    # a method without one of the seeds: named as not run, its verdict says on how many
    _write_scans(tmp_path, "baseline", 2, valid[0], test[0])
    _write_scans(tmp_path, "weak", 2, weak(valid[0]), weak(test[0]))
    part = comparison.seed_difference_table(
        comparison.seed_differences(tmp_path, methods=["weak", "late"], n_boot=50,
                                    metrics=["auc"]), "auc")
    assert part.loc["weak", "every seed"] == "below 0"
    (tmp_path / "good_seed-2.tsv.gz").unlink()
    _write_scans(tmp_path, "late", 2, good(valid[0]), good(test[0]))
    part = comparison.seed_difference_table(
        comparison.seed_differences(tmp_path, n_boot=50, metrics=["auc"]), "auc")
    assert part.loc["late", "seed 0"] == "not run" and part.loc["good", "seed 2"] == "not run"
    assert part.loc["late", "every seed"] == "above 0 (1 of 3 seeds)"
    assert part.loc["good", "every seed"] == "above 0 (2 of 3 seeds)"
    for name in ("baseline_seed-2", "weak_seed-2", "late_seed-2"):
        (tmp_path / f"{name}.tsv.gz").unlink()
    only = comparison.seed_differences(tmp_path, methods=["good"], seeds=[1], n_boot=50,
                                       metrics=["auc"])
    assert set(only["method"]) == {"good"} and set(only["seed"]) == {1}
    assert only["metric"].tolist() == ["auc"]
    with pytest.raises(ValueError, match="unknown metric"):
        comparison.seed_differences(tmp_path, metrics=["accuracy"])


def test_seed_differences_name_the_file_that_is_wrong(tmp_path):
    valid, test = _preds(seed=1, prefix="v"), _preds(seed=2, prefix="t")
    _write_scans(tmp_path, "baseline", 0, valid, test)
    _write_scans(tmp_path, "other", 0, valid, _preds(seed=2, prefix="x"))  # other test scans
    with pytest.raises(ValueError, match="seed 0: other: its test scans differ"):
        comparison.seed_differences(tmp_path, n_boot=20)
    (tmp_path / "other_seed-0.tsv.gz").unlink()
    valid.drop(columns="mutual_information").assign(split="valid").to_csv(
        tmp_path / "bad_seed-0.tsv.gz", sep="\t", index=False)
    with pytest.raises(ValueError, match=r"bad_seed-0\.tsv\.gz: missing column"):
        comparison.seed_differences(tmp_path, n_boot=20)
    with pytest.raises(FileNotFoundError, match="no folder"):
        comparison.seed_differences(tmp_path / "nowhere")
    assert comparison.seed_differences(tmp_path / ".." / tmp_path.name, reference="absent").empty
