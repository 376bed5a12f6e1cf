"""The one training loop: seeding, splits, selection, plug-ins (loss, targets, freeze), errors."""

import numpy as np
import pytest
import torch
from sklearn.utils.class_weight import compute_class_weight

from fearkd.config import load_config
from fearkd.errors import ConfigError, LabelError
from fearkd.models import make_model
from fearkd.training import (
    EarlyStopping,
    FitSettings,
    class_weights,
    fit,
    inner_split,
    make_optimizer,
    predict_logits,
    train_epoch,
)


def _data(n=160, n_features=16, n_classes=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features)).astype(np.float32)
    y = (np.arange(n) % n_classes).astype(np.int64)
    X[:, 0] += y  # learnable signal
    groups = np.arange(n) // 8
    return X, y, groups


def _fit(model, X, y, **kw):
    kw = {"epochs": 2, "batch_size": 32, "progress": False, **kw}
    return fit(model, X, y, **kw)


def test_same_seed_identical_weights_and_predictions():
    X, y, groups = _data()
    states, preds = [], []
    for _ in range(2):
        model = make_model("cnn", 16, 4, random_state=0)
        res = _fit(model, X, y, groups=groups, random_state=7)
        states.append(res.model.state_dict())
        preds.append(predict_logits(res.model, X, scaler=res.scaler))
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key
    np.testing.assert_array_equal(preds[0], preds[1])
    other = _fit(make_model("cnn", 16, 4, random_state=0), X, y, groups=groups, random_state=8)
    assert not torch.equal(other.model.fc1.weight, states[0]["fc1.weight"])


def test_history_selection_and_scaler():
    X, y, groups = _data()
    res = _fit(make_model("ann", 16, 4, random_state=0), X, y, groups=groups, epochs=6,
               patience=1)
    hist = res.history
    assert list(hist.columns) == ["epoch", "train_loss", "train_accuracy", "val_loss",
                                  "val_accuracy", "seconds"]
    assert res.best_epoch == int(hist.loc[hist["val_loss"].idxmin(), "epoch"])
    if res.stopped_early:
        assert len(hist) == res.best_epoch + 2
    # Scaler fitted on the inner training rows only.
    np.testing.assert_allclose(res.scaler.mean_, X[res.train_index].mean(0), rtol=1e-5,
                               atol=1e-6)
    assert not set(res.train_index) & set(res.val_index)
    # The kept weights are the best epoch's: recompute its validation accuracy.
    logits = predict_logits(res.model, X[res.val_index], scaler=res.scaler)
    acc = (logits.argmax(1) == y[res.val_index]).mean()
    assert acc == pytest.approx(hist.loc[res.best_epoch - 1, "val_accuracy"])


def test_inner_split_is_grouped_and_stratified():
    _, y, groups = _data(n=400)
    train, val = inner_split(y, groups, 0.2, random_state=0)
    assert not set(groups[train]) & set(groups[val])
    assert len(train) + len(val) == 400
    assert set(y[val]) == set(y)
    train2, val2 = inner_split(y, None, 0.25, random_state=0)
    np.testing.assert_array_equal(np.bincount(y[val2]), [25, 25, 25, 25])
    with pytest.raises(ValueError, match=r"grouped validation split from 1 group"):
        inner_split(y, np.zeros(400), 0.2)
    with pytest.raises(ValueError, match=r"'groups' has 3 entries but there are 400 rows"):
        inner_split(y, [1, 2, 3], 0.2)


def test_explicit_validation_set():
    X, y, _ = _data()
    Xv, yv, _ = _data(n=40, seed=1)
    res = _fit(make_model("ann", 16, 4, random_state=0), X, y, validation=(Xv, yv), epochs=3)
    assert len(res.val_index) == 0 and len(res.train_index) == len(X)
    logits = predict_logits(res.model, Xv, scaler=res.scaler)
    acc = (logits.argmax(1) == yv).mean()
    assert acc == pytest.approx(res.history.loc[res.best_epoch - 1, "val_accuracy"])


def test_no_validation_trains_every_epoch():
    X, y, _ = _data()
    res = _fit(make_model("ann", 16, 4), X, y, val_fraction=0.0, epochs=3, scaler=None)
    assert len(res.history) == 3 and res.best_epoch == 3 and res.scaler is None
    assert res.history["val_loss"].isna().all()


def test_custom_loss_gets_aligned_targets():
    X, y, groups = _data()
    targets = np.stack([y, -y], 1).astype(np.float32)  # a per-row target carrying the label
    seen = []

    def loss(logits, yb, tb, xb):
        seen.append(torch.equal(tb[:, 0].long(), yb) and torch.equal(tb[:, 1], -tb[:, 0])
                    and xb.shape == (len(yb), 16))
        return torch.nn.functional.cross_entropy(logits, yb)

    _fit(make_model("ann", 16, 4), X, y, targets=targets, loss=loss, groups=groups)
    assert seen and all(seen)


