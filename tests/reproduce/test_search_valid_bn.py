"""valid_bn: the BatchNorm statistics of the PTB supernet in eval mode (the validation perplexity).

'running' (default, the original's code): in eval mode the cell's one non-affine BatchNorm normalises the
initial state and all 8 steps with its shared running statistics. 'batch': in eval mode too, every state is
normalised with its own statistics over the batch, as in training; the running statistics are neither used
nor updated. In train mode the option changes nothing.
"""
from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from search_helpers import ptb_config, tiny_corpus
from train_helpers import refused_in_one_line

from reproduce.config import ConfigError, build
from reproduce.search import PTBSearchConfig
from reproduce.search.loop import RNNSearch
from reproduce.search.rnn_supernet import RNNModelSearch

NTOKEN, T, B = 11, 5, 4


pytestmark = pytest.mark.usefixtures("single_thread")


def _model(seed=0):
    """A tiny search model (no dropout, float64), its architecture logits, tokens and a non-zero hidden state;
    two training passes first, so the running statistics are far from both their initial values and the
    statistics of any one state."""
    torch.manual_seed(seed)
    model = RNNModelSearch(NTOKEN, 8, 8, 8, 0.0, 0.0, 0.0, 0.0, 0.0).double()
    alphas = model.new_alphas(dtype=torch.float64)
    with torch.no_grad():  # larger logits than 1e-3 * N(0,1), so every softmax weight matters
        alphas[0].normal_(0, 0.5)
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randint(0, NTOKEN, (T, B), generator=g)
    hidden = [0.5 * torch.randn(1, B, 8, dtype=torch.float64, generator=g)]
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randint(0, NTOKEN, (T, B), generator=g), hidden, alphas[0])
    return model, alphas[0], x, hidden


def _set_flag(model, on: bool):
    for cell in model.rnns:
        assert cell.batch_stats_in_eval is False  # the default: the original's running statistics
        cell.batch_stats_in_eval = on
    return model


def _bn_state(model):
    return [{k: v.clone() for k, v in cell.bn.state_dict().items()} for cell in model.rnns]


def _assert_same_bn_state(a, b, exact=True):
    assert len(a) == len(b)
    for sa, sb in zip(a, b):
        assert sa.keys() == sb.keys() == {"running_mean", "running_var", "num_batches_tracked"}
        for k in sa:
            if exact or k == "num_batches_tracked":
                assert torch.equal(sa[k], sb[k]), k
            else:
                torch.testing.assert_close(sa[k], sb[k], rtol=1e-10, atol=1e-12, msg=k)


def _run(model, weights, x, hidden, training):
    model.train(training)
    with torch.no_grad():
        out, _ = model(x, hidden, weights)
    return out


# 1. the config field


def test_valid_bn_defaults_to_running_and_a_value_outside_running_batch_is_refused_in_one_line(tmp_path, capsys):
    assert PTBSearchConfig().valid_bn == "running"
    assert build(PTBSearchConfig, {}).valid_bn == "running"
    assert build(PTBSearchConfig, {"valid_bn": "batch"}).valid_bn == "batch"
    with pytest.raises(ConfigError, match="valid_bn must be running or batch, not 'foo'") as e:
        build(PTBSearchConfig, {"valid_bn": "foo"})
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="valid_bn must be running or batch"):
        PTBSearchConfig(valid_bn="Batch").validate()
    # through the command line: a config file with a bad value is refused before anything is written
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"valid_bn": "foo"}))
    out = tmp_path / "run"
    refused_in_one_line(capsys, ["search", "ptb", "--config", str(path), "--out", str(out), "--data",
                                 str(tmp_path / "nowhere"), "--device", "cpu", "--no-progress"],
                        "valid_bn must be running or batch, not 'foo'")
    assert not out.exists()


# 2. flag off: the original's eval mode, unchanged


def test_flag_off_eval_mode_normalises_every_state_with_the_shared_running_statistics():
    model, weights, x, hidden = _model()
    _set_flag(model, False)
    before = _bn_state(model)
    out = _run(model, weights, x, hidden, training=False)
    _assert_same_bn_state(_bn_state(model), before)  # eval mode leaves the running statistics alone

    # the same computation with every normalisation written out as BatchNorm with the running statistics
    ref_model = copy.deepcopy(model)
    for cell in ref_model.rnns:
        bn = cell.bn
        cell.norm = lambda s, bn=bn: F.batch_norm(s, bn.running_mean, bn.running_var, training=False, eps=bn.eps)
    ref = _run(ref_model, weights, x, hidden, training=False)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)

    # and not the batch statistics (so the comparison above can tell the two apart)
    batch = _run(copy.deepcopy(model), weights, x, hidden, training=True)
    assert (out - batch).abs().max() > 1e-3


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("flag", [False, True], ids=["running", "batch"])
def test_cell_equals_the_originals_activation_by_activation_loop_with_either_flag(training, flag):
    model, weights, x, hidden = _model(seed=3)
    _set_flag(model, flag)
    ref_model = copy.deepcopy(model)
    for cell in ref_model.rnns:
        cell.cell = cell.cell_reference
    out = _run(model, weights, x, hidden, training)
    ref = _run(ref_model, weights, x, hidden, training)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    # the same running-statistics updates (to rounding: the two loops add in another order)
    _assert_same_bn_state(_bn_state(model), _bn_state(ref_model), exact=False)


