"""Training stages: resume equality, transfer, the loss trap, MirroredStrategy, caching, CLI.

One tiny database (50 scans of 32^3 voxels at 80% clean: 30 training scans, 6 of them
artifacts) is built once for the module under a temporary ``MRIQC_NB_HOME``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mriqc_nb.model import training
from mriqc_nb.data import build_database, make_table
from mriqc_nb.paths import database_dir, runs_dir
from mriqc_nb.profiles import get_profile
from mriqc_nb.data.ramp import ramp_sizes
from mriqc_nb.model.runs import Run, RunConfig
from mriqc_nb.model.training import stage_config, train_stage, trained_model

TINY = replace(get_profile("smoke"), name="tiny", n_scans=50, clean_share=0.8, n_subtle=0,
               epochs_prime=2, ramp_epochs=2, epochs_finetune=1, epochs_baseline=3,
               batch_size=4, seed=11)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MRIQC_NB_HOME", str(root))
        build_database(TINY, database_dir(TINY), workers=1, progress=False)
        yield root


@pytest.fixture(scope="module")
def baseline(home):
    """The tiny profile's baseline, 3 epochs, uninterrupted, in the default run directory."""
    return train_stage("baseline", TINY, progress=False)


def _weights(model):
    return [np.asarray(w) for w in model.get_weights()]


# --------------------------------------------------------------------------- no TensorFlow


def test_stage_configs_follow_the_profile_and_round_trip_through_json():
    ramp = stage_config("ramp", TINY)
    assert (ramp.data, ramp.init_from, ramp.epochs, ramp.ramp_epochs, ramp.finetune_epochs) == (
        "ramp", "prime", 3, 2, 1)
    assert [ramp.phase(e) for e in (1, 2, 3)] == ["ramp", "ramp", "finetune"]
    assert stage_config("focal", TINY).loss == training.FOCAL
    assert stage_config("prime", TINY).phase(2) == "prime"
    assert stage_config("primed_baseline", TINY).epochs == ramp.epochs
    base = stage_config("baseline", TINY, batch_size=2)
    assert base.batch_size == 2 and base.input_shape == (32, 32, 32, 1) and base.seed == 11
    back = RunConfig.from_json(base.to_json())
    assert back == base and not back.differences(base)
    with pytest.raises(ValueError, match="unknown stage"):
        stage_config("warmup", TINY)
    with pytest.raises(ValueError, match="ramp_epochs"):
        stage_config("ramp", TINY, ramp_epochs=9)


def test_epoch_plan_of_the_ramp_grows_the_set_and_recomputes_class_weights():
    table = make_table(TINY)  # counts only: no volumes needed
    plan = training.epoch_plan(stage_config("ramp", TINY), table, replicas=2)
    n_art, n_full = 6, 30
    assert plan["n_train"].tolist() == ramp_sizes(2 * n_art, n_full, 2)[1:].tolist() + [n_full]
    assert (plan["n_artifact"] == n_art).all()
    np.testing.assert_allclose(plan["weight_artifact"], plan["n_clean"] / n_art)
    assert (plan["global_batch"] == 8).all() and (plan["steps"] == plan["n_train"] // 8).all()
    assert plan["lr_peak"].iloc[-1] < plan["lr_peak"].iloc[0] == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="fewer than one global batch"):
        training.epoch_plan(stage_config("prime", TINY, batch_size=13), table)


# --------------------------------------------------------------------------- training


def test_interrupted_and_resumed_run_ends_with_the_same_weights(home, baseline, tmp_path):
    assert baseline.done and baseline.last_epoch == 3 and len(baseline.checkpoints) == 4
    assert [p.name for p in (baseline.dir / "checkpoints").glob("*.keras")] == ["state-003.keras"]
    b = tmp_path / "b"
    run = train_stage("baseline", TINY, run_dir=b, stop_after_epoch=1, progress=False)
    assert (run.last_epoch, run.done, len(run.history)) == (1, False, 1)
    run = train_stage("baseline", TINY, run_dir=b, progress=False)  # a new call resumes
    assert run.done and run.history["epoch"].tolist() == [1, 2, 3]
    for wa, wb in zip(_weights(baseline.model()), _weights(run.model())):
        np.testing.assert_allclose(wa, wb, rtol=0, atol=1e-6)
    cols = ["n_train", "weight_artifact", "steps", "loss", "val_loss", "val_accuracy"]
    np.testing.assert_allclose(baseline.history[cols], run.history[cols], rtol=1e-5)
    assert int(run.model(compile=True).optimizer.iterations) == run.history["steps"].sum()


