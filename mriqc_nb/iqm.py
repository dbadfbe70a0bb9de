"""Classifiers of MRIQC's image-quality metrics (IQMs), with an ensemble uncertainty.

The tables come from :mod:`mriqc_nb.ratings`; this module turns them into predictions in the
book's format, so that :mod:`mriqc_nb.uncertainty` and :mod:`mriqc_nb.referral` apply
unchanged.

Site harmonisation
------------------
IQMs depend on the scanner and protocol as much as on quality: a classifier of raw IQMs
learns sites. MRIQC (Esteban et al., 2017) rescales every IQM **within each site** with a
robust scaler: minus the site's median, divided by the site's interquartile range
(:func:`site_scale`). No label is used, so a new site -- a test site, another database -- is
scaled with its own statistics, as a lab would do with its own scans. A feature that is
constant within a site becomes 0 there. Two variants: ``"zscore"`` (mean and SD) and
``"rank"`` (each scan's rank within its site, mapped to a normal quantile), which keeps only
the order of the scans within a site and is immune to any monotone distortion of an IQM by
a scanner.

Targets
-------
The label (a strict majority of exclusions) throws away how many raters excluded a scan.
``target="votes"`` learns the raters' votes instead (:func:`mriqc_nb.ratings.exclusion_share`,
a doubtful rating counting half): a graded target for raters who disagree.

Models
------
:func:`fit_iqm_classifier` fits one of :data:`MODEL_KINDS`, each an ensemble whose members
play the role of the network's Monte Carlo dropout samples (:func:`ensemble_probabilities`
returns them as an array (members, N, 2)):

- ``"logistic"``: z-scoring, then a bag of L2-regularised logistic regressions, each on a
  bootstrap sample, classes balanced;
- ``"forest"``: a random forest whose trees are the members (balanced class weights, at least
  3 scans per leaf, so each tree gives graded probabilities);
- ``"mriqc_forest"``: the anchor, MRIQC's production random forest (400 trees, depth <= 10,
  at least 10 scans per leaf, no class weights);
- ``"boosting"``: a bag of shallow gradient-boosted tree models (scikit-learn's histogram
  gradient boosting), classes balanced;
- ``"mlp"``: z-scoring, then a small Keras network with Monte Carlo dropout, the book's CNN
  in miniature (:mod:`mriqc_nb.iqm_mlp`): its samples are ``mc_samples`` dropout passes
  shared out among ``n_members`` networks, not ensemble members.

Model choice is made with ABIDE only, by leaving sites out (:func:`leave_sites_out`), on
the mean AUC within a held-out site (:data:`CRITERION`).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from mriqc_nb.metrics import safe_auc
from mriqc_nb.ratings import IQM_COLUMNS

__all__ = ["MODEL_KINDS", "SCALINGS", "TARGETS", "CANDIDATES", "MLP_CANDIDATES", "PREVIOUS",
           "CRITERION", "ANCHOR", "THRESHOLD_RULES", "RULE_CRITERION", "site_scale",
           "fit_iqm_classifier", "ensemble_probabilities", "predict_with_uncertainty",
           "leave_sites_out", "out_of_site_predictions", "site_protocol", "seed_table",
           "threshold_decisions", "rule_table", "PROTOCOLS", "BOOK_DECISION"]

#: The model families of :func:`fit_iqm_classifier`.
MODEL_KINDS = ("logistic", "forest", "mriqc_forest", "boosting", "mlp")
#: What :func:`fit_iqm_classifier` learns: the binary label, or the raters' votes.
TARGETS = ("label", "votes")
#: The anchor: MRIQC's production random forest on site-scaled IQMs.
ANCHOR = "MRIQC forest, site-scaled (anchor)"
#: Settings compared by :func:`leave_sites_out` on ABIDE (chapter 10, benchmarks/bench_ds030.py):
#: keyword arguments of :func:`fit_iqm_classifier`. The book's rater model is the one with the
#: best :data:`CRITERION`; the anchor is always reported beside it.
CANDIDATES = {
    "logistic": {"kind": "logistic"},
    "logistic, site-scaled": {"kind": "logistic", "C": 0.01, "site_scaling": True},
    "forest, site-scaled": {"kind": "forest", "n_members": 100, "site_scaling": True},
    "logistic, rank-scaled": {"kind": "logistic", "C": 0.03, "site_scaling": "rank"},
    "logistic, rank-scaled, rater votes": {"kind": "logistic", "C": 0.03, "site_scaling": "rank",
                                           "target": "votes"},
    ANCHOR: {"kind": "mriqc_forest", "n_members": 200, "site_scaling": True},
}
#: Issue 11: the book's network in miniature (5 networks, T = 50 MC-dropout passes), scored
#: beside :data:`CANDIDATES` by ``benchmarks/bench_ds030.py`` (about 3 minutes each by leaving
#: ABIDE sites out on 2 shared cores, and TensorFlow needed: chapter 10 keeps to
#: :data:`CANDIDATES`). None of them beat the best candidate on ABIDE (experiments/NOTES.md).
MLP_CANDIDATES = {
    "MLP MC dropout, site-scaled": {"kind": "mlp", "site_scaling": True, "dropout": 0.4},
    "MLP MC dropout, rank-scaled": {"kind": "mlp", "site_scaling": "rank", "dropout": 0.4},
    "MLP MC dropout, rank-scaled, rater votes": {"kind": "mlp", "site_scaling": "rank", "dropout": 0.4,
                                                 "target": "votes"},
}
#: The book's rater model before issue 11 (the best of the candidates then), kept in the tables.
PREVIOUS = "logistic, rank-scaled, rater votes"
#: The column of :func:`leave_sites_out` that chooses among :data:`CANDIDATES`: the mean AUC
#: within a held-out site. It matches the deployment (a new site, or a new database such as
#: DS030, is scaled and scored with its own statistics); the pooled AUC also rewards knowing
#: which ABIDE sites hold many artifacts, which does not transfer.
CRITERION = "auc_site_mean"


#: Threshold rules of :func:`threshold_decisions` (chosen on ABIDE's validation sites).
THRESHOLD_RULES = ("youden", "f1", "prior", "platt_prior", "site_quantile")
#: How :func:`site_protocol` uses the ABIDE sites outside the test set. ``"split"``: the model
#: is fitted on training sites and the threshold rule on separate validation sites.
#: ``"cross_fit"``: the model is fitted on all of them, and the rule on their out-of-site
#: predictions (each site predicted by a model fitted without it).
PROTOCOLS = ("split", "cross_fit")
#: How the book's rater model is validated and thresholded: chosen on ABIDE alone by
#: ``benchmarks/bench_ds030.py`` (every protocol and threshold rule, ABIDE's test sites, seeds
#: 0-9, best :data:`RULE_CRITERION`; experiments/NOTES.md section 7). Add it to a candidate's
#: settings: ``{**CANDIDATES[name], **BOOK_DECISION}``.
BOOK_DECISION = {"protocol": "cross_fit", "threshold_rule": "platt_prior"}
#: Keys of a model's settings that are not fitting arguments: the threshold rule, the protocol.
_RULE_KEY = "threshold_rule"
_PROTOCOL_KEY = "protocol"


def _fit_kwargs(settings: dict) -> dict:
    """The :func:`fit_iqm_classifier` arguments of a model's settings (no rule, no protocol)."""
    return {k: v for k, v in settings.items() if k not in (_RULE_KEY, _PROTOCOL_KEY)}


