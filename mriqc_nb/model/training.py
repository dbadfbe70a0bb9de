"""Training stages, the fit loop, resuming, and the one entry point for trained models.

Stages
------
Every model of the book is trained by one of five *stages*
(:data:`mriqc_nb.model.runs.STAGES`):

``baseline``
    Random initialisation, the full (imbalanced) training set, weighted cross-entropy with
    ``w_c = n_max / n_c``.
``focal``
    As ``baseline`` with focal loss (gamma 2) instead.
``prime``
    Random initialisation, the 50%-clean priming set (every training artifact and as many
    clean scans).
``ramp``
    Data-ramping: the primed weights (every layer, BatchNorm statistics included), a fresh
    optimizer; for epochs ``1 .. E_R`` the training set grows linearly from the priming set
    to the full set (:func:`mriqc_nb.data.ramp.epoch_table`), with class weights recomputed every
    epoch; then ``finetune_epochs`` on the full set while the cyclical LR's peak shrinks
    geometrically (:class:`mriqc_nb.model.schedules.TriangularCyclicalLR`).
``primed_baseline``
    The primed weights, the full set from the first epoch (no ramp), as many epochs and the
    same fine-tuning as ``ramp``: the control that isolates the ramp's effect.

``ramp`` and ``primed_baseline`` train ``prime`` first if it is not there yet. All stages
use Nadam with the paper's triangular cyclical LR (one cycle per epoch, 1e-6 to 1e-3), random
flips, and evaluate on the validation split after every epoch (the training curves; the
paper's stages keep their last epoch, so this only watches). A profile may set
``extra["monitor_valid"]``: a fixed, stratified subset of that many validation scans is
watched instead of all (:func:`monitor_rows`), which changes no weight. A stage's defaults
come from the profile (:func:`stage_config`); keyword overrides change them.

Runs
----
A stage trains into a run directory (:mod:`mriqc_nb.model.runs`: its layout, the
configuration, checkpoints and history). A call on an existing run directory resumes from its
saved state; the loss and everything else come from ``config.json``, and a request whose
configuration differs (another loss, say) is refused with a :class:`ValueError` instead of silently training something else. Transfer
(``init_from``) copies weights only; the new run's own configuration defines its loss.

Determinism: every epoch reseeds Python, NumPy, TensorFlow and the dropout layers from
``(seed, epoch)`` and builds its input pipeline from the same pair, and the saved state holds
the optimizer's, so on CPU an interrupted and resumed run ends with the same weights as an
uninterrupted one.

Scale: the profile's ``batch_size`` is *per replica*; under a ``tf.distribute`` strategy the
global batch is ``batch_size * num_replicas_in_sync`` (:func:`get_strategy`).

TensorFlow is imported only when a model is built, trained or loaded.
"""

from __future__ import annotations

import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from mriqc_nb.data.cache import database_id
from mriqc_nb.data.ramp import epoch_table, priming_set
from mriqc_nb.data.table import split_rows
from mriqc_nb.labels import ARTIFACT, class_weights
from mriqc_nb.model.runs import (CONFIG_FILE, METRIC_COLUMNS, PER_EPOCH, STAGES, Run, RunConfig,
                                 run_name)
from mriqc_nb.model.recipe import recipe_config, recipe_run_config, stored_difference, train_recipe
from mriqc_nb.model.shipped import install as install_shipped
from mriqc_nb.model.shipped import provenance as shipped_provenance
from mriqc_nb.model.shipped import train_here
from mriqc_nb.paths import runs_dir
from mriqc_nb.profiles import Profile, get_profile

__all__ = ["stage_config", "epoch_plan", "get_strategy", "train_stage", "trained_model",
           "monitor_rows"]

FOCAL = {"name": "focal", "gamma": 2.0, "alpha": None}


# --------------------------------------------------------------------------- stages


