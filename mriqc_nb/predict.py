"""Predictions of a trained network: MC dropout, test-time flips, or both; of arrays and splits.

This module only predicts; it never trains. Every caller -- the chapters, the comparison of
chapter 8 and the screening of files (:mod:`mriqc_nb.screen`) -- samples through
:func:`predict_samples`, so they cannot drift apart.

Methods
-------
A *method* (:data:`METHODS`) is a way to repeat a prediction:

``"mc"``
    T Monte Carlo dropout samples (epistemic uncertainty), by :func:`predict_mc_fast`.
``"flips"``
    The 8 flips of the volume along its axes, dropout off (aleatoric).
``"mc_flips"``
    T MC-dropout samples on each of the 8 flips (8 T samples).
``"deterministic"``
    One pass, dropout off.

Monte Carlo dropout
-------------------
Both samplers use the MC twin of the network's head (:func:`mriqc_nb.model.networks.make_mc_head`):
dropout on, BatchNorm in inference mode.

- :func:`predict_mc_naive` -- the reference: the whole network T times, as the paper's code does.
- :func:`predict_mc_fast` -- the trunk once per batch, then the twin head on T copies of each
  scan's features. Every scan sees the *same* T dropout masks (drawn once from ``seed`` and
  frozen, :func:`mriqc_nb.model.networks.make_masked_head`), so a
  scan's samples depend only on its volume, the weights and ``seed``: not on its batch, its
  neighbours or the order of the inputs (screening resumes and batches freely; a split's
  predictions do not depend on ``chunk``).

Both return an array of shape (T, N, n_classes); with dropout rate 0 both equal the
deterministic output, otherwise they are equal in distribution (not sample by sample).

Predictions of a split
----------------------
:func:`predict_split` turns (model, scan table, split) into

- ``samples``: the raw softmax samples, shape (S, N, 2), S = T (MC dropout), 8 (flips) or
  8 T (both), and
- a per-scan table: the scan's id, subject, modality, integer label ``y`` (0 clean, 1
  artifact; :mod:`mriqc_nb.labels`), artifact kind and class, plus every statistic of
  :func:`mriqc_nb.uncertainty.summarise`.

``"mc_flips"`` passes each flip through the trunk once, and the head with dropout off on the
same pass gives ``"flips"`` as well (:func:`predict_mc_and_flips`): with a cache, the flips are
written beside it, and a later request for them reads that file (chapter 7 asks for both;
``benchmarks/bench_flips.py`` times the two ways).

The samples are cached as one ``.npz`` per (split, method, T, seed) in ``cache_dir``;
:func:`run_predictions` caches them in a run directory's ``predictions/`` folder, so chapters 6,
7 and 8 share one set of predictions. The volumes are read from the database cache in chunks,
so memory stays bounded whatever the split's size.
"""

from __future__ import annotations

import weakref
from pathlib import Path

import numpy as np
import pandas as pd

from mriqc_nb import uncertainty
from mriqc_nb._atomic import atomic_open
from mriqc_nb.data.cache import load_arrays
from mriqc_nb.labels import to_y

__all__ = ["METHODS", "predict_mc_naive", "predict_mc_fast", "predict_mc_and_flips",
           "predict_samples", "predict_split", "run_predictions", "scan_columns"]

#: Prediction methods: MC dropout (epistemic), test-time flips (aleatoric), both, one pass.
METHODS = ("mc", "flips", "mc_flips", "deterministic")

_SCAN_COLUMNS = ("scan_id", "subject_id", "modality", "artifact_kind", "artifact_class", "severity",
                 "split")


def _numpy(t) -> np.ndarray:
    import keras

    return np.asarray(keras.ops.convert_to_numpy(t))


def _batches(x, batch_size: int):
    x = np.asarray(x, dtype="float32")
    for start in range(0, len(x), int(batch_size)):
        yield x[start:start + int(batch_size)]


# --------------------------------------------------------------------------- arrays