def threshold_decisions(valid: pd.DataFrame, table: pd.DataFrame, rule: str = "youden", *,
                        seed: int = 0) -> tuple[np.ndarray, float]:
    """Artifact calls on ``table`` by a threshold rule fitted on the validation predictions.

    Parameters
    ----------
    valid : DataFrame
        Validation predictions with ``label`` and ``p_artifact``
        (:func:`predict_with_uncertainty`): the only labels the rule reads.
    table : DataFrame
        Predictions to decide (``p_artifact``, and ``site`` for ``"site_quantile"``); its
        labels, if any, are not read.
    rule : one of :data:`THRESHOLD_RULES`
        ``"youden"`` / ``"f1"``: the threshold maximising Youden's J / F1 on validation
        (:func:`mriqc_nb.referral.no_referral_policy`, the package's tie rule).
        ``"prior"``: the threshold that flags on validation the share of scans that are
        artifacts there (prior-matched). ``"platt_prior"``: Platt scaling (a logistic
        regression of the label on ``logit(p)``) fitted on validation, then the threshold where
        the calibrated probability equals the validation prevalence (the balanced-accuracy
        optimum for a calibrated score). ``"site_quantile"``: label-free adaptation to each
        new site: within every site of ``table``, the scans whose score is in the top
        ``q`` share of that site's own scores are called artifacts, ``q`` = the validation
        prevalence (it uses the new site's unlabelled scores, as a lab screening a batch can).
    seed : int
        For the bootstrap of the validation warnings of ``no_referral_policy``.

    Returns
    -------
    called : ndarray of bool, shape (len(table),)
    threshold : float
        The threshold on ``p_artifact`` (for ``"site_quantile"``: ``1 - q``, on the within-site
        rank share).
    """
    from mriqc_nb.referral import no_referral_policy

    if rule not in THRESHOLD_RULES:
        raise ValueError(f"rule must be one of {THRESHOLD_RULES}, got {rule!r}")
    yv = valid["label"].to_numpy().astype(int)
    pv = valid["p_artifact"].to_numpy(float)
    p = table["p_artifact"].to_numpy(float)
    prevalence = float(yv.mean())
    if rule in ("youden", "f1"):
        t = no_referral_policy(valid, seed=seed, criterion=rule).threshold
    elif rule == "prior":
        t = float(np.quantile(pv, 1 - prevalence, method="higher"))
    elif rule == "platt_prior":
        from sklearn.linear_model import LogisticRegression

        z = np.log(np.clip(pv, 1e-6, 1 - 1e-6) / np.clip(1 - pv, 1e-6, 1))
        lr = LogisticRegression(C=1e6).fit(z[:, None], yv)
        a, b = float(lr.coef_[0, 0]), float(lr.intercept_[0])
        z_t = (np.log(prevalence / (1 - prevalence)) - b) / a if a > 0 else 0.0
        t = float(1 / (1 + np.exp(-z_t)))
    else:
        share = table.groupby(table["site"].astype(str), sort=False)["p_artifact"].rank(pct=True)
        return (share.to_numpy() > 1 - prevalence), float(1 - prevalence)
    return p >= t, float(t)


