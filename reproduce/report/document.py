"""A tiny document model (headings, paragraphs, lists, tables, images, code), rendered as GitHub markdown or
LaTeX: the report's sections fill a :class:`Doc`, and the format is chosen only when it is written."""
from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any, List, Sequence

from tabulate import tabulate

from .formatters import PM


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

    def rebase_images(self, old: Path, new: Path):
        """Images drawn under ``old`` are shown from ``new`` (where the report moves them once it is built)."""
        self.blocks = [("img", Path(new) / b[1].relative_to(old), b[2]) if b[0] == "img" and b[1].is_relative_to(old)
                       else b for b in self.blocks]



def render_markdown(doc: Doc, base: Path) -> str:
    out: List[str] = []
    for block in doc.blocks:
        tag = block[0]
        if tag == "h":
            out.append("#" * block[1] + " " + block[2])
        elif tag == "p":
            out.append(block[1])
        elif tag == "list":
            out.append("\n".join(f"- {item}" for item in block[1]))
        elif tag == "table":
            rows = [[str(c).replace("|", "\\|").replace("\n", " ") for c in r] for r in block[2]]
            out.append(tabulate(rows, headers=block[1], tablefmt="github", disable_numparse=True))
        elif tag == "img":
            rel = Path(os.path.relpath(block[1], base)).as_posix()
            out.append(f"![{block[2]}]({rel})")
        elif tag == "code":
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
        tag = block[0]
        if tag == "h":
            if block[1] == 1:
                out.append(r"\title{" + latex_escape(block[2]) + r"}\date{}\maketitle")
            else:
                out.append("\\" + sections.get(block[1], "paragraph*") + "{" + latex_escape(block[2]) + "}")
        elif tag == "p":
            out.append(latex_escape(block[1]) + "\n")
        elif tag == "list":
            out.append("\\begin{itemize}\n" + "\n".join(r"\item " + latex_escape(i) for i in block[1])
                       + "\n\\end{itemize}")
        elif tag == "table":
            headers = [latex_escape(h) for h in block[1]]
            rows = [[latex_escape(str(c)) for c in r] for r in block[2]]
            body = tabulate(rows, headers=headers, tablefmt="latex_raw", disable_numparse=True)
            rules = iter(["\\toprule", "\\midrule"])
            lines = body.splitlines()
            last = max(i for i, line in enumerate(lines) if line.strip() == "\\hline")
            body = "\n".join("\\bottomrule" if i == last else next(rules, line) if line.strip() == "\\hline" else line
                             for i, line in enumerate(lines))
            out.append("{\\small\\begin{center}\n\\resizebox{\\linewidth}{!}{%\n" + body + "}\n\\end{center}}")
        elif tag == "img":
            rel = Path(os.path.relpath(block[1], base)).as_posix()
            out.append("\\begin{figure}[h]\\centering\n\\includegraphics[width=0.7\\linewidth]{" + rel + "}\n"
                       "\\caption{" + latex_escape(block[2]) + "}\n\\end{figure}")
        elif tag == "code":
            wrapped = "\n".join(textwrap.fill(line, 100, break_on_hyphens=False) for line in block[1].splitlines())
            out.append("{\\footnotesize\\begin{verbatim}\n" + wrapped + "\n\\end{verbatim}}")
    out.append(r"\end{document}")
    return "\n\n".join(out) + "\n"


