"""reproduce.report on small synthetic records written into a temporary results directory."""
import errno
import json
import shutil
from pathlib import Path

import pytest

from reproduce import report
from reproduce.__main__ import main
from reproduce.aggregate import MixedConfigError
from reproduce.report import latex_escape, render_markdown, write_report

CNN = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
       "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
       "normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
       "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
       "('max_pool_3x3', 1)], reduce_concat=range(2, 6))")
CNN_B = CNN.replace("dil_conv_3x3", "sep_conv_5x5")
RNN = ("Genotype(recurrent=[('sigmoid', 0), ('relu', 1), ('relu', 1), ('identity', 1), ('tanh', 2), "
       "('sigmoid', 5), ('tanh', 3), ('relu', 5)], concat=range(1, 9))")
PNG = b"\x89PNG\r\n\x1a\n"


def record(seed, final, *, experiment="cifar10", dataset="cifar10", genotype=CNN, kind="train", config=None,
           curve_metric="test_error"):
    value = next(iter(final.values()))
    return {"experiment": experiment, "kind": kind, "dataset": dataset, "genotype": genotype, "seed": seed,
            "config": dict({"seed": seed, "device": "cpu"}, **(config or {})),  # the paper's recipe: no field changed
            "final": final,
            "curve": [{"epoch": e, curve_metric: value + 5.0 / (e + 1) + 0.1 * seed, "train_loss": 2.0 / (e + 1)}
                      for e in range(4)],
            "parameters": 3349342, "wall_time_s": 3725.0, "status": "finished",
            "git_commit": "0123456789abcdef0123456789abcdef01234567", "device": "cpu (x86_64, 2 threads)",
            "torch": "2.14.1", "python": "3.11.9", "platform": "Linux-test"}


def write_runs(root: Path, part: str, records):
    for r in records:
        d = root / part / f"seed-{r['seed']}"
        d.mkdir(parents=True)
        (d / "record.json").write_text(json.dumps(r))


def experiment(root: Path, records, **meta):
    root.mkdir(parents=True)
    m = {"experiment": "cifar10", "dataset": "cifar10", "arch": "DARTS_V2", "genotype": CNN, "profile": "paper",
         "order": 2, "target": "cifar10", "seeds": [r["seed"] for r in records], "search": None}
    m.update(meta)
    (root / "experiment.json").write_text(json.dumps(m))
    write_runs(root, "runs", records)
    return root


def cifar(root: Path, **meta):
    return experiment(root, [record(s, {"test_error": e}) for s, e in [(0, 2.7), (1, 2.8), (2, 2.9)]], **meta)


def test_report_tables_hold_our_numbers_the_paper_and_not_run_rows(tmp_path):
    cifar(tmp_path / "cifar10-darts_v2")
    out = write_report(tmp_path, with_figures=False)
    assert out == tmp_path / "REPORT.md"
    text = out.read_text()
    # ours: 2.80 +/- 0.10 (n=3), CI 2.8 -/+ 4.3027 * 0.1 / sqrt(3); Welch against 2.76 +/- 0.09 (n=10)
    assert "2.80 ± 0.10 (n=3)" in text
    assert "[2.55, 3.05]" in text
    assert "2.76 ± 0.09 (n=10)" in text
    assert "| welch " in text and "consistent" in text
    assert "+0.04" in text
    # paper targets without records
    summary = text.split("## Experiment")[0]
    for key in ("imagenet", "ptb", "ptb-first-order", "wt2", "cifar10-first-order"):
        row = next(line for line in summary.splitlines() if line.startswith(f"| {key} "))
        assert "not run" in row, row
    assert summary.count("not run") >= 2 * 7  # 9 target-metric rows not run, ours and verdict columns
    assert "26.7 (single figure)" in summary and "55.68 (single figure)" in summary  # as published
    assert "3.00 ± 0.14 (n=10, n assumed)" in summary
    # provenance of every run
    assert "0123456789ab" in text and "1:02:05" in text and "cpu (x86_64, 2 threads)" in text
    assert "Linux-test" in text and "2.14.1" in text and "3,349,342" in text
    # the paper targets' sources are listed
    assert "li-talwalkar-2019" in text and "arXiv:1806.09055" in text


