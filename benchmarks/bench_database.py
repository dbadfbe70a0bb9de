"""Benchmark of the scan database: build speed, cache speed, and memory against database size.

Prints two tables:

1. **Speed** at the laptop profile's grid (64 x 64 x 32) on a subset of its database:
   scans per second built the first time (1 process, and all cores), read back from the cache
   (``load_volume``), and fed through the tf.data training pipeline (shuffle, flips, batches).
2. **Memory** at the paper's grid (256 x 256 x 64): peak resident memory while building two
   database sizes, each in a fresh subprocess, sampled over the whole process tree (parent and
   workers). If the builder held the volumes, the peak would grow with the size (the column
   "volumes if held"); it stays flat instead.

Usage::

    python benchmarks/bench_database.py                 # 200 laptop scans; 20 and 80 paper scans
    python benchmarks/bench_database.py --quick         # 40 laptop scans; 4 and 16 paper scans
    python benchmarks/bench_database.py --laptop-scans 500 --mem-sizes 20 200 --workers 8
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from mriqc_nb.data import build_database, load_volume
from mriqc_nb.data.build import default_workers
from mriqc_nb.data.cache import cache_dir_for
from mriqc_nb.machine import cpu_model
from mriqc_nb.profiles import get_profile


def _subset(profile: str, n: int):
    return replace(get_profile(profile), n_scans=n, n_subtle=0)


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*.npy"))


def speed(n_scans: int, workers: int) -> list[dict]:
    p = _subset("laptop", n_scans)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for w in sorted({1, workers}):
            out = Path(tmp) / f"w{w}"
            t = time.perf_counter()
            table = build_database(p, out, workers=w, progress=False)
            dt = time.perf_counter() - t
            rows.append(dict(step=f"first build, {w} process{'es' if w > 1 else ''}", scans=len(table),
                             seconds=dt, scans_per_s=len(table) / dt))
        t = time.perf_counter()
        build_database(p, out, workers=workers, progress=False)
        dt = time.perf_counter() - t
        rows.append(dict(step="second build (all cached)", scans=len(table), seconds=dt, scans_per_s=len(table) / dt))

        cache = cache_dir_for(out, p.grid, p.spacing_mm)
        t = time.perf_counter()
        for _, row in table.iterrows():
            load_volume(row, cache)
        dt = time.perf_counter() - t
        rows.append(dict(step="read from cache (load_volume)", scans=len(table), seconds=dt, scans_per_s=len(table) / dt))

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from mriqc_nb.data.pipeline import make_dataset

        ds = make_dataset(table, batch_size=p.batch_size, training=True, seed=0)
        for _ in ds.take(1):
            pass  # build the graph
        t = time.perf_counter()
        n = sum(int(x.shape[0]) for x, _ in ds)
        dt = time.perf_counter() - t
        rows.append(dict(step="tf.data pass (shuffle+flips+batch)", scans=n, seconds=dt, scans_per_s=n / dt))
        per_scan = _dir_bytes(out / "cache") / max(1, len(table)) / 2  # two caches were built
    for r in rows:
        r["vs_first_build"] = r["scans_per_s"] / rows[0]["scans_per_s"]
    return rows, per_scan


def _child_build(n_scans: int, workers: int, out: str) -> None:
    """Run in a subprocess: build ``n_scans`` paper-grid scans, print peak RSS as JSON."""
    p = _subset("paper", n_scans)
    t = time.perf_counter()
    table = build_database(p, out, workers=workers, progress=False)
    dt = time.perf_counter() - t
    kib = 1 if sys.platform != "darwin" else 1 / 1024
    print(json.dumps(dict(
        scans=len(table), seconds=dt,
        parent_peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * kib / 1024,
        worker_peak_mb=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * kib / 1024,
        cache_mb=_dir_bytes(Path(out)) / 2**20,
    )))


def memory(sizes, workers: int) -> list[dict]:
    import psutil

    rows = []
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, __file__, "--child", str(n), "--workers", str(workers), "--out", tmp]
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
            ps = psutil.Process(proc.pid)
            peak_tree = 0
            while proc.poll() is None:
                try:
                    tree = [ps] + ps.children(recursive=True)
                    peak_tree = max(peak_tree, sum(q.memory_info().rss for q in tree if q.is_running()))
                except psutil.Error:
                    pass
                time.sleep(0.1)
            out = proc.stdout.read()
            if proc.returncode:
                raise RuntimeError(f"child build of {n} scans failed ({proc.returncode})")
            r = json.loads(out.strip().splitlines()[-1])
        vol_mb = np.prod(get_profile("paper").grid) * 4 / 2**20
        r.update(tree_peak_mb=peak_tree / 2**20, volumes_if_held_mb=n * vol_mb)
        rows.append(r)
    return rows


def _print(rows, cols, fmt):
    widths = {c: max(len(c), *(len(fmt.get(c, "{}").format(r[c])) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(fmt.get(c, "{}").format(r[c]).ljust(widths[c]) for c in cols))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--laptop-scans", type=int, default=200)
    ap.add_argument("--mem-sizes", type=int, nargs=2, default=(20, 80))
    ap.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    ap.add_argument("--quick", action="store_true", help="40 laptop scans; 4 and 16 paper scans")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    workers = args.workers or default_workers()
    if args.child is not None:
        _child_build(args.child, workers, args.out)
        return 0
    if args.quick:
        args.laptop_scans, args.mem_sizes = 40, (4, 16)
    
    print(f"# bench_database: {cpu_model()}, {os.cpu_count()} CPUs "
          f"({workers} workers), load average {os.getloadavg()[0]:.1f}")
    if not args.skip_memory:
        # memory first: the speed part imports TensorFlow, whose threads make the parent spawn
        mem = memory(args.mem_sizes, workers)
    if not args.skip_speed:
        rows, per_scan = speed(args.laptop_scans, workers)
        print(f"\n## Speed: laptop grid {get_profile('laptop').grid}, {args.laptop_scans} scans "
              f"({per_scan / 2**10:.0f} KiB per cached scan)")
        _print(rows, ["step", "scans", "seconds", "scans_per_s", "vs_first_build"],
               {"seconds": "{:.2f}", "scans_per_s": "{:.1f}", "vs_first_build": "{:.1f}x"})
    if not args.skip_memory:
        print(f"\n## Memory: paper grid {get_profile('paper').grid}, build in a fresh process per size")
        _print(mem, ["scans", "seconds", "parent_peak_mb", "worker_peak_mb", "tree_peak_mb", "volumes_if_held_mb", "cache_mb"],
               {k: "{:.0f}" for k in ("parent_peak_mb", "worker_peak_mb", "tree_peak_mb", "volumes_if_held_mb", "cache_mb")}
               | {"seconds": "{:.1f}"})
        a, b = mem
        print(f"size x{b['scans'] / a['scans']:.0f}: tree peak x{b['tree_peak_mb'] / a['tree_peak_mb']:.2f}, "
              f"parent peak x{b['parent_peak_mb'] / a['parent_peak_mb']:.2f}, "
              f"worker peak x{b['worker_peak_mb'] / a['worker_peak_mb']:.2f} "
              f"(volumes if held: x{b['volumes_if_held_mb'] / a['volumes_if_held_mb']:.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