def test_ramp_starts_from_the_primed_weights_with_a_fresh_optimizer(home):
    run = train_stage("ramp", TINY, progress=False)
    prime = Run(runs_dir(TINY) / "prime")
    assert prime.done and run.done
    assert run.info["init_checkpoint"] == str(prime.checkpoint())
    primed, start = prime.model(), run.model(0)  # run.model(0): the weights before training
    names = [w.path for w in primed.weights]
    assert any("moving_variance" in n for n in names)
    for n, wp, w0 in zip(names, _weights(primed), _weights(start)):
        np.testing.assert_array_equal(wp, w0, err_msg=n)  # BatchNorm statistics included
    moving = [w for n, w in zip(names, _weights(primed)) if n.endswith("moving_variance")]
    assert not all(np.allclose(v, 1.0) for v in moving), "priming left BN statistics untouched"
    h = run.history
    # a fresh optimizer: its step counts the ramp's steps only, not the priming's too
    final = run.model(compile=True)
    assert int(final.optimizer.iterations) == h["steps"].sum()
    assert int(prime.model(compile=True).optimizer.iterations) == prime.history["steps"].sum() > 0
    assert final.loss.name == "weighted_ce"  # the ramp's own loss

    n_art = int(prime.history["n_artifact"].iloc[0])
    n_prime, n_full = int(prime.history["n_train"].iloc[0]), 30
    assert h["n_train"].tolist() == ramp_sizes(n_prime, n_full, 2)[1:].tolist() + [n_full]
    assert h["phase"].tolist() == ["ramp", "ramp", "finetune"]
    np.testing.assert_allclose(h["weight_artifact"], (h["n_train"] - n_art) / n_art)
    assert h["weight_artifact"].is_monotonic_increasing and h["weight_artifact"].nunique() == 2
    assert np.isfinite(h[["loss", "val_loss", "val_accuracy"]].to_numpy()).all()
    assert not np.array_equal(_weights(run.model())[0], _weights(primed)[0])


def test_a_run_never_changes_its_loss(home, tmp_path):
    r = tmp_path / "focal"
    run = train_stage("focal", TINY, run_dir=r, stop_after_epoch=0, progress=False)
    assert run.last_epoch == 0 and not run.done
    stored = json.loads((r / "config.json").read_text())
    assert stored["loss"] == training.FOCAL and run.config == stage_config("focal", TINY)
    with pytest.raises(ValueError, match="loss") as err:
        train_stage("focal", TINY, run_dir=r, loss={"name": "ce"}, progress=False)
    assert str(r) in str(err.value)
    with pytest.raises(ValueError, match="epochs"):
        train_stage("focal", TINY, run_dir=r, epochs=5, progress=False)
    assert run.model(0, compile=True).loss.name == "focal"


@pytest.fixture(scope="module")
def tiny_recipe(home, tmp_path_factory):
    return train_stage("recipe", TINY, run_dir=tmp_path_factory.mktemp("r") / "recipe",
                       progress=False)


def test_a_finished_recipe_run_is_reused_only_for_the_same_recipe(tiny_recipe):
    r = tiny_recipe.dir
    assert tiny_recipe.done
    stamp = (r / "DONE").stat().st_mtime_ns
    assert train_stage("recipe", TINY, run_dir=r, progress=False).done  # same recipe: reused
    assert (r / "DONE").stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="onto_clean") as err:
        train_stage("recipe", TINY, run_dir=r, onto_clean=3, progress=False)
    assert str(r) in str(err.value)


