"""Referral by uncertainty: scaler fitted on validation, operating point, policy, curves."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mriqc_nb import referral as R
from mriqc_nb.metrics import binary_metrics
from mriqc_nb.uncertainty import summarise


def make_table(n: int, seed: int, T: int = 30) -> pd.DataFrame:
    """Synthetic MC-dropout table: a quarter of the scans are 'hard' (near or across the
    boundary, with large sample spread), so errors concentrate among uncertain scans."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.25).astype(int)
    hard = rng.random(n) < 0.25
    mu = np.where(hard, np.where(y == 1, -0.5, 0.5) + rng.normal(0, 1.0, n), np.where(y == 1, 3.0, -3.0))
    sigma = np.where(hard, 2.5, 0.3)
    p = 1 / (1 + np.exp(-(mu[None] + sigma[None] * rng.normal(size=(T, n)))))
    table = summarise(np.stack([1 - p, p], axis=-1))
    table["label"] = y
    return table


@pytest.fixture(scope="module")
def valid():
    return make_table(300, seed=1)


@pytest.fixture(scope="module")
def test_set():
    return make_table(300, seed=2)


def test_threshold_grid_is_dense_near_0_and_1():
    g = R.THRESHOLD_GRID
    assert 90 <= g.size <= 110 and np.all(np.diff(g) > 0) and 0 < g[0] and g[-1] < 1
    assert np.allclose(np.sort(1 - g), g)               # the same grid on the clean probability
    gaps = np.diff(g)
    assert gaps[0] < gaps[len(gaps) // 2] / 10 and gaps[-1] < gaps[len(gaps) // 2] / 10
    assert R.ETA_GRID[0] == 1.0


def test_policy_is_chosen_without_the_test_labels(valid, test_set):
    policy, m = R.select_and_evaluate(valid, test_set)
    permuted = test_set.copy()
    permuted["label"] = np.random.default_rng(5).permutation(test_set["label"].to_numpy())
    policy2, m2 = R.select_and_evaluate(valid, permuted)
    assert policy2 == policy and policy2.valid_metrics == policy.valid_metrics
    assert m2["accuracy"] != m["accuracy"]               # the test labels were used, for scoring only
    # nor do the test uncertainties move it (the paper's defect: test rescaled by its own min/max)
    shifted = test_set.copy()
    shifted["mutual_information"] *= 50
    assert R.select_and_evaluate(valid, shifted)[0] == policy
    # labels given explicitly behave like the label column
    p3, m3 = R.select_and_evaluate(valid.drop(columns="label"), test_set.drop(columns="label"),
                                   valid_labels=valid["label"], test_labels=test_set["label"])
    assert p3 == policy and m3 == m


def test_scaler_uses_validation_min_max_even_outside_range(valid):
    u_valid = valid["mutual_information"].to_numpy()
    scaler = R.UncertaintyScaler.fit(u_valid)
    assert (scaler.vmin, scaler.vmax) == (u_valid.min(), u_valid.max())
    u_test = np.array([u_valid.min() - 0.1, u_valid.min(), (u_valid.min() + u_valid.max()) / 2,
                       u_valid.max(), 2 * u_valid.max()])
    assert np.allclose(scaler.transform(u_test), [0, 0, 0.5, 1, 1])          # clipped
    raw = scaler.transform(u_test, clip=False)
    assert raw[0] < 0 and raw[-1] > 1                                        # unclipped: may exceed
    # apply_policy scales with the stored validation scaler, not the test set's own min/max
    policy = R.ReferralPolicy("mutual_information", 0.5, 0.5, scaler)
    test = pd.DataFrame({"p_artifact": np.full(5, 0.2), "mutual_information": u_test})
    out = R.apply_policy(policy, test)
    assert np.allclose(out["scaled_uncertainty"], [0, 0, 0.5, 1, 1])
    self_scaled = (u_test - u_test.min()) / (u_test.max() - u_test.min())
    assert not np.allclose(out["scaled_uncertainty"], self_scaled)
    assert list(out["referred"]) == [False, False, True, True, True]


def test_constant_validation_uncertainty():
    s = R.UncertaintyScaler.fit([0.2, 0.2])
    assert list(s.transform([0.1, 0.2, 0.3])) == [0, 0, 1]


def test_eta_one_refers_nobody_not_even_the_validation_maximum(valid):
    scaler = R.UncertaintyScaler.fit(valid["entropy"])
    out = R.apply_policy(R.ReferralPolicy("entropy", 1.0, 0.5, scaler), valid)
    assert not out["referred"].any() and out["scaled_uncertainty"].max() == 1.0


def test_ties_go_to_the_larger_eta():
    # perfectly separated validation scores: J = 1 at every eta, so nobody should be referred
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(40), np.ones(20)].astype(int)
    mi = np.r_[1.0, rng.uniform(0, 1e-4, 59)]        # scaled < 0.001 for all but one scan
    table = pd.DataFrame({"p_artifact": np.where(y == 1, 0.9, 0.1) + rng.uniform(-0.05, 0.05, 60),
                          "mutual_information": mi, "label": y})
    ops = R.operating_points(table)
    assert ops["admissible"].all() and np.allclose(ops["score"], 1.0)
    policy = R.select_operating_point(table)
    assert policy.eta == 1.0 and policy.valid_metrics["youden_j"] == pytest.approx(1.0)
    # the J = 1 plateau runs from ~0.15 to ~0.85: the threshold sits in its middle
    assert 0.45 < policy.threshold < 0.55


