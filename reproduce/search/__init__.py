"""DARTS architecture search: conv cells on CIFAR-10, recurrent cells on PTB, first and second order; and
PC-DARTS's (``method='pcdarts'``: partial channels and edge normalisation, docs/pcdarts.md), on CIFAR-10
and directly on ImageNet (``search("imagenet", ...)`` with an ImageFolder tree); DARTS on one's own images
(``search("images", ...)``) and text (``search("text", ...)``), docs/own-data.md.

>>> from reproduce.search import search, SEARCH_CONFIGS
>>> cfg = SEARCH_CONFIGS["cifar10"](order=2, seed=2)  # the paper's values otherwise
>>> record = search("cifar10", cfg, "runs/search-c10-s2")  # doctest: +SKIP
>>> record["genotype"]  # doctest: +SKIP
"Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=range(2, 6), ...)"

Command line: ``python -m reproduce search {cifar10,ptb,imagenet,images,text} --order {1,2} --out DIR --data DIR``
and ``python -m reproduce plot-search DIR``; speed: ``python -m reproduce bench search``.

The run directory holds ``config.json``, ``metrics.jsonl`` (per epoch: ``lr``, ``train_loss``,
``valid_loss`` and ``train_acc``/``valid_acc`` in percent for CIFAR-10, ``train_ppl``/``valid_ppl``
for PTB, the derived ``genotype``, ``time_s``), ``genotypes.jsonl`` and ``alphas.jsonl`` (the
genotype and the architecture logits with their softmax after every epoch; epoch -1 is the
initialisation), ``checkpoint.pt`` and, when finished, ``record.json``.

Modules: :mod:`.config` (configs, the paper's defaults; PC-DARTS's recipes), :mod:`.cnn_supernet` (the conv
supernet, DARTS's and PC-DARTS's) and :mod:`.rnn_supernet`, :mod:`.imagenet` (the ImageNet search's per-class
subsets), :mod:`.architect` (first- and second-order architecture
gradients), :mod:`.data` (data on the device), :mod:`.loop` (the searchers and the search task of the runner),
:mod:`.plots` (pictures of a run). ``search`` and ``SEARCH_CONFIGS`` (dataset -> config class) come from the
table of tasks, :mod:`reproduce.tasks`.
"""
from .config import CIFAR10SearchConfig, ImageSearchConfig, PTBSearchConfig, TextSearchConfig

__all__ = ["search", "SEARCH_CONFIGS", "CIFAR10SearchConfig", "PTBSearchConfig", "ImageSearchConfig",
           "TextSearchConfig"]


def __getattr__(name: str):
    if name in ("search", "SEARCH_CONFIGS"):
        # reproduce.tasks (the table of tasks) imports this package's modules: imported at the top it would be a cycle
        from .. import tasks

        return tasks.search if name == "search" else tasks.datasets("search")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
