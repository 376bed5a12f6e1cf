"""Registry, parameter counts, heads and freezing, FLOP formulas, baselines."""

import numpy as np
import pytest
import torch

from fearkd.models import (
    BASELINES,
    CNN,
    CNNLSTM,
    RecurrentNet,
    available_models,
    cnn_flops_per_sample,
    freeze,
    make_baseline,
    make_model,
    parameter_summary,
    parameter_table,
    replace_head,
    rnn_flops_per_sample,
)
from fearkd.models import registry as registry_module
from fearkd.models.rnn import last_hidden_state, run_recurrent

# One tiny case per registered name; the completeness test keeps this in step with the registry.
CASES = {
    "cnn": {}, "cnn-plain": {}, "lstm": {"hidden_size": 4},
    "lstm-plain": {"hidden_size": 4, "num_layers": 2},
    "gru": {"hidden_size": 4, "num_layers": 2}, "gru-plain": {"hidden_size": 4},
    "ann": {}, "dnn150": {}, "dnn300": {}, "cnn-lstm": {"filters": 4, "hidden_size": 3},
    "cnn-lstm-plain": {"filters": 4, "hidden_size": 3},
}


def test_registry_is_complete_and_documented():
    assert set(CASES) == set(available_models())
    doc = registry_module.make_model.__doc__
    for name in available_models():
        base = name.removesuffix("-plain")
        assert f"``{base}``" in doc, name
        if name != base:
            assert f"``*{name[len(base):]}``" in doc, name


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_model_maps_features_to_logits(name):
    model = make_model(name, 12, 3, random_state=0, **CASES[name])
    out = model(torch.randn(5, 12))
    assert out.shape == (5, 3)
    assert isinstance(model.head, torch.nn.Linear)
    assert model.spec.name == name and model.spec.n_features == 12


@pytest.mark.parametrize(("n_features", "expected"), [(86, 117_076), (176, 166_228)])
def test_cnn_trainable_parameters_match_reference(n_features, expected):
    table = parameter_table(["cnn", "cnn-plain"], n_features, 4)
    assert table["trainable"].tolist() == [expected, expected]
    # Keras counts the two BatchNorms' moving mean and variance: 2 * 2 * 128.
    assert table["non_trainable"].tolist() == [512, 512]
    text = parameter_summary(make_model("cnn", n_features, 4))
    assert f"Trainable params: {expected:,}" in text
    assert f"Total params: {expected + 512:,}" in text


@pytest.mark.parametrize(("name", "n_in", "hidden", "expected"), [
    ("ann", 40, None, 4_836), ("ann", 8, (32,), 420),
    ("dnn150", 40, None, 52_054), ("dnn150", 8, (150, 150), 24_604),
    ("dnn300", 40, None, 374_704), ("dnn300", 8, (300,) * 4, 274_804),
    ("dnn300", 8, (300,) * 3, 184_504),
])
def test_mlp_counts_reproduce_reference_table(name, n_in, hidden, expected):
    params = {} if hidden is None else {"hidden": hidden}
    model = make_model(name, n_in, 4, **params)
    assert parameter_table({name: model}, n_in, 4)["trainable"].item() == expected


def test_flop_formulas_match_benchmarks_md():
    assert round(cnn_flops_per_sample(176) / 1e6, 2) == 33.26
    assert round(cnn_flops_per_sample(86) / 1e6, 2) == 16.16
    # 20,000 samples at 196.5 GFLOP/s: 1.79 s (LSTM) and 1.34 s (GRU).
    assert round(20_000 * rnn_flops_per_sample(176, "lstm") / 196.5e9, 2) == 1.79
    assert round(20_000 * rnn_flops_per_sample(176, "gru") / 196.5e9, 2) == 1.34
    assert rnn_flops_per_sample(10, "lstm", 8, num_layers=2) == (
        4 * (1 + 8) * 8 * 2 * 10 * 3 + 4 * (8 + 8) * 8 * 2 * 10 * 3)


def test_same_seed_same_weights_and_fast_equals_plain_init():
    a = make_model("cnn", 16, 4, random_state=5)
    b = make_model("cnn-plain", 16, 4, random_state=5)
    c = make_model("cnn", 16, 4, random_state=6)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k
    assert not torch.equal(a.conv1.weight, c.conv1.weight)


def test_seeded_build_leaves_global_generator_alone():
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    make_model("ann", 4, 2, random_state=1)
    assert torch.equal(torch.rand(1), expected)


def test_replace_head_keeps_trunk():
    model = make_model("cnn", 16, 10, random_state=0)
    conv = model.conv1.weight.clone()
    fc1 = model.fc1.weight.clone()
    replace_head(model, 4, random_state=1)
    assert model.head.out_features == 4 and model.spec.n_outputs == 4
    assert torch.equal(model.conv1.weight, conv) and torch.equal(model.fc1.weight, fc1)
    assert model(torch.randn(2, 16)).shape == (2, 4)


