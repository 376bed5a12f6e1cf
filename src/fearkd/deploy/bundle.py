"""The bundle: one zip file that holds a trained model and everything needed to use it.

Members (see ``docs/BUNDLE.md``): ``manifest.json`` (what the model expects and was trained on),
``model.safetensors`` (the network's weights), ``model.onnx`` (features + normaliser + network +
temperature + softmax as one graph) and, when a cross-validation was run, ``MODEL_CARD.md``. The
manifest's ``content_hash`` is the SHA-256 of the manifest without that key and of every other
member: :func:`load_bundle` recomputes it and refuses a bundle that does not match, or whose
``requires_fearkd`` is newer than the installed fearkd. Nothing is unpickled: JSON, safetensors
and ONNX are data formats.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import zipfile
from pathlib import Path

import numpy as np

from .._atomic import atomic_open
from ..errors import BundleError
from .window import TEMPERATURE, WindowSpec, window_features

__all__ = ["Bundle", "BundleError", "build_bundle", "load_bundle", "FORMAT", "FORMAT_VERSION"]

logger = logging.getLogger(__name__)

FORMAT = "fearkd-bundle"
FORMAT_VERSION = 1
MEMBERS = ("manifest.json", "model.safetensors", "model.onnx")
CARD = "MODEL_CARD.md"


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in str(text).split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _fearkd_version() -> str:
    from .._version import __version__

    return __version__


def _content_hash(manifest: dict, members: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    body = {k: v for k, v in manifest.items() if k != "content_hash"}
    h.update(json.dumps(body, sort_keys=True).encode())
    for name in sorted(members):
        if name != "manifest.json":
            h.update(name.encode() + b"\0" + hashlib.sha256(members[name]).digest())
    return h.hexdigest()


def _spec_from(manifest: dict) -> WindowSpec | None:
    if manifest["input_kind"] != "samples":
        return None
    r = manifest["recipe"]
    chans = manifest["channels"]
    return WindowSpec(tuple(c["name"] for c in chans),
                      sum(c["features"] == "band_power" for c in chans),
                      float(manifest["sfreq"]), int(manifest["n_samples"]),
                      tuple((b[0], float(b[1]), float(b[2])) for b in r["bands"]),
                      bool(r["log"]), bool(r["relative"]), bool(r.get("log_variance", False)))


class Bundle:
    """A loaded bundle.

    Attributes
    ----------
    manifest : dict
    model : nn.Module
        The network in eval mode (logits out); a loaded bundle builds it from its safetensors
        weights on first use, so the ONNX path (``predict_proba_onnx``, ``fearkd stream``)
        never imports torch.
    class_names : tuple of str
    input_kind : {"samples", "features"}
    spec : WindowSpec or None
        The window the graph takes (``input_kind == "samples"``).
    card : str or None
        ``MODEL_CARD.md``.
    path : Path or None
    """

    def __init__(self, manifest: dict, model, onnx_bytes: bytes, card: str | None = None,
                 path: Path | None = None, weights: bytes | None = None) -> None:
        self.manifest = manifest
        # a loaded bundle builds its torch network on first use (``model``): streaming and
        # predicting through the ONNX graph never import torch
        self._model = None if model is None else model.eval()
        self._weights = weights
        self.onnx_bytes = onnx_bytes
        self.card = card
        self.path = path
        self.class_names = tuple(manifest["classes"]["names"])
        self.input_kind = manifest["input_kind"]
        self.spec = _spec_from(manifest)
        self.mean = np.asarray(manifest["normaliser"]["mean"], dtype=np.float64)
        self.scale = np.asarray(manifest["normaliser"]["scale"], dtype=np.float64)
        # per-user decision thresholds (``fearkd calibrate --thresholds``): added to the logits
        # temperature scaling (``[training] calibrate = "temperature"``): divides the logits
        self.temperature = float((manifest.get("temperature_scaling") or {})
                                 .get("temperature", 1.0))
        offsets = (manifest.get("thresholds") or {}).get("logit_offsets")
        self.logit_offsets = (np.zeros(len(self.class_names)) if offsets is None
                              else np.asarray(offsets, dtype=np.float64))
        self._session = None

    def __repr__(self) -> str:
        return (f"Bundle({self.manifest['model']['name']!r}, input_kind={self.input_kind!r}, "
                f"classes={list(self.class_names)!r})")

    @property
    def model(self):
        """The network (``nn.Module``, eval mode, logits out), built from the bundle's
        safetensors weights on first use."""
        if self._model is None:
            self._model = _build_model(self.manifest, self._weights, self.path)
        return self._model

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(self.manifest["feature_names"])

    def features(self, window_array: np.ndarray) -> np.ndarray:
        """Features of raw windows, shape (n_windows, n_features) (raw bundles only)."""
        if self.spec is None:
            raise BundleError("This bundle's input is features (input_kind='features'); "
                              "pass features to predict_proba_features().")
        return window_features(window_array, self.spec)

    def predict_proba_features(self, X: np.ndarray) -> np.ndarray:
        """Probabilities from features, shape (n_windows, n_features) -> (n_windows, n_classes).

        The NumPy/torch path: the manifest's scaler in float64, the network in float32, the
        logits divided by the temperature (``manifest["temperature_scaling"]``, 1 unless
        trained with ``[training] calibrate = "temperature"``), then the per-user logit
        offsets (``manifest["thresholds"]``, zero unless calibrated) and a softmax; the ONNX
        graph divides and adds the same numbers.
        """
        X = np.asarray(X, dtype=np.float32)
        n = len(self.feature_names)
        if X.ndim != 2 or X.shape[1] != n:
            raise ValueError(f"'X' must have shape (n_windows, {n}), got {X.shape}.")
        import torch

        z = ((X - self.mean) / self.scale).astype(np.float32)
        with torch.no_grad():
            logits = self.model(torch.as_tensor(z)).double()
        logits = logits / self.temperature + torch.as_tensor(self.logit_offsets)
        return torch.softmax(logits, dim=1).numpy()

    def predict_proba(self, window_array: np.ndarray) -> np.ndarray:
        """Class probabilities of raw windows (the Python path).

        Parameters
        ----------
        window_array : ndarray, shape (n_windows, n_channels, n_samples)
            Raw samples of each window, channels in ``manifest["channels"]`` order at
            ``manifest["sfreq"]`` Hz. For a features bundle: (n_windows, n_features).

        Returns
        -------
        ndarray of float64, shape (n_windows, n_classes)
        """
        if self.spec is None:
            return self.predict_proba_features(window_array)
        return self.predict_proba_features(self.features(window_array))

    def onnx_session(self):
        """The bundle's graph as an onnxruntime session (created once, then cached).

        One thread (``intra_op_num_threads = inter_op_num_threads = 1``, sequential
        execution, no spinning thread pool), every graph optimisation
        (``ORT_ENABLE_ALL``), CPU provider.
        """
        if self._session is None:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self._session = ort.InferenceSession(self.onnx_bytes, opts,
                                                 providers=["CPUExecutionProvider"])
            self._input_name = self._session.get_inputs()[0].name
        return self._session

    def predict_proba_onnx(self, window_array: np.ndarray) -> np.ndarray:
        """The same probabilities from the bundle's ONNX graph in onnxruntime (one thread)."""
        session = self.onnx_session()
        x = np.ascontiguousarray(window_array, dtype=np.float32)
        return session.run(None, {self._input_name: x})[0]

    def predict(self, recordings, **options):
        """Predictions per window of a fearkd Recordings, as a DataFrame.

        See :func:`fearkd.deploy.predict.predict_recordings` for ``options``
        (``channel_map``, ``strict_rate``) and the columns.
        """
        from .predict import predict_recordings

        return predict_recordings(self, recordings, **options)

    def save(self, path) -> Path:
        """Write the bundle (atomically) to ``path``."""
        # a loaded bundle whose network was never built keeps its stored weights as they are
        weights = self._weights if self._model is None else None
        return _write(Path(path), self.manifest, self._model, self.onnx_bytes, self.card,
                      weights)


