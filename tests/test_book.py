"""Static checks of the book: table of contents, notebook hygiene, Colab cell, parameters."""

from __future__ import annotations

import nbformat
import pytest
import yaml

import sync_colab_cell as colab
from mriqc_nb.profiles import PROFILES

from conftest import ROOT

CHAPTERS = colab.chapter_paths(ROOT)


def test_every_toc_entry_exists():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for p in toc["parts"] for c in p["chapters"]]
    for f in files:
        assert (ROOT / f"{f}.ipynb").exists() or (ROOT / f"{f}.md").exists(), f"missing {f}"


def test_every_notebook_in_book_dir_is_in_toc():
    on_disk = {p.resolve() for p in (ROOT / "book").glob("*.ipynb")}
    assert on_disk == {p.resolve() for p in CHAPTERS}


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_hygiene(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    # stored without outputs: the build executes them
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), path.name
    # first code cell: the Colab-only install, from the repository of _config.yml, with the
    # extras this chapter needs (tools/sync_colab_cell.py writes it)
    assert code[0].source == colab.expected_source(path, ROOT)
    assert code[0].metadata.get("tags") == ["remove-cell"]
    # a papermill `parameters` cell that sets `profile`
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and "profile = " in params[0].source
    # nbval markers are cell tags (tools/tidy_notebooks.py), not comments shown to readers
    assert not any("NBVAL_" in c.source for c in code)
    tags = [c.metadata.get("tags", []) for c in code]
    # TensorFlow, where imported, is imported in its own nbval-ignore-output cell
    for c, t in zip(code, tags):
        if "import tensorflow" in c.source or "import keras" in c.source:
            assert "nbval-ignore-output" in t
    # at least one seeded, checked output (nbval --nbval-lax compares only these)
    assert any("nbval-check-output" in t for t in tags)


def test_profiles_have_grids_divisible_by_32():
    for p in PROFILES.values():
        assert all(n % 32 == 0 for n in p.grid), p.name


# --- book helpers: the notes pages show, and figures that stay legible -------------------

def test_profile_note_warns_under_smoke_and_notes_otherwise():
    from mriqc_nb import notes
    from mriqc_nb.profiles import get_profile

    smoke = notes.profile_note(get_profile("smoke"), "Extra sentence.").data
    assert smoke.startswith("~~~{admonition} Smoke profile") and ":class: warning" in smoke
    assert smoke.rstrip().endswith("~~~")
    assert "not results" in smoke and smoke.rstrip("~\n").endswith("Extra sentence.")
    laptop = notes.profile_note(get_profile("laptop")).data
    assert ":class: note" in laptop and "not results" not in laptop
    assert "seed 2023" in laptop


def test_every_note_renders_as_an_admonition_not_as_raw_text():
    # a backtick in the title (Profile `laptop`) must not break the directive's fence: the
    # laptop pages showed the raw "```{admonition}" until the fence became tildes
    from docutils.core import publish_string
    from myst_parser.parsers.docutils_ import Parser

    from mriqc_nb import notes
    from mriqc_nb.profiles import get_profile

    texts = [notes.profile_note(get_profile(name)).data
             for name in ("smoke", "laptop", "colab", "paper")]
    texts.append(notes.training_note(["prime", "ramp"], get_profile("laptop")).data)
    for text in texts:
        html = publish_string(text, parser=Parser(), writer_name="html5",
                              settings_overrides={"output_encoding": "unicode"})
        assert 'class="admonition' in html and "{admonition}" not in html, text[:60]


def test_training_note_sums_the_stages_and_says_about():
    from mriqc_nb import notes
    from mriqc_nb.profiles import get_profile

    text = notes.training_note(["baseline", "focal"], get_profile("laptop")).data
    minutes = notes.LAPTOP_MINUTES["baseline"] + notes.LAPTOP_MINUTES["focal"]
    assert f"about {notes._round_minutes(minutes)} minutes" in text
    assert "measured" in text and notes.LAPTOP_MINUTES_CPU in text  # where, and on what
    # every stage a chapter trains has its time, the recipe included
    from mriqc_nb.model.runs import STAGES
    assert set(notes.LAPTOP_MINUTES) == set(STAGES)
    with pytest.raises(KeyError):
        notes.training_note(["no-such-stage"], get_profile("laptop"))


