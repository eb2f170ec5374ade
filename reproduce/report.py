"""The report: ``write_report(results_dir)`` regenerates ``results_dir/REPORT.md`` (or ``.tex``) and
its figures from the records of every experiment found under ``results_dir`` (any depth).

Layout::

    results_dir/REPORT.md                                  (or REPORT.tex with fmt="latex")
    results_dir/figures/<experiment>/curves_<metric>.png   every seed, the mean and a +/- 1 std band
    results_dir/figures/<experiment>/final_<metric>.png    final values against the paper's mean +/- std
    results_dir/figures/<experiment>/cell_{normal,reduce,recurrent}.png
    results_dir/figures/<experiment>/search/...            with --search: candidates, selection

``<experiment>`` is the experiment's path under results_dir with "/" written as "--". Every number
in the report comes from a finished record.json; a paper target that no record measured is listed
as "not run". Runs of the quick and demo profiles are labelled as not comparable with the paper,
and no test against the paper is made for them.
"""
from __future__ import annotations

import logging
import os
import shutil
import textwrap
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from tabulate import tabulate

import genotypes
from genotypes import derive
from zoo.fileio import atomic_write_text

from . import aggregate, figures, random_baseline
from .aggregate import Comparison, Experiment
from .records import number

log = logging.getLogger(__name__)

FORMATS = ("markdown", "latex")
PM = "±"


# --------------------------------------------------------------------------------------------------
# number formatting


def fmt_num(x: Optional[float], digits: int = 2) -> str:
    if x is None:
        return "—"
    if x != 0 and abs(x) < 0.5 * 10 ** -digits:  # would round to zero: keep two significant digits
        return f"{x:.2g}"
    return f"{x:.{digits}f}"


def fmt_signed(x: Optional[float]) -> str:
    if x is None:
        return "—"
    s = fmt_num(abs(x))
    return ("+" if x >= 0 else "-") + s


def fmt_p(p: Optional[float]) -> str:
    if p is None:
        return "—"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def fmt_published(x: float) -> str:
    """A published figure with the digits it was published with (3.0 is shown as 3.00)."""
    text = repr(float(x))
    return f"{float(x):.2f}" if text.endswith(".0") or "e" in text or len(text.split(".")[1]) > 4 else text


def fmt_paper(spec: Mapping[str, Any], n_stated: Optional[bool] = None) -> str:
    text = fmt_published(spec["mean"])
    if spec.get("std") is not None:
        text += f" {PM} {fmt_published(spec['std'])}"
    if spec.get("n") is not None:
        text += f" (n={spec['n']}" + (", n assumed" if n_stated is False else "") + ")"
    elif spec.get("std") is None:
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
    if seconds is None:
        return "—"
    seconds = int(round(float(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}"


def fmt_verdict(result: Mapping[str, Any]) -> str:
    verdict = result.get("verdict", "—")
    if verdict in ("untested", "not comparable", "reference") and result.get("reason"):
        return f"{verdict} ({result['reason']})"
    return verdict


# --------------------------------------------------------------------------------------------------
# a tiny document model, rendered as GitHub markdown or LaTeX


class Doc:
    def __init__(self):
        self.blocks: List[tuple] = []

    def h(self, level: int, text: str):
        self.blocks.append(("h", level, text))

    def p(self, text: str):
        self.blocks.append(("p", text))

    def items(self, items: Sequence[str]):
        self.blocks.append(("list", list(items)))

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]]):
        self.blocks.append(("table", list(headers), [list(r) for r in rows]))

    def img(self, path: Path, caption: str):
        self.blocks.append(("img", Path(path), caption))

    def code(self, text: str):
        self.blocks.append(("code", text))


def _md_inline(text: str) -> str:
    return text


def render_markdown(doc: Doc, base: Path) -> str:
    out: List[str] = []
    for block in doc.blocks:
        kind = block[0]
        if kind == "h":
            out.append("#" * block[1] + " " + block[2])
        elif kind == "p":
            out.append(block[1])
        elif kind == "list":
            out.append("\n".join(f"- {item}" for item in block[1]))
        elif kind == "table":
            rows = [[str(c).replace("|", "\\|").replace("\n", " ") for c in r] for r in block[2]]
            out.append(tabulate(rows, headers=block[1], tablefmt="github", disable_numparse=True))
        elif kind == "img":
            rel = Path(os.path.relpath(block[1], base)).as_posix()
            out.append(f"![{block[2]}]({rel})")
        elif kind == "code":
            out.append("```\n" + block[1] + "\n```")
    return "\n\n".join(out) + "\n"


_LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                  "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}",
                  PM: r"$\pm$", "—": "--", "<": r"\textless{}", ">": r"\textgreater{}"}


def latex_escape(text: str) -> str:
    """Plain text as LaTeX; `code` spans become \\texttt and **bold** spans \\textbf."""
    out, code, bold, i = [], False, False, 0
    while i < len(text):
        ch = text[i]
        if text.startswith("**", i):
            out.append("}" if bold else r"\textbf{")
            bold = not bold
            i += 2
            continue
        if ch == "`":
            out.append("}" if code else r"\texttt{")
            code = not code
        else:
            out.append(_LATEX_SPECIAL.get(ch, ch))
        i += 1
    if code:
        out.append("}")
    if bold:
        out.append("}")
    return "".join(out)


def render_latex(doc: Doc, base: Path) -> str:
    out = [r"\documentclass{article}", r"\usepackage[margin=2cm]{geometry}", r"\usepackage{graphicx}",
           r"\usepackage{booktabs}", r"\usepackage[T1]{fontenc}", r"\usepackage[utf8]{inputenc}",
           r"\begin{document}"]
    sections = {1: "section*", 2: "section*", 3: "subsection*", 4: "subsubsection*"}
    for block in doc.blocks:
        kind = block[0]
        if kind == "h":
            if block[1] == 1:
                out.append(r"\title{" + latex_escape(block[2]) + r"}\date{}\maketitle")
            else:
                out.append("\\" + sections.get(block[1], "paragraph*") + "{" + latex_escape(block[2]) + "}")
        elif kind == "p":
            out.append(latex_escape(block[1]) + "\n")
        elif kind == "list":
            out.append("\\begin{itemize}\n" + "\n".join(r"\item " + latex_escape(i) for i in block[1])
                       + "\n\\end{itemize}")
        elif kind == "table":
            headers = [latex_escape(h) for h in block[1]]
            rows = [[latex_escape(str(c)) for c in r] for r in block[2]]
            body = tabulate(rows, headers=headers, tablefmt="latex_raw", disable_numparse=True)
            rules = iter(["\\toprule", "\\midrule"])
            lines = body.splitlines()
            last = max(i for i, line in enumerate(lines) if line.strip() == "\\hline")
            body = "\n".join("\\bottomrule" if i == last else next(rules, line) if line.strip() == "\\hline" else line
                             for i, line in enumerate(lines))
            out.append("{\\small\\begin{center}\n\\resizebox{\\linewidth}{!}{%\n" + body + "}\n\\end{center}}")
        elif kind == "img":
            rel = Path(os.path.relpath(block[1], base)).as_posix()
            out.append("\\begin{figure}[h]\\centering\n\\includegraphics[width=0.7\\linewidth]{" + rel + "}\n"
                       "\\caption{" + latex_escape(block[2]) + "}\n\\end{figure}")
        elif kind == "code":
            wrapped = "\n".join(textwrap.fill(line, 100, break_on_hyphens=False) for line in block[1].splitlines())
            out.append("{\\footnotesize\\begin{verbatim}\n" + wrapped + "\n\\end{verbatim}}")
    out.append(r"\end{document}")
    return "\n\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------------
# sections


def _slug(exp: Experiment, results_dir: Path) -> str:
    try:
        rel = exp.path.resolve().relative_to(results_dir.resolve()).as_posix()
    except ValueError:
        rel = exp.path.name
    return "root" if rel in ("", ".") else rel.replace("/", "--")


def _display_name(exp: Experiment, results_dir: Path) -> str:
    try:
        rel = exp.path.resolve().relative_to(results_dir.resolve()).as_posix()
    except ValueError:
        rel = str(exp.path)
    return exp.path.name if rel in ("", ".") else rel


def _profile_note(exp: Experiment) -> Optional[str]:
    if exp.comparable:
        return None
    if exp.profile == "paper":  # the paper's profile, with fields overridden
        return (f"**Not comparable with the paper**: {exp.not_comparable_reason()}. Their numbers are shown for "
                "what they are, and no test against the paper is made.")
    return (f"**Profile `{exp.profile}`: not comparable with the paper.** These runs use shorter recipes (or other "
            "data) than the paper's; their numbers are shown for what they are, and no test against the paper "
            "is made.")


