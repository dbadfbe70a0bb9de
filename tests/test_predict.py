"""Predictions on a split: shapes, caching, agreement of the methods."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mriqc_nb import data
from mriqc_nb import predict
from mriqc_nb.profiles import get_profile

TINY = replace(get_profile("smoke"), name="tiny-eval", n_scans=40, n_subtle=2, clean_share=0.75, seed=5)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    import keras

    from mriqc_nb.model.networks import build_nn008

    out = tmp_path_factory.mktemp("db")
    table = data.build_database(TINY, out, workers=1, progress=False)
    keras.utils.set_random_seed(0)
    return table, build_nn008((*TINY.grid, 1))


def test_mc_split_table_and_cache(setup, tmp_path):
    table, model = setup
    summary, samples = predict.predict_split(model, table, "valid", method="mc", T=6, seed=1,
                                              chunk=3, cache_dir=tmp_path)
    n = int((table.split == "valid").sum())
    assert samples.shape == (6, n, 2) and len(summary) == n
    assert "label" not in summary and set(summary.y) <= {0, 1}
    assert summary.y.sum() == (table[table.split == "valid"].label == "artifact").sum()
    np.testing.assert_allclose(summary.p_artifact, samples[..., 1].mean(0), rtol=1e-6)
    cached = list(tmp_path.glob("valid_mc_T6_seed1.npz"))
    assert cached
    # a second call reads the cache: same samples even if the model changed meanwhile
    model.get_layer("head").get_layer("logits").kernel.assign(np.zeros((128, 2), np.float32) + 1.0)
    _, again = predict.predict_split(model, table, "valid", method="mc", T=6, seed=1, chunk=3, cache_dir=tmp_path)
    np.testing.assert_array_equal(samples, again)


def test_mc_split_does_not_depend_on_the_chunk(setup):
    import keras

    from mriqc_nb.model.networks import build_nn008

    table, _ = setup
    keras.utils.set_random_seed(1)
    model = build_nn008((*TINY.grid, 1))  # untouched weights: samples that vary
    _, by_3 = predict.predict_split(model, table, "valid", method="mc", T=4, seed=2, chunk=3)
    _, by_64 = predict.predict_split(model, table, "valid", method="mc", T=4, seed=2, chunk=64)
    assert by_3[..., 1].std(axis=0).min() > 0
    np.testing.assert_allclose(by_3, by_64, atol=1e-5)


def test_flips_and_deterministic_agree(setup):
    table, model = setup
    flips = predict.predict_split(model, table, "test", method="flips")[1]
    det = predict.predict_split(model, table, "test", method="deterministic")[1]
    assert flips.shape[0] == 8 and det.shape[0] == 1
    np.testing.assert_allclose(flips[0], det[0], atol=1e-5)  # flip () is the identity
    both = predict.predict_split(model, table, "test", method="mc_flips", T=3)[1]
    assert both.shape[0] == 24


def test_mc_flips_gives_the_flips_from_the_same_trunk_passes(setup, tmp_path):
    # chapter 7 asks for both: "mc_flips" caches "flips" beside it (the head with dropout
    # off on the same trunk features), equal to the whole network on each flip
    import keras

    from mriqc_nb.model.networks import build_nn008

    table, _ = setup
    keras.utils.set_random_seed(3)
    model = build_nn008((*TINY.grid, 1))
    both = predict.predict_split(model, table, "test", method="mc_flips", T=3, seed=4,
                                 chunk=5, cache_dir=tmp_path)[1]
    assert (tmp_path / "test_flips_seed4.npz").exists()
    alone = predict.predict_split(model, table, "test", method="mc_flips", T=3, seed=4,
                                  chunk=5)[1]  # no cache: the flips are not computed
    np.testing.assert_allclose(both, alone, atol=1e-5)
    cached = predict.predict_split(model, table, "test", method="flips", cache_dir=tmp_path)[1]
    whole = predict.predict_split(model, table, "test", method="flips")[1]  # 8 network passes
    assert cached.shape == whole.shape == (8, int((table.split == "test").sum()), 2)
    assert whole[..., 1].std(axis=0).max() > 1e-4  # the flips do differ
    np.testing.assert_allclose(cached, whole, atol=1e-5)
    # a "flips" cache already there is kept, not rewritten
    before = (tmp_path / "test_flips_seed4.npz").stat().st_mtime_ns
    predict.predict_split(model, table, "test", method="mc_flips", T=2, seed=4,
                          cache_dir=tmp_path)
    assert (tmp_path / "test_flips_seed4.npz").stat().st_mtime_ns == before


def test_unknown_method_and_empty_split(setup):
    table, model = setup
    with pytest.raises(ValueError, match="unknown prediction method"):
        predict.predict_split(model, table, "test", method="bogus")
    with pytest.raises(ValueError, match="no scans"):
        predict.predict_split(model, table, "nonexistent")


def test_deterministic_predictions_do_not_retrace(setup, caplog):
    """Calls with changing input counts (as after every training round) log no retracing
    warning, which would otherwise land in the book's pages, and match a call per scan."""
    import logging

    table, model = setup
    x = np.random.default_rng(0).normal(size=(7, *TINY.grid, 1)).astype("float32")
    with caplog.at_level(logging.WARNING):
        outs = [predict.predict_samples(model, x[:n], "deterministic", batch_size=4)
                for n in (7, 5, 3, 6, 1, 7)]
    assert "retracing" not in caplog.text
    assert outs[0].shape == (1, 7, 2)
    one_by_one = np.concatenate([predict.predict_samples(model, x[i:i + 1], "deterministic")
                                 for i in range(7)], axis=1)
    np.testing.assert_allclose(outs[0], one_by_one, atol=1e-5)
    assert predict.predict_samples(model, x[:0], "deterministic").shape == (1, 0, 2)
