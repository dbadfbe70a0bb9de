"""Screen scans on disk with a model bundle: one row per input in a TSV file.

The model is a bundle (:mod:`mriqc_nb.bundle`: weights, conform settings, referral policy);
the samples come from :func:`mriqc_nb.predict.predict_samples`, the one Monte Carlo sampler of
the package. The inputs are found by :func:`mriqc_nb.sources.discover` (files, folders, lists,
BIDS roots), which gives every input one :class:`~mriqc_nb.sources.Source`, the unusable ones
included.

The screening table
-------------------
:func:`screen` checks each scan's header (:func:`mriqc_nb.scans.check_header`), conforms it,
runs T MC-dropout passes, and applies the policy. It writes a tab-separated file (TSV, UTF-8)
with one row per input, columns :data:`COLUMNS`:

``path``
    The file: absolute, folders resolved, printable (:attr:`mriqc_nb.sources.Source.path`).
``status``, ``error``
    ``ok`` and an empty message, or ``error`` and why the file could not be used (missing,
    corrupt, 4-D, constant, implausible geometry, a folder or FIFO named like a scan...; the
    message starts with the path). A broken file never stops the run.
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
``subject``, ``session``, ``acquisition``, ``reconstruction``, ``run``, ``suffix``
    BIDS entities of the file name (:data:`mriqc_nb.bids.ENTITY_COLUMNS`; empty when the
    name is not a BIDS name).

A bundle with ``checks`` (:mod:`mriqc_nb.native`: the built-in one has them) also measures
every file at its own resolution, before it is conformed, and adds the columns
:data:`CHECK_COLUMNS` at the end:

``check``
    The artifacts that a check calls (``spike``, ``noise``, ``ghosting``; comma-separated;
    empty if none).
    A called scan is decided ``artifact`` (a person looks at it), and ``p_artifact`` is 1.
``p_network``
    The network's own mean probability (``p_artifact`` when no check calls).
``kspace_peak``, ``noise``, ``kspace_comb``
    The checks' measures (:func:`mriqc_nb.native.measure`; empty if one cannot be computed,
    and ``kspace_comb`` outside its scope: voxels coarser than 2 mm, or a skull-stripped
    file).

Beside the table, a JSON *sidecar* (``results.tsv`` -> ``results.json``, as BIDS pairs a TSV
with its JSON) records the bundle's :func:`~mriqc_nb.bundle.fingerprint`, the seed, T and the
bundle's warnings (e.g. a poor validation AUC).

Resuming
--------
The table is written batch by batch (whole lines, flushed and synced to disk), so an
interrupted run keeps what it wrote. Running :func:`screen` again with the same output file
*resumes*: inputs whose path is already in the table are skipped (delete their rows, or the
file, to screen them again; this holds for error rows too), so every path appears once. A
table begun with another bundle or seed (its sidecar says so) is refused, and so is a file
that is not a screening table: neither is ever modified.

Numbers
-------
A scan's numbers depend only on its contents, the bundle and ``seed``: the trunk runs on one
scan at a time and every scan sees the same T dropout masks, so its batch, its neighbours and
the order of the inputs do not change them (bit for bit on the machines we measured; the tests
allow 1e-6).

Speed
-----
Headers are checked and volumes conformed by a few worker processes (the cores less one, at
least 2 where there are 2, at most 4) while this process loads the bundle and predicts
(the network runs as compiled TensorFlow functions, traced once); the workers end
with their parent (Ctrl-C, a kill, a crash). Nothing heavy (TensorFlow, the bundle) is loaded
before the inputs and the output table have been checked. The checks at the scan's own
resolution add almost as much again as conforming and the network: on 2 cores of an Intel
Xeon (AVX-512), 54 ms per 2-mm scan with them and 37 ms without, 2.2 and 1.45 times bare
loading (``benchmarks/bench_screen.py`` with the built-in bundle and with a copy without
checks, 2026-12-05; 105 ms with the checks before they were made cheaper,
``experiments/NOTES.md`` section 21); ``checks=False`` (``--no-checks``) screens with the
network alone.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import math
import os
from collections import deque
from pathlib import Path

import numpy as np
import pandas as pd

from mriqc_nb import scans
from mriqc_nb._atomic import write_json, write_text
from mriqc_nb.bids import ENTITY_COLUMNS
from mriqc_nb.labels import ARTIFACT, CLEAN, DECISIONS, REFER
from mriqc_nb.sources import discover, printable

__all__ = ["COLUMNS", "CHECK_COLUMNS", "ScreenError", "screen", "read_results",
           "sidecar_path", "report"]

#: Columns of the screening TSV (a policy on another measure adds that column at the end).
COLUMNS = ("path", "status", "error", "decision", "p_artifact", "entropy", "mutual_information",
           "variance", "scaled_uncertainty", "referred", "needs_person", *ENTITY_COLUMNS)
#: Columns added by a bundle with checks at the scan's own resolution (:mod:`mriqc_nb.native`).
CHECK_COLUMNS = ("check", "p_network", "kspace_peak", "noise", "kspace_comb")
_TEXT = ("path", "status", "error", "decision", "check", *ENTITY_COLUMNS)
_BOOL = ("referred", "needs_person")
#: ``decision`` of a file that could not be screened.
ERROR = "error"
_GENERATOR = "mriqc-nb screen"


class ScreenError(ValueError):
    """The output table cannot be used: not a screening table, begun with another bundle or
    seed, or not writable. The message starts with its path; nothing was modified."""


# --------------------------------------------------------------------------------------------
# Cells and rows
# --------------------------------------------------------------------------------------------
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


def _error_row(message: str) -> dict:
    return {"status": "error", "error": _one_line(printable(message)), "decision": ERROR,
            "needs_person": True}


# --------------------------------------------------------------------------------------------
# Conforming, in worker processes
# --------------------------------------------------------------------------------------------
def _measure(img) -> dict:
    """The checks' measures of a loaded scan at its own resolution (NaN where impossible)."""
    from mriqc_nb import native

    try:
        from nibabel.affines import voxel_sizes

        return native.measure(np.asarray(img.dataobj, dtype=np.float32),
                              spacing_mm=voxel_sizes(img.affine))
    except Exception:  # noqa: BLE001 - a measure that fails calls nothing; the scan is screened
        return dict.fromkeys(native.CALLS, float("nan"))