def build_bundle(model, *, feature_names, class_names, mean=None, scale=None,
                 spec: WindowSpec | None = None, recipe: dict | None = None,
                 channels: list[dict] | None = None, extra: dict | None = None,
                 card: str | None = None, temperature: dict | None = None) -> Bundle:
    """Assemble a bundle in memory (the ONNX graph is exported here).

    Parameters
    ----------
    model : nn.Module
        A fearkd network (has ``.spec``).
    feature_names : sequence of str
        The network's input columns, in order.
    class_names : sequence of str
    mean, scale : ndarray, shape (n_features,), optional
        Normaliser; default identity.
    spec : WindowSpec, optional
        Given: the graph takes raw samples (``input_kind = "samples"``); else features.
    recipe, channels : optional
        Feature recipe settings and per-channel descriptions for the manifest.
    extra : dict, optional
        More manifest keys (labels, training data, windowing...).
    card : str, optional
        Model card text.
    temperature : dict, optional
        Temperature scaling: ``{"temperature": T, ...}`` (more keys say where ``T`` was
        fitted); stored as the manifest's ``temperature_scaling`` and divided into the logits
        by the ONNX graph (initialiser ``temperature``). Default: none (``T = 1``).
    """
    n = len(feature_names)
    t_value = 1.0 if temperature is None else float(temperature["temperature"])
    mean = np.zeros(n) if mean is None else np.asarray(mean, dtype=np.float64)
    scale = np.ones(n) if scale is None else np.asarray(scale, dtype=np.float64)
    if spec is not None and spec.n_features != n:
        raise ValueError(f"The window spec gives {spec.n_features} features for {n} names.")
    model = model.cpu().eval()
    import torch

    from .graph import FeatureGraph, export_onnx

    onnx_bytes = export_onnx(FeatureGraph(model, mean, scale, spec, temperature=t_value))
    import onnx

    ms = model.spec
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "requires_fearkd": _fearkd_version(),
        "versions": {"fearkd": _fearkd_version(), "torch": torch.__version__,
                     "onnx": onnx.__version__, "numpy": np.__version__},
        "input_kind": "samples" if spec is not None else "features",
        "model": {"name": ms.name, "n_features": ms.n_features, "n_outputs": ms.n_outputs,
                  "params": json.loads(json.dumps(ms.params)),
                  "n_params": int(sum(p.numel() for p in model.parameters()))},
        "feature_names": [str(f) for f in feature_names],
        "classes": {"names": [str(c) for c in class_names]},
        "normaliser": {"kind": "standard", "mean": mean.tolist(), "scale": scale.tolist(),
                       "onnx_initialisers": ["norm_mean", "norm_scale"]},
        "recipe": recipe or {},
        "channels": channels or [],
        "onnx": {"input": "samples" if spec is not None else "features",
                 "output": "probabilities", "opset": 17},
    }
    if spec is not None:
        # what the graph computes, whatever else the caller's recipe says
        manifest["recipe"] = {**manifest["recipe"], "method": "periodogram",
                              "bands": [list(b) for b in spec.bands], "log": spec.log,
                              "relative": spec.relative, "log_variance": spec.log_variance}
        if not manifest["channels"]:
            manifest["channels"] = [
                {"name": c, "modality": "eeg" if i < spec.n_eeg else "misc",
                 "unit": "as recorded", "sfreq": spec.sfreq,
                 "features": "band_power" if i < spec.n_eeg else "mean_var"}
                for i, c in enumerate(spec.channels)]
        manifest["sfreq"] = spec.sfreq
        manifest["n_samples"] = spec.n_samples
    if temperature is not None:
        manifest["temperature_scaling"] = {**temperature, "temperature": t_value,
                                           "onnx_initialiser": TEMPERATURE}
    manifest.update(extra or {})
    return Bundle(manifest, model, onnx_bytes, card)


