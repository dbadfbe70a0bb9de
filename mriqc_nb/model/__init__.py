"""The detector: networks, losses, learning-rate schedules, run directories and training.

Submodules (each imported on first use, so that ``import mriqc_nb.model`` stays light and
TensorFlow loads only with a network):

- :mod:`~mriqc_nb.model.networks` -- NN008 and a 3D AlexNet (trunk + stochastic head), the MC
  twin of a head, weights on disk (``save_weights``/``load_weights``)
- :mod:`~mriqc_nb.model.losses` -- weighted cross-entropy and focal loss from a JSON config
- :mod:`~mriqc_nb.model.schedules` -- the triangular cyclical learning rate, LR range test
- :mod:`~mriqc_nb.model.runs` -- run directories: configuration, checkpoints, history, resume
- :mod:`~mriqc_nb.model.training` -- the training stages and ``trained_model``

Predicting with a trained network is :mod:`mriqc_nb.predict`.
"""

from __future__ import annotations

import importlib

__all__ = ["networks", "losses", "schedules", "runs", "training"]


def __getattr__(name: str):
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