def _comparison_rows(rows: Sequence[Comparison], sources: Mapping[str, Any], targets: Mapping[str, Any]):
    out = []
    for c in rows:
        spec = targets.get(c.target, {})
        n_stated = spec.get("n_stated") if c.kind in ("paper", "related") else None
        source = c.source + ("" if c.verified is not False else " (unverified)")
        published = fmt_paper(c.paper, n_stated) if c.kind != "reference" else fmt_published(c.paper["mean"])
        out.append([c.title, source or "—", c.metric, published, fmt_ours(c.ours), fmt_ci(c.ours),
                    fmt_signed(c.result.get("difference")), c.result.get("test") or "—", fmt_p(c.result.get("p")),
                    fmt_verdict(c.result)])
    return out


COMPARISON_HEADERS = ["compared with", "source", "metric", "published (or reference)", "ours: mean ± std (n)",
                      "95 % CI", "difference", "test", "p", "verdict"]


def experiment_table(exp, targets: Optional[Mapping[str, Any]] = None, tablefmt: str = "simple") -> str:
    """The comparison table of one experiment (an :class:`Experiment` or its directory) as text,
    e.g. for a command to print when its runs are done."""
    if not isinstance(exp, Experiment):
        exp = aggregate.load_experiment(exp)
    targets = targets if targets is not None else aggregate.load_targets(aggregate.default_paper_path())
    rows = aggregate.compare_experiment(exp, targets)
    head = f"{exp.name} (profile {exp.profile}" + ("" if exp.comparable else ": not comparable with the paper") + ")"
    if not rows:
        return head + ": no published figure to compare with"
    table = tabulate(_comparison_rows(rows, targets.get("sources", {}), targets["targets"]),
                     headers=COMPARISON_HEADERS, tablefmt=tablefmt, disable_numparse=True)
    return head + "\n" + table


def _pending_line(exp: Experiment, results_dir: Path) -> str:
    seeds = exp.meta.get("seeds") or []
    started = f"seeds {', '.join(str(s) for s in seeds)} not finished" if seeds else "nothing finished"
    return f"`{_display_name(exp, results_dir)}` ({exp.profile}; {started})"


def _summary_section(doc: Doc, experiments: List[Experiment], targets: Dict[str, Any], results_dir: Path):
    table = targets["targets"]
    covered = aggregate.coverage(experiments, targets)
    rows = []
    for key, spec in table.items():
        for metric, paper in (spec.get("metrics") or {}).items():
            exps = covered.get(key, [])
            if not exps:
                rows.append([key, spec.get("title", key), metric, fmt_paper(paper, spec.get("n_stated")), "not run",
                             "—", "—", "not run", "—"])
                continue
            for exp in exps:
                comps = [c for c in aggregate.compare_experiment(exp, targets)
                         if c.target == key and c.metric == metric]
                if not comps:
                    continue
                c = comps[0]
                rows.append([key, spec.get("title", key), metric, fmt_paper(paper, spec.get("n_stated")),
                             fmt_ours(c.ours), fmt_signed(c.result.get("difference")), fmt_p(c.result.get("p")),
                             fmt_verdict(c.result), f"`{_display_name(exp, results_dir)}` ({exp.profile})"])
    doc.h(2, "Summary: every paper target")
    if not table:
        doc.p("No published figure applies to these experiments (their `paper.json` lists no target): there is "
              "nothing to test against the paper. Reference figures that are not published ones (e.g. the demo's "
              "bound exp(H)) are shown under each experiment, without a test.")
        return
    doc.p("One row per published figure in `paper.json`. \"not run\" means no finished record measured it; "
          "verdicts come from Welch's t-test (paper mean, std and n) or a one-sample t-test (single figure) "
          "at p < 0.05. Lower is better for every metric.")
    doc.table(["target", "what", "metric", "published", "ours: mean ± std (n)", "difference", "p", "verdict",
               "experiment (profile)"], rows)


