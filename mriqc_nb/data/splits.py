"""Seeds and splits: every random draw of a row from its own seed; subjects, not scans, split.

Seeds
-----
Every random draw of a table row comes from ``numpy.random.SeedSequence([profile seed,
stream, index])`` (:func:`scan_seed`), one *stream* per kind of draw (anatomy, acquisition,
artifact, split, label, kind, ramp order, modality), so each row depends only on the profile
seed and its own index, never on the order or number of build workers.

Splits
------
Subjects, not scans, are assigned to splits (60/20/20 by default), so that no subject's
anatomy is seen in training and again in test. :func:`split_counts` cuts ``n`` items by
fractions with exact, reproducible counts (the paper's 696 artifacts: 417 / 139 / 140). The
synthetic database (:mod:`mriqc_nb.data.synthetic`) decides its labels after splitting, so its
class counts per split are exact; your own table (:func:`prepare_table`) is split by subject,
stratified on whether a subject has any artifact scan.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mriqc_nb.data.ramp import RAMP_STREAM, add_ramp_order
from mriqc_nb.data.table import COLUMNS, SPLITS, SUBTLE_SPLIT, load_table, resolve_path, validate_table
from mriqc_nb.profiles import Profile, get_profile

__all__ = ["scan_seed", "split_counts", "assign_splits", "prepare_table"]

# SeedSequence streams: one per kind of random draw (never reuse a number).
ANATOMY, ACQUISITION, ARTIFACT, SPLIT, LABEL, KIND, MODALITY = 1, 2, 3, 4, 5, 6, 8
assert RAMP_STREAM not in (ANATOMY, ACQUISITION, ARTIFACT, SPLIT, LABEL, KIND, MODALITY)


def scan_seed(master: int, stream: int, index: int) -> int:
    """A 32-bit seed that depends only on ``(master, stream, index)`` (SeedSequence hashing)."""
    return int(np.random.SeedSequence([int(master), int(stream), int(index)]).generate_state(1)[0])


def rng(master: int, stream: int, index: int = 0) -> np.random.Generator:
    """The random generator of ``(master, stream, index)``."""
    return np.random.default_rng(np.random.SeedSequence([int(master), int(stream), int(index)]))


def split_counts(n: int, fractions=(0.6, 0.2, 0.2)) -> list[int]:
    """Split ``n`` items by ``fractions``: ``floor(n * f_k)`` each, the remainder to the last
    split (of positive fraction).

    When ``n`` is at least the number of splits with a positive fraction, none of them is left
    empty (one item moves to it from the largest split), so a validation split always has
    some artifacts to choose thresholds on.

    >>> split_counts(696)   # the paper's artifacts
    [417, 139, 140]
    >>> split_counts(4)     # floor alone would give [2, 0, 2]
    [1, 1, 2]
    """
    fractions = [float(f) for f in fractions]
    if any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    n = int(n)
    wanted = [k for k, f in enumerate(fractions) if f > 0]
    counts = [int(math.floor(round(n * f, 9))) for f in fractions]
    counts[wanted[-1]] += n - sum(counts)  # the remainder to the last non-empty split
    if n >= len(wanted):
        for k in wanted:
            if counts[k] == 0:
                counts[int(np.argmax(counts))] -= 1
                counts[k] += 1
    return counts


def assign_splits(table: pd.DataFrame, fractions=(0.6, 0.2, 0.2), seed: int = 0) -> pd.DataFrame:
    """Assign ``train``/``valid``/``test`` by subject, stratified on having any artifact.

    Subjects with at least one artifact scan and subjects without are shuffled (seeded) and
    cut by :func:`split_counts` separately, so both kinds of subject are spread 60/20/20.
    Rows already in the ``subtle`` split keep it. Returns a copy with a ``split`` column.
    """
    df = table.copy()
    if "split" not in df.columns:
        df["split"] = ""
    split = df["split"].astype(str).to_numpy(dtype=object)
    labelled = split != SUBTLE_SPLIT
    sub = df.loc[labelled]
    has_art = sub.groupby("subject_id", sort=True)["label"].apply(lambda s: bool((s == "artifact").any()))
    subject_split: dict[str, str] = {}
    for stratum, flag in enumerate((True, False)):
        subjects = np.array(sorted(has_art.index[has_art.to_numpy() == flag].astype(str)), dtype=object)
        subjects = subjects[rng(seed, SPLIT, 100 + stratum).permutation(len(subjects))]
        start = 0
        for name, k in zip(SPLITS, split_counts(len(subjects), fractions)):
            subject_split.update({s: name for s in subjects[start : start + k]})
            start += k
    split[labelled] = [subject_split[str(s)] for s in sub["subject_id"]]
    df["split"] = split.astype(str)
    return df


def prepare_table(table, profile: str | Profile, root=None) -> pd.DataFrame:
    """Validate your own table and complete it: splits (if absent) and the ramp order.

    Parameters
    ----------
    table : pandas.DataFrame or path-like
        Your table (see :mod:`mriqc_nb.data.table`), or a TSV/CSV file of it.
    profile : str or Profile
        Its ``split_fractions`` and ``seed`` are used; existing splits are kept.
    root : path-like, optional
        Directory that relative paths are relative to (default: the table file's folder).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`~mriqc_nb.data.table.COLUMNS` first; paths made absolute.
    """
    p = get_profile(profile)
    if not isinstance(table, pd.DataFrame):
        table = load_table(table, validate=False)
    df = validate_table(table, root=root)
    root = root if root is not None else df.attrs.get("root")
    if (df["path"] != "").any():
        df["path"] = [str(resolve_path(x, root).resolve()) if x else "" for x in df["path"]]
    if "split" not in df.columns or (df["split"] == "").all():
        df = assign_splits(df, p.split_fractions, p.seed)
    df = add_ramp_order(df, p.seed)
    return df[list(COLUMNS) + [c for c in df.columns if c not in COLUMNS]]
