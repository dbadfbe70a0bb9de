"""Networks: NN008 (the paper's VGG-style 3D CNN), a 3D AlexNet variant, and MC dropout.

Every network here is two sub-models joined end to end::

    model = keras.Model(inputs, head(trunk(inputs)))

``trunk`` (convolutions, BatchNorm, pooling) is deterministic; ``head`` holds every stochastic
layer (all the Dropout layers) and ends in a float32 softmax, so mixed precision works.
:func:`get_trunk` and :func:`get_head` return the two parts.

Monte Carlo (MC) dropout
------------------------
MC dropout needs dropout *on* while BatchNorm stays in *inference* mode (moving statistics,
no update). Calling a Keras model with ``training=True`` would switch both, so the trained
model is never called that way. Instead :func:`make_mc_head` builds an *MC twin* of the head
with :func:`keras.models.clone_model`: every ``Dropout`` is replaced by an :class:`MCDropout`
(a ``Dropout`` that always drops) and every other layer is the *same object* as in the head,
so the weights are shared, not copied. The twin is called with ``training=False``, so its
BatchNorm uses the moving statistics. The trained model itself only ever contains plain
``Dropout`` layers and saves and loads as usual.

The samplers that use the twin (the whole network T times, or the trunk once and the twin
T times) live in :mod:`mriqc_nb.predict`.

Weights on disk
---------------
A network's weights travel as one ``.npz`` file (``model.get_weights()`` as ``arr_0``,
``arr_1``, ...): run checkpoints and model bundles alike. :func:`save_weights` writes one
atomically, :func:`load_weights` is the one reader, and :func:`build` rebuilds a network by
name (``"nn008"``, ``"alexnet3d"``: :data:`mriqc_nb.model.runs.MODELS`) before its
weights are loaded.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

__all__ = [
    "MCDropout",
    "build",
    "build_nn008",
    "build_alexnet3d",
    "check_input_shape",
    "get_trunk",
    "get_head",
    "make_mc_head",
    "make_masked_head",
    "make_mc_model",
    "save_weights",
    "load_weights",
    "describe",
]

#: Both networks halve each spatial side five times.
GRID_DIVISOR = 32


@keras.saving.register_keras_serializable(package="mriqc_nb")
class MCDropout(keras.layers.Dropout):
    """Dropout that is active whatever the ``training`` flag (Monte Carlo dropout).

    Used only in the MC twin of a head (:func:`make_mc_head`), which is called with
    ``training=False`` so that BatchNorm keeps its inference behaviour while this layer
    still drops units. With ``rate=0`` it is the identity.
    """

    def call(self, inputs, training=None):  # noqa: D102 - same as Dropout
        return super().call(inputs, training=True)

    @classmethod
    def from_dropout(cls, layer: keras.layers.Dropout, seed: int | None = None) -> MCDropout:
        """Return an MC twin of a ``Dropout`` layer (same rate, noise shape and dtype policy)."""
        return cls(
            rate=layer.rate,
            noise_shape=layer.noise_shape,
            seed=seed,
            dtype=layer.dtype_policy,
            name=f"mc_{layer.name}",
        )


# --------------------------------------------------------------------------- building


def check_input_shape(input_shape: Sequence[int], divisor: int = GRID_DIVISOR) -> tuple:
    """Validate ``(x, y, z, channels)`` and return it as a tuple of ints.

    Raises
    ------
    ValueError
        If the shape is not 4-D or a spatial side does not divide by ``divisor``.
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 4:
        raise ValueError(f"input_shape {shape} must be (x, y, z, channels)")
    bad = [s for s in shape[:3] if s <= 0 or s % divisor]
    if bad:
        raise ValueError(
            f"input_shape {shape}: every spatial side must be a positive multiple of "
            f"{divisor} (the network halves each side 5 times); {bad} is not"
        )
    return shape


