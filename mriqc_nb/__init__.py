"""mriqc-nb: detection of artifacts in brain MRI with deep learning and uncertainty estimation.

The helper package of the mriqc-nb executable book. Each concept lives in one module:

- :mod:`mriqc_nb.profiles` -- run profiles (grids, counts, epochs) in one place
- :mod:`mriqc_nb.scans` -- load NIfTI/MINC and ``conform`` (training and inference alike)
- :mod:`mriqc_nb.synth` -- synthetic subjects from nilearn's bundled MNI152 maps
- :mod:`mriqc_nb.artifacts` -- physically based artifact simulators
- :mod:`mriqc_nb.kspace` -- centred Fourier transforms
- :mod:`mriqc_nb.data.database`, :mod:`mriqc_nb.data.ramp`, :mod:`mriqc_nb.data.pipeline` (together
  :mod:`mriqc_nb.data`) -- scan table, grouped splits, volume cache, data-ramping, tf.data
- :mod:`mriqc_nb.model.networks` -- NN008 and a 3D AlexNet, trunk/head, fast and naive MC dropout
- :mod:`mriqc_nb.model.losses`, :mod:`mriqc_nb.model.schedules` -- weighted cross-entropy, focal loss,
  cyclical learning rate and LR range test
- :mod:`mriqc_nb.model.training` -- training stages with run directories and resume
- :mod:`mriqc_nb.predict` -- MC / flip predictions of a split, cached per run
- :mod:`mriqc_nb.uncertainty`, :mod:`mriqc_nb.referral`, :mod:`mriqc_nb.metrics` --
  uncertainty measures, referral of uncertain scans, metrics with bootstrap intervals
- :mod:`mriqc_nb.comparison` -- the comparison table (test metrics with intervals, paper's numbers)
- :mod:`mriqc_nb.screen` -- model bundles and screening of scans on disk to a TSV
- :mod:`mriqc_nb.paths` -- where databases and runs are kept (``$MRIQC_NB_HOME``)
- :mod:`mriqc_nb.plots` -- orthogonal views, difference maps, k-space figures
- :mod:`mriqc_nb.cli` -- the ``mriqc-nb`` command

TensorFlow is imported only by the modules that need it, so that ``import mriqc_nb`` stays
light.
"""

import os as _os

# TensorFlow leaves oneDNN's fused CPU kernels off on some CPUs (AMD among them), which makes
# 3D convolutions about 4x slower there. Turn them on before TensorFlow is first imported,
# unless the user chose otherwise. The variable is read once, when TensorFlow loads.
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"
