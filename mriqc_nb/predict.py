"""Predictions of a trained model on a split: MC dropout, test-time flips, or both.

One function, :func:`predict_split`, turns (model, scan table, split) into

- ``samples``: the raw softmax samples, shape (S, N, 2), S = T (MC dropout), 8 (flips) or
  8 T (both), and
- a per-scan table: the scan's id, subject, modality, label (0 clean / 1 artifact), artifact
  kind and class, plus every statistic of :func:`mriqc_nb.uncertainty.summarise`.

Both are cached as one ``.npz`` per (split, kind, T, seed) in ``cache_dir`` (a run directory's
``predictions/`` folder), so chapters 6, 7 and 8 share one set of predictions. The volumes are
read from the database cache in chunks, so memory stays bounded whatever the split's size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mriqc_nb import uncertainty
from mriqc_nb.data.database import LABEL_INDEX, load_arrays

__all__ = ["KINDS", "predict_samples", "predict_split", "scan_columns"]

#: Kinds of repeated prediction: MC dropout (epistemic), test-time flips (aleatoric), both.
KINDS = ("mc", "flips", "mc_flips", "deterministic")

_SCAN_COLUMNS = ("scan_id", "subject_id", "modality", "artifact_kind", "artifact_class", "severity", "split")


def scan_columns(table: pd.DataFrame) -> pd.DataFrame:
    """The descriptive columns of a scan table plus ``label`` as 0 (clean) / 1 (artifact)."""
    cols = [c for c in _SCAN_COLUMNS if c in table.columns]
    out = table[cols].reset_index(drop=True).copy()
    out["label"] = table["label"].map(LABEL_INDEX).to_numpy(dtype=np.int64)
    return out


def predict_samples(model, x: np.ndarray, kind: str = "mc", T: int = 50, seed: int = 0,
                    batch_size: int = 8) -> np.ndarray:
    """Repeated predictions for a batch of volumes ``x`` (N, X, Y, Z, 1).

    ``kind`` is ``"mc"`` (T MC-dropout samples, trunk once: :func:`mriqc_nb.model.networks.predict_mc_fast`),
    ``"flips"`` (the 8 flips, dropout off), ``"mc_flips"`` (T samples on each of the 8 flips)
    or ``"deterministic"`` (one pass, dropout off).

    Returns
    -------
    ndarray, shape (S, N, 2)
    """
    from mriqc_nb.model.networks import predict_mc_fast

    def deterministic(xb):
        return model.predict(xb, batch_size=batch_size, verbose=0)

    if kind == "mc":
        return predict_mc_fast(model, x, T, seed=seed, batch_size=batch_size)
    if kind == "flips":
        return uncertainty.predict_flips(deterministic, x)
    if kind == "mc_flips":
        return uncertainty.predict_mc_flips(
            lambda xb, t: predict_mc_fast(model, xb, t, seed=seed, batch_size=batch_size), x, T)
    if kind == "deterministic":
        return deterministic(x)[None]
    raise ValueError(f"unknown prediction kind {kind!r}; expected one of {KINDS}")


def predict_split(model, table: pd.DataFrame, split: str, *, kind: str = "mc", T: int = 50,
                  seed: int = 0, batch_size: int = 8, chunk: int = 64, cache_dir=None,
                  root=None) -> tuple[pd.DataFrame, np.ndarray]:
    """Predict every scan of ``split`` and summarise the samples per scan.

    Parameters
    ----------
    model : keras.Model
        A network of :mod:`mriqc_nb.model.networks`.
    table : pandas.DataFrame
        A built scan table (its ``attrs["root"]`` or ``root`` locates the volume cache).
    split : str
        ``"valid"``, ``"test"``, ``"subtle"`` ...
    kind, T, seed, batch_size
        See :func:`predict_samples`. ``T`` is ignored for ``"flips"``.
    chunk : int
        Volumes loaded into memory at a time.
    cache_dir : path-like, optional
        Where to cache ``{split}_{kind}_T{T}_seed{seed}.npz``; no caching if omitted.

    Returns
    -------
    summary : pandas.DataFrame, one row per scan of the split
    samples : ndarray, shape (S, N, 2)
    """
    rows = table[table["split"].astype(str) == split]
    if rows.empty:
        raise ValueError(f"split {split!r} has no scans")
    ids = rows["scan_id"].astype(str).tolist()
    cache = None
    if cache_dir is not None:
        t_tag = "" if kind in ("flips", "deterministic") else f"_T{T}"
        cache = Path(cache_dir) / f"{split}_{kind}{t_tag}_seed{seed}.npz"
        if cache.exists():
            with np.load(cache, allow_pickle=False) as z:
                if z["scan_id"].tolist() == ids:
                    samples = z["samples"]
                    return _summary(rows, samples), samples
    parts = []
    for start in range(0, len(ids), chunk):
        x, _ = load_arrays(table, ids[start:start + chunk], root=root)
        parts.append(predict_samples(model, x, kind, T, seed + start, batch_size))
    samples = np.concatenate(parts, axis=1).astype(np.float32)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, samples=samples, scan_id=np.array(ids))
        tmp.replace(cache)
    return _summary(rows, samples), samples


def _summary(rows: pd.DataFrame, samples: np.ndarray) -> pd.DataFrame:
    return pd.concat([scan_columns(rows), uncertainty.summarise(samples)], axis=1)
