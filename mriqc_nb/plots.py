"""Figures used across the book: orthogonal views, difference maps and k-space.

Volumes are RAS+ arrays (axis 0 left->right, axis 1 posterior->anterior, axis 2
inferior->superior), as :func:`mriqc_nb.scans.conform` and :mod:`mriqc_nb.synth` produce them.
Slices are drawn in neurological convention (the subject's left on the image's left) with the
physical aspect ratio given by ``spacing_mm``, so thick slices look thick.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

__all__ = ["VIEWS", "orthoview_slices", "plot_orthoviews", "plot_artifact_panel", "plot_kspace_parts",
           "log_kspace", "plot_histories", "plot_referral_curves", "plot_seed_results"]

#: Font sizes of the book's figures (points), chosen so that a figure scaled to the page's
#: text column (about 690 CSS px) still has text about as large as the page's captions.
TITLE_SIZE = 11
LABEL_SIZE = 10
LEGEND_SIZE = 9

#: (name, axis that is cut, (horizontal axis, vertical axis)) for the three views.
VIEWS = (
    ("sagittal", 0, (1, 2)),
    ("coronal", 1, (0, 2)),
    ("axial", 2, (0, 1)),
)


def orthoview_slices(volume: np.ndarray, cut: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """Three orthogonal slices through ``cut`` (default: the grid centre).

    Returns a dict view name -> 2-D array indexed ``[vertical, horizontal]`` ready for
    ``imshow(origin="lower")``.
    """
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise ValueError(f"expected a 3-D volume, got shape {volume.shape}")
    cut = [s // 2 for s in volume.shape] if cut is None else list(cut)
    out = {}
    for name, axis, _ in VIEWS:
        out[name] = np.take(volume, cut[axis], axis=axis).T
    return out


def _aspect(spacing_mm, view_axes) -> float:
    h, v = view_axes
    return float(spacing_mm[v]) / float(spacing_mm[h])


def plot_orthoviews(
    volume: np.ndarray,
    spacing_mm: Sequence[float] = (1.0, 1.0, 1.0),
    axes=None,
    *,
    cut: Sequence[int] | None = None,
    title: str | None = None,
    cmap: str = "gray",
    vmin: float | None = None,
    vmax: float | None = None,
    symmetric: bool = False,
    colorbar: bool = False,
):
    """Draw sagittal, coronal and axial slices of ``volume`` on three axes.

    Parameters
    ----------
    volume : ndarray, shape (X, Y, Z)
        RAS+ volume.
    spacing_mm : 3 floats
        Voxel size in mm, used for the displayed aspect ratio.
    axes : sequence of 3 matplotlib axes, optional
        Where to draw; a new 1 x 3 figure if omitted.
    cut : 3 ints, optional
        Voxel through which the slices pass (default: grid centre).
    title : str, optional
        Written as the y-label of the first panel (one row per volume in a grid figure).
    vmin, vmax : float, optional
        Display range; default 0.5 and 99.5 percentiles (or symmetric about 0 with
        ``symmetric=True``, for difference maps).

    Returns
    -------
    list of matplotlib axes
    """
    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(9, 3))
    slices = orthoview_slices(volume, cut)
    finite = np.asarray(volume)[np.isfinite(volume)]
    if symmetric:
        lim = float(np.percentile(np.abs(finite), 99.5)) if finite.size else 1.0
        vmin, vmax = (-lim, lim) if vmin is None else (vmin, vmax)
    else:
        if vmin is None:
            vmin = float(np.percentile(finite, 0.5)) if finite.size else 0.0
        if vmax is None:
            vmax = float(np.percentile(finite, 99.5)) if finite.size else 1.0
    im = None
    for ax, (name, _, view_axes) in zip(axes, VIEWS):
        im = ax.imshow(
            slices[name], origin="lower", cmap=cmap, vmin=vmin, vmax=vmax,
            aspect=_aspect(spacing_mm, view_axes), interpolation="nearest",
        )
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        axes[0].set_ylabel(title, fontsize=LABEL_SIZE)
    if colorbar and im is not None:
        plt.colorbar(im, ax=list(axes), fraction=0.02, pad=0.01)
    return list(axes)


def log_kspace(volume: np.ndarray, axis: int = 2) -> np.ndarray:
    """log10 |k| of the 3-D k-space, projected (maximum) along ``axis``.

    The maximum-intensity projection keeps features that lie off the central plane, such
    as a spike, visible. Returned ``[vertical, horizontal]`` like :func:`orthoview_slices`,
    with the k-space centre in the middle of the image; the values are relative to the
    largest magnitude (0 = the k-space maximum, -3 = a thousandth of it).
    """
    from mriqc_nb.kspace import to_kspace

    k = np.abs(to_kspace(np.asarray(volume, dtype=np.float32)))
    mip = k.max(axis=axis)
    mip = np.log10(np.maximum(mip, 1e-12) / max(float(mip.max()), 1e-12))
    return mip.T


def plot_artifact_panel(
    clean: np.ndarray,
    corrupted: dict[str, np.ndarray],
    spacing_mm: Sequence[float] = (1.0, 1.0, 1.0),
    *,
    title: str | None = None,
    kspace: bool = False,
    kspace_axis: int = 2,
):
    """One artifact: clean vs corrupted volumes, their difference and optionally k-space.

    Parameters
    ----------
    clean : ndarray (X, Y, Z)
        The clean volume.
    corrupted : dict label -> ndarray (X, Y, Z)
        Corrupted versions, e.g. ``{"subtle": ..., "prominent": ...}``; the difference map
        (corrupted minus clean) is drawn for the last one.
    kspace : bool
        Add a column with log|k| (maximum along ``kspace_axis``) for the clean and every
        corrupted volume, on one colour scale.

    Returns
    -------
    matplotlib.figure.Figure
    """
    rows = [("clean", clean), *corrupted.items()]
    last_label, last = rows[-1]
    rows.append((f"{last_label} - clean", np.asarray(last, np.float32) - np.asarray(clean, np.float32)))
    ncols = 4 if kspace else 3
    fig, axes = plt.subplots(len(rows), ncols, figsize=(2.3 * ncols, 2.1 * len(rows)), squeeze=False)
    ref = np.asarray(clean)
    vmin, vmax = float(np.percentile(ref, 0.5)), float(np.percentile(ref, 99.5))
    kspace_vmin = float(np.percentile(log_kspace(ref, kspace_axis), 2)) if kspace else None
    for r, (label, vol) in enumerate(rows):
        is_diff = r == len(rows) - 1
        plot_orthoviews(
            vol, spacing_mm, axes[r, :3], title=label,
            cmap="RdBu_r" if is_diff else "gray",
            vmin=None if is_diff else vmin, vmax=None if is_diff else vmax,
            symmetric=is_diff,
        )
        if kspace:
            ax = axes[r, 3]
            if is_diff:
                ax.axis("off")
            else:
                ax.imshow(log_kspace(vol, kspace_axis), origin="lower", cmap="magma", interpolation="nearest",
                          vmin=kspace_vmin, vmax=0.0)
                ax.set_xticks([])
                ax.set_yticks([])
    for c, (name, _, _) in enumerate(VIEWS):
        axes[0, c].set_title(name, fontsize=LABEL_SIZE)
    if kspace:
        axes[0, 3].set_title("log |k| (max over %s)" % "xyz"[kspace_axis], fontsize=LABEL_SIZE)
    if title:
        fig.suptitle(title, fontsize=TITLE_SIZE + 1)
    fig.tight_layout()
    # colour is a value in the difference map and in k-space: give them scales (after the
    # layout, so that the bars sit beside the grid instead of shrinking it)
    _side_colorbar(axes[-1, 2], "difference\n(image units)")
    if kspace:
        _side_colorbar(axes[-2, 3], "log10 |k| / max")
    return fig


def _side_colorbar(ax, label: str):
    """A colour bar for the last image drawn on ``ax``, just right of it.

    Add it after the figure's layout is made: the bar then sits beside the grid (a saved
    figure with ``bbox_inches="tight"``, as notebooks save them, grows to hold it).
    """
    cax = ax.inset_axes([1.05, 0.05, 0.07, 0.9])
    bar = ax.figure.colorbar(ax.images[-1], cax=cax)
    bar.ax.tick_params(labelsize=LABEL_SIZE - 2)
    bar.set_label(label, fontsize=LABEL_SIZE - 1)
    return bar


def plot_kspace_parts(volume: np.ndarray, low: np.ndarray, high: np.ndarray,
                      spacing_mm: Sequence[float] = (1.0, 1.0, 1.0), *, centre_share: float = 0.2):
    """An image, its k-space and its reconstructions from the centre and the periphery of k.

    Two rows of two panels (axial slices through the grid centre): the image and
    :func:`log_kspace` of it (projected along z, with a colour scale), then ``low`` and
    ``high``, the reconstructions from the central part of k-space only and from the rest.

    Parameters
    ----------
    volume, low, high : ndarray (X, Y, Z)
        The image and its two partial reconstructions (same grid).
    spacing_mm : 3 floats
        Voxel size in mm (displayed aspect ratio).
    centre_share : float
        Side of the central box of k-space as a fraction of each side (for the titles).

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, axes = plt.subplots(2, 2, figsize=(7.2, 6.4))
    aspect = _aspect(spacing_mm, (0, 1))
    images = ((volume, "image (axial)"), (None, "log10 |k| / max (kx, ky)"),
              (low, f"central {centre_share:.0%} of k only"), (high, "periphery of k only"))
    for ax, (vol, name) in zip(axes.ravel(), images):
        if vol is None:
            ax.imshow(log_kspace(volume, axis=2), cmap="magma", origin="lower", vmin=-4, vmax=0)
        else:
            ax.imshow(orthoview_slices(vol)["axial"], cmap="gray", origin="lower", aspect=aspect)
        ax.set_title(name, fontsize=TITLE_SIZE)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    _side_colorbar(axes[0, 1], "log10 |k| / max")
    return fig