def test_a_recipe_run_of_an_older_profile_recipe_is_set_aside_in_the_default_folder(home):
    # the book asks for the profile's recipe in the default folder; a reader whose cache holds
    # a run of an earlier recipe (the profile changed) gets the new one trained, not an error,
    # and the old run is kept beside it
    from mriqc_nb.model.recipe import stored_difference

    first = train_stage("recipe", TINY, stop_after_epoch=0, progress=False)
    folder = first.dir
    assert stored_difference(folder, training.recipe_config(TINY)) == {}
    assert stored_difference(folder, training.recipe_config(TINY, onto_clean=3)) \
        == {"onto_clean": (training.recipe_config(TINY).onto_clean, 3)}
    with pytest.warns(UserWarning, match="another configuration.*onto_clean.*moved to"):
        again = train_stage("recipe", TINY, onto_clean=3, stop_after_epoch=0, progress=False)
    assert again.dir == folder and stored_difference(
        folder, training.recipe_config(TINY, onto_clean=3)) == {}
    stale = list(folder.parent.glob(f"{folder.name}.stale-*"))
    assert len(stale) == 1 and stored_difference(stale[0], training.recipe_config(TINY)) == {}
    (folder / "recipe-started.json").write_text("{not json")
    assert stored_difference(folder, training.recipe_config(TINY)) \
        == {"config": ("unreadable", "readable")}


def test_an_interrupted_recipe_resumes_and_ends_as_an_uninterrupted_one(tiny_recipe, tmp_path):
    r = tmp_path / "recipe"
    run = train_stage("recipe", TINY, run_dir=r, stop_after_epoch=1, progress=False)
    assert (run.last_epoch, run.done, len(run.history)) == (1, False, 1)
    with pytest.raises(ValueError, match="unfinished recipe run .*onto_clean"):
        train_stage("recipe", TINY, run_dir=r, onto_clean=3, progress=False)
    run = train_stage("recipe", TINY, run_dir=r, progress=False)  # a new call resumes
    assert run.done and run.history["epoch"].tolist() == [1, 2]
    cols = ["loss", "accuracy", "val_auc", "val_ce"]
    np.testing.assert_allclose(tiny_recipe.history[cols], run.history[cols], rtol=1e-5)
    for wa, wb in zip(_weights(tiny_recipe.model()), _weights(run.model())):
        np.testing.assert_allclose(wa, wb, rtol=0, atol=1e-6)
    assert run.selected_epoch == tiny_recipe.selected_epoch
    # only the last state and its dropout generators are kept
    assert sorted(p.name for p in (r / "checkpoints").glob("*.json")) == ["dropout-002.json"]
    assert sorted(p.name for p in (r / "checkpoints").glob("*.keras")) == ["state-002.keras"]


def test_development_set_rates_per_kind_on_validation_anatomy(home, tiny_recipe):
    from mriqc_nb.data import profile_database
    from mriqc_nb.diagnostics import _wilson, development_sensitivity
    from mriqc_nb.predict import run_predictions

    table = profile_database(TINY, progress=False)
    valid, _ = run_predictions(tiny_recipe, "valid", "mc", T=4, seed=0, profile=TINY)
    dev = development_sensitivity(tiny_recipe, table, valid, 0.5, profile=TINY, per_kind=3,
                                  T=4)
    kinds = sorted(table.loc[(table["split"] == "valid") & (table["label"] == "artifact"),
                             "artifact_kind"].unique())
    assert dev["kind"].tolist() == [*kinds, "clean", "all"]
    per = dev.set_index("kind")
    assert (per.loc[kinds, "n"] == 3).all() and per.loc["all", "n"] == 3 * len(kinds)
    assert per.loc["clean", "n"] == int((valid["y"] == 0).sum())
    assert ((dev["rate_low"] <= dev["rate"]) & (dev["rate"] <= dev["rate_high"])).all()
    assert per.loc[kinds, "auc"].between(0, 1).all()
    again = development_sensitivity(tiny_recipe, table, valid, 0.5, profile=TINY, per_kind=3,
                                    T=4)
    np.testing.assert_allclose(again["auc"], dev["auc"], atol=1e-6)
    everything = development_sensitivity(tiny_recipe, table, valid, 0.0, profile=TINY,
                                         per_kind=3, T=4)
    assert (everything["rate"] == 1).all()
    np.testing.assert_allclose(_wilson(0, 10), (0.0, 0.2775), atol=1e-4)
    np.testing.assert_allclose(_wilson(5, 10), (0.2366, 0.7634), atol=1e-4)


