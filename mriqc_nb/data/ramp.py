"""Data-ramping: which training scans epoch ``e`` of a ramp schedule uses.

Pizarro et al. (2023) fight a 98%-clean training set in two stages. *Priming* trains on a
50%-clean set: every training artifact plus as many clean training scans. The *ramp* then
starts from the primed weights and grows the training set linearly, epoch after epoch, until
it is the full (98%-clean) training set:

.. math::

    \\mathrm{size}(e) = n_\\mathrm{prime} + \\left\\lfloor e\\,
        \\frac{n_\\mathrm{full} - n_\\mathrm{prime}}{E_R} \\right\\rfloor,
    \\qquad 0 \\le e \\le E_R,

and ``size(e) = n_full`` for ``e >= E_R``. With the paper's counts (834, 20,879) and
``E_R = 5`` the sizes are 834, 4,843, 8,852, 12,861, 16,870, 20,879.

Conventions of this module
--------------------------
* **Epoch 0 is the priming set**; epoch ``e = 1 .. E_R`` are the ramp epochs, and epoch
  ``E_R`` (and every later one) is the full training set.
* **Rounding**: sizes are computed in integer arithmetic and rounded *down*
  (``n_prime + e * (n_full - n_prime) // E_R``), so they are exact, never decrease, and the
  last one is exactly ``n_full``.
* **The artifacts stay fixed**: every epoch keeps all training artifacts; only clean scans
  are added, in one fixed order (the table's ``ramp_rank`` column, or a seeded permutation),
  so the subset of epoch ``e`` is contained in the subset of epoch ``e + 1`` (*nested*).
* **Class weights** ``w_c = n_max / n_c`` (:func:`mriqc_nb.labels.class_weights`) are
  recomputed for each epoch's subset (clean = 0, artifact = 1), as in the paper's weighted
  cross-entropy.

Two schedules are provided:

``mode="size"`` (the paper)
    The *set size* grows linearly, as in the formula above; the clean share rises quickly at
    first (50% -> 91% after the first of 5 epochs) and then slowly.
``mode="share"`` (the older variant)
    The *clean share* grows linearly from the priming share (50%) to the full share (98%);
    the clean count is ``n_artifact * s / (1 - s)`` rounded to the nearest integer, so the set
    stays small for most of the ramp and grows steeply at the end.

Everything here works from counts alone (no volumes), so the paper's numbers can be checked
directly: ``ramp_sizes(834, 20879, 5)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mriqc_nb.data.table import split_rows
from mriqc_nb.labels import class_weights

__all__ = [
    "RAMP_MODES",
    "ramp_sizes",
    "ramp_clean_counts",
    "ramp_schedule_frame",
    "ramp_order",
    "add_ramp_order",
    "priming_set",
    "ramp_subset",
    "epoch_table",
]

#: Ramp schedules: ``"size"`` (set size linear in the epoch; the paper) and ``"share"``
#: (clean share linear in the epoch; the older variant).
RAMP_MODES = ("size", "share")

#: SeedSequence stream of the ramp order (the other streams: :mod:`mriqc_nb.data.splits`).
RAMP_STREAM = 7


def _check_epochs(ramp_epochs: int) -> int:
    ramp_epochs = int(ramp_epochs)
    if ramp_epochs < 1:
        raise ValueError(f"ramp_epochs must be >= 1, got {ramp_epochs}")
    return ramp_epochs


def ramp_sizes(n_prime: int, n_full: int, ramp_epochs: int) -> np.ndarray:
    """Training-set size of each epoch of the paper's ramp, epochs ``0 .. E_R``.

    ``size(e) = n_prime + floor(e * (n_full - n_prime) / E_R)``; epoch 0 is the priming set
    and epoch ``E_R`` the full set.

    Parameters
    ----------
    n_prime : int
        Size of the priming set (the paper: 834).
    n_full : int
        Size of the full training set (the paper: 20,879).
    ramp_epochs : int
        Ramp length ``E_R`` (>= 1).

    Returns
    -------
    numpy.ndarray of int64, shape (E_R + 1,)

    Examples
    --------
    >>> ramp_sizes(834, 20879, 5).tolist()
    [834, 4843, 8852, 12861, 16870, 20879]
    """
    ramp_epochs = _check_epochs(ramp_epochs)
    n_prime, n_full = int(n_prime), int(n_full)
    if not 0 <= n_prime <= n_full:
        raise ValueError(f"need 0 <= n_prime <= n_full, got {n_prime}, {n_full}")
    e = np.arange(ramp_epochs + 1, dtype=np.int64)
    return n_prime + (e * (n_full - n_prime)) // ramp_epochs


def ramp_clean_counts(
    n_artifact: int,
    n_clean_prime: int,
    n_clean_full: int,
    ramp_epochs: int,
    mode: str = "size",
) -> np.ndarray:
    """Number of clean scans in each epoch ``0 .. E_R`` of a ramp (artifacts stay fixed).

    Parameters
    ----------
    n_artifact : int
        Training artifacts (all of them, every epoch).
    n_clean_prime, n_clean_full : int
        Clean scans of the priming set and of the full training set.
    ramp_epochs : int
        Ramp length ``E_R`` (>= 1).
    mode : {"size", "share"}
        ``"size"``: set size linear in the epoch (the paper, :func:`ramp_sizes`);
        ``"share"``: clean share linear in the epoch, clean count rounded to nearest.

    Returns
    -------
    numpy.ndarray of int64, shape (E_R + 1,)
        Non-decreasing, first ``n_clean_prime``, last ``n_clean_full``.
    """
    ramp_epochs = _check_epochs(ramp_epochs)
    n_artifact, n_clean_prime, n_clean_full = int(n_artifact), int(n_clean_prime), int(n_clean_full)
    if not 0 <= n_clean_prime <= n_clean_full:
        raise ValueError(f"need 0 <= n_clean_prime <= n_clean_full, got {n_clean_prime}, {n_clean_full}")
    if mode == "size":
        return ramp_sizes(n_artifact + n_clean_prime, n_artifact + n_clean_full, ramp_epochs) - n_artifact
    if mode != "share":
        raise ValueError(f"unknown ramp mode {mode!r}; known: {', '.join(RAMP_MODES)}")
    if n_artifact == 0:
        out = np.full(ramp_epochs + 1, n_clean_full, dtype=np.int64)
        out[0] = n_clean_prime
        return out
    s0 = n_clean_prime / (n_artifact + n_clean_prime)
    s1 = n_clean_full / (n_artifact + n_clean_full)
    s = s0 + (s1 - s0) * np.arange(ramp_epochs + 1) / ramp_epochs
    with np.errstate(divide="ignore"):
        clean = np.floor(n_artifact * s / (1.0 - s) + 0.5)
    clean = np.clip(np.nan_to_num(clean, posinf=n_clean_full), n_clean_prime, n_clean_full).astype(np.int64)
    clean[0], clean[-1] = n_clean_prime, n_clean_full
    return np.maximum.accumulate(clean)


def ramp_schedule_frame(
    n_prime: int,
    n_full: int,
    ramp_epochs: int,
    *,
    n_artifact: int | None = None,
    mode: str = "size",
    n_epochs: int | None = None,
) -> pd.DataFrame:
    """The ramp schedule as a table, for printing and plotting.

    Parameters
    ----------
    n_prime, n_full : int
        Sizes of the priming set and of the full training set.
    ramp_epochs : int
        Ramp length ``E_R``.
    n_artifact : int, optional
        Training artifacts; default ``n_prime // 2`` (a 50%-clean priming set).
    mode : {"size", "share"}
        See :func:`ramp_clean_counts`.
    n_epochs : int, optional
        Last epoch to list (default ``E_R``); epochs after ``E_R`` use the full set.

    Returns
    -------
    pandas.DataFrame
        One row per epoch ``0 .. n_epochs`` with columns ``epoch``, ``stage`` ("prime",
        "ramp" or "full"), ``size``, ``n_clean``, ``n_artifact``, ``clean_share``,
        ``weight_clean``, ``weight_artifact``.

    Examples
    --------
    >>> ramp_schedule_frame(834, 20879, 5)["size"].tolist()
    [834, 4843, 8852, 12861, 16870, 20879]
    """
    n_prime, n_full = int(n_prime), int(n_full)
    n_art = n_prime // 2 if n_artifact is None else int(n_artifact)
    if not 0 <= n_art <= n_prime:
        raise ValueError(f"n_artifact={n_art} must lie in [0, n_prime={n_prime}]")
    clean = ramp_clean_counts(n_art, n_prime - n_art, n_full - n_art, ramp_epochs, mode)
    last = int(ramp_epochs) if n_epochs is None else int(n_epochs)
    if last > len(clean) - 1:
        clean = np.concatenate([clean, np.full(last - len(clean) + 1, clean[-1])])
    clean = clean[: last + 1]
    rows = []
    for e, nc in enumerate(clean.tolist()):
        w = class_weights({0: nc, 1: n_art}) if nc + n_art else {0: 0.0, 1: 0.0}
        stage = "prime" if e == 0 else ("ramp" if e < ramp_epochs else "full")
        rows.append(
            dict(
                epoch=e,
                stage=stage,
                size=nc + n_art,
                n_clean=nc,
                n_artifact=n_art,
                clean_share=nc / (nc + n_art) if nc + n_art else float("nan"),
                weight_clean=w[0],
                weight_artifact=w[1],
            )
        )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# Subsets of a scan table
# ---------------------------------------------------------------------------------------------


def ramp_order(table: pd.DataFrame, seed: int | None = None) -> list[str]:
    """Clean training scan ids in the fixed order in which the ramp adds them.

    Parameters
    ----------
    table : pandas.DataFrame
        Scan table (all splits, or the training split only), with ``scan_id`` and ``label``.
    seed : int, optional
        If ``None`` and the table has a ``ramp_rank`` column (tables made by
        :func:`add_ramp_order` do), that order is used. Otherwise the order is a permutation
        of the sorted clean ids drawn from ``seed`` (0 if ``None``).
    """
    train = split_rows(table, "train")
    clean = train[train["label"].astype(str) == "clean"]
    if seed is None and "ramp_rank" in clean.columns:
        rank = pd.to_numeric(clean["ramp_rank"], errors="coerce")
        if len(clean) and (rank >= 0).all() and rank.is_unique:
            return clean["scan_id"].astype(str).to_numpy()[np.argsort(rank.to_numpy(), kind="stable")].tolist()
    ids = np.sort(clean["scan_id"].astype(str).to_numpy())
    rng = np.random.default_rng(np.random.SeedSequence([int(seed or 0), RAMP_STREAM]))
    return ids[rng.permutation(len(ids))].tolist()


def ramp_subset(
    table: pd.DataFrame,
    epoch: int,
    ramp_epochs: int,
    seed: int | None = None,
    mode: str = "size",
) -> list[str]:
    """Scan ids of the training subset of ``epoch`` (0 = priming set, ``>= E_R`` = all).

    All training artifacts every epoch, plus the first ``n_clean(epoch)`` clean scans of
    :func:`ramp_order` (so subsets are nested), with ``n_clean(epoch)`` from
    :func:`ramp_clean_counts` (priming: as many clean scans as artifacts, or all if fewer).

    Parameters
    ----------
    table : pandas.DataFrame
        Scan table (the training rows are used) with ``scan_id``, ``label`` and, optionally,
        ``split`` and ``ramp_rank``.
    epoch : int
        Epoch number, ``>= 0``.
    ramp_epochs : int
        Ramp length ``E_R`` (>= 1).
    seed : int, optional
        See :func:`ramp_order`.
    mode : {"size", "share"}
        See :func:`ramp_clean_counts`.

    Returns
    -------
    list of str
        Scan ids, in the table's row order.
    """
    epoch = int(epoch)
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    train = split_rows(table, "train")
    ids = train["scan_id"].astype(str)
    is_art = train["label"].astype(str).to_numpy() == "artifact"
    n_art = int(is_art.sum())
    order = ramp_order(train, seed)
    n_clean_prime = min(n_art, len(order))
    counts = ramp_clean_counts(n_art, n_clean_prime, len(order), ramp_epochs, mode)
    n_clean = int(counts[min(epoch, len(counts) - 1)])
    keep = set(order[:n_clean])
    mask = is_art | ids.isin(keep).to_numpy()
    return ids[mask].tolist()


def epoch_table(
    table: pd.DataFrame,
    epoch: int,
    ramp_epochs: int,
    seed: int | None = None,
    mode: str = "size",
) -> pd.DataFrame:
    """Rows of ``table`` in the training subset of ``epoch`` (see :func:`ramp_subset`)."""
    train = split_rows(table, "train")
    ids = set(ramp_subset(train, epoch, ramp_epochs, seed, mode))
    return train[train["scan_id"].astype(str).isin(ids)]


def priming_set(table: pd.DataFrame, seed: int | None = None) -> pd.DataFrame:
    """The 50%-clean priming set: every training artifact plus as many clean training scans.

    The clean scans are the first ones of :func:`ramp_order`, so the priming set is epoch 0
    of every ramp. If the table has a boolean-like ``prime`` column and ``seed`` is None,
    that column is used as is.
    """
    train = split_rows(table, "train")
    if seed is None and "prime" in train.columns:
        flag = train["prime"].astype(str).str.lower().isin(["true", "1"])
        if flag.any():
            return train[flag.to_numpy()]
    return epoch_table(train, 0, 1, seed)


def add_ramp_order(table: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Add the ``ramp_rank`` and ``prime`` columns to a scan table; returns a copy.

    ``ramp_rank`` numbers the clean training scans in the (seeded) order in which the ramp
    adds them (-1 for every other row); ``prime`` marks the priming set: every training
    artifact plus as many clean training scans, the first ones of that order.
    """
    df = table.drop(columns=[c for c in ("ramp_rank", "prime") if c in table.columns])
    order = ramp_order(df, seed)
    rank = {sid: r for r, sid in enumerate(order)}
    df["ramp_rank"] = [rank.get(str(s), -1) for s in df["scan_id"]]
    df["ramp_rank"] = df["ramp_rank"].astype("int64")
    prime_ids = set(priming_set(df)["scan_id"].astype(str)) if len(df) else set()
    df["prime"] = df["scan_id"].astype(str).isin(prime_ids).to_numpy()
    return df
