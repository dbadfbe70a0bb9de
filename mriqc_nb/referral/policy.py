"""Referral policies: the uncertainty scaler, the operating point chosen on validation, and
its application to any set (see :mod:`mriqc_nb.referral` for the recipe)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mriqc_nb.labels import ARTIFACT, CLEAN, REFER, to_y
from mriqc_nb.metrics import best_threshold, binary_metrics, bootstrap_ci, safe_auc

__all__ = ["THRESHOLD_GRID", "ETA_GRID", "UncertaintyScaler", "ReferralPolicy", "operating_points",
           "select_operating_point", "no_referral_policy", "apply_policy", "evaluate_policy",
           "select_and_evaluate"]

_TAIL = np.logspace(-4, -1, 25)
#: 99 thresholds on the artifact probability, denser near 0 and 1: 25 log-spaced values from
#: 1e-4 to 0.1 (8 per decade), 49 evenly spaced values strictly between 0.1 and 0.9 (step
#: 0.016), and the mirror image ``1 - t`` of the first 25 (0.9 to 0.9999). Symmetric under
#: ``t -> 1 - t``, so it is equally a grid on the clean probability. Confident networks put
#: most scans within 1e-2 of 0 or 1, hence the log-spaced tails.
THRESHOLD_GRID: np.ndarray = np.concatenate([_TAIL, np.linspace(0.1, 0.9, 51)[1:-1], (1 - _TAIL)[::-1]])
#: Referral cut-offs on the scaled uncertainty; 1.0 means no referral.
ETA_GRID: tuple[float, ...] = (1.0, 0.5, 0.1, 0.01, 0.001)
#: Selection criteria of :func:`select_operating_point`.
CRITERIA = ("youden", "f1")


def _labels(table: pd.DataFrame, labels=None) -> np.ndarray:
    """Integer labels ``y`` (N,), from ``labels`` if given, else from the table's ``y`` column
    (prediction tables), else from its ``label`` column (text or 0/1)."""
    if labels is None:
        column = next((c for c in ("y", "label") if c in table.columns), None)
        if column is None:
            raise KeyError("no labels: pass labels=... or add a 'y' column (1 = artifact)")
        labels = table[column]
    y = to_y(labels)
    if y.shape != (len(table),):
        raise ValueError(f"{y.size} labels for {len(table)} scans")
    return y


def _column(table: pd.DataFrame, name: str) -> np.ndarray:
    if name not in table.columns:
        raise KeyError(f"table has no column {name!r}; columns: {list(table.columns)}")
    return table[name].to_numpy(dtype=float)


def _referred(scaled: np.ndarray, eta: float) -> np.ndarray:
    """Refer when scaled >= eta; eta >= 1 refers nobody. A NaN uncertainty is always referred."""
    if eta >= 1:
        return np.isnan(scaled)
    return ~(scaled < eta)


def _clean_json(d: dict) -> dict:
    """Plain Python numbers, NaN -> None, so that ``json.dumps`` gives strict JSON."""
    out = {}
    for k, v in d.items():
        if isinstance(v, (np.integer, np.bool_)):
            v = v.item()
        elif isinstance(v, (float, np.floating)):
            v = None if math.isnan(v) else float(v)
        out[k] = v
    return out


# --------------------------------------------------------------------------------------------
# Rescaling, fitted on validation only
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UncertaintyScaler:
    """Min-max rescaling of an uncertainty to [0, 1], fitted on the validation set.

    ``transform(u) = clip((u - vmin) / (vmax - vmin), 0, 1)``. Fit with :meth:`fit` on
    validation and never refit: a test value above the validation maximum becomes 1 (always
    referred for eta < 1), one below the minimum becomes 0. ``clip=False`` shows the raw
    values, which may then fall outside [0, 1]. If ``vmax == vmin`` every value above
    ``vmax`` maps to 1 and the others to 0.

    Attributes
    ----------
    vmin, vmax : float
        Validation minimum and maximum (NaNs ignored).
    """

    vmin: float
    vmax: float

    @classmethod
    def fit(cls, values) -> "UncertaintyScaler":
        """Scaler from the validation uncertainties, shape (N,)."""
        v = np.asarray(values, dtype=float)
        if not np.isfinite(v).any():
            raise ValueError("cannot fit a scaler without a finite value")
        return cls(float(np.nanmin(v)), float(np.nanmax(v)))

    def transform(self, values, clip: bool = True) -> np.ndarray:
        """Scaled uncertainties, shape of ``values``; NaN stays NaN."""
        v = np.asarray(values, dtype=float)
        span = self.vmax - self.vmin
        if span > 0:
            s = (v - self.vmin) / span
        else:
            s = np.where(np.isnan(v), np.nan, (v > self.vmax).astype(float))
        return np.clip(s, 0.0, 1.0) if clip else s

    def to_dict(self) -> dict:
        return {"vmin": float(self.vmin), "vmax": float(self.vmax)}

    @classmethod
    def from_dict(cls, d: dict) -> "UncertaintyScaler":
        return cls(float(d["vmin"]), float(d["vmax"]))


@dataclass(frozen=True)
class ReferralPolicy:
    """An operating point chosen on validation: what travels in the model bundle.

    Attributes
    ----------
    measure : str
        Uncertainty column, e.g. ``"mutual_information"``.
    eta : float
        Refer scans with scaled uncertainty >= eta (eta = 1: refer none).
    threshold : float
        Call a retained scan artifact when ``p_artifact >= threshold``.
    scaler : UncertaintyScaler
        Validation min/max of ``measure``.
    valid_metrics : dict
        :func:`evaluate_policy` on the validation set (for the record; not used to decide).
    criterion : str
        The score that chose the operating point (``"youden"`` or ``"f1"``).
    n_samples : int or None
        T, the number of samples behind the validation uncertainties (the table's
        ``n_samples`` column); ``None`` when unknown. :func:`apply_policy` refuses a table
        with another T, since the spread of T samples, and so the scaled uncertainty,
        depends on T.
    warnings : tuple of str
        Why the validation set does not support this policy (see
        :func:`select_operating_point`); empty when nothing was found.
    """

    measure: str
    eta: float
    threshold: float
    scaler: UncertaintyScaler
    valid_metrics: dict = field(default_factory=dict, compare=False)
    criterion: str = "youden"
    n_samples: int | None = None
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def to_dict(self) -> dict:
        """JSON-serialisable state (strict JSON: NaN metrics become None)."""
        return {"measure": self.measure, "eta": float(self.eta), "threshold": float(self.threshold),
                "scaler": self.scaler.to_dict(), "valid_metrics": _clean_json(self.valid_metrics),
                "criterion": self.criterion, "n_samples": self.n_samples, "warnings": list(self.warnings)}

    @classmethod
    def from_dict(cls, d: dict) -> "ReferralPolicy":
        vm = {k: (float("nan") if v is None else v) for k, v in d.get("valid_metrics", {}).items()}
        n = d.get("n_samples")
        return cls(d["measure"], float(d["eta"]), float(d["threshold"]),
                   UncertaintyScaler.from_dict(d["scaler"]), vm, d.get("criterion", "youden"),
                   None if n is None else int(n), tuple(d.get("warnings", ())))


def _sample_count(table: pd.DataFrame) -> int | None:
    """T of a prediction table: its ``n_samples`` column (one value), else None."""
    if "n_samples" not in table.columns or table.empty:
        return None
    values = pd.unique(table["n_samples"].dropna())
    if len(values) > 1:
        raise ValueError(f"the table mixes predictions with different numbers of samples T: {sorted(values)}")
    return int(values[0]) if len(values) else None


# --------------------------------------------------------------------------------------------
# Choosing (eta, t) on validation
# --------------------------------------------------------------------------------------------
def operating_points(valid_table: pd.DataFrame, labels=None, measure: str = "mutual_information",
                     etas=ETA_GRID, thresholds=THRESHOLD_GRID, criterion: str = "youden",
                     min_retained: float = 0.5, min_per_class: int = 1,
                     min_artifacts: int = 5) -> pd.DataFrame:
    """The best threshold for each eta on validation, and whether that eta is admissible.

    Parameters
    ----------
    valid_table : DataFrame
        Validation scans: ``p_artifact``, ``measure`` and (unless ``labels``) ``label``.
    labels : array_like of {0, 1}, shape (N,), optional
    measure : str
    etas : sequence of float
    thresholds : array_like
        Candidate thresholds on ``p_artifact``.
    criterion : {"youden", "f1"}
    min_retained : float
        An eta is admissible only if it keeps at least this fraction of the scans ...
    min_per_class : int
        ... and at least this many scans of each class ...
    min_artifacts : int
        ... and, when it refers someone (eta < 1), at least this many artifacts: J computed
        on one or two retained artifacts is noise, and with no signal at all an eta < 1
        would win most of the time. Without referral (eta = 1) every validation artifact is
        kept and only ``min_per_class`` applies.

    Returns
    -------
    DataFrame, one row per eta
        ``eta``, ``n_retained``, ``retained_fraction``, ``n_artifact_retained``,
        ``n_clean_retained``, ``admissible``, ``threshold`` (best t on the kept scans, with the
        tie rule of :func:`mriqc_nb.metrics.best_threshold`: the middle of the plateau),
        ``score`` (the criterion there). Inadmissible rows still show their best t when both
        classes are present, else NaN.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    y = _labels(valid_table, labels)
    p = _column(valid_table, "p_artifact")
    scaled = UncertaintyScaler.fit(_column(valid_table, measure)).transform(_column(valid_table, measure))
    rows = []
    for eta in etas:
        kept = ~_referred(scaled, eta)
        n_art, n_cln = int((y[kept] == 1).sum()), int((y[kept] == 0).sum())
        t, score = float("nan"), float("nan")
        if n_art and n_cln:
            t, score = best_threshold(y[kept], p[kept], thresholds, criterion)
        enough = min(n_art, n_cln) >= min_per_class and (eta >= 1 or n_art >= min_artifacts)
        rows.append({"eta": float(eta), "n_retained": int(kept.sum()),
                     "retained_fraction": float(kept.mean()), "n_artifact_retained": n_art,
                     "n_clean_retained": n_cln,
                     "admissible": bool(kept.mean() >= min_retained and enough),
                     "threshold": t, "score": score})
    return pd.DataFrame(rows)


