"""Checkpoints round-trip, write atomically, refuse code and mismatched models or features."""

import numpy as np
import pytest
import torch

from fearkd.errors import CheckpointError
from fearkd.models import make_model
from fearkd.training import fit, load_checkpoint, load_weights, predict_logits, save_checkpoint

NAMES = [f"eeg:C{i}:alpha" for i in range(12)]


def _trained(name="cnn", **params):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 12)).astype(np.float32)
    y = np.arange(64) % 3
    model = make_model(name, 12, 3, random_state=0, **params)
    res = fit(model, X, y, epochs=1, progress=False)
    return res, X


def test_round_trip(tmp_path):
    res, X = _trained("ann", hidden=(8, 4))
    path = save_checkpoint(tmp_path / "sub" / "m.pt", res.model, scaler=res.scaler,
                           feature_names=NAMES, class_names=["none", "low", "high"],
                           metadata={"fold": 2, "seeds": (1, 2)})
    ck = load_checkpoint(path, feature_names=NAMES)
    assert ck.spec.name == "ann" and ck.spec.params == {"hidden": [8, 4]}
    assert ck.feature_names == tuple(NAMES) and ck.class_names == ("none", "low", "high")
    assert ck.metadata == {"fold": 2, "seeds": [1, 2]}
    np.testing.assert_array_equal(ck.scaler.mean_, res.scaler.mean_)
    np.testing.assert_array_equal(
        predict_logits(ck.model, X, scaler=ck.scaler),
        predict_logits(res.model, X, scaler=res.scaler))
    assert [p.name for p in path.parent.iterdir()] == ["m.pt"]  # no temp file left


def test_cnn_round_trip_keeps_running_stats(tmp_path):
    res, _ = _trained("cnn")
    path = save_checkpoint(tmp_path / "c.pt", res.model)
    ck = load_checkpoint(path)
    for key, value in res.model.state_dict().items():
        assert torch.equal(ck.model.state_dict()[key], value.cpu()), key
    assert ck.scaler is None and ck.feature_names is None


def test_other_feature_list_is_refused(tmp_path):
    res, _ = _trained("ann")
    path = save_checkpoint(tmp_path / "m.pt", res.model, feature_names=NAMES)
    other = NAMES[:-1] + ["gsr:GSR:mean"]
    with pytest.raises(CheckpointError, match=r"trained on 12 features .* but got 12 .*missing: "
                                              r"\['eeg:C11:alpha'\], unexpected: "
                                              r"\['gsr:GSR:mean'\]"):
        load_checkpoint(path, feature_names=other)
    with pytest.raises(CheckpointError, match=r"but got 11"):
        load_checkpoint(path, feature_names=NAMES[:11])


def test_other_model_is_refused(tmp_path):
    res, _ = _trained("ann")
    path = save_checkpoint(tmp_path / "m.pt", res.model)
    with pytest.raises(CheckpointError, match=r"holds model \('ann', 12, 3\) .* loaded into "
                                              r"\('cnn', 12, 3\)"):
        load_weights(make_model("cnn", 12, 3), path)
    with pytest.raises(CheckpointError, match=r"holds model \('ann', 12, 3\) .* \('ann', 12, 4\)"):
        load_weights(make_model("ann", 12, 4), path)
    with pytest.raises(CheckpointError, match=r"weights of 'ann' \{\} that do not fit"):
        load_weights(make_model("ann", 12, 3, hidden=(5,)), path)


def test_code_in_file_is_never_run(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"format": "fearkd-checkpoint", "x": Evil()}, path, pickle_protocol=2)
    with pytest.raises(CheckpointError, match=r"not a readable fearkd checkpoint"):
        load_checkpoint(path)
    plain = tmp_path / "plain.pt"
    torch.save({"a": torch.zeros(1)}, plain)
    with pytest.raises(CheckpointError, match=r"not a fearkd checkpoint"):
        load_checkpoint(plain)
    with pytest.raises(CheckpointError, match=r"No checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt")


def test_save_errors(tmp_path):
    res, _ = _trained("ann")
    with pytest.raises(ValueError, match=r"'feature_names' has 2 names but the model takes 12"):
        save_checkpoint(tmp_path / "m.pt", res.model, feature_names=["a", "b"])
    with pytest.raises(TypeError, match=r"needs a .spec|it needs a .spec"):
        save_checkpoint(tmp_path / "m.pt", torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match=r"Checkpoint values must be plain types"):
        save_checkpoint(tmp_path / "m.pt", res.model, metadata={"x": object()})
    with pytest.raises(TypeError, match=r"fitted StandardScaler or None"):
        save_checkpoint(tmp_path / "m.pt", res.model, scaler="standard")
    assert not list(tmp_path.iterdir())
