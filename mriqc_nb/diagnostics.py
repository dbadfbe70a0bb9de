"""Why a detector does or does not learn: the diagnosis of chapter 5b, as functions.

Four questions, each answered from the profile's own scan table, cached volumes or a run:

- **Batches under class weights** (:func:`batch_composition`): with a 98%-clean training set,
  how many artifacts does a batch hold (hypergeometric), what share of a batch's weighted loss
  one artifact carries, and how many steps of an epoch see an artifact at all.
- **Shortcuts** (:func:`shortcut_table`): measures of the generator's fingerprints that a
  network can use instead of the artifact: the share of voxels at the volume's exact minimum
  (a constant band: the zero padding of coverage and wrap-around) and the standard deviation
  of a background corner (a noiseless background), per artifact kind.
- **Memorisation** (:func:`memorisation`, :func:`artifact_ce_by_epoch`): the cross-entropy
  of the *stored* training artifacts against that of the validation artifacts, per epoch. A
  network that memorises its few training artifacts drives the first far below the second.
- **Fitting at all** (:func:`constant_loss`): each epoch's training loss beside that of the
  best *constant* predictor, a network that gives every scan the same probability. A ratio
  above 1 means the network did worse on its own training set than one that knows nothing.
- **What is detected** (:func:`per_kind_sensitivity`, :func:`subtle_sensitivity`,
  :func:`development_sensitivity`): the sensitivity per artifact kind at a fixed threshold, on
  a labelled split, on the separate set of *subtle* artifacts, or on many artifacts of every
  kind drawn onto validation anatomy.
- **What reaches the network** (:func:`visible_difference`, :func:`conformed_pair`): how
  much of an artifact survives the screening pipeline's resampling to the network's grid,
  measured on a paired clean and corrupted copy of the same head. Anti-aliasing removes every spatial frequency
  above the grid's Nyquist limit, and with it an artifact that lives only there.

Nothing here trains. TensorFlow is imported only by :func:`artifact_ce_by_epoch`,
:func:`subtle_sensitivity` and :func:`development_sensitivity` (they run a model; the last
also draws its volumes, beside the database's training redraws).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.stats import hypergeom

from mriqc_nb.labels import ARTIFACT, class_weights, to_y

__all__ = ["batch_composition", "constant_band_share", "background_std", "sharpness",
           "shortcut_table",
           "memorisation", "constant_loss", "artifact_ce_by_epoch", "per_kind_sensitivity",
           "subtle_sensitivity", "development_set", "development_sensitivity", "conformed_pair",
           "visible_difference"]

#: Label of the scans without an artifact in the per-kind tables.
CLEAN_KIND = "clean"


def batch_composition(n_clean: int, n_artifact: int, batch_size: int, *,
                      weights=None, epochs: int = 1) -> dict:
    """What class weights ``n_max / n_c`` do to the batches of an imbalanced training set.

    Batches are drawn without replacement from ``n_clean + n_artifact`` scans (a shuffled
    epoch), so the number of artifacts in a batch is hypergeometric.

    Parameters
    ----------
    n_clean, n_artifact : int
        Training scans of each class (both > 0).
    batch_size : int
        Scans per batch.
    weights : array_like of 2 floats, optional
        (clean, artifact) loss weights; default :func:`mriqc_nb.labels.class_weights` of the
        counts, as the paper's weighted cross-entropy.
    epochs : int
        Epochs of training (for ``views_per_artifact``).

    Returns
    -------
    dict
        ``weights`` (clean, artifact); ``p_artifacts`` (list: P(k artifacts in a batch) for
        k = 0 .. batch_size); ``one_artifact_share``: the share of the weighted loss of a
        batch with exactly one artifact that this artifact carries (equal per-scan losses);
        ``loss_scale_one_artifact``: that batch's weighted loss over an all-clean batch's;
        ``steps_per_epoch`` (last partial batch dropped); ``steps_with_artifact``: expected
        steps per epoch with at least one artifact; ``share_with_artifact``: P(k >= 1);
        ``views_per_artifact``: times each artifact is shown over ``epochs`` (the same
        volume each time, up to flips).
    """
    n_clean, n_artifact, b = int(n_clean), int(n_artifact), int(batch_size)
    if n_clean <= 0 or n_artifact <= 0 or b <= 0:
        raise ValueError(f"need scans of both classes and a batch: {n_clean} clean, "
                         f"{n_artifact} artifacts, batch {b}")
    w = np.asarray(class_weights([n_clean, n_artifact]) if weights is None else weights,
                   dtype=float)
    n = n_clean + n_artifact
    pk = hypergeom.pmf(np.arange(b + 1), n, n_artifact, b)
    steps = n // b
    return {
        "weights": w.tolist(),
        "p_artifacts": pk.tolist(),
        "one_artifact_share": float(w[1] / (w[1] + (b - 1) * w[0])),
        "loss_scale_one_artifact": float((w[1] + (b - 1) * w[0]) / (b * w[0])),
        "steps_per_epoch": int(steps),
        "steps_with_artifact": float(steps * (1 - pk[0])),
        "share_with_artifact": float(1 - pk[0]),
        "views_per_artifact": int(epochs),
    }


def constant_band_share(volume, atol: float = 1e-3) -> float:
    """Share of the voxels within ``atol`` of the volume's minimum (a constant band).

    Zero padding (the cut of coverage, the voxels outside a reduced field of view) lands
    exactly at the minimum after normalisation; a real or noisy background does not.
    """
    v = np.asarray(volume, dtype=np.float32)
    return float(np.mean(v <= v.min() + atol))


def background_std(volume, size: tuple[int, int] = (4, 4)) -> float:
    """Standard deviation of a background corner: ``volume[:size[0], :size[1], :]``.

    0 means a noiseless, exactly constant background (in the units of the volume; cached
    volumes are z-scored over the head).
    """
    v = np.asarray(volume, dtype=np.float32)
    return float(np.std(v[:size[0], :size[1], :]))


def sharpness(volume, mask=None) -> float:
    """RMS of the discrete Laplacian over the head: how much of a volume is fine detail.

    The Laplacian weighs each spatial frequency by its squared magnitude, so smoothing of
    any kind (a blur artifact, interpolation, partial volume) lowers this number and white
    noise raises it. Read it on z-scored volumes (as cached), where it is in head-SD units
    per voxel squared and comparable across scans of one grid.

    Parameters
    ----------
    volume : array_like, shape (X, Y, Z)
    mask : array_like of bool, optional
        Voxels to average over (default: :func:`mriqc_nb.scans.head_mask` of the volume).
    """
    from mriqc_nb.scans import head_mask

    v = np.asarray(volume, dtype=np.float32)
    m = head_mask(v) if mask is None else np.asarray(mask, dtype=bool)
    return float(np.sqrt(np.mean(ndimage.laplace(v)[m] ** 2)))


def shortcut_table(table: pd.DataFrame, *, splits=("train", "valid", "test"),
                   per_kind: int = 60, root=None, seed: int = 0) -> pd.DataFrame:
    """Constant-band and background measures of cached volumes, per artifact kind.

    Parameters
    ----------
    table : pandas.DataFrame
        A built scan table (with ``cache_file``; ``attrs["root"]`` or ``root``).
    splits : sequence of str
        Splits whose scans are measured.
    per_kind : int
        At most this many volumes per kind (a seeded random subset), to bound the time.
    root : path-like, optional
        Database directory (default ``table.attrs["root"]``).
    seed : int
        Seed of the subset.

    Returns
    -------
    pandas.DataFrame
        One row per kind (``clean`` for scans without an artifact), sorted by kind: ``n``,
        ``share_at_min`` (mean :func:`constant_band_share`), ``minimum`` (mean volume
        minimum: the background level after normalisation), ``corner_std`` (mean
        :func:`background_std`).
    """
    from mriqc_nb.data.cache import cache_paths

    rows = table[table["split"].astype(str).isin(list(splits))]
    kinds = rows["artifact_kind"].fillna("").astype(str).replace("", CLEAN_KIND)
    rng = np.random.default_rng(seed)
    out = []
    for kind in sorted(kinds.unique()):
        sub = rows[kinds == kind]
        if len(sub) > per_kind:
            sub = sub.iloc[np.sort(rng.choice(len(sub), per_kind, replace=False))]
        stats = []
        for path in cache_paths(sub, root):
            v = np.load(path).astype(np.float32)
            stats.append((constant_band_share(v), float(v.min()), background_std(v)))
        a = np.asarray(stats)
        out.append(dict(kind=kind, n=len(a), share_at_min=a[:, 0].mean(),
                        minimum=a[:, 1].mean(), corner_std=a[:, 2].mean()))
    return pd.DataFrame(out)


def memorisation(history: pd.DataFrame) -> pd.DataFrame:
    """Training-artifact vs validation-artifact cross-entropy per epoch, from a history.

    Parameters
    ----------
    history : pandas.DataFrame
        A run's ``history.csv`` (``Run(dir).history``) with the columns ``epoch``,
        ``train_ce_artifact`` (the stored training artifacts, unaugmented) and
        ``val_ce_artifact`` (the validation artifacts): the ``recipe`` stage writes them,
        :func:`artifact_ce_by_epoch` computes them for any run.

    Returns
    -------
    pandas.DataFrame
        ``epoch``, ``train_ce_artifact``, ``val_ce_artifact`` (nats), ``gap`` (validation
        minus training; a gap that grows while the training CE falls is memorisation) and
        ``ratio`` (validation over training).

    Raises
    ------
    KeyError
        If a column is missing.
    """
    need = ["epoch", "train_ce_artifact", "val_ce_artifact"]
    missing = [c for c in need if c not in history.columns]
    if missing:
        raise KeyError(f"history lacks {missing}: compute them with artifact_ce_by_epoch()")
    out = history[need].astype(float).copy()
    out["epoch"] = out["epoch"].astype(int)
    out["gap"] = out["val_ce_artifact"] - out["train_ce_artifact"]
    with np.errstate(divide="ignore", invalid="ignore"):
        out["ratio"] = out["val_ce_artifact"] / out["train_ce_artifact"]
    return out.reset_index(drop=True)


def constant_loss(history: pd.DataFrame) -> pd.DataFrame:
    """Each epoch's training loss beside that of the best constant predictor.

    A network that ignores its input and gives every scan the same probability ``p`` of an
    artifact has, on an epoch of ``n_clean`` clean and ``n_artifact`` artifact scans with
    class weights ``w_clean`` and ``w_artifact``, the mean weighted cross-entropy
    ``-(W_c log(1 - p) + W_a log p) / n`` with ``W_c = n_clean w_clean``,
    ``W_a = n_artifact w_artifact``; it is smallest at ``p = W_a / (W_a + W_c)`` (0.5 for
    balancing weights, the artifact share for unweighted cross-entropy). A ratio of the
    epoch's loss to that minimum above 1 says the network did *worse on its own training
    set* than one that knows nothing: it has not fitted, let alone memorised.

    The epoch's loss is the running mean that training reports, with dropout and flips on
    and while the weights change, so it overstates the loss of the finished network a little;
    the constant is exact for the epoch's counts and weights.

    Parameters
    ----------
    history : pandas.DataFrame
        A run's ``history.csv`` (``Run(dir).history``) with the columns ``epoch``,
        ``n_clean``, ``n_artifact``, ``weight_clean``, ``weight_artifact`` and ``loss``
        (the paper's stages write them). Epochs without weights (the focal loss, whose
        constant is another formula) get NaN.

    Returns
    -------
    pandas.DataFrame
        ``epoch``, ``phase`` (if the history has it), ``loss``, ``constant_loss`` and
        ``ratio`` (loss over constant loss).

    Raises
    ------
    KeyError
        If a column is missing (they are named).
    """
    need = ["epoch", "n_clean", "n_artifact", "weight_clean", "weight_artifact", "loss"]
    missing = [c for c in need if c not in history.columns]
    if missing:
        raise KeyError(f"history lacks {missing}: constant_loss needs the class counts and "
                       "weights of every epoch (the paper's stages write them)")
    h = history.reset_index(drop=True)
    num = h[need[1:]].apply(pd.to_numeric, errors="coerce")  # empty weights (focal): NaN
    w_c = num["n_clean"] * num["weight_clean"]
    w_a = num["n_artifact"] * num["weight_artifact"]
    n = num["n_clean"] + num["n_artifact"]
    with np.errstate(divide="ignore", invalid="ignore"):
        p = w_a / (w_a + w_c)
        const = -(w_c * np.log1p(-p) + w_a * np.log(p)) / n
    const = const.where((w_a > 0) & (w_c > 0))
    out = pd.DataFrame({"epoch": h["epoch"].astype(int)})
    if "phase" in h.columns:
        out["phase"] = h["phase"]
    out["loss"] = num["loss"].astype(float)
    out["constant_loss"] = const.astype(float)
    out["ratio"] = out["loss"] / out["constant_loss"]
    return out


def _artifact_ce(p_artifact) -> float:
    """Mean cross-entropy (nats) of artifact scans scored ``p_artifact``."""
    return float(-np.mean(np.log(np.clip(np.asarray(p_artifact, dtype=float), 1e-7, 1.0))))


def artifact_ce_by_epoch(run, table: pd.DataFrame, epochs=None, *, root=None) -> pd.DataFrame:
    """Cross-entropy of the stored training and the validation artifacts after each epoch.

    Loads every saved epoch of ``run`` and scores the artifact scans of the ``train`` and
    ``valid`` splits deterministically (dropout off, no flips), as the ``recipe`` stage does
    during training; the result feeds :func:`memorisation`.

    Parameters
    ----------
    run : mriqc_nb.model.runs.Run or path-like
    table : pandas.DataFrame
        The built scan table the run was trained on.
    epochs : sequence of int, optional
        Default: every saved epoch after 0 (for a finished run that keeps only its last
        weights, a shipped run, every epoch of its ``artifact_ce.csv``).
    root : path-like, optional
        Database directory (default ``table.attrs["root"]``).

    Returns
    -------
    pandas.DataFrame
        ``epoch``, ``train_ce_artifact``, ``val_ce_artifact`` (nats), ``n_train_artifacts``,
        ``n_valid_artifacts``.

    Notes
    -----
    A finished run keeps the result in ``artifact_ce.csv`` (its weights no longer change, and
    training stops the run being reused on another database), which later calls return; a
    shipped run (:mod:`mriqc_nb.model.shipped`) carries the one measured on every epoch of the
    full run. An epoch neither saved nor in that file is a :class:`FileNotFoundError`.
    """
    from mriqc_nb._atomic import write_text
    from mriqc_nb.data.cache import load_arrays
    from mriqc_nb.model.runs import Run
    from mriqc_nb.predict import predict_samples

    run = run if hasattr(run, "dir") else Run(run)
    on_disk = [int(p.stem.split("-")[1]) for p in run.checkpoints]  # 0: initial weights
    saved = [e for e in on_disk if e > 0]
    stored_file = run.dir / "artifact_ce.csv"
    stored = pd.read_csv(stored_file) if run.done and stored_file.is_file() else None
    if epochs is None:
        epochs = sorted(set(saved) | (set(stored["epoch"]) if stored is not None else set()))
    epochs = [int(e) for e in epochs]
    if stored is not None and set(epochs) <= set(stored["epoch"]):
        return stored.set_index("epoch").loc[epochs].reset_index()
    missing = [e for e in epochs if e not in on_disk]
    if missing:
        raise FileNotFoundError(f"{run.dir}: no weights saved for epoch(s) {missing} (a shipped "
                                "run keeps only its last; its artifact_ce.csv has the others)")
    art = table[table["label"].astype(str) == ARTIFACT]
    xs = {s: load_arrays(art, art.loc[art["split"].astype(str) == s, "scan_id"], root=root)[0]
          for s in ("train", "valid")}
    rows = []
    for e in epochs:
        model = run.model(epoch=int(e))
        ce = {s: _artifact_ce(predict_samples(model, x, "deterministic")[0, :, 1])
              for s, x in xs.items()}
        rows.append(dict(epoch=int(e), train_ce_artifact=ce["train"],
                         val_ce_artifact=ce["valid"], n_train_artifacts=len(xs["train"]),
                         n_valid_artifacts=len(xs["valid"])))
    out = pd.DataFrame(rows)
    if run.done and epochs == saved:  # the whole finished run: keep it
        write_text(stored_file, out.to_csv(index=False))
    return out


def per_kind_sensitivity(summary: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Sensitivity per artifact kind at one threshold (and specificity of the clean scans).

    Parameters
    ----------
    summary : pandas.DataFrame
        Per-scan predictions (:func:`mriqc_nb.predict.run_predictions`): columns
        ``artifact_kind``, ``p_artifact`` and ``y`` (1 = artifact) or ``label``.
    threshold : float
        A scan is called artifact when ``p_artifact >= threshold``.

    Returns
    -------
    pandas.DataFrame
        One row per artifact kind, sorted, then a ``clean`` row when there are clean scans:
        ``kind``, ``n``, ``called_artifact`` (scans at or above the threshold), ``rate``
        (``called_artifact / n``: the sensitivity of a kind, the false-positive rate of the
        clean row) and ``sensitivity`` (NaN for the clean row).
    """
    y = summary["y"].to_numpy() if "y" in summary else to_y(summary["label"])
    called = summary["p_artifact"].to_numpy(dtype=float) >= threshold
    kinds = summary["artifact_kind"].fillna("").astype(str).to_numpy()
    rows = []
    for kind in sorted(set(kinds[y == 1])):
        m = (y == 1) & (kinds == kind)
        rows.append(dict(kind=kind, n=int(m.sum()), called_artifact=int(called[m].sum())))
    if (y == 0).any():
        rows.append(dict(kind=CLEAN_KIND, n=int((y == 0).sum()),
                         called_artifact=int(called[y == 0].sum())))
    out = pd.DataFrame(rows, columns=["kind", "n", "called_artifact"])
    out["rate"] = out["called_artifact"] / out["n"]
    out["sensitivity"] = out["rate"].where(out["kind"] != CLEAN_KIND)
    return out