def _experiment_section(doc: Doc, exp: Experiment, targets: Dict[str, Any], results_dir: Path, fig_root: Path,
                        draw: bool):
    name = _display_name(exp, results_dir)
    slug = _slug(exp, results_dir)
    fig_dir = fig_root / slug
    meta = exp.meta
    doc.h(2, f"Experiment `{name}`")
    note = _profile_note(exp)
    if note:
        doc.p(note)
    key = exp.target_key(targets)
    asked = meta.get("seeds") or []
    done = [s for s in exp.seeds]
    missing = [s for s in asked if s not in done]
    facts = [f"experiment: `{exp.experiment}`, dataset: `{exp.dataset}`",
             f"profile: `{exp.profile}`" + ("" if exp.comparable else " (not comparable with the paper)"),
             f"architecture: `{meta.get('arch') or 'searched cell'}`"
             + (f", search order {meta['order']}" if meta.get("order") else "")
             + (f", search method {meta['method']}" if meta.get("method") not in (None, "darts") else ""),
             f"paper target: `{key}`" if key else "paper target: none (no published figure applies)",
             *([f"note: {meta['note']}"] if meta.get("note") else []),
             f"finished seeds: {', '.join(str(s) for s in done) or 'none'}"]
    for seed, where, reasons in exp.excluded():
        rel = Path(os.path.relpath(where, results_dir)).as_posix()
        facts.append(f"**excluded from the statistics** (finished, but not counted in n): `{rel}` (seed {seed}): "
                     + "; ".join(reasons))
    if missing:
        facts.append(f"seeds not finished: {', '.join(str(s) for s in missing)}")
    elif exp.unfinished:
        facts.append(f"run directories without a finished record: {', '.join(exp.unfinished)}")
    doc.items(facts)

    comparisons = aggregate.compare_experiment(exp, targets)
    only_references = bool(comparisons) and all(c.kind == "reference" for c in comparisons)
    doc.h(3, "Results against reference figures (not published ones)" if only_references else
          "Results against the paper")
    if not exp.records:
        doc.p("No finished training run yet (the search below is all that is measured).")
    if comparisons:
        headers = list(COMPARISON_HEADERS)
        if only_references:
            headers[headers.index("published (or reference)")] = "reference (not a published figure)"
        doc.table(headers, _comparison_rows(comparisons, targets.get("sources", {}), targets["targets"]))
        notes = _notes(comparisons, targets)
        if notes:
            doc.items(notes)
    else:
        doc.p("No published figure to compare with.")

    metrics = exp.metrics()
    if exp.records:
        rows = []
        for m in metrics:
            s = exp.summary(m)
            rows.append([m, s["n"], fmt_num(s["mean"]), fmt_num(s["std"]), fmt_num(s["min"]), fmt_num(s["max"]),
                         fmt_ci(s)])
        doc.h(3, "All final metrics")
        doc.table(["metric", "n", "mean", "std", "min", "max", "95 % CI"], rows)

    if draw and fig_dir.is_dir():  # figures of an earlier report (e.g. of seeds since removed) go
        shutil.rmtree(fig_dir)
    if draw and exp.records:
        paper_means = {c.metric: c.paper["mean"] for c in comparisons if c.kind == "paper"}
        reference_lines = {c.metric: {"label": c.title, "mean": c.paper["mean"]}
                           for c in comparisons if c.kind == "reference"}
        doc.h(3, "Figures")
        primary = exp.primary_metrics()
        for m in figures.curve_metrics(exp.usable):
            if m not in primary and m != "train_loss" and not m.endswith(("_error", "_ppl")):
                continue
            path = figures.learning_curves(exp.usable, m, fig_dir / f"curves_{m}.png", title=f"{name}: {m}",
                                           paper=paper_means.get(m) if exp.comparable else None,
                                           reference=reference_lines.get(m))
            if path:
                doc.img(path, f"{m} by epoch: every seed, their mean and +/- 1 std")
        for m in metrics:
            refs = [dict(label=_short_label(c), mean=c.paper["mean"], std=c.paper.get("std"))
                    for c in comparisons if c.metric == m and c.kind != "reference"]
            refs += [dict(label=c.title, mean=c.paper["mean"], std=c.paper.get("std"), kind="reference")
                     for c in comparisons if c.metric == m and c.kind == "reference"]
            if not refs and m not in primary:
                continue
            values = [v for _, v in exp.values(m)]
            path = figures.distribution(values, m, fig_dir / f"final_{m}.png", refs, exp.summary(m),
                                        title=f"{name}: final {m}")
            if path:
                beside = [("published mean +/- std" if r.get("kind") != "reference" else r["label"]) for r in refs]
                doc.img(path, f"final {m}: one dot per seed, our mean and 95 % CI"
                        + (f"; beside it: {', '.join(dict.fromkeys(beside))}" if beside else ""))

    genotype = exp.genotype
    if genotype:
        doc.h(3, "Cell evaluated")
        doc.code(genotype)
        if draw:
            for path in figures.cells(genotype, fig_dir / "cell", title=name):
                doc.img(path, f"{path.stem.rsplit('_', 1)[-1]} cell of `{name}`")

    _baseline_section(doc, exp, fig_dir, draw)

    if exp.selection or exp.search_records:
        _search_section(doc, exp, fig_dir / "search", draw,
                        {c.metric: {"label": c.title, "mean": c.paper["mean"]}
                         for c in comparisons if c.kind == "reference"})

    _provenance(doc, exp, results_dir)


