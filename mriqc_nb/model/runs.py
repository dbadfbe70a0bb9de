"""Run directories: what a run trains (:class:`RunConfig`), and what it has saved (:class:`Run`).

A run lives in ``paths.runs_dir(profile) / <stage>`` (``<stage>_<model>`` for a model other
than NN008, :func:`run_name`)::

    config.json                 the RunConfig: what is trained, with which loss, how long
    run.json                    how: global batch, replicas, the weights transferred from
    checkpoints/epoch-000.npz   the initial weights (random or transferred)
    checkpoints/epoch-001.npz   the weights after epoch 1, and so on (every epoch is kept)
    checkpoints/state-003.keras full model + optimizer after the last finished epoch (one
                                file, replaced every epoch): what a resumed run loads
    history.csv                 one row per epoch (set sizes, class weights, LR peak, metrics)
    DONE                        written after the last epoch

Every file is written atomically (:mod:`mriqc_nb._atomic`): an interrupted run never leaves
half a checkpoint. The per-epoch weights hold no optimizer state (Nadam keeps two slots per
weight), so they take a third of a full checkpoint; :meth:`Run.model` rebuilds the network
from ``config.json`` and loads them (:func:`mriqc_nb.model.networks.load_weights`).

This module reads and writes run directories; :mod:`mriqc_nb.model.training` trains them.
Deployment (:mod:`mriqc_nb.bundle`) reads a run through :class:`Run` without importing the
training code. TensorFlow is imported only when a model is loaded or saved.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import pandas as pd

from mriqc_nb._atomic import write_json, write_text

__all__ = ["STAGES", "MODELS", "PER_EPOCH", "HISTORY_COLUMNS", "RunConfig", "Run", "run_name"]

#: The training stages, in the order the book introduces them (:mod:`mriqc_nb.model.training`).
STAGES = ("baseline", "focal", "prime", "ramp", "primed_baseline", "recipe")
#: Networks a run can train (``build_<name>`` of :mod:`mriqc_nb.model.networks`).
MODELS = ("nn008", "alexnet3d")
#: ``class_weights`` value of a weighted cross-entropy whose weights ``n_max / n_c`` are
#: recomputed from each epoch's training subset.
PER_EPOCH = "per_epoch"
#: Training-set choices of a run: all training scans, the priming set, or the ramp schedule.
DATA = ("full", "prime", "ramp")

CONFIG_FILE, RUN_FILE, HISTORY_FILE, DONE_FILE, CKPT_DIR = (
    "config.json", "run.json", "history.csv", "DONE", "checkpoints")
#: The :func:`mriqc_nb.data.cache.database_id` of the scan table the run was trained on.
DATABASE_FILE = "database.txt"
#: Where a run that chooses its checkpoint on validation records the choice (``selected_round``).
SELECTION_FILE = "recipe.json"
WEIGHTED_CE = {"name": "weighted_ce", "class_weights": PER_EPOCH}
#: Metrics of every epoch (``ce``: unweighted cross-entropy, comparable across runs).
METRIC_COLUMNS = ("loss", "accuracy", "ce", "val_loss", "val_accuracy", "val_ce")
#: Columns of ``history.csv``.
HISTORY_COLUMNS = (
    "epoch", "phase", "n_train", "n_clean", "n_artifact", "clean_share", "weight_clean",
    "weight_artifact", "global_batch", "steps", "lr_peak", *METRIC_COLUMNS, "seconds",
)


@dataclass
class RunConfig:
    """What a run trains: stored as ``config.json``, the single source of its loss.

    Attributes
    ----------
    stage : str
        One of :data:`STAGES` (a label; the other fields define the training).
    profile : str
        Profile name (database and run directory).
    model : str
        Network, one of :data:`MODELS`.
    input_shape : tuple of int
        ``(x, y, z, 1)`` in voxels (the profile's grid).
    loss : dict
        Loss configuration for :func:`mriqc_nb.model.losses.make_loss`, except that
        ``{"name": "weighted_ce", "class_weights": "per_epoch"}`` recomputes ``n_max / n_c``
        from each epoch's training subset.
    data : {"full", "prime", "ramp"}
        Training set: every training scan, the priming set, or the ramp schedule.
    epochs : int
        Epochs in all (ramp and fine-tuning included).
    ramp_epochs : int
        Ramp length ``E_R`` (``data="ramp"`` only; 0 otherwise).
    finetune_epochs : int
        Final epochs in which the cyclical LR's peak shrinks geometrically (``n_shrink``).
    ramp_mode : {"size", "share"}
        Ramp schedule (see :mod:`mriqc_nb.data.ramp`).
    batch_size : int
        Batch size per replica.
    base_lr, max_lr : float
        Range of the triangular cyclical LR.
    seed : int
        Seed of the initial weights, data order, flips and dropout masks.
    init_from : str or None
        Stage whose final weights initialise this run (``"prime"``), or None (random).
    flips : bool
        Random flips along each axis during training.
    """

    stage: str
    profile: str
    model: str = "nn008"
    input_shape: tuple = (32, 32, 32, 1)
    loss: dict = field(default_factory=lambda: dict(WEIGHTED_CE))
    data: str = "full"
    epochs: int = 1
    ramp_epochs: int = 0
    finetune_epochs: int = 0
    ramp_mode: str = "size"
    batch_size: int = 4
    base_lr: float = 1e-6
    max_lr: float = 1e-3
    seed: int = 0
    init_from: str | None = None
    flips: bool = True

    def __post_init__(self):
        self.input_shape = tuple(int(s) for s in self.input_shape)
        self.loss = json.loads(json.dumps(dict(self.loss)))  # plain JSON types
        problems = []
        if self.model not in MODELS:
            problems.append(f"model {self.model!r} not in {MODELS}")
        if self.data not in DATA:
            problems.append(f"data {self.data!r} not in {DATA}")
        if self.epochs < 1 or self.batch_size < 1:
            problems.append("epochs and batch_size must be >= 1")
        if self.data == "ramp" and not 1 <= self.ramp_epochs <= self.epochs:
            problems.append(f"a ramp needs 1 <= ramp_epochs <= epochs, got {self.ramp_epochs}")
        if not 0 <= self.finetune_epochs <= self.epochs:
            problems.append(f"need 0 <= finetune_epochs <= epochs, got {self.finetune_epochs}")
        if self.init_from is not None and self.init_from not in STAGES:
            problems.append(f"init_from {self.init_from!r} not in {STAGES}")
        if problems:
            raise ValueError("invalid run configuration: " + "; ".join(problems))

    def to_json(self) -> str:
        """The configuration as indented JSON."""
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        """Inverse of :meth:`to_json`; unknown keys are an error."""
        d = json.loads(text)
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown run configuration keys {sorted(unknown)}")
        return cls(**d)

    def differences(self, other: RunConfig) -> dict:
        """``{field: (self value, other value)}`` for every field that differs."""
        a, b = json.loads(self.to_json()), json.loads(other.to_json())
        return {k: (a[k], b[k]) for k in a if a[k] != b[k]}

    def phase(self, epoch: int) -> str:
        """``"prime"``, ``"ramp"``, ``"full"`` or ``"finetune"`` for (1-based) ``epoch``."""
        if epoch > self.epochs - self.finetune_epochs:
            return "finetune"
        if self.data == "prime":
            return "prime"
        if self.data == "ramp" and epoch <= self.ramp_epochs:
            return "ramp"
        return "full"


def run_name(stage: str, model: str = "nn008") -> str:
    """Directory name of a stage's run: the stage, suffixed with the model unless NN008."""
    return stage if model == "nn008" else f"{stage}_{model}"


class Run:
    """A run directory: its configuration, history and checkpoints (see the module notes).

    Parameters
    ----------
    run_dir : path-like
    """

    def __init__(self, run_dir):
        self.dir = Path(run_dir)

    def __repr__(self) -> str:
        return f"Run({str(self.dir)!r}, last_epoch={self.last_epoch}, done={self.done})"

    @property
    def config(self) -> RunConfig:
        """The stored :class:`RunConfig`."""
        return RunConfig.from_json((self.dir / CONFIG_FILE).read_text())

    @property
    def info(self) -> dict:
        """``run.json``: global batch, replicas, strategy, transfer source."""
        path = self.dir / RUN_FILE
        return json.loads(path.read_text()) if path.exists() else {}

    @property
    def database(self) -> str | None:
        """The database identity the run was trained on (None for runs that predate it)."""
        path = self.dir / DATABASE_FILE
        return path.read_text().strip() if path.exists() else None

    @property
    def history(self) -> pd.DataFrame:
        """``history.csv`` (columns :data:`HISTORY_COLUMNS`; empty before the first epoch)."""
        path = self.dir / HISTORY_FILE
        if not path.exists():
            return pd.DataFrame(columns=list(HISTORY_COLUMNS))
        return pd.read_csv(path)

    @property
    def checkpoints(self) -> list[Path]:
        """Per-epoch weight files (``epoch-NNN.npz``), epoch 0 (the initial weights) first."""
        return sorted((self.dir / CKPT_DIR).glob("epoch-[0-9][0-9][0-9].npz"))

    @property
    def last_epoch(self) -> int | None:
        """Last finished epoch (0: set up, not trained yet), or None before set-up.

        A finished run without an optimizer state (a shipped run, :mod:`mriqc_nb.model.shipped`)
        answers with its last weights file."""
        states = sorted((self.dir / CKPT_DIR).glob("state-[0-9][0-9][0-9].keras"))
        if states:
            return int(states[-1].stem.split("-")[1])
        if self.done and self.checkpoints:
            return int(self.checkpoints[-1].stem.split("-")[1])
        return None

    @property
    def done(self) -> bool:
        """True once the last epoch is saved and the ``DONE`` marker written."""
        return (self.dir / DONE_FILE).exists()

    @property
    def selected_epoch(self) -> int | None:
        """The epoch chosen on validation, when the run chose one (the ``recipe`` stage does:
        ``selected_round`` of ``recipe.json``); else the last finished epoch."""
        path = self.dir / SELECTION_FILE
        if path.exists():
            return int(json.loads(path.read_text())["selected_round"])
        return self.last_epoch

    def checkpoint(self, epoch: int | None = None) -> Path:
        """Weights file of ``epoch`` (default: :attr:`selected_epoch`)."""
        epoch = self.selected_epoch if epoch is None else int(epoch)
        if epoch is None:
            raise FileNotFoundError(f"{self.dir}: no checkpoint yet")
        return self.dir / CKPT_DIR / f"epoch-{epoch:03d}.npz"

    @property
    def state(self) -> Path:
        """Full model + optimizer file of the last finished epoch (what resuming loads)."""
        if self.last_epoch is None:
            raise FileNotFoundError(f"{self.dir}: no saved state yet")
        return self.dir / CKPT_DIR / f"state-{self.last_epoch:03d}.keras"

    def model(self, epoch: int | None = None, compile: bool = False):
        """The model after ``epoch`` (default: :attr:`selected_epoch`, the validation choice
        where the run made one, else the last finished epoch).

        Parameters
        ----------
        epoch : int, optional
            0 gives the initial weights (random or transferred).
        compile : bool
            Load the full saved state instead: the optimizer (its step and moments) and the
            stored loss come back too. Only the last finished epoch has one.
        """
        import keras

        import mriqc_nb.model.losses  # noqa: F401 - registers the custom objects
        import mriqc_nb.model.schedules  # noqa: F401
        from mriqc_nb.model.networks import build, load_weights

        if compile:
            if epoch not in (None, self.last_epoch):
                raise ValueError(f"{self.dir}: only the last epoch ({self.last_epoch}) has "
                                 "an optimizer state; use compile=False")
            return keras.models.load_model(self.state, compile=True)
        config = self.config
        return load_weights(build(config.model, config.input_shape), self.checkpoint(epoch))

    # ------------------------------------------------------------------ writing (training)

    def start(self, config: RunConfig) -> None:
        """Create the folders and write ``config.json`` (once: a run never changes it)."""
        (self.dir / CKPT_DIR).mkdir(parents=True, exist_ok=True)
        if not (self.dir / CONFIG_FILE).exists():
            write_text(self.dir / CONFIG_FILE, config.to_json())

    def write_database(self, ident: str) -> None:
        """Record the identity of the database the run trains on (``database.txt``)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        write_text(self.dir / DATABASE_FILE, f"{ident}\n")

    def write_info(self, info: dict) -> None:
        """Write ``run.json`` (global batch, replicas, strategy, transfer source)."""
        write_json(self.dir / RUN_FILE, info, sort_keys=False)

    def write_history(self, history: pd.DataFrame) -> None:
        """Replace ``history.csv`` with ``history`` (columns :data:`HISTORY_COLUMNS`)."""
        write_text(self.dir / HISTORY_FILE, history[list(HISTORY_COLUMNS)].to_csv(index=False))

    def save_epoch(self, model, epoch: int, chief: bool = True) -> None:
        """Save the weights of ``epoch`` and the full state (model + optimizer), atomically.

        Older states are removed (only the last one is needed to resume). A non-chief worker
        of a multi-worker cluster saves to a scratch folder, as Keras requires.
        """
        from mriqc_nb.model.networks import save_weights

        name = f"state-{epoch:03d}.keras"
        if not chief:
            with tempfile.TemporaryDirectory() as tmp:
                model.save(Path(tmp) / name)
            return
        folder = self.dir / CKPT_DIR
        save_weights(model, self.checkpoint(epoch))
        tmp = folder / f".{name}.tmp.keras"  # Keras wants the suffix: no atomic_open here
        try:
            model.save(tmp)
            os.replace(tmp, folder / name)
        finally:
            tmp.unlink(missing_ok=True)
        for old in folder.glob("state-[0-9][0-9][0-9].keras"):
            if old.name != name:
                old.unlink()

    def finish(self) -> None:
        """Write the ``DONE`` marker (the date) after the last epoch."""
        write_text(self.dir / DONE_FILE, time.strftime("%Y-%m-%d %H:%M:%S\n"))
