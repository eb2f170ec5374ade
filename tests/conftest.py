"""Shared fixtures: where the reference data from the original implementation lives.

The reference files (../shared/reference, beside the repository) were produced by running the
original DARTS code (quark0/darts, commit f276dd3). Set DARTS_REFERENCE_DIR to use another copy.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from child_bounds import bounded_here

REPO_ROOT = Path(__file__).resolve().parent.parent

# tests/genotypes, tests/zoo and tests/reproduce carry the packages' names. pytest puts tests/ on sys.path,
# and an editable install (README's) resolves the packages through a finder that runs after the path
# finder, so `import genotypes` would find tests/genotypes as an empty namespace package. With the
# repository root on sys.path the real (regular) packages win over such namespace directories.
if str(REPO_ROOT) not in sys.path:
    sys.path.append(str(REPO_ROOT))


def pytest_configure(config):
    # Under pytest-xdist, share the cores among the workers instead of oversubscribing them.
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
@pytest.fixture(autouse=True)
def _hostile_input_bounds(request):
    """A test marked ``bounded`` (the hostile-input tests: ``pytestmark = pytest.mark.bounded``) fails when it runs
    longer than 30 s of wall time or grows the peak RSS of this process by more than 1.2 GB (tests/child_bounds.py
    bounds the refusals made in child processes the same way)."""
    marker = request.node.get_closest_marker("bounded")
    if marker is None:
        yield
        return
    with bounded_here(request.node.nodeid, **marker.kwargs):  # bounded(seconds=..., rss_mb=...): other bounds
        yield


_EXPECTED_FILES = (
    "cnn_manifests.json", "rnn_manifest.json", "param_counts.json", "cifar_small.pt", "imagenet_small.pt",
    "ptb_small.pt", "genotype_parse_cases.json", "rnn_genotype_parse_cases.json",
)


def _locate_reference() -> Path:
    env = os.environ.get("DARTS_REFERENCE_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "reference"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The directory of reference data; fails (never skips) when it is not there."""
    path = _locate_reference()
    missing = [name for name in _EXPECTED_FILES if not (path / name).is_file()]
    if missing:
        pytest.fail(
            f"reference data not found: {path} lacks {', '.join(missing)}. The tests expect the shared "
            "reference files at ../shared/reference next to the repository (or set DARTS_REFERENCE_DIR).",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def load_json(reference_dir):
    """``load_json(name)`` reads one reference JSON file."""

    def load(name: str):
        with open(reference_dir / name, encoding="utf-8") as f:
            return json.load(f)

    return load


@pytest.fixture(scope="session")
def load_pt(reference_dir):
    """``load_pt(name)`` reads one reference torch file, without unpickling code."""
    import torch

    def load(name: str):
        return torch.load(reference_dir / name, weights_only=True, map_location="cpu")

    return load
