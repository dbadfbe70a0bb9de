"""Diagnosis numbers of issue 9 that need no training (laptop profile).

    python experiments/diagnose.py [--profile laptop] [--png grid.png]

The measures are package functions now (:mod:`mriqc_nb.diagnostics`, used by chapter 5b);
this script prints them for a profile and draws a grid of cached volumes:

1. what class weight n_max/n_c at the profile's batch does to the batches and the gradient
   (:func:`~mriqc_nb.diagnostics.batch_composition`);
2. shortcuts in the cached volumes, per kind (:func:`~mriqc_nb.diagnostics.shortcut_table`);
3. a PNG grid of middle slices of cached volumes (one clean and one per kind).
"""
import argparse

import matplotlib
import numpy as np

from mriqc_nb import diagnostics
from mriqc_nb.data import profile_database
from mriqc_nb.data.cache import cache_paths
from mriqc_nb.profiles import get_profile

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--profile", default="laptop")
ap.add_argument("--png", default="experiments/grid.png")
args = ap.parse_args()
p = get_profile(args.profile)
table = profile_database(p, progress=False)
train = table[table["split"] == "train"]
n_art = int((train["label"] == "artifact").sum())
bc = diagnostics.batch_composition(len(train) - n_art, n_art, p.batch_size,
                                   epochs=p.epochs_baseline)
print(f"1. train: {len(train)} scans, {n_art} artifacts; weights {bc['weights']}; "
      f"batch {p.batch_size}")
for k in range(3):
    print(f"   P({k} artifact(s) in a batch) = {bc['p_artifacts'][k]:.3f}")
print(f"   one artifact's share of its batch's weighted loss: {bc['one_artifact_share']:.3f}; "
      f"that batch's loss vs an all-clean batch: {bc['loss_scale_one_artifact']:.1f}x")
print(f"   steps/epoch {bc['steps_per_epoch']}; with >=1 artifact: "
      f"{bc['steps_with_artifact']:.0f} ({bc['share_with_artifact']:.1%})")
print("2. shortcuts (cached volumes, up to 60 per kind)")
print(diagnostics.shortcut_table(table, per_kind=60).round(3).to_string(index=False))

labelled = table[table["split"].isin(["train", "valid", "test"])]
kinds = labelled["artifact_kind"].fillna("").replace("", "clean")
examples = {k: np.load(cache_paths(labelled[kinds == k].iloc[:1])[0]).astype(np.float32)
            for k in sorted(kinds.unique())}
fig, axes = plt.subplots(3, len(examples), figsize=(1.6 * len(examples), 5))
for j, (kind, v) in enumerate(examples.items()):
    for i, sl in enumerate((v[:, :, v.shape[2] // 2].T, v[:, v.shape[1] // 2, :].T,
                            v[v.shape[0] // 2, :, :].T)):
        axes[i, j].imshow(sl, origin="lower", cmap="gray", vmin=-3, vmax=3, aspect="auto")
        axes[i, j].axis("off")
    axes[0, j].set_title(kind, fontsize=8)
fig.tight_layout()
fig.savefig(args.png, dpi=80)
print(f"3. wrote {args.png}")
