"""mriqc_nb.memo: a result is read back only for the same call of the same code."""

import numpy as np
import pandas as pd
import pytest

from mriqc_nb import memo

CALLS = []


def slow_sum(df, columns, *, scale=1.0):
    CALLS.append(1)
    return df[list(columns)].sum() * scale


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MRIQC_NB_HOME", str(tmp_path))
    CALLS.clear()
    return tmp_path


def test_same_call_is_read_back_and_any_change_recomputes(home):
    df = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    first = memo.cached(slow_sum, df, ["a", "b"], scale=2.0)
    again = memo.cached(slow_sum, df.copy(), ["a", "b"], scale=2.0)  # same content, new object
    pd.testing.assert_series_equal(first, again)
    assert len(CALLS) == 1 and len(list((home / "memo").glob("slow_sum-*.pkl"))) == 1
    changed = df.copy()
    changed.loc[1, "b"] = 4.5                          # one value of the table
    memo.cached(slow_sum, changed, ["a", "b"], scale=2.0)
    memo.cached(slow_sum, df, ["a", "b"], scale=3.0)   # a keyword
    memo.cached(slow_sum, df, ("a", "b"), scale=2.0)   # a tuple is not a list
    memo.cached(slow_sum, df.set_axis([5, 6]), ["a", "b"], scale=2.0)  # the index
    assert len(CALLS) == 5
    assert not list((home / "memo").glob("*.tmp"))


def test_new_package_code_or_library_is_a_new_key(home, monkeypatch):
    df = pd.DataFrame({"a": [1.0]})
    key = memo.memo_key(slow_sum, (df, ["a"]))
    monkeypatch.setattr(memo, "_code_digest", lambda: "another version of the package")
    assert memo.memo_key(slow_sum, (df, ["a"])) != key


def test_unreadable_file_is_computed_again_and_replaced(home):
    df = pd.DataFrame({"a": [1.0, 2.0]})
    memo.cached(slow_sum, df, ["a"])
    (path,) = (home / "memo").glob("slow_sum-*.pkl")
    path.write_bytes(path.read_bytes()[:5])            # cut short
    assert memo.cached(slow_sum, df, ["a"])["a"] == 3.0
    assert len(CALLS) == 2
    assert memo.cached(slow_sum, df, ["a"])["a"] == 3.0 and len(CALLS) == 2


def test_argument_without_content_hash_is_refused(home):
    with pytest.raises(TypeError, match="cannot key an argument of type 'object'"):
        memo.cached(slow_sum, pd.DataFrame({"a": [1.0]}), ["a"], scale=object())
    assert not CALLS


def test_chapter_10_computations_are_deterministic():
    """Chapter 10 reads leave_sites_out back from the memo on a second execution, so nbval's
    second pass no longer re-checks that it is seeded: this test does."""
    from mriqc_nb import iqm, ratings

    pytest.importorskip("mriqc_learn")
    abide = ratings.load_ratings("abide")
    small = abide[abide.site.isin(["NYU", "UM", "USM", "PITT"])]
    cands = {"rank": {"kind": "logistic", "C": 0.03, "site_scaling": "rank", "n_members": 5},
             "forest": {"kind": "mriqc_forest", "n_members": 10, "site_scaling": True}}
    a = iqm.leave_sites_out(small, cands, seed=3)
    b = iqm.leave_sites_out(small.copy(), cands, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert np.isfinite(a.to_numpy(dtype=float)).all()
