"""The book's own training recipe: redrawn artifacts, domain randomisation, balanced batches.

The paper's recipes (weighted cross-entropy, focal loss, priming + ramping) see the same 60
training artifacts of the laptop database again and again, at most one in most batches of 8.
This recipe (:func:`train_recipe`) keeps the database as it is (98% clean) and changes what
the network is shown:

1. a *pool* of artifacts drawn fresh from the training artifacts' recipes, on the same
   anatomy, and onto clean training anatomies (:func:`mriqc_nb.data.augment.redraw_table`);
2. batches with a fixed number of artifacts (:func:`mriqc_nb.data.augment.balanced_batches`),
   plain (unweighted) cross-entropy;
3. domain randomisation of every training volume, clean or not (intensity curve, pose,
   noise floor: :func:`mriqc_nb.data.augment.randomise`) and random flips;
4. Nadam with a cosine-decayed learning rate, a fixed number of steps, and the checkpoint
   chosen on the **validation** AUC (evaluated every ``steps_per_round`` steps).

The run directory has the layout of :mod:`mriqc_nb.model.training` (``config.json`` as a
:class:`~mriqc_nb.model.training.RunConfig` with stage ``"recipe"``, ``checkpoints/epoch-NNN.npz``
per round, the last full state, ``history.csv``, ``DONE``), plus ``recipe.json``: this
module's configuration and the selected round. ``Run(dir).model(epoch=selected)`` loads it;
:func:`recipe_model` does that.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mriqc_nb._atomic import write_text
from mriqc_nb.data.table import split_rows
from mriqc_nb.profiles import Profile, get_profile

__all__ = ["RecipeConfig", "recipe_config", "train_recipe", "recipe_model", "RECIPE_FILE",
           "stored_difference"]

from mriqc_nb.model.runs import CKPT_DIR
from mriqc_nb.model.runs import SELECTION_FILE as RECIPE_FILE  # this recipe's own file

#: The recipe's settings, written when a run starts: an unfinished run resumes only with them.
STARTED_FILE = "recipe-started.json"


@dataclass
class RecipeConfig:
    """What :func:`train_recipe` does (stored in ``recipe.json``).

    Attributes
    ----------
    redraws : int
        Fresh redraws per training artifact (same anatomy, kind and severity).
    onto_clean : int
        Extra artifacts drawn onto this many clean training scans.
    fine_share : float
        Share of the pool simulated at twice the resolution and conformed down.
    artifact_share : float
        Artifacts per batch as a share of the batch.
    batch_size : int
    rounds, steps_per_round : int
        Training length: ``rounds * steps_per_round`` steps; validation after each round.
    lr, lr_final : float
        Nadam learning rate, cosine-decayed from ``lr`` to ``lr_final``.
    randomise : bool
        Domain randomisation (:func:`mriqc_nb.data.augment.randomise`) of every training volume.
    pose : str
        Its pose step: ``"linear"`` (rotation and sub-voxel shift, linear interpolation) or
        ``"exact"`` (whole-voxel shifts only, nothing resampled); see ``randomise``.
    valid_clean : int
        Clean validation scans (a fixed random subset) scored after each round, beside every
        validation artifact; 0 means all of them.
    seed : int
    """

    redraws: int = 4
    onto_clean: int = 300
    fine_share: float = 0.0
    artifact_share: float = 0.25
    batch_size: int = 8
    rounds: int = 8
    steps_per_round: int = 100
    lr: float = 1e-3
    lr_final: float = 1e-5
    randomise: bool = True
    pose: str = "linear"
    valid_clean: int = 300
    seed: int = 2023


def recipe_config(profile, **overrides) -> RecipeConfig:
    """The recipe of ``profile`` (its ``extra["recipe"]`` settings and seed), with ``overrides``.

    Raises
    ------
    TypeError
        For an override that is not a field of :class:`RecipeConfig`.
    """
    p = get_profile(profile)
    fields = {**p.extra.get("recipe", {}), "seed": p.seed, **overrides}
    return RecipeConfig(**fields)


def recipe_run_config(profile, cfg: RecipeConfig):
    """The :class:`~mriqc_nb.model.runs.RunConfig` a recipe run stores in ``config.json``."""
    from mriqc_nb.model.runs import RunConfig

    p = get_profile(profile)
    return RunConfig(stage="recipe", profile=p.name, input_shape=(*p.grid, 1),
                     loss={"name": "weighted_ce", "class_weights": [1.0, 1.0]},
                     epochs=cfg.rounds, batch_size=cfg.batch_size, base_lr=cfg.lr_final,
                     max_lr=cfg.lr, seed=cfg.seed)


def _train_set(table, cfg: RecipeConfig, profile, root, workers):
    from mriqc_nb.data.augment import build_redraws, redraw_table

    train = split_rows(table, "train").copy()
    pool = redraw_table(table, cfg.redraws, cfg.seed, onto_clean=cfg.onto_clean,
                        fine_share=cfg.fine_share)
    pool = build_redraws(pool, profile, root, workers=workers)
    train["source_id"] = train["scan_id"].astype(str)
    both = pd.concat([train, pool], ignore_index=True)
    both.attrs["root"] = str(root)
    return both


def _valid_subset(table, n_clean, seed):
    valid = table[table["split"].astype(str) == "valid"]  # no split column: an error
    clean = valid[valid["label"].astype(str) == "clean"]
    if n_clean and n_clean < len(clean):
        clean = clean.iloc[np.sort(np.random.default_rng(seed).choice(len(clean), n_clean,
                                                                       replace=False))]
    return pd.concat([valid[valid["label"].astype(str) == "artifact"], clean])


def _scores(model, table, root) -> np.ndarray:
    """p(artifact) of every row of ``table``, dropout off (the database's cached volumes)."""
    from mriqc_nb.data.cache import load_arrays
    from mriqc_nb.predict import predict_samples

    x, _ = load_arrays(table, root=root)
    return predict_samples(model, x, "deterministic")[0, :, 1]


def _batches(paths, y, cfg: RecipeConfig, seed: int, n_batches: int):
    """Generator of (x, y_onehot) training batches (redraws, randomisation, flips)."""
    from mriqc_nb.data.augment import balanced_batches, randomise

    rng = np.random.default_rng(seed)
    for idx in balanced_batches(y, cfg.batch_size, cfg.artifact_share, seed=seed,
                                n_batches=n_batches):
        xs = []
        for i in idx:
            v = np.load(paths[i]).astype(np.float32)
            if cfg.randomise:
                v = randomise(v, rng, pose=cfg.pose)
            for axis in range(3):
                if rng.random() < 0.5:
                    v = v[(slice(None),) * axis + (slice(None, None, -1),)]
            xs.append(np.ascontiguousarray(v))
        yield np.stack(xs)[..., None], np.eye(2, dtype=np.float32)[y[idx]]


def _config_diff(stored: dict, cfg: RecipeConfig) -> dict:
    """``{field: (stored, requested)}`` where they differ. A field that a stored run lacks
    (one added since it was trained) counts as its default, the only behaviour there was."""
    defaults = asdict(RecipeConfig())
    return {k: (stored.get(k, defaults[k]), v) for k, v in asdict(cfg).items()
            if stored.get(k, defaults[k]) != v}


def stored_difference(run_dir, cfg: RecipeConfig) -> dict:
    """``{field: (stored, requested)}`` between the recipe run in ``run_dir`` (finished or
    started) and ``cfg``; empty when there is no run there, or when it is readable and
    the same. A run whose recipe cannot be read differs in ``{"config": ("unreadable", ...)}``."""
    run_dir = Path(run_dir)
    for name, key in ((RECIPE_FILE, "config"), (STARTED_FILE, None)):
        f = run_dir / name
        if not f.exists():
            continue
        try:
            stored = json.loads(f.read_text())
            stored = stored[key] if key else stored
            return _config_diff(dict(stored), cfg)
        except (OSError, ValueError, KeyError, TypeError):
            return {"config": ("unreadable", "readable")}
    return {}


def _check_same_recipe(run_dir: Path, cfg: RecipeConfig) -> None:
    """Raise if the finished run in ``run_dir`` was trained with another recipe."""
    try:
        stored = json.loads((run_dir / RECIPE_FILE).read_text())["config"]
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{run_dir}: a finished recipe run without a readable "
                         f"{RECIPE_FILE} ({exc}); use another run_dir or force=True") from exc
    diff = _config_diff(stored, cfg)
    if diff:
        raise ValueError(f"{run_dir} holds a recipe run with another configuration "
                         f"(stored, requested): {diff}; use another run_dir or force=True")


