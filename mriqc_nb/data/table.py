"""The scan table: one row per scan, its columns, validation, and reading and writing it.

The scan table (a manifest) is how the package describes any database, synthetic or yours.
It is saved as a tab-separated file ``scans.tsv``. Columns:

=================  ========================================================================
``scan_id``        unique id (synthetic: ``sub-00012_run-1_T2w``). Default for your table:
                   the file name without its extension.
``subject_id``     subject the scan belongs to; splits never separate a subject's scans.
                   Default for your table: the ``scan_id`` (each scan its own subject).
``site``           optional acquisition site (free text).
``modality``       contrast (``T1w``, ``T2w``, ``PDw``, ``FLAIR``, ... free text).
``label``          ``clean`` or ``artifact`` (``0``/``1`` and any letter case accepted);
                   the integer label ``y`` is its index in :data:`mriqc_nb.labels.LABELS`.
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
subject stay in one split, and ``site``); :func:`validate_table` reports every problem at
once, listing the offending rows, and :func:`mriqc_nb.data.build.build_database` (with
``table=``) splits it and conforms its files.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from mriqc_nb._atomic import atomic_open
from mriqc_nb.labels import LABELS, to_y

__all__ = [
    "SPLITS",
    "SUBTLE_SPLIT",
    "SEVERITIES",
    "COLUMNS",
    "TABLE_FILE",
    "TableError",
    "validate_table",
    "load_table",
    "save_table",
    "class_balance",
    "split_rows",
]

#: The labelled splits, in order.
SPLITS = ("train", "valid", "test")
#: Split name of the separate set of subtle artifacts (never used for training).
SUBTLE_SPLIT = "subtle"
#: Every split a table may hold, in display order.
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
#: File name of the scan table inside a database directory.
TABLE_FILE = "scans.tsv"
#: Offending rows listed per problem in an error message.
MAX_LISTED = 20


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
            more = f", ... ({len(rows) - MAX_LISTED} more)" if len(rows) > MAX_LISTED else ""
            lines.append(f"  {name} ({len(rows)} row{'s' if len(rows) != 1 else ''}): "
                         + "; ".join(shown[:MAX_LISTED]) + more)
        lines.append("(rows are numbered from 0: row i is line i + 2 of a table file)")
        super().__init__("\n".join(lines))


def json_default(o):
    """``json.dumps(default=...)`` for numpy scalars and arrays (recipes, metadata)."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def resolve_path(path, root=None) -> Path:
    """``path`` with ``~`` expanded, joined to ``root`` if relative (and ``root`` given)."""
    p = Path(os.path.expanduser(str(path)))
    if not p.is_absolute() and root is not None:
        p = Path(root) / p
    return p


def split_rows(table: pd.DataFrame, split: str) -> pd.DataFrame:
    """The rows of one split (``"train"``, ``"valid"``, ``"test"`` or ``"subtle"``).

    A table without a ``split`` column is returned whole (all its rows are taken to belong to
    the split asked for: e.g. a table that already holds the training rows only).
    """
    if "split" not in table.columns:
        return table
    return table[table["split"].astype(str) == split]


# ---------------------------------------------------------------------------------------------
# Normalising and validating
# ---------------------------------------------------------------------------------------------


def _text(series: pd.Series) -> pd.Series:
    return series.fillna("").astype(str).str.strip()


def _stem(path: str) -> str:
    name = os.path.basename(str(path))
    for ext in (".nii.gz", ".nii", ".mnc.gz", ".mnc", ".npy"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


def _canonical_labels(labels: pd.Series) -> pd.Series:
    """``clean``/``artifact`` for every value :func:`mriqc_nb.labels.to_y` reads; others kept."""
    def one(v: str) -> str:
        try:
            return LABELS[int(to_y([v])[0])]
        except ValueError:
            return v

    return labels.map({v: one(v) for v in labels.unique()}).astype(str)


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
        df["label"] = _canonical_labels(df["label"])
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

    Returns
    -------
    pandas.DataFrame
        A copy with defaults filled in (``scan_id``, ``subject_id``, ``severity``, empty
        text columns) and labels written ``clean``/``artifact``.
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
        gone = [i for i in df.index[has_path] if not resolve_path(df.at[i, "path"], root).exists()]
        report("missing file", gone, [f"{ident(i)}: {resolve_path(df.at[i, 'path'], root).absolute()}" for i in gone])

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


# ---------------------------------------------------------------------------------------------
# Reading and writing
# ---------------------------------------------------------------------------------------------


def load_table(path, *, validate: bool = True, check_files: bool = True) -> pd.DataFrame:
    """Read a scan table and, by default, validate it (:func:`validate_table`).

    Parameters
    ----------
    path : path-like
        A ``.tsv`` or ``.csv`` file, or a database directory (its ``scans.tsv`` is read).
    validate : bool
        Validate (default True); else only fill in defaults.
    check_files : bool
        When validating, check that every ``path`` exists.

    Returns
    -------
    pandas.DataFrame
        The table; its directory is recorded in ``table.attrs["root"]``, from which relative
        ``path`` and ``cache_file`` entries are taken.
    """
    path = Path(path)
    if path.is_dir():
        path = path / TABLE_FILE
    sep = "," if path.suffix.lower() == ".csv" else "\t"
    df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    df.attrs["root"] = str(path.resolve().parent)
    if validate:
        return validate_table(df, check_files=check_files)
    return _normalise(df)


def save_table(table: pd.DataFrame, path) -> Path:
    """Write ``table`` as TSV, atomically; JSON recipes are written without quoting.

    Columns are written in the order of :data:`COLUMNS`, extra columns after them.
    """
    path = Path(path)
    cols = [c for c in COLUMNS if c in table.columns] + [c for c in table.columns if c not in COLUMNS]
    with atomic_open(path, "w", newline="") as fh:
        table[cols].to_csv(fh, sep="\t", index=False, quoting=csv.QUOTE_NONE, lineterminator="\n")
    return path


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
        values of ``column`` and ``total`` (for labels also ``clean_share``, a fraction).
    """
    by = [by] if isinstance(by, str) else list(by)
    values = table[column].astype(str).replace("", "(none)")
    counts = pd.crosstab([table[b].astype(str) for b in by], values, margins=True, margins_name="total")
    counts.columns.name = column
    if column == "label":
        counts = counts.reindex(columns=[*LABELS, "total"], fill_value=0)
        counts["clean_share"] = counts["clean"] / counts["total"].where(counts["total"] > 0)
    if by == ["split"]:
        order = [s for s in ALL_SPLITS if s in counts.index] + [s for s in counts.index if s not in ALL_SPLITS]
        counts = counts.loc[order]
    return counts
