"""Scan table, splits, validation and the ramp schedule (counts and tables only, no volumes)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from mriqc_nb import data
from mriqc_nb.data.ramp import (
    epoch_table,
    priming_set,
    ramp_clean_counts,
    ramp_schedule_frame,
    ramp_sizes,
    ramp_subset,
)
from mriqc_nb.data.splits import prepare_table, split_counts
from mriqc_nb.data.table import SPLITS, TableError, split_rows
from mriqc_nb.labels import class_weights
from mriqc_nb.profiles import get_profile

PAPER_PRIME, PAPER_FULL, PAPER_ART = 834, 20879, 417


# --------------------------------------------------------------------------- ramp, from counts
def test_ramp_sizes_reproduce_the_paper():
    assert ramp_sizes(PAPER_PRIME, PAPER_FULL, 5).tolist() == [834, 4843, 8852, 12861, 16870, 20879]
    for e_r in (5, 20, 100, 200):
        sizes = ramp_sizes(PAPER_PRIME, PAPER_FULL, e_r)
        assert len(sizes) == e_r + 1 and sizes[0] == PAPER_PRIME and sizes[-1] == PAPER_FULL
        expected = [int(np.floor(PAPER_PRIME + e * (PAPER_FULL - PAPER_PRIME) / e_r)) for e in range(e_r + 1)]
        assert sizes.tolist() == expected
        assert np.all(np.diff(sizes) >= 0)
    assert ramp_sizes(PAPER_PRIME, PAPER_FULL, 20)[1] == 834 + 20045 // 20  # 1836, rounded down
    with pytest.raises(ValueError):
        ramp_sizes(PAPER_PRIME, PAPER_FULL, 0)


def test_ramp_schedule_frame_and_class_weights():
    f = ramp_schedule_frame(PAPER_PRIME, PAPER_FULL, 5, n_epochs=8)
    assert f["epoch"].tolist() == list(range(9))
    assert f["size"].tolist() == [834, 4843, 8852, 12861, 16870] + [20879] * 4
    assert (f["n_artifact"] == PAPER_ART).all()
    assert f["clean_share"].iloc[0] == 0.5 and abs(f["clean_share"].iloc[5] - 0.98) < 1e-3
    assert f["stage"].tolist()[:2] == ["prime", "ramp"] and f["stage"].iloc[-1] == "full"
    np.testing.assert_allclose(f["weight_artifact"], f["n_clean"] / PAPER_ART)
    assert (f["weight_clean"] == 1.0).all()
    assert class_weights({0: 20462, 1: 417}) == {0: 1.0, 1: 20462 / 417}
    assert class_weights({0: 10, 1: 0}) == {0: 1.0, 1: 0.0}


def test_share_mode_ramps_the_clean_share_linearly():
    clean = ramp_clean_counts(PAPER_ART, PAPER_ART, PAPER_FULL - PAPER_ART, 5, mode="share")
    share = clean / (clean + PAPER_ART)
    assert clean[0] == PAPER_ART and clean[-1] == PAPER_FULL - PAPER_ART
    np.testing.assert_allclose(share, np.linspace(0.5, share[-1], 6), atol=1e-3)
    assert np.all(np.diff(clean) >= 0)
    f = ramp_schedule_frame(PAPER_PRIME, PAPER_FULL, 5, mode="share")
    assert f["size"].iloc[1] < ramp_sizes(PAPER_PRIME, PAPER_FULL, 5)[1]  # slower start
    with pytest.raises(ValueError):
        ramp_clean_counts(1, 1, 2, 5, mode="nope")


def _counts_table(n_art=PAPER_ART, n_clean=PAPER_FULL - PAPER_ART, other=30) -> pd.DataFrame:
    """A table of ids and labels only (the ramp never needs volumes)."""
    labels = ["artifact"] * n_art + ["clean"] * n_clean
    rng = np.random.default_rng(0)
    labels = list(np.array(labels)[rng.permutation(len(labels))])
    df = pd.DataFrame({"scan_id": [f"s{i:05d}" for i in range(len(labels))], "label": labels, "split": "train"})
    extra = pd.DataFrame({"scan_id": [f"v{i}" for i in range(other)], "label": "clean", "split": "valid"})
    return pd.concat([df, extra], ignore_index=True)


@pytest.mark.parametrize("ramp_epochs", [5, 20])
def test_ramp_subsets_have_the_paper_sizes_and_are_nested(ramp_epochs):
    table = _counts_table()
    sizes = ramp_sizes(PAPER_PRIME, PAPER_FULL, ramp_epochs)
    arts = set(table.loc[(table.label == "artifact"), "scan_id"])
    previous = set()
    for e in range(ramp_epochs + 2):
        ids = ramp_subset(table, e, ramp_epochs, seed=3)
        assert len(ids) == len(set(ids)) == sizes[min(e, ramp_epochs)]
        assert arts <= set(ids)  # the artifacts stay fixed
        assert previous <= set(ids)  # nested
        assert not any(i.startswith("v") for i in ids)  # training rows only
        previous = set(ids)
    assert len(previous) == PAPER_FULL
    assert ramp_subset(table, 2, ramp_epochs, seed=3) == ramp_subset(table, 2, ramp_epochs, seed=3)
    assert ramp_subset(table, 1, ramp_epochs, seed=3) != ramp_subset(table, 1, ramp_epochs, seed=4)


def test_epoch_zero_is_the_priming_set():
    table = _counts_table()
    prime = priming_set(table, seed=1)
    assert len(prime) == PAPER_PRIME
    assert (prime.label == "artifact").sum() == PAPER_ART == (prime.label == "clean").sum()
    assert set(prime.scan_id) == set(ramp_subset(table, 0, 5, seed=1))
    assert len(epoch_table(table, 0, 5, seed=1)) == PAPER_PRIME


def test_split_counts():
    assert split_counts(696) == [PAPER_ART, 139, 140]  # the paper's artifacts per split
    assert split_counts(12) == [7, 2, 3]
    assert split_counts(4) == [1, 1, 2]  # no split left without artifacts
    assert split_counts(2) == [1, 0, 1]
    assert split_counts(5, (0.5, 0.5, 0.0)) == [2, 3, 0]
    assert split_counts(100, (0.7, 0.15, 0.15)) == [70, 15, 15]
    assert sum(split_counts(34800)) == 34800
    with pytest.raises(ValueError):
        split_counts(10, (0.5, 0.4))


# --------------------------------------------------------------------------- the synthetic table
@pytest.fixture(scope="module")
def smoke_table():
    return data.make_table("smoke")


def test_table_is_deterministic(smoke_table):
    from mriqc_nb.data import synthetic

    # drawn again, not the table this process already made (make_table keeps it)
    pd.testing.assert_frame_equal(smoke_table, synthetic._make_table(get_profile("smoke")))
    other = data.make_table(replace(get_profile("smoke"), seed=1))
    assert not other["recipe"].equals(smoke_table["recipe"])


def test_a_made_table_is_kept_per_profile_and_every_call_gets_its_own_copy():
    first = data.make_table("smoke")
    first.loc[first.index[0], "label"] = "changed by a caller"
    again = data.make_table("smoke")
    assert again is not first and again.iloc[0]["label"] != "changed by a caller"
    pd.testing.assert_frame_equal(again, data.make_table(get_profile("smoke")))
    assert len(data.make_table(replace(get_profile("smoke"), n_scans=60))) != len(again)


def test_exact_class_counts_per_split(smoke_table):
    p = get_profile("smoke")
    cb = data.class_balance(smoke_table)
    assert cb.loc[list(SPLITS), "artifact"].tolist() == split_counts(p.n_artifact, p.split_fractions)
    assert cb.loc[list(SPLITS), "total"].sum() == p.n_scans
    assert cb.loc["subtle", "artifact"] == cb.loc["subtle", "total"] == p.n_subtle
    sizes = cb.loc[list(SPLITS), "total"].tolist()
    assert sizes == [s * p.scans_per_subject for s in split_counts(p.n_scans // p.scans_per_subject)]
    per_mod = data.class_balance(smoke_table, by=["split", "modality"])
    assert per_mod["total"].iloc[-1] == len(smoke_table)
    assert per_mod.loc[("train", "T1w"), "total"] == ((smoke_table.split == "train") & (smoke_table.modality == "T1w")).sum()


def test_no_subject_in_two_splits(smoke_table):
    assert (smoke_table.groupby("subject_id")["split"].nunique() == 1).all()
    subtle_subjects = set(smoke_table.loc[smoke_table.split == "subtle", "subject_id"])
    assert not subtle_subjects & set(smoke_table.loc[smoke_table.split != "subtle", "subject_id"])


def test_labels_kinds_and_severities(smoke_table):
    t = smoke_table
    art = t[t.label == "artifact"]
    assert (t.loc[t.label == "clean", "severity"] == "none").all()
    assert (art.loc[art.split != "subtle", "severity"] == "prominent").all()
    assert (art.loc[art.split == "subtle", "severity"] == "subtle").all()
    from mriqc_nb.artifacts import ARTIFACTS

    for _, row in art.iterrows():
        r = json.loads(row.recipe)
        assert r["artifact"]["kind"] == row.artifact_kind and r["artifact"]["severity"] == row.severity
        assert ARTIFACTS[row.artifact_kind].artifact_class == row.artifact_class
    for _, row in t[t.label == "clean"].iterrows():
        assert json.loads(row.recipe)["artifact"] is None
    # kinds cycle evenly within each split
    big = data.make_table(replace(get_profile("smoke"), n_scans=400, clean_share=0.5, n_subtle=0))
    for split, g in big[big.label == "artifact"].groupby("split"):
        counts = g.artifact_kind.value_counts().reindex(list(ARTIFACTS), fill_value=0)
        assert counts.max() - counts.min() <= 1, split
    assert set(big.modality) == {"T1w", "T2w", "PDw", "FLAIR"}


def test_priming_set_composition(smoke_table):
    t = smoke_table
    train = t[t.split == "train"]
    prime = priming_set(t)
    n_art = (train.label == "artifact").sum()
    assert set(prime.scan_id) == set(t.loc[t.prime, "scan_id"])
    assert (prime.split == "train").all()
    assert set(train.loc[train.label == "artifact", "scan_id"]) <= set(prime.scan_id)
    assert (prime.label == "clean").sum() == n_art and len(prime) == 2 * n_art
    ranks = train.loc[train.label == "clean", "ramp_rank"]
    assert sorted(ranks) == list(range(len(ranks)))
    assert (t.loc[(t.split != "train") | (t.label == "artifact"), "ramp_rank"] == -1).all()
    # epoch 0 of the table's own ramp order is the stored priming set
    assert set(ramp_subset(t, 0, 2)) == set(prime.scan_id)
    assert len(ramp_subset(t, 2, 2)) == len(train)


def test_tsv_round_trip(tmp_path, smoke_table):
    path = data.save_table(smoke_table, tmp_path / "scans.tsv")
    text = path.read_text()
    assert '"{' not in text  # recipes are written as bare JSON
    back = data.load_table(path)
    pd.testing.assert_frame_equal(back, smoke_table, check_dtype=False)
    assert back.attrs["root"] == str(tmp_path.resolve())


# --------------------------------------------------------------------------- validation
def _user_table(tmp_path, n=6) -> pd.DataFrame:
    for i in range(n):
        (tmp_path / f"scan{i}.nii.gz").write_bytes(b"x")
    return pd.DataFrame(
        {
            "path": [f"scan{i}.nii.gz" for i in range(n)],
            "label": ["clean", "artifact", "0", "1", "Clean", "ARTIFACT"][:n],
            "subject_id": ["a", "a", "b", "b", "c", "c"][:n],
        }
    )


def test_valid_user_table_is_normalised(tmp_path):
    df = data.validate_table(_user_table(tmp_path), root=tmp_path)
    assert df.scan_id.tolist() == [f"scan{i}" for i in range(6)]
    assert df.label.tolist() == ["clean", "artifact"] * 3
    assert df.severity.tolist() == ["none", "prominent"] * 3


@pytest.mark.parametrize(
    "problem, edit, bad_rows",
    [
        ("unknown label", lambda d: d.assign(label=["clean", "maybe", "0", "1", "?", "artifact"]), [1, 4]),
        ("duplicate scan_id", lambda d: d.assign(scan_id=["x", "y", "x", "z", "w", "v"]), [0, 2]),
        ("missing file", lambda d: d.assign(path=d.path.where(d.index != 3, "gone.nii.gz")), [3]),
        ("subject in several splits", lambda d: d.assign(split=["train", "test", "valid", "valid", "test", "test"]), [0, 1]),
        ("unknown split", lambda d: d.assign(split=["train", "train", "dev", "dev", "test", "test"]), [2, 3]),
        ("no source", lambda d: d.assign(path=d.path.where(d.index != 5, "")), [5]),
        ("unknown severity", lambda d: d.assign(severity=["none", "huge", "", "", "", ""]), [1]),
        ("missing split", lambda d: d.assign(split=["train", "train", "", "", "test", "test"]), [2, 3]),
    ],
)
def test_table_errors_list_the_offending_rows(tmp_path, problem, edit, bad_rows):
    df = edit(_user_table(tmp_path))
    with pytest.raises(TableError) as info:
        data.validate_table(df, root=tmp_path)
    err = info.value
    assert isinstance(err, ValueError)
    assert list(err.problems) == [problem]
    assert sorted(err.problems[problem]) == bad_rows
    for r in bad_rows:
        assert f"row {r}" in str(err)
    assert problem in str(err)


def test_every_problem_is_reported_at_once(tmp_path):
    df = _user_table(tmp_path)
    df.loc[0, "label"] = "bad"
    df.loc[1, "path"] = "nowhere.nii"
    df["scan_id"] = ["a", "a", "b", "c", "d", "e"]
    with pytest.raises(TableError) as info:
        data.validate_table(df, root=tmp_path)
    assert set(info.value.problems) == {"unknown label", "missing file", "duplicate scan_id"}
    assert "nowhere.nii" in str(info.value)
    with pytest.raises(TableError, match="missing column"):
        data.validate_table(pd.DataFrame({"path": ["a"]}))
    with pytest.raises(TableError, match="bad recipe"):
        data.validate_table(pd.DataFrame({"recipe": ["{not json"], "label": ["clean"], "scan_id": ["r"]}))


def test_user_table_gets_grouped_stratified_splits(tmp_path):
    n_subj = 50
    rows = []
    for s in range(n_subj):
        for j in range(3):
            rows.append(dict(path=f"s{s}_{j}.nii", subject_id=f"sub{s}", label="artifact" if (s % 5 == 0 and j == 0) else "clean"))
    df = pd.DataFrame(rows)
    for p in df.path:
        (tmp_path / p).write_bytes(b"x")
    out = prepare_table(df, replace(get_profile("smoke"), seed=3), root=tmp_path)
    assert (out.groupby("subject_id")["split"].nunique() == 1).all()
    art_subj = out[out.label == "artifact"].groupby("split")["subject_id"].nunique()
    assert art_subj.to_dict() == dict(zip(SPLITS, split_counts(10)))
    all_subj = out.groupby("split")["subject_id"].nunique()
    assert all_subj.to_dict() == {s: a + c for s, a, c in zip(SPLITS, split_counts(10), split_counts(40))}
    assert out.path.map(lambda p: p.startswith(str(tmp_path.resolve()))).all()
    assert out.prime.sum() == 2 * (out[(out.split == "train")].label == "artifact").sum()
    data.validate_table(out)


def test_paper_profile_has_the_papers_counts():
    """The paper's scale from the table alone: 417 / 139 / 140 artifacts, a priming set of 834."""
    t = data.make_table("paper")
    cb = data.class_balance(t)
    assert cb.loc[list(SPLITS), "artifact"].tolist() == [417, 139, 140]
    assert cb.loc[list(SPLITS), "total"].tolist() == [20880, 6960, 6960]  # the paper: 20,879 / 6,958 / 6,958
    assert cb.loc["subtle", "total"] == get_profile("paper").n_subtle
    assert t.prime.sum() == 834
    sizes = [len(ramp_subset(t, e, 5)) for e in (0, 1, 5)]
    assert sizes == ramp_sizes(834, 20880, 5)[[0, 1, 5]].tolist() == [834, 4843, 20880]


# --------------------------------------------------------------------------- the public API
def test_split_rows():
    t = _counts_table(n_art=3, n_clean=5, other=2)
    assert split_rows(t, "train").scan_id.tolist() == t.scan_id[:8].tolist()
    assert split_rows(t, "valid").scan_id.tolist() == ["v0", "v1"]
    assert split_rows(t, "test").empty
    no_split = t.drop(columns="split")
    assert split_rows(no_split, "train") is no_split  # a table of one split's rows


def test_package_exposes_real_functions_with_their_signatures():
    import inspect

    assert len(data.__all__) == len(set(data.__all__)) <= 25
    for name in data.__all__:
        obj = getattr(data, name)
        if inspect.isfunction(obj):
            kinds = {p.kind for p in inspect.signature(obj).parameters.values()}
            assert inspect.Parameter.VAR_POSITIONAL not in kinds, name  # no *args wrappers
            assert obj.__module__.startswith("mriqc_nb.data."), name
            assert obj.__doc__, name
