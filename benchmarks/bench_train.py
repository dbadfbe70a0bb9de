"""Training throughput of NN008 on this CPU: oneDNN on vs off, and pipeline vs memory.

By default (what a reader runs first): prints the CPU model (``/proc/cpuinfo``)
and NN008's training volumes per second at the profile's grid (64 x 64 x 32 for ``laptop``)
with TensorFlow's oneDNN kernels on (``TF_ENABLE_ONEDNN_OPTS=1``) and off (``=0``), each in
its own subprocess (TensorFlow reads the variable once, when it is imported), on random
volumes held in memory, so no database is needed::

    python benchmarks/bench_train.py [--profile laptop] [--repeats 3] [--n-volumes 48]

``--pipeline``: the tf.data pipeline from the on-disk cache vs the same data in memory.
Trains NN008 (compiled as :mod:`mriqc_nb.model.training` compiles it: Nadam, cyclical LR,
weighted cross-entropy) on a subset database of ``--n-scans`` scans of the profile's grid,
one pass at a time, alternately

(a) through :func:`mriqc_nb.data.pipeline.make_dataset` (file names shuffled, ``.npy`` volumes
    read from the cache, random flips, prefetch), as training does, and
(b) on the same volumes already in memory (``from_tensor_slices`` of numpy arrays, cached,
    no flips),

and prints the volumes per second of each (median and best pass) and their ratio (a) / (b):
above about 0.9 the input pipeline does not stall training. On cores shared with other
jobs single passes can be slowed at random; the best pass is then the fairer comparison.

    python benchmarks/bench_train.py --pipeline [--profile laptop] [--n-scans 64]
                                     [--repeats 5] [--mixed-precision]

``--device``: training and inference volumes per second in this interpreter, on whatever Keras
backend and device it has (random volumes in memory, numpy input, so no TensorFlow is needed:
``KERAS_BACKEND=jax`` on a GPU machine), and the training compute that the profile's baseline
and recipe imply at that rate::

    KERAS_BACKEND=jax python benchmarks/bench_train.py --device --profile colab [--mixed-precision]

The subset database is built once under ``$MRIQC_NB_HOME/databases/<profile>-bench<n>``.
``--mixed-precision`` trains in ``mixed_float16`` on a GPU (``mixed_bfloat16`` on a CPU, which
has no float16 3D pooling kernel; meant for a GPU, on most CPUs it is slower).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import replace

from mriqc_nb.machine import cpu_model

#: Marker of the child's one result line on its standard output.
_RESULT = "BENCH_RESULT "


def _random_model(args):
    """The profile, batch, ``n`` random volumes ``x`` with one-hot labels ``y``, and NN008
    compiled as :mod:`mriqc_nb.model.training` compiles it (Nadam, cyclical LR, weighted CE)."""
    import keras
    import numpy as np

    from mriqc_nb.model.networks import build_nn008
    from mriqc_nb.model.training import _compile, stage_config
    from mriqc_nb.profiles import get_profile

    profile = get_profile(args.profile)
    batch = args.batch_size or profile.batch_size
    n = max(batch, args.n_volumes // batch * batch)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, *profile.grid, 1), dtype=np.float32)
    y = np.eye(2, dtype="float32")[rng.integers(0, 2, n)]
    config = stage_config("baseline", profile, batch_size=batch, epochs=1, finetune_epochs=0)
    keras.utils.set_random_seed(0)
    model = build_nn008((*profile.grid, 1))
    _compile(model, config, [n // batch])
    return profile, batch, x, y, model


def _child(args) -> int:
    """Time NN008 training on random in-memory volumes; print one JSON result line."""
    import tensorflow as tf

    profile, batch, x, y, model = _random_model(args)
    n = len(x)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch, drop_remainder=True).cache()
    model.fit(ds, epochs=1, verbose=0)  # warm-up: tracing, allocation
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        model.fit(ds, epochs=1, verbose=0, shuffle=False)
        times.append(time.perf_counter() - t)
    print(_RESULT + json.dumps(dict(
        onednn=os.environ.get("TF_ENABLE_ONEDNN_OPTS"), volumes=n, batch=batch,
        grid=list(profile.grid), median_s=statistics.median(times), best_s=min(times),
        tf=tf.__version__, threads=tf.config.threading.get_intra_op_parallelism_threads())))
    return 0


def device_main(args) -> int:
    """NN008 on whatever Keras backend and device this interpreter has (a GPU machine).

    Trains on random volumes held in memory (numpy arrays: no tf.data, so any backend works)
    and times inference (one deterministic forward pass per volume), each for ``--repeats``
    passes after a warm-up; prints volumes per second of both, and the compute-only training
    time of the profile's stages that these imply (data loading and validation excluded).
    """
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax
        device = ", ".join(sorted({d.device_kind for d in jax.devices()}))
        on_cpu = all(d.platform == "cpu" for d in jax.devices())
    elif backend == "tensorflow":
        import tensorflow as tf
        gpus = tf.config.list_physical_devices("GPU")
        device = (", ".join(tf.config.experimental.get_device_details(g).get("device_name", "GPU")
                            for g in gpus) or "CPU")
        on_cpu = not gpus
    else:
        device, on_cpu = "?", False
    if args.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_bfloat16" if on_cpu
                                                else "mixed_float16")
    profile, batch, x, y, model = _random_model(args)
    n = len(x)
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)  # warm-up
    model.predict(x, batch_size=batch, verbose=0)
    fit, pred = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)
        fit.append(time.perf_counter() - t)
        t = time.perf_counter()
        model.predict(x, batch_size=batch, verbose=0)
        pred.append(time.perf_counter() - t)
    train_vps, pred_vps = n / statistics.median(fit), n / statistics.median(pred)
    print(f"device: {device}; Keras {keras.__version__}, backend {backend}, policy "
          f"{keras.mixed_precision.global_policy().name}; host CPU: {cpu_model()}")
    print(f"NN008, profile {profile.name}, grid {profile.grid}, batch {batch}, {n} random "
          f"volumes in memory, median of {args.repeats} passes after a warm-up")
    print(f"  training  {train_vps:10.1f} volumes/s (best {n / min(fit):.1f})")
    print(f"  inference {pred_vps:10.1f} volumes/s (best {n / min(pred):.1f})")
    rec = profile.extra.get("recipe", {})
    steps = {"baseline": profile.epochs_baseline * profile.n_scans * profile.split_fractions[0],
             "recipe": rec.get("rounds", 0) * rec.get("steps_per_round", 0) * rec.get("batch_size", batch)}
    for name, vols in steps.items():
        print(f"  {name}: {vols:,.0f} training volumes -> {vols / train_vps / 60:.1f} min of "
              "training compute at this rate")
    return 0


def onednn_main(args) -> int:
    """Run :func:`_child` with oneDNN on and off, each in a fresh interpreter; print a table."""
    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical cores)")
    results = {}
    for flag in ("1", "0"):
        env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": flag, "TF_CPP_MIN_LOG_LEVEL": "2"}
        cmd = [sys.executable, os.path.abspath(__file__), "--child", "--profile", args.profile,
               "--repeats", str(args.repeats), "--n-volumes", str(args.n_volumes)]
        if args.batch_size:
            cmd += ["--batch-size", str(args.batch_size)]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True)
        lines = [s for s in out.stdout.splitlines() if s.startswith(_RESULT)]
        if out.returncode or not lines:
            print(f"oneDNN={flag}: the benchmark failed (exit {out.returncode})\n{out.stderr[-2000:]}")
            return 1
        results[flag] = json.loads(lines[-1][len(_RESULT):])
    r = results["1"]
    print(f"NN008 training, grid {tuple(r['grid'])}, batch {r['batch']}, {r['volumes']} random "
          f"volumes in memory per pass, {args.repeats} passes after a warm-up, TF {r['tf']}")
    print(f"{'oneDNN':<8}{'median s':>10}{'best s':>9}{'vol/s (median)':>16}{'vol/s (best)':>14}")
    for flag, name in (("1", "on"), ("0", "off")):
        q = results[flag]
        print(f"{name:<8}{q['median_s']:>10.2f}{q['best_s']:>9.2f}"
              f"{q['volumes'] / q['median_s']:>16.2f}{q['volumes'] / q['best_s']:>14.2f}")
    speedup = results["0"]["median_s"] / results["1"]["median_s"]
    print(f"speed-up of oneDNN on (median): {speedup:.2f}x")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline", action="store_true",
                        help="compare the tf.data pipeline with in-memory input instead")
    parser.add_argument("--device", action="store_true",
                        help="time training and inference on this interpreter's Keras backend "
                             "and device (e.g. KERAS_BACKEND=jax on a GPU machine)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--n-volumes", type=int, default=48,
                        help="random volumes per pass of the oneDNN benchmark (default 48)")
    parser.add_argument("--profile", default="laptop")
    parser.add_argument("--n-scans", type=int, default=64, help="scans in the subset (default 64)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the profile's")
    parser.add_argument("--repeats", type=int, default=None,
                        help="passes of each (default 3 for oneDNN, 5 for --pipeline)")
    parser.add_argument("--mixed-precision", action="store_true",
                        help="mixed_float16 (GPU) / mixed_bfloat16 (CPU) policy")
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 5 if args.pipeline else 3
    if args.child:
        return _child(args)
    if args.device:
        return device_main(args)
    if not args.pipeline:
        return onednn_main(args)

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