def _conform_one(fspath: str, path: str, grid, spacing_mm, checks: bool = False) -> tuple:
    """(volume or None, error message, measures) of one file: header check, conform, and
    with ``checks`` the measures at the file's own resolution ({} otherwise)."""
    try:
        img = scans.check_header(fspath)
        if checks:  # read (and validated) once: the measures and the conforming share it
            img = scans.load_scan(img)
        vol = scans.conform(img, grid, spacing_mm, normalise=True)
    except Exception as exc:  # noqa: BLE001 - one broken scan never stops the run
        msg = str(exc) if isinstance(exc, scans.ScanError) else f"{path}: {type(exc).__name__}: {exc}"
        if msg.startswith(scans.IN_MEMORY):  # conform of the array read above
            msg = path + msg[len(scans.IN_MEMORY):]
        return None, msg, {}
    return vol, "", _measure(img) if checks else {}


def _conform_in_worker(fspath: str, path: str, grid, spacing_mm, checks: bool) -> tuple:
    from mriqc_nb._workers import Stopped

    try:
        return _conform_one(fspath, path, grid, spacing_mm, checks)
    except Stopped as stop:  # SIGTERM: the pool would wait for more work; exit instead
        os._exit(stop.code)


def _workers(workers) -> int:
    if workers is not None:
        return max(0, int(workers))
    from mriqc_nb._workers import default_workers

    # Conforming a scan (reading it included) costs about twice the network's pass, so the
    # workers get every core but one, and at least two on a machine that has two: one worker
    # would leave this process waiting half the time.
    cores = default_workers()
    return max(1, min(4, max(min(2, cores), cores - 1)))


