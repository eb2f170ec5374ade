"""``python -m reproduce demo``: the paper's whole pipeline, small enough for a laptop CPU.

For conv cells (scikit-learn's 8x8 digits, upscaled into the CIFAR-10 format and read back at 8x8
by the real CIFAR-10 loader) and recurrent cells (a corpus sampled from a seeded Markov source in
the awd-lstm-lm layout, read by the real PTB loader), with first- and second-order search each:
searches with two seeds, a short training from scratch of each derived cell on held-out data, the
better cell chosen, trainings of it from scratch with several seeds, and beside it the random
baseline (cells drawn uniformly from the same space, trained with the same recipe and seeds),
aggregation and a report with figures. Every number is computed; nothing is downloaded.

The sizes are chosen for the searches to learn within a few minutes of CPU: the digits supernet
ends above 80 % validation accuracy (chance: 10 %), the recurrent supernet within 1.3 x the source's
exp(H) in validation perplexity. The recurrent supernet's figure is measured with each state
normalised over the evaluation batch (``valid_bn="batch"``, see ``_RNN_SEARCH``), which the report
says. The sizes are tiny, so the figures are *not* comparable with the paper's: the profile is "demo"
and the report says so. For the text, the best perplexity any model can reach on the source,
exp(entropy rate), is the reference bound the models are compared with.

The runs go side by side in worker processes, one per usable core (``jobs``), one torch thread each
(:mod:`reproduce.run_pool`); the four experiments' pipelines share the pool, and both search orders of
a task share one random baseline (same cells, recipe and seeds), trained once.

Reruns are exact on the same machine: every run is seeded, asks for deterministic kernels
(``deterministic=True``; on a CPU it costs nothing measurable) and runs on one thread, so the numbers
depend neither on ``jobs`` nor on the order in which the pool runs them. Another CPU (or ``threads``)
may change the last digits (float sums in another order).
``fast=True`` (``--fast``) runs the same pipeline at even smaller sizes (the test suite runs it).
"""
from __future__ import annotations

import dataclasses
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional

from zoo.fileio import atomic_write_json, atomic_write_text

from .demo_data import markov_source, write_digits_cifar, write_markov_corpus
from .device import max_threads, pick_device, usable_cores
from .experiments import ExperimentOptions, ExperimentResult, run_experiment
from .layout import CHECKPOINT, RECORD
from .records import is_finished, read_record
from .report import check_ours, report_path, write_report
from .report.formatters import fmt_ours
from .run_pool import RunPool
from .scheduler import results as future_results

log = logging.getLogger(__name__)

DEFAULT_OUT = "runs/demo"


@dataclasses.dataclass
class DemoSizes:
    search_seeds: List[int]
    seeds: List[int]
    baseline: str  # --baseline of every experiment: random:N[:SEED]
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


# Every run is deterministic (see the module docstring); the threads are set by run_demo. The digits are seen
# at 8x8 (their own resolution): on a CPU the supernet's step costs about 4x less than at 32x32.
_CNN_TRAIN = dict(C=8, layers=3, batch_size=32, eval_batch_size=256, auxiliary=False, drop_path_prob=0.0,
                  cutout=False, learning_rate=0.1, image_size=8, deterministic=True)
# A first-order Markov source needs no long context: short sequences (bptt 5) in large batches make each
# step cheap (a step costs per time step, not per sequence).
_RNN_TRAIN = dict(emsize=32, nhid=32, nhidlast=32, batch_size=64, eval_batch_size=64, test_batch_size=64, bptt=5,
                  max_seq_len_delta=5, dropout=0.1, dropouth=0.1, dropoutx=0.1, dropouti=0.1, dropoute=0.0,
                  deterministic=True)
# The searches are a few dozen steps long, so the learning rates are raised (paper: weights 0.025, architecture
# 3e-4 for the conv cell; architecture 3e-3 for the recurrent cell) for the supernet to learn and the cells to
# move visibly away from their random start within them. C=8 learns faster per step than C=4 at the same cost
# (a step of these tiny networks costs per operation, not per channel). The recurrent supernet runs without
# dropout, on sequences of 3 tokens in batches of 128 (a step costs per time step: ~210 steps in 8 epochs), with
# the weight learning rate halved (10; at 20 its validation perplexity jitters by +/- 0.2 from epoch to epoch) and
# the gradient clipped at 0.5 instead of 0.25; its validation perplexity is measured with each state normalised
# over the evaluation batch (valid_bn="batch"): in eval mode the original's one BatchNorm normalises all nine
# states with shared running statistics, and its figure stays near the unigram level (~35) while the same
# supernet, so measured, is within 1.3 x exp(H).
_CNN_SEARCH = dict(C=8, layers=3, batch_size=32, eval_batch_size=256, learning_rate=0.1, arch_learning_rate=0.03,
                   image_size=8, deterministic=True)
