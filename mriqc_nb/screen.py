"""Screen scans on disk with a trained model bundle: one row per scan in a TSV file.

The model bundle
----------------
A trained model travels as a folder holding two files, and screening needs nothing else:

``weights.npz``
    The network's weights (``model.get_weights()``, as ``arr_0``, ``arr_1``, ...).
``bundle.json``
    ``format_version``; ``model_name`` (``"nn008"`` or ``"alexnet3d"``) and ``input_shape``,
    which rebuild the network; ``conform`` (``grid`` in voxels, ``spacing_mm`` in millimetres,
    ``normalise``), the settings of :func:`mriqc_nb.scans.conform` used in training;
    ``class_names`` (``["clean", "artifact"]``); ``mc_samples``, the number T of Monte Carlo
    dropout passes per scan; ``policy``, the referral policy chosen on the *validation* split
    (:class:`mriqc_nb.referral.ReferralPolicy`: the uncertainty measure, its validation
    min/max, the referral cut ``eta`` and the threshold on ``p_artifact``); ``provenance``
    (profile, stage, seed, date, package version).

:func:`bundle_from_run` makes one from a trained stage, :func:`export_bundle` from any model,
:func:`load_bundle` reads one back.

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
    (the model is too uncertain: a person decides) or ``error``.
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
same T dropout masks), not on its batch or on the order of the inputs.
"""

from __future__ import annotations

import csv
import datetime
import io as _io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mriqc_nb import referral, uncertainty
from mriqc_nb import scans as io

__all__ = [
    "FORMAT_VERSION",
    "CLASS_NAMES",
    "COLUMNS",
    "BundleError",
    "Bundle",
    "export_bundle",
    "bundle_from_run",
    "load_bundle",
    "collect_sources",
    "predict_samples",
    "screen",
    "read_results",
    "report",
]

#: Version of the bundle layout; :func:`load_bundle` refuses any other.
FORMAT_VERSION = 1
CLASS_NAMES = ("clean", "artifact")
BUNDLE_FILE, WEIGHTS_FILE = "bundle.json", "weights.npz"
#: Columns of the screening TSV (a policy on another measure adds that column at the end).
COLUMNS = ("path", "status", "error", "decision", "p_artifact", "entropy", "mutual_information",
           "variance", "scaled_uncertainty", "referred", "needs_person")
_TEXT = ("path", "status", "error", "decision")
_BOOL = ("referred", "needs_person")
#: ``apply_policy`` says "referred"; the TSV uses the action, "refer".
_DECISION = {"referred": "refer", "artifact": "artifact", "clean": "clean"}


class BundleError(ValueError):
    """A model bundle that cannot be used; the message starts with its path."""


@dataclass
class Bundle:
    """A loaded model bundle: everything :func:`screen` needs.

    Attributes
    ----------
    model : keras.Model
        The network, weights loaded.
    grid : tuple of int
        Conform grid (x, y, z) in voxels, RAS+.
    spacing_mm : tuple of float
        Conform voxel size in millimetres.
    policy : mriqc_nb.referral.ReferralPolicy
        Referral policy chosen on validation.
    mc_samples : int
        MC-dropout passes per scan.
    info : dict
        The whole ``bundle.json`` (provenance included).
    path : pathlib.Path
        The bundle folder.
    """

    model: object
    grid: tuple
    spacing_mm: tuple
    policy: referral.ReferralPolicy
    mc_samples: int
    info: dict = field(default_factory=dict, repr=False)
    path: Path | None = None


