"""On-disk cache of extracted features, one file per subject, under a content hash.

A cached entry is a :class:`~fearkd.features.featureset.FeatureSet` ``.npz`` named
``<dataset>-<subject>-<key>.npz`` in the ``cache_dir`` the caller gives (fearkd never picks
a cache location itself, so nothing lands inside a source tree). The key is the SHA-256 of:

- the **input fingerprint**: size and modification time (ns) of every file listed in
  ``recordings.description["files"]``; without that list, of every file under
  ``description["root"]`` when it is a folder; otherwise (in-memory recordings) only the
  dataset name, the subject list and the description (then a changed input under the same
  description is *not* detected: give ``cache_dir=None`` for such data);
- the subject id;
- the extraction settings (recipe, windowing, baseline; see
  :func:`fearkd.features.extract.extract_features`);
- the fearkd version.

Entries are written atomically (temporary file + ``os.replace``), so an interrupted run leaves
either a complete entry or none, and a re-run resumes with the subjects still missing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

from ..errors import FormatError
from ..recordings import Recordings
from .featureset import FeatureSet

__all__ = ["fearkd_version", "input_fingerprint", "cache_key", "cache_path", "load_entry",
           "store_entry"]

logger = logging.getLogger(__name__)
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def fearkd_version() -> str:
    """The installed fearkd version (part of every cache key)."""
    try:
        return metadata.version("fearkd")
    except metadata.PackageNotFoundError:
        return "unknown"


def _stat(path: str | os.PathLike) -> list:
    try:
        st = os.stat(path)
    except OSError:
        return [str(path), None, None]
    return [str(path), st.st_size, st.st_mtime_ns]


def _listed_files(files: object) -> list[str]:
    if isinstance(files, Mapping):
        out: list[str] = []
        for key in sorted(files, key=str):
            out += _listed_files(files[key])
        return out
    if isinstance(files, (str, os.PathLike)):
        return [str(files)]
    return [str(f) for f in files]


def input_fingerprint(recordings: Recordings) -> dict:
    """What identifies the input data of ``recordings`` (see the module docstring)."""
    desc = recordings.description
    base = {"dataset": recordings.dataset, "subjects": list(recordings.subjects)}
    if desc.get("files"):
        return {**base, "files": [_stat(f) for f in _listed_files(desc["files"])]}
    root = desc.get("root")
    if isinstance(root, (str, os.PathLike)) and Path(root).is_dir():
        files = sorted(p for p in Path(root).rglob("*") if p.is_file())
        return {**base, "root": str(root), "files": [_stat(p) for p in files]}
    return {**base, "description": json.loads(json.dumps(desc, sort_keys=True, default=str))}


def cache_key(fingerprint: Mapping, subject: str, settings: Mapping) -> str:
    """SHA-256 (hex) of the fingerprint, subject, settings and fearkd version."""
    payload = {"input": fingerprint, "subject": subject, "settings": settings,
               "fearkd": fearkd_version()}
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cache_path(cache_dir: str | os.PathLike, dataset: str, subject: str, key: str) -> Path:
    """File of one subject's entry."""
    name = f"{_SAFE.sub('_', dataset)}-{_SAFE.sub('_', subject)}-{key[:32]}.npz"
    return Path(cache_dir) / name


def load_entry(path: Path) -> FeatureSet | None:
    """The cached FeatureSet at ``path``, or None if absent or unreadable (then recomputed)."""
    if not path.is_file():
        return None
    try:
        return FeatureSet.load(path)
    except (FormatError, OSError, ValueError) as exc:
        logger.warning("Ignoring unreadable feature cache entry %s: %s", path, exc)
        return None


def store_entry(features: FeatureSet, path: Path) -> Path:
    """Write an entry atomically."""
    return features.save(path)
