"""The scan database: a scan table (manifest), grouped splits, and an on-disk volume cache.

The paper's problem is a large database in which 98% of the scans are clean. This module
builds such a database from the simulators (:mod:`mriqc_nb.synth`,
:mod:`mriqc_nb.artifacts`), or takes yours (a table of file paths and labels), and turns every
row into one conformed volume in a cache, so that training reads arrays and never synthesises.

The scan table
--------------
One row per scan; saved as a tab-separated file ``scans.tsv``. Columns:

=================  ========================================================================
``scan_id``        unique id (synthetic: ``sub-00012_run-1_T2w``). Default for your table:
                   the file name without its extension.
``subject_id``     subject the scan belongs to; splits never separate a subject's scans.
                   Default for your table: the ``scan_id`` (each scan its own subject).
``site``           optional acquisition site (free text).
``modality``       contrast (``T1w``, ``T2w``, ``PDw``, ``FLAIR``, ... free text).
``label``          ``clean`` or ``artifact`` (``0``/``1`` and any letter case accepted).
``artifact_class`` ``intensity``, ``motion_ringing`` or ``coverage`` (the paper's three rater
                   categories); empty for clean scans or when unknown.
``artifact_kind``  simulator name (``motion``, ``ghosting``, ...); empty if clean/unknown.
``severity``       ``none`` (clean), ``prominent`` or ``subtle``.
``split``          ``train``, ``valid``, ``test``, or ``subtle`` (the separate set of subtle
                   artifacts kept aside for discussion, never used for training or
                   threshold selection). Assigned for you when the column is absent.
``prime``          ``True`` for the scans of the 50%-clean priming set (training only).
``ramp_rank``      order in which the ramp adds clean training scans (0, 1, ...); -1 else.
``path``           file of a real scan (NIfTI or MINC), absolute or relative to the table.
``recipe``         JSON of a synthetic scan: seeds *and* drawn parameters of the anatomy,
                   the acquisition and the artifact, enough to regenerate it exactly.
``cache_file``     the conformed volume, relative to the database directory (``.npy``).
=================  ========================================================================

Each row has a ``path`` or a ``recipe``. To bring your own database, write a TSV (or CSV)
with at least ``path`` and ``label`` (better: ``subject_id`` too, so that repeated scans of a
subject stay in one split, and ``site``), and pass it to :func:`build_database` with
``table=``; :func:`validate_table` reports every problem at once, listing the offending rows.

Splits
------
Subjects, not scans, are assigned to splits (60/20/20 by default). In a synthetic database
the labels are decided after the subjects are split, so the class counts per split are
exact: split ``k`` gets ``floor(n_artifact * f_k)`` artifacts, the last split the remainder
(with the paper's 696 artifacts: 417 / 139 / 140, as in the paper; see :func:`split_counts`). Artifact kinds cycle
evenly through the simulators within each split, at *prominent* severity; the *subtle* set is
drawn from subjects of its own. In your own database, subjects are split stratified on
whether they have any artifact scan.

The cache
---------
``DIR/cache/<grid>_<spacing>/<scan_id>.<hash>.npy``: one float16 array per scan, conformed
to the profile's grid and z-scored (:func:`mriqc_nb.scans.conform`). The hash covers the row's
recipe (or the file's path, size and modification time), the grid and spacing, and the source
of the simulator modules, so a changed recipe or simulator never returns a stale array. Files
are written atomically (temporary file, then :func:`os.replace`), so an interrupted build
resumes where it stopped. Building runs over processes, each writing its own files; the
result does not depend on the number of workers, and the parent never holds the volumes.

Seeds
-----
Every random draw of a row comes from ``numpy.random.SeedSequence([profile seed, stream,
index])``, so each row depends only on the profile seed and its own index, never on the
order or number of workers.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import sys
import tempfile
import warnings
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd

from mriqc_nb.profiles import Profile, get_profile
from mriqc_nb.data.ramp import priming_set, ramp_order

__all__ = [
    "LABELS",
    "LABEL_INDEX",
    "SPLITS",
    "SUBTLE_SPLIT",
    "SEVERITIES",
    "COLUMNS",
    "TABLE_FILE",
    "META_FILE",
    "TableError",
    "BuildError",
    "scan_seed",
    "split_counts",
    "make_table",
    "assign_splits",
    "add_ramp_order",
    "prepare_table",
    "validate_table",
    "load_table",
    "save_table",
    "class_balance",
    "conform_key",
    "cache_dir_for",
    "cache_file_name",
    "materialise",
    "load_volume",
    "load_arrays",
    "cache_paths",
    "build_database",
    "profile_database",
    "database_main",
]

#: Class names, in the order of the network's outputs (clean = 0, artifact = 1).
LABELS = ("clean", "artifact")
LABEL_INDEX = {name: i for i, name in enumerate(LABELS)}
#: The labelled splits, in order.
SPLITS = ("train", "valid", "test")
#: Split name of the separate set of subtle artifacts (never used for training).
SUBTLE_SPLIT = "subtle"
ALL_SPLITS = SPLITS + (SUBTLE_SPLIT,)
SEVERITIES = ("none", "prominent", "subtle")
#: Columns of a scan table, in the order they are written.
COLUMNS = (
    "scan_id",
    "subject_id",
    "site",
    "modality",
    "label",
    "artifact_class",
    "artifact_kind",
    "severity",
    "split",
    "prime",
    "ramp_rank",
    "path",
    "recipe",
    "cache_file",
)
#: File names inside a database directory.
TABLE_FILE = "scans.tsv"
META_FILE = "database.json"
CONFORM_FILE = "conform.json"
#: Bump to invalidate every cache built by an older version of this module.
CACHE_VERSION = 1

_LABEL_ALIASES = {"clean": "clean", "0": "clean", "artifact": "artifact", "artefact": "artifact", "1": "artifact"}
# SeedSequence streams: one per kind of random draw (never reuse a number).
_ANATOMY, _ACQUISITION, _ARTIFACT, _SPLIT, _LABEL, _KIND, _RAMP, _MODALITY = range(1, 9)
_MAX_LISTED = 20  # offending rows listed per problem in a TableError


class TableError(ValueError):
    """A scan table is not valid; the message lists every problem and the offending rows.

    Attributes
    ----------
    problems : dict[str, list]
        Problem name (e.g. ``"duplicate scan_id"``) -> index labels of the offending rows.
    """

    def __init__(self, problems: dict[str, list], details: dict[str, list[str]] | None = None):
        self.problems = problems
        lines = ["invalid scan table:"]
        for name, rows in problems.items():
            shown = (details or {}).get(name) or [f"row {r}" for r in rows]
            more = f", ... ({len(rows) - _MAX_LISTED} more)" if len(rows) > _MAX_LISTED else ""
            lines.append(f"  {name} ({len(rows)} row{'s' if len(rows) != 1 else ''}): "
                         + "; ".join(shown[:_MAX_LISTED]) + more)
        lines.append("(rows are numbered from 0: row i is line i + 2 of a table file)")
        super().__init__("\n".join(lines))


class BuildError(RuntimeError):
    """Some volumes of a database could not be made; the message lists the scans and why.

    Attributes
    ----------
    failures : dict[str, str]
        ``scan_id`` -> error message.
    """

    def __init__(self, failures: dict[str, str]):
        self.failures = dict(failures)
        shown = [f"  {k}: {v}" for k, v in list(self.failures.items())[:_MAX_LISTED]]
        more = [f"  ... ({len(failures) - _MAX_LISTED} more)"] if len(failures) > _MAX_LISTED else []
        super().__init__(f"{len(failures)} scan(s) could not be built:\n" + "\n".join(shown + more))


# ---------------------------------------------------------------------------------------------
# Seeds and counts
# ---------------------------------------------------------------------------------------------


def scan_seed(master: int, stream: int, index: int) -> int:
    """A 32-bit seed that depends only on ``(master, stream, index)`` (SeedSequence hashing)."""
    return int(np.random.SeedSequence([int(master), int(stream), int(index)]).generate_state(1)[0])


def _rng(master: int, stream: int, index: int = 0) -> np.random.Generator:
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


# ---------------------------------------------------------------------------------------------
# The synthetic table
# ---------------------------------------------------------------------------------------------


def _artifact_kinds() -> tuple[str, ...]:
    from mriqc_nb.artifacts import ARTIFACTS

    return tuple(ARTIFACTS)


def _artifact_class(kind: str) -> str:
    from mriqc_nb.artifacts import ARTIFACTS

    return ARTIFACTS[kind].artifact_class


def _jsonable(obj):
    """Round-trip through JSON so the table holds exactly what its TSV will hold."""
    return json.loads(json.dumps(obj, default=_json_default))


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def make_table(profile: str | Profile) -> pd.DataFrame:
    """The synthetic scan table of a profile (no volumes are made).

    ``profile.n_scans`` labelled scans (``scans_per_subject`` per subject, modalities cycling
    from a random start, repeats numbered ``run-2``, ...), ``round(n_scans * (1 -
    clean_share))`` of them with a *prominent* artifact, split by subject with exact class
    counts per split (see the module notes), plus ``profile.n_subtle`` scans with a *subtle*
    artifact from subjects of their own (split ``"subtle"``). Deterministic in
    ``profile.seed``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS` (``path`` and ``cache_file`` empty).
    """
    from mriqc_nb.artifacts import sample_params
    from mriqc_nb.synth import MODALITIES, sample_acquisition, sample_anatomy

    p = get_profile(profile)
    kinds = _artifact_kinds()
    seed, spp = int(p.seed), int(p.scans_per_subject)
    if spp < 1 or p.n_scans < 1:
        raise ValueError(f"profile {p.name}: need n_scans >= 1 and scans_per_subject >= 1")
    grid = [int(g) for g in p.grid]
    spacing = [float(s) for s in p.spacing_mm]

    n_subj = math.ceil(p.n_scans / spp)
    n_subj_subtle = math.ceil(p.n_subtle / spp) if p.n_subtle else 0
    width = max(5, len(str(n_subj + n_subj_subtle)))

    # 1. subjects -> splits (a seeded permutation cut by split_counts)
    subj_split = np.empty(n_subj, dtype=object)
    perm = _rng(seed, _SPLIT).permutation(n_subj)
    start = 0
    for name, k in zip(SPLITS, split_counts(n_subj, p.split_fractions)):
        subj_split[perm[start : start + k]] = name
        start += k

    # 2. scans of each subject (labelled subjects first, then the subtle set's)
    rows = []
    scan_index = 0
    for s in range(n_subj + n_subj_subtle):
        subtle = s >= n_subj
        if subtle:
            n_here = min(spp, p.n_subtle - (s - n_subj) * spp)
        else:
            n_here = min(spp, p.n_scans - s * spp)
        anat_seed = scan_seed(seed, _ANATOMY, s)
        anatomy = _jsonable(sample_anatomy(anat_seed))
        offset = int(_rng(seed, _MODALITY, s).integers(len(MODALITIES)))
        subject_id = f"sub-{s:0{width}d}"
        for j in range(n_here):
            modality = MODALITIES[(offset + j) % len(MODALITIES)]
            run = j // len(MODALITIES) + 1
            acq_seed = scan_seed(seed, _ACQUISITION, scan_index)
            acquisition = _jsonable(sample_acquisition(acq_seed, modality))
            rows.append(
                dict(
                    scan_id=f"{subject_id}_run-{run}_{modality}",
                    subject_id=subject_id,
                    site="synthetic",
                    modality=modality,
                    label="clean",
                    artifact_class="",
                    artifact_kind="",
                    severity="none",
                    split=SUBTLE_SPLIT if subtle else subj_split[s],
                    _index=scan_index,
                    _recipe=dict(
                        generator="mriqc_nb.synth",
                        grid=grid,
                        spacing_mm=spacing,
                        anatomy_seed=anat_seed,
                        anatomy=anatomy,
                        acquisition_seed=acq_seed,
                        acquisition=acquisition,
                        artifact=None,
                    ),
                )
            )
            scan_index += 1

    # 3. labels: exact artifact counts per split, kinds cycling evenly within a split
    def corrupt(idx: np.ndarray, severity: str, kind_rng: np.random.Generator) -> None:
        order = kind_rng.permutation(len(idx))
        offset = int(kind_rng.integers(len(kinds)))
        for r, i in enumerate(idx[order]):
            row = rows[int(i)]
            kind = kinds[(offset + r) % len(kinds)]
            art_seed = scan_seed(seed, _ARTIFACT, row["_index"])
            params = sample_params(kind, severity, seed=art_seed, shape=tuple(grid), spacing_mm=tuple(spacing))
            row.update(label="artifact", artifact_class=_artifact_class(kind), artifact_kind=kind, severity=severity)
            row["_recipe"]["artifact_seed"] = art_seed
            row["_recipe"]["artifact"] = _jsonable(params)

    split_of = np.array([r["split"] for r in rows], dtype=object)
    for k, (name, n_art) in enumerate(zip(SPLITS, split_counts(p.n_artifact, p.split_fractions))):
        members = np.flatnonzero(split_of == name)
        if n_art > len(members):
            raise ValueError(f"profile {p.name}: split {name} has {len(members)} scans, fewer than its {n_art} artifacts")
        chosen = np.sort(_rng(seed, _LABEL, k).choice(members, size=n_art, replace=False))
        corrupt(chosen, "prominent", _rng(seed, _KIND, k))
    subtle_idx = np.flatnonzero(split_of == SUBTLE_SPLIT)
    if len(subtle_idx):
        corrupt(subtle_idx, "subtle", _rng(seed, _KIND, len(SPLITS)))

    for row in rows:
        row["recipe"] = json.dumps(row.pop("_recipe"), sort_keys=True, default=_json_default)
        row["path"] = ""
        row["cache_file"] = ""
        del row["_index"]
    df = pd.DataFrame(rows)
    df = add_ramp_order(df, seed)
    return df[list(COLUMNS)]


def assign_splits(
    table: pd.DataFrame, fractions=(0.6, 0.2, 0.2), seed: int = 0
) -> pd.DataFrame:
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
        subjects = subjects[_rng(seed, _SPLIT, 100 + stratum).permutation(len(subjects))]
        start = 0
        for name, k in zip(SPLITS, split_counts(len(subjects), fractions)):
            subject_split.update({s: name for s in subjects[start : start + k]})
            start += k
    split[labelled] = [subject_split[str(s)] for s in sub["subject_id"]]
    df["split"] = split.astype(str)
    return df


def add_ramp_order(table: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Add the ``ramp_rank`` and ``prime`` columns (see :mod:`mriqc_nb.data.ramp`); returns a copy.

    ``ramp_rank`` numbers the clean training scans in the (seeded) order in which the ramp
    adds them; ``prime`` marks every training artifact plus the first ``n_artifact`` of them.
    """
    df = table.drop(columns=[c for c in ("ramp_rank", "prime") if c in table.columns])
    order = ramp_order(df, seed)
    rank = {sid: r for r, sid in enumerate(order)}
    df["ramp_rank"] = [rank.get(str(s), -1) for s in df["scan_id"]]
    df["ramp_rank"] = df["ramp_rank"].astype("int64")
    prime_ids = set(priming_set(df)["scan_id"].astype(str)) if len(df) else set()
    df["prime"] = df["scan_id"].astype(str).isin(prime_ids).to_numpy()
    return df


# ---------------------------------------------------------------------------------------------
# Reading, normalising and validating tables
# ---------------------------------------------------------------------------------------------


def _text(series: pd.Series) -> pd.Series:
    return series.fillna("").astype(str).str.strip()


def _normalise(table: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``table`` with defaults filled in and values canonicalised (no checks)."""
    df = table.copy()
    df.attrs = dict(table.attrs)
    for col in ("path", "recipe", "scan_id", "subject_id", "site", "modality", "label",
                "artifact_class", "artifact_kind", "severity", "split", "cache_file"):
        if col in df.columns:
            df[col] = _text(df[col])
    for col in ("path", "recipe", "site", "modality", "artifact_class", "artifact_kind", "cache_file"):
        if col not in df.columns:
            df[col] = ""
    if "scan_id" not in df.columns or (df["scan_id"] == "").any():
        derived = df["path"].map(_stem)
        df["scan_id"] = df["scan_id"].where(df["scan_id"] != "", derived) if "scan_id" in df.columns else derived
    if "subject_id" not in df.columns:
        df["subject_id"] = df["scan_id"]
    df["subject_id"] = df["subject_id"].where(df["subject_id"] != "", df["scan_id"])
    if "label" in df.columns:
        low = df["label"].str.lower()
        df["label"] = low.map(_LABEL_ALIASES).fillna(df["label"]).astype(str)
    if "severity" not in df.columns:
        df["severity"] = ""
    df["severity"] = df["severity"].str.lower()
    if "label" in df.columns:
        empty = df["severity"] == ""
        df.loc[empty, "severity"] = np.where(df.loc[empty, "label"] == "artifact", "prominent", "none")
    if "split" in df.columns:
        df["split"] = df["split"].str.lower()
    if "prime" in df.columns:
        df["prime"] = _text(df["prime"]).str.lower().isin(["true", "1", "yes"]).to_numpy()
    if "ramp_rank" in df.columns:
        df["ramp_rank"] = pd.to_numeric(df["ramp_rank"], errors="coerce").fillna(-1).astype("int64")
    return df


def _stem(path: str) -> str:
    name = os.path.basename(str(path))
    for ext in (".nii.gz", ".nii", ".mnc.gz", ".mnc", ".npy"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


def _resolve(path: str, root) -> Path:
    p = Path(os.path.expanduser(str(path)))
    if not p.is_absolute() and root is not None:
        p = Path(root) / p
    return p


def validate_table(table: pd.DataFrame, root=None, *, check_files: bool = True) -> pd.DataFrame:
    """Check a scan table; return a normalised copy, or raise :class:`TableError`.

    Every problem is reported at once, each with its offending rows (index labels; in a table
    read by :func:`load_table` row ``i`` is line ``i + 2`` of the file):

    - ``missing column``: no ``label``, or neither ``path`` nor ``recipe``;
    - ``unknown label``: not ``clean``/``artifact`` (nor ``0``/``1``);
    - ``duplicate scan_id``: the same id on several rows;
    - ``no source``: a row with neither a ``path`` nor a ``recipe``;
    - ``missing file``: a ``path`` that does not exist (relative paths are taken from
      ``root``, else from ``table.attrs["root"]``, else the working directory);
    - ``bad recipe``: a ``recipe`` that is not a JSON object;
    - ``unknown split`` / ``missing split``: a split other than train/valid/test/subtle, or a
      split column filled on some rows only;
    - ``unknown severity``: other than none/prominent/subtle;
    - ``subject in several splits``: all the rows of each such subject.

    Parameters
    ----------
    table : pandas.DataFrame
        The table (see the module notes for its columns; only ``label`` and ``path`` or
        ``recipe`` are required).
    root : path-like, optional
        Directory that relative paths are relative to.
    check_files : bool
        Check that every ``path`` exists (default True).
    """
    problems: dict[str, list] = {}
    details: dict[str, list[str]] = {}

    def report(name, index, texts):
        problems.setdefault(name, []).extend(list(index))
        details.setdefault(name, []).extend(list(texts))

    cols = set(table.columns)
    missing = [c for c in ("label",) if c not in cols]
    if not ({"path", "recipe"} & cols):
        missing.append("path (or recipe)")
    if missing:
        problems["missing column"] = []
        details["missing column"] = [f"no column {c!r}" for c in missing]
        raise TableError(problems, details)
    df = _normalise(table)
    if root is None:
        root = table.attrs.get("root")

    def ident(i):
        sid = df.at[i, "scan_id"]
        return f"row {i} ({sid})" if sid else f"row {i}"

    bad = df.index[~df["label"].isin(LABELS)]
    report("unknown label", bad, [f"{ident(i)}: {df.at[i, 'label']!r}" for i in bad])

    dup = df["scan_id"].duplicated(keep=False) & (df["scan_id"] != "")
    report("duplicate scan_id", df.index[dup], [ident(i) for i in df.index[dup]])
    has_path, has_recipe = df["path"] != "", df["recipe"] != ""
    no_id = df.index[(df["scan_id"] == "") & (has_path | has_recipe)]
    report("missing scan_id", no_id, [f"row {i}" for i in no_id])
    none = df.index[~has_path & ~has_recipe]
    report("no source", none, [ident(i) for i in none])

    if check_files:
        gone = [i for i in df.index[has_path] if not _resolve(df.at[i, "path"], root).exists()]
        report("missing file", gone, [f"{ident(i)}: {_resolve(df.at[i, 'path'], root).absolute()}" for i in gone])

    bad_recipe = []
    for i in df.index[has_recipe]:
        try:
            ok = isinstance(json.loads(df.at[i, "recipe"]), dict)
        except ValueError:
            ok = False
        if not ok:
            bad_recipe.append(i)
    report("bad recipe", bad_recipe, [ident(i) for i in bad_recipe])

    bad_sev = df.index[~df["severity"].isin(SEVERITIES)]
    report("unknown severity", bad_sev, [f"{ident(i)}: {df.at[i, 'severity']!r}" for i in bad_sev])

    if "split" in df.columns:
        empty = df["split"] == ""
        if empty.any() and not empty.all():
            report("missing split", df.index[empty], [ident(i) for i in df.index[empty]])
        bad_split = df.index[~empty & ~df["split"].isin(ALL_SPLITS)]
        report("unknown split", bad_split, [f"{ident(i)}: {df.at[i, 'split']!r}" for i in bad_split])
        filled = df[~empty]
        n_splits = filled.groupby("subject_id")["split"].nunique()
        leaky = n_splits.index[n_splits > 1]
        if len(leaky):
            rows = filled.index[filled["subject_id"].isin(leaky)]
            texts = [
                f"subject {s}: " + ", ".join(f"{ident(i)} in {filled.at[i, 'split']}" for i in rows if filled.at[i, "subject_id"] == s)
                for s in leaky
            ]
            report("subject in several splits", rows, texts)

    problems = {k: v for k, v in problems.items() if v}
    if problems:
        raise TableError(problems, details)
    return df


def load_table(path, *, validate: bool = True, check_files: bool = True) -> pd.DataFrame:
    """Read a scan table (``.tsv``, or ``.csv``; a database directory reads its
    ``scans.tsv``) and, by default, validate it.

    The table's directory is recorded in ``table.attrs["root"]``: relative ``path`` and
    ``cache_file`` entries are taken from there.
    """
    path = Path(path)
    if path.is_dir():
        path = path / TABLE_FILE
    sep = "," if path.suffix.lower() == ".csv" else "\t"
    df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    df.attrs["root"] = str(path.resolve().parent)
    if validate:
        return validate_table(df, check_files=check_files)
    df = _normalise(df)
    return df


def save_table(table: pd.DataFrame, path) -> Path:
    """Write ``table`` as TSV (atomically); JSON recipes are written without quoting."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = [c for c in COLUMNS if c in table.columns] + [c for c in table.columns if c not in COLUMNS]
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            table[cols].to_csv(fh, sep="\t", index=False, quoting=csv.QUOTE_NONE, lineterminator="\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def prepare_table(table, profile: str | Profile, root=None) -> pd.DataFrame:
    """Validate your own table and complete it: splits (if absent) and the ramp order.

    ``table`` is a DataFrame or a path to a TSV/CSV. Splits use ``profile.split_fractions``
    and ``profile.seed``; existing splits are kept. Relative paths are made absolute.
    """
    p = get_profile(profile)
    if not isinstance(table, pd.DataFrame):
        table = load_table(table, validate=False)
    df = validate_table(table, root=root)
    root = root if root is not None else df.attrs.get("root")
    if (df["path"] != "").any():
        df["path"] = [str(_resolve(x, root).resolve()) if x else "" for x in df["path"]]
    if "split" not in df.columns or (df["split"] == "").all():
        df = assign_splits(df, p.split_fractions, p.seed)
    df = add_ramp_order(df, p.seed)
    return df[list(COLUMNS) + [c for c in df.columns if c not in COLUMNS]]


def class_balance(table: pd.DataFrame, by="split", column: str = "label") -> pd.DataFrame:
    """Counts of ``column`` values per group, with totals (and the clean share for labels).

    Parameters
    ----------
    table : pandas.DataFrame
        Scan table.
    by : str or list of str
        Grouping column(s): ``"split"`` (default), ``"modality"``, ``["split", "modality"]``...
    column : str
        What to count: ``"label"`` (default), ``"artifact_class"``, ``"artifact_kind"``...

    Returns
    -------
    pandas.DataFrame
        Rows: groups (splits in train/valid/test/subtle order) and ``total``; columns: the
        values of ``column`` and ``total`` (for labels also ``clean_share``).
    """
    by = [by] if isinstance(by, str) else list(by)
    df = table.copy()
    values = df[column].astype(str).replace("", "(none)")
    counts = pd.crosstab([df[b].astype(str) for b in by], values, margins=True, margins_name="total")
    counts.columns.name = column
    if column == "label":
        counts = counts.reindex(columns=[*LABELS, "total"], fill_value=0)
        counts["clean_share"] = counts["clean"] / counts["total"].where(counts["total"] > 0)
    if by == ["split"]:
        order = [s for s in ALL_SPLITS if s in counts.index] + [s for s in counts.index if s not in ALL_SPLITS]
        counts = counts.loc[order]
    return counts


# ---------------------------------------------------------------------------------------------
# The cache
# ---------------------------------------------------------------------------------------------


def conform_key(grid, spacing_mm) -> str:
    """Directory name of a cache: ``"64x64x32_4x4x6mm"``."""
    g = "x".join(str(int(n)) for n in grid)
    s = "x".join(f"{float(v):g}" for v in spacing_mm)
    return f"{g}_{s}mm"


def cache_dir_for(out_dir, grid, spacing_mm) -> Path:
    """The cache directory of a database directory for one grid and spacing."""
    return Path(out_dir) / "cache" / conform_key(grid, spacing_mm)


_FINGERPRINT: str | None = None


def code_fingerprint() -> str:
    """Hash of the source of the modules that make volumes (synth, artifacts, kspace, io)."""
    global _FINGERPRINT
    if _FINGERPRINT is None:
        h = hashlib.sha1()
        here = Path(__file__).resolve().parent
        for name in ("synth.py", "artifacts.py", "kspace.py", "io.py"):
            f = here / name
            if f.exists():
                h.update(name.encode() + b"\0" + f.read_bytes())
        _FINGERPRINT = h.hexdigest()[:16]
    return _FINGERPRINT


def _source_key(row, root=None) -> dict:
    recipe = str(row.get("recipe", "") or "")
    if recipe:
        return {"recipe": json.loads(recipe)}
    p = _resolve(row["path"], root)
    try:
        st = p.stat()
        return {"path": str(p.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    except OSError:
        return {"path": str(p)}


def cache_file_name(row, grid, spacing_mm, root=None) -> str:
    """``<scan_id>.<hash>.npy``; the hash covers the source, the grid and the simulators."""
    key = {
        "version": CACHE_VERSION,
        "grid": [int(n) for n in grid],
        "spacing_mm": [float(s) for s in spacing_mm],
        "normalise": True,
        "code": code_fingerprint(),
        "source": _source_key(row, root),
    }
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return f"{row['scan_id']}.{digest}.npy"


def materialise(row, grid, spacing_mm, root=None) -> np.ndarray:
    """Make the conformed volume of one table row (no cache): float32, shape ``grid``.

    Synthetic rows: :func:`mriqc_nb.synth.make_scan` on the recipe's grid, the artifact
    applied to the array with the recipe's spacing, then :func:`mriqc_nb.scans.conform` to
    ``grid`` (the same normalisation as real files). File rows: ``conform(path)``.
    """
    import nibabel as nib

    from mriqc_nb import scans as io

    recipe = str(row.get("recipe", "") or "")
    if recipe:
        from mriqc_nb import artifacts, synth

        r = json.loads(recipe)
        rgrid = tuple(r.get("grid", grid))
        rspacing = tuple(r.get("spacing_mm", spacing_mm))
        img = synth.make_scan(r["anatomy"], r["acquisition"], rgrid, rspacing)
        if r.get("artifact"):
            data = np.asarray(img.dataobj, dtype=np.float32)
            data = artifacts.apply(data, r["artifact"], spacing_mm=rspacing)
            img = nib.Nifti1Image(np.asarray(data, dtype=np.float32), img.affine)
        return io.conform(img, tuple(grid), tuple(spacing_mm), normalise=True)
    return io.conform(str(_resolve(row["path"], root)), tuple(grid), tuple(spacing_mm), normalise=True)


def _atomic_save(path: Path, array: np.ndarray) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, array)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _to_cache_dtype(volume: np.ndarray, scan_id: str) -> np.ndarray:
    out = np.asarray(volume, dtype=np.float32).astype(np.float16)
    if not np.isfinite(out).all():
        raise ValueError(f"{scan_id}: conformed volume has non-finite values (or exceeds float16)")
    return out


def _conform_settings(cache_dir: Path) -> tuple[tuple, tuple]:
    f = Path(cache_dir) / CONFORM_FILE
    if not f.exists():
        raise FileNotFoundError(f"{f} not found: pass grid and spacing_mm, or build the database first")
    d = json.loads(f.read_text())
    return tuple(d["grid"]), tuple(d["spacing_mm"])


def _write_conform_settings(cache_dir: Path, grid, spacing_mm) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    f = cache_dir / CONFORM_FILE
    text = json.dumps({"grid": [int(n) for n in grid], "spacing_mm": [float(s) for s in spacing_mm],
                       "normalise": True, "dtype": "float16", "version": CACHE_VERSION}, indent=2)
    if not f.exists() or f.read_text() != text:
        f.write_text(text)


def load_volume(row, cache_dir, *, grid=None, spacing_mm=None, root=None, write: bool = True) -> np.ndarray:
    """The conformed volume of a table row, from the cache (made and cached on a miss).

    Parameters
    ----------
    row : mapping or pandas.Series
        A row of a scan table (needs ``scan_id`` and ``recipe`` or ``path``).
    cache_dir : path-like
        The cache directory (:func:`cache_dir_for`); its ``conform.json`` gives the grid and
        spacing unless they are passed. A database directory also works for a row of its
        built table (its ``cache_file`` is read).
    root : path-like, optional
        Directory that a relative ``path`` is relative to.
    write : bool
        Write a missing volume to the cache (default True).

    Returns
    -------
    numpy.ndarray, float32, shape ``grid``
        Always the float16 cached values (a miss returns what a later hit will return).
    """
    cache_dir = Path(cache_dir)
    if grid is None or spacing_mm is None:
        cached = str(row.get("cache_file", "") or "")
        if not (cache_dir / CONFORM_FILE).exists() and cached and (cache_dir / cached).exists():
            return np.load(cache_dir / cached).astype(np.float32)  # a database directory
        grid, spacing_mm = _conform_settings(cache_dir)
    f = cache_dir / cache_file_name(row, grid, spacing_mm, root)
    if f.exists():
        return np.load(f).astype(np.float32)
    vol = _to_cache_dtype(materialise(row, grid, spacing_mm, root), str(row["scan_id"]))
    if write:
        _write_conform_settings(cache_dir, grid, spacing_mm)
        _atomic_save(f, vol)
    return vol.astype(np.float32)


def cache_paths(table: pd.DataFrame, root=None) -> list[str]:
    """Absolute cache file of every row (``root``, else ``table.attrs["root"]``, joined)."""
    root = root if root is not None else table.attrs.get("root")
    if "cache_file" not in table.columns or (table["cache_file"].astype(str) == "").any():
        raise ValueError("table has no cache files: build it with build_database() first")
    return [str(_resolve(f, root)) for f in table["cache_file"].astype(str)]


def load_arrays(table: pd.DataFrame, ids=None, *, root=None, channel_axis: bool = True):
    """Load cached volumes into memory (for small sets): ``X, y``.

    Parameters
    ----------
    table : pandas.DataFrame
        A built scan table (with ``cache_file``).
    ids : sequence of str, optional
        Scan ids to load, in this order (default: every row).
    root : path-like, optional
        Database directory (default ``table.attrs["root"]``).
    channel_axis : bool
        Append a channel axis (default True).

    Returns
    -------
    X : numpy.ndarray, float32, shape (n, x, y, z[, 1])
    y : numpy.ndarray, int64, shape (n,)
        0 = clean, 1 = artifact.
    """
    if ids is not None:
        pos = pd.Index(table["scan_id"].astype(str)).get_indexer([str(i) for i in ids])
        if (pos < 0).any():
            unknown = [str(i) for i, q in zip(ids, pos) if q < 0]
            raise KeyError(f"scan ids not in the table: {unknown[:_MAX_LISTED]}")
        table = table.iloc[pos]
    paths = cache_paths(table, root)
    y = table["label"].map(LABEL_INDEX).to_numpy(dtype=np.int64)
    if not paths:
        return np.zeros((0,), np.float32), y
    first = np.load(paths[0], mmap_mode="r")
    X = np.empty((len(paths), *first.shape), dtype=np.float32)
    for i, p in enumerate(paths):
        X[i] = np.load(p)
    return (X[..., None] if channel_axis else X), y


# ---------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------


def _build_chunk(rows: list[dict], cache_dir: str, grid, spacing_mm, root) -> dict[str, str]:
    """Worker: make and cache the volumes of ``rows``; return ``{scan_id: error}``."""
    failures = {}
    cache_dir = Path(cache_dir)
    for row in rows:
        try:
            vol = _to_cache_dtype(materialise(row, grid, spacing_mm, root), row["scan_id"])
            _atomic_save(cache_dir / Path(row["cache_file"]).name, vol)
        except Exception as err:  # noqa: BLE001 -- reported per scan, the build goes on
            failures[row["scan_id"]] = f"{type(err).__name__}: {err}"
    return failures


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def _mp_context():
    """``fork`` on Linux while TensorFlow is not loaded (fast, works from any ``__main__``);
    ``spawn`` elsewhere (forking a process that runs TensorFlow's threads is unsafe)."""
    if sys.platform.startswith("linux") and "tensorflow" not in sys.modules:
        return get_context("fork")
    return get_context("spawn")


def _run_build(todo: list[dict], cache_dir: Path, grid, spacing_mm, root, workers: int, progress: bool) -> dict:
    from tqdm.auto import tqdm

    failures: dict[str, str] = {}
    bar = tqdm(total=len(todo), unit="scan", desc="building volumes", disable=not progress or not todo)
    try:
        if workers <= 1 or len(todo) <= 1:
            for row in todo:
                failures.update(_build_chunk([row], str(cache_dir), grid, spacing_mm, root))
                bar.update(1)
            return failures
        chunk = max(1, min(16, len(todo) // (workers * 4)))
        chunks = [todo[i : i + chunk] for i in range(0, len(todo), chunk)]
        with ProcessPoolExecutor(max_workers=workers, mp_context=_mp_context()) as pool:
            pending = {}
            it = iter(chunks)
            for c in it:  # keep at most 2 chunks per worker in flight: bounded memory
                pending[pool.submit(_build_chunk, c, str(cache_dir), grid, spacing_mm, root)] = len(c)
                if len(pending) >= 2 * workers:
                    break
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    bar.update(pending.pop(fut))
                    failures.update(fut.result())
                    nxt = next(it, None)
                    if nxt is not None:
                        pending[pool.submit(_build_chunk, nxt, str(cache_dir), grid, spacing_mm, root)] = len(nxt)
    finally:
        bar.close()
    return failures


def build_database(
    profile: str | Profile,
    out_dir,
    workers: int | None = None,
    progress: bool = True,
    *,
    table=None,
    on_error: str = "raise",
    prune: bool = True,
) -> pd.DataFrame:
    """Build (or resume) a scan database: ``DIR/scans.tsv``, ``DIR/database.json``, the cache.

    Idempotent: a second call finds every volume cached and only rewrites the table. An
    interrupted call resumes where it stopped. The result does not depend on ``workers``.

    Parameters
    ----------
    profile : str or Profile
        Grid, spacing, counts and seed (see :mod:`mriqc_nb.profiles`).
    out_dir : path-like
        The database directory.
    workers : int, optional
        Processes (default: all available cores; 0 or 1 builds in this process).
    progress : bool
        Show a progress bar (tqdm).
    table : DataFrame or path-like, optional
        Your own table of files (see the module notes) instead of the synthetic database;
        it is validated, split by subject if it has no ``split`` column, and conformed to the
        profile's grid.
    on_error : {"raise", "drop"}
        If some volumes cannot be made (e.g. unreadable files): raise :class:`BuildError`
        after building all the others (the default), or drop those rows with a warning.
    prune : bool
        Delete cached arrays that no row of the table uses any more (stale recipes).

    Returns
    -------
    pandas.DataFrame
        The scan table, with ``cache_file`` filled and ``attrs["root"] = out_dir``.
    """
    if on_error not in ("raise", "drop"):
        raise ValueError(f"on_error must be 'raise' or 'drop', got {on_error!r}")
    p = get_profile(profile)
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    if table is None:
        df = make_table(p)
        root = None
    else:
        df = prepare_table(table, p)
        root = None  # prepare_table made paths absolute
    validate_table(df, check_files=False)
    cache_dir = cache_dir_for(out_dir, p.grid, p.spacing_mm)
    _write_conform_settings(cache_dir, p.grid, p.spacing_mm)
    rel = cache_dir.relative_to(out_dir)
    df["cache_file"] = [
        str(rel / cache_file_name(r, p.grid, p.spacing_mm, root)) for r in df[["scan_id", "recipe", "path"]].to_dict("records")
    ]
    df.attrs["root"] = str(out_dir)
    save_table(df, out_dir / TABLE_FILE)

    exists = np.array([(out_dir / f).exists() for f in df["cache_file"]], dtype=bool)
    todo = df.loc[~exists, ["scan_id", "recipe", "path", "cache_file"]].to_dict("records")
    n_workers = _default_workers() if workers is None else int(workers)
    failures = _run_build(todo, cache_dir, tuple(p.grid), tuple(p.spacing_mm), root, n_workers, progress)

    if failures and on_error == "drop":
        warnings.warn(str(BuildError(failures)) + "\nthese rows are dropped from the table", stacklevel=2)
        df = df[~df["scan_id"].isin(failures)].reset_index(drop=True)
        df = add_ramp_order(df, p.seed)
        df.attrs["root"] = str(out_dir)
        save_table(df, out_dir / TABLE_FILE)
    if prune:
        used = {Path(f).name for f in df["cache_file"]}
        for f in cache_dir.glob("*.npy"):
            if f.name not in used:
                f.unlink(missing_ok=True)
    meta = {
        "profile": p.as_dict(),
        "source": "synthetic" if table is None else "table",
        "cache_dir": str(rel),
        "code_fingerprint": code_fingerprint(),
        "n_rows": int(len(df)),
        "counts": {
            s: {lab: int(((df["split"] == s) & (df["label"] == lab)).sum()) for lab in LABELS}
            for s in ALL_SPLITS
        },
        "n_prime": int(df["prime"].sum()),
    }
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2, default=_json_default))
    if failures and on_error == "raise":
        raise BuildError(failures)
    return df


def profile_database(profile, *, workers: int | None = None, progress: bool = True) -> pd.DataFrame:
    """The scan table of ``profile``'s own database, built on first use.

    The database lives in :func:`mriqc_nb.paths.database_dir` (under ``$MRIQC_NB_HOME``), so
    every chapter, training stage and command that asks for a profile's data shares one copy.
    Later calls only check the cache (see :func:`build_database`).
    """
    from mriqc_nb.paths import database_dir

    p = get_profile(profile)
    return build_database(p, database_dir(p), workers=workers, progress=progress)


def database_main(argv=None) -> int:
    """``mriqc-nb database --profile P --out DIR [--workers N] [--table T] [--quiet]``."""
    import argparse

    from mriqc_nb.profiles import PROFILES

    ap = argparse.ArgumentParser(prog="mriqc-nb database", description="Build a profile's scan database.")
    ap.add_argument("--profile", "-p", default="laptop", choices=list(PROFILES))
    ap.add_argument("--out", "-o", required=True)
    ap.add_argument("--workers", "-j", type=int, default=None)
    ap.add_argument("--table", "-t", default=None, help="your own table of files (TSV/CSV)")
    ap.add_argument("--quiet", "-q", action="store_true")
    args = ap.parse_args(argv)
    try:
        df = build_database(args.profile, args.out, workers=args.workers, progress=not args.quiet, table=args.table)
    except (TableError, BuildError) as err:
        print(f"mriqc-nb database: error: {err}")
        return 2
    print(class_balance(df).to_string())
    return 0

