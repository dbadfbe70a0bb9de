"""Screen scans on disk with a model bundle: one row per scan in a TSV file.

The model is a bundle (:mod:`mriqc_nb.bundle`: weights, conform settings, referral policy);
the samples come from :func:`mriqc_nb.predict.predict_samples`, the one Monte Carlo sampler of
the package.

The screening table
-------------------
:func:`screen` conforms each scan, runs T MC-dropout passes, and applies the policy. It writes
a tab-separated file (TSV) with one row per input file, columns :data:`COLUMNS`:

``path``
    The file as given (a directory given as input is expanded to every ``.nii``,
    ``.nii.gz`` and ``.mnc`` file below it, sorted).
``status``, ``error``
    ``ok`` and an empty message, or ``error`` and why the file could not be used (missing,
    corrupt, 4-D, constant, NaN voxels...; the message starts with the file name). A broken
    file never stops the run.
``decision``
    ``clean`` (kept, called clean), ``artifact`` (kept, called artifact: check it), ``refer``
    (the model is too uncertain: a person decides) -- :data:`mriqc_nb.labels.DECISIONS` -- or
    ``error``.
``p_artifact``
    Mean probability of an artifact over the T passes (0 to 1).
``entropy``, ``mutual_information``, ``variance``
    Uncertainty of the prediction (entropies in bits; see :mod:`mriqc_nb.uncertainty`).
``scaled_uncertainty``
    The policy's measure rescaled with the validation min/max, clipped to [0, 1]; a scan is
    referred when it is at least ``eta``.
``referred``
    True when the scan is referred (empty for errors).
``needs_person``
    True when a person must look at the scan: referred, called artifact, or unusable (error).
    Sorting on this column gives the worklist.

The file is written batch by batch (whole lines, flushed and synced to disk), so an
interrupted run keeps what it wrote. Running :func:`screen` again with the same output file
*resumes*: files whose path is already in the table are skipped (delete their rows, or the
file, to screen them again; this holds for error rows too), so every path appears once.
A scan's numbers depend only on its contents, the bundle and ``seed`` (every scan sees the
same T dropout masks), not on its batch or on the order of the inputs -- up to float32
rounding: the trunk's arithmetic can change with the batch shape on some CPUs, by a few 1e-7
(the tests allow 1e-5); the decisions do not change.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from mriqc_nb import predict, referral, scans, uncertainty
from mriqc_nb._atomic import write_text
from mriqc_nb.bundle import Bundle, load_bundle
from mriqc_nb.labels import ARTIFACT, CLEAN, DECISIONS, REFER

__all__ = ["COLUMNS", "collect_sources", "screen", "read_results", "report"]

#: Columns of the screening TSV (a policy on another measure adds that column at the end).
COLUMNS = ("path", "status", "error", "decision", "p_artifact", "entropy", "mutual_information",
           "variance", "scaled_uncertainty", "referred", "needs_person")
_TEXT = ("path", "status", "error", "decision")
_BOOL = ("referred", "needs_person")
#: ``decision`` of a file that could not be screened.
ERROR = "error"


# --------------------------------------------------------------------------------------------
# Screening
# --------------------------------------------------------------------------------------------
def collect_sources(sources) -> list[str]:
    """File paths to screen, in order, each once.

    ``sources`` is a path or a list of paths; a directory becomes every ``.nii``,
    ``.nii.gz`` and ``.mnc`` file below it (sorted); anything else is kept as given, even if
    it does not exist (it will be an error row).
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    out: list[str] = []
    for src in sources:
        src = Path(src)
        if src.is_dir():
            out += sorted(str(f) for f in src.rglob("*")
                          if f.is_file() and f.name.lower().endswith(scans.SUPPORTED_SUFFIXES))
        else:
            out.append(str(src))
    return list(dict.fromkeys(out))


def _columns(policy) -> list[str]:
    return list(COLUMNS) + ([policy.measure] if policy.measure not in COLUMNS else [])


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return str(value)


def _decision(rec: dict) -> str:
    """``refer``, ``artifact`` or ``clean`` from a row of :func:`mriqc_nb.referral.apply_policy`."""
    if rec["referred"]:
        return REFER
    return ARTIFACT if rec["predicted"] == 1 else CLEAN


