"""Model bundles and the screening of files on disk (``mriqc_nb.bundle``, ``mriqc_nb.screen``,
``mriqc-nb bundle``, ``mriqc-nb screen``)."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil

import keras
import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from mriqc_nb import bundle as bundles
from mriqc_nb import predict, scans, screen
from mriqc_nb.bundle import FORMAT_VERSION, BundleError, load_bundle, save_bundle
from mriqc_nb.cli import main
from mriqc_nb.model.networks import build_nn008, make_mc_model
from mriqc_nb.referral import ReferralPolicy, UncertaintyScaler

GRID, SPACING, T = (32, 32, 32), (8.0, 8.0, 6.0), 4


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("MRIQC_NB_HOME", str(tmp_path / "home"))


def _head(path, seed, shape=(40, 44, 36), zooms=(5.0, 5.5, 4.0), radii=(0.8, 0.85, 0.75)):
    """A noisy bright ellipsoid on a grid and voxel size unlike the bundle's."""
    rng = np.random.default_rng(seed)
    g = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    inside = np.sum((g / np.reshape(radii, (3, 1, 1, 1))) ** 2, axis=0) < 1
    data = (inside * (100 + 20 * seed) + rng.normal(0, 5, shape)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.diag([*zooms, 1.0])), str(path))
    return str(path)


def _reference_mc(model, volumes, T, seed):
    """Expected screening numbers of each volume, by hand: a fresh MC twin of the whole network
    (dropout on, BatchNorm in inference mode) run on T copies of the volume, then the mean
    probability, entropy, mutual information (bits) and variance written out in numpy."""
    rows = {"p_artifact": [], "entropy": [], "mutual_information": [], "variance": []}

    def bits(p):
        return -np.sum(np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0)), 0.0), axis=-1)

    for v in volumes:
        twin = make_mc_model(model, seed)
        s = np.asarray(twin(np.repeat(v[None, ..., None], T, axis=0), training=False), dtype=float)
        mean = s.mean(axis=0)
        rows["p_artifact"].append(mean[1])
        rows["entropy"].append(bits(mean))
        rows["mutual_information"].append(max(bits(mean) - bits(s).mean(), 0.0))
        rows["variance"].append(s[:, 1].var())
    return {k: np.asarray(v) for k, v in rows.items()}


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    keras.utils.set_random_seed(7)
    model = build_nn008((*GRID, 1))
    policy = ReferralPolicy("mutual_information", eta=0.5, threshold=0.5,
                            scaler=UncertaintyScaler.fit([0.0, 0.02, 0.05]))
    out = tmp_path_factory.mktemp("bundle")
    save_bundle(out, model, grid=GRID, spacing_mm=SPACING, policy=policy, mc_samples=T,
                         provenance={"profile": "test", "stage": "ramp", "seed": 7})
    return out, model, policy


