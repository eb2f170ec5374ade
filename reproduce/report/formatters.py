"""How the report writes numbers: our statistics, published figures, p-values, durations, verdicts.

Every figure of ours goes through here (the report and the terminal summary alike), so a value a
record could hold (1e308, NaN, None) never raises, and nothing is shown with more digits than it has.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

from ..records import number

PM = "±"


# Beyond this magnitude a figure is written in scientific notation (a diverged run's perplexity of 1e308 would
# otherwise be 309 digits wide).
LARGE = 1e6


def fmt_num(x: Optional[float], digits: int = 2) -> str:
    x = number(x)
    if x is None:  # None, NaN, infinite
        return "—"
    if abs(x) >= LARGE:
        return f"{x:.3e}"
    if x != 0 and abs(x) < 0.5 * 10 ** -digits:  # would round to zero: keep two significant digits
        return f"{x:.2g}"
    return f"{x:.{digits}f}"


def fmt_signed(x: Optional[float]) -> str:
    x = number(x)
    if x is None:
        return "—"
    s = fmt_num(abs(x))
    return ("+" if x >= 0 else "-") + s


def fmt_p(p: Optional[float]) -> str:
    p = number(p)
    if p is None:
        return "—"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def fmt_published(x: float) -> str:
    """A published figure with the digits it was published with (3.0 is shown as 3.00)."""
    text = repr(float(x))
    return f"{float(x):.2f}" if text.endswith(".0") or "e" in text or len(text.split(".")[1]) > 4 else text


def fmt_paper(figure: Mapping[str, Any], n_stated: Optional[bool] = None) -> str:
    text = fmt_published(figure["mean"])
    if figure.get("std") is not None:
        text += f" {PM} {fmt_published(figure['std'])}"
    if figure.get("n") is not None:
        text += f" (n={figure['n']}" + (", n assumed" if n_stated is False else "") + ")"
    elif figure.get("std") is None:
        text += " (single figure)"
    return text


def fmt_ours(summary: Optional[Mapping[str, Any]]) -> str:
    if not summary:
        return "not run"
    if summary.get("std") is None:
        return f"{fmt_num(summary['mean'])} (n={summary['n']})"
    return f"{fmt_num(summary['mean'])} {PM} {fmt_num(summary['std'])} (n={summary['n']})"


def fmt_ci(summary: Optional[Mapping[str, Any]]) -> str:
    if not summary or summary.get("ci95_low") is None:
        return "—"
    return f"[{fmt_num(summary['ci95_low'])}, {fmt_num(summary['ci95_high'])}]"


def fmt_duration(seconds: Optional[float]) -> str:
    seconds = number(seconds)
    if seconds is None or seconds < 0:  # a record's wall time may be null, NaN or Infinity (hand-edited)
        return "—"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}"


def fmt_verdict(result: Mapping[str, Any]) -> str:
    verdict = result.get("verdict", "—")
    if verdict in ("untested", "not comparable", "reference") and result.get("reason"):
        return f"{verdict} ({result['reason']})"
    return verdict

