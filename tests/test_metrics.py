"""Binary metrics, Youden threshold, bootstrap intervals, calibration."""

from __future__ import annotations

import numpy as np
import pytest

from mriqc_nb import metrics as M


def test_binary_metrics_hand_made_confusion_matrix():
    y = [1, 1, 1, 0, 0, 0, 0, 0]
    p = [0.9, 0.5, 0.2, 0.5, 0.3, 0.1, 0.0, 0.2]  # threshold 0.5 inclusive: TP 2, FN 1, FP 1, TN 4
    m = M.binary_metrics(y, p, 0.5)
    assert (m["tp"], m["fn"], m["fp"], m["tn"], m["n"]) == (2, 1, 1, 4, 8)
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["sensitivity"] == pytest.approx(2 / 3)
    assert m["specificity"] == pytest.approx(4 / 5)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert m["youden_j"] == pytest.approx(2 / 3 + 4 / 5 - 1)
    assert 0 < m["auc"] <= 1


def test_binary_metrics_degenerate_sets_give_nan_not_errors():
    m = M.binary_metrics([0, 0, 0], [0.1, 0.7, 0.2], 0.5)
    assert np.isnan(m["sensitivity"]) and np.isnan(m["auc"]) and m["specificity"] == pytest.approx(2 / 3)
    e = M.binary_metrics([], [], 0.5)
    assert e["n"] == 0 and np.isnan(e["accuracy"])


def test_youden_threshold_hand_made_roc():
    y = [1, 1, 1, 1, 0, 0, 0, 0]
    s = [0.9, 0.8, 0.7, 0.3, 0.6, 0.4, 0.2, 0.1]
    # t=0.7: TPR 3/4, FPR 0 -> J 0.75 (t=0.3: 1 - 2/4 = 0.5; t=0.6: 3/4 - 1/4 = 0.5)
    t, j = M.youden_threshold(y, s)
    assert t == pytest.approx(0.7) and j == pytest.approx(0.75)


def test_youden_threshold_tie_rule_is_the_middle_of_the_tied_range():
    # One tie rule for the whole package (metrics.best_threshold): among tied thresholds, the one
    # nearest the middle of the tied range. (It used to be the highest here and the middle in
    # referral: two rules for one choice.)
    y = [1, 1, 1, 1, 0, 0, 0, 0]
    s = [0.9, 0.8, 0.6, 0.3, 0.7, 0.4, 0.2, 0.1]   # J = 0.5 at t = 0.8, 0.6 and 0.3; middle 0.55
    t, j = M.youden_threshold(y, s)
    assert j == pytest.approx(0.5) and t == pytest.approx(0.6)
    assert M.best_threshold(y, s, [0.8, 0.6, 0.3, 0.7]) == (pytest.approx(0.6), pytest.approx(0.5))


