"""PC-DARTS in the search: the supernet, the derivation and the search loop equal the authors' code.

The authors' code (github.com/yuhuixu1993/PC-DARTS, commit b74702f) is not part of this repository: what it
computes on scripted inputs is kept as facts in tests/reproduce/data/pcdarts_*.json; pcdarts_facts.py says
how they were produced and holds the inputs and digests both sides use.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from pcdarts_facts import ARCH_NAMES, ScriptedData, batches, facts_of, seeded_arch, seeded_weights

import genotypes
from reproduce import config as run_config
from reproduce.search.cnn_supernet import Network, channel_shuffle, node_softmax
from reproduce.search.config import CIFAR10SearchConfig
from reproduce.search.loop import CNNSearch

DATA = Path(__file__).parent / "data"


pytestmark = pytest.mark.usefixtures("single_thread")


def _facts(name: str) -> dict:
    return json.loads((DATA / name).read_text())


def _close(ours, theirs, what, rtol=1e-9, atol=1e-11):
    torch.testing.assert_close(torch.tensor(ours, dtype=torch.float64), torch.tensor(theirs, dtype=torch.float64),
                               rtol=rtol, atol=atol, msg=what)


def _scripted_searcher(case: dict, config: CIFAR10SearchConfig, searcher_class=CNNSearch):
    """The searcher of ``config`` in float64 with the facts' weights, architecture and batches."""
    searcher = searcher_class(config, torch.device("cpu"), load_data=False)
    searcher.model.double()
    seeded_weights(searcher.model.named_parameters(), case["weight_seed"])
    k, n = searcher.model.alpha_shape
    for a, start in zip(searcher.alphas, seeded_arch(k, n, case["arch_seed"])):
        a.data = start.detach().clone()
    steps = batches(case["epochs"] * case["steps_per_epoch"], case["batch"], case["size"], case["classes"],
                    case["data_seed"])
    searcher.data = ScriptedData(steps, case["steps_per_epoch"])
    return searcher


def _check_run_against_facts(searcher, facts: dict, edge_bn_updates: int = 1) -> None:
    """``edge_bn_updates``: the authors' forward updates each edge BatchNorm that many times (their counter
    counts each; ours emulates the statistics with one update of the equivalent momentum and counts one)."""
    from pcdarts_facts import digest

    for row in facts["epochs"]:
        metrics = searcher.train_epoch(row["epoch"], False, None)
        assert metrics["lr"] == pytest.approx(row["lr"], rel=1e-12, abs=1e-15)
        _close(metrics["train_loss"], row["train_loss"], f"train loss, epoch {row['epoch']}")
        for name, a in zip(ARCH_NAMES, searcher.alphas):
            _close(digest(a), row["arch"][name], f"{name} after epoch {row['epoch']}")
    model = searcher.model
    momentum = {n: searcher.w_opt.state[p]["momentum_buffer"] for n, p in model.named_parameters()}
    ours = facts_of(model.state_dict(), searcher.alphas, momentum, [searcher.a_opt.state[a] for a in searcher.alphas])
    theirs = facts["final"]
    assert ours["bn"].keys() == theirs["bn"].keys() and ours["weights"].keys() == theirs["weights"].keys()
    for part in ("weights", "bn", "momentum"):
        for key, value in theirs[part].items():
            if isinstance(value, int):
                per_forward = edge_bn_updates if "._ops." in key and key.startswith("cells.") else 1
                assert ours[part][key] * per_forward == value, key
            else:
                _close(ours[part][key], value, f"{part} {key}")
    for name in ARCH_NAMES:
        _close(ours["arch"][name], theirs["arch"][name], name, rtol=1e-10, atol=1e-13)
    for mine, their in zip(ours["adam"], theirs["adam"]):
        assert mine["step"] == their["step"]
        _close(mine["exp_avg"], their["exp_avg"], "Adam exp_avg", atol=1e-16)
        _close(mine["exp_avg_sq"], their["exp_avg_sq"], "Adam exp_avg_sq", atol=1e-20)
    g = searcher.genotype()
    want = theirs["genotype"]
    assert [list(e) for e in g.normal] == want["normal"] and [list(e) for e in g.reduce] == want["reduce"]
    assert list(g.normal_concat) == want["normal_concat"]


