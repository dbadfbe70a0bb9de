"""Does the paper's second stage undo priming because of its step size? (NOTES section 16)

Over training seeds 0-2 the primed baseline (the primed network trained on the whole 98%-clean
training set with class weights, 5 + 3 epochs) ends below the primed network it starts from, and
its training loss stays above that of a network that gives every scan the same probability
(``diagnostics.constant_loss``). One candidate cause: the cyclical schedule's peak learning rate
(1e-3, as in the paper) turns the rare artifact batches of a class weight of 49 at batch 8 into
large single-example steps that wipe out what priming learnt.

This script trains a second stage (``--stage``: the primed baseline, or the ramp) once more
from the *same* primed network of one seed (``tools/experiments.py``'s run folder), with the
schedule's rates divided by ``--scale``, writes its per-scan predictions beside the committed
ones (``--out``; MC dropout, T as in ``tools/experiments.py``) and prints its validation AUC
against the primed network's and the committed run's of the same stage at the paper's rates
(paired bootstrap), its training-loss ratios to the constant, and, after that, the test AUC. It is a diagnosis, not a choice of the book's: the paper's stages keep
their settings.

    python experiments/second_stage_lr.py --seed 2 --scale 10
    python experiments/second_stage_lr.py --seed 2 --scale 10 --stage ramp
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "tools", ROOT / "experiments"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import experiments as ex  # noqa: E402  (tools/experiments.py)
from pool_seeds import against_committed  # noqa: E402

from mriqc_nb import diagnostics  # noqa: E402
from mriqc_nb.model import training  # noqa: E402
from mriqc_nb.profiles import get_profile  # noqa: E402
from mriqc_nb.machine import cpu_model  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="laptop")
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--stage", default="primed_baseline", choices=["primed_baseline", "ramp"])
    ap.add_argument("--scale", type=float, default=10.0,
                    help="divide the schedule's base and peak learning rates by this")
    ap.add_argument("--scans", default=str(ROOT / "results" / "laptop-scans"),
                    help="folder of the committed per-scan predictions")
    ap.add_argument("--out", default=str(ROOT / "experiments" / "second_stage"))
    args = ap.parse_args(argv)

    p = get_profile(args.profile)
    folder = ex.seed_runs_dir(p, args.seed)
    if not (folder / "prime").is_dir():
        raise SystemExit(f"{folder / 'prime'}: no primed network of seed {args.seed}; "
                         "run tools/experiments.py for that seed first")
    base = training.stage_config(args.stage, p, seed=args.seed)
    name = f"{args.stage}-lr{args.scale:g}"
    t0 = time.perf_counter()
    run = training.train_stage(args.stage, p, run_dir=folder / name, seed=args.seed,
                               base_lr=base.base_lr / args.scale,
                               max_lr=base.max_lr / args.scale)
    t1 = time.perf_counter()
    tables = ex.predict_method(run, p)
    t2 = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    mine = out / f"{name}_seed-{args.seed}.tsv.gz"
    ex.write_scans(tables, mine)
    print(f"profile {p.name}, seed {args.seed}, rates / {args.scale:g} "
          f"(peak {base.max_lr / args.scale:g}); CPU {cpu_model()}; training "
          f"{max(t1 - t0, ex.training_seconds(run)):.0f} s, predicting {t2 - t1:.0f} s")

    fit = diagnostics.constant_loss(run.history)
    print("training loss / best constant loss per epoch:",
          " ".join(f"{r:.2f}" for r in fit["ratio"]))
    result = {"seed": args.seed, "scale": args.scale, "stage": args.stage,
              **against_committed(pd.read_csv(mine, sep="\t"), name, Path(args.scans), args.seed,
                                  ("prime", args.stage))}
    result["ratio"] = [round(float(x), 3) for x in fit["ratio"]]
    print("RESULT " + json.dumps(result, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