@pytest.mark.parametrize(("policy", "trainable"), [
    ("none", {"conv1", "bn1", "conv2", "bn2", "conv3", "fc1", "fc2", "head"}),
    ("trunk", {"fc1", "fc2", "head"}),
    ("all-but-head", {"head"}),
])
def test_freeze_policies(policy, trainable):
    model = make_model("cnn", 16, 4)
    frozen = freeze(model, policy)
    training = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert training == trainable
    assert all(not model.get_parameter(n).requires_grad for n in frozen)


def test_freeze_trunk_of_recurrent_and_mlp():
    lstm = make_model("lstm", 6, 3, hidden_size=4)
    freeze(lstm, "trunk")
    assert not any(p.requires_grad for p in lstm.rnn.parameters())
    assert all(p.requires_grad for p in lstm.head.parameters())
    mlp = make_model("ann", 6, 3)
    freeze(mlp, "trunk")
    assert [n for n, p in mlp.named_parameters() if p.requires_grad] == ["head.weight",
                                                                        "head.bias"]


def test_unknown_model_lists_known_ones():
    with pytest.raises(ValueError, match=r"Unknown model 'cnnn': expected one of .*cnn, "):
        make_model("cnnn", 10, 2)


def test_cnn_needs_eight_features():
    with pytest.raises(ValueError, match=r"'n_features' must be at least 8, got 7"):
        make_model("cnn", 7, 2)


def test_bad_sizes_and_params():
    with pytest.raises(ValueError, match=r"'n_outputs' must be at least 1, got 0"):
        make_model("ann", 10, 0)
    with pytest.raises(TypeError, match=r"'n_features' must be an int, got float 10.0"):
        make_model("ann", 10.0, 2)
    with pytest.raises(TypeError, match=r"'name' must be a model name"):
        make_model(3, 10, 2)
    with pytest.raises(ValueError, match=r"Model 'cnn-plain' fixes \['impl'\]"):
        make_model("cnn-plain", 10, 2, impl="fast")
    with pytest.raises(ValueError, match=r"Model 'cnn' fixes \['impl'\]"):
        make_model("cnn", 10, 2, impl="plain")
    for cls in (CNN, RecurrentNet, CNNLSTM):
        with pytest.raises(ValueError, match=r"Invalid value for 'impl'"):
            cls(10, 2, impl="slow")
    with pytest.raises(ValueError, match=r"'hidden' must be a non-empty sequence"):
        make_model("ann", 10, 2, hidden=())
    with pytest.raises(ValueError, match=r"'hidden_size' must be a positive int, got 0"):
        make_model("lstm", 10, 2, hidden_size=0)
    with pytest.raises(ValueError, match=r"Invalid value for 'freeze'"):
        freeze(make_model("ann", 4, 2), "everything")
    with pytest.raises(ValueError, match=r"'dropout' must be in \[0, 1\), got 1.5"):
        make_model("cnn", 10, 2, dropout=1.5)
    with pytest.raises(ValueError, match=r"'n_features' must be at least 2, got 1"):
        make_model("cnn-lstm", 1, 2)
    with pytest.raises(ValueError, match=r"Invalid value for 'cell'"):
        rnn_flops_per_sample(10, "rnn")
    lstm = make_model("lstm", 5, 2, hidden_size=3)
    with pytest.raises(ValueError, match=r"supports only 'native', got 'fused'"):
        run_recurrent(lstm.rnn, torch.randn(5, 2, 1), "fused")
    with pytest.raises(ValueError, match=r"Invalid value for 'impl': expected one of "
                                         r"\('fused', 'native'\), got 'loop'"):
        last_hidden_state(lstm.rnn, torch.randn(5, 2, 1), "loop")


@pytest.mark.parametrize("name", BASELINES)
def test_baselines_fit_and_predict(name):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(int)
    clf = make_baseline(name, random_state=0).fit(X, y)
    proba = clf.predict_proba(X)
    assert proba.shape == (60, 2)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    if name == "majority":
        assert set(clf.predict(X)) == {np.bincount(y).argmax()}
    elif name in ("svm", "lda", "rf"):
        assert (clf.predict(X) == y).mean() > 0.9


def test_unknown_baseline():
    with pytest.raises(ValueError,
                       match=r"Invalid value for 'baseline': expected one of 'svm', .*got 'tree'"):
        make_baseline("tree")


def test_recurrent_registry_entries_pick_their_implementation():
    assert make_model("lstm", 6, 2).impl == "fused"
    assert make_model("gru", 6, 2).impl == "fused"
    assert make_model("lstm-plain", 6, 2).impl == "native"
    assert make_model("gru-plain", 6, 2).impl == "native"
    # Same parameter names, so a fused model loads a plain model's weights and vice versa.
    assert make_model("gru", 6, 2).state_dict().keys() == make_model(
        "gru-plain", 6, 2).state_dict().keys()
