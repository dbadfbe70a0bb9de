"""Real rater data: label rules, the bundled MRIQC tables, site splits, the IQM ensemble, MR-ART."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mriqc_nb import iqm, ratings, referral, uncertainty
from mriqc_nb.data import mrart, splits, table as data_table

NAN = np.nan


# ---------------------------------------------------------------------------------------------
# Labels from ratings (hand-made rows)
# ---------------------------------------------------------------------------------------------
ROWS = pd.DataFrame(
    [[-1, -1, NAN],   # both raters exclude -> artifact
     [-1, 1, NAN],    # tie -> clean
     [-1, 0, NAN],    # doubtful counts as clean by default -> tie -> clean
     [-1, -1, 1],     # 2 of 3 exclude -> artifact
     [0, 0, -1],      # one exclude against two doubtful
     [NAN, NAN, -1],  # a single rater who excludes
     [1, 1, 1],
     [0, 0, 0]],
    columns=["rater_1", "rater_2", "rater_3"],
)


@pytest.mark.parametrize("doubtful, expected", [
    ("clean", [1, 0, 0, 1, 0, 1, 0, 0]),
    ("artifact", [1, 0, 1, 1, 1, 1, 0, 1]),
    ("abstain", [1, 0, 1, 1, 1, 1, 0, 0]),
])
def test_label_rule_on_hand_made_rows(doubtful, expected):
    y = ratings.label_from_ratings(ROWS, doubtful=doubtful)
    assert y.tolist() == expected
    assert y.index.equals(ROWS.index)


def test_label_rule_rejects_bad_input():
    with pytest.raises(ValueError, match="-1 \\(exclude\\)"):
        ratings.label_from_ratings(pd.DataFrame({"rater_1": [1, 2]}))
    with pytest.raises(ValueError, match="without any rating"):
        ratings.label_from_ratings(pd.DataFrame({"rater_1": [1, NAN], "rater_2": [1, NAN]}))
    with pytest.raises(ValueError, match="doubtful"):
        ratings.label_from_ratings(ROWS, doubtful="maybe")


# ---------------------------------------------------------------------------------------------
# The bundled tables
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def abide():
    pytest.importorskip("mriqc_learn")
    return ratings.load_ratings("abide")


@pytest.fixture(scope="module")
def ds030():
    pytest.importorskip("mriqc_learn")
    return ratings.load_ratings("ds030")


@pytest.mark.parametrize("name, n, n_artifact, raters", [
    ("abide", 1101, 149, ["rater_1", "rater_2", "rater_3"]),
    ("ds030", 265, 75, ["rater_1"]),
])
def test_bundled_tables(name, n, n_artifact, raters, request):
    df = request.getfixturevalue(name)
    assert len(df) == n and df.scan_id.is_unique
    assert ratings.rater_columns(df) == raters
    assert set(df.label) == {"clean", "artifact"}
    assert (df.label == "artifact").sum() == df.y.sum() == n_artifact
    assert ((df.label == "artifact") == (df.y == 1)).all()
    # the raw ratings are kept, on the documented scale, and the label follows the rule
    values = set(pd.unique(df[raters].stack().dropna().astype(int)))
    assert values == {-1, 0, 1}
    assert df.y.tolist() == ratings.label_from_ratings(df[raters].astype(float)).tolist()
    assert (df.n_ratings >= 1).all()
    X = df[list(ratings.IQM_COLUMNS)].to_numpy(dtype=float)
    assert X.shape == (n, 62) and np.isfinite(X).all()
    assert not any(c.startswith(("size_", "spacing_")) for c in ratings.IQM_COLUMNS)


def test_abide_rating_design(abide):
    # rater_3 rated every scan, raters 1 and 2 about half each, so 2 or 3 ratings per scan
    assert abide.rater_3.notna().all()
    assert set(abide.n_ratings) == {2, 3}
    assert abide.site.nunique() == 17


def test_load_ratings_errors(monkeypatch):
    with pytest.raises(ValueError, match="abide"):
        ratings.load_ratings("hcp")
    monkeypatch.setattr(ratings, "_find_spec", lambda name: None)
    with pytest.raises(ImportError, match=r"mriqc-nb\[ratings\]"):
        ratings.load_ratings("abide")


# ---------------------------------------------------------------------------------------------
# Raters
# ---------------------------------------------------------------------------------------------
def test_rater_agreement_on_abide(abide):
    agree = ratings.rater_agreement(abide)
    pairs = agree[agree.rater_a != "all"]
    assert pairs.n_both.tolist() == [99, 600, 600]
    for col in ("kappa", "kappa_exclude"):
        assert pairs[col].between(-1, 1).all()
    for col in ("disagreement", "disagreement_exclude"):
        assert agree[col].between(0, 1).all()
    # real raters agree far from perfectly (the ceiling of any detector trained on them)
    assert (pairs.kappa_exclude < 0.8).all()
    assert agree.iloc[-1].n_both == len(abide)


def test_rater_agreement_hand_made():
    df = pd.DataFrame({"rater_1": [-1, 0, 1, 1, NAN], "rater_2": [-1, 0, 1, 1, 1], "rater_3": [1, 0, -1, -1, 1]})
    agree = ratings.rater_agreement(df).set_index(["rater_a", "rater_b"])
    assert agree.loc[("rater_1", "rater_2"), "kappa"] == pytest.approx(1.0)
    assert agree.loc[("rater_1", "rater_2"), "n_both"] == 4
    assert agree.loc[("rater_1", "rater_2"), "disagreement"] == 0
    assert agree.loc[("rater_1", "rater_3"), "kappa"] < 0
    assert agree.loc[("rater_1", "rater_3"), "disagreement_exclude"] == pytest.approx(0.75)
    assert agree.loc[("all", "all"), "disagreement"] == pytest.approx(3 / 5)


def test_rater_agreement_needs_two_raters(ds030):
    with pytest.raises(ValueError, match="two rater"):
        ratings.rater_agreement(ds030)


# ---------------------------------------------------------------------------------------------
# Site splits
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_site_split_holds_sites_out(abide, seed):
    train, test = ratings.site_split(abide, seed=seed)
    assert not set(train.site) & set(test.site)
    assert len(train) + len(test) == len(abide)
    assert set(train.scan_id).isdisjoint(test.scan_id)
    assert len(test) >= 0.25 * len(abide)
    assert sorted(set(test.site)) == test.attrs["test_sites"]
    again, _ = ratings.site_split(abide, seed=seed)
    assert again.scan_id.tolist() == train.scan_id.tolist()


def test_site_split_explicit_and_errors(abide):
    train, test = ratings.site_split(abide, test_sites=["NYU", "UM"])
    assert set(test.site) == {"NYU", "UM"} and len(test) == 184 + 145
    with pytest.raises(ValueError, match="unknown test sites"):
        ratings.site_split(abide, test_sites=["MARS"])
    with pytest.raises(ValueError, match="nothing left"):
        ratings.site_split(abide, test_sites=sorted(abide.site.unique()))


# ---------------------------------------------------------------------------------------------
# The IQM ensemble and its uncertainty
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1])
def test_classifier_beats_chance_on_unseen_sites(abide, seed):
    # measured: AUC 0.80-0.95 over seeds 0-4 on held-out ABIDE sites
    train, test = ratings.site_split(abide, seed=seed)
    model = iqm.fit_iqm_classifier(train, seed=seed)
    pred = iqm.predict_with_uncertainty(model, test)
    assert roc_auc_score(test.y, pred.p_artifact) > 0.75


def test_uncertainty_table_is_the_books(abide):
    train, test = ratings.site_split(abide, seed=0)
    model = iqm.fit_iqm_classifier(train, seed=0, n_members=20)
    samples = iqm.ensemble_probabilities(model, test)
    assert samples.shape == (20, len(test), 2)
    np.testing.assert_allclose(samples.sum(-1), 1.0)
    np.testing.assert_allclose(samples.mean(0), model.predict_proba(test[list(ratings.IQM_COLUMNS)]), atol=1e-12)
    pred = iqm.predict_with_uncertainty(model, test)
    book = uncertainty.summarise(samples, index=test.index)
    assert list(pred.columns[-len(book.columns):]) == list(book.columns)
    pd.testing.assert_frame_equal(pred[book.columns], book)
    assert pred.label.tolist() == test.y.tolist() and pred.index.equals(test.index)
    assert (pred.mutual_information > 0).any() and (pred.n_samples == 20).all()
    # the table plugs into the book's referral unchanged
    policy = referral.select_operating_point(pred, measure="mutual_information")
    assert 0 < policy.threshold < 1
    # seeded: the same seed gives the same ensemble
    again = iqm.predict_with_uncertainty(iqm.fit_iqm_classifier(train, seed=0, n_members=20), test)
    pd.testing.assert_frame_equal(pred, again)


def test_forest_variant_and_errors(abide):
    train, test = ratings.site_split(abide, seed=0)
    model = iqm.fit_iqm_classifier(train, seed=0, kind="forest", n_members=30)
    samples = iqm.ensemble_probabilities(model, test)
    assert samples.shape == (30, len(test), 2)
    assert roc_auc_score(test.y, samples.mean(0)[:, 1]) > 0.75
    with pytest.raises(ValueError, match="kind"):
        iqm.fit_iqm_classifier(train, kind="svm")
    with pytest.raises(ValueError, match="both classes"):
        iqm.fit_iqm_classifier(train[train.y == 0])


# ---------------------------------------------------------------------------------------------
# Site harmonisation, model families, leave-sites-out choice, the seed table
# ---------------------------------------------------------------------------------------------
def test_site_scale_is_per_site_and_label_free():
    df = pd.DataFrame({"site": ["A"] * 5 + ["B"] * 4,
                       "cjv": [1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 10.0, 10.0, 10.0],
                       "cnr": [0.0, 0.0, 0.0, 0.0, 1.0, 100.0, 200.0, 300.0, 400.0],
                       "y": [0, 1, 0, 1, 0, 1, 1, 0, 0]})
    out = iqm.site_scale(df, ["cjv", "cnr"])
    # site A, cjv: median 3, IQR 4 - 2 = 2
    assert out.cjv[:5].tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert (out.cjv[5:] == 0).all()                     # constant within site B -> 0, not NaN
    assert out.cnr[:5].tolist() == [0, 0, 0, 0, 1.0]    # IQR 0 counts as 1
    np.testing.assert_allclose(out.cnr[5:], np.array([-1.5, -0.5, 0.5, 1.5]) / 1.5)
    # a site is scaled with its own statistics only, and labels are never read
    alone = iqm.site_scale(df[df.site == "B"], ["cjv", "cnr"])
    pd.testing.assert_frame_equal(alone, out[df.site == "B"])
    pd.testing.assert_frame_equal(iqm.site_scale(df.assign(y=1 - df.y), ["cjv", "cnr"]).drop(columns="y"),
                                  out.drop(columns="y"))
    assert df.cjv.tolist()[0] == 1.0                    # the input is not modified


def test_site_scale_skips_missing_values_as_pandas_does():
    """A missing IQM stays missing; the site's statistics are those of its other scans, and a
    feature missing in a whole site stays NaN there without a warning."""
    import warnings

    df = pd.DataFrame({"site": ["A"] * 6 + ["B"] * 2,
                       "cjv": [1.0, 2.0, np.nan, 3.0, 4.0, 5.0, np.nan, np.nan],
                       "cnr": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1.0, 3.0]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = iqm.site_scale(df, ["cjv", "cnr"])
    # site A, cjv without its NaN: median 3, IQR 4 - 2 = 2
    np.testing.assert_array_equal(out.cjv[:6], [-1.0, -0.5, np.nan, 0.0, 0.5, 1.0])
    assert out.cjv[6:].isna().all()
    np.testing.assert_allclose(out.cnr[6:], [-1.0, 1.0])   # B: median 2, IQR 2.5 - 1.5 = 1
    per_site = pd.concat(
        (block[["cjv", "cnr"]] - block[["cjv", "cnr"]].median())
        / (block[["cjv", "cnr"]].quantile(0.75) - block[["cjv", "cnr"]].quantile(0.25)).where(lambda v: v > 0, 1.0)
        for _, block in df.groupby("site"))
    pd.testing.assert_frame_equal(out[["cjv", "cnr"]], per_site.loc[df.index])


def test_site_scale_variants():
    from scipy.stats import norm

    df = pd.DataFrame({"site": ["A"] * 4 + ["B"] * 3,
                       "cjv": [1.0, 2.0, 2.0, 10.0, 5.0, 6.0, 7.0],
                       "cnr": [3.0, 3.0, 3.0, 3.0, 0.0, 1.0, 2.0]})
    z = iqm.site_scale(df, ["cjv", "cnr"], method="zscore")
    np.testing.assert_allclose(z.cjv[4:], [-np.sqrt(1.5), 0, np.sqrt(1.5)])
    assert (z.cnr[:4] == 0).all()                       # constant within site A -> 0
    r = iqm.site_scale(df, ["cjv", "cnr"], method="rank")
    # mid-ranks within site A: 1, 2.5, 2.5, 4 of n = 4 -> normal quantiles of (rank - 0.5) / 4
    np.testing.assert_allclose(r.cjv[:4], norm.ppf((np.array([1, 2.5, 2.5, 4]) - 0.5) / 4))
    np.testing.assert_allclose(r.cnr[:4], 0, atol=1e-12)
    # only the order within a site counts: a monotone distortion of one site changes nothing
    bent = df.assign(cjv=np.where(df.site == "B", np.exp(df.cjv), df.cjv))
    pd.testing.assert_frame_equal(iqm.site_scale(bent, ["cjv", "cnr"], method="rank"), r)
    with pytest.raises(ValueError, match="method"):
        iqm.site_scale(df, ["cjv"], method="minmax")


def test_exclusion_share_hand_made():
    df = pd.DataFrame({"n_exclude": [0, 1, 2, 0, 1], "n_doubtful": [0, 0, 1, 2, 1], "n_ratings": [2, 2, 3, 2, 3]})
    np.testing.assert_allclose(ratings.exclusion_share(df), [0, 0.5, 2.5 / 3, 0.5, 0.5])
    np.testing.assert_allclose(ratings.exclusion_share(df, doubtful_weight=1), [0, 0.5, 1, 1, 2 / 3])
    with pytest.raises(ValueError, match="doubtful_weight"):
        ratings.exclusion_share(df, doubtful_weight=2)


def test_vote_target_on_unseen_sites(abide):
    train, test = ratings.site_split(abide, seed=0)
    share = ratings.exclusion_share(abide)
    assert share.between(0, 1).all() and ((share > 0.5) >= (abide.y == 1)).all()
    model = iqm.fit_iqm_classifier(train, seed=0, n_members=10, C=0.03, site_scaling="rank", target="votes")
    assert model.target_ == "votes" and model.site_scaling_ == "rank"
    samples = iqm.ensemble_probabilities(model, test)
    assert samples.shape == (10, len(test), 2)
    # each member drew as many rows as there are training scans
    assert all(len(rows) == len(train) for rows in model[-1].estimators_samples_)
    aucs = [roc_auc_score(test.y[test.site == s], samples.mean(0)[(test.site == s).to_numpy(), 1])
            for s in test.site.unique() if test.y[test.site == s].nunique() == 2]
    assert np.mean(aucs) > 0.8                          # measured 0.89 (mean AUC within a test site, seed 0)
    with pytest.raises(ValueError, match="logistic"):
        iqm.fit_iqm_classifier(train, kind="forest", target="votes")
    with pytest.raises(ValueError, match="target"):
        iqm.fit_iqm_classifier(train, target="soft")
    with pytest.raises(ValueError, match="site_scaling"):
        iqm.fit_iqm_classifier(train, site_scaling="minmax")


@pytest.mark.parametrize("kind", ["mriqc_forest", "boosting"])
def test_model_families_with_site_scaling(abide, kind):
    train, test = ratings.site_split(abide, seed=0)
    model = iqm.fit_iqm_classifier(train, seed=0, kind=kind, n_members=4 if kind == "boosting" else 40,
                                   site_scaling=True)
    samples = iqm.ensemble_probabilities(model, test)
    assert samples.shape[0] == (4 if kind == "boosting" else 40) and samples.shape[1:] == (len(test), 2)
    assert roc_auc_score(test.y, samples.mean(0)[:, 1]) > 0.6   # measured 0.64 (anchor forest), seed 0
    # the test sites are scaled with their own statistics: shifting one site's raw IQMs changes nothing
    shifted = test.copy()
    site = shifted.site.iloc[0]
    shifted.loc[shifted.site == site, "cjv"] += 5.0
    np.testing.assert_allclose(iqm.ensemble_probabilities(model, shifted), samples)


def test_leave_sites_out_holds_each_site_out(abide):
    small = abide[abide.site.isin(["NYU", "UM", "USM", "PITT"])]
    res = iqm.leave_sites_out(small, {"logistic": {"kind": "logistic", "n_members": 5},
                                      "logistic site": {"kind": "logistic", "n_members": 5, "site_scaling": True}})
    assert list(res.index) == ["logistic", "logistic site"] and (res.n_sites == 4).all()
    assert iqm.CRITERION in res.columns
    assert res.auc_pooled.between(0.5, 1).all() and (res.auc_site_min <= res.auc_site_mean).all()


def test_seed_table_scores_external_sets_with_controls(abide, ds030):
    tab = iqm.seed_table(abide, {"DS030": ds030}, seeds=[0], models={"lr": {"kind": "logistic", "n_members": 10}},
                         n_draws=20)
    assert tab.set.tolist() == ["test", "DS030"] and (tab.model == "lr").all()
    row = tab.set_index("set").loc["DS030"]
    assert row.n == 265 and row.n_artifacts == 75 and 0.5 < row.auc < 1
    assert 0 < row.retained_fraction <= 1 and np.isfinite(row.ba_gain_vs_random)
    if row.eta == 1:                                   # no referral: nothing to gain over the controls
        assert row.ba_gain_vs_random == pytest.approx(0) and row.ba_gain_vs_no_referral == pytest.approx(0)


# ---------------------------------------------------------------------------------------------
# The MLP with MC dropout, threshold rules, DS030 never used to choose
# ---------------------------------------------------------------------------------------------
def _toy_sites(n_sites=6, n=40, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n_sites):
        y = (rng.random(n) < 0.25).astype(int)
        y[:2] = [0, 1]
        shift = rng.normal(0, 3, 2)                      # each site has its own offsets
        x = rng.normal(size=(n, 2)) + shift + np.c_[1.5 * y, -1.5 * y]
        rows.append(pd.DataFrame({"site": f"S{k}", "cjv": x[:, 0], "cnr": x[:, 1], "y": y}))
    return pd.concat(rows, ignore_index=True)


MLP_FAST = {"kind": "mlp", "n_members": 2, "mc_samples": 7, "max_epochs": 8, "patience": 3,
            "features": ["cjv", "cnr"], "site_scaling": True}


def test_mlp_mc_samples_shape_and_seed_determinism():
    df = _toy_sites()
    train, test = df[df.site != "S5"], df[df.site == "S5"]
    model = iqm.fit_iqm_classifier(train, seed=3, **MLP_FAST)
    samples = iqm.ensemble_probabilities(model, test)
    assert samples.shape == (7, len(test), 2)          # T = mc_samples, shared among 2 networks
    np.testing.assert_allclose(samples.sum(-1), 1.0)
    assert ((samples >= 0) & (samples <= 1)).all()
    assert samples.std(0).max() > 0                     # dropout is on at prediction
    assert len(model[-1].members) == 2 and all(1 <= e <= 8 for e in model[-1].epochs_)
    # prediction is seeded: the same model gives the same samples twice
    np.testing.assert_array_equal(iqm.ensemble_probabilities(model, test), samples)
    # training is seeded: the same seed gives the same samples, another seed others
    again = iqm.fit_iqm_classifier(train, seed=3, **MLP_FAST)
    np.testing.assert_allclose(iqm.ensemble_probabilities(again, test), samples, atol=1e-6)
    other = iqm.fit_iqm_classifier(train, seed=4, **MLP_FAST)
    assert not np.allclose(iqm.ensemble_probabilities(other, test), samples)
    # it learns the toy signal on an unseen site, and plugs into the book's prediction table
    pred = iqm.predict_with_uncertainty(model, test)
    assert (pred.n_samples == 7).all() and (pred.mutual_information >= 0).all()
    with pytest.raises(ValueError, match="kind='mlp'"):
        iqm.fit_iqm_classifier(train, kind="logistic", dropout=0.3, features=["cjv", "cnr"])


def test_mlp_learns_rater_votes_as_soft_targets():
    df = _toy_sites()
    df = df.assign(n_ratings=3, n_doubtful=0, n_exclude=np.where(df.y == 1, 2, 0))
    train, test = df[df.site != "S5"], df[df.site == "S5"]
    model = iqm.fit_iqm_classifier(train, seed=0, target="votes", **MLP_FAST)
    assert model.target_ == "votes"
    assert iqm.ensemble_probabilities(model, test).shape == (7, len(test), 2)


def test_rule_table_on_abide_alone(abide):
    tab = iqm.rule_table(abide, {"kind": "logistic", "n_members": 5, "site_scaling": "rank"}, seeds=[0])
    assert list(tab.index) == list(iqm.THRESHOLD_RULES)
    np.testing.assert_allclose(tab[iqm.RULE_CRITERION], tab.balanced_accuracy + tab.f1)
    assert tab.auc.nunique() == 1                       # one model per seed; only the threshold differs
    assert set(tab.attrs["per_seed"].seed) == {0}


def test_inner_site_split_holds_whole_sites():
    from mriqc_nb.iqm_mlp import inner_site_split

    df = _toy_sites()
    mask = inner_site_split(df.site, df.y, seed=1, fraction=0.3)
    held = set(df.site[mask])
    assert held and held != set(df.site) and not (held & set(df.site[~mask]))
    assert df.y[mask].nunique() == 2 and df.y[~mask].nunique() == 2
    np.testing.assert_array_equal(mask, inner_site_split(df.site, df.y, seed=1, fraction=0.3))


def _pred_table(y, p, site):
    return pd.DataFrame({"site": site, "label": np.asarray(y, int), "p_artifact": np.asarray(p, float),
                         "mutual_information": 0.0})


def test_threshold_rules_hand_made():
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.2).astype(int)
    p = np.clip(0.2 + 0.5 * y + rng.normal(0, 0.15, 400), 0.001, 0.999)
    valid = _pred_table(y, p, "V")
    # prior-matched: flags the validation prevalence on validation
    called, t = iqm.threshold_decisions(valid, valid, "prior")
    assert called.mean() == pytest.approx(y.mean(), abs=0.01)
    # Youden / F1 use the package's rule (referral.no_referral_policy)
    for rule in ("youden", "f1"):
        _, t = iqm.threshold_decisions(valid, valid, rule)
        assert t == referral.no_referral_policy(valid, criterion=rule).threshold
    _, t = iqm.threshold_decisions(valid, valid, "platt_prior")
    assert 0 < t < 1
    # site quantile: the top q = validation prevalence of *each* new site, labels unread
    new = _pred_table(np.zeros(150), np.r_[np.linspace(0, 1, 100), np.linspace(5, 6, 50)], ["A"] * 100 + ["B"] * 50)
    called, t = iqm.threshold_decisions(valid, new.drop(columns="label"), "site_quantile")
    q = y.mean()
    assert t == pytest.approx(1 - q)
    assert called[:100].mean() == pytest.approx(q, abs=0.011) and called[100:].mean() == pytest.approx(q, abs=0.021)
    with pytest.raises(ValueError, match="rule"):
        iqm.threshold_decisions(valid, valid, "oracle")


@pytest.mark.parametrize("protocol", iqm.PROTOCOLS)
def test_ds030_labels_choose_nothing(abide, ds030, protocol):
    """Every fit and every choice of the protocol reads ABIDE only: DS030's labels (and its
    rows) change none of the thresholds, and its predictions depend on its IQMs alone."""
    models = {"lr": {"kind": "logistic", "n_members": 5, "site_scaling": True, "threshold_rule": "site_quantile",
                     "protocol": protocol}}
    rng = np.random.default_rng(0)
    scrambled = ds030.assign(y=rng.permutation(ds030.y.to_numpy()))
    a = iqm.site_protocol(abide, 0, {"DS030": ds030}, **models["lr"])
    b = iqm.site_protocol(abide, 0, {"DS030": scrambled}, **models["lr"])
    c = iqm.site_protocol(abide, 0, None, **models["lr"])
    cols = ["p_artifact", "mutual_information"]
    pd.testing.assert_frame_equal(a["DS030"][cols], b["DS030"][cols])
    pd.testing.assert_frame_equal(a["valid"], c["valid"])   # validation predictions: no DS030 in the fit
    ta = iqm.seed_table(abide, {"DS030": ds030}, seeds=[0], models=models, n_draws=5).set_index("set")
    tb = iqm.seed_table(abide, {"DS030": scrambled}, seeds=[0], models=models, n_draws=5).set_index("set")
    assert ta.threshold.tolist() == tb.threshold.tolist() and ta.eta.tolist() == tb.eta.tolist()
    assert ta.loc["test"].equals(tb.loc["test"])            # ABIDE rows untouched by DS030
    assert (ta.threshold_rule == "site_quantile").all()
    # the rule's calls on DS030 are label-free: decided without the label column
    called, _ = iqm.threshold_decisions(a["valid"], a["DS030"].drop(columns="label"), "site_quantile")
    called_b, _ = iqm.threshold_decisions(b["valid"], b["DS030"].drop(columns="label"), "site_quantile")
    np.testing.assert_array_equal(called, called_b)


# ---------------------------------------------------------------------------------------------
# MR-ART on a fake BIDS tree
# ---------------------------------------------------------------------------------------------
SCORES = mrart.EXAMPLE_SCORES


def _fake_mrart(root, scores=SCORES, ext=".nii.gz"):
    return mrart.write_example_tree(root, scores, ext=ext)


def test_mrart_table_labels(tmp_path):
    root = _fake_mrart(tmp_path / "ds004173")
    table = mrart.mrart_table(root)
    by_id = table.set_index("scan_id")
    assert len(table) == 7  # 9 scans, the 2 scored "medium" dropped
    assert by_id.loc["sub-000101_acq-standard_T1w", "label"] == "clean"
    assert by_id.loc["sub-000101_acq-headmotion2_T1w", "label"] == "artifact"
    assert by_id.loc["sub-000101_acq-headmotion2_T1w", "severity"] == "prominent"
    assert "sub-000101_acq-headmotion1_T1w" not in by_id.index
    assert (table.label == "artifact").sum() == 3 and (table.label == "clean").sum() == 4
    assert set(table.subject_id) == set(SCORES) and (table.site == "MR-ART").all()
    assert table.path.map(lambda p: p.endswith(".nii.gz")).all()
    # the book's scan table: validates with its files, and splits keep subjects whole
    checked = data_table.validate_table(table)
    assert checked.label.tolist() == table.label.tolist()
    prepared = splits.prepare_table(table, "smoke")
    assert (prepared.groupby("subject_id").split.nunique() == 1).all()


@pytest.mark.parametrize("medium, n, n_artifact, n_subtle", [("artifact", 9, 5, 2), ("clean", 9, 3, 0)])
def test_mrart_medium_scores(tmp_path, medium, n, n_artifact, n_subtle):
    table = mrart.mrart_table(_fake_mrart(tmp_path / "mrart"), medium=medium)
    assert len(table) == n and (table.label == "artifact").sum() == n_artifact
    assert (table.severity == "subtle").sum() == n_subtle
    data_table.validate_table(table)


def test_mrart_scores_with_extension_and_unscored_scans(tmp_path):
    root = _fake_mrart(tmp_path / "mrart", ext=".nii")
    scores = pd.read_csv(root / "derivatives" / "scores.tsv", sep="\t")
    scores["bids_name"] = scores.bids_name + ".nii.gz"
    scores.iloc[1:].to_csv(tmp_path / "my_scores.tsv", sep="\t", index=False)  # first scan unscored
    with pytest.warns(UserWarning, match="without a score"):
        table = mrart.mrart_table(root, scores_tsv=tmp_path / "my_scores.tsv", medium="clean")
    assert len(table) == 8 and "sub-000101_acq-standard_T1w" not in set(table.scan_id)


def test_mrart_errors_name_the_root(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        mrart.mrart_table(missing)
    other = tmp_path / "some_bids"
    (other / "sub-01" / "anat").mkdir(parents=True)
    (other / "sub-01" / "anat" / "sub-01_T1w.nii.gz").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="some_bids.*does not look like MR-ART"):
        mrart.mrart_table(other)
    root = _fake_mrart(tmp_path / "no_scores")
    (root / "derivatives" / "scores.tsv").unlink()
    with pytest.raises(FileNotFoundError, match="no_scores.*scores"):
        mrart.mrart_table(root)
    with pytest.raises(ValueError, match="medium"):
        mrart.mrart_table(root, medium="subtle")
    pd.DataFrame({"bids_name": ["sub-000101_acq-standard_T1w"], "score": [5]}).to_csv(
        root / "derivatives" / "scores.tsv", sep="\t", index=False)
    with pytest.raises(ValueError, match="1, 2 or 3"):
        mrart.mrart_table(root)


@pytest.fixture
def fitted_sites(monkeypatch):
    """The set of sites of every training table given to ``iqm.fit_iqm_classifier``, in order."""
    seen = []
    fit = iqm.fit_iqm_classifier

    def spy(df, seed=0, **kw):
        seen.append(set(df.site))
        return fit(df, seed, **kw)

    monkeypatch.setattr(iqm, "fit_iqm_classifier", spy)
    return seen


def test_out_of_site_predictions_never_see_their_site(abide, fitted_sites):
    """Each site is predicted by a model fitted without it (cross-fitting's validation scores)."""
    small = abide[abide.site.isin(["NYU", "UM", "USM", "PITT"])]
    seen = fitted_sites
    pred = iqm.out_of_site_predictions(small, 0, kind="logistic", n_members=5, threshold_rule="f1")
    assert list(pred.index) == list(small.index) and pred.attrs["sites"] == ["NYU", "PITT", "UM", "USM"]
    assert len(seen) == 4 and all(len(s) == 3 for s in seen)
    # the model that predicted a site was fitted on the three others
    for site, fitted in zip(pred.attrs["sites"], seen):
        assert site not in fitted
    np.testing.assert_array_equal(pred.label, small.y.astype(int))


def test_cross_fit_protocol_fits_on_every_non_test_site(abide, ds030, fitted_sites):
    seen = fitted_sites
    kw = {"kind": "logistic", "n_members": 5, "site_scaling": "rank"}
    pred = iqm.site_protocol(abide, 0, {"DS030": ds030}, protocol="cross_fit", **kw)
    train_all, test = ratings.site_split(abide, seed=0)
    assert set(pred) == {"valid", "test", "DS030"}
    assert seen[0] == set(train_all.site)                   # the scoring model: all non-test sites
    assert all(s < set(train_all.site) for s in seen[1:])   # the out-of-site models: one site fewer
    assert len(seen) == 1 + train_all.site.nunique()
    assert set(pred["valid"].attrs["sites"]) == set(train_all.site)
    assert not set(pred["valid"].site) & set(pred["test"].site)
    # the split protocol's model sees fewer sites; an unknown protocol is refused
    seen.clear()
    iqm.site_protocol(abide, 0, None, **kw)
    assert len(seen) == 1 and seen[0] < set(train_all.site)
    with pytest.raises(ValueError, match="protocol"):
        iqm.site_protocol(abide, 0, None, protocol="peek", **kw)
    tab = iqm.seed_table(abide, {"DS030": ds030}, seeds=[0], n_draws=5,
                         models={"cf": {**kw, "protocol": "cross_fit", "threshold_rule": "platt_prior"}})
    assert (tab.protocol == "cross_fit").all() and set(tab.set) == {"test", "DS030"}


def test_book_decision_names_a_protocol_and_a_rule():
    assert iqm.BOOK_DECISION["protocol"] in iqm.PROTOCOLS
    assert iqm.BOOK_DECISION["threshold_rule"] in iqm.THRESHOLD_RULES
    assert not iqm._fit_kwargs(iqm.BOOK_DECISION)         # neither is passed to the fit