#: How :func:`rule_table` ranks the threshold rules: balanced accuracy + F1 on ABIDE's test
#: sites (mean over seeds), the two measures of issue 11's targets besides the AUC.
RULE_CRITERION = "ba_plus_f1"


def rule_table(abide: pd.DataFrame, settings: dict, seeds=range(10), rules=THRESHOLD_RULES) -> pd.DataFrame:
    """Threshold rules compared on ABIDE alone: the protocol of :func:`site_protocol`
    without external sets (validation sites fit the rule, test sites score it).

    Parameters
    ----------
    abide : DataFrame
        ABIDE only: no external table enters.
    settings : dict
        :func:`fit_iqm_classifier` arguments, and optionally a ``protocol`` (one of
        :data:`PROTOCOLS`, default ``"split"``); a ``threshold_rule`` in them is ignored.
    seeds : iterable of int
    rules : sequence of :data:`THRESHOLD_RULES`

    Returns
    -------
    DataFrame, one row per rule
        Means over seeds on the ABIDE test sites: ``auc``, ``balanced_accuracy``, ``f1``,
        ``sensitivity``, ``specificity``, and :data:`RULE_CRITERION`. ``attrs["per_seed"]``
        holds the rows of every seed.
    """
    from mriqc_nb.metrics import binary_metrics

    rows = []
    for seed in seeds:
        pred = site_protocol(abide, seed, None, **settings)
        valid, test = pred["valid"], pred["test"]
        y = test["label"].to_numpy()
        for rule in rules:
            called, _ = threshold_decisions(valid, test.drop(columns="label"), rule, seed=seed)
            m = binary_metrics(y, called.astype(float), 0.5)
            rows.append({"rule": rule, "seed": seed, "auc": safe_auc(y, test["p_artifact"]),
                         **{k: m[k] for k in ("balanced_accuracy", "f1", "sensitivity", "specificity")}})
    per_seed = pd.DataFrame(rows)
    out = per_seed.drop(columns="seed").groupby("rule", sort=False).mean()
    out[RULE_CRITERION] = out["balanced_accuracy"] + out["f1"]
    out.attrs["per_seed"] = per_seed
    return out


