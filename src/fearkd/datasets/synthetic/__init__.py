"""Synthetic datasets in the real on-disk formats, with learnable affect-driven physiology.

- :func:`write_deap` writes DEAP's preprocessed layout (``.dat`` pickles, ``.mat``, ratings CSV);
- :func:`write_ascertain` writes ASCERTAIN's raw layout;
- :func:`write_e4` writes Empatica E4 session folders and a generic description for them;
- :func:`write_wesad` writes WESAD subject folders (pickle + quest file).

Both draw their signals from the generative model in
:mod:`fearkd.datasets.synthetic._physio` (described in its docstring).
"""

from .ascertain import write_ascertain
from .deap import write_deap
from .e4 import write_e4
from .wesad import write_wesad

__all__ = ["write_ascertain", "write_deap", "write_e4", "write_wesad"]
