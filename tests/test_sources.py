"""Inputs of a screening run (mriqc_nb.sources): one Source per input, problems included."""

from __future__ import annotations

import json
import os
import threading

import nibabel as nib
import numpy as np
import pytest

from mriqc_nb.sources import InputError, discover, printable, to_fspath

CAFE = os.fsdecode(b"caf\xe9.nii.gz")   # not valid UTF-8: kept as a surrogate escape


def _nii(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.arange(64, dtype=np.float32).reshape(4, 4, 4), np.eye(4)),
             str(path))
    return path


def _by_name(found):
    return {os.path.basename(s.fspath): s for s in found}


def _discover(inputs):
    """discover() in a thread: a FIFO opened by mistake would block it forever."""
    result = {}
    t = threading.Thread(target=lambda: result.update(v=discover(inputs)), daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive(), "discover blocked (did it open a FIFO?)"
    return result["v"]


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "scans"
    _nii(d / "a.nii.gz")
    _nii(d / "sub" / "b.nii")
    _nii(d / CAFE)
    _nii(d / "caf\\xe9.nii.gz")                      # the literal text of the escaped name
    (d / "x.nii.gz").mkdir()                         # a folder named like a scan
    os.symlink(d / "gone.nii.gz", d / "dangling.nii.gz")
    os.symlink("nowhere/t1.nii.gz", d / "t1_link")   # dangling, named by its target
    os.mkfifo(d / "pipe.nii.gz")
    img = nib.AnalyzeImage(np.ones((4, 4, 4), np.float32), np.eye(4))
    nib.save(img, str(d / "old.img"))                # old.img + old.hdr: one scan
    nib.save(img, str(d / "lone.img"))
    os.remove(d / "lone.hdr")                        # data without its header
    (d / "notes.txt").write_text("not listed: only scan names are taken from folders")
    (d / "a.json").write_text("{}")
    _nii(d / "._a.nii.gz")                           # macOS resource fork: hidden, skipped
    _nii(d / ".git" / "annex" / "k.nii.gz")          # hidden folder, skipped
    return d


def test_folder_lists_every_scan_and_every_problem(folder):
    found = _discover([folder])
    names = _by_name(found)
    assert sorted(names) == sorted(["a.nii.gz", "b.nii", CAFE, "caf\\xe9.nii.gz", "x.nii.gz",
                                    "dangling.nii.gz", "t1_link", "pipe.nii.gz", "old.img",
                                    "lone.img"])
    assert len({s.path for s in found}) == len(found)                 # unique keys
    for ok in ("a.nii.gz", "b.nii", CAFE, "caf\\xe9.nii.gz", "old.img"):
        assert names[ok].ok and names[ok].problem == "", ok
    problems = {"x.nii.gz": "is a directory", "dangling.nii.gz": "broken symbolic link",
                "t1_link": "broken symbolic link to nowhere/t1.nii.gz",
                "pipe.nii.gz": "is a FIFO", "lone.img": "without its .hdr"}
    for name, words in problems.items():
        src = names[name]
        assert not src.ok and src.problem.startswith(src.path + ": ") and words in src.problem


def test_undecodable_name_is_printable_unique_and_still_opens(folder):
    names = _by_name(discover(folder))
    cafe, literal = names[CAFE], names["caf\\xe9.nii.gz"]
    assert cafe.path.endswith("caf\\xe9.nii.gz") and cafe.path.isprintable()
    assert literal.path.endswith("caf\\\\xe9.nii.gz")                # backslash doubled
    assert cafe.path != literal.path
    cafe.path.encode("utf-8")                                        # fits a UTF-8 table
    assert to_fspath(cafe.path) == cafe.fspath and to_fspath(literal.path) == literal.fspath
    assert nib.load(cafe.fspath).shape == (4, 4, 4)                  # the bytes were kept


@pytest.mark.parametrize("name", ["plain.nii", "tab\there", "new\nline", "back\\slash",
                                  "\x7f\x01", "é ü ß 漢字", "nbsp\xa0zw\u200b", "\U0001f600",
                                  os.fsdecode(b"\xff\xfe\x80"), "\\x41 literal"])
def test_printable_is_an_exact_inverse(name):
    text = printable(name)
    assert text.isprintable() and "\t" not in text and "\n" not in text
    assert to_fspath(text) == name


def test_analyze_pair_is_one_scan_by_either_name(folder):
    for name in ("old.img", "old.hdr"):
        (src,) = discover(folder / name)
        assert src.path.endswith("old.img") and src.ok
    (lone,) = discover(folder / "lone.hdr")           # missing header given by name
    assert lone.path.endswith("lone.img") and "without its .hdr" in lone.problem


def test_inputs_given_directly_each_get_a_row(folder, tmp_path):
    (tmp_path / "odd.bin").write_bytes(b"x")
    cases = {folder / "x.nii.gz": "is a directory", folder / "pipe.nii.gz": "is a FIFO",
             folder / "dangling.nii.gz": "broken symbolic link",
             tmp_path / "missing.nii.gz": "file not found",
             tmp_path / "odd.bin": "unsupported file type"}
    for path, words in cases.items():
        found = _discover([path])
        assert len(found) == 1 and words in found[0].problem, path
    # a folder named like a scan, given directly: its row, then what it holds
    _nii(folder / "x.nii.gz" / "inner.nii")
    found = discover(folder / "x.nii.gz")
    assert [os.path.basename(s.fspath) for s in found] == ["x.nii.gz", "inner.nii"]


def test_mistyped_folder_or_list_or_nothing_is_a_usage_error(tmp_path):
    with pytest.raises(InputError, match="nosuchdir: no such file or folder"):
        discover([tmp_path / "nosuchdir"])
    with pytest.raises(InputError, match="no such list file"):
        discover([tmp_path / "list.txt"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no .nii"):
        discover(tmp_path / "empty")
    assert issubclass(InputError, ValueError)


def test_same_file_relative_and_absolute_is_one_source(folder, monkeypatch, tmp_path):
    monkeypatch.chdir(folder.parent)
    os.symlink(folder, tmp_path / "alias")          # the same folder under another name
    found = discover(["scans/a.nii.gz", str(folder / "a.nii.gz"), "./scans/../scans/a.nii.gz",
                      tmp_path / "alias" / "a.nii.gz"])
    assert len(found) == 1
    assert found[0].path == str(folder.resolve() / "a.nii.gz") and found[0].given == "scans/a.nii.gz"
    both = discover([folder, folder / "a.nii.gz"])
    assert sum(s.path.endswith("/a.nii.gz") for s in both) == 1


def test_list_file(folder, tmp_path):
    lst = tmp_path / "todo.txt"
    lst.write_bytes(b"# scans to screen\n\nscans/a.nii.gz\n" + b"scans/caf\xe9.nii.gz\n"
                    + f"{folder / 'sub'}\n".encode() + b"  scans/missing.nii  \nscans/nodir\n")
    found = _discover([lst])
    assert [os.path.basename(s.fspath) for s in found] == ["a.nii.gz", CAFE, "b.nii",
                                                           "missing.nii", "nodir"]
    assert [s.ok for s in found] == [True, True, True, False, False]
    assert "file not found" in found[3].problem and "file not found" in found[4].problem


def test_symlink_loop_terminates(tmp_path):
    d = tmp_path / "loop"
    _nii(d / "a.nii")
    os.symlink(d, d / "again")
    assert [os.path.basename(s.fspath) for s in _discover(d)] == ["a.nii"]


def test_bids_root_gives_anatomical_scans_with_entities(tmp_path):
    root = tmp_path / "ds"
    (root / "dataset_description.json").parent.mkdir()
    (root / "dataset_description.json").write_text(json.dumps({"Name": "x", "BIDSVersion": "1.9.0"}))
    _nii(root / "sub-01" / "ses-1" / "anat" / "sub-01_ses-1_run-1_T1w.nii.gz")
    _nii(root / "sub-01" / "ses-1" / "func" / "sub-01_ses-1_task-rest_bold.nii.gz")
    _nii(root / "sub-02" / "anat" / "sub-02_acq-fast_T2w.nii")
    _nii(root / "derivatives" / "x" / "sub-01" / "anat" / "sub-01_desc-brain_T1w.nii.gz")
    found = discover(root)
    assert [s.entities.get("subject") for s in found] == ["01", "02"]
    assert found[0].entities["session"] == "1" and found[0].entities["run"] == "1"
    assert found[1].entities["acquisition"] == "fast" and found[1].entities["suffix"] == "T2w"
    # plain folders keep entities parsed from BIDS-like names
    (plain,) = discover(root / "sub-02" / "anat")
    assert plain.entities["subject"] == "02"
    # folders merely named sub-*, or a root without anat/: every scan below, as a plain folder
    _nii(tmp_path / "lab" / "sub-a" / "T1.nii.gz")
    assert [os.path.basename(s.fspath) for s in discover(tmp_path / "lab")] == ["T1.nii.gz"]
    (tmp_path / "lab" / "dataset_description.json").write_text("{}")
    assert [os.path.basename(s.fspath) for s in discover(tmp_path / "lab")] == ["T1.nii.gz"]


def test_unlistable_subfolder_is_a_row(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root can list any folder")
    d = tmp_path / "d"
    _nii(d / "a.nii")
    (d / "locked").mkdir()
    os.chmod(d / "locked", 0)
    try:
        found = discover(d)
    finally:
        os.chmod(d / "locked", 0o755)
    assert any("cannot be listed" in s.problem for s in found)