_RNN_SEARCH = dict(emsize=32, nhid=32, nhidlast=32, batch_size=128, eval_batch_size=64, bptt=3, dropout=0.0,
                   dropouth=0.0, dropoutx=0.0, dropouti=0.0, dropoute=0.0, learning_rate=10.0, grad_clip=0.5,
                   arch_learning_rate=0.01, valid_bn="batch", deterministic=True)

# One search per order: a search is the demo's most expensive part (a second-order step costs about five
# forward-backward passes of the supernet), and it must be long enough for the supernet to learn. The
# harness's selection among several search seeds runs all the same (over one candidate here; --fast and
# `python -m reproduce cifar10 --search` use several).
FULL = DemoSizes(
    search_seeds=[0], seeds=[0, 1], baseline="random:3", digits_test_fraction=0.2,
    markov=dict(vocab=40, successors=4, mean_sentence=10.0, seed=0),
    markov_tokens=dict(train_tokens=10000, valid_tokens=2000, test_tokens=2000),
    cnn_search=dict(_CNN_SEARCH, epochs=4),
    cnn_selection_epochs=2, cnn_selection=dict(valid_split=300),
    cnn_train=dict(_CNN_TRAIN, epochs=4),
    rnn_search=dict(_RNN_SEARCH, epochs=8),
    rnn_selection_epochs=4,
    rnn_train=dict(_RNN_TRAIN, epochs=8),
)

FAST = DemoSizes(
    search_seeds=[0, 1], seeds=[0, 1], baseline="random:2", digits_test_fraction=0.2,
    markov=dict(vocab=20, successors=3, mean_sentence=8.0, seed=0),
    markov_tokens=dict(train_tokens=1500, valid_tokens=500, test_tokens=500),
    cnn_search=dict(_CNN_SEARCH, epochs=1, C=2, train_examples=64),
    cnn_selection_epochs=1, cnn_selection=dict(valid_split=64),
    cnn_train=dict(_CNN_TRAIN, epochs=1, C=2, limit=128, limit_eval=128),
    rnn_search=dict(_RNN_SEARCH, epochs=1, emsize=8, nhid=8, nhidlast=8, batch_size=16, eval_batch_size=16),
    rnn_selection_epochs=1,
    rnn_train=dict(_RNN_TRAIN, epochs=1, emsize=8, nhid=8, nhidlast=8, batch_size=16, eval_batch_size=16,
                   test_batch_size=16, limit=0, limit_eval=0),
)


@dataclasses.dataclass
class DemoResult:
    out: Path
    results: Dict[str, ExperimentResult]
    sources: dict
    report: Optional[Path]
    wall_time_s: float
    jobs: int = 1
    threads: int = 1


def markov_references(markov_info: dict) -> list:
    """The reference of the Markov experiments (experiment.json "references"): exp(H), a bound of the
    demo's own data, not a published figure; the report shows it without a test."""
    best = markov_info["best_perplexity"]
    return [{
        "label": "reference bound exp(H) of the Markov source",
        "source": "the demo's Markov source (reproduce/demo_data.py), H computed exactly from its transitions",
        "metrics": {"valid_ppl": best, "test_ppl": best},
        "note": f"a bound of the demo's data, not a published figure: no model reaches a perplexity below exp(H) = "
                f"{best:.3f} on average (H = {markov_info['entropy_rate_nats']:.4f} nats/token; the true chain "
                f"scores {markov_info['oracle_perplexity']['test']:.3f} on the test split as sampled)",
    }]


# The demo's own paper.json: no published figure applies to its data, so it has no targets (without it the
# report over the demo's directory would list the paper's CIFAR-10 and PTB targets as "not run").
NO_TARGETS = {
    "about": "python -m reproduce demo: its data are not the paper's, so no published figure applies; the Markov "
             "experiments carry their reference bound exp(H) in experiment.json ('references').",
    "sources": {},
    "targets": {},
}