def _notes(comparisons: Sequence[Comparison], targets: Mapping[str, Any]) -> List[str]:
    """The notes paper.json attaches to the figures in a table (how many runs, what was compared)."""
    table = targets.get("targets", {})
    notes, seen = [], set()
    for c in comparisons:
        if c.target in seen:
            continue
        seen.add(c.target)
        if c.kind == "reproduction":
            key, _, index = c.target.partition("/reproduction-")
            spec = table.get(key, {}).get("reproductions", [])[int(index)]
        elif c.kind == "reference":
            continue
        else:
            spec = table.get(c.target, {})
        if spec.get("note"):
            notes.append(f"{c.title}: {spec['note']}" + ("" if spec.get("verified", True) else " (unverified)"))
    return notes


def _short_label(c: Comparison) -> str:
    if c.kind == "paper":
        return "paper"
    if c.kind == "related":
        return "released model" if "released" in c.target else c.target
    if c.kind == "reproduction":
        return c.source or "reproduction"
    return c.title


def _supernet_curves(doc: Doc, exp: Experiment, fig_dir: Path, draw: bool, reference_lines: Mapping[str, Any]):
    """What each search's supernet reached (its last epoch) and, drawn, its curves over the search."""
    shown = [m for m in ("valid_acc", "valid_ppl", "train_loss", "valid_loss")
             if any(m in (r.get("final") or {}) for r in exp.search_records)]
    if not shown:
        return
    where = ("the validation split (which also trains the architecture)" if "valid_ppl" in shown else
             "the half of the training data that trains the architecture")
    doc.p("The supernets (the weights shared by every candidate op, mixed by the architecture weights) at the end "
          f"of each search; the validation figures are measured on {where}:")
    # records written before the option existed measured as the original does
    bn = sorted({(r.get("config") or {}).get("valid_bn", "running") for r in exp.search_records}
                if "valid_ppl" in shown else set())
    if bn == ["batch"]:
        doc.p("Their validation perplexity is measured with each state of the cell normalised over the evaluation "
              "batch, as in training (`valid_bn=batch`), not as the original's code measures it (eval mode, where "
              "the cell's one BatchNorm normalises all nine states with shared running statistics, `valid_bn="
              "running`). The batch's columns are other stretches of the same text, so this figure is not strictly "
              "a per-sequence likelihood; the trained cells' perplexities below are.")
    elif len(bn) > 1:
        doc.p(f"Their validation perplexities are measured in different ways (`valid_bn` {', '.join(bn)}): not "
              "comparable with each other.")
    doc.table(["search seed", *shown, "epochs"],
              [[r.get("seed"), *[fmt_num((r.get("final") or {}).get(m)) for m in shown], len(r.get("curve") or [])]
               for r in exp.search_records])
    if not draw:
        return
    for m in figures.curve_metrics(exp.search_records):
        if m not in ("valid_acc", "valid_ppl", "train_loss"):
            continue
        path = figures.learning_curves(exp.search_records, m, fig_dir / f"supernet_{m}.png",
                                       title=f"supernet during the search: {m}", series_label="search seed",
                                       reference=reference_lines.get(m))
        if path:
            doc.img(path, f"the supernet's {m} by search epoch, every search seed")
    _skip_connections(doc, exp.search_records)


def skip_counts(curve) -> List[Optional[int]]:
    """The skip connections of each epoch's derived normal cell (None where an epoch has no conv genotype)."""
    counts: List[Optional[int]] = []
    for row in curve or []:
        try:
            g = genotypes.parse(row.get("genotype") or "")
        except ValueError:
            g = None
        counts.append(derive.normal_skips(g) if isinstance(g, genotypes.Genotype) else None)
    return counts