class _Conformer:
    """Conformed volumes of ``todo`` in input order, made ahead by a pool of ``workers``
    processes (in this process if 0), at most ``window`` at a time (bounded memory)."""

    def __init__(self, todo, grid, spacing_mm, workers: int, window: int, checks: bool = False):
        self.todo, self.grid, self.spacing, self.checks = list(todo), grid, spacing_mm, checks
        self.pool, self.queue, self.next = None, deque(), 0
        self.window = max(1, window)
        if workers > 0 and sum(s.ok for s in self.todo) > 1:
            from mriqc_nb._workers import worker_pool

            self.pool = worker_pool(workers)
            self._fill()

    def _fill(self):
        while self.next < len(self.todo) and len(self.queue) < self.window:
            src = self.todo[self.next]
            self.next += 1
            fut = None
            if src.ok and self.pool is not None:
                fut = self.pool.submit(_conform_in_worker, src.fspath, src.path, self.grid,
                                       self.spacing, self.checks)
            self.queue.append((src, fut))

    def __iter__(self):
        self._fill()
        while self.queue:
            src, fut = self.queue.popleft()
            if not src.ok:
                out = (None, src.problem, {})
            elif fut is None:
                out = _conform_one(src.fspath, src.path, self.grid, self.spacing, self.checks)
            else:
                out = fut.result()
            self._fill()
            yield (src, *out)

    def close(self, *, abandon: bool = False):
        if self.pool is None:
            return
        if abandon:
            from mriqc_nb._workers import stop_workers

            stop_workers(self.pool)
        else:
            self.pool.shutdown(wait=True, cancel_futures=True)
        self.pool = None


# --------------------------------------------------------------------------------------------
# Predicting
# --------------------------------------------------------------------------------------------
def _predict_rows(bundle, volumes: list, seed: int) -> list[dict]:
    """Policy rows (p_artifact, uncertainties, decision) for conformed volumes."""
    from mriqc_nb import predict, referral, uncertainty

    x = np.stack(volumes)[..., None]
    # batch_size=1: the trunk sees one scan at a time, so a scan's numbers do not depend on
    # its batch (the arithmetic of a batched convolution can change with the batch shape)
    samples = predict.predict_samples(bundle.model, x, "mc", bundle.mc_samples, seed, batch_size=1)
    table = referral.apply_policy(bundle.policy, uncertainty.summarise(samples))
    rows = []
    for rec in table.to_dict("records"):
        rec.update(status="ok", error="", decision=_decision(rec))
        rows.append(rec)
    return rows


def _apply_checks(rec: dict, measures: dict, thresholds: dict) -> None:
    """Add the checks' columns to a policy row; a check that calls an artifact makes the
    decision ``artifact`` (a person looks) and ``p_artifact`` 1."""
    from mriqc_nb import native

    calls = native.called(measures, thresholds)
    rec.update(measures, p_network=rec["p_artifact"], check=",".join(calls))
    if calls:
        rec.update(p_artifact=1.0, predicted=1, referred=False, needs_person=True,
                   decision=ARTIFACT)


def _rows_for_batch(batch, bundle, seed: int, thresholds: dict | None = None) -> list[dict]:
    """One row per (source, volume, error, measures) of ``batch``, in order; ``thresholds``:
    the checks applied (None: the network alone)."""
    ok = [i for i, (_, vol, _, _) in enumerate(batch) if vol is not None]
    rows = [_error_row(err) if vol is None else None for _, vol, err, _ in batch]
    if ok:
        for i, rec in zip(ok, _predict_rows(bundle, [batch[i][1] for i in ok], seed)):
            if not math.isfinite(rec["p_artifact"]):
                rows[i] = _error_row(f"{batch[i][0].path}: the model's output is not finite")
                continue
            if thresholds is not None:
                _apply_checks(rec, batch[i][3], thresholds)
            rows[i] = rec
    for (src, _, _, _), rec in zip(batch, rows):
        rec["path"] = src.path
        rec.update({c: src.entities.get(c, "") for c in ENTITY_COLUMNS})
    return rows


# --------------------------------------------------------------------------------------------
# The output table and its sidecar
# --------------------------------------------------------------------------------------------
def sidecar_path(out_tsv) -> Path:
    """The JSON sidecar of a screening table: ``x.tsv`` -> ``x.json`` (else ``x.tsv.json``)."""
    out = Path(out_tsv)
    return out.with_suffix(".json") if out.suffix.lower() == ".tsv" else out.with_name(out.name + ".json")


def _read_sidecar(side: Path) -> dict | None:
    if not side.exists():
        return None
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ScreenError(f"{side}: unreadable sidecar of the screening table ({exc}); "
                          "choose another output file") from exc
    if not isinstance(meta, dict) or meta.get("GeneratedBy") != _GENERATOR:
        raise ScreenError(f"{side}: exists and was not written by {_GENERATOR}; it is never "
                          "overwritten: choose another output file")
    return meta


