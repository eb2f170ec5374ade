"""Collect the records of an experiment, check they belong together, and set them beside the paper.

An experiment directory (written by ``python -m reproduce cifar10|ptb|imagenet|wt2``) holds::

    experiment.json        {"experiment", "dataset", "arch", "genotype", "profile", "order", "target",
                            "seeds", "search", ...}
    runs/seed-<S>/         training run directories; record.json once finished
    search/seed-<S>/       with --search: the searches
    selection/seed-<S>/    with --search: short trainings of each searched cell
    selection.json         with --search: {"metric", "candidates": [{search_seed, genotype, valid_metric}], "chosen"}

The harness aggregates records, never logs: a run counts once its record.json says
``"status": "finished"``. Records whose configs differ in anything but the seed (and run-time-only
fields such as the device) are refused with :class:`MixedConfigError` naming the fields; so are
records of different profiles.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from . import comparable, random_baseline, stats
from .config import canonical
from .data.split import data_identity
from .jsonfile import read_json
from .layout import EXPERIMENT_FILE, RUNS, SEARCH, SELECTION, SELECTION_FILE
from .records import BOOKKEEPING, Record, load_records, measured, metrics_of
from .rundir import RUNTIME_FIELDS
from .targets import target_key

log = logging.getLogger(__name__)

# Fields a record may differ in without changing what it measures.
SEED_FIELDS = ("seed",)
IGNORED_FIELDS = SEED_FIELDS + tuple(RUNTIME_FIELDS) + ("data_dir", "data_path", "out", "save", "log_dir",
                                                         "report_freq", "log_interval", "launcher")
# Top-level record fields that must agree (the config is compared field by field).
IDENTITY_FIELDS = ("experiment", "kind", "dataset", "genotype")


class MixedConfigError(ValueError):
    """Records that do not belong to one experiment (configs or profiles differ)."""


class ExperimentNotFoundError(FileNotFoundError):
    """A directory without experiment.json."""


# --------------------------------------------------------------------------------------------------
# consistency


def _flatten(d: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _ignored(name: str, ignore: Sequence[str]) -> bool:
    return name in ignore or name.rsplit(".", 1)[-1] in ignore


def record_profile(record: Mapping[str, Any]) -> Optional[str]:
    """The profile a record was made with, if it says (top level or in its config)."""
    profile = record.get("profile")
    if profile is None and isinstance(record.get("config"), Mapping):
        profile = record["config"].get("profile")
    return profile


def _label(record: Mapping[str, Any], index: int) -> str:
    seed = record.get("seed")
    return f"seed {seed}" if seed is not None else f"record {index}"


def _show(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    if len(text) <= 80:
        return text
    digest = hashlib.sha1(text.encode()).hexdigest()[:8]
    return f"{text[:48]}...(sha1 {digest})"


def check_consistent(records: Sequence[Mapping[str, Any]], ignore: Sequence[str] = IGNORED_FIELDS,
                     profile: Optional[str] = None, identity: Sequence[str] = IDENTITY_FIELDS) -> None:
    """Raise :class:`MixedConfigError` unless all records measure the same thing.

    They must agree on the profile (and on ``profile`` when given, e.g. experiment.json's), on
    the ``identity`` fields (experiment, kind, dataset and genotype; searches differ in the genotype
    they found, so theirs is checked without it), and on every config field except the seed and the
    run-time-only fields in ``ignore`` (nested configs are compared field by field, ``a.b``).
    The message names every field that differs and the values each seed has.
    """
    records = list(records)
    profiles = {}
    for i, r in enumerate(records):
        profiles.setdefault(record_profile(r), []).append(_label(r, i))
    named = {p for p in profiles if p is not None}
    if profile is not None:
        named.add(profile)
    if len(named) > 1:
        detail = "; ".join(f"{p}: {', '.join(who)}" for p, who in profiles.items() if p is not None)
        expected = f" (experiment.json says {profile!r})" if profile is not None else ""
        raise MixedConfigError(
            f"records of different profiles cannot be aggregated: field profile differs{expected} ({detail}). "
            "Keep each profile in its own results directory (--out).")
    if len(records) < 2:
        return
    rows = []
    for r in records:
        flat = {k: r.get(k) for k in identity}
        flat["data"] = data_identity(r.get("data"))  # one's own data: the same classes, vocabulary, splits, images
        config = canonical(r.get("config") or {})  # a config saved with the original's field names is ours
        flat.update({f"config.{k}": v for k, v in _flatten(config).items() if not _ignored(k, ignore)})
        rows.append(flat)
    keys = sorted(set().union(*rows))
    differ = {}
    for k in keys:
        values = [row.get(k) for row in rows]
        if any(v != values[0] for v in values[1:]):
            differ[k] = values
    if differ:
        parts = []
        for k, values in differ.items():
            groups: Dict[str, List[str]] = {}
            for i, v in enumerate(values):
                groups.setdefault(_show(v), []).append(_label(records[i], i))
            parts.append(f"{k} (" + "; ".join(f"{v}: {', '.join(who)}" for v, who in groups.items()) + ")")
        raise MixedConfigError(
            f"records differ in more than the seed, so they are not repeats of one experiment: {', '.join(differ)}. "
            f"Values: {' | '.join(parts)}. Move the odd runs to another results directory, or rerun them "
            "with the experiment's config.")


# --------------------------------------------------------------------------------------------------
# loading


def _read_json(path: Path) -> Any:
    return read_json(path, fix="delete it or restore it from the run")


@dataclass
class Experiment:
    """One experiment directory: its experiment.json, finished records and --search parts."""

    path: Path
    meta: Dict[str, Any]
    records: List[Record]
    unfinished: List[str] = field(default_factory=list)
    search_records: List[Record] = field(default_factory=list)
    selection_records: List[Record] = field(default_factory=list)
    selection: Optional[Dict[str, Any]] = None
    rejected: List[Record] = field(default_factory=list)  # files in its run directories that are not records
    baseline: Optional[random_baseline.Baseline] = None  # with --baseline: the random cells' runs

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or self.path.name)

    @property
    def experiment(self) -> str:
        return str(self.meta.get("experiment") or (self.records[0]["experiment"] if self.records else self.name))

    @property
    def dataset(self) -> Optional[str]:
        return self.meta.get("dataset") or (self.records[0].get("dataset") if self.records else None)

    @property
    def profile(self) -> str:
        profile = self.meta.get("profile")
        if profile is None and self.records:
            profile = record_profile(self.records[0])
        return profile or comparable.PAPER_PROFILE

    @property
    def comparable(self) -> bool:
        """Whether the runs used the paper's recipe (profile 'paper', no recipe field changed), so a
        comparison with the paper means something."""
        return self.not_comparable_reason() is None

    def recipe_differences(self) -> Dict[str, Tuple[Any, Any]]:
        """The config fields in which the runs differ from the paper's recipe (:mod:`reproduce.comparable`);
        the search's fields are named ``search.<field>``. The runs of one part share their config
        (:func:`check_consistent`), so the first record of each part speaks for all."""
        out: Dict[str, Tuple[Any, Any]] = {}
        for prefix, records in (("", self.records), ("search.", self.search_records)):
            if records:
                r = records[0]
                found = comparable.recipe_differences(r.get("kind"), r.get("dataset"), r.get("config"))
                out.update({prefix + k: v for k, v in found.items()})
        return out

    def not_comparable_reason(self) -> Optional[str]:
        """Why the runs are not tested against the paper (None when they are): :func:`comparable.not_comparable_reason`
        of the records, or experiment.json's own mark (the plan's decision, e.g. for a changed selection)."""
        reason = comparable.not_comparable_reason(self.profile, self.recipe_differences(), self.dataset)
        if reason is None and self.meta.get("comparable", True) is False:
            reason = f"{EXPERIMENT_FILE} marks it not comparable" + (
                f": {self.meta['recipe_differences']}" if self.meta.get("recipe_differences") else "")
        return reason

    @property
    def genotype(self) -> Optional[str]:
        return self.meta.get("genotype") or (self.records[0].get("genotype") if self.records else None)

    @property
    def seeds(self) -> List[Any]:
        return [r.seed for r in self.records]

    @property
    def usable(self) -> List[Record]:
        """The finished records that enter the statistics (all but the excluded ones)."""
        return [r for r in self.records if r.usable]

    def excluded(self) -> List[Tuple[Any, Path, List[str]]]:
        """(seed, run directory, reasons) of every record left out of the statistics: finished ones with a
        number outside its domain (the search and selection runs' too, whose statistics are their own tables
        and figures), and files that are not records at all."""
        return [(r.seed, r.dir, r.problems)
                for r in self.records + self.search_records + self.selection_records + self.rejected if r.problems]

    def metrics(self) -> List[str]:
        """Final metrics present in the records, the dataset's primary ones first."""
        present: List[str] = []
        for r in self.usable:
            for k in r.get("final") or {}:
                if k not in present and k not in BOOKKEEPING and r.value(k) is not None:
                    present.append(k)
        primary = [m for m in metrics_of(self.dataset) if m in present]
        return primary + sorted(m for m in present if m not in primary)

    def primary_metrics(self) -> List[str]:
        """The metrics the paper reports for this dataset that the records have (all, if none is known)."""
        present = self.metrics()
        primary = [m for m in metrics_of(self.dataset) if m in present]
        return primary or [m for m in present if m.endswith(("_error", "_ppl"))] or present

    def values(self, metric: str) -> List[Tuple[Any, float]]:
        """(seed, value) of a final metric, for the records that have it (excluded ones left out)."""
        return [(r.seed, r.value(metric)) for r in self.usable if r.value(metric) is not None]

    def summary(self, metric: str) -> Optional[Dict[str, Any]]:
        values = [v for _, v in self.values(metric)]
        return stats.summarize(values) if values else None

    def target_key(self, targets: Mapping[str, Any]) -> Optional[str]:
        return target_key(self.meta, targets)


