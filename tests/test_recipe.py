"""The recipe's sampler and augmentation: balanced batches, redraws, randomisation, splits."""

import json

import numpy as np
import pytest

from mriqc_nb.data.augment import balanced_batches, build_redraws, randomise, redraw_table
from mriqc_nb.data import make_table
from mriqc_nb.data.cache import materialise


@pytest.fixture(scope="module")
def table():
    return make_table("smoke")


def test_balanced_batches_have_exact_artifact_count():
    y = np.r_[np.zeros(97, int), np.ones(3, int)]
    batches = balanced_batches(y, 8, 0.25, seed=1)
    assert len(batches) == 97 // 6
    for b in batches:
        assert len(b) == 8 and y[b].sum() == 2
    # every clean row appears once per epoch, artifacts cycle through the pool
    clean = np.concatenate([b[y[b] == 0] for b in batches])
    assert len(np.unique(clean)) == len(clean)
    assert set(np.concatenate([b[y[b] == 1] for b in batches])) == {97, 98, 99}


def test_balanced_batches_deterministic_and_seeded():
    y = np.r_[np.zeros(50, int), np.ones(5, int)]
    a = balanced_batches(y, 4, 0.5, seed=3, n_batches=7)
    b = balanced_batches(y, 4, 0.5, seed=3, n_batches=7)
    c = balanced_batches(y, 4, 0.5, seed=4, n_batches=7)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not all(np.array_equal(u, v) for u, v in zip(a, c))
    with pytest.raises(ValueError):
        balanced_batches(np.zeros(5, int), 4)


def test_redraws_only_from_training_rows(table):
    rows = redraw_table(table, 3, seed=0, onto_clean=10)
    train_ids = set(table.loc[table["split"] == "train", "scan_id"])
    assert set(rows["source_id"]) <= train_ids
    assert (rows["split"] == "train").all() and (rows["label"] == "artifact").all()
    n_art = int(((table["split"] == "train") & (table["label"] == "artifact")).sum())
    assert len(rows) == 3 * n_art + 10
    assert rows["scan_id"].is_unique and not set(rows["scan_id"]) & set(table["scan_id"])


def test_a_development_set_is_drawn_on_validation_anatomy_only(table):
    dev = redraw_table(table, 0, seed=5, onto_clean=12, split="valid")
    valid = table[table["split"] == "valid"]
    assert set(dev["source_id"]) <= set(valid.loc[valid["label"] == "clean", "scan_id"])
    assert (dev["split"] == "valid").all() and len(dev) == 12
    kinds = sorted(valid.loc[valid["label"] == "artifact", "artifact_kind"].unique())
    assert len(kinds) <= 12 and sorted(dev["artifact_kind"].unique()) == kinds  # kinds cycle
    assert (dev["severity"] == "prominent").all()
    train = redraw_table(table, 0, seed=5, onto_clean=12)  # the default stays training
    assert not set(train["source_id"]) & set(dev["source_id"])


def test_redraws_keep_anatomy_and_kind_change_parameters(table):
    rows = redraw_table(table, 2, seed=0)
    src = table.set_index("scan_id")
    for r in rows.to_dict("records"):
        old, new = json.loads(src.loc[r["source_id"], "recipe"]), json.loads(r["recipe"])
        assert new["anatomy"] == old["anatomy"] and new["acquisition"] == old["acquisition"]
        assert new["artifact"]["kind"] == old["artifact"]["kind"] == r["artifact_kind"]
        assert new["artifact"]["severity"] == old["artifact"]["severity"]
        assert new["artifact"] != old["artifact"]
    again = redraw_table(table, 2, seed=0)
    assert again["recipe"].tolist() == rows["recipe"].tolist()
    assert redraw_table(table, 2, seed=1)["recipe"].tolist() != rows["recipe"].tolist()


