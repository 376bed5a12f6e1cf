"""Plug-ins: your own readers, models, protocols, KD losses and methods, without editing fearkd.

A plug-in is a Python module that registers pieces when it is imported::

    # my_fearkd_parts.py
    from torch import nn
    from fearkd.models import register_model

    class Tiny(nn.Module):
        def __init__(self, n_features, n_outputs, *, hidden=16):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU())
            self.head = nn.Linear(hidden, n_outputs)

        def forward(self, x):
            return self.head(self.body(x))

    register_model("tiny", Tiny, description="one hidden layer")

An experiment file names its plug-ins at the top level, as module names on ``PYTHONPATH`` or as
paths of ``.py`` files relative to the experiment file::

    plugins = ["my_fearkd_parts.py"]

    [models]
    backbones = ["tiny"]

They are imported before the file is validated (so the names they register are accepted), by
every command that reads the file, and again in every worker process of a cross-validation
run. ``FEARKD_PLUGINS`` (entries separated by ``os.pathsep``) names plug-ins for every
command, e.g. a reader used by ``fearkd info``. A module is imported once per process: loading
the same plug-in twice does not register its pieces twice.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from .errors import ConfigError

__all__ = ["ENV_VAR", "load_plugins", "plugins_from_env", "resolve_plugin"]

#: Environment variable naming plug-ins for every command.
ENV_VAR = "FEARKD_PLUGINS"


def resolve_plugin(spec: str, base: str | os.PathLike | None = None) -> str:
    """A plug-in entry as stored in a resolved config: module names as given, ``.py`` paths
    made absolute against ``base`` (the experiment file's folder)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"Invalid value in 'plugins': expected a module name or the path of a "
                          f".py file, got {spec!r}.")
    if spec.endswith(".py"):
        path = Path(spec).expanduser()
        if not path.is_absolute() and base is not None:
            path = Path(base) / path
        return str(path.resolve())
    return spec


def _import_path(path: Path, where: str) -> ModuleType:
    if not path.is_file():
        raise ConfigError(f"{where}: plug-in file {str(path)!r} does not exist; give the path "
                          f"of a .py file relative to the experiment file, or a module name.")
    # One module per file and process, keyed by the file's absolute path.
    name = "fearkd_plugin_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ConfigError(f"{where}: plug-in {str(path)!r} failed while importing: "
                          f"{type(exc).__name__}: {exc}") from exc
    return module


def load_plugins(specs: Iterable[str], *, where: str = "plugins",
                 base: str | os.PathLike | None = None) -> list[ModuleType]:
    """Import each plug-in (once per process) so that its registrations take effect.

    Parameters
    ----------
    specs : iterable of str
        Module names, or paths of ``.py`` files (relative to ``base``).
    where : str
        Where the entries come from, for messages (an experiment file, ``FEARKD_PLUGINS``).
    base : path, optional
        Folder that relative ``.py`` paths are relative to.

    Returns
    -------
    list of module
    """
    modules = []
    for spec in specs:
        resolved = resolve_plugin(spec, base)
        if resolved.endswith(".py"):
            modules.append(_import_path(Path(resolved), where))
            continue
        try:
            modules.append(importlib.import_module(resolved))
        except ModuleNotFoundError as exc:
            raise ConfigError(f"{where}: plug-in {resolved!r} cannot be imported ({exc}); put "
                              f"its folder on PYTHONPATH, or give the path of a .py file "
                              f"relative to the experiment file.") from exc
        except Exception as exc:
            raise ConfigError(f"{where}: plug-in {resolved!r} failed while importing: "
                              f"{type(exc).__name__}: {exc}") from exc
    return modules


def plugins_from_env() -> list[ModuleType]:
    """Import the plug-ins named by ``FEARKD_PLUGINS`` (relative paths: the current folder)."""
    value = os.environ.get(ENV_VAR, "")
    specs = [s for s in value.split(os.pathsep) if s.strip()]
    return load_plugins(specs, where=ENV_VAR, base=Path.cwd())
