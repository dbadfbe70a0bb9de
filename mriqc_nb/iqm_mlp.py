"""A small multilayer perceptron of IQMs with Monte Carlo dropout: the book's network in miniature.

:mod:`mriqc_nb.iqm` reaches it as ``fit_iqm_classifier(kind="mlp")``. It mirrors the book's CNN
on the rater tables: dropout layers in the head, kept on at prediction (Monte Carlo dropout,
``T`` samples), so that the referral machinery gets an epistemic uncertainty from the same
kind of model.

Training (Keras, CPU, seconds per member)
-----------------------------------------
Every member is a network ``features -> Dense(64, relu) -> Dropout -> Dense(32, relu) ->
Dropout -> Dense(1, sigmoid)`` with L2 weight decay, trained with a class-balanced binary
cross-entropy (:func:`mriqc_nb.labels.class_weights`). Early stopping watches the balanced
loss on an **inner split by site** of the training scans (whole sites, drawn per member), and
the weights of the best epoch are kept. ``n_members`` members with different seeds (and so
different inner splits) form a small deep ensemble.

Prediction (NumPy, deterministic)
---------------------------------
The weights are copied out of Keras, and the forward pass with dropout masks is done in NumPy
with a seeded generator: ``mc_samples`` passes in all, shared out among the members. The
same model, data and seed give the same samples, with no TensorFlow state in the way.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MCDropoutMLP", "fit_mlp", "inner_site_split"]

#: Clip of the standardised inputs: robust site scaling can give values in the hundreds for a
#: scan far from its site's median, which a ReLU network extrapolates wildly.
CLIP = 8.0


def inner_site_split(sites, y, seed: int, fraction: float = 0.2, tries: int = 50):
    """Boolean mask of an inner validation split by whole sites (both classes on both sides).

    Sites are drawn in a seeded random order until ``fraction`` of the scans are held; the
    draw is repeated (next seeds) until both sides hold both classes.

    Returns
    -------
    ndarray of bool, shape (N,)
        True for the inner validation scans.
    """
    sites = np.asarray(sites).astype(str)
    y = np.asarray(y).astype(int)
    names = np.unique(sites)
    for k in range(tries):
        held, n = [], 0
        for s in np.random.default_rng(seed + 7919 * k).permutation(names):
            if n >= fraction * len(y):
                break
            held.append(s)
            n += int(np.sum(sites == s))
        mask = np.isin(sites, held)
        if all(np.unique(y[part]).size == 2 for part in (mask, ~mask)):
            return mask
    raise ValueError("no inner split by site with both classes on both sides")


class MCDropoutMLP:
    """A fitted ensemble of MLPs; :meth:`sample_probabilities` gives MC-dropout samples.

    Attributes
    ----------
    members : list of list of (kernel, bias)
        NumPy weights of each member's dense layers.
    dropout : float
    mc_samples : int
        Samples per prediction, all members together.
    seed : int
        Seeds the dropout masks at prediction.
    epochs_ : list of int
        The kept (best) epoch of each member.
    """

    def __init__(self, members, dropout: float, mc_samples: int, seed: int, epochs=None):
        self.members = members
        self.dropout = float(dropout)
        self.mc_samples = int(mc_samples)
        self.seed = int(seed)
        self.epochs_ = list(epochs or [])

    def _forward(self, weights, X, rng, mc: bool):
        h = X
        for i, (W, b) in enumerate(weights):
            h = h @ W + b
            if i < len(weights) - 1:
                h = np.maximum(h, 0.0)
                if mc and self.dropout > 0:
                    keep = rng.random(h.shape) >= self.dropout
                    h = h * keep / (1.0 - self.dropout)
        return 1.0 / (1.0 + np.exp(-h[:, 0]))

    def sample_probabilities(self, X, mc: bool = True) -> np.ndarray:
        """Class probabilities of every MC-dropout pass: shape (T, N, 2), column 1 = artifact.

        ``mc=False`` gives one deterministic pass per member (dropout off), shape
        (members, N, 2).
        """
        X = np.clip(np.asarray(X, dtype=float), -CLIP, CLIP)
        rng = np.random.default_rng(self.seed)
        counts = ([len(a) for a in np.array_split(np.arange(self.mc_samples), len(self.members))]
                  if mc else [1] * len(self.members))
        p = [self._forward(w, X, rng, mc) for w, c in zip(self.members, counts) for _ in range(c)]
        p = np.stack(p)
        return np.stack([1.0 - p, p], axis=-1)


def fit_mlp(X, y, sites, seed: int = 0, *, hidden=(64, 32), dropout: float = 0.4, n_members: int = 5,
            mc_samples: int = 50, l2: float = 1e-4, learning_rate: float = 1e-3, batch_size: int = 64,
            max_epochs: int = 300, patience: int = 25, inner_fraction: float = 0.2,
            soft_target=None) -> MCDropoutMLP:
    """Train the ensemble (see the module notes).

    Parameters
    ----------
    X : array_like, shape (N, F)
        Standardised features (already site-scaled where wanted).
    y : array_like of {0, 1}, shape (N,)
        1 = artifact.
    sites : array_like, shape (N,)
        Site of each scan, for the inner early-stopping split (whole sites).
    seed : int
        Member ``m`` uses seed ``1000 * seed + m`` (weights, batches, inner split).
    hidden, dropout, l2, learning_rate, batch_size, max_epochs, patience, inner_fraction
        Network and training settings.
    n_members, mc_samples
        Ensemble size, and MC-dropout samples per prediction (shared among the members).
    soft_target : array_like in [0, 1], shape (N,), optional
        Learn these (e.g. the raters' exclusion shares) with the cross-entropy instead of
        ``y``; ``y`` still sets the class weights and the inner split.

    Returns
    -------
    MCDropoutMLP
    """
    import keras

    from mriqc_nb.labels import class_weights

    X = np.clip(np.asarray(X, dtype="float32"), -CLIP, CLIP)
    y = np.asarray(y).astype("float32")
    target = y if soft_target is None else np.asarray(soft_target, dtype="float32")
    keras.utils.set_random_seed(int(seed))
    trainer = _Trainer(X.shape[1], hidden, dropout, l2, learning_rate, batch_size,
                       n_batches=max(1, round((1 - inner_fraction) * len(y) / batch_size)), seed=int(seed))
    members, epochs = [], []
    for m in range(n_members):
        s = 1000 * int(seed) + m
        inner = inner_site_split(sites, y, s, inner_fraction)
        Xf, yf, Xv, yv = X[~inner], y[~inner], X[inner], y[inner]
        wf = class_weights(np.bincount(yf.astype(int), minlength=2))[yf.astype(int)].astype("float32")
        wv = class_weights(np.bincount(yv.astype(int), minlength=2))[yv.astype(int)].astype("float32")
        yf, yv = target[~inner], target[inner]
        best = trainer.train((Xf, yf, wf), (Xv, yv, wv), s, max_epochs=max_epochs, patience=patience)
        members.append(trainer.weights())
        epochs.append(best)
    trainer.close()
    return MCDropoutMLP(members, dropout, mc_samples, seed, epochs)


class _Trainer:
    """One Keras network and one compiled epoch, re-initialised for every member.

    A hand-written loop: Keras' ``fit`` costs about 0.1-0.2 s per epoch in overhead on a
    small CPU, more than the arithmetic of this network, and tracing a new graph per member
    costs seconds. Adam on the class-weighted cross-entropy (+ L2), one compiled call per
    epoch (fixed number of batches, drawn from a permutation of the training scans); early
    stopping on the balanced validation loss; the best epoch's weights are restored.
    """

    def __init__(self, n_features, hidden, dropout, l2, learning_rate, batch_size, n_batches, seed):
        import keras
        import tensorflow as tf

        self.keras, self.tf = keras, tf
        reg = keras.regularizers.L2(l2)
        layers = [keras.Input((n_features,))]
        for units in hidden:
            layers += [keras.layers.Dense(units, activation="relu", kernel_regularizer=reg),
                       keras.layers.Dropout(dropout, seed=seed)]
        layers.append(keras.layers.Dense(1, activation="sigmoid", kernel_regularizer=reg))
        self.model = model = keras.Sequential(layers)
        self.dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
        self.opt = opt = keras.optimizers.Adam(learning_rate)
        opt.build(model.trainable_variables)
        self.opt_start = [np.array(v.numpy()) for v in opt.variables]  # iterations 0, moments 0, rate
        self.batch_size, self.n_batches = batch_size, n_batches
        bce = keras.losses.BinaryCrossentropy(reduction=None)

        def weighted(out, yb, wb):
            return tf.reduce_sum(wb * bce(yb[:, None], out)) / tf.reduce_sum(wb)

        spec = [tf.TensorSpec((n_batches, batch_size, n_features)), tf.TensorSpec((n_batches, batch_size)),
                tf.TensorSpec((n_batches, batch_size)), tf.TensorSpec((None, n_features)),
                tf.TensorSpec((None,)), tf.TensorSpec((None,))]

        @tf.function(input_signature=spec)
        def epoch(xb, yb, wb, xv, yv, wv):
            for k in range(n_batches):
                with tf.GradientTape() as tape:
                    loss = weighted(model(xb[k], training=True), yb[k], wb[k]) + tf.add_n(model.losses)
                grads = tape.gradient(loss, model.trainable_variables)
                opt.apply_gradients(zip(grads, model.trainable_variables))
            return weighted(model(xv, training=False), yv, wv)

        self.epoch = epoch

    def _reset(self, rng):
        """Glorot-uniform kernels and zero biases from ``rng``; Adam's state back to its start."""
        for d in self.dense:
            fan_in, fan_out = d.kernel.shape
            lim = np.sqrt(6.0 / (fan_in + fan_out))
            d.kernel.assign(rng.uniform(-lim, lim, (fan_in, fan_out)).astype("float32"))
            d.bias.assign(np.zeros(fan_out, "float32"))
        for v, start in zip(self.opt.variables, self.opt_start):
            v.assign(start)

    def train(self, train, valid, seed, *, max_epochs, patience) -> int:
        X, y, w = train
        rng = np.random.default_rng(seed)
        self._reset(rng)
        size = self.n_batches * self.batch_size
        best, best_loss, best_weights, wait = 0, np.inf, self.model.get_weights(), 0
        for e in range(1, max_epochs + 1):
            idx = np.resize(rng.permutation(len(y)), size).reshape(self.n_batches, self.batch_size)
            val_loss = float(self.epoch(X[idx], y[idx], w[idx], *valid))
            if val_loss < best_loss - 1e-6:
                best, best_loss, best_weights, wait = e, val_loss, self.model.get_weights(), 0
            else:
                wait += 1
                if wait >= patience:
                    break
        self.model.set_weights(best_weights)
        return best

    def weights(self):
        return [(np.asarray(d.kernel, float), np.asarray(d.bias, float)) for d in self.dense]

    def close(self):
        self.keras.backend.clear_session()