def _dropout_file(run_dir: Path, r: int) -> Path:
    return Path(run_dir) / CKPT_DIR / f"dropout-{r:03d}.json"


def _dropout_generators(model) -> list:
    """The dropout layers' generator-state variables, in the network's order (their names
    are made unique per process, ``seed_generator_2/...``, so they are matched by order)."""
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def _save_dropout_state(model, run_dir: Path, r: int) -> None:
    """The dropout layers' generator states after round ``r``: a saved Keras model does not
    restore them, and without them a resumed run would drop other units than an uninterrupted
    one. Written before the round's state; older rounds' files are removed only after it
    (:func:`_keep_dropout_state`), so the state on disk always has its file."""
    write_text(_dropout_file(run_dir, r),
               json.dumps([np.asarray(v).tolist() for v in _dropout_generators(model)]))


def _keep_dropout_state(run_dir: Path, r: int) -> None:
    """Remove the dropout files of rounds before ``r`` (whose state is saved)."""
    for old in _dropout_file(run_dir, r).parent.glob("dropout-[0-9][0-9][0-9].json"):
        if old.name != _dropout_file(run_dir, r).name:
            old.unlink()


def _load_dropout_state(model, run_dir: Path, r: int) -> None:
    path = _dropout_file(run_dir, r)
    try:
        states = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"{run_dir}: cannot resume after round {r}: {path.name} is missing "
                           f"or unreadable ({exc}); delete the folder to train again") from exc
    variables = _dropout_generators(model)
    if len(states) != len(variables):
        raise RuntimeError(f"{run_dir}: {path.name} holds {len(states)} dropout generator "
                           f"states, the network has {len(variables)}")
    for v, state in zip(variables, states):
        v.assign(np.asarray(state, dtype=v.dtype))


