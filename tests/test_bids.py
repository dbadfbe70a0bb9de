"""BIDS datasets (mriqc_nb.bids): roots, anatomical scans, entities, derivative description."""

from __future__ import annotations

import json
import os

import pytest

from mriqc_nb import __version__, bids


def _touch(path, text=""):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def dataset(tmp_path):
    """Two subjects: sub-01 with two sessions, sub-02 without sessions; other data around."""
    root = tmp_path / "ds"
    _touch(root / "dataset_description.json", json.dumps({"Name": "toy", "BIDSVersion": "1.9.0",
                                                          "DatasetDOI": "10.1234/toy"}))
    for name in ["sub-01/ses-pre/anat/sub-01_ses-pre_T1w.nii.gz",
                 "sub-01/ses-pre/anat/sub-01_ses-pre_T1w.json",
                 "sub-01/ses-pre/anat/sub-01_ses-pre_acq-fast_run-02_T2w.nii",
                 "sub-01/ses-post/anat/sub-01_ses-post_rec-norm_T1w.nii.gz",
                 "sub-01/ses-post/func/sub-01_ses-post_task-rest_bold.nii.gz",
                 "sub-02/anat/sub-02_run-1_T1w.nii.gz",
                 "sub-02/anat/._sub-02_run-1_T1w.nii.gz",
                 "sub-02/dwi/sub-02_dwi.nii.gz",
                 "derivatives/x/sub-01/anat/sub-01_desc-brain_T1w.nii.gz",
                 "sourcedata/sub-01/anat/raw.nii.gz"]:
        _touch(root / name)
    # a DataLad file whose content was not fetched: a symbolic link into the annex
    os.symlink("../../.git/annex/objects/XX/YY/SHA256E-s1--abc.nii.gz",
               root / "sub-02" / "anat" / "sub-02_run-2_T1w.nii.gz")
    return root


def test_entities_long_names_suffix_and_datatype():
    ent = bids.entities("ds/sub-01/ses-pre/anat/sub-01_ses-pre_acq-mprage_run-02_T1w.nii.gz")
    assert ent == {"subject": "01", "session": "pre", "acquisition": "mprage", "run": "02",
                   "suffix": "T1w", "extension": ".nii.gz", "datatype": "anat"}
    assert bids.entities("sub-x_rec-norm_ce-gad_foo-bar_FLAIR.nii") == {
        "subject": "x", "reconstruction": "norm", "ceagent": "gad", "foo": "bar",
        "suffix": "FLAIR", "extension": ".nii"}
    for name in ["T1.nii.gz", "subject01_T1w.nii.gz", "sub-01.nii.gz", "sub-01_run_T1w.nii",
                 "sub-01_run-1-2_T1w.nii", "sub-01_T1w-x.nii"]:
        assert bids.entities(name) == {}, name


def test_is_bids_root(dataset, tmp_path):
    assert bids.is_bids_root(dataset) and bids.is_bids_root(str(dataset))
    assert not bids.is_bids_root(dataset / "sub-01")
    assert not bids.is_bids_root(dataset / "dataset_description.json")
    assert not bids.is_bids_root(tmp_path / "nothere")
    bare = tmp_path / "bare"
    (bare / "sub-07" / "anat").mkdir(parents=True)
    assert bids.is_bids_root(bare)              # no description, but subject folders
    (tmp_path / "plain" / "sub-a").mkdir(parents=True)   # named like subjects, not laid out
    (tmp_path / "plain" / "sub-a" / "T1.nii.gz").write_text("")
    assert not bids.is_bids_root(tmp_path / "plain")


def test_anat_scans_every_subject_and_session(dataset):
    scans = bids.anat_scans(dataset)
    rel = [os.path.relpath(s.path, dataset) for s in scans]
    assert rel == ["sub-01/ses-post/anat/sub-01_ses-post_rec-norm_T1w.nii.gz",
                   "sub-01/ses-pre/anat/sub-01_ses-pre_T1w.nii.gz",
                   "sub-01/ses-pre/anat/sub-01_ses-pre_acq-fast_run-02_T2w.nii",
                   "sub-02/anat/sub-02_run-1_T1w.nii.gz",
                   "sub-02/anat/sub-02_run-2_T1w.nii.gz"]   # the dangling link is listed too
    assert scans[2].entities == {"subject": "01", "session": "pre", "acquisition": "fast",
                                 "run": "02", "suffix": "T2w", "extension": ".nii",
                                 "datatype": "anat"}
    assert "session" not in scans[3].entities and scans[3].entities["run"] == "1"


def test_derivative_description(dataset, tmp_path):
    out = dataset / "derivatives" / "mriqc-nb"
    path = bids.write_derivative_description(out, source_root=dataset,
                                             description="bundle ramp/laptop, seed 0")
    info = json.loads(path.read_text())
    assert path == out / "dataset_description.json"
    assert info["DatasetType"] == "derivative" and info["BIDSVersion"] == bids.BIDS_VERSION
    assert info["GeneratedBy"][0]["Name"] == "mriqc-nb"
    assert info["GeneratedBy"][0]["Version"] == __version__
    assert info["GeneratedBy"][0]["Description"] == "bundle ramp/laptop, seed 0"
    assert info["SourceDatasets"] == [{"DOI": "10.1234/toy"}]
    # our own description is updated; someone else's is never touched
    bids.write_derivative_description(out, name="again")
    assert json.loads(path.read_text())["Name"] == "again"
    with pytest.raises(FileExistsError, match="not written by mriqc-nb"):
        bids.write_derivative_description(dataset)
    assert json.loads((dataset / "dataset_description.json").read_text())["Name"] == "toy"
    plain = bids.write_derivative_description(tmp_path / "d2", source_root=tmp_path)
    assert json.loads(plain.read_text())["SourceDatasets"] == [{"URL": tmp_path.resolve().as_uri()}]