def predict_mc_naive(model, x, T: int, seed: int | None = None, batch_size: int = 8) -> np.ndarray:
    """MC dropout, reference version: the whole network T times per batch.

    Dropout is active, BatchNorm is in inference mode
    (:func:`mriqc_nb.model.networks.make_mc_model`).

    Parameters
    ----------
    model : keras.Model
        A network of :mod:`mriqc_nb.model.networks` (any model with ``trunk`` and ``head``
        sub-models).
    x : array, shape (N, x, y, z, channels)
        Volumes.
    T : int
        Number of MC samples.
    seed : int, optional
        Seed of the dropout masks.
    batch_size : int
        Volumes per forward pass.

    Returns
    -------
    ndarray, shape (T, N, n_classes)
        Softmax probabilities of each sample.
    """
    from mriqc_nb.model.networks import make_mc_model

    mc_model = make_mc_model(model, seed)
    out = [np.stack([_numpy(mc_model(xb, training=False)) for _ in range(T)])
           for xb in _batches(x, batch_size)]
    return np.concatenate(out, axis=1)


def predict_mc_fast(model, x, T: int, seed: int | None = None, batch_size: int = 8) -> np.ndarray:
    """MC dropout, fast version: the trunk once, then the MC head on T copies of each scan.

    Every scan gets the same T dropout masks (drawn once from ``seed`` and frozen:
    :func:`mriqc_nb.model.networks.make_masked_head`), so a scan's samples do not depend on
    its batch or on the other inputs. Equal in distribution to :func:`predict_mc_naive`
    (identical when the dropout rates are 0), at the cost of one trunk pass per scan instead
    of T.

    Parameters and return value are those of :func:`predict_mc_naive`; ``batch_size`` is the
    trunk's batch. The head's batch is T feature vectors (one scan). Both run as compiled
    TensorFlow functions kept with the model (traced once, never retraced: see
    :func:`_compiled`); a model's weights may change between calls.
    """
    return _mc_fast(model, x, T, seed, batch_size)[0]


def _mc_fast(model, x, T: int, seed, batch_size: int, deterministic: bool = False) -> tuple:
    """(MC samples (T, N, 2), and with ``deterministic`` the head with dropout off on the
    same trunk pass (N, 2), else None)."""
    trunk = _trunk_fn(model)
    head = _mc_head_fn(model, int(T), seed)
    plain = _head_fn(model) if deterministic else None
    out, det = [], []
    for xb in _batches(x, batch_size):
        feats = _numpy(trunk(xb)).astype(np.float32, copy=False)  # float16 if mixed
        if plain is not None:
            det.append(_numpy(plain(feats)))
        for f in feats:
            out.append(_numpy(head(f[None])))
    if not out:
        return np.zeros((int(T), 0, 2), "float32"), \
            (np.zeros((0, 2), "float32") if deterministic else None)
    return np.stack(out, axis=1), (np.concatenate(det) if deterministic else None)


