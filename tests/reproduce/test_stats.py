"""reproduce.stats against values worked out by hand.

The sample [2.7, 2.8, 2.9] has mean 2.8 and squared deviations 0.01 + 0 + 0.01, so the sample
variance is 0.02 / 2 = 0.01 and the std 0.1. The t distribution has closed forms for 2 and 4
degrees of freedom, used here instead of scipy:

* df = 2: P(|T| > t) = 1 - t / sqrt(t^2 + 2); its 97.5 % quantile solves t / sqrt(t^2 + 2) = 0.95,
  so t^2 = 0.9025 * 2 / 0.0975.
* df = 4: P(|T| > t) = 1 - t (t^2 + 6) / (t^2 + 4)^(3/2).
"""
import math

import pytest
from scipy import stats as st

from reproduce.stats import compare, summarize, welch_df

SAMPLE = [2.7, 2.8, 2.9]


def p_df2(t):
    return 1 - abs(t) / math.sqrt(t * t + 2)


def p_df4(t):
    t = abs(t)
    return 1 - t * (t * t + 6) / (t * t + 4) ** 1.5


def test_summarize_gives_mean_sample_std_min_max_and_t_interval():
    s = summarize(SAMPLE)
    assert s["n"] == 3
    assert s["mean"] == pytest.approx(2.8)
    assert s["std"] == pytest.approx(0.1)  # ddof = 1, not the population 0.0816
    assert s["min"] == pytest.approx(2.7) and s["max"] == pytest.approx(2.9)
    t975 = math.sqrt(0.9025 * 2 / 0.0975)  # 4.3027
    half = t975 * 0.1 / math.sqrt(3)  # 0.2484
    assert half == pytest.approx(0.24841, abs=1e-5)
    assert s["ci95_low"] == pytest.approx(2.8 - half)
    assert s["ci95_high"] == pytest.approx(2.8 + half)


def test_summarize_of_one_value_has_no_std_or_interval():
    s = summarize([3.1])
    assert s == {"n": 1, "mean": 3.1, "std": None, "min": 3.1, "max": 3.1, "ci95_low": None, "ci95_high": None}


@pytest.mark.parametrize("values", [[], [2.7, float("nan")], [float("inf")]])
def test_summarize_refuses_no_values_and_non_finite_values(values):
    with pytest.raises(ValueError):
        summarize(values)


def test_one_sample_test_against_a_single_published_figure():
    # t = (2.8 - 2.76) / (0.1 / sqrt 3) = 0.04 * sqrt(3) / 0.1 = 0.69282, df = 2
    r = compare(summarize(SAMPLE), {"mean": 2.76})
    t = 0.4 * math.sqrt(3)
    assert r["test"] == "one-sample"
    assert r["difference"] == pytest.approx(0.04)
    assert r["t"] == pytest.approx(t) and r["t"] == pytest.approx(0.69282, abs=1e-5)
    assert r["df"] == 2
    assert r["p"] == pytest.approx(p_df2(t)) and r["p"] == pytest.approx(0.56006, abs=1e-5)
    assert r["verdict"] == "consistent"
    # the same statistic scipy's ttest_1samp gives from the raw values
    ref = st.ttest_1samp(SAMPLE, 2.76)
    assert r["t"] == pytest.approx(ref.statistic) and r["p"] == pytest.approx(ref.pvalue)


def test_welch_test_from_two_summaries():
    # ours 2.8 +/- 0.1 (n=3) against 2.6 +/- 0.1 (n=3): se = sqrt(0.01/3 * 2), t = 0.2 / se = sqrt(6),
    # Welch-Satterthwaite df = 4 for equal std and n.
    r = compare(summarize(SAMPLE), {"mean": 2.6, "std": 0.1, "n": 3})
    assert r["test"] == "welch"
    assert r["t"] == pytest.approx(math.sqrt(6))
    assert r["df"] == pytest.approx(4.0)
    assert r["p"] == pytest.approx(p_df4(math.sqrt(6))) and r["p"] == pytest.approx(0.070484, abs=1e-6)
    assert r["verdict"] == "consistent"  # p > 0.05


