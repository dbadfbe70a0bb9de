"""Diagnosis numbers of issue 9 that need no training (laptop profile).

    python experiments/diagnose.py [--profile laptop] [--png grid.png]

1. What class weight n_max/n_c at the profile's batch does to the batches and the gradient
   (hypergeometric counts of artifacts per batch; share of a batch's weighted loss that one
   artifact carries; how often each artifact is seen over the baseline's epochs).
2. Shortcuts in the cached volumes: the share of voxels at the volume's exact minimum (a
   constant band: zero padding of coverage and wrap-around, lands at -mean/std after
   z-scoring), by artifact kind, and the background level.
3. A PNG grid of middle slices of cached volumes (one clean and one per kind).
"""
import argparse
import json
from pathlib import Path

import numpy as np
from scipy.stats import hypergeom

from mriqc_nb.data import make_table
from mriqc_nb.data.cache import cache_dir_for, cache_file_name
from mriqc_nb.labels import class_weights
from mriqc_nb.paths import database_dir
from mriqc_nb.profiles import get_profile

ap = argparse.ArgumentParser()
ap.add_argument("--profile", default="laptop")
ap.add_argument("--png", default="experiments/grid.png")
args = ap.parse_args()
p = get_profile(args.profile)
table = make_table(p)
train = table[table["split"] == "train"]
n_art = int((train["label"] == "artifact").sum())
n = len(train)
w = class_weights([n - n_art, n_art])
b = p.batch_size
k = np.arange(b + 1)
pk = hypergeom.pmf(k, n, n_art, b)
print(f"1. train: {n} scans, {n_art} artifacts; weights {w.round(2).tolist()}; batch {b}")
for kk in range(0, 3):
    print(f"   P({kk} artifact(s) in a batch) = {pk[kk]:.3f}")
one = w[1] / (w[1] + (b - 1) * w[0])
print(f"   one artifact's share of its batch's weighted loss: {one:.3f}; that batch's loss "
      f"scale vs an all-clean batch: {(w[1] + (b - 1)) / b:.1f}x")
steps = n // b
print(f"   steps/epoch {steps}; steps with >=1 artifact: {steps * (1 - pk[0]):.0f} "
      f"({1 - pk[0]:.1%}); each artifact seen {p.epochs_baseline} times in "
      f"{p.epochs_baseline} epochs (the same volume, only flips differ)")

root = database_dir(p)
cdir = cache_dir_for(root, p.grid, p.spacing_mm)
rows = []
for r in table[table["split"].isin(["train", "valid", "test"])].to_dict("records"):
    f = cdir / cache_file_name(r, p.grid, p.spacing_mm)
    if f.exists():
        rows.append((r, f))
print(f"2. cached volumes found: {len(rows)} of {len(table)}")
stats = {}
examples = {}
for r, f in rows:
    kind = r["artifact_kind"] or "clean"
    if len(stats.get(kind, [])) >= 60:
        continue
    v = np.load(f).astype(np.float32)
    at_min = float(np.mean(v <= v.min() + 1e-3))
    corner = v[:4, :4, :].ravel()
    stats.setdefault(kind, []).append((at_min, float(v.min()), float(np.std(corner))))
    examples.setdefault(kind, v)
print(f"   {'kind':<11}{'n':>4}{'share at min':>14}{'min':>8}{'corner std':>12}")
for kind, s in sorted(stats.items()):
    a = np.array(s)
    print(f"   {kind:<11}{len(a):>4}{a[:, 0].mean():>14.3f}{a[:, 1].mean():>8.2f}{a[:, 2].mean():>12.3f}")

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

kinds = sorted(examples)
fig, axes = plt.subplots(3, len(kinds), figsize=(1.6 * len(kinds), 5))
for j, kind in enumerate(kinds):
    v = examples[kind]
    for i, sl in enumerate((v[:, :, v.shape[2] // 2].T, v[:, v.shape[1] // 2, :].T,
                            v[v.shape[0] // 2, :, :].T)):
        axes[i, j].imshow(sl, origin="lower", cmap="gray", vmin=-3, vmax=3, aspect="auto")
        axes[i, j].axis("off")
    axes[0, j].set_title(kind, fontsize=8)
fig.tight_layout()
fig.savefig(args.png, dpi=80)
print(f"3. wrote {args.png}")
