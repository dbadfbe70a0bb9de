"""The comparison of chapter 8: every method on the test split, with intervals, beside the paper.

A *method* is a trained stage plus a way to decide:

- no referral: the threshold ``t`` on the mean artifact probability is chosen by Youden's J on
  the validation split (``eta = 1``: every scan is kept);
- referral: ``(eta, t)`` chosen on validation by :func:`mriqc_nb.referral.select_operating_point`
  for an uncertainty measure; the referred scans go to a person.

Every decision is fixed on validation and applied unchanged to test. Test metrics carry
stratified percentile-bootstrap intervals over test scans (the policy held fixed).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mriqc_nb import predict, referral
from mriqc_nb.metrics import bootstrap_ci
from mriqc_nb.model import training
from mriqc_nb.profiles import get_profile

__all__ = ["PAPER", "predictions", "stage_metrics", "no_referral_policy", "method_metrics",
           "comparison_table"]

#: Pizarro et al. (2023), test split of their private database (METHOD.md).
PAPER = {
    "baseline": {"accuracy": 0.893, "f1": 0.230},
    "focal": {"accuracy": 0.929, "f1": 0.304},
    "ramp": {"accuracy": 0.949, "f1": 0.357},
    "ramp + MC referral": {"accuracy": 0.995, "f1": 0.834},
}


def predictions(stage: str, profile, split: str, method: str = "mc", *, T: int | None = None,
                seed: int = 0, progress: bool = False) -> tuple[pd.DataFrame, np.ndarray]:
    """Per-scan predictions of a stage's trained model on a split (cached in its run).

    Trains the stage first if needed (:func:`mriqc_nb.model.training.train_stage`), then
    :func:`mriqc_nb.predict.run_predictions`: ``method`` is one of
    :data:`mriqc_nb.predict.METHODS`; ``T`` defaults to the profile's ``mc_samples_valid``
    for ``valid`` and ``mc_samples_test`` otherwise.

    Returns
    -------
    summary : pandas.DataFrame
        One row per scan: its columns, the integer label ``y``, the uncertainty statistics.
    samples : ndarray, shape (S, N, 2)
    """
    p = get_profile(profile)
    run = training.train_stage(stage, p, progress=progress)
    return predict.run_predictions(run, split, method, T=T, seed=seed, profile=p,
                                   progress=progress)


def stage_metrics(stages, profile, split: str = "valid", threshold: float = 0.5,
                  keys=("accuracy", "sensitivity", "specificity", "precision", "f1", "auc",
                        "tp", "fp", "fn")) -> pd.DataFrame:
    """One row per stage: metrics at a fixed threshold, dropout off (chapters 4 and 5).

    Uses the deterministic predictions of each stage's trained model (cached in its run).
    """
    from mriqc_nb.metrics import binary_metrics

    rows = {}
    for stage in stages:
        summary, _ = predictions(stage, profile, split, "deterministic")
        m = binary_metrics(summary["y"], summary["p_artifact"], threshold)
        rows[stage] = {k: m[k] for k in keys}
    return pd.DataFrame(rows).T


def no_referral_policy(valid: pd.DataFrame, measure: str = "mutual_information") -> referral.ReferralPolicy:
    """Threshold by Youden's J on validation (labels: column ``y``), nobody referred (``eta = 1``).

    :func:`mriqc_nb.referral.no_referral_policy` (with its validation warnings) on a
    prediction table.
    """
    return referral.no_referral_policy(valid, measure, labels=valid["y"])


def method_metrics(policy: referral.ReferralPolicy, test: pd.DataFrame, *, n_boot: int = 1000,
                   seed: int = 0, keys=("accuracy", "f1", "sensitivity", "specificity")) -> dict:
    """Test metrics of a fixed policy, with bootstrap intervals for ``keys``.

    Returns a flat dict: every key of :func:`mriqc_nb.referral.evaluate_policy`, plus
    ``<key>_low`` and ``<key>_high`` (95% interval) for each of ``keys``.
    """
    y = test["y"].to_numpy()
    out = referral.evaluate_policy(policy, test, labels=y)
    idx = np.arange(len(test))
    for key in keys:
        def fn(_y, rows, key=key):
            rows = np.asarray(rows, dtype=int)
            return referral.evaluate_policy(policy, test.iloc[rows], labels=y[rows])[key]
        _, low, high = bootstrap_ci(fn, y, idx, n_boot=n_boot, seed=seed)
        out[f"{key}_low"], out[f"{key}_high"] = low, high
    return out


def comparison_table(profile, *, stages=("baseline", "focal", "primed_baseline", "ramp"),
                     referral_stage: str = "ramp", measure: str = "mutual_information",
                     n_boot: int = 1000, seed: int = 0, progress: bool = False) -> pd.DataFrame:
    """One row per method: test metrics with intervals, referral shares, the paper's numbers.

    Methods: each of ``stages`` without referral (MC-dropout mean probability, threshold by
    Youden's J on validation); ``referral_stage`` with MC-dropout referral by ``measure``; and
    ``referral_stage`` with referral by the same measure on MC dropout x the 8 test-time flips.
    """
    rows = []

    def add(name, stage, policy, test):
        m = method_metrics(policy, test, n_boot=n_boot, seed=seed)
        # the two controls of a referral policy on the same test scans (referral.controls)
        controls = referral.evaluate_with_controls(policy, test, labels=test["y"], seed=seed)
        m.update({k: v for k, v in controls.items()
                  if k.endswith(("_no_referral", "_random")) or "_gain_vs_" in k})
        m["warnings"] = "; ".join(policy.warnings)
        paper = PAPER.get(name, {})
        rows.append({"method": name, "stage": stage, "measure": policy.measure if policy.eta < 1 else "-",
                     "eta": policy.eta, "threshold": policy.threshold, **m,
                     "paper_accuracy": paper.get("accuracy", np.nan), "paper_f1": paper.get("f1", np.nan)})

    # One T for validation and test: the uncertainty of T samples depends on T, and a policy
    # fitted at one T refuses a table predicted at another.
    p = get_profile(profile)
    T = p.mc_samples_test
    for stage in stages:
        valid, _ = predictions(stage, profile, "valid", T=T, progress=progress)
        test, _ = predictions(stage, profile, "test", T=T, progress=progress)
        add(stage, stage, no_referral_policy(valid, measure), test)
    valid, _ = predictions(referral_stage, profile, "valid", T=T, progress=progress)
    test, _ = predictions(referral_stage, profile, "test", T=T, progress=progress)
    add(f"{referral_stage} + MC referral", referral_stage,
        referral.select_operating_point(valid, measure=measure, labels=valid["y"]), test)
    t_flips = max(1, T // 8)
    valid_f, _ = predictions(referral_stage, profile, "valid", "mc_flips", T=t_flips, progress=progress)
    test_f, _ = predictions(referral_stage, profile, "test", "mc_flips", T=t_flips, progress=progress)
    add(f"{referral_stage} + MC x flips referral", referral_stage,
        referral.select_operating_point(valid_f, measure=measure, labels=valid_f["y"]), test_f)
    return pd.DataFrame(rows)
