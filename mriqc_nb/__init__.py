"""mriqc-nb: detection of artifacts in brain MRI with deep learning and uncertainty estimation.

The helper package of the mriqc-nb executable book. Each concept lives in one module:

- :mod:`mriqc_nb.profiles` -- run profiles (grids, counts, epochs) in one place
- :mod:`mriqc_nb.io` -- load NIfTI/MINC and ``conform`` (training and inference alike)
- :mod:`mriqc_nb.synth` -- synthetic subjects from nilearn's bundled MNI152 maps
- :mod:`mriqc_nb.artifacts` -- physically based artifact simulators
- :mod:`mriqc_nb.kspace` -- centred Fourier transforms
- :mod:`mriqc_nb.plots` -- orthogonal views, difference maps, k-space figures
- :mod:`mriqc_nb.cli` -- the ``mriqc-nb`` command

TensorFlow is imported only by the modules that need it, so that ``import mriqc_nb`` stays
light.
"""

__version__ = "0.1.0"
