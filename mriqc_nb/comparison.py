"""The comparison of chapter 8: every method on the test split, with intervals, beside the paper.

A *method* is a trained stage plus a way to decide:

- no referral: the threshold ``t`` on the mean artifact probability is chosen by Youden's J on
  the validation split (``eta = 1``: every scan is kept);
- referral: ``(eta, t)`` chosen on validation by :func:`mriqc_nb.referral.select_operating_point`
  for an uncertainty measure; the referred scans go to a person.

Every decision is fixed on validation and applied unchanged to test. Test metrics carry
stratified percentile-bootstrap intervals over test scans (the policy held fixed).

Across seeds and methods (issue 9):

- :func:`threshold_rules`: Youden's J against the F1-maximising threshold, both chosen on
  validation and reported on test;
- :func:`method_row`: one method's row of ``results/<profile>.tsv`` (``tools/experiments.py``
  writes one per method and seed), with per-kind and subtle-set sensitivity;
- :func:`seed_summary`: mean and spread over seeds of that table;
- :func:`differences_to_reference`, :func:`paired_differences`: paired bootstrap intervals
  of each method's difference to the baseline on the same test scans.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mriqc_nb import predict, referral
from mriqc_nb.metrics import binary_metrics, bootstrap_ci, bootstrap_cis, paired_bootstrap_diff, safe_auc
from mriqc_nb.model import training
from mriqc_nb.profiles import get_profile

__all__ = ["PAPER", "predictions", "stage_metrics", "no_referral_policy", "method_metrics",
           "comparison_table", "threshold_rules", "method_row", "result_columns",
           "seed_summary", "results_markdown", "differences_to_reference",
           "paired_differences", "seed_differences", "seed_difference_table"]

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
    # one evaluation per resample for all keys (the resamples of bootstrap_ci with this seed)
    cis = bootstrap_cis(lambda rows: referral.evaluate_policy(policy, test.iloc[rows], labels=y[rows]),
                        y, keys, n_boot=n_boot, seed=seed)
    for key, (low, high) in cis.items():
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


# --------------------------------------------------------------------------- thresholds, seeds

#: Metrics of a method at its validation threshold, as columns of :func:`method_row`.
ROW_METRICS = ("auc", "auc_low", "auc_high", "f1", "accuracy", "balanced_accuracy",
               "sensitivity", "specificity", "precision", "tp", "fp", "fn")
#: Metrics averaged over seeds by :func:`seed_summary` (when the results have them).
SEED_METRICS = ("auc", "f1", "accuracy", "balanced_accuracy", "sensitivity", "specificity",
                "f1_f1rule", "subtle_sensitivity")


def threshold_rules(valid: pd.DataFrame, test: pd.DataFrame, criteria=("youden", "f1"),
                    measure: str = "mutual_information") -> pd.DataFrame:
    """Threshold rules chosen on validation, scored on validation and on test.

    Each rule picks the threshold of :data:`mriqc_nb.referral.THRESHOLD_GRID` that maximises
    its criterion on **all validation scans** (nobody referred; the tie rule of
    :func:`mriqc_nb.metrics.best_threshold`); test only reports. Choose the rule by its
    validation columns: picking it by its test columns would tune on test.

    Parameters
    ----------
    valid, test : pandas.DataFrame
        Per-scan predictions (``y``, ``p_artifact``, ``measure``) of one method, both
        predicted with the same T.
    criteria : sequence of {"youden", "f1"}
    measure : str
        Only fits the stored scaler of the policy (no referral here).

    Returns
    -------
    pandas.DataFrame
        One row per criterion: ``criterion``, ``threshold``, then ``valid_<m>`` and
        ``test_<m>`` for ``m`` in f1, sensitivity, specificity, balanced_accuracy,
        youden_j, tp, fp, fn; ``n_valid_artifacts``, ``n_test_artifacts``, ``warnings``.
    """
    keys = ("f1", "sensitivity", "specificity", "balanced_accuracy", "youden_j", "tp", "fp",
            "fn")
    rows = []
    for criterion in criteria:
        policy = referral.no_referral_policy(valid, measure, valid["y"], criterion=criterion)
        row = {"criterion": criterion, "threshold": policy.threshold}
        for name, tab in (("valid", valid), ("test", test)):
            m = binary_metrics(tab["y"], tab["p_artifact"], policy.threshold)
            row.update({f"{name}_{k}": m[k] for k in keys})
            row[f"n_{name}_artifacts"] = int(tab["y"].sum())
        row["warnings"] = "; ".join(policy.warnings)
        rows.append(row)
    return pd.DataFrame(rows)


def result_columns() -> list[str]:
    """Columns of a results table (``results/<profile>.tsv``), in order.

    Identification, the test metrics at the validation Youden threshold with the AUC's
    interval, the F1-rule threshold, per-kind sensitivity on test (``sens_<kind>``) and on
    the subtle set (``subtle_sens_<kind>``), the validation numbers, and timings.
    """
    from mriqc_nb.artifacts import ARTIFACTS

    kinds = sorted(ARTIFACTS)
    return (["method", "seed", "profile", "threshold", *ROW_METRICS, "n_test",
             "n_test_artifacts", "threshold_f1rule", "f1_f1rule", "sensitivity_f1rule",
             "specificity_f1rule"]
            + [f"sens_{k}" for k in kinds]
            + ["subtle_sensitivity", "n_subtle"] + [f"subtle_sens_{k}" for k in kinds]
            + ["valid_auc", "valid_j", "n_valid_artifacts", "warnings", "seconds_train",
               "seconds_predict"])


def method_row(valid: pd.DataFrame, test: pd.DataFrame, subtle: pd.DataFrame | None = None,
               *, n_boot: int = 1000, seed: int = 0,
               measure: str = "mutual_information") -> dict:
    """One method's results: the row of ``results/<profile>.tsv`` (no referral).

    The threshold is chosen on validation by Youden's J (:func:`threshold_rules`); the
    F1-maximising validation threshold is reported beside it (``*_f1rule``). Test AUC has a
    stratified bootstrap interval (``n_boot`` replicates, 95%).

    Parameters
    ----------
    valid, test : pandas.DataFrame
        Per-scan predictions of the method (same T on both).
    subtle : pandas.DataFrame, optional
        Predictions on the subtle split (sensitivity per kind at the same threshold).
    n_boot, seed : int
        The AUC bootstrap.
    measure : str
        As :func:`threshold_rules`.

    Returns
    -------
    dict
        The columns of :func:`result_columns` that the predictions determine (not
        ``method``, ``seed``, ``profile`` or the timings); NaN where a kind is absent.
    """
    from mriqc_nb.diagnostics import per_kind_sensitivity

    rules = threshold_rules(valid, test, ("youden", "f1"), measure).set_index("criterion")
    t = float(rules.loc["youden", "threshold"])
    y, p = test["y"].to_numpy(), test["p_artifact"].to_numpy(dtype=float)
    m = binary_metrics(y, p, t)
    auc, low, high = bootstrap_ci(safe_auc, y, p, n_boot=n_boot, seed=seed)
    row = {"threshold": t, **{k: m[k] for k in ROW_METRICS if k in m},
           "auc": auc, "auc_low": low, "auc_high": high,
           "n_test": int(y.size), "n_test_artifacts": int(y.sum()),
           "threshold_f1rule": float(rules.loc["f1", "threshold"]),
           "f1_f1rule": rules.loc["f1", "test_f1"],
           "sensitivity_f1rule": rules.loc["f1", "test_sensitivity"],
           "specificity_f1rule": rules.loc["f1", "test_specificity"]}
    kinds = per_kind_sensitivity(test, t)
    row.update({f"sens_{k}": v for k, v in zip(kinds["kind"], kinds["sensitivity"])
                if k != "clean"})
    if subtle is not None:
        sub = per_kind_sensitivity(subtle, t)
        art = sub[sub["kind"] != "clean"]
        row.update({f"subtle_sens_{k}": v for k, v in zip(art["kind"], art["sensitivity"])})
        row["n_subtle"] = int(art["n"].sum())
        row["subtle_sensitivity"] = (art["called_artifact"].sum() / row["n_subtle"]
                                     if row["n_subtle"] else np.nan)
    vm = binary_metrics(valid["y"], valid["p_artifact"], t)
    row.update(valid_auc=vm["auc"], valid_j=vm["youden_j"],
               n_valid_artifacts=int(valid["y"].sum()),
               warnings=rules.loc["youden", "warnings"])
    return row


def seed_summary(results, metrics=SEED_METRICS) -> pd.DataFrame:
    """Mean and spread over seeds of each method's results.

    Parameters
    ----------
    results : pandas.DataFrame or path-like
        A results table (``results/<profile>.tsv``, written by ``tools/experiments.py``):
        one row per method and seed.
    metrics : sequence of str
        Columns summarised (those missing from ``results`` are skipped).

    Returns
    -------
    pandas.DataFrame
        One row per method, in order of first appearance: ``method``, ``n_seeds``, then for
        each metric ``<m>_mean``, ``<m>_sd`` (sample standard deviation over seeds, NaN for
        one seed), ``<m>_min``, ``<m>_max``.
    """
    df = results if isinstance(results, pd.DataFrame) else pd.read_csv(Path(results), sep="\t")
    cols = [m for m in metrics if m in df.columns]
    rows = []
    for method in pd.unique(df["method"]):
        sub = df[df["method"] == method]
        row = {"method": method, "n_seeds": int(sub["seed"].nunique())}
        for m in cols:
            v = sub[m].astype(float)
            row.update({f"{m}_mean": v.mean(), f"{m}_sd": v.std(ddof=1), f"{m}_min": v.min(),
                        f"{m}_max": v.max()})
        rows.append(row)
    return pd.DataFrame(rows)


def _fmt(v, digits: int = 3) -> str:
    return "n/a" if v is None or not np.isfinite(float(v)) else f"{float(v):.{digits}f}"


def _method_name(method) -> str:
    """A method as the results tables show it: spaces, so that "primed baseline" can wrap."""
    return str(method).replace("_", " ")


def results_markdown(results, meta: dict, methods=None, differences=None) -> str:
    """The results table of ``tools/experiments.py`` as a Markdown page section.

    Every number is read from ``results`` (one row per method and seed) and the stamp from
    its sidecar ``meta`` (package version, profile, CPU, seeds, wall times): nothing is
    typed by hand. ``methods`` (all of :data:`mriqc_nb.model.runs.STAGES` by default) lists
    the methods expected; those without a row are named as *not run*. ``differences``
    (:func:`seed_differences` of the rows' per-scan predictions), when given, adds the paired
    differences of each method to the reference of the same training seed.
    """
    from mriqc_nb.model.runs import STAGES

    df = results if isinstance(results, pd.DataFrame) else pd.read_csv(Path(results), sep="\t")
    prof = meta.get("profile", {})
    name = prof.get("name", str(df["profile"].iloc[0]) if len(df) else "?")
    seeds = sorted(int(s) for s in pd.unique(df["seed"])) if len(df) else []
    lines = [
        f"Profile `{name}`, mriqc-nb {meta.get('package_version', '?')}, training seeds "
        f"{', '.join(map(str, seeds)) or 'none'}; CPU {meta.get('cpu', '?')} "
        f"({meta.get('n_cpus', '?')} cores); last updated {meta.get('updated', '?')}. "
        "Each method decides at its validation Youden threshold, without referral; intervals "
        "are stratified bootstrap intervals on the test scans.", ""]
    if len(df):
        n, k = int(df["n_test"].iloc[0]), int(df["n_test_artifacts"].iloc[0])
        lines += [f"Test split: {n} scans, {k} with a prominent artifact, the same scans for "
                  "every row.", ""]
    summary = seed_summary(df) if len(df) else pd.DataFrame()
    # two narrow tables rather than one wide one (a page column is about 690 px)
    lines += ["| method | seeds | test AUC, mean (min-max) | F1 | training (min per seed) |",
              "|---|---|---|---|---|"]
    rows_b = ["| method | balanced accuracy | sensitivity | specificity | subtle set: "
              "sensitivity |", "|---|---|---|---|---|"]
    for _, r in summary.iterrows():
        sub = df[df["method"] == r["method"]]
        cell = (lambda m: f"{_fmt(r[f'{m}_mean'])} ({_fmt(r[f'{m}_min'])}-"
                          f"{_fmt(r[f'{m}_max'])})")
        name = _method_name(r["method"])
        lines.append(f"| {name} | {int(r['n_seeds'])} | {cell('auc')} | {cell('f1')} | "
                     f"{sub['seconds_train'].astype(float).mean() / 60:.0f} |")
        rows_b.append(f"| {name} | {cell('balanced_accuracy')} | "
                      f"{cell('sensitivity')} | {cell('specificity')} | "
                      f"{cell('subtle_sensitivity')} |")
    lines += ["", "The same decisions, mean (min-max) over seeds:", "", *rows_b]
    if len(df):  # per-seed rows by method (in the order above), then seed
        order = {m: i for i, m in enumerate(pd.unique(df["method"]))}
        df = df.assign(_o=df["method"].map(order)).sort_values(["_o", "seed"], kind="stable")
    lines += ["", "Per seed:", "",
              "| method | seed | test AUC [95%] | F1 | threshold | found / artifacts | "
              "false alarms | validation AUC |", "|---|---|---|---|---|---|---|---|"]
    for _, r in df.iterrows():
        lines.append(f"| {_method_name(r['method'])} | {int(r['seed'])} | {_fmt(r['auc'])} "
                     f"[{_fmt(r['auc_low'])}, {_fmt(r['auc_high'])}] | {_fmt(r['f1'])} | "
                     f"{_fmt(r['threshold'])} | {int(r['tp'])} / {int(r['tp'] + r['fn'])} | "
                     f"{int(r['fp'])} | {_fmt(r['valid_auc'])} |")
    if len(df) and "f1_f1rule" in df.columns:
        lines += ["", "The other rule chosen on validation, the threshold that maximises F1 on "
                  "the validation split, scored on the same test scans:", "",
                  "| method | seed | threshold | F1 | sensitivity | specificity |",
                  "|---|---|---|---|---|---|"]
        for _, r in df.iterrows():
            lines.append(f"| {_method_name(r['method'])} | {int(r['seed'])} | "
                         f"{_fmt(r['threshold_f1rule'])} | "
                         f"{_fmt(r['f1_f1rule'])} | {_fmt(r['sensitivity_f1rule'])} | "
                         f"{_fmt(r['specificity_f1rule'])} |")
    kinds = [c for c in df.columns if c.startswith("sens_")]
    if len(df) and kinds:  # kinds as rows: a column per method keeps the table narrow
        lines += ["", "Sensitivity per artifact kind on the test split, mean over seeds:", "",
                  *_kind_table(df, kinds, "sens_")]
    subtle = [c for c in df.columns if c.startswith("subtle_sens_")]
    if len(df) and subtle and df[subtle].notna().any().any():
        n_sub = int(pd.to_numeric(df["n_subtle"], errors="coerce").max())
        lines += ["", f"Sensitivity per artifact kind on the separate set of {n_sub} *subtle* "
                  "artifacts (never used for training or for any choice), at the same "
                  "thresholds, mean over seeds. Read each column against its last row, the "
                  "share of *clean* test scans the method calls artifacts: a method that "
                  "flags that share of every scan finds as many subtle artifacts by chance.",
                  "", *_kind_table(df, subtle, "subtle_sens_")]
        lines.append("| *clean test scans called artifacts* | " + " | ".join(
            _fmt(1 - sub["specificity"].astype(float).mean(), 2)
            for _, sub in df.groupby("method", sort=False)) + " |")
    if differences is not None and len(differences):
        lines += _differences_markdown(differences, order=list(pd.unique(df["method"])))
    missing = [m for m in (methods or STAGES) if m not in set(df["method"])]
    if missing:
        lines += ["", f"Not run for this table: {', '.join(missing)} (`make experiments` runs "
                  "every method; see its sidecar JSON for the time each one took)."]
    return "\n".join(lines) + "\n"


def differences_to_reference(tables: dict, reference: str = "baseline", *,
                             n_boot: int = 1000, seed: int = 0,
                             measure: str = "mutual_information",
                             metrics=("auc", "f1", "balanced_accuracy")) -> pd.DataFrame:
    """Paired bootstrap differences of each method to a reference on the same test scans.

    Each method decides at its own validation Youden threshold (:func:`threshold_rules`);
    every replicate resamples the test scans once (stratified) and scores both methods on it
    (:func:`mriqc_nb.metrics.paired_bootstrap_diff`).

    Parameters
    ----------
    tables : dict of str -> (valid, test)
        Per-scan predictions of each method; every test table must list the same scans in
        the same order.
    reference : str
        The key of ``tables`` every other method is compared with.
    n_boot, seed : int
    measure : str
    metrics : sequence of str
        Any of ``auc``, ``f1``, ``balanced_accuracy``.

    Returns
    -------
    pandas.DataFrame
        One row per method other than the reference and per metric of ``metrics``: ``method``, ``reference``, ``metric``, ``value``,
        ``reference_value``, ``diff``, ``low``, ``high`` (95%), ``p_le_0``, ``n_test``,
        ``n_test_artifacts``, ``n_boot``.

    Raises
    ------
    ValueError
        If a test table holds other scans than the reference's.
    """
    ref_test = tables[reference][1]
    y = ref_test["y"].to_numpy()
    ids = ref_test["scan_id"].astype(str).tolist()

    def decisions(valid, test):
        t = referral.no_referral_policy(valid, measure, valid["y"], criterion="youden").threshold
        return (test["p_artifact"].to_numpy(dtype=float) >= t).astype(float)

    ref_p = ref_test["p_artifact"].to_numpy(dtype=float)
    ref_d = decisions(*tables[reference])
    fns = {"auc": safe_auc,
           "f1": lambda yy, d: binary_metrics(yy, d, 0.5)["f1"],
           "balanced_accuracy": lambda yy, d: binary_metrics(yy, d, 0.5)["balanced_accuracy"]}
    unknown = [m for m in metrics if m not in fns]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}: choose from {sorted(fns)}")
    rows = []
    for name, (valid, test) in tables.items():
        if name == reference:
            continue
        if test["scan_id"].astype(str).tolist() != ids:
            raise ValueError(f"{name}: its test scans differ from {reference}'s")
        p, d = test["p_artifact"].to_numpy(dtype=float), decisions(valid, test)
        for metric, fn in ((m, fns[m]) for m in metrics):
            a, b = (p, ref_p) if metric == "auc" else (d, ref_d)
            r = paired_bootstrap_diff(fn, y, a, b, n_boot=n_boot, seed=seed)
            rows.append({"method": name, "reference": reference, "metric": metric,
                         "value": r["a"], "reference_value": r["b"], "diff": r["diff"],
                         "low": r["low"], "high": r["high"], "p_le_0": r["p_le_0"],
                         "n_test": int(y.size), "n_test_artifacts": int(y.sum()),
                         "n_boot": int(r["n_boot"])})
    return pd.DataFrame(rows)


def paired_differences(profile, stages=("baseline", "focal", "primed_baseline", "ramp",
                                        "recipe"),
                       reference: str = "baseline", *, n_boot: int = 1000, seed: int = 0,
                       progress: bool = False) -> pd.DataFrame:
    """:func:`differences_to_reference` for the live run of the profile's stages.

    Predicts validation and test (MC dropout, the profile's ``mc_samples_test`` on both:
    one T), training a stage first if needed (:func:`predictions`).
    """
    T = get_profile(profile).mc_samples_test
    tables = {s: (predictions(s, profile, "valid", T=T, progress=progress)[0],
                  predictions(s, profile, "test", T=T, progress=progress)[0])
              for s in dict.fromkeys((reference, *stages))}
    return differences_to_reference(tables, reference, n_boot=n_boot, seed=seed)


def _scan_files(scans_dir: Path) -> dict:
    """``{(method, seed): path}`` of the per-scan files ``<method>_seed-<s>.tsv.gz``."""
    found = {}
    for path in sorted(Path(scans_dir).glob("*_seed-*.tsv.gz")):
        method, _, seed = path.name[: -len(".tsv.gz")].rpartition("_seed-")
        if method and seed.isdigit():
            found[(method, int(seed))] = path
    return found


def seed_differences(scans_dir, reference: str = "baseline", *, methods=None, seeds=None,
                     n_boot: int = 1000, seed: int = 0,
                     metrics=("auc", "f1", "balanced_accuracy")) -> pd.DataFrame:
    """:func:`differences_to_reference` for every training seed of committed predictions.

    Reads the per-scan predictions that ``tools/experiments.py`` keeps
    (``results/<profile>-scans/<method>_seed-<s>.tsv.gz``: validation and test rows, MC
    dropout at one T). For each seed that the reference has, every other method of that seed is
    compared with the reference of the **same** seed on the same test scans, each at its own
    validation Youden threshold.

    Parameters
    ----------
    scans_dir : path-like
        The folder of per-scan files.
    reference : str
        The method every other one is compared with.
    methods, seeds : sequence, optional
        Restrict to these (default: all found).
    n_boot, seed : int
        Bootstrap replicates and the bootstrap's seed.
    metrics : sequence of str
        As in :func:`differences_to_reference`.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`differences_to_reference` and ``seed`` (the training seed);
        empty (with those columns) if no seed has the reference and another method.

    Raises
    ------
    FileNotFoundError
        If ``scans_dir`` is not a folder.
    ValueError
        If a file lacks a column, or its test scans differ from the reference's (the path is
        named).
    """
    scans_dir = Path(scans_dir)
    if not scans_dir.is_dir():
        raise FileNotFoundError(f"{scans_dir}: no folder of per-scan predictions")
    files = _scan_files(scans_dir)
    need = {"scan_id", "split", "y", "p_artifact", "mutual_information"}
    frames = []
    for s in sorted({k[1] for k in files}):
        if (seeds is not None and s not in set(map(int, seeds))) or (reference, s) not in files:
            continue
        tables = {}
        for (method, ms), path in files.items():
            if ms != s or (methods is not None and method not in methods and method != reference):
                continue
            df = pd.read_csv(path, sep="\t", dtype={"scan_id": str})
            missing = need - set(df.columns)
            if missing:
                raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
            tables[method] = tuple(df[df["split"] == split].reset_index(drop=True)
                                   for split in ("valid", "test"))
        if len(tables) < 2:
            continue
        try:
            d = differences_to_reference(tables, reference, n_boot=n_boot, seed=seed,
                                         metrics=metrics)
        except ValueError as err:
            raise ValueError(f"{scans_dir}, seed {s}: {err}") from None
        frames.append(d.assign(seed=s))
    if not frames:
        return pd.DataFrame(columns=["method", "reference", "metric", "value",
                                     "reference_value", "diff", "low", "high", "p_le_0",
                                     "n_test", "n_test_artifacts", "n_boot", "seed"])
    return pd.concat(frames, ignore_index=True)


def _kind_table(df: pd.DataFrame, columns, prefix: str) -> list[str]:
    """Rows of a per-kind table: a row per kind (``columns`` less ``prefix``), a column per
    method (in the order of ``df``), each cell the mean over seeds."""
    groups = list(df.groupby("method", sort=False))
    lines = ["| kind | " + " | ".join(_method_name(m) for m, _ in groups) + " |",
             "|---|" + "---|" * len(groups)]
    for c in columns:
        lines.append(f"| {c[len(prefix):]} | " + " | ".join(
            _fmt(sub[c].astype(float).mean(), 2) for _, sub in groups) + " |")
    return lines


def _differences_markdown(diffs: pd.DataFrame, order=None) -> list[str]:
    """Rows of the results page: each method minus the reference of its seed, per seed and
    whether every seed agrees (:func:`seed_difference_table`)."""
    ref = _method_name(diffs["reference"].iloc[0])
    n, k = int(diffs["n_test"].iloc[0]), int(diffs["n_test_artifacts"].iloc[0])
    tables = {m: seed_difference_table(diffs, m) for m in ("auc", "f1")}
    methods = [_method_name(m) for m in (order or [])]
    methods = [m for m in methods if m in tables["auc"].index] + [
        m for m in tables["auc"].index if m not in methods]
    lines = ["", f"Each method minus the {ref} of the same training seed, on the same {n} test "
             f"scans ({k} artifacts): paired 95% bootstrap interval of the difference "
             f"({int(diffs['n_boot'].iloc[0])} stratified "
             "replicates), F1 at each method's own validation Youden threshold. Seed *all*: "
             "the interval lies above (or below) 0 for every seed; *mixed*: it does not; *not "
             "run*: that seed of the method has not been trained yet.", "",
             "| method | seed | test AUC: difference [95%] | F1: difference [95%] |",
             "|---|---|---|---|"]
    for method in methods:
        for col in [c for c in tables["auc"].columns if c.startswith("seed ")]:
            lines.append(f"| {method} | {col[5:]} | {tables['auc'].loc[method, col]} | "
                         f"{tables['f1'].loc[method, col]} |")
        lines.append(f"| {method} | all | {tables['auc'].loc[method, 'every seed']} | "
                     f"{tables['f1'].loc[method, 'every seed']} |")
    return lines


def seed_difference_table(diffs: pd.DataFrame, metric: str = "auc") -> pd.DataFrame:
    """One metric of :func:`seed_differences` for reading: a row per method, a column per
    seed (``"+0.180 [+0.111, +0.242]"``), and ``every seed``: ``"above 0"`` when every
    seed's paired interval lies above 0, ``"below 0"`` when every one lies below, else
    ``"mixed"`` (a difference whose sign or interval depends on the seed is not a result).

    A method that lacks a seed the others have reads ``"not run"`` there, and its verdict
    says on how many seeds it rests (``"above 0 (2 of 3 seeds)"``)."""
    d = diffs[diffs["metric"] == metric]
    all_seeds = sorted(int(x) for x in pd.unique(d["seed"]))
    rows = []
    for method in pd.unique(d["method"]):
        m = d[d["method"] == method].sort_values("seed")
        row = {"method": _method_name(method)}
        have = {int(r.seed): r for r in m.itertuples()}
        for seed in all_seeds:
            r = have.get(seed)
            row[f"seed {seed}"] = ("not run" if r is None else
                                   f"{r.diff:+.3f} [{r.low:+.3f}, {r.high:+.3f}]")
        verdict = ("above 0" if (m["low"] > 0).all() else
                   "below 0" if (m["high"] < 0).all() else "mixed")
        if len(have) < len(all_seeds):
            verdict += f" ({len(have)} of {len(all_seeds)} seeds)"
        row["every seed"] = verdict
        rows.append(row)
    return pd.DataFrame(rows).set_index("method") if rows else pd.DataFrame()