def test_cifar_search_equals_the_authors_train_search_step_by_step_warm_up_included():
    """18 epochs of one step: weights only until epoch 15 (the recipe's arch_start_epoch), then both; the
    authors' train() gave the facts. Checked: the losses of every epoch; the architecture after every epoch
    (unchanged through the warm-up); at the end the weights, BatchNorm statistics, momentum buffers, Adam's
    state and the derived genotype."""
    facts = _facts("pcdarts_cifar.json")
    case = facts["case"]
    config = run_config.build(CIFAR10SearchConfig, dict(method="pcdarts", C=case["C"], layers=case["layers"],
                                                        epochs=case["epochs"], batch_size=case["batch"], device="cpu"))
    recipe = (config.order, config.partial_channels, config.edge_normalization, config.arch_start_epoch)
    assert recipe == (1, 4, True, 15)
    searcher = _scripted_searcher(case, config)
    _check_run_against_facts(searcher, facts)
    warm = [row["arch"] for row in facts["epochs"][:15]]
    assert all(a == warm[0] for a in warm) and facts["epochs"][15]["arch"] != warm[0]


def test_second_order_cifar_search_equals_the_authors_unrolled_architect():
    """The recipe with --order 2 (their --unrolled): the epochs 15-17 of 18, one step each, so every step has a
    second-order architecture step (the first without a momentum buffer); facts of their train() and
    Architect._backward_step_unrolled."""
    facts = _facts("pcdarts_cifar_order2.json")
    case = facts["case"]
    config = run_config.build(CIFAR10SearchConfig, dict(method="pcdarts", order=2, C=case["C"], layers=case["layers"],
                                                        epochs=case["epochs"], batch_size=case["batch"], device="cpu"))
    assert [row["epoch"] for row in facts["epochs"]] == [15, 16, 17]
    _check_run_against_facts(_scripted_searcher(case, config), facts)


def test_imagenet_search_equals_the_authors_train_search_imagenet_step_by_step():
    """7 epochs of two steps with the ImageNet recipe (three-conv stem, K=2, lr 0.5 with the 5-epoch warm-up, arch
    lr 6e-3), architecture updates from epoch 5 (their --begin), and a clip of 0.01 on the weights' and the
    architecture's gradients (their --grad_clip serves both; 0.01 so that both clips act): equal to the facts of
    the authors' train_search_imagenet.py train()."""
    from reproduce.search.config import ImageNetSearchConfig

    facts = _facts("pcdarts_imagenet.json")
    case = facts["case"]
    config = run_config.build(ImageNetSearchConfig, dict(
        C=case["C"], layers=case["layers"], epochs=case["epochs"], batch_size=case["batch"], image_size=case["size"],
        arch_start_epoch=case["begin"], grad_clip=case["grad_clip"], arch_grad_clip=case["grad_clip"], device="cpu"))
    assert (config.learning_rate, config.arch_learning_rate, config.partial_channels, config.lr_warmup_epochs) == (
        0.5, 6e-3, 2, 5)
    searcher = CNNSearch(config, torch.device("cpu"), load_data=False, num_classes=case["classes"])
    assert hasattr(searcher.model, "stem0") and searcher.model.cells[0].preprocess0.__class__.__name__ == \
        "FactorizedReduce"
    searcher = _scripted_searcher(case, config, lambda *a, **k: CNNSearch(*a, **k, num_classes=case["classes"]))
    assert [searcher.lr_at(e) for e in range(5)] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])
    assert config.edge_bn_updates == 2  # their cell runs every mixed op twice per forward
    _check_run_against_facts(searcher, facts, edge_bn_updates=2)


def _tiny(stem="cifar", partial=4, size=8, seed=0):
    torch.manual_seed(seed)
    model = Network(C=8, num_classes=5, layers=3, partial_channels=partial, edge_normalization=True, stem=stem).double()
    arch = seeded_arch(*model.alpha_shape, seed=seed + 1)
    g = torch.Generator().manual_seed(seed + 2)
    x = torch.randn(4, 3, size, size, dtype=torch.float64, generator=g)
    return model, arch, x, torch.randint(0, 5, (4,), generator=g)