def _panel_grid(n: int, *, width: float = 4.4, height: float = 3.2):
    """``n`` axes, at most two per row (a page-wide figure keeps legible fonts).

    Returns the ``n`` axes to draw on and the spare axis of an odd count (switched off), or
    None.
    """
    nrows, ncols = (n + 1) // 2, min(n, 2)
    _, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    flat = list(axes.ravel())
    spare = flat[n] if len(flat) > n else None
    if spare is not None:
        spare.axis("off")
    return flat[:n], spare


def plot_histories(histories, columns=("ce", "val_ce", "val_accuracy"), *, offsets=None,
                   phases: bool = False, axes=None):
    """Training curves of several runs, one panel per history column.

    Parameters
    ----------
    histories : dict name -> pandas.DataFrame
        ``Run.history`` tables (columns ``epoch``, ``phase`` and the metrics).
    columns : sequence of str
        History columns to draw (``ce``/``val_ce``: unweighted cross-entropy, comparable
        across losses and class weights; ``val_accuracy``...).
    offsets : dict name -> int, optional
        Epochs added to a run's epoch numbers (to draw priming, then ramping, on one axis).
    phases : bool
        Mark each epoch with the run's phase (prime / ramp / finetune / full) by marker shape.

    Returns
    -------
    list of matplotlib axes
    """
    import pandas as pd

    spare = None
    if axes is None:
        axes, spare = _panel_grid(len(columns))
    markers = {"prime": "s", "ramp": "^", "full": "o", "finetune": "v"}
    for name, h in histories.items():
        h = pd.DataFrame(h)
        x = h["epoch"] + (offsets or {}).get(name, 0)
        for ax, col in zip(axes, columns):
            (line,) = ax.plot(x, h[col], lw=1.4, label=name)
            if phases and "phase" in h:
                for phase, m in markers.items():
                    sel = h["phase"] == phase
                    if sel.any():
                        ax.scatter(x[sel], h.loc[sel, col], marker=m, s=22, color=line.get_color(),
                                   label=None)
    for ax, col in zip(axes, columns):
        ax.set_xlabel("epoch", fontsize=LABEL_SIZE)
        ax.set_title(col, fontsize=TITLE_SIZE)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.grid(alpha=0.3)
    # legends in the spare panel of an odd count, else on the panels
    handles, names = axes[0].get_legend_handles_labels()
    phase_handles = [plt.Line2D([], [], ls="", marker=m, color="grey", label=p) for p, m in markers.items()]
    if spare is not None:
        spare.legend(handles, names, loc="upper left", fontsize=LEGEND_SIZE, title="run",
                     title_fontsize=LEGEND_SIZE, frameon=False)
        if phases:
            spare.add_artist(spare.get_legend())
            spare.legend(handles=phase_handles, loc="upper right", fontsize=LEGEND_SIZE, title="phase",
                         title_fontsize=LEGEND_SIZE, frameon=False)
    else:
        axes[0].legend(fontsize=LEGEND_SIZE)
        if phases:
            axes[-1].legend(handles=phase_handles, fontsize=LEGEND_SIZE, title="phase",
                            title_fontsize=LEGEND_SIZE)
    plt.tight_layout()
    return list(axes)