def subtle_sensitivity(run, threshold: float, *, profile=None, method: str = "mc",
                       T: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Per-kind sensitivity on the separate set of *subtle* artifacts (split ``"subtle"``).

    The subtle scans are not in any labelled split; they show what a detector trained on
    prominent artifacts finds of the milder ones, at the threshold chosen on validation.

    Parameters
    ----------
    run : mriqc_nb.model.runs.Run or path-like
        A trained run.
    threshold : float
    profile, method, T, seed
        As :func:`mriqc_nb.predict.run_predictions` (predictions cached in the run).

    Returns
    -------
    pandas.DataFrame
        :func:`per_kind_sensitivity` of the subtle split, plus a last row ``all``.
    """
    from mriqc_nb.predict import run_predictions

    summary, _ = run_predictions(run, "subtle", method, T=T, seed=seed, profile=profile)
    out = per_kind_sensitivity(summary, threshold)
    n, k = int(out["n"].sum()), int(out["called_artifact"].sum())
    total = pd.DataFrame([dict(kind="all", n=n, called_artifact=k, rate=k / n if n else np.nan,
                               sensitivity=k / n if n else np.nan)])
    return pd.concat([out, total], ignore_index=True)


def _wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a proportion ``k / n``."""
    if n == 0:
        return np.nan, np.nan
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


#: Seed of the development set's draws (:func:`development_set`).
DEVELOPMENT_SEED = 90_001


def development_set(table: pd.DataFrame, profile, *, per_kind: int = 40,
                    draw_seed: int = DEVELOPMENT_SEED, workers: int = 1) -> pd.DataFrame:
    """The rows (volumes built) of a *development set* on validation anatomy.

    ``per_kind`` prominent artifacts of every kind of the validation split, drawn onto
    distinct clean **validation** scans (:func:`mriqc_nb.data.augment.redraw_table` with
    ``split="valid"``) and made once into the redraw pool of the database
    (:func:`~mriqc_nb.data.augment.build_redraws`, ``workers`` processes). Nothing of the
    test split, nothing the network trained on: for measuring, never for training.
    """
    from mriqc_nb.data.augment import build_redraws, redraw_table

    vrows = table[table["split"].astype(str) == "valid"]
    n_kinds = vrows.loc[vrows["label"].astype(str) == ARTIFACT, "artifact_kind"].nunique()
    dev = redraw_table(table, 0, seed=draw_seed, onto_clean=per_kind * n_kinds, split="valid")
    return build_redraws(dev, profile, table.attrs["root"], workers=workers)


def development_sensitivity(run, table: pd.DataFrame, valid: pd.DataFrame, threshold: float, *,
                            profile=None, per_kind: int = 40, T: int = 50, seed: int = 0,
                            draw_seed: int = DEVELOPMENT_SEED, workers: int = 1) -> pd.DataFrame:
    """Per-kind sensitivity and AUC on a *development set* drawn on validation anatomy.

    A labelled split holds a few artifacts of each kind (3 to 8 on the laptop profile), so
    its per-kind rates move by 12 points or more with one scan. A synthetic benchmark can draw
    more: ``per_kind`` prominent artifacts of every kind of the validation split are drawn onto
    distinct clean **validation** scans (:func:`mriqc_nb.data.augment.redraw_table` with
    ``split="valid"``; nothing of the test split, nothing the network trained on), scored with
    the same sampler as ``valid`` (MC dropout, ``T`` samples, seed ``seed``), and read at
    ``threshold`` and against the clean validation scans of ``valid``.

    Parameters
    ----------
    run : mriqc_nb.model.runs.Run or path-like
        A trained run (its selected checkpoint).
    table : pandas.DataFrame
        The built scan table the run was trained on.
    valid : pandas.DataFrame
        Per-scan validation predictions of the run (``y``, ``p_artifact``), with ``T`` and
        ``seed`` as here.
    threshold : float
        Chosen on validation.
    profile : str or Profile, optional
        Grid of the volumes (default: the run's).
    per_kind, draw_seed, workers
        Artifacts per kind, seed of their draws, processes that make them.
    T, seed
        MC-dropout samples and their seed.

    Returns
    -------
    pandas.DataFrame
        One row per kind, then ``clean`` (the validation clean scans: ``rate`` is the
        false-alarm rate) and ``all``: ``kind``, ``n``, ``called_artifact``, ``rate``,
        ``rate_low``, ``rate_high`` (95% Wilson interval) and ``auc`` (the kind's scores
        against the clean validation scans').
    """
    from mriqc_nb.data.cache import load_arrays
    from mriqc_nb.metrics import safe_auc
    from mriqc_nb.model.runs import Run
    from mriqc_nb.predict import predict_samples

    run = run if isinstance(run, Run) else Run(run)
    profile = profile if profile is not None else run.config.profile
    dev = development_set(table, profile, per_kind=per_kind, draw_seed=draw_seed,
                          workers=workers)
    x, _ = load_arrays(dev)
    score = predict_samples(run.model(), x, "mc", T=T, seed=seed).mean(axis=0)[:, 1]
    clean = valid.loc[valid["y"].to_numpy() == 0, "p_artifact"].to_numpy(dtype=float)
    kinds = dev["artifact_kind"].astype(str).to_numpy()
    groups = [(k, score[kinds == k]) for k in sorted(set(kinds))] + [("all", score)]
    rows = []
    for kind, s in groups:
        k = int((s >= threshold).sum())
        auc = safe_auc(np.r_[np.zeros(len(clean)), np.ones(len(s))], np.r_[clean, s])
        rows.append(dict(kind=kind, n=len(s), called_artifact=k, auc=auc))
    rows.insert(-1, dict(kind=CLEAN_KIND, n=len(clean),
                         called_artifact=int((clean >= threshold).sum()), auc=np.nan))
    out = pd.DataFrame(rows)
    out["rate"] = out["called_artifact"] / out["n"]
    bounds = [_wilson(int(k), int(n)) for k, n in zip(out["called_artifact"], out["n"])]
    out["rate_low"], out["rate_high"] = zip(*bounds)
    return out[["kind", "n", "called_artifact", "rate", "rate_low", "rate_high", "auc"]]


def conformed_pair(clean, corrupted, grid=None, spacing_mm=None) -> tuple[np.ndarray, np.ndarray]:
    """A clean and a corrupted copy of one head, conformed alike: ``(clean, corrupted)``.

    Both go through the steps of :func:`mriqc_nb.scans.conform` (RAS+, resampling to
    ``spacing_mm`` with Gaussian anti-aliasing, the head-centred window of ``grid``, z-scoring
    over the head), with the **clean** copy's head mask and window for both
    (:func:`mriqc_nb.scans.conform_copies`), so that their difference is the artifact only
    (not a shifted window or a different mask).

    Parameters
    ----------
    clean, corrupted : nibabel image or path
        The same head without and with the artifact, on the same voxel grid.
    grid : sequence of 3 int, optional
        Output grid; ``None`` keeps the whole (resampled) volume.
    spacing_mm : sequence of 3 float, optional
        Output voxel size; ``None`` keeps the native grid (no resampling).

    Returns
    -------
    tuple of two float32 arrays of one shape
    """
    from mriqc_nb.scans import conform_copies

    c, a = conform_copies([clean, corrupted], grid, spacing_mm)
    return c, a


def visible_difference(clean, corrupted, grid=None, spacing_mm=None) -> float:
    """How much of an artifact reaches a grid: RMS of ``corrupted - clean`` after conforming.

    The two copies are conformed alike by :func:`conformed_pair` (the clean copy's mask and
    window for both); arguments as there.

    Returns
    -------
    float
        Root-mean-square difference over the grid, in units of the clean head's intensity
        standard deviation: 0 when nothing of the artifact is left.
    """
    c, a = conformed_pair(clean, corrupted, grid, spacing_mm)
    return float(np.sqrt(np.mean((a - c) ** 2)))