def _validation_warnings(y: np.ndarray, p: np.ndarray, metrics: dict, min_artifacts: int,
                         n_boot: int, seed: int) -> tuple[str, ...]:
    """Reasons not to trust a policy chosen on this validation set."""
    out = []
    if not metrics["youden_j"] > 0:
        out.append(f"validation J = {metrics['youden_j']:.2f} <= 0: the threshold separates nothing")
    if (y == 1).sum() < min_artifacts:
        out.append(f"only {int((y == 1).sum())} validation artifacts (< {min_artifacts})")
    if n_boot and 0 < (y == 1).sum() < y.size:
        auc, low, high = bootstrap_ci(safe_auc, y, p, n_boot=n_boot, seed=seed)
        if low <= 0.5 <= high:
            out.append(f"validation AUC {auc:.2f} [{low:.2f}, {high:.2f}] contains 0.5: no evidence of ranking")
    return tuple(out)


def select_operating_point(valid_table: pd.DataFrame, measure: str = "mutual_information",
                           etas=ETA_GRID, thresholds=THRESHOLD_GRID, criterion: str = "youden",
                           min_retained: float = 0.5, min_per_class: int = 1,
                           labels=None, *, min_artifacts: int = 5, n_boot: int = 500,
                           seed: int = 0) -> ReferralPolicy:
    """Choose (eta, t) on the validation set only.

    Rule: fit the scaler on validation; for each eta take the best threshold on the kept scans
    (:func:`operating_points`); among the *admissible* etas (retaining at least
    ``min_retained`` of the scans, ``min_per_class`` of each class and, for eta < 1,
    ``min_artifacts`` artifacts), take the one with the highest criterion; ties (within
    1e-12) go to the larger eta, i.e. fewer referrals. Without a retention floor Youden's J
    can nearly always be raised by referring more, so ``min_retained`` is what sets the human
    workload.

    The policy carries ``warnings`` when the validation set does not support it: J <= 0 at
    the chosen point, fewer than ``min_artifacts`` validation artifacts, or a stratified
    bootstrap interval (``n_boot`` replicates, 95%) of the validation AUC of ``p_artifact``
    that contains 0.5. A warned policy is still returned (tables show the warning beside its
    numbers); ``n_boot=0`` skips the AUC check.

    Parameters
    ----------
    valid_table : DataFrame
        Validation scans (see :func:`operating_points`); its ``n_samples`` column, if any,
        becomes the policy's T.
    measure, etas, thresholds, criterion, min_retained, min_per_class, labels, min_artifacts
        See :func:`operating_points`.
    n_boot, seed : int
        The bootstrap of the validation AUC.

    Returns
    -------
    ReferralPolicy
        With ``valid_metrics`` = :func:`evaluate_policy` on the validation set.

    Raises
    ------
    ValueError
        If no eta is admissible (e.g. validation lacks a class).
    """
    ops = operating_points(valid_table, labels, measure, etas, thresholds, criterion,
                           min_retained, min_per_class, min_artifacts)
    ok = ops[ops["admissible"]]
    if ok.empty:
        raise ValueError("no admissible eta on validation (too few scans kept, or a class missing)\n"
                         + ops.to_string())
    best = ok[ok["score"] >= ok["score"].max() - 1e-12].sort_values("eta").iloc[-1]
    scaler = UncertaintyScaler.fit(_column(valid_table, measure))
    T = _sample_count(valid_table)
    policy = ReferralPolicy(measure, float(best["eta"]), float(best["threshold"]), scaler, {}, criterion, T)
    metrics = evaluate_policy(policy, valid_table, labels)
    metrics["score"] = float(best["score"])
    y = _labels(valid_table, labels)
    notes = _validation_warnings(y, _column(valid_table, "p_artifact"), metrics, min_artifacts, n_boot, seed)
    return ReferralPolicy(measure, policy.eta, policy.threshold, scaler, metrics, criterion, T, notes)


