"""The deployable model: train on all subjects, bundle, predict, export to ONNX.

:func:`load_bundle` reads a bundle (:mod:`fearkd.deploy.bundle`); :func:`train_final` trains
one (:mod:`fearkd.deploy.train`); :mod:`fearkd.deploy.graph` puts the features inside the ONNX
graph; :mod:`fearkd.deploy.predict` applies a bundle to a dataset; :mod:`fearkd.deploy.card`
writes the model card. The bundle format is documented in ``docs/BUNDLE.md``.
"""

from .bundle import Bundle, BundleError, build_bundle, load_bundle

__all__ = ["Bundle", "BundleError", "build_bundle", "load_bundle"]