def _check_unique_seeds(records: Sequence[Record], where: Path) -> None:
    seen: Dict[Any, Record] = {}
    for r in records:
        if r.seed in seen:
            raise ValueError(f"seed {r.seed} was run twice under {where} ({seen[r.seed].dir.name} and "
                             f"{r.dir.name}); a seed counts once: remove one of them")
        seen[r.seed] = r


def _read_part(path: Path, required: Sequence[str] = (), known: Mapping[Path, Record] = None
               ) -> Tuple[List[Record], List[str], List[Record]]:
    """(records, unfinished run directories, rejected files) of one part of an experiment directory."""
    found, unfinished = load_records(path, required, known)
    for r in found:
        if r.problems:
            log.warning("%s is excluded from the statistics: %s", r.path, "; ".join(r.problems))
    return [r for r in found if not r.rejected], unfinished, [r for r in found if r.rejected]


def _exclude_overflowing(records: Sequence[Record]) -> None:
    """Exclude the records whose final value, beside the others', makes the statistics exceed the range of a float
    (one seed's perplexity of 1e308 beside 58 and 59: its domain has no upper end, but no mean +/- CI of such
    values means anything). They are listed with the reason, like every excluded record; the others are reported."""
    for metric in sorted({k for r in records if r.usable for k in measured(r.get("final") or {})}):
        usable = [r for r in records if r.usable and r.value(metric) is not None]
        for i in stats.overflowing([r.value(metric) for r in usable]):
            r = usable[i]
            r.problems.append(f"{metric} {r.value(metric):.6g} is so far from the other seeds' that their statistics "
                              "would exceed the range of a float")
            log.warning("%s is excluded from the statistics: %s", r.path, r.problems[-1])


