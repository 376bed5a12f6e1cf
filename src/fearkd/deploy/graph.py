"""Features inside the model: raw samples of one window -> class probabilities, in NumPy and ONNX.

A deployable recipe (:class:`WindowSpec`) computes, from the samples of **one window** only:

- band power of each EEG channel by the ``periodogram`` method of
  :mod:`fearkd.features.spectral` (the window's DFT, bins in ``[lo, hi)`` doubled except DC and
  Nyquist, over ``n ** 2``; then ``relative``, then ``log``, as the recipe says);
- mean and variance (ddof=0) of each peripheral channel, the variance logged
  (``log(max(var, VAR_LOG_FLOOR))``) when the recipe's ``log_variance`` is set
  (``[features] log = true``, as feature extraction does).

:func:`window_features` is the NumPy path (it calls :func:`fearkd.features.spectral.band_power`,
the arithmetic feature extraction uses for ``method="periodogram"``); :class:`FeatureGraph` is
the same arithmetic as plain ``torch.nn`` operations: the DFT is one matmul with a precomputed
cosine and sine basis (side by side) restricted to the bins the bands use, the band sums of
both squares a matmul with a 0/1 (weighted) matrix; when no band includes 0 Hz the window's
mean is removed first and the DFT runs in float32, otherwise in float64. The other feature
arithmetic is float64, and the features are rounded to float32 (as a
:class:`~fearkd.features.featureset.FeatureSet` stores them); the normaliser
``(x - norm_mean) / norm_scale`` and the network run in float32, the logits are
divided by the temperature (a ``Div`` node, initialiser ``temperature``: 1 unless the bundle
was trained with ``[training] calibrate = "temperature"``) and a softmax gives the
probabilities. :func:`export_onnx` writes the module with ``torch.onnx.export``; the
normaliser's parameters are the graph initialisers named ``norm_mean`` and ``norm_scale``
(per-user calibration replaces them), the input is ``samples`` (raw bundles) or ``features``,
the output ``probabilities``. Recipes whose features cannot be graph nodes (physiological
descriptors) export the network from features instead (``input_kind = "features"``).
"""

from __future__ import annotations

import io
import logging
import math
import warnings

import numpy as np
import torch
from torch import nn

from ..features.presets import VAR_LOG_FLOOR
from ..features.spectral import LOG_FLOOR, _band_bins
from .window import (
    INPUT_FEATURES,
    INPUT_SAMPLES,
    NORM_MEAN,
    NORM_SCALE,
    OUTPUT,
    TEMPERATURE,
    WindowSpec,
    window_features,
)

__all__ = ["WindowSpec", "window_features", "FeatureGraph", "export_onnx", "graph_flops",
           "NORM_MEAN",
           "NORM_SCALE", "TEMPERATURE", "INPUT_SAMPLES", "INPUT_FEATURES", "OUTPUT"]

logger = logging.getLogger(__name__)

OPSET = 17


