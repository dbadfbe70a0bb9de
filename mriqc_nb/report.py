"""A self-contained HTML report of a screening table: what a person must look at, with pictures.

:func:`write_report` turns a screening table (:func:`mriqc_nb.screen.read_results`) into one
HTML file that needs nothing else: CSS inline, images embedded as base64 PNG, no script, no
external link, so it can be mailed, archived with the data, or opened offline. It holds:

1. **Summary**: how many scans, screened (``ok``), ``clean``, ``artifact``, ``refer``,
   ``error``, and how many need a person.
2. **Worklist**: the scans that need a person, in the order to look at them
   (:func:`worklist`): errors, then referred scans (most uncertain first), then scans called
   artifact (most probable first).
3. **Views**: for each scan called artifact or referred, three orthogonal slices (sagittal,
   coronal, axial, neurological convention) of its conformed volume, with its probability of
   an artifact and its uncertainty.
4. **Errors**: each unusable input and why (every text is HTML-escaped).

The volumes for the views come from ``views``: a dict or a callable mapping the table's
``path`` to a conformed volume, so the screening loop can hand over the arrays it already has;
paths it does not cover are loaded from disk (:func:`conformed_views`).
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import math
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from ._atomic import write_text
from .bids import ENTITY_COLUMNS
from .labels import ARTIFACT, CLEAN, REFER

__all__ = ["VIEW_GRID", "VIEW_SPACING_MM", "MAX_VIEWS", "worklist", "conformed_views",
           "write_report"]

#: Grid (voxels, RAS+) and voxel size (mm) of the volumes drawn for files loaded from disk:
#: a 192 x 240 x 200 mm field of view at 2 mm, finer than the network's input.
VIEW_GRID = (96, 120, 100)
VIEW_SPACING_MM = (2.0, 2.0, 2.0)
#: Most scans drawn in one report (each adds about 40 kB); the rest are listed without views.
MAX_VIEWS = 200
ERROR = "error"
_REQUIRED = ("path", "status", "error", "decision", "p_artifact")
_RANK = {ERROR: 0, REFER: 1, ARTIFACT: 2}

_CSS = """
body{margin:0;background:#f4f5f7;color:#1d2330;font:15px/1.45 system-ui,-apple-system,
"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
main{max-width:1200px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:20px;margin:32px 0 10px;border-bottom:2px solid
#d5d9e0;padding-bottom:4px}
.meta{color:#5a6270;font-size:13px;margin:0}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{background:#fff;border-radius:8px;padding:10px 18px;min-width:110px;
box-shadow:0 1px 2px #0002;border-top:5px solid #8a93a3}
.card .n{display:block;font-size:28px;font-weight:700}.card .label{color:#5a6270}
.card.clean{border-color:#2e9d5b}.card.artifact{border-color:#d9822b}
.card.refer{border-color:#7a5cc7}.card.error{border-color:#c9302c}
.card.person{border-color:#1d2330}
table{border-collapse:collapse;width:100%;background:#fff;box-shadow:0 1px 2px #0002}
th,td{padding:6px 10px;text-align:left;vertical-align:top;border-bottom:1px solid #e3e6eb}
th{background:#e9ecf1;font-size:13px}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.path{word-break:break-all;font-family:ui-monospace,"DejaVu Sans Mono",monospace;
font-size:13px}
.badge{display:inline-block;border-radius:10px;padding:1px 9px;color:#fff;font-size:13px}
.badge.clean{background:#2e9d5b}.badge.artifact{background:#d9822b}
.badge.refer{background:#7a5cc7}.badge.error{background:#c9302c}
figure{background:#fff;margin:0 0 16px;padding:10px 12px;border-radius:8px;
box-shadow:0 1px 2px #0002}
figure img{display:block;width:100%;max-width:900px;background:#000}
figcaption{margin-top:6px}figcaption .path{font-family:ui-monospace,monospace;font-size:13px;
word-break:break-all}
.muted{color:#5a6270}
"""


def _check(table: pd.DataFrame) -> None:
    missing = [c for c in _REQUIRED if c not in table.columns]
    if missing:
        raise ValueError(f"not a screening table: columns {missing} are missing")


def worklist(table: pd.DataFrame) -> pd.DataFrame:
    """The scans that need a person, in the order to look at them.

    Errors first (by path), then referred scans by decreasing ``scaled_uncertainty`` (the
    most uncertain first), then scans called artifact by decreasing ``p_artifact``.

    Parameters
    ----------
    table : pandas.DataFrame
        A screening table (columns of :data:`mriqc_nb.screen.COLUMNS`).

    Returns
    -------
    pandas.DataFrame
        Those rows (clean scans left out), original index kept.
    """
    _check(table)
    rows = table[table["decision"].isin(list(_RANK))].copy()
    rank = rows["decision"].map(_RANK)
    p = pd.to_numeric(rows["p_artifact"], errors="coerce").fillna(0.0)
    unc = pd.to_numeric(rows.get("scaled_uncertainty", p * 0), errors="coerce").fillna(0.0)
    # one descending key per group: uncertainty for referrals, probability for artifacts
    key = np.where(rank == _RANK[REFER], unc, np.where(rank == _RANK[ARTIFACT], p, 0.0))
    rows = rows.assign(_rank=rank, _key=-key, _path=rows["path"].astype(str))
    return rows.sort_values(["_rank", "_key", "_path"], kind="stable").drop(
        columns=["_rank", "_key", "_path"])


def conformed_views(grid=VIEW_GRID, spacing_mm=VIEW_SPACING_MM) -> Callable:
    """A loader for :func:`write_report` that reads a table's path from disk and conforms it.

    Parameters
    ----------
    grid : 3 int
        Grid of the drawn volume (voxels, RAS+).
    spacing_mm : 3 float
        Its voxel size in millimetres.

    Returns
    -------
    callable
        ``path -> nibabel.Nifti1Image``: the table's printable ``path``
        (:func:`mriqc_nb.sources.printable`) turned back into the file name, checked
        (:func:`mriqc_nb.scans.check_header`) and conformed (:func:`mriqc_nb.scans.conform`,
        normalised). Raises :class:`mriqc_nb.scans.ScanError` for an unusable file.
    """
    from .scans import check_header, conform
    from .sources import to_fspath

    def load(path: str):
        return conform(check_header(to_fspath(str(path))), grid, spacing_mm, normalise=True,
                       return_image=True)

    return load


def _num(value, digits: int = 3) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return ""
    return "" if math.isnan(v) else f"{v:.{digits}f}"


def _badge(decision: str) -> str:
    d = html.escape(str(decision))
    return f'<span class="badge {d}">{d}</span>'


def _png(volume, spacing_mm) -> str:
    """Three orthogonal views of ``volume`` as a base64 PNG (no pyplot state involved)."""
    from matplotlib.figure import Figure

    from .plots import VIEWS, plot_orthoviews

    fig = Figure(figsize=(9.0, 3.1), dpi=100, facecolor="black")
    axes = fig.subplots(1, 3)
    plot_orthoviews(volume, spacing_mm, axes=axes)
    for ax, (name, _, _) in zip(axes, VIEWS):
        ax.set_title(name, color="white", fontsize=10)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.9, wspace=0.04)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor="black")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _volume(path: str, views, fallback: Callable, spacing_mm):
    """(3-D array, voxel size in mm) for ``path``: from ``views`` or else from the file."""
    if isinstance(views, Mapping) and path in views:
        vol = views[path]
    elif callable(views):
        vol = views(path)
    else:
        vol = fallback(path)
    if hasattr(vol, "affine") and hasattr(vol, "dataobj"):
        import nibabel as nib

        return np.asarray(vol.dataobj, dtype=np.float32), tuple(nib.affines.voxel_sizes(vol.affine))
    vol = np.asarray(vol, dtype=np.float32)
    if vol.ndim == 4 and vol.shape[-1] == 1:  # a network input with its channel axis
        vol = vol[..., 0]
    return vol, tuple(spacing_mm) if spacing_mm is not None else (1.0, 1.0, 1.0)


def _figure(i: int, row, views, fallback, spacing_mm) -> str:
    path = str(row["path"])
    caption = (f'<span class="path">{html.escape(path)}</span><br>{_badge(row["decision"])} '
               f'p(artifact) = <b>{_num(row["p_artifact"])}</b>')
    for col, label in (("scaled_uncertainty", "scaled uncertainty"),
                       ("mutual_information", "mutual information (bits)"),
                       ("entropy", "entropy (bits)")):
        if col in row.index:
            caption += f" &middot; {label} = <b>{_num(row[col])}</b>"
    if str(row.get("check", "") or "") not in ("", "nan"):  # a check at the file's own resolution
        caption += (f"<br>called by the check at the scan's own resolution: "
                    f"<b>{html.escape(str(row['check']))}</b> (the network alone: "
                    f"p(artifact) = {_num(row.get('p_network'))})")
    try:
        vol, spacing = _volume(path, views, fallback, spacing_mm)
        img = (f'<img alt="sagittal, coronal and axial slices of {html.escape(path)}" '
               f'src="data:image/png;base64,{_png(vol, spacing)}">')
    except Exception as exc:  # noqa: BLE001 - a missing picture never stops the report
        img = f'<p class="muted">views unavailable: {html.escape(str(exc))}</p>'
    return f'<figure id="view-{i}">{img}<figcaption>{caption}</figcaption></figure>'


def _entity_cells(row, columns) -> str:
    return "".join(f"<td>{html.escape(str(row[c]))}</td>" for c in columns)


def write_report(table: pd.DataFrame, out_html, *, views=None, spacing_mm=None,
                 title: str = "mriqc-nb screening report", meta: Mapping | None = None,
                 max_views: int = MAX_VIEWS) -> Path:
    """Write the self-contained HTML report of a screening table.

    Parameters
    ----------
    table : pandas.DataFrame
        A screening table (:func:`mriqc_nb.screen.read_results`); BIDS entity columns
        (``subject``, ``session``, ``run``...), when present, are shown in the worklist.
    out_html : str or os.PathLike
        The file to write (atomically; parent folders are created).
    views : dict or callable, optional
        Where the volumes of the drawn scans come from, keyed by the table's ``path``: a
        dict ``path -> volume`` (paths it lacks are loaded from disk), or a callable
        ``path -> volume``. A volume is a conformed RAS+ 3-D array (shape (X, Y, Z) or
        (X, Y, Z, 1)), or a nibabel image (its voxel size is taken from its affine).
        Default: every file is loaded from disk with :func:`conformed_views`.
    spacing_mm : 3 float, optional
        Voxel size in mm of bare arrays (e.g. the bundle's ``spacing_mm``), for the aspect
        ratio of the slices; default 1 mm.
    title : str
        Heading and ``<title>`` of the page.
    meta : mapping, optional
        Lines shown under the title (e.g. ``{"bundle": ..., "seed": 0}``).
    max_views : int
        Most scans drawn (in worklist order); the others stay in the worklist.

    Returns
    -------
    pathlib.Path
        ``out_html``.
    """
    _check(table)
    esc = html.escape
    decisions = table["decision"].astype(str)
    counts = {k: int((decisions == k).sum()) for k in (CLEAN, ARTIFACT, REFER, ERROR)}
    n_ok = int((table["status"].astype(str) == "ok").sum())
    todo = worklist(table)
    cards = [("total", "scans", len(table)), ("ok", "screened", n_ok),
             *[(k, k, counts[k]) for k in (CLEAN, ARTIFACT, REFER, ERROR)],
             ("person", "need a person", len(todo))]
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    info = {"written": now, "by": f"mriqc-nb {__version__}", **dict(meta or {})}
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{esc(title)}</h1>",
        '<p class="meta">' + " &middot; ".join(f"{esc(str(k))}: {esc(str(v))}"
                                                for k, v in info.items()) + "</p>",
        '<section id="summary"><h2>Summary</h2><div class="cards">',
        *[f'<div class="card {cls}"><span class="n">{n}</span> <span class="label">{label}'
          "</span></div>" for cls, label, n in cards],
        "</div></section>",
    ]

    ent = [c for c in ENTITY_COLUMNS if c in table.columns and c != "suffix"
           and table[c].astype(str).str.len().gt(0).any()]
    drawn = [i for i, d in enumerate(todo["decision"]) if d in (REFER, ARTIFACT)][:max_views]
    checks = "check" in todo.columns
    anchor = {pos: n for n, pos in enumerate(drawn, 1)}
    parts.append(f'<section id="worklist"><h2>Worklist: {len(todo)} scans need a person</h2>')
    if len(todo):
        parts.append("<table><thead><tr><th>#</th><th>scan</th>"
                     + "".join(f"<th>{esc(c)}</th>" for c in ent)
                     + "<th>decision</th><th>p(artifact)</th><th>scaled uncertainty</th>"
                     + ("<th>check</th>" if checks else "")
                     + "<th>view</th></tr></thead><tbody>")
        for pos, (_, row) in enumerate(todo.iterrows()):
            link = (f'<a href="#view-{anchor[pos]}">view</a>' if pos in anchor else "")
            parts.append(f'<tr><td class="num">{pos + 1}</td>'
                         f'<td class="path">{esc(str(row["path"]))}</td>'
                         + _entity_cells(row, ent)
                         + f"<td>{_badge(row['decision'])}</td>"
                         f'<td class="num">{_num(row["p_artifact"])}</td>'
                         f'<td class="num">{_num(row.get("scaled_uncertainty"))}</td>'
                         + (f"<td>{esc(str(row['check'] or ''))}</td>" if checks else "")
                         + f"<td>{link}</td></tr>")
        parts.append("</tbody></table>")
    else:
        parts.append('<p class="muted">Nothing: every scan was screened and called clean.</p>')
    parts.append("</section>")

    n_flag = int(todo["decision"].isin([REFER, ARTIFACT]).sum())
    parts.append(f'<section id="views"><h2>Flagged and referred scans ({n_flag})</h2>')
    if n_flag > len(drawn):
        parts.append(f'<p class="muted">The first {len(drawn)} are drawn; the others are in '
                     "the worklist.</p>")
    fallback = conformed_views()
    for pos in drawn:
        parts.append(_figure(anchor[pos], todo.iloc[pos], views, fallback, spacing_mm))
    parts.append("</section>")

    errors = table[decisions == ERROR]
    parts.append(f'<section id="errors"><h2>Errors ({len(errors)})</h2>')
    if len(errors):
        parts.append("<table><thead><tr><th>scan</th><th>why it could not be screened</th>"
                     "</tr></thead><tbody>")
        for _, row in errors.sort_values("path").iterrows():
            parts.append(f'<tr><td class="path">{esc(str(row["path"]))}</td>'
                         f'<td>{esc(str(row["error"]))}</td></tr>')
        parts.append("</tbody></table>")
    else:
        parts.append('<p class="muted">None.</p>')
    parts.append("</section></main></body></html>\n")
    return write_text(out_html, "\n".join(parts))