def test_freeze_trunk_keeps_conv_and_bn_stats():
    X, y, _ = _data()
    model = make_model("cnn", 16, 4, random_state=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = _fit(model, X, y, freeze="trunk")
    after = res.model.state_dict()
    for key in ("conv1.weight", "conv2.weight", "bn1.weight", "bn1.running_mean",
                "bn2.running_var"):
        assert torch.equal(before[key], after[key]), key
    assert not torch.equal(before["fc1.weight"], after["fc1.weight"])
    assert "conv1.weight" in res.frozen


def test_all_but_head_trains_only_head():
    X, y, _ = _data()
    model = make_model("lstm", 16, 4, hidden_size=4, random_state=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = _fit(model, X, y, freeze="all-but-head")
    changed = {k for k, v in res.model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"head.weight", "head.bias"}


def test_class_weights_match_sklearn():
    y = np.array([0, 0, 0, 1, 2, 2])
    ours = class_weights("balanced", y, 4).numpy()
    ref = compute_class_weight("balanced", classes=np.array([0, 1, 2]), y=y)
    np.testing.assert_allclose(ours[:3], ref, rtol=1e-6)
    assert ours[3] == 0.0
    np.testing.assert_allclose(class_weights({1: 3.0}, y, 3).numpy(), [1, 3, 1])
    X, yy, _ = _data()
    _fit(make_model("ann", 16, 4), X, yy, class_weight="balanced", epochs=1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_make_optimizer_is_fused_adam_with_the_same_update(dtype):
    torch.manual_seed(0)
    params = [torch.randn(7, 5, dtype=dtype), torch.randn(3, dtype=dtype)]
    grads = [[torch.randn_like(p) for p in params] for _ in range(4)]
    a = [p.clone().requires_grad_() for p in params]
    b = [p.clone().requires_grad_() for p in params]
    fused = make_optimizer(a, lr=1e-2, weight_decay=1e-3)
    plain = torch.optim.Adam(b, lr=1e-2, weight_decay=1e-3)
    assert fused.defaults["fused"] is True
    for step in grads:
        for opt, ps in ((fused, a), (plain, b)):
            for p, g in zip(ps, step, strict=True):
                p.grad = g.clone()
            opt.step()
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y)
    assert not torch.equal(a[0], params[0])


def test_train_epoch_counts_every_row():
    X, y, _ = _data(n=70)
    # no dropout, so the training-mode pass equals the eval-mode one it is compared with
    model = make_model("ann", 16, 4, random_state=0, dropout=0.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    loss, acc = train_epoch(model, opt, Xt, yt, batch_size=32, order=torch.arange(70))
    model.eval()
    with torch.no_grad():
        logits = model(Xt)
    assert loss == pytest.approx(torch.nn.functional.cross_entropy(logits, yt).item(), rel=1e-5)
    assert acc == pytest.approx((logits.argmax(1) == yt).float().mean().item())


def test_bad_inputs():
    X, y, _ = _data()
    model = make_model("ann", 16, 4)
    with pytest.raises(LabelError, match=r"labels \[4, 5\] outside 0..3 \(the model has 4"):
        _fit(model, X, np.where(y == 0, 4, np.where(y == 1, 5, y)))
    with pytest.raises(LabelError, match=r"single class \(\[2\]\)"):
        _fit(model, X, np.full(len(X), 2))
    bad = X.copy()
    bad[3, 1] = np.nan
    bad[7, 0] = np.inf
    with pytest.raises(ValueError, match=r"'X' contains NaN or Inf in 2 row\(s\) \(first: \[3, 7"):
        _fit(model, bad, y)
    with pytest.raises(ValueError, match=r"'X' has 160 rows but 'y' has 159"):
        _fit(model, X, y[:-1])
    with pytest.raises(ValueError, match=r"'X' has 15 features but the model 'ann' was built "
                                         r"for 16"):
        _fit(model, X[:, :15], y)
    with pytest.raises(ValueError, match=r"'targets' has 3 rows but X has 160"):
        _fit(model, X, y, targets=np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"\[training\] epochs must be a positive int, got 0"):
        _fit(model, X, y, epochs=0)
    with pytest.raises(ValueError, match=r"\[training\] val_fraction must be a number in "
                                         r"\[0, 1\), got 1.0"):
        _fit(model, X, y, val_fraction=1.0)
    with pytest.raises(ValueError, match=r"Invalid value for '\[training\] monitor'"):
        _fit(model, X, y, monitor="loss")
    with pytest.raises(ValueError, match=r"Invalid value for '\[training\] class_weight'"):
        _fit(model, X, y, class_weight="auto")
    with pytest.raises(TypeError, match=r"Unknown training setting\(s\) \['epoch'\]"):
        _fit(model, X, y, epoch=3)
    with pytest.raises(TypeError, match=r"'settings' must be a FitSettings, got dict"):
        fit(model, X, y, {"epochs": 2})
    with pytest.raises(ValueError, match=r"class_weight names class 9, outside 0..3"):
        _fit(model, X, y, class_weight={9: 1.0})
    with pytest.raises(ValueError, match=r"Invalid value for 'scaler'"):
        _fit(model, X, y, scaler="minmax")
    with pytest.raises(TypeError, match=r"'validation' must be None or a tuple"):
        _fit(model, X, y, validation=X)
    with pytest.raises(TypeError, match=r"'y' must hold integer class indices"):
        _fit(model, X, y + 0.5)
    with pytest.raises(TypeError, match=r"Linear '.head'"):
        _fit(torch.nn.Linear(16, 4), X, y)
    with pytest.raises(ValueError, match=r"'X' must be 2-D"):
        _fit(model, X[0], y)


@pytest.mark.parametrize("changes, error, match", [
    ({"epochs": 0}, ValueError, r"\[training\] epochs must be a positive int, got 0"),
    ({"batch_size": 2.5}, ValueError, r"\[training\] batch_size must be a positive int, got 2.5"),
    ({"pretrain_epochs": -1}, ValueError, r"\[training\] pretrain_epochs must be a non-negative"),
    ({"lr": 0.0}, ValueError, r"\[training\] lr must be a positive number, got 0.0"),
    ({"weight_decay": -1.0}, ValueError, r"\[training\] weight_decay must be a non-negative"),
    ({"patience": -2}, ValueError, r"\[training\] patience must be a non-negative int"),
    ({"class_weight": 3}, TypeError, r"\[training\] class_weight must be 'balanced', 'none'"),
    ({"num_threads": 0}, ValueError, r"\[training\] num_threads must be a positive int or None"),
    ({"progress": "yes"}, TypeError, r"\[training\] progress must be true or false"),
])
def test_fit_settings_errors_name_the_training_key(changes, error, match):
    with pytest.raises(error, match=match):
        FitSettings(**changes)


def test_fit_settings_phases_and_defaults():
    s = FitSettings(epochs=5, pretrain_epochs=0)
    assert (s.epochs_for("pretrain"), s.epochs_for("finetune")) == (5, 5)
    assert s.replace(pretrain_epochs=9).epochs_for("pretrain") == 9
    assert FitSettings(class_weight=None).class_weight == "none"
    assert FitSettings(class_weight="none").class_weight_policy is None
    with pytest.raises(ValueError, match=r"expected 'pretrain' or 'finetune', got 'warmup'"):
        s.epochs_for("warmup")


def test_settings_object_and_overrides_train_alike():
    X, y, groups = _data()
    a = fit(make_model("ann", 16, 4, random_state=0), X, y,
            FitSettings(epochs=2, batch_size=32), groups=groups)
    b = fit(make_model("ann", 16, 4, random_state=0), X, y, groups=groups, epochs=2,
            batch_size=32)
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k


def test_early_stopping_keeps_the_best_epoch_and_stops_after_patience():
    model = make_model("ann", 4, 2, random_state=0)
    stopper = EarlyStopping("val_loss", patience=1)
    assert not stopper.update(1, 1.0, 0.5, model)
    with torch.no_grad():
        model.head.bias.add_(1.0)
    assert not stopper.update(2, 2.0, 0.9, model)  # worse loss: wait one epoch
    assert stopper.update(3, 1.5, 0.9, model) and stopper.stopped
    assert stopper.best_epoch == 1
    assert not torch.equal(stopper.best_state["head.bias"], model.head.bias)
    by_acc = EarlyStopping("val_accuracy", patience=None)
    for epoch, acc in enumerate([0.2, 0.8, 0.5, 0.4, 0.3], 1):
        assert not by_acc.update(epoch, 9.0, acc, model)
    assert by_acc.best_epoch == 2


def test_training_table_is_read_into_fit_settings(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text("[training]\nepochs = 3\nmonitor = 'val_accuracy'\npatience = 2\n")
    cfg = load_config(path)
    assert isinstance(cfg.training, FitSettings)
    assert cfg.training == FitSettings(epochs=3, monitor="val_accuracy", patience=2)
    assert cfg.replace(training={"lr": 0.01}).training.lr == 0.01  # round trip through a dict
    path.write_text("[training]\nmonitor = 'loss'\n")
    with pytest.raises(ConfigError, match=r"x.toml: Invalid value for '\[training\] monitor': "
                                          r"expected one of 'val_loss', 'val_accuracy', got "
                                          r"'loss'"):
        load_config(path)
    path.write_text("[training]\npatience = -1\n")
    with pytest.raises(ConfigError, match=r"x.toml: \[training\] patience must be a "
                                          r"non-negative int"):
        load_config(path)
    path.write_text("[training]\nprogress = 1\n")
    with pytest.raises(ConfigError, match=r"\[training\] progress: expected true or false, "
                                          r"got 1"):
        load_config(path)
