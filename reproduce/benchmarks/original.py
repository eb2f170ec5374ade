"""Load the ORIGINAL DARTS code (quark0/darts) from a user's checkout, for benchmarks only.

Nothing of the original is shipped here: the user points ``--original-src`` at a checkout, e.g.
``git clone https://github.com/quark0/darts /tmp/darts-orig``. Its modules are imported by
their own names (``genotypes``, ``model``, ``utils``...) and removed again afterwards, so that they
never replace this project's modules of the same names, with the smallest shims that let 2018 code
run on today's PyTorch on any device:

- cnn ``utils.drop_path`` allocates its mask with ``torch.cuda.FloatTensor``: the same in-place
  arithmetic with the mask allocated on the input's device;
- cnn ``utils.accuracy`` calls ``.view`` on a non-contiguous tensor, refused since PyTorch 0.4:
  the same computation with ``.reshape``;
- rnn ``utils.mask2d`` calls ``.cuda()``: the same mask, moved to the chosen device;
- rnn ``utils.embedded_dropout`` calls the removed private ``embed._backend.Embedding``: the
  same masked weight through ``F.embedding``.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import sys
import types
from pathlib import Path

import torch
import torch.nn.functional as F

# The original's top-level module names, which would clash with this project's (genotypes) or each other's.
_CLASHING = ("genotypes", "model", "model_search", "architect", "utils", "operations")


@contextlib.contextmanager
def _original_namespace(directory: Path):
    """Import the original's modules from ``directory`` by their own top-level names, and put back
    whatever modules of those names were there before (this project's ``genotypes``) afterwards."""
    saved = {k: sys.modules.pop(k) for k in _CLASHING if k in sys.modules}
    sys.path.insert(0, str(directory))
    try:
        yield
    finally:
        sys.path.remove(str(directory))
        for k in _CLASHING:
            sys.modules.pop(k, None)
        sys.modules.update(saved)


def _check(src, part: str, files=("model.py",)) -> Path:
    if not src:
        raise ValueError("the original's code is needed: give --original-src DIR, a checkout of quark0/darts (e.g. "
                         "git clone https://github.com/quark0/darts DIR)")
    d = Path(src).expanduser() / part
    missing = [f for f in files if not (d / f).is_file()]
    if missing:
        raise FileNotFoundError(f"--original-src {src}: no {part}/{missing[0]} there; point it at a checkout of "
                                "https://github.com/quark0/darts (e.g. git clone it to /tmp/darts-orig)")
    return d


def load_cnn_search(src) -> types.SimpleNamespace:
    """The original cnn search: ``model_search.Network`` and ``architect.Architect``, as written."""
    d = _check(src, "cnn", ("model_search.py", "architect.py"))
    with _original_namespace(d):
        return types.SimpleNamespace(model_search=importlib.import_module("model_search"),
                                     architect=importlib.import_module("architect"))


def load_cnn(src, device) -> types.SimpleNamespace:
    """The original cnn package: ``model.NetworkCIFAR``, ``genotypes``, ``utils`` (shimmed)."""
    d = _check(src, "cnn")
    device = torch.device(device)
    with _original_namespace(d):
        utils = importlib.import_module("utils")

        def drop_path(x, drop_prob):  # the original's in-place math; mask on x's device
            if drop_prob > 0.0:
                keep_prob = 1.0 - drop_prob
                mask = torch.empty(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep_prob)
                x.div_(keep_prob)
                x.mul_(mask)
            return x

        def accuracy(output, target, topk=(1,)):  # the original's, with reshape where .view now fails
            maxk = max(topk)
            batch_size = target.size(0)
            _, pred = output.topk(maxk, 1, True, True)
            correct = pred.t().eq(target.view(1, -1).expand(maxk, -1))
            return [correct[:k].reshape(-1).float().sum(0).mul_(100.0 / batch_size) for k in topk]

        utils.drop_path = drop_path
        utils.accuracy = accuracy
        genotypes = importlib.import_module("genotypes")
        model = importlib.import_module("model")  # imports operations and the shimmed utils
    return types.SimpleNamespace(model=model, genotypes=genotypes, utils=utils)


def load_rnn(src, device) -> types.SimpleNamespace:
    """The original rnn package: ``model.RNNModel``, ``model.DARTSCell``, ``genotypes``, ``utils`` (shimmed)."""
    d = _check(src, "rnn")
    device = torch.device(device)
    with _original_namespace(d):
        utils = importlib.import_module("utils")
        original_mask2d = utils.mask2d

        def mask2d(B, D, keep_prob, cuda=True):  # the original's mask, on the chosen device
            return original_mask2d(B, D, keep_prob, cuda=False).to(device)

        def embedded_dropout(embed, words, dropout=0.1, scale=None):
            weight = embed.weight
            if dropout:
                mask = weight.new_empty((weight.size(0), 1)).bernoulli_(1 - dropout).expand_as(weight) / (1 - dropout)
                weight = mask * weight
            if scale:
                weight = scale.expand_as(weight) * weight
            return F.embedding(words, weight, embed.padding_idx, embed.max_norm, embed.norm_type,
                               embed.scale_grad_by_freq, embed.sparse)

        utils.mask2d = mask2d
        utils.embedded_dropout = embedded_dropout
        genotypes = importlib.import_module("genotypes")
        model = importlib.import_module("model")
    return types.SimpleNamespace(model=model, genotypes=genotypes, utils=utils)


def quiet():
    """The original model constructors print; keep stdout for the benchmark's JSON line."""
    return contextlib.redirect_stdout(io.StringIO())
