"""Trained runs committed with the book: load a profile's networks instead of training them.

The ``laptop`` book uses six trained networks (:data:`~mriqc_nb.model.runs.STAGES`). Training
them takes about two hours on a recent 2-core CPU and more than three on an older one, so the
book loads the runs committed in the project's checkout instead, when they are the runs the
reader would train::

    results/<profile>-runs/<stage>/
        SHIPPED.json                 provenance (CPU, dates, training time, code) and the
                                     SHA-256 of every file below
        config.json, run.json, history.csv, database.txt, DONE
        recipe.json                  the recipe's choice of round (``recipe`` only)
        artifact_ce.csv              the cross-entropy of the stored training and the
                                     validation artifacts after every epoch, measured on the
                                     full run (:func:`mriqc_nb.diagnostics.artifact_ce_by_epoch`)
        checkpoints/epoch-NNN.npz    the weights the run answers with: its last epoch, or the
                                     round the recipe chose on validation

Only those weights are shipped (3.8 MB per network at the ``laptop`` grid), not every epoch's
nor the optimizer's state, so a shipped run cannot be resumed or trained further; everything
the book computes from a trained run (predictions, uncertainty, referral, screening) is
computed again by the reader's build.

:func:`install` copies a shipped run into the run directory :func:`train_stage
<mriqc_nb.model.training.train_stage>` would train, only when

- the stage's configuration (:func:`~mriqc_nb.model.training.stage_config`, the recipe's too)
  is the one the run stored, and
- the reader's database is the one it was trained on (:func:`~mriqc_nb.data.cache.database_id`:
  the scan table and the simulators' code),

and every file has its recorded SHA-256 (else a :class:`ValueError` names the file). Otherwise
the stage is trained as usual. ``MRIQC_NB_TRAIN_HERE=1`` (a chapter's ``train_here = True``)
trains every stage instead; ``tools/ship_runs.py`` makes the folders from finished runs
(:func:`export`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

__all__ = ["TRAIN_HERE_ENV", "SHIPPED_DIR_ENV", "SHIPPED_FILE", "train_here", "set_train_here",
           "shipped_dir",
           "export", "mismatch", "install", "provenance", "describe"]

#: Environment variable: ``1`` trains every stage here instead of loading shipped runs.
TRAIN_HERE_ENV = "MRIQC_NB_TRAIN_HERE"
#: Environment variable: a folder holding ``<profile>-runs/`` (default: the checkout's
#: ``results/``).
SHIPPED_DIR_ENV = "MRIQC_NB_SHIPPED_DIR"
SHIPPED_FILE = "SHIPPED.json"
#: The files a shipped run holds besides its weights (those present in the trained run).
RUN_FILES = ("config.json", "run.json", "history.csv", "database.txt", "DONE", "recipe.json",
             "artifact_ce.csv")
#: The package files whose code trains a network (recorded, and compared in :func:`describe`).
TRAINING_CODE = ("model/training.py", "model/recipe.py", "model/networks.py", "model/losses.py",
                 "model/schedules.py", "data/augment.py", "data/pipeline.py", "data/ramp.py")


def train_here() -> bool:
    """True when ``$MRIQC_NB_TRAIN_HERE`` asks to train every stage instead of loading."""
    return os.environ.get(TRAIN_HERE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def set_train_here(flag: bool | None) -> None:
    """Train every stage here (True) or load the shipped runs that match (False), for this
    process and the ones it starts; None leaves ``$MRIQC_NB_TRAIN_HERE`` as it is. A chapter
    calls it with its ``train_here`` parameter."""
    if flag is not None:
        os.environ[TRAIN_HERE_ENV] = "1" if flag else "0"


def shipped_dir(profile, stage: str) -> Path | None:
    """The shipped run of ``stage`` under ``profile``, or None where there is none."""
    from mriqc_nb.paths import _profile_name, checkout_file

    name = _profile_name(profile)
    root = os.environ.get(SHIPPED_DIR_ENV)
    if root:
        path = Path(root).expanduser() / f"{name}-runs" / stage / SHIPPED_FILE
        return path.parent if path.is_file() else None
    path = checkout_file("results", f"{name}-runs", stage, SHIPPED_FILE)
    return path.parent if path is not None else None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def training_code_hash() -> str:
    """SHA-256 (16 hex digits) of the package files that train a network (:data:`TRAINING_CODE`)."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for rel in TRAINING_CODE:
        h.update(rel.encode() + b"\0" + (root / rel).read_bytes() + b"\0")
    return h.hexdigest()[:16]


