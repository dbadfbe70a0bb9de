"""Foundation timings: conform a 1 mm head, synthesise a subject, apply each artifact.

    python benchmarks/bench_foundation.py [--profile laptop] [--repeats 5]

Prints the median of ``--repeats`` runs of each step, measured in one process, at the
profile's grid, and each step's cost relative to synthesising one scan.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="laptop")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    from nilearn.datasets import load_mni152_template

    from mriqc_nb import artifacts, synth
    from mriqc_nb import scans as io
    from mriqc_nb.profiles import get_profile

    p = get_profile(args.profile)
    head = load_mni152_template(resolution=1)  # 197 x 233 x 189 at 1 mm, ships with nilearn
    t0 = time.perf_counter()
    synth.tissue_maps()
    first_maps = time.perf_counter() - t0
    anatomy, acquisition = synth.sample_anatomy(1), synth.sample_acquisition(1, "T1w")
    synth.make_scan(anatomy, acquisition, p.grid, p.spacing_mm)  # warm the per-spacing cache
    volume = synth.make_scan(anatomy, acquisition, p.grid, p.spacing_mm).get_fdata(dtype=np.float32)

    rows = [
        ("conform MNI152 1 mm head", _median_seconds(lambda: io.conform(head, p.grid, p.spacing_mm), args.repeats)),
        ("synthesise one scan", _median_seconds(lambda: synth.make_scan(anatomy, acquisition, p.grid, p.spacing_mm), args.repeats)),
    ]
    for kind in artifacts.ARTIFACTS:
        params = artifacts.sample_params(kind, "prominent", seed=0, shape=volume.shape, spacing_mm=p.spacing_mm)
        rows.append((f"artifact {kind}", _median_seconds(lambda: artifacts.apply(volume, params, p.spacing_mm), args.repeats)))
    synth_s = rows[1][1]
    print(f"profile {p.name}: grid {p.grid} @ {p.spacing_mm} mm; median of {args.repeats} runs; "
          f"tissue maps first call {first_maps:.2f} s (cached afterwards)")
    print(f"{'step':<28}{'seconds':>10}{'vs synthesis':>14}")
    for name, s in rows:
        print(f"{name:<28}{s:>10.4f}{s / synth_s:>13.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
