"""Training throughput: the tf.data pipeline from the on-disk cache vs the same data in memory.

Trains NN008 (compiled as :mod:`mriqc_nb.model.training` compiles it: Nadam, cyclical LR, weighted
cross-entropy) on a subset database of ``--n-scans`` scans of the profile's grid, one pass at
a time, alternately

(a) through :func:`mriqc_nb.data.pipeline.make_dataset` (file names shuffled, ``.npy`` volumes
    read from the cache, random flips, prefetch), as training does, and
(b) on the same volumes already in memory (``from_tensor_slices`` of numpy arrays, cached,
    no flips),

and prints the volumes per second of each (median and best pass) and their ratio (a) / (b):
above about 0.9 the input pipeline does not stall training. On cores shared with other
jobs single passes can be slowed at random; the best pass is then the fairer comparison.

    python benchmarks/bench_train.py [--profile laptop] [--n-scans 64] [--repeats 5]
                                     [--mixed-precision]

The subset database is built once under ``$MRIQC_NB_HOME/databases/<profile>-bench<n>``.
``--mixed-precision`` trains in ``mixed_float16`` on a GPU (``mixed_bfloat16`` on a CPU, which
has no float16 3D pooling kernel; meant for a GPU, on most CPUs it is slower).
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="laptop")
    parser.add_argument("--n-scans", type=int, default=64, help="scans in the subset (default 64)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the profile's")
    parser.add_argument("--repeats", type=int, default=5, help="passes of each (default 5)")
    parser.add_argument("--mixed-precision", action="store_true",
                        help="mixed_float16 (GPU) / mixed_bfloat16 (CPU) policy")
    args = parser.parse_args(argv)

    from mriqc_nb.data import build_database, load_arrays
    from mriqc_nb.paths import database_dir
    from mriqc_nb.profiles import get_profile

    base = get_profile(args.profile)
    profile = replace(base, name=f"{base.name}-bench{args.n_scans}", n_scans=args.n_scans,
                      n_subtle=0)
    t0 = time.perf_counter()
    table = build_database(profile, database_dir(profile), progress=False)  # before TF: fork
    table = table[table["split"] != "subtle"]
    print(f"database: {len(table)} scans of {profile.grid} ready in "
          f"{time.perf_counter() - t0:.1f} s")

    import keras
    import numpy as np
    import tensorflow as tf

    from mriqc_nb.model.networks import build_nn008
    from mriqc_nb.data.pipeline import make_dataset
    from mriqc_nb.model.training import _compile, stage_config

    if args.mixed_precision:  # TF's CPU kernels have no float16 MaxPool3D: bfloat16 there
        gpu = bool(tf.config.list_physical_devices("GPU"))
        keras.mixed_precision.set_global_policy("mixed_float16" if gpu else "mixed_bfloat16")
    batch = args.batch_size or profile.batch_size
    steps = len(table) // batch
    config = stage_config("baseline", profile, batch_size=batch, epochs=1, finetune_epochs=0)
    model = build_nn008((*profile.grid, 1))
    _compile(model, config, [steps])
    model.loss.set_class_weights([1.0, 49.0])

    pipeline = make_dataset(table, batch_size=batch, training=True, seed=0, drop_remainder=True)
    x, labels = load_arrays(table)
    y = np.eye(2, dtype="float32")[labels]
    memory = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch, drop_remainder=True).cache()
    for _ in memory:  # fill the cache outside the timings
        pass
    datasets = {"pipeline": pipeline, "memory": memory}
    model.fit(memory, epochs=1, verbose=0)  # warm-up: tracing, allocation

    times = {name: [] for name in datasets}
    for _ in range(args.repeats):
        for name, ds in datasets.items():
            t = time.perf_counter()
            model.fit(ds, epochs=1, verbose=0, shuffle=False)
            times[name].append(time.perf_counter() - t)
    n = steps * batch
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    policy = keras.mixed_precision.global_policy().name
    print(f"training NN008, profile {base.name} grid {profile.grid}, batch {batch}, {n} volumes "
          f"per pass, {policy}, {args.repeats} passes each (alternating), "
          f"{len(tf.config.list_physical_devices('GPU'))} GPU(s)")
    print(f"{'input':<10}{'median s':>10}{'best s':>9}{'vol/s (median)':>16}{'vol/s (best)':>14}")
    for k in datasets:
        print(f"{k:<10}{med[k]:>10.3f}{best[k]:>9.3f}{n / med[k]:>16.2f}{n / best[k]:>14.2f}")
    print(f"ratio pipeline / memory (volumes/s): median {med['memory'] / med['pipeline']:.2f}, "
          f"best {best['memory'] / best['pipeline']:.2f}  (> ~0.9: loading does not stall "
          "training; on shared cores trust 'best')")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
