"""What referral buys: controls on the same test scans, the policy table, referral curves.

See :mod:`mriqc_nb.referral` for the recipe. Nothing here fits anything: policies come from
:func:`mriqc_nb.referral.policy.select_operating_point` on validation.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from mriqc_nb.referral.policy import (ReferralPolicy, _column, _labels, _summary, evaluate_policy,
                                      no_referral_policy, select_operating_point)

__all__ = ["CONTROL_KEYS", "evaluate_with_controls", "referral_table", "referral_curve"]

#: Metrics compared with the controls by :func:`evaluate_with_controls`.
CONTROL_KEYS = ("balanced_accuracy", "f1", "accuracy")


# --------------------------------------------------------------------------------------------
# Controls: what referral buys beyond its threshold and beyond removing scans
# --------------------------------------------------------------------------------------------
def _random_referral(y: np.ndarray, p: np.ndarray, threshold: float, k: int, n_draws: int,
                     seed: int) -> dict:
    """Metrics on the kept scans when ``k`` random scans are referred, one value per draw."""
    rng = np.random.default_rng(seed)
    n = y.size
    order = np.argsort(rng.random((n_draws, n)), axis=1)
    kept = np.ones((n_draws, n), dtype=bool)
    np.put_along_axis(kept, order[:, :k], False, axis=1)
    pred, pos = p >= threshold, y == 1
    tp = (kept & pred & pos).sum(1)
    fp = (kept & pred & ~pos).sum(1)
    fn = (kept & ~pred & pos).sum(1)
    tn = (kept & ~pred & ~pos).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sens, spec = tp / (tp + fn), tn / (tn + fp)
        return {"accuracy": (tp + tn) / (n - k), "sensitivity": sens, "specificity": spec,
                "balanced_accuracy": (sens + spec) / 2, "f1": 2 * tp / (2 * tp + fp + fn)}


def evaluate_with_controls(policy: ReferralPolicy, table: pd.DataFrame, labels=None, *,
                           n_draws: int = 200, seed: int = 0, keys=CONTROL_KEYS) -> dict:
    """A policy's metrics beside its two controls on the same scans.

    - **no referral**: the policy's threshold, nobody referred. The difference to it is
      everything the policy changes by referring; the difference between this control and a
      rule chosen without referral is the change of *threshold*, which is not referral's
      merit.
    - **random referral**: the policy's threshold, and as many scans as the policy referred on
      this table, drawn at random (mean over ``n_draws`` seeded draws). The difference to it
      is what the *uncertainty* adds: referral's own gain.

    Parameters
    ----------
    policy : ReferralPolicy
    table : DataFrame
        ``p_artifact``, the policy's measure and (unless ``labels``) ``label``.
    labels : array_like of {0, 1}, optional
    n_draws, seed : int
        Random draws of the random control.
    keys : sequence of str
        Metrics compared (any of ``accuracy``, ``sensitivity``, ``specificity``,
        ``balanced_accuracy``, ``f1``).

    Returns
    -------
    dict
        :func:`evaluate_policy`, plus for each key: ``<key>_no_referral``, ``<key>_random``
        (mean over the draws; NaN draws ignored), ``<key>_gain_vs_no_referral``,
        ``<key>_gain_vs_random`` (policy minus control) and ``<key>_random_p`` (share of draws
        at least as good as the policy: a permutation p-value of the gain over random); and
        ``warnings`` (the policy's, joined by ``"; "``), ``n_draws``.
    """
    y = _labels(table, labels)
    p = _column(table, "p_artifact")
    m = evaluate_policy(policy, table, labels)
    none = _summary(y, p, np.zeros(y.size, dtype=bool), policy.threshold)
    k = int(round(m["referred_fraction"] * y.size))
    rand = _random_referral(y, p, policy.threshold, k, n_draws, seed)
    for key in keys:
        draws = rand[key]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = float(np.nanmean(draws)) if k else none[key]  # referring nobody at random is no referral
        m[f"{key}_no_referral"] = none[key]
        m[f"{key}_random"] = mean
        m[f"{key}_gain_vs_no_referral"] = m[key] - none[key]
        m[f"{key}_gain_vs_random"] = m[key] - mean
        m[f"{key}_random_p"] = float(np.mean(draws >= m[key] - 1e-12)) if k else 1.0
    m.update({"warnings": "; ".join(policy.warnings), "n_draws": int(n_draws)})
    return m


_TABLE_KEYS = ("retained_fraction", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "f1",
               "auc", "needs_person_fraction", "missed_artifact_fraction")


def referral_table(valid_table: pd.DataFrame, test_tables, measures=("mutual_information",), *,
                   no_referral: bool = True, criterion: str = "youden", min_retained: float = 0.5,
                   min_artifacts: int = 5, n_boot: int = 500, n_draws: int = 200, seed: int = 0,
                   keys=CONTROL_KEYS) -> tuple[pd.DataFrame, dict]:
    """Choose each policy on validation, score it on every test set, with its controls.

    The loop every chapter runs: for each measure, :func:`select_operating_point` on
    ``valid_table`` (and, first, the rule without referral, :func:`no_referral_policy`); then
    :func:`evaluate_with_controls` on each test table, with the policy frozen.

    Parameters
    ----------
    valid_table : DataFrame
        Validation predictions with ``label`` (1 = artifact).
    test_tables : DataFrame or mapping name -> DataFrame
        One or several test sets (a lone table is named ``"test"``), each with ``label`` and
        the same T (``n_samples``) as ``valid_table``.
    measures : sequence of str
        Uncertainty columns to refer by.
    no_referral : bool
        Add the row ``"none"`` (threshold by Youden's J on all validation scans, eta = 1).
    criterion, min_retained, min_artifacts, n_boot
        See :func:`select_operating_point`.
    n_draws, seed, keys
        See :func:`evaluate_with_controls`.

    Returns
    -------
    table : DataFrame
        Indexed by (``referral by``, ``set``): ``eta``, ``t``, the metrics on the retained
        scans (``retained_fraction``, ``accuracy``, ``balanced_accuracy``, ``sensitivity``,
        ``specificity``, ``f1``, ``auc``, ``needs_person_fraction``,
        ``missed_artifact_fraction``), for each of ``keys`` the controls
        ``<key>_no_referral``, ``<key>_random``, ``<key>_gain_vs_random``, ``<key>_random_p``
        (share of random draws at least as good), and ``warnings``.
    policies : dict name -> ReferralPolicy
    """
    tests = {"test": test_tables} if isinstance(test_tables, pd.DataFrame) else dict(test_tables)
    opts = dict(criterion=criterion, min_retained=min_retained, min_artifacts=min_artifacts,
                n_boot=n_boot, seed=seed)
    policies = {}
    if no_referral:
        policies["none"] = no_referral_policy(valid_table, measures[0] if measures else "mutual_information",
                                              min_artifacts=min_artifacts, n_boot=n_boot, seed=seed)
    policies.update({m: select_operating_point(valid_table, measure=m, **opts) for m in measures})
    rows = []
    for name, policy in policies.items():
        for set_name, test in tests.items():
            m = evaluate_with_controls(policy, test, n_draws=n_draws, seed=seed, keys=keys)
            rows.append({"referral by": name, "set": set_name, "eta": policy.eta, "t": policy.threshold,
                         **{k: m[k] for k in _TABLE_KEYS},
                         **{f"{k}_{c}": m[f"{k}_{c}"] for k in keys
                            for c in ("no_referral", "random", "gain_vs_random", "random_p")},
                         "warnings": m["warnings"]})
    return pd.DataFrame(rows).set_index(["referral by", "set"]), policies


# --------------------------------------------------------------------------------------------
# Referral curves
# --------------------------------------------------------------------------------------------
_CURVE_KEYS = ("accuracy", "sensitivity", "specificity", "precision", "f1", "balanced_accuracy",
               "auc", "needs_person_fraction", "missed_artifact_fraction", "n_retained")


def referral_curve(table: pd.DataFrame, labels=None, measure: str = "mutual_information",
                   threshold: float = 0.5, fractions=np.linspace(0, 0.5, 26), random: bool = False,
                   seed: int = 0, n_repeats: int = 20) -> pd.DataFrame:
    """Metrics on the retained scans as a growing fraction is referred.

    With ``random=False`` the scans with the highest ``measure`` are referred first (NaN first
    of all; ties keep table order); with ``random=True`` a random subset of the same size is
    referred instead, averaged over ``n_repeats`` permutations -- the control showing whether
    the uncertainty is informative. No rescaling is needed: only the ranking matters.

    Parameters
    ----------
    table : DataFrame
        ``p_artifact``, ``measure`` and (unless ``labels``) ``label``.
    labels : array_like of {0, 1}, shape (N,), optional
    measure : str
    threshold : float
        Fixed decision threshold on ``p_artifact`` (e.g. ``policy.threshold``).
    fractions : array_like in [0, 1]
        Requested fractions referred; ``round(fraction * N)`` scans are referred.
    random : bool
    seed, n_repeats : int
        For ``random=True`` only.

    Returns
    -------
    DataFrame, one row per fraction
        ``fraction``, ``referred_fraction`` (actual), and ``accuracy``, ``sensitivity``,
        ``specificity``, ``precision``, ``f1``, ``balanced_accuracy``, ``auc`` on the retained
        scans, ``needs_person_fraction``, ``missed_artifact_fraction`` and ``n_retained``
        (means over repeats for ``random=True``, NaN-aware).
    """
    y = _labels(table, labels)
    p = _column(table, "p_artifact")
    u = _column(table, measure)
    n = y.size
    if random:
        rng = np.random.default_rng(seed)
        orders = [rng.permutation(n) for _ in range(n_repeats)]
    else:
        orders = [np.argsort(-np.where(np.isnan(u), np.inf, u), kind="stable")]
    rows = []
    for f in np.asarray(fractions, dtype=float):
        k = int(round(f * n))
        per = []
        for order in orders:
            referred = np.zeros(n, dtype=bool)
            referred[order[:k]] = True
            s = _summary(y, p, referred, threshold)
            per.append([s[key] for key in _CURVE_KEYS])
        with warnings.catch_warnings():  # an all-NaN column (e.g. AUC with one class) stays NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(np.asarray(per, dtype=float), axis=0)
        rows.append({"fraction": float(f), "referred_fraction": k / n, **dict(zip(_CURVE_KEYS, mean))})
    return pd.DataFrame(rows)