#: Per-site scalings of :func:`site_scale`.
SCALINGS = ("robust", "zscore", "rank")


def site_scale(df: pd.DataFrame, features=IQM_COLUMNS, *, site_column: str = "site",
               method: str = "robust") -> pd.DataFrame:
    """Per-site scaling of the IQMs, label-free (MRIQC's harmonisation and two variants).

    Parameters
    ----------
    df : DataFrame
        Scans with ``features`` and a ``site_column``.
    features : sequence of str
        Columns to scale (default :data:`mriqc_nb.ratings.IQM_COLUMNS`).
    site_column : str
    method : one of :data:`SCALINGS`
        ``"robust"`` (MRIQC's): ``(x - median) / IQR`` with the site's median and
        interquartile range, an IQR of 0 counting as 1; ``"zscore"``: ``(x - mean) / SD``
        (population SD, 0 counting as 1); ``"rank"``: the normal quantile of the scan's
        mid-rank within its site, ``Phi^-1((rank - 0.5) / n)`` (ties share their mean rank),
        which keeps only the order of the scans within a site.

    Returns
    -------
    DataFrame
        A copy of ``df`` with the features scaled within each site (a feature constant
        within a site becomes 0 there). Other columns are unchanged; no label is read.
    """
    from scipy.stats import norm

    if method not in SCALINGS:
        raise ValueError(f"method must be one of {SCALINGS}, got {method!r}")
    cols = list(features)
    values = df[cols].astype(float)
    scaled = values.to_numpy(copy=True)
    # sites by row position, scaled in one array that is written into the copy once: pandas'
    # per-site quantiles and .loc writes took about half of a site-scaled forest's fit
    for pos in df.groupby(site_column, sort=False).indices.values():
        if method == "robust":  # NaN-skipping, as pandas' median and quantile
            block = scaled[pos]
            with warnings.catch_warnings():  # a feature missing in a whole site stays NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                q1, q3 = np.nanquantile(block, [0.25, 0.75], axis=0)
                median = np.nanmedian(block, axis=0)
            iqr = np.where(q3 - q1 > 0, q3 - q1, 1.0)
            scaled[pos] = (block - median) / iqr
        elif method == "zscore":
            block = values.iloc[pos]
            sd = block.std(ddof=0).where(lambda v: v > 0, 1.0)
            scaled[pos] = ((block - block.mean()) / sd).to_numpy()
        else:
            scaled[pos] = norm.ppf((values.iloc[pos].rank() - 0.5) / len(pos))
    out = df.copy()
    out[cols] = pd.DataFrame(scaled, index=df.index, columns=cols)
    return out


def _scaling(site_scaling) -> str | None:
    """The :func:`site_scale` method of a ``site_scaling`` argument (None: no scaling)."""
    if site_scaling is True:
        return "robust"
    if site_scaling is False or site_scaling is None:
        return None
    if site_scaling not in SCALINGS:
        raise ValueError(f"site_scaling must be a bool or one of {SCALINGS}, got {site_scaling!r}")
    return str(site_scaling)


def _head(kind: str, seed: int, n_members: int, C: float, max_samples=None):
    from sklearn.ensemble import (BaggingClassifier, HistGradientBoostingClassifier,
                                  RandomForestClassifier)
    from sklearn.linear_model import LogisticRegression

    if kind == "logistic":
        member = LogisticRegression(C=C, class_weight="balanced", max_iter=5000)
        return BaggingClassifier(member, n_estimators=n_members, max_samples=max_samples, random_state=seed)
    if kind == "forest":
        return RandomForestClassifier(n_estimators=n_members, class_weight="balanced_subsample",
                                      min_samples_leaf=3, random_state=seed, n_jobs=1)
    if kind == "mriqc_forest":
        return RandomForestClassifier(n_estimators=n_members, max_depth=10, min_samples_leaf=10,
                                      min_samples_split=10, max_features="sqrt", random_state=seed, n_jobs=1)
    if kind == "boosting":
        member = HistGradientBoostingClassifier(max_depth=3, learning_rate=0.05, max_iter=100,
                                                class_weight="balanced", random_state=seed)
        return BaggingClassifier(member, n_estimators=n_members, random_state=seed)
    raise ValueError(f"kind must be one of {MODEL_KINDS}, got {kind!r}")


