"""Cases of the ``cli`` area: flags and config files of the harness."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Callable, Dict, Tuple

from . import cases as _cases
from .cases import SENTINEL, case, fifo, repro, sentinel_absent, user_files
from .pickles import _bu, _g, _write

# --------------------------------------------------------------------------------------------- the harness CLI

TRAIN_TINY = ["--device", "cpu", "--num-threads", "1", "--epochs", "1", "--C", "4", "--layers", "3", "--batch-size",
              "16", "--eval-batch-size", "24", "--no-auxiliary", "--no-progress"]
SEARCH_TINY = ["--device", "cpu", "--num-threads", "1", "--epochs", "1", "--C", "4", "--layers", "2", "--batch-size",
               "8", "--train-examples", "24", "--image-size", "8", "--no-progress"]
EXP_TINY = ["--device", "cpu", "--runs", "1", "--epochs", "1", "--C", "4", "--layers", "3", "--batch-size", "16",
            "--eval-batch-size", "24", "--no-auxiliary", "--no-cutout", "--no-progress", "--num-threads", "1"]


def _train(d, *extra, out=None):
    return repro("train", "cifar10", "--out", out or d / "out", "--data", _cases.FIXTURES / "cifar",
                 *TRAIN_TINY, *extra)


def _search(d, *extra, out=None):
    return repro("search", "cifar10", "--out", out or d / "out", "--data", _cases.FIXTURES / "cifar",
                 *SEARCH_TINY, *extra)


def _exp(d, *extra, out=None, cmd="cifar10"):
    return repro(cmd, "--dry-run", "--out", out or d / "out", "--data", _cases.FIXTURES / "cifar",
                 *EXP_TINY, *extra)


def _config_files(tiny: bool = False) -> Dict[str, Tuple[Callable[[Path], Path], str]]:
    """Hostile config files. ``tiny``: a JSON object gets the tiny training recipe's fields beside its own (those
    it does not give itself), so that the command line need not override them and a config that is accepted
    trains for seconds."""
    def text(name, content, binary=False):
        def build(d):
            p = d / name
            data = content
            if tiny and not binary and name.endswith(".json") and content.startswith("{"):
                given = set(re.findall(r'"(\w+)"\s*:', content[:10_000]))
                base = {k: v for k, v in dict(data=str(_cases.FIXTURES / "cifar"), num_threads=1, epochs=1, C=4,
                                              layers=3, batch_size=16, eval_batch_size=24, auxiliary=False).items()
                        if k not in given}
                data = "{" + json.dumps(base)[1:-1] + ", " + content[1:]
            p.write_bytes(data if binary else data.encode())
            return p
        return build
    return {
        "dup_keys": (text("c.json", '{"epochs": 1, "epochs": 100000000}'), "refuse"),
        "dup_nested": (text("c.json", '{"epochs": 1, "logger": "", "logger": "wandb"}'), "refuse"),
        "array_2M": (text("c.json", json.dumps({"epochs": [0] * 2_000_000})), "refuse"),
        "array_300k": (text("c.json", json.dumps({"epochs": [0] * 300_000})), "refuse"),
        "deep_100000": (text("c.json", '{"epochs": ' + "[" * 100_000 + "]" * 100_000 + "}"), "refuse"),
        "nan": (text("c.json", '{"learning_rate": NaN}'), "refuse"),
        "inf": (text("c.json", '{"learning_rate": Infinity}'), "refuse"),
        "epochs_str": (text("c.json", '{"epochs": "1"}'), "refuse"),
        "epochs_bool": (text("c.json", '{"epochs": true}'), "refuse"),
        "epochs_null": (text("c.json", '{"epochs": null}'), "refuse"),
        "epochs_float": (text("c.json", '{"epochs": 1.5}'), "refuse"),
        "C_huge": (text("c.json", '{"C": 100000000}'), "refuse"),
        "unknown_field": (text("c.json", '{"epochz": 1}'), "refuse"),
        "not_mapping": (text("c.json", "[1, 2, 3]"), "refuse"),
        "empty": (text("c.json", ""), "refuse"),
        "binary": (text("c.json", os.urandom(2000), binary=True), "refuse"),
        "huge_50MB": (text("c.json", '{"genotype": "' + "x" * 50_000_000 + '"}'), "refuse"),
        "yaml_alias_bomb": (text("c.yaml", "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]"
                                 "\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c]\n"),
                            "refuse"),
        "yaml_python_tag": (text("c.yaml", "epochs: !!python/object/apply:os.system ['touch PWNED']\n"), "refuse"),
        "yaml_dup": (text("c.yaml", "epochs: 1\nepochs: 1000000\n"), "refuse"),
        "yaml_deep": (text("c.yaml", "epochs: " + "[" * 50_000 + "]" * 50_000 + "\n"), "refuse"),
        "data_escape": (text("c.json", '{"data": "/nonexistent/../../etc"}'), "refuse"),
        "is_dir": (lambda d: (d / "cdir.json").mkdir() or d / "cdir.json", "refuse"),
        "missing": (lambda d: d / "nope.json", "refuse"),
        "fifo": (lambda d: fifo(d / "c.json"), "refuse"),
        "dev_zero": (lambda d: (d / "c.json").symlink_to("/dev/zero") or d / "c.json", "refuse"),
    }


def _add_cli_cases() -> None:
    s = None  # noqa: F841
    # train cifar10: integer and float flags
    ints = ["--epochs", "--C", "--layers", "--batch-size", "--eval-batch-size", "--cutout-length", "--image-size",
            "--valid-split", "--limit", "--limit-eval", "--seed", "--num-threads"]
    huge_ok = {"--batch-size", "--eval-batch-size", "--cutout-length", "--limit", "--limit-eval", "--seed"}
    for flag in ints:
        values = {"neg": "-1", "str": "x", "float": "1.5", "nan": "nan", "empty": "", "huge": "99999999999999999999"}
        for label, v in values.items():
            if flag == "--epochs" and label == "huge":
                continue  # a legitimate request for a very long run: checked by the dry runs below
            expect = "either" if (label == "huge" and flag in huge_ok) or (label == "neg" and flag == "--seed") \
                else "refuse"
            case(f"cli.train.{flag[2:]}.{label}", lambda d, fix, flag=flag, v=v: _train(d, flag, v), expect=expect,
                 names=(flag, flag[2:].replace("-", "_")))
    floats = ["--learning-rate", "--momentum", "--weight-decay", "--grad-clip", "--drop-path-prob",
              "--auxiliary-weight"]
    for flag in floats:
        for label, v in {"nan": "nan", "inf": "inf", "neg": "-1", "str": "x", "huge": "1e308"}.items():
            expect = "refuse" if label in ("nan", "inf", "str") or (label == "neg" and flag in (
                "--learning-rate", "--momentum", "--weight-decay", "--drop-path-prob")) or (
                label == "huge" and flag in ("--drop-path-prob", "--momentum", "--learning-rate")) else "either"
            case(f"cli.train.{flag[2:]}.{label}", lambda d, fix, flag=flag, v=v: _train(d, flag, v), expect=expect,
                 names=(flag, flag[2:].replace("-", "_"), "--lr" if flag == "--learning-rate" else flag))
    strings = {
        "device.mps": ("--device", "mps", "refuse"), "device.xpu": ("--device", "xpu", "refuse"),
        "device.cuda99": ("--device", "cuda:99", "refuse"), "device.shell": ("--device", "cpu;touch PWNED", "refuse"),
        "device.empty": ("--device", "", "refuse"), "amp.fp8": ("--amp", "fp8", "refuse"),
        "amp.empty": ("--amp", "", "refuse"), "logger.unknown": ("--logger", "x", "refuse"),
        "logger.path": ("--logger", "wandb,../../x", "refuse"),
        "logger.long": ("--logger", ",".join(["tensorboard"] * 5000), "either"),
        "arch.module": ("--arch", "os.system", "refuse"), "arch.unknown": ("--arch", "NOPE", "refuse"),
        "arch.code": ("--arch", "__import__('os').system('touch PWNED')", "refuse"),
        "genotype.garbage": ("--genotype", "Genotype(normal=garbage", "refuse"),
        "genotype.code": ("--genotype", "__import__('os').system('touch PWNED')", "refuse"),
        "genotype.long": ("--genotype", "Genotype(normal=[" + "('sep_conv_3x3', 0), " * 5000 + "])", "refuse"),
        "genotype.bad_op": ("--genotype", "Genotype(normal=[('os.system', 0)] * 8, normal_concat=range(2, 6), "
                            "reduce=[('os.system', 0)] * 8, reduce_concat=range(2, 6))", "refuse"),
        "profile.unknown": ("--profile", "x", "refuse"), "experiment.long": ("--experiment", "e" * 100_000, "either"),
        "experiment.path": ("--experiment", "../../../../tmp/evil", "either"),
    }
    for label, (flag, v, expect) in strings.items():
        case(f"cli.train.{label}", lambda d, fix, flag=flag, v=v: _train(d, flag, v), expect=expect,
             names=(flag, flag[2:], "genotype", "PWNED"), check=sentinel_absent)
    data_cases = {
        "missing": lambda d: d / "nope", "file": lambda d: _write(d / "f", b"x"),
        "empty_dir": lambda d: (d / "e").mkdir() or d / "e", "dev_null": lambda d: Path("/dev/null"),
        "garbage_batches": lambda d: _garbage_cifar(d),
    }
    for label, build in data_cases.items():
        case(f"cli.train.data.{label}", lambda d, fix, build=build: _train(d, "--data", build(d)),
             names=("{d}", "--data", "data", "/dev/null"))
    # --out: a file, a user's directory, the root
    case("cli.train.out.file", lambda d, fix: (_write(d / "f.txt", b"mine"), _train(d, out=d / "f.txt"))[1],
         outputs=(), names=("{d}/f.txt", "--out"))
    case("cli.train.out.user_dir", lambda d, fix: (user_files(d), _train(d, out=d / "user"))[1], expect="either",
         outputs=("user/config.json", "user/record.json", "user/metrics.jsonl", "user/checkpoint.pt", "user/.lock",
                  "user/RUNNING", "user/BEST"), names=("{d}/user", "--out"))
    case("cli.train.out.root", lambda d, fix: _train(d, out="/"), outputs=(), names=("--out", "/"))
    case("cli.train.out.dev_null", lambda d, fix: _train(d, out="/dev/null"), outputs=(), names=("--out", "/dev/null"))
    for label, (build, expect) in _config_files(tiny=True).items():
        case(f"cli.train.config.{label}", lambda d, fix, build=build: repro(
            "train", "cifar10", "--out", d / "out", "--device", "cpu", "--no-progress", "--config", build(d)),
            expect=expect, names=("{d}", "--config"), check=sentinel_absent)
    case("cli.train.config.overridden_invalid", lambda d, fix: _train(d, "--config", _write(
        d / "c.json", b'{"epochs": "x", "C": 100000000}')), expect="either", names=("{d}", "--config"))
    case("cli.train.genotype_from.missing", lambda d, fix: _train(d, "--genotype-from", d / "nope"), names=("{d}",))
    case("cli.train.genotype_from.file", lambda d, fix: _train(d, "--genotype-from", _write(d / "r", b"x")),
         names=("{d}",))
    case("cli.train.genotype_from.garbage_record", lambda d, fix: _train(d, "--genotype-from", _garbage_search(d)),
         names=("{d}",), check=sentinel_absent)
    # search cifar10
    search_flags = {
        "epochs.neg": ("--epochs", "-1"), "C.huge": ("--C", "1000000"), "layers.0": ("--layers", "0"),
        "steps.100": ("--steps", "100"), "multiplier.0": ("--multiplier", "0"), "train_portion.nan": (
            "--train-portion", "nan"), "train_portion.1.5": ("--train-portion", "1.5"), "train_portion.0": (
            "--train-portion", "0"), "train_examples.neg": ("--train-examples", "-1"), "unrolled_eps.nan": (
            "--unrolled-eps", "nan"), "arch_lr.nan": ("--arch-learning-rate", "nan"), "order.3": ("--order", "3"),
        "method.x": ("--method", "x"), "partial_channels.0": ("--partial-channels", "0"),
        "partial_channels.3": ("--partial-channels", "3"), "max_skip.neg": ("--max-skip", "-1"),
        "early_stop.x": ("--early-stop", "skip:x"), "early_stop.kind": ("--early-stop", "x:1"),
        "bn_groups.0": ("--bn-groups", "0"), "processes.5": ("--processes", "5"), "image_size.7": ("--image-size", "7"),
        "num_threads.100000": ("--num-threads", "100000"), "device.mps": ("--device", "mps"),
        "arch_beta1.2": ("--arch-beta1", "2"), "learning_rate_min.neg": ("--learning-rate-min", "-1"),
    }
    for label, (flag, v) in search_flags.items():
        case(f"cli.search.{label}", lambda d, fix, flag=flag, v=v: _search(d, flag, v),
             names=(flag, flag[2:].replace("-", "_"), flag[2:]))
    case("cli.search.out.file", lambda d, fix: (_write(d / "f.txt", b"mine"), _search(d, out=d / "f.txt"))[1],
         outputs=(), names=("{d}/f.txt", "--out"))
    for label in ("dup_keys", "array_2M", "yaml_python_tag", "nan"):
        build, _ = _config_files()[label]
        case(f"cli.search.config.{label}", lambda d, fix, build=build: _search(d, "--config", build(d)),
             names=("{d}", "--config"), check=sentinel_absent)
    # the experiment commands, dry runs
    exp_flags = {
        "baseline.1e9": (["--baseline", "random:1000000000"], "refuse"),
        "baseline.neg": (["--baseline", "random:-1"], "refuse"), "baseline.x": (["--baseline", "random:x"], "refuse"),
        "baseline.seed_x": (["--baseline", "random:1:x"], "refuse"), "baseline.empty": (["--baseline", "random:"],
                                                                                       "refuse"),
        "baseline.kind": (["--baseline", "sobol:3"], "refuse"), "baseline.extra": (["--baseline", "random:1:2:3"],
                                                                                  "refuse"),
        "runs.100000": (["--runs", "100000"], "refuse"), "runs.neg": (["--runs", "-1"], "refuse"),
        "runs.0": (["--runs", "0"], "refuse"), "runs.x": (["--runs", "x"], "refuse"),
        "seeds.range_1e9": (["--seeds", "0-1000000000"], "refuse"), "seeds.x": (["--seeds", "x"], "refuse"),
        "seeds.neg": (["--seeds", "-1"], "refuse"), "seeds.backwards": (["--seeds", "5-2"], "refuse"),
        "seeds.empty": (["--seeds", ""], "refuse"), "seeds.dup": (["--seeds", "0,0"], "refuse"),
        "gpus.99": (["--gpus", "99"], "either"), "gpus.x": (["--gpus", "x"], "refuse"),
        "gpus.dup": (["--gpus", "0,0"], "refuse"), "search_seeds.x": (["--search", "--search-seeds", "x"], "refuse"),
        "selection_epochs.neg": (["--search", "--selection-epochs", "-1"], "refuse"),
        "order.3": (["--search", "--order", "3"], "refuse"),
        "slurm.time_neg": (["--launcher", "slurm", "--partition", "x", "--time", "-1"], "refuse"),
        "slurm.mem_neg": (["--launcher", "slurm", "--partition", "x", "--mem-gb", "-5"], "refuse"),
        "slurm.array_neg": (["--launcher", "slurm", "--partition", "x", "--array-parallelism", "-1"], "refuse"),
        "slurm.gpus_per_job_neg": (["--launcher", "slurm", "--partition", "x", "--gpus-per-job", "-1"], "refuse"),
        "device.mps": (["--device", "mps"], "either"), "device.cuda": (["--device", "cuda"], "either"),
        "format.xml": (["--format", "xml"], "refuse"), "epochs.1e12": (["--epochs", "1000000000000"], "either"),
        "num_threads.100000": (["--num-threads", "100000"], "refuse"),
        "search_epochs.neg": (["--search", "--search-epochs", "-1"], "refuse"),
        "search_C.huge": (["--search", "--search-C", "100000000"], "refuse"),
        "lr.nan": (["--learning-rate", "nan"], "refuse"), "batch.0": (["--batch-size", "0"], "refuse"),
    }
    for label, (extra, expect) in exp_flags.items():
        case(f"cli.exp.{label}", lambda d, fix, extra=extra: _exp(d, *extra), expect=expect,
             names=tuple(x for x in extra if x.startswith("--")) + tuple(
                 x[2:].replace("-", "_") for x in extra if x.startswith("--")), timeout=60)
    case("cli.exp.out.file", lambda d, fix: (_write(d / "f.txt", b"mine"), _exp(d, out=d / "f.txt"))[1], outputs=(),
         names=("{d}/f.txt", "--out"))
    case("cli.exp.out.user_dir", lambda d, fix: (user_files(d), _exp(d, out=d / "user"))[1], expect="either",
         outputs=(), names=("{d}/user", "--out"), timeout=60)
    case("cli.exp.data.missing", lambda d, fix: _exp(d, "--data", d / "nope"), names=("{d}", "--data"))
    case("cli.exp.data.file", lambda d, fix: _exp(d, "--data", _write(d / "f", b"x")), names=("{d}", "--data"))
    case("cli.exp.genotype.garbage_file", lambda d, fix: _exp(d, "--genotype", _write(d / "g.txt", os.urandom(3000))),
         names=("{d}", "--genotype", "genotype"))
    case("cli.exp.genotype.huge_file", lambda d, fix: _exp(d, "--genotype", _write(d / "g.txt", b"x" * 50_000_000)),
         names=("{d}", "--genotype", "genotype"))
    case("cli.exp.genotype.fifo", lambda d, fix: _exp(d, "--genotype", fifo(d / "g.txt")),
         names=("{d}", "--genotype", "genotype"))
    for label in ("dup_keys", "array_2M", "yaml_alias_bomb", "fifo"):
        build, _ = _config_files()[label]
        case(f"cli.exp.config.{label}", lambda d, fix, build=build: _exp(d, "--config", build(d)),
             names=("{d}", "--config"))
    for cmd in ("ptb", "imagenet", "wt2"):
        case(f"cli.exp.{cmd}.data_missing", lambda d, fix, cmd=cmd: repro(cmd, "--dry-run", "--out", d / "out",
                                                                          "--data", d / "nope", "--device", "cpu"),
             names=("{d}", "--data"))
        case(f"cli.exp.{cmd}.runs_x", lambda d, fix, cmd=cmd: repro(cmd, "--dry-run", "--runs", "x", "--out",
                                                                    d / "out"), names=("--runs",))
    # demo: every one of these must be refused before anything runs
    demo = {
        "threads.0": ["--threads", "0"], "threads.neg": ["--threads", "-1"], "threads.100000": ["--threads", "100000"],
        "threads.x": ["--threads", "x"], "threads.nan": ["--threads", "nan"], "threads.float": ["--threads", "1e3"],
        "jobs.0": ["--jobs", "0"], "jobs.neg": ["--jobs", "-1"], "jobs.x": ["--jobs", "x"],
        "jobs.64_threads0": ["--jobs", "64", "--threads", "0"], "jobs.64_mps": ["--jobs", "64", "--device", "mps"],
        "jobs.64_threads_huge": ["--jobs", "64", "--threads", "100000"],
        "device.mps": ["--device", "mps"], "device.x": ["--device", "x"], "device.cuda": ["--device", "cuda"],
    }
    for label, extra in demo.items():
        case(f"cli.demo.{label}", lambda d, fix, extra=extra: repro("demo", "--out", d / "out", "--fast",
                                                                    "--no-progress", *extra),
             names=tuple(x for x in extra if x.startswith("--")))
    case("cli.demo.out.file", lambda d, fix: (_write(d / "f.txt", b"mine"), repro(
        "demo", "--out", d / "f.txt", "--fast", "--threads", "0"))[1], outputs=(), names=("--threads", "{d}/f.txt"))
    case("cli.demo.out.user_dir", lambda d, fix: (user_files(d), repro(
        "demo", "--out", d / "user", "--fast", "--device", "mps"))[1], outputs=(), names=("--device", "mps"))


def _garbage_cifar(d: Path) -> Path:
    root = d / "g"
    b = root / "cifar-10-batches-py"
    b.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        (b / name).write_bytes(b"\x80\x02" + _g("os", "system") + _bu(f"touch {d / SENTINEL}") + b"\x85R.")
    return root


def _garbage_search(d: Path) -> Path:
    r = d / "search"
    r.mkdir()
    (r / "record.json").write_text(json.dumps({"status": "finished", "kind": "search", "dataset": "cifar10",
                                               "genotype": "__import__('os').system('touch PWNED')", "seed": "x"}))
    (r / "config.json").write_text("{}")
    return r


