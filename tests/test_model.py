"""Networks, trunk/head split, weights on disk and Monte Carlo dropout (small grids; the 256
grid is only built)."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from mriqc_nb.model import networks as M  # noqa: E402
from mriqc_nb.model.losses import make_loss  # noqa: E402
from mriqc_nb.model.schedules import TriangularCyclicalLR  # noqa: E402
from mriqc_nb.predict import predict_mc_fast, predict_mc_naive, predict_samples  # noqa: E402

SMALL = (32, 32, 32, 1)


def _randomise_bn(model, seed=0):
    """Give every BatchNorm non-trivial moving statistics (so inference != training mode)."""
    rng = np.random.default_rng(seed)
    for part in (M.get_trunk(model), M.get_head(model)):
        for layer in part.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                n = layer.moving_mean.shape[0]
                layer.moving_mean.assign(rng.normal(0, 0.5, n).astype("float32"))
                layer.moving_variance.assign(rng.uniform(0.5, 2.0, n).astype("float32"))


def _bn_stats(model):
    return [w.numpy() for part in (M.get_trunk(model), M.get_head(model))
            for layer in part.layers if isinstance(layer, keras.layers.BatchNormalization)
            for w in (layer.moving_mean, layer.moving_variance)]


@pytest.fixture(scope="module")
def volumes():
    return np.random.default_rng(1).normal(size=(3, *SMALL)).astype("float32")


@pytest.fixture(scope="module")
def small_model():
    m = M.build_nn008(SMALL)
    _randomise_bn(m)
    return m


def test_nn008_parameter_count_on_paper_grid():
    m = M.build_nn008((256, 256, 64, 1))
    assert m.count_params() == 2_983_258
    assert sum(int(np.prod(w.shape)) for w in m.trainable_weights) == 2_982_010
    assert tuple(M.get_trunk(m).output.shape[1:]) == (8, 8, 2, 128)
    assert tuple(m.output.shape) == (None, 2)


def test_alexnet3d_shares_grid_rule_and_head():
    a = M.build_alexnet3d((256, 256, 64, 1))
    assert tuple(M.get_trunk(a).output.shape[1:]) == (8, 8, 2, 128)
    n = M.build_nn008((256, 256, 64, 1))
    assert M.get_head(a).count_params() == M.get_head(n).count_params()
    conv = [layer for layer in M.get_trunk(a).layers if isinstance(layer, keras.layers.Conv3D)]
    assert len(conv) == 5 and conv[0].kernel_size == (7, 7, 7) and conv[0].strides == (2, 2, 2)


@pytest.mark.parametrize("build", [M.build_nn008, M.build_alexnet3d])
def test_bad_grid_raises(build):
    with pytest.raises(ValueError, match=r"\(100, 64, 32, 1\).*32"):
        build((100, 64, 32, 1))
    with pytest.raises(ValueError):
        build((64, 64, 32))


@pytest.mark.parametrize("build", [M.build_nn008, M.build_alexnet3d])
def test_every_dropout_is_in_the_head(build):
    m = build((64, 64, 32, 1))
    trunk_layers = M.get_trunk(m).layers
    assert not any(isinstance(la, keras.layers.Dropout) for la in trunk_layers)
    assert sum(isinstance(la, keras.layers.Dropout) for la in M.get_head(m).layers) == 2
    df = M.describe(m)
    assert list(df.columns) == ["layer", "type", "output_shape", "parameters", "part", "stochastic"]
    assert set(df.loc[df.stochastic, "part"]) == {"head"} and df.stochastic.sum() == 2
    assert df.parameters.sum() == m.count_params()
    assert df.iloc[-1].output_shape == (2,)


def test_trunk_then_head_equals_full_model(small_model, volumes):
    full = np.asarray(small_model(volumes, training=False))
    parts = M.get_head(small_model)(M.get_trunk(small_model)(volumes, training=False),
                                    training=False)
    np.testing.assert_allclose(np.asarray(parts), full, atol=1e-6)
    np.testing.assert_allclose(full.sum(axis=1), 1.0, atol=1e-5)


def test_mc_without_dropout_equals_deterministic_output(volumes):
    m = M.build_nn008(SMALL, dropout=(0.0, 0.0))
    _randomise_bn(m, seed=2)
    det = m.predict_on_batch(volumes)
    fast = predict_mc_fast(m, volumes, T=4, seed=0, batch_size=2)
    naive = predict_mc_naive(m, volumes, T=4, seed=0, batch_size=2)
    assert fast.shape == naive.shape == (4, 3, 2)
    np.testing.assert_allclose(fast, naive, atol=1e-6)
    np.testing.assert_allclose(fast, np.broadcast_to(det, fast.shape), atol=1e-6)


def test_fast_and_naive_mc_agree_in_distribution(small_model, volumes):
    T = 200
    fast = predict_mc_fast(small_model, volumes, T=T, seed=3)
    naive = predict_mc_naive(small_model, volumes, T=T, seed=4)
    assert fast.shape == naive.shape == (T, 3, 2)
    p_fast, p_naive = fast[..., 1], naive[..., 1]
    assert np.all(p_fast.std(axis=0) > 1e-3) and np.all(p_naive.std(axis=0) > 1e-3)
    stderr = np.sqrt(p_fast.var(axis=0, ddof=1) / T + p_naive.var(axis=0, ddof=1) / T)
    assert np.all(np.abs(p_fast.mean(axis=0) - p_naive.mean(axis=0)) < 4 * stderr)
    # same seed, same samples
    np.testing.assert_array_equal(fast, predict_mc_fast(small_model, volumes, T=T, seed=3))


def test_fast_mc_of_a_scan_does_not_depend_on_its_batch(small_model, volumes):
    """Every scan sees the same T masks: alone, in another batch or order, the same samples."""
    T = 5
    together = predict_mc_fast(small_model, volumes, T=T, seed=2, batch_size=3)
    assert together.shape == (T, 3, 2)
    alone = predict_mc_fast(small_model, volumes[2:], T=T, seed=2, batch_size=1)
    np.testing.assert_allclose(alone[:, 0], together[:, 2], atol=1e-5)
    reversed_ = predict_mc_fast(small_model, volumes[::-1], T=T, seed=2, batch_size=2)
    np.testing.assert_allclose(reversed_[:, ::-1], together, atol=1e-5)
    # the T samples of one scan still differ, and another seed gives other masks
    assert np.all(together[..., 1].std(axis=0) > 1e-4)
    other = predict_mc_fast(small_model, volumes, T=T, seed=3, batch_size=3)
    assert not np.allclose(other, together, atol=1e-5)
    np.testing.assert_array_equal(predict_samples(small_model, volumes, "mc", T, seed=2), together)


def _mc_fast_reference(model, x, T, seed):
    """The sampler as it was before the masks were frozen: a fresh MC twin of the head whose
    dropout generators restart from ``seed`` before each scan (eager calls, one scan at a time)."""
    trunk, head = M.get_trunk(model), M.make_mc_head(M.get_head(model), seed)
    states = [v for v in head.variables if v.path.endswith("seed_generator_state")]
    start = [np.array(v.numpy()) for v in states]
    out = []
    for f in np.asarray(trunk(x, training=False)):
        for v, s in zip(states, start):
            v.assign(s)
        out.append(np.asarray(head(np.repeat(f[None], T, axis=0), training=False)))
    return np.stack(out, axis=1)


@pytest.mark.parametrize("build", [M.build_nn008, M.build_alexnet3d])
def test_masked_head_gives_the_samples_of_a_fresh_mc_twin(build, volumes):
    """The frozen masks are those a fresh MC twin draws: predict_mc_fast (compiled trunk and
    frozen-mask head) gives the reference samples, whatever the batch, and keeps no state."""
    m = build(SMALL)
    _randomise_bn(m, seed=4)
    T = 6
    ref = _mc_fast_reference(m, volumes, T, seed=5)
    assert np.all(ref[..., 1].std(axis=0) > 1e-4)  # the masks do drop
    for batch_size in (1, 2, 3):
        np.testing.assert_allclose(predict_mc_fast(m, volumes, T=T, seed=5, batch_size=batch_size),
                                   ref, atol=1e-6)
    head = M.make_masked_head(M.get_head(m), T, seed=5)
    f = np.repeat(np.asarray(M.get_trunk(m)(volumes[:1], training=False)), T, axis=0)
    first = np.asarray(head(f, training=False))
    np.testing.assert_array_equal(np.asarray(head(f, training=False)), first)  # no state
    np.testing.assert_allclose(first, ref[:, 0], atol=1e-6)
    # compiled calls are kept per (model, T, seed) and never retrace
    predict_mc_fast(m, volumes, T=T, seed=5, batch_size=2)
    from mriqc_nb import predict

    calls = predict._COMPILED[m]
    assert set(calls) == {("trunk",), ("mc_head", T, 5)}
    if hasattr(calls[("trunk",)], "experimental_get_tracing_count"):
        assert calls[("trunk",)].experimental_get_tracing_count() == 1
        assert calls[("mc_head", T, 5)].experimental_get_tracing_count() == 1


def test_fast_mc_with_weights_changed_between_calls(volumes):
    """The compiled calls read the model's current weights (a chapter predicts between rounds
    of training)."""
    m = M.build_nn008(SMALL)
    before = predict_mc_fast(m, volumes, T=3, seed=0)
    _randomise_bn(m, seed=9)
    after = predict_mc_fast(m, volumes, T=3, seed=0)
    assert not np.allclose(before, after, atol=1e-4)
    np.testing.assert_allclose(after, _mc_fast_reference(m, volumes, 3, seed=0), atol=1e-6)


def test_weights_round_trip_through_one_file(small_model, volumes, tmp_path):
    path = M.save_weights(small_model, tmp_path / "w.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]  # no temporary file left
    again = M.load_weights(M.build("nn008", SMALL), path)
    np.testing.assert_array_equal(again.predict_on_batch(volumes),
                                  small_model.predict_on_batch(volumes))
    with pytest.raises(ValueError, match="unknown network"):
        M.build("resnet", SMALL)
    with pytest.raises(ValueError):  # another network's weights do not fit
        M.load_weights(M.build("alexnet3d", SMALL), path)


def test_mc_keeps_batchnorm_in_inference_mode(small_model, volumes):
    before = _bn_stats(small_model)
    det = small_model.predict_on_batch(volumes)
    predict_mc_fast(small_model, volumes, T=3, seed=0)
    predict_mc_naive(small_model, volumes, T=3, seed=0)
    for a, b in zip(before, _bn_stats(small_model)):
        np.testing.assert_array_equal(a, b)
    # the trained model is untouched: plain Dropout layers, deterministic inference
    assert not any(isinstance(la, M.MCDropout) for la in M.get_head(small_model).layers)
    np.testing.assert_array_equal(small_model.predict_on_batch(volumes), det)


def test_mixed_precision_output_is_float32():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        m = M.build_nn008(SMALL)
        assert M.get_trunk(m).output.dtype == "float16"
        assert m.output.dtype == "float32"
        assert M.make_mc_head(M.get_head(m)).output.dtype == "float32"
    finally:
        keras.config.set_dtype_policy(previous)
    assert keras.config.dtype_policy().name == "float32"


def test_smoke_fit_on_separable_toy_set():
    rng = np.random.default_rng(0)
    n = 16
    x = rng.normal(0, 1, size=(n, *SMALL)).astype("float32")
    y = np.arange(n) % 2
    for i in np.flatnonzero(y):  # class 1: a bright 12^3 cube at a random place
        a, b, c = rng.integers(0, 20, size=3)
        x[i, a:a + 12, b:b + 12, c:c + 12] += 2.0
    onehot = np.eye(2, dtype="float32")[y]
    keras.utils.set_random_seed(0)
    m = M.build_nn008(SMALL)
    schedule = TriangularCyclicalLR(4, base_lr=1e-4, max_lr=3e-3, epochs=8, n_shrink=2)
    loss = make_loss({"name": "weighted_ce", "class_counts": [8, 8]})
    m.compile(optimizer=keras.optimizers.Nadam(learning_rate=schedule), loss=loss)
    hist = m.fit(x, onehot, batch_size=4, epochs=8, shuffle=True, verbose=0).history["loss"]
    assert np.mean(hist[-2:]) < 0.6 * hist[0], hist  # batch-4 BatchNorm: noisy epochs
    # class weights can change in the compiled model (data-ramping), without recompiling
    before = m.evaluate(x, onehot, batch_size=8, verbose=0)
    loss.set_class_weights([3.0, 3.0])
    np.testing.assert_allclose(m.evaluate(x, onehot, batch_size=8, verbose=0), 3 * before,
                               rtol=1e-4)