def load_experiment(exp_dir, known: Mapping[Path, Record] = None) -> Experiment:
    """Read an experiment directory: experiment.json, finished records under runs/, (with --search) the search
    records, the selection trainings and selection.json, and (with --baseline) the random cells. ``known``:
    records read already (the launcher's, by resolved path), not read again.

    Raises :class:`ExperimentNotFoundError` without experiment.json and :class:`MixedConfigError`
    when the finished runs are not repeats of one config, or mix profiles.
    """
    path = Path(exp_dir)
    meta_path = path / EXPERIMENT_FILE
    if not meta_path.exists():
        raise ExperimentNotFoundError(
            f"{path} is not an experiment directory (no {EXPERIMENT_FILE}); pass the directory that "
            "`python -m reproduce cifar10|ptb|imagenet|wt2 --out DIR` wrote")
    meta = _read_json(meta_path)
    # every training record must have the metrics the paper reports for its dataset (a run without one, e.g.
    # a diverged LM run whose perplexity overflowed, is excluded)
    records, unfinished, rejected = _read_part(path / RUNS, metrics_of(meta.get("dataset")), known)
    _check_unique_seeds(records, path / RUNS)
    check_consistent(records, profile=meta.get("profile"))
    _exclude_overflowing(records)
    search_records, _, rejected_search = _read_part(path / SEARCH, known=known)
    selection_records, _, rejected_selection = _read_part(path / SELECTION, known=known)
    check_consistent(search_records, profile=meta.get("profile"),
                     identity=tuple(f for f in IDENTITY_FIELDS if f != "genotype"))
    selection = _read_json(path / SELECTION_FILE) if (path / SELECTION_FILE).exists() else None
    if meta.get("seeds") is not None and not isinstance(meta["seeds"], list):
        raise ValueError(f"{meta_path}: seeds is {meta['seeds']!r}, not a list; restore it or delete it")
    return Experiment(path=path, meta=meta, records=records, unfinished=unfinished,
                      search_records=search_records, selection_records=selection_records, selection=selection,
                      rejected=rejected + rejected_search + rejected_selection,
                      baseline=random_baseline.load(random_baseline.root_of(path, meta), known))