def _prepare(out: Path, columns: list[str], meta: dict) -> set[str]:
    """Check ``out`` and its sidecar (modifying nothing unless both are ours and match), drop a
    half-written last line, write the header and sidecar if new; the paths already done."""
    side = sidecar_path(out)
    header = "\t".join(columns)
    if out.is_dir():
        raise ScreenError(f"{out}: is a directory; --out is the table file to write (e.g. "
                          f"{out / 'results.tsv'})")
    old = _read_sidecar(side)
    if not out.exists() or out.stat().st_size == 0:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_json(side, meta, sort_keys=False)
        write_text(out, header + "\n")
        return set()
    with open(out, "rb") as fh:
        first = fh.readline(1 << 16).decode("utf-8", "replace").rstrip("\r\n")
    if first != header:
        raise ScreenError(f"{out}: exists with other columns ({first[:80]!r}); it is not a "
                          "screening table of this bundle and is left as it is: choose "
                          "another output file")
    if old is None:
        raise ScreenError(f"{out}: has no sidecar {side.name}, so the bundle and seed that "
                          "began it are unknown; it is left as it is: choose another output "
                          "file (or delete it to start again)")
    for key, what in (("BundleFingerprint", "bundle"), ("Seed", "seed")):
        if old.get(key) != meta[key]:
            raise ScreenError(f"{out}: was begun with another {what} ({key} {old.get(key)!r}, "
                              f"now {meta[key]!r}); rows of two models or seeds never mix: "
                              "use the same bundle and seed to resume, or another output file")
    with open(out, "r+b") as fh:  # a crash mid-write can leave a partial last line: drop it
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) != b"\n":
            fh.seek(0)
            fh.truncate(fh.read().rfind(b"\n") + 1)
    return set(read_results(out)["path"])


def _writable(out: Path) -> None:
    """Fail early, with a clear message, if ``out``'s folder cannot be written."""
    folder = next((p for p in [out.parent, *out.parent.parents] if p.exists()), None)
    if folder is None or not os.access(folder, os.W_OK | os.X_OK) or (
            out.exists() and not os.access(out, os.W_OK)):
        raise ScreenError(f"{out}: cannot be written (permission denied); choose another "
                          "output file")


