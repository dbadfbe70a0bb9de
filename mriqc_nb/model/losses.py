"""Losses for imbalanced artifact detection, made from a JSON-serialisable configuration.

The paper trains with categorical cross-entropy weighted by class (``w_c = n_max / n_c``, the
baseline) or with focal loss (gamma 2, optionally a class-balancing alpha). A run stores its
loss as a small dict, and :func:`make_loss` is the only way a loss is made from it, so a
resumed or transferred model cannot silently change its loss::

    {"name": "ce"}
    {"name": "weighted_ce", "class_weights": [1.0, 49.0]}
    {"name": "weighted_ce", "class_counts": [98, 2]}        # n_max / n_c: labels.class_weights
    {"name": "focal", "gamma": 2.0, "alpha": null}          # alpha: null, float or per class

All losses expect one-hot targets and probabilities (the models end in a softmax).
"""

from __future__ import annotations

from collections.abc import Mapping

import keras
import numpy as np
from keras import ops

from mriqc_nb import labels

__all__ = [
    "WeightedCategoricalCrossentropy",
    "weighted_categorical_crossentropy",
    "focal_loss",
    "make_loss",
    "LOSS_NAMES",
]

#: Names accepted by :func:`make_loss`.
LOSS_NAMES = ("ce", "weighted_ce", "focal")


@keras.saving.register_keras_serializable(package="mriqc_nb")
class WeightedCategoricalCrossentropy(keras.losses.Loss):
    """Categorical cross-entropy with one weight per class: ``-sum_c w_c y_c log p_c``.

    For one-hot targets each scan's cross-entropy is multiplied by the weight of its true
    class, then averaged over the batch (as Keras' ``class_weight`` in ``fit`` does). The
    weights live in a non-trainable variable, so :meth:`set_class_weights` takes effect in
    an already compiled model (data-ramping recomputes them every epoch).

    Parameters
    ----------
    class_weights : sequence of float
        One weight per class, in the order of the one-hot columns.
    """

    def __init__(self, class_weights, name="weighted_ce", reduction="sum_over_batch_size",
                 dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        w = np.asarray(class_weights, dtype="float32")
        if w.ndim != 1 or w.size < 2 or np.any(w <= 0):
            raise ValueError(f"class_weights must be >= 2 positive numbers, got {class_weights!r}")
        self._weights = keras.Variable(w, trainable=False, dtype="float32", name="class_weights")

    @property
    def class_weights(self) -> np.ndarray:
        """Current class weights."""
        return np.asarray(self._weights.numpy())

    def set_class_weights(self, class_weights) -> None:
        """Replace the weights (same number of classes); effective without recompiling."""
        w = np.asarray(class_weights, dtype="float32")
        if w.shape != tuple(self._weights.shape) or np.any(w <= 0):
            n = self._weights.shape[0]
            raise ValueError(f"need {n} positive weights, got {class_weights!r}")
        self._weights.assign(w)

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(y_true, y_pred.dtype)
        w = ops.cast(self._weights, y_pred.dtype)
        ce = keras.losses.categorical_crossentropy(y_true, y_pred)
        return ce * ops.sum(y_true * w, axis=-1)

    def get_config(self):
        return {**super().get_config(), "class_weights": self.class_weights.tolist()}


def weighted_categorical_crossentropy(class_weights) -> WeightedCategoricalCrossentropy:
    """Weighted categorical cross-entropy (see :class:`WeightedCategoricalCrossentropy`)."""
    return WeightedCategoricalCrossentropy(class_weights)


def focal_loss(gamma: float = 2.0, alpha=None) -> keras.losses.Loss:
    """Categorical focal loss ``-sum_c alpha_c (1 - p_c)^gamma y_c log p_c`` (Keras built-in).

    Parameters
    ----------
    gamma : float
        Focusing parameter; 0 gives cross-entropy.
    alpha : None, float or sequence of float
        ``None`` means no alpha (1 for every class). A sequence gives one weight per class.
        Note that in Keras' categorical focal loss a *scalar* alpha multiplies every class
        alike (it only rescales the loss); class balancing needs one value per class.

    Returns
    -------
    keras.losses.CategoricalFocalCrossentropy
    """
    if alpha is None:
        alpha = 1.0
    elif not np.isscalar(alpha):
        alpha = [float(a) for a in alpha]
    return keras.losses.CategoricalFocalCrossentropy(alpha=alpha, gamma=float(gamma), name="focal")


def make_loss(config: Mapping) -> keras.losses.Loss:
    """Build the loss described by a JSON-serialisable ``config`` (see the module docstring).

    Parameters
    ----------
    config : mapping
        ``{"name": "ce"}``, ``{"name": "weighted_ce", "class_weights": [...]}`` (or
        ``"class_counts"`` instead of ``"class_weights"``: weights
        :func:`mriqc_nb.labels.class_weights`, and a class without scans is an error), or
        ``{"name": "focal", "gamma": 2.0, "alpha": None}``.

    Raises
    ------
    ValueError
        For an unknown name, unknown or missing keys.
    """
    cfg = dict(config)
    name = cfg.pop("name", None)
    allowed = {"ce": set(), "weighted_ce": {"class_weights", "class_counts"},
               "focal": {"gamma", "alpha"}}
    if name not in allowed:
        raise ValueError(f"unknown loss name {name!r}; expected one of {LOSS_NAMES}")
    extra = set(cfg) - allowed[name]
    if extra:
        raise ValueError(f"loss {name!r} takes keys {sorted(allowed[name])}, got {sorted(extra)}")
    if name == "ce":
        return keras.losses.CategoricalCrossentropy(name="ce")
    if name == "focal":
        return focal_loss(gamma=cfg.get("gamma", 2.0), alpha=cfg.get("alpha"))
    if len(cfg) != 1:
        raise ValueError("loss 'weighted_ce' needs exactly one of 'class_weights', 'class_counts'")
    if "class_counts" in cfg:
        return WeightedCategoricalCrossentropy(labels.class_weights(cfg["class_counts"]))
    weights = cfg["class_weights"]
    if isinstance(weights, Mapping):  # {class index: weight}, e.g. from a JSON object
        weights = [weights[k] for k in sorted(weights, key=int)]
    return WeightedCategoricalCrossentropy(weights)
