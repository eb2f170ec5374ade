"""``bench train`` / ``bench ptb``: full training steps, one JSON line last; the original code when available."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from reproduce.__main__ import main

MIRROR = Path("/work/.mirror/quark0+darts/repo")
COMMON = ["--steps", "1", "--warmup", "0", "--device", "cpu", "--threads", "1", "--json"]


def _last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_bench_train_prints_step_time_throughput_and_memory(capsys):
    assert main(["bench", "train", "--C", "4", "--layers", "3", "--batch", "4", *COMMON]) == 0
    r = _last_json(capsys)
    assert r["sec_per_step"] > 0 and r["images_per_sec"] > 0 and r["peak_memory_mb"] > 0
    assert r["impl"] == "ours" and r["batch"] == 4


def test_bench_ptb_reports_tokens_per_second(capsys):
    assert main(["bench", "ptb", "--ntokens", "50", "--emsize", "8", "--batch", "2", "--bptt", "5", *COMMON]) == 0
    r = _last_json(capsys)
    assert r["tokens_per_sec"] > 0 and r["bptt"] == 5


def test_bench_original_needs_its_source(capsys, tmp_path):
    assert main(["bench", "train", "--impl", "original", *COMMON]) == 2
    assert "--original-src" in capsys.readouterr().err
    assert main(["bench", "train", "--impl", "both", "--original-src", str(tmp_path), *COMMON]) == 2
    assert "quark0/darts" in capsys.readouterr().err


@pytest.fixture(scope="module")
def original_src(tmp_path_factory):
    if not (MIRROR / "HEAD").exists() and not (MIRROR / ".git").exists():
        pytest.skip(f"no checkout of the original DARTS code at {MIRROR}")
    dest = tmp_path_factory.mktemp("darts-orig")
    archive = subprocess.run(["git", "-C", str(MIRROR), "archive", "HEAD", "cnn", "rnn"], capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


@pytest.mark.slow
def test_bench_times_ours_and_the_original_code_in_one_run(original_src, capsys):
    assert main(["bench", "train", "--C", "4", "--layers", "3", "--batch", "4", "--impl", "both",
                 "--original-src", str(original_src), *COMMON]) == 0
    r = _last_json(capsys)
    assert r["original_sec_per_step"] > 0 and r["speedup_vs_original"] > 0
    assert main(["bench", "ptb", "--ntokens", "50", "--emsize", "8", "--batch", "2", "--bptt", "5", "--impl", "both",
                 "--original-src", str(original_src), *COMMON]) == 0
    r = _last_json(capsys)
    assert r["original_tokens_per_sec"] > 0
    import genotypes  # the original's modules of the same names did not replace this project's

    assert hasattr(genotypes, "parse")
