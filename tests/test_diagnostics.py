"""The detector diagnosis: batches under class weights, shortcuts, memorisation, per kind."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from mriqc_nb import diagnostics as dg
from mriqc_nb.profiles import get_profile

TINY = replace(get_profile("smoke"), name="tiny-diag", n_scans=40, n_subtle=4,
               clean_share=0.75, epochs_baseline=1, epochs_finetune=1, batch_size=4,
               seed=7)


# --------------------------------------------------------------------------- batches


def test_batch_composition_laptop_numbers():
    # the laptop training split of issue 9: 3,000 scans, 60 artifacts, batch 8
    d = dg.batch_composition(2940, 60, 8, epochs=10)
    assert d["weights"] == [1.0, 49.0]
    assert d["p_artifacts"][0] == pytest.approx(0.851, abs=5e-4)
    assert d["p_artifacts"][1] == pytest.approx(0.139, abs=5e-4)
    assert sum(d["p_artifacts"]) == pytest.approx(1.0)
    assert d["one_artifact_share"] == pytest.approx(49 / 56)
    assert d["loss_scale_one_artifact"] == pytest.approx(7.0)
    assert d["steps_per_epoch"] == 375
    assert d["steps_with_artifact"] == pytest.approx(375 * (1 - d["p_artifacts"][0]))
    assert d["views_per_artifact"] == 10


def test_batch_composition_matches_shuffled_epochs():
    """The hypergeometric counts are those of batches cut from shuffled epochs."""
    n_clean, n_art, b = 90, 10, 5
    d = dg.batch_composition(n_clean, n_art, b)
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(n_clean, int), np.ones(n_art, int)]
    counts = np.concatenate([rng.permutation(y).reshape(-1, b).sum(1) for _ in range(3000)])
    freq = np.bincount(counts, minlength=b + 1) / counts.size
    np.testing.assert_allclose(freq, d["p_artifacts"], atol=0.01)


def test_batch_composition_custom_weights_and_errors():
    d = dg.batch_composition(30, 10, 4, weights=[1.0, 1.0])
    assert d["one_artifact_share"] == pytest.approx(0.25)
    assert d["loss_scale_one_artifact"] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        dg.batch_composition(30, 0, 4)


# --------------------------------------------------------------------------- shortcuts


def _zscore(v):
    return (v - v.mean()) / v.std()


def test_constant_band_and_background():
    rng = np.random.default_rng(0)
    noisy = rng.normal(size=(16, 16, 12)).astype(np.float32)
    banded = noisy.copy()
    banded[:, :, :4] = -10.0  # a third of the volume exactly constant, below the rest
    assert dg.constant_band_share(_zscore(banded)) == pytest.approx(1 / 3)
    assert dg.constant_band_share(noisy) == pytest.approx(1 / noisy.size)
    assert dg.background_std(banded, (4, 4)) > 0  # the corner spans the band and the rest
    flat = np.zeros((8, 8, 4), np.float32)
    flat[4:, 4:] = 1.0
    assert dg.background_std(flat) == 0.0


def test_shortcut_table_per_kind(tmp_path):
    rng = np.random.default_rng(1)
    rows = []
    for i in range(7):
        kind = ["", "", "", "wraparound", "wraparound", "noise", "noise"][i]
        v = rng.normal(size=(8, 8, 6)).astype(np.float16)
        if kind == "wraparound":
            v[:, :3] = -5.0
        np.save(tmp_path / f"s{i}.npy", v)
        rows.append(dict(scan_id=f"s{i}", split="train" if i < 6 else "test",
                         artifact_kind=kind, cache_file=f"s{i}.npy"))
    table = pd.DataFrame(rows)
    table.attrs["root"] = str(tmp_path)
    out = dg.shortcut_table(table, per_kind=2)
    assert out["kind"].tolist() == ["clean", "noise", "wraparound"]
    assert out.set_index("kind")["n"].to_dict() == {"clean": 2, "noise": 2, "wraparound": 2}
    by = out.set_index("kind")
    assert by.loc["wraparound", "share_at_min"] == pytest.approx(3 / 8, abs=1e-3)
    assert by.loc["clean", "share_at_min"] < 0.01
    assert by.loc["wraparound", "minimum"] == pytest.approx(-5.0)
    only_train = dg.shortcut_table(table, splits=("train",))
    assert only_train.set_index("kind").loc["noise", "n"] == 1


# --------------------------------------------------------------------------- memorisation


def test_memorisation_from_history():
    hist = pd.DataFrame(dict(epoch=[1, 2, 3], loss=[1, 0.5, 0.2],
                             train_ce_artifact=[2.0, 0.5, 0.1],
                             val_ce_artifact=[2.0, 1.5, 3.0]))
    m = dg.memorisation(hist)
    assert m.columns.tolist() == ["epoch", "train_ce_artifact", "val_ce_artifact", "gap",
                                  "ratio"]
    np.testing.assert_allclose(m["gap"], [0.0, 1.0, 2.9])
    np.testing.assert_allclose(m["ratio"], [1.0, 3.0, 30.0])
    with pytest.raises(KeyError, match="artifact_ce_by_epoch"):
        dg.memorisation(hist.drop(columns="val_ce_artifact"))


def _mean_weighted_ce(y, p, w_clean, w_artifact):
    """Mean over scans of w_y * CE of a constant probability p of an artifact."""
    y = np.asarray(y)
    ce = np.where(y == 1, -np.log(p), -np.log1p(-p))
    return float(np.mean(np.where(y == 1, w_artifact, w_clean) * ce))


def test_constant_loss_is_the_best_loss_of_a_network_that_ignores_its_input():
    # epochs of a ramp: 2940 clean / 60 artifacts at balancing weights, a smaller one at
    # other weights, an unweighted 98%-clean epoch, and a focal epoch without weights
    hist = pd.DataFrame(dict(
        epoch=[1, 2, 3, 4], phase=["ramp", "full", "full", "full"],
        n_clean=[636, 2940, 2940, 2940], n_artifact=[60, 60, 60, 60],
        weight_clean=[1.0, 1.0, 1.0, np.nan], weight_artifact=[10.6, 49.0, 1.0, np.nan],
        loss=[1.0, 2.0, 0.05, 0.1]))
    out = dg.constant_loss(hist)
    assert out.columns.tolist() == ["epoch", "phase", "loss", "constant_loss", "ratio"]
    grid = np.linspace(1e-4, 1 - 1e-4, 20001)
    for i in range(3):
        row = hist.iloc[i]
        y = np.r_[np.zeros(int(row.n_clean)), np.ones(int(row.n_artifact))]
        losses = [_mean_weighted_ce(y, q, row.weight_clean, row.weight_artifact)
                  for q in grid]
        # no constant probability does better, and the best one on a fine grid matches
        assert out.constant_loss[i] <= min(losses) + 1e-9
        np.testing.assert_allclose(out.constant_loss[i], min(losses), rtol=1e-6)
    # balancing weights: the best constant is 0.5, its loss ln 2 times the mean weight
    np.testing.assert_allclose(out.constant_loss[1], np.log(2) * (2940 + 60 * 49) / 3000)
    # unweighted: the entropy of a 2% artifact share
    np.testing.assert_allclose(out.constant_loss[2],
                               -(0.98 * np.log(0.98) + 0.02 * np.log(0.02)))
    np.testing.assert_allclose(out.ratio[:3], hist.loss[:3] / out.constant_loss[:3])
    assert np.isnan(out.constant_loss[3]) and np.isnan(out.ratio[3])
    with pytest.raises(KeyError, match="weight_artifact"):
        dg.constant_loss(hist.drop(columns="weight_artifact"))


# --------------------------------------------------------------------------- per kind


def test_per_kind_sensitivity():
    summary = pd.DataFrame(dict(
        artifact_kind=["", "", "", "noise", "noise", "spike", "motion"],
        y=[0, 0, 0, 1, 1, 1, 1],
        p_artifact=[0.1, 0.6, 0.2, 0.9, 0.3, 0.5, 0.49]))
    out = dg.per_kind_sensitivity(summary, 0.5).set_index("kind")
    assert out.index.tolist() == ["motion", "noise", "spike", "clean"]
    assert out.loc["noise", "sensitivity"] == 0.5
    assert out.loc["spike", "sensitivity"] == 1.0  # >= threshold is artifact
    assert out.loc["motion", "sensitivity"] == 0.0
    assert out.loc["clean", "rate"] == pytest.approx(1 / 3)
    assert np.isnan(out.loc["clean", "sensitivity"])
    # labels as text work too
    text = summary.drop(columns="y").assign(label=np.where(summary["y"] == 1, "artifact",
                                                           "clean"))
    pd.testing.assert_frame_equal(dg.per_kind_sensitivity(text, 0.5),
                                  dg.per_kind_sensitivity(summary, 0.5))


# --------------------------------------------------------------------------- with a run


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from mriqc_nb.data import build_database
    from mriqc_nb.paths import database_dir
    from mriqc_nb.model.training import train_stage

    root = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MRIQC_NB_HOME", str(root))
        table = build_database(TINY, database_dir(TINY), workers=1, progress=False)
        run = train_stage("baseline", TINY, progress=False)
        yield table, run


def test_artifact_ce_by_epoch_feeds_memorisation(tiny_run):
    table, run = tiny_run
    ce = dg.artifact_ce_by_epoch(run, table)
    assert ce["epoch"].tolist() == [1]
    n_train = int(((table["split"] == "train") & (table["label"] == "artifact")).sum())
    assert ce["n_train_artifacts"].iloc[0] == n_train
    assert (ce[["train_ce_artifact", "val_ce_artifact"]] > 0).all().all()
    m = dg.memorisation(ce)
    assert m["gap"].iloc[0] == pytest.approx(ce["val_ce_artifact"].iloc[0]
                                             - ce["train_ce_artifact"].iloc[0])
    # epoch 0 (the initial weights) on request
    assert dg.artifact_ce_by_epoch(run, table, epochs=[0])["epoch"].tolist() == [0]


def test_subtle_sensitivity(tiny_run):
    _, run = tiny_run
    everything = dg.subtle_sensitivity(run, 0.0, profile=TINY, T=3)
    assert everything["kind"].iloc[-1] == "all"
    assert everything["n"].iloc[-1] == TINY.n_subtle
    assert (everything["sensitivity"] == 1.0).all()
    nothing = dg.subtle_sensitivity(run, 1.01, profile=TINY, T=3)
    assert (nothing["sensitivity"] == 0.0).all()
    assert "clean" not in nothing["kind"].tolist()


def _head(shape=(96, 96, 48), spacing=(2.0, 2.0, 3.0)):
    """An ellipsoidal 'head' with smooth inner structure, on a grid of ``spacing`` mm."""
    import nibabel as nib

    grids = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing)],
                        indexing="ij")
    r = np.sqrt((grids[0] / 70) ** 2 + (grids[1] / 85) ** 2 + (grids[2] / 60) ** 2)
    data = np.where(r < 1, 1.0 + 0.3 * np.cos(grids[0] / 9.0) * np.cos(grids[1] / 11.0), 0.0)
    return nib.Nifti1Image(data.astype(np.float32), np.diag([*spacing, 1.0])), grids


def _stripes(img, grids, period_mm, amplitude=0.3):
    """``img`` plus stripes of ``period_mm`` along x inside the head (an artifact at one
    spatial frequency)."""
    import nibabel as nib

    data = np.asarray(img.dataobj)
    wave = amplitude * np.cos(2 * np.pi * grids[0] / period_mm)
    return nib.Nifti1Image((data + wave * (data > 0)).astype(np.float32), img.affine)


def test_visible_difference_keeps_what_the_grid_resolves():
    """An artifact above the coarse grid's Nyquist limit (period 5 mm; 4 mm voxels resolve
    8 mm and longer) is visible at 2 mm and gone at 4 x 4 x 6 mm; one of period 40 mm stays."""
    head, grids = _head()
    assert dg.visible_difference(head, head) == 0.0
    assert dg.visible_difference(head, head, (64, 64, 32), (4.0, 4.0, 6.0)) == 0.0
    fine = _stripes(head, grids, 5.0)
    coarse = _stripes(head, grids, 40.0)
    native_fine = dg.visible_difference(head, fine)
    native_coarse = dg.visible_difference(head, coarse)
    assert native_fine > 0.2 and native_coarse > 0.2
    at_grid_fine = dg.visible_difference(head, fine, (64, 64, 32), (4.0, 4.0, 6.0))
    at_grid_coarse = dg.visible_difference(head, coarse, (64, 64, 32), (4.0, 4.0, 6.0))
    assert at_grid_fine < 0.1 * native_fine  # anti-aliasing removed it
    assert at_grid_coarse > 0.5 * native_coarse  # it reaches the network
    with pytest.raises(ValueError, match="differ in shape"):
        dg.visible_difference(head, _head(shape=(90, 96, 48))[0])


def test_checkout_file_finds_committed_measurements(tmp_path, monkeypatch):
    """A chapter finds the committed measurements from book/ or from elsewhere (nbval runs a
    copy of the chapter in a temporary folder); a missing file is None, not an error."""
    from mriqc_nb.paths import checkout_file

    monkeypatch.chdir(tmp_path)
    found = checkout_file("experiments", "visibility.tsv")
    assert found is not None and found.name == "visibility.tsv" and found.is_file()
    assert checkout_file("experiments", "no-such-file.tsv") is None
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "x.tsv").write_text("a\n")
    monkeypatch.chdir(tmp_path / "experiments")  # as a chapter runs in book/
    assert checkout_file("experiments", "x.tsv") == tmp_path / "experiments" / "x.tsv"


def test_sharpness_falls_with_smoothing_and_rises_with_noise():
    from scipy import ndimage

    rng = np.random.default_rng(0)
    x = ndimage.gaussian_filter(rng.standard_normal((32, 32, 16)), 1.0)
    x = _zscore(x.astype(np.float32))
    mask = np.ones(x.shape, dtype=bool)
    base = dg.sharpness(x, mask)
    assert dg.sharpness(ndimage.gaussian_filter(x, 1.0), mask) < 0.5 * base
    assert dg.sharpness(x + 0.5 * rng.standard_normal(x.shape), mask) > base
    assert dg.sharpness(np.full((8, 8, 8), 3.0), np.ones((8, 8, 8), bool)) == 0.0
    assert dg.sharpness(x, mask) == pytest.approx(dg.sharpness(2 * x, mask) / 2, rel=1e-5)