def stage_config(stage: str, profile: str | Profile, **overrides) -> RunConfig:
    """The default configuration of ``stage`` under ``profile``, with ``overrides``.

    Epochs: ``prime`` ``epochs_prime``; ``baseline`` and ``focal`` ``epochs_baseline`` (the
    last ``epochs_finetune`` of them fine-tuning); ``ramp`` and ``primed_baseline``
    ``ramp_epochs + epochs_finetune``. Batch size (per replica) and seed from the profile.

    Raises
    ------
    ValueError
        For an unknown stage or an invalid resulting configuration.
    """
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; known stages: {', '.join(STAGES)}")
    p = get_profile(profile)
    if stage == "recipe":
        return recipe_run_config(p, recipe_config(p, **overrides))
    ft, eb, er = p.epochs_finetune, p.epochs_baseline, p.ramp_epochs
    per_stage = {
        "baseline": dict(epochs=eb, finetune_epochs=min(ft, eb)),
        "focal": dict(epochs=eb, finetune_epochs=min(ft, eb), loss=dict(FOCAL)),
        "prime": dict(data="prime", epochs=p.epochs_prime),
        "ramp": dict(data="ramp", init_from="prime", epochs=er + ft, ramp_epochs=er,
                     finetune_epochs=ft),
        "primed_baseline": dict(init_from="prime", epochs=er + ft, finetune_epochs=ft),
    }[stage]
    base = dict(stage=stage, profile=p.name, input_shape=(*p.grid, 1),
                batch_size=p.batch_size, seed=p.seed)
    return RunConfig(**{**base, **per_stage, **overrides})


# --------------------------------------------------------------------------- epoch plan


def _subset(config: RunConfig, table: pd.DataFrame, epoch: int) -> pd.DataFrame:
    """Training rows of (1-based) ``epoch``."""
    train = split_rows(table, "train")
    if config.data == "prime":
        return priming_set(train)
    if config.data == "ramp":
        return epoch_table(train, min(epoch, config.ramp_epochs), config.ramp_epochs,
                           mode=config.ramp_mode)
    return train


def _uses_epoch_weights(loss: dict) -> bool:
    return loss.get("name") == "weighted_ce" and loss.get("class_weights") == PER_EPOCH


def _loss_weights(loss: dict, n_clean: int, n_artifact: int) -> tuple[float, float]:
    """(clean, artifact) weights of a loss config for a subset; NaN if it has none."""
    if loss.get("name") != "weighted_ce":
        return (np.nan, np.nan)
    if _uses_epoch_weights(loss):
        return tuple(class_weights([n_clean, n_artifact]).tolist())
    if "class_counts" in loss:
        return tuple(class_weights(loss["class_counts"]).tolist())
    w = loss["class_weights"]
    return (w["0"], w["1"]) if isinstance(w, dict) else (w[0], w[1])


def epoch_plan(config: RunConfig, table: pd.DataFrame, replicas: int = 1) -> pd.DataFrame:
    """Per-epoch schedule of a run, before training (the first columns of ``history.csv``).

    Parameters
    ----------
    config : RunConfig
    table : pandas.DataFrame
        The scan table (the ``train`` rows are used).
    replicas : int
        ``num_replicas_in_sync`` of the strategy; the global batch is
        ``config.batch_size * replicas`` and a last partial batch is dropped.

    Returns
    -------
    pandas.DataFrame
        One row per epoch ``1 .. config.epochs``: ``epoch``, ``phase``, ``n_train``,
        ``n_clean``, ``n_artifact``, ``clean_share``, ``weight_clean``, ``weight_artifact``
        (the class weights the loss uses; NaN if it uses none), ``global_batch``, ``steps``,
        ``lr_peak``.

    Raises
    ------
    ValueError
        If an epoch's training set is smaller than one global batch.
    """
    gb = int(config.batch_size) * int(replicas)
    rows = []
    for e in range(1, config.epochs + 1):
        sub = _subset(config, table, e)
        n_art = int((sub["label"].astype(str) == ARTIFACT).sum())
        n_clean = len(sub) - n_art
        w = _loss_weights(config.loss, n_clean, n_art)
        if len(sub) < gb:
            raise ValueError(f"epoch {e}: {len(sub)} training scans, fewer than one global "
                             f"batch of {gb}")
        rows.append(dict(epoch=e, phase=config.phase(e), n_train=len(sub), n_clean=n_clean,
                         n_artifact=n_art, clean_share=n_clean / len(sub),
                         weight_clean=float(w[0]), weight_artifact=float(w[1]),
                         global_batch=gb, steps=len(sub) // gb))
    plan = pd.DataFrame(rows)
    peaks = _schedule(config, plan["steps"]).peak_lr(plan["epoch"].to_numpy() - 1)
    plan["lr_peak"] = np.asarray(peaks, dtype=float)
    return plan


def _schedule(config: RunConfig, steps):
    from mriqc_nb.model.schedules import TriangularCyclicalLR

    return TriangularCyclicalLR([int(s) for s in steps], base_lr=config.base_lr,
                                max_lr=config.max_lr, epochs=config.epochs,
                                n_shrink=config.finetune_epochs)


# --------------------------------------------------------------------------- distribution


def get_strategy(name=None):
    """A ``tf.distribute`` strategy by name (a Strategy is returned unchanged).

    Parameters
    ----------
    name : {None, "default", "mirrored", "multiworker"} or tf.distribute.Strategy
        ``"default"`` (or None): the current strategy (one device). ``"mirrored"``: every
        GPU of this machine, or every logical CPU device if there is no GPU.
        ``"multiworker"``: ``MultiWorkerMirroredStrategy`` (cluster from ``TF_CONFIG``).
    """
    import tensorflow as tf

    if isinstance(name, tf.distribute.Strategy):
        return name
    if name in (None, "default"):
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}; use default, mirrored or multiworker")


def _is_chief(strategy) -> bool:
    """True unless this is a non-chief worker of a multi-worker cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    spec = resolver.cluster_spec().as_dict()
    if "chief" in spec:
        return resolver.task_type == "chief"
    return resolver.task_type == "worker" and resolver.task_id == 0


# --------------------------------------------------------------------------- training


def _database(profile: Profile, progress: bool) -> pd.DataFrame:
    """The profile's scan table, building its database on first use (idempotent)."""
    from mriqc_nb.data import profile_database

    return profile_database(profile, progress=progress)


def _make_loss(loss: dict):
    from mriqc_nb.model.losses import make_loss

    if _uses_epoch_weights(loss):  # weights set at the start of every epoch
        return make_loss({"name": "weighted_ce", "class_weights": [1.0, 1.0]})
    return make_loss(loss)


def _compile(model, config: RunConfig, steps, optimizer=None) -> None:
    """Compile with the loss of ``config``; a new Nadam + cyclical LR unless ``optimizer``."""
    import keras

    if optimizer is None:
        optimizer = keras.optimizers.Nadam(learning_rate=_schedule(config, steps))
    model.compile(optimizer=optimizer, loss=_make_loss(config.loss),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy"),
                           keras.metrics.CategoricalCrossentropy(name="ce")])


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1)[0] % (2**31 - 1))


