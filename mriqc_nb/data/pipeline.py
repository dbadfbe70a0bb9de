"""tf.data input pipelines over the volume cache of a scan database.

:func:`make_dataset` turns rows of a built scan table (:func:`mriqc_nb.data.build.build_database`)
into batches ``(x, target)`` (or ``(x, target, sample_weight)``): ``x`` float32 of shape
``(batch, X, Y, Z, 1)``, ``target`` the one-hot float32 of the integer label ``y``, shape
``(batch, 2)`` (clean = 0, artifact = 1). Only file names are shuffled, so memory holds a few batches, never the set.
:func:`ramp_dataset` is "epoch ``e`` of ramp schedule ``S``" in one call.

TensorFlow is imported here only, when these functions are called.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mriqc_nb.data.cache import cache_paths
from mriqc_nb.data.ramp import epoch_table
from mriqc_nb.labels import LABELS, class_weights, to_y

__all__ = ["make_dataset", "ramp_dataset", "random_flip"]


def _load_npy(path) -> np.ndarray:
    if isinstance(path, bytes):
        path = path.decode()
    return np.load(path).astype(np.float32)


def random_flip(x, seed):
    """Flip ``x`` (X, Y, Z, C) along each spatial axis with probability 0.5 (stateless).

    ``seed`` is a shape-(2,) integer tensor; the same seed gives the same flips.
    """
    import tensorflow as tf

    u = tf.random.stateless_uniform([3], seed=seed)
    for axis in range(3):
        x = tf.cond(u[axis] < 0.5, lambda a=axis: tf.reverse(x, axis=[a]), lambda: x)
    return x


def make_dataset(
    table: pd.DataFrame,
    *,
    batch_size: int,
    training: bool = False,
    seed: int = 0,
    shuffle: bool | None = None,
    flips: bool | None = None,
    class_weight: dict | None = None,
    root=None,
    drop_remainder: bool = False,
    prefetch: bool = True,
):
    """A ``tf.data.Dataset`` of the cached volumes of ``table``'s rows.

    Parameters
    ----------
    table : pandas.DataFrame
        Rows of a built scan table (``cache_file`` and ``label`` columns).
    batch_size : int
        Batch size.
    training : bool
        Training input: shuffled and randomly flipped (the defaults of ``shuffle`` and
        ``flips``). Evaluation input keeps the table order and no flips.
    seed : int
        Seed of the shuffle and of the flips; the same seed gives the same batches. The order
        is reshuffled (deterministically) at each pass over the dataset.
    shuffle, flips : bool, optional
        Override ``training`` for the shuffle or the flips (each axis with p = 0.5).
    class_weight : dict, optional
        ``{0: w_clean, 1: w_artifact}``: also yield per-scan sample weights.
    root : path-like, optional
        Database directory (default ``table.attrs["root"]``).
    drop_remainder : bool
        Drop a last, smaller batch.
    prefetch : bool
        Prefetch batches (``tf.data.AUTOTUNE``).

    Returns
    -------
    tf.data.Dataset
        Elements ``(x, target)`` or ``(x, target, w)``.
    """
    import tensorflow as tf

    shuffle = training if shuffle is None else shuffle
    flips = training if flips is None else flips
    paths = cache_paths(table, root)
    y = to_y(table["label"].to_numpy())
    if len(paths) == 0:
        raise ValueError("empty table: no scans to feed")
    shape = np.load(paths[0], mmap_mode="r").shape

    ds = tf.data.Dataset.from_tensor_slices((np.asarray(paths), y))
    if shuffle:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)

    def load(path, y):
        x = tf.numpy_function(_load_npy, [path], tf.float32, stateful=False)
        x = tf.ensure_shape(x, shape)[..., None]
        return x, tf.one_hot(y, len(LABELS), dtype=tf.float32), y

    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if flips:
        noise = tf.data.Dataset.random(seed=seed + 1, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, noise)).map(
            lambda e, s: (random_flip(e[0], s), e[1], e[2]),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    if class_weight is not None:
        w = tf.constant([float(class_weight.get(c, 1.0)) for c in range(len(LABELS))], tf.float32)
        ds = ds.map(lambda x, target, y: (x, target, tf.gather(w, y)))
    else:
        ds = ds.map(lambda x, target, y: (x, target))
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if prefetch:
        ds = ds.prefetch(tf.data.AUTOTUNE)
    return ds


def ramp_dataset(
    table: pd.DataFrame,
    epoch: int,
    ramp_epochs: int,
    *,
    batch_size: int,
    seed: int = 0,
    mode: str = "size",
    weighted: bool = False,
    root=None,
):
    """Training input of ``epoch`` of a ramp: ``(dataset, class_weight, subset)``.

    The subset is :func:`mriqc_nb.data.ramp.epoch_table` (epoch 0 is the priming set); the class
    weights ``n_max / n_c`` (:func:`mriqc_nb.labels.class_weights`) are those of the subset (pass them to ``model.fit(class_weight=)``,
    or set ``weighted=True`` to have the dataset yield them as sample weights). The shuffle
    and flip seed is ``seed + epoch``, so each epoch has its own, reproducible order.
    """
    sub = epoch_table(table, epoch, ramp_epochs, mode=mode)
    n_art = int((sub["label"] == "artifact").sum())
    cw = class_weights({0: len(sub) - n_art, 1: n_art})
    ds = make_dataset(
        sub,
        batch_size=batch_size,
        training=True,
        seed=int(seed) + int(epoch),
        class_weight=cw if weighted else None,
        root=root if root is not None else table.attrs.get("root"),
    )
    return ds, cw, sub
