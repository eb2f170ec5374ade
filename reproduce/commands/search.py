"""``python -m reproduce search {cifar10,ptb,imagenet,images,text} --order {1,2} --out DIR --data DIR ...``
(``cifar10 --method pcdarts``: PC-DARTS's recipe; ``imagenet --method pcdarts``: PC-DARTS's ImageNet search)."""
from __future__ import annotations

from ..config import ConfigError, add_config_arguments, naming_config_file, overrides_from_args
from ..tasks import datasets, search

_DESCRIPTIONS = {
    "cifar10": "Conv-cell search on CIFAR-10 (paper section 2, appendix A.1.1; original cnn/train_search.py): "
               "an 8-cell supernet (C=16) trained for 50 epochs on one half of the training set while the "
               "architecture is trained on the other half.",
    "images": "Conv-cell search on your own images: an ImageFolder tree (DIR/train/<class>/*), CIFAR-10 python "
              "batches or torchvision:NAME:ROOT; any number of classes, 1 or 3 channels, any size. The CIFAR-10 "
              "search's values; the two halves are a seeded stratified split (recorded with its digest).",
    "text": "Recurrent-cell search on your own text: a folder of train.txt, valid.txt and test.txt (one sentence a "
            "line); the vocabulary comes from train.txt (unseen words become <unk>; --vocab-size caps it); the PTB "
            "search's values.",
    "imagenet": "PC-DARTS's search directly on ImageNet (the authors' train_search_imagenet.py): 10 % and 2.5 % of "
                "each class of an ImageFolder train/ tree (drawn once, --subset-seed) train the weights and the "
                "architecture; three-conv stem, K=2, batch 1024, lr 0.5 with a 5-epoch warm-up, architecture "
                "updates from epoch 35 (docs/pcdarts.md)",
    "ptb": "Recurrent-cell search on Penn Treebank (original rnn/train_search.py): an 8-step search cell "
           "(emsize = nhid = 300) trained for 50 epochs; architecture batches from the validation split.",
}


def register(sub) -> None:
    parser = sub.add_parser(
        "search", help="DARTS architecture search (conv cells on CIFAR-10, recurrent cells on PTB)",
        description="Run the DARTS search. Each epoch saves the derived genotype, the architecture logits, "
                    "metrics and a checkpoint into --out; rerunning the same command resumes, and a "
                    "finished run is not run again. Example: python -m reproduce search cifar10 --order 2 "
                    "--seed 2 --out runs/search-c10-s2 --data data/cifar10")
    by_dataset = parser.add_subparsers(dest="dataset", required=True, metavar="DATASET")
    for name, cls in datasets("search").items():
        p = by_dataset.add_parser(name, help=_DESCRIPTIONS[name].split(":")[0], description=_DESCRIPTIONS[name])
        p.add_argument("--out", required=True, help="run directory (created; resumed when it holds a run)")
        p.add_argument("--unrolled", action="store_true", help="alias of --order 2 (the original's flag)")
        p.add_argument("--no-progress", action="store_true", help="no progress bars")
        add_config_arguments(p, cls)
        p.set_defaults(func=_run)


def _run(args) -> int:
    overrides = overrides_from_args(args)
    if args.unrolled:
        if overrides.get("order", 2) != 2:
            raise ConfigError("--unrolled means --order 2; drop one of them")
        overrides["order"] = 2
    with naming_config_file(args):
        record = search(args.dataset, overrides, args.out, progress=not args.no_progress)  # the config is built there
    config = record["config"]
    print(f"search {args.dataset} (order {config['order']}, seed {config['seed']}) finished in {args.out}")
    print(f"final: {record['final']}")
    print(f"genotype = {record['genotype']}")
    return 0