def test_referral_helps_and_retention_floor_is_respected(valid):
    ops = R.operating_points(valid)
    assert list(ops["eta"]) == list(R.ETA_GRID)
    policy = R.select_operating_point(valid, min_retained=0.5)
    assert policy.eta < 1.0
    assert policy.valid_metrics["retained_fraction"] >= 0.5
    chosen = ops.set_index("eta").loc[policy.eta]
    assert chosen["admissible"] and chosen["score"] > ops.set_index("eta").loc[1.0, "score"]
    assert policy.valid_metrics["youden_j"] == pytest.approx(chosen["score"])
    assert R.select_operating_point(valid, min_retained=1.0).eta == 1.0
    with pytest.raises(ValueError):
        R.select_operating_point(valid.assign(label=0))


def test_policy_json_roundtrip(valid):
    policy = R.select_operating_point(valid, measure="variance")
    d = json.loads(json.dumps(policy.to_dict(), allow_nan=False))
    back = R.ReferralPolicy.from_dict(d)
    assert back == policy and back.scaler == policy.scaler
    assert back.valid_metrics["accuracy"] == policy.valid_metrics["accuracy"]


def test_apply_and_evaluate_hand_made():
    table = pd.DataFrame({
        "label":      [1,   1,   1,   1,   0,   0,   0,   0,   0,    0],
        "p_artifact": [0.9, 0.2, 0.3, 0.8, 0.1, 0.6, 0.2, 0.1, 0.4,  0.05],
        "u":          [0.1, 0.2, 0.9, 0.7, 0.1, 0.3, 0.4, 0.0, 0.95, 0.2],
    })
    policy = R.ReferralPolicy("u", eta=0.5, threshold=0.5, scaler=R.UncertaintyScaler(0.0, 1.0))
    out = R.apply_policy(policy, table)
    assert list(out["referred"]) == [False, False, True, True, False, False, False, False, True, False]
    assert np.isnan(out["predicted"][out["referred"]]).all()
    assert list(out["predicted"][~out["referred"]]) == [1, 0, 0, 1, 0, 0, 0]
    assert list(out["needs_person"]) == [True, False, True, True, False, True, False, False, True, False]
    assert list(out["decision"][:3]) == ["artifact", "clean", "refer"]
    m = R.evaluate_policy(policy, table)
    assert (m["tp"], m["fn"], m["fp"], m["tn"], m["n_retained"], m["n"]) == (1, 1, 1, 4, 7, 10)
    assert m["accuracy"] == pytest.approx(5 / 7)
    assert m["retained_fraction"] == pytest.approx(0.7) and m["referred_fraction"] == pytest.approx(0.3)
    assert m["needs_person_fraction"] == pytest.approx(0.5)       # 3 referred + 2 flagged
    assert m["missed_artifact_fraction"] == pytest.approx(0.25)   # 1 of 4 artifacts