def _conv_bn_relu(x, filters, kernel_size=3, strides=1, name=""):
    """Conv3D (no bias, he_normal, padding same) -> BatchNorm -> ReLU."""
    x = keras.layers.Conv3D(
        filters, kernel_size, strides=strides, padding="same", use_bias=False,
        kernel_initializer="he_normal", name=f"{name}_conv",
    )(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _build_head(feature_shape, n_classes, dropout, dense_units):
    """Dropout -> Flatten -> Dense -> BN -> ReLU -> Dropout -> Dense -> softmax (float32)."""
    p_in, p_dense = dropout
    f = keras.Input(shape=feature_shape, name="features")
    x = keras.layers.Dropout(p_in, name="dropout_features")(f)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(dense_units, name="dense")(x)
    x = keras.layers.BatchNormalization(name="dense_bn")(x)
    x = keras.layers.ReLU(name="dense_relu")(x)
    x = keras.layers.Dropout(p_dense, name="dropout_dense")(x)
    x = keras.layers.Dense(n_classes, name="logits")(x)
    out = keras.layers.Activation("softmax", dtype="float32", name="softmax")(x)
    return keras.Model(f, out, name="head")


def _assemble(trunk, n_classes, dropout, dense_units, name):
    head = _build_head(tuple(trunk.output.shape[1:]), n_classes, dropout, dense_units)
    inputs = keras.Input(shape=trunk.input.shape[1:], name="volume")
    return keras.Model(inputs, head(trunk(inputs)), name=name)


def build_nn008(
    input_shape: Sequence[int] = (256, 256, 64, 1),
    n_classes: int = 2,
    *,
    dropout: tuple[float, float] = (0.25, 0.5),
    dense_units: int = 128,
    filters: Sequence[int] = (8, 16, 32, 64, 128),
    name: str = "nn008",
) -> keras.Model:
    """The paper's network NN008: a VGG-style 3D CNN with an MC-dropout head.

    Trunk: 5 blocks, each ``[Conv3D 3x3x3 same, no bias, he_normal -> BatchNorm -> ReLU] x 2
    -> MaxPool3D 2``, with ``filters`` 8, 16, 32, 64, 128. Head: ``Dropout(dropout[0]) ->
    Flatten -> Dense(128) -> BatchNorm -> ReLU -> Dropout(dropout[1]) -> Dense(n_classes) ->
    softmax``; both Dense layers have a bias and both BatchNorms have scale and centre. For
    (256, 256, 64, 1) the trunk ends at 8 x 8 x 2 x 128 and the model has exactly 2,983,258
    parameters (2,982,010 trainable; 1,248 BatchNorm moving statistics).

    Parameters
    ----------
    input_shape : sequence of int
        ``(x, y, z, channels)`` in voxels; each spatial side must divide by 32.
    n_classes : int
        Number of classes (2: clean, artifact).
    dropout : (float, float)
        Rates of the dropout before Flatten and before the last Dense layer.
    dense_units : int
        Width of the hidden Dense layer of the head.
    filters : sequence of 5 int
        Filters of the five blocks.
    name : str
        Model name.

    Returns
    -------
    keras.Model
        ``Model(inputs, head(trunk(inputs)))``; the sub-models are named ``trunk`` and
        ``head``. Output: (batch, n_classes) float32 probabilities.

    Raises
    ------
    ValueError
        If ``input_shape`` is not 4-D or a spatial side does not divide by 32.
    """
    shape = check_input_shape(input_shape, 2 ** len(filters))
    inputs = keras.Input(shape=shape, name="volume")
    x = inputs
    for b, n in enumerate(filters, start=1):
        x = _conv_bn_relu(x, n, name=f"block{b}a")
        x = _conv_bn_relu(x, n, name=f"block{b}b")
        x = keras.layers.MaxPooling3D(2, name=f"block{b}_pool")(x)
    trunk = keras.Model(inputs, x, name="trunk")
    return _assemble(trunk, n_classes, dropout, dense_units, name)


def build_alexnet3d(
    input_shape: Sequence[int] = (256, 256, 64, 1),
    n_classes: int = 2,
    *,
    dropout: tuple[float, float] = (0.25, 0.5),
    dense_units: int = 128,
    name: str = "alexnet3d",
) -> keras.Model:
    """A classic AlexNet-style 3D network with the same MC-dropout head as NN008.

    Trunk (AlexNet's layout with BatchNorm instead of local response normalisation and
    pooling windows of 2 so that the sides stay exact)::

        Conv 7x7x7/2 (16) -> MaxPool 2 -> Conv 5x5x5 (32) -> MaxPool 2
        -> Conv 3x3x3 (64) -> Conv 3x3x3 (64) -> MaxPool 2 -> Conv 3x3x3 (128) -> MaxPool 2

    each convolution followed by BatchNorm and ReLU (no bias, he_normal). The trunk divides
    each side by 32, as NN008's does, so the two share the grid rule and the head's size
    (for 256 x 256 x 64 the trunk ends at 8 x 8 x 2 x 128). Five convolutions instead of ten.

    Parameters and return value are those of :func:`build_nn008`.
    """
    shape = check_input_shape(input_shape)
    inputs = keras.Input(shape=shape, name="volume")
    x = _conv_bn_relu(inputs, 16, kernel_size=7, strides=2, name="conv1")
    x = keras.layers.MaxPooling3D(2, name="pool1")(x)
    x = _conv_bn_relu(x, 32, kernel_size=5, name="conv2")
    x = keras.layers.MaxPooling3D(2, name="pool2")(x)
    x = _conv_bn_relu(x, 64, name="conv3")
    x = _conv_bn_relu(x, 64, name="conv4")
    x = keras.layers.MaxPooling3D(2, name="pool3")(x)
    x = _conv_bn_relu(x, 128, name="conv5")
    x = keras.layers.MaxPooling3D(2, name="pool4")(x)
    trunk = keras.Model(inputs, x, name="trunk")
    return _assemble(trunk, n_classes, dropout, dense_units, name)


def get_trunk(model: keras.Model) -> keras.Model:
    """The deterministic convolutional part (sub-model ``trunk``)."""
    return model.get_layer("trunk")


def get_head(model: keras.Model) -> keras.Model:
    """The head holding every Dropout layer (sub-model ``head``)."""
    return model.get_layer("head")


# --------------------------------------------------------------------------- MC dropout


def make_mc_head(head: keras.Model, seed: int | None = None) -> keras.Model:
    """Return the MC twin of ``head``: Dropout -> :class:`MCDropout`, other layers shared.

    The twin shares the head's layer objects (and so its weights, BatchNorm statistics
    included); call it with ``training=False`` so that BatchNorm uses its moving statistics
    while the dropout layers keep dropping.

    Parameters
    ----------
    head : keras.Model
        A functional head, e.g. ``get_head(model)``.
    seed : int, optional
        Seed of the dropout masks; dropout layer ``i`` gets ``seed + i``.
    """
    return _swap_dropouts(head, lambda layer, s: MCDropout.from_dropout(layer, s), seed)


def _swap_dropouts(head: keras.Model, make, seed: int | None) -> keras.Model:
    """``head`` cloned with every ``Dropout`` replaced by ``make(layer, seed_i)`` (seed_i =
    ``seed + i`` for the i-th dropout layer, or None), other layers shared."""
    counter = itertools.count()

    def swap(layer):
        if isinstance(layer, keras.layers.Dropout):
            i = next(counter)
            return make(layer, None if seed is None else seed + i)
        return layer

    return keras.models.clone_model(head, clone_function=swap)


class _FixedMask(keras.layers.Layer):
    """Multiplies its (T, ...) input by a fixed (T, ...) mask: T dropout masks, frozen."""

    def __init__(self, mask: np.ndarray, **kwargs):
        super().__init__(**kwargs)
        self.mask = np.asarray(mask)

    def call(self, inputs):  # noqa: D102
        return inputs * keras.ops.cast(self.mask, inputs.dtype)

    def compute_output_shape(self, input_shape):  # noqa: D102
        return input_shape


def make_masked_head(head: keras.Model, T: int, seed: int | None = None) -> keras.Model:
    """The MC twin of ``head`` with its T dropout masks drawn once and frozen.

    Dropout layer ``i`` becomes a multiplication by the masks that the ``i``-th
    :class:`MCDropout` of ``make_mc_head(head, seed)`` draws on its *first* call with T rows
    (the same seed, rate and noise shape: 0 where dropped, ``1 / (1 - rate)`` where kept), so
    calling the result on T copies of a scan's features gives exactly the samples of a fresh
    MC twin. It has no random state: every call, whatever else was called before, uses the
    same masks. Other layers are shared with ``head``; call it with ``training=False``, on
    exactly T rows.
    """
    T = int(T)

    def frozen(layer, layer_seed):
        twin = MCDropout.from_dropout(layer, layer_seed)
        shape = (T, *(int(n) for n in layer.input.shape[1:]))
        mask = np.asarray(keras.ops.convert_to_numpy(
            twin(keras.ops.ones(shape, dtype=layer.compute_dtype))))
        return _FixedMask(mask, dtype=layer.dtype_policy, name=f"masked_{layer.name}")

    return _swap_dropouts(head, frozen, seed)


def make_mc_model(model: keras.Model, seed: int | None = None) -> keras.Model:
    """The whole network with the MC twin of its head (trunk shared, see :func:`make_mc_head`)."""
    trunk = get_trunk(model)
    inputs = keras.Input(shape=trunk.input.shape[1:], name="volume")
    mc_head = make_mc_head(get_head(model), seed)
    return keras.Model(inputs, mc_head(trunk(inputs)), name=f"{model.name}_mc")


# --------------------------------------------------------------------------- by name, on disk


def build(name: str, input_shape: Sequence[int]) -> keras.Model:
    """Build the network ``name`` (``build_<name>`` of this module) for ``input_shape``.

    Parameters
    ----------
    name : str
        ``"nn008"`` or ``"alexnet3d"``.
    input_shape : sequence of int
        ``(x, y, z, 1)`` in voxels.

    Raises
    ------
    ValueError
        For an unknown name (or an input shape that the network cannot take).
    """
    builder = globals().get(f"build_{name}")
    if builder is None:
        raise ValueError(f"unknown network {name!r}; known networks: nn008, alexnet3d")
    return builder(input_shape)


def save_weights(model: keras.Model, path) -> Path:
    """Write ``model.get_weights()`` to ``path`` (``.npz``, ``arr_0``, ``arr_1``, ...) atomically."""
    from mriqc_nb._atomic import save_npz

    return save_npz(path, *model.get_weights())


def load_weights(model: keras.Model, path) -> keras.Model:
    """Load a weights file written by :func:`save_weights` into ``model``; returns ``model``.

    Raises
    ------
    ValueError
        If the file holds another number of arrays or other shapes than the network.
    """
    with np.load(path) as f:
        model.set_weights([f[f"arr_{i}"] for i in range(len(f.files))])
    return model


# --------------------------------------------------------------------------- description


def describe(model: keras.Model) -> "pandas.DataFrame":  # noqa: F821
    """Architecture table for the book: one row per layer of the trunk and the head.

    Returns
    -------
    pandas.DataFrame
        Columns ``layer`` (name), ``type`` (class), ``output_shape`` (without the batch
        axis), ``parameters`` (weights, BatchNorm statistics included), ``part``
        (``"trunk"`` or ``"head"``) and ``stochastic`` (True for dropout layers).
        ``df.parameters.sum() == model.count_params()``.
    """
    import pandas as pd

    rows = []
    for part, sub in (("trunk", get_trunk(model)), ("head", get_head(model))):
        shape = tuple(sub.input.shape)
        for layer in sub.layers:
            if isinstance(layer, keras.layers.InputLayer):
                continue
            shape = tuple(layer.compute_output_shape(shape))
            rows.append({
                "layer": layer.name,
                "type": type(layer).__name__,
                "output_shape": shape[1:],
                "parameters": layer.count_params(),
                "part": part,
                "stochastic": isinstance(layer, keras.layers.Dropout),
            })
    return pd.DataFrame(rows)
