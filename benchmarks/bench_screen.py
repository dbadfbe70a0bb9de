"""How fast is ``mriqc-nb screen`` compared with just reading the files?

    python benchmarks/bench_screen.py [--sizes 10 40] [--memory-sizes 10 200] [--bundle DIR]

Writes N copies of nilearn's MNI152 template (2 mm, 91 x 109 x 91, each with its own noise)
as .nii.gz, then, from this one run:

- **bare loading**: seconds to read the first 10 and the first 40 files with nibabel
  (``np.asarray(nib.load(f).dataobj)``, float32), page cache warm;
- **screening**: wall seconds of ``mriqc-nb screen LIST --out ...`` (a fresh process, the
  default workers) on the same files, given as list files;
- the **marginal seconds per scan** of each (the slope between the two sizes, so start-up
  cancels out) and their **ratio** (target <= 2, goal 1.5);
- **start-up**: wall seconds of ``mriqc-nb screen`` on an empty folder (exit 2: the inputs are
  checked before TensorFlow loads) and the intercept of the screening line (seconds before
  the first scan: Python, TensorFlow, the bundle);
- **peak memory** (resident, the screening process and its workers together, sampled every
  50 ms) for the two ``--memory-sizes``: it should not grow with the number of scans;
- the CPU model and core count.

The bundle: ``--bundle``, else the built-in one, else a bundle with random weights on the
laptop profile's grid and T (the speed does not depend on the weights).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mriqc_nb.machine import cpu_model

ROOT = Path(__file__).resolve().parents[1]


def make_scans(folder: Path, n: int) -> list[Path]:
    """``n`` noisy copies of the MNI152 template at 2 mm (float32 .nii.gz)."""
    import nibabel as nib
    from nilearn.datasets import load_mni152_template

    folder.mkdir(parents=True, exist_ok=True)
    mni = load_mni152_template(resolution=2)
    base = np.asarray(mni.get_fdata(), dtype=np.float32)
    out = []
    for i in range(n):
        f = folder / f"sub-{i:03d}_T1w.nii.gz"
        if not f.exists():
            rng = np.random.default_rng(i)
            vol = base + rng.normal(0, 0.02 * base.max(), base.shape).astype(np.float32)
            nib.save(nib.Nifti1Image(vol, mni.affine), str(f))
        out.append(f)
    return out


def random_bundle(folder: Path) -> Path:
    """A bundle with random weights on the laptop profile's grid, spacing and T."""
    import keras

    from mriqc_nb.bundle import save_bundle
    from mriqc_nb.model.networks import build_nn008
    from mriqc_nb.profiles import get_profile
    from mriqc_nb.referral import ReferralPolicy, UncertaintyScaler

    p = get_profile("laptop")
    keras.utils.set_random_seed(0)
    policy = ReferralPolicy("mutual_information", eta=0.5, threshold=0.5,
                            scaler=UncertaintyScaler.fit([0.0, 0.05]))
    return save_bundle(folder, build_nn008((*p.grid, 1)), grid=p.grid, spacing_mm=p.spacing_mm,
                       policy=policy, mc_samples=p.mc_samples_test,
                       validation={"auc": 1.0, "n_scans": 0, "n_artifact": 0})


def bare_load(files) -> float:
    import nibabel as nib

    t0 = time.perf_counter()
    for f in files:
        np.asarray(nib.load(str(f)).dataobj, dtype=np.float32)
    return time.perf_counter() - t0


def _tree_rss(proc) -> int:
    import psutil

    try:
        p = psutil.Process(proc.pid)
        procs = [p, *p.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for q in procs:
        try:
            total += q.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_screen(args: list[str], env: dict) -> tuple[float, float, int, str]:
    """(wall seconds, peak resident MB of the process tree, exit status, stderr tail)."""
    cmd = [sys.executable, "-m", "mriqc_nb.cli", "screen", *args, "-q"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    peak = 0
    try:
        import psutil  # noqa: F401

        while proc.poll() is None:
            peak = max(peak, _tree_rss(proc))
            time.sleep(0.05)
    except ImportError:
        pass
    err = proc.communicate()[1]
    return time.perf_counter() - t0, peak / 2**20, proc.returncode, err[-600:]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs=2, default=(10, 40),
                    help="folder sizes of the slope (default: 10 40)")
    ap.add_argument("--memory-sizes", type=int, nargs=2, default=(10, 200),
                    help="folder sizes whose peak memory is compared (default: 10 200)")
    ap.add_argument("--bundle", default=None, help="bundle folder (default: built-in, else random)")
    ap.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    args = ap.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]), "TF_CPP_MIN_LOG_LEVEL": "2"}
    work = Path(args.out or tempfile.mkdtemp(prefix="bench-screen-"))
    n_max = max(*args.sizes, *args.memory_sizes)
    print(f"CPU: {cpu_model()} ({len(os.sched_getaffinity(0))} cores for this process)")
    t0 = time.perf_counter()
    files = make_scans(work / "scans", n_max)
    print(f"{n_max} scans of 91 x 109 x 91 at 2 mm in {work / 'scans'} "
          f"({time.perf_counter() - t0:.0f} s to write)")
    bundle = args.bundle
    if bundle is None:
        from mriqc_nb.bundle import BundleError, default_bundle

        try:
            bundle = str(default_bundle())
        except BundleError:
            bundle = str(random_bundle(work / "bundle"))
    print(f"bundle: {bundle}")

    bare_load(files[:max(args.sizes)])  # warm the page cache for both
    a, b = sorted(args.sizes)
    bare = {n: bare_load(files[:n]) for n in (a, b)}

    (work / "empty").mkdir(exist_ok=True)
    startup, _, rc, _ = run_screen([str(work / "empty"), "--out", str(work / "empty.tsv")], env)
    print(f"start-up, empty folder: {startup:.2f} s (exit {rc})")

    timed, peak = {}, {}
    for n in sorted({a, b, *args.memory_sizes}):
        lst = work / f"list{n}.txt"
        lst.write_text("".join(f"{f}\n" for f in files[:n]))
        out = work / f"results{n}.tsv"
        for f in (out, out.with_suffix(".json")):
            f.unlink(missing_ok=True)
        timed[n], peak[n], rc, err = run_screen([str(lst), "--bundle", bundle, "--out", str(out)],
                                                env)
        print(f"screen {n:4d} scans: {timed[n]:7.2f} s, peak {peak[n]:6.0f} MB (exit {rc})")
        if rc not in (0, 1):
            print(err, file=sys.stderr)
            return 1

    slope_bare = (bare[b] - bare[a]) / (b - a)
    slope_screen = (timed[b] - timed[a]) / (b - a)
    intercept = timed[a] - a * slope_screen
    print(f"bare nibabel load: {bare[a]:.2f} s ({a}), {bare[b]:.2f} s ({b}): "
          f"{1000 * slope_bare:.1f} ms per scan")
    print(f"screening: {1000 * slope_screen:.1f} ms per scan (marginal); "
          f"{intercept:.1f} s before the first scan")
    print(f"ratio screening / bare load: {slope_screen / slope_bare:.2f}x "
          "(target <= 2x, goal 1.5x)")
    m1, m2 = sorted(args.memory_sizes)
    print(f"peak memory: {peak[m1]:.0f} MB ({m1} scans) vs {peak[m2]:.0f} MB ({m2} scans)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
