"""Chapter 7's two flip methods from one trunk pass per flip: time both ways in one run.

Chapter 7 asks for ``"flips"`` (the 8 flips, dropout off) and ``"mc_flips"`` (T MC-dropout
samples on each flip) of every validation and test scan. Apart, they pass each flip of each
scan through the whole network (flips) and then through the trunk again (MC x flips).
:func:`mriqc_nb.predict.predict_mc_and_flips` passes each flip through the trunk once and
reads both heads from it (``predict_split`` does so for ``"mc_flips"`` and caches the flips
beside it).

    python benchmarks/bench_flips.py [--profile laptop] [--T 12] [--n 32] [--repeats 3]

Prints the CPU, the median of ``--repeats`` timings of each way (measured alternately in one
process) and their ratio, and the largest difference between the two ways' outputs.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="laptop")
    parser.add_argument("--T", type=int, default=12,
                        help="MC samples per flip (default 12: chapter 7's T // 8 at T 100)")
    parser.add_argument("--n", type=int, default=32, help="volumes (default 32)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    import tensorflow as tf  # noqa: F401  (C++ start-up lines go to stderr)

    from mriqc_nb.machine import cpu_model
    from mriqc_nb.model.networks import build_nn008
    from mriqc_nb.predict import predict_mc_and_flips, predict_samples
    from mriqc_nb.profiles import get_profile

    profile = get_profile(args.profile)
    model = build_nn008((*profile.grid, 1))
    x = np.random.default_rng(0).standard_normal((args.n, *profile.grid, 1)).astype(np.float32)
    kw = dict(seed=0, batch_size=args.batch_size)

    def apart():
        return (predict_samples(model, x, "mc_flips", args.T, **kw),
                predict_samples(model, x, "flips", args.T, **kw))

    def together():
        return predict_mc_and_flips(model, x, args.T, **kw)

    apart(), together()  # warm-up: tracing, memory
    times = {"apart": [], "together": []}
    out = {}
    for _ in range(args.repeats):
        for name, fn in (("apart", apart), ("together", together)):
            t0 = time.perf_counter()
            out[name] = fn()
            times[name].append(time.perf_counter() - t0)
    a, t = statistics.median(times["apart"]), statistics.median(times["together"])
    diff = max(float(np.abs(p - q).max()) for p, q in zip(out["apart"], out["together"]))
    print(f"CPU: {cpu_model()}")
    print(f"flips and MC x flips, NN008, profile {profile.name} grid {profile.grid}, "
          f"T={args.T} per flip, {args.n} volumes, batch {args.batch_size}, "
          f"median of {args.repeats}")
    print(f"{'way':<10}{'seconds':>10}{'volumes/s':>12}")
    for name, sec in (("apart", a), ("together", t)):
        print(f"{name:<10}{sec:>10.3f}{args.n / sec:>12.2f}")
    print(f"speed-up (apart / together): {a / t:.2f}x; largest difference of the samples "
          f"{diff:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
