"""Statistics of repeated runs and their comparison with a published figure.

``summarize(values)`` describes the final metric of several seeds: n, mean, the sample standard
deviation (ddof=1), min, max and the t-based 95 % confidence interval of the mean.

``compare(summary, target)`` sets that summary beside a published target ``{"mean", "std"?, "n"?}``:

* the paper gives mean, std and n (e.g. 2.76 +/- 0.09 % over 10 runs): Welch's t-test from the
  two summaries (``scipy.stats.ttest_ind_from_stats(..., equal_var=False)``);
* the paper gives a single figure (e.g. 55.7 perplexity): a one-sample t-test of our runs against
  it (the statistic of ``scipy.stats.ttest_1samp``, computed from the summary);
* fewer than two runs of ours, or runs without spread against a single figure: no test.

Lower is better for every metric here (errors, perplexities) unless the target says
``"lower_is_better": false``. The verdict is "better" or "worse" only when p < alpha (0.05), else
"consistent"; "not run" when there are no runs, "untested" when no test is possible (the
``reason`` key says why).
"""
from __future__ import annotations

import math
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np
from scipy import stats as _st

ALPHA = 0.05
CONFIDENCE = 0.95

VERDICTS = ("consistent", "better", "worse", "not run", "untested")


class StatisticsOverflowError(ValueError):
    """Finite values whose statistics (a spread, a confidence bound) would exceed the range of a float."""