# --------------------------------------------------------------------------------------------
# Bundles
# --------------------------------------------------------------------------------------------
def export_bundle(out_dir, model, *, grid, spacing_mm, policy: referral.ReferralPolicy,
                  mc_samples: int = 100, model_name: str = "nn008",
                  provenance: dict | None = None) -> Path:
    """Write a model bundle (``weights.npz`` + ``bundle.json``) to ``out_dir``.

    Parameters
    ----------
    out_dir : path-like
        Folder (created; existing bundle files are replaced).
    model : keras.Model
        A network of :mod:`mriqc_nb.model.networks`, built by ``build_<model_name>``.
    grid : sequence of 3 int
        Conform grid in voxels; must equal the model's input shape.
    spacing_mm : sequence of 3 float
        Conform voxel size in millimetres.
    policy : mriqc_nb.referral.ReferralPolicy
        Chosen on validation.
    mc_samples : int
        MC-dropout passes per scan when screening.
    model_name : str
        ``"nn008"`` or ``"alexnet3d"``.
    provenance : dict, optional
        Where the model comes from (profile, stage, seed, ...); the date and the package
        version are added.

    Returns
    -------
    pathlib.Path
        ``out_dir``.
    """
    from mriqc_nb import __version__
    from mriqc_nb.model import networks

    if not hasattr(networks, f"build_{model_name}"):
        raise ValueError(f"unknown model_name {model_name!r}")
    input_shape = [int(s) for s in model.input_shape[1:]]
    grid = [int(n) for n in grid]
    spacing_mm = [float(s) for s in spacing_mm]
    if input_shape[:3] != grid or len(spacing_mm) != 3:
        raise ValueError(f"grid {grid} / spacing_mm {spacing_mm} do not fit the model's input "
                         f"shape {input_shape}")
    if int(mc_samples) < 1:
        raise ValueError(f"mc_samples must be >= 1, got {mc_samples}")
    prov = dict(provenance or {})
    prov.setdefault("created", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    prov.setdefault("package_version", __version__)
    info = {"format_version": FORMAT_VERSION, "model_name": model_name, "input_shape": input_shape,
            "conform": {"grid": grid, "spacing_mm": spacing_mm, "normalise": True},
            "class_names": list(CLASS_NAMES), "mc_samples": int(mc_samples),
            "policy": policy.to_dict(), "provenance": prov}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{WEIGHTS_FILE}.tmp.npz"
    np.savez(tmp, *model.get_weights())
    tmp.replace(out / WEIGHTS_FILE)
    tmp = out / f".{BUNDLE_FILE}.tmp"
    tmp.write_text(json.dumps(info, indent=2, allow_nan=False) + "\n")
    tmp.replace(out / BUNDLE_FILE)
    return out


def bundle_from_run(stage: str, profile, out_dir, measure: str = "mutual_information", *,
                    progress: bool = False) -> Path:
    """Bundle a trained stage: its last weights and a referral policy chosen on validation.

    Trains the stage first if needed (:func:`mriqc_nb.model.training.train_stage`). The policy is
    :func:`mriqc_nb.referral.select_operating_point` on the stage's MC-dropout predictions
    of the *validation* split (T = the profile's ``mc_samples_valid``); the bundle screens
    with T = ``mc_samples_test``, as the book's test evaluation does.

    Returns
    -------
    pathlib.Path
        ``out_dir``.
    """
    from mriqc_nb import comparison as results
    from mriqc_nb.model import training as train
    from mriqc_nb.profiles import get_profile

    p = get_profile(profile)
    run = train.train_stage(stage, p, progress=progress)
    config = run.config
    valid, _ = results.predictions(stage, p, "valid", progress=progress)
    policy = referral.select_operating_point(valid, measure=measure)
    provenance = {"profile": p.name, "stage": stage, "seed": config.seed, "run_dir": str(run.dir),
                  "epoch": run.last_epoch, "policy_split": "valid",
                  "policy_mc_samples": p.mc_samples_valid, "policy_seed": 0}
    return export_bundle(out_dir, run.model(), grid=p.grid, spacing_mm=p.spacing_mm,
                         policy=policy, mc_samples=p.mc_samples_test, model_name=config.model,
                         provenance=provenance)


def load_bundle(path) -> Bundle:
    """Read a bundle folder (or its ``bundle.json``) and rebuild the network.

    Raises
    ------
    BundleError
        The folder, ``bundle.json`` or ``weights.npz`` is missing or unreadable, the format
        version is unknown, or the weights do not fit the network. The message names the path.
    """
    from mriqc_nb.model import networks

    path = Path(path)
    folder = path.parent if path.name == BUNDLE_FILE else path
    meta, weights = folder / BUNDLE_FILE, folder / WEIGHTS_FILE
    for f in (meta, weights):
        if not f.is_file():
            raise BundleError(f"{f}: not found; a model bundle is a folder with {BUNDLE_FILE} "
                              f"and {WEIGHTS_FILE} (make one with `mriqc-nb bundle`)")
    try:
        info = json.loads(meta.read_text())
        version = info.get("format_version")
    except (ValueError, AttributeError) as exc:
        raise BundleError(f"{meta}: not a bundle description ({exc})") from exc
    if version != FORMAT_VERSION:
        raise BundleError(f"{meta}: unknown format_version {version!r}; this mriqc-nb reads "
                          f"version {FORMAT_VERSION}")
    try:
        build = getattr(networks, f"build_{info['model_name']}")
        model = build(tuple(info["input_shape"]))
        with np.load(weights) as f:
            model.set_weights([f[f"arr_{i}"] for i in range(len(f.files))])
        conform = info["conform"]
        bundle = Bundle(model, tuple(int(n) for n in conform["grid"]),
                        tuple(float(s) for s in conform["spacing_mm"]),
                        referral.ReferralPolicy.from_dict(info["policy"]), int(info["mc_samples"]),
                        info, folder)
    except Exception as exc:  # noqa: BLE001 - any defect of the files is a bad bundle
        raise BundleError(f"{folder}: broken bundle ({type(exc).__name__}: {exc})") from exc
    return bundle


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
                          if f.is_file() and f.name.lower().endswith(io.SUPPORTED_SUFFIXES))
        else:
            out.append(str(src))
    return list(dict.fromkeys(out))


