"""Real rater data: MRIQC's ABIDE and DS030 tables, their labels, raters and site splits.

The book's main benchmark is synthetic. This module brings in what real raters said about real
scans: **image-quality metrics (IQMs) with rater labels**, as shipped by the ``mriqc-learn``
package (install with ``pip install "mriqc-nb[ratings]"``; no download at run time):

   - ``abide``: 1,101 T1-weighted scans of ABIDE from 17 sites. Three raters, ratings
     ``-1`` (exclude), ``0`` (doubtful), ``1`` (accept). ``rater_3`` rated every scan;
     ``rater_1`` and ``rater_2`` each rated about half (600 each, 99 scans by both), so every
     scan has two or three ratings.
   - ``ds030``: 265 T1-weighted scans of OpenNeuro ds000030 from 2 sites (``BMC``, ``CCN``),
     one rater (``rater_1``, same scale) and a ``has_ghost`` flag.

   Each row also holds about 68 IQMs computed by MRIQC from the image alone: noise (``snr_*``,
   ``snrd_*``, ``cnr``, ``cjv``), ghosting and blurring (``efc``, ``fber``, ``fwhm_*``, ``qi_1``,
   ``qi_2``), intensity non-uniformity (``inu_*``), tissue statistics (``summary_*``,
   ``icvs_*``, ``rpve_*``, ``tpm_overlap_*``, ``wm2max``), and the image's size and spacing.
   :data:`IQM_COLUMNS` are the ones used as features: all of them except ``size_*`` and
   ``spacing_*``, which describe the acquisition rather than its quality and would let a
   classifier recognise sites (MRIQC's own classifier dropped them too).

The classifiers of these tables are in :mod:`mriqc_nb.iqm`; images with rater scores
(MR-ART) are read by :mod:`mriqc_nb.data.mrart`.

Labels
------
The book's convention: ``label`` is ``"clean"`` or ``"artifact"`` and ``y`` is the integer
``1 = artifact`` (``0 = clean``). From ratings (:func:`label_from_ratings`):

- an ``exclude`` (-1) is a vote for *artifact*, an ``accept`` (1) a vote for *clean*;
- a ``doubtful`` (0) counts as a vote for *clean* by default (``doubtful="clean"``): the
  rater did not exclude the scan. This is what MRIQC's classifier did with "maybe" ratings,
  and it matches the paper's rule that only *prominent* artifacts count.
  ``doubtful="artifact"`` counts it as an exclusion, ``doubtful="abstain"`` ignores it;
- missing ratings (NaN) are ignored;
- the scan is an *artifact* when the artifact votes are a **strict majority** of the counted
  votes; a tie is *clean*. With the default, a scan rated by two raters is an artifact only
  if both excluded it; with three raters, if at least two did.

The raw ratings are kept in the table, so any other rule can be applied afterwards.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pandas as pd

from mriqc_nb.labels import LABELS

__all__ = [
    "DATASETS",
    "RATING_VALUES",
    "IQM_COLUMNS",
    "label_from_ratings",
    "exclusion_share",
    "load_ratings",
    "rater_columns",
    "rater_agreement",
    "site_split",
]

#: Tables shipped by mriqc-learn.
DATASETS = ("abide", "ds030")
#: The raters' scale in both tables.
RATING_VALUES = {-1: "exclude", 0: "doubtful", 1: "accept"}
#: The IQMs used as features (every IQM of both tables except ``size_*`` and ``spacing_*``).
IQM_COLUMNS: tuple[str, ...] = (
    "cjv", "cnr", "efc", "fber", "fwhm_avg", "fwhm_x", "fwhm_y", "fwhm_z",
    "icvs_csf", "icvs_gm", "icvs_wm", "inu_med", "inu_range", "qi_1", "qi_2",
    "rpve_csf", "rpve_gm", "rpve_wm",
    "snr_csf", "snr_gm", "snr_total", "snr_wm", "snrd_csf", "snrd_gm", "snrd_total", "snrd_wm",
    *(f"summary_{t}_{s}" for t in ("bg", "csf", "gm", "wm")
      for s in ("k", "mad", "mean", "median", "n", "p05", "p95", "stdv")),
    "tpm_overlap_csf", "tpm_overlap_gm", "tpm_overlap_wm", "wm2max",
)
_DOUBTFUL = ("clean", "artifact", "abstain")
_INSTALL_HINT = ('the real-rater tables ship with the mriqc-learn package; install it with '
                 '`pip install "mriqc-nb[ratings]"` (or `pip install mriqc-learn`)')
_find_spec = importlib.util.find_spec  # replaced in the tests to simulate a missing package


# ---------------------------------------------------------------------------------------------
# Labels from ratings
# ---------------------------------------------------------------------------------------------
def rater_columns(df: pd.DataFrame) -> list[str]:
    """The rating columns of a table: ``rater_1``, ``rater_2``, ... in order."""
    return sorted((c for c in df.columns if re.fullmatch(r"rater_\d+", str(c))), key=lambda c: int(c[6:]))


def label_from_ratings(ratings, doubtful: str = "clean") -> pd.Series:
    """Binary label (1 = artifact) of each scan from its raters' ratings.

    Parameters
    ----------
    ratings : DataFrame or array_like, shape (N, R)
        One column per rater; values -1 (exclude), 0 (doubtful), 1 (accept) or NaN (not rated).
    doubtful : {"clean", "artifact", "abstain"}
        What a doubtful (0) rating counts as (see the module notes).

    Returns
    -------
    pandas.Series of int, length N
        1 when the artifact votes are a strict majority of the counted votes, else 0 (a tie
        is clean). Same index as ``ratings`` if it is a DataFrame.

    Raises
    ------
    ValueError
        A value outside {-1, 0, 1, NaN}, a scan without any rating, or an unknown ``doubtful``.
    """
    if doubtful not in _DOUBTFUL:
        raise ValueError(f"doubtful must be one of {_DOUBTFUL}, got {doubtful!r}")
    frame = ratings if isinstance(ratings, pd.DataFrame) else pd.DataFrame(np.atleast_2d(np.asarray(ratings, dtype=float)))
    r = frame.apply(pd.to_numeric, errors="coerce").astype(float)
    raw_missing = frame.isna().to_numpy()
    bad = ~(r.isin(list(RATING_VALUES)).to_numpy() | raw_missing)
    if bad.any():
        rows = r.index[bad.any(axis=1)].tolist()
        raise ValueError(f"ratings must be -1 (exclude), 0 (doubtful), 1 (accept) or NaN; rows {rows[:20]} "
                         f"hold {sorted(set(frame.to_numpy()[bad].tolist()), key=str)[:10]}")
    unrated = r.index[r.isna().all(axis=1)]
    if len(unrated):
        raise ValueError(f"{len(unrated)} scan(s) without any rating: rows {unrated.tolist()[:20]}")
    exclude, accept, doubt = ((r == v).sum(axis=1) for v in (-1, 1, 0))
    votes_artifact = exclude + (doubt if doubtful == "artifact" else 0)
    votes_clean = accept + (doubt if doubtful == "clean" else 0)
    return (votes_artifact > votes_clean).astype(int).rename("y")


def exclusion_share(df: pd.DataFrame, doubtful_weight: float = 0.5) -> pd.Series:
    """Share of a scan's raters who excluded it: a graded label.

    Parameters
    ----------
    df : DataFrame
        With ``n_exclude``, ``n_doubtful`` and ``n_ratings`` (:func:`load_ratings`).
    doubtful_weight : float in [0, 1]
        What a doubtful rating counts as: 0 = accept, 1 = exclude; default half of each.

    Returns
    -------
    pandas.Series of float in [0, 1] (same index as ``df``)
        ``(n_exclude + doubtful_weight * n_doubtful) / n_ratings``.
    """
    if not 0 <= doubtful_weight <= 1:
        raise ValueError(f"doubtful_weight must be in [0, 1], got {doubtful_weight}")
    share = (df["n_exclude"] + doubtful_weight * df["n_doubtful"]) / df["n_ratings"]
    return share.astype(float).rename("exclusion_share")


# ---------------------------------------------------------------------------------------------
# The bundled tables
# ---------------------------------------------------------------------------------------------
def _dataset_path(name: str) -> Path:
    """The TSV of a bundled table, found without importing ``mriqc_learn.datasets`` (whose
    ``__init__`` needs ``pkg_resources``, gone from recent setuptools)."""
    spec = _find_spec("mriqc_learn")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"mriqc-learn is not installed: {_INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / f"{name}.tsv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: this mriqc-learn does not ship the {name!r} table "
                                f"({_INSTALL_HINT}, version 0.0.3 or later)")
    return path


def load_ratings(name: str = "abide", doubtful: str = "clean") -> pd.DataFrame:
    """One of MRIQC's rated IQM tables, with a binary label.

    Parameters
    ----------
    name : {"abide", "ds030"}
    doubtful : {"clean", "artifact", "abstain"}
        How a doubtful rating counts (:func:`label_from_ratings`).

    Returns
    -------
    pandas.DataFrame, one row per scan (1,101 for ABIDE, 265 for DS030)
        ``scan_id`` (``"<name>_<subject_id>"``), ``subject_id`` (str), ``site``, ``label``
        (``"clean"``/``"artifact"``), ``y`` (1 = artifact), ``n_ratings``, ``n_exclude``,
        ``n_doubtful``, the raw ratings ``rater_*`` (nullable integers, ``<NA>`` = not rated),
        ``has_ghost`` (DS030 only), then every IQM column of the file (:data:`IQM_COLUMNS`
        plus ``size_*`` and ``spacing_*``). ``df.attrs`` records the dataset and the rule.

    Raises
    ------
    ImportError
        If mriqc-learn is not installed (the message says how to install it).
    ValueError
        For an unknown ``name``.
    """
    key = str(name).strip().lower()
    if key not in DATASETS:
        raise ValueError(f"unknown rated table {name!r}; choose one of {DATASETS}")
    raw = pd.read_csv(_dataset_path(key), sep="\t")
    raters = rater_columns(raw)
    r = raw[raters].astype(float)
    y = label_from_ratings(r, doubtful=doubtful)
    first_iqm = raw.columns.get_loc("cjv")
    iqms = list(raw.columns[first_iqm:])
    missing = sorted(set(IQM_COLUMNS) - set(iqms))
    if missing:
        raise ValueError(f"{key}.tsv lacks the IQM columns {missing}")
    out = pd.DataFrame({
        "scan_id": [f"{key}_{s}" for s in raw["subject_id"].astype(str)],
        "subject_id": raw["subject_id"].astype(str),
        "site": raw["site"].astype(str),
        "label": np.asarray(LABELS, dtype=object)[y.to_numpy()],
        "y": y.to_numpy(),
        "n_ratings": r.notna().sum(axis=1).to_numpy(),
        "n_exclude": (r == -1).sum(axis=1).to_numpy(),
        "n_doubtful": (r == 0).sum(axis=1).to_numpy(),
    })
    for c in raters:
        out[c] = raw[c].astype("Int64")
    if "has_ghost" in raw.columns:
        out["has_ghost"] = raw["has_ghost"].astype(bool)
    out = pd.concat([out, raw[iqms]], axis=1)
    out.attrs.update({"dataset": key, "doubtful": doubtful,
                      "rule": "artifact = strict majority of exclude votes among the available raters; "
                              f"doubtful counts as {doubtful}; ties are clean"})
    return out


# ---------------------------------------------------------------------------------------------
# Raters
# ---------------------------------------------------------------------------------------------
def _kappa(a: np.ndarray, b: np.ndarray) -> float:
    from sklearn.metrics import cohen_kappa_score

    if a.size < 2 or (np.unique(a).size == 1 and np.unique(b).size == 1):
        return float("nan")  # undefined: no variation to agree on
    return float(cohen_kappa_score(a, b))


def rater_agreement(df: pd.DataFrame, raters=None) -> pd.DataFrame:
    """Pairwise agreement between raters, on the scans both rated.

    Parameters
    ----------
    df : DataFrame
        A table with rating columns (:func:`load_ratings`).
    raters : list of str, optional
        Default: every ``rater_*`` column.

    Returns
    -------
    pandas.DataFrame
        One row per pair of raters: ``rater_a``, ``rater_b``, ``n_both`` (scans rated by
        both), ``kappa`` (Cohen's kappa on the three levels exclude/doubtful/accept),
        ``kappa_exclude`` (Cohen's kappa on *exclude vs not*, the decision that makes a label),
        ``disagreement`` (share of those scans with different ratings) and
        ``disagreement_exclude`` (share where exactly one of them excluded). A last row
        ``all`` / ``all`` covers every scan with at least two ratings: its ``disagreement`` is
        the share whose ratings are not all equal (kappas NaN there). Kappa is NaN when it is
        undefined (fewer than 2 shared scans, or both raters constant).

    Raises
    ------
    ValueError
        With fewer than two raters (DS030 has one).
    """
    raters = list(raters) if raters is not None else rater_columns(df)
    if len(raters) < 2:
        raise ValueError(f"rater agreement needs at least two rater columns, got {raters}")
    r = df[raters].apply(pd.to_numeric, errors="coerce").astype(float)
    rows = []
    for i, a in enumerate(raters):
        for b in raters[i + 1:]:
            both = r[[a, b]].dropna()
            x, z = both[a].to_numpy(), both[b].to_numpy()
            rows.append({"rater_a": a, "rater_b": b, "n_both": int(len(both)),
                         "kappa": _kappa(x, z), "kappa_exclude": _kappa(x == -1, z == -1),
                         "disagreement": float(np.mean(x != z)) if len(both) else float("nan"),
                         "disagreement_exclude": float(np.mean((x == -1) != (z == -1))) if len(both) else float("nan")})
    multi = r[r.notna().sum(axis=1) >= 2]
    spread = multi.max(axis=1) != multi.min(axis=1)
    excl = multi == -1
    split_excl = excl.any(axis=1) & ~(excl | multi.isna()).all(axis=1)
    rows.append({"rater_a": "all", "rater_b": "all", "n_both": int(len(multi)), "kappa": float("nan"),
                 "kappa_exclude": float("nan"),
                 "disagreement": float(spread.mean()) if len(multi) else float("nan"),
                 "disagreement_exclude": float(split_excl.mean()) if len(multi) else float("nan")})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# Splits by site
# ---------------------------------------------------------------------------------------------
def site_split(df: pd.DataFrame, test_sites=None, *, test_fraction: float = 0.25,
               seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Leave-sites-out split: every scan of a site goes to the same side.

    The real-database counterpart of the book's subject-grouped splits: a classifier of IQMs
    can learn what a *site's* scans look like, so it must be tested on sites it never saw.

    Parameters
    ----------
    df : DataFrame
        With a ``site`` column.
    test_sites : sequence of str, optional
        The held-out sites. Default: sites are taken in a seeded random order until at least
        ``test_fraction`` of the scans are held out.
    test_fraction : float in (0, 1)
        Used only without ``test_sites``.
    seed : int

    Returns
    -------
    train, test : DataFrame
        Copies; ``train.attrs["test_sites"]`` and ``test.attrs["test_sites"]`` list the held-out
        sites.

    Raises
    ------
    ValueError
        Unknown test sites, no site left for training, or a bad ``test_fraction``.
    """
    sites = sorted(df["site"].astype(str).unique())
    if test_sites is None:
        if not 0 < test_fraction < 1:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        sizes = df["site"].astype(str).value_counts()
        chosen, n = [], 0
        for s in np.random.default_rng(seed).permutation(sites):
            if n >= test_fraction * len(df):
                break
            chosen.append(str(s))
            n += int(sizes[s])
    else:
        chosen = [str(test_sites)] if isinstance(test_sites, str) else [str(s) for s in test_sites]
        unknown = sorted(set(chosen) - set(sites))
        if unknown:
            raise ValueError(f"unknown test sites {unknown}; sites: {sites}")
    if set(chosen) >= set(sites):
        raise ValueError("every site is in the test split: nothing left to train on")
    held = df["site"].astype(str).isin(chosen)
    train, test = df[~held].copy(), df[held].copy()
    for part in (train, test):
        part.attrs = dict(df.attrs, test_sites=sorted(chosen))
    return train, test