def test_a_run_of_another_database_version_is_set_aside_not_reused(home, tmp_path,
                                                                   monkeypatch):
    r = tmp_path / "baseline"
    run = train_stage("baseline", TINY, run_dir=r, stop_after_epoch=0, progress=False)
    recorded = run.database
    assert recorded and recorded == training.database_id(training._database(TINY, False))
    (r / "DONE").write_text("pretend it finished\n")
    assert train_stage("baseline", TINY, run_dir=r, progress=False).done  # same database: reused
    # the simulators (or the table) change: the done run must not be reused
    monkeypatch.setattr(training, "database_id", lambda table: "another-version")
    with pytest.warns(UserWarning, match="another version of the database"):
        again = train_stage("baseline", TINY, run_dir=r, stop_after_epoch=0, progress=False)
    assert not again.done and again.database == "another-version" and again.last_epoch == 0
    stale = list(tmp_path.glob("baseline.stale-*"))
    assert len(stale) == 1 and (stale[0] / "DONE").exists()
    assert Run(stale[0]).database == recorded


def test_trained_model_trains_once_then_loads_the_last_checkpoint(baseline, monkeypatch):
    files = [baseline.dir / "history.csv", baseline.state, *baseline.checkpoints]
    stamps = {p: p.stat().st_mtime_ns for p in files}

    def no_training(*args, **kwargs):
        raise AssertionError("trained_model() trained again")

    monkeypatch.setattr(training, "_train", no_training)
    model = trained_model("baseline", TINY, progress=False)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    x = np.random.default_rng(0).standard_normal((3, 32, 32, 32, 1)).astype("float32")
    import keras

    last = keras.models.load_model(baseline.dir / "checkpoints" / "state-003.keras")
    np.testing.assert_array_equal(model.predict(x, verbose=0), last.predict(x, verbose=0))
    with pytest.raises(ValueError, match="loss"):
        trained_model("baseline", TINY, loss=training.FOCAL, progress=False)


_MIRRORED = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path.insert(0, sys.argv[2])
from test_train import TINY
from mriqc_nb.model.training import get_strategy, train_stage
strategy = get_strategy("mirrored")
run = train_stage("baseline", TINY, run_dir=sys.argv[1], strategy=strategy, epochs=2,
                  stop_after_epoch=1, progress=False)
print("RESULT", json.dumps({"replicas": strategy.num_replicas_in_sync, **run.info,
                            "history": run.history.to_dict("records")}))
