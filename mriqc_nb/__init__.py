"""mriqc-nb: detection of artifacts in brain MRI with deep learning and uncertainty estimation.

The helper package of the mriqc-nb executable book. Each concept lives in one module:

- :mod:`mriqc_nb.labels` -- the vocabulary: labels, integer ``y``, decisions, class weights
- :mod:`mriqc_nb.profiles`, :mod:`mriqc_nb.paths` -- run profiles; where databases and runs live
- :mod:`mriqc_nb.scans` -- load NIfTI/MINC/Analyze, check headers, ``conform`` (training and inference alike)
- :mod:`mriqc_nb.kspace` -- centred Fourier transforms and k-space filters
- :mod:`mriqc_nb.artifacts` -- one module per artifact kind: ranges as data, simulator, sampler
- :mod:`mriqc_nb.synth` -- synthetic subjects from nilearn's bundled MNI152 maps
- :mod:`mriqc_nb.data` -- scan table, splits, the synthetic benchmark, volume cache and build,
  data-ramping, tf.data, the MR-ART adapter
- :mod:`mriqc_nb.model` -- networks (NN008, 3D AlexNet), losses, schedules, run directories, training stages
- :mod:`mriqc_nb.predict` -- the one MC-dropout / flip sampler; predictions of a split, cached per run
- :mod:`mriqc_nb.uncertainty`, :mod:`mriqc_nb.referral`, :mod:`mriqc_nb.metrics` --
  uncertainty measures, referral policies with their controls, metrics with bootstrap intervals
- :mod:`mriqc_nb.diagnostics` -- why a detector does (not) learn (chapter 5b)
- :mod:`mriqc_nb.comparison` -- the comparison tables of chapter 8, seed summaries
- :mod:`mriqc_nb.bundle`, :mod:`mriqc_nb.screen` -- model bundles; screening scans on disk to a TSV
- :mod:`mriqc_nb.sources`, :mod:`mriqc_nb.bids`, :mod:`mriqc_nb.report` -- screening inputs,
  BIDS datasets, the HTML report
- :mod:`mriqc_nb.ratings`, :mod:`mriqc_nb.iqm` -- real rater labels; IQM classifiers
- :mod:`mriqc_nb.plots`, :mod:`mriqc_nb.cli` -- figures; the ``mriqc-nb`` command

TensorFlow is imported only by the modules that need it, so that ``import mriqc_nb`` stays
light.
"""

import os as _os

# TensorFlow leaves oneDNN's fused CPU kernels off on some CPUs (AMD among them), which makes
# 3D convolutions about 4x slower there. Turn them on before TensorFlow is first imported,
# unless the user chose otherwise. The variable is read once, when TensorFlow loads.
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"