class FeatureGraph(nn.Module):
    """Raw samples (or features) -> features -> normaliser -> network -> probabilities.

    Parameters
    ----------
    model : nn.Module
        A fearkd network (logits out).
    mean, scale : ndarray, shape (n_features,)
        The scaler's parameters (identity when the model was trained unscaled).
    spec : WindowSpec or None
        None: the module's input is the features themselves.
    temperature : float, default 1.0
        ``T > 0`` dividing the logits before the softmax (temperature scaling).
    """

    def __init__(self, model: nn.Module, mean: np.ndarray, scale: np.ndarray,
                 spec: WindowSpec | None = None, temperature: float = 1.0) -> None:
        super().__init__()
        if not (isinstance(temperature, (int, float, np.floating)) and temperature > 0
                and math.isfinite(temperature)):
            raise ValueError(f"'temperature' must be a positive number, got {temperature!r}.")
        self.spec = spec
        self.model = model
        self.register_buffer(NORM_MEAN, torch.as_tensor(np.asarray(mean, np.float32)))
        self.register_buffer(NORM_SCALE, torch.as_tensor(np.asarray(scale, np.float32)))
        self.register_buffer(TEMPERATURE, torch.tensor(float(temperature), dtype=torch.float32))
        if spec is not None and spec.n_eeg:
            n = spec.n_samples
            slices = [_band_bins(lo, hi, n, spec.sfreq) for _, lo, hi in spec.bands]
            bins = sorted({k for sl in slices for k in range(sl.start, sl.stop)})
            t = np.arange(n, dtype=np.float64)[:, None]
            k = np.asarray(bins, dtype=np.float64)[None, :]
            phase = 2.0 * math.pi * np.mod(t * k, n) / n
            weight = np.where((k == 0) | ((n % 2 == 0) & (k == n // 2)), 1.0, 2.0) / float(n) ** 2
            member = np.zeros((len(bins), len(slices)))
            for j, sl in enumerate(slices):
                for i, b in enumerate(bins):
                    member[i, j] = weight[0, i] if sl.start <= b < sl.stop else 0.0
            # one matmul gives the real and imaginary parts side by side; the band sums
            # then add both squares (the member matrix stacked twice)
            basis = np.concatenate([np.cos(phase), np.sin(phase)], axis=1)
            # Without the zero-frequency bin the window's mean changes no band: it is removed
            # first, and the DFT then runs in float32 (about twice as fast) without the
            # cancellation a large offset would cause; with bin 0 in a band, float64.
            self.centre = 0 not in bins
            dtype = np.float32 if self.centre else np.float64
            self.register_buffer("dft_basis", torch.as_tensor(basis.astype(dtype)))
            self.register_buffer("band_sum", torch.as_tensor(
                np.concatenate([member, member]).astype(dtype)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, channels, samples) float32 -> (batch, n_features) float32."""
        spec = self.spec
        blocks = []
        if spec.n_eeg:
            e = x[:, :spec.n_eeg]
            if self.centre:
                e = e.to(torch.float32)
                e = e - e.mean(dim=-1, keepdim=True)
            else:
                e = e.to(torch.float64)
            power = (((e @ self.dft_basis) ** 2) @ self.band_sum).to(torch.float64)
            if spec.relative:
                power = power / power.sum(dim=-1, keepdim=True)
            if spec.log:
                power = torch.log(torch.clamp(power, min=LOG_FLOOR))
            blocks.append(power.reshape(x.shape[0], -1))
        if spec.n_eeg < len(spec.channels):
            p = x[:, spec.n_eeg:].to(torch.float64)
            mean = p.mean(dim=-1)
            var = ((p - mean.unsqueeze(-1)) ** 2).mean(dim=-1)
            if spec.log_variance:
                var = torch.log(torch.clamp(var, min=VAR_LOG_FLOOR))
            blocks.append(torch.stack([mean, var], dim=-1).reshape(x.shape[0], -1))
        return torch.cat(blocks, dim=1).to(torch.float32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities, shape (batch, n_classes)."""
        f = self.features(x) if self.spec is not None else x
        z = (f - getattr(self, NORM_MEAN)) / getattr(self, NORM_SCALE)
        return torch.softmax(self.model(z) / getattr(self, TEMPERATURE), dim=-1)


def export_onnx(graph: FeatureGraph) -> bytes:
    """The ONNX model (bytes) of a :class:`FeatureGraph`, batch size dynamic.

    Raises
    ------
    RuntimeError
        The exported graph uses an operator outside the standard ONNX domain.
    """
    import onnx

    graph = graph.eval()
    spec = graph.spec
    if spec is None:
        name = INPUT_FEATURES
        example = torch.zeros(2, getattr(graph, NORM_MEAN).shape[0])
    else:
        name = INPUT_SAMPLES
        example = torch.zeros(2, len(spec.channels), spec.n_samples)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the TorchScript exporter: offline, deterministic and fast for these small graphs
        torch.onnx.export(graph, (example,), buf, input_names=[name], output_names=[OUTPUT],
                          dynamic_axes={name: {0: "batch"}, OUTPUT: {0: "batch"}},
                          opset_version=OPSET, dynamo=False, do_constant_folding=False)
    proto = onnx.load_from_string(buf.getvalue())
    custom = sorted({n.domain for n in proto.graph.node if n.domain not in ("", "ai.onnx")})
    if custom:
        raise RuntimeError(f"The exported graph uses custom operator domains {custom}.")
    names = {i.name for i in proto.graph.initializer}
    for wanted in (NORM_MEAN, NORM_SCALE, TEMPERATURE):
        if wanted not in names:
            raise RuntimeError(f"The exported graph lost its initialiser {wanted!r}.")
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


#: Operators :func:`graph_flops` counts (the multiply-adds; element-wise work is left out).
FLOP_OPS = ("MatMul", "Gemm", "Conv")


def graph_flops(onnx_bytes: bytes) -> int:
    """Floating-point operations of one window: 2 x multiply-adds of every MatMul, Gemm, Conv.

    The graph's batch dimension is fixed to 1 and every shape comes from
    ``onnx.shape_inference``: MatMul and Gemm count ``2 * prod(output) * K`` (``K`` the
    reduced dimension), Conv ``2 * prod(output) * C_in / group * prod(kernel)``. Small
    constant index chains (the TorchScript exporter's ``Constant -> Unsqueeze -> Slice``) are
    folded first, since shape inference does not propagate them.

    Parameters
    ----------
    onnx_bytes : bytes
        A model whose inputs have the batch as their first dimension.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        A counted node's shapes could not be inferred.
    """
    import onnx

    proto = onnx.load_from_string(onnx_bytes)
    inits = {i.name for i in proto.graph.initializer}
    for inp in proto.graph.input:
        if inp.name not in inits:
            dims = inp.type.tensor_type.shape.dim
            if len(dims):
                dims[0].Clear()
                dims[0].dim_value = 1
    _fold_small_constants(proto)
    proto = onnx.shape_inference.infer_shapes(proto, strict_mode=True, data_prop=True)
    g = proto.graph
    shapes = {}
    for v in list(g.value_info) + list(g.input) + list(g.output):
        dims = v.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            shapes[v.name] = [d.dim_value for d in dims]
    shapes.update({i.name: list(i.dims) for i in g.initializer})
    total = 0
    for node in g.node:
        if node.op_type not in FLOP_OPS:
            continue
        a, b = shapes.get(node.input[0]), shapes.get(node.input[1])
        out = shapes.get(node.output[0])
        if a is None or b is None or out is None:
            raise ValueError(f"graph_flops: the shapes of {node.op_type} node {node.name!r} "
                             f"could not be inferred (inputs {list(node.input)!r}).")
        attrs = {at.name: onnx.helper.get_attribute_value(at) for at in node.attribute}
        if node.op_type == "Conv":
            k = b[1] * int(np.prod(b[2:]))  # weight (C_out, C_in / group, *kernel)
        elif node.op_type == "Gemm":
            k = a[0] if attrs.get("transA", 0) else a[-1]
        else:
            k = a[-1]
        total += 2 * int(np.prod(out)) * int(k)
    return total


def _fold_small_constants(proto, max_size: int = 64) -> None:
    """Replace nodes computed from constants only (index vectors) by initialisers, in place."""
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    known = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer
             if int(np.prod(i.dims)) <= max_size}
    keep = []
    for node in proto.graph.node:
        if node.op_type in ("Constant", "Unsqueeze", "Squeeze", "Concat", "Cast", "Gather",
                            "Reshape") and all(i in known for i in node.input if i):
            outs = ReferenceEvaluator(node).run(None, {i: known[i] for i in node.input if i})
            if all(np.size(o) <= max_size for o in outs):
                for name, value in zip(node.output, outs, strict=True):
                    known[name] = np.asarray(value)
                    proto.graph.initializer.append(numpy_helper.from_array(np.asarray(value),
                                                                           name))
                continue
        keep.append(node)
    del proto.graph.node[:]
    proto.graph.node.extend(keep)
