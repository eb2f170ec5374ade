"""``python -m reproduce demo``: the paper's whole pipeline, small enough for a laptop CPU.

For conv cells (scikit-learn's 8x8 digits, upscaled, in the CIFAR-10 format) and recurrent cells
(a corpus sampled from a seeded Markov source in the awd-lstm-lm layout), with first- and
second-order search each: searches with two seeds, a short training from scratch of each
derived cell on held-out data, the better cell chosen, three trainings of it from scratch with
different seeds, aggregation and a report with figures. Every number is computed; nothing is
downloaded. The sizes are tiny, so the figures are *not* comparable with the paper's: the profile
is "demo" and the report says so. For the text, the best perplexity any model can reach on the
source, exp(entropy rate), is the reference the models are compared with.

The default sizes finish in about ten minutes on two CPU cores; ``fast=True`` (``--fast``) runs
the same pipeline at even smaller sizes in about a minute (the test suite runs it).
"""
from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Dict, List, Optional

from zoo.fileio import atomic_write_json, atomic_write_text

from .demo_data import markov_source, write_digits_cifar, write_markov_corpus
from .experiments import ExperimentOptions, ExperimentResult, run_experiment
from .records import is_finished, read_record

log = logging.getLogger(__name__)

MARKOV_TARGET = "markov-source-optimum"


@dataclasses.dataclass
class DemoSizes:
    search_seeds: List[int]
    seeds: List[int]
    digits_test_fraction: float
    markov: dict  # markov_source(...) arguments
    markov_tokens: dict  # train/valid/test tokens
    cnn_search: dict
    cnn_selection_epochs: int
    cnn_selection: dict  # overrides of the selection trainings (valid_split, ...)
    cnn_train: dict
    rnn_search: dict
    rnn_selection_epochs: int
    rnn_train: dict


# One CPU thread per run: these networks are too small to gain from a second thread, and on a busy
# machine two threads per process are several times slower (OpenMP threads waiting on each other).
_CNN_TRAIN = dict(C=4, layers=3, batch_size=32, eval_batch_size=256, auxiliary=False, drop_path_prob=0.0,
                  cutout=False, lr=0.1, num_threads=1)
_RNN_TRAIN = dict(emsize=32, nhid=32, nhidlast=32, batch_size=32, eval_batch_size=16, test_batch_size=16, bptt=20,
                  max_seq_len_delta=5, dropout=0.1, dropouth=0.1, dropoutx=0.1, dropouti=0.1, dropoute=0.0,
                  num_threads=1)
# The searches are a few steps long, so the architecture learning rates are raised (paper: 3e-4 for the
# conv cell, 3e-3 for the recurrent cell) for the cells to move visibly away from their random start.
_CNN_SEARCH = dict(C=4, layers=3, batch_size=16, arch_learning_rate=0.03, num_threads=1)
_RNN_SEARCH = dict(emsize=32, nhid=32, nhidlast=32, batch_size=32, eval_batch_size=16, bptt=20, dropout=0.1,
                   dropouth=0.1, dropoutx=0.1, dropouti=0.1, dropoute=0.0, arch_lr=0.03, num_threads=1)

FULL = DemoSizes(
    search_seeds=[0, 1], seeds=[0, 1, 2], digits_test_fraction=0.2,
    markov=dict(vocab=40, successors=4, mean_sentence=10.0, seed=0),
    markov_tokens=dict(train_tokens=10000, valid_tokens=2000, test_tokens=2000),
    cnn_search=dict(_CNN_SEARCH, epochs=2, train_examples=64),
    cnn_selection_epochs=2, cnn_selection=dict(valid_split=300, limit=600),
    cnn_train=dict(_CNN_TRAIN, epochs=4, limit=1000),
    rnn_search=dict(_RNN_SEARCH, epochs=1),
    rnn_selection_epochs=5,
    rnn_train=dict(_RNN_TRAIN, epochs=15),
)

FAST = DemoSizes(
    search_seeds=[0, 1], seeds=[0, 1], digits_test_fraction=0.2,
    markov=dict(vocab=20, successors=3, mean_sentence=8.0, seed=0),
    markov_tokens=dict(train_tokens=1500, valid_tokens=500, test_tokens=500),
    cnn_search=dict(_CNN_SEARCH, epochs=1, C=2, train_examples=32),
    cnn_selection_epochs=1, cnn_selection=dict(valid_split=64),
    cnn_train=dict(_CNN_TRAIN, epochs=1, C=2, limit=128, limit_eval=128),
    rnn_search=dict(_RNN_SEARCH, epochs=1, emsize=8, nhid=8, nhidlast=8, batch_size=16, bptt=10),
    rnn_selection_epochs=1,
    rnn_train=dict(_RNN_TRAIN, epochs=1, emsize=8, nhid=8, nhidlast=8, limit=0, limit_eval=0),
)


@dataclasses.dataclass
class DemoResult:
    out: Path
    results: Dict[str, ExperimentResult]
    sources: dict
    report: Optional[Path]
    wall_time_s: float


def _targets(markov_info: dict) -> dict:
    best = markov_info["best_perplexity"]
    return {
        "about": "References of the demo (python -m reproduce demo). The demo's data are not the paper's, so "
                 "its runs are compared with what is known about the data, not with the paper: for the Markov "
                 "corpus, exp(entropy rate) is the lowest perplexity any model can reach on average.",
        "sources": {
            "markov-source": {
                "citation": "The demo's seeded first-order Markov source (reproduce/demo_data.py): entropy rate "
                            "H = -sum_i pi_i sum_j P_ij log P_ij computed exactly from its transition matrix.",
                "url": "",
            },
        },
        "targets": {
            MARKOV_TARGET: {
                "title": "Markov source: best achievable perplexity exp(H)",
                "experiment": "ptb",
                "dataset": "ptb",
                "metrics": {"valid_ppl": {"mean": best}, "test_ppl": {"mean": best}},
                "source": "markov-source",
                "where": f"H = {markov_info['entropy_rate_nats']:.6f} nats/token; the true chain scores "
                         f"{markov_info['oracle_perplexity']['test']:.4f} on the test split as sampled",
                "n_stated": True,
                "verified": True,
                "note": "a bound, not a published result: a perfect model of the source reaches it on average",
            },
        },
    }