def fit_iqm_classifier(train_df: pd.DataFrame, seed: int = 0, *, kind: str = "logistic",
                       n_members: int | None = None, C: float = 0.1, features=IQM_COLUMNS,
                       site_scaling: bool | str = False, target: str = "label", **mlp):
    """Fit an ensemble classifier of IQMs (1 = artifact).

    Parameters
    ----------
    train_df : DataFrame
        Training scans: the ``features`` columns, ``y`` (1 = artifact) and, with
        ``site_scaling``, ``site``.
    seed : int
        Seeds the bootstrap samples (and the trees).
    kind : one of :data:`MODEL_KINDS`
        See the module notes.
    n_members : int, optional
        Ensemble members: the samples of :func:`ensemble_probabilities` (trees for the
        forests, bagged models otherwise); default 50. For ``"mlp"``: its networks, default 5.
    C : float
        Inverse regularisation of ``"logistic"`` only. 0.1 suits about 60 correlated IQMs and
        a few hundred scans.
    features : sequence of str
        Feature columns (default :data:`mriqc_nb.ratings.IQM_COLUMNS`).
    site_scaling : bool or one of :data:`SCALINGS`
        Scale the features within each site first (:func:`site_scale`; ``True`` is
        ``"robust"``, MRIQC's), here and at every prediction (each scored table is scaled
        with its own sites' statistics).
    target : one of :data:`TARGETS`
        ``"label"``: learn ``y``. ``"votes"`` (``"logistic"`` and ``"mlp"``; the MLP takes the
        shares as soft targets of its cross-entropy): learn the raters' votes, :func:`mriqc_nb.ratings.exclusion_share` (a doubtful rating is half an
        exclusion): every scan enters twice, as an artifact and as a clean scan, and each
        bootstrap sample of the bag draws as many rows as there are scans with probabilities
        proportional to those shares, so a scan two raters of three excluded is drawn as an
        artifact twice as often as as a clean scan. Needs ``n_exclude``, ``n_doubtful`` and
        ``n_ratings`` (:func:`mriqc_nb.ratings.load_ratings`).
    **mlp
        ``kind="mlp"`` only: settings of :func:`mriqc_nb.iqm_mlp.fit_mlp` (``dropout``,
        ``hidden``, ``mc_samples``...); ``n_members`` is its number of networks.

    Returns
    -------
    sklearn.pipeline.Pipeline
        Fitted; it remembers its feature names (``feature_names_in_``), ``site_scaling_``
        (the :func:`site_scale` method, or None), ``kind_`` and ``target_``. ``predict_proba`` of raw features is the ensemble mean only
        without site scaling; use :func:`ensemble_probabilities`, which scales.
    """
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mriqc_nb.ratings import exclusion_share

    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    if target == "votes" and kind not in ("logistic", "mlp"):
        raise ValueError(f"target='votes' needs kind='logistic' or 'mlp', got {kind!r}")
    if kind not in MODEL_KINDS:
        raise ValueError(f"kind must be one of {MODEL_KINDS}, got {kind!r}")
    if mlp and kind != "mlp":
        raise ValueError(f"{sorted(mlp)} are settings of kind='mlp', not of {kind!r}")
    y = np.asarray(train_df["y"]).astype(int)
    if np.unique(y).size < 2:
        raise ValueError("the training scans need both classes (clean and artifact)")
    n_members = n_members or (5 if kind == "mlp" else 50)
    scaling = _scaling(site_scaling)
    X = (site_scale(train_df, features, method=scaling) if scaling else train_df)[list(features)]
    fit_params = {}
    if target == "votes" and kind == "logistic":
        share = exclusion_share(train_df).to_numpy()
        X, y = pd.concat([X, X]), np.r_[np.ones(len(share), int), np.zeros(len(share), int)]
        fit_params = {"baggingclassifier__sample_weight": np.r_[share, 1 - share]}
    if kind == "mlp":
        from mriqc_nb.iqm_mlp import fit_mlp

        scaler = StandardScaler().fit(X)
        soft = exclusion_share(train_df).to_numpy() if target == "votes" else None
        head = fit_mlp(scaler.transform(X), y, train_df["site"].astype(str).to_numpy(), seed,
                       n_members=n_members, soft_target=soft, **mlp)
        model = make_pipeline(scaler, head)
    else:
        head = _head(kind, seed, n_members, C, max_samples=len(train_df) if target == "votes" else None)
        model = make_pipeline(StandardScaler(), head)
        with threadpool_limits(limits=1):  # small matrices: threads only add overhead
            model.fit(X, y, **fit_params)
    model.site_scaling_ = scaling
    model.kind_ = kind
    model.target_ = target
    return model