def test_training_note_says_loaded_where_the_book_ships_the_runs(tmp_path, monkeypatch):
    from mriqc_nb import notes
    from mriqc_nb.profiles import get_profile

    laptop = get_profile("laptop")
    monkeypatch.setenv("MRIQC_NB_SHIPPED_DIR", str(tmp_path))
    monkeypatch.delenv("MRIQC_NB_TRAIN_HERE", raising=False)
    (tmp_path / "laptop-runs" / "baseline").mkdir(parents=True)
    (tmp_path / "laptop-runs" / "baseline" / "SHIPPED.json").write_text("{}")
    text = notes.training_note(["baseline"], laptop).data
    assert "loads `baseline`" in text and "train_here = True" in text
    # one stage of the cell not shipped: the cell trains, and the note says so
    assert "trains `baseline`, `focal`" in notes.training_note(["baseline", "focal"], laptop).data
    monkeypatch.setenv("MRIQC_NB_TRAIN_HERE", "1")
    assert "trains `baseline`" in notes.training_note(["baseline"], laptop).data


def test_readable_rounds_makes_integers_and_spells_missing_values():
    import numpy as np
    import pandas as pd

    from mriqc_nb import notes

    raw = pd.DataFrame({"tp_count": [1.0, 2.0, np.nan], "f1_score": [0.12345, np.nan, 1.0],
                        "warnings": ["", None, "few artifacts"]},
                       index=pd.Index(["a", "b", "c"], name="referral_by"))
    out = notes.readable(raw)
    assert list(out.columns) == ["tp count", "f1 score", "warnings"]
    assert out.index.name == "referral by"
    assert out["tp count"].tolist() == [1, 2, "n/a"]
    assert out["f1 score"].tolist() == [0.123, "n/a", 1.0]
    assert out["warnings"].tolist() == ["", "n/a", "few artifacts"]
    blank = notes.readable(raw, na="", wrap_names=False)
    assert "tp_count" in blank.columns and blank["tp_count"].tolist() == [1, 2, ""]


def test_histories_two_panels_per_row_and_integer_epochs():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from mriqc_nb import plots

    h = pd.DataFrame({"epoch": [1, 2, 3], "phase": ["prime", "ramp", "finetune"],
                      "ce": [1.0, 0.8, 0.7], "val_ce": [1.1, 0.9, 0.8],
                      "val_accuracy": [0.5, 0.6, 0.7]})
    axes = plots.plot_histories({"a": h, "b": h}, phases=True)
    fig = axes[0].figure
    rows = {round(ax.get_position().y0, 3) for ax in axes}
    assert len(axes) == 3 and len(rows) == 2  # 2 + 1 panels, the spare one holds the legends
    spare = [ax for ax in fig.axes if ax not in axes]
    assert len(spare) == 1 and spare[0].get_legend() is not None
    fig.canvas.draw()
    for ax in axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks)
    plt.close(fig)


def test_artifact_panel_has_colour_bars_for_values():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from mriqc_nb import plots

    rng = np.random.default_rng(0)
    clean = rng.random((32, 32, 32)).astype(np.float32)
    fig = plots.plot_artifact_panel(clean, {"prominent": clean * 1.1}, (1, 1, 1), kspace=True)
    bars = [child for ax in fig.axes for child in ax.child_axes]  # inset colour bars
    labels = [ax.get_ylabel() for ax in bars]
    assert "difference\n(image units)" in labels and "log10 |k| / max" in labels
    plt.close(fig)


def test_mathjax_is_served_by_the_book_itself():
    # formulas must render offline: mathjax_path names a file the build copies into the site
    # (html_extra_path), and no script sits under _static/, which jupyter-book would add to
    # every page (MathJax loaded twice)
    import posixpath

    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]
    path = cfg["mathjax_path"]
    assert "://" not in path
    in_site = posixpath.normpath(posixpath.join("_static", path))  # relative to _static/
    assert any((ROOT / extra / in_site).is_file() for extra in cfg["html_extra_path"]), in_site
    assert not list((ROOT / "_static").rglob("*.js"))
    assert "_extra" in yaml.safe_load((ROOT / "_config.yml").read_text())["exclude_patterns"]
