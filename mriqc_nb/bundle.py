"""The model bundle: a trained network and everything screening needs, in one folder.

A trained model travels as a folder holding two files, and screening (:mod:`mriqc_nb.screen`)
needs nothing else:

``weights.npz``
    The network's weights (:func:`mriqc_nb.model.networks.save_weights`: ``arr_0``, ``arr_1``, ...).
``bundle.json``
    ``format_version`` (:data:`FORMAT_VERSION`); ``model_name`` (``"nn008"`` or
    ``"alexnet3d"``) and ``input_shape``, which rebuild the network; ``conform`` (``grid`` in
    voxels, ``spacing_mm`` in millimetres, ``normalise``), the settings of
    :func:`mriqc_nb.scans.conform` used in training; ``class_names``
    (:data:`mriqc_nb.labels.LABELS`); ``mc_samples``, the number T of Monte Carlo dropout
    passes per scan; ``policy``, the referral policy chosen on the *validation* split
    (:class:`mriqc_nb.referral.ReferralPolicy`: the uncertainty measure, its validation
    min/max, the referral cut ``eta`` and the threshold on ``p_artifact``); ``validation``
    (the network's ROC AUC and the scan counts on the validation split, measured when the
    bundle was made: a bundle below :data:`MIN_VALID_AUC` is warned about at every load);
    ``provenance`` (profile, stage, seed, date, package version); optionally ``checks``, the
    thresholds of the checks at the scan's own resolution that screening applies before
    conforming (:data:`mriqc_nb.native.THRESHOLDS`, e.g. ``{"kspace_peak": 1.0, "noise": -2.5,
    "kspace_comb": 0.015}``; a check it does not name is measured but calls nothing; absent:
    the network alone).

:func:`save_bundle` writes one from any network (both files atomically), :func:`bundle_from_run`
from a trained run directory, :func:`load_bundle` reads one back; :func:`validate_info` checks a
description and is used by both ends. :func:`read_info` reads and checks ``bundle.json``
without TensorFlow (fast: the screening command checks its inputs before anything heavy), and
:func:`fingerprint` names the exact model and policy (a screening table records it, so that a
table begun with one bundle is never continued with another).

The built-in model
------------------
The package ships one bundle, ``mriqc_nb/models/default/`` (written by
``tools/make_model.py``, with its generated ``MODEL_CARD.md``): :func:`default_bundle` finds
it, and ``mriqc-nb screen`` uses it when no ``--bundle`` is given. This module reads a run through
:class:`mriqc_nb.model.runs.Run` and predicts through :mod:`mriqc_nb.predict`; it never trains.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from mriqc_nb import native, predict, referral
from mriqc_nb._atomic import write_json
from mriqc_nb.labels import LABELS

__all__ = ["FORMAT_VERSION", "MIN_VALID_AUC", "BundleError", "Bundle", "save_bundle",
           "load_bundle", "read_info", "fingerprint", "bundle_warnings", "default_bundle",
           "validate_info", "bundle_from_run"]

#: Version of the bundle layout; :func:`load_bundle` refuses any other.
FORMAT_VERSION = 1
BUNDLE_FILE, WEIGHTS_FILE = "bundle.json", "weights.npz"
_MODEL_NAMES = ("nn008", "alexnet3d")
#: A bundle whose validation ROC AUC (``bundle.json``: ``validation.auc``) is below this is
#: loudly warned about when it is loaded and in every screening table it writes.
MIN_VALID_AUC = 0.9
#: Where the built-in bundle lives inside the package (see :func:`default_bundle`).
DEFAULT_BUNDLE = ("models", "default")


class BundleError(ValueError):
    """A model bundle that cannot be used (or made); the message starts with its path."""


@dataclass
class Bundle:
    """A loaded model bundle: everything :func:`mriqc_nb.screen.screen` needs.

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
    fingerprint : str
        :func:`fingerprint` of the folder (weights and description).
    warnings : list of str
        :func:`bundle_warnings` (e.g. a poor validation AUC); also printed when loaded.
    """

    model: object
    grid: tuple
    spacing_mm: tuple
    policy: referral.ReferralPolicy
    mc_samples: int
    info: dict = field(default_factory=dict, repr=False)
    path: Path | None = None
    fingerprint: str = ""
    warnings: list = field(default_factory=list)


def validate_info(info: dict, where="bundle") -> None:
    """Check a bundle description (the contents of ``bundle.json``).

    Parameters
    ----------
    info : dict
    where : str or path-like
        Named at the start of the error message.

    Raises
    ------
    BundleError
        Listing every problem: an unknown ``format_version`` or ``model_name``, a conform grid
        that is not the network's input shape, a voxel size that is not 3 positive
        millimetre values, other class names, ``mc_samples < 1``, a missing policy.
    """
    if not isinstance(info, dict):
        raise BundleError(f"{where}: not a bundle description (a JSON object)")
    version = info.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(f"{where}: unknown format_version {version!r}; this mriqc-nb reads "
                          f"version {FORMAT_VERSION}")
    problems = []
    try:
        shape = [int(s) for s in info["input_shape"]]
        grid = [int(n) for n in info["conform"]["grid"]]
        spacing = [float(s) for s in info["conform"]["spacing_mm"]]
        if info["model_name"] not in _MODEL_NAMES:
            problems.append(f"unknown model_name {info['model_name']!r}")
        if len(shape) != 4 or shape[:3] != grid:
            problems.append(f"conform grid {grid} does not fit the input shape {shape}")
        if len(spacing) != 3 or min(spacing) <= 0:
            problems.append(f"spacing_mm {spacing} is not 3 positive sizes in mm")
        if list(info["class_names"]) != list(LABELS):
            problems.append(f"class_names {info['class_names']} are not {list(LABELS)}")
        if int(info["mc_samples"]) < 1:
            problems.append(f"mc_samples must be >= 1, got {info['mc_samples']}")
        if not isinstance(info["policy"], dict):
            problems.append("policy is not a JSON object")
        if "checks" in info:
            try:
                native.validate_thresholds(info["checks"])
            except ValueError as exc:
                problems.append(str(exc))
    except (KeyError, TypeError, ValueError) as exc:
        problems.append(f"missing or malformed field ({type(exc).__name__}: {exc})")
    if problems:
        raise BundleError(f"{where}: invalid bundle: " + "; ".join(problems))


def save_bundle(out_dir, model, *, grid, spacing_mm, policy: referral.ReferralPolicy,
                mc_samples: int = 100, model_name: str = "nn008",
                provenance: dict | None = None, validation: dict | None = None,
                checks: dict | None = None) -> Path:
    """Write a model bundle (``weights.npz`` + ``bundle.json``) to ``out_dir``.

    Parameters
    ----------
    out_dir : path-like
        Folder (created; existing bundle files are replaced, each atomically).
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
    validation : dict, optional
        How good the network is on the validation split: ``auc`` (ROC AUC of the mean
        MC-dropout probability), ``n_scans``, ``n_artifact``. Without it every load warns
        that the bundle's quality is unknown.
    checks : dict, optional
        Thresholds of the checks at the scan's own resolution (:data:`mriqc_nb.native.THRESHOLDS`
        or some of them); None: screening uses the network alone.

    Returns
    -------
    pathlib.Path
        ``out_dir``.

    Raises
    ------
    BundleError
        If the description would not be valid (see :func:`validate_info`); nothing is written.
    """
    from mriqc_nb import __version__
    from mriqc_nb.model.networks import save_weights

    prov = dict(provenance or {})
    prov.setdefault("created", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    prov.setdefault("package_version", __version__)
    info = {"format_version": FORMAT_VERSION, "model_name": model_name,
            "input_shape": [int(s) for s in model.input_shape[1:]],
            "conform": {"grid": [int(n) for n in grid],
                        "spacing_mm": [float(s) for s in spacing_mm], "normalise": True},
            "class_names": list(LABELS), "mc_samples": int(mc_samples),
            "policy": policy.to_dict(), "provenance": prov}
    if validation is not None:
        info["validation"] = dict(validation)
    if checks is not None:
        info["checks"] = dict(checks)
    out = Path(out_dir)
    validate_info(info, out)
    save_weights(model, out / WEIGHTS_FILE)
    write_json(out / BUNDLE_FILE, info, sort_keys=False, allow_nan=False)
    return out


def default_bundle() -> Path:
    """The folder of the built-in bundle shipped inside the package.

    Raises
    ------
    BundleError
        If this installation has none (a source checkout before ``make model``); the message
        says how to make one or to pass a bundle.
    """
    from importlib.resources import files

    folder = Path(str(files("mriqc_nb").joinpath(*DEFAULT_BUNDLE)))
    if not (folder / BUNDLE_FILE).is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise BundleError(f"{folder}: this installation has no built-in model; make it with "
                          "`make model` (tools/make_model.py), or pass a bundle made with "
                          "`mriqc-nb bundle` (--bundle DIR)")
    return folder


def read_info(path=None) -> tuple[Path, dict]:
    """Read and check a bundle's description without loading the network (no TensorFlow).

    Parameters
    ----------
    path : path-like, optional
        The bundle folder or its ``bundle.json``; None: the built-in bundle
        (:func:`default_bundle`).

    Returns
    -------
    folder : pathlib.Path
    info : dict
        The contents of ``bundle.json``, checked by :func:`validate_info`.

    Raises
    ------
    BundleError
        A missing folder or file, unreadable JSON, an invalid description.
    """
    path = default_bundle() if path is None else Path(path)
    folder = path.parent if path.name == BUNDLE_FILE else path
    meta, weights = folder / BUNDLE_FILE, folder / WEIGHTS_FILE
    for f in (meta, weights):
        if not f.is_file():
            raise BundleError(f"{f}: not found; a model bundle is a folder with {BUNDLE_FILE} "
                              f"and {WEIGHTS_FILE} (make one with `mriqc-nb bundle`)")
    try:
        info = json.loads(meta.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise BundleError(f"{meta}: not a bundle description ({exc})") from exc
    validate_info(info, meta)
    return folder, info


def fingerprint(folder, info: dict | None = None) -> str:
    """A short hash naming a bundle's exact model: its weights and its description.

    SHA-256 of ``weights.npz`` and of ``bundle.json``'s network, conform settings, ``T``
    and policy, and its ``checks`` when it has them (not its provenance, so a copied bundle
    keeps its fingerprint); the first 16 hexadecimal digits.
    """
    folder = Path(folder)
    if info is None:
        folder, info = read_info(folder)
    h = hashlib.sha256()
    with open(folder / WEIGHTS_FILE, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    keys = ("model_name", "input_shape", "conform", "class_names", "mc_samples", "policy")
    described = {k: info[k] for k in keys}
    if "checks" in info:  # absent from older bundles, whose fingerprints stay as they were
        described["checks"] = info["checks"]
    h.update(json.dumps(described, sort_keys=True).encode())
    return h.hexdigest()[:16]


def bundle_warnings(info: dict) -> list[str]:
    """What a user must know before trusting a bundle: a validation AUC below
    :data:`MIN_VALID_AUC`, or none recorded. Empty when the bundle looks sound."""
    auc = (info.get("validation") or {}).get("auc")
    if auc is None:
        return ["the bundle records no validation AUC: its quality is unknown (made by an "
                "older mriqc-nb, or by hand)"]
    try:
        auc = float(auc)
    except (TypeError, ValueError):
        return [f"the bundle's validation AUC is not a number ({auc!r})"]
    if not auc >= MIN_VALID_AUC:
        return [f"POOR MODEL: validation AUC {auc:.3f} is below {MIN_VALID_AUC}; its decisions "
                "are barely better than chance on the validation scans. Do not rely on them "
                "(a smoke-test model?)"]
    return []


def load_bundle(path=None, *, warn: bool = True) -> Bundle:
    """Read a bundle folder (or its ``bundle.json``) and rebuild the network.

    Parameters
    ----------
    path : path-like, optional
        The bundle; None: the built-in one (:func:`default_bundle`).
    warn : bool
        Print :func:`bundle_warnings` to stderr (they are kept in :attr:`Bundle.warnings`
        either way).

    Raises
    ------
    BundleError
        The folder, ``bundle.json`` or ``weights.npz`` is missing or unreadable, the
        description is invalid (:func:`validate_info`), or the weights do not fit the
        network. The message names the path.
    """
    import sys

    folder, info = read_info(path)
    from mriqc_nb.model.networks import build, load_weights

    try:
        model = load_weights(build(info["model_name"], tuple(info["input_shape"])),
                             folder / WEIGHTS_FILE)
        conform = info["conform"]
        out = Bundle(model, tuple(int(n) for n in conform["grid"]),
                     tuple(float(s) for s in conform["spacing_mm"]),
                     referral.ReferralPolicy.from_dict(info["policy"]), int(info["mc_samples"]),
                     info, folder, fingerprint(folder, info), bundle_warnings(info))
    except Exception as exc:  # noqa: BLE001 - any defect of the files is a bad bundle
        raise BundleError(f"{folder}: broken bundle ({type(exc).__name__}: {exc})") from exc
    if warn:
        for w in out.warnings:
            print(f"mriqc-nb: WARNING: {folder}: {w}", file=sys.stderr)
    return out


def bundle_from_run(run, out_dir, *, measure: str = "mutual_information", profile=None,
                    progress: bool = False, max_referred: float = 0.5,
                    checks: dict | None = native.THRESHOLDS) -> Path:
    """Bundle a trained run: its last weights and a referral policy chosen on validation.

    The policy is :func:`mriqc_nb.referral.select_operating_point` on the run's MC-dropout
    predictions of the *validation* split (T = the profile's ``mc_samples_test``, seed 0,
    :func:`mriqc_nb.predict.run_predictions`), whose ROC AUC is stored as ``validation``; the bundle screens with T = ``mc_samples_test``,
    as the book's test evaluation does. The run is not trained here (see
    :func:`mriqc_nb.model.training.train_stage`, or ``mriqc-nb bundle`` which trains first).

    Parameters
    ----------
    run : mriqc_nb.model.runs.Run or path-like
        A trained run directory.
    out_dir : path-like
        Bundle folder.
    measure : str
        Uncertainty measure that refers scans.
    profile : str or Profile, optional
        The run's profile (default: the one named in its configuration): conform grid and
        voxel size, T, the validation split.
    progress : bool
        Progress bar if the profile's database must be built.
    max_referred : float
        The largest share of the validation scans the policy may refer to a person (the
        human workload; ``select_operating_point(min_retained=1 - max_referred)``). Youden's
        J on the kept scans can nearly always be raised by referring more, so this bound,
        not the criterion, sets how many scans a person reviews.
    checks : dict or None
        Thresholds of the checks at the scan's own resolution that screening applies
        (default :data:`mriqc_nb.native.THRESHOLDS`, adopted by the rule of
        ``experiments/NOTES.md`` section 20); None: the network alone.

    Returns
    -------
    pathlib.Path
        ``out_dir``.
    """
    from mriqc_nb.metrics import safe_auc
    from mriqc_nb.model.runs import Run
    from mriqc_nb.profiles import get_profile

    if not hasattr(run, "dir"):
        run = Run(run)
    config = run.config
    p = get_profile(profile if profile is not None else config.profile)
    # The policy is fitted at the T the bundle screens with (it refuses another T).
    valid, _ = predict.run_predictions(run, "valid", "mc", T=p.mc_samples_test, seed=0,
                                       profile=p, progress=progress)
    if not 0.0 <= max_referred < 1.0:
        raise ValueError(f"max_referred must be in [0, 1), got {max_referred}")
    policy = referral.select_operating_point(valid, measure=measure, labels=valid["y"],
                                             min_retained=1.0 - max_referred)
    y = valid["y"].to_numpy()
    auc = safe_auc(y, valid["p_artifact"].to_numpy())  # NaN (stored as null) if one class only
    validation = {"auc": auc if auc == auc else None, "n_scans": int(len(y)),
                  "n_artifact": int(y.sum()), "split": "valid", "mc_samples": p.mc_samples_test}
    provenance = {"profile": p.name, "stage": config.stage, "seed": config.seed,
                  "run_dir": str(run.dir), "epoch": run.selected_epoch, "policy_split": "valid",
                  "policy_mc_samples": p.mc_samples_test, "policy_seed": 0,
                  "policy_max_referred": float(max_referred)}
    from mriqc_nb.model.runs import SELECTION_FILE
    try:  # a recipe run records its settings (redraw pool, rounds, ...): the card names them
        provenance["recipe"] = json.loads((run.dir / SELECTION_FILE).read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return save_bundle(out_dir, run.model(), grid=p.grid, spacing_mm=p.spacing_mm, policy=policy,
                       mc_samples=p.mc_samples_test, model_name=config.model,
                       provenance=provenance, validation=validation, checks=checks)
