"""Registry, parameter counts, heads and freezing, FLOP formulas, baselines."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch

import fearkd
from fearkd.models import (
    BASELINES,
    FREEZE_POLICIES,
    MODELS,
    ModelSpec,
    available_models,
    cnn_flops_per_sample,
    freeze,
    make_baseline,
    make_model,
    parameter_summary,
    parameter_table,
    register_freeze_policy,
    register_model,
    replace_head,
    rnn_flops_per_sample,
)
from fearkd.models import registry as registry_module

# Small parameters per built-in name, to keep the tests fast; a registered name without an
# entry here is built with its defaults.
SMALL = {
    "lstm": {"hidden_size": 4}, "gru": {"hidden_size": 4, "num_layers": 2},
    "cnn-lstm": {"filters": 4, "hidden_size": 3},
    "bilstm": {"token_size": 4}, "bigru": {"token_size": 4},
}

# Models that need more inputs than the 12-16 of the shape tests (five poolings by 2).
MIN_FEATURES = {"cnn-teacher": 32}

# State-dict keys of each built-in model (16 features, 4 outputs, default parameters), as the
# code before the plain-torch rewrite (commit 0c982b3) produced them: checkpoints saved by that
# code must keep loading.
_RNN_KEYS = {"head.bias", "head.weight", "rnn.bias_hh_l0", "rnn.bias_ih_l0", "rnn.weight_hh_l0",
             "rnn.weight_ih_l0"}
_ATTENTION_LAYER = {f"encoder.layers.0.{k}" for k in (
    "self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
    "self_attn.out_proj.bias", "linear1.weight", "linear1.bias", "linear2.weight",
    "linear2.bias", "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias")}
SAVED_KEYS = {
    "attention": {"cls", "tokens.value", "tokens.position", "head.weight", "head.bias"}
    | _ATTENTION_LAYER,
    "multi-input": {f"{m}.{p}" for m in ("branches.0.out", "fusion", "head")
                    for p in ("weight", "bias")},
    "cnn": {f"{layer}.{p}" for layer in ("conv1", "conv2", "conv3", "fc1", "fc2", "head")
            for p in ("weight", "bias")}
    | {f"{bn}.{p}" for bn in ("bn1", "bn2")
       for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")},
    "lstm": _RNN_KEYS,
    "gru": _RNN_KEYS,
    "cnn-lstm": _RNN_KEYS | {"conv1.bias", "conv1.weight"},
    "ann": {"head.bias", "head.weight", "hidden.0.bias", "hidden.0.weight", "hidden.2.bias",
            "hidden.2.weight"},
    "dnn150": {"head.bias", "head.weight"} | {f"hidden.{i}.{p}" for i in (0, 2, 4)
                                              for p in ("weight", "bias")},
    "dnn300": {"head.bias", "head.weight"} | {f"hidden.{i}.{p}" for i in (0, 2, 4, 6, 8)
                                              for p in ("weight", "bias")},
    "cnn-teacher": {f"convs.{i}.{p}" for i in range(5) for p in ("weight", "bias")}
    | {f"norms.{i}.{p}" for i in range(4)
       for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}
    | {f"dense.{i}.{p}" for i in (0, 3, 6) for p in ("weight", "bias")}
    | {"head.weight", "head.bias"},
    **{name: {f"rnns.{i}.{p}_l0{r}" for i in range(3) for r in ("", "_reverse")[: 2 if i == 0
                                                                             else 1]
              for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
       | {f"dense.{i}.{p}" for i in (0, 2, 4) for p in ("weight", "bias")}
       | {"head.weight", "head.bias"} for name in ("bilstm", "bigru")},
}
# an ensemble (default: one "ann" member): the member's keys, its input scale, the head
SAVED_KEYS["ensemble"] = ({f"members.0.{k}" for k in SAVED_KEYS["ann"]}
                          | {"mean_0", "scale_0", "head.weight", "head.bias"})


class TinyNet(torch.nn.Module):
    """A model from outside the package: plain nn.Module, no trunk_names."""

    def __init__(self, n_features, n_outputs, width=3):
        super().__init__()
        self.body = torch.nn.Linear(n_features, width)
        self.head = torch.nn.Linear(width, n_outputs)

    def forward(self, x):
        return self.head(self.body(x).relu())


class NoHead(torch.nn.Module):
    def __init__(self, n_features, n_outputs):
        super().__init__()
        self.out = torch.nn.Linear(n_features, n_outputs)


@pytest.fixture
def registered():
    """Names registered by a test, removed afterwards so other tests see the built-ins only."""
    names = []
    yield names
    for name in names:
        MODELS.unregister(name)


def test_builtin_names_are_registered_in_order():
    assert available_models() == MODELS.names() == (
        "cnn", "lstm", "gru", "cnn-lstm", "ann", "dnn150", "dnn300", "bilstm", "bigru",
        "cnn-teacher", "attention", "multi-input", "ensemble")
    assert set(SAVED_KEYS) == set(MODELS.names())
    doc = registry_module.make_model.__doc__
    for name in MODELS.names():
        assert f"``{name}``" in doc, name
        assert MODELS.entry(name).description, name


@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_maps_features_to_logits(name):
    n = MIN_FEATURES.get(name, 12)
    model = make_model(name, n, 3, random_state=0, **SMALL.get(name, {}))
    out = model(torch.randn(5, n))
    assert out.shape == (5, 3)
    assert isinstance(model.head, torch.nn.Linear)
    assert model.spec == ModelSpec(name, n, 3, SMALL.get(name, {}))
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name", MODELS.names())
def test_spec_round_trip_rebuilds_the_same_model(name):
    model = make_model(name, MIN_FEATURES.get(name, 12), 3, random_state=1,
                       **SMALL.get(name, {}))
    spec = ModelSpec(**model.spec.to_dict())
    again = make_model(spec.name, spec.n_features, spec.n_outputs, random_state=1,
                       **spec.params)
    assert again.spec == model.spec
    for (k, a), b in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


@pytest.mark.parametrize("name", MODELS.names())
def test_state_dict_keys_match_the_compiled_era(name):
    n = MIN_FEATURES.get(name, 16)
    model = make_model(name, n, 4, random_state=0)
    assert set(model.state_dict()) == SAVED_KEYS[name]
    # A state dict of the same shapes loads strictly (what load_checkpoint does).
    model.load_state_dict(make_model(name, n, 4, random_state=1).state_dict(), strict=True)


def test_source_uses_public_torch_only():
    # Issue 17: no compiled extension, custom backward pass or private torch API in the package.
    src = Path(fearkd.__file__).parent
    pattern = re.compile(r"autograd\.Function|\bctypes\b|torch\._C\b|ext_modules")
    hits = [f"{path.relative_to(src)}:{n}" for path in sorted(src.rglob("*.py"))
            for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert hits == []
    assert not [p.name for p in src.rglob("*") if p.suffix in {".c", ".h", ".so", ".pyd"}]


@pytest.mark.parametrize(("n_features", "expected"), [(86, 117_076), (176, 166_228)])
def test_cnn_trainable_parameters_match_reference(n_features, expected):
    table = parameter_table(["cnn"], n_features, 4)
    assert table["trainable"].tolist() == [expected]
    # Keras counts the two BatchNorms' moving mean and variance: 2 * 2 * 128.
    assert table["non_trainable"].tolist() == [512]
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


def test_same_seed_same_weights():
    a = make_model("cnn", 16, 4, random_state=5)
    b = make_model("cnn", 16, 4, random_state=5)
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
    assert policy in FREEZE_POLICIES
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
    with pytest.raises(ValueError, match=r"Invalid value for '\[models\] backbones': expected "
                                         r"one of 'cnn', 'lstm', .*got 'cnnn'"):
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
    with pytest.raises(ValueError, match=r"Model 'gru' fixes 'cell'; choose the model by name "
                                         r"\('lstm' or 'gru'\) instead of passing cell='lstm'"):
        make_model("gru", 10, 2, cell="lstm")
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'impl'"):
        make_model("cnn", 10, 2, impl="fast")
    with pytest.raises(ValueError, match=r"'hidden' must be a non-empty sequence"):
        make_model("ann", 10, 2, hidden=())
    with pytest.raises(ValueError, match=r"'hidden_size' must be a positive int, got 0"):
        make_model("lstm", 10, 2, hidden_size=0)
    with pytest.raises(ValueError, match=r"Invalid value for '\[methods\] freeze': expected one "
                                         r"of 'none', 'trunk', 'all-but-head', got 'everything'"):
        freeze(make_model("ann", 4, 2), "everything")
    with pytest.raises(ValueError, match=r"'dropout' must be in \[0, 1\), got 1.5"):
        make_model("cnn", 10, 2, dropout=1.5)
    with pytest.raises(ValueError, match=r"'n_features' must be at least 2, got 1"):
        make_model("cnn-lstm", 1, 2)
    with pytest.raises(ValueError, match=r"Invalid value for 'cell'"):
        rnn_flops_per_sample(10, "rnn")


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
    elif name in ("svm", "lda", "logreg", "rf"):
        assert (clf.predict(X) == y).mean() > 0.9


def test_unknown_baseline():
    with pytest.raises(ValueError,
                       match=r"Invalid value for 'baseline': expected one of 'svm', .*got 'tree'"):
        make_baseline("tree")


def test_register_model_from_outside(registered):
    register_model("tiny", TinyNet, defaults={"width": 5}, description="a test model")
    registered.append("tiny")
    assert "tiny" in available_models() and MODELS.entry("tiny").description == "a test model"
    model = make_model("tiny", 6, 2, random_state=0)
    assert model.body.out_features == 5 and model.spec == ModelSpec("tiny", 6, 2, {})
    assert make_model("tiny", 6, 2, width=2).body.out_features == 2
    assert model(torch.randn(4, 6)).shape == (4, 2)
    assert freeze(model, "all-but-head") == ["body.weight", "body.bias"]
    # A function builder works too, and overwrite=True replaces the registration.
    register_model("tiny", lambda n_in, n_out: TinyNet(n_in, n_out, width=1), overwrite=True)
    assert make_model("tiny", 6, 2).body.out_features == 1


def test_register_model_errors(registered):
    register_model("tiny", TinyNet)
    registered.append("tiny")
    with pytest.raises(ValueError, match=r"A model named 'tiny' is already registered; pick "
                                         r"another name, or pass overwrite=True"):
        register_model("tiny", TinyNet)
    with pytest.raises(TypeError, match=r"register_model\('bad', ...\): 'builder' must be a "
                                        r"class or function"):
        register_model("bad", "TinyNet")
    with pytest.raises(TypeError, match=r"'defaults' must be a dict of parameters, got list"):
        register_model("bad", TinyNet, defaults=["width"])
    assert "bad" not in MODELS
    register_model("headless", NoHead)
    registered.append("headless")
    with pytest.raises(TypeError, match=r"Model 'headless': its builder returned NoHead without "
                                        r"an nn.Linear '.head'"):
        make_model("headless", 4, 2)
    with pytest.raises(ValueError, match=r"Invalid value for '\[methods\] freeze': model 'tiny' "
                                         r"names no trunk .*use 'all-but-head' or 'none'"):
        freeze(make_model("tiny", 4, 2), "trunk")


def test_register_freeze_policy():
    def heads_only(model):
        return {id(p) for p in model.head.parameters()}

    register_freeze_policy("head-only", heads_only, description="freeze the head")
    try:
        assert "head-only" in FREEZE_POLICIES
        model = make_model("ann", 6, 2)
        assert freeze(model, "head-only") == ["head.weight", "head.bias"]
        assert all(p.requires_grad for p in model.hidden.parameters())
        with pytest.raises(TypeError, match=r"'policy' must be a function model -> set of "
                                            r"parameter ids, got int"):
            register_freeze_policy("bad", 3)
    finally:
        FREEZE_POLICIES.unregister("head-only")
    assert FREEZE_POLICIES.names() == ("none", "trunk", "all-but-head")


# ------------------------------------------------- the seed's architectures against Keras' counts
def _keras_lstm(d, u):
    return 4 * (d * u + u * u + u)  # one bias vector


def _keras_gru(d, u):
    return 3 * (d * u + u * u + 2 * u)  # reset_after=True: two bias vectors, as PyTorch


def _dense(*sizes):
    return sum(a * b + b for a, b in zip(sizes, sizes[1:], strict=False))


def test_cnn_teacher_has_exactly_the_seeds_198362_parameters():
    table = parameter_table(["cnn-teacher"], 176, 10).iloc[0]
    assert (table.total, table.trainable, table.non_trainable) == (198_362, 197_338, 1_024)
    # by layer: 5 convs (k=3), 4 BatchNorms of 128 (4 numbers per channel), 5 x 64 flattened
    convs = (3 * 1 * 128 + 128) + 3 * (3 * 128 * 128 + 128) + (3 * 128 * 64 + 64)
    assert convs + 4 * 128 * 4 + _dense(5 * 64, 64, 32, 16, 10) == 198_362
    with pytest.raises(ValueError, match=r"'cnn-teacher' pools five times by 2, so it needs at "
                                         r"least 32 features, got 31"):
        make_model("cnn-teacher", 31, 4)


@pytest.mark.parametrize("name,cell,layers", [
    ("bilstm", "lstm", [(1, 128, 2), (256, 128, 1), (128, 32, 1)]),
    ("bigru", "gru", [(1, 128, 2), (256, 256, 1), (256, 32, 1)]),
])
def test_recurrent_stacks_match_the_notebooks_keras_counts(name, cell, layers):
    # token_size=1 is the notebooks' reading (one feature per step)
    model = make_model(name, 176, 10, token_size=1)
    torch_count = int(parameter_table({name: model}, 176, 10).iloc[0].total)
    keras_rnn = _keras_lstm if cell == "lstm" else _keras_gru
    keras = sum(n * keras_rnn(d, u) for d, u, n in layers) + _dense(32, 32, 16, 16, 10)
    # PyTorch's LSTM has a second bias vector (4 * units per direction); its GRU counts as Keras'
    extra = sum(n * 4 * u for _, u, n in layers) if cell == "lstm" else 0
    assert torch_count == keras + extra
    assert (keras, torch_count) == {"bilstm": (352_874, 354_538),
                                    "bigru": (525_226, 525_226)}[name]