def test_no_number_appears_without_a_record(tmp_path):
    root = experiment(tmp_path / "ptb", [], experiment="ptb", dataset="ptb", genotype=RNN, target="ptb",
                      arch="DARTS_V2", seeds=[0, 1])
    (root / "runs" / "seed-0").mkdir(parents=True)  # started, not finished
    text = write_report(tmp_path, with_figures=False).read_text()
    assert "## Experiment `ptb`" not in text  # nothing measured: no section of empty tables
    body = text.split("## Paper targets")[0]
    assert "(n=" not in body.replace("(n=10", "")  # no summary of ours anywhere
    assert "No finished run yet: `ptb` (paper; seeds 0, 1 not finished)." in body  # one line of the summary
    assert "| ptb " in text and "not run" in text


def test_report_draws_curves_distribution_and_cells_as_png(tmp_path):
    if shutil.which("dot") is None:
        pytest.skip("graphviz's dot is not installed")
    cifar(tmp_path / "cifar10-darts_v2")
    text = write_report(tmp_path).read_text()
    fig = tmp_path / "figures" / "cifar10-darts_v2"
    expected = ["curves_test_error.png", "curves_train_loss.png", "final_test_error.png", "cell_normal.png",
                "cell_reduce.png"]
    for name in expected:
        assert (fig / name).read_bytes()[:8] == PNG, name
        assert f"(figures/cifar10-darts_v2/{name})" in text
    (fig / "curves_old_metric.png").write_bytes(PNG)  # a figure no record backs any more
    write_report(tmp_path)
    assert not (fig / "curves_old_metric.png").exists() and (fig / "final_test_error.png").exists()