def _runs(counts: List[Optional[int]]) -> str:
    """``[0, 0, 1, 2, 2]`` as ``"0 (epochs 0-1), 1 (2), 2 (3-4)"``."""
    parts, start = [], 0
    for i in range(1, len(counts) + 1):
        if i == len(counts) or counts[i] != counts[start]:
            span = f"{start}-{i - 1}" if i - 1 > start else f"{start}"
            parts.append(f"{'?' if counts[start] is None else counts[start]} ({'epochs ' if not parts else ''}{span})")
            start = i
    return ", ".join(parts)


def _skip_connections(doc: Doc, records) -> None:
    """Skip connections in each search's derived normal cell, epoch by epoch: DARTS's collapse shows there
    first. Searches stopped early (DARTS+) or capped (P-DARTS's max_skip) say so."""
    rows = []
    for r in records:
        counts = skip_counts(r.get("curve"))
        if not counts or all(c is None for c in counts):
            continue
        config, stop = r.get("config") or {}, r.get("early_stop") or {}
        guards = [f"max_skip {config['max_skip']}" if config.get("max_skip") is not None else "",
                  f"stopped after epoch {stop.get('epoch')} ({config.get('early_stop')})" if stop else ""]
        rows.append([r.get("seed"), _runs(counts), "; ".join(g for g in guards if g) or "none"])
    if rows:
        doc.p("Skip connections in the normal cell derived after each search epoch (many of them are the sign of "
              "DARTS's collapse), and the guards against it that a search used:")
        doc.table(["search seed", "skip connections (epochs)", "guards"], rows)


def _baseline_section(doc: Doc, exp: Experiment, fig_dir: Path, draw: bool):
    baseline = random_baseline.load(random_baseline.root_of(exp.path, exp.meta), aggregate.read_records)
    if baseline is None:
        return
    doc.h(3, "Searched cell against random cells (random-architecture baseline)")
    complete = baseline.complete_cells()
    doc.p(f"{baseline.spec.n} cells drawn uniformly from the DARTS search space (`genotypes.sample.draw`, draw seed "
          f"{baseline.spec.seed}: two different inputs per node, ops without `none`), each trained with the same "
          f"recipe and seeds ({', '.join(map(str, baseline.seeds))}) as the searched cell; {len(complete)} of them "
          "have finished every seed. The searched cell counts one value per seed, a random cell one value (the mean "
          "over its seeds); Welch's t-test at p < 0.05: better / worse (lower is better), else not distinguishable.")
    rows = random_baseline.comparison_rows(exp.usable, baseline, exp.primary_metrics())
    if not rows:
        doc.p("No comparison yet: the searched cell or the random cells have no finished run.")
    else:
        doc.table(list(random_baseline.HEADERS), random_baseline.table_rows(rows))
    cells = []
    for c in baseline.cells:
        means = ", ".join(f"{m} {fmt_num(c.mean(m))}" for m in exp.primary_metrics() if c.mean(m) is not None)
        cells.append([c.index, means or "not run", f"{c.parameters:,}" if c.parameters else "—",
                      f"{len(c.records)}/{len(baseline.seeds)}", f"`{c.genotype}`"])
    doc.table(["random cell", "mean over seeds", "parameters", "seeds finished", "genotype"], cells)
    if draw:
        for row in rows:
            m = row["metric"]
            path = figures.distribution(
                [v for _, v in exp.values(m)], m, fig_dir / f"baseline_{m}.png",
                [dict(label=f"random cells (n={row['random']['n']})", mean=row["random"]["mean"],
                      std=row["random"]["std"], kind="reference")],
                exp.summary(m), title=f"searched cell vs random cells: {m}")
            if path:
                doc.img(path, f"{m}: the searched cell (one dot per seed, mean and 95 % CI) beside the random cells' "
                              "mean +/- std")


