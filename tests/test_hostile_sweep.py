"""Keeps tests/hostile_sweep.py (the package tests/sweep) from rotting: its case list, a fast subset of its cases
(one or two of each area) run through the fork server, and one case through a fresh interpreter. The whole sweep
(several hundred cases, about 15 minutes) is run by hand: ``python tests/hostile_sweep.py``; its last counts are in
tests/hostile_sweep.md.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SWEEP = Path(__file__).resolve().parent / "hostile_sweep.py"
REPO = SWEEP.parents[1]

# Clean today; each stands for a family of the sweep. A change that makes one of them severe fails here.
FAST_SUBSET = [
    "pickles.code.os_system.zip.load",
    "pickles.bomb.tuple_key.zip.convert",
    "pickles.zip.bomb_1200MB.load",
    "saved.json.dup_key_args.load",
    "saved.weights.nan_with_digest.load",
    "cli.train.num-threads.huge",
    "cli.train.config.dup_keys",
    "cli.exp.baseline.1e9",
    "cli.demo.threads.100000",
    "network.load.404.none",
    "network.offline.DARTS_ZOO_OFFLINE.push",
]


def _sweep(*args, timeout=240):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    return subprocess.run([sys.executable, str(SWEEP), *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=str(REPO))


def test_the_sweep_has_its_300_cases_in_every_area():
    r = _sweep("--list", timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    names = r.stdout.splitlines()[:-1]
    assert len(names) == len(set(names)) >= 300
    assert {n.split(".")[0] for n in names} == {"pickles", "saved", "cli", "runs", "network"}
    assert set(FAST_SUBSET) <= set(names)


def test_a_fast_subset_of_the_sweep_is_clean(tmp_path):
    out = tmp_path / "sweep.json"
    only = [a for name in FAST_SUBSET for a in ("--name", name)]
    r = _sweep(*only, "--json", str(out))
    outcomes = json.loads(out.read_text())["outcomes"] if out.is_file() else []
    assert [o["name"] for o in outcomes] == FAST_SUBSET, r.stdout[-3000:] + r.stderr[-3000:]
    bad = {o["name"]: o["reasons"] for o in outcomes if o["category"] != "clean"}
    assert not bad and r.returncode == 0, (bad, r.stdout[-3000:])
    assert all(o["peak_mb"] and o["peak_mb"] < 1200 for o in outcomes)


def test_a_case_runs_the_same_in_a_fresh_interpreter(tmp_path):
    out = tmp_path / "sweep.json"
    r = _sweep("--fresh", "--name", "pickles.code.os_system.zip.convert", "--json", str(out))
    (o,) = json.loads(out.read_text())["outcomes"]
    assert r.returncode == 0 and o["category"] == "clean" and o["rc"] == 2, (o, r.stdout[-2000:])
    assert o["stderr_tail"].startswith("error: ") and "evil.pt" in o["stderr_tail"]