"""


def test_mirrored_strategy_on_two_cpu_devices_scales_the_global_batch(home, tmp_path):
    r = tmp_path / "mirrored"
    out = subprocess.run([sys.executable, "-c", _MIRRORED, str(r), str(Path(__file__).parent)],
                         capture_output=True, text=True, env=dict(os.environ), timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.split("RESULT", 1)[1])
    assert result["replicas"] == 2 and result["strategy"] == "MirroredStrategy"
    (row,) = result["history"]
    assert row["global_batch"] == result["global_batch"] == 2 * TINY.batch_size
    assert row["steps"] == 30 // 8 and np.isfinite([row["loss"], row["val_loss"]]).all()
    # resuming on one device would change the batch and the LR schedule: refused
    with pytest.raises(ValueError, match="global batch"):
        train_stage("baseline", TINY, run_dir=r, epochs=2, progress=False)


def test_cli_train_calls_train_stage(monkeypatch, capsys, tmp_path):
    from mriqc_nb.cli import main

    calls = []
    run = Run(tmp_path)
    (tmp_path / "history.csv").write_text("epoch,val_loss,val_accuracy\n1,0.5,0.9\n")

    def fake(stage, profile, **kw):
        calls.append((stage, profile, kw))
        return run

    monkeypatch.setattr(training, "train_stage", fake)
    assert main(["train", "--stage", "ramp", "--profile", "smoke", "-q"]) == 0
    assert calls == [("ramp", "smoke", dict(force=False, progress=False, strategy="default",
                                            model="nn008", shipped=False))]
    assert "val_accuracy 0.900" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["train", "--stage", "warmup"])

    def refuse(*args, **kw):
        raise ValueError("run dir X was trained with another loss")

    monkeypatch.setattr(training, "train_stage", refuse)
    assert main(["train", "--stage", "prime", "--profile", "smoke"]) == 2
    assert "another loss" in capsys.readouterr().err


def test_monitor_rows_is_a_fixed_stratified_subset_of_validation():
    """The scans watched after every epoch: the class shares of validation, drawn once from
    the seed, never outside validation; 0 or a large n keeps them all."""
    import pandas as pd

    from mriqc_nb.model.training import monitor_rows
    from mriqc_nb.profiles import get_profile

    valid = pd.DataFrame({"scan_id": [f"v{i:04d}" for i in range(1600)],
                          "label": ["artifact" if i % 50 == 7 else "clean" for i in range(1600)],
                          "split": "valid"})
    sub = monitor_rows(valid, 400, seed=3)
    assert len(sub) == 400 and sub.index.is_monotonic_increasing
    assert (sub["label"] == "artifact").sum() == 8  # 2% of 400, as in all of validation
    assert set(sub["scan_id"]) <= set(valid["scan_id"])
    assert sub.equals(monitor_rows(valid, 400, seed=3))
    assert not sub.equals(monitor_rows(valid, 400, seed=4))
    few = monitor_rows(valid, 20, seed=0)  # a class present keeps at least one scan
    assert (few["label"] == "artifact").sum() >= 1
    assert monitor_rows(valid, 0, seed=0) is valid and monitor_rows(valid, 5000, seed=0) is valid
    assert get_profile("smoke").extra.get("monitor_valid", 0) == 0  # CI watches all
    assert 0 < get_profile("laptop").extra["monitor_valid"] < 1600


def test_watching_fewer_validation_scans_changes_no_weight(home, baseline, tmp_path):
    """monitor_valid only changes what the history's val_* columns are computed on."""
    watched = replace(TINY, extra={**TINY.extra, "monitor_valid": 4})
    run = train_stage("baseline", watched, run_dir=tmp_path / "w", progress=False)
    for wa, wb in zip(_weights(baseline.model()), _weights(run.model())):
        np.testing.assert_allclose(wa, wb, rtol=0, atol=1e-6)
    np.testing.assert_allclose(baseline.history["loss"], run.history["loss"], rtol=1e-5)
    assert not np.allclose(baseline.history["val_loss"], run.history["val_loss"])  # 4 scans


# --------------------------------------------------------------------------- shipped runs


@pytest.fixture
def shipped(home, baseline, tiny_recipe, tmp_path, monkeypatch):
    """The tiny baseline and recipe exported as shipped runs; an empty runs folder; training
    forbidden (a test that expects training patches ``_train`` itself)."""
    from mriqc_nb.model import shipped as ship

    table = training._database(TINY, False)
    root = tmp_path / "ship"
    for run in (baseline, tiny_recipe):
        ship.export(run.dir, root / "tiny-runs" / run.config.stage, table=table, note="test")
    monkeypatch.setenv(ship.SHIPPED_DIR_ENV, str(root))
    monkeypatch.delenv(ship.TRAIN_HERE_ENV, raising=False)
    monkeypatch.setattr(training, "runs_dir", lambda p: tmp_path / "runs")

    def no_training(*args, **kwargs):
        raise AssertionError("trained although a shipped run matches")

    monkeypatch.setattr(training, "_train", no_training)
    return root / "tiny-runs"