# 3. flag on: batch statistics in eval mode, running statistics untouched


def test_flag_on_eval_mode_equals_train_mode_without_dropout_and_leaves_running_statistics_alone():
    model, weights, x, hidden = _model(seed=1)
    train_out = _run(copy.deepcopy(model), weights, x, hidden, training=True)
    running_out = _run(copy.deepcopy(model), weights, x, hidden, training=False)  # flag off
    _set_flag(model, True)
    before = _bn_state(model)
    assert int(before[0]["num_batches_tracked"]) > 0 and not torch.equal(before[0]["running_var"],
                                                                        torch.ones(8, dtype=torch.float64))
    out = _run(model, weights, x, hidden, training=False)
    torch.testing.assert_close(out, train_out, rtol=1e-10, atol=1e-12)
    _assert_same_bn_state(_bn_state(model), before)  # neither used nor updated
    assert (out - running_out).abs().max() > 1e-3  # the flag really changes the eval-mode output

    # also with gradients on, as a validation pass might run
    model.eval()
    out_grad, _ = model(x, hidden, weights)
    torch.testing.assert_close(out_grad.detach(), train_out, rtol=1e-10, atol=1e-12)
    _assert_same_bn_state(_bn_state(model), before)


def test_flag_on_eval_mode_uses_each_states_own_batch_statistics():
    """Each of the 9 normalisations per time step uses the statistics of its own input over the batch:
    (s - mean) / sqrt(biased var + eps), in eval mode."""
    model, weights, x, hidden = _model(seed=2)
    _set_flag(model, True)
    model.eval()
    cell = model.rnns[0]
    seen = []
    norm = cell.norm

    def spy(s):
        out = norm(s)
        seen.append((s, out))
        return out

    cell.norm = spy
    with torch.no_grad():
        model(x, hidden, weights)
    assert len(seen) == T * (cell.steps + 1)
    for s, out in seen:
        expected = (s - s.mean(0)) / torch.sqrt(s.var(0, unbiased=False) + cell.bn.eps)
        torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(out.mean(0), torch.zeros(8, dtype=torch.float64), rtol=0, atol=1e-10)


# 4. train mode: the flag changes nothing


def test_flag_changes_nothing_in_train_mode():
    model, weights, x, hidden = _model(seed=4)
    off, on = _set_flag(copy.deepcopy(model), False), _set_flag(copy.deepcopy(model), True)
    start = _bn_state(model)
    for _ in range(2):
        out_off = _run(off, weights, x, hidden, training=True)
        out_on = _run(on, weights, x, hidden, training=True)
        assert torch.equal(out_off, out_on)
        _assert_same_bn_state(_bn_state(off), _bn_state(on))
    # both updated the running statistics, once per normalisation
    cell = on.rnns[0]
    state = _bn_state(on)[0]
    assert int(state["num_batches_tracked"]) == int(start[0]["num_batches_tracked"]) + 2 * T * (cell.steps + 1)
    assert not torch.equal(state["running_mean"], start[0]["running_mean"])


# 5. the search sets the flag from its config


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    return tiny_corpus(tmp_path_factory.mktemp("penn"))


def test_rnn_search_sets_the_flag_on_its_cells_from_valid_bn(corpus_dir):
    cpu = torch.device("cpu")
    searchers = {}
    for valid_bn in ("running", "batch"):
        torch.manual_seed(0)
        searchers[valid_bn] = RNNSearch(ptb_config(corpus_dir, valid_bn=valid_bn), cpu)
    assert [cell.batch_stats_in_eval for cell in RNNSearch(ptb_config(corpus_dir), cpu).model.rnns] == [False]
    assert [cell.batch_stats_in_eval for cell in searchers["running"].model.rnns] == [False]
    assert [cell.batch_stats_in_eval for cell in searchers["batch"].model.rnns] == [True]

    # the validation of the same supernet: 'batch' leaves the running statistics alone and reports another loss
    batch, running = searchers["batch"], searchers["running"]
    running.load_state_dict(batch.state_dict())
    before = _bn_state(batch.model)
    batch_loss = batch.evaluate()["valid_loss"]
    _assert_same_bn_state(_bn_state(batch.model), before)
    running_loss = running.evaluate()["valid_loss"]
    assert abs(batch_loss - running_loss) > 1e-6
    # the same flag in the model gives the same figure: the option acts through the cells' flag only
    for cell in running.model.rnns:
        cell.batch_stats_in_eval = True
    assert running.evaluate()["valid_loss"] == pytest.approx(batch_loss, rel=1e-6)