def ensemble_probabilities(model, df: pd.DataFrame) -> np.ndarray:
    """Class probabilities of every ensemble member: the book's (T, N, C) sample array.

    Parameters
    ----------
    model : Pipeline
        From :func:`fit_iqm_classifier`.
    df : DataFrame
        Scans with the model's feature columns (and ``site`` if the model scales by site).

    Returns
    -------
    ndarray, shape (members, N, 2)
        Column 0 = clean, 1 = artifact; a member whose bootstrap sample lacked a class gives
        that class probability 0. For ``kind="mlp"``: (mc_samples, N, 2), the MC-dropout
        passes (:meth:`mriqc_nb.iqm_mlp.MCDropoutMLP.sample_probabilities`).
    """
    features = list(model.feature_names_in_)
    if getattr(model, "site_scaling_", None):
        df = site_scale(df, features, method=model.site_scaling_)
    X = np.asarray(model[:-1].transform(df[features]), dtype=float)
    head = model[-1]
    if hasattr(head, "sample_probabilities"):
        return head.sample_probabilities(X)
    subsets = getattr(head, "estimators_features_", None) or [slice(None)] * len(head.estimators_)
    out = np.zeros((len(head.estimators_), len(X), 2))
    with threadpool_limits(limits=1):
        for m, (est, cols) in enumerate(zip(head.estimators_, subsets)):
            out[m][:, np.asarray(est.classes_).astype(int)] = est.predict_proba(X[:, cols])
    return out


def predict_with_uncertainty(model, df: pd.DataFrame) -> pd.DataFrame:
    """Per-scan prediction and uncertainty, in the book's prediction-table format.

    Returns
    -------
    pandas.DataFrame, one row per scan of ``df`` (same index)
        ``scan_id``, ``subject_id``, ``site`` (those present in ``df``), ``label`` as the
        *integer* 1 = artifact (as in every prediction table of the book, e.g.
        :func:`mriqc_nb.predict.predict_split`; only if ``df`` has ``y``), then the columns
        of :func:`mriqc_nb.uncertainty.summarise` over the ensemble members (``p_artifact``,
        ``entropy``, ``mutual_information``, ``variance``, ``std_p_artifact``, ``n_samples``
        = members...). Ready for :func:`mriqc_nb.referral.select_operating_point`.
    """
    from mriqc_nb.uncertainty import summarise

    summary = summarise(ensemble_probabilities(model, df), index=df.index)
    ids = df[[c for c in ("scan_id", "subject_id", "site") if c in df.columns]].copy()
    if "y" in df.columns:
        ids["label"] = np.asarray(df["y"]).astype(np.int64)
    return pd.concat([ids, summary], axis=1)


def leave_sites_out(df: pd.DataFrame, candidates: dict, *, seed: int = 0) -> pd.DataFrame:
    """Compare model settings by leaving one site out at a time (model selection on ABIDE).

    For every site: fit on all the other sites, predict the held-out one; then score the
    out-of-site predictions, pooled and site by site.

    Parameters
    ----------
    df : DataFrame
        Scans with ``site``, ``y`` and the IQM columns (ABIDE: never the external test set).
    candidates : dict name -> dict
        Keyword arguments of :func:`fit_iqm_classifier` (``kind``, ``site_scaling``,
        ``n_members``, ``C``, ``features``), and optionally a ``threshold_rule`` and a
        ``protocol`` (ignored here: the AUC needs no threshold).
    seed : int

    Returns
    -------
    DataFrame, one row per candidate
        ``auc_pooled`` (AUC of all out-of-site predictions together: needs scores that are
        comparable across sites), ``auc_site_mean`` and ``auc_site_min`` (per held-out site
        with both classes), ``n_sites``.
    """
    sites = df["site"].astype(str).to_numpy()
    y = np.asarray(df["y"]).astype(int)
    rows = []
    for name, kwargs in candidates.items():
        p = out_of_site_predictions(df, seed, **kwargs)["p_artifact"].to_numpy()
        per_site = [safe_auc(y[sites == s], p[sites == s]) for s in np.unique(sites)]
        per_site = [a for a in per_site if np.isfinite(a)]
        rows.append({"model": name, "auc_pooled": safe_auc(y, p), "auc_site_mean": float(np.mean(per_site)),
                     "auc_site_min": float(np.min(per_site)), "n_sites": int(np.unique(sites).size)})
    return pd.DataFrame(rows).set_index("model")


