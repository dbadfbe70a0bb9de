"""Building the database: cache, determinism over workers, resuming, your own files, tf.data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from mriqc_nb import data
from mriqc_nb.data.build import META_FILE, BuildError
from mriqc_nb.data.cache import _fingerprint, cache_dir_for, cache_file_name, materialise, source_files
from mriqc_nb.data.table import SPLITS, TABLE_FILE, TableError
from mriqc_nb.labels import LABEL_INDEX, class_weights
from mriqc_nb.profiles import get_profile

# 16^3 voxels of 16 mm: the smoke profile's field of view at 1/8 of its voxels, so a scan
# takes a few hundredths of a second; 40 labelled scans (10 artifacts: 6/2/2) + 3 subtle.
TINY = replace(get_profile("smoke"), name="tiny", n_scans=40, n_subtle=3, clean_share=0.75,
               grid=(16, 16, 16), spacing_mm=(16.0, 16.0, 12.0), seed=7)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("db1")
    table = data.build_database(TINY, out, workers=1, progress=False)
    return out, table


def _arrays(out, table):
    return {sid: np.load(out / f) for sid, f in zip(table.scan_id, table.cache_file)}


def test_build_writes_table_meta_and_one_float16_array_per_scan(built):
    out, table = built
    assert len(table) == TINY.n_scans + TINY.n_subtle
    assert (out / TABLE_FILE).exists() and (out / META_FILE).exists()
    meta = json.loads((out / META_FILE).read_text())
    assert meta["counts"]["train"] == {"clean": 18, "artifact": 6}
    cache = cache_dir_for(out, TINY.grid, TINY.spacing_mm)
    assert sorted(p.name for p in cache.glob("*.npy")) == sorted(os.path.basename(f) for f in table.cache_file)
    arrays = _arrays(out, table)
    for a in arrays.values():
        assert a.dtype == np.float16 and a.shape == TINY.grid and np.isfinite(a).all()
    back = data.load_table(out / TABLE_FILE)
    pd.testing.assert_frame_equal(back, table.reset_index(drop=True), check_dtype=False)


def test_same_seed_same_table_and_volumes_with_one_and_two_workers(built, tmp_path):
    out1, table1 = built
    table2 = data.build_database(TINY, tmp_path, workers=2, progress=False)
    pd.testing.assert_frame_equal(table1.drop(columns="cache_file"), table2.drop(columns="cache_file"))
    assert [os.path.basename(f) for f in table1.cache_file] == [os.path.basename(f) for f in table2.cache_file]
    a1, a2 = _arrays(out1, table1), _arrays(tmp_path, table2)
    for sid in a1:
        assert a1[sid].tobytes() == a2[sid].tobytes(), sid


def test_cache_hit_returns_exactly_what_was_written(built, tmp_path):
    out, table = built
    cache = cache_dir_for(out, TINY.grid, TINY.spacing_mm)
    row = table[table.label == "artifact"].iloc[0]
    hit = data.load_volume(row, cache)
    assert hit.dtype == np.float32
    np.testing.assert_array_equal(hit, np.load(out / row.cache_file).astype(np.float32))
    # a miss (fresh cache) computes, writes and returns the same values a later hit returns
    fresh = tmp_path / "cache"
    miss = data.load_volume(row, fresh, grid=TINY.grid, spacing_mm=TINY.spacing_mm)
    again = data.load_volume(row, fresh)  # grid and spacing from conform.json
    np.testing.assert_array_equal(miss, again)
    np.testing.assert_array_equal(miss, hit)
    np.testing.assert_array_equal(data.load_volume(row, out), hit)  # the database directory
    pd.testing.assert_frame_equal(data.load_table(out), data.load_table(out / TABLE_FILE))


def test_changed_recipe_gets_another_cache_file(built):
    out, table = built
    row = table.iloc[0].to_dict()
    recipe = json.loads(row["recipe"])
    recipe["acquisition"]["noise_fraction"] = 0.05
    changed = dict(row, recipe=json.dumps(recipe))
    name = cache_file_name(row, TINY.grid, TINY.spacing_mm)
    assert name == os.path.basename(row["cache_file"])
    assert cache_file_name(changed, TINY.grid, TINY.spacing_mm) != name
    assert cache_file_name(row, (32, 32, 32), (8.0, 8.0, 6.0)) != name


def test_code_fingerprint_covers_every_module_that_makes_volumes(tmp_path):
    package = Path(data.__file__).resolve().parent.parent
    names = {f.relative_to(package).as_posix() for f in source_files()}
    assert {"synth/__init__.py", "synth/template.py", "kspace.py", "scans/__init__.py",
            "scans/grid.py", "artifacts/__init__.py"} <= names
    assert not any("__pycache__" in n or n.startswith("data/") for n in names)
    for name in ("synth/__init__.py", "kspace.py", "scans/__init__.py", "artifacts/__init__.py",
                 "artifacts/motion.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(f"# {name}\n")
    before = _fingerprint(tmp_path)
    (tmp_path / "artifacts" / "motion.py").write_text("# changed\n")  # any file of artifacts/
    assert _fingerprint(tmp_path) != before
    (tmp_path / "artifacts" / "motion.py").write_text("# artifacts/motion.py\n")
    assert _fingerprint(tmp_path) == before
    (tmp_path / "unrelated.py").write_text("x = 1\n")
    assert _fingerprint(tmp_path) == before


def test_build_is_idempotent_and_resumes(built):
    out, table = built
    files = [out / f for f in table.cache_file]
    before = {f: f.stat().st_mtime_ns for f in files}
    again = data.build_database(TINY, out, workers=1, progress=False)
    pd.testing.assert_frame_equal(again, table)
    assert {f: f.stat().st_mtime_ns for f in files} == before  # nothing rebuilt
    # an interrupted build: some files missing, a stray temporary file left behind
    lost = files[::7]
    saved = {f: f.read_bytes() for f in lost}
    for f in lost:
        f.unlink()
    stray = lost[0].parent / f".{lost[0].name}.abc.tmp"
    stray.write_bytes(b"half-written")
    data.build_database(TINY, out, workers=1, progress=False)
    for f in lost:
        assert f.read_bytes() == saved[f]
    stray.unlink()
    assert all(f.stat().st_mtime_ns == before[f] for f in files if f not in saved)


def test_load_arrays_and_subsets(built):
    out, table = built
    prime = data.priming_set(table)
    X, y = data.load_arrays(prime)
    assert X.shape == (len(prime), *TINY.grid, 1) and X.dtype == np.float32
    assert y.tolist() == [LABEL_INDEX[v] for v in prime.label]
    assert y.sum() * 2 == len(prime) == 12
    X2, y2 = data.load_arrays(table, ids=list(prime.scan_id[::-1]), channel_axis=False)
    np.testing.assert_array_equal(X2, X[::-1, ..., 0])
    with pytest.raises(KeyError):
        data.load_arrays(table, ids=["nope"])


def _write_scans(folder, n=4):
    from mriqc_nb import synth

    paths = []
    for i in range(n):
        img = synth.make_scan(synth.sample_anatomy(i), synth.sample_acquisition(i, "T1w"), (24, 24, 16), (10.0, 10.0, 12.0))
        p = folder / f"s{i}.nii.gz"
        nib.save(img, p)
        paths.append(p.name)
    return paths


def test_your_own_files(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    paths = _write_scans(src)
    (src / "broken.nii.gz").write_bytes(b"not a nifti file")
    table = pd.DataFrame({"path": paths, "label": ["clean", "artifact", "clean", "clean"],
                          "subject_id": ["a", "a", "b", "c"], "site": "mine"})
    table.to_csv(src / "mine.tsv", sep="\t", index=False)
    out = tmp_path / "db"
    built = data.build_database(TINY, out, workers=1, progress=False, table=src / "mine.tsv")
    assert set(built.split) <= set(SPLITS)
    assert (built.groupby("subject_id")["split"].nunique() == 1).all()
    X, y = data.load_arrays(built)
    assert X.shape == (4, *TINY.grid, 1) and y.tolist() == [0, 1, 0, 0]
    direct = materialise(built.iloc[0], TINY.grid, TINY.spacing_mm)
    np.testing.assert_array_equal(X[0, ..., 0], direct.astype(np.float16).astype(np.float32))

    bad = pd.concat([table, pd.DataFrame({"path": ["broken.nii.gz"], "label": ["clean"], "subject_id": ["d"], "site": "mine"})])
    bad.to_csv(src / "bad.tsv", sep="\t", index=False)
    with pytest.raises(BuildError) as info:
        data.build_database(TINY, tmp_path / "db2", workers=1, progress=False, table=src / "bad.tsv")
    assert list(info.value.failures) == ["broken"] and "broken" in str(info.value)
    with pytest.warns(UserWarning, match="broken"):
        kept = data.build_database(TINY, tmp_path / "db2", workers=1, progress=False, table=src / "bad.tsv", on_error="drop")
    assert "broken" not in set(kept.scan_id) and len(kept) == 4

    missing = table.assign(path=["s0.nii.gz", "gone.nii.gz", "s2.nii.gz", "s3.nii.gz"])
    missing.to_csv(src / "missing.tsv", sep="\t", index=False)
    with pytest.raises(TableError, match="gone.nii.gz"):
        data.build_database(TINY, tmp_path / "db3", workers=1, progress=False, table=src / "missing.tsv")


def test_tf_dataset(built):
    pytest.importorskip("tensorflow")
    from mriqc_nb.data.pipeline import make_dataset, ramp_dataset

    out, table = built
    valid = table[table.split == "valid"]
    X, y = data.load_arrays(valid)
    ds = make_dataset(valid, batch_size=3)
    xs, ys = zip(*[(x.numpy(), t.numpy()) for x, t in ds])
    assert [len(b) for b in xs] == [3, 3, 2]
    np.testing.assert_array_equal(np.concatenate(xs), X)  # evaluation: table order, no flips
    np.testing.assert_array_equal(np.concatenate(ys), np.eye(2, dtype=np.float32)[y])

    def one_pass(d):
        return [(x.numpy(), t.numpy()) for x, t in d]

    train = make_dataset(valid, batch_size=8, training=True, seed=5)
    p1, p2 = one_pass(train), one_pass(train)
    again = one_pass(make_dataset(valid, batch_size=8, training=True, seed=5))
    np.testing.assert_array_equal(p1[0][0], again[0][0])  # same seed, same batches
    assert not np.array_equal(p1[0][0], p2[0][0])  # reshuffled / re-flipped each pass
    originals = {X[i].tobytes(): i for i in range(len(X))}
    flipped_any = False
    for x in p1[0][0]:
        matches = [axes for axes in ([], [0], [1], [2], [0, 1], [0, 2], [1, 2], [0, 1, 2])
                   if np.flip(x, axes).tobytes() in originals]
        assert matches, "every training volume is a flipped copy of a scan"
        flipped_any |= [] not in matches
    assert flipped_any

    ds, cw, sub = ramp_dataset(table, 1, TINY.ramp_epochs, batch_size=4, weighted=True)
    assert len(sub) == data.ramp_sizes(12, 24, TINY.ramp_epochs)[1] == 18
    assert cw == class_weights({0: 12, 1: 6})
    x, t, w = next(iter(ds))
    assert x.shape[1:] == (*TINY.grid, 1) and w.shape == (x.shape[0],)
    np.testing.assert_allclose(w.numpy(), np.where(t.numpy()[:, 1] == 1, cw[1], cw[0]))


def _children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (from /proc; zombies excluded)."""
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_interrupted_build_stops_its_workers_at_once(tmp_path, monkeypatch):
    """Ctrl-C in a notebook: the kernel lives on, the workers must not (nor finish their work)."""
    from mriqc_nb.data import build

    real_wait, seen = build.wait, {}
    others = set(_children(os.getpid()))

    def interrupted_wait(fs, **kwargs):
        real_wait(fs, timeout=0.5)
        new = set(_children(os.getpid())) - others
        seen["workers"] = [pid for pid in new  # not the resource tracker that "spawn" starts
                           if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()]
        raise KeyboardInterrupt

    monkeypatch.setattr(build, "wait", interrupted_wait)
    with pytest.raises(KeyboardInterrupt):
        build.build_database(TINY, tmp_path, workers=2, progress=False)
    assert len(seen["workers"]) == 2
    assert not [w for w in seen["workers"] if _alive(w)]
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=lambda s: s.name)
def test_killing_the_database_command_ends_its_workers(tmp_path, sig):
    """``mriqc-nb database`` killed mid-build leaves no worker running and no half-written file;
    by default it builds where ``train`` reads (``paths.database_dir``)."""
    env = dict(os.environ, MRIQC_NB_HOME=str(tmp_path))
    cmd = [sys.executable, "-c", "import sys; from mriqc_nb.cli import main; sys.exit(main())",
           "database", "--profile", "laptop", "--workers", "2", "--quiet"]
    # Ctrl-C as in a terminal: the command starts with SIGINT at its default. A test run started
    # in the background by a shell without job control (`nohup make test &`, some CI runners)
    # inherits SIGINT *ignored*, and Python then keeps it ignored, as it should for a command
    # sent to the background; SIGINT then did nothing and the test timed out (CI runs started so).
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    db = tmp_path / "databases" / "laptop"
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            workers = _children(proc.pid)
            if len(workers) >= 2:
                break
            time.sleep(0.05)
        # kill once the workers have written a volume: mid-build, not while the pool starts.
        # The laptop database (8,100 volumes, minutes) makes sure the signal lands mid-build:
        # with the smoke one (seconds) it landed after the last volume on a loaded machine
        # (exit 0), in two CI runs.
        while time.monotonic() < deadline and proc.poll() is None and not any(db.rglob("*.npy")):
            time.sleep(0.05)
        assert proc.poll() is None and len(workers) >= 2, proc.stderr.read() if proc.poll() is not None else ""
        os.kill(proc.pid, sig)
        _, err = proc.communicate(timeout=60)
        if sig == signal.SIGKILL:
            assert proc.returncode == -signal.SIGKILL
        else:
            assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
        deadline = time.monotonic() + 10
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [w for w in workers if _alive(w)]
        assert (db / "scans.tsv").exists()  # where `train` reads (paths.database_dir)
        assert not list(db.rglob("*.tmp"))  # workers stopped cleanly, even when the parent was killed
    finally:
        for w in workers:
            if _alive(w):
                os.kill(w, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