def export(run_dir, dest, *, table=None, note: str = "") -> Path:
    """Copy the finished run in ``run_dir`` to ``dest`` as a shipped run (see the module notes).

    Parameters
    ----------
    run_dir : path-like
        A finished run (``DONE``), with every epoch's weights when ``artifact_ce.csv`` is to be
        measured.
    dest : path-like
        ``<folder>/<profile>-runs/<stage>``; replaced.
    table : pandas.DataFrame, optional
        The run's built scan table: measures ``artifact_ce.csv`` on every saved epoch (not for
        the ``recipe``, whose history holds it already).
    note : str
        Recorded in ``SHIPPED.json`` (how the run was made).

    Returns
    -------
    pathlib.Path
        ``dest``.
    """
    from mriqc_nb import __version__
    from mriqc_nb.machine import cpu_model
    from mriqc_nb.model.runs import CKPT_DIR, Run

    run = Run(run_dir)
    if not run.done:
        raise ValueError(f"{run.dir}: not a finished run (no DONE marker); finish it first")
    epoch = run.selected_epoch
    weights = run.checkpoint(epoch)
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: the weights of the run's epoch {epoch} are missing")
    if table is not None and run.config.stage != "recipe":
        from mriqc_nb.diagnostics import artifact_ce_by_epoch

        artifact_ce_by_epoch(run, table)  # written into the run (finished runs keep it)
    dest = Path(dest)
    with _staged(dest) as tmp:
        (tmp / CKPT_DIR).mkdir()
        files = [f for f in RUN_FILES if (run.dir / f).is_file()]
        for f in files:
            shutil.copy2(run.dir / f, tmp / f)
        rel_w = f"{CKPT_DIR}/{weights.name}"
        shutil.copy2(weights, tmp / rel_w)
        meta = dict(
            stage=run.config.stage, profile=run.config.profile, seed=run.config.seed,
            epoch=int(epoch), epochs=int(run.config.epochs),
            training_seconds=_training_seconds(run),
            trained_until=(run.dir / "DONE").read_text().strip(),
            exported=time.strftime("%Y-%m-%d %H:%M:%S"), cpu=cpu_model(), n_cpus=os.cpu_count(),
            package_version=__version__, training_code=training_code_hash(),  # when shipped
            note=note,
            files={f: _sha256(tmp / f) for f in [*files, rel_w]})
        (tmp / SHIPPED_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return dest


@contextlib.contextmanager
def _staged(dest: Path):
    """A scratch folder beside ``dest`` that replaces it when the block ends without an error
    (and is removed when it raises): a reader never sees a half-copied run."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        yield tmp
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _training_seconds(run) -> float | None:
    """Wall time of the run's training as its files record it: every epoch (or round) with its
    validation, and the recipe's pool of redrawn artifacts."""
    history = run.history
    if not len(history):
        return None
    total = sum(float(history[c].sum()) for c in ("seconds", "seconds_valid") if c in history)
    selection = run.dir / "recipe.json"
    if selection.is_file():
        total += float(json.loads(selection.read_text()).get("pool_seconds", 0.0))
    return total


def provenance(run_dir) -> dict | None:
    """``SHIPPED.json`` of a run that was installed from a shipped run, else None."""
    path = Path(run_dir) / SHIPPED_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def describe(run_dir) -> str:
    """One sentence on where a run's weights come from (shipped or trained here)."""
    meta = provenance(run_dir)
    if meta is None:
        return f"{Path(run_dir).name}: trained here"
    minutes = (meta.get("training_seconds") or 0) / 60
    took = f"{minutes:.0f} min" if minutes >= 1 else "under a minute"
    same = meta.get("training_code") == training_code_hash()
    return (f"{Path(run_dir).name}: loaded, trained by this project on {meta['trained_until'][:10]}"
            f" ({took} on {meta['n_cpus']} cores of an {meta['cpu']}; seed "
            f"{meta['seed']}, epoch {meta['epoch']} of {meta['epochs']}); the training code "
            + ("has not changed since it was shipped" if same
               else "has changed since it was shipped (train_here trains it with this code)"))


def _verify(src: Path, meta: dict) -> None:
    files = meta.get("files")
    if not isinstance(files, dict) or not files:
        raise ValueError(f"{src / SHIPPED_FILE}: no file list; the shipped run is damaged")
    for rel, digest in files.items():
        path = src / rel
        if not path.is_file():
            raise ValueError(f"{path}: missing from the shipped run (listed in {SHIPPED_FILE}); "
                             "restore it from the repository, or train here (train_here)")
        if _sha256(path) != digest:
            raise ValueError(f"{path}: its SHA-256 is not the one recorded in {SHIPPED_FILE} "
                             "(changed or damaged; a Git LFS pointer?); restore it from the "
                             "repository, or train here (train_here)")


def mismatch(run_dir, config, database: str, recipe=None) -> str | None:
    """Why the finished run in ``run_dir`` is not the one ``config`` (and ``recipe``, for the
    ``recipe`` stage) would train on the database ``database`` (None: it is). The one test of
    :func:`install` and of ``tools/ship_runs.py``."""
    from mriqc_nb.model.recipe import stored_difference
    from mriqc_nb.model.runs import Run

    run = Run(run_dir)
    diff = run.config.differences(config)
    if recipe is not None and not diff:
        diff = stored_difference(run_dir, recipe)
    if diff:
        return f"trained with another configuration (run, now): {diff}"
    if run.database != database:
        return (f"trained on another database, another version of the {config.profile} "
                f"database ({run.database}, yours is {database})")
    return None


def install(stage: str, profile, run_dir, database: str, config, recipe=None) -> bool:
    """Copy the shipped run of ``stage`` into ``run_dir`` when it is the run the reader would
    train; return whether it did.

    Parameters
    ----------
    stage : str
    profile : str or Profile
    run_dir : path-like
        Where :func:`~mriqc_nb.model.training.train_stage` trains it. A finished run trained
        there is kept (nothing is installed); an unfinished one, or an earlier version of the
        shipped run (another ``SHIPPED.json``), is moved aside to
        ``<run_dir>.unfinished-<time>`` or ``<run_dir>.replaced-<time>``, with a warning,
        predictions and all.
    database : str
        :func:`~mriqc_nb.data.cache.database_id` of the reader's scan table.
    config : RunConfig
        The configuration the stage would train with.
    recipe : RecipeConfig, optional
        The recipe it would train with (``recipe`` only).

    Raises
    ------
    ValueError
        If a matching shipped run's file is missing or does not have its recorded SHA-256.
    """
    from mriqc_nb.model.runs import DATABASE_FILE

    src = shipped_dir(profile, stage)
    run_dir = Path(run_dir)
    finished = (run_dir / "DONE").exists()
    if src is None or (finished and provenance(run_dir) is None):  # none, or trained here
        return False
    try:
        meta = json.loads((src / SHIPPED_FILE).read_text())
        if not (src / DATABASE_FILE).is_file():
            raise OSError(f"no {DATABASE_FILE}")
        why = mismatch(src, config, database, recipe)
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"{src}: a shipped run that cannot be read ({exc}); restore it from the "
                         "repository, or train here (train_here)") from exc
    if why:
        warnings.warn(f"{src} was {why}; training {stage} here", stacklevel=3)
        return False
    if finished and provenance(run_dir) == meta:  # this very shipped run, installed before
        return False
    _verify(src, meta)
    if run_dir.exists() and any(p.name != DATABASE_FILE for p in run_dir.iterdir()):
        older = (run_dir / "DONE").exists()  # an earlier shipped run, with its predictions
        label = "replaced" if older else "unfinished"
        aside = run_dir.with_name(f"{run_dir.name}.{label}-{time.strftime('%Y%m%d-%H%M%S')}")
        run_dir.rename(aside)
        what = ("an earlier version of the shipped run" if older else "an unfinished run")
        warnings.warn(f"{run_dir} held {what}: moved to {aside}; the shipped run is used "
                      "instead (train_here trains it)", stacklevel=3)
    with _staged(run_dir) as tmp:
        for rel in [*meta["files"], SHIPPED_FILE]:
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel, tmp / rel)
    return True
