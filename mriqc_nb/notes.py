"""Notes a chapter shows its readers: what the profile's numbers mean, how long training takes,
and tables formatted to fit the page.

The notes are MyST admonitions returned as :class:`IPython.display.Markdown`; the book renders
computed Markdown as MyST (``nb_render_markdown_format: myst`` in ``_config.yml``), so a
chapter built with the ``smoke`` profile shows a warning where a ``laptop`` build shows a note.
In plain Jupyter the same objects show as Markdown.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from .profiles import Profile

__all__ = ["profile_note", "training_note", "readable", "LAPTOP_MINUTES", "LAPTOP_MINUTES_CPU"]

#: Minutes each training stage took on the ``laptop`` profile (8,000-scan database), measured
#: stage by stage by ``make experiments`` (``results/laptop.json``) on the machine named in
#: :data:`LAPTOP_MINUTES_CPU`, when it ran nothing else. Each stage's own training only: the
#: ``ramp`` and ``primed_baseline`` start from a trained ``prime``.
LAPTOP_MINUTES = {"baseline": 33, "focal": 31, "prime": 10, "ramp": 23, "primed_baseline": 24,
                  "recipe": 29}
#: The machine behind :data:`LAPTOP_MINUTES`: an older CPU than most laptops.
LAPTOP_MINUTES_CPU = ("an idle 2-core AMD EPYC (family 23, AVX2 but no AVX-512, oneDNN on); "
                      "newer CPUs take less")

_WHAT = {
    "smoke": "120 scans on a 32 x 32 x 32 grid, trained for 2 epochs: enough to run every line",
    "laptop": "8,000 scans (160 artifacts, 68 of them in test) on a 64 x 64 x 32 grid, one training seed",
    "colab": "6,000 scans on a 128 x 128 x 64 grid, for one T4-class GPU",
    "paper": "the paper's scale: 34,800 scans on a 256 x 256 x 64 grid",
}


def profile_note(profile: Profile, about: str = "") -> "IPython.display.Markdown":  # noqa: F821
    """An admonition that says what this page's numbers are worth under ``profile``.

    Parameters
    ----------
    profile : Profile
        The profile the chapter runs with.
    about : str, optional
        A sentence added to the note (what the chapter's numbers are).

    Returns
    -------
    IPython.display.Markdown
        A ``warning`` for the ``smoke`` profile (its numbers check the code; they are not
        results), a ``note`` for the others.
    """
    from IPython.display import Markdown

    what = _WHAT.get(profile.name, f"grid {profile.grid}, {profile.n_scans:,} scans")
    if profile.name == "smoke":
        kind, title = "warning", "Smoke profile: these numbers are not results"
        body = (f"This page was computed with the `smoke` profile ({what}). Its numbers check "
                "that the code runs; they are not results and say nothing about the method. "
                "For results, run the chapter with the `laptop` profile (the default, "
                "`profile = None` in the parameters cell) or a larger one; chapter 8 reads "
                "them with confidence intervals, and the page *Results at a glance* shows the "
                "committed results of the `laptop` profile.")
    else:
        kind, title = "note", f"Profile `{profile.name}`"
        body = (f"This page was computed with the `{profile.name}` profile ({what}; seed "
                f"{profile.seed}). The benchmark is synthetic and small: read every number "
                "with its sample size, and chapter 8 for intervals.")
    if about:
        body += " " + about
    return Markdown(_admonition(kind, title, body))


def training_note(stages: Iterable[str], profile: Profile) -> "IPython.display.Markdown":  # noqa: F821
    """An admonition that says how long the next training cell runs.

    Parameters
    ----------
    stages : iterable of str
        The stages the cell trains (keys of :data:`LAPTOP_MINUTES`).
    profile : Profile

    Returns
    -------
    IPython.display.Markdown
        A ``note`` with the estimated minutes on the ``laptop`` profile on 2 CPU cores, and
        what a second run costs (nothing: finished runs are reused).
    """
    from IPython.display import Markdown

    from mriqc_nb.model.shipped import shipped_dir, train_here

    stages = list(stages)
    minutes = sum(LAPTOP_MINUTES[s] for s in stages)
    names = ", ".join(f"`{s}`" for s in stages)
    if not train_here() and all(shipped_dir(profile, s) is not None for s in stages):
        body = (f"The next cell loads {names} as trained with this book, by this code and seed "
                f"(`results/{profile.name}-runs/`; each run's `SHIPPED.json` says on which "
                "CPU and how long), when your database is the one they were trained on; "
                "everything computed from them below is computed here. Training them on the "
                f"`laptop` profile took about {_round_minutes(minutes)} minutes, measured "
                f"stage by stage by `make experiments` on {LAPTOP_MINUTES_CPU}. To train "
                "them here, set `train_here = True` in the parameters cell (or "
                "`MRIQC_NB_TRAIN_HERE=1`).")
        return Markdown(_admonition("note", "Training: loaded, not repeated", body))
    body = (f"The next cell trains {names}. On the `laptop` profile that took about "
            f"{_round_minutes(minutes)} minutes, measured stage by stage by `make experiments` "
            f"on {LAPTOP_MINUTES_CPU}; the `smoke` profile takes a minute or two. A trained "
            "stage is kept under `$MRIQC_NB_HOME` and reused: running the cell again, or a "
            "later chapter, costs nothing.")
    if profile.name not in ("smoke", "laptop"):
        body += (f" This page uses the `{profile.name}` profile: expect longer on a CPU, "
                 "less on a GPU.")
    title = f"Training: about {_round_minutes(minutes)} minutes on a laptop"
    return Markdown(_admonition("note", title, body))


def _admonition(kind: str, title: str, body: str) -> str:
    """A MyST admonition with a title, styled as ``kind`` (note, warning...).

    Fenced with tildes: the info string of a backtick fence may not contain a backtick
    (CommonMark), so a title such as "Profile `laptop`" would end a backtick fence's
    directive and the reader would see the raw text."""
    return f"~~~{{admonition}} {title}\n:class: {kind}\n{body}\n~~~"


def _round_minutes(minutes: float) -> int:
    """Minutes rounded to a figure worth saying "about" of (nearest 5 above 10)."""
    return int(round(minutes)) if minutes < 10 else int(5 * round(minutes / 5))


def readable(table: pd.DataFrame, digits: int = 3, na: str = "n/a",
             wrap_names: bool = True) -> pd.DataFrame:
    """A copy of ``table`` that reads well and fits a page.

    Floats are rounded to ``digits``; float columns that hold whole numbers become integers;
    missing values become ``na`` (use ``""`` where nothing is meant); underscores in column
    and index names become spaces, so that long names wrap in a table's header.

    Parameters
    ----------
    table : DataFrame
    digits : int
        Decimals kept for floats.
    na : str
        What a missing value reads as.
    wrap_names : bool
        Replace underscores in the column names and the index names by spaces.

    Returns
    -------
    DataFrame
    """
    out = table.copy()
    for col in out.columns:
        values = out[col]
        if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
            if values.isna().any():
                out[col] = values.astype(object).where(values.notna(), na)
            continue
        finite = values.dropna().to_numpy(dtype=float)
        if pd.api.types.is_float_dtype(values):
            whole = finite.size > 0 and np.all(np.isfinite(finite)) and np.all(finite == np.round(finite))
            values = values.astype("Int64") if whole else values.round(digits)
        if values.isna().any():
            values = values.astype(object).where(values.notna(), na)
        out[col] = values
    if wrap_names:
        out = out.rename(columns=lambda c: c.replace("_", " ") if isinstance(c, str) else c)
        out.index = out.index.set_names([n.replace("_", " ") if isinstance(n, str) else n
                                         for n in out.index.names])
    return out