def test_a_shipped_run_is_loaded_instead_of_trained_with_the_same_weights(shipped, baseline,
                                                                         tiny_recipe, tmp_path):
    from mriqc_nb import diagnostics
    from mriqc_nb.model import shipped as ship

    meta = json.loads((shipped / "baseline" / ship.SHIPPED_FILE).read_text())
    assert meta["epoch"] == 3 and meta["seed"] == TINY.seed and meta["note"] == "test"
    assert sorted(meta["files"]) == sorted([
        "DONE", "artifact_ce.csv", "checkpoints/epoch-003.npz", "config.json",
        "database.txt", "history.csv", "run.json"])
    run = train_stage("baseline", TINY, progress=False)
    assert run.dir == tmp_path / "runs" / "baseline" and run.done
    assert [p.name for p in run.checkpoints] == ["epoch-003.npz"]  # nor any optimizer state
    assert run.last_epoch == run.selected_epoch == 3
    for a, b in zip(_weights(run.model()), _weights(baseline.model())):
        np.testing.assert_array_equal(a, b)
    assert run.history.equals(baseline.history) and run.config == baseline.config
    assert "loaded" in ship.describe(run.dir) and "not changed" in ship.describe(run.dir)
    assert "trained here" in ship.describe(baseline.dir)
    # the per-epoch memorisation the book reads comes with it, measured on every epoch
    table = training._database(TINY, False)
    full = diagnostics.artifact_ce_by_epoch(baseline, table)
    assert list(full.epoch) == [1, 2, 3]
    pd_equal = diagnostics.artifact_ce_by_epoch(run, table)
    assert pd_equal.equals(full)
    with pytest.raises(FileNotFoundError, match="epoch"):
        diagnostics.artifact_ce_by_epoch(run, table, epochs=[4])
    # a second call finds it done: nothing is copied again
    stamp = (run.dir / "DONE").stat().st_mtime_ns
    assert train_stage("baseline", TINY, progress=False).dir == run.dir
    assert (run.dir / "DONE").stat().st_mtime_ns == stamp
    # the recipe: the round it chose on validation
    rec = train_stage("recipe", TINY, progress=False)
    assert rec.selected_epoch == tiny_recipe.selected_epoch and len(rec.checkpoints) == 1
    for a, b in zip(_weights(rec.model()), _weights(tiny_recipe.model())):
        np.testing.assert_array_equal(a, b)


def test_a_shipped_run_is_not_used_for_another_database_configuration_or_on_request(
        shipped, monkeypatch, tmp_path):
    trained = []
    monkeypatch.setattr(training, "_train", lambda run, *a, **k: trained.append(run) or run)
    monkeypatch.setattr(training, "database_id", lambda table: "another-version")
    with pytest.warns(UserWarning, match="another version of the tiny database"):
        run = train_stage("baseline", TINY, progress=False)
    assert len(trained) == 1 and not (tmp_path / "runs" / "baseline" / "SHIPPED.json").exists()
    run.finish()  # trained here: later calls load it without a word about the shipped run
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert train_stage("baseline", TINY, progress=False).done
    assert len(trained) == 1
    monkeypatch.undo()  # the real database id, the real runs folder... set the rest again
    monkeypatch.setenv("MRIQC_NB_SHIPPED_DIR", str(shipped.parent))
    monkeypatch.setattr(training, "runs_dir", lambda p: tmp_path / "runs2")
    monkeypatch.setattr(training, "_train", lambda run, *a, **k: trained.append(run) or run)
    with pytest.warns(UserWarning, match="another configuration"):
        train_stage("baseline", replace(TINY, epochs_baseline=4), progress=False)
    assert len(trained) == 2
    train_stage("baseline", TINY, epochs=2, progress=False)  # an override: never shipped
    assert len(trained) == 3
    monkeypatch.setenv("MRIQC_NB_TRAIN_HERE", "1")  # a chapter's train_here = True
    train_stage("baseline", TINY, progress=False)
    assert len(trained) == 4
    assert not list((tmp_path / "runs2").glob("*/SHIPPED.json"))
    # a shipped run installed by an earlier build is not taken for one trained here
    monkeypatch.delenv("MRIQC_NB_TRAIN_HERE")
    import shutil

    shutil.rmtree(tmp_path / "runs2" / "baseline")
    monkeypatch.setattr(training, "_train", lambda run, *a, **k: run)
    assert (train_stage("baseline", TINY, progress=False).dir / "SHIPPED.json").exists()
    monkeypatch.setattr(training, "_train", lambda run, *a, **k: trained.append(run) or run)
    monkeypatch.setenv("MRIQC_NB_TRAIN_HERE", "1")
    with pytest.warns(UserWarning, match="holds a shipped run"):
        train_stage("baseline", TINY, progress=False)
    assert len(trained) == 5
    assert len(list((tmp_path / "runs2").glob("baseline.stale-*/SHIPPED.json"))) == 1