def test_redraw_volume_differs_but_shares_anatomy(table, tmp_path):
    rows = redraw_table(table, 1, seed=0)
    row = rows[rows["artifact_kind"] == "noise"].iloc[:1]
    if row.empty:
        row = rows.iloc[:1]
    built = build_redraws(row, "smoke", tmp_path)
    new = np.load(tmp_path / built["cache_file"].iloc[0]).astype(np.float32)
    src = table.set_index("scan_id").loc[row["source_id"].iloc[0]]
    old = materialise(src, (32, 32, 32), (8.0, 8.0, 6.0))
    clean = materialise({**src.to_dict(), "recipe": json.dumps(
        {**json.loads(src["recipe"]), "artifact": None})}, (32, 32, 32), (8.0, 8.0, 6.0))
    assert not np.allclose(new, old, atol=1e-2)
    # same anatomy: the redraw is closer to its own clean scan than to another subject's
    other = materialise(table[table["label"] == "clean"].iloc[-1], (32, 32, 32), (8.0, 8.0, 6.0))
    assert np.corrcoef(new.ravel(), clean.ravel())[0, 1] > np.corrcoef(new.ravel(), other.ravel())[0, 1]
    # a second call finds the file
    assert build_redraws(row, "smoke", tmp_path)["cache_file"].tolist() == built["cache_file"].tolist()


def test_randomise_is_seeded_normalised_and_keeps_shape():
    x = np.zeros((32, 32, 16), np.float32) - 3.0
    x[8:24, 8:24, 4:12] = np.random.default_rng(0).normal(0.0, 1.0, (16, 16, 8))
    a = randomise(x, np.random.default_rng(5))
    b = randomise(x, np.random.default_rng(5))
    c = randomise(x, np.random.default_rng(6))
    assert a.shape == x.shape and a.dtype == np.float32 and np.isfinite(a).all()
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # the exact-constant background (a zero band after conform) is no longer constant
    assert np.std(a[:4, :4, :]) > 0


def test_fine_share_simulates_a_share_on_a_finer_grid(table):
    coarse = redraw_table(table, 4, seed=0)
    fine = redraw_table(table, 4, seed=0, fine_share=0.5)
    grids = [json.loads(r)["grid"] for r in fine["recipe"]]
    base = json.loads(coarse["recipe"].iloc[0])["grid"]
    n_fine = sum(g == [2 * n for n in base] for g in grids)
    assert 0 < n_fine < len(grids) and all(g in (base, [2 * n for n in base]) for g in grids)
    assert all(json.loads(r)["grid"] == base for r in coarse["recipe"])


def test_exact_pose_moves_by_whole_voxels_and_smooths_nothing():
    from mriqc_nb.data.augment import _shift_whole
    from mriqc_nb.diagnostics import sharpness

    x = np.arange(5 * 6 * 7, dtype=np.float32).reshape(5, 6, 7)
    y = _shift_whole(x, (2, -1, 0))
    assert y.shape == x.shape
    np.testing.assert_array_equal(y[2:, :-1, :], x[:-2, 1:, :])  # moved content
    np.testing.assert_array_equal(y[:2, :-1, :], np.broadcast_to(x[:1, 1:, :], (2, 5, 7)))
    np.testing.assert_array_equal(y[:, -1, :], y[:, -2, :])  # the edge repeated
    np.testing.assert_array_equal(_shift_whole(x, (0, 0, 0)), x)

    rng = np.random.default_rng(3)
    from scipy import ndimage

    head = ndimage.gaussian_filter(rng.standard_normal((32, 32, 16)), 0.7).astype(np.float32)
    head = (head - head.mean()) / head.std()
    mask = np.zeros(head.shape, bool)
    mask[6:26, 6:26, 4:12] = True
    kw = dict(gamma=(1.0, 1.0), floor_noise=0.0)
    exact = [sharpness(randomise(head, np.random.default_rng(s), pose="exact", **kw), mask)
             for s in range(6)]
    linear = [sharpness(randomise(head, np.random.default_rng(s), pose="linear", **kw), mask)
              for s in range(6)]
    # interpolation is a low-pass filter; whole-voxel shifts keep the detail
    assert np.median(linear) < 0.85 * np.median(exact)
    with pytest.raises(ValueError, match="pose"):
        randomise(head, rng, pose="cubic")