def find_experiments(results_dir) -> List[Path]:
    """Every directory under ``results_dir`` (any depth, itself included) holding experiment.json."""
    root = Path(results_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"results directory {root} does not exist; run an experiment first "
                                "(e.g. `python -m reproduce demo`) or pass the directory holding them")
    return sorted(p.parent for p in root.rglob(EXPERIMENT_FILE))


@dataclass
class Comparison:
    """One row of an experiment's table: a published figure and our runs."""

    target: str            # key in paper.json (or the reference's label)
    title: str
    source: str
    metric: str
    paper: Dict[str, Any]  # {"mean", "std"?, "n"?, "unit"?}
    ours: Optional[Dict[str, Any]]
    result: Dict[str, Any]
    role: str = "paper"    # "paper", "related", "reproduction", "reference"
    verified: Optional[bool] = None


def _rows_for(exp: Optional[Experiment], key: str, spec: Mapping[str, Any], role: str,
              title: str, source: str, verified, only_metrics=None) -> List[Comparison]:
    rows = []
    for metric, paper in (spec.get("metrics") or {}).items():
        if only_metrics is not None and metric not in only_metrics:
            continue
        ours = exp.summary(metric) if exp is not None else None
        if exp is not None and not exp.comparable and ours:
            result = {"difference": None, "test": None, "t": None, "df": None, "p": None,
                      "verdict": "not comparable", "reason": exp.not_comparable_reason()}
        else:
            result = stats.compare(ours, paper)
        rows.append(Comparison(key, title, source, metric, dict(paper), ours, result, role, verified))
    return rows


def compare_experiment(exp: Experiment, targets: Mapping[str, Any]) -> List[Comparison]:
    """Rows for an experiment: its paper target, the related targets (e.g. the released model),
    the published reproductions, and any references experiment.json carries (no test for those)."""
    table = targets.get("targets", {})
    rows: List[Comparison] = []
    key = exp.target_key(targets)
    if key is not None:
        target = table[key]
        rows += _rows_for(exp, key, target, "paper", target.get("title", key), target.get("source", ""),
                          target.get("verified"))
        for other in target.get("related", []):
            if other in table:
                t = table[other]
                rows += _rows_for(exp, other, t, "related", t.get("title", other), t.get("source", ""),
                                  t.get("verified"))
        for i, rep in enumerate(target.get("reproductions", [])):
            rows += _rows_for(exp, f"{key}/reproduction-{i}", rep, "reproduction", rep.get("title", rep["source"]),
                              rep.get("source", ""), rep.get("verified"))
    for i, ref in enumerate(exp.meta.get("references") or []):
        for metric, value in (ref.get("metrics") or {}).items():
            paper = dict(value) if isinstance(value, Mapping) else {"mean": float(value)}
            ours = exp.summary(metric)
            result = {"difference": (ours["mean"] - paper["mean"]) if ours else None, "test": None, "t": None,
                      "df": None, "p": None, "verdict": "reference" if ours else "not run",
                      "reason": ref.get("note")}
            rows.append(Comparison(f"reference-{i}", ref.get("label", "reference"), ref.get("source", ""), metric,
                                   paper, ours, result, "reference", None))
    return rows


def coverage(experiments: Iterable[Experiment], targets: Mapping[str, Any]) -> Dict[str, List[Experiment]]:
    """For each paper target, the experiments with finished records compared with it (through
    their own target or a related one); profiles that are not comparable are included too, the
    caller tells them apart with ``Experiment.comparable``."""
    table = targets.get("targets", {})
    out: Dict[str, List[Experiment]] = {k: [] for k in table}
    for exp in experiments:
        if not exp.records:
            continue
        key = exp.target_key(targets)
        if key is None:
            continue
        for k in [key] + list(table[key].get("related", [])):
            if k in out and exp not in out[k]:
                out[k].append(exp)
    return out
