"""Artifact simulators against TorchIO's transforms, on one synthetic 1.5 mm head.

    python benchmarks/bench_artifacts.py [--repeats 5] [--kinds motion ghosting ...]

Builds a T1w head with :func:`mriqc_nb.synth.make_scan` (120 x 144 x 120 voxels of 1.5 mm),
then times each artifact kind as a user calls it, draw + apply
(``artifacts.corrupt(volume, kind, "prominent", seed)``), median of ``--repeats`` runs with a
new seed each. If TorchIO is importable (the ``bench`` extra), its equivalent random transform
runs on the same volume in the same process, back to back, and the ratio is printed (below 1:
ours is faster); otherwise the table gives seconds per megavoxel. The header names the CPU and
the threads available.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from mriqc_nb.machine import cpu_model

GRID, SPACING = (120, 144, 120), (1.5, 1.5, 1.5)
#: TorchIO's transform for each kind (default parameters); kinds without one are timed alone.
TORCHIO = {"motion": "RandomMotion", "ghosting": "RandomGhosting", "spike": "RandomSpike",
           "noise": "RandomNoise", "bias": "RandomBiasField", "blur": "RandomBlur"}


def median_seconds(fn, repeats: int) -> float:
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def torchio_runner(volume, affine):
    """A function ``(kind, i) -> None`` applying TorchIO's transform, or None without TorchIO."""
    try:
        import torch
        import torchio as tio
    except ImportError:
        return None
    subject = tio.Subject(t1=tio.ScalarImage(tensor=torch.from_numpy(volume[None].copy()), affine=affine))

    def run(kind, i):
        torch.manual_seed(i)
        getattr(tio, TORCHIO[kind])()(subject)

    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--kinds", nargs="+", default=None, help="default: every kind")
    args = parser.parse_args(argv)

    from mriqc_nb import artifacts, synth

    image = synth.make_scan(synth.sample_anatomy(1), synth.sample_acquisition(1, "T1w"), GRID, SPACING)
    volume = np.asarray(image.dataobj, dtype=np.float32)
    megavoxels = volume.size / 1e6
    tio_run = torchio_runner(volume, image.affine)
    print(f"CPU: {cpu_model()}; {os.cpu_count()} threads available")
    print(f"head {GRID} @ {SPACING} mm ({megavoxels:.2f} Mvoxel); prominent severity, draw + apply, "
          f"median of {args.repeats}")
    if tio_run is None:
        print("TorchIO not installed (pip install mriqc-nb[bench]): seconds per megavoxel only")
        print(f"{'kind':<12}{'seconds':>10}{'s/Mvoxel':>10}")
    else:
        import torchio

        print(f"TorchIO {torchio.__version__}: its transform with default parameters, same volume")
        print(f"{'kind':<12}{'seconds':>10}{'s/Mvoxel':>10}{'TorchIO':>20}{'TorchIO s':>11}{'ratio':>8}")
    for kind in args.kinds or list(artifacts.ARTIFACTS):
        ours = median_seconds(
            lambda i: artifacts.corrupt(volume, kind, "prominent", seed=i, spacing_mm=SPACING), args.repeats)
        line = f"{kind:<12}{ours:>10.3f}{ours / megavoxels:>10.3f}"
        if tio_run is not None and kind in TORCHIO:
            theirs = median_seconds(lambda i: tio_run(kind, i), args.repeats)
            line += f"{TORCHIO[kind]:>20}{theirs:>11.3f}{ours / theirs:>7.2f}x"
        elif tio_run is not None:
            line += f"{'-':>20}"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
