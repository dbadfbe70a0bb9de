"""End-to-end check of the recipe on the smoke profile (code path, not a result).

    nice -n 10 python experiments/smoke_recipe.py RUN_DIR
"""
import json
import sys
import time

from mriqc_nb.model.recipe import RecipeConfig, recipe_model, train_recipe

run_dir = sys.argv[1]
t = time.perf_counter()
cfg = RecipeConfig(redraws=2, onto_clean=20, batch_size=4, rounds=2, steps_per_round=10,
                   valid_clean=0, seed=0)
train_recipe("smoke", run_dir, config=cfg, workers=1)
model = recipe_model(run_dir)
print(json.load(open(f"{run_dir}/recipe.json"))["val_auc"], model.name,
      f"{time.perf_counter() - t:.0f} s")
