"""Does the detector find artifacts made by ANOTHER simulator? (TorchIO on nilearn's MNI152 T1)

The network is trained on the project's synthetic heads and its own simulators only. This
check corrupts a different head image -- nilearn's MNI152 T1 *average* (real MR intensities,
not our tissue model), posed, scaled and resampled at random -- with TorchIO's transforms
(motion, ghosting, spike, bias field, noise, blur), screens clean and corrupted copies with a
bundle, and prints the AUC per kind with bootstrap intervals. Nothing here is used to choose
anything in training: it is a measurement, not a tuning set. A corrupted copy identical to its
clean copy (no artifact drawn) is left out and named.

What the network can see of these artifacts at its grid: ``experiments/visibility.py`` (the
laptop grid's 4 x 4 x 6 mm keeps little of TorchIO's motion, noise and spikes made at 1 mm).

Two steps, because TorchIO (PyTorch) and TensorFlow need not share an environment::

    python benchmarks/bench_cross_simulator.py make DIR [--n 24 --seed 0]   # needs torchio
    python benchmarks/bench_cross_simulator.py score DIR [--bundle B]       # needs the package

``make`` writes ``DIR/*.nii.gz`` and ``DIR/truth.tsv``; ``score`` screens them (built-in
bundle by default) into ``DIR/screened-<bundle fingerprint>.tsv`` and prints one table and a
final line ``cross-simulator AUC ...``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

KINDS = ("motion", "ghosting", "spike", "bias", "noise", "blur")


def _transform(kind: str):
    import torchio as tio

    return {
        "motion": tio.RandomMotion(degrees=(6, 12), translation=(6, 12), num_transforms=2),
        "ghosting": tio.RandomGhosting(num_ghosts=(4, 10), intensity=(0.6, 1.0)),
        # num_spikes=(1, 1): a single number n means "0 to n spikes" to TorchIO, and the sets
        # made before this was fixed have about half their spike copies unchanged (see score)
        "spike": tio.RandomSpike(num_spikes=(1, 1), intensity=(1.5, 3.0)),
        "bias": tio.RandomBiasField(coefficients=(0.6, 0.9)),
        "noise": tio.RandomNoise(std=(0.06, 0.12)),
        "blur": tio.RandomBlur(std=(2.0, 3.5)),
    }[kind]


def make(out: Path, n: int, seed: int) -> None:
    import nibabel as nib
    import torch
    import torchio as tio
    from nilearn import datasets

    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    t1 = datasets.load_mni152_template(resolution=1)
    data = np.asarray(t1.dataobj, dtype=np.float32)
    data /= np.percentile(data[data > 0], 99)
    base = tio.ScalarImage(tensor=torch.from_numpy(data)[None], affine=t1.affine)
    rows = []
    for i in range(n):
        spacing = float(rng.choice([1.0, 1.2, 1.5]))
        pose = tio.Compose([
            tio.RandomAffine(scales=(0.9, 1.1), degrees=10, translation=5),
            tio.Resample(spacing),
            tio.RandomGamma(log_gamma=(-0.3, 0.3)),
            tio.RescaleIntensity((0, 1)),
        ])
        head = pose(tio.Subject(t1=base))
        variants = [("clean", head)] + [(k, _transform(k)(head)) for k in KINDS]
        for kind, subject in variants:
            img = subject["t1"]
            name = f"head{i:02d}_{kind}.nii.gz"
            nib.save(nib.Nifti1Image(img.data[0].numpy().astype(np.float32), img.affine),
                     str(out / name))
            rows.append(f"{name}\t{i}\t{kind}\t{int(kind != 'clean')}\t{spacing}")
        print(f"head {i + 1}/{n} ({spacing} mm)", flush=True)
    (out / "truth.tsv").write_text("file\thead\tkind\ty\tspacing_mm\n" + "\n".join(rows) + "\n")


def unchanged_copies(folder: Path, truth) -> list[str]:
    """Files of ``truth`` labelled as corrupted whose voxels equal their head's clean copy."""
    import nibabel as nib

    out = []
    for _, group in truth.groupby("head"):
        clean = group.loc[group["kind"] == "clean", "file"]
        if clean.empty:
            continue
        c = np.asarray(nib.load(str(folder / clean.iloc[0])).dataobj)
        for f in group.loc[group["kind"] != "clean", "file"]:
            a = np.asarray(nib.load(str(folder / f)).dataobj)
            if a.shape == c.shape and np.array_equal(a, c):
                out.append(str(f))
    return out


def score(folder: Path, bundle_path, seed: int) -> int:
    import pandas as pd

    from mriqc_nb import bundle, screen
    from mriqc_nb.machine import cpu_model
    from mriqc_nb.metrics import bootstrap_ci, safe_auc

    b = bundle.load_bundle(bundle_path)
    truth = pd.read_csv(folder / "truth.tsv", sep="\t")
    unchanged = unchanged_copies(folder, truth)
    if unchanged:
        print(f"{len(unchanged)} corrupted copies are identical to their clean copy (no artifact "
              f"was drawn), left out: {', '.join(unchanged)}")
        truth = truth[~truth["file"].isin(unchanged)]
    files = [str((folder / f).resolve()) for f in truth["file"]]
    out = folder / f"screened-{b.fingerprint}.tsv"  # one table per model: never mixed
    table = screen.screen(files, b, out, seed=seed)
    table = table.assign(file=[Path(p).name for p in table["path"]]).merge(truth, on="file")
    ok = table[table["status"] == "ok"]
    print(f"bundle {b.path} | CPU {cpu_model()} | {len(truth)} scans, {len(ok)} screened, "
          f"{int(truth['head'].nunique())} heads x (clean + {len(KINDS)} kinds)")
    clean = ok[ok["kind"] == "clean"]
    print(f"{'kind':10s} {'n':>3s} {'AUC':>6s}  95% interval   flagged at the bundle's threshold")
    for kind in KINDS:
        sub = pd.concat([clean, ok[ok["kind"] == kind]])
        auc, lo, hi = bootstrap_ci(safe_auc, sub["y"].to_numpy(), sub["p_artifact"].to_numpy(),
                                   n_boot=1000, seed=0)
        flagged = (ok[ok["kind"] == kind]["decision"] != "clean").mean()
        print(f"{kind:10s} {int((sub['y'] == 1).sum()):3d} {auc:6.3f}  [{lo:.3f}, {hi:.3f}]   "
              f"{flagged:.2f}")
    auc, lo, hi = bootstrap_ci(safe_auc, ok["y"].to_numpy(), ok["p_artifact"].to_numpy(),
                               n_boot=1000, seed=0)
    spec = (clean["decision"] == "clean").mean()
    print(f"clean scans called clean: {spec:.2f}")
    print(f"cross-simulator AUC {auc:.3f} [{lo:.3f}, {hi:.3f}] over {len(ok)} scans")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("dir", type=Path)
    m.add_argument("--n", type=int, default=24)
    m.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("score")
    s.add_argument("dir", type=Path)
    s.add_argument("--bundle", default=None, help="bundle folder (default: the built-in one)")
    s.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if a.cmd == "make":
        make(a.dir, a.n, a.seed)
        return 0
    return score(a.dir, a.bundle, a.seed)


if __name__ == "__main__":
    sys.exit(main())
