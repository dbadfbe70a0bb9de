"""Learning-rate schedule of the paper (triangular cyclical LR) and the LR range test.

The paper trains with a triangular cyclical learning rate (Smith 2017): one cycle per epoch
between ``base_lr = 1e-6`` and ``max_lr = 1e-3``; in the last ``n_shrink = 10`` epochs the
peak shrinks geometrically towards the base. The range came from an LR range test: a short
run with an exponentially increasing LR, loss against log LR.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import keras
import numpy as np
from keras import ops

__all__ = ["TriangularCyclicalLR", "lr_range_test", "suggest_lr_range"]


@keras.saving.register_keras_serializable(package="mriqc_nb")
class TriangularCyclicalLR(keras.optimizers.schedules.LearningRateSchedule):
    """Triangular cyclical learning rate, one cycle per epoch, with a shrinking tail.

    Within epoch ``e`` (0-based) of ``L_e`` steps, at step ``k`` of that epoch
    (``u = k / L_e`` in [0, 1))::

        lr = base + (peak_e - base) * (1 - |2 u - 1|)

    so the LR rises linearly from ``base`` to ``peak_e`` over the first half of the epoch and
    falls back over the second half (step 0 of every epoch is exactly ``base``). The peak is
    ``max_lr`` except in the last ``n_shrink`` epochs of ``epochs``, where::

        peak_e = base * (max / base) ** ((epochs - e) / (n_shrink + 1)),
                 for epochs - n_shrink <= e < epochs

    i.e. a geometric sequence from ``max`` towards ``base``, each epoch ``(max / base) **
    (1 / (n_shrink + 1))`` times smaller than the one before; the last epoch still peaks
    above ``base``. Epochs past ``epochs`` keep the last epoch's peak.

    Parameters
    ----------
    steps_per_epoch : int or sequence of int
        Optimizer steps per epoch; a sequence gives one length per epoch (data-ramping
        grows the training set every epoch); steps past its end repeat the last length.
    base_lr, max_lr : float
        Bottom and top of the cycle.
    epochs : int, optional
        Total epochs; ``None`` (or ``n_shrink=0``) means no shrinking tail.
    n_shrink : int
        Number of final epochs whose peak shrinks.
    """

    def __init__(self, steps_per_epoch, base_lr=1e-6, max_lr=1e-3, epochs=None, n_shrink=10,
                 name="triangular_clr"):
        if np.isscalar(steps_per_epoch):
            lengths = [int(steps_per_epoch)]
            self.steps_per_epoch = int(steps_per_epoch)
        else:
            lengths = [int(s) for s in steps_per_epoch]
            self.steps_per_epoch = lengths
        if not lengths or min(lengths) < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch!r}")
        if not 0 < base_lr <= max_lr:
            raise ValueError(f"need 0 < base_lr <= max_lr, got {base_lr}, {max_lr}")
        if epochs is not None and not 0 <= n_shrink <= epochs:
            raise ValueError(f"need 0 <= n_shrink <= epochs, got {n_shrink}, {epochs}")
        self.base_lr, self.max_lr = float(base_lr), float(max_lr)
        self.epochs = None if epochs is None else int(epochs)
        self.n_shrink = int(n_shrink)
        self.name = name
        self._lengths = np.asarray(lengths, dtype="float32")
        self._starts = np.concatenate([[0.0], np.cumsum(lengths)[:-1]]).astype("float32")

    # -- numpy helpers (plots, tests) ------------------------------------------------------
    def peak_lr(self, epoch):
        """Peak LR of (0-based) ``epoch``; works on arrays."""
        e = np.asarray(epoch, dtype="float64")
        if self.epochs is None or self.n_shrink == 0:
            return np.full_like(e, self.max_lr)
        e = np.minimum(e, self.epochs - 1)
        shrunk = self.base_lr * (self.max_lr / self.base_lr) ** (
            (self.epochs - e) / (self.n_shrink + 1))
        return np.where(e >= self.epochs - self.n_shrink, shrunk, self.max_lr)

    # -- the schedule ---------------------------------------------------------------------
    def _epoch_and_phase(self, step):
        """(epoch index, fraction of the epoch elapsed) as float32 tensors."""
        lengths, starts = self._lengths, self._starts
        total = float(starts[-1] + lengths[-1])
        last = float(lengths[-1])
        # inside the listed epochs
        idx = ops.sum(ops.cast(ops.expand_dims(step, -1) >= starts, "int32"), axis=-1) - 1
        e_in = ops.cast(idx, "float32")
        u_in = (step - ops.take(starts, idx)) / ops.take(lengths, idx)
        # past the listed epochs: repeat the last length
        extra = ops.maximum(step - total, 0.0)
        k = ops.floor(extra / last)
        e_out = float(len(lengths)) + k
        u_out = (extra - k * last) / last
        past = step >= total
        return ops.where(past, e_out, e_in), ops.where(past, u_out, u_in)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        epoch, u = self._epoch_and_phase(step)
        base, top = self.base_lr, self.max_lr
        if self.epochs is None or self.n_shrink == 0:
            peak = ops.full_like(step, top)
        else:
            e = ops.minimum(epoch, float(self.epochs - 1))
            shrunk = base * ops.power(top / base, (self.epochs - e) / (self.n_shrink + 1.0))
            peak = ops.where(e >= self.epochs - self.n_shrink, shrunk, top)
        tri = 1.0 - ops.abs(2.0 * u - 1.0)
        return base + (peak - base) * tri

    def get_config(self):
        return {"steps_per_epoch": self.steps_per_epoch, "base_lr": self.base_lr,
                "max_lr": self.max_lr, "epochs": self.epochs, "n_shrink": self.n_shrink,
                "name": self.name}


def _cycle(dataset):
    """Endless iterator over the batches of ``dataset`` (re-iterates it when exhausted)."""
    for _ in itertools.count():
        empty = True
        for batch in dataset:
            empty = False
            yield batch
        if empty:
            raise ValueError("dataset yields no batches")


def lr_range_test(
    model: keras.Model,
    dataset,
    min_lr: float = 1e-7,
    max_lr: float = 1.0,
    steps: int = 100,
    loss=None,
    optimizer: Callable[..., keras.optimizers.Optimizer] = keras.optimizers.Nadam,
    beta: float = 0.98,
    diverge_factor: float = 4.0,
):
    """LR range test: train briefly with an exponentially increasing LR and record the loss.

    The LR at step ``i`` is ``min_lr * (max_lr / min_lr) ** (i / (steps - 1))`` (Keras'
    ``ExponentialDecay`` with a rate above 1). The test trains a *clone* of ``model`` with
    the same initial weights, so ``model`` (weights, BatchNorm statistics, compile state)
    is left exactly as it was. It stops early when the smoothed loss exceeds
    ``diverge_factor`` times its minimum or is not finite.

    Parameters
    ----------
    model : keras.Model
    dataset : iterable of (x, y) batches
        E.g. a ``tf.data.Dataset``; re-iterated if shorter than ``steps``.
    min_lr, max_lr : float
        LR range, swept on a log scale.
    steps : int
        Number of optimizer steps.
    loss : keras loss, dict or None
        A loss, or a config for :func:`mriqc_nb.model.losses.make_loss`; ``None`` means
        ``{"name": "ce"}``.
    optimizer : callable
        ``optimizer(learning_rate=schedule)`` returns the optimizer (the paper: Nadam).
    beta : float
        Smoothing of the exponential moving average of the loss (bias-corrected).
    diverge_factor : float
        Early-stop threshold relative to the best smoothed loss.

    Returns
    -------
    pandas.DataFrame
        Columns ``step``, ``lr``, ``loss``, ``smoothed_loss``.
    """
    import pandas as pd

    from .losses import make_loss

    if steps < 2 or not 0 < min_lr < max_lr:
        raise ValueError("need steps >= 2 and 0 < min_lr < max_lr")
    if loss is None or isinstance(loss, dict):
        loss = make_loss(loss or {"name": "ce"})
    rate = (max_lr / min_lr) ** (1.0 / (steps - 1))
    schedule = keras.optimizers.schedules.ExponentialDecay(min_lr, decay_steps=1,
                                                           decay_rate=rate)
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    clone.compile(optimizer=optimizer(learning_rate=schedule), loss=loss)

    rows, avg, best = [], 0.0, np.inf
    for i, (x, y) in zip(range(steps), _cycle(dataset)):
        lr = float(keras.ops.convert_to_numpy(clone.optimizer.learning_rate))  # used by this step
        value = float(np.asarray(clone.train_on_batch(x, y)).reshape(-1)[0])
        avg = beta * avg + (1 - beta) * value
        smooth = avg / (1 - beta ** (i + 1))
        rows.append((i, lr, value, smooth))
        best = min(best, smooth)
        if not np.isfinite(smooth) or smooth > diverge_factor * best:
            break
    return pd.DataFrame(rows, columns=["step", "lr", "loss", "smoothed_loss"])


def suggest_lr_range(df, drop: float = 0.1, max_div: float = 10.0) -> tuple[float, float]:
    """Suggest ``(base_lr, max_lr)`` from an LR range test.

    - ``base_lr``: the first LR at which the smoothed loss has fallen by ``drop`` (a
      fraction) of its total fall, i.e. where the loss starts to go down;
    - ``max_lr``: the LR of the minimum smoothed loss divided by ``max_div`` (training at the
      minimum itself is on the edge of divergence), but never below ``base_lr``'s next LR.

    Parameters
    ----------
    df : pandas.DataFrame
        Output of :func:`lr_range_test` (columns ``lr`` and ``smoothed_loss``).
    drop, max_div : float

    Raises
    ------
    ValueError
        If the smoothed loss never falls below its first value.
    """
    lr = np.asarray(df["lr"], dtype="float64")
    s = np.asarray(df["smoothed_loss"], dtype="float64")
    finite = np.isfinite(s)
    lr, s = lr[finite], s[finite]
    i_min = int(np.argmin(s))
    fall = s[0] - s[i_min]
    if fall <= 0:
        raise ValueError("the loss never decreased: widen the LR range or check the data")
    i_base = int(np.argmax(s <= s[0] - drop * fall))
    base = lr[i_base]
    top = max(lr[i_min] / max_div, lr[min(i_base + 1, i_min)])
    return float(base), float(top)