def out_of_site_predictions(df: pd.DataFrame, seed: int = 0, **model_kwargs) -> pd.DataFrame:
    """Every scan predicted by a model fitted without its site (leave one site out).

    Parameters
    ----------
    df : DataFrame
        Scans with ``site``, ``y`` and the features (never an external test set).
    seed : int
    **model_kwargs
        :func:`fit_iqm_classifier` arguments (a threshold rule or protocol in them is ignored).

    Returns
    -------
    DataFrame
        :func:`predict_with_uncertainty` tables of the held-out sites, in ``df``'s row order;
        ``attrs["sites"]`` lists the sites.
    """
    sites = df["site"].astype(str).to_numpy()
    parts = []
    for site in np.unique(sites):
        out = sites == site
        model = fit_iqm_classifier(df[~out], seed, **_fit_kwargs(model_kwargs))
        parts.append(predict_with_uncertainty(model, df[out]))
    pred = pd.concat(parts).loc[df.index]
    pred.attrs["sites"] = sorted(np.unique(sites))
    return pred


def site_protocol(abide: pd.DataFrame, seed: int, external=None, *, test_fraction: float = 0.25,
                  protocol: str = "split", **model_kwargs) -> dict:
    """One seed of the book's protocol: predictions on validation, test and external sets.

    ABIDE's sites are split by :func:`mriqc_nb.ratings.site_split`: a seeded ``test_fraction``
    of the scans (whole sites) is the test set. With ``protocol="split"`` the other sites are
    split again (seed + 1) into training and validation sites: the model
    (:func:`fit_iqm_classifier` with ``seed`` and ``model_kwargs``) sees the training sites
    only, and the validation sites choose thresholds and referral policies. With
    ``protocol="cross_fit"`` the model is fitted on all the non-test sites, and the
    "validation" predictions are their out-of-site predictions
    (:func:`out_of_site_predictions`: each site scored by a model fitted without it), so the
    model learns from more sites and the rule is still fitted on scores of unseen sites. The
    test sites and every ``external`` table are touched only to score.

    Parameters
    ----------
    abide : DataFrame
        :func:`mriqc_nb.ratings.load_ratings` ``("abide")``.
    seed : int
    external : mapping name -> DataFrame, optional
        Other rated tables (e.g. ``{"DS030": load_ratings("ds030")}``).
    test_fraction : float
    protocol : one of :data:`PROTOCOLS`
    **model_kwargs
        Passed to :func:`fit_iqm_classifier` (``kind``, ``site_scaling``, ``n_members``...).

    Returns
    -------
    dict name -> DataFrame
        ``"valid"``, ``"test"`` and each external name: :func:`predict_with_uncertainty`
        tables (same T = members in all of them). ``attrs["sites"]`` of each lists its sites.
    """
    from mriqc_nb.ratings import site_split

    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    train_all, test = site_split(abide, seed=seed, test_fraction=test_fraction)
    if protocol == "split":
        fit, valid = site_split(train_all, seed=seed + 1, test_fraction=test_fraction)
        sets = {"valid": valid, "test": test, **dict(external or {})}
    else:
        fit, sets = train_all, {"test": test, **dict(external or {})}
    model = fit_iqm_classifier(fit, seed, **_fit_kwargs(model_kwargs))
    out = {}
    if protocol == "cross_fit":
        out["valid"] = out_of_site_predictions(train_all, seed, **model_kwargs)
    for name, df in sets.items():
        out[name] = predict_with_uncertainty(model, df)
        out[name].attrs["sites"] = sorted(df["site"].astype(str).unique())
    return out