def train_recipe(profile: str | Profile, run_dir, *, config: RecipeConfig | None = None,
                 table: pd.DataFrame | None = None, workers: int = 1,
                 progress: bool = True, stop_after_round: int | None = None) -> Path:
    """Train NN008 with the recipe; return the run directory (see the module notes).

    Parameters
    ----------
    profile : str or Profile
        Grid, database and seed.
    run_dir : path-like
        Where the run is written. A finished run of the same configuration is returned as it
        is; one of another configuration raises ``ValueError`` (a changed profile recipe is
        never answered with a stale model).
    config : RecipeConfig, optional
    table : pandas.DataFrame, optional
        A built scan table (default: the profile's database, built on first use).
    workers : int
        Processes that make the redraw pool.
    progress : bool
        Print one line per round.
    stop_after_round : int, optional
        Return after this round, unfinished (to test resuming).

    Returns
    -------
    pathlib.Path
        ``run_dir``; ``recipe.json`` holds ``selected_round`` and the per-round validation AUC.

    Notes
    -----
    Resumable: after every round the full state (weights, Nadam's slots and step, the
    dropout layers' generator states) is saved (:meth:`Run.save_epoch`), and each round's
    batches depend only on ``(seed, round)``, so an interrupted run (a closed laptop, a Colab
    session that resets) continues from its last finished round and ends as an uninterrupted
    one would.
    """
    p = get_profile(profile)
    cfg = config or recipe_config(p)
    run_dir = Path(run_dir)
    if (run_dir / "DONE").exists():
        _check_same_recipe(run_dir, cfg)
        return run_dir
    if table is None:
        from mriqc_nb.data import profile_database

        table = profile_database(p, progress=progress)
    root = Path(table.attrs["root"])
    t0 = time.perf_counter()
    train = _train_set(table, cfg, p, root, workers)  # before TF: may fork workers
    t_pool = time.perf_counter() - t0

    import keras
    import tensorflow as tf

    from mriqc_nb.data.cache import cache_paths
    from mriqc_nb.diagnostics import _artifact_ce
    from mriqc_nb.labels import to_y
    from mriqc_nb.metrics import safe_auc
    from mriqc_nb.model.networks import build_nn008
    from mriqc_nb.model.runs import Run

    valid = _valid_subset(table, cfg.valid_clean, cfg.seed)
    yv = to_y(valid["label"])
    train_rows = split_rows(table, "train")
    stored = train_rows[train_rows["label"].astype(str) == "artifact"]  # memorised or learnt?
    paths, y = cache_paths(train, root), to_y(train["label"])
    run = Run(run_dir)
    started = run_dir / STARTED_FILE
    if started.exists():  # an unfinished run resumes only with the same recipe
        first = json.loads(started.read_text())
        diff = _config_diff(first, cfg)
        if diff:
            raise ValueError(f"{run_dir} holds an unfinished recipe run with another "
                             f"configuration (stored, requested): {diff}; use another run_dir "
                             "or force=True")
    run.start(recipe_run_config(p, cfg))
    if not started.exists():
        write_text(started, json.dumps(asdict(cfg), indent=2))
    total = cfg.rounds * cfg.steps_per_round
    lr = keras.optimizers.schedules.CosineDecay(cfg.lr, total, alpha=cfg.lr_final / cfg.lr)
    last = run.last_epoch
    if last is None:
        keras.utils.set_random_seed(cfg.seed)
        model = build_nn008((*p.grid, 1))
        model.compile(optimizer=keras.optimizers.Nadam(learning_rate=lr),
                      loss=keras.losses.CategoricalCrossentropy(),
                      metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
        model.optimizer.build(model.trainable_variables)  # saved state: zeros, step 0
        _save_dropout_state(model, run_dir, 0)
        run.save_epoch(model, 0)
        last, rows = 0, []
    else:  # resume: the state of the last finished round, and its rounds' history
        model = keras.models.load_model(run.state, compile=True)
        _load_dropout_state(model, run_dir, last)
        done = run.history  # empty before the first round
        rows = done[done["epoch"] <= last].to_dict("records")
        if len(rows) != last:
            raise RuntimeError(f"{run_dir}: the saved state is of round {last} but history.csv "
                               f"has {len(rows)} of its rounds; train it again (delete the folder)")
        if progress and last:
            print(f"resuming {run_dir.name} after round {last} of {cfg.rounds}", flush=True)
    spec = (tf.TensorSpec((None, *p.grid, 1), tf.float32), tf.TensorSpec((None, 2), tf.float32))
    for r in range(last + 1, cfg.rounds + 1):
        if stop_after_round is not None and r > stop_after_round:
            return run_dir
        seed = int(np.random.SeedSequence([cfg.seed, r]).generate_state(1)[0])
        ds = tf.data.Dataset.from_generator(
            lambda s=seed: _batches(paths, y, cfg, s, cfg.steps_per_round),
            output_signature=spec).prefetch(2)
        t = time.perf_counter()
        fit = model.fit(ds, epochs=1, steps_per_epoch=cfg.steps_per_round, verbose=0,
                        shuffle=False)
        t_train = time.perf_counter() - t
        sv = _scores(model, valid, root)
        sa = _scores(model, stored, root)
        rows.append(dict(epoch=r, steps=cfg.steps_per_round, loss=fit.history["loss"][-1],
                         accuracy=fit.history["accuracy"][-1], val_auc=safe_auc(yv, sv),
                         val_ce=float(-np.mean(np.log(np.clip(np.where(yv == 1, sv, 1 - sv),
                                                                 1e-7, 1)))),
                         val_ce_artifact=_artifact_ce(sv[yv == 1]),
                         train_ce_artifact=_artifact_ce(sa),
                         lr_end=float(lr(r * cfg.steps_per_round)),
                         seconds=t_train, seconds_valid=time.perf_counter() - t - t_train))
        write_text(run_dir / "history.csv", pd.DataFrame(rows).to_csv(index=False))
        _save_dropout_state(model, run_dir, r)
        run.save_epoch(model, r)  # last: a state never runs ahead of its history
        _keep_dropout_state(run_dir, r)
        if progress:
            q = rows[-1]
            print(f"round {r}/{cfg.rounds}: loss {q['loss']:.3f} val_auc {q['val_auc']:.3f} "
                  f"({q['seconds']:.0f}+{q['seconds_valid']:.0f} s)", flush=True)
    hist = pd.DataFrame(rows)
    best = int(hist.loc[hist["val_auc"].fillna(-1).idxmax(), "epoch"])  # first maximum
    write_text(run_dir / RECIPE_FILE, json.dumps(dict(
        config=asdict(cfg), selected_round=best, pool_seconds=t_pool,
        n_train=len(train), n_train_artifacts=int(y.sum()),
        n_valid_scored=len(valid), val_auc=hist["val_auc"].tolist()), indent=2))
    run.finish()
    return run_dir


def recipe_model(run_dir):
    """The recipe's model at its validation-selected round (a ``keras.Model``)."""
    from mriqc_nb.model.runs import Run

    return Run(run_dir).model()  # Run.selected_epoch reads recipe.json
