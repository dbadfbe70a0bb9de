"""Predictions on a split: shapes, caching, agreement of the kinds."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mriqc_nb import data
from mriqc_nb import predict as evaluate
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
    summary, samples = evaluate.predict_split(model, table, "valid", kind="mc", T=6, seed=1,
                                              chunk=3, cache_dir=tmp_path)
    n = int((table.split == "valid").sum())
    assert samples.shape == (6, n, 2) and len(summary) == n
    assert set(summary.label) <= {0, 1} and summary.label.sum() == (table[table.split == "valid"].label == "artifact").sum()
    np.testing.assert_allclose(summary.p_artifact, samples[..., 1].mean(0), rtol=1e-6)
    cached = list(tmp_path.glob("valid_mc_T6_seed1.npz"))
    assert cached
    # a second call reads the cache: same samples even if the model changed meanwhile
    model.get_layer("head").get_layer("logits").kernel.assign(np.zeros((128, 2), np.float32) + 1.0)
    _, again = evaluate.predict_split(model, table, "valid", kind="mc", T=6, seed=1, chunk=3, cache_dir=tmp_path)
    np.testing.assert_array_equal(samples, again)


def test_flips_and_deterministic_agree(setup):
    table, model = setup
    flips = evaluate.predict_split(model, table, "test", kind="flips")[1]
    det = evaluate.predict_split(model, table, "test", kind="deterministic")[1]
    assert flips.shape[0] == 8 and det.shape[0] == 1
    np.testing.assert_allclose(flips[0], det[0], atol=1e-5)  # flip () is the identity
    both = evaluate.predict_split(model, table, "test", kind="mc_flips", T=3)[1]
    assert both.shape[0] == 24


def test_unknown_kind_and_empty_split(setup):
    table, model = setup
    with pytest.raises(ValueError, match="unknown prediction kind"):
        evaluate.predict_split(model, table, "test", kind="bogus")
    with pytest.raises(ValueError, match="no scans"):
        evaluate.predict_split(model, table, "nonexistent")
