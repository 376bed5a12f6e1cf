"""fearkd: fear-level detection from EEG and peripheral physiology.

Transfer learning (pretrain on valence/arousal, new head, fine-tune on fear) and knowledge
distillation (a teacher on every channel teaches a student on few), evaluated honestly.
"""

from ._version import __version__


def load_bundle(path):
    """Read a model bundle (see :func:`fearkd.deploy.bundle.load_bundle`)."""
    from .deploy.bundle import load_bundle as _load

    return _load(path)


__all__ = ["__version__", "load_bundle"]
