"""Where the package keeps what it builds: scan databases and training runs.

Everything lives under one *home* directory, ``$MRIQC_NB_HOME`` if set, else
``~/.cache/mriqc-nb``::

    <home>/databases/<profile>/   scan table, conform settings, volume cache
    <home>/runs/<profile>/<name>/ one training run: config.json, checkpoints, history.csv

Chapters ask for a database or a trained model by profile (and name); the package builds
it once under the home directory and every later chapter reuses it. ``mriqc-nb database``
writes a profile's database here by default, where ``mriqc-nb train`` and
:func:`mriqc_nb.data.profile_database` read it. Delete a folder to
rebuild it. The notebook tests point ``MRIQC_NB_HOME`` at a temporary directory.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["HOME_ENV", "home", "database_dir", "runs_dir", "checkout_file"]

#: Environment variable that overrides the home directory.
HOME_ENV = "MRIQC_NB_HOME"


def home() -> Path:
    """The home directory (created if missing)."""
    root = os.environ.get(HOME_ENV)
    path = Path(root).expanduser() if root else Path.home() / ".cache" / "mriqc-nb"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _profile_name(profile) -> str:
    return getattr(profile, "name", None) or str(profile)


def database_dir(profile) -> Path:
    """Directory of the scan database of ``profile`` (a name or a Profile): the default of
    ``mriqc-nb database`` and of :func:`mriqc_nb.data.profile_database`."""
    return home() / "databases" / _profile_name(profile)


def runs_dir(profile) -> Path:
    """Directory that holds the training runs of ``profile``."""
    return home() / "runs" / _profile_name(profile)


def checkout_file(*parts: str) -> Path | None:
    """A file of the project's source checkout (measurements committed beside the book), or
    ``None`` where there is none (a package installed without its repository, as on Colab).

    Looked for under the parent of the working directory (a chapter runs in ``book/``), then
    beside the imported package (an editable install or a checkout on ``sys.path``).
    """
    package_root = Path(__file__).resolve().parents[1]
    for base in (Path.cwd().parent, package_root):
        path = base.joinpath(*parts)
        if path.is_file():
            return path
    return None