def predict_samples(model, x: np.ndarray, T: int, seed: int = 0) -> np.ndarray:
    """MC-dropout samples for a batch: the trunk once, then T head passes per scan.

    As :func:`mriqc_nb.model.networks.predict_mc_fast`, except that each scan gets a fresh MC head
    seeded with ``seed``, so every scan sees the same T dropout masks and its result does not
    depend on which batch it is in (resuming and batching do not change the numbers).

    Returns
    -------
    ndarray, shape (T, N, 2)
    """
    from mriqc_nb.model.networks import _numpy, get_head, get_trunk, make_mc_head

    features = _numpy(get_trunk(model)(np.asarray(x, dtype="float32"), training=False))
    head = get_head(model)
    out = []
    for f in features:
        tiled = np.repeat(f[None], T, axis=0)
        out.append(_numpy(make_mc_head(head, seed)(tiled, training=False)))
    return np.stack(out, axis=1)


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


def _rows_for_batch(paths, bundle: Bundle, seed: int) -> list[dict]:
    """Conform, predict and decide one batch; one dict per path, in order."""
    rows, volumes, ok = {}, [], []
    for path in paths:
        try:
            volumes.append(io.conform(path, bundle.grid, bundle.spacing_mm, normalise=True))
            ok.append(path)
        except Exception as exc:  # noqa: BLE001 - one broken scan never stops the run
            msg = str(exc) if isinstance(exc, io.ScanError) else f"{path}: {type(exc).__name__}: {exc}"
            rows[path] = {"status": "error", "error": _one_line(msg)}
    if ok:
        x = np.stack(volumes)[..., None]
        table = uncertainty.summarise(predict_samples(bundle.model, x, bundle.mc_samples, seed))
        table = referral.apply_policy(bundle.policy, table)
        for path, rec in zip(ok, table.to_dict("records")):
            if not math.isfinite(rec["p_artifact"]):
                rows[path] = {"status": "error", "error": f"{path}: the model's output is not finite"}
                continue
            rec.update(status="ok", error="", decision=_DECISION[rec["decision"]])
            rows[path] = rec
    for path, rec in rows.items():
        rec["path"] = path
        if rec["status"] == "error":
            rec.update(decision="error", needs_person=True)
    return [rows[p] for p in paths]


def _prepare(out: Path, columns: list[str]) -> set[str]:
    """Paths already in ``out``; drops a half-written last line; writes the header if new."""
    out.parent.mkdir(parents=True, exist_ok=True)
    header = "\t".join(columns) + "\n"
    if not out.exists() or out.stat().st_size == 0:
        out.write_text(header)
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
    bundle : Bundle or path-like
        A loaded bundle or its folder.
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
            buf = _io.StringIO()
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
    parts = [f"{int(counts.get(k, 0))} {k}" for k in ("clean", "artifact", "refer", "error")]
    lines = [f"{n} scans: " + ", ".join(parts) + f"; {int(df['needs_person'].fillna(True).sum())} "
             "need a person"]
    errors = df[df["status"] == "error"]
    if len(errors):
        lines.append(f"{len(errors)} could not be screened:")
        lines += [f"  {msg}" for msg in errors["error"]]
    return "\n".join(lines)