def test_a_damaged_shipped_run_is_an_error_that_names_the_file(shipped, tmp_path):
    weights = shipped / "baseline" / "checkpoints" / "epoch-003.npz"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="epoch-003.npz: its SHA-256"):
        train_stage("baseline", TINY, progress=False)
    weights.unlink()
    with pytest.raises(ValueError, match="epoch-003.npz: missing"):
        train_stage("baseline", TINY, progress=False)
    assert not (tmp_path / "runs" / "baseline" / "DONE").exists()


def test_an_unfinished_run_is_moved_aside_not_deleted_for_a_shipped_one(shipped, tmp_path):
    r = tmp_path / "runs" / "baseline"
    (r / "checkpoints").mkdir(parents=True)
    (r / "checkpoints" / "epoch-000.npz").write_bytes(b"an interrupted run's start")
    Run(r).write_database(training.database_id(training._database(TINY, False)))
    with pytest.warns(UserWarning, match="unfinished run"):
        run = train_stage("baseline", TINY, progress=False)
    assert run.done and (run.dir / "SHIPPED.json").exists()
    (aside,) = (tmp_path / "runs").glob("baseline.unfinished-*")
    assert (aside / "checkpoints" / "epoch-000.npz").read_bytes() == b"an interrupted run's start"


def test_export_refuses_an_unfinished_run(home, tmp_path):
    from mriqc_nb.model import shipped as ship

    run = train_stage("baseline", TINY, run_dir=tmp_path / "b", stop_after_epoch=0,
                      progress=False)
    with pytest.raises(ValueError, match="not a finished run"):
        ship.export(run.dir, tmp_path / "out" / "tiny-runs" / "baseline")


def test_ship_runs_refuses_a_run_the_book_would_not_load(home, baseline, tmp_path):
    import ship_runs

    ident = training.database_id(training._database(TINY, False))
    assert ship_runs.problem(baseline, "baseline", TINY, ident) is None
    assert "another database" in ship_runs.problem(baseline, "baseline", TINY, "x")
    assert "configuration" in ship_runs.problem(baseline, "baseline",
                                                replace(TINY, epochs_baseline=4), ident)
    assert ship_runs.problem(Run(tmp_path), "baseline", TINY, ident) == "not finished"


def test_a_run_trained_here_is_kept_and_an_older_shipped_run_is_replaced(shipped, baseline,
                                                                         tmp_path):
    from mriqc_nb.model import shipped as ship

    here = tmp_path / "runs" / "baseline"
    import shutil

    shutil.copytree(baseline.dir, here)  # trained here: never replaced by a shipped run
    assert "trained here" in ship.describe(train_stage("baseline", TINY, progress=False).dir)
    shutil.rmtree(here)
    first = train_stage("baseline", TINY, progress=False)
    (first.dir / "predictions").mkdir()
    # the shipped run is made again (new provenance): the copy and its predictions go aside
    table = training._database(TINY, False)
    ship.export(baseline.dir, shipped / "baseline", table=table, note="second")
    with pytest.warns(UserWarning, match="earlier version of the shipped run"):
        again = train_stage("baseline", TINY, progress=False)
    assert ship.provenance(again.dir)["note"] == "second"
    assert not (again.dir / "predictions").exists()
    (aside,) = (tmp_path / "runs").glob("baseline.replaced-*")
    assert (aside / "predictions").is_dir()
