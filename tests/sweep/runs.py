"""Cases of the ``runs`` area: run directories and records."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import List, Optional

from . import cases as _cases
from .cases import REPO, case, fifo, repro, sentinel_absent, user_files
from .cli import _train
from .pickles import _code_payloads, _write, _zip

# --------------------------------------------------------------------------------------------- runs and records


def _demo_copy(d: Path) -> Path:
    res = d / "res"
    for name in ("digits-order2", "digits-random"):
        shutil.copytree(REPO / "results" / "demo" / name, res / name)
    return res


def _json_edit(path: Path, fn) -> None:
    data = json.loads(path.read_text())
    new = fn(data)
    path.write_text(new if isinstance(new, str) else json.dumps(new))


def _report(d: Path, res: Path) -> List[str]:
    return repro("report", res, "--no-figures", "--out", d / "out" / "REPORT.md")


def _no_nan_in_report(d: Path) -> Optional[str]:
    p = d / "out" / "REPORT.md"
    if not p.is_file():
        return None
    for line in p.read_text().splitlines():  # an exclusion may say "test_error is nan, not a finite number"
        if "finite" not in line and re.search(r"(?<![\w.])(nan|inf)(?![\w])", line, re.IGNORECASE):
            return f"the report shows a nan/inf figure (garbage accepted): {line.strip()[:150]}"
    return None


def _add_run_cases() -> None:
    rec = "digits-order2/runs/seed-0/record.json"
    record_edits = {
        "final_nan": lambda r: json.dumps({**r, "final": {k: float("nan") for k in r["final"]}}),
        "final_inf": lambda r: json.dumps({**r, "final": {k: float("inf") for k in r["final"]}}),
        "final_neg": lambda r: {**r, "final": {k: -1.0 for k in r["final"]}},
        "final_huge": lambda r: {**r, "final": {k: 1e308 for k in r["final"]}},
        "final_str": lambda r: {**r, "final": {k: "x" for k in r["final"]}},
        "final_null": lambda r: {**r, "final": None},
        "final_list_1M": lambda r: {**r, "final": [0] * 1_000_000},
        "final_bool": lambda r: {**r, "final": {k: True for k in r["final"]}},
        "seed_x": lambda r: {**r, "seed": "x"}, "seed_null": lambda r: {**r, "seed": None},
        "seed_float": lambda r: {**r, "seed": 1e300}, "seed_neg": lambda r: {**r, "seed": -1},
        "seed_dup": lambda r: {**r, "seed": 1}, "seed_list": lambda r: {**r, "seed": [0] * 1000},
        "status_garbage": lambda r: {**r, "status": "finished\n" * 1000},
        "kind_search": lambda r: {**r, "kind": "search"},
        "config_edited": lambda r: {**r, "config": {**r["config"], "epochs": 400}},
        "config_not_dict": lambda r: {**r, "config": "x"},
        "config_deep": lambda r: json.dumps(r)[:-1] + ', "deep": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "dup_keys": lambda r: json.dumps(r)[:-1] + ', "seed": 7}',
        "invalid_json": lambda r: "{",
        "empty": lambda r: "",
        "list": lambda r: "[]",
        "huge_30MB": lambda r: {**r, "pad": "x" * 30_000_000},
        "curve_nan": lambda r: json.dumps({**r, "curve": [{"epoch": 0, "test_error": float("nan")}] * 10}),
        "genotype_code": lambda r: {**r, "genotype": "__import__('os').system('touch PWNED')"},
        "experiment_other": lambda r: {**r, "experiment": "../../etc"},
    }
    for label, fn in record_edits.items():
        def make(d, fix, fn=fn):
            res = _demo_copy(d)
            _json_edit(res / rec, fn)
            return _report(d, res)
        case(f"runs.report.record.{label}", make, expect="either", names=("{d}",),
             check=lambda d: _no_nan_in_report(d) or sentinel_absent(d))
    exp_edits = {
        "invalid": lambda e: "{", "seeds_x": lambda e: {**e, "seeds": "x"},
        "seeds_1M": lambda e: {**e, "seeds": list(range(1_000_000))},
        "baseline_escape": lambda e: {**e, "baseline": {**e["baseline"], "dir": "../../../../../etc"}},
        "baseline_root": lambda e: {**e, "baseline": {**e["baseline"], "dir": "/"}},
        "baseline_self": lambda e: {**e, "baseline": {**e["baseline"], "dir": "."}},
        "baseline_n_huge": lambda e: {**e, "baseline": {**e["baseline"], "n": 10**12}},
        "profile_paper": lambda e: {**e, "profile": "paper", "comparable": True},
        "genotype_code": lambda e: {**e, "genotype": "__import__('os').system('touch PWNED')"},
        "dup_keys": lambda e: json.dumps(e)[:-1] + ', "experiment": "ptb"}',
        "null": lambda e: "null",
    }
    for label, fn in exp_edits.items():
        def make(d, fix, fn=fn):
            res = _demo_copy(d)
            _json_edit(res / "digits-order2" / "experiment.json", fn)
            return _report(d, res)
        case(f"runs.report.experiment.{label}", make, expect="either", names=("{d}",),
             check=lambda d: _no_nan_in_report(d) or sentinel_absent(d))
    misc = {
        "metrics_nan": lambda res: (res / "digits-order2/runs/seed-0/metrics.jsonl").write_text(
            '{"epoch": 0, "test_error": NaN}\n' * 5),
        "metrics_garbage": lambda res: (res / "digits-order2/runs/seed-0/metrics.jsonl").write_bytes(os.urandom(5000)),
        "record_fifo": lambda res: ((res / rec).unlink(), fifo(res / rec)),
        "record_dir": lambda res: ((res / rec).unlink(), (res / rec).mkdir()),
        "record_dev_zero": lambda res: ((res / rec).unlink(), (res / rec).symlink_to("/dev/zero")),
        "selection_garbage": lambda res: (res / "digits-order2/selection.json").write_text('{"chosen": [1e999]}'),
        "paper_json_nan": lambda res: (res / "paper.json").write_text('{"cifar10": {"test_error": NaN}}'),
        "paper_json_garbage": lambda res: (res / "paper.json").write_text("[" * 100_000),
        "symlink_loop": lambda res: (res / "loop").symlink_to(res),
    }
    for label, fn in misc.items():
        def make(d, fix, fn=fn):
            res = _demo_copy(d)
            fn(res)
            return _report(d, res)
        case(f"runs.report.misc.{label}", make, expect="either", names=("{d}",), check=_no_nan_in_report)
    case("runs.report.out_is_results", lambda d, fix: repro("report", _demo_copy(d), "--no-figures", "--out",
                                                            d / "res" / "digits-order2" / "experiment.json"),
         outputs=(), names=("--out", "experiment.json"))
    case("runs.report.paper_fifo", lambda d, fix: repro("report", _demo_copy(d), "--no-figures", "--out",
                                                        d / "out" / "R.md", "--paper", fifo(d / "p.json")),
         names=("{d}", "--paper"))
    # export of a trained run (fixture "run": one epoch of a tiny network)
    run_edits = {
        "record.status_running": ("record.json", lambda r: {**r, "status": "running"}),
        "record.kind_search": ("record.json", lambda r: {**r, "kind": "search"}),
        "record.dataset_ptb": ("record.json", lambda r: {**r, "dataset": "ptb"}),
        "record.C_huge": ("record.json", lambda r: {**r, "config": {**r["config"], "C": 10**6}}),
        "record.genotype_garbage": ("record.json", lambda r: {**r, "genotype": "Genotype(normal=garbage"}),
        "record.genotype_code": ("record.json", lambda r: {**r, "genotype": "__import__('os').system('touch PWNED')"}),
        "record.final_nan": ("record.json", lambda r: json.dumps({**r, "final": {"test_error": float("nan")}})),
        "record.seed_x": ("record.json", lambda r: {**r, "seed": "x"}),
        "record.invalid": ("record.json", lambda r: "{"),
        "record.dup_keys": ("record.json", lambda r: json.dumps(r)[:-1] + ', "status": "finished"}'),
        "config.C_8": ("config.json", lambda c: {**c, "C": 8}),
        "config.layers_1e6": ("config.json", lambda c: {**c, "layers": 10**6}),
        "config.invalid": ("config.json", lambda c: "{"),
        "config.seed_x": ("config.json", lambda c: {**c, "seed": "x"}),
    }
    for label, (fname, fn) in run_edits.items():
        def make(d, fix, fname=fname, fn=fn):
            run = _run_copy(d)
            _json_edit(run / fname, fn)
            return repro("export", run, "--out", d / "out")
        expect = "either" if label in ("record.seed_x", "config.seed_x") else "refuse"
        case(f"runs.export.{label}", make, expect=expect, names=("{d}/run",), check=sentinel_absent, needs=("run",))
    ckpt = {
        "missing": lambda p: p.unlink(), "empty": lambda p: p.write_bytes(b""),
        "truncated": lambda p: p.write_bytes(p.read_bytes()[:5000]),
        "garbage": lambda p: p.write_bytes(os.urandom(5000)),
        "zip_bomb": lambda p: p.write_bytes(__import__("hostile").zip_bomb(1200)),
        "code_pickle": lambda p: p.write_bytes(_zip(_code_payloads(p.parent.parent)["os_system"])),
        "tuple_key_bomb": lambda p: p.write_bytes(__import__("hostile").zip_file(
            __import__("hostile").shared_tuple_key(60))),
        "fifo": lambda p: (p.unlink(), fifo(p)),
        "dev_zero": lambda p: (p.unlink(), p.symlink_to("/dev/zero")),
    }
    for label, fn in ckpt.items():
        def make(d, fix, fn=fn):
            run = _run_copy(d)
            fn(run / "checkpoint.pt")
            return repro("export", run, "--out", d / "out")
        case(f"runs.export.checkpoint.{label}", make, names=("{d}/run",), check=sentinel_absent, needs=("run",))
    case("runs.export.out_is_run", lambda d, fix: repro("export", _run_copy(d), "--out", d / "run"), outputs=(),
         expect="either", names=("--out", "{d}/run"), needs=("run",))
    case("runs.export.out_is_file", lambda d, fix: (_run_copy(d), _write(d / "f.txt", b"mine"),
                                                     repro("export", d / "run", "--out", d / "f.txt"))[2], outputs=(),
         names=("--out", "{d}/f.txt"), needs=("run",))
    case("runs.export.out_user_dir", lambda d, fix: (_run_copy(d), user_files(d),
                                                      repro("export", d / "run", "--out", d / "user"))[2],
         outputs=(), expect="either", names=("--out", "{d}/user"), needs=("run",))
    case("runs.export.ok", lambda d, fix: repro("export", _run_copy(d), "--out", d / "out"), expect="accept",
         needs=("run",), check=lambda d: None if (d / "out" / "model.safetensors").is_file() else "no model written")
    # resuming a run whose files were edited
    resume = {
        "config_C_8": ("config.json", lambda c: {**c, "C": 8}),
        "config_epochs_str": ("config.json", lambda c: {**c, "epochs": "x"}),
        "config_invalid": ("config.json", lambda c: "{"),
        "metrics_nan": ("metrics.jsonl", None),
        "record_running_nan": ("record.json", lambda r: json.dumps({**r, "status": "running",
                                                                   "final": {"test_error": float("nan")}})),
    }
    for label, (fname, fn) in resume.items():
        def make(d, fix, fname=fname, fn=fn):
            run = _run_copy(d)
            if fn is None:
                (run / fname).write_text('{"epoch": 0, "test_error": NaN, "train_loss": Infinity}\n')
            else:
                _json_edit(run / fname, fn)
            return _train(d, "--epochs", "2", out=run)
        case(f"runs.resume.{label}", make, expect="either", names=("{d}/run",), outputs=("run",), needs=("run",),
             check=lambda d: _finished_finite(d / "run"))


def _finished_finite(run: Path) -> Optional[str]:
    try:
        r = json.loads((run / "record.json").read_text())
    except (OSError, ValueError):
        return None
    if r.get("status") == "finished" and isinstance(r.get("final"), dict):
        import math
        bad = [k for k, v in r["final"].items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            return f"a resumed run finished with non-finite {bad}"
    return None


def _run_copy(d: Path) -> Path:
    shutil.copytree(_cases.FIXTURES / "run", d / "run")
    return d / "run"