def test_verdict_worse_or_better_only_below_alpha_with_lower_is_better():
    # |t| = 0.3 / sqrt(0.02/3) = sqrt(13.5), df = 4, p = 0.02131
    worse = compare(summarize(SAMPLE), {"mean": 2.5, "std": 0.1, "n": 3})
    assert worse["t"] == pytest.approx(math.sqrt(13.5))
    assert worse["p"] == pytest.approx(p_df4(math.sqrt(13.5))) and worse["p"] == pytest.approx(0.02131, abs=1e-5)
    assert worse["verdict"] == "worse"  # our error is higher
    better = compare(summarize(SAMPLE), {"mean": 3.1, "std": 0.1, "n": 3})
    assert better["difference"] == pytest.approx(-0.3)
    assert better["verdict"] == "better"
    higher_is_better = compare(summarize(SAMPLE), {"mean": 3.1, "std": 0.1, "n": 3, "lower_is_better": False})
    assert higher_is_better["verdict"] == "worse"
    assert compare(summarize(SAMPLE), {"mean": 2.5, "std": 0.1, "n": 3}, alpha=0.01)["verdict"] == "consistent"


def test_welch_df_matches_the_satterthwaite_formula():
    assert welch_df(0.1, 3, 0.1, 3) == pytest.approx(4.0)
    # s1^2/n1 = 0.01/3, s2^2/n2 = 0.0081/10
    v1, v2 = 0.01 / 3, 0.0081 / 10
    assert welch_df(0.1, 3, 0.09, 10) == pytest.approx((v1 + v2) ** 2 / (v1 ** 2 / 2 + v2 ** 2 / 9))
    assert welch_df(0.1, 3, 0.09, 10) == pytest.approx(3.0501, abs=1e-4)


def test_target_without_n_uses_the_one_sample_test():
    r = compare(summarize(SAMPLE), {"mean": 2.76, "std": 0.09})
    assert r["test"] == "one-sample"


def test_no_runs_is_not_run_and_one_run_is_untested():
    assert compare(None, {"mean": 2.76})["verdict"] == "not run"
    assert compare({"n": 0}, {"mean": 2.76})["verdict"] == "not run"
    r = compare(summarize([2.9]), {"mean": 2.76, "std": 0.09, "n": 10})
    assert r["verdict"] == "untested" and r["test"] is None and r["p"] is None
    assert r["difference"] == pytest.approx(0.14)
    assert "one run" in r["reason"]


def test_runs_without_spread_against_a_single_figure_are_untested():
    r = compare(summarize([3.0, 3.0, 3.0]), {"mean": 2.76})
    assert r["verdict"] == "untested" and r["p"] is None


def test_target_without_mean_is_refused():
    with pytest.raises(ValueError, match="mean"):
        compare(summarize(SAMPLE), {"std": 0.1})


@pytest.mark.parametrize("magnitude", [1.0, 1e90, 1e200, 1e300])
def test_welch_is_the_same_at_any_magnitude_no_variance_overflows(magnitude):
    """1e200 gave t = 0 (nan) and p = 1 against the random cells: the variance overflowed."""
    from reproduce import random_baseline

    base = random_baseline.compare([1.0, 2.0], [3.0, 5.0, 4.0])
    big = random_baseline.compare([1.0 * magnitude, 2.0 * magnitude], [3.0 * magnitude, 5.0 * magnitude,
                                                                      4.0 * magnitude])
    assert big["t"] == pytest.approx(base["t"]) and big["p"] == pytest.approx(base["p"])
    assert big["df"] == pytest.approx(base["df"]) and big["verdict"] == base["verdict"] == "better"
    ours = compare(summarize([1 * magnitude, 2 * magnitude, 3 * magnitude]),
                   {"mean": 5 * magnitude, "std": 1 * magnitude, "n": 10})
    plain = compare(summarize([1, 2, 3]), {"mean": 5, "std": 1, "n": 10})
    assert welch_df(2 * magnitude, 3, magnitude, 10) == pytest.approx(welch_df(2, 3, 1, 10))
    assert ours["p"] == pytest.approx(plain["p"]) and ours["df"] == pytest.approx(plain["df"])