def _remove_finished_checkpoints(root: Path) -> int:
    """Delete checkpoint.pt of every finished run under ``root`` (kept for unfinished ones, to resume)."""
    removed = 0
    for ckpt in root.rglob(CHECKPOINT):
        record = ckpt.parent / RECORD
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


def _check_out(out: Path, report: bool) -> None:
    """The demo writes into ``out`` (data, .gitignore, runs, report): a new or empty directory, or its own."""
    if out.is_dir() and not (out / "sources.json").is_file():
        held = sorted(p.name for p in out.iterdir())
        if held:
            raise FileExistsError(f"{out} holds files the demo did not write ({', '.join(n[:40] for n in held[:3])}"
                                  f"{', ...' if len(held) > 3 else ''}); give a new or empty --out directory (or "
                                  "the demo's own, to resume)")
    elif out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file; give a new or empty directory")
    if report:
        check_ours(report_path(out), out / "figures")


def run_demo(out=DEFAULT_OUT, fast: bool = False, progress: bool = True, device: str = "cpu",
             keep_checkpoints: bool = False, report: bool = True, jobs: Optional[int] = None,
             threads: int = 1) -> DemoResult:
    """Run the demo into ``out`` (resumable: rerunning skips what is finished); returns what it made.

    ``jobs``: runs side by side, each in its own worker process (default: the cores this process may use on a
    CPU, 1 on another device; 1: every run in this process, one after the other). ``threads``: torch CPU
    threads of each run (default 1: these runs are too small for a second thread to help, see
    :mod:`reproduce.run_pool`). Neither is
    part of a run's identity: a rerun with other values resumes; other ``threads`` change the last digits,
    other ``jobs`` change nothing.
    """
    t0 = time.time()
    out = Path(out)
    # one run per core on a CPU; on a GPU, one run at a time (several would share the one device)
    jobs = (usable_cores() if device == "cpu" else 1) if jobs is None else int(jobs)
    threads = int(threads)
    if jobs < 1 or threads < 1:
        raise ValueError(f"--jobs and --threads must be >= 1, got {jobs} and {threads}")
    if threads > max_threads():
        raise ValueError(f"--threads must be at most {max_threads()} here (4 per usable core, 64 to 1024), got "
                         f"{threads}: more threads than that only exhaust memory")
    if jobs > usable_cores():  # each worker is a process of about 750 MB: more than the cores only swap
        log.warning("--jobs %d: this process may use %d cores, so %d runs go side by side", jobs, usable_cores(),
                    usable_cores())
        jobs = usable_cores()
    pick_device(device)  # an unknown or absent device is one line now, not a traceback in a worker
    _check_out(out, report)
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
                                           "stratified train/test split, written as CIFAR-10 python batches; the "
                                           f"runs read them back at {sizes.cnn_train['image_size']}x"
                                           f"{sizes.cnn_train['image_size']} (image_size)"),
        "text": dict(markov_info, origin="seeded first-order Markov chain, sparse random transitions "
                                         f"({sizes.markov}), written in the awd-lstm-lm layout"),
        "fast": fast,
    }
    atomic_write_json(out / "sources.json", sources)
    atomic_write_json(out / "paper.json", NO_TARGETS)

    size = sizes.cnn_train["image_size"]
    digits_note = (f"DEMO: scikit-learn's 8x8 digits in the CIFAR-10 format, seen at {size}x{size}, tiny networks and "
                   "few epochs; test error in %, NOT comparable with the paper's CIFAR-10 figures")
    markov_note = ("DEMO: corpus sampled from a seeded Markov source (reference bound: perplexity "
                   f"exp(H) = {markov_info['best_perplexity']:.3f}), tiny recurrent cells; NOT comparable with the "
                   "paper's PTB figures")
    runtime = {"num_threads": threads}
    results: Dict[str, ExperimentResult] = {}
    plans = []
    # both search orders of a task train the same random cells with the same recipe and seeds: one baseline
    # directory per task, trained once, serves both experiments
    for order in (2, 1):
        plans.append((f"digits-order{order}", ExperimentOptions(
            experiment="cifar10", search=True, order=order, search_seeds=sizes.search_seeds, seeds=sizes.seeds,
            out=str(out / f"digits-order{order}"), data=str(data / "digits"), device=device, profile=profile,
            train_overrides=dict(sizes.cnn_train, **runtime), search_overrides=dict(sizes.cnn_search, **runtime),
            selection_overrides=dict(sizes.cnn_selection), selection_epochs=sizes.cnn_selection_epochs,
            progress=progress, report=False, target=None, note=digits_note, baseline=sizes.baseline,
            baseline_dir=str(out / "digits-random"))))
    for order in (2, 1):
        plans.append((f"markov-order{order}", ExperimentOptions(
            experiment="ptb", search=True, order=order, search_seeds=sizes.search_seeds, seeds=sizes.seeds,
            out=str(out / f"markov-order{order}"), data=str(data / "markov"), device=device, profile=profile,
            train_overrides=dict(sizes.rnn_train, **runtime), search_overrides=dict(sizes.rnn_search, **runtime),
            selection_epochs=sizes.rnn_selection_epochs, progress=progress, report=False, target=None,
            note=markov_note, baseline=sizes.baseline, baseline_dir=str(out / "markov-random"),
            references=markov_references(markov_info))))
    log.info("demo: %d experiments (search seeds %s, training seeds %s, baseline %s), %d runs at a time, %d torch "
             "threads each", len(plans), sizes.search_seeds, sizes.seeds, sizes.baseline, jobs, threads)
    if jobs == 1:
        for name, options in plans:
            results[name] = run_experiment(options)
    else:
        results = _run_side_by_side(plans, jobs, progress)

    if not keep_checkpoints:
        _remove_finished_checkpoints(out)
    # the experiments as their runs read them: the report renders what the summaries did, reading no record again
    loaded = [r.measured for r in results.values() if r.measured is not None]
    written = write_report(results_dir=str(out), loaded=loaded) if report else None
    return DemoResult(out=out, results=results, sources=sources, report=written, wall_time_s=time.time() - t0,
                      jobs=jobs, threads=threads)


