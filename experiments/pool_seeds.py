"""Two versions of a method over the same training seeds, from their per-scan predictions.

``tools/experiments.py`` keeps every row's per-scan predictions (validation, test, subtle set;
MC dropout at one T) in ``results/<profile>-scans/<method>_seed-<s>.tsv.gz``. This script
reads two such folders, A and B, for the seeds both hold, and prints per seed:

* validation AUC of A and of B and the paired bootstrap difference A - B (same scans,
  stratified, 1,000 replicates, seed 0): the split that may decide;
* the same on test, reported after the decision, never used for it;

then the mean over seeds of each, and one ``RESULT`` JSON line. NOTES section 15 decides
``onto_clean`` with it (A = 1,500, B = 300)::

    git worktree add /tmp/pool300 cb64a33     # the 300 version's predictions, seeds 0-2
    python experiments/pool_seeds.py --a results/laptop-scans \\
        --b /tmp/pool300/results/laptop-scans --method recipe --seeds 0 1 2

Two *methods* of one folder pair the same way (NOTES section 16: the paper's stages over
seeds)::

    python experiments/pool_seeds.py --a results/laptop-scans --method ramp --method-b prime

The folders may also hold other methods; only ``--method`` (and ``--method-b``) are read. Scans are matched on
``scan_id`` and ``split``; a folder whose scans differ from the other's is refused (the two
versions must have been scored on one database).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mriqc_nb.metrics import paired_bootstrap_diff, safe_auc  # noqa: E402


def load(folder: Path, method: str, seed: int) -> pd.DataFrame:
    path = folder / f"{method}_seed-{seed}.tsv.gz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no per-scan predictions for {method}, seed {seed}")
    return pd.read_csv(path, sep="\t")


def compare(a: pd.DataFrame, b: pd.DataFrame, split: str, n_boot: int = 1000) -> dict:
    """Paired AUC difference A - B on one split (rows matched on ``scan_id``)."""
    sa, sb = a[a["split"] == split], b[b["split"] == split]
    m = sa.merge(sb, on="scan_id", suffixes=("_a", "_b"), validate="one_to_one")
    if len(m) != len(sa) or len(m) != len(sb) or not (m["y_a"] == m["y_b"]).all():
        raise ValueError(f"{split}: the two versions were not scored on the same scans "
                         f"({len(sa)} and {len(sb)} rows, {len(m)} in common)")
    out = paired_bootstrap_diff(safe_auc, m["y_a"].to_numpy(), m["p_artifact_a"].to_numpy(),
                                m["p_artifact_b"].to_numpy(), n_boot=n_boot, seed=0)
    out.update(n=int(len(m)), n_artifacts=int(m["y_a"].sum()))
    return out


def against_committed(mine: pd.DataFrame, name: str, scans: Path, seed: int, others) -> dict:
    """Paired AUC of a new run's predictions against committed methods of the same seed.

    Prints one line per (method, split), validation before test, and returns the results
    as ``{"<split>_vs_<method>": compare(...)}``.
    """
    result = {}
    for other in others:
        committed = load(Path(scans), other, seed)
        for split in ("valid", "test"):  # validation first; test is only reported
            r = compare(mine, committed, split)
            result[f"{split}_vs_{other}"] = r
            print(f"{split} ({r['n']} scans / {r['n_artifacts']} artifacts): {name} "
                  f"{r['a']:.3f} vs {other} {r['b']:.3f}: {r['diff']:+.3f} "
                  f"[{r['low']:+.3f}, {r['high']:+.3f}]")
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--a", type=Path, required=True, help="folder of version A's predictions")
    ap.add_argument("--b", type=Path, help="folder of version B's predictions (default: --a)")
    ap.add_argument("--method", default="recipe", help="A's method")
    ap.add_argument("--method-b", help="B's method (default: --method)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args(argv)
    args.b = args.b or args.a
    args.method_b = args.method_b or args.method
    if args.b == args.a and args.method_b == args.method:
        ap.error("A and B are the same predictions: give --b or --method-b")

    rows = []
    for seed in args.seeds:
        a, b = load(args.a, args.method, seed), load(args.b, args.method_b, seed)
        for split in ("valid", "test"):
            r = compare(a, b, split)
            rows.append({"seed": seed, "split": split, **r})
    df = pd.DataFrame(rows)
    for split in ("valid", "test"):
        s = df[df["split"] == split]
        n, k = int(s["n"].iloc[0]), int(s["n_artifacts"].iloc[0])
        print(f"{split} ({n} scans / {k} artifacts): AUC of A vs B, paired difference A - B "
              "[95% bootstrap]")
        for r in s.itertuples():
            print(f"  seed {r.seed}: {r.a:.3f} vs {r.b:.3f}: {r.diff:+.3f} "
                  f"[{r.low:+.3f}, {r.high:+.3f}]")
        print(f"  mean over seeds {list(s['seed'])}: {s['a'].mean():.3f} vs {s['b'].mean():.3f}"
              f" ({s['diff'].mean():+.3f}); seed SD {s['a'].std(ddof=1):.3f} and "
              f"{s['b'].std(ddof=1):.3f}")
    valid = df[df["split"] == "valid"]
    result = {
        "method": args.method, "method_b": args.method_b, "seeds": args.seeds, "a": str(args.a), "b": str(args.b),
        "valid_auc_a": [round(x, 4) for x in valid["a"]],
        "valid_auc_b": [round(x, 4) for x in valid["b"]],
        "valid_mean_a": round(float(valid["a"].mean()), 4),
        "valid_mean_b": round(float(valid["b"].mean()), 4),
        "test_auc_a": [round(x, 4) for x in df[df["split"] == "test"]["a"]],
        "test_auc_b": [round(x, 4) for x in df[df["split"] == "test"]["b"]],
        "a_wins_on_valid": bool(valid["a"].mean() > valid["b"].mean()),
    }
    print("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    raise SystemExit(main())