def _seed_epoch(model, seed: int) -> None:
    """Seed Python, NumPy, TF and every dropout layer's generator (not saved in checkpoints)."""
    import keras

    keras.utils.set_random_seed(seed)
    states = [v for v in model.variables if v.path.endswith("seed_generator_state")]
    for i, v in enumerate(states):
        v.assign(np.array([seed + i, 0], dtype=v.dtype))


def _initial_weights(config: RunConfig, run_dir: Path, profile, progress, strategy):
    """Last weights of ``config.init_from`` (training that stage if needed) and their file."""
    if config.init_from is None:
        return None, None
    src_dir = run_dir.parent / run_name(config.init_from, config.model)
    src = Run(src_dir)
    if not src.done or src.database != Run(run_dir).database:
        src = train_stage(config.init_from, profile, run_dir=src_dir, progress=progress,
                          strategy=strategy, model=config.model)
    return src.model().get_weights(), str(src.checkpoint())


def _progress_callback(bar):
    import keras

    class _Bar(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            bar.update(1)

    return _Bar()


def train_stage(
    stage: str,
    profile: str | Profile,
    *,
    run_dir=None,
    force: bool = False,
    progress: bool = True,
    strategy=None,
    stop_after_epoch: int | None = None,
    shipped: bool | None = None,
    **overrides,
) -> Run:
    """Train a stage, or resume it, or return it if it is done (or load its shipped run).

    Parameters
    ----------
    stage : str
        One of :data:`STAGES`.
    profile : str or Profile
        Profile (name or object): data, epochs, batch size, seed.
    run_dir : path-like, optional
        Run directory (default ``runs_dir(profile) / run_name(stage, model)``). A stage
        initialised from another (``init_from``) finds it next to ``run_dir``.
    force : bool
        Delete an existing run directory and start again.
    progress : bool
        Show a progress bar (``tqdm.auto``: notebook or terminal).
    strategy : str or tf.distribute.Strategy, optional
        See :func:`get_strategy`. Resuming needs the same global batch size.
    stop_after_epoch : int, optional
        Stop after this epoch is saved (0: set up and save the initial model only);
        simulates an interruption. The next call resumes.
    shipped : bool, optional
        Where the project's checkout ships this stage's finished run for the profile
        (:mod:`mriqc_nb.model.shipped`: ``results/<profile>-runs/<stage>``), trained with this
        configuration on this database, copy it into the default ``run_dir`` instead of
        training (only there, and only without overrides). Default: True unless
        ``$MRIQC_NB_TRAIN_HERE`` is set (a chapter's ``train_here = True``). False also moves
        a shipped run found in ``run_dir`` aside (``<run_dir>.stale-<time>``) and trains.
    **overrides
        Fields of :class:`RunConfig` that differ from :func:`stage_config`.

    Returns
    -------
    Run

    Raises
    ------
    ValueError
        If ``run_dir`` holds a run with another configuration (e.g. another loss), or it
        was started with another global batch size.

    Notes
    -----
    A run trained on another version of the profile's database (another table or other
    simulators: :func:`mriqc_nb.data.cache.database_id`, recorded in the run's
    ``database.txt``) is not reused: it is moved aside to ``<run_dir>.stale-<time>``, with a
    warning, and the stage is trained again. So is a recipe run in the default ``run_dir``
    whose recipe is not the profile's (the profile changed since it was trained; an explicit
    ``run_dir`` of another recipe raises instead).
    """
    p = get_profile(profile)
    config = stage_config(stage, p, **overrides)
    default_dir = run_dir is None
    run_dir = Path(run_dir) if run_dir is not None else runs_dir(p) / run_name(stage, config.model)
    if force and run_dir.exists():
        shutil.rmtree(run_dir)
    table = _database(p, progress)  # first: it can fork workers while TF is unloaded
    ident = database_id(table)
    _set_aside_if_stale(run_dir, ident)
    cfg = recipe_config(p, **overrides) if stage == "recipe" else None
    diff = stored_difference(run_dir, cfg) if cfg is not None and default_dir else {}
    if diff:  # the profile's recipe changed since this run: never answer with the old one
        _set_aside(run_dir, f"holds a recipe run of another configuration ((stored, "
                            f"now): {diff})")
    if shipped is None:
        shipped = not train_here()
    if shipped and default_dir and not overrides and not force and stop_after_epoch is None:
        install_shipped(stage, p, run_dir, ident, config, cfg)  # keeps a run trained here
    elif not shipped and shipped_provenance(run_dir) is not None:
        _set_aside(run_dir, "holds a shipped run, and training here was asked for")
    Run(run_dir).write_database(ident)
    if stage == "recipe":  # the book's own recipe has its own loop (mriqc_nb.model.recipe)
        train_recipe(p, run_dir, config=cfg, progress=progress,
                     table=table, stop_after_round=stop_after_epoch)
        return Run(run_dir)
    run = Run(run_dir)
    if (run_dir / CONFIG_FILE).exists():
        diff = run.config.differences(config)
        if "loss" in diff:
            raise ValueError(f"{run_dir} was trained with loss {diff['loss'][0]}, not "
                             f"{diff['loss'][1]}: a run never changes its loss; use another "
                             "run_dir or force=True")
        if diff:
            raise ValueError(f"{run_dir} holds a run with another configuration "
                             f"(stored, requested): {diff}; use another run_dir or force=True")
    if run.done:
        return run
    return _train(run, config, p, table, progress=progress, strategy=strategy,
                  stop_after_epoch=stop_after_epoch)


def _set_aside_if_stale(run_dir: Path, ident: str) -> None:
    """Move a run trained on another database (or not known to be this one) out of the way."""
    if not run_dir.exists() or not any(run_dir.iterdir()):
        return
    trained_on = Run(run_dir).database
    if trained_on == ident:
        return
    _set_aside(run_dir, f"was trained on another version of the database "
                        f"({trained_on or 'not recorded'}, now {ident})")


def _set_aside(run_dir: Path, why: str) -> None:
    """Rename ``run_dir`` to ``<run_dir>.stale-<time>`` (nothing is deleted) and warn why."""
    stale = run_dir.with_name(f"{run_dir.name}.stale-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir.rename(stale)
    warnings.warn(f"{run_dir} {why}: moved to {stale}; training again", stacklevel=4)


def _train(run: Run, config: RunConfig, profile: Profile, table: pd.DataFrame, *, progress,
           strategy, stop_after_epoch) -> Run:
    import keras
    from tqdm.auto import tqdm

    from mriqc_nb.model.networks import build
    from mriqc_nb.data.pipeline import make_dataset

    strategy = get_strategy(strategy)
    chief = _is_chief(strategy)
    root = table.attrs.get("root")
    plan = epoch_plan(config, table, strategy.num_replicas_in_sync)
    gb = int(plan["global_batch"].iloc[0])
    run.start(config)
    info = run.info
    if info and info["global_batch"] != gb:
        raise ValueError(f"{run.dir} was trained with a global batch of {info['global_batch']}"
                         f", this strategy gives {gb} ({strategy.num_replicas_in_sync} "
                         "replicas): resume it with the same number of replicas")

    last = run.last_epoch
    if last is None:
        weights, source = _initial_weights(config, run.dir, profile, progress, strategy)
        with strategy.scope():
            keras.utils.set_random_seed(config.seed)
            model = build(config.model, config.input_shape)
            if weights is not None:
                model.set_weights(weights)
            _compile(model, config, plan["steps"])
            model.optimizer.build(model.trainable_variables)  # saved state: zeros, step 0
        run.write_info(dict(global_batch=gb, replicas=strategy.num_replicas_in_sync,
                            strategy=type(strategy).__name__, init_checkpoint=source))
        run.save_epoch(model, 0, chief)
        last = 0
    else:
        with strategy.scope():
            model = run.model(compile=True)
            _compile(model, config, plan["steps"], optimizer=model.optimizer)
    history = run.history
    history = history[history["epoch"] <= last]

    valid = monitor_rows(table[table["split"].astype(str) == "valid"],
                         profile.extra.get("monitor_valid", 0), config.seed)
    val_ds = make_dataset(valid, batch_size=gb, training=False, root=root)
    bar = tqdm(total=int(plan["steps"].sum()), initial=int(plan["steps"].iloc[:last].sum()),
               desc=f"{run.dir.name} ({config.profile})", unit="step", disable=not progress)
    callbacks = [_progress_callback(bar)]
    try:
        for epoch in range(last + 1, config.epochs + 1):
            if stop_after_epoch is not None and epoch > stop_after_epoch:
                return run
            row = plan.iloc[epoch - 1].to_dict()
            seed = _epoch_seed(config.seed, epoch)
            _seed_epoch(model, seed)
            if _uses_epoch_weights(config.loss):
                model.loss.set_class_weights([row["weight_clean"], row["weight_artifact"]])
            train_ds = make_dataset(_subset(config, table, epoch), batch_size=gb,
                                    training=True, flips=config.flips, seed=seed,
                                    drop_remainder=True, root=root)
            t0 = time.perf_counter()
            fit = model.fit(train_ds, validation_data=val_ds, epochs=1, verbose=0,
                            shuffle=False, callbacks=callbacks)  # the dataset shuffles
            metrics = {k: float(v[-1]) for k, v in fit.history.items()}
            row.update({k: metrics.get(k, np.nan) for k in METRIC_COLUMNS},
                       seconds=time.perf_counter() - t0)
            history = pd.concat([history, pd.DataFrame([row])], ignore_index=True)
            if chief:
                run.write_history(history)
            run.save_epoch(model, epoch, chief)
            bar.set_postfix(epoch=f"{epoch}/{config.epochs}", loss=f"{row['loss']:.3g}",
                            val_acc=f"{row['val_accuracy']:.3f}")
    finally:
        bar.close()
    if chief:
        run.finish()
    return run


def monitor_rows(valid: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """The validation rows watched after every epoch: ``n`` of them, stratified by label.

    Each class keeps its share of ``valid`` (rounded; at least one scan of a class that is
    present), drawn once from ``seed``, in table order. ``n`` of 0, or at least the number
    of rows, keeps them all. Watching fewer scans makes every epoch cheaper (validation of
    1,600 scans after each of the 30 priming epochs of 120 scans costs more than the
    priming itself) and, since the stages keep their last epoch, changes no weight.
    """
    n = int(n or 0)
    if n <= 0 or n >= len(valid):
        return valid
    rng = np.random.default_rng([int(seed), 41])
    labels = valid["label"].astype(str).to_numpy()
    keep = []
    for lab in sorted(set(labels)):
        idx = np.flatnonzero(labels == lab)
        k = min(len(idx), max(1, int(round(n * len(idx) / len(valid)))))
        keep.append(rng.choice(idx, k, replace=False))
    return valid.iloc[np.sort(np.concatenate(keep))]


def trained_model(stage: str, profile: str | Profile, *, compile: bool = False, **kwargs):
    """The trained model of ``stage`` under ``profile``: trained once, then loaded.

    The first call trains the stage (and ``prime`` before ``ramp`` or ``primed_baseline``)
    under ``paths.runs_dir(profile)``, resuming an interrupted run; later calls only load
    the weights of the last epoch (the paper used the last checkpoint).

    Parameters
    ----------
    stage : str
        One of :data:`STAGES`.
    profile : str or Profile
    compile : bool
        Also restore the optimizer and the loss (to train further).
    **kwargs
        Passed to :func:`train_stage` (``progress``, ``strategy``, ``run_dir``, overrides
        such as ``model="alexnet3d"``).

    Returns
    -------
    keras.Model
    """
    return train_stage(stage, profile, **kwargs).model(compile=compile)