def _run_side_by_side(plans, jobs: int, progress: bool, run=None) -> Dict[str, ExperimentResult]:
    """Every experiment's pipeline in a thread of this process, all their runs in one pool of ``jobs`` worker
    processes (an experiment waits for its search while the others' runs keep the cores busy). ``run``: what
    a worker does with a run (tests)."""
    pool = RunPool(jobs, progress=progress, desc="demo runs", run=run)
    threads = ThreadPoolExecutor(max_workers=len(plans))
    try:
        futures = {name: threads.submit(run_experiment, dataclasses.replace(options, pool=pool, progress=False))
                   for name, options in plans}
        # an experiment that fails stops the demo at once
        return dict(zip(futures, future_results(futures.values())))
    except BaseException:
        pool.close(cancel=True)  # the first error stops the demo: queued runs are dropped, running ones end
        raise
    finally:
        threads.shutdown(wait=True)
        pool.close()


def search_rows(result: DemoResult) -> List[list]:
    """One row per search: its supernet's last validation figure (accuracy for digits, perplexity for text)."""
    rows = []
    best = result.sources["text"]["best_perplexity"]
    for name, res in result.results.items():
        for rec in res.measured.search_records:
            final = rec.get("final") or {}
            if "valid_acc" in final:
                rows.append([name, rec.get("seed"), f"valid_acc {final['valid_acc']:.1f} %", "threshold >= 80 %"])
            elif "valid_ppl" in final:
                rows.append([name, rec.get("seed"), f"valid_ppl {final['valid_ppl']:.3f} "
                                                    f"({final['valid_ppl'] / best:.2f} x exp(H))",
                             f"threshold <= 1.3 x exp(H) = {1.3 * best:.3f}"])
    return rows


def summary_rows(result: DemoResult) -> List[list]:
    """One row per experiment: the chosen cell's validation figure and the final runs' mean +/- std."""
    rows = []
    best = result.sources["text"]["best_perplexity"]
    for name, res in result.results.items():
        sel = res.selection or {}
        chosen = next((c for c in sel.get("candidates", []) if c["search_seed"] == sel.get("chosen")), None)
        for metric, s in res.summary.items():
            ours = fmt_ours(s)  # as the report writes it
            reference = f"reference bound exp(H) = {best:.3f}" if metric.endswith("_ppl") else "-"
            rows.append([name, f"search seed {sel.get('chosen')} ({sel.get('metric')} "
                               f"{chosen['valid_metric']:.3g})" if chosen else "-", metric, ours, reference])
    return rows
