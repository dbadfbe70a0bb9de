"""Data for training: the scan table, the synthetic benchmark, the volume cache, the ramp.

One concept per module:

- :mod:`~mriqc_nb.data.table` -- the scan table: columns, validation that lists the offending
  rows, reading and writing, class balance, the rows of a split;
- :mod:`~mriqc_nb.data.splits` -- per-row seeds, exact split counts, subject-grouped splits of
  your own table;
- :mod:`~mriqc_nb.data.synthetic` -- the synthetic benchmark table (recipes, no volumes);
- :mod:`~mriqc_nb.data.cache` -- conformed float16 volumes on disk, read back as arrays;
- :mod:`~mriqc_nb.data.build` -- building a database directory in parallel worker processes;
- :mod:`~mriqc_nb.data.ramp` -- data-ramping from counts alone;
- :mod:`~mriqc_nb.data.pipeline` -- tf.data input (TensorFlow is imported when called).

The functions a chapter or a user calls are importable from here too
(``from mriqc_nb.data import build_database``); everything else from its module.
"""

from mriqc_nb.data import build, cache, pipeline, ramp, splits, synthetic, table
from mriqc_nb.data.build import BuildError, build_database, profile_database
from mriqc_nb.data.cache import load_arrays, load_volume
from mriqc_nb.data.pipeline import make_dataset, ramp_dataset
from mriqc_nb.data.ramp import epoch_table, priming_set, ramp_schedule_frame, ramp_sizes, ramp_subset
from mriqc_nb.data.synthetic import make_table
from mriqc_nb.data.table import SPLITS, TableError, class_balance, load_table, save_table, split_rows, validate_table

__all__ = [
    # the scan table
    "SPLITS",
    "TableError",
    "load_table",
    "save_table",
    "validate_table",
    "class_balance",
    "split_rows",
    # databases
    "make_table",
    "build_database",
    "profile_database",
    "BuildError",
    "load_volume",
    "load_arrays",
    # ramp and input pipeline
    "priming_set",
    "ramp_sizes",
    "ramp_schedule_frame",
    "ramp_subset",
    "epoch_table",
    "make_dataset",
    "ramp_dataset",
]