@pytest.fixture(scope="module")
def bundle(bundle_dir):
    return load_bundle(bundle_dir[0])


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Valid, valid, corrupt, missing, valid (with batch_size=2, a batch of 2 valid scans)."""
    d = tmp_path_factory.mktemp("scans")
    corrupt = d / "corrupt.nii.gz"
    corrupt.write_bytes(b"this is not a NIfTI file" * 20)
    return [_head(d / "a.nii.gz", 0), _head(d / "b.nii", 1), str(corrupt),
            str(d / "missing.nii.gz"), _head(d / "c.nii.gz", 2, radii=(0.7, 0.8, 0.7))]


@pytest.fixture(scope="module")
def full_run(bundle, inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "results.tsv"
    return out, screen.screen(inputs, bundle, out, batch_size=2, seed=3, workers=2,
                              progress=False)


def _copy_table(src, dst):
    """A screening table and its sidecar, copied."""
    shutil.copyfile(src, dst)
    shutil.copyfile(screen.sidecar_path(src), screen.sidecar_path(dst))
    return dst


# ---------------------------------------------------------------------------------- bundle
def test_bundle_json_holds_conform_settings_and_policy(bundle_dir):
    out, _, policy = bundle_dir
    info = json.loads((out / "bundle.json").read_text())
    assert info["format_version"] == FORMAT_VERSION
    assert info["model_name"] == "nn008" and info["input_shape"] == [*GRID, 1]
    assert info["conform"] == {"grid": list(GRID), "spacing_mm": list(SPACING), "normalise": True}
    assert info["class_names"] == ["clean", "artifact"] and info["mc_samples"] == T
    assert ReferralPolicy.from_dict(info["policy"]) == policy
    assert info["policy"]["scaler"] == {"vmin": 0.0, "vmax": 0.05}
    prov = info["provenance"]
    assert prov["profile"] == "test" and prov["stage"] == "ramp" and prov["seed"] == 7
    assert prov["created"] and prov["package_version"]
    assert sorted(p.name for p in out.iterdir()) == ["bundle.json", "weights.npz"]


def test_round_trip_gives_identical_predictions(bundle_dir, bundle):
    _, model, policy = bundle_dir
    assert bundle.grid == GRID and bundle.spacing_mm == SPACING and bundle.mc_samples == T
    assert bundle.policy == policy
    x = np.random.default_rng(0).normal(size=(2, *GRID, 1)).astype(np.float32)
    np.testing.assert_array_equal(bundle.model.predict(x, verbose=0), model.predict(x, verbose=0))
    np.testing.assert_array_equal(predict.predict_samples(bundle.model, x, "mc", T, seed=1),
                                  predict.predict_samples(model, x, "mc", T, seed=1))


def test_load_bundle_errors_name_the_path(bundle_dir, tmp_path):
    src = bundle_dir[0]
    with pytest.raises(BundleError, match="nowhere"):
        load_bundle(tmp_path / "nowhere")
    for name in ("bundle.json", "weights.npz"):
        d = tmp_path / f"without_{name}"
        d.mkdir()
        other = "weights.npz" if name == "bundle.json" else "bundle.json"
        (d / other).write_bytes((src / other).read_bytes())
        with pytest.raises(BundleError, match=f"without_{name}.*{name}"):
            load_bundle(d)
    d = tmp_path / "future"
    d.mkdir()
    (d / "weights.npz").write_bytes((src / "weights.npz").read_bytes())
    info = json.loads((src / "bundle.json").read_text())
    (d / "bundle.json").write_text(json.dumps({**info, "format_version": 99}))
    with pytest.raises(BundleError, match="future.*format_version 99"):
        load_bundle(d / "bundle.json")


# ---------------------------------------------------------------------------------- screen
def test_screen_one_row_per_input_errors_do_not_stop_the_run(full_run, inputs, bundle):
    out, df = full_run
    assert list(df.columns) == list(screen.COLUMNS)
    assert df["path"].tolist() == inputs
    bad = df[df["status"] == "error"]
    assert bad["path"].tolist() == [inputs[2], inputs[3]]
    assert "corrupt.nii.gz" in bad["error"].iloc[0] and "missing.nii.gz" in bad["error"].iloc[1]
    assert (bad["decision"] == "error").all() and bad["needs_person"].all()
    assert bad["p_artifact"].isna().all() and bad["referred"].isna().all()
    ok = df[df["status"] == "ok"]
    assert len(ok) == 3 and (ok["error"] == "").all()
    for c in ("p_artifact", "entropy", "mutual_information", "variance", "scaled_uncertainty"):
        assert np.isfinite(ok[c]).all(), c
    assert ok["p_artifact"].between(0, 1).all()
    assert set(ok["decision"]) <= {"clean", "artifact", "refer"}
    assert ((ok["decision"] == "refer") == ok["referred"]).all()
    # the numbers on disk are the model's: recomputed here without the screening code path
    # (the whole network, MC twin, on T copies of each scan alone), within float32 rounding
    expect = _reference_mc(bundle.model, [scans.conform(p, GRID, SPACING) for p in ok["path"]],
                           T, seed=3)
    for c in ("p_artifact", "entropy", "mutual_information", "variance"):
        np.testing.assert_allclose(ok[c].to_numpy(), expect[c], atol=1e-5, err_msg=c)
    pd.testing.assert_frame_equal(screen.read_results(out), df)
    raw = pd.read_csv(out, sep="\t", keep_default_na=False)
    assert raw["path"].tolist() == inputs and len(raw.columns) == len(screen.COLUMNS)


def test_rerun_resumes_without_predicting(full_run, inputs, bundle, monkeypatch, tmp_path):
    out, df = full_run
    copy = _copy_table(out, tmp_path / "results.tsv")

    def boom(*a, **k):
        raise AssertionError("nothing should be predicted or conformed again")

    monkeypatch.setattr(predict, "predict_samples", boom)
    monkeypatch.setattr(scans, "conform", boom)
    monkeypatch.setattr(scans, "check_header", boom)
    again = screen.screen(inputs, bundle, copy, batch_size=2, seed=3, progress=False)
    assert copy.read_bytes() == out.read_bytes()
    pd.testing.assert_frame_equal(again, df)


def test_interrupted_run_completes_without_duplicates(full_run, inputs, bundle, monkeypatch,
                                                       tmp_path):
    out, df = full_run
    lines = out.read_text().splitlines(keepends=True)
    part = _copy_table(out, tmp_path / "results.tsv")
    part.write_text("".join(lines[:3]) + lines[3][:10])  # header, 2 rows, half a third row
    seen = []
    check = scans.check_header
    monkeypatch.setattr(scans, "check_header", lambda src: seen.append(src) or check(src))
    resumed = screen.screen(inputs, bundle, part, batch_size=4, seed=3, workers=0,
                            progress=False)
    assert seen == [p for p in inputs[2:] if os.path.exists(p)]  # a missing file is not opened
    assert resumed["path"].tolist() == inputs
    assert part.read_text().count("\n") == len(inputs) + 1
    pd.testing.assert_frame_equal(resumed, df, check_exact=False, atol=1e-5, rtol=0)


def test_same_seed_same_numbers(full_run, inputs, bundle, tmp_path):
    out, df = full_run
    again = screen.screen(inputs, bundle, tmp_path / "again.tsv", batch_size=2, seed=3, progress=False)
    assert (tmp_path / "again.tsv").read_bytes() == out.read_bytes()
    # the numbers of a scan do not depend on its batch, its neighbours or the input order
    one = screen.screen(inputs, bundle, tmp_path / "b1.tsv", batch_size=1, seed=3, workers=0,
                        progress=False)
    pd.testing.assert_frame_equal(one, df, check_exact=False, atol=1e-6, rtol=0)
    rev = screen.screen(inputs[::-1], bundle, tmp_path / "rev.tsv", batch_size=3, seed=3,
                        progress=False)
    pd.testing.assert_frame_equal(rev.iloc[::-1].reset_index(drop=True), df, check_exact=False,
                                  atol=1e-6, rtol=0)
    other = screen.screen(inputs, bundle, tmp_path / "s4.tsv", batch_size=2, seed=4, progress=False)
    ok = df["status"] == "ok"
    assert not np.allclose(other.loc[ok, "mutual_information"], again.loc[ok, "mutual_information"])


def test_other_table_is_not_overwritten(bundle, inputs, tmp_path):
    out = tmp_path / "other.tsv"
    out.write_text("a\tb\n1\t2")  # no newline at the end: it was once cut before the refusal
    with pytest.raises(screen.ScreenError, match="other.tsv.*other columns"):
        screen.screen(inputs, bundle, out, progress=False)
    assert out.read_text() == "a\tb\n1\t2"
    assert not screen.sidecar_path(out).exists()
    side = tmp_path / "mine.json"  # someone's JSON where the sidecar would go
    side.write_text('{"a": 1}')
    with pytest.raises(screen.ScreenError, match="mine.json.*not written by"):
        screen.screen(inputs, bundle, tmp_path / "mine.tsv", progress=False)
    assert side.read_text() == '{"a": 1}' and not (tmp_path / "mine.tsv").exists()


def test_resume_refuses_another_bundle_or_seed(full_run, bundle_dir, inputs, tmp_path):
    out, _ = full_run
    part = _copy_table(out, tmp_path / "results.tsv")
    lines = part.read_text().splitlines(keepends=True)
    part.write_text("".join(lines[:3]) + lines[3][:10])  # a half line that must stay
    before = part.read_bytes()
    with pytest.raises(screen.ScreenError, match="another seed"):
        screen.screen(inputs, bundle_dir[0], part, seed=4, progress=False)
    keras.utils.set_random_seed(8)
    other = save_bundle(tmp_path / "other", build_nn008((*GRID, 1)), grid=GRID,
                        spacing_mm=SPACING, policy=bundle_dir[2], mc_samples=T)
    assert bundles.fingerprint(other) != bundles.fingerprint(bundle_dir[0])
    with pytest.raises(screen.ScreenError, match="another bundle"):
        screen.screen(inputs, other, part, seed=3, progress=False)
    assert part.read_bytes() == before
    no_sidecar = tmp_path / "bare.tsv"
    no_sidecar.write_bytes(before)
    with pytest.raises(screen.ScreenError, match="no sidecar"):
        screen.screen(inputs, bundle_dir[0], no_sidecar, seed=3, progress=False)
    assert no_sidecar.read_bytes() == before


def test_same_file_relative_and_absolute_is_screened_once(full_run, inputs, bundle, tmp_path,
                                                           monkeypatch):
    out, df = full_run
    copy = _copy_table(out, tmp_path / "results.tsv")
    monkeypatch.chdir(os.path.dirname(inputs[0]))
    again = screen.screen([os.path.basename(p) for p in inputs], bundle, copy, seed=3,
                          progress=False)
    pd.testing.assert_frame_equal(again, df)


def test_sidecar_records_bundle_seed_and_warnings(full_run, bundle_dir):
    meta = json.loads(screen.sidecar_path(full_run[0]).read_text())
    assert meta["BundleFingerprint"] == bundles.fingerprint(bundle_dir[0])
    assert meta["Seed"] == 3 and meta["MCSamples"] == T
    assert meta["Columns"] == list(screen.COLUMNS)
    assert any("no validation AUC" in w for w in meta["Warnings"])


def test_poor_bundle_is_loudly_warned(bundle_dir, inputs, tmp_path, capsys):
    _, model, policy = bundle_dir
    poor = save_bundle(tmp_path / "poor", model, grid=GRID, spacing_mm=SPACING, policy=policy,
                       mc_samples=T, validation={"auc": 0.61, "n_scans": 40, "n_artifact": 4})
    good = save_bundle(tmp_path / "good", model, grid=GRID, spacing_mm=SPACING, policy=policy,
                       mc_samples=T, validation={"auc": 0.97, "n_scans": 40, "n_artifact": 4})
    assert load_bundle(good).warnings == []
    assert "POOR MODEL" not in capsys.readouterr().err
    out = tmp_path / "r.tsv"
    screen.screen(inputs[:1], poor, out, progress=False)
    assert "POOR MODEL: validation AUC 0.610" in capsys.readouterr().err
    assert "POOR MODEL" in json.loads(screen.sidecar_path(out).read_text())["Warnings"][0]


def test_missing_builtin_bundle_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(bundles, "DEFAULT_BUNDLE", ("models", "no-such-model"))
    with pytest.raises(BundleError, match="no built-in model.*make model"):
        bundles.default_bundle()
    scan = _head(tmp_path / "a.nii.gz", 0)
    assert main(["screen", scan, "--out", str(tmp_path / "r.tsv"), "-q"]) == 2
    assert not (tmp_path / "r.tsv").exists()


def test_report_and_views_of_flagged_scans(full_run, inputs, bundle, tmp_path):
    out = _copy_table(full_run[0], tmp_path / "r.tsv")
    html = tmp_path / "report.html"
    screen.screen(inputs, bundle, out, seed=3, report_html=html, progress=False)
    text = html.read_text(encoding="utf-8")
    assert "Worklist" in text and "corrupt.nii.gz" in text and bundle.fingerprint in text
    flagged = full_run[1]["decision"].isin(["artifact", "refer"]).sum()
    assert text.count("data:image/png;base64,") == flagged


def test_interrupt_stops_the_workers_and_keeps_finished_batches(bundle, inputs, tmp_path,
                                                                 monkeypatch):
    write = screen._write_batch
    calls = []

    def once(*a, **k):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return write(*a, **k)

    monkeypatch.setattr(screen, "_write_batch", once)
    out = tmp_path / "r.tsv"
    with pytest.raises(KeyboardInterrupt):
        screen.screen(inputs, bundle, out, batch_size=2, seed=3, workers=2, progress=False)
    assert multiprocessing.active_children() == []
    assert len(screen.read_results(out)) == 2


def test_report_counts_and_lists_errors(full_run):
    text = screen.report(full_run[1])
    assert text.startswith("5 scans:") and "2 error" in text
    assert "corrupt.nii.gz" in text and "missing.nii.gz" in text


# ---------------------------------------------------------------------------------- CLI
def test_cli_screen_directory_with_broken_files(bundle_dir, tmp_path, capsys):
    d = tmp_path / "site" / "sub-01"
    d.mkdir(parents=True)
    _head(d / "T1w.nii.gz", 0)
    four_d = np.random.default_rng(0).normal(size=(20, 20, 20, 2)).astype(np.float32)
    nib.save(nib.Nifti1Image(four_d, np.eye(4)), str(d / "bold.nii.gz"))
    nib.save(nib.Nifti1Image(np.full((20, 20, 20), 7, np.float32), np.diag([6.0, 6, 6, 1])),
             str(d / "flat.nii"))  # head-sized (120 mm), so that it passes the header check
    (d / "notes.txt").write_text("not a scan")
    out = tmp_path / "qc" / "results.tsv"
    rc = main(["screen", str(tmp_path / "site"), "--bundle", str(bundle_dir[0]), "--out", str(out),
               "--batch-size", "2", "--seed", "1", "-q"])
    assert rc == 1  # some rows are errors (the others are screened)
    df = screen.read_results(out)
    assert [p.split("/")[-1] for p in df["path"]] == ["T1w.nii.gz", "bold.nii.gz", "flat.nii"]
    assert df["status"].tolist() == ["ok", "error", "error"]
    assert "bold.nii.gz" in df["error"][1] and "volumes" in df["error"][1]
    assert "flat.nii" in df["error"][2] and "constant" in df["error"][2]
    printed = capsys.readouterr().out
    assert "3 rows" in printed and "2 could not be screened" in printed


def test_cli_screen_bad_bundle_exits_2(tmp_path, capsys):
    scan = _head(tmp_path / "a.nii.gz", 0)
    rc = main(["screen", scan, "--bundle", str(tmp_path / "no_bundle"), "--out",
               str(tmp_path / "r.tsv"), "-q"])
    assert rc == 2
    assert "no_bundle" in capsys.readouterr().err
    assert not (tmp_path / "r.tsv").exists()


def test_bundle_from_run_chooses_policy_on_validation(bundle_dir, tmp_path, monkeypatch, capsys):
    from types import SimpleNamespace

    from mriqc_nb import referral
    from mriqc_nb.model import training

    model = bundle_dir[1]
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(30, int), np.ones(10, int)]
    valid = pd.DataFrame({"y": y, "p_artifact": np.clip(0.2 + 0.6 * y + rng.normal(0, 0.1, 40), 0, 1),
                          "mutual_information": rng.uniform(0, 0.1, 40)})
    calls = []
    run = SimpleNamespace(config=SimpleNamespace(model="nn008", seed=5, stage="ramp", profile="smoke"),
                          dir=tmp_path / "run", last_epoch=3, selected_epoch=3,
                          model=lambda: model)
    monkeypatch.setattr(training, "train_stage", lambda stage, profile, **k: run)
    monkeypatch.setattr(predict, "run_predictions",
                        lambda run, split, method, **k: calls.append((split, method, k["T"])) or (valid, None))
    assert main(["bundle", "--stage", "ramp", "--profile", "smoke", "--out", str(tmp_path / "b"), "-q"]) == 0
    assert calls == [("valid", "mc", 10)]  # the T it screens with (smoke: mc_samples_test) and str(tmp_path / "b") in capsys.readouterr().out
    b = load_bundle(tmp_path / "b")
    assert b.policy == referral.select_operating_point(valid, measure="mutual_information", labels=y)
    assert b.grid == (32, 32, 32) and b.spacing_mm == (8.0, 8.0, 6.0) and b.mc_samples == 10
    prov = b.info["provenance"]
    assert (prov["profile"], prov["stage"], prov["seed"], prov["epoch"]) == ("smoke", "ramp", 5, 3)
    assert prov["policy_max_referred"] == 0.5
    assert "recipe" not in prov  # a paper stage has no recipe settings
    from mriqc_nb import native

    assert b.info["checks"] == native.THRESHOLDS  # the checks of NOTES 20, unless refused
    assert main(["bundle", "--stage", "ramp", "--profile", "smoke", "--out",
                 str(tmp_path / "plain"), "-q", "--no-checks"]) == 0
    plain = load_bundle(tmp_path / "plain")
    assert "checks" not in plain.info and plain.fingerprint != b.fingerprint


def test_bundle_from_run_bounds_the_share_it_refers(bundle_dir, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from mriqc_nb import referral
    from mriqc_nb.bundle import bundle_from_run

    # uncertain scans are the misclassified ones: Youden's J keeps rising as more are referred
    rng = np.random.default_rng(1)
    y = np.r_[np.zeros(60, int), np.ones(20, int)]
    p = np.clip(0.3 + 0.4 * y + rng.normal(0, 0.35, 80), 0, 1)
    wrong = (p >= 0.5) != (y == 1)
    assert 0.2 < wrong.mean() < 0.45
    mi = 0.8 * wrong + rng.uniform(0, 0.2, 80)
    valid = pd.DataFrame({"y": y, "p_artifact": p, "mutual_information": mi})
    run = SimpleNamespace(config=SimpleNamespace(model="nn008", seed=5, stage="recipe",
                                                 profile="smoke"),
                          dir=tmp_path / "run", last_epoch=3, selected_epoch=3,
                          model=lambda: bundle_dir[1])
    monkeypatch.setattr(predict, "run_predictions", lambda *a, **k: (valid, None))
    # the run's recipe settings travel into the bundle's provenance (the model card names them)
    settings = {"redraws": 4, "onto_clean": 1500, "rounds": 30, "seed": 5}
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "recipe.json").write_text(json.dumps({"config": settings,
                                                             "selected_round": 3}))
    loose = load_bundle(bundle_from_run(run, tmp_path / "loose"))
    assert loose.info["provenance"]["recipe"] == settings
    tight = load_bundle(bundle_from_run(run, tmp_path / "tight", max_referred=0.1))
    share = {name: 1 - b.policy.valid_metrics["retained_fraction"]
             for name, b in (("loose", loose), ("tight", tight))}
    assert share["loose"] > 0.1 >= share["tight"]
    assert tight.policy == referral.select_operating_point(valid, labels=y, min_retained=0.9)
    assert tight.info["provenance"]["policy_max_referred"] == 0.1
    with pytest.raises(ValueError, match="max_referred"):
        bundle_from_run(run, tmp_path / "bad", max_referred=1.0)


def test_save_bundle_refuses_an_invalid_description(bundle_dir, tmp_path):
    _, model, policy = bundle_dir
    with pytest.raises(BundleError, match="grid .* does not fit"):
        save_bundle(tmp_path / "b", model, grid=(64, 32, 32), spacing_mm=SPACING, policy=policy)
    with pytest.raises(BundleError, match="mc_samples"):
        save_bundle(tmp_path / "b", model, grid=GRID, spacing_mm=SPACING, policy=policy, mc_samples=0)
    assert not (tmp_path / "b").exists()


def test_cli_screen_usage_errors_exit_2_without_traceback(bundle_dir, tmp_path, capsys):
    scan = _head(tmp_path / "a.nii.gz", 0)
    b = ["--bundle", str(bundle_dir[0]), "-q"]
    (tmp_path / "outdir").mkdir()
    assert main(["screen", scan, "--out", str(tmp_path / "outdir"), *b]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert main(["screen", scan, "--out", "/proc/no-such-dir/r.tsv", *b]) == 2
    err = capsys.readouterr().err
    assert "/proc/no-such-dir" in err and "Traceback" not in err
    assert main(["screen", str(tmp_path / "mistyped"), "--out", str(tmp_path / "r.tsv"), *b]) == 2
    assert "mistyped: no such file or folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # neither --out nor --derivative
        main(["screen", scan, *b])
    assert exc.value.code == 2


def test_cli_screen_interrupted_exits_130(bundle_dir, tmp_path, monkeypatch, capsys):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(screen, "_write_batch", interrupted)
    scans_ = [_head(tmp_path / f"{i}.nii.gz", i) for i in range(2)]
    rc = main(["screen", *scans_, "--bundle", str(bundle_dir[0]), "--out",
               str(tmp_path / "r.tsv"), "-q"])
    assert rc == 130
    assert "run the same command again to resume" in capsys.readouterr().err
    assert multiprocessing.active_children() == []


def test_cli_screen_bids_derivative_with_entities_and_report(bundle_dir, tmp_path, capsys):
    root = tmp_path / "ds"
    for sub, ses in (("01", "pre"), ("02", "pre")):
        anat = root / f"sub-{sub}" / f"ses-{ses}" / "anat"
        anat.mkdir(parents=True)
        _head(anat / f"sub-{sub}_ses-{ses}_run-1_T1w.nii.gz", int(sub))
    (root / "dataset_description.json").write_text('{"Name": "toy", "BIDSVersion": "1.9.0"}')
    deriv = root / "derivatives" / "mriqc-nb"
    rc = main(["screen", str(root), "--bundle", str(bundle_dir[0]), "--derivative", str(deriv),
               "--report", str(tmp_path / "report.html"), "-q"])
    assert rc == 0
    desc = json.loads((deriv / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative" and desc["GeneratedBy"][0]["Name"] == "mriqc-nb"
    df = screen.read_results(deriv / "screening.tsv")
    assert df["subject"].tolist() == ["01", "02"] and (df["session"] == "pre").all()
    assert (df["run"] == "1").all() and (df["suffix"] == "T1w").all()
    assert (deriv / "screening.json").is_file() and (tmp_path / "report.html").is_file()


# ------------------------------------------------------------- checks at the own resolution
def _spiked(path, seed, amplitude=0.3):
    """A head of :func:`_head` with one bad k-space sample, or with strong white noise."""
    img = nib.load(_head(path, seed))
    data = np.asarray(img.dataobj, dtype=np.float32)
    if amplitude:
        from mriqc_nb import artifacts

        data = artifacts.apply(data, {"kind": "spike", "spikes": [
            {"k_position": [0.4, -0.3, 0.2], "amplitude": amplitude}]}, spacing_mm=(5, 5.5, 4))
    else:
        data = data + np.random.default_rng(seed).normal(0, 40, data.shape).astype(np.float32)
    nib.save(nib.Nifti1Image(data, img.affine), str(path))
    return str(path)


def test_a_bundle_with_checks_calls_spikes_and_noise_at_the_files_own_resolution(
        bundle_dir, bundle, tmp_path):
    from mriqc_nb import native

    _, model, policy = bundle_dir
    checked = save_bundle(tmp_path / "checked", model, grid=GRID, spacing_mm=SPACING,
                          policy=policy, mc_samples=T, checks=native.THRESHOLDS,
                          validation={"auc": 0.95, "n_scans": 10, "n_artifact": 2})
    assert bundles.read_info(checked)[1]["checks"] == native.THRESHOLDS
    assert bundles.fingerprint(checked) != bundles.fingerprint(bundle_dir[0])
    d = tmp_path / "scans"
    d.mkdir()
    files = [_head(d / "clean.nii.gz", 0), _spiked(d / "spike.nii.gz", 1, amplitude=0.1),
             _spiked(d / "noise.nii.gz", 2, amplitude=0), str(d / "missing.nii.gz")]
    df = screen.screen(files, checked, tmp_path / "checked.tsv", batch_size=2, seed=3,
                       workers=0, progress=False)
    assert list(df.columns) == list(screen.COLUMNS) + list(screen.CHECK_COLUMNS)
    assert json.loads(screen.sidecar_path(tmp_path / "checked.tsv").read_text())["Checks"] \
        == native.THRESHOLDS
    assert df["check"].tolist() == ["", "spike", "noise", ""]
    called = df.iloc[1:3]
    assert (called["decision"] == "artifact").all() and (called["p_artifact"] == 1).all()
    assert called["needs_person"].all() and not called["referred"].any()
    assert df["kspace_peak"].iloc[1] > 1 > df["kspace_peak"].iloc[0]
    assert df["noise"].iloc[2] > -2.5 > df["noise"].iloc[0]
    assert df.iloc[3]["status"] == "error" and np.isnan(df.iloc[3]["kspace_peak"])
    # the network's own numbers are those of the same bundle without checks
    plain = screen.screen(files[:3], bundle, tmp_path / "plain.tsv", batch_size=2, seed=3,
                          workers=0, progress=False)
    np.testing.assert_allclose(df["p_network"].iloc[:3], plain["p_artifact"], atol=1e-6)
    assert df["p_artifact"].iloc[0] == pytest.approx(plain["p_artifact"].iloc[0], abs=1e-6)
    assert df["decision"].iloc[0] == plain["decision"].iloc[0]
    # with worker processes: the same table
    again = screen.screen(files, checked, tmp_path / "workers.tsv", batch_size=2, seed=3,
                          workers=2, progress=False, report_html=tmp_path / "report.html")
    pd.testing.assert_frame_equal(again.drop(columns="error"), df.drop(columns="error"))
    page = (tmp_path / "report.html").read_text()
    assert "<th>check</th>" in page and page.count("called by the check") == 2
    # the checks switched off at screening time: the network alone, the plain columns; a
    # table begun with the checks is not continued without them
    main(["screen", *files[:3], "--bundle", str(checked), "--out", str(tmp_path / "off.tsv"),
          "--no-checks", "-q", "--workers", "0", "--seed", "3"])
    off = screen.read_results(tmp_path / "off.tsv")
    assert list(off.columns) == list(screen.COLUMNS)
    np.testing.assert_allclose(off["p_artifact"], plain["p_artifact"], atol=1e-6)
    with pytest.raises(screen.ScreenError, match="other columns"):
        screen.screen(files[:3], checked, tmp_path / "checked.tsv", checks=False,
                      progress=False, workers=0)


def test_the_comb_check_calls_ghosting_on_a_fine_whole_head_only(bundle_dir, tmp_path):
    # the comb is measured on files of at most 2 mm that are not skull-stripped
    # (NOTES 26); the voxel size comes from the file's affine
    from mriqc_nb import artifacts, native, synth

    _, model, policy = bundle_dir
    checked = save_bundle(tmp_path / "checked", model, grid=GRID, spacing_mm=SPACING,
                          policy=policy, mc_samples=T, checks=native.THRESHOLDS)
    img = synth.make_scan(synth.sample_anatomy(3), synth.sample_acquisition(4, "T2w"),
                          (90, 100, 80), (2.0, 2.0, 2.0))
    clean = np.asarray(img.dataobj, dtype=np.float32)
    ghosted = artifacts.apply(clean, {"kind": "ghosting", "n_ghosts": 3, "intensity": 0.5,
                                      "pe_axis": 1}, spacing_mm=(2.0, 2.0, 2.0))
    coarse = img.affine.copy()
    coarse[:3, :3] = np.diag([2.0, 2.0, 2.5])  # the same voxels, declared 2.5 mm thick
    files = []
    for name, data, affine in (("clean", clean, img.affine), ("ghost", ghosted, img.affine),
                               ("ghost_thick", ghosted, coarse)):
        files.append(str(tmp_path / f"{name}.nii.gz"))
        nib.save(nib.Nifti1Image(data, affine), files[-1])
    df = screen.screen(files, checked, tmp_path / "t.tsv", workers=0, progress=False)
    assert df["status"].tolist() == ["ok"] * 3
    assert df["check"].tolist() == ["", "ghosting", ""]
    assert df["kspace_comb"].iloc[1] > native.THRESHOLDS["kspace_comb"] > \
        df["kspace_comb"].iloc[0]
    assert np.isnan(df["kspace_comb"].iloc[2])  # out of scope: not measured
    assert df["decision"].iloc[1] == "artifact" and df["p_artifact"].iloc[1] == 1
    # a bundle with the two earlier checks only does not call it, but still measures it
    older = save_bundle(tmp_path / "older", model, grid=GRID, spacing_mm=SPACING,
                        policy=policy, mc_samples=T,
                        checks={"kspace_peak": 1.0, "noise": -2.5})
    df2 = screen.screen(files[1:2], older, tmp_path / "o.tsv", workers=0, progress=False)
    assert df2["check"].tolist() == [""]
    assert df2["kspace_comb"].iloc[0] == pytest.approx(df["kspace_comb"].iloc[1])


def test_a_check_that_fails_calls_nothing_and_the_scan_is_screened(bundle_dir, tmp_path,
                                                                   monkeypatch):
    from mriqc_nb import native

    _, model, policy = bundle_dir
    checked = save_bundle(tmp_path / "checked", model, grid=GRID, spacing_mm=SPACING,
                          policy=policy, mc_samples=T, checks=native.THRESHOLDS)

    def broken(volume, spacing_mm=None):
        raise FloatingPointError("a measure that breaks")

    monkeypatch.setattr(native, "measure", broken)
    df = screen.screen([_head(tmp_path / "a.nii.gz", 0)], checked, tmp_path / "t.tsv",
                       workers=0, progress=False)
    assert df["status"].tolist() == ["ok"] and df["check"].tolist() == [""]
    assert df[["kspace_peak", "noise", "kspace_comb"]].isna().all(axis=None)
    assert df["p_artifact"].iloc[0] == df["p_network"].iloc[0]


def test_a_bundle_with_an_unknown_check_is_refused(bundle_dir, tmp_path):
    _, model, policy = bundle_dir
    with pytest.raises(BundleError, match="unknown check 'motion'"):
        save_bundle(tmp_path / "b", model, grid=GRID, spacing_mm=SPACING, policy=policy,
                    mc_samples=T, checks={"motion": 1.0})
    assert not (tmp_path / "b" / "bundle.json").exists()
