"""mriqc-nb: detection of artifacts in brain MRI with deep learning and uncertainty estimation.

The helper package of the mriqc-nb executable book. Each concept lives in one module:

- :mod:`mriqc_nb.profiles` -- run profiles (grids, counts, epochs) in one place
- :mod:`mriqc_nb.io` -- load NIfTI/MINC and ``conform`` (training and inference alike)
- :mod:`mriqc_nb.synth` -- synthetic subjects from nilearn's bundled MNI152 maps
- :mod:`mriqc_nb.artifacts` -- physically based artifact simulators
- :mod:`mriqc_nb.kspace` -- centred Fourier transforms
- :mod:`mriqc_nb.database`, :mod:`mriqc_nb.ramp`, :mod:`mriqc_nb.pipeline` (together
  :mod:`mriqc_nb.data`) -- scan table, grouped splits, volume cache, data-ramping, tf.data
- :mod:`mriqc_nb.model` -- NN008 and a 3D AlexNet, trunk/head, fast and naive MC dropout
- :mod:`mriqc_nb.losses`, :mod:`mriqc_nb.schedules` -- weighted cross-entropy, focal loss,
  cyclical learning rate and LR range test
- :mod:`mriqc_nb.train` -- training stages with run directories and resume
- :mod:`mriqc_nb.evaluate` -- MC / flip predictions of a split, cached per run
- :mod:`mriqc_nb.uncertainty`, :mod:`mriqc_nb.referral`, :mod:`mriqc_nb.metrics` --
  uncertainty measures, referral of uncertain scans, metrics with bootstrap intervals
- :mod:`mriqc_nb.results` -- the comparison table (test metrics with intervals, paper's numbers)
- :mod:`mriqc_nb.screen` -- model bundles and screening of scans on disk to a TSV
- :mod:`mriqc_nb.paths` -- where databases and runs are kept (``$MRIQC_NB_HOME``)
- :mod:`mriqc_nb.plots` -- orthogonal views, difference maps, k-space figures
- :mod:`mriqc_nb.cli` -- the ``mriqc-nb`` command

TensorFlow is imported only by the modules that need it, so that ``import mriqc_nb`` stays
light.
"""

__version__ = "0.1.0"