def predict_mc_and_flips(model, x, T: int, seed: int | None = None,
                         batch_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """``"mc_flips"`` and ``"flips"`` from one trunk pass per flip.

    Returns
    -------
    mc_flips : ndarray, shape (8 T, N, 2)
        As ``predict_samples(model, x, "mc_flips", T, seed)`` (flip-major).
    flips : ndarray, shape (8, N, 2)
        As ``predict_samples(model, x, "flips")``, within float tolerance: the head with
        dropout off on the same trunk features, not a second pass of the whole network (the
        work of ``"flips"`` is then almost free: chapter 7 asks for both).
    """
    mc, det = [], []
    for f in uncertainty.FLIPS:
        m, d = _mc_fast(model, uncertainty.flip_volume(x, f), T, seed, batch_size,
                        deterministic=True)
        mc.append(m)
        det.append(d)
    return np.concatenate(mc, axis=0), np.stack(det)


# Compiled calls of a model, kept with it (weakly: they go when the model goes).
_COMPILED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


class _Call:
    """``fn(*args)``: a callable object, not a function, so that TensorFlow counts the traces
    of each compiled call on its own (it pools plain functions by their code, and would warn
    about "retracing" after a few models were each traced once)."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, *args):
        return self.fn(*args)


def _compiled(model, key, make):
    """The compiled call ``key`` of ``model``, made once by ``make()`` (None: not kept)."""
    if key is None:
        return make()
    try:
        calls = _COMPILED.setdefault(model, {})
    except TypeError:  # not weakly referenceable: compile every time
        return make()
    if key not in calls:
        calls[key] = make()
    return calls[key]


def _tf_function(fn, spec):
    """``fn`` compiled by ``tf.function`` for inputs of ``spec`` (traced once); eager on
    another backend."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return fn
    import tensorflow as tf

    return tf.function(_Call(fn), input_signature=[tf.TensorSpec(spec, tf.float32)])


def _trunk_fn(model):
    """The trunk, compiled for any batch size: (n, X, Y, Z, C) -> features."""
    from mriqc_nb.model.networks import get_trunk

    trunk = get_trunk(model)

    def make():
        return _tf_function(lambda x: trunk(x, training=False),
                            (None, *(int(n) for n in trunk.input.shape[1:])))

    return _compiled(model, ("trunk",), make)


def _network_fn(model):
    """The whole network, dropout off, compiled for any batch size: (n, X, Y, Z, C) -> (n, 2)."""
    def make():
        return _tf_function(lambda x: model(x, training=False),
                            (None, *(int(n) for n in model.input.shape[1:])))

    return _compiled(model, ("network",), make)


def _head_fn(model):
    """The head, dropout off, compiled for any batch size: features (n, ...) -> (n, 2)."""
    from mriqc_nb.model.networks import get_head

    head = get_head(model)

    def make():
        return _tf_function(lambda f: head(f, training=False),
                            (None, *(int(n) for n in head.input.shape[1:])))

    return _compiled(model, ("head",), make)


def _mc_head_fn(model, T: int, seed):
    """The MC head with T frozen masks, compiled: features of one scan (1, ...) -> (T, 2)."""
    from mriqc_nb.model.networks import get_head, make_masked_head

    def make():
        import keras

        head = make_masked_head(get_head(model), T, seed)
        shape = (1, *(int(n) for n in head.input.shape[1:]))
        return _tf_function(
            lambda f: head(keras.ops.repeat(f, T, axis=0), training=False), shape)

    return _compiled(model, None if seed is None else ("mc_head", T, int(seed)), make)


def predict_samples(model, x: np.ndarray, method: str = "mc", T: int = 50, seed: int = 0,
                    batch_size: int = 8) -> np.ndarray:
    """Repeated predictions for volumes ``x`` (N, X, Y, Z, 1): the one sampler of the package.

    Parameters
    ----------
    model : keras.Model
        A network of :mod:`mriqc_nb.model.networks`.
    x : ndarray, shape (N, X, Y, Z, 1)
        Conformed volumes.
    method : str
        One of :data:`METHODS` (see the module notes).
    T : int
        MC-dropout samples (per flip for ``"mc_flips"``); ignored by ``"flips"`` and
        ``"deterministic"``.
    seed : int
        Seed of the dropout masks.
    batch_size : int
        Volumes per trunk pass.

    Returns
    -------
    ndarray, shape (S, N, 2)
        S = T, 8, 8 T or 1.

    Raises
    ------
    ValueError
        For an unknown method.
    """
    def deterministic(xb):
        # The compiled call of the whole network (traced once, any batch size), not
        # model.predict, whose tf.function retraces whenever the input count changes.
        net = _network_fn(model)
        out = [_numpy(net(b)) for b in _batches(xb, batch_size)]
        return np.concatenate(out) if out else np.zeros((0, 2), "float32")

    if method == "mc":
        return predict_mc_fast(model, x, T, seed=seed, batch_size=batch_size)
    if method == "flips":
        return uncertainty.predict_flips(deterministic, x)
    if method == "mc_flips":
        return uncertainty.predict_mc_flips(
            lambda xb, t: predict_mc_fast(model, xb, t, seed=seed, batch_size=batch_size), x, T)
    if method == "deterministic":
        return deterministic(x)[None]
    raise ValueError(f"unknown prediction method {method!r}; expected one of {METHODS}")


# --------------------------------------------------------------------------- splits


def scan_columns(table: pd.DataFrame) -> pd.DataFrame:
    """The descriptive columns of a scan table plus the integer label ``y`` (0 clean, 1 artifact)."""
    cols = [c for c in _SCAN_COLUMNS if c in table.columns]
    out = table[cols].reset_index(drop=True).copy()
    out["y"] = to_y(table["label"].to_numpy())
    return out


def _cache_file(cache_dir, split: str, method: str, T: int, seed: int) -> Path:
    t_tag = "" if method in ("flips", "deterministic") else f"_T{T}"
    return Path(cache_dir) / f"{split}_{method}{t_tag}_seed{seed}.npz"


def predict_split(model, table: pd.DataFrame, split: str, *, method: str = "mc", T: int = 50,
                  seed: int = 0, batch_size: int = 8, chunk: int = 64, cache_dir=None,
                  root=None) -> tuple[pd.DataFrame, np.ndarray]:
    """Predict every scan of ``split`` and summarise the samples per scan.

    Parameters
    ----------
    model : keras.Model
        A network of :mod:`mriqc_nb.model.networks`.
    table : pandas.DataFrame
        A built scan table (its ``attrs["root"]`` or ``root`` locates the volume cache).
    split : str
        ``"valid"``, ``"test"``, ``"subtle"`` ...
    method, T, seed, batch_size
        See :func:`predict_samples`. ``T`` is ignored for ``"flips"`` and ``"deterministic"``.
    chunk : int
        Volumes loaded into memory at a time (the numbers do not depend on it).
    cache_dir : path-like, optional
        Where to cache ``{split}_{method}_T{T}_seed{seed}.npz``; no caching if omitted.
    root : path-like, optional
        Database folder, if ``table.attrs`` does not name it.

    Returns
    -------
    summary : pandas.DataFrame, one row per scan of the split
    samples : ndarray, shape (S, N, 2)
    """
    if method not in METHODS:
        raise ValueError(f"unknown prediction method {method!r}; expected one of {METHODS}")
    rows = table[table["split"].astype(str) == split]
    if rows.empty:
        raise ValueError(f"split {split!r} has no scans")
    ids = rows["scan_id"].astype(str).tolist()
    cache = None
    if cache_dir is not None:
        cache = _cache_file(cache_dir, split, method, T, seed)
        if cache.exists():
            with np.load(cache, allow_pickle=False) as z:
                if z["scan_id"].tolist() == ids:
                    samples = z["samples"]
                    return _summary(rows, samples), samples
    # "mc_flips" passes every flip through the trunk; the head with dropout off on the same
    # pass gives "flips" too, cached beside it when no "flips" cache is there yet
    partner = None
    if method == "mc_flips" and cache is not None:
        partner = _cache_file(cache_dir, split, "flips", T, seed)
        if partner.exists():
            partner = None
    parts, flips = [], []
    for start in range(0, len(ids), chunk):
        x, _ = load_arrays(table, ids[start:start + chunk], root=root)
        if partner is not None:
            mcf, fl = predict_mc_and_flips(model, x, T, seed, batch_size)
            parts.append(mcf)
            flips.append(fl)
        else:
            parts.append(predict_samples(model, x, method, T, seed, batch_size))
    samples = np.concatenate(parts, axis=1).astype(np.float32)
    if cache is not None:
        with atomic_open(cache, "wb") as fh:
            np.savez_compressed(fh, samples=samples, scan_id=np.array(ids))
    if partner is not None:
        with atomic_open(partner, "wb") as fh:
            np.savez_compressed(fh, samples=np.concatenate(flips, axis=1).astype(np.float32),
                                scan_id=np.array(ids))
    return _summary(rows, samples), samples


def _summary(rows: pd.DataFrame, samples: np.ndarray) -> pd.DataFrame:
    return pd.concat([scan_columns(rows), uncertainty.summarise(samples)], axis=1)


def run_predictions(run, split: str, method: str = "mc", *, T: int | None = None, seed: int = 0,
                    profile=None, progress: bool = False) -> tuple[pd.DataFrame, np.ndarray]:
    """Predictions of a trained run's last weights on a split, cached in the run directory.

    Parameters
    ----------
    run : mriqc_nb.model.runs.Run or path-like
        A trained run (it is not trained here).
    split : str
        ``"valid"``, ``"test"``, ``"subtle"`` ...
    method : str
        One of :data:`METHODS`.
    T : int, optional
        MC samples; default the profile's ``mc_samples_valid`` for ``valid`` and
        ``mc_samples_test`` otherwise.
    seed : int
        Seed of the dropout masks.
    profile : str or Profile, optional
        The profile whose database the run was trained on (default: the run's own, by name).
    progress : bool
        Progress bar while the profile's database is built (first use only).

    Returns
    -------
    summary, samples
        As :func:`predict_split`; the samples are cached in ``run.dir / "predictions"``.
    """
    from mriqc_nb.data import profile_database
    from mriqc_nb.model.runs import Run
    from mriqc_nb.profiles import get_profile

    if not hasattr(run, "dir"):
        run = Run(run)
    p = get_profile(profile if profile is not None else run.config.profile)
    if T is None:
        T = p.mc_samples_valid if split == "valid" else p.mc_samples_test
    table = profile_database(p, progress=progress)
    return predict_split(run.model(), table, split, method=method, T=T, seed=seed,
                         cache_dir=Path(run.dir) / "predictions")
