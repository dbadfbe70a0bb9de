"""How fast is ``mriqc-nb screen`` compared with just reading the files?

    python benchmarks/bench_screen.py [--sizes 40 200] [--memory-sizes 10 200] [--repeat 1]
                                      [--bundle DIR]

Writes N copies of nilearn's MNI152 template (2 mm, 91 x 109 x 91 or 99 x 117 x 95 by
nilearn version, each with its own noise)
as .nii.gz, then, from this one run:

- **bare loading**: seconds to read the first 40 and the first 200 files with nibabel
  (``np.asarray(nib.load(f).dataobj)``, float32), page cache warm;
- **screening**: wall seconds of ``mriqc-nb screen LIST --out ...`` (a fresh process, the
  default workers) on the same files, given as list files, after one unmeasured run on 2
  files (so the first timed run does not pay for cold disk caches); with ``--repeat R`` the
  fastest of R runs (the one least disturbed by other jobs on the machine). The CPU seconds
  of the process and its workers are printed too, and their marginal ratio to those of bare
  loading: they depend much less on other jobs (on an idle machine the screening's work
  spreads over the cores, so its wall ratio is below its CPU ratio);
- the **marginal seconds per scan** of each (the slope between the two sizes, so start-up
  cancels out) and their **ratio** (target <= 2, goal 1.5). The sizes were 10 and 40 until
  2026-12-02: start-up varies by seconds on a busy machine, which over 30 scans moved the
  slope by +-70 ms per scan (it even came out negative); over 160 scans it moves it by ~10;
- **start-up**: wall seconds of ``mriqc-nb screen`` on an empty folder (exit 2: the inputs are
  checked before TensorFlow loads) and the intercept of the screening line (seconds before
  the first scan: Python, TensorFlow, the bundle);
- **peak memory** (resident, the screening process and its workers together, sampled every
  50 ms) for the two ``--memory-sizes``: it should not grow with the number of scans;
- the CPU model and core count, and the load average beside every timing.

The bundle: ``--bundle``, else the built-in one, else a bundle with random weights on the
laptop profile's grid and T (the speed does not depend on the weights).
"""

from __future__ import annotations

import argparse
import os
import resource
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


_BARE_CPU: dict = {}


def bare_load(files) -> float:
    """Wall seconds to read ``files`` (their CPU seconds are kept in ``_BARE_CPU``)."""
    import nibabel as nib

    c0, t0 = time.process_time(), time.perf_counter()
    for f in files:
        np.asarray(nib.load(str(f)).dataobj, dtype=np.float32)
    wall = time.perf_counter() - t0
    n = len(files)
    _BARE_CPU[n] = min(_BARE_CPU.get(n, float("inf")), time.process_time() - c0)
    return wall


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


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _load() -> str:
    return "load %.1f" % os.getloadavg()[0]


def run_screen(args: list[str], env: dict) -> tuple[float, float, int, str, float]:
    """(wall seconds, peak resident MB of the process tree, exit status, stderr tail, CPU
    seconds of the process tree)."""
    cmd = [sys.executable, "-m", "mriqc_nb.cli", "screen", *args, "-q"]
    cpu0 = _children_cpu()
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
    return (time.perf_counter() - t0, peak / 2**20, proc.returncode, err[-600:],
            _children_cpu() - cpu0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs=2, default=(40, 200),
                    help="folder sizes of the slope (default: 40 200)")
    ap.add_argument("--memory-sizes", type=int, nargs=2, default=(10, 200),
                    help="folder sizes whose peak memory is compared (default: 10 200)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs per size; the fastest counts (default: 1)")
    ap.add_argument("--bundle", default=None, help="bundle folder (default: built-in, else random)")
    ap.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    args = ap.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]), "TF_CPP_MIN_LOG_LEVEL": "2"}
    work = Path(args.out or tempfile.mkdtemp(prefix="bench-screen-"))
    n_max = max(*args.sizes, *args.memory_sizes)
    print(f"CPU: {cpu_model()} ({len(os.sched_getaffinity(0))} cores for this process); "
          f"{_load()}")
    t0 = time.perf_counter()
    files = make_scans(work / "scans", n_max)
    import nibabel as nib

    shape = " x ".join(str(n) for n in nib.load(str(files[0])).shape)
    print(f"{n_max} scans of {shape} at 2 mm in {work / 'scans'} "
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
    repeat = max(1, args.repeat)
    bare = {n: min(bare_load(files[:n]) for _ in range(repeat)) for n in (a, b)}
    print(f"bare load: {bare[a]:.2f} s ({a}), {bare[b]:.2f} s ({b}); {_load()}")

    (work / "empty").mkdir(exist_ok=True)
    startup, _, rc, _, _ = run_screen([str(work / "empty"), "--out", str(work / "empty.tsv")],
                                      env)
    print(f"start-up, empty folder: {startup:.2f} s (exit {rc}); {_load()}")

    def screen_list(n: int, tag: str):
        lst = work / f"list{n}.txt"
        lst.write_text("".join(f"{f}\n" for f in files[:n]))
        out = work / f"results{tag}.tsv"
        for f in (out, out.with_suffix(".json")):
            f.unlink(missing_ok=True)
        return run_screen([str(lst), "--bundle", bundle, "--out", str(out)], env)

    screen_list(2, "warmup")  # cold caches (TensorFlow's files) are not paid by a timed run
    timed, peak, cpu = {}, {}, {}
    for n in sorted({a, b, *args.memory_sizes}):
        for _ in range(repeat if n in (a, b) else 1):
            wall, mem, rc, err, secs = screen_list(n, str(n))
            if rc not in (0, 1):
                print(err, file=sys.stderr)
                return 1
            print(f"screen {n:4d} scans: {wall:7.2f} s, CPU {secs:6.1f} s, peak {mem:6.0f} MB "
                  f"(exit {rc}); {_load()}")
            if wall < timed.get(n, float("inf")):
                timed[n], cpu[n] = wall, secs
            peak[n] = max(peak.get(n, 0.0), mem)

    slope_bare = (bare[b] - bare[a]) / (b - a)
    slope_screen = (timed[b] - timed[a]) / (b - a)
    intercept = timed[a] - a * slope_screen
    print(f"bare nibabel load: {bare[a]:.2f} s ({a}), {bare[b]:.2f} s ({b}): "
          f"{1000 * slope_bare:.1f} ms per scan")
    print(f"screening: {1000 * slope_screen:.1f} ms per scan (marginal); "
          f"{intercept:.1f} s before the first scan")
    print(f"ratio screening / bare load: {slope_screen / slope_bare:.2f}x "
          "(target <= 2x, goal 1.5x)")
    cpu_screen = (cpu[b] - cpu[a]) / (b - a)
    cpu_bare = (_BARE_CPU[b] - _BARE_CPU[a]) / (b - a)
    print(f"CPU of screening: {1000 * cpu_screen:.1f} ms per scan (process and workers) vs "
          f"{1000 * cpu_bare:.1f} ms of bare loading: {cpu_screen / cpu_bare:.2f}x; {_load()}")
    m1, m2 = sorted(args.memory_sizes)
    print(f"peak memory: {peak[m1]:.0f} MB ({m1} scans) vs {peak[m2]:.0f} MB ({m2} scans)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