_CURVE_TITLES = {"missed_artifact_fraction": "missed artifacts (of all artifacts)",
                 "needs_person_fraction": "needs a person (of all scans)"}


def plot_referral_curves(table, measures=("mutual_information",), threshold: float = 0.5, *, labels=None,
                         metrics=("balanced_accuracy", "f1", "missed_artifact_fraction"),
                         fractions=None, n_repeats: int = 200, seed: int = 0, axes=None,
                         title: str | None = None):
    """Referral curves of several measures beside the random control, one panel per metric.

    Each curve refers a growing fraction of the scans of ``table`` (most uncertain first,
    :func:`mriqc_nb.referral.referral_curve`) at a fixed ``threshold``; the grey curve refers
    random scans of the same number (mean of ``n_repeats`` seeded draws). A measure helps only
    where its curve lies above the grey one (below it, for ``missed_artifact_fraction``); at
    fraction 0 every curve starts from the same point, the threshold with nobody referred.

    Parameters
    ----------
    table : DataFrame
        Predictions: ``p_artifact``, the measures and (unless ``labels``) ``label``.
    measures : sequence of str
        Uncertainty columns.
    threshold : float
        Decision threshold on ``p_artifact`` (e.g. a policy's ``threshold``).
    labels : array_like of {0, 1}, optional
    metrics : sequence of str
        Columns of :func:`mriqc_nb.referral.referral_curve` to draw (metrics on the retained
        scans, or ``missed_artifact_fraction`` / ``needs_person_fraction`` over all scans).
    fractions : array_like, optional
        Referred fractions (default 0 to 0.5 in steps of 0.02).
    n_repeats, seed : int
        The random control.
    axes : sequence of matplotlib axes, optional
    title : str, optional

    Returns
    -------
    list of matplotlib axes
    """
    from mriqc_nb.referral import referral_curve

    fractions = np.linspace(0, 0.5, 26) if fractions is None else fractions
    measures = list(measures)
    curves = {m: referral_curve(table, labels, m, threshold, fractions) for m in measures}
    curves["random (control)"] = referral_curve(table, labels, measures[0], threshold, fractions, random=True,
                                                seed=seed, n_repeats=n_repeats)
    spare = None
    if axes is None:
        axes, spare = _panel_grid(len(metrics))
    for ax, metric in zip(axes, metrics):
        for name, c in curves.items():
            control = name.startswith("random")
            ax.plot(c["referred_fraction"], c[metric], color="grey" if control else None,
                    ls="--" if control else "-", lw=1.2, marker=None if control else ".", ms=4, label=name)
        ax.set(xlabel="fraction of scans referred",
               title=_CURVE_TITLES.get(metric, metric.replace("_", " ") + " (retained scans)"))
        ax.title.set_fontsize(TITLE_SIZE)
        ax.xaxis.label.set_fontsize(LABEL_SIZE)
        ax.grid(alpha=0.3)
    if spare is not None:  # the legend in the spare panel of an odd count
        spare.legend(*axes[0].get_legend_handles_labels(), loc="upper left", fontsize=LEGEND_SIZE,
                     title="referral by", title_fontsize=LEGEND_SIZE, frameon=False)
    else:
        axes[0].legend(fontsize=LEGEND_SIZE)
    if title:
        axes[0].figure.suptitle(title, y=1.02, fontsize=TITLE_SIZE)
    axes[0].figure.tight_layout()
    return list(axes)


