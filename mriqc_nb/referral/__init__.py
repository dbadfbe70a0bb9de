"""Refer the most uncertain scans to a person; decide the rest automatically.

The recipe of Pizarro et al. (2023), with one defect of their code fixed:

1. Rescale an uncertainty measure (a column of :func:`mriqc_nb.uncertainty.summarise`:
   ``mutual_information``, ``entropy``, ``variance``, ...) to [0, 1] with the **validation**
   set's minimum and maximum (:class:`UncertaintyScaler`). Their code rescaled the test set with
   the test set's own min/max, which lets the test data choose its own referral cut. Here the
   scaler is fitted once, on validation, stored in the model bundle, and applied unchanged to
   every other set; values outside the validation range are clipped to [0, 1].
2. For each eta in :data:`ETA_GRID`, keep the scans with scaled uncertainty below eta and
   refer the others (eta = 1 refers nobody).
3. On the kept scans, sweep the threshold ``t`` of :data:`THRESHOLD_GRID`; a scan is called
   artifact when ``p_artifact >= t`` (the grid is symmetric, so this is the same sweep as one
   over the clean probability). Score each t by Youden's J = TPR - FPR.
4. Choose (eta, t) on validation (:func:`select_operating_point`), then apply them unchanged to
   test (:func:`apply_policy`, :func:`evaluate_policy`).

What referral itself buys is measured against two controls on the same test scans
(:func:`evaluate_with_controls`): the policy's threshold with nobody referred, and random
referral of the same share. A policy that was chosen on a validation set without signal
carries ``warnings`` (validation J <= 0, validation AUC interval containing 0.5, too few
validation artifacts). The number of Monte Carlo samples T is part of the uncertainty: a
policy remembers the T of its validation table (column ``n_samples``) and refuses a table
predicted with another T. :func:`referral_table` runs the whole "choose on validation, score
on test, with controls" loop for several measures.

A table is a :class:`pandas.DataFrame` with one row per scan holding ``p_artifact`` and the
uncertainty columns, plus the labels (1 = artifact) either as a ``label`` column or passed
explicitly.
"""

from mriqc_nb.referral.controls import CONTROL_KEYS, evaluate_with_controls, referral_curve, referral_table
from mriqc_nb.referral.policy import (ETA_GRID, THRESHOLD_GRID, ReferralPolicy, UncertaintyScaler,
                                      apply_policy, evaluate_policy, no_referral_policy, operating_points,
                                      select_and_evaluate, select_operating_point)

__all__ = [
    "THRESHOLD_GRID",
    "ETA_GRID",
    "CONTROL_KEYS",
    "UncertaintyScaler",
    "ReferralPolicy",
    "operating_points",
    "select_operating_point",
    "no_referral_policy",
    "apply_policy",
    "evaluate_policy",
    "select_and_evaluate",
    "evaluate_with_controls",
    "referral_table",
    "referral_curve",
]