def seed_table(abide: pd.DataFrame, external=None, seeds=range(5), models=None, *,
               measure: str = "mutual_information", n_draws: int = 200) -> pd.DataFrame:
    """The protocol of :func:`site_protocol` for several seeds and models: one row per set.

    For each model and seed: the rule without referral (the model's ``threshold_rule``,
    default Youden's J, fitted on the validation sites: :func:`threshold_decisions`) scored
    on the test sites and on each external table, and the referral
    policy by ``measure`` with its controls (:func:`mriqc_nb.referral.evaluate_with_controls`).

    Parameters
    ----------
    abide : DataFrame
    external : mapping name -> DataFrame, optional
    seeds : iterable of int
    models : mapping name -> dict, optional
        Keyword arguments of :func:`fit_iqm_classifier`, and optionally ``threshold_rule``
        (one of :data:`THRESHOLD_RULES`, default ``"youden"``) and ``protocol`` (one of
        :data:`PROTOCOLS`, default ``"split"``: :func:`site_protocol`); default one bagged logistic
        model.
    measure : str
        Uncertainty of the referral policy.
    n_draws : int
        Draws of the random-referral control.

    Returns
    -------
    DataFrame
        Columns ``model``, ``seed``, ``set``, ``n``, ``n_artifacts``, ``auc``, and with the
        threshold rule, nobody referred, ``protocol``, ``threshold_rule``, ``threshold``, ``accuracy``,
        ``balanced_accuracy``, ``sensitivity``, ``specificity``, ``f1``, ``kappa`` (Cohen's,
        model decision vs label); then the referral policy's ``eta``,
        ``retained_fraction``, ``referral_balanced_accuracy``, ``referral_f1``, and its gains
        over the two controls ``ba_gain_vs_no_referral`` (same threshold, nobody referred)
        and ``ba_gain_vs_random`` / ``f1_gain_vs_random`` (random referral of the same
        share); ``warnings`` of both policies.
    """
    from sklearn.metrics import cohen_kappa_score

    from mriqc_nb.metrics import binary_metrics
    from mriqc_nb.referral import evaluate_with_controls, no_referral_policy, select_operating_point

    models = models or {"logistic": {"kind": "logistic"}}
    rows = []
    for name, kwargs in models.items():
        for seed in seeds:
            pred = site_protocol(abide, seed, external, **kwargs)
            valid = pred.pop("valid")
            none = no_referral_policy(valid, measure, seed=seed)
            policy = select_operating_point(valid, measure, seed=seed)
            rule = kwargs.get(_RULE_KEY, "youden")
            for set_name, table in pred.items():
                y, p = table["label"].to_numpy(), table["p_artifact"].to_numpy()
                called, threshold = threshold_decisions(valid, table.drop(columns="label"), rule, seed=seed)
                base = binary_metrics(y, called.astype(float), 0.5)
                ref = evaluate_with_controls(policy, table, n_draws=n_draws, seed=seed)
                rows.append({
                    "model": name, "seed": seed, "set": set_name, "n": len(table), "n_artifacts": int(y.sum()),
                    "auc": safe_auc(y, p), "protocol": kwargs.get(_PROTOCOL_KEY, "split"),
                    "threshold_rule": rule, "threshold": threshold,
                    **{k: base[k] for k in ("accuracy", "balanced_accuracy", "sensitivity", "specificity", "f1")},
                    "kappa": float(cohen_kappa_score(y, called.astype(int))),
                    "eta": policy.eta, "retained_fraction": ref["retained_fraction"],
                    "referral_balanced_accuracy": ref["balanced_accuracy"], "referral_f1": ref["f1"],
                    "ba_gain_vs_no_referral": ref["balanced_accuracy_gain_vs_no_referral"],
                    "ba_gain_vs_random": ref["balanced_accuracy_gain_vs_random"],
                    "f1_gain_vs_random": ref["f1_gain_vs_random"],
                    "warnings": "; ".join((*none.warnings, *policy.warnings))})
    return pd.DataFrame(rows)
