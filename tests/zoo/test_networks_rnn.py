"""The zoo's RNNModel: every genotype trains and evaluates, tied weights, counts, initialisation, state."""
from __future__ import annotations

import pytest
import torch
from network_helpers import RNN_NAMES

import genotypes
import zoo

# ---------------------------------------------------------------- RNN

@pytest.mark.parametrize("name", RNN_NAMES)
def test_every_rnn_genotype_trains_and_evaluates(name):
    torch.manual_seed(0)
    model = zoo.RNNModel(30, 16, 16, 16, genotype=name)
    g = genotypes.get(name, "rnn")
    assert len(model.rnns[0]._Ws) == len(g.recurrent)
    assert model.rnns[0]._W0.shape == (32, 32)
    tokens = torch.randint(0, 30, (5, 3))
    hidden = model.init_hidden(3)
    assert [h.shape for h in hidden] == [(1, 3, 16)]
    model.train()
    log_prob, new_hidden = model(tokens, hidden)
    assert log_prob.shape == (5, 3, 30) and new_hidden[0].shape == (1, 3, 16)
    torch.testing.assert_close(log_prob.exp().sum(-1), torch.ones(5, 3))
    loss = -log_prob.gather(2, tokens.unsqueeze(2)).mean()
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    with torch.no_grad():
        a, ha = model(tokens, hidden)
        b, hb = model(tokens, hidden)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(ha[0], hb[0])


def test_rnn_weights_are_tied_and_counted_once():
    model = zoo.RNNModel(10000, 850, 850, 850, genotype="DARTS_V2")
    assert model.decoder.weight is model.encoder.weight
    assert zoo.count_parameters(model) == 22_960_000
    assert "decoder.weight" in model.state_dict() and "encoder.weight" in model.state_dict()


@pytest.mark.parametrize("name, steps", [("ENAS", 11), ("DARTS_V1", 8), ("DARTS_V2", 8)])
def test_every_rnn_genotype_has_the_parameter_count_of_its_steps_at_850_units(name, steps):
    # Tied embedding/decoder (10000 x 850, once) + decoder bias + W0 (1700 x 1700) + one 850 x 1700 per step,
    # counted by hand: DARTS_V2 gives the reference's 22,960,000.
    expected = {"ENAS": 27_295_000, "DARTS_V1": 22_960_000, "DARTS_V2": 22_960_000}[name]
    assert 10000 * 850 + 10000 + 1700 * 1700 + steps * 850 * 1700 == expected
    with torch.device("meta"):
        model = zoo.RNNModel(10000, 850, 850, 850, genotype=name)
    assert zoo.count_parameters(model) == expected


def test_rnn_seeded_initialisation_draws_in_the_original_order():
    # The original creates the embedding, then the cell (W0, then each W_i, uniform in +-0.04), then the
    # decoder, then draws the tied embedding/decoder weight uniformly twice and zeroes the decoder bias.
    ntoken, n, steps = 30, 6, len(genotypes.get("DARTS_V2", "rnn").recurrent)
    torch.manual_seed(7)
    torch.nn.Embedding(ntoken, n)
    W0 = torch.empty(2 * n, 2 * n).uniform_(-0.04, 0.04)
    Ws = [torch.empty(n, 2 * n).uniform_(-0.04, 0.04) for _ in range(steps)]
    torch.nn.Linear(n, ntoken)
    torch.empty(ntoken, n).uniform_(-0.04, 0.04)
    emb = torch.empty(ntoken, n).uniform_(-0.04, 0.04)
    after = torch.rand(3)
    torch.manual_seed(7)
    model = zoo.RNNModel(ntoken, n, n, n, genotype="DARTS_V2")
    assert torch.equal(torch.rand(3), after)
    assert torch.equal(model.encoder.weight, emb)
    assert torch.equal(model.rnns[0]._W0, W0)
    assert all(torch.equal(a, b) for a, b in zip(model.rnns[0]._Ws, Ws))
    assert not model.decoder.bias.any()


def test_rnn_hidden_state_carries_over_between_calls():
    torch.manual_seed(0)
    model = zoo.RNNModel(20, 8, 8, 8).eval()
    tokens = torch.randint(0, 20, (6, 2))
    with torch.no_grad():
        whole, h_whole = model(tokens, model.init_hidden(2))
        first, h = model(tokens[:3], model.init_hidden(2))
        second, h2 = model(tokens[3:], h)
    torch.testing.assert_close(torch.cat([first, second]), whole)
    torch.testing.assert_close(h2[0], h_whole[0])


def test_rnn_return_h_gives_raw_and_dropped_outputs():
    model = zoo.RNNModel(20, 8, 8, 8).eval()
    out = model(torch.randint(0, 20, (4, 2)), model.init_hidden(2), return_h=True)
    log_prob, hidden, raw_outputs, outputs = out
    assert raw_outputs[0].shape == outputs[0].shape == (4, 2, 8)
    torch.testing.assert_close(raw_outputs[0][-1], hidden[0][0])


def test_rnn_train_mode_uses_dropout_and_eval_does_not():
    torch.manual_seed(0)
    model = zoo.RNNModel(20, 8, 8, 8)
    tokens = torch.randint(0, 20, (4, 2))
    model.train()
    with torch.no_grad():
        a, _ = model(tokens, model.init_hidden(2))
        b, _ = model(tokens, model.init_hidden(2))
    assert not torch.allclose(a, b)
    model = zoo.RNNModel(20, 8, 8, 8, dropout=0, dropouth=0, dropoutx=0, dropouti=0, dropoute=0)
    with torch.no_grad():
        model.train()
        a, _ = model(tokens, model.init_hidden(2))
        model.eval()
        b, _ = model(tokens, model.init_hidden(2))
    torch.testing.assert_close(a, b)


def test_rnn_model_with_a_search_cell_has_no_genotype_and_prints():
    from zoo.rnn import DARTSCell

    class SearchCell(DARTSCell):
        def __init__(self, ninp, nhid, dropouth, dropoutx):
            super().__init__(ninp, nhid, dropouth, dropoutx, None)

    model = zoo.RNNModel(20, 8, 8, 8, cell_cls=SearchCell)
    assert model.genotype is None
    assert len(model.rnns[0]._Ws) == genotypes.rnn.STEPS
    assert "SearchCell" in repr(model)