def _rows_for_batch(paths, bundle: Bundle, seed: int) -> list[dict]:
    """Conform, predict and decide one batch; one dict per path, in order."""
    rows, volumes, ok = {}, [], []
    for path in paths:
        try:
            volumes.append(scans.conform(path, bundle.grid, bundle.spacing_mm, normalise=True))
            ok.append(path)
        except Exception as exc:  # noqa: BLE001 - one broken scan never stops the run
            msg = str(exc) if isinstance(exc, scans.ScanError) else f"{path}: {type(exc).__name__}: {exc}"
            rows[path] = {"status": "error", "error": _one_line(msg)}
    if ok:
        x = np.stack(volumes)[..., None]
        samples = predict.predict_samples(bundle.model, x, "mc", bundle.mc_samples, seed)
        table = referral.apply_policy(bundle.policy, uncertainty.summarise(samples))
        for path, rec in zip(ok, table.to_dict("records")):
            if not math.isfinite(rec["p_artifact"]):
                rows[path] = {"status": "error", "error": f"{path}: the model's output is not finite"}
                continue
            rec.update(status="ok", error="", decision=_decision(rec))
            rows[path] = rec
    for path, rec in rows.items():
        rec["path"] = path
        if rec["status"] == "error":
            rec.update(decision=ERROR, needs_person=True)
    return [rows[p] for p in paths]


def _prepare(out: Path, columns: list[str]) -> set[str]:
    """Paths already in ``out``; drops a half-written last line; writes the header if new."""
    out.parent.mkdir(parents=True, exist_ok=True)
    header = "\t".join(columns) + "\n"
    if not out.exists() or out.stat().st_size == 0:
        write_text(out, header)
        return set()
    with open(out, "r+b") as fh:  # a crash mid-write can leave a partial last line: drop it
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) != b"\n":
            fh.seek(0)
            fh.truncate(fh.read().rfind(b"\n") + 1)
    with open(out, newline="") as fh:
        first = fh.readline()
        if first.rstrip("\r\n") != header.rstrip("\n"):
            raise ValueError(f"{out}: exists with other columns ({first.strip()!r}); it is not a "
                             "screening table of this bundle: choose another output file")
    return set(read_results(out)["path"])


def screen(sources, bundle, out_tsv, *, batch_size: int = 4, seed: int = 0,
           progress: bool = True) -> pd.DataFrame:
    """Screen scan files with a model bundle; write (or resume) a TSV, one row per file.

    Parameters
    ----------
    sources : path-like or list of path-like
        Scan files and/or directories (see :func:`collect_sources`).
    bundle : mriqc_nb.bundle.Bundle or path-like
        A loaded bundle or its folder (:func:`mriqc_nb.bundle.load_bundle`).
    out_tsv : path-like
        Output table (see the module notes for its columns). If it exists, the run resumes:
        paths already in it are skipped.
    batch_size : int
        Scans conformed and predicted together; the table is written after each batch.
    seed : int
        Seed of the dropout masks; the same seed gives the same numbers.
    progress : bool
        Show a progress bar.

    Returns
    -------
    pandas.DataFrame
        The whole table as written on disk (:func:`read_results`), earlier rows included.
    """
    from tqdm.auto import tqdm

    if not isinstance(bundle, Bundle):
        bundle = load_bundle(bundle)
    out = Path(out_tsv)
    columns = _columns(bundle.policy)
    done = _prepare(out, columns)
    todo = [p for p in collect_sources(sources) if p not in done]
    batch_size = max(1, int(batch_size))
    with open(out, "a", newline="") as fh, tqdm(total=len(todo), disable=not progress,
                                                 unit="scan") as bar:
        for start in range(0, len(todo), batch_size):
            paths = todo[start:start + batch_size]
            buf = io.StringIO()
            writer = csv.writer(buf, delimiter="\t", lineterminator="\n")
            for rec in _rows_for_batch(paths, bundle, seed):
                writer.writerow([_cell(rec.get(c)) for c in columns])
            fh.write(buf.getvalue())  # the whole batch in one write
            fh.flush()
            os.fsync(fh.fileno())
            bar.update(len(paths))
    return read_results(out)


def read_results(path) -> pd.DataFrame:
    """Read a screening TSV: text columns as str, numbers as float, ``referred`` and
    ``needs_person`` as nullable booleans (empty for error rows)."""
    head = pd.read_csv(path, sep="\t", nrows=0).columns
    numeric = [c for c in head if c not in _TEXT + _BOOL]
    df = pd.read_csv(path, sep="\t", keep_default_na=False, na_values={c: [""] for c in numeric},
                     dtype={**{c: str for c in _TEXT if c in head},
                            **{c: float for c in numeric}})
    for c in _BOOL:
        if c in df:
            df[c] = df[c].astype(str).map({"True": True, "False": False}).astype("boolean")
    return df


def report(df: pd.DataFrame) -> str:
    """A short text summary of a screening table: counts per decision, then the errors."""
    n = len(df)
    counts = df["decision"].value_counts()
    parts = [f"{int(counts.get(k, 0))} {k}" for k in (*DECISIONS, ERROR)]
    lines = [f"{n} scans: " + ", ".join(parts) + f"; {int(df['needs_person'].fillna(True).sum())} "
             "need a person"]
    errors = df[df["status"] == "error"]
    if len(errors):
        lines.append(f"{len(errors)} could not be screened:")
        lines += [f"  {msg}" for msg in errors["error"]]
    return "\n".join(lines)
