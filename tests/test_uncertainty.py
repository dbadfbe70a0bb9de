"""Uncertainty measures, test-time flips and the samples-vs-AUC analysis."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mriqc_nb import uncertainty as U


def _binary(p_artifact):
    """(T, N) artifact probabilities -> (T, N, 2)."""
    p = np.asarray(p_artifact, dtype=float)
    return np.stack([1 - p, p], axis=-1)


# ---------------------------------------------------------------------------- measures
def test_entropy_bits_and_safe_at_zero():
    with np.errstate(all="raise"):
        h = U.entropy([[0.5, 0.5], [0.0, 1.0], [1.0, 0.0], [0.25, 0.75]])
    assert h[0] == pytest.approx(1.0)
    assert h[1] == 0.0 and h[2] == 0.0
    assert h[3] == pytest.approx(-(0.25 * np.log2(0.25) + 0.75 * np.log2(0.75)))
    assert U.entropy(np.full(4, 0.25)) == pytest.approx(2.0)  # bits, not nats


def test_mutual_information_zero_when_samples_agree_positive_when_they_disagree():
    agree = _binary([[0.5, 0.9], [0.5, 0.9], [0.5, 0.9]])           # (T=3, N=2)
    disagree = _binary([[0.9, 0.0], [0.1, 1.0]])                     # means 0.5 and 0.5
    assert np.all(U.mutual_information(agree) == 0.0)
    mi = U.mutual_information(disagree)
    # same mean as agree[:, 0] (0.5), so same predictive entropy, but MI > 0
    assert U.predictive_entropy(disagree) == pytest.approx([1.0, 1.0])
    assert mi[0] == pytest.approx(1 - U.entropy([0.1, 0.9]))
    assert mi[1] == pytest.approx(1.0)  # certain but contradictory samples: all epistemic


def test_predictive_entropy_bounds_expected_entropy():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet([0.5, 0.5], size=(30, 200))                # (T, N, C)
    pe, ee, mi = U.predictive_entropy(probs), U.expected_entropy(probs), U.mutual_information(probs)
    assert pe.shape == ee.shape == mi.shape == (200,)
    assert np.all(pe >= ee - 1e-12) and np.all(mi >= 0)
    assert np.allclose(mi, pe - ee, atol=1e-12)


def test_variance_zero_for_identical_samples_and_matches_numpy():
    same = _binary(np.tile([[0.2, 0.7, 1.0]], (5, 1)))
    assert np.all(U.sample_variance(same) == 0.0)
    two = _binary([[0.2], [0.6]])
    assert U.sample_variance(two)[0] == pytest.approx(np.var([0.2, 0.6]))


def test_summarise_columns_and_values():
    probs = _binary([[0.9, 0.1], [0.7, 0.2], [0.2, 0.3], [0.8, 0.0]])  # T=4, N=2
    df = U.summarise(probs, index=["a", "b"])
    assert list(df.index) == ["a", "b"]
    for col in ("p_artifact", "p_clean", "variance", "entropy", "mutual_information",
                "expected_entropy", "std_p_artifact", "vote_share"):
        assert col in df.columns
    assert df.loc["a", "p_artifact"] == pytest.approx(0.65)
    assert df.loc["a", "p_clean"] == pytest.approx(0.35)
    assert df.loc["a", "vote_share"] == pytest.approx(0.75)
    assert df.loc["b", "vote_share"] == 0.0
    assert df.loc["a", "std_p_artifact"] == pytest.approx(np.std([0.9, 0.7, 0.2, 0.8]))
    # a single deterministic prediction (N, C) counts as T = 1: no epistemic uncertainty
    one = U.summarise(probs[0])
    assert np.all(one["mutual_information"] == 0) and np.all(one["variance"] == 0)


# ---------------------------------------------------------------------------- flips
def test_flips_are_the_8_distinct_axis_combinations():
    assert len(U.FLIPS) == 8
    assert {frozenset(f) for f in U.FLIPS} == {
        frozenset(c) for r in range(4) for c in itertools.combinations(range(3), r)}


def test_flipping_twice_is_identity_and_once_is_not():
    x = np.random.default_rng(1).normal(size=(2, 4, 5, 3, 1))
    for f in U.FLIPS:
        assert np.array_equal(U.flip_volume(U.flip_volume(x, f), f), x)
        assert np.array_equal(U.flip_volume(x, f), x) == (f == ())
    # spatial axis 0 is array axis 1 of a batch
    assert np.array_equal(U.flip_volume(x, (0,)), x[:, ::-1])
    assert np.array_equal(U.flip_volume(x[0, ..., 0], (2,)), x[0, :, :, ::-1, 0])


def _ramp_batch():
    """Two volumes whose intensity rises along x (different slopes), shape (2, 6, 4, 3, 1)."""
    ramp = np.arange(6.0)[:, None, None] * np.ones((6, 4, 3))
    return np.stack([ramp, 0.5 * ramp])[..., None]


def _to_probs(s):
    p = 1 / (1 + np.exp(-s))
    return np.stack([1 - p, p], axis=-1)


def test_predict_flips_invariant_model_gives_identical_rows():
    x = _ramp_batch()
    out = U.predict_flips(lambda b: _to_probs(b.mean(axis=(1, 2, 3, 4))), x)
    assert out.shape == (8, 2, 2)
    assert np.allclose(out, out[0])
    assert np.all(U.summarise(out)["mutual_information"] < 1e-12)


def test_predict_flips_sensitive_model_gives_distinct_rows():
    x = _ramp_batch()
    x_gradient = lambda b: _to_probs((b[:, -1] - b[:, 0]).mean(axis=(1, 2, 3)))  # noqa: E731
    out = U.predict_flips(x_gradient, x)
    flips_x = np.array([0 in f for f in U.FLIPS])
    assert np.allclose(out[flips_x], out[flips_x][0])
    assert np.allclose(out[~flips_x], out[~flips_x][0])
    assert not np.allclose(out[flips_x][0], out[~flips_x][0])
    assert np.all(U.summarise(out)["mutual_information"] > 0.1)


def test_predict_mc_flips_shape_and_flip_major_order():
    x = _ramp_batch()
    base = lambda b: _to_probs((b[:, -1] - b[:, 0]).mean(axis=(1, 2, 3)))  # noqa: E731
    mc = lambda b, T: np.stack([base(b)] * T)  # noqa: E731
    out = U.predict_mc_flips(mc, x, T=3)
    assert out.shape == (24, 2, 2)
    for k, f in enumerate(U.FLIPS):
        assert np.allclose(out[3 * k:3 * k + 3], base(U.flip_volume(x, f)))


# ---------------------------------------------------------------------------- how many samples
def test_auc_vs_samples_spread_shrinks_with_T():
    rng = np.random.default_rng(0)
    n, t_max = 200, 60
    y = np.r_[np.zeros(n // 2), np.ones(n // 2)].astype(int)
    mu = np.where(y == 1, 0.7, -0.7) + rng.normal(0, 0.5, n)            # informative mean logit
    probs = _to_probs(mu[None] + rng.normal(0, 2.5, (t_max, n)))        # very noisy samples
    df = U.auc_vs_samples(probs, y, sample_counts=(1, 5, 20, 60, 100), n_repeats=20)
    assert list(df["T"]) == [1, 5, 20, 60]                              # 100 > available: skipped
    std = df.set_index("T")["auc_std"]
    assert std[1] > std[5] > std[20] > std[60]
    assert std[60] < 1e-12                      # all samples: every repeat is the same mean
    assert df["auc_mean"].iloc[-1] > df["auc_mean"].iloc[0]