def no_referral_policy(valid_table: pd.DataFrame, measure: str = "mutual_information", labels=None, *,
                       criterion: str = "youden", min_artifacts: int = 5, n_boot: int = 500,
                       seed: int = 0) -> ReferralPolicy:
    """Threshold by Youden's J (or another ``criterion``) on all validation scans, nobody
    referred (``eta = 1``).

    The reference every referral policy is compared with. ``measure`` only fits the stored
    scaler; the other parameters are those of :func:`select_operating_point`.
    """
    return select_operating_point(valid_table, measure=measure, etas=(1.0,), min_retained=0.0,
                                  criterion=criterion, labels=labels, min_artifacts=min_artifacts,
                                  n_boot=n_boot, seed=seed)


# --------------------------------------------------------------------------------------------
# Applying and evaluating a policy (any set; no fitting here)
# --------------------------------------------------------------------------------------------
def apply_policy(policy: ReferralPolicy, table: pd.DataFrame) -> pd.DataFrame:
    """Decisions for every scan of ``table``; nothing is fitted.

    Returns
    -------
    DataFrame
        A copy of ``table`` with ``scaled_uncertainty`` (validation scaling, clipped to [0, 1]),
        ``referred`` (bool), ``predicted`` (float: 1.0 artifact, 0.0 clean, NaN when referred),
        ``needs_person`` (bool: referred, or retained and called artifact) and ``decision``
        (``"refer"``, ``"artifact"`` or ``"clean"``).

    Raises
    ------
    ValueError
        If ``table`` has an ``n_samples`` column whose T differs from the policy's (the
        validation T): predict validation and test with the same number of samples.
    """
    T = _sample_count(table)
    if policy.n_samples is not None and T is not None and T != policy.n_samples:
        raise ValueError(f"the policy was chosen on uncertainties from T = {policy.n_samples} samples and this "
                         f"table has T = {T}: the spread of T samples depends on T, so predict validation "
                         "and test with the same T")
    out = table.copy()
    scaled = policy.scaler.transform(_column(table, policy.measure))
    referred = _referred(scaled, policy.eta)
    flagged = _column(table, "p_artifact") >= policy.threshold
    out["scaled_uncertainty"] = scaled
    out["referred"] = referred
    out["predicted"] = np.where(referred, np.nan, flagged.astype(float))
    out["needs_person"] = referred | flagged
    out["decision"] = np.where(referred, REFER, np.where(flagged, ARTIFACT, CLEAN))
    return out


