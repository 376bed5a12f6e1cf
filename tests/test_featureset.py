"""FeatureSet: validation, selection, and a pickle-free .npz that NumPy alone reads."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fearkd.errors import FormatError
from fearkd.features.featureset import FeatureSet


def make_set(n=6, names=("eeg:Fp1:alpha", "eeg:Fp1:theta", "gsr:GSR:mean")):
    rng = np.random.default_rng(0)
    meta = pd.DataFrame({
        "dataset": "deap", "subject": ["s01"] * 3 + ["s02"] * (n - 3),
        "trial": [1, 1, 2] + [1] * (n - 3), "window": [0, 1, 0] + list(range(n - 3)),
        "t_start": np.arange(n) * 1.0, "t_stop": np.arange(n) + 2.0,
        "valence": np.linspace(1, 9, n), "y_fear": [0, 0, -1] + [3] * (n - 3),
        "y_source": [1, 1, 8] + [2] * (n - 3),
    })
    return FeatureSet(rng.standard_normal((n, len(names))), names, meta, {"recipe": "x"})


def test_basic_properties():
    fs = make_set()
    assert fs.X.dtype == np.float32 and fs.X.shape == (6, 3)
    assert len(fs) == 6 and fs.n_features == 3
    assert fs.rating_columns == ("valence",)
    assert fs.metadata["y_fear"].dtype == np.int64
    assert "n_fear_labelled=5" in repr(fs)


def test_select_columns_by_name():
    fs = make_set()
    sub = fs.select_columns(["gsr:GSR:mean", "eeg:Fp1:alpha"])
    assert sub.feature_names == ("gsr:GSR:mean", "eeg:Fp1:alpha")
    np.testing.assert_array_equal(sub.X, fs.X[:, [2, 0]])
    with pytest.raises(ValueError, match=r"Unknown feature name\(s\) \['eeg:Cz:alpha'\]"):
        fs.select_columns(["eeg:Cz:alpha"])
    with pytest.raises(TypeError, match="expects a sequence of feature names, got a str"):
        fs.select_columns("gsr:GSR:mean")


def test_select_rows_mask_and_index():
    fs = make_set()
    sub = fs.select_rows(fs.metadata["subject"].to_numpy() == "s02")
    assert len(sub) == 3 and list(sub.metadata.index) == [0, 1, 2]
    np.testing.assert_array_equal(sub.X, fs.X[3:])
    np.testing.assert_array_equal(fs.select_rows([4, 0]).X, fs.X[[4, 0]])
    assert len(fs.labelled()) == 5 and len(fs.labelled("source")) == 6
    with pytest.raises(ValueError, match=r"A row mask must have shape \(6,\), got \(2,\)"):
        fs.select_rows(np.array([True, False]))
    with pytest.raises(IndexError, match=r"Row positions must lie in \[0, 6\)"):
        fs.select_rows([7])
    with pytest.raises(TypeError, match="boolean mask or integer positions"):
        fs.select_rows([0.5])
    with pytest.raises(ValueError, match="'target' must be 'fear' or 'source'"):
        fs.labelled("valence")


def test_save_load_roundtrip_numpy_only(tmp_path):
    fs = make_set()
    path = fs.save(tmp_path / "sub" / "features.npz")
    with np.load(path, allow_pickle=False) as data:
        files = set(data.files)
        assert {"X", "feature_names", "meta_subject", "meta_y_fear", "meta_valence"} <= files
        assert data["meta_subject"].dtype.kind == "U"
        assert data["feature_names"].dtype.kind == "U"
        np.testing.assert_array_equal(data["X"], fs.X)
        assert json.loads(str(data["info"])) == {"recipe": "x"}
    back = FeatureSet.load(path)
    np.testing.assert_array_equal(back.X, fs.X)
    assert back.feature_names == fs.feature_names
    assert back.info == fs.info
    assert list(back.metadata.columns) == list(fs.metadata.columns)
    pd.testing.assert_frame_equal(back.metadata, fs.metadata, check_dtype=False)
    assert not list(tmp_path.glob("sub/*.tmp"))


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="No FeatureSet file at"):
        FeatureSet.load(tmp_path / "nope.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, X=np.zeros((2, 2)))
    with pytest.raises(FormatError,
                       match=r"lacks array\(s\) \['feature_names', 'metadata_columns'\]"):
        FeatureSet.load(bad)
    bad2 = tmp_path / "bad2.npz"
    np.savez(bad2, X=np.zeros((1, 1)), feature_names=np.array(["a"]),
             metadata_columns=np.array(["subject"]))
    with pytest.raises(FormatError,
                       match=r"lacks metadata array\(s\) for column\(s\) \['subject'\]"):
        FeatureSet.load(bad2)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, X=np.array([object()], dtype=object))
    with pytest.raises(FormatError, match="not a FeatureSet .npz without pickles"):
        FeatureSet.load(pickled)


def test_validation_errors():
    fs = make_set()
    meta, names = fs.metadata, fs.feature_names
    with pytest.raises(ValueError, match=r"'X' has 3 column\(s\) but 'feature_names' has 2"):
        FeatureSet(fs.X, names[:2], meta)
    with pytest.raises(ValueError, match=r"'X' has 5 row\(s\) but 'metadata' has 6"):
        FeatureSet(fs.X[:5], names, meta)
    with pytest.raises(ValueError, match=r"must have shape \(n_windows, n_features\)"):
        FeatureSet(fs.X[0], names, meta)
    X = fs.X.copy()
    X[1, 2] = np.nan
    X[0, 0] = np.inf
    with pytest.raises(ValueError, match=r"2 non-finite value\(s\).*\['eeg:Fp1:alpha', "
                                         r"'gsr:GSR:mean'\]"):
        FeatureSet(X, names, meta)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['y_fear'\]"):
        FeatureSet(fs.X, names, meta.drop(columns="y_fear"))
    with pytest.raises(ValueError, match=r"Duplicate feature names: \['a'\]"):
        FeatureSet(fs.X, ["a", "a", "b"], meta)
    with pytest.raises(TypeError, match="'X' must be a NumPy array"):
        FeatureSet(fs.X.tolist(), names, meta)
    with pytest.raises(TypeError, match="'metadata' must be a pandas DataFrame"):
        FeatureSet(fs.X, names, meta.to_dict())
    with pytest.raises(TypeError, match="'X' must be numeric"):
        FeatureSet(fs.X.astype(str), names, meta)


def test_concat():
    a, b = make_set(), make_set()
    both = FeatureSet.concat([a, b])
    assert len(both) == 12 and list(both.metadata.index) == list(range(12))
    with pytest.raises(ValueError, match="different feature names"):
        FeatureSet.concat([a, a.select_columns(["gsr:GSR:mean"])])
    with pytest.raises(ValueError, match="needs at least one FeatureSet"):
        FeatureSet.concat([])


def test_feature_names_must_not_be_a_string():
    fs = make_set()
    with pytest.raises(TypeError, match="'feature_names' must be a sequence of str, got a str"):
        FeatureSet(fs.X, "abc", fs.metadata)