def test_nan_uncertainty_is_referred():
    policy = R.ReferralPolicy("u", 1.0, 0.5, R.UncertaintyScaler(0.0, 1.0))
    out = R.apply_policy(policy, pd.DataFrame({"p_artifact": [0.1, 0.9], "u": [0.3, np.nan]}))
    assert list(out["referred"]) == [False, True]


def test_referral_curve_at_zero_is_no_referral(valid):
    curve = R.referral_curve(valid, measure="mutual_information", threshold=0.5)
    assert len(curve) == 26 and curve["referred_fraction"].iloc[-1] == pytest.approx(0.5)
    full = binary_metrics(valid["label"], valid["p_artifact"], 0.5)
    for key in ("accuracy", "sensitivity", "specificity", "f1", "auc"):
        assert curve[key].iloc[0] == pytest.approx(full[key])
    rand = R.referral_curve(valid, threshold=0.5, random=True, n_repeats=5)
    assert rand["accuracy"].iloc[0] == pytest.approx(full["accuracy"])


def _errors_among_uncertain(n: int, seed: int = 3) -> pd.DataFrame:
    """Scans with p = 0.8 / 0.2; wrong in 60% of the cases where u > 0.7, 2% elsewhere."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    u = rng.random(n)
    wrong = rng.random(n) < np.where(u > 0.7, 0.6, 0.02)
    return pd.DataFrame({"p_artifact": np.where(y ^ wrong, 0.8, 0.2), "u": u, "label": y})


def test_informative_uncertainty_beats_random_referral():
    table = _errors_among_uncertain(400)
    y = table.pop("label").to_numpy()
    kw = dict(labels=y, measure="u", threshold=0.5, fractions=[0.0, 0.1, 0.3])
    informed, rand = R.referral_curve(table, **kw), R.referral_curve(table, random=True, **kw)
    assert informed["accuracy"].iloc[0] == pytest.approx(rand["accuracy"].iloc[0])
    assert informed["accuracy"].iloc[2] > rand["accuracy"].iloc[2] + 0.1
    assert informed["accuracy"].iloc[2] > informed["accuracy"].iloc[1] > informed["accuracy"].iloc[0]
    assert informed["missed_artifact_fraction"].iloc[2] < rand["missed_artifact_fraction"].iloc[2]


def test_labels_are_required(valid):
    with pytest.raises(KeyError):
        R.select_operating_point(valid.drop(columns="label"))


# ---------------------------------------------------------------------------------------------
# Honest attribution: guards on the validation set, one T, controls on the test set
# ---------------------------------------------------------------------------------------------
def _no_signal_table(n: int, n_artifacts: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = np.zeros(n, dtype=int)
    y[:n_artifacts] = 1
    return pd.DataFrame({"p_artifact": rng.random(n), "mutual_information": rng.random(n), "label": y})


def test_a_good_validation_set_gives_no_warning(valid):
    policy = R.select_operating_point(valid)
    assert policy.warnings == () and policy.n_samples == 30


def test_no_signal_is_flagged_and_min_artifacts_blocks_referral():
    table = _no_signal_table(200, 8, seed=4)
    policy = R.select_operating_point(table)
    assert any("contains 0.5" in w for w in policy.warnings)
    # with 8 validation artifacts, an eta < 1 needs >= 5 of them kept; the guard is configurable
    ops = R.operating_points(table)
    few = (ops.eta < 1) & (ops.n_artifact_retained < 5)
    assert few.any() and not ops.loc[few, "admissible"].any()
    assert ops.loc[ops.eta == 1, "admissible"].all()
    loose = R.operating_points(table, min_artifacts=1)
    assert loose.loc[few, "admissible"].sum() >= ops.loc[few, "admissible"].sum()
    # too few validation artifacts in all: said in the warnings
    tiny = R.no_referral_policy(_no_signal_table(100, 3, seed=5))
    assert any("only 3 validation artifacts" in w for w in tiny.warnings)


def test_youden_j_at_most_zero_is_flagged():
    table = pd.DataFrame({"p_artifact": np.full(40, 0.3), "mutual_information": np.linspace(0, 1, 40),
                          "label": np.r_[np.zeros(30), np.ones(10)].astype(int)})
    policy = R.no_referral_policy(table, n_boot=0)
    assert policy.valid_metrics["youden_j"] <= 0
    assert any("J = " in w for w in policy.warnings)


def test_policy_refuses_another_T(valid):
    policy = R.select_operating_point(valid)                       # T = 30
    assert R.evaluate_policy(policy, make_table(50, seed=7, T=30))["n"] == 50
    with pytest.raises(ValueError, match="T = 30.*T = 10"):
        R.apply_policy(policy, make_table(50, seed=7, T=10))
    with pytest.raises(ValueError, match="mixes"):
        R.select_operating_point(pd.concat([make_table(50, 8, T=10), make_table(50, 9, T=20)]))
    # a table without n_samples (or a policy from an older bundle) is not checked
    R.apply_policy(policy, make_table(50, seed=7, T=10).drop(columns="n_samples"))
    back = R.ReferralPolicy.from_dict(json.loads(json.dumps(policy.to_dict())))
    assert back.n_samples == 30 and back.warnings == policy.warnings


def test_controls_without_referral_are_the_policy_itself(valid, test_set):
    none = R.no_referral_policy(valid)
    m = R.evaluate_with_controls(none, test_set)
    for key in R.CONTROL_KEYS:
        assert m[f"{key}_no_referral"] == pytest.approx(m[key]) == pytest.approx(m[f"{key}_random"])
        assert m[f"{key}_gain_vs_random"] == pytest.approx(0.0)


def test_controls_separate_threshold_from_referral():
    informative = _errors_among_uncertain(600)
    y, n, rng = informative.label.to_numpy(), len(informative), np.random.default_rng(4)
    policy = R.ReferralPolicy("u", eta=0.7, threshold=0.5, scaler=R.UncertaintyScaler(0.0, 1.0))
    m = R.evaluate_with_controls(policy, informative, n_draws=300)
    full = binary_metrics(y, informative.p_artifact, 0.5)
    assert m["balanced_accuracy_no_referral"] == pytest.approx(full["balanced_accuracy"])
    assert m["balanced_accuracy_gain_vs_random"] > 0.1 and m["balanced_accuracy_random_p"] < 0.01
    # removing scans at random does not change the expected accuracy
    assert m["accuracy_random"] == pytest.approx(full["accuracy"], abs=0.01)
    # the same policy, but the uncertainty says nothing about the errors: no gain over random
    blind = informative.assign(u=rng.random(n))
    b = R.evaluate_with_controls(policy, blind, n_draws=300)
    assert abs(b["balanced_accuracy_gain_vs_random"]) < 0.04 and b["balanced_accuracy_random_p"] > 0.05


def test_referral_table_is_the_chapters_loop(valid, test_set):
    table, policies = R.referral_table(valid, {"test": test_set, "other": make_table(120, seed=9)},
                                       measures=["mutual_information", "entropy"], n_draws=50)
    assert list(policies) == ["none", "mutual_information", "entropy"]
    assert table.index.names == ["referral by", "set"] and len(table) == 6
    assert policies["none"].eta == 1.0
    row = table.loc[("mutual_information", "test")]
    policy, m = R.select_and_evaluate(valid, test_set, measure="mutual_information")
    assert row.eta == policy.eta and row.accuracy == pytest.approx(m["accuracy"])
    assert row.f1_no_referral == pytest.approx(binary_metrics(test_set.label, test_set.p_artifact, row.t)["f1"])
    assert table.loc[("none", "test"), "balanced_accuracy_gain_vs_random"] == pytest.approx(0.0)
    assert (table["warnings"] == "").all()
