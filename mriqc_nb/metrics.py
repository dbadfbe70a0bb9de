"""Binary classification metrics with the ARTIFACT class as the positive class.

Conventions used throughout the package:

- labels ``y_true``: 1 = artifact (positive), 0 = clean;
- scores: the mean artifact probability ``p_artifact`` (higher = more likely artifact);
- decision: a scan is called *artifact* when ``p_artifact >= threshold``.

Ratios with an empty denominator (e.g. sensitivity with no artifact scan) are NaN, never an
exception, so metrics can be computed on small retained subsets. ROC quantities come from
scikit-learn.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.metrics import roc_curve

__all__ = [
    "safe_auc",
    "binary_metrics",
    "best_threshold",
    "youden_threshold",
    "bootstrap_ci",
    "bootstrap_cis",
    "bootstrap_indices",
    "paired_bootstrap_diff",
    "calibration_table",
    "expected_calibration_error",
]


def _ratio(num, den) -> float:
    return float(num) / float(den) if den else float("nan")


def safe_auc(y_true, score) -> float:
    """ROC AUC of ``score`` for the positive class 1; NaN when only one class is present.

    Computed from ranks (Mann-Whitney U, ties as half), which equals scikit-learn's
    ``roc_auc_score`` and is several times faster, for bootstrap loops.
    """
    y = np.asarray(y_true).astype(int)
    s = np.asarray(score, dtype=float)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if y.size == 0 or n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def binary_metrics(y_true, p_artifact, threshold: float = 0.5) -> dict:
    """Confusion matrix and the usual ratios at one threshold.

    Parameters
    ----------
    y_true : array_like of {0, 1}, shape (N,)
        1 = artifact.
    p_artifact : array_like, shape (N,)
        Artifact probability (any score works; AUC uses it unthresholded).
    threshold : float
        Called artifact when ``p_artifact >= threshold``.

    Returns
    -------
    dict
        ``accuracy``, ``sensitivity`` (TPR, recall of artifacts), ``specificity`` (TNR),
        ``precision`` (PPV), ``f1`` (``2TP / (2TP + FP + FN)``), ``balanced_accuracy``,
        ``youden_j`` (sensitivity + specificity - 1), ``auc`` (NaN with one class), and the
        counts ``tp``, ``fp``, ``tn``, ``fn``, ``n``. Empty denominators give NaN (so an
        empty set of scans is allowed).
    """
    y = np.asarray(y_true).astype(int)
    s = np.asarray(p_artifact, dtype=float)
    pred = s >= threshold
    tp, fp = int(np.sum(pred & (y == 1))), int(np.sum(pred & (y == 0)))
    fn, tn = int(np.sum(~pred & (y == 1))), int(np.sum(~pred & (y == 0)))
    sens, spec = _ratio(tp, tp + fn), _ratio(tn, tn + fp)
    return {
        "accuracy": _ratio(tp + tn, y.size),
        "sensitivity": sens,
        "specificity": spec,
        "precision": _ratio(tp, tp + fp),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "balanced_accuracy": (sens + spec) / 2,
        "youden_j": sens + spec - 1,
        "auc": safe_auc(y, s),
        "tp": tp, "fp": fp, "tn": tn, "fn": fn, "n": int(y.size),
    }


def _criterion(y: np.ndarray, score: np.ndarray, thresholds: np.ndarray, criterion: str) -> np.ndarray:
    """Criterion at each threshold, shape (len(thresholds),); decision ``score >= t``."""
    pred = score[None, :] >= thresholds[:, None]
    pos = y == 1
    tp, fp = (pred & pos).sum(1), (pred & ~pos).sum(1)
    fn = pos.sum() - tp
    if criterion == "youden":
        return tp / max(pos.sum(), 1) - fp / max((~pos).sum(), 1)
    if criterion == "f1":
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.nan_to_num(2 * tp / (2 * tp + fp + fn))
    raise ValueError(f"criterion must be 'youden' or 'f1', got {criterion!r}")


def best_threshold(y_true, score, thresholds, criterion: str = "youden") -> tuple[float, float]:
    """The threshold of ``thresholds`` that maximises Youden's J (or F1); **the** tie rule.

    **Ties** (scores within 1e-12 of the maximum): take the tied threshold nearest the midpoint
    of the lowest and highest tied thresholds, i.e. the middle of the plateau of the criterion,
    away from its edges, where a validation score sits and a slightly different scan flips
    the decision. When two tied thresholds are equally near the midpoint, the higher one wins
    (fewer scans called artifact). Every choice of threshold in the package uses this rule
    (:func:`youden_threshold`, :func:`mriqc_nb.referral.operating_points`).

    Parameters
    ----------
    y_true : array_like of {0, 1}, shape (N,)
        1 = artifact; both classes should be present (else J is 0 or -1 everywhere).
    score : array_like, shape (N,)
        Artifact probability or any score; decision ``score >= t``.
    thresholds : array_like, shape (K,)
        Candidate thresholds (any order).
    criterion : {"youden", "f1"}
        Youden's J = sensitivity + specificity - 1, or F1.

    Returns
    -------
    t : float
        The chosen threshold.
    value : float
        The criterion there.
    """
    y = np.asarray(y_true).astype(int)
    s = np.asarray(score, dtype=float)
    thr = np.sort(np.asarray(thresholds, dtype=float))[::-1]  # high first: exact ties -> higher t
    values = _criterion(y, s, thr, criterion)
    tied = np.flatnonzero(values >= values.max() - 1e-12)
    mid = (thr[tied].min() + thr[tied].max()) / 2
    best = tied[np.argmin(np.abs(thr[tied] - mid))]
    return float(thr[best]), float(values[best])


def youden_threshold(y_true, score) -> tuple[float, float]:
    """Threshold maximising Youden's J = TPR - FPR over the empirical ROC curve.

    The candidates are the thresholds of :func:`sklearn.metrics.roc_curve` (the distinct
    scores, with ``drop_intermediate=False``), decision ``score >= t``. **Ties**: the rule of
    :func:`best_threshold` (the tied threshold nearest the middle of the tied range). If no
    threshold beats J = 0 the result is ``(inf, 0.0)``: call nothing artifact.

    Parameters
    ----------
    y_true : array_like of {0, 1}, shape (N,)
        Both classes must be present.
    score : array_like, shape (N,)

    Returns
    -------
    t : float
    J : float
    """
    y = np.asarray(y_true).astype(int)
    s = np.asarray(score, dtype=float)
    _, _, thr = roc_curve(y, s, drop_intermediate=False)
    t, j = best_threshold(y, s, thr[np.isfinite(thr)], "youden")
    return (float("inf"), 0.0) if j <= 0 else (t, j)


def bootstrap_ci(fn: Callable, y_true, score, *args, n_boot: int = 1000, seed: int = 0,
                 alpha: float = 0.05, stratified: bool = True) -> tuple[float, float, float]:
    """Percentile bootstrap interval of a scalar metric, resampling scans.

    Parameters
    ----------
    fn : callable
        ``fn(y_true, score, *args) -> float`` (e.g. :func:`safe_auc`, or
        ``lambda y, s, t: binary_metrics(y, s, t)["f1"]``).
    y_true : array_like of {0, 1}, shape (N,)
    score : array_like, shape (N,)
    *args
        Passed on to ``fn`` unchanged (e.g. a fixed threshold).
    n_boot : int
        Bootstrap replicates.
    seed : int
    alpha : float
        The interval covers ``1 - alpha`` (percentiles ``alpha/2`` and ``1 - alpha/2``).
    stratified : bool
        Resample artifacts and clean scans separately, each to its own count, so every replicate
        keeps the class balance and both classes (needed for AUC on rare artifacts).

    Returns
    -------
    point, low, high : float
        ``fn`` on the full data, and the interval. NaN replicates are ignored.
    """
    y = np.asarray(y_true).astype(int)
    s = np.asarray(score, dtype=float)
    stats = np.fromiter((fn(y[idx], s[idx], *args) for idx in bootstrap_indices(y, n_boot, seed, stratified)),
                        dtype=float, count=n_boot)
    low, high = np.nanquantile(stats, [alpha / 2, 1 - alpha / 2])
    return float(fn(y, s, *args)), float(low), float(high)


def bootstrap_indices(y_true, n_boot: int = 1000, seed: int = 0, stratified: bool = True):
    """The resamples of :func:`bootstrap_ci`: ``n_boot`` index arrays, the same for a seed.

    Stratified: each class resampled to its own count, artifacts after clean scans.
    """
    y = np.asarray(y_true).astype(int)
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if stratified else [np.arange(y.size)]
    for _ in range(n_boot):
        yield np.concatenate([rng.choice(g, g.size, replace=True) for g in groups])


def bootstrap_cis(fn: Callable, y_true, keys, *, n_boot: int = 1000, seed: int = 0,
                  alpha: float = 0.05, stratified: bool = True) -> dict:
    """Percentile intervals of several metrics from *one* set of resamples.

    ``fn(rows) -> dict`` computes every metric on the scans ``rows`` (an index array). Each
    key's interval is the one :func:`bootstrap_ci` gives for that metric alone with the same
    ``seed`` (the same resamples), at one evaluation per resample instead of one per key.

    Returns
    -------
    dict key -> (low, high)
    """
    stats = {key: np.empty(n_boot) for key in keys}
    for b, idx in enumerate(bootstrap_indices(y_true, n_boot, seed, stratified)):
        values = fn(idx)
        for key in keys:
            stats[key][b] = values[key]
    return {key: tuple(float(q) for q in np.nanquantile(v, [alpha / 2, 1 - alpha / 2]))
            for key, v in stats.items()}


def paired_bootstrap_diff(fn: Callable, y_true, score_a, score_b, *, n_boot: int = 1000, seed: int = 0,
                          alpha: float = 0.05, stratified: bool = True) -> dict:
    """Bootstrap interval of ``fn(method A) - fn(method B)`` on the **same** test scans.

    Each replicate resamples the scans once and scores both methods on that one resample, so
    the variation the two share (which scans happen to be hard) cancels. This is the interval
    to read when comparing two methods; two separate intervals that overlap say little.

    Parameters
    ----------
    fn : callable
        ``fn(y_true, score) -> float`` (e.g. :func:`safe_auc`, or
        ``lambda y, s: binary_metrics(y, s, t)["f1"]``). A score may also be an integer
        array of row positions into a table that ``fn`` closes over.
    y_true : array_like of {0, 1}, shape (N,)
    score_a, score_b : array_like, shape (N,)
        The two methods' scores for the same scans, in the same order.
    n_boot, seed, alpha, stratified
        As in :func:`bootstrap_ci`.

    Returns
    -------
    dict
        ``a``, ``b`` (``fn`` on all scans), ``diff`` (= a - b), ``low``, ``high`` (the
        ``1 - alpha`` percentile interval of the difference), ``p_le_0`` (share of replicates
        whose difference is <= 0: a one-sided bootstrap p-value for "A better than B"), and
        ``n_boot``.
    """
    y = np.asarray(y_true).astype(int)
    a, b = np.asarray(score_a), np.asarray(score_b)
    if not (a.shape[0] == b.shape[0] == y.size):
        raise ValueError(f"{y.size} labels, {a.shape[0]} and {b.shape[0]} scores: the methods must score the same scans")
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if stratified else [np.arange(y.size)]
    diffs = np.empty(n_boot)
    for i in range(n_boot):
        idx = np.concatenate([rng.choice(g, g.size, replace=True) for g in groups])
        diffs[i] = fn(y[idx], a[idx]) - fn(y[idx], b[idx])
    low, high = np.nanquantile(diffs, [alpha / 2, 1 - alpha / 2])
    fa, fb = float(fn(y, a)), float(fn(y, b))
    return {"a": fa, "b": fb, "diff": fa - fb, "low": float(low), "high": float(high),
            "p_le_0": float(np.nanmean(diffs <= 0)), "n_boot": int(n_boot)}


def calibration_table(y_true, p, n_bins: int = 10) -> pd.DataFrame:
    """Reliability table of the artifact probability in equal-width bins.

    Bin ``k`` holds ``k/n_bins <= p < (k+1)/n_bins``; the last bin also holds ``p = 1``.
    This is the calibration of the positive (artifact) class, as in
    :func:`sklearn.calibration.calibration_curve`, not of the top-class confidence.

    Parameters
    ----------
    y_true : array_like of {0, 1}, shape (N,)
    p : array_like in [0, 1], shape (N,)
        Predicted artifact probability.
    n_bins : int

    Returns
    -------
    pandas.DataFrame, n_bins rows
        ``lower``, ``upper``, ``n``, ``mean_predicted`` (mean p in the bin),
        ``fraction_artifact`` (observed rate), ``gap`` (observed - predicted; > 0 means
        under-confident about artifacts). Empty bins have n = 0 and NaN.
    """
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(p, dtype=float)
    k = np.clip(np.floor(p * n_bins).astype(int), 0, n_bins - 1)
    n = np.bincount(k, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(k, weights=p, minlength=n_bins) / n
        frac = np.bincount(k, weights=y, minlength=n_bins) / n
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return pd.DataFrame({"lower": edges[:-1], "upper": edges[1:], "n": n,
                         "mean_predicted": mean_p, "fraction_artifact": frac, "gap": frac - mean_p})


def expected_calibration_error(y_true, p, n_bins: int = 10) -> float:
    """ECE = sum over bins of (n_bin / N) * |observed artifact rate - mean p|.

    Same bins as :func:`calibration_table` (equal width, artifact probability). 0 for a
    perfectly calibrated model; grows with over- or under-confidence.
    """
    tab = calibration_table(y_true, p, n_bins)
    full = tab["n"] > 0
    return float((tab.loc[full, "n"] * tab.loc[full, "gap"].abs()).sum() / tab["n"].sum())