_SEED_LABELS = {"auc": "test ROC AUC (grey: each seed's 95% interval)",
                "f1": "test F1 at the validation threshold"}


def plot_seed_results(results, metrics=("auc", "f1"), *, methods=None):
    """Each method's test metrics over training seeds: one dot per seed, a bar at the mean.

    Parameters
    ----------
    results : pandas.DataFrame
        A results table (``results/<profile>.tsv``: one row per method and seed, columns
        ``method``, ``seed`` and the metrics; ``auc_low``/``auc_high`` add each seed's
        bootstrap interval to the AUC panel).
    metrics : sequence of str
        One panel per metric, at most two per row.
    methods : sequence of str, optional
        Methods in the order drawn (default: order of first appearance).

    Returns
    -------
    list of matplotlib axes
    """
    import pandas as pd

    df = pd.DataFrame(results)
    order = list(methods) if methods is not None else list(pd.unique(df["method"]))
    order = [m for m in order if m in set(df["method"])]
    axes, _ = _panel_grid(len(metrics), width=4.6, height=max(3.0, 0.55 * len(order) + 1.6))
    seeds = sorted(pd.unique(df["seed"]))
    offsets = {s: (i - (len(seeds) - 1) / 2) * 0.12 for i, s in enumerate(seeds)}
    for ax, metric in zip(axes, metrics):
        labelled = set()  # each seed enters the legend once, whichever method ran it first
        for row, method in enumerate(order):
            sub = df[df["method"] == method]
            vals = sub[metric].astype(float)
            ax.plot([vals.mean()] * 2, [row - 0.3, row + 0.3], color="black", lw=2)
            for _, r in sub.iterrows():
                y = row + offsets[r["seed"]]
                if metric == "auc" and {"auc_low", "auc_high"} <= set(sub.columns):
                    ax.plot([r["auc_low"], r["auc_high"]], [y, y], color="0.7", lw=1)
                ax.scatter(float(r[metric]), y, s=22, zorder=3,
                           color=f"C{seeds.index(r['seed']) % 10}",
                           label=None if r["seed"] in labelled else f"seed {int(r['seed'])}")
                labelled.add(r["seed"])
        ax.set_yticks(range(len(order)), order, fontsize=LABEL_SIZE)
        ax.set_ylim(len(order) - 0.5, -0.5)
        ax.set_xlabel(_SEED_LABELS.get(metric, f"test {metric.replace('_', ' ')}"),
                      fontsize=LABEL_SIZE)
        ax.set_xlim((0.45, 1.01) if metric == "auc" else (-0.02, 1.02))
        ax.grid(alpha=0.3, axis="x")
    handles, names = axes[0].get_legend_handles_labels()
    by_seed = sorted(zip(names, handles), key=lambda nh: int(nh[0].split()[-1]))
    names, handles = [n for n, _ in by_seed], [h for _, h in by_seed]
    handles.append(plt.Line2D([], [], color="black", lw=2))
    names.append("mean over seeds")
    fig = axes[0].figure
    fig.legend(handles, names, loc="lower center", ncol=len(names), fontsize=LEGEND_SIZE,
               frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return list(axes)
