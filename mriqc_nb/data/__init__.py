"""Data for training, in one import: the scan database, the ramp schedule, the input pipeline.

A façade over three modules, so chapters can write ``from mriqc_nb import data``:

- :mod:`mriqc_nb.data.database` -- scan table (manifest), validation, grouped splits, builder and
  volume cache (:func:`build_database`, :func:`load_table`, :func:`validate_table`,
  :func:`class_balance`, :func:`load_volume`, :func:`load_arrays`);
- :mod:`mriqc_nb.data.ramp` -- data-ramping from counts alone (:func:`ramp_sizes`,
  :func:`ramp_schedule_frame`, :func:`ramp_subset`, :func:`priming_set`,
  :func:`class_weights`);
- :mod:`mriqc_nb.data.pipeline` -- tf.data input (:func:`make_dataset`, :func:`ramp_dataset`);
  TensorFlow is imported only when these are called.
"""

from mriqc_nb.data.database import *  # noqa: F401,F403
from mriqc_nb.data.database import __all__ as _db_all
from mriqc_nb.data.ramp import *  # noqa: F401,F403
from mriqc_nb.data.ramp import __all__ as _ramp_all


def make_dataset(*args, **kwargs):
    """See :func:`mriqc_nb.data.pipeline.make_dataset` (imported lazily: it needs TensorFlow)."""
    from mriqc_nb.data.pipeline import make_dataset as _f

    return _f(*args, **kwargs)


def ramp_dataset(*args, **kwargs):
    """See :func:`mriqc_nb.data.pipeline.ramp_dataset` (imported lazily: it needs TensorFlow)."""
    from mriqc_nb.data.pipeline import ramp_dataset as _f

    return _f(*args, **kwargs)


__all__ = list(_db_all) + list(_ramp_all) + ["make_dataset", "ramp_dataset"]
