"""Losses (weighted CE, focal, make_loss) and the learning-rate schedule / range test."""

from __future__ import annotations

import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from mriqc_nb.model import losses as L  # noqa: E402
from mriqc_nb.model.schedules import TriangularCyclicalLR, lr_range_test, suggest_lr_range  # noqa: E402


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    p = rng.dirichlet([1.0, 1.0], size=32).astype("float32")
    y = np.eye(2, dtype="float32")[rng.integers(0, 2, size=32)]
    return y, p


def _ce_per_sample(y, p):
    return -np.sum(y * np.log(p), axis=1)


# ------------------------------------------------------------------------------ losses


def test_class_counts_give_the_weights_of_labels_class_weights():
    from mriqc_nb.labels import class_weights

    np.testing.assert_array_equal(class_weights([98, 2]), [1.0, 49.0])
    assert class_weights({"clean": 98, "artifact": 2}) == {"clean": 1.0, "artifact": 49.0}
    loss = L.make_loss({"name": "weighted_ce", "class_counts": [98, 2]})
    np.testing.assert_array_equal(loss.class_weights, [1.0, 49.0])
    with pytest.raises(ValueError):  # a class without scans cannot be weighted
        L.make_loss({"name": "weighted_ce", "class_counts": [10, 0]})


def test_focal_with_gamma_zero_is_cross_entropy(batch):
    y, p = batch
    ce = float(keras.losses.CategoricalCrossentropy()(y, p))
    np.testing.assert_allclose(float(L.focal_loss(gamma=0.0)(y, p)), ce, rtol=1e-5)
    np.testing.assert_allclose(ce, _ce_per_sample(y, p).mean(), rtol=1e-5)
    # gamma > 0 down-weights every scan; a per-class alpha scales each class
    assert float(L.focal_loss(gamma=2.0)(y, p)) < ce
    one = np.array([[0.0, 1.0]], "float32"), np.array([[0.3, 0.7]], "float32")
    np.testing.assert_allclose(float(L.focal_loss(0.0, alpha=[0.5, 0.25])(*one)),
                               0.25 * -np.log(0.7), rtol=1e-5)


def test_weighted_ce(batch):
    y, p = batch
    ce = _ce_per_sample(y, p)
    np.testing.assert_allclose(float(L.weighted_categorical_crossentropy([1, 1])(y, p)),
                               ce.mean(), rtol=1e-5)
    w = np.array([1.0, 49.0])
    expected = (ce * w[y.argmax(1)]).mean()
    np.testing.assert_allclose(float(L.weighted_categorical_crossentropy(w)(y, p)), expected,
                               rtol=1e-5)


def test_make_loss_configs(batch):
    y, p = batch
    configs = [{"name": "ce"}, {"name": "weighted_ce", "class_weights": [1.0, 49.0]},
               {"name": "weighted_ce", "class_counts": [98, 2]},
               {"name": "focal", "gamma": 2, "alpha": 0.02}, {"name": "focal"}]
    values = [float(L.make_loss(json.loads(json.dumps(c)))(y, p)) for c in configs]
    assert values[1] == pytest.approx(values[2], rel=1e-6)  # counts -> the same weights
    assert values[0] == pytest.approx(_ce_per_sample(y, p).mean(), rel=1e-5)
    assert values[3] == pytest.approx(0.02 * values[4], rel=1e-5)  # scalar alpha only scales
    with pytest.raises(ValueError, match="unknown loss"):
        L.make_loss({"name": "mse"})
    with pytest.raises(ValueError):
        L.make_loss({"name": "focal", "gama": 2})
    with pytest.raises(ValueError):
        L.make_loss({"name": "weighted_ce"})


def test_weighted_ce_config_round_trip(batch):
    y, p = batch
    loss = L.make_loss({"name": "weighted_ce", "class_weights": [1.0, 4.0]})
    loss.set_class_weights([2.0, 5.0])
    again = keras.losses.deserialize(json.loads(json.dumps(keras.losses.serialize(loss))))
    np.testing.assert_array_equal(again.class_weights, [2.0, 5.0])
    assert float(again(y, p)) == pytest.approx(float(loss(y, p)), rel=1e-6)


# ------------------------------------------------------------------------------ schedule


def _lr(schedule, steps):
    return np.asarray(keras.ops.convert_to_numpy(schedule(np.asarray(steps))), dtype="float64")


