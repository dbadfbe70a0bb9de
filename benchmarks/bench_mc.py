"""Fast vs naive Monte Carlo dropout: time both in one run and print the ratio.

Fast MC (:func:`mriqc_nb.predict.predict_mc_fast`) runs NN008's convolutional trunk once per
batch and only the (stochastic) head on T copies of each scan's features; naive MC runs the
whole network T times, as the paper's code did. Both give (T, N, 2) samples that are equal in distribution (tests/test_model.py).

    python benchmarks/bench_mc.py [--profile laptop] [--T 50] [--n 8] [--repeats 3]

Prints the median of ``--repeats`` timings of each, measured alternately in the same process,
so that the ratio is robust to the machine's load. Target: at least 10x.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="laptop")
    parser.add_argument("--T", type=int, default=50, help="MC samples (default 50)")
    parser.add_argument("--n", type=int, default=8, help="volumes (default 8)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    import tensorflow as tf  # noqa: F401  (C++ start-up lines go to stderr)

    from mriqc_nb.model.networks import build_nn008
    from mriqc_nb.predict import predict_mc_fast, predict_mc_naive
    from mriqc_nb.profiles import get_profile

    profile = get_profile(args.profile)
    model = build_nn008((*profile.grid, 1))
    x = np.random.default_rng(0).standard_normal((args.n, *profile.grid, 1)).astype(np.float32)
    # warm-up (graph building, memory allocation) outside the timings
    predict_mc_fast(model, x[:1], 2, seed=0, batch_size=args.batch_size)
    predict_mc_naive(model, x[:1], 2, seed=0, batch_size=args.batch_size)

    times = {"fast": [], "naive": []}
    for r in range(args.repeats):
        for name, fn in (("fast", predict_mc_fast), ("naive", predict_mc_naive)):
            t0 = time.perf_counter()
            samples = fn(model, x, args.T, seed=r, batch_size=args.batch_size)
            times[name].append(time.perf_counter() - t0)
            assert samples.shape == (args.T, args.n, 2)
    fast, naive = statistics.median(times["fast"]), statistics.median(times["naive"])
    print(f"MC dropout, NN008, profile {profile.name} grid {profile.grid}, T={args.T}, "
          f"{args.n} volumes, batch {args.batch_size}, median of {args.repeats}")
    print(f"{'method':<8}{'seconds':>10}{'volumes/s':>12}")
    print(f"{'naive':<8}{naive:>10.3f}{args.n / naive:>12.2f}")
    print(f"{'fast':<8}{fast:>10.3f}{args.n / fast:>12.2f}")
    print(f"speed-up (naive / fast): {naive / fast:.1f}x  (target >= 10x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