def test_a_report_that_fails_partway_leaves_nothing_half_written_and_its_rerun_succeeds(tmp_path, monkeypatch):
    cifar(tmp_path / "cifar10-darts_v2")
    real_write = report.atomic_write_text

    def full_disk(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(report, "render_markdown", full_disk)  # after every figure is drawn
    with pytest.raises(OSError):
        write_report(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["cifar10-darts_v2"]  # no figures/, no drawing directory
    monkeypatch.setattr(report, "render_markdown", render_markdown)
    monkeypatch.setattr(report, "atomic_write_text",
                        lambda path, text: full_disk() if path.name == "REPORT.md" else real_write(path, text))
    with pytest.raises(OSError):
        write_report(tmp_path)  # the figures are in place, REPORT.md is not: once refused as someone else's
    assert (tmp_path / "figures" / "cifar10-darts_v2" / "final_test_error.png").is_file()
    monkeypatch.setattr(report, "atomic_write_text", real_write)
    assert "(figures/cifar10-darts_v2/final_test_error.png)" in write_report(tmp_path).read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["REPORT.md", "cifar10-darts_v2", "figures"]


def test_quick_profile_is_labelled_not_comparable_and_not_tested(tmp_path):
    cifar(tmp_path / "quick", profile="quick")
    text = write_report(tmp_path, with_figures=False).read_text()
    assert "not comparable with the paper" in text
    row = next(line for line in text.splitlines() if line.startswith("| cifar10 ") and "quick" in line)
    assert "2.80 ± 0.10 (n=3)" in row and "not comparable" in row and "welch" not in row


def test_search_part_shows_candidates_their_validation_figures_and_the_choice(tmp_path):
    root = cifar(tmp_path / "searched", arch=None, target="cifar10",
                 search={"seeds": [0, 1], "order": 2}, genotype=CNN)
    write_runs(root, "search", [record(s, {"valid_error": 20.0 + s}, kind="search", genotype=g)
                                for s, g in [(0, CNN), (1, CNN_B)]])
    write_runs(root, "selection", [record(s, {"valid_error": v}, genotype=g, config={"epochs": 2},
                                          curve_metric="valid_error")
                                   for s, g, v in [(0, CNN, 9.5), (1, CNN_B, 11.25)]])
    (root / "selection.json").write_text(json.dumps({
        "metric": "valid_error", "chosen": 0,
        "candidates": [{"search_seed": 0, "genotype": CNN, "valid_metric": 9.5},
                       {"search_seed": 1, "genotype": CNN_B, "valid_metric": 11.25}]}))
    text = write_report(tmp_path).read_text()
    section = text.split("Search and selection")[1]
    assert "| 0 " in section and "9.50" in section and "11.25" in section and "yes" in section
    assert "Search seed 1" in section and "sep_conv_5x5" in section
    fig = tmp_path / "figures" / "searched" / "search"
    assert (fig / "selection.png").read_bytes()[:8] == PNG
    assert (fig / "selection_curves_valid_error.png").read_bytes()[:8] == PNG
    if shutil.which("dot"):
        assert (fig / "seed-1_normal.png").exists()
    assert "| search " in text and "| selection " in text  # provenance lists every part


def test_latex_report_is_a_document_with_escaped_tables_and_figures_linked_from_where_it_is(tmp_path):
    cifar(tmp_path / "results" / "cifar10_darts")
    out = write_report(tmp_path / "results", fmt="latex", out=tmp_path / "doc" / "R.tex")
    assert out == tmp_path / "doc" / "R.tex"
    tex = out.read_text()
    assert tex.startswith("\\documentclass") and tex.rstrip().endswith("\\end{document}")
    assert "2.80 $\\pm$ 0.10 (n=3)" in tex
    assert "test\\_error" in tex and "\\begin{tabular}" in tex and "\\hline" not in tex
    assert tex.count("\\toprule") == tex.count("\\midrule") == tex.count("\\bottomrule") == tex.count("{tabular}") / 2
    assert "\\includegraphics[width=0.7\\linewidth]{figures/cifar10_darts/final_test_error.png}" in tex
    assert (tmp_path / "doc" / "figures" / "cifar10_darts" / "final_test_error.png").read_bytes()[:8] == PNG
    assert "95 \\% CI" in tex
    assert write_report(tmp_path / "results", fmt="latex", with_figures=False) == tmp_path / "results" / "REPORT.tex"


def test_latex_escape_handles_specials_code_and_bold():
    assert latex_escape("a_b 5% & `x_y` **B**") == "a\\_b 5\\% \\& \\texttt{x\\_y} \\textbf{B}"


def test_report_refuses_an_experiment_with_mixed_configs_naming_it(tmp_path):
    experiment(tmp_path / "mixed", [record(0, {"test_error": 2.7}),
                                    record(1, {"test_error": 2.8}, config={"epochs": 600})])
    with pytest.raises(MixedConfigError, match=r"mixed.*config\.epochs"):
        write_report(tmp_path, with_figures=False)


def test_demo_experiment_shows_its_references_without_a_paper_test(tmp_path):
    experiment(tmp_path / "demo" / "rnn", [record(s, {"test_ppl": p}, experiment="demo-rnn", dataset="markov",
                                                  genotype=RNN, curve_metric="test_ppl")
                                           for s, p in [(0, 7.5), (1, 7.7)]],
               experiment="demo-rnn", dataset="markov", target=None, profile="demo", genotype=RNN,
               references=[{"label": "entropy-rate bound", "metrics": {"test_ppl": 6.25},
                            "note": "best achievable perplexity of the source"}])
    text = write_report(tmp_path, with_figures=False).read_text()
    assert "paper target: none" in text
    row = next(line for line in text.splitlines() if line.startswith("| entropy-rate bound"))
    assert "6.25" in row and "7.60 ± 0.14 (n=2)" in row and "reference" in row


def test_report_over_a_tree_uses_the_targets_of_nested_paper_json(tmp_path):
    # The demo keeps its own paper.json (a target the project's file lacks); a report over the whole
    # results tree must find it instead of refusing the experiment.
    demo = tmp_path / "demo"
    experiment(demo / "rnn", [record(s, {"test_ppl": p}, experiment="ptb", dataset="markov", genotype=RNN,
                                     curve_metric="test_ppl") for s, p in [(0, 7.5), (1, 7.7)]],
               experiment="ptb", dataset="markov", target="markov-optimum", profile="demo", genotype=RNN, order=1)
    (demo / "paper.json").write_text(json.dumps({"sources": {"markov": {"title": "exact entropy rate"}}, "targets": {
        "markov-optimum": {"title": "best achievable perplexity", "experiment": "ptb",
                           "metrics": {"test_ppl": {"mean": 6.25}}, "source": "markov"}}}))
    cifar(tmp_path / "cifar10-darts_v2")
    text = write_report(tmp_path, with_figures=False).read_text()
    assert "| markov-optimum" in text and "| cifar10 " in text
    (demo / "paper.json").write_text(json.dumps({"targets": {"cifar10": {"metrics": {"test_error": {"mean": 1.0}}}}}))
    with pytest.raises(ValueError, match="cifar10"):
        write_report(tmp_path, with_figures=False)


def test_cli_writes_the_report_and_turns_errors_into_exit_code_2(tmp_path, capsys):
    cifar(tmp_path / "c")
    assert main(["report", str(tmp_path), "--format", "latex", "--no-figures"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "REPORT.tex")
    assert (tmp_path / "REPORT.tex").exists()
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