def _members(manifest: dict, model, onnx_bytes: bytes, card: str | None,
             weights: bytes | None = None) -> dict[str, bytes]:
    if weights is None:
        from safetensors.torch import save

        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        weights = save(state)
    members = {"model.safetensors": weights, "model.onnx": onnx_bytes}
    if card is not None:
        members[CARD] = card.encode()
    manifest = dict(manifest)
    manifest["content_hash"] = _content_hash(manifest, members)
    members["manifest.json"] = json.dumps(manifest, indent=1).encode()
    return members


def _write(path: Path, manifest, model, onnx_bytes, card, weights: bytes | None = None) -> Path:
    members = _members(manifest, model, onnx_bytes, card, weights)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in ("manifest.json", "model.safetensors", "model.onnx", CARD):
            if name in members:
                zf.writestr(name, members[name])
    with atomic_open(path) as fh:
        fh.write(buf.getvalue())
    return path


def load_bundle(path) -> Bundle:
    """Read and verify a bundle written by ``fearkd train`` or :meth:`Bundle.save`.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    Bundle

    Raises
    ------
    BundleError
        Not a readable bundle, a member missing, a content hash that does not match (the file
        was altered or damaged), or a bundle that needs a newer fearkd.
    """
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"No bundle at '{path}': expected a file written by `fearkd train "
                          f"--out MODEL`.")
    try:
        with zipfile.ZipFile(path) as zf:
            members = {n: zf.read(n) for n in zf.namelist()}
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise BundleError(f"'{path}' is not a readable fearkd bundle (a zip file): {exc}; "
                          f"write it again with `fearkd train`.") from None
    except zipfile.error as exc:  # bad CRC of a damaged member
        raise BundleError(f"'{path}' is damaged ({exc}); write it again with `fearkd train`.") \
            from None
    missing = [m for m in MEMBERS if m not in members]
    if missing:
        raise BundleError(f"'{path}' lacks {missing} (a bundle holds {list(MEMBERS)}); write it "
                          f"again with `fearkd train`.")
    try:
        manifest = json.loads(members["manifest.json"])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"'{path}': manifest.json is not JSON ({exc}).") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"'{path}' is not a fearkd bundle: manifest.json has no format "
                          f"{FORMAT!r}.")
    needed, have = str(manifest.get("requires_fearkd", "0")), _fearkd_version()
    if (int(manifest.get("format_version", 0)) > FORMAT_VERSION
            or _version_tuple(needed) > _version_tuple(have)):
        raise BundleError(f"'{path}' needs fearkd >= {needed} (bundle format "
                          f"{manifest.get('format_version')}); this is fearkd {have}: upgrade "
                          f"fearkd (pip install -U fearkd).")
    stored = manifest.get("content_hash")
    actual = _content_hash(manifest, members)
    if stored != actual:
        raise BundleError(f"'{path}' does not match its content hash (stored {str(stored)[:12]}, "
                          f"computed {actual[:12]}): the file was altered or damaged; use the "
                          f"bundle `fearkd train` wrote.")
    card = members[CARD].decode() if CARD in members else None
    return Bundle(manifest, None, members["model.onnx"], card, path,
                  weights=members["model.safetensors"])


def _build_model(manifest: dict, weights: bytes | None, path: Path | None):
    """The bundle's torch network from its manifest and safetensors weights (imports torch)."""
    from safetensors.torch import load as load_tensors

    from ..models.registry import make_model

    m = manifest["model"]
    model = make_model(m["name"], int(m["n_features"]), int(m["n_outputs"]), **m["params"])
    try:
        model.load_state_dict(load_tensors(weights))
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise BundleError(f"'{path}': model.safetensors does not fit model {m['name']!r}: "
                          f"{exc}") from None
    return model.eval()