def summarize(values: Iterable[float], confidence: float = CONFIDENCE) -> Dict[str, Any]:
    """n, mean, std (ddof=1), min, max, ci95_low, ci95_high of the values.

    With one value, std and the confidence interval are None (there is no spread to estimate).
    Raises ValueError for no values or a value that is not a finite number.
    """
    data = []
    for v in values:
        try:
            data.append(float(v))
        except OverflowError:  # an integer beyond float range, e.g. 10**400
            raise ValueError(f"summarize() got a value too large for a float ({len(str(v))} digits)") from None
    if not data:
        raise ValueError("summarize() needs at least one value")
    bad = [v for v in data if not math.isfinite(v)]
    if bad:
        raise ValueError(f"summarize() got non-finite value(s) {bad}: a run that diverged has no final metric")
    scale = scale_of(data)
    arr = np.asarray(data, dtype=np.float64) / scale
    n = int(arr.size)
    mean = float(arr.mean())
    out: Dict[str, Any] = {"n": n, "mean": mean * scale, "std": None, "min": float(arr.min()) * scale,
                           "max": float(arr.max()) * scale, "ci95_low": None, "ci95_high": None}
    if n >= 2:
        std = float(arr.std(ddof=1))
        half = float(_st.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
        out.update(std=std * scale, ci95_low=(mean - half) * scale, ci95_high=(mean + half) * scale)
    return _finite(out, "summary")


def overflowing(values: Sequence[float]) -> List[int]:
    """The positions of the values to leave out so that :func:`summarize` of the others stays finite; [] when it
    is finite already. The largest magnitudes go first: one run's absurd number (a perplexity of 1e308 beside
    58 and 59) is what overflows, and the same huge number in every run overflows nothing."""
    order = sorted(range(len(values)), key=lambda i: -abs(values[i]))  # stable: ties leave the earlier out first
    for k in range(len(values)):
        kept = set(order[k:])
        try:
            summarize([v for i, v in enumerate(values) if i in kept])
            return sorted(order[:k])
        except StatisticsOverflowError:
            continue
    return []  # unreachable: one value alone has no spread, so its summary cannot overflow


# Beyond this magnitude a fourth power (a variance squared, in Welch's degrees of freedom, scipy's too) could
# overflow a float: such values are computed scaled by a power of two (exact).
_LARGE = 2.0 ** 200


def scale_of(values) -> float:
    """A power of two that brings the largest magnitude near 1 when it is huge, else 1.

    Dividing by a power of two is exact, so every statistic is the one computed unscaled, except that
    no intermediate (a sum, a square) can overflow.
    """
    largest = max((abs(v) for v in values), default=0.0)
    return 2.0 ** (math.frexp(largest)[1] - 1) if largest > _LARGE else 1.0  # largest / scale in [1, 2)


def _finite(out: Dict[str, Any], what: str) -> Dict[str, Any]:
    bad = [k for k, v in out.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:  # e.g. the spread of values near +-1.7e308 exceeds the largest float
        raise StatisticsOverflowError(f"the {what}'s {', '.join(bad)} would exceed the range of a float: "
                                      "the values are absurd")
    return out


def welch_df(s1: float, n1: int, s2: float, n2: int) -> float:
    """Welch-Satterthwaite degrees of freedom of two samples with std s1, s2 and sizes n1, n2."""
    # the ratio is the same for (s1, s2) scaled by any factor: scaled to at most 1, its 4th powers cannot overflow
    scale = 2.0 ** math.frexp(max(abs(s1), abs(s2)))[1] if max(abs(s1), abs(s2)) > 0 else 1.0
    s1, s2 = s1 / scale, s2 / scale
    v1, v2 = s1 * s1 / n1, s2 * s2 / n2
    denom = v1 * v1 / (n1 - 1) + v2 * v2 / (n2 - 1)
    if denom == 0:
        return float(n1 + n2 - 2)
    return (v1 + v2) ** 2 / denom


def _result(difference, test=None, t=None, df=None, p=None, verdict="untested", reason=None) -> Dict[str, Any]:
    return {"difference": difference, "test": test, "t": t, "df": df, "p": p, "verdict": verdict, "reason": reason}


def _verdict(difference: float, p: float, lower_is_better: bool, alpha: float) -> str:
    if p >= alpha or difference == 0:
        return "consistent"
    ours_lower = difference < 0
    return "better" if ours_lower == lower_is_better else "worse"


def compare(summary: Optional[Mapping[str, Any]], target: Mapping[str, Any], alpha: float = ALPHA) -> Dict[str, Any]:
    """Our summary against a published target; see the module docstring.

    Returns ``{difference (ours - paper), test ("welch" | "one-sample" | None), t, df, p, verdict,
    reason}``. ``summary`` may be None (or have n = 0): then the verdict is "not run".
    """
    if "mean" not in target or target["mean"] is None:
        raise ValueError(f"a target needs a 'mean', got {dict(target)!r}")
    lower_is_better = bool(target.get("lower_is_better", True))
    if not summary or not summary.get("n"):
        return _result(None, verdict="not run", reason="no finished run")
    mean, n, std = float(summary["mean"]), int(summary["n"]), summary.get("std")
    mu = float(target["mean"])
    t_std, t_n = target.get("std"), target.get("n")
    # t and p do not change when every figure is divided by one power of two; the difference is scaled back.
    scale = scale_of([mean, mu] + [float(x) for x in (std, t_std) if x is not None])
    mean, mu = mean / scale, mu / scale
    difference = (mean - mu) * scale
    if not math.isfinite(difference):
        raise ValueError(f"the difference of our mean {mean * scale:g} and the paper's {mu * scale:g} exceeds "
                         "the range of a float: the values are absurd")
    if n < 2 or std is None:
        return _result(difference, reason="one run: no spread to test with (run more seeds)")
    std = float(std) / scale
    if t_std is not None and t_n is not None and int(t_n) >= 2:
        t_std, t_n = float(t_std) / scale, int(t_n)
        if std == 0 and t_std == 0:
            return _result(difference, reason="neither sample has any spread")
        res = _st.ttest_ind_from_stats(mean, std, n, mu, t_std, t_n, equal_var=False)
        t, p = float(res.statistic), float(res.pvalue)
        return _result(difference, "welch", t, welch_df(std, n, t_std, t_n), p,
                       _verdict(difference, p, lower_is_better, alpha))
    if std == 0:
        return _result(difference, reason="all runs gave the same value: no spread to test with")
    df = n - 1
    t = (mean - mu) / (std / math.sqrt(n))
    p = float(2 * _st.t.sf(abs(t), df))
    return _result(difference, "one-sample", float(t), float(df), p, _verdict(difference, p, lower_is_better, alpha))