def _summary(y, p, referred, threshold) -> dict:
    """Metrics on the retained scans, plus workload fractions over all scans."""
    kept = ~referred
    m = binary_metrics(y[kept], p[kept], threshold)
    n, n_art = y.size, int((y == 1).sum())
    m["n_retained"] = m.pop("n")
    m.update({"n": int(n), "retained_fraction": float(kept.mean()),
              "referred_fraction": float(referred.mean()),
              "flagged_fraction": (m["tp"] + m["fp"]) / n,
              "needs_person_fraction": (int(referred.sum()) + m["tp"] + m["fp"]) / n,
              "missed_artifact_fraction": m["fn"] / n_art if n_art else float("nan")})
    return m


def evaluate_policy(policy: ReferralPolicy, table: pd.DataFrame, labels=None) -> dict:
    """Metrics of a fixed policy on one set.

    Returns
    -------
    dict
        On the retained scans (:func:`mriqc_nb.metrics.binary_metrics`): ``accuracy``,
        ``sensitivity``, ``specificity``, ``precision``, ``f1``, ``balanced_accuracy``,
        ``youden_j``, ``auc``, ``tp``, ``fp``, ``tn``, ``fn``, ``n_retained``. Over all ``n``
        scans: ``retained_fraction``, ``referred_fraction``, ``flagged_fraction`` (retained and
        called artifact), ``needs_person_fraction`` (referred + flagged), and
        ``missed_artifact_fraction`` (artifacts retained and called clean, over all artifacts).
        Also ``eta`` and ``threshold``.
    """
    y = _labels(table, labels)
    applied = apply_policy(policy, table)
    m = _summary(y, _column(table, "p_artifact"), applied["referred"].to_numpy(), policy.threshold)
    m.update({"eta": policy.eta, "threshold": policy.threshold})
    return m


def select_and_evaluate(valid_table: pd.DataFrame, test_table: pd.DataFrame, valid_labels=None,
                        test_labels=None, **select_kwargs) -> tuple[ReferralPolicy, dict]:
    """The whole protocol: choose the policy on validation, then measure it on test.

    ``test_table`` and ``test_labels`` are used only after the policy is frozen.

    Returns
    -------
    policy : ReferralPolicy
    test_metrics : dict
        :func:`evaluate_policy` on the test set.
    """
    policy = select_operating_point(valid_table, labels=valid_labels, **select_kwargs)
    return policy, evaluate_policy(policy, test_table, test_labels)