def test_best_threshold_plateau_and_exact_midpoint_tie():
    y = np.r_[np.zeros(10), np.ones(10)].astype(int)
    s = np.r_[np.full(10, 0.2), np.full(10, 0.8)]
    grid = np.linspace(0.05, 0.95, 19)              # J = 1 for every t in (0.2, 0.8]
    t, j = M.best_threshold(y, s, grid)
    assert j == 1.0 and t == pytest.approx(0.5)
    # two tied thresholds equally near the middle: the higher one (fewer scans called artifact)
    t2, _ = M.best_threshold(y, s, [0.3, 0.7])
    assert t2 == 0.7
    # F1 as the criterion, and the order of the candidates does not matter
    assert M.best_threshold(y, s, grid[::-1], "f1")[0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="criterion"):
        M.best_threshold(y, s, grid, "accuracy")
    # no signal: J never beats 0, youden_threshold calls nothing artifact
    assert M.youden_threshold([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == (float("inf"), 0.0)


def test_paired_bootstrap_diff_cancels_shared_variation():
    rng = np.random.default_rng(0)
    n = 300
    y = (rng.random(n) < 0.3).astype(int)
    hard = rng.normal(0, 1, n)                       # what both methods find hard
    a = y * 1.5 + hard + rng.normal(0, 0.3, n)
    b = y * 1.2 + hard + rng.normal(0, 0.3, n)
    d = M.paired_bootstrap_diff(M.safe_auc, y, a, b, n_boot=300)
    assert d["diff"] == pytest.approx(M.safe_auc(y, a) - M.safe_auc(y, b))
    assert d["low"] < d["diff"] < d["high"] and d["low"] > 0 and d["p_le_0"] < 0.05
    # the same method against itself: a zero-width interval at 0
    same = M.paired_bootstrap_diff(M.safe_auc, y, a, a, n_boot=50)
    assert same["low"] == same["high"] == same["diff"] == 0 and same["p_le_0"] == 1.0
    # the paired interval is narrower than the unpaired intervals would suggest
    _, lo_a, hi_a = M.bootstrap_ci(M.safe_auc, y, a, n_boot=300)
    assert d["high"] - d["low"] < hi_a - lo_a
    with pytest.raises(ValueError, match="same scans"):
        M.paired_bootstrap_diff(M.safe_auc, y, a, b[:-1])


def _noisy_scores(n, seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    return y, y * 1.0 + rng.normal(0, 0.8, n)


def test_bootstrap_ci_contains_point_and_shrinks_with_more_data():
    y, s = _noisy_scores(60, 0)
    point, lo, hi = M.bootstrap_ci(M.safe_auc, y, s, n_boot=300)
    assert lo <= point <= hi and lo < hi
    assert point == pytest.approx(M.safe_auc(y, s))
    y10, s10 = np.tile(y, 10), np.tile(s, 10)          # same distribution, 10x the scans
    p2, lo2, hi2 = M.bootstrap_ci(M.safe_auc, y10, s10, n_boot=300)
    assert p2 == pytest.approx(point) and lo2 <= p2 <= hi2
    assert (hi2 - lo2) < 0.5 * (hi - lo)
    # extra args reach fn; stratified replicates keep the class counts
    f1 = lambda yy, ss, t: M.binary_metrics(yy, ss, t)["f1"]  # noqa: E731
    p3, lo3, hi3 = M.bootstrap_ci(f1, y, s, 0.5, n_boot=200, seed=1)
    assert lo3 <= p3 <= hi3
    counts = lambda yy, ss: yy.sum()  # noqa: E731
    assert M.bootstrap_ci(counts, y, s, n_boot=50)[1:] == (y.sum(), y.sum())
    assert M.bootstrap_ci(counts, y, s, n_boot=50, stratified=False)[1] < y.sum()


def test_ece_zero_when_calibrated_positive_when_overconfident():
    p, y = [], []
    for prob, n_pos in ((0.05, 1), (0.25, 5), (0.75, 15), (0.95, 19)):  # 20 scans per bin
        p += [prob] * 20
        y += [1] * n_pos + [0] * (20 - n_pos)
    assert M.expected_calibration_error(y, p) == pytest.approx(0.0, abs=1e-12)
    over = [0.99 if v > 0.5 else 0.01 for v in p]   # same ranking, pushed to the extremes
    ece = M.expected_calibration_error(y, over)
    # half the scans at 0.99 with 34/40 artifacts, half at 0.01 with 6/40: |0.85 - 0.99| = |0.15 - 0.01|
    assert ece == pytest.approx(0.14)
    tab = M.calibration_table(y, p)
    assert len(tab) == 10 and tab["n"].sum() == 80 and (tab["n"] > 0).sum() == 4


def test_calibration_bins_edges():
    tab = M.calibration_table([0, 1, 1], [0.0, 0.1, 1.0], n_bins=10)
    assert list(tab["n"].iloc[[0, 1, 9]]) == [1, 1, 1]   # 0 -> first, 0.1 -> second, 1 -> last
    assert np.isnan(tab["fraction_artifact"].iloc[5])


def test_bootstrap_cis_gives_each_key_the_interval_of_bootstrap_ci():
    """Several metrics from one set of resamples: each key's interval is bootstrap_ci's alone."""
    from mriqc_nb.metrics import binary_metrics, bootstrap_ci, bootstrap_cis

    rng = np.random.default_rng(4)
    y = (rng.random(300) < 0.1).astype(int)
    s = np.clip(0.3 * y + rng.random(300) * 0.8, 0, 1)
    keys = ("f1", "sensitivity", "specificity")
    cis = bootstrap_cis(lambda rows: binary_metrics(y[rows], s[rows], 0.5), y, keys, n_boot=300, seed=7)
    for key in keys:
        _, low, high = bootstrap_ci(lambda yy, ss, k=key: binary_metrics(yy, ss, 0.5)[k], y, s, n_boot=300, seed=7)
        assert cis[key] == (low, high), key
    assert cis["sensitivity"][0] < cis["sensitivity"][1]            # not a degenerate interval