# --------------------------------------------------------------------------------------------
# Screening
# --------------------------------------------------------------------------------------------
def screen(sources, bundle, out_tsv, *, batch_size: int = 4, seed: int = 0,
           workers: int | None = None, report_html=None, progress: bool = True,
           checks: bool = True) -> pd.DataFrame:
    """Screen scan files with a model bundle; write (or resume) a TSV, one row per input.

    Parameters
    ----------
    sources : path-like or list of path-like
        Scan files, folders, list files and BIDS roots (:func:`mriqc_nb.sources.discover`).
    bundle : mriqc_nb.bundle.Bundle, path-like or None
        A loaded bundle, its folder (:func:`mriqc_nb.bundle.load_bundle`), or None for the
        built-in one (:func:`mriqc_nb.bundle.default_bundle`). A folder is loaded once, after
        the inputs and the table are checked.
    out_tsv : path-like
        Output table (see the module notes for its columns) and, beside it, its JSON sidecar
        (:func:`sidecar_path`). If it exists, the run resumes: paths already in it are
        skipped. A table begun with another bundle or seed, or a file that is not a
        screening table, is refused and left as it is.
    batch_size : int
        Scans predicted together; the table is written after each batch. The numbers do not
        depend on it.
    seed : int
        Seed of the dropout masks; the same seed gives the same numbers.
    workers : int, optional
        Processes that check and conform scans while this one predicts (0: none, all in this
        process). Default: the cores less one, at least 2 on a 2-core machine, at most 4.
    report_html : path-like, optional
        Also write the self-contained HTML report there
        (:func:`mriqc_nb.report.write_report`), with views of the flagged and referred scans
        (up to :data:`mriqc_nb.report.MAX_VIEWS`, drawn from the volumes just conformed;
        those of an earlier, resumed run are conformed again from their files).
    progress : bool
        Show a progress bar.
    checks : bool
        Apply the bundle's checks at the scan's own resolution, if it has any (False: the
        network alone, about 1.5 times faster on 2-mm scans; the table then has no check
        columns, so it cannot continue a table begun with them, nor the reverse).

    Returns
    -------
    pandas.DataFrame
        The whole table as written on disk (:func:`read_results`), earlier rows included.

    Raises
    ------
    mriqc_nb.sources.InputError
        A mistyped input or nothing to screen (before anything is loaded or written).
    mriqc_nb.bundle.BundleError
        A missing or invalid bundle (no built-in one in this installation).
    ScreenError
        An output table that cannot be used (see ``out_tsv``); nothing is modified.
    KeyboardInterrupt
        Ctrl-C: the workers are stopped; the rows of finished batches are on disk, and the
        same call resumes.
    """
    from tqdm.auto import tqdm

    from mriqc_nb import bundle as bundles

    found = discover(sources)  # usage errors first, before anything is loaded or written
    if isinstance(bundle, bundles.Bundle):
        folder, info, fp, warns = bundle.path, bundle.info, bundle.fingerprint, bundle.warnings
    else:
        folder, info = bundles.read_info(bundle)
        fp, warns = bundles.fingerprint(folder, info), bundles.bundle_warnings(info)
    grid = tuple(int(n) for n in info["conform"]["grid"])
    spacing = tuple(float(s) for s in info["conform"]["spacing_mm"])
    policy_measure = info["policy"]["measure"]
    out = Path(out_tsv)
    columns = list(COLUMNS) + ([policy_measure] if policy_measure not in COLUMNS else [])
    thresholds = dict(info["checks"]) if checks and info.get("checks") is not None else None
    checks = thresholds is not None
    if checks:
        columns += list(CHECK_COLUMNS)
    meta = {"GeneratedBy": _GENERATOR, "Version": _version(), "BundleFingerprint": fp,
            "Seed": int(seed), "Bundle": str(folder), "MCSamples": int(info["mc_samples"]),
            "Started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "Warnings": list(warns), "Columns": columns,
            **({"Checks": thresholds} if checks else {})}
    _writable(out)
    done = _prepare(out, columns, meta)
    todo = [s for s in found if s.path not in done]
    batch_size = max(1, int(batch_size))
    n_workers = _workers(workers)
    conformer = _Conformer(todo, grid, spacing, n_workers, window=2 * batch_size + 2 * n_workers,
                           checks=checks)
    views, max_views = {}, 0
    if report_html is not None:
        from mriqc_nb.report import MAX_VIEWS as max_views
    try:
        if not isinstance(bundle, bundles.Bundle) and any(s.ok for s in todo):
            bundle = bundles.load_bundle(folder)  # TensorFlow, while the workers conform
        with open(out, "a", newline="", encoding="utf-8") as fh, tqdm(
                total=len(todo), disable=not progress, unit="scan") as bar:
            batch, n_done = [], 0
            for item in conformer:
                batch.append(item)
                if len(batch) == batch_size or n_done + len(batch) == len(todo):
                    _write_batch(fh, batch, bundle, seed, columns, views, max_views,
                                 thresholds)
                    n_done += len(batch)
                    bar.update(len(batch))
                    batch = []
    except BaseException:
        conformer.close(abandon=True)
        raise
    conformer.close()
    table = read_results(out)
    if report_html is not None:
        from mriqc_nb.report import write_report

        write_report(table, report_html, views=views, spacing_mm=spacing,
                     meta={"table": str(out), "bundle": f"{folder} ({fp})", "seed": seed,
                           **({"warnings": " ".join(warns)} if warns else {})})
    return table


def _write_batch(fh, batch, bundle, seed, columns, views: dict, max_views: int,
                 thresholds: dict | None = None) -> None:
    """Predict one batch and append its rows in one write, flushed and synced."""
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter="\t", lineterminator="\n")
    for (src, vol, _, _), rec in zip(batch, _rows_for_batch(batch, bundle, seed, thresholds)):
        writer.writerow([_cell(rec.get(c)) for c in columns])
        if rec["decision"] in (ARTIFACT, REFER) and len(views) < max_views:
            views[src.path] = vol.astype(np.float16)  # for the report: half the memory
    fh.write(buf.getvalue())
    fh.flush()
    os.fsync(fh.fileno())


def _version() -> str:
    from mriqc_nb import __version__

    return __version__


def read_results(path) -> pd.DataFrame:
    """Read a screening TSV: text columns as str, numbers as float, ``referred`` and
    ``needs_person`` as nullable booleans (empty for error rows)."""
    head = pd.read_csv(path, sep="\t", nrows=0, encoding="utf-8").columns
    numeric = [c for c in head if c not in _TEXT + _BOOL]
    df = pd.read_csv(path, sep="\t", keep_default_na=False, na_values={c: [""] for c in numeric},
                     encoding="utf-8", dtype={**{c: str for c in _TEXT if c in head},
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
