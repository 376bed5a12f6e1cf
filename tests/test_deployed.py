"""FLOPs of an ONNX graph (graph_flops) and the report's "Deployed student" section."""

import io
import json
import warnings

import pytest
import torch
from torch import nn

from fearkd.deploy.graph import graph_flops
from fearkd.reporting.deployed import deployed_section


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(3, 8, 5, groups=1)
        self.grouped = nn.Conv1d(8, 8, 3, groups=4, bias=False)
        self.fc = nn.Linear(8 * 14, 10)
        self.w = nn.Parameter(torch.randn(10, 4))

    def forward(self, x):
        h = self.grouped(torch.relu(self.conv(x))).flatten(1)
        return self.fc(h) @ self.w


def _onnx(model, example) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), buf, input_names=["x"],
                          dynamic_axes={"x": {0: "batch"}}, dynamo=False)
    return buf.getvalue()


def test_graph_flops_counts_conv_gemm_matmul_at_batch_one():
    # hand count: conv 8 out ch x 16 steps x (3 x 5), grouped conv 8 x 14 x (2 x 3),
    # linear 10 x 112, matmul 4 x 10; the export batch (7) must not enter the count
    expected = 2 * (8 * 16 * 15 + 8 * 14 * 6 + 10 * 112 + 4 * 10)
    assert graph_flops(_onnx(_Net(), torch.zeros(7, 3, 20))) == expected


def test_graph_flops_refuses_uninferable_shapes():
    import onnx
    from onnx import TensorProto, helper

    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", "k"])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, ["k", "n"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["y"], name="mm")],
                              "g", [a, b], [y])
    proto = helper.make_model(graph)
    assert isinstance(proto, onnx.ModelProto)
    with pytest.raises(ValueError, match="shapes of MatMul node 'mm' could not be inferred"):
        graph_flops(proto.SerializeToString())


def _run(path):
    import pandas as pd

    from fearkd.reporting.rundata import RunData

    return RunData(path=path, results=pd.DataFrame())


def test_deployed_section_reads_summary_and_card(tmp_path):
    assert deployed_section(_run(tmp_path)) is None  # nothing deployed: no section
    folder = tmp_path / "deployed"
    folder.mkdir()
    summary = {"bundle": str(folder / "student.fkd"), "bundle_bytes": 2048, "stage": "s/t/u",
               "model": "cnn", "n_params": 1234, "flops_per_window": 5678, "epochs": 1,
               "training_subjects": ["s01", "s02"], "unseen": {"subjects": ["s01"], "trials": 3},
               "windows": {"predict": 10, "stream": 12, "matched": 10},
               "latency_ms": {"p50": 0.25, "p99": 1.5}, "agreement": 0.9,
               "max_abs_diff": 3e-7}
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "MODEL_CARD.md").write_text("# Model card: test")
    sec = deployed_section(_run(tmp_path))
    assert sec.id == "deployed" and sec.title == "Deployed student"
    table = sec.blocks[0].table
    values = dict(zip(table.index, table["Value"], strict=True))
    assert values["Bundle"].endswith("(2.0 KiB)")
    assert values["FLOPs per window"].startswith("5,678")
    assert "p50 0.250 ms, p99 1.500 ms" == values["Streaming latency"]
    assert values["Stream vs predict"].startswith("90.0 % of 10 windows")
    assert sec.blocks[1].text == "# Model card: test"


@pytest.mark.parametrize("name", ["attention", "ann"])
def test_model_exported_with_the_window_graph_runs_at_any_batch(name):
    """The graph is exported at batch 2; the stream runs it at batch 1 (the attention model's
    class token once had the export's batch size baked in)."""
    import numpy as np

    from fearkd.deploy.bundle import build_bundle
    from fearkd.deploy.graph import WindowSpec
    from fearkd.models.registry import make_model

    spec = WindowSpec(("a", "b", "c"), 2, 64.0, 128, (("theta", 4.0, 8.0), ("alpha", 8.0, 13.0)),
                      True, False, True)
    torch.manual_seed(0)
    model = make_model(name, spec.n_features, 3)
    b = build_bundle(model, feature_names=[f"f{i}" for i in range(spec.n_features)],
                     class_names=["x", "y", "z"], spec=spec)
    x = np.random.default_rng(0).normal(size=(3, 3, 128)).astype(np.float32)
    for n in (1, 3):
        np.testing.assert_allclose(b.predict_proba_onnx(x[:n]), b.predict_proba(x[:n]),
                                   atol=1e-5)