def _remove_finished_checkpoints(root: Path) -> int:
    """Delete checkpoint.pt of every finished run under ``root`` (kept for unfinished ones, to resume)."""
    removed = 0
    for ckpt in root.rglob("checkpoint.pt"):
        record = ckpt.parent / "record.json"
        if is_finished(read_record(record)):
            ckpt.unlink()
            removed += 1
    return removed


GITIGNORE = """\
# written by `python -m reproduce demo`: data are regenerated, checkpoints are for resuming only
# (the project's top-level .gitignore ignores runs/ directories: the demo's records are results, keep them)
!runs/
data/
slurm/
checkpoint.pt
*.pt
*.tmp
"""


def run_demo(out="results/demo", fast: bool = False, progress: bool = True, device: str = "cpu",
             keep_checkpoints: bool = False, report: bool = True) -> DemoResult:
    """Run the demo into ``out`` (resumable: rerunning skips what is finished); returns what it made."""
    t0 = time.time()
    out = Path(out)
    sizes = FAST if fast else FULL
    profile = "demo"
    data = out / "data"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / ".gitignore", GITIGNORE)

    log.info("demo: writing the digits as CIFAR-10 batches and the Markov corpus under %s", data)
    digits_info = write_digits_cifar(data / "digits", test_fraction=sizes.digits_test_fraction)
    source = markov_source(**sizes.markov)
    markov_info = write_markov_corpus(data / "markov", source, seed=sizes.markov["seed"], **sizes.markov_tokens)
    sources = {
        "images": dict(digits_info, origin="scikit-learn load_digits (8x8, 1797 images), upscaled to 32x32 RGB, "
                                           "stratified train/test split, written as CIFAR-10 python batches"),
        "text": dict(markov_info, origin="seeded first-order Markov chain, sparse random transitions "
                                         f"({sizes.markov}), written in the awd-lstm-lm layout"),
        "fast": fast,
    }
    atomic_write_json(out / "sources.json", sources)
    atomic_write_json(out / "paper.json", _targets(markov_info))

    digits_note = ("DEMO: scikit-learn's 8x8 digits upscaled to 32x32 in the CIFAR-10 format, tiny networks and "
                   "few epochs; test error in %, NOT comparable with the paper's CIFAR-10 figures")
    markov_note = ("DEMO: corpus sampled from a seeded Markov source (best achievable perplexity "
                   f"exp(H) = {markov_info['best_perplexity']:.3f}), tiny recurrent cells; NOT comparable with the "
                   "paper's PTB figures")
    results: Dict[str, ExperimentResult] = {}
    plans = []
    for order in (2, 1):
        plans.append((f"digits-order{order}", ExperimentOptions(
            experiment="cifar10", search=True, order=order, search_seeds=sizes.search_seeds, seeds=sizes.seeds,
            out=str(out / f"digits-order{order}"), data=str(data / "digits"), device=device, profile=profile,
            train_overrides=dict(sizes.cnn_train), search_overrides=dict(sizes.cnn_search),
            selection_overrides=dict(sizes.cnn_selection), selection_epochs=sizes.cnn_selection_epochs,
            progress=progress, report=False, target=None, note=digits_note)))
    for order in (2, 1):
        plans.append((f"markov-order{order}", ExperimentOptions(
            experiment="ptb", search=True, order=order, search_seeds=sizes.search_seeds, seeds=sizes.seeds,
            out=str(out / f"markov-order{order}"), data=str(data / "markov"), device=device, profile=profile,
            train_overrides=dict(sizes.rnn_train), search_overrides=dict(sizes.rnn_search),
            selection_epochs=sizes.rnn_selection_epochs, progress=progress, report=False, target=MARKOV_TARGET,
            note=markov_note)))
    for name, options in plans:
        log.info("demo: %s (search order %d, %d search seeds, %d training seeds)", name, options.order,
                 len(options.search_seeds), len(options.seeds))
        results[name] = run_experiment(options)

    if not keep_checkpoints:
        _remove_finished_checkpoints(out)
    report_path = None
    if report:
        from .report import write_report

        report_path = write_report(results_dir=str(out))
    return DemoResult(out=out, results=results, sources=sources, report=report_path, wall_time_s=time.time() - t0)


def summary_rows(result: DemoResult) -> List[list]:
    """One row per experiment: the chosen cell's validation figure and the final runs' mean +/- std."""
    rows = []
    best = result.sources["text"]["best_perplexity"]
    for name, res in result.results.items():
        sel = res.selection or {}
        chosen = next((c for c in sel.get("candidates", []) if c["search_seed"] == sel.get("chosen")), None)
        for metric, s in res.summary.items():
            ours = f"{s['mean']:.3f}" + (f" +/- {s['std']:.3f}" if s.get("std") is not None else "") + f" (n={s['n']})"
            reference = f"exp(H) = {best:.3f}" if metric.endswith("_ppl") else "-"
            rows.append([name, f"search seed {sel.get('chosen')} ({sel.get('metric')} "
                               f"{chosen['valid_metric']:.3g})" if chosen else "-", metric, ours, reference])
    return rows