def _search_section(doc: Doc, exp: Experiment, fig_dir: Path, draw: bool,
                    reference_lines: Optional[Mapping[str, Any]] = None):
    doc.h(3, "Search and selection (the paper's Sect. 3.2 pipeline)")
    _supernet_curves(doc, exp, fig_dir, draw, reference_lines or {})
    sel = exp.selection or {}
    metric = sel.get("metric", "valid metric")
    candidates = sel.get("candidates") or []
    chosen = sel.get("chosen")
    by_seed = {r.get("seed"): r for r in exp.search_records}
    if candidates:
        rows = []
        for c in candidates:
            search = by_seed.get(c.get("search_seed"), {})
            v = c.get("valid_metric")
            rows.append([c.get("search_seed"), fmt_num(number(v)) if number(v) is not None else "not run",
                         "yes" if c.get("search_seed") == chosen else "", fmt_duration(search.get("wall_time_s"))])
        doc.p(f"Each search seed's derived cell was trained from scratch for a short time; the cell with the best "
              f"`{metric}` was chosen (search seed {chosen}) and trained with every seed above.")
        doc.table(["search seed", f"short training: {metric}", "chosen", "search wall time"], rows)
        if draw:
            path = figures.selection(candidates, metric, chosen, fig_dir / "selection.png")
            if path:
                doc.img(path, "selection: short-training validation figure of each searched cell")
            if exp.selection_records:
                for m in figures.curve_metrics(exp.selection_records):
                    if m == metric or m in ("valid_error", "valid_ppl", "valid_acc"):
                        path = figures.learning_curves(exp.selection_records, m, fig_dir / f"selection_curves_{m}.png",
                                                       title=f"selection trainings: {m}")
                        if path:
                            doc.img(path, f"short trainings of the searched cells: {m} by epoch")
        for c in candidates:
            text = c.get("genotype")
            if not text:
                continue
            seed = c.get("search_seed")
            doc.h(4, f"Search seed {seed}" + (" (chosen)" if seed == chosen else ""))
            doc.code(text)
            if draw:
                for path in figures.cells(text, fig_dir / f"seed-{seed}", title=f"search seed {seed}"):
                    doc.img(path, f"{path.stem.rsplit('_', 1)[-1]} cell found by search seed {seed}")
    elif exp.search_records:
        doc.p("Searches finished; the selection has not run yet.")
        doc.table(["search seed", "genotype"], [[r.get("seed"), r.get("genotype", "")] for r in exp.search_records])


def _provenance(doc: Doc, exp: Experiment, results_dir: Path):
    runs = [("train", r) for r in exp.records] + [("search", r) for r in exp.search_records] \
        + [("selection", r) for r in exp.selection_records]
    if not runs:
        return
    doc.h(3, "Provenance of every run")
    rows = []
    shown = set(exp.primary_metrics())  # the final trainings: the paper's metrics; other parts: all
    for part, r in runs:
        final = ", ".join(f"{k}={fmt_num(number(v))}" for k, v in (r.get("final") or {}).items()
                          if number(v) is not None
                          and k not in aggregate.BOOKKEEPING and (part != "train" or k in shown))
        if r.get("_excluded"):
            final = f"excluded: {'; '.join(r['_excluded'])}"
        commit = str(r.get("git_commit", "—"))
        short = commit[:12] + ("-dirty" if commit.endswith("-dirty") else "")
        try:
            where = Path(os.path.relpath(r["_dir"], results_dir)).as_posix()
        except (KeyError, ValueError):
            where = "—"
        params = r.get("parameters")
        rows.append([part, r.get("seed"), final, f"{params:,}" if isinstance(params, int) else "—",
                     fmt_duration(r.get("wall_time_s")), short, r.get("device", "—"), r.get("torch", "—"),
                     r.get("python", "—"), r.get("platform", "—"), f"`{where}`"])
    doc.table(["part", "seed", "final", "parameters", "wall time", "commit", "device", "torch", "python",
               "platform", "record"], rows)


def _targets_section(doc: Doc, targets: Dict[str, Any]):
    if not targets["targets"]:
        return
    doc.h(2, "Paper targets and their sources")
    rows = []
    for key, spec in targets["targets"].items():
        metrics = "; ".join(f"{m} {fmt_paper(v, spec.get('n_stated'))}" for m, v in spec.get("metrics", {}).items())
        rows.append([key, spec.get("title", ""), metrics, spec.get("source", ""), spec.get("where", ""),
                     "yes" if spec.get("verified") else "NO", spec.get("note", "")])
        for rep in spec.get("reproductions", []):
            metrics = "; ".join(f"{m} {fmt_paper(v)}" for m, v in rep.get("metrics", {}).items())
            rows.append([f"{key} (reproduction)", rep.get("title", ""), metrics, rep.get("source", ""),
                         rep.get("where", ""), "yes" if rep.get("verified") else "NO", rep.get("note", "")])
    doc.table(["target", "what", "published", "source", "where", "verified", "note"], rows)
    sources = targets.get("sources", {})
    if sources:
        doc.items([f"`{k}`: {v.get('citation', '')} {v.get('url', '')}".strip() for k, v in sources.items()])


# --------------------------------------------------------------------------------------------------