@pytest.mark.parametrize("stem,partial,size", [("cifar", 4, 8), ("imagenet", 2, 32)])
def test_fused_pcdarts_forward_and_gradients_equal_the_edge_by_edge_computation(stem, partial, size):
    model, arch, x, y = _tiny(stem, partial, size)
    reference = copy.deepcopy(model)
    grads = []
    for m, ref in ((model, False), (reference, True)):
        loss = F.cross_entropy(m(x, *arch, reference=ref), y)
        grads.append((loss.detach(), torch.autograd.grad(loss, arch + list(m.parameters()))))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-12, atol=1e-12)
    for a, b in zip(grads[0][1], grads[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    assert all(g.abs().sum() > 0 for g in grads[0][1][:4])  # alphas and betas both get gradients
    saved = model.state_dict()  # the shared pool statistics reach every edge, as the edge-by-edge run has them
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(saved[key], value, rtol=1e-12, atol=1e-12, msg=key)


def test_partial_channels_run_the_ops_on_a_quarter_of_the_channels_and_shuffle():
    model = Network(C=8, num_classes=10, layers=3, partial_channels=4, edge_normalization=True)
    edge = model.cells[0]._ops[0]
    assert edge._ops[4].op[1].in_channels == 2  # sep_conv_3x3 of a C=8 normal edge sees 8 / 4 channels
    assert model.cells[1]._ops[0]._ops[3].conv_1.in_channels == 4  # skip of a reduction edge (C=16): FactorizedReduce
    x = torch.arange(8.0).view(1, 8, 1, 1)
    assert channel_shuffle(x, 4).flatten().tolist() == [0, 2, 4, 6, 1, 3, 5, 7]
    assert [tuple(a.shape) for a in model.new_alphas()] == [(14, 8), (14, 8), (14,), (14,)]
    assert model.arch_names == ARCH_NAMES
    w = node_softmax(torch.zeros(14))
    assert torch.allclose(w, torch.tensor([1 / 2] * 2 + [1 / 3] * 3 + [1 / 4] * 4 + [1 / 5] * 5))
    with pytest.raises(ValueError, match="multiple of 2 \\* partial_channels"):
        Network(C=12, partial_channels=4)


def test_the_darts_supernet_is_unchanged_without_the_options():
    model = Network(C=4, num_classes=10, layers=3)
    assert model.arch_names == ARCH_NAMES[:2] and not hasattr(model.cells[0]._ops[0], "mp")
    with pytest.raises(ValueError, match="betas go with edge_normalization"):
        model(torch.randn(2, 3, 8, 8), *model.new_alphas(), torch.zeros(14), torch.zeros(14))


def test_derivation_with_betas_equals_the_authors_genotype_and_betas_can_change_it():
    cases = _facts("pcdarts_derive.json")["cases"]
    changed = 0
    for case in cases:
        an, ar, bn, br = (torch.tensor(case[name]) for name in ARCH_NAMES)
        g = genotypes.derive.cnn(an, ar, betas_normal=bn, betas_reduce=br)
        assert [list(e) for e in g.normal] == case["normal"] and [list(e) for e in g.reduce] == case["reduce"]
        changed += genotypes.derive.cnn(an, ar) != g
    assert changed > 0  # the facts include cases where the edge weights decide
    with pytest.raises(ValueError, match="both betas_normal and betas_reduce"):
        genotypes.derive.cnn(an, ar, betas_normal=bn)
    with pytest.raises(ValueError, match="betas_normal has shape"):
        genotypes.derive.cnn(an, ar, betas_normal=bn[:3], betas_reduce=br)


def test_cli_pcdarts_search_runs_the_recipe_records_betas_and_plots(tmp_path, capsys):
    from search_helpers import tiny_cifar

    from reproduce.__main__ import main
    from reproduce.comparable import recipe_differences
    from zoo.fileio import read_jsonl

    data = tiny_cifar(tmp_path / "cifar")
    out = tmp_path / "run"
    code = main(["search", "cifar10", "--method", "pcdarts", "--out", str(out), "--data", str(data), "--C", "8",
                 "--layers", "3", "--batch-size", "8", "--epochs", "2", "--arch-start-epoch", "1", "--device", "cpu",
                 "--no-progress"])
    assert code == 0
    record = json.loads((out / "record.json").read_text())
    c = record["config"]
    assert record["experiment"] == "search-cifar10-pcdarts-order1"
    assert (c["method"], c["order"], c["partial_channels"], c["edge_normalization"]) == ("pcdarts", 1, 4, True)
    assert (c["learning_rate"], c["learning_rate_min"], c["arch_learning_rate"]) == (0.1, 0.0, 6e-4)
    # set against PC-DARTS's recipe, not DARTS's: only the fields given on the command line differ
    assert set(recipe_differences("search", "cifar10", c)) == {"C", "layers", "batch_size", "epochs",
                                                               "arch_start_epoch"}
    rows = read_jsonl(out / "alphas.jsonl")
    assert set(rows[-1]["logits"]) == set(ARCH_NAMES)
    assert rows[0]["logits"] == rows[1]["logits"] != rows[2]["logits"]  # epoch 0: weights only
    edge_weights = torch.tensor(rows[-1]["softmax"]["betas_normal"])
    assert torch.allclose(edge_weights[:2].sum(), torch.tensor(1.0)) and torch.allclose(edge_weights[9:].sum(),
                                                                                         torch.tensor(1.0))
    final = {k: torch.tensor(v) for k, v in rows[-1]["logits"].items()}
    derived = genotypes.derive.cnn(final["alphas_normal"], final["alphas_reduce"],
                                   betas_normal=final["betas_normal"], betas_reduce=final["betas_reduce"])
    assert genotypes.format(derived) == record["genotype"]
    assert main(["plot-search", str(out)]) == 0
    assert (out / "plots" / "betas_normal.png").is_file()


def test_the_methods_fields_are_checked():
    with pytest.raises(run_config.ConfigError, match="use --method pcdarts"):
        run_config.build(CIFAR10SearchConfig, {"partial_channels": 4})
    with pytest.raises(run_config.ConfigError, match="multiple of 2 \\* partial_channels"):
        run_config.build(CIFAR10SearchConfig, {"method": "pcdarts", "C": 12})
    with pytest.raises(run_config.ConfigError, match="applies the method's recipe"):
        run_config.validate(CIFAR10SearchConfig(method="pcdarts"))
    darts = run_config.build(CIFAR10SearchConfig, {})
    assert (darts.method, darts.partial_channels, darts.edge_normalization, darts.arch_start_epoch) == (
        "darts", 1, False, 0)


def test_class_subsets_draw_each_share_of_every_class_once_disjoint_and_by_the_seed():
    from reproduce.search.imagenet import class_subsets

    targets = [c for c in range(3) for _ in range(40)] + [3] * 80
    train, arch = class_subsets(targets, (0.1, 0.025), seed=0)
    assert [sum(targets[i] == c for i in train) for c in range(4)] == [4, 4, 4, 8]
    assert [sum(targets[i] == c for i in arch) for c in range(4)] == [1, 1, 1, 2]
    assert not set(train) & set(arch) and train == sorted(train)
    assert class_subsets(targets, (0.1, 0.025), seed=0) == [train, arch]
    assert class_subsets(targets, (0.1, 0.025), seed=1) != [train, arch]
    with pytest.raises(ValueError, match="class 0 has 1 images"):
        class_subsets([0, 1, 1], (0.1, 0.025), seed=0)


def test_cli_imagenet_search_runs_on_a_generated_image_folder_with_the_recipe(tmp_path):
    from train_helpers import make_imagefolder

    from reproduce.__main__ import main
    from zoo.fileio import read_jsonl

    folder = make_imagefolder(tmp_path / "imagenet", classes=3, per_class=20)
    out = tmp_path / "run"
    assert main(["search", "imagenet", "--method", "pcdarts", "--data", str(folder), "--out", str(out), "--C", "8",
                 "--layers", "3", "--batch-size", "4", "--image-size", "32", "--epochs", "2", "--arch-start-epoch", "1",
                 "--workers", "0", "--device", "cpu", "--no-progress"]) == 0
    record = json.loads((out / "record.json").read_text())
    c = record["config"]
    assert record["experiment"] == "search-imagenet-pcdarts-order1"
    assert (c["partial_channels"], c["learning_rate"], c["arch_learning_rate"], c["lr_warmup_epochs"]) == (
        2, 0.5, 6e-3, 5)
    assert [row["lr"] for row in read_jsonl(out / "metrics.jsonl")] == pytest.approx([0.1, 0.2])  # warm-up
    subsets = json.loads((out / "subsets.json").read_text())
    assert (subsets["classes"], subsets["train_images"], subsets["arch_images"], subsets["subset_seed"]) == (
        3, 6, 3, 0)
    rows = read_jsonl(out / "alphas.jsonl")
    assert rows[0]["logits"] == rows[1]["logits"] != rows[2]["logits"]


def test_the_papers_random_channel_sampling_keeps_the_other_channels_in_place_and_resumes_exactly():
    from reproduce.search.cnn_supernet import MixedOp

    torch.manual_seed(0)
    x = torch.randn(2, 8, 6, 6)
    none_only = torch.tensor([1.0] + [0.0] * 7)  # the ops' output is zero: what is not sampled shows through
    channels = torch.tensor([1, 6])
    for stride in (1, 2):
        y = MixedOp(8, stride, partial=4)(x, none_only, channels)
        base = x if stride == 1 else torch.nn.functional.max_pool2d(x, 2, 2)
        assert torch.equal(y[:, channels], torch.zeros_like(y[:, channels]))
        keep = [c for c in range(8) if c not in (1, 6)]
        assert torch.equal(y[:, keep], base[:, keep])

    def model():
        torch.manual_seed(3)
        return Network(C=8, num_classes=5, layers=3, partial_channels=4, edge_normalization=True,
                       partial_selection="random", selection_seed=7)

    a, b = model(), model()
    arch = a.new_alphas()
    x = torch.randn(2, 3, 8, 8)
    first = a(x, *arch)
    assert int(a.selection_step) == 1 and not torch.allclose(a(x, *arch), first)  # fresh channels each step
    torch.testing.assert_close(b(x, *arch), first)  # the same seed and step: the same channels
    b.load_state_dict(a.state_dict())  # a resumed run continues with the step count
    torch.testing.assert_close(b(x, *arch), a(x, *arch))
    a.eval()
    a(x, *arch)
    assert int(a.selection_step) == 3  # evaluation draws channels but does not count
    with pytest.raises(ValueError, match="'random' with partial_channels > 1"):
        Network(C=8, partial_selection="random")
    with pytest.raises(run_config.ConfigError, match="partial_selection must be"):
        run_config.build(CIFAR10SearchConfig, {"method": "pcdarts", "partial_channels": 1,
                                               "partial_selection": "random"})


def test_the_recipes_are_the_authors_script_defaults():
    """Their train_search.py and train_search_imagenet.py argparse defaults (commit b74702f), with the
    Architect's Adam betas (0.5, 0.999), the model's C/layers/steps and the unrolled radius 0.01."""
    from reproduce.search.config import ImageNetSearchConfig

    common = dict(epochs=50, C=16, layers=8, steps=4, multiplier=4, stem_multiplier=3, seed=2, momentum=0.9,
                  weight_decay=3e-4, grad_clip=5.0, arch_weight_decay=1e-3, arch_beta1=0.5, arch_beta2=0.999,
                  learning_rate_min=0.0, unrolled_eps=0.01, order=1, edge_normalization=True,
                  partial_selection="shuffle")
    cifar = dict(common, batch_size=256, learning_rate=0.1, arch_learning_rate=6e-4, partial_channels=4,
                 arch_start_epoch=15, train_portion=0.5, lr_warmup_epochs=0, arch_grad_clip=0.0, edge_bn_updates=1)
    imagenet = dict(common, batch_size=1024, learning_rate=0.5, arch_learning_rate=6e-3, partial_channels=2,
                    arch_start_epoch=35, lr_warmup_epochs=5, arch_grad_clip=5.0, edge_bn_updates=2,
                    train_fraction=0.1, arch_fraction=0.025, workers=4, image_size=224)
    for config, expected in ((run_config.build(CIFAR10SearchConfig, {"method": "pcdarts"}), cifar),
                             (run_config.build(ImageNetSearchConfig, {}), imagenet)):
        assert {k: getattr(config, k) for k in expected} == expected


def test_imagenet_search_resumed_after_a_kill_ends_like_an_uninterrupted_run(tmp_path):
    """The ImageNet data's shuffles and crops come from the checkpointed generator, so a resumed run is exact."""
    from train_helpers import make_imagefolder

    from reproduce.search import search
    from reproduce.search.config import ImageNetSearchConfig

    folder = make_imagefolder(tmp_path / "imagenet", classes=2, per_class=30)
    config = run_config.build(ImageNetSearchConfig, dict(
        data=str(folder), C=8, layers=3, batch_size=3, image_size=32, epochs=2, arch_start_epoch=0, workers=0,
        device="cpu", deterministic=True))  # 6 + 2 images: 2 steps per epoch

    class Kill(Exception):
        pass

    def kill(epoch, step):
        if (epoch, step) == (1, 0):
            raise Kill()

    whole = search("imagenet", config, tmp_path / "whole", progress=False)
    with pytest.raises(Kill):
        search("imagenet", config, tmp_path / "killed", progress=False, callback=kill)
    resumed = search("imagenet", config, tmp_path / "killed", progress=False)
    assert resumed["alphas"] == whole["alphas"] and resumed["genotype"] == whole["genotype"]
    assert [m["train_loss"] for m in resumed["curve"]] == [m["train_loss"] for m in whole["curve"]]


def test_an_imagenet_search_with_another_subset_seed_is_still_the_recipe():
    from reproduce.comparable import recipe_differences
    from reproduce.search.config import ImageNetSearchConfig

    other = run_config.to_dict(run_config.build(ImageNetSearchConfig, {"subset_seed": 5, "workers": 8}))
    assert recipe_differences("search", "imagenet", other) == {}
    shorter = run_config.to_dict(run_config.build(ImageNetSearchConfig, {"epochs": 5}))
    assert set(recipe_differences("search", "imagenet", shorter)) == {"epochs"}


def test_an_imagenet_search_refuses_to_resume_on_other_subsets_and_keeps_its_checkpoint(tmp_path):
    """The subsets are drawn again from the folder at every start: after images were added to train/, the same
    seed draws other images, and the resumed run would go on with them silently. It is refused in one line."""
    from train_helpers import make_imagefolder

    from reproduce.rundir import DamagedCheckpointError
    from reproduce.search import search
    from reproduce.search.config import ImageNetSearchConfig

    folder = make_imagefolder(tmp_path / "imagenet", classes=2, per_class=30)
    config = run_config.build(ImageNetSearchConfig, dict(
        data=str(folder), C=8, layers=3, batch_size=3, image_size=32, epochs=2, arch_start_epoch=0, workers=0,
        device="cpu", deterministic=True))

    class Kill(Exception):
        pass

    def kill(epoch, step):
        if (epoch, step) == (1, 0):
            raise Kill()

    out = tmp_path / "run"
    with pytest.raises(Kill):
        search("imagenet", config, out, progress=False, callback=kill)
    drawn = json.loads((out / "subsets.json").read_text())
    checkpoint = (out / "checkpoint.pt").read_bytes()
    first_class = sorted((folder / "train").iterdir())[0]
    for i in range(30, 40):  # ten more images of the first class: its 10 % is now 4 images, not 3
        (first_class / f"img_{i}.JPEG").write_bytes((first_class / "img_0.JPEG").read_bytes())
    with pytest.raises(DamagedCheckpointError, match="drew other subsets") as e:
        search("imagenet", config, out, progress=False)
    assert "\n" not in str(e.value)
    assert (out / "checkpoint.pt").read_bytes() == checkpoint and not (out / "record.json").exists()
    assert json.loads((out / "subsets.json").read_text()) == drawn


def test_an_imagenet_search_checkpoint_resumes_only_with_its_subsets_digests(tmp_path):
    """The subsets' digests tie the checkpoint to the images it drew: without them it is refused."""
    from train_helpers import make_imagefolder

    from reproduce.search.config import ImageNetSearchConfig
    from reproduce.search.imagenet import ImageNetSearchData

    folder = make_imagefolder(tmp_path / "imagenet", classes=2, per_class=30)
    config = run_config.build(ImageNetSearchConfig, dict(data=str(folder), C=8, layers=3, batch_size=3,
                                                         image_size=32, workers=0, device="cpu"))
    data = ImageNetSearchData(config, "cpu")
    state = data.state_dict()
    generator = state["generator"].clone()
    data.generator.manual_seed(123)
    data.load_state_dict(state)
    assert torch.equal(data.generator.get_state(), generator)
    with pytest.raises(ValueError, match="drew other subsets"):
        data.load_state_dict(dict(state, subsets={"train_sha256": "0", "arch_sha256": "0"}))
    with pytest.raises(ValueError, match="drew other subsets"):
        data.load_state_dict({"generator": generator})