def test_triangular_schedule_values():
    base, top, spe, epochs, n_shrink = 1e-6, 1e-3, 10, 12, 10
    s = TriangularCyclicalLR(spe, base, top, epochs=epochs, n_shrink=n_shrink)
    lr = _lr(s, np.arange(spe * epochs))
    np.testing.assert_allclose(lr[[0, 10, 20]], base, rtol=1e-5)   # each epoch starts at base
    np.testing.assert_allclose(lr[[5, 15]], top, rtol=1e-5)        # mid-epoch: max
    np.testing.assert_allclose(lr[9], base + (top - base) * 0.2, rtol=1e-5)  # falling edge
    assert np.all(np.diff(lr[:6]) > 0) and np.all(np.diff(lr[5:10]) < 0)
    peaks = lr.reshape(epochs, spe).max(axis=1)
    np.testing.assert_allclose(peaks, s.peak_lr(np.arange(epochs)), rtol=1e-5)
    assert peaks[1] == pytest.approx(top, rel=1e-5)
    shrink = peaks[epochs - n_shrink:]
    assert shrink[0] < top and np.all(np.diff(shrink) < 0) and shrink[-1] > base
    expected = base * (top / base) ** ((epochs - np.arange(epochs - n_shrink, epochs))
                                       / (n_shrink + 1))
    np.testing.assert_allclose(shrink, expected, rtol=1e-5)


def test_schedule_with_growing_epochs_and_beyond_the_end():
    s = TriangularCyclicalLR([4, 6, 10], 1e-6, 1e-3)
    lr = _lr(s, np.arange(30))
    np.testing.assert_allclose(lr[[0, 4, 10, 20]], 1e-6, rtol=1e-5)  # epoch starts
    np.testing.assert_allclose(lr[[2, 7, 15, 25]], 1e-3, rtol=1e-5)  # epoch middles


def test_schedule_config_round_trip():
    s = TriangularCyclicalLR([3, 5], 2e-6, 1e-3, epochs=4, n_shrink=2)
    cfg = json.loads(json.dumps(keras.optimizers.schedules.serialize(s)))
    again = keras.optimizers.schedules.deserialize(cfg)
    assert isinstance(again, TriangularCyclicalLR) and again.get_config() == s.get_config()
    np.testing.assert_allclose(_lr(again, np.arange(20)), _lr(s, np.arange(20)))
    opt = keras.optimizers.Nadam.from_config(keras.optimizers.Nadam(learning_rate=s).get_config())
    assert isinstance(opt._learning_rate, TriangularCyclicalLR)


# ------------------------------------------------------------------------------ range test


def test_lr_range_test_restores_model_and_sweeps_log_lr():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = np.eye(2, dtype="float32")[(x[:, 0] > 0).astype(int)]
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")])
    w0 = [w.copy() for w in model.get_weights()]
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    df = lr_range_test(model, batches, min_lr=1e-4, max_lr=1e-1, steps=12, diverge_factor=1e9)
    assert list(df.columns) == ["step", "lr", "loss", "smoothed_loss"] and len(df) == 12
    np.testing.assert_allclose(df.lr.iloc[[0, -1]], [1e-4, 1e-1], rtol=1e-6)
    assert np.allclose(np.diff(np.log(df.lr)), np.log(1000) / 11)
    assert np.all(np.isfinite(df.loss))
    for a, b in zip(w0, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_suggest_lr_range_on_a_known_curve():
    lr = np.logspace(-7, 0, 71)
    # flat until 1e-5, falls linearly in log LR to 1e-2, then blows up
    x = np.log10(lr)
    loss = np.where(x < -5, 1.0, np.where(x <= -2, 1.0 - 0.8 * (x + 5) / 3, 0.2 + (x + 2) ** 2))
    import pandas as pd
    df = pd.DataFrame({"lr": lr, "smoothed_loss": loss})
    base, top = suggest_lr_range(df)
    assert base == pytest.approx(10 ** -4.7, rel=1e-6)  # loss 0.92: 10% of the fall
    assert top == pytest.approx(1e-3, rel=1e-6)         # minimum at 1e-2, divided by 10
    with pytest.raises(ValueError):
        suggest_lr_range(pd.DataFrame({"lr": lr, "smoothed_loss": np.linspace(1, 2, 71)}))


def test_compiled_model_saves_and_loads_with_its_loss_and_schedule(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    schedule = TriangularCyclicalLR(5, epochs=3, n_shrink=1)
    model.compile(optimizer=keras.optimizers.Nadam(learning_rate=schedule),
                  loss=L.make_loss({"name": "weighted_ce", "class_counts": [98, 2]}))
    model.train_on_batch(np.ones((2, 4), "float32"), np.eye(2, dtype="float32"))
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(again.loss, L.WeightedCategoricalCrossentropy)
    np.testing.assert_array_equal(again.loss.class_weights, [1.0, 49.0])
    assert again.optimizer._learning_rate.get_config() == schedule.get_config()
    assert int(again.optimizer.iterations) == 1  # a resumed run continues the schedule