def build(results_dir, targets: Dict[str, Any], fig_root: Path, draw: bool = True) -> Doc:
    results_dir = Path(results_dir)
    experiments = []
    for path in aggregate.find_experiments(results_dir):
        try:
            experiments.append(aggregate.load_experiment(path))
        except aggregate.MixedConfigError as e:
            raise aggregate.MixedConfigError(f"{path}: {e}") from None
    doc = Doc()
    doc.h(1, "DARTS reproduction report")
    doc.p(f"Generated by `{GENERATED_BY}` from the records under `{results_dir.as_posix()}`; do not "
          "edit by hand, rerun the command. Every number of ours comes from a finished `record.json` "
          "(listed under each experiment); published figures come from `paper.json` with their sources at the end.")
    doc.p("Statistics: mean, sample standard deviation (n - 1), and the t-based 95 % confidence interval of the "
          "mean over seeds. Against a published mean, std and n: Welch's t-test; against a single published "
          "figure: a one-sample t-test of our runs. Verdict at p < 0.05: better / worse (lower is better), else "
          "consistent; one run alone is not tested.")
    _summary_section(doc, experiments, targets, results_dir)
    if not experiments:
        doc.p("No experiment found: run one (e.g. `python -m reproduce demo`) and rerun this command.")
    # An experiment with nothing finished (no run, search or selection training) measured nothing: one line
    # here, not a section of empty tables.
    measured = [e for e in experiments if e.records or e.search_records or e.selection_records]
    pending = [e for e in experiments if e not in measured]
    if pending:
        doc.p("No finished run yet: " + "; ".join(_pending_line(e, results_dir) for e in pending) + ".")
    for exp in measured:
        _experiment_section(doc, exp, targets, results_dir, fig_root, draw)
    _targets_section(doc, targets)
    return doc


# Every report names its generator in its first paragraph: a file without it is never written over.
GENERATED_BY = "python -m reproduce report"
ELSEWHERE = "write the report to another path (`python -m reproduce report DIR --out PATH`)"


def report_path(results_dir, fmt: str = "markdown") -> Path:
    return Path(results_dir) / ("REPORT.md" if fmt == "markdown" else "REPORT.tex")


def check_ours(out: Path, fig_root: Optional[Path]) -> None:
    """FileExistsError unless the report ``out`` and its ``fig_root`` are absent or were written by a report."""
    if out.is_file():
        with open(out, "rb") as f:
            head = f.read(4096).decode("utf-8", "replace")
        if GENERATED_BY not in head:
            raise FileExistsError(f"{out} exists and was not written by `{GENERATED_BY}`; it is never written over: "
                                  f"move it away, or {ELSEWHERE}")
    elif out.exists():
        raise FileExistsError(f"{out} exists and is not a report file: {ELSEWHERE}")
    elif fig_root is not None and fig_root.is_dir() and any(fig_root.iterdir()):
        raise FileExistsError(f"{fig_root} holds files, but there is no report beside it ({out.name}) that wrote them; "
                              f"they are never written over: move them away, or {ELSEWHERE}")


def write_report(results_dir="results", out=None, fmt: str = "markdown", paper=None,
                 with_figures: bool = True) -> Path:
    """(Re)generate the report over every experiment under ``results_dir``; returns the file written.

    ``out`` defaults to ``results_dir/REPORT.md`` (``REPORT.tex`` for ``fmt="latex"``); figures go to
    ``figures/`` beside it. ``paper`` is the paper.json to compare with (default:
    ``results_dir/paper.json`` if there is one, else the project's ``results/paper.json``); the targets of
    paper.json files deeper in the tree (an experiment's own, like the demo's) are added to it.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise FileNotFoundError(f"results directory {results_dir} does not exist; run an experiment first "
                                "(e.g. `python -m reproduce demo`) or pass the directory that holds the results")
    out = Path(out) if out is not None else report_path(results_dir, fmt)
    paper_path = paper if paper is not None else aggregate.default_paper_path(results_dir)
    targets = aggregate.merge_nested_targets(aggregate.load_targets(paper_path), results_dir, skip=paper_path)
    base = out.resolve().parent
    check_ours(out, base / "figures" if with_figures else None)
    doc = build(results_dir, targets, base / "figures", draw=with_figures)
    text = render_markdown(doc, base) if fmt == "markdown" else render_latex(doc, base)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, text)
    log.info("wrote %s", out)
    return out
